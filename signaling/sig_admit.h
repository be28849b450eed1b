/* sig_admit.h - admission control for tsunagu-signal's WebSocket upgrades.
 *
 * Two checks run at the handshake, before any JSON is read:
 * - Origin allow-list, against cross-site WebSocket hijacking (RFC 6455
 *   s.10.2): a browser always sends the Origin of the page that opens the
 *   socket (RFC 6454 s.7), so a page on another site is told apart from the
 *   operator's own application. Exact match of scheme://host[:port], scheme
 *   and host compared case-insensitively, a default port (80 for http/ws, 443
 *   for https/wss) equal to no port. "*" allows any Origin, even none. No list
 *   configured: every upgrade passes this check (development default).
 * - Open WebSockets per client address (a high cap), and of them those that
 *   have not joined a room (a tight one; issue 14 item 9: an office behind
 *   one NAT address holds hundreds of joined members, while what one
 *   abusive address can pile up without joining stays small). Addresses:
 *   IPv4 by address, IPv6 by /64 (one
 *   subscriber usually holds a whole /64, so per-address counting would not
 *   limit anyone), IPv4-mapped IPv6 as the IPv4 address it carries. O(1) hash
 *   table with a per-process random key; an entry exists only while its count
 *   is above zero, so memory follows the open connections.
 *
 * Pure: no sockets, no clock, no libwebsockets. sig_ws.c calls it from the
 * upgrade (FILTER_PROTOCOL_CONNECTION), ESTABLISHED and CLOSED callbacks.
 * Owned by the one lws service thread. */
#ifndef SIG_ADMIT_H
#define SIG_ADMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rtc_addr.h"
#include "rtc_metrics.h"

typedef struct sig_admit sig_admit; /* opaque */

typedef enum {
    SIG_ADMIT_OK = 0,
    SIG_ADMIT_ORIGIN, /* Origin missing, malformed or not allowed: HTTP 403 */
    SIG_ADMIT_PER_IP, /* this address already holds max-per-ip WebSockets: HTTP 429 */
    /* decided by the transport before sig_admit_check, counted by
     * sig_admit_refused (issue 14 item 4: they were bare TCP closes) */
    SIG_ADMIT_PATH,     /* an upgrade on another path than /ws: HTTP 404 */
    SIG_ADMIT_FULL,     /* max-connections reached: HTTP 503 + Retry-After */
    SIG_ADMIT_DRAINING, /* SIGTERM drain: HTTP 503 + Retry-After */
    SIG_ADMIT_UNJOINED, /* this address holds max-unjoined WebSockets not in a room: 429 */
    SIG_ADMIT__COUNT
} sig_admit_verdict;

/* Longest Origin header value read at all (scheme, "://", a 253-byte DNS
 * name, ":65535"); longer ones are refused unread. */
#define SIG_ADMIT_ORIGIN_MAX 300
/* Room for an Origin in a log line after sig_admit_sanitize. */
#define SIG_ADMIT_LOG_MAX 100

/* Validator for the allowed-origin config key: "*", or SCHEME://HOST[:PORT]
 * with at most one trailing "/" (nothing else after the authority).
 * 0, or RTC_EMSG with the reason in err. */
int sig_admit_origin_check(const char *value, char *err, size_t errlen);

/* seed keys the address hash (give it random bits: an attacker must not be
 * able to aim many addresses at one bucket). NULL on ENOMEM. */
sig_admit *sig_admit_new(uint64_t seed);
void sig_admit_free(sig_admit *a); /* NULL is a no-op */

/* Install a policy (start-up and SIGHUP): the allowed origins (validated by
 * sig_admit_origin_check; an invalid one fails the whole call) and the cap
 * per address (0: no cap). Open connections stay counted. On failure the
 * old policy stays. 0, RTC_EMSG or -ENOMEM. */
int sig_admit_configure(sig_admit *a, const char *const *origins, size_t n_origins,
                        uint32_t max_per_ip);

/* The cap on connections of one address that have not joined a room (0:
 * none), besides configure's cap on all (start-up and SIGHUP). */
void sig_admit_set_unjoined_cap(sig_admit *a, uint32_t max_unjoined);

/* Decide one upgrade. origin points at the Origin header's bytes (len
 * bytes, no NUL needed), NULL when the request has none. peer is the
 * client's address. A refusal is counted for sig_admit_metrics. */
sig_admit_verdict sig_admit_check(sig_admit *a, const char *origin, size_t len,
                                  const rtc_addr *peer);

/* The per-address key: an IPv4 address, an IPv6 /64, an IPv4-mapped IPv6
 * address as its IPv4 address; port 0 (sig_addrlim counts by it too). */
rtc_addr sig_admit_ip_key(const rtc_addr *peer);

/* Count a refusal the transport decided itself (SIG_ADMIT_PATH, _FULL,
 * _DRAINING). */
void sig_admit_refused(sig_admit *a, sig_admit_verdict v);

/* true when an Origin list is configured ("*" counts as configured). */
bool sig_admit_origin_enforced(const sig_admit *a);

/* Count an accepted WebSocket of peer (ESTABLISHED) and uncount it
 * (CLOSED); every successful add needs exactly one del. add: 0 or -ENOMEM
 * (then nothing was counted). */
int sig_admit_ip_add(sig_admit *a, const rtc_addr *peer);
void sig_admit_ip_del(sig_admit *a, const rtc_addr *peer);
uint32_t sig_admit_ip_count(const sig_admit *a, const rtc_addr *peer);
/* A counted connection of peer joined a room (joined true) or, before its
 * del, stops counting as joined (false). A connection counts as joined from
 * its first join or resume until it closes (one that leaves its room stays
 * counted as joined: the cap on all bounds those). */
void sig_admit_ip_joined(sig_admit *a, const rtc_addr *peer, bool joined);
uint32_t sig_admit_ip_unjoined(const sig_admit *a, const rtc_addr *peer); /* count - joined */
size_t sig_admit_ip_entries(const sig_admit *a); /* addresses with open connections */

/* tsunagu_signal_rejected_total{reason="origin"|"per-ip"|"path"|
 * "max-connections"|"draining"|"unjoined-per-ip"} and
 * tsunagu_signal_client_addresses (addresses with open WebSockets). */
void sig_admit_metrics(const sig_admit *a, rtc_buf *b);

/* An attacker-controlled header made safe for one log line: printable
 * ASCII kept except '"' and '\\', other bytes as '?', cut at
 * SIG_ADMIT_LOG_MAX - 4 characters with "..." appended. out has
 * SIG_ADMIT_LOG_MAX bytes; always NUL-terminated. */
void sig_admit_sanitize(const char *in, size_t len, char out[SIG_ADMIT_LOG_MAX]);

#endif
