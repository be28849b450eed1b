/* rly_main.c - tsunagu-relay: settings, start-up, signals.
 *
 * One rtc_conf_spec table holds every flag of DESIGN.md's relay table (each
 * also a config key) plus the extras documented in docs/relay.md. Start-up
 * fails on any bad value with a message naming the key. The settings become
 * an immutable rly_cfg handed to the worker; SIGHUP loads flags + --config
 * again and swaps in a new rly_cfg (users, secret, peer rules, limits, TLS
 * certificate) without touching allocations; SIGTERM/SIGINT drain. */
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "rly_iplimit.h"
#include "rly_main.h"
#include "rly_ports.h"
#include "rly_worker.h"
#include "rtc_clock.h"
#include "rtc_conf.h"
#include "rtc_err.h"
#include "rtc_crypto.h"
#include "rtc_log.h"

static int check_ports(const char *v, char *err, size_t errlen)
{
    unsigned lo, hi;
    char tail;
    if (sscanf(v, "%u-%u%c", &lo, &hi, &tail) != 2 || lo < 1 || hi > 65535 || lo > hi) {
        snprintf(err, errlen, "expected LO-HI with 1 <= LO <= HI <= 65535");
        return RTC_EMSG;
    }
    return 0;
}

static int check_user(const char *v, char *err, size_t errlen)
{
    const char *c = strchr(v, ':');
    if (!c || c == v || !c[1] || c - v > 128) {
        snprintf(err, errlen, "expected NAME:PASSWORD (name 1-128 bytes, password non-empty)");
        return RTC_EMSG;
    }
    return 0;
}

static int check_realm(const char *v, char *err, size_t errlen)
{
    /* every 401 carries the realm: a long one would make the relay a
     * better amplifier for spoofed Allocates */
    if (!*v || strlen(v) > 32) {
        snprintf(err, errlen, "expected 1-32 bytes");
        return RTC_EMSG;
    }
    return 0;
}

#define OFF(f) offsetof(rly_settings, f)
#define I64MAX 4000000000LL

