/* rly_selfcheck.c - the relay's check of itself (see rly_selfcheck.h).
 *
 * Why a thread and not a child process: the relay's other threads hold
 * OpenSSL and allocator locks a fork could copy in a locked state, and
 * exec'ing tsunagu-turncheck would put the credentials on its command line.
 * The thread shares nothing mutable with the workers: it reads its own
 * copies, takes a port from the pool (atomic, shared by design) and talks
 * to the listeners like any client. Its waits are bounded (SC_TIMEOUT_MS
 * per wait), so stopping it costs at most one wait. */
#include "rly_selfcheck.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "rtc_clock.h"
#include "rtc_log.h"
#include "rtc_tls.h"
#include "tc_check.h"
#include "tc_turn.h"

#define SC_MAX 3              /* udp, tcp, tls */
#define SC_TIMEOUT_MS 2000    /* every wait of the check */
#define SC_REST_TTL_S 3600    /* the minted REST username's lifetime */
#define SC_CTX "self-check"

typedef struct {
    char url[96];          /* turn:ADDR:PORT?transport=... / turns:ADDR:PORT */
    tc_url u;
    _Atomic int result;    /* -1 not run yet, 0 failed, 1 passed */
    char failed_step[32];  /* written by the check's thread before result */
} sc_item;

struct rly_selfcheck {
    sc_item item[SC_MAX];
    size_t n;
    char user[160], pass[160];
    rtc_addr peer_ip;          /* a relay address: the peer socket binds there */
    rtc_addr expect;           /* what the relay advertises for that family */
    rtc_addr relayed_local;    /* behind --external-ip: the relay address */
    bool has_nat;
    rly_ports *ports;
    SSL_CTX *tls;
    pthread_t thread;
    bool started;
    atomic_bool stop;
    _Atomic bool done;
    _Atomic unsigned warnings;
    sc_item *cur;              /* the check's thread only */
};

/* The address a client of this host reaches a listener at: the listener's,
 * or for a wildcard the relay address of its family (what a client elsewhere
 * would use), else loopback. */
static void reachable(const rtc_addr *listen, const rly_cfg *cfg, rtc_addr *out)
{
    int f = listen->family == AF_INET6;
    *out = *listen;
    if (!rtc_addr_is_any(listen))
        return;
    if (cfg->relay_ip[f].family)
        *out = cfg->relay_ip[f];
    else
        rtc_addr_parse_ip(f ? "::1" : "127.0.0.1", out);
    out->port = listen->port;
}

static int add(rly_selfcheck *sc, const char *scheme, const rtc_addr *a, const char *query,
               char *err, size_t errlen)
{
    sc_item *it = &sc->item[sc->n];
    char hp[RTC_ADDR_STRLEN + 8], why[300];
    rtc_addr_format(a, true, hp);
    snprintf(it->url, sizeof it->url, "%s:%s%s", scheme, hp, query);
    if (tc_url_parse(it->url, &it->u, why, sizeof why)) {
        snprintf(err, errlen, "self-check: %s", why);
        return -1;
    }
    atomic_init(&it->result, -1);
    sc->n++;
    return 0;
}

/* The relay's own credentials: a REST username minted with the first
 * secret (as tsunagu-signal would), else the first static user. */
static int credentials(rly_selfcheck *sc, const rly_settings *s)
{
    if (s->auth_secret.n)
        return tc_rest_credentials(s->auth_secret.v[0], rtc_clock_wall_s() + SC_REST_TTL_S,
                                   "self-check", sc->user, sizeof sc->user, sc->pass,
                                   sizeof sc->pass);
    if (s->user.n) {
        const char *u = s->user.v[0], *c = strchr(u, ':');
        if (!c || (size_t)(c - u) >= sizeof sc->user || strlen(c + 1) >= sizeof sc->pass)
            return -1;
        memcpy(sc->user, u, (size_t)(c - u));
        sc->user[c - u] = '\0';
        strcpy(sc->pass, c + 1);
        return 0;
    }
    return -1;
}

rly_selfcheck *rly_selfcheck_new(const rly_selfcheck_params *p, char *err, size_t errlen)
{
    rly_selfcheck *sc = calloc(1, sizeof *sc);
    rtc_addr a;
    int f = -1;

    if (!sc) {
        snprintf(err, errlen, "self-check: out of memory");
        return NULL;
    }
    sc->ports = p->ports;
    if (credentials(sc, p->s)) {
        snprintf(err, errlen, "self-check: no usable credential (--user or --auth-secret)");
        goto out_free;
    }
    if (p->s->listen.n) {
        reachable(&p->listen[0], p->cfg, &a);
        f = a.family == AF_INET6;
        if (add(sc, "turn", &a, "?transport=udp", err, errlen) ||
            add(sc, "turn", &a, "?transport=tcp", err, errlen))
            goto out_free;
    }
    if (p->s->tls_listen.n) {
        reachable(&p->tls_listen[0], p->cfg, &a);
        if (f < 0)
            f = a.family == AF_INET6;
        if (add(sc, "turns", &a, "", err, errlen))
            goto out_free;
        /* the relay does not know the name its clients put in turns: URLs,
         * so the certificate is not checked here: turncheck does it */
        rtc_tls_client_opts o = {.verify = false, .flags = RTC_TLS_IGNORE_EOF};
        if (!(sc->tls = rtc_tls_client_new(&o, err, errlen)))
            goto out_free;
    }
    /* the peer: a relay address of the first listener's family if any (the
     * allocation follows the peer's family) */
    if (f < 0)
        f = 0;
    if (!p->cfg->relay_ip[f].family)
        f = !f;
    sc->peer_ip = p->cfg->relay_ip[f];
    sc->expect = p->cfg->advertise[f];
    if (!rtc_addr_ip_equal(&sc->expect, &sc->peer_ip)) {
        sc->relayed_local = sc->peer_ip;
        sc->has_nat = true;
    }
    err[0] = '\0';
    return sc;
out_free:
    rly_selfcheck_free(sc);
    return NULL;
}

