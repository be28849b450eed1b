/* test_bot_delay.c - the --jitter-ms delay FIFO (bot/bot_delay.c): delays
 * within 0..max, order kept, nothing before it is due, a full queue
 * refusing, the same seed giving the same delays. */
#include <string.h>

#include "bot_delay.h"
#include "tap.h"

int main(void)
{
    bot_delay *d = bot_delay_new(40, 42, 64), *e = bot_delay_new(40, 42, 64);
    uint8_t pkt[64], big[65] = {0};
    const uint8_t *p;
    size_t n;
    uint64_t now = 1000000, prev_due = 0, due[BOT_DELAY_SLOTS];
    bool ordered = true, within = true, spread = false, same = true;

    ok(d && e, "created");
    for (unsigned i = 0; i < BOT_DELAY_SLOTS; i++) {
        memset(pkt, (int)i, sizeof pkt);
        ok(bot_delay_push(d, pkt, 10 + i, now + i * 20000), "queued");
        bot_delay_push(e, pkt, 10 + i, now + i * 20000);
    }
    ok(!bot_delay_push(d, pkt, 10, now), "a full queue refuses (the caller sends at once)");
    ok(!bot_delay_due(d, now - 1, &n), "nothing is due before it was queued");
    for (unsigned i = 0; i < BOT_DELAY_SLOTS; i++) {
        uint64_t t = bot_delay_next_us(d), te = bot_delay_next_us(e);
        uint64_t sent = now + i * 20000;
        due[i] = t;
        if (t != te)
            same = false;
        if (t < prev_due)
            ordered = false;
        /* its own delay is 0..40 ms, or it waits for the one ahead */
        if (t < sent || (t > sent + 40000 && t != prev_due))
            within = false;
        if (t > sent + 1000)
            spread = true;
        ok(!bot_delay_due(d, t - 1, &n), "not before it is due");
        p = bot_delay_due(d, t, &n);
        ok(p && n == 10 + i && p[0] == (uint8_t)i, "due at its time, bytes and length kept");
        bot_delay_pop(d);
        bot_delay_pop(e);
        prev_due = t;
    }
    ok(ordered, "first in, first out: never before the one ahead");
    ok(within, "each delay within 0..40 ms (or held behind the one ahead)");
    ok(spread, "delays differ from 0");
    ok(same, "the same seed gives the same delays");
    is_int(bot_delay_next_us(d), 0, "empty after all were sent");
    ok(!bot_delay_push(d, big, sizeof big, now), "a packet larger than the slots is refused");
    printf("# first dues (ms after queueing): %.1f %.1f %.1f\n", (double)(due[0] - now) / 1000,
           (double)(due[1] - now - 20000) / 1000, (double)(due[2] - now - 40000) / 1000);
    bot_delay_free(d);
    bot_delay_free(e);
    return done_testing();
}
