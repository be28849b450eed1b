/* sig_conf.c - the tsunagu-signal settings table (DESIGN.md's signaling
 * flags plus operational ones) and its cross-checks. Shared by the server and
 * the sample-file test. */
#include "sig_conf.h"

#include <stddef.h>
#include <stdio.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>

#include "rtc_addr.h"
#include "rtc_err.h"
#include "rtc_log.h"
#include "rtc_tls.h"
#include "sig_admit.h"
#include "sig_fleet.h"
#include "sig_token.h"

#define OFF(f) offsetof(sig_conf, f)

static int check_url(const char *v, char *err, size_t errlen)
{
    if (strncmp(v, "turn:", 5) && strncmp(v, "turns:", 6) && strncmp(v, "stun:", 5)) {
        snprintf(err, errlen, "expected a turn:, turns: or stun: URL");
        return RTC_EMSG;
    }
    return 0;
}

static int check_secret(const char *v, char *err, size_t errlen)
{
    if (!*v) {
        snprintf(err, errlen, "must not be empty");
        return RTC_EMSG;
    }
    return 0;
}

static int copy(char *dst, size_t cap, const char *src, size_t n)
{
    if (n >= cap)
        return RTC_EMSG;
    memcpy(dst, src, n);
    dst[n] = '\0';
    return 0;
}

/* A decimal number in [lo, hi] made of exactly n bytes at s. */
static int number(const char *s, size_t n, long lo, long hi, int *out)
{
    long v = 0;
    if (n == 0 || n > 9)
        return RTC_EMSG;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return RTC_EMSG;
        v = v * 10 + (s[i] - '0');
    }
    if (v < lo || v > hi)
        return RTC_EMSG;
    *out = (int)v;
    return 0;
}

int sig_redis_url_parse(const char *s, sig_redis_url *u, char *err, size_t errlen)
{
    const char *p, *end, *at, *slash, *hostend, *colon;

    memset(u, 0, sizeof *u);
    u->port = 6379;
    if (!strncmp(s, "unix://", 7)) {
        const char *q = strchr(s + 7, '?');
        size_t n = q ? (size_t)(q - (s + 7)) : strlen(s + 7);
        if (n == 0 || s[7] != '/' || copy(u->path, sizeof u->path, s + 7, n)) {
            snprintf(err, errlen, "unix://PATH needs an absolute socket path under 108 bytes");
            return RTC_EMSG;
        }
        if (q && (strncmp(q, "?db=", 4) || number(q + 4, strlen(q + 4), 0, 1000000, &u->db))) {
            snprintf(err, errlen, "unix://PATH takes only ?db=N (a number)");
            return RTC_EMSG;
        }
        return 0;
    }
    if (strncmp(s, "redis://", 8)) {
        snprintf(err, errlen, "expected redis://[[USER]:PASSWORD@]HOST[:PORT][/DB] or "
                              "unix:///PATH[?db=N]");
        return RTC_EMSG;
    }
    p = s + 8;
    end = p + strlen(p);
    slash = strchr(p, '/');
    hostend = slash ? slash : end;
    /* the last '@' before the path: a password may contain '@' */
    at = NULL;
    for (const char *q = p; q < hostend; q++)
        if (*q == '@')
            at = q;
    if (at) {
        colon = memchr(p, ':', (size_t)(at - p));
        if (!colon || copy(u->user, sizeof u->user, p, (size_t)(colon - p)) ||
            copy(u->pass, sizeof u->pass, colon + 1, (size_t)(at - colon - 1)) || !u->pass[0]) {
            snprintf(err, errlen, "credentials must be [USER]:PASSWORD@ (password 1-255 bytes)");
            memset(u, 0, sizeof *u);
            return RTC_EMSG;
        }
        p = at + 1;
    }
    if (*p == '[') {
        const char *rb = memchr(p, ']', (size_t)(hostend - p));
        if (!rb || copy(u->host, sizeof u->host, p + 1, (size_t)(rb - p - 1)) || !u->host[0]) {
            snprintf(err, errlen, "bad [IPv6] host");
            goto bad;
        }
        colon = rb + 1 < hostend ? rb + 1 : NULL;
        if (colon && *colon != ':') {
            snprintf(err, errlen, "junk after ]");
            goto bad;
        }
    } else {
        colon = memchr(p, ':', (size_t)(hostend - p));
        if (copy(u->host, sizeof u->host, p, (size_t)((colon ? colon : hostend) - p)) ||
            !u->host[0]) {
            snprintf(err, errlen, "missing host");
            goto bad;
        }
    }
    for (const char *q = u->host; *q; q++)
        if (*q <= ' ' || *q == '/' || *q == '?' || *q == '#' || (*q == ':' && p[0] != '[')) {
            snprintf(err, errlen, "bad character in host");
            goto bad;
        }
    if (colon && number(colon + 1, (size_t)(hostend - colon - 1), 1, 65535, &u->port)) {
        snprintf(err, errlen, "port must be 1-65535");
        goto bad;
    }
    if (slash && slash + 1 < end && number(slash + 1, (size_t)(end - slash - 1), 0, 1000000, &u->db)) {
        snprintf(err, errlen, "database must be a number after the /");
        goto bad;
    }
    return 0;
bad:
    memset(u, 0, sizeof *u);
    return RTC_EMSG;
}

