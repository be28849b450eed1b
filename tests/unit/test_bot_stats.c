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

/* 20 ms packets seq/ts/arrival for packet i, arrival offset t0_us */
static void feed(bot_stats *s, int from, int to, uint64_t t0_us)
{
    for (int i = from; i < to; i++)
        bot_stats_on_rtp(s, (uint16_t)(100 + i), 5000u + 960u * (uint32_t)i,
                         t0_us + 20000u * (uint64_t)(i - from));
}

/* The relay dies: 300 packets, then nothing until the call ends at 10 s. */
static void stream_stops(void)
{
    bot_stats s;
    bot_stats_media m;
    bot_stats_init(&s, 48000);
    feed(&s, 0, 300, 0);
    bot_stats_media_at(&s, 10000000u, &m);
    is_int(m.lost_seq, 0, "stopped stream: no sequence gap");
    /* clock from the first packet: 1 + floor((10 s - 0.2 s slack) / 20 ms) = 491 */
    is_int(m.expected, 491, "stopped stream: expected by the media clock");
    is_int(m.lost, 191, "stopped stream: the silent part is lost");
    is_int(m.lost_clock, 191, "counted by the clock");
    ok(NEAR(m.loss_pct, 100.0 * 191 / 491, 1e-9), "loss percent over the clock's count");
    ok(NEAR(m.max_gap_ms, 10000.0 - 5980.0, 1e-9), "gap: last packet at 5.98 s to the end");
    ok(NEAR(m.interval_ms, 20.0, 1e-9), "interval from the timestamp step");
    /* while the call is up the same figures grow with now */
    bot_stats_media_at(&s, 7000000u, &m);
    ok(NEAR(m.max_gap_ms, 1020.0, 1e-9) && m.lost == 1 + 340 - 300, "at 7 s: 1.02 s gap, 41 lost");
    /* the call stopped right after its last packet: nothing owed */
    bot_stats_media_at(&s, 5980000u + 20000u, &m);
    is_int(m.lost, 0, "orderly end: packets in flight are not lost");
    bot_stats_dispose(&s);
}

/* The sender's SR count says what left it: the tail it sent after our last
 * packet is lost even if the clock (within its slack) cannot tell. */
static void sr_counts_tail_loss(void)
{
    bot_stats s;
    bot_stats_media m;
    bot_stats_init(&s, 48000);
    bot_stats_on_sr(&s, 7, 1000); /* before media: ignored */
    ok(!s.have_sr, "SR before the first packet ignored");
    feed(&s, 0, 50, 0);                        /* 0 .. 0.98 s */
    bot_stats_on_sr(&s, 4294967290u, 1000000u); /* first SR; the count wraps below */
    feed(&s, 50, 100, 1000000u);               /* 1.0 .. 1.98 s */
    /* 100..149 sent, all lost; the SR after them gets through */
    bot_stats_on_sr(&s, 4294967290u + 100u, 3000000u);
    bot_stats_media_at(&s, 3100000u, &m);
    is_int(m.lost_seq, 0, "tail loss invisible to A.1");
    is_int(m.lost_sr, 50, "SR: 50 + 100 sent (count wrapped), 100 received");
    is_int(m.lost_clock, 50, "clock from the last SR: nothing due yet");
    is_int(m.lost, 50, "lost = the SR count");
    is_int(m.expected, 150, "expected = received + lost");
    ok(NEAR(m.max_gap_ms, 1120.0, 1e-9), "gap 1.98 s -> 3.1 s");
    bot_stats_on_sr(&s, 5, 3200000u); /* older than the last (reordered): ignored */
    bot_stats_media_at(&s, 3100000u, &m);
    is_int(m.lost_sr, 50, "a stale SR does not rewind the count");
    bot_stats_dispose(&s);
}

/* A sender that paused (skipped ticks) says so in its SR count: the clock
 * runs from the last SR, so the pause is not counted as loss. */
static void sr_explains_a_pause(void)
{
    bot_stats s;
    bot_stats_media m;
    bot_stats_init(&s, 48000);
    feed(&s, 0, 50, 0);
    bot_stats_on_sr(&s, 50, 1000000u);
    feed(&s, 50, 100, 1400000u); /* 400 ms pause, then on; the seq continues */
    bot_stats_on_sr(&s, 100, 2400000u);
    bot_stats_media_at(&s, 2450000u, &m);
    is_int(m.lost, 0, "a pause the sender reports is no loss");
    ok(NEAR(m.max_gap_ms, 420.0, 1e-9), "the pause is the longest gap");
    /* without its SRs, the clock from the first packet counts a pause the
     * timestamps show (they jump by the 400 ms) */
    bot_stats_dispose(&s);
    bot_stats_init(&s, 48000);
    feed(&s, 0, 50, 0);
    for (int i = 50; i < 100; i++)
        bot_stats_on_rtp(&s, (uint16_t)(100 + i), 5000u + 960u * (uint32_t)(i + 20),
                         1400000u + 20000u * (uint64_t)(i - 50));
    bot_stats_media_at(&s, 2450000u, &m);
    is_int(m.lost, 1 + (2450000 - 200000) / 20000 - 100, "no SR: the clock counts the pause");
    /* the same packets merely delayed (timestamps without the jump): late,
     * to the end, so not counted lost; the gap shows the delay */
    bot_stats_dispose(&s);
    bot_stats_init(&s, 48000);
    feed(&s, 0, 50, 0);
    feed(&s, 50, 100, 1400000u);
    bot_stats_media_at(&s, 2450000u, &m);
    is_int(m.lost, 0, "no SR, packets delayed 400 ms: not lost");
    ok(NEAR(m.max_gap_ms, 420.0, 1e-9), "the delay is the longest gap");
    bot_stats_dispose(&s);
}

