/* rtc_clock.h - monotonic time in ms, us and ns, and a clock that tests can
 * drive.
 *
 * Protocol state (allocations, rooms) never reads the clock itself: callers
 * pass now_ms. Loops read the clock once per iteration through an rtc_clock
 * so that tests can substitute virtual time (quicly's `now` callback).
 *
 * The three monotonic readers share one CLOCK_MONOTONIC source, so values of
 * different units can be compared after scaling. us serves rate limits and
 * latency histograms (signaling, the bot); ns serves the load generator's
 * pacing. All are thread-safe and allocation-free (vDSO). */
#ifndef RTC_CLOCK_H
#define RTC_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t rtc_clock_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Monotonic microseconds (sub-ms rate limits, RTT, loop timing). */
static inline uint64_t rtc_clock_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Monotonic nanoseconds (packet pacing). */
static inline uint64_t rtc_clock_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline uint64_t rtc_clock_wall_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec;
}

typedef struct rtc_clock {
    uint64_t (*now_ms)(struct rtc_clock *c); /* monotonic ms */
    uint64_t (*wall_s)(struct rtc_clock *c); /* unix seconds (REST credentials) */
    uint64_t fake_ms, fake_wall_s;           /* used by rtc_clock_fake */
} rtc_clock;

static inline uint64_t rtc_clock_sys_now(rtc_clock *c)
{
    (void)c;
    return rtc_clock_mono_ms();
}
static inline uint64_t rtc_clock_sys_wall(rtc_clock *c)
{
    (void)c;
    return rtc_clock_wall_s();
}
static inline uint64_t rtc_clock_fake_now(rtc_clock *c) { return c->fake_ms; }
static inline uint64_t rtc_clock_fake_wall(rtc_clock *c) { return c->fake_wall_s; }

static inline void rtc_clock_init_system(rtc_clock *c)
{
    c->now_ms = rtc_clock_sys_now;
    c->wall_s = rtc_clock_sys_wall;
    c->fake_ms = c->fake_wall_s = 0;
}

static inline void rtc_clock_init_fake(rtc_clock *c, uint64_t start_ms, uint64_t wall_s)
{
    c->now_ms = rtc_clock_fake_now;
    c->wall_s = rtc_clock_fake_wall;
    c->fake_ms = start_ms;
    c->fake_wall_s = wall_s;
}

#endif