void sig_redis_url_describe(const sig_redis_url *u, char *out, size_t outlen)
{
    if (u->path[0])
        snprintf(out, outlen, "unix://%s?db=%d", u->path, u->db);
    else if (strchr(u->host, ':'))
        snprintf(out, outlen, "redis://[%s]:%d/%d", u->host, u->port, u->db);
    else
        snprintf(out, outlen, "redis://%s:%d/%d", u->host, u->port, u->db);
}

static int check_redis(const char *v, char *err, size_t errlen)
{
    sig_redis_url u;
    int rc = sig_redis_url_parse(v, &u, err, errlen);
    memset(&u, 0, sizeof u); /* the password */
    return rc;
}

static int check_healthz(const char *v, char *err, size_t errlen);

static int check_relay(const char *v, char *err, size_t errlen)
{
    sig_fleet_report r;
    char hz[SIG_FLEET_HEALTHZ_MAX];
    if (sig_fleet_parse_static(v, &r, hz, err, errlen))
        return RTC_EMSG;
    return hz[0] ? check_healthz(hz, err, errlen) : 0;
}

static int check_canary(const char *v, char *err, size_t errlen)
{
    char g[SIG_FLEET_NAME_MAX];
    unsigned pct;
    return sig_fleet_parse_canary(v, g, sizeof g, &pct, err, errlen);
}

static int check_nonneg(const char *v, char *err, size_t errlen)
{
    char *e;
    double d = strtod(v, &e);
    if (!*v || *e || !(d >= 0 && d <= 1e6)) {
        snprintf(err, errlen, "expected a number >= 0");
        return RTC_EMSG;
    }
    return 0;
}