const rtc_conf_spec rly_conf_specs[] = {
    {"listen", RTC_CONF_LIST, OFF(listen), 0, 0, "0.0.0.0:3478", "ADDR:PORT",
     "UDP and TCP listener", rtc_conf_check_hostport, 0},
    {"tls-listen", RTC_CONF_LIST, OFF(tls_listen), 0, 0, NULL, "ADDR:PORT",
     "TURN over TLS listener (needs --cert and --key)", rtc_conf_check_hostport, 0},
    {"cert", RTC_CONF_STR, OFF(cert), 0, 0, NULL, "FILE", "TLS certificate chain (PEM)", NULL,
     0},
    {"key", RTC_CONF_STR, OFF(key), 0, 0, NULL, "FILE", "TLS private key (PEM)", NULL, 0},
    {"relay-ip", RTC_CONF_LIST, OFF(relay_ip), 0, 0, NULL, "IP",
     "address relayed sockets bind to, one per family (default: the listen address, or an "
     "interface address when listening on a wildcard)",
     rtc_conf_check_ip, 0},
    {"external-ip", RTC_CONF_LIST, OFF(external_ip), 0, 0, NULL, "IP",
     "address advertised in XOR-RELAYED-ADDRESS behind a 1:1 NAT, one per family",
     rtc_conf_check_ip, 0},
    {"relay-ports", RTC_CONF_STR, OFF(relay_ports), 0, 0, "49152-65535", "LO-HI",
     "relayed port range", check_ports, 0},
    {"realm", RTC_CONF_STR, OFF(realm), 0, 0, "tsunagu", "R",
     "realm for long-term credentials", check_realm, 0},
    {"user", RTC_CONF_LIST, OFF(user), 0, 0, NULL, "NAME:PASSWORD",
     "static long-term credential", check_user, RTC_CONF_SECRET},
    {"auth-secret", RTC_CONF_STR, OFF(auth_secret), 0, 0, NULL, "S",
     "TURN REST API secret (username EXPIRY[:ID], password base64(HMAC-SHA1(S, username)))",
     NULL, RTC_CONF_SECRET},
    {"allow-peer", RTC_CONF_LIST, OFF(allow_peer), 0, 0, NULL, "CIDR",
     "peer range clients may reach (wins over deny)", rtc_conf_check_cidr, 0},
    {"deny-peer", RTC_CONF_LIST, OFF(deny_peer), 0, 0, NULL, "CIDR",
     "peer range clients may not reach (besides the built-in private/loopback denies)",
     rtc_conf_check_cidr, 0},
    {"max-allocations", RTC_CONF_INT, OFF(max_allocations), 1, 100000000, "100000", "N",
     "allocation quota of the whole relay (486 when reached)", NULL, 0},
    {"max-allocations-per-user", RTC_CONF_INT, OFF(max_allocations_per_user), 1, 100000000,
     "64", "N", "allocation quota per username (486 when reached)", NULL, 0},
    {"max-lifetime", RTC_CONF_INT, OFF(max_lifetime), 1, 86400 * 7, "3600", "S",
     "longest allocation lifetime granted", NULL, 0},
    {"default-lifetime", RTC_CONF_INT, OFF(default_lifetime), 1, 86400 * 7, "600", "S",
     "allocation lifetime when none is asked (and the minimum granted)", NULL, 0},
    {"bandwidth-per-allocation", RTC_CONF_INT, OFF(bandwidth), 0, I64MAX, "0", "BYTES/S",
     "cap per allocation, both directions together, 0 = none", NULL, 0},
    {"threads", RTC_CONF_INT, OFF(threads), 0, 1024, "0", "N",
     "worker threads, 0 = number of cores", NULL, 0},
    {"metrics-listen", RTC_CONF_STR, OFF(metrics_listen), 0, 0, "127.0.0.1:9641", "ADDR:PORT",
     "Prometheus /metrics and /healthz", rtc_conf_check_hostport, 0},
    {"log-level", RTC_CONF_STR, OFF(log_level), 0, 0, "info", "LEVEL",
     "error, warn, info or debug", rtc_conf_check_log_level, 0},
    {"log-format", RTC_CONF_STR, OFF(log_format), 0, 0, "text", "FMT", "text or json",
     rtc_conf_check_log_format, 0},
    {"drain-seconds", RTC_CONF_INT, OFF(drain_seconds), 0, 86400, "30", "S",
     "on SIGTERM, how long existing allocations may keep relaying", NULL, 0},
    {"legacy-channels", RTC_CONF_BOOL, OFF(legacy_channels), 0, 0, "false", NULL,
     "ChannelBind also accepts 0x5000-0x7FFF (RFC 5766 clients such as turnutils_uclient)",
     NULL, 0},
    {"nonce-ttl", RTC_CONF_INT, OFF(nonce_ttl), 1, 86400, "600", "S",
     "lifetime of a NONCE (438 Stale Nonce after it)", NULL, 0},
    {"max-tcp-per-ip", RTC_CONF_INT, OFF(max_tcp_per_ip), 1, 1000000, "64", "N",
     "TCP/TLS connections per client IPv4 address or IPv6 /64 (more are closed at accept)",
     NULL, 0},
    {"tcp-auth-timeout", RTC_CONF_INT, OFF(tcp_auth_timeout), 1, 3600, "10", "S",
     "a TCP/TLS connection that has not made an allocation (TLS handshake included) within "
     "S seconds is closed", NULL, 0},
    RTC_CONF_END,
};

#define MAX_RETIRED 4096

typedef struct {
    int argc;
    char **argv;
    rly_settings s;
    rly_cfg *cfg; /* current */
    rly_tls *tls; /* current */
    /* replaced by reloads: workers may still use them until they take the
     * new ones, so they are freed once every worker has (free_retired) */
    rly_cfg *old_cfg[MAX_RETIRED];
    rly_tls *old_tls[MAX_RETIRED];
    size_t n_old_cfg, n_old_tls;
    rtc_addr relay_ip[2];
    uint16_t port_lo, port_hi;
    bool has_tls, draining, stopping;
    rly_reloads reloads; /* read by the admin listener (worker 0) */
    uint64_t drain_deadline_ms;
    rly_worker **workers;
    size_t n_workers;
    rly_quota *quota; /* shared by the workers */
    rly_iplimit *iplimit; /* shared by the workers */
    rly_ports *ports; /* shared by the workers */
    rtc_addr *listen, *tls_listen, metrics;
    uint8_t nonce_key[32];
    int sfd;
} app;

