/* rly_settings.c - the settings table and settings -> rly_cfg (see
 * rly_settings.h). */
#include "rly_settings.h"
#include "rly_announce.h"

#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rtc_err.h"
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

/* --external-ip PUBLIC[/PRIVATE] (coturn's spelling): PRIVATE, when given,
 * is the relay address whose allocations PUBLIC is advertised for; both of
 * one family. pub/priv may be NULL; priv->family is 0 without PRIVATE. */
static int parse_external(const char *v, rtc_addr *pub, rtc_addr *priv, char *err,
                          size_t errlen)
{
    char buf[2 * RTC_ADDR_STRLEN];
    const char *slash = strchr(v, '/');
    rtc_addr p, q;
    int rc;

    memset(&q, 0, sizeof q);
    if (strlen(v) >= sizeof buf)
        goto bad;
    memcpy(buf, v, strlen(v) + 1);
    if (slash)
        buf[slash - v] = '\0';
    if (rtc_addr_parse_ip(buf, &p) || (slash && rtc_addr_parse_ip(slash + 1, &q)))
        goto bad;
    if (slash && p.family != q.family) {
        snprintf(err, errlen, "PUBLIC and PRIVATE must be of one family");
        return RTC_EMSG;
    }
    if (rtc_addr_is_any(&p) || (slash && rtc_addr_is_any(&q))) {
        snprintf(err, errlen, "a wildcard cannot be advertised or relayed on");
        return RTC_EMSG;
    }
    /* the relay binds its relayed sockets to PRIVATE (rly_settings_base) */
    if (slash && (rc = rtc_addr_check_local(&q))) {
        char why[128];
        rtc_conf_local_reason(rc, why, sizeof why);
        snprintf(err, errlen, "PRIVATE %s: %s", slash + 1, why);
        return RTC_EMSG;
    }
    if (pub)
        *pub = p;
    if (priv)
        *priv = q;
    return 0;
bad:
    snprintf(err, errlen, "expected IP or PUBLIC/PRIVATE (coturn's form), IPv4 or IPv6");
    return RTC_EMSG;
}

