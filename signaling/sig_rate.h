/* sig_rate.h - the message rate limit of one client connection, and how
 * long it has been abusing it (the session closes a connection that stays
 * over the limit for abuse-seconds). Pure; the caller passes the time. */
#ifndef SIG_RATE_H
#define SIG_RATE_H

#include <stdbool.h>
#include <stdint.h>

#include "rtc_tbucket.h"

/* Token bucket rate limit per connection: `rate` messages a second, burst
 * of one second's worth. Pure; the caller passes the time. */
typedef struct {
    rtc_tbucket bucket;        /* (common/rtc_tbucket.h, in us) */
    uint64_t limited_since_us; /* start of the current run of refusals, 0 if none */
    uint64_t last_refused_us;
} sig_rate;
void sig_rate_init(sig_rate *r, uint32_t rate, uint64_t now_us);
/* true = allowed. limited_since_us says since when messages keep being
 * refused: a run of refusals ends only after a whole second without one (a
 * flooder gets a message through now and then as tokens trickle back; that
 * must not reset its abuse clock). */
bool sig_rate_take(sig_rate *r, uint32_t rate, uint64_t now_us);

#endif