static void cfg_free(rly_cfg *c)
{
    if (!c)
        return;
    rly_auth_free(c->auth);
    rtc_peer_policy_free(c->policy);
    free(c);
}

/* A real address of this host for family when listening on a wildcard:
 * advertising 0.0.0.0 would give clients a relayed address nobody can use. */
static bool pick_iface(int family, rtc_addr *out)
{
    struct ifaddrs *ifs, *i;
    bool found = false;
    if (getifaddrs(&ifs))
        return false;
    for (i = ifs; i && !found; i = i->ifa_next) {
        if (!i->ifa_addr || i->ifa_addr->sa_family != family || !(i->ifa_flags & IFF_UP) ||
            (i->ifa_flags & IFF_LOOPBACK))
            continue;
        rtc_addr_from_sockaddr(out, i->ifa_addr);
        out->port = 0;
        if (family == AF_INET6 && out->ip[0] == 0xfe && (out->ip[1] & 0xc0) == 0x80)
            continue; /* link-local needs a scope; not a relay address */
        found = true;
    }
    freeifaddrs(ifs);
    return found;
}

/* Relay IPs are fixed at start-up (sockets are bound to them). */
static int choose_relay_ips(app *ap, char *err, size_t errlen)
{
    for (size_t i = 0; i < ap->s.relay_ip.n; i++) {
        rtc_addr a;
        rtc_addr_parse_ip(ap->s.relay_ip.v[i], &a);
        if (rtc_addr_is_any(&a)) {
            snprintf(err, errlen, "relay-ip: '%s' is a wildcard; give a real address",
                     ap->s.relay_ip.v[i]);
            return RTC_EMSG;
        }
        if (!ap->relay_ip[a.family == AF_INET6].family)
            ap->relay_ip[a.family == AF_INET6] = a;
    }
    if (ap->s.relay_ip.n)
        return 0;
    for (size_t i = 0; i < ap->s.listen.n; i++) {
        rtc_addr a;
        int f;
        rtc_addr_parse_hostport(ap->s.listen.v[i], &a);
        f = a.family == AF_INET6;
        if (ap->relay_ip[f].family)
            continue;
        a.port = 0;
        if (!rtc_addr_is_any(&a)) {
            ap->relay_ip[f] = a;
        } else if (!pick_iface(a.family, &ap->relay_ip[f]) && a.family == AF_INET) {
            rtc_addr_parse_ip("127.0.0.1", &ap->relay_ip[f]);
            RTC_LOG(RTC_LOG_WARN, NULL,
                    "no non-loopback IPv4 interface: relaying on 127.0.0.1 (set --relay-ip)");
        }
    }
    if (!ap->relay_ip[0].family && !ap->relay_ip[1].family) {
        snprintf(err, errlen, "relay-ip: no relay address could be chosen; set --relay-ip");
        return RTC_EMSG;
    }
    return 0;
}

static int parse_cidrs(const rtc_strlist *l, rtc_cidr **out)
{
    *out = calloc(l->n + 1, sizeof **out);
    if (!*out)
        return -ENOMEM;
    for (size_t i = 0; i < l->n; i++)
        rtc_cidr_parse(l->v[i], &(*out)[i]); /* validated by the table */
    return 0;
}

