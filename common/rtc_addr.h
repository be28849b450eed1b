/* rtc_addr.h - socket addresses, CIDR ranges and the relay's peer policy.
 *
 * rtc_addr is a plain value (IPv4 or IPv6 + port) that can be copied, hashed
 * and compared; it is what state tables store, so a later process can take
 * over allocation state as plain data. rtc_peer_policy decides which peer
 * addresses a TURN client may reach (RFC 8656 s.21, CVE-2020-26262): the
 * secure default denies every loopback, private, link-local, multicast,
 * unspecified and IPv4-in-IPv6 range; explicit allows win over denies; the
 * relay's own IPs are peers only inside the relayed-port range. IPv4-mapped and
 * IPv4-compatible IPv6 addresses are checked as the IPv4 address they carry
 * too, so "::ffff:127.0.0.1" cannot sneak past a loopback deny.
 * Order: own IP (relay or external IP, also embedded in a v6 form) -> allowed
 * inside the relayed-port range, or when an allow rule names exactly that
 * host, denied otherwise; an allow rule matching the address as written ->
 * allowed; a deny rule (built-in or
 * configured) matching the address, or the IPv4 address embedded in it
 * (::ffff:a.b.c.d, ::a.b.c.d, 64:ff9b::a.b.c.d, 2002:AABB:CCDD::) -> denied;
 * otherwise allowed. */
#ifndef RTC_ADDR_H
#define RTC_ADDR_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

typedef struct {
    uint8_t family; /* AF_INET or AF_INET6 (0 = unset) */
    uint8_t ip[16]; /* network order; v4 uses the first 4 bytes */
    uint16_t port;  /* host order */
} rtc_addr;

#define RTC_ADDR_STRLEN 64 /* "[v6]:port" with room to spare */

/* Parse "1.2.3.4" / "::1" (port 0). 0 or RTC_EMSG. */
int rtc_addr_parse_ip(const char *s, rtc_addr *out);
/* Parse "1.2.3.4:3478", "[::1]:3478"; a bare IPv6 without brackets is an
 * error because its last group would read as a port. 0 or RTC_EMSG. */
int rtc_addr_parse_hostport(const char *s, rtc_addr *out);
/* "1.2.3.4:5" or "[::1]:5" (with_port) / "1.2.3.4" / "::1". */
void rtc_addr_format(const rtc_addr *a, bool with_port, char out[RTC_ADDR_STRLEN]);

void rtc_addr_from_sockaddr(rtc_addr *a, const struct sockaddr *sa);
/* Fill a sockaddr_storage; returns its length. */
socklen_t rtc_addr_to_sockaddr(const rtc_addr *a, struct sockaddr_storage *ss);

bool rtc_addr_equal(const rtc_addr *a, const rtc_addr *b);   /* ip and port */
bool rtc_addr_ip_equal(const rtc_addr *a, const rtc_addr *b); /* ip only */
size_t rtc_addr_iplen(const rtc_addr *a);                     /* 4 or 16 */
/* 64-bit hash of family, ip and port, keyed so an attacker cannot aim
 * collisions at one bucket (the key is random per process or per table). */
uint64_t rtc_addr_hash(const rtc_addr *a, uint64_t key);
bool rtc_addr_is_any(const rtc_addr *a); /* 0.0.0.0 or :: */

/* Where an address can be reached from, for warnings about a configuration
 * (never for the peer policy, which has its own finer list). PRIVATE: RFC
 * 1918, CGNAT 100.64.0.0/10 (RFC 6598), ULA fc00::/7; LINKLOCAL: 169.254.0.0/16,
 * fe80::/10; LOOPBACK: 127.0.0.0/8, ::1; ANY: 0.0.0.0, ::; PUBLIC: the rest. */
typedef enum {
    RTC_ADDR_PUBLIC,
    RTC_ADDR_PRIVATE,
    RTC_ADDR_LINKLOCAL,
    RTC_ADDR_LOOPBACK,
    RTC_ADDR_ANY
} rtc_addr_scope;
rtc_addr_scope rtc_addr_scope_of(const rtc_addr *a);
const char *rtc_addr_scope_name(rtc_addr_scope s); /* "public", "private", ... */

/* Whether this host owns the IP of a (the port is ignored): a UDP socket is
 * bound to it with port 0, the same test the relay's own sockets will meet.
 * Wildcards pass. 0, or -errno of socket()/bind() (-EADDRNOTAVAIL when the
 * host has no such address). */
int rtc_addr_check_local(const rtc_addr *a);

typedef struct {
    uint8_t family;
    uint8_t ip[16];
    uint8_t prefix; /* bits */
} rtc_cidr;

/* "10.0.0.0/8", "fc00::/7", or a bare address (full prefix). */
int rtc_cidr_parse(const char *s, rtc_cidr *out);
bool rtc_cidr_match(const rtc_cidr *c, const rtc_addr *a);

typedef struct rtc_peer_policy rtc_peer_policy; /* opaque, immutable once built */

typedef struct {
    const rtc_cidr *allow;
    size_t n_allow;
    const rtc_cidr *deny; /* in addition to the built-in default denies */
    size_t n_deny;
    const rtc_addr *own; /* the relay's relayed IPs (ports ignored) */
    size_t n_own;
    /* A peer on an own IP is allowed only inside this port range (the
     * relayed-port range), so "own address" never opens the relay host's
     * other loopback services (metrics, Redis) to clients. */
    uint16_t own_port_lo, own_port_hi;
} rtc_peer_policy_params;

rtc_peer_policy *rtc_peer_policy_new(const rtc_peer_policy_params *p); /* NULL on ENOMEM */
void rtc_peer_policy_free(rtc_peer_policy *pp);
/* true when a client may send to / receive from this peer address. */
bool rtc_peer_policy_allows(const rtc_peer_policy *pp, const rtc_addr *peer);
/* The per-packet check for a peer that a permission already admitted:
 * true unless peer is one of the relay's own IPs (or embeds one) and
 * rtc_peer_policy_allows refuses it: on those IPs only the relayed ports are
 * peers, so their verdict depends on the port. One pass over the own IPs. */
bool rtc_peer_policy_port_ok(const rtc_peer_policy *pp, const rtc_addr *peer);

#endif
