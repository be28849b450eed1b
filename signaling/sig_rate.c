/* sig_rate.c - a connection's message rate limit (see sig_rate.h). */
#include "sig_rate.h"

/* rate messages a second, burst of one second's worth, in microseconds */
static rtc_tbucket_rate per_second(uint32_t rate)
{
    rtc_tbucket_rate r = {.per_s = rate, .burst = rate, .ticks = 1000000u};
    return r;
}

void sig_rate_init(sig_rate *r, uint32_t rate, uint64_t now_us)
{
    rtc_tbucket_rate pr = per_second(rate);
    rtc_tbucket_init(&r->bucket, &pr, now_us);
    r->limited_since_us = r->last_refused_us = 0;
}

bool sig_rate_take(sig_rate *r, uint32_t rate, uint64_t now_us)
{
    rtc_tbucket_rate pr = per_second(rate);
    bool ok = rtc_tbucket_take(&r->bucket, &pr, 1, now_us);
    if (r->limited_since_us && now_us - r->last_refused_us > 1000000u)
        r->limited_since_us = 0;
    if (ok)
        return true;
    if (!r->limited_since_us)
        r->limited_since_us = now_us ? now_us : 1;
    r->last_refused_us = now_us;
    return false;
}