/* Settings -> immutable runtime configuration. NULL with err. */
static rly_cfg *build_cfg(const app *ap, const rly_settings *s, char *err, size_t errlen)
{
    rly_cfg *c = calloc(1, sizeof *c);
    rtc_cidr *allow = NULL, *deny = NULL;
    rtc_addr own[4];
    size_t n_own = 0;
    rtc_peer_policy_params pp;

    if (!c)
        goto out_oom;
    if (s->default_lifetime > s->max_lifetime) {
        snprintf(err, errlen, "default-lifetime: %lld is above max-lifetime %lld",
                 (long long)s->default_lifetime, (long long)s->max_lifetime);
        goto out_free;
    }
    c->auth = rly_auth_new(s->realm, s->user.v, s->user.n, s->auth_secret, err, errlen);
    if (!c->auth)
        goto out_free;
    if (parse_cidrs(&s->allow_peer, &allow) || parse_cidrs(&s->deny_peer, &deny))
        goto out_oom;
    for (int f = 0; f < 2; f++) {
        c->relay_ip[f] = ap->relay_ip[f];
        c->advertise[f] = ap->relay_ip[f];
        if (ap->relay_ip[f].family)
            own[n_own++] = ap->relay_ip[f];
    }
    for (size_t i = 0; i < s->external_ip.n; i++) {
        rtc_addr a;
        rtc_addr_parse_ip(s->external_ip.v[i], &a);
        c->advertise[a.family == AF_INET6] = a;
        if (n_own < 4)
            own[n_own++] = a;
    }
    pp = (rtc_peer_policy_params){.allow = allow, .n_allow = s->allow_peer.n, .deny = deny,
                                  .n_deny = s->deny_peer.n, .own = own, .n_own = n_own,
                                  .own_port_lo = ap->port_lo, .own_port_hi = ap->port_hi};
    c->policy = rtc_peer_policy_new(&pp);
    if (!c->policy)
        goto out_oom;
    c->lim.default_lifetime_s = (uint32_t)s->default_lifetime;
    c->lim.max_lifetime_s = (uint32_t)s->max_lifetime;
    c->lim.max_allocs = (uint64_t)s->max_allocations;
    c->lim.max_allocs_per_user = (uint64_t)s->max_allocations_per_user;
    c->lim.bandwidth = (uint64_t)s->bandwidth;
    c->lim.nonce_ttl_s = (uint32_t)s->nonce_ttl;
    c->lim.legacy_channels = s->legacy_channels;
    c->lim.max_tcp_per_ip = (uint32_t)s->max_tcp_per_ip;
    c->lim.tcp_auth_timeout_s = (uint32_t)s->tcp_auth_timeout;
    free(allow);
    free(deny);
    return c;
out_oom:
    snprintf(err, errlen, "out of memory");
out_free:
    free(allow);
    free(deny);
    cfg_free(c);
    return NULL;
}

static int check_tls(const rly_settings *s, rly_tls **tls, char *err, size_t errlen)
{
    *tls = NULL;
    if (!s->tls_listen.n)
        return 0;
    if (!s->cert || !s->key) {
        snprintf(err, errlen, "tls-listen: needs both --cert and --key");
        return RTC_EMSG;
    }
    *tls = rly_tls_new(s->cert, s->key, err, errlen);
    return *tls ? 0 : RTC_EMSG;
}

/* Free the configurations and TLS contexts replaced by reloads once every
 * worker has taken the newest: none of them can be in use any more. Called
 * on each reload and from the 100 ms supervise tick, so SIGHUP can be sent
 * any number of times. */
static void free_retired(app *ap)
{
    if (!ap->n_old_cfg && !ap->n_old_tls)
        return;
    for (size_t i = 0; i < ap->n_workers; i++)
        if (!rly_worker_cfg_taken(ap->workers[i]))
            return;
    for (size_t i = 0; i < ap->n_old_cfg; i++)
        cfg_free(ap->old_cfg[i]);
    for (size_t i = 0; i < ap->n_old_tls; i++)
        rly_tls_free(ap->old_tls[i]);
    ap->n_old_cfg = ap->n_old_tls = 0;
}