const rtc_conf_spec sig_conf_specs[] = {
    {"listen", RTC_CONF_STR, OFF(listen), 0, 0, "127.0.0.1:8080", "ADDR:PORT",
     "HTTP listener: /ws WebSocket, / demo page, /metrics, /healthz (an address of this "
     "host, or 0.0.0.0 / [::])", rtc_conf_check_local_hostport, RTC_CONF_RESTART},
    {"cert", RTC_CONF_STR, OFF(cert), 0, 0, NULL, "FILE", "TLS certificate (PEM): serve HTTPS/WSS",
     NULL, RTC_CONF_RESTART},
    {"key", RTC_CONF_STR, OFF(key), 0, 0, NULL, "FILE", "TLS private key (PEM)", NULL, 0},
    {"token-secret", RTC_CONF_LIST, OFF(token_secret), 0, 0, NULL, "S",
     "require HS256 JWT access tokens on join (off: open rooms); repeat it (up to 4) to accept "
     "tokens signed with an old secret while rotating", check_secret, RTC_CONF_SECRET},
    {"turn-url", RTC_CONF_LIST, OFF(turn_url), 0, 0, NULL, "URL",
     "TURN/STUN URL handed out in joined.iceServers (turn:/turns: need --turn-secret)",
     check_url, 0},
    {"turn-secret", RTC_CONF_STR, OFF(turn_secret), 0, 0, NULL, "S",
     "TURN REST API secret shared with the relay (the relay's --auth-secret)", check_secret,
     RTC_CONF_SECRET},
    {"turn-ttl", RTC_CONF_INT, OFF(turn_ttl), 60, 30LL * 86400, "86400", "S",
     "lifetime of TURN credentials", NULL, 0},
    {"max-room-size", RTC_CONF_INT, OFF(max_room_size), 1, 10000, "16", "N",
     "members per room (room-full)", NULL, 0},
    {"max-rooms", RTC_CONF_INT, OFF(max_rooms), 1, 10000000, "10000", "N",
     "rooms per server (server-busy)", NULL, 0},
    {"max-message-bytes", RTC_CONF_INT, OFF(max_message_bytes), 256, 16LL << 20, "65536", "N",
     "largest client message (too-large)", NULL, 0},
    {"rate-limit", RTC_CONF_INT, OFF(rate_limit), 1, 1000000, "50", "MSGS/S",
     "messages per second per connection (rate-limited)", NULL, 0},
    {"resume-seconds", RTC_CONF_INT, OFF(resume_seconds), 0, 86400, "30", "S",
     "how long a dropped member's place is kept for resume (0: off)", NULL, 0},
    {"max-connections", RTC_CONF_INT, OFF(max_connections), 1, 10000000, "20000", "N",
     "open WebSocket connections; more are refused at the upgrade", NULL, 0},
    {"redis", RTC_CONF_STR, OFF(redis), 0, 0, NULL, "URL",
     "cluster mode: share rooms and route messages through Redis "
     "(redis://[[USER]:PASSWORD@]HOST[:PORT][/DB] or unix:///PATH[?db=N])",
     check_redis, RTC_CONF_SECRET | RTC_CONF_RESTART},
    {"redis-node-ttl", RTC_CONF_INT, OFF(redis_node_ttl), 2, 60, "5", "S",
     "cluster: a node silent this long is presumed dead; its members leave their rooms", NULL,
     RTC_CONF_RESTART},
    {"redis-queue", RTC_CONF_INT, OFF(redis_queue), 16, 1000000, "65536", "N",
     "cluster: operations waiting for Redis before new ones get server-busy", NULL,
     RTC_CONF_RESTART},
    {"redis-stream-len", RTC_CONF_INT, OFF(redis_stream_len), 100, 10000000, "10000", "N",
     "cluster: signals and broadcasts kept per room in Redis for a node that was away "
     "(trimmed to about this many)", NULL, RTC_CONF_RESTART},
    {"redis-stream-seconds", RTC_CONF_INT, OFF(redis_stream_seconds), 10, 86400, "120", "S",
     "cluster: ... and for at most about this long", NULL, RTC_CONF_RESTART},
    {"max-resumes-per-member-per-min", RTC_CONF_INT, OFF(max_resumes_per_member_per_min), 1,
     1000000, "20", "N",
     "cluster: resumes of one member on another node per minute; more get rate-limited", NULL,
     RTC_CONF_RESTART},
    {"drain-seconds", RTC_CONF_INT, OFF(drain_seconds), 0, 3600, "10", "S",
     "on SIGTERM: time members get before their connections close", NULL, 0},
    {"idle-timeout", RTC_CONF_INT, OFF(idle_timeout), 2, 3600, "60", "S",
     "close a connection silent this long (WebSocket ping at half of it)", NULL, 0},
    {"keepalive-batch-ms", RTC_CONF_INT, OFF(keepalive_batch_ms), 0, 60000, "0", "MS",
     "send the keepalive pings due within MS together, early (0: each at its deadline)", NULL,
     0},
    {"abuse-seconds", RTC_CONF_INT, OFF(abuse_seconds), 1, 3600, "3", "S",
     "close a connection that stays over the rate limit this long", NULL, 0},
    {"send-queue-messages", RTC_CONF_INT, OFF(send_queue_messages), 4, 1000000, "1024", "N",
     "per-connection send queue: messages before a slow reader is dropped", NULL, 0},
    {"send-queue-bytes", RTC_CONF_INT, OFF(send_queue_bytes), 4096, 1LL << 30, "1048576", "N",
     "per-connection send queue: bytes before a slow reader is dropped", NULL, 0},
    {"log-level", RTC_CONF_STR, OFF(log_level), 0, 0, "info", "LEVEL",
     "error, warn, info or debug", rtc_conf_check_log_level, 0},
    {"log-format", RTC_CONF_STR, OFF(log_format), 0, 0, "text", "FMT", "text or json",
     rtc_conf_check_log_format, 0},
    {"allowed-origin", RTC_CONF_LIST, OFF(allowed_origin), 0, SIG_ADMIT_ORIGIN_MAX, NULL,
     "ORIGIN",
     "browser origin allowed to open WebSockets, e.g. https://app.example.com, or * "
     "(none set: any; set it in production)",
     sig_admit_origin_check, 0},
    {"max-connections-per-ip", RTC_CONF_INT, OFF(max_connections_per_ip), 0, 10000000, "2048",
     "N",
     "open WebSockets per client IPv4 address or IPv6 /64, joined or not (0: no cap; high: "
     "an office behind one NAT address is one address)", NULL, 0},
    {"max-unjoined-per-ip", RTC_CONF_INT, OFF(max_unjoined_per_ip), 0, 10000000, "64", "N",
     "open WebSockets per client address that have not joined a room (429 past it; 0: no cap)",
     NULL, 0},
    {"max-joins-per-ip-per-sec", RTC_CONF_INT, OFF(max_joins_per_ip_per_sec), 0, 10000000, "100",
     "N",
     "join and resume attempts per second per client address, burst N (rate-limited; 0: no "
     "limit)", NULL, 0},
    {"max-held-per-ip", RTC_CONF_INT, OFF(max_held_per_ip), 0, 10000000, "64", "N",
     "members kept for resume per client address; a drop past it is not kept (0: no cap)",
     NULL, 0},
    {"max-room-creates-per-ip-per-min", RTC_CONF_INT, OFF(max_room_creates_per_ip_per_min), 0,
     10000000, "120", "N",
     "new rooms a client address may create per minute, burst N (rate-limited; 0: no limit)",
     NULL, 0},
    {"admin-token", RTC_CONF_STR, OFF(admin_token), 0, 0, NULL, "T",
     "bearer token of the admin API (/admin/) and the status page (unset: admin API off; "
     "prefer admin-token-file: argv is visible to every local user)", check_secret,
     RTC_CONF_SECRET},
    {"admin-token-file", RTC_CONF_STR, OFF(admin_token_file), 0, 0, NULL, "FILE",
     "read the admin token from FILE's first line (mode 0600 or stricter; re-read on SIGHUP)",
     NULL, 0},
    {"relay-healthz", RTC_CONF_LIST, OFF(relay_healthz), 0, 0, NULL, "URL",
     "a relay's /healthz (http://IP:PORT/healthz, its metrics listener) for the status page; "
     "matched to a turn-url by its address", check_healthz, 0},
    {"relay", RTC_CONF_LIST, OFF(relay), 0, 0, NULL, "NAME=URL[,URL...]",
     "fleet, static pool: a relay rooms are placed on, with optional ,generation=G ,weight=W "
     ",healthz=http://IP:PORT/healthz (polled every second); repeatable (docs/fleet.md)",
     check_relay, RTC_CONF_RESTART},
    {"relay-registry", RTC_CONF_STR, OFF(relay_registry), 0, 0, NULL, "URL",
     "fleet: read the relays from this Redis registry (their --announce), and share canary "
     "shares through it", check_redis, RTC_CONF_SECRET | RTC_CONF_RESTART},
    {"relay-max-load", RTC_CONF_INT, OFF(relay_max_load), 0, 100000000, "0", "N",
     "fleet: a relay with this many allocations gets no new room (0: no cap)", NULL, 0},
    {"canary", RTC_CONF_LIST, OFF(canary), 0, SIG_FLEET_MAX_CANARY, NULL, "G=PERCENT",
     "fleet: share of new rooms for relay generation G (repeatable; the registry keeps "
     "runtime changes, see tsunagu-ctl canary)", check_canary, RTC_CONF_RESTART},
    {"canary-max-loss-delta", RTC_CONF_STR, OFF(canary_max_loss_delta), 0, 0, "3", "POINTS",
     "fleet: roll a canary back when its streams' mean loss exceeds the baseline's by more "
     "than this many percentage points", check_nonneg, 0},
    {"canary-max-jitter-delta", RTC_CONF_STR, OFF(canary_max_jitter_delta), 0, 0, "20", "MS",
     "fleet: ... or its mean jitter by more than this many milliseconds", check_nonneg, 0},
    {"canary-min-sample", RTC_CONF_INT, OFF(canary_min_sample), 1, 100000000, "20", "N",
     "fleet: finished RTP streams needed on each side within the window before judging", NULL,
     0},
    {"canary-window", RTC_CONF_INT, OFF(canary_window), 5, 590, "60", "S",
     "fleet: the sliding window the canary and baseline streams are compared over", NULL, 0},
    {"canary-hold", RTC_CONF_INT, OFF(canary_hold), 0, 3600, "10", "S",
     "fleet: how long the canary must stay worse before it is rolled back", NULL, 0},
    RTC_CONF_END,
};

