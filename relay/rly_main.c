/* rly_main.c - tsunagu-relay: settings, start-up, signals.
 *
 * One rtc_conf_spec table holds every flag of DESIGN.md's relay table (each
 * also a config key) plus the extras documented in docs/relay.md. Start-up
 * fails on any bad value with a message naming the key. The settings become
 * an immutable rly_cfg handed to the worker; SIGHUP loads flags + --config
 * again and swaps in a new rly_cfg (users, secret, peer rules, limits, TLS
 * certificate) without touching allocations; SIGTERM/SIGINT drain; SIGUSR2
 * starts a live takeover: a new process of the binary on disk takes the
 * sockets and UDP allocations over (rly_takeover.h, docs/relay.md). */
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <limits.h>
#include <net/if.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rly_iplimit.h"
#include "rly_main.h"
#include "rly_ports.h"
#include "rly_takeover.h"
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
    {"auth-secret", RTC_CONF_LIST, OFF(auth_secret), 0, 0, NULL, "S",
     "TURN REST API secret (username EXPIRY[:ID], password base64(HMAC-SHA1(S, username))); "
     "repeat it (up to 4) to accept an old secret while rotating",
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
    sigset_t orig_mask; /* restored for a takeover child */
    char exe[PATH_MAX]; /* this binary's path at start-up (an upgrade replaces it) */
    /* takeover, parent side: the child and our end of the socketpair */
    pid_t to_pid;
    int to_sock;
    uint64_t to_deadline_ms; /* for the child's HELO */
    bool handed_over;
    pid_t reap_pid; /* a failed child to wait for */
    uint64_t reap_deadline_ms;
    /* takeover, child side: the socketpair end from RLY_TO_ENV, -1 if none */
    int adopt_sock;
    /* the worker threads (a takeover child starts them before its ACK) */
    pthread_t *threads;
    size_t n_started;
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
    c->auth = rly_auth_new(s->realm, s->user.v, s->user.n, s->auth_secret.v, s->auth_secret.n,
                           err, errlen);
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
            "reloaded: %zu static user(s), %zu REST secret(s), %zu allow / %zu deny rule(s)%s",
            ns.user.n, ns.auth_secret.n, ns.allow_peer.n, ns.deny_peer.n,
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

/* ---- live takeover, parent side (SIGUSR2) ---- */

static size_t worker_count(const rly_settings *s);

/* systemd's sd_notify without libsystemd: one datagram to $NOTIFY_SOCKET
 * (a path, or '@' for the abstract namespace). No-op outside systemd. */
static void notify_systemd(const char *msg)
{
    const char *path = getenv("NOTIFY_SOCKET");
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t l;
    int fd;

    if (!path || !*path || (l = strlen(path)) >= sizeof sa.sun_path)
        return;
    memcpy(sa.sun_path, path, l);
    if (sa.sun_path[0] == '@')
        sa.sun_path[0] = '\0';
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    if (sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&sa,
               (socklen_t)(offsetof(struct sockaddr_un, sun_path) + l)) < 0)
        RTC_LOG(RTC_LOG_WARN, NULL, "NOTIFY_SOCKET: %s", strerror(errno));
    close(fd);
}

/* The environment of the child: ours, with RLY_TO_ENV naming its end. */
static char **child_env(int fd, char **mine_out)
{
    extern char **environ;
    size_t n = 0, k = 0, pl = strlen(RLY_TO_ENV "=");
    char **env;
    char *mine;

    while (environ[n])
        n++;
    env = calloc(n + 2, sizeof *env);
    mine = malloc(pl + 16);
    if (!env || !mine) {
        free(env);
        free(mine);
        return NULL;
    }
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], RLY_TO_ENV "=", pl))
            env[k++] = environ[i];
    snprintf(mine, pl + 16, RLY_TO_ENV "=%d", fd);
    env[k] = mine;
    *mine_out = mine;
    return env;
}