static void reload(app *ap)
{
    rly_settings ns;
    char err[512];
    rly_cfg *nc;
    rly_tls *nt = NULL;
    rtc_log_level lvl;
    rtc_log_format fmt;

    free_retired(ap);
    if (ap->n_old_cfg >= MAX_RETIRED || ap->n_old_tls >= MAX_RETIRED) {
        /* only when workers stopped taking new configurations */
        RTC_LOG(RTC_LOG_ERROR, NULL, "reload refused: %d replaced configurations still in use",
                MAX_RETIRED);
        atomic_fetch_add(&ap->reloads.failed, 1);
        return;
    }
    memset(&ns, 0, sizeof ns);
    if (rtc_conf_load(rly_conf_specs, &ns, ap->argc, ap->argv, err, sizeof err)) {
        RTC_LOG(RTC_LOG_ERROR, NULL, "reload failed, keeping the old settings: %s", err);
        atomic_fetch_add(&ap->reloads.failed, 1);
        return;
    }
    nc = build_cfg(ap, &ns, err, sizeof err);
    if (!nc || (ap->has_tls && check_tls(&ns, &nt, err, sizeof err))) {
        RTC_LOG(RTC_LOG_ERROR, NULL, "reload failed, keeping the old settings: %s", err);
        atomic_fetch_add(&ap->reloads.failed, 1);
        cfg_free(nc);
        rtc_conf_dispose(rly_conf_specs, &ns);
        return;
    }
    for (size_t i = 0; i < ap->n_workers; i++)
        rly_worker_post_cfg(ap->workers[i], nc, nt);
    ap->old_cfg[ap->n_old_cfg++] = ap->cfg;
    ap->cfg = nc;
    if (nt) {
        ap->old_tls[ap->n_old_tls++] = ap->tls;
        ap->tls = nt;
    }
    rtc_log_parse_level(ns.log_level, &lvl);
    rtc_log_parse_format(ns.log_format, &fmt);
    rtc_log_setup(lvl, fmt, "tsunagu-relay");
    RTC_LOG(RTC_LOG_INFO, NULL,
            "reloaded: %zu static user(s), REST secret %s, %zu allow / %zu deny rule(s)%s",
            ns.user.n, ns.auth_secret ? "on" : "off", ns.allow_peer.n, ns.deny_peer.n,
            nt ? ", TLS certificate" : "");
    rtc_conf_dispose(rly_conf_specs, &ap->s);
    ap->s = ns;
    atomic_fetch_add(&ap->reloads.ok, 1);
}

static void stop_all(app *ap)
{
    ap->stopping = true;
    for (size_t i = 0; i < ap->n_workers; i++)
        rly_worker_post_stop(ap->workers[i]);
}

static void on_signal(app *ap, int signo)
{
    switch (signo) {
    case SIGHUP:
        reload(ap);
        break;
    case SIGTERM:
    case SIGINT:
        if (ap->draining) {
            RTC_LOG(RTC_LOG_INFO, NULL, "second stop signal: exiting now");
            stop_all(ap);
        } else {
            size_t live = rly_quota_total(ap->quota);
            RTC_LOG(RTC_LOG_INFO, NULL,
                    "draining: new allocations refused, %zu live, up to %lld s", live,
                    (long long)ap->s.drain_seconds);
            ap->draining = true;
            ap->drain_deadline_ms = rtc_clock_mono_ms() + (uint64_t)ap->s.drain_seconds * 1000u;
            for (size_t i = 0; i < ap->n_workers; i++)
                rly_worker_post_drain(ap->workers[i]);
        }
        break;
    default:
        break;
    }
}

static rtc_addr *parse_addrs(const rtc_strlist *l)
{
    rtc_addr *v = calloc(l->n + 1, sizeof *v);
    for (size_t i = 0; v && i < l->n; i++)
        rtc_addr_parse_hostport(l->v[i], &v[i]);
    return v;
}

static void *worker_main(void *arg)
{
    return (void *)(intptr_t)rly_worker_run(arg);
}

/* The main thread only reads signals and waits for the workers. */
static int supervise(app *ap, int sfd)
{
    for (;;) {
        struct pollfd pfd = {.fd = sfd, .events = POLLIN};
        struct signalfd_siginfo si;
        size_t done = 0;

        if (poll(&pfd, 1, 100) > 0)
            while (read(sfd, &si, sizeof si) == (ssize_t)sizeof si)
                on_signal(ap, (int)si.ssi_signo);
        for (size_t i = 0; i < ap->n_workers; i++)
            done += rly_worker_done(ap->workers[i]);
        if (!done)
            free_retired(ap);
        if (done == ap->n_workers)
            return 0;
        if (done && !ap->stopping) {
            /* a worker failed on its own: stop the others, exit non-zero */
            stop_all(ap);
            return 1;
        }
        if (ap->draining && !ap->stopping) {
            /* the shared quota counts an allocation before its success
             * response leaves, so a drain never ends under a fresh one */
            size_t left = rly_quota_total(ap->quota);
            if (left == 0 || rtc_clock_mono_ms() >= ap->drain_deadline_ms) {
                RTC_LOG(RTC_LOG_INFO, NULL, "drain finished with %zu allocation(s) left", left);
                stop_all(ap);
            }
        }
    }
}

