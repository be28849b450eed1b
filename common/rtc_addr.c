/* rtc_addr.c - address parsing/formatting, CIDR and the peer policy. */
#include "rtc_addr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rtc_err.h"

int rtc_addr_parse_ip(const char *s, rtc_addr *out)
{
    memset(out, 0, sizeof *out);
    if (inet_pton(AF_INET, s, out->ip) == 1) {
        out->family = AF_INET;
        return 0;
    }
    if (inet_pton(AF_INET6, s, out->ip) == 1) {
        out->family = AF_INET6;
        return 0;
    }
    return RTC_EMSG;
}

static int parse_port(const char *s, uint16_t *port)
{
    char *end;
    long v;
    if (*s < '0' || *s > '9')
        return RTC_EMSG;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || *end || v < 0 || v > 65535)
        return RTC_EMSG;
    *port = (uint16_t)v;
    return 0;
}

int rtc_addr_parse_hostport(const char *s, rtc_addr *out)
{
    char host[INET6_ADDRSTRLEN + 1];
    const char *colon;
    size_t hl;
    uint16_t port;

    if (s[0] == '[') {
        const char *rb = strchr(s, ']');
        if (!rb || rb[1] != ':')
            return RTC_EMSG;
        hl = (size_t)(rb - s - 1);
        if (hl == 0 || hl >= sizeof host)
            return RTC_EMSG;
        memcpy(host, s + 1, hl);
        host[hl] = '\0';
        colon = rb + 1;
        if (parse_port(colon + 1, &port) || rtc_addr_parse_ip(host, out) ||
            out->family != AF_INET6)
            return RTC_EMSG;
    } else {
        colon = strrchr(s, ':');
        if (!colon || strchr(s, ':') != colon)
            return RTC_EMSG; /* none, or a bare IPv6 */
        hl = (size_t)(colon - s);
        if (hl == 0 || hl >= sizeof host)
            return RTC_EMSG;
        memcpy(host, s, hl);
        host[hl] = '\0';
        if (strcmp(host, "localhost") == 0)
            strcpy(host, "127.0.0.1");
        if (parse_port(colon + 1, &port) || rtc_addr_parse_ip(host, out) ||
            out->family != AF_INET)
            return RTC_EMSG;
    }
    out->port = port;
    return 0;
}

void rtc_addr_format(const rtc_addr *a, bool with_port, char out[RTC_ADDR_STRLEN])
{
    char ip[INET6_ADDRSTRLEN];
    if (a->family != AF_INET && a->family != AF_INET6) {
        snprintf(out, RTC_ADDR_STRLEN, "(none)");
        return;
    }
    inet_ntop(a->family, a->ip, ip, sizeof ip);
    if (!with_port)
        snprintf(out, RTC_ADDR_STRLEN, "%s", ip);
    else if (a->family == AF_INET6)
        snprintf(out, RTC_ADDR_STRLEN, "[%s]:%u", ip, a->port);
    else
        snprintf(out, RTC_ADDR_STRLEN, "%s:%u", ip, a->port);
}

void rtc_addr_from_sockaddr(rtc_addr *a, const struct sockaddr *sa)
{
    memset(a, 0, sizeof *a);
    if (sa->sa_family == AF_INET) {
        struct sockaddr_in sin;
        memcpy(&sin, sa, sizeof sin);
        a->family = AF_INET;
        memcpy(a->ip, &sin.sin_addr, 4);
        a->port = ntohs(sin.sin_port);
    } else if (sa->sa_family == AF_INET6) {
        struct sockaddr_in6 sin6;
        memcpy(&sin6, sa, sizeof sin6);
        a->family = AF_INET6;
        memcpy(a->ip, &sin6.sin6_addr, 16);
        a->port = ntohs(sin6.sin6_port);
    }
}

socklen_t rtc_addr_to_sockaddr(const rtc_addr *a, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof *ss);
    if (a->family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)ss;
        sin->sin_family = AF_INET;
        memcpy(&sin->sin_addr, a->ip, 4);
        sin->sin_port = htons(a->port);
        return sizeof *sin;
    }
    if (a->family == AF_INET6) {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
        sin6->sin6_family = AF_INET6;
        memcpy(&sin6->sin6_addr, a->ip, 16);
        sin6->sin6_port = htons(a->port);
        return sizeof *sin6;
    }
    return 0;
}