static int check_external(const char *v, char *err, size_t errlen)
{
    return parse_external(v, NULL, NULL, err, errlen);
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

/* coturn's allocation-default-address-family values. */
static int check_family(const char *v, char *err, size_t errlen)
{
    if (strcmp(v, "ipv4") && strcmp(v, "ipv6") && strcmp(v, "keep")) {
        snprintf(err, errlen, "expected ipv4, ipv6 or keep");
        return RTC_EMSG;
    }
    return 0;
}

/* A unix socket path: the control socket is made under PATH.<pid>.new and
 * renamed over PATH, and both must fit sun_path (108 bytes with the NUL). */
static int check_sock_path(const char *v, char *err, size_t errlen)
{
    if (!*v || strlen(v) > RLY_CTL_PATH_MAX) {
        snprintf(err, errlen, "expected a path of 1-%d bytes (a unix socket)", RLY_CTL_PATH_MAX);
        return RTC_EMSG;
    }
    return 0;
}

/* RTC_CONF_RESTART: the listeners, the relay addresses and ports the
 * relayed sockets are bound to, the admin listener and the worker count are
 * fixed at start-up; a reload keeps their running values
 * (rly_settings_keep_fixed). */
#define OFF(f) offsetof(rly_settings, f)
#define I64MAX 4000000000LL

static int announce_check_url(const char *v, char *err, size_t errlen)
{
    return rly_announce_check_url(v, err, errlen);
}

static int announce_check_field(const char *v, char *err, size_t errlen)
{
    return rly_announce_check_field(v, err, errlen);
}

const rtc_conf_spec rly_conf_specs[] = {
    {"listen", RTC_CONF_LIST, OFF(listen), 0, 0, "0.0.0.0:3478", "ADDR:PORT",
     "UDP and TCP listener (an address of this host, or 0.0.0.0 / [::])",
     rtc_conf_check_local_hostport, RTC_CONF_RESTART},
    {"tls-listen", RTC_CONF_LIST, OFF(tls_listen), 0, 0, NULL, "ADDR:PORT",
     "TURN over TLS listener (needs --cert and --key)", rtc_conf_check_local_hostport,
     RTC_CONF_RESTART},
    {"cert", RTC_CONF_STR, OFF(cert), 0, 0, NULL, "FILE", "TLS certificate chain (PEM)", NULL,
     0},
    {"key", RTC_CONF_STR, OFF(key), 0, 0, NULL, "FILE", "TLS private key (PEM)", NULL, 0},
    {"ktls", RTC_CONF_BOOL, OFF(ktls), 0, 0, "false", NULL,
     "TLS records in the kernel after the handshake (SSL_OP_ENABLE_KTLS) when its tls module "
     "allows; user-space records otherwise (a log line says which)", NULL, 0},
    {"relay-ip", RTC_CONF_LIST, OFF(relay_ip), 0, 0, NULL, "IP",
     "address of this host relayed sockets bind to, one per family (default: the PRIVATE of "
     "--external-ip PUBLIC/PRIVATE, else the listen address, or an interface address when "
     "listening on a wildcard)",
     rtc_conf_check_local_ip, RTC_CONF_RESTART},
    {"external-ip", RTC_CONF_LIST, OFF(external_ip), 0, 0, NULL, "IP[/PRIVATE]",
     "address advertised in XOR-RELAYED-ADDRESS behind a 1:1 NAT, one per family; "
     "PUBLIC/PRIVATE (coturn's form) also names the relay address it stands for",
     check_external, 0},
    {"relay-ports", RTC_CONF_STR, OFF(relay_ports), 0, 0, "49152-65535", "LO-HI",
     "relayed port range", check_ports, RTC_CONF_RESTART},
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
    {"max-allocations-per-user", RTC_CONF_INT, OFF(max_allocations_per_user), 0, 100000000,
     "0", "N",
     "allocation quota per username, static and REST (486 when reached; 0: no cap, so one "
     "static user handed to every client is not a cap on the deployment)", NULL, 0},
    {"max-allocations-per-rest-id", RTC_CONF_INT, OFF(max_allocations_per_rest_id), 0,
     100000000, "4096", "N",
     "allocation quota per REST credential ID (the ID of EXPIRY:ID: one token sub, or one "
     "client address in tsunagu-signal's open mode; 486 when reached; 0: no cap)", NULL, 0},
    {"max-lifetime", RTC_CONF_INT, OFF(max_lifetime), 1, 86400 * 7, "3600", "S",
     "longest allocation lifetime granted", NULL, 0},
    {"default-lifetime", RTC_CONF_INT, OFF(default_lifetime), 1, 86400 * 7, "600", "S",
     "allocation lifetime when none is asked (and the minimum granted)", NULL, 0},
    {"bandwidth-per-allocation", RTC_CONF_INT, OFF(bandwidth), 0, I64MAX, "0", "BYTES/S",
     "cap per allocation, both directions together, 0 = none", NULL, 0},
    {"threads", RTC_CONF_INT, OFF(threads), 0, 1024, "0", "N",
     "worker threads, 0 = number of cores", NULL, RTC_CONF_RESTART},
    {"metrics-listen", RTC_CONF_STR, OFF(metrics_listen), 0, 0, "127.0.0.1:9641", "ADDR:PORT",
     "Prometheus /metrics and /healthz", rtc_conf_check_hostport, RTC_CONF_RESTART},
    {"admin-token", RTC_CONF_STR, OFF(admin_token), 0, 0, NULL, "TOKEN",
     "turns on the admin API (/admin/ on metrics-listen) for requests with "
     "'Authorization: Bearer TOKEN'; unset = off (404)", NULL, RTC_CONF_RESTART},
    {"log-level", RTC_CONF_STR, OFF(log_level), 0, 0, "info", "LEVEL",
     "error, warn, info or debug", rtc_conf_check_log_level, 0},
    {"log-format", RTC_CONF_STR, OFF(log_format), 0, 0, "text", "FMT", "text or json",
     rtc_conf_check_log_format, 0},
    {"allocation-default-address-family", RTC_CONF_STR, OFF(default_family), 0, 0, "ipv4",
     "F",
     "relayed address family of an Allocate without REQUESTED-ADDRESS-FAMILY: ipv4 "
     "(RFC 8656 s.7.2), ipv6, or keep (the family the client reached the relay over)",
     check_family, 0},
    {"drain-seconds", RTC_CONF_INT, OFF(drain_seconds), 0, 86400, "30", "S",
     "on SIGTERM, how long existing allocations may keep relaying", NULL, 0},
    {"legacy-channels", RTC_CONF_BOOL, OFF(legacy_channels), 0, 0, "false", NULL,
     "ChannelBind also accepts 0x5000-0x7FFF (RFC 5766 clients such as turnutils_uclient)",
     NULL, 0},
    {"nonce-ttl", RTC_CONF_INT, OFF(nonce_ttl), 1, 86400, "600", "S",
     "lifetime of a NONCE (438 Stale Nonce after it)", NULL, 0},
    {"max-tcp-per-ip", RTC_CONF_INT, OFF(max_tcp_per_ip), 1, 1000000, "4096", "N",
     "TCP/TLS connections per client IPv4 address or IPv6 /64, with an allocation or not "
     "(more are closed at accept; an office behind one NAT address needs many)", NULL, 0},
    {"max-preauth-per-ip", RTC_CONF_INT, OFF(max_preauth_per_ip), 0, 1000000, "64", "N",
     "TCP/TLS connections per client IPv4 address or IPv6 /64 that have not made an "
     "allocation yet (more are closed at accept; 0: no cap but max-tcp-per-ip)", NULL, 0},
    {"tcp-auth-timeout", RTC_CONF_INT, OFF(tcp_auth_timeout), 1, 3600, "10", "S",
     "a TCP/TLS connection that has not made an allocation (TLS handshake included) within "
     "S seconds is closed", NULL, 0},
    {"self-check", RTC_CONF_BOOL, OFF(self_check), 0, 0, "false", NULL,
     "at start, run tsunagu-turncheck's checks against this relay over each transport it "
     "listens on (log lines and tsunagu_relay_self_check_* on /metrics; never stops it)",
     NULL, RTC_CONF_RESTART},
    {"max-tls-handshakes", RTC_CONF_INT, OFF(max_tls_handshakes), 0, 1000000, "4096", "N",
     "TLS handshakes in progress at once, all clients (more are closed at accept; 0: no cap)",
     NULL, 0},
    {"max-tls-handshakes-per-ip", RTC_CONF_INT, OFF(max_tls_handshakes_per_ip), 0, 1000000,
     "32", "N",
     "TLS handshakes in progress per client IPv4 address or IPv6 /64 (more are closed at "
     "accept; 0: no cap)", NULL, 0},
    {"control-socket", RTC_CONF_STR, OFF(control_socket), 0, 0, NULL, "PATH",
     "unix socket (mode 0600, this user or root only) a new relay started with "
     "--takeover-from PATH takes this one's listeners and UDP allocations over from",
     check_sock_path, RTC_CONF_RESTART},
    {"takeover-from", RTC_CONF_STR, OFF(takeover_from), 0, 0, NULL, "PATH",
     "at start, take the listeners and UDP allocations of the relay serving this "
     "control socket over (it then drains and exits); exit 2 if that fails",
     check_sock_path, RTC_CONF_RESTART},
    {"announce", RTC_CONF_STR, OFF(announce), 0, 0, NULL, "URL",
     "fleet registry: a heartbeat every second into this Redis "
     "(redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]) with the announce-url list, generation, "
     "load, draining flag and quality; expires after 3 missed beats (docs/fleet.md)",
     announce_check_url, RTC_CONF_SECRET | RTC_CONF_RESTART},
    {"announce-url", RTC_CONF_LIST, OFF(announce_url), 0, 0, NULL, "URL",
     "a turn:/turns:/stun: URL of this relay that signaling hands to clients (repeatable; "
     "needed with announce)", announce_check_field, RTC_CONF_RESTART},
    {"announce-name", RTC_CONF_STR, OFF(announce_name), 0, 0, NULL, "NAME",
     "this relay's name in the registry, unique in the fleet (default: the first "
     "announce-url)", announce_check_field, RTC_CONF_RESTART},
    {"generation", RTC_CONF_STR, OFF(generation), 0, 0, NULL, "G",
     "release generation announced for canary placement (default: the version)",
     announce_check_field, RTC_CONF_RESTART},
    RTC_CONF_END,
};

void rly_cfg_free(rly_cfg *c)
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
static int choose_relay_ips(const rly_settings *s, rtc_addr relay_ip[2], char *err,
                            size_t errlen)
{
    for (size_t i = 0; i < s->relay_ip.n; i++) {
        rtc_addr a;
        rtc_addr_parse_ip(s->relay_ip.v[i], &a);
        if (rtc_addr_is_any(&a)) {
            snprintf(err, errlen, "relay-ip: '%s' is a wildcard; give a real address",
                     s->relay_ip.v[i]);
            return RTC_EMSG;
        }
        if (!relay_ip[a.family == AF_INET6].family)
            relay_ip[a.family == AF_INET6] = a;
    }
    if (s->relay_ip.n)
        return 0;
    /* --external-ip PUBLIC/PRIVATE: PRIVATE is the relay address */
    for (size_t i = 0; i < s->external_ip.n; i++) {
        rtc_addr priv;
        if (!parse_external(s->external_ip.v[i], NULL, &priv, err, errlen) && priv.family &&
            !relay_ip[priv.family == AF_INET6].family)
            relay_ip[priv.family == AF_INET6] = priv;
    }
    for (size_t i = 0; i < s->listen.n; i++) {
        rtc_addr a;
        int f;
        rtc_addr_parse_hostport(s->listen.v[i], &a);
        f = a.family == AF_INET6;
        if (relay_ip[f].family)
            continue;
        a.port = 0;
        if (!rtc_addr_is_any(&a)) {
            relay_ip[f] = a;
        } else if (!pick_iface(a.family, &relay_ip[f]) && a.family == AF_INET) {
            rtc_addr_parse_ip("127.0.0.1", &relay_ip[f]);
            RTC_LOG(RTC_LOG_WARN, NULL,
                    "no non-loopback IPv4 interface: relaying on 127.0.0.1 (set --relay-ip)");
        }
    }
    if (!relay_ip[0].family && !relay_ip[1].family) {
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

/* The kernel's ephemeral port range (IPv6 shares it); false if unknown. */
static bool ephemeral_range(unsigned *lo, unsigned *hi)
{
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "re");
    bool ok = f && fscanf(f, "%u %u", lo, hi) == 2;
    if (f)
        fclose(f);
    return ok;
}

size_t rly_settings_warn(const rly_settings *s, const rly_cfg_base *b, bool ports)
{
    size_t n = 0;
    unsigned elo, ehi;

    for (size_t i = 0; i < s->external_ip.n; i++) {
        rtc_addr pub, priv;
        rtc_addr_scope sc, rsc;
        char r[RTC_ADDR_STRLEN];
        int f;
        if (parse_external(s->external_ip.v[i], &pub, &priv, r, sizeof r))
            continue; /* refused elsewhere */
        f = pub.family == AF_INET6;
        sc = rtc_addr_scope_of(&pub);
        if (sc == RTC_ADDR_PUBLIC)
            continue;
        rsc = b->relay_ip[f].family ? rtc_addr_scope_of(&b->relay_ip[f]) : RTC_ADDR_ANY;
        rtc_addr_format(&b->relay_ip[f], false, r);
        if (rsc == RTC_ADDR_PUBLIC)
            RTC_LOG(RTC_LOG_WARN, NULL,
                    "external-ip: %s is %s but relay-ip %s is public: clients get the %s "
                    "address instead of the public one the relay has (drop --external-ip)",
                    s->external_ip.v[i], rtc_addr_scope_name(sc), r, rtc_addr_scope_name(sc));
        else
            RTC_LOG(RTC_LOG_WARN, NULL,
                    "external-ip: %s is a %s address: clients outside %s cannot reach the "
                    "relayed addresses advertised with it (give the public address of the "
                    "1:1 NAT)",
                    s->external_ip.v[i], rtc_addr_scope_name(sc),
                    sc == RTC_ADDR_LOOPBACK ? "this host" : "its network");
        n++;
    }
    if (ports && ephemeral_range(&elo, &ehi) && b->port_lo <= ehi && elo <= b->port_hi) {
        RTC_LOG(RTC_LOG_WARN, NULL,
                "relay-ports: %u-%u overlaps the kernel's ephemeral port range %u-%u "
                "(net.ipv4.ip_local_port_range): ports this host's outgoing connections take "
                "cannot be relayed; move one of the ranges (conf/sysctl.d/90-tsunagu.conf)",
                b->port_lo, b->port_hi, elo, ehi);
        n++;
    }
    return n;
}

int rly_settings_base(const rly_settings *s, rly_cfg_base *b, char *err, size_t errlen)
{
    unsigned lo, hi;

    memset(b, 0, sizeof *b);
    sscanf(s->relay_ports, "%u-%u", &lo, &hi); /* validated by the table */
    b->port_lo = (uint16_t)lo;
    b->port_hi = (uint16_t)hi;
    return choose_relay_ips(s, b->relay_ip, err, errlen);
}

rly_cfg *rly_cfg_build(const rly_settings *s, const rly_cfg_base *b, char *err, size_t errlen)
{
    rly_cfg *c = calloc(1, sizeof *c);
    rtc_cidr *allow = NULL, *deny = NULL;
    rtc_addr own[4];
    size_t n_own = 0;
    rtc_peer_policy_params pp;

    if (!c)
        goto out_oom;
    if (!s->user.n && !s->auth_secret.n) {
        snprintf(err, errlen, "no credentials: set --user NAME:PASSWORD or --auth-secret S "
                              "(without either, every Allocate is refused)");
        goto out_free;
    }
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
        c->relay_ip[f] = b->relay_ip[f];
        c->advertise[f] = b->relay_ip[f];
        if (b->relay_ip[f].family)
            own[n_own++] = b->relay_ip[f];
    }
    for (size_t i = 0; i < s->external_ip.n; i++) {
        rtc_addr a, priv;
        int f;
        if (parse_external(s->external_ip.v[i], &a, &priv, err, errlen))
            goto out_free;
        f = a.family == AF_INET6;
        if (priv.family && !rtc_addr_ip_equal(&priv, &b->relay_ip[f])) {
            /* a reload cannot move the relayed sockets (--relay-ip is fixed) */
            char r[RTC_ADDR_STRLEN] = "none";
            if (b->relay_ip[f].family)
                rtc_addr_format(&b->relay_ip[f], false, r);
            snprintf(err, errlen, "external-ip: PRIVATE of '%s' is not the relay address of "
                     "its family (%s; see --relay-ip)", s->external_ip.v[i], r);
            goto out_free;
        }
        c->advertise[f] = a;
        if (n_own < 4)
            own[n_own++] = a;
    }
    pp = (rtc_peer_policy_params){.allow = allow, .n_allow = s->allow_peer.n, .deny = deny,
                                  .n_deny = s->deny_peer.n, .own = own, .n_own = n_own,
                                  .own_port_lo = b->port_lo, .own_port_hi = b->port_hi};
    c->policy = rtc_peer_policy_new(&pp);
    if (!c->policy)
        goto out_oom;
    c->lim.default_lifetime_s = (uint32_t)s->default_lifetime;
    c->lim.max_lifetime_s = (uint32_t)s->max_lifetime;
    c->lim.max_allocs = (uint64_t)s->max_allocations;
    c->lim.max_allocs_per_user = (uint64_t)s->max_allocations_per_user;
    c->lim.max_allocs_per_rest_id = (uint64_t)s->max_allocations_per_rest_id;
    c->lim.bandwidth = (uint64_t)s->bandwidth;
    c->lim.nonce_ttl_s = (uint32_t)s->nonce_ttl;
    c->lim.legacy_channels = s->legacy_channels;
    c->lim.max_tcp_per_ip = (uint32_t)s->max_tcp_per_ip;
    c->lim.max_preauth_per_ip = (uint32_t)s->max_preauth_per_ip;
    c->lim.tcp_auth_timeout_s = (uint32_t)s->tcp_auth_timeout;
    c->lim.max_tls_handshakes = (uint32_t)s->max_tls_handshakes;
    c->default_family = !strcmp(s->default_family, "ipv6")   ? AF_INET6
                        : !strcmp(s->default_family, "keep") ? 0
                                                              : AF_INET;
    c->lim.max_tls_handshakes_per_ip = (uint32_t)s->max_tls_handshakes_per_ip;
    free(allow);
    free(deny);
    return c;
out_oom:
    snprintf(err, errlen, "out of memory");
out_free:
    free(allow);
    free(deny);
    rly_cfg_free(c);
    return NULL;
}

int rly_settings_tls(const rly_settings *s, rly_tls **tls, char *err, size_t errlen)
{
    *tls = NULL;
    if (!s->tls_listen.n)
        return 0;
    if (!s->cert || !s->key) {
        snprintf(err, errlen, "tls-listen: needs both --cert and --key");
        return RTC_EMSG;
    }
    *tls = rly_tls_new_opts(s->cert, s->key, s->ktls, err, errlen);
    return *tls ? 0 : RTC_EMSG;
}

size_t rly_settings_workers(const rly_settings *s)
{
    long n = s->threads > 0 ? (long)s->threads : sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : (size_t)n;
}

void rly_settings_log(const rly_settings *s)
{
    rtc_log_level lvl;
    rtc_log_format fmt;

    rtc_log_parse_level(s->log_level, &lvl);
    rtc_log_parse_format(s->log_format, &fmt);
    rtc_log_setup(lvl, fmt, "tsunagu-relay");
}

static size_t field_size(rtc_conf_type t)
{
    switch (t) {
    case RTC_CONF_STR:
        return sizeof(char *);
    case RTC_CONF_INT:
        return sizeof(int64_t);
    case RTC_CONF_BOOL:
        return sizeof(bool);
    case RTC_CONF_LIST:
        return sizeof(rtc_strlist);
    default:
        return 0;
    }
}

void rly_settings_keep_fixed(rly_settings *running, rly_settings *fresh)
{
    for (const rtc_conf_spec *sp = rly_conf_specs; sp->key; sp++) {
        uint8_t tmp[sizeof(rtc_strlist)];
        uint8_t *a = (uint8_t *)running + sp->offset, *b = (uint8_t *)fresh + sp->offset;
        size_t n = field_size(sp->type);
        if (!(sp->flags & RTC_CONF_RESTART) || !n || n > sizeof tmp)
            continue;
        /* swapped, not copied: each struct keeps owning what it holds */
        memcpy(tmp, a, n);
        memcpy(a, b, n);
        memcpy(b, tmp, n);
    }
}
