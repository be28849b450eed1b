/* test_rtc_tbucket.c - the token bucket in virtual time, in the shapes its
 * users give it: bytes on a ms clock (the relay's bandwidth cap), messages
 * on a us clock (signaling's rate limit); exact fractional refill,
 * saturation, unlimited rates and export/restore. */
#include <stdint.h>

#include "rtc_tbucket.h"
#include "tap.h"

static void test_bytes_ms(void)
{
    rtc_tbucket_rate r = {.per_s = 1000, .burst = 1000, .ticks = 1000};
    rtc_tbucket b;
    int passed = 0;

    rtc_tbucket_init(&b, &r, 1000);
    is_int(b.tokens, 1000, "starts full");
    for (int i = 0; i < 10; i++)
        passed += rtc_tbucket_take(&b, &r, 200, 1000);
    is_int(passed, 5, "burst of one second's worth");
    ok(!rtc_tbucket_take(&b, &r, 200, 1100), "100 ms refill is 100 bytes: not enough");
    ok(rtc_tbucket_take(&b, &r, 200, 1300), "300 ms refill: enough");
    ok(rtc_tbucket_take(&b, &r, 1000, 100000), "long idle refills to the burst");
    ok(!rtc_tbucket_take(&b, &r, 1, 100000), "but not beyond it");
    ok(!rtc_tbucket_take(&b, &r, 1, 50000), "a clock going back adds nothing");
}

static void test_fraction(void)
{
    /* 300 tokens/s refilled every ms: 0.3 a tick. Integer tokens would lose
     * it all (0 each refill); exact fixed point gains 300 a second. */
    rtc_tbucket_rate r = {.per_s = 300, .burst = 300, .ticks = 1000};
    rtc_tbucket b;
    int passed = 0;

    rtc_tbucket_init(&b, &r, 0);
    b.tokens = 0;
    for (uint64_t t = 1; t <= 10000; t++)
        passed += rtc_tbucket_take(&b, &r, 1, t);
    is_int(passed, 3000, "0.3 tokens a ms add up to 300 a second");
}

static void test_messages_us(void)
{
    const uint64_t S = 1000000;
    rtc_tbucket_rate r = {.per_s = 10, .burst = 10, .ticks = S};
    rtc_tbucket b;
    int passed = 0;

    rtc_tbucket_init(&b, &r, 0);
    for (int i = 0; i < 30; i++)
        passed += rtc_tbucket_take(&b, &r, 1, 1000);
    is_int(passed, 10, "burst of one second's worth of messages");
    passed = 0;
    for (uint64_t us = 0; us < 2 * S; us += 10000)
        passed += rtc_tbucket_take(&b, &r, 1, 1000 + us);
    ok(passed >= 19 && passed <= 21, "10/s sustained under a 100/s flood");
}

static void test_edges(void)
{
    rtc_tbucket_rate unl = {.per_s = 0, .burst = 0, .ticks = 1000};
    rtc_tbucket_rate huge = {.per_s = INT64_MAX, .burst = INT64_MAX, .ticks = 1000};
    rtc_tbucket_rate ten = {.per_s = 10, .burst = 10, .ticks = 1000};
    rtc_tbucket b = {0, 0, 0};

    ok(rtc_tbucket_take(&b, &unl, 1000000, 5), "rate 0: unlimited");
    ok(b.tokens == 0 && b.last == 0, "and the bucket is left alone");
    rtc_tbucket_init(&b, &huge, 0);
    ok(rtc_tbucket_take(&b, &huge, INT64_MAX, 0), "the whole huge burst at once");
    ok(!rtc_tbucket_take(&b, &huge, 1u << 30, 0), "then nothing at the same instant");
    ok(rtc_tbucket_take(&b, &huge, 1u << 30, 1), "1 ms of INT64_MAX/s is plenty");
    ok(rtc_tbucket_take(&b, &huge, INT64_MAX, UINT64_MAX), "an overflowing accrual fills it");
    ok(!rtc_tbucket_take(&b, &huge, UINT64_MAX, UINT64_MAX), "a cost over the burst never passes");
    rtc_tbucket_set(&b, 50, 100); /* exported when the rate was higher */
    ok(rtc_tbucket_take(&b, &ten, 50, 100), "a restored bucket holds what it held");
    rtc_tbucket_set(&b, 50, 100);
    ok(!rtc_tbucket_take(&b, &ten, 11, 101), "the next refill caps it at the new burst");
}

static void test_export(void)
{
    rtc_tbucket_rate r = {.per_s = 2000, .burst = 2000, .ticks = 1000};
    rtc_tbucket b, c;

    rtc_tbucket_init(&b, &r, 500);
    ok(rtc_tbucket_take(&b, &r, 655, 500), "take 655");
    is_int(b.tokens, 1345, "1345 whole tokens to export");
    rtc_tbucket_set(&c, b.tokens, b.last);
    ok(c.tokens == 1345 && c.last == 500 && c.frac == 0, "restored from tokens and time");
    ok(rtc_tbucket_take(&c, &r, 1345, 500) && !rtc_tbucket_take(&c, &r, 1, 500),
       "and holds exactly that many");
}

int main(void)
{
    test_bytes_ms();
    test_fraction();
    test_messages_us();
    test_edges();
    test_export();
    return done_testing();
}