size_t rtc_addr_iplen(const rtc_addr *a) { return a->family == AF_INET6 ? 16 : 4; }

bool rtc_addr_ip_equal(const rtc_addr *a, const rtc_addr *b)
{
    /* constant lengths: the compiler turns each memcmp into a load or two
     * (this runs per relayed packet, against every own IP) */
    if (a->family != b->family)
        return false;
    return a->family == AF_INET6 ? !memcmp(a->ip, b->ip, 16) : !memcmp(a->ip, b->ip, 4);
}

bool rtc_addr_equal(const rtc_addr *a, const rtc_addr *b)
{
    return a->port == b->port && rtc_addr_ip_equal(a, b);
}

bool rtc_addr_is_any(const rtc_addr *a)
{
    static const uint8_t zero[16];
    return memcmp(a->ip, zero, rtc_addr_iplen(a)) == 0;
}

rtc_addr_scope rtc_addr_scope_of(const rtc_addr *a)
{
    const uint8_t *ip = a->ip;
    static const uint8_t v6_loop[16] = {[15] = 1};

    if (rtc_addr_is_any(a))
        return RTC_ADDR_ANY;
    if (a->family == AF_INET6) {
        if (!memcmp(ip, v6_loop, 16))
            return RTC_ADDR_LOOPBACK;
        if (ip[0] == 0xfe && (ip[1] & 0xc0) == 0x80)
            return RTC_ADDR_LINKLOCAL;
        return (ip[0] & 0xfe) == 0xfc ? RTC_ADDR_PRIVATE : RTC_ADDR_PUBLIC;
    }
    if (ip[0] == 127)
        return RTC_ADDR_LOOPBACK;
    if (ip[0] == 169 && ip[1] == 254)
        return RTC_ADDR_LINKLOCAL;
    if (ip[0] == 10 || (ip[0] == 172 && (ip[1] & 0xf0) == 16) ||
        (ip[0] == 192 && ip[1] == 168) || (ip[0] == 100 && (ip[1] & 0xc0) == 64))
        return RTC_ADDR_PRIVATE;
    return RTC_ADDR_PUBLIC;
}

const char *rtc_addr_scope_name(rtc_addr_scope s)
{
    switch (s) {
    case RTC_ADDR_PUBLIC:
        return "public";
    case RTC_ADDR_PRIVATE:
        return "private";
    case RTC_ADDR_LINKLOCAL:
        return "link-local";
    case RTC_ADDR_LOOPBACK:
        return "loopback";
    case RTC_ADDR_ANY:
        return "wildcard";
    default:
        return "?";
    }
}