static size_t worker_count(const rly_settings *s)
{
    long n = s->threads > 0 ? (long)s->threads : sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : (size_t)n;
}

/* Settings -> everything the workers need. 0, or RTC_EMSG with err. */
static int prepare(app *ap, char *err, size_t errlen)
{
    rtc_log_level lvl;
    rtc_log_format fmt;
    unsigned lo, hi;

    rtc_log_parse_level(ap->s.log_level, &lvl);
    rtc_log_parse_format(ap->s.log_format, &fmt);
    rtc_log_setup(lvl, fmt, "tsunagu-relay");
    sscanf(ap->s.relay_ports, "%u-%u", &lo, &hi);
    ap->port_lo = (uint16_t)lo;
    ap->port_hi = (uint16_t)hi;
    ap->has_tls = ap->s.tls_listen.n > 0;
    if (!ap->s.listen.n && !ap->s.tls_listen.n) {
        snprintf(err, errlen, "listen: at least one listener is needed");
        return RTC_EMSG;
    }
    if (choose_relay_ips(ap, err, errlen) || check_tls(&ap->s, &ap->tls, err, errlen) ||
        !(ap->cfg = build_cfg(ap, &ap->s, err, errlen)))
        return RTC_EMSG;
    ap->listen = parse_addrs(&ap->s.listen);
    ap->tls_listen = parse_addrs(&ap->s.tls_listen);
    rtc_addr_parse_hostport(ap->s.metrics_listen, &ap->metrics);
    ap->quota = rly_quota_new();
    ap->ports = rly_ports_new(ap->port_lo, ap->port_hi);
    ap->iplimit = rly_iplimit_new();
    ap->workers = calloc(worker_count(&ap->s), sizeof *ap->workers);
    if (!ap->listen || !ap->tls_listen || !ap->quota || !ap->ports || !ap->iplimit || !ap->workers ||
        rtc_random(ap->nonce_key, sizeof ap->nonce_key)) {
        snprintf(err, errlen, "out of memory");
        return RTC_EMSG;
    }
    return 0;
}

/* Signals go to the main thread only: blocked before any thread starts, so
 * every worker inherits the mask, and read through a signalfd. */
static int setup_signals(app *ap, char *err, size_t errlen)
{
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGHUP);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    signal(SIGPIPE, SIG_IGN);
    ap->sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (ap->sfd < 0) {
        snprintf(err, errlen, "signalfd: %s", strerror(errno));
        return RTC_EMSG;
    }
    return 0;
}

/* Open every worker's sockets (start-up errors are reported before any
 * thread runs). 0 or RTC_EMSG. */