/* "http://IP:PORT/PATH" -> addr, host text and path. */
int sig_rhealth_url_parse(const char *v, rtc_addr *addr, char *path, char *err, size_t errlen)
{
    const char *hp = v + 7, *slash;
    char hostport[SIG_RHEALTH_URL_MAX];
    size_t n;
    if (strncmp(v, "http://", 7) || strlen(v) >= SIG_RHEALTH_URL_MAX) {
        snprintf(err, errlen, "expected http://IP:PORT/PATH (under %d bytes)", SIG_RHEALTH_URL_MAX);
        return RTC_EMSG;
    }
    slash = strchr(hp, '/');
    n = slash ? (size_t)(slash - hp) : strlen(hp);
    memcpy(hostport, hp, n);
    hostport[n] = '\0';
    if (rtc_addr_parse_hostport(hostport, addr) || addr->port == 0) {
        snprintf(err, errlen, "'%s': the host must be an IP address with a port (no DNS lookups "
                              "from the event loop), e.g. http://198.51.100.7:9641/healthz",
                 hostport);
        return RTC_EMSG;
    }
    snprintf(path, SIG_RHEALTH_URL_MAX, "%s", slash ? slash : "/healthz");
    for (const char *p = path; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f) {
            snprintf(err, errlen, "the path must not hold spaces or control characters");
            return RTC_EMSG;
        }
    return 0;
}