int rtc_addr_check_local(const rtc_addr *a)
{
    struct sockaddr_storage ss;
    rtc_addr probe = *a;
    socklen_t len;
    int fd, rc = 0;

    if (rtc_addr_is_any(a))
        return 0;
    /* port 0: the test never collides with a socket this host (or the
     * running relay, on a reload) already has on the address */
    probe.port = 0;
    len = rtc_addr_to_sockaddr(&probe, &ss);
    fd = socket(a->family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (bind(fd, (struct sockaddr *)&ss, len))
        rc = -errno;
    close(fd);
    return rc;
}

/* SipHash-like mixing is overkill here; a keyed 64-bit multiply-xorshift
 * over the 19 meaningful bytes spreads well and a random key per table
 * keeps an attacker from aiming at one bucket. */
static inline uint64_t mix(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

uint64_t rtc_addr_hash(const rtc_addr *a, uint64_t key)
{
    uint64_t w0 = 0, w1 = 0;
    memcpy(&w0, a->ip, 8);
    memcpy(&w1, a->ip + 8, 8);
    if (a->family == AF_INET)
        w1 = 0, w0 &= 0xFFFFFFFFULL;
    return mix(key ^ mix(w0 ^ ((uint64_t)a->port << 48 | (uint64_t)a->family << 40)) ^
               mix(w1 + 0x9e3779b97f4a7c15ULL));
}

int rtc_cidr_parse(const char *s, rtc_cidr *out)
{
    char buf[INET6_ADDRSTRLEN + 8];
    const char *slash = strchr(s, '/');
    rtc_addr a;
    size_t hl = slash ? (size_t)(slash - s) : strlen(s);
    long prefix;

    if (hl == 0 || hl >= sizeof buf)
        return RTC_EMSG;
    memcpy(buf, s, hl);
    buf[hl] = '\0';
    if (rtc_addr_parse_ip(buf, &a))
        return RTC_EMSG;
    prefix = a.family == AF_INET ? 32 : 128;
    if (slash) {
        char *end;
        long maxp = prefix;
        if (slash[1] < '0' || slash[1] > '9')
            return RTC_EMSG;
        errno = 0;
        prefix = strtol(slash + 1, &end, 10);
        if (errno || *end || prefix < 0 || prefix > maxp)
            return RTC_EMSG;
    }
    memset(out, 0, sizeof *out);
    out->family = a.family;
    out->prefix = (uint8_t)prefix;
    /* store the network address: host bits cleared */
    for (int i = 0; i < 16; i++) {
        int bits = (int)prefix - 8 * i;
        uint8_t mask = bits >= 8 ? 0xFF : bits <= 0 ? 0 : (uint8_t)(0xFF << (8 - bits));
        out->ip[i] = a.ip[i] & mask;
    }
    return 0;
}

bool rtc_cidr_match(const rtc_cidr *c, const rtc_addr *a)
{
    if (c->family != a->family)
        return false;
    for (int i = 0; i < 16; i++) {
        int bits = (int)c->prefix - 8 * i;
        uint8_t mask;
        if (bits <= 0)
            return true;
        mask = bits >= 8 ? 0xFF : (uint8_t)(0xFF << (8 - bits));
        if ((a->ip[i] & mask) != c->ip[i])
            return false;
    }
    return true;
}

/* The secure default (DESIGN.md): every range a relay must not reach on a
 * client's behalf unless the operator allows it. */
static const char *const default_denies[] = {
    "0.0.0.0/8",       /* "this network", incl. 0.0.0.0 */
    "10.0.0.0/8",      /* RFC 1918 */
    "100.64.0.0/10",   /* CGNAT */
    "127.0.0.0/8",     /* loopback */
    "169.254.0.0/16",  /* link-local */
    "172.16.0.0/12",   /* RFC 1918 */
    "192.0.0.0/24",    /* IETF protocol assignments */
    "192.168.0.0/16",  /* RFC 1918 */
    "198.18.0.0/15",   /* benchmarking */
    "224.0.0.0/4",     /* multicast */
    "240.0.0.0/4",     /* reserved, incl. 255.255.255.255 broadcast */
    "::/96",           /* unspecified, ::1 loopback and IPv4-compatible */
    "::ffff:0:0/96",   /* IPv4-mapped */
    "64:ff9b:1::/48",  /* local-use NAT64 */
    "100::/64",        /* discard-only */
    "fc00::/7",        /* ULA */
    "fe80::/10",       /* link-local */
    "fec0::/10",       /* deprecated site-local */
    "ff00::/8",        /* multicast */
};
#define N_DEFAULT_DENIES (sizeof default_denies / sizeof default_denies[0])

struct rtc_peer_policy {
    rtc_cidr *allow, *deny; /* deny = built-ins followed by configured */
    size_t n_allow, n_deny;
    rtc_addr *own;
    size_t n_own;
    uint16_t own_port_lo, own_port_hi;
};

rtc_peer_policy *rtc_peer_policy_new(const rtc_peer_policy_params *p)
{
    rtc_peer_policy *pp = calloc(1, sizeof *pp);
    if (!pp)
        return NULL;
    pp->allow = calloc(p->n_allow + 1, sizeof *pp->allow);
    pp->deny = calloc(N_DEFAULT_DENIES + p->n_deny, sizeof *pp->deny);
    pp->own = calloc(p->n_own + 1, sizeof *pp->own);
    if (!pp->allow || !pp->deny || !pp->own)
        goto fail;
    if (p->n_allow)
        memcpy(pp->allow, p->allow, p->n_allow * sizeof *pp->allow);
    pp->n_allow = p->n_allow;
    for (size_t i = 0; i < N_DEFAULT_DENIES; i++)
        if (rtc_cidr_parse(default_denies[i], &pp->deny[pp->n_deny++]))
            goto fail; /* cannot happen: the table is constant */
    if (p->n_deny)
        memcpy(pp->deny + pp->n_deny, p->deny, p->n_deny * sizeof *pp->deny);
    pp->n_deny += p->n_deny;
    if (p->n_own)
        memcpy(pp->own, p->own, p->n_own * sizeof *pp->own);
    pp->n_own = p->n_own;
    pp->own_port_lo = p->own_port_lo;
    pp->own_port_hi = p->own_port_hi;
    return pp;
fail:
    rtc_peer_policy_free(pp);
    return NULL;
}

void rtc_peer_policy_free(rtc_peer_policy *pp)
{
    if (!pp)
        return;
    free(pp->allow);
    free(pp->deny);
    free(pp->own);
    free(pp);
}

/* The IPv4 address carried inside an IPv6 one, for the forms that let a v6
 * peer reach a v4 host: mapped, compatible, NAT64 and 6to4. */
static bool embedded_v4(const rtc_addr *a, rtc_addr *v4)
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    static const uint8_t compat[12] = {0};
    static const uint8_t nat64[12] = {0x00, 0x64, 0xff, 0x9b};
    const uint8_t *src = NULL;

    if (a->family != AF_INET6)
        return false;
    if (!memcmp(a->ip, mapped, 12) || !memcmp(a->ip, compat, 12) || !memcmp(a->ip, nat64, 12))
        src = a->ip + 12;
    else if (a->ip[0] == 0x20 && a->ip[1] == 0x02)
        src = a->ip + 2;
    if (!src)
        return false;
    memset(v4, 0, sizeof *v4);
    v4->family = AF_INET;
    memcpy(v4->ip, src, 4);
    v4->port = a->port;
    return true;
}

static bool any_match(const rtc_cidr *list, size_t n, const rtc_addr *a)
{
    for (size_t i = 0; i < n; i++)
        if (rtc_cidr_match(&list[i], a))
            return true;
    return false;
}

/* Whether peer is one of the relay's own addresses, or embeds one (6to4,
 * NAT64 and the mapped/compatible forms reach the same host). */
static bool own_ip(const rtc_peer_policy *pp, const rtc_addr *peer, bool *exact)
{
    rtc_addr v4;
    bool has_v4 = embedded_v4(peer, &v4);
    for (size_t i = 0; i < pp->n_own; i++) {
        if (rtc_addr_ip_equal(&pp->own[i], peer)) {
            *exact = true;
            return true;
        }
        if (has_v4 && rtc_addr_ip_equal(&pp->own[i], &v4)) {
            *exact = false;
            return true;
        }
    }
    return false;
}

/* An allow rule naming exactly this host (/32, /128). */
static bool host_allowed(const rtc_peer_policy *pp, const rtc_addr *peer)
{
    for (size_t i = 0; i < pp->n_allow; i++)
        if (pp->allow[i].prefix == (peer->family == AF_INET ? 32 : 128) &&
            rtc_cidr_match(&pp->allow[i], peer))
            return true;
    return false;
}

/* A peer on one of the relay's own IPs: only its relayed ports, or a host
 * rule naming it; never through an embedded form (exact is false). */
static bool own_allowed(const rtc_peer_policy *pp, const rtc_addr *peer, bool exact)
{
    if (exact && peer->port >= pp->own_port_lo && peer->port <= pp->own_port_hi)
        return true;
    return exact && host_allowed(pp, peer);
}

bool rtc_peer_policy_allows(const rtc_peer_policy *pp, const rtc_addr *peer)
{
    rtc_addr v4;
    bool has_v4 = embedded_v4(peer, &v4), exact = false;

    /* The relay host itself: only its relayed ports are peers. A public
     * relay IP matches no built-in deny, so without this its SSH or Redis
     * would be reachable; an allow range that happens to contain it does
     * not open it, only a host rule naming it does (a deliberate choice,
     * e.g. a test peer on the relay's loopback address). */
    if (own_ip(pp, peer, &exact))
        return own_allowed(pp, peer, exact);
    if (any_match(pp->allow, pp->n_allow, peer))
        return true;
    if (any_match(pp->deny, pp->n_deny, peer))
        return false;
    if (has_v4 && any_match(pp->deny, pp->n_deny, &v4))
        return false;
    return true;
}

bool rtc_peer_policy_port_ok(const rtc_peer_policy *pp, const rtc_addr *peer)
{
    bool exact = false;
    if (!own_ip(pp, peer, &exact))
        return true; /* decided when the permission was made */
    return own_allowed(pp, peer, exact);
}
