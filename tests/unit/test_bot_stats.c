/* test_bot_stats.c - loss, jitter, RTT, MOS and percentiles on synthetic
 * sequences whose answers are known by construction. */
#include <math.h>
#include <stdio.h>

#include "bot_stats.h"
#include "tap.h"

#define NEAR(a, b, eps) (fabs((a) - (b)) <= (eps))

static void no_loss_no_jitter(void)
{
    bot_stats s;
    bot_stats_init(&s, 48000);
    /* 500 packets, exactly 20 ms apart and 960 ticks apart: zero jitter. */
    for (int i = 0; i < 500; i++)
        bot_stats_on_rtp(&s, (uint16_t)(65000 + i), 1000u + 960u * (uint32_t)i,
                         1000000u + 20000u * (uint64_t)i);
    is_int(bot_stats_expected(&s), 500, "expected across a seq wrap");
    is_int(bot_stats_lost(&s), 0, "no loss");
    ok(NEAR(bot_stats_jitter_ms(&s), 0, 1e-9), "zero jitter");
    bot_stats_dispose(&s);
}

static void every_tenth_lost(void)
{
    bot_stats s;
    bot_stats_init(&s, 48000);
    for (int i = 0; i < 1000; i++)
        if (i % 10 != 9)
            bot_stats_on_rtp(&s, (uint16_t)i, 960u * (uint32_t)i, 20000u * (uint64_t)i);
    /* last packet (999) is lost too, and invisible: expected ends at 998 */
    is_int(bot_stats_expected(&s), 999, "expected up to the highest seen");
    is_int(bot_stats_lost(&s), 99, "99 lost");
    ok(NEAR(bot_stats_loss_pct(&s), 100.0 * 99 / 999, 1e-9), "loss percent");
    {
        bot_rtcp_rb rb;
        bot_stats_report_block(&s, 7, &rb);
        is_int(rb.cum_lost, 99, "RR cumulative lost");
        is_int(rb.fraction, (99 * 256) / 999, "RR fraction lost");
        is_int(rb.ext_max_seq, 998, "RR ext max seq");
    }
    bot_stats_dispose(&s);
}

static void constant_alternating_jitter(void)
{
    bot_stats s;
    bot_stats_init(&s, 48000);
    /* Arrivals alternate 15 ms and 25 ms apart: |D| is 5 ms (240 ticks)
     * every time, so J converges to 5 ms (RFC 3550 A.8). */
    uint64_t t = 0;
    for (int i = 0; i < 2000; i++) {
        bot_stats_on_rtp(&s, (uint16_t)i, 960u * (uint32_t)i, t);
        t += (i % 2) ? 25000 : 15000;
    }
    ok(NEAR(bot_stats_jitter_ms(&s), 5.0, 0.01), "jitter converges to 5 ms");
    bot_stats_dispose(&s);
}

static void duplicates_and_reorder(void)
{
    bot_stats s;
    bot_stats_init(&s, 48000);
    uint16_t seqs[] = {10, 11, 13, 12, 14, 14, 15};
    for (size_t i = 0; i < sizeof seqs / sizeof seqs[0]; i++)
        bot_stats_on_rtp(&s, seqs[i], 960u * seqs[i], 20000u * seqs[i]);
    is_int(bot_stats_expected(&s), 6, "reordered: expected 10..15");
    is_int(bot_stats_lost(&s), 0, "duplicate does not make loss negative");
    bot_stats_dispose(&s);
}

static void timeline(void)
{
    bot_stats s;
    bot_stats_init(&s, 48000);
    for (int i = 0; i < 50; i++)
        bot_stats_on_rtp(&s, (uint16_t)i, 960u * (uint32_t)i, 20000u * (uint64_t)i);
    bot_stats_sample(&s, 1.0);
    for (int i = 50; i < 100; i++)
        if (i % 2)
            bot_stats_on_rtp(&s, (uint16_t)i, 960u * (uint32_t)i, 20000u * (uint64_t)i);
    bot_stats_on_rtt(&s, 40);
    bot_stats_sample(&s, 2.0);
    is_int(s.tl_n, 2, "two samples");
    ok(NEAR(s.tl[0].loss_pct, 0, 1e-9), "first second clean");
    /* second interval: seq 50..99 expected, 25 received; expected counted to 99 */
    ok(NEAR(s.tl[1].loss_pct, 50.0, 1e-9), "second interval 50% loss");
    ok(NEAR(s.tl[1].rtt_ms, 40, 1e-9), "rtt in sample");
    bot_stats_dispose(&s);
}

static void emodel(void)
{
    /* d = 0 + 20 + 26.5 = 46.5 ms; Id = 1.116; R = 92.084 */
    double r = bot_mos_r(0, 0, 0);
    ok(NEAR(r, 93.2 - 0.024 * 46.5, 1e-9), "R with no impairment");
    ok(NEAR(bot_mos(0, 0, 0), 1 + 0.035 * r + 7e-6 * r * (r - 60) * (100 - r), 1e-9), "MOS formula");
    ok(bot_mos(0, 0, 0) > 4.3 && bot_mos(0, 0, 0) <= 4.5, "clean call MOS ~4.4");
    /* 1% random loss: Ie_eff = 95 * 1 / (1 + 25.1) = 3.6398 */
    ok(NEAR(bot_mos_r(0, 0, 1) - bot_mos_r(0, 0, 0), -95.0 / 26.1, 1e-9), "Ie_eff at 1% loss");
    /* 400 ms RTT: d = 200 + 20 + 26.5 = 246.5: Id = 5.916 + 0.11*69.2 */
    ok(NEAR(bot_mos_r(400, 0, 0), 93.2 - (0.024 * 246.5 + 0.11 * (246.5 - 177.3)), 1e-9), "Id delay term");
    ok(bot_mos(0, 0, 10) < 3.5, "10% loss is poor");
    /* R = 93.2 - 1.116 - 95*100/125.1 = 16.14: the E-model floor is not 1.0 */
    ok(bot_mos(0, 0, 100) < 1.6, "total loss -> MOS near the floor");
    ok(bot_mos(0, 30, 0) < bot_mos(0, 5, 0), "jitter buffer delay lowers MOS");
}

static void rtt_and_percentiles(void)
{
    bot_rtcp_rb rb = {0};
    double v[] = {5, 1, 4, 2, 3};
    /* LSR at t=10.0 s, DLSR 0.5 s, now 10.75 s (1/65536 s units): RTT 250 ms */
    rb.lsr = 10u << 16;
    rb.dlsr = 1u << 15;
    ok(NEAR(bot_rtcp_rtt_ms(&rb, (10u << 16) + (3u << 14) ), 250.0, 1e-6), "RTT from LSR/DLSR");
    rb.lsr = 0;
    ok(bot_rtcp_rtt_ms(&rb, 12345) < 0, "no LSR -> no RTT");
    ok(NEAR(bot_percentile(v, 5, 50), 3, 1e-9), "median");
    ok(NEAR(bot_percentile(v, 5, 95), 4.8, 1e-9), "p95 interpolated");
    ok(NEAR(bot_percentile(v, 5, 0), 1, 1e-9) && NEAR(bot_percentile(v, 5, 100), 5, 1e-9), "min/max");
    ok(NEAR(bot_percentile(v, 0, 50), 0, 1e-9), "empty");
}

int main(void)
{
    no_loss_no_jitter();
    every_tenth_lost();
    constant_alternating_jitter();
    duplicates_and_reorder();
    timeline();
    emodel();
    rtt_and_percentiles();
    return done_testing();
}
