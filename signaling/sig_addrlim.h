/* sig_addrlim.h - what one client address may hold or make beyond its open
 * connections (issue 14 item 1): places kept for resume after a connection
 * dropped (--max-held-per-ip), and new rooms per minute
 * (--max-room-creates-per-ip-per-min).
 *
 * Why: a dropped member keeps its place (and its room) for resume-seconds,
 * but its connection no longer counts against max-connections-per-ip; one
 * address that joined new rooms and dropped in a loop filled max-rooms in
 * seconds and every other user's new room got server-busy. Both limits are
 * per client address as sig_admit counts them (IPv4 address, IPv6 /64, an
 * IPv4-mapped address as its IPv4 address).
 *
 * Pure and single-threaded (the lws service thread); the caller passes the
 * time. Memory: one entry per address that holds places or made a room in
 * the last minute (at most SIG_ADDRLIM_MAX_ADDRS), one per held place. */
#ifndef SIG_ADDRLIM_H
#define SIG_ADDRLIM_H

#include <stdbool.h>
#include <stdint.h>

#include "rtc_addr.h"
#include "rtc_metrics.h"

#define SIG_ADDRLIM_MAX_ADDRS 65536 /* addresses tracked at once (then creations are refused) */

typedef struct sig_addrlim sig_addrlim; /* opaque */

sig_addrlim *sig_addrlim_new(void); /* NULL on ENOMEM */
void sig_addrlim_free(sig_addrlim *l);

/* Member `id` (joined from addr) is about to be kept for resume until
 * until_us. true: counted (release with sig_addrlim_unhold); false: addr
 * holds max places already (max 0: no cap, always true) or no memory, and
 * the caller lets the member leave instead. A second hold of one id is
 * counted once. */
bool sig_addrlim_hold(sig_addrlim *l, const rtc_addr *addr, const char *id, uint32_t max,
                      uint64_t until_us);
/* The held place of id ended (resumed, expired, left): uncounted. An id not
 * held is a no-op. */
void sig_addrlim_unhold(sig_addrlim *l, const char *id);
/* Places addr holds now. */
uint32_t sig_addrlim_held(const sig_addrlim *l, const rtc_addr *addr);

/* A join from addr would create a room: true and one of the address's
 * per_min tokens (burst per_min) is spent; false over the rate, or when
 * SIG_ADDRLIM_MAX_ADDRS addresses are tracked already. per_min 0: no limit. */
bool sig_addrlim_create(sig_addrlim *l, const rtc_addr *addr, uint32_t per_min, uint64_t now_us);

/* A join or resume attempt from addr (issue 14 item 9): true and one of
 * the address's per_s tokens (burst per_s) spent; false over the rate, or
 * when SIG_ADDRLIM_MAX_ADDRS addresses are tracked already. per_s 0: no
 * limit. Per address, not per connection: with many connections one
 * address could otherwise make joins at its connections' combined rate. */
bool sig_addrlim_join(sig_addrlim *l, const rtc_addr *addr, uint32_t per_s, uint64_t now_us);

/* Housekeeping, about once a second: held places past their time (a member
 * that left by a path that did not say so, e.g. handed to another node) are
 * uncounted, and addresses with nothing held and a full bucket forgotten.
 * per_min as for create (a bucket is full after a minute at most),
 * joins_per_s as for join. */
void sig_addrlim_sweep(sig_addrlim *l, uint32_t per_min, uint32_t joins_per_s, uint64_t now_us);

/* tsunagu_signal_address_limited_total{reason="held"|"room-creates"|"joins"}
 * (the refusals of hold, create and join), tsunagu_signal_held_places. */
void sig_addrlim_metrics(const sig_addrlim *l, rtc_buf *b);

#endif
