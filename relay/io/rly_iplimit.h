/* rly_iplimit.h - TCP/TLS connections per client source, shared by every
 * worker: SO_REUSEPORT spreads one source's connections over the workers,
 * so a per-worker count would multiply the cap by --threads.
 *
 * Two counts per source (issue 14 item 9): all its connections (a high cap,
 * --max-tcp-per-ip, against descriptor exhaustion) and those that have not
 * made an allocation yet (--max-preauth-per-ip). An office behind one NAT
 * address holds hundreds of authenticated connections, which its users'
 * credentials (the allocation quotas) account for; what nobody has vouched
 * for yet is what one abusive address could pile up, so that is the tight
 * cap.
 *
 * The source is the IPv4 address, or the /64 of an IPv6 address (one
 * subscriber usually holds a whole /64 and could rotate through it).
 * Touched on accept and close only (never per packet), under one mutex,
 * like the allocation quota. Entries exist only while their count is
 * non-zero, so memory follows the open connections. */
#ifndef RLY_IPLIMIT_H
#define RLY_IPLIMIT_H

#include <stdbool.h>
#include <stdint.h>

#include "rtc_addr.h"

typedef struct rly_iplimit rly_iplimit; /* opaque */

rly_iplimit *rly_iplimit_new(void); /* NULL on ENOMEM */
void rly_iplimit_free(rly_iplimit *l); /* NULL is a no-op */

/* Count one more (unauthenticated) connection from ip's source unless it
 * already has max connections or max_preauth unauthenticated ones (0: no
 * cap on those), or memory is short: true when counted. Any thread. */
bool rly_iplimit_take(rly_iplimit *l, const rtc_addr *ip, uint32_t max, uint32_t max_preauth);
/* A counted connection has authenticated (made an allocation): it no longer
 * counts against max_preauth. Once per connection, after any handshake slot
 * was given back. Any thread. */
void rly_iplimit_authed(rly_iplimit *l, const rtc_addr *ip);
/* Give back a connection counted by rly_iplimit_take; authed says whether
 * rly_iplimit_authed was called for it. Any thread. */
void rly_iplimit_give(rly_iplimit *l, const rtc_addr *ip, bool authed);
/* Connections of ip's source now: all, and the unauthenticated ones. */
void rly_iplimit_count(rly_iplimit *l, const rtc_addr *ip, uint32_t *all, uint32_t *preauth);

/* TLS handshakes in progress (issue 14 item 2): a connection whose TLS
 * handshake has begun and not finished holds OpenSSL's handshake and record
 * buffers (~35 KB), so they are capped per source and in total (0: no
 * cap). Only for an unauthenticated connection counted by rly_iplimit_take,
 * and given back (rly_iplimit_hs_give) before it. true when counted. Any
 * thread. */
bool rly_iplimit_hs_take(rly_iplimit *l, const rtc_addr *ip, uint32_t max_per_ip,
                         uint32_t max_total);
void rly_iplimit_hs_give(rly_iplimit *l, const rtc_addr *ip);
uint32_t rly_iplimit_hs_total(rly_iplimit *l); /* in progress now, all sources */

#endif