/* The peer finished first and said BYE: the silence after it is not loss. */
static void bye_ends_the_clock(void)
{
    bot_stats s;
    bot_stats_media m;
    bot_stats_init(&s, 48000);
    bot_stats_on_bye(&s, 100); /* before media: ignored */
    ok(s.bye_us == 0, "BYE before media ignored");
    feed(&s, 0, 350, 0);             /* 0 .. 6.98 s */
    bot_stats_on_bye(&s, 7000000u);  /* the peer stopped at 7 s */
    bot_stats_media_at(&s, 8000000u, &m); /* we stop at 8 s */
    is_int(m.lost, 0, "after BYE nothing is owed");
    ok(NEAR(m.max_gap_ms, 20.0, 1e-9), "gap ends at the BYE");
    bot_stats_on_bye(&s, 7500000u);
    bot_stats_media_at(&s, 8000000u, &m);
    is_int(m.lost, 0, "the first BYE counts");
    bot_stats_dispose(&s);
}

/* A loop that was busy at the end read its last packets 300 ms late: the
 * packets still queued when the call stopped are not lost. */
static void late_reader_at_the_end(void)
{
    bot_stats s;
    bot_stats_media m;
    bot_stats_init(&s, 48000);
    feed(&s, 0, 100, 0);                        /* 0 .. 1.98 s, on time */
    for (int i = 100; i < 110; i++)             /* due 2.0 .. 2.18 s, read at 2.48 .. 2.50 s */
        bot_stats_on_rtp(&s, (uint16_t)(100 + i), 5000u + 960u * (uint32_t)i,
                         2480000u + 2000u * (uint64_t)(i - 100));
    /* stopped at 2.5 s: packets due up to ~2.5 s were sent, 2.2 .. 2.48 still queued */
    bot_stats_media_at(&s, 2500000u, &m);
    /* seq 209 was due at 2.18 s and read at 2.498 s */
    ok(fabs(s.late_ticks - 0.318 * 48000) < 1, "last packet read 318 ms late");
    is_int(m.lost, 0, "queued packets of a late reader are not lost");
    /* the same stream simply stopping at 2.18 s, read on time: loss shows */
    bot_stats_dispose(&s);
    bot_stats_init(&s, 48000);
    feed(&s, 0, 110, 0);
    bot_stats_media_at(&s, 2500000u + 300000u, &m);
    is_int(m.lost, 1 + (2800000 - 200000) / 20000 - 110, "on time, then silence: lost");
    bot_stats_dispose(&s);
}

/* 40 ms packets: the clock takes its interval from the timestamps. */
static void interval_from_timestamps(void)
{
    bot_stats s;
    bot_stats_media m;
    bot_stats_init(&s, 48000);
    for (int i = 0; i < 25; i++) /* 0 .. 0.96 s */
        bot_stats_on_rtp(&s, (uint16_t)i, 1920u * (uint32_t)i, 40000u * (uint64_t)i);
    bot_stats_media_at(&s, 2200000u, &m);
    ok(NEAR(m.interval_ms, 40.0, 1e-9), "interval 40 ms");
    is_int(m.expected, 1 + (2200000 - 200000) / 40000, "expected by a 40 ms clock");
    bot_stats_dispose(&s);
}

/* The timeline shows a silent second as 100% lost, not as 0%. */
static void timeline_silent_second(void)
{
    bot_stats s;
    bot_stats_init(&s, 48000);
    feed(&s, 0, 50, 0);
    bot_stats_sample_at(&s, 1.0, 1000000u);
    bot_stats_sample_at(&s, 2.0, 2000000u);
    bot_stats_sample_at(&s, 3.0, 3000000u);
    is_int(s.tl_n, 3, "three samples");
    ok(s.tl[0].loss_pct < 10, "first second: media (the clock's slack aside)");
    ok(NEAR(s.tl[2].loss_pct, 100.0, 1e-9), "a second without packets: 100% loss");
    bot_stats_dispose(&s);
}

int main(void)
{
    stream_stops();
    sr_counts_tail_loss();
    sr_explains_a_pause();
    interval_from_timestamps();
    timeline_silent_second();
    bye_ends_the_clock();
    late_reader_at_the_end();
    no_loss_no_jitter();
    every_tenth_lost();
    constant_alternating_jitter();
    duplicates_and_reorder();
    timeline();
    emodel();
    rtt_and_percentiles();
    return done_testing();
}