static void takeover_start(app *ap)
{
    int sv[2];
    char **env, *mine = NULL;
    pid_t pid;
    sigset_t child_mask;
    struct timeval tv = {.tv_sec = RLY_TO_STEP_MS / 1000};

    if (ap->to_sock >= 0) {
        RTC_LOG(RTC_LOG_WARN, NULL, "SIGUSR2 ignored: a takeover (pid %d) is in progress",
                (int)ap->to_pid);
        return;
    }
    if (ap->handed_over || ap->draining) {
        RTC_LOG(RTC_LOG_WARN, NULL, "SIGUSR2 ignored: this relay is draining%s",
                ap->handed_over ? " after a takeover" : "");
        return;
    }
    if (!ap->exe[0]) {
        RTC_LOG(RTC_LOG_ERROR, NULL, "takeover failed: the path of this binary is unknown "
                                     "(/proc/self/exe was not readable at start-up)");
        atomic_fetch_add(&ap->reloads.takeover_failed, 1);
        return;
    }
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv)) {
        RTC_LOG(RTC_LOG_ERROR, NULL, "takeover failed: socketpair: %s", strerror(errno));
        atomic_fetch_add(&ap->reloads.takeover_failed, 1);
        return;
    }
    /* everything the child needs is ready before fork: between fork and
     * exec only async-signal-safe calls are allowed in a threaded process */
    env = child_env(sv[1], &mine);
    /* SIGHUP and SIGUSR2 stay blocked across exec: until the new process
     * has its signalfd their default action would kill it (a logrotate
     * `pkill -HUP tsunagu-relay` during an upgrade fails the takeover);
     * blocked, they wait and the new process handles them. SIGTERM/SIGINT
     * stay deliverable so a stuck child can still be stopped. */
    child_mask = ap->orig_mask;
    sigaddset(&child_mask, SIGHUP);
    sigaddset(&child_mask, SIGUSR2);
    pid = env ? fork() : -1;
    if (pid == 0) {
        /* the only descriptor the new program inherits on purpose */
        fcntl(sv[1], F_SETFD, 0);
        sigprocmask(SIG_SETMASK, &child_mask, NULL);
        execve(ap->exe, ap->argv, env);
        _exit(127);
    }
    free(mine);
    free(env);
    close(sv[1]);
    if (pid < 0) {
        RTC_LOG(RTC_LOG_ERROR, NULL, "takeover failed: fork: %s", strerror(errno));
        close(sv[0]);
        atomic_fetch_add(&ap->reloads.takeover_failed, 1);
        return;
    }
    setsockopt(sv[0], SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    ap->to_sock = sv[0];
    ap->to_pid = pid;
    ap->to_deadline_ms = rtc_clock_mono_ms() + RLY_TO_STEP_MS;
    RTC_LOG(RTC_LOG_INFO, NULL, "takeover: started %s as pid %d", ap->exe, (int)pid);
}

static void resume_all(app *ap)
{
    for (size_t i = 0; i < ap->n_workers; i++)
        rly_worker_resume(ap->workers[i]);
}

/* The takeover did not happen: the workers run on with everything they
 * had; the child is waited for (and killed if it lingers). */
static void takeover_failed(app *ap, const char *why)
{
    RTC_LOG(RTC_LOG_ERROR, NULL, "takeover by pid %d failed, this process keeps serving: %s",
            (int)ap->to_pid, why);
    atomic_fetch_add(&ap->reloads.takeover_failed, 1);
    close(ap->to_sock);
    ap->to_sock = -1;
    if (ap->reap_pid) {
        /* an earlier failed child still lingers: one slot to wait on, so
         * finish it now rather than leave it running and unreaped */
        int st;
        kill(ap->reap_pid, SIGKILL);
        waitpid(ap->reap_pid, &st, 0);
    }
    ap->reap_pid = ap->to_pid;
    ap->reap_deadline_ms = rtc_clock_mono_ms() + 3000;
    ap->to_pid = 0;
}

/* Wait for a failed child without blocking the loop; SIGKILL after 3 s. */
static void reap_child(app *ap)
{
    int st;
    if (!ap->reap_pid)
        return;
    if (waitpid(ap->reap_pid, &st, WNOHANG) == 0) {
        if (rtc_clock_mono_ms() < ap->reap_deadline_ms)
            return;
        kill(ap->reap_pid, SIGKILL);
        waitpid(ap->reap_pid, &st, 0);
    }
    ap->reap_pid = 0;
}

/* Is signo pending (blocked, not yet read from the signalfd)? */
static bool pending(int signo)
{
    sigset_t p;
    return !sigpending(&p) && sigismember(&p, signo) == 1;
}

static bool stop_pending(void) { return pending(SIGTERM) || pending(SIGINT); }

/* Everything the child adopts, workers paused: the blob and descriptors. */
static int export_state(app *ap, rly_to_fds *fds, uint8_t **blob, size_t *blen)
{
    rly_to_state st;
    int rc;

    if (rly_to_state_init(&st, (uint32_t)ap->n_workers, (uint32_t)ap->s.listen.n,
                          (uint32_t)ap->s.tls_listen.n))
        return -ENOMEM;
    for (size_t i = 0; i < ap->s.listen.n; i++)
        st.listen[i] = ap->listen[i];
    for (size_t i = 0; i < ap->s.tls_listen.n; i++)
        st.tls[i] = ap->tls_listen[i];
    st.metrics = ap->metrics;
    memcpy(st.nonce_key, ap->nonce_key, sizeof st.nonce_key);
    st.takeovers_ok = atomic_load(&ap->reloads.takeover_ok);
    st.takeovers_failed = atomic_load(&ap->reloads.takeover_failed);
    for (size_t i = 0; i < ap->n_workers; i++) {
        if ((rc = rly_worker_export(ap->workers[i], &st.w[i], fds, i == 0, &st.metrics_fd)))
            goto out;
    }
    if (st.metrics_fd == RLY_TO_NONE)
        memset(&st.metrics, 0, sizeof st.metrics);
    st.n_fds = fds->n;
    rc = rly_to_write(&st, rtc_clock_mono_ms(), blob, blen);
out:
    rly_to_state_dispose(&st);
    return rc;
}

