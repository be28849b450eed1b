/* test_bot_canary_stats.c - the canary's per-relay figures and their
 * Prometheus text: counters, gauges of the last probe with audio, the
 * bounded table (relay="other"), label escaping. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "bot_canary_stats.h"
#include "tap.h"

int main(void)
{
    bot_canary_stats s;
    bot_canary_probe good = {true, 80, 4.39, 0, 1.5, 2.0};
    bot_canary_probe bad = {false, -1, 1, 0, 0, -1};
    bot_canary_probe lossy = {false, 120, 3.5, 6.0, 4, 10};
    const bot_canary_relay *r;
    rtc_buf b;
    char name[64];

    bot_canary_stats_init(&s, 1000);
    bot_canary_stats_record(&s, "turn:a:3478", &good, 2000);
    bot_canary_stats_record(&s, "turn:a:3478", &bad, 2010);
    r = bot_canary_stats_get(&s, "turn:a:3478");
    ok(r && r->attempted == 2 && r->succeeded == 1 && !r->last_ok, "attempted 2, succeeded 1, last failed");
    ok(r && r->last_success_s == 2000, "last success time kept through a failure");
    ok(r && r->mos == 4.39 && r->setup_ms == 80, "a probe without audio keeps the last figures");
    bot_canary_stats_record(&s, "turn:a:3478", &lossy, 2020);
    ok(r && r->loss_pct == 6.0 && r->mos == 3.5, "a lossy probe's figures replace them");
    ok(bot_canary_stats_get(&s, "turn:b:3478") == NULL, "unknown relay");

    /* bounded: the 17th relay and beyond share relay="other" */
    for (int i = 0; i < 20; i++) {
        snprintf(name, sizeof name, "turn:r%d:3478", i);
        bot_canary_stats_record(&s, name, &good, 3000);
    }
    is_int(s.n, BOT_CANARY_MAX_RELAYS, "table bounded");
    r = bot_canary_stats_get(&s, "other");
    ok(r && r->attempted == 5, "5 relays past the bound counted as other");

    bot_canary_stats_init(&s, 1000);
    s.rounds = 7;
    bot_canary_stats_record(&s, "turn:x\"y:1", &good, 2000);
    bot_canary_stats_record(&s, "turn:never:1", &bad, 2000);
    rtc_buf_init(&b);
    bot_canary_stats_render(&s, &b);
    ok(!b.oom && b.p, "rendered");
    ok(strstr(b.p, "tsunagu_bot_canary_rounds_total 7\n") != NULL, "rounds");
    ok(strstr(b.p, "# TYPE tsunagu_bot_canary_calls_attempted_total counter\n") != NULL, "TYPE line");
    ok(strstr(b.p, "tsunagu_bot_canary_calls_succeeded_total{relay=\"turn:x\\\"y:1\"} 1\n") != NULL,
       "label escaped, succeeded counted");
    ok(strstr(b.p, "tsunagu_bot_canary_mos{relay=\"turn:x\\\"y:1\"} 4.3899999999999997\n") != NULL,
       "MOS gauge");
    ok(strstr(b.p, "tsunagu_bot_canary_loss_ratio{relay=\"turn:x\\\"y:1\"} 0\n") != NULL, "loss ratio");
    ok(strstr(b.p, "tsunagu_bot_canary_setup_seconds{relay=\"turn:x\\\"y:1\"} 0.080000000000000002\n") != NULL,
       "setup in seconds");
    ok(strstr(b.p, "tsunagu_bot_canary_last_call_success{relay=\"turn:never:1\"} 0\n") != NULL,
       "failed relay: last_call_success 0");
    ok(strstr(b.p, "tsunagu_bot_canary_mos{relay=\"turn:never:1\"}") == NULL,
       "no quality gauges for a relay that never carried audio");
    ok(strstr(b.p, "tsunagu_bot_canary_last_success_timestamp_seconds{relay=\"turn:never:1\"} 0\n") != NULL,
       "never succeeded: timestamp 0");
    ok(strstr(b.p, "relay=\"other\"") == NULL, "no other row while under the bound");
    rtc_buf_dispose(&b);
    return done_testing();
}