static int create_workers(app *ap, char *err, size_t errlen)
{
    size_t n = worker_count(&ap->s);
    rly_worker_params wp = {
        .cfg = ap->cfg, .listen = ap->listen, .n_listen = ap->s.listen.n,
        .tls_listen = ap->tls_listen, .n_tls_listen = ap->s.tls_listen.n, .tls = ap->tls,
        .ports = ap->ports, .start_time_s = (double)rtc_clock_wall_s(), .reuseport = n > 1,
        .quota = ap->quota, .iplimit = ap->iplimit, .nonce_key = ap->nonce_key, .all = ap->workers,
        .n_all = &ap->n_workers, .reloads = &ap->reloads};
    char r4[RTC_ADDR_STRLEN], r6[RTC_ADDR_STRLEN];

    for (size_t i = 0; i < n; i++) {
        wp.metrics = i == 0 ? &ap->metrics : NULL; /* one admin listener */
        wp.first = i == 0;
        ap->workers[i] = rly_worker_new(&wp, err, errlen);
        if (!ap->workers[i])
            return RTC_EMSG;
        ap->n_workers = i + 1;
    }
    rtc_addr_format(&ap->relay_ip[0], false, r4);
    rtc_addr_format(&ap->relay_ip[1], false, r6);
    RTC_LOG(RTC_LOG_INFO, NULL,
            "started: %zu worker(s), %zu listener(s) (first %s), %zu TLS, relay %s / %s ports "
            "%u-%u, metrics %s, realm %s, %zu static user(s), REST secret %s",
            n, ap->s.listen.n, ap->s.listen.n ? ap->s.listen.v[0] : "-", ap->s.tls_listen.n, r4,
            r6, ap->port_lo, ap->port_hi, ap->s.metrics_listen, ap->s.realm, ap->s.user.n,
            ap->s.auth_secret ? "on" : "off");
    return 0;
}

/* One thread per worker; the main thread supervises. Exit status. */
static int run_workers(app *ap)
{
    pthread_t *threads = calloc(ap->n_workers, sizeof *threads);
    size_t started = 0;
    int status = 1;

    if (!threads)
        return 1;
    for (; started < ap->n_workers; started++)
        if (pthread_create(&threads[started], NULL, worker_main, ap->workers[started]))
            break;
    if (started == ap->n_workers) {
        status = supervise(ap, ap->sfd);
    } else {
        RTC_LOG(RTC_LOG_ERROR, NULL, "cannot start worker thread %zu", started);
        stop_all(ap);
    }
    for (size_t i = 0; i < started; i++) {
        void *wrc = NULL;
        pthread_join(threads[i], &wrc);
        if (wrc)
            status = 1;
    }
    free(threads);
    RTC_LOG(RTC_LOG_INFO, NULL, "stopped");
    return status;
}

static void app_dispose(app *ap)
{
    rtc_addr held;
    int fd;

    for (size_t i = 0; i < ap->n_workers; i++)
        rly_worker_free(ap->workers[i]);
    free(ap->workers);
    /* reserved ports nobody claimed */
    while (ap->quota && (fd = rly_quota_resv_expired(ap->quota, UINT64_MAX, &held)) >= 0)
        rly_ports_close(ap->ports, fd, &held);
    rly_quota_free(ap->quota);
    rly_ports_free(ap->ports);
    rly_iplimit_free(ap->iplimit);
    if (ap->sfd >= 0)
        close(ap->sfd);
    free(ap->listen);
    free(ap->tls_listen);
    cfg_free(ap->cfg);
    rly_tls_free(ap->tls);
    for (size_t i = 0; i < ap->n_old_cfg; i++)
        cfg_free(ap->old_cfg[i]);
    for (size_t i = 0; i < ap->n_old_tls; i++)
        rly_tls_free(ap->old_tls[i]);
    rtc_conf_dispose(rly_conf_specs, &ap->s);
}

int rly_main(int argc, char **argv)
{
    app ap;
    char err[512];
    int rc, status;

    memset(&ap, 0, sizeof ap);
    ap.argc = argc;
    ap.argv = argv;
    ap.sfd = -1;
    rc = rtc_conf_load(rly_conf_specs, &ap.s, argc, argv, err, sizeof err);
    if (rc == RTC_CONF_HELP) {
        printf("usage: tsunagu-relay [--config FILE] [flags]\n"
               "TURN relay (RFC 8656, RFC 8489, RFC 6156). Every flag is also a config key.\n");
        rtc_conf_usage(rly_conf_specs, stdout);
        return 0;
    }
    if (rc) {
        fprintf(stderr, "tsunagu-relay: %s\n", err);
        return 2;
    }
    if (prepare(&ap, err, sizeof err) || setup_signals(&ap, err, sizeof err) ||
        create_workers(&ap, err, sizeof err)) {
        fprintf(stderr, "tsunagu-relay: %s\n", err);
        status = 2;
    } else {
        status = run_workers(&ap);
    }
    app_dispose(&ap);
    return status;
}