static int check_healthz(const char *v, char *err, size_t errlen)
{
    rtc_addr a;
    char path[SIG_RHEALTH_URL_MAX];
    return sig_rhealth_url_parse(v, &a, path, err, errlen);
}

#define ADMIN_TOKEN_MAX 4096

/* --admin-token-file: its first line, trailing whitespace cut, into
 * out->admin_token. A file others can read is refused: the token is as good
 * as a root shell on the rooms. 0 or RTC_EMSG. */
static int load_admin_token(sig_conf *out, char *err, size_t errlen)
{
    const char *path = out->admin_token_file;
    char buf[ADMIN_TOKEN_MAX + 2];
    struct stat st;
    size_t n;
    FILE *f;
    if (out->admin_token) {
        snprintf(err, errlen, "admin-token and admin-token-file: give one, not both");
        return RTC_EMSG;
    }
    if (!(f = fopen(path, "r"))) {
        snprintf(err, errlen, "admin-token-file: cannot open %s", path);
        return RTC_EMSG;
    }
    if (fstat(fileno(f), &st) || !S_ISREG(st.st_mode) || (st.st_mode & 077)) {
        fclose(f);
        snprintf(err, errlen, "admin-token-file: %s must be a regular file readable by its "
                              "owner only (chmod 600)", path);
        return RTC_EMSG;
    }
    n = fgets(buf, sizeof buf, f) ? strlen(buf) : 0;
    fclose(f);
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ' ||
                 buf[n - 1] == '\t'))
        buf[--n] = '\0';
    if (n == 0 || n > ADMIN_TOKEN_MAX) {
        memset(buf, 0, sizeof buf);
        snprintf(err, errlen, "admin-token-file: %s: the first line must hold the token "
                              "(1 to %d bytes)", path, ADMIN_TOKEN_MAX);
        return RTC_EMSG;
    }
    out->admin_token = strdup(buf);
    memset(buf, 0, sizeof buf);
    if (!out->admin_token) {
        snprintf(err, errlen, "out of memory");
        return RTC_EMSG;
    }
    return 0;
}