/* One verdict line of tc_check, logged; false stops the check. */
static bool line(void *arg, const char *url, tc_verdict v, const char *step, const char *detail)
{
    rly_selfcheck *sc = arg;
    rtc_log_level lvl = v == TC_OK ? RTC_LOG_INFO : v == TC_WARN ? RTC_LOG_WARN : RTC_LOG_ERROR;
    RTC_LOG(lvl, SC_CTX, "%s %s %s: %s", url, tc_verdict_name(v), step, detail);
    if (v == TC_WARN)
        atomic_fetch_add(&sc->warnings, 1);
    if (v == TC_FAIL && sc->cur)
        snprintf(sc->cur->failed_step, sizeof sc->cur->failed_step, "%s", step);
    return !atomic_load(&sc->stop);
}

static bool check_one(rly_selfcheck *sc, sc_item *it)
{
    tc_check_self self = {.expect_what = sc->has_nat ? "--external-ip" : "the relay address",
                          .relayed_local = sc->has_nat ? &sc->relayed_local : NULL,
                          .tls_note = "the relay does not know the name clients use: check it "
                                      "from outside with tsunagu-turncheck turns:NAME"};
    tc_check_params cp = {.user = sc->user, .pass = sc->pass, .expect = &sc->expect,
                          .tls = sc->tls, .tls_verify = false, .timeout_ms = SC_TIMEOUT_MS,
                          .line = line, .line_arg = sc, .self = &self};
    rtc_addr bound;
    bool ok;
    int fd = rly_ports_open(sc->ports, &sc->peer_ip, false, &bound);

    sc->cur = it;
    if (fd < 0) {
        /* the pool is the relay's: full means clients are refused too */
        line(sc, it->url, TC_FAIL, "allocate", fd == -EADDRINUSE
             ? "no relayed port free for the peer socket (--relay-ports range full)"
             : "cannot open the peer socket on a relayed port");
        return false;
    }
    self.peer_fd = fd;
    ok = tc_check_url(&cp, &it->u);
    rly_ports_close(sc->ports, fd, &bound);
    return ok;
}

static void *run(void *arg)
{
    rly_selfcheck *sc = arg;
    char sum[400];
    size_t sl = 0, passed = 0;

    for (size_t i = 0; i < sc->n && !atomic_load(&sc->stop); i++) {
        bool ok = check_one(sc, &sc->item[i]);
        atomic_store(&sc->item[i].result, ok ? 1 : 0);
        passed += ok;
    }
    if (atomic_load(&sc->stop))
        return NULL; /* stopped: no verdict to give */
    for (size_t i = 0; i < sc->n && sl < sizeof sum; i++) {
        const sc_item *it = &sc->item[i];
        sl += (size_t)snprintf(sum + sl, sizeof sum - sl, "%s%s %s%s%s", i ? ", " : "",
                               tc_proto_name(it->u.proto),
                               atomic_load(&it->result) == 1 ? "ok" : "FAIL",
                               atomic_load(&it->result) == 1 ? "" : " at ",
                               atomic_load(&it->result) == 1 ? "" : it->failed_step);
    }
    RTC_LOG(passed < sc->n ? RTC_LOG_ERROR : atomic_load(&sc->warnings) ? RTC_LOG_WARN
                                                                         : RTC_LOG_INFO,
            SC_CTX, "summary: %zu/%zu transports passed (%s), %u warning(s)%s", passed, sc->n,
            sum, atomic_load(&sc->warnings),
            passed < sc->n ? ": the lines above name the cause (docs/turncheck.md)" : "");
    atomic_store(&sc->done, true);
    return NULL;
}

int rly_selfcheck_start(rly_selfcheck *sc)
{
    int e = pthread_create(&sc->thread, NULL, run, sc);
    if (e)
        return -e;
    sc->started = true;
    return 0;
}

void rly_selfcheck_render(const rly_selfcheck *sc, rtc_buf *b)
{
    bool done, all = true;
    if (!sc)
        return;
    done = atomic_load(&sc->done);
    rtc_metrics_one(b, "tsunagu_relay_self_check_done", "gauge",
                    "1 once the --self-check of start-up has finished.", done);
    if (!done)
        return;
    rtc_metrics_header(b, "tsunagu_relay_self_check_transport_ok", "gauge",
                       "1 when the --self-check passed over this transport, else 0.");
    for (size_t i = 0; i < sc->n; i++) {
        char label[32];
        int r = atomic_load(&sc->item[i].result);
        snprintf(label, sizeof label, "transport=\"%s\"", tc_proto_name(sc->item[i].u.proto));
        rtc_metrics_u64(b, "tsunagu_relay_self_check_transport_ok", label, r == 1);
        all &= r == 1;
    }
    rtc_metrics_one(b, "tsunagu_relay_self_check_ok", "gauge",
                    "1 when the --self-check passed over every transport, else 0.", all);
    rtc_metrics_one(b, "tsunagu_relay_self_check_warnings", "gauge",
                    "Warnings of the --self-check (e.g. a private relayed address).",
                    atomic_load(&sc->warnings));
}

void rly_selfcheck_free(rly_selfcheck *sc)
{
    if (!sc)
        return;
    atomic_store(&sc->stop, true);
    if (sc->started)
        pthread_join(sc->thread, NULL);
    rtc_tls_ctx_free(sc->tls);
    explicit_bzero(sc->pass, sizeof sc->pass);
    free(sc);
}
