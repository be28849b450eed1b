/* rtc_tbucket.h - a token bucket: `per_s` tokens a second, at most `burst`
 * held, one take costs any number of tokens.
 *
 * One implementation for the limits that each had their own: the relay's
 * bandwidth cap per allocation (bytes, ms clock, burst = one second) and
 * signaling's messages per connection (messages, us clock, burst = one
 * second). The warning-line limiter rtc_log_ratelimit (rtc_log.h) stays a
 * fixed one-second window on purpose: its log lines count refusals per
 * window, and tests rely on that.
 *
 * State: `tokens` is whole tokens and `last` the clock reading of the last
 * refill, in the caller's unit, both plain and public: the relay's takeover
 * state carries exactly these two (bytes and a ms time), so its wire format
 * does not change. `frac` keeps the part of a token that accrued but is not
 * whole yet (in token-ticks, below `ticks`), so refilling often loses
 * nothing: a bucket refilled every ms at 300 tokens/s gains exactly 0.3
 * tokens each time, where dropping the remainder would gain none at all and
 * a double would drift. It may be left out of an export (less than one
 * token); a restored bucket sets it to 0.
 *
 * Overflow: an elapsed time whose accrual does not fit in 64 bits simply
 * fills the bucket, so a bucket idle for years is merely full.
 *
 * Header-only: it sits on the relay's per-packet path, where the rate
 * struct is a compile-time constant but for per_s, and the division by
 * `ticks` becomes a multiplication. Pure (the caller passes the time) and
 * owned by one thread. */
#ifndef RTC_TBUCKET_H
#define RTC_TBUCKET_H

#include <stdbool.h>
#include <stdint.h>

typedef struct {
    uint64_t tokens; /* whole tokens held */
    uint64_t last;   /* clock reading of the last refill, in ticks */
    uint64_t frac;   /* accrued part of a token, in token-ticks (< ticks) */
} rtc_tbucket;

typedef struct {
    uint64_t per_s; /* tokens added per second; 0 = unlimited (take always passes) */
    uint64_t burst; /* most tokens held */
    uint64_t ticks; /* clock units per second: 1000 for ms, 1000000 for us; not 0 */
} rtc_tbucket_rate;

/* A full bucket (burst tokens) as of now. */
static inline void rtc_tbucket_init(rtc_tbucket *b, const rtc_tbucket_rate *r, uint64_t now)
{
    b->tokens = r->burst;
    b->last = now;
    b->frac = 0;
}

/* Add what accrued since the last refill, capped at the burst (a full
 * bucket keeps no fraction). A clock that went backwards, or the same
 * instant, adds nothing. */
static inline void rtc_tbucket_refill(rtc_tbucket *b, const rtc_tbucket_rate *r, uint64_t now)
{
    uint64_t acc, whole;
    if (now <= b->last)
        return;
    if (__builtin_mul_overflow(now - b->last, r->per_s, &acc) ||
        __builtin_add_overflow(acc, b->frac, &acc)) {
        whole = UINT64_MAX;
        b->frac = 0;
    } else {
        whole = acc / r->ticks;
        b->frac = acc % r->ticks;
    }
    if (b->tokens >= r->burst || whole >= r->burst - b->tokens) {
        b->tokens = r->burst;
        b->frac = 0;
    } else {
        b->tokens += whole;
    }
    b->last = now;
}

/* true, and cost tokens are gone, when the bucket holds at least cost
 * tokens after refilling; false (nothing taken) otherwise. Unlimited rates
 * (per_s 0) always pass and leave the bucket alone. */
static inline bool rtc_tbucket_take(rtc_tbucket *b, const rtc_tbucket_rate *r, uint64_t cost,
                                    uint64_t now)
{
    if (r->per_s == 0)
        return true;
    rtc_tbucket_refill(b, r, now);
    if (b->tokens < cost)
        return false;
    b->tokens -= cost;
    return true;
}

/* Restore an exported bucket: `tokens` whole tokens, last refilled at
 * `last` (same clock and unit as later takes). */
static inline void rtc_tbucket_set(rtc_tbucket *b, uint64_t tokens, uint64_t last)
{
    b->tokens = tokens;
    b->last = last;
    b->frac = 0;
}

#endif