int sig_conf_load(sig_conf *out, int argc, char *const argv[], char *err, size_t errlen)
{
    int rc;
    memset(out, 0, sizeof *out);
    rc = rtc_conf_load(sig_conf_specs, out, argc, argv, err, errlen);
    if (rc)
        return rc;
    if (!out->cert != !out->key) {
        snprintf(err, errlen, "cert and key: give both or neither");
        goto fail;
    }
    if (out->token_secret.n > SIG_TOKEN_SECRETS) {
        snprintf(err, errlen, "token-secret: at most %d secrets (one in use, the others being "
                              "rotated out)", SIG_TOKEN_SECRETS);
        goto fail;
    }
    if ((out->relay.n || out->relay_registry) && !out->turn_secret) {
        snprintf(err, errlen, "relay / relay-registry: need turn-secret to mint the relays' "
                              "credentials");
        goto fail;
    }
    if (out->turn_secret && out->turn_url.n == 0 && !out->relay.n && !out->relay_registry) {
        snprintf(err, errlen, "turn-secret: set but no turn-url to hand it out with");
        goto fail;
    }
    /* a TURN server without username/credential in iceServers makes
     * RTCPeerConnection throw (InvalidAccessError): no call could start */
    for (size_t i = 0; !out->turn_secret && i < out->turn_url.n; i++)
        if (strncmp(out->turn_url.v[i], "stun:", 5)) {
            snprintf(err, errlen, "turn-url: '%s' needs --turn-secret to mint credentials "
                     "(browsers refuse a TURN server without username and credential)",
                     out->turn_url.v[i]);
            goto fail;
        }
    if (out->relay.n && out->relay_registry) {
        snprintf(err, errlen, "relay and relay-registry: a static pool or the registry, not both");
        goto fail;
    }
    if (out->admin_token_file && load_admin_token(out, err, errlen))
        goto fail;
    if (out->cert) {
        /* what lws would only report as "cannot listen": name the file */
        SSL_CTX *ctx = rtc_tls_server_new(out->cert, out->key, err, errlen);
        if (!ctx)
            goto fail;
        rtc_tls_ctx_free(ctx);
    }
    return 0;
fail:
    sig_conf_dispose(out);
    return RTC_EMSG;
}

void sig_conf_dispose(sig_conf *c) { rtc_conf_dispose(sig_conf_specs, c); }