/* Bound the next send by what is left until deadline_ms: SO_SNDTIMEO alone
 * restarts for every message, and a child reading slowly would keep the
 * workers paused for 10 s per message. 0 or -ETIMEDOUT. */
static int send_budget(int sock, uint64_t deadline_ms)
{
    uint64_t now = rtc_clock_mono_ms(), left;
    struct timeval tv;

    if (now >= deadline_ms)
        return -ETIMEDOUT;
    left = deadline_ms - now;
    tv.tv_sec = (time_t)(left / 1000);
    tv.tv_usec = (suseconds_t)(left % 1000) * 1000;
    setsockopt(sock, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    return 0;
}

/* SIZE, the descriptors in batches of at most SCM_MAX_FD, the blob in
 * chunks, all before deadline_ms. 0 or -errno. */
static int send_state(int sock, const rly_to_fds *fds, const uint8_t *blob, size_t blen,
                      uint64_t deadline_ms)
{
    uint8_t size[8];
    int rc;

    for (int i = 0; i < 4; i++) {
        size[i] = (uint8_t)(blen >> (24 - 8 * i));
        size[4 + i] = (uint8_t)(fds->n >> (24 - 8 * i));
    }
    if ((rc = send_budget(sock, deadline_ms)) ||
        (rc = rly_to_msg_send(sock, "SIZE", size, sizeof size, NULL, 0)))
        return rc;
    for (uint32_t off = 0; off < fds->n;) {
        uint32_t k = fds->n - off > RLY_TO_FDS_PER_MSG ? RLY_TO_FDS_PER_MSG : fds->n - off;
        uint8_t cnt[4] = {(uint8_t)(k >> 24), (uint8_t)(k >> 16), (uint8_t)(k >> 8), (uint8_t)k};
        if ((rc = send_budget(sock, deadline_ms)) ||
            (rc = rly_to_msg_send(sock, "FDS_", cnt, 4, fds->v + off, k)))
            return rc;
        off += k;
    }
    for (size_t off = 0; off < blen;) {
        size_t k = blen - off > RLY_TO_CHUNK ? RLY_TO_CHUNK : blen - off;
        if ((rc = send_budget(sock, deadline_ms)) ||
            (rc = rly_to_msg_send(sock, "BLOB", blob + off, k, NULL, 0)))
            return rc;
        off += k;
    }
    return 0;
}

/* A child that refuses while the state is still coming says why (NAK_) and
 * hangs up with our messages unread: the kernel then resets the socket and
 * our send or receive fails first, but the NAK_ is still queued behind the
 * error. True with the reason in why if there is one. */
static bool child_refused(app *ap, char *why, size_t cap)
{
    char tag[4];
    uint8_t msg[512];
    size_t nf;
    long n = -ECONNRESET;

    for (int i = 0; i < 2 && n == -ECONNRESET; i++)
        n = rly_to_msg_recv(ap->to_sock, tag, msg, sizeof msg - 1, NULL, 0, &nf,
                            rtc_clock_mono_ms() + 100);
    if (n < 0 || memcmp(tag, "NAK_", 4))
        return false;
    msg[n] = '\0';
    snprintf(why, cap, "the new process refused: %s", (char *)msg);
    return true;
}

/* The child said HELO: pause, send, wait for its ACK, then let it run and
 * keep only the TCP/TLS connections, drained as on SIGTERM. */
static void takeover_serve(app *ap)
{
    char tag[4], why[600];
    uint8_t msg[512];
    size_t nf;
    long n;
    uint64_t t0;
    rly_to_fds fds = {0};
    uint8_t *blob = NULL;
    size_t blen = 0, moved = 0;
    int rc;

    n = rly_to_msg_recv(ap->to_sock, tag, msg, sizeof msg - 1, NULL, 0, &nf,
                        rtc_clock_mono_ms() + RLY_TO_STEP_MS);
    if (n >= 0 && !memcmp(tag, "NAK_", 4)) {
        msg[n] = '\0';
        snprintf(why, sizeof why, "the new process refused: %s", (char *)msg);
        takeover_failed(ap, why);
        return;
    }
    if (n != 2 || memcmp(tag, "HELO", 4) || (msg[0] << 8 | msg[1]) != RLY_TO_VERSION) {
        snprintf(why, sizeof why, "no valid HELO from the new process (%s)",
                 n < 0 ? strerror((int)-n) : "unexpected message or version");
        takeover_failed(ap, why);
        return;
    }
    if (ap->draining) { /* SIGTERM came while the child started: stopping wins */
        takeover_failed(ap, "this relay started draining");
        return;
    }
    t0 = rtc_clock_mono_ms();
    for (size_t i = 0; i < ap->n_workers; i++)
        rly_worker_post_pause(ap->workers[i]);
    for (size_t i = 0; i < ap->n_workers; i++)
        if (!rly_worker_wait_paused(ap->workers[i], t0 + RLY_TO_STEP_MS)) {
            snprintf(why, sizeof why, "worker %zu did not pause", i);
            goto out_fail;
        }
    if ((rc = export_state(ap, &fds, &blob, &blen))) {
        snprintf(why, sizeof why, "cannot serialize the state (%d)", rc);
        goto out_fail;
    }
    /* one budget for the whole pause, not one per step: every ms of it
     * fills the socket buffers of every call */
    if ((rc = send_state(ap->to_sock, &fds, blob, blen, t0 + RLY_TO_STEP_MS))) {
        if (!child_refused(ap, why, sizeof why))
            snprintf(why, sizeof why, "sending the state: %s", strerror(-rc));
        goto out_fail;
    }
    n = rly_to_msg_recv(ap->to_sock, tag, msg, sizeof msg - 1, NULL, 0, &nf,
                        t0 + RLY_TO_STEP_MS);
    if (n < 0 || memcmp(tag, "ACK_", 4)) {
        if (n >= 0 && !memcmp(tag, "NAK_", 4)) {
            msg[n] = '\0';
            snprintf(why, sizeof why, "the new process refused: %s", (char *)msg);
        } else if (n == -ECONNRESET && child_refused(ap, why, sizeof why)) {
            /* why says it */
        } else {
            snprintf(why, sizeof why, "no ACK from the new process (%s)",
                     n < 0 ? strerror((int)-n) : "unexpected message");
        }
        goto out_fail;
    }
    /* A SIGTERM/SIGINT that came during the exchange waits in the signalfd:
     * the operator asked this relay to stop, so it must not hand its calls
     * to a process that would then run on unasked. */
    if (stop_pending()) {
        snprintf(why, sizeof why, "a stop signal arrived during the takeover");
        goto out_fail;
    }
    /* the point of no return: once GO is out the child reads the sockets */
    if ((rc = send_budget(ap->to_sock, t0 + RLY_TO_STEP_MS)) ||
        (rc = rly_to_msg_send(ap->to_sock, "GO__", NULL, 0, NULL, 0))) {
        snprintf(why, sizeof why, "sending GO: %s", strerror(-rc));
        goto out_fail;
    }
    /* Name the new main process to systemd from the current one, before
     * this process can exit: the child says it too, but if this process
     * (with nothing left to drain) exited first, systemd would see its main
     * process gone and stop the unit, new process included. */
    {
        char note[40];
        snprintf(note, sizeof note, "MAINPID=%d", (int)ap->to_pid);
        notify_systemd(note);
    }
    /* A SIGHUP that came during the exchange (systemctl reload: kill -HUP
     * $MAINPID, still this process) is meant for whoever serves: the new
     * process may have read the config before the edit it announces. */
    if (pending(SIGHUP))
        kill(ap->to_pid, SIGHUP);
    for (size_t i = 0; i < ap->n_workers; i++)
        moved += rly_worker_handed_over(ap->workers[i]);
    resume_all(ap);
    atomic_fetch_add(&ap->reloads.takeover_ok, 1);
    ap->handed_over = ap->draining = true;
    ap->drain_deadline_ms = rtc_clock_mono_ms() + (uint64_t)ap->s.drain_seconds * 1000u;
    RTC_LOG(RTC_LOG_INFO, NULL,
            "takeover: pid %d took %zu UDP allocation(s) and %u socket(s), %zu byte(s) of "
            "state, workers paused %llu ms; draining %zu TCP/TLS allocation(s) for up to %lld s",
            (int)ap->to_pid, moved, fds.n, blen,
            (unsigned long long)(rtc_clock_mono_ms() - t0), rly_quota_total(ap->quota),
            (long long)ap->s.drain_seconds);
    close(ap->to_sock);
    ap->to_sock = -1;
    ap->to_pid = 0;
    free(fds.v);
    explicit_bzero(blob, blen); /* it holds the nonce key */
    free(blob);
    return;
out_fail:
    resume_all(ap);
    free(fds.v);
    if (blob)
        explicit_bzero(blob, blen);
    free(blob);
    takeover_failed(ap, why);
}

/* ---- live takeover, child side ---- */

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Receive SIZE, the descriptors and the blob. 0 or RTC_EMSG with err; the
 * descriptors received are in *fds_out (n in *n_out) either way. */
static int recv_state(int sock, int **fds_out, uint32_t *n_out, uint8_t **blob_out,
                      size_t *blen_out, char *err, size_t errlen)
{
    char tag[4];
    uint8_t hdr[8];
    size_t nf;
    long n;
    uint32_t blen, nfds, got = 0;
    size_t off = 0;
    /* the parent pauses its workers before it answers: two steps */
    uint64_t deadline = rtc_clock_mono_ms() + 2 * RLY_TO_STEP_MS;

    *fds_out = NULL;
    *n_out = 0;
    *blob_out = NULL;
    n = rly_to_msg_recv(sock, tag, hdr, sizeof hdr, NULL, 0, &nf, deadline);
    if (n != 8 || memcmp(tag, "SIZE", 4)) {
        snprintf(err, errlen, "takeover: no state from the running relay (%s)",
                 n < 0 ? strerror((int)-n) : "unexpected message");
        return RTC_EMSG;
    }
    blen = be32(hdr);
    nfds = be32(hdr + 4);
    if (blen > RLY_TO_MAX_BLOB || nfds > RLY_TO_MAX_FDS) {
        snprintf(err, errlen, "takeover: state of %u bytes, %u descriptors is out of range",
                 blen, nfds);
        return RTC_EMSG;
    }
    *fds_out = malloc((nfds + 1) * sizeof(int));
    *blob_out = malloc(blen + 1);
    *blen_out = *blob_out ? blen : 0; /* also on failure: the caller wipes it */
    if (!*fds_out || !*blob_out) {
        snprintf(err, errlen, "takeover: out of memory");
        return RTC_EMSG;
    }
    while (got < nfds) {
        uint8_t cnt[4];
        size_t want = nfds - got > RLY_TO_FDS_PER_MSG ? RLY_TO_FDS_PER_MSG : nfds - got;
        n = rly_to_msg_recv(sock, tag, cnt, sizeof cnt, *fds_out + got, want, &nf, deadline);
        if (n < 0) {
            snprintf(err, errlen, "takeover: receiving descriptors: %s", strerror((int)-n));
            return RTC_EMSG;
        }
        got += (uint32_t)nf;
        *n_out = got;
        if (n != 4 || memcmp(tag, "FDS_", 4) || be32(cnt) != nf || nf == 0) {
            snprintf(err, errlen, "takeover: bad descriptor message");
            return RTC_EMSG;
        }
    }
    while (off < blen) {
        size_t want = blen - off > RLY_TO_CHUNK ? RLY_TO_CHUNK : blen - off;
        n = rly_to_msg_recv(sock, tag, *blob_out + off, want, NULL, 0, &nf, deadline);
        if (n <= 0 || memcmp(tag, "BLOB", 4)) {
            snprintf(err, errlen, "takeover: receiving the state: %s",
                     n < 0 ? strerror((int)-n) : "unexpected message");
            return RTC_EMSG;
        }
        off += (size_t)n;
    }
    return 0;
}

/* The running relay's layout must be ours: the same sockets, and one
 * worker per SO_REUSEPORT socket so each client stays on its worker. */
static int check_layout(const app *ap, const rly_to_state *st, char *err, size_t errlen)
{
    size_t nw = worker_count(&ap->s);
    char a[RTC_ADDR_STRLEN], b[RTC_ADDR_STRLEN];

    if (st->n_workers != nw) {
        snprintf(err, errlen,
                 "threads: the running relay has %u worker(s), these settings make %zu",
                 st->n_workers, nw);
        return RTC_EMSG;
    }
    if (st->n_listen != ap->s.listen.n || st->n_tls != ap->s.tls_listen.n) {
        snprintf(err, errlen,
                 "listen/tls-listen: the running relay has %u/%u listener(s), these settings "
                 "%zu/%zu",
                 st->n_listen, st->n_tls, ap->s.listen.n, ap->s.tls_listen.n);
        return RTC_EMSG;
    }
    for (uint32_t i = 0; i < st->n_listen + st->n_tls; i++) {
        const rtc_addr *theirs = i < st->n_listen ? &st->listen[i] : &st->tls[i - st->n_listen];
        const rtc_addr *ours =
            i < st->n_listen ? &ap->listen[i] : &ap->tls_listen[i - st->n_listen];
        if (!rtc_addr_equal(theirs, ours)) {
            rtc_addr_format(theirs, true, a);
            rtc_addr_format(ours, true, b);
            snprintf(err, errlen, "%s: the running relay listens on %s, these settings on %s",
                     i < st->n_listen ? "listen" : "tls-listen", a, b);
            return RTC_EMSG;
        }
    }
    if (!rtc_addr_equal(&st->metrics, &ap->metrics)) {
        rtc_addr_format(&st->metrics, true, a);
        rtc_addr_format(&ap->metrics, true, b);
        snprintf(err, errlen, "metrics-listen: the running relay has %s, these settings %s", a,
                 b);
        return RTC_EMSG;
    }
    return 0;
}

static int create_workers(app *ap, const rly_to_state *st, int *fds, char *err, size_t errlen);

/* Take the running relay's sockets and UDP allocations over (we were
 * started by its SIGUSR2). 0, or RTC_EMSG with err (the parent is told why
 * and keeps serving). */
static void *worker_main(void *arg);

/* Wait for the started worker threads; 1 if one failed, else 0. */
static int join_threads(app *ap)
{
    int status = 0;
    for (size_t i = 0; i < ap->n_started; i++) {
        void *wrc = NULL;
        pthread_join(ap->threads[i], &wrc);
        if (wrc)
            status = 1;
    }
    free(ap->threads);
    ap->threads = NULL;
    ap->n_started = 0;
    return status;
}

/* One thread per worker. 0, or -1 with those that started stopped and
 * joined (a worker told to stop while paused exits without reading). */
static int start_threads(app *ap)
{
    if (!(ap->threads = calloc(ap->n_workers, sizeof *ap->threads)))
        return -1;
    for (ap->n_started = 0; ap->n_started < ap->n_workers; ap->n_started++)
        if (pthread_create(&ap->threads[ap->n_started], NULL, worker_main,
                           ap->workers[ap->n_started]))
            break;
    if (ap->n_started == ap->n_workers)
        return 0;
    RTC_LOG(RTC_LOG_ERROR, NULL, "cannot start worker thread %zu", ap->n_started);
    stop_all(ap);
    resume_all(ap);
    join_threads(ap);
    return -1;
}

static int takeover_adopt(app *ap, char *err, size_t errlen)
{
    uint8_t ver[2] = {RLY_TO_VERSION >> 8, RLY_TO_VERSION & 0xff};
    int *fds = NULL, rc = RTC_EMSG;
    uint32_t n_fds = 0;
    uint8_t *blob = NULL;
    size_t blen = 0, moved = 0, nf;
    rly_to_state st;
    bool parsed = false;
    char tag[4], dummy[8];
    long n;
    uint64_t t0 = rtc_clock_mono_ms();

    if ((rc = rly_to_msg_send(ap->adopt_sock, "HELO", ver, 2, NULL, 0))) {
        snprintf(err, errlen, "takeover: cannot reach the running relay: %s", strerror(-rc));
        rc = RTC_EMSG;
        goto out;
    }
    rc = RTC_EMSG;
    if (recv_state(ap->adopt_sock, &fds, &n_fds, &blob, &blen, err, errlen) ||
        rly_to_parse(blob, blen, n_fds, rtc_clock_mono_ms(), &st, err, errlen))
        goto out;
    parsed = true;
    if (check_layout(ap, &st, err, errlen))
        goto out;
    memcpy(ap->nonce_key, st.nonce_key, sizeof ap->nonce_key);
    atomic_store(&ap->reloads.takeover_ok, st.takeovers_ok + 1);
    atomic_store(&ap->reloads.takeover_failed, st.takeovers_failed);
    if (create_workers(ap, &st, fds, err, errlen))
        goto out;
    for (size_t i = 0; i < ap->n_workers; i++) {
        if (rly_worker_adopt(ap->workers[i], &st.w[i], fds, rtc_clock_mono_ms(), err, errlen))
            goto out;
        moved += st.w[i].n_allocs;
        /* the worker's table has them now: do not hold two copies */
        free(st.w[i].allocs);
        st.w[i].allocs = NULL;
    }
    /* The threads start now, parked before their first read: a thread
     * that cannot start (TasksMax, memory) must fail the takeover while
     * the old process still serves, not after GO with every call moved. */
    for (size_t i = 0; i < ap->n_workers; i++)
        rly_worker_post_pause(ap->workers[i]);
    if (start_threads(ap)) {
        snprintf(err, errlen, "takeover: cannot start the worker threads");
        goto out;
    }
    if ((rc = rly_to_msg_send(ap->adopt_sock, "ACK_", NULL, 0, NULL, 0))) {
        snprintf(err, errlen, "takeover: ACK: %s", strerror(-rc));
        rc = RTC_EMSG;
        goto out;
    }
    rc = RTC_EMSG;
    n = rly_to_msg_recv(ap->adopt_sock, tag, dummy, sizeof dummy, NULL, 0, &nf,
                        rtc_clock_mono_ms() + RLY_TO_STEP_MS);
    if (n != 0 || memcmp(tag, "GO__", 4)) {
        /* the parent gave up (timeout): it serves on; we must not */
        snprintf(err, errlen, "takeover: the running relay did not confirm (%s)",
                 n < 0 ? strerror((int)-n) : "unexpected message");
        goto out;
    }
    resume_all(ap); /* GO: ours from now on */
    RTC_LOG(RTC_LOG_INFO, NULL,
            "pid %d took over from pid %d: %zu UDP allocation(s), %u socket(s), %zu byte(s) of state "
            "in %llu ms",
            (int)getpid(), (int)getppid(), moved, n_fds, blen,
            (unsigned long long)(rtc_clock_mono_ms() - t0));
    rc = 0;
out:
    if (rc) {
        /* tell the parent why, so its log says it; it resumes */
        rly_to_msg_send(ap->adopt_sock, "NAK_", err, strlen(err), NULL, 0);
        if (ap->threads) { /* parked: stopped before they read anything */
            stop_all(ap);
            resume_all(ap);
            join_threads(ap);
        }
    }
    for (uint32_t i = 0; fds && i < n_fds; i++)
        if (fds[i] >= 0)
            close(fds[i]); /* not adopted (or failure): our copies only */
    free(fds);
    if (blob) /* it holds the nonce key */
        explicit_bzero(blob, blen);
    free(blob);
    if (parsed)
        rly_to_state_dispose(&st);
    close(ap->adopt_sock);
    ap->adopt_sock = -1;
    return rc;
}

static void on_signal(app *ap, int signo)
{
    switch (signo) {
    case SIGUSR2:
        takeover_start(ap);
        break;
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
        struct pollfd pfd[2] = {{.fd = sfd, .events = POLLIN},
                                {.fd = ap->to_sock, .events = POLLIN}};
        struct signalfd_siginfo si;
        size_t done = 0;

        if (poll(pfd, ap->to_sock >= 0 ? 2 : 1, 100) > 0) {
            if (pfd[0].revents)
                while (read(sfd, &si, sizeof si) == (ssize_t)sizeof si)
                    on_signal(ap, (int)si.ssi_signo);
            /* the HELO (or the end of a child that failed early) */
            if (ap->to_sock >= 0 && pfd[1].revents && pfd[1].fd == ap->to_sock)
                takeover_serve(ap);
        }
        if (ap->to_sock >= 0 && rtc_clock_mono_ms() >= ap->to_deadline_ms)
            takeover_failed(ap, "the new process did not start in time");
        reap_child(ap);
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
    sigaddset(&mask, SIGUSR2);
    sigprocmask(SIG_BLOCK, &mask, &ap->orig_mask);
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
static int create_workers(app *ap, const rly_to_state *st, int *fds, char *err, size_t errlen)
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
        if (st) { /* the running relay's sockets */
            wp.adopt = &st->w[i];
            wp.adopt_fds = fds;
            wp.adopt_metrics_fd = i == 0 ? st->metrics_fd : RLY_TO_NONE;
        }
        ap->workers[i] = rly_worker_new(&wp, err, errlen);
        if (!ap->workers[i])
            return RTC_EMSG;
        ap->n_workers = i + 1;
    }
    rtc_addr_format(&ap->relay_ip[0], false, r4);
    rtc_addr_format(&ap->relay_ip[1], false, r6);
    RTC_LOG(RTC_LOG_INFO, NULL,
            "%s: %zu worker(s), %zu listener(s) (first %s), %zu TLS, relay %s / %s ports "
            "%u-%u, metrics %s, realm %s, %zu static user(s), %zu REST secret(s)",
            st ? "taking over" : "started", n, ap->s.listen.n,
            ap->s.listen.n ? ap->s.listen.v[0] : "-", ap->s.tls_listen.n, r4,
            r6, ap->port_lo, ap->port_hi, ap->s.metrics_listen, ap->s.realm, ap->s.user.n,
            ap->s.auth_secret.n);
    return 0;
}

/* One thread per worker; the main thread supervises. Exit status. */
static int run_workers(app *ap)
{
    char note[64];
    int status;

    if (!ap->threads && start_threads(ap))
        return 1;
    /* under systemd (Type=notify): ready, and after a takeover the main
     * process of the unit from now on */
    snprintf(note, sizeof note, "MAINPID=%d\nREADY=1", (int)getpid());
    notify_systemd(note);
    status = supervise(ap, ap->sfd);
    if (join_threads(ap))
        status = 1;
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
    if (ap->to_sock >= 0)
        close(ap->to_sock);
    if (ap->adopt_sock >= 0)
        close(ap->adopt_sock);
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

/* The path a takeover executes: the one this binary was started by, made
 * absolute now (the working directory may be gone later) but with its
 * symbolic links kept. An upgrade usually swings a link (/usr/bin via
 * alternatives, /opt/tsunagu/current -> 1.3); /proc/self/exe has resolved
 * it already and would run the old version again. A bare name was found in
 * PATH, so it is looked up there; /proc/self/exe is the last resort. */
static void own_path(const char *argv0, char *out, size_t cap)
{
    ssize_t l;

    out[0] = '\0';
    if (argv0 && strchr(argv0, '/')) {
        char cwd[PATH_MAX];
        if (argv0[0] == '/')
            snprintf(out, cap, "%s", argv0);
        else if (getcwd(cwd, sizeof cwd) && strlen(cwd) + strlen(argv0) + 2 <= cap) {
            size_t cl = strlen(cwd);
            memcpy(out, cwd, cl);
            out[cl] = '/';
            memcpy(out + cl + 1, argv0, strlen(argv0) + 1);
        }
    } else if (argv0 && *argv0) {
        const char *path = getenv("PATH");
        while (path && *path) {
            const char *e = strchrnul(path, ':');
            if (e > path && (size_t)(e - path) + strlen(argv0) + 2 <= cap) {
                snprintf(out, cap, "%.*s/%s", (int)(e - path), path, argv0);
                if (out[0] == '/' && access(out, X_OK) == 0)
                    break;
            }
            out[0] = '\0';
            path = *e ? e + 1 : e;
        }
    }
    if (out[0] && access(out, X_OK) == 0)
        return;
    l = readlink("/proc/self/exe", out, cap - 1);
    out[l > 0 ? l : 0] = '\0';
}

/* The socketpair end a parent relay passed in RLY_TO_ENV, or -1. The
 * variable is removed so it does not reach a later child by mistake. */
static int take_adopt_sock(void)
{
    const char *v = getenv(RLY_TO_ENV);
    struct stat sb;
    char *end;
    long fd;

    if (!v)
        return -1;
    fd = strtol(v, &end, 10);
    unsetenv(RLY_TO_ENV);
    if (*end || fd < 3 || fd > INT_MAX || fstat((int)fd, &sb) || !S_ISSOCK(sb.st_mode)) {
        fprintf(stderr, "tsunagu-relay: %s does not name a socket: ignored\n", RLY_TO_ENV);
        return -1;
    }
    /* only the socketpair our parent relay made for us: a stray variable
     * must not make us talk the protocol on some other inherited socket
     * (a socket-activation descriptor, say) */
    {
        struct ucred cr;
        socklen_t cl = sizeof cr;
        int type = 0;
        socklen_t tl = sizeof type;
        if (getsockopt((int)fd, SOL_SOCKET, SO_TYPE, &type, &tl) || type != SOCK_SEQPACKET ||
            getsockopt((int)fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) || cr.pid != getppid()) {
            fprintf(stderr,
                    "tsunagu-relay: %s is not a takeover socket from the parent process: "
                    "ignored\n",
                    RLY_TO_ENV);
            return -1;
        }
    }
    fcntl((int)fd, F_SETFD, FD_CLOEXEC);
    return (int)fd;
}

int rly_main(int argc, char **argv)
{
    app ap;
    char err[512];
    int rc, status;
    bool adopting;

    memset(&ap, 0, sizeof ap);
    ap.argc = argc;
    ap.argv = argv;
    ap.sfd = -1;
    ap.to_sock = -1;
    ap.adopt_sock = take_adopt_sock();
    own_path(argc > 0 ? argv[0] : NULL, ap.exe, sizeof ap.exe);
    rc = rtc_conf_load(rly_conf_specs, &ap.s, argc, argv, err, sizeof err);
    if (rc == RTC_CONF_HELP) {
        printf("usage: tsunagu-relay [--config FILE] [flags]\n"
               "TURN relay (RFC 8656, RFC 8489, RFC 6156). Every flag is also a config key.\n");
        rtc_conf_usage(rly_conf_specs, stdout);
        return 0;
    }
    if (rc) {
        fprintf(stderr, "tsunagu-relay: %s\n", err);
        if (ap.adopt_sock >= 0) {
            rly_to_msg_send(ap.adopt_sock, "NAK_", err, strlen(err), NULL, 0);
            close(ap.adopt_sock);
        }
        return 2;
    }
    adopting = ap.adopt_sock >= 0; /* takeover_adopt closes it */
    if (prepare(&ap, err, sizeof err) || setup_signals(&ap, err, sizeof err) ||
        (adopting ? takeover_adopt(&ap, err, sizeof err)
                  : create_workers(&ap, NULL, NULL, err, sizeof err))) {
        fprintf(stderr, "tsunagu-relay: %s%s\n", adopting ? "takeover refused: " : "", err);
        if (ap.adopt_sock >= 0)
            rly_to_msg_send(ap.adopt_sock, "NAK_", err, strlen(err), NULL, 0);
        status = 2;
    } else {
        status = run_workers(&ap);
    }
    app_dispose(&ap);
    return status;
}
