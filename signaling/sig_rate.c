/* sig_rate.c - a connection's message rate limit (see sig_rate.h). */
#include "sig_rate.h"

void sig_rate_init(sig_rate *r, uint32_t rate, uint64_t now_us)
{
    r->tokens = rate;
    r->last_us = now_us;
    r->limited_since_us = r->last_refused_us = 0;
}

bool sig_rate_take(sig_rate *r, uint32_t rate, uint64_t now_us)
{
    if (now_us > r->last_us) {
        r->tokens += (double)(now_us - r->last_us) * rate / 1e6;
        if (r->tokens > rate)
            r->tokens = rate;
        r->last_us = now_us;
    }
    if (r->limited_since_us && now_us - r->last_refused_us > 1000000u)
        r->limited_since_us = 0;
    if (r->tokens >= 1.0) {
        r->tokens -= 1.0;
        return true;
    }
    if (!r->limited_since_us)
        r->limited_since_us = now_us ? now_us : 1;
    r->last_refused_us = now_us;
    return false;
}
