/* bot_stats.c - RFC 3550 receive statistics and the E-model (see header). */
#include "bot_stats.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DROPOUT 3000   /* RFC 3550 A.1 */
#define MAX_MISORDER 100

void bot_stats_init(bot_stats *s, uint32_t rate)
{
    memset(s, 0, sizeof *s);
    s->rate = rate;
    s->rtt_last = -1;
}

void bot_stats_dispose(bot_stats *s)
{
    free(s->tl);
    s->tl = NULL;
    s->tl_n = s->tl_cap = 0;
}

/* Arrival bookkeeping for gaps and the media clock: the longest silence
 * between two packets, and the sender's packet interval from the timestamp
 * step of two consecutive packets (bounded to Opus's 2.5..120 ms frames). */
static void track_arrival(bot_stats *s, uint16_t seq, uint32_t rtp_ts, uint64_t arrival_us)
{
    if (s->last_us && arrival_us > s->last_us && arrival_us - s->last_us > s->max_gap_us)
        s->max_gap_us = arrival_us - s->last_us;
    if (!s->received) {
        s->first_us = arrival_us;
    } else {
        uint32_t step = rtp_ts - s->last_ts;
        if (seq == (uint16_t)(s->last_seq + 1) && step >= s->rate / 400 && step <= s->rate / 8)
            s->ts_step = step;
    }
    if (arrival_us > s->last_us)
        s->last_us = arrival_us;
    s->last_seq = seq;
    s->last_ts = rtp_ts;
}

void bot_stats_on_rtp(bot_stats *s, uint16_t seq, uint32_t rtp_ts, uint64_t arrival_us)
{
    double arrival, transit;

    if (!s->started) {
        s->started = true;
        s->base_seq = seq;
        s->max_seq = seq;
    } else {
        uint16_t udelta = (uint16_t)(seq - s->max_seq);
        if (udelta < MAX_DROPOUT) {
            if (seq < s->max_seq)
                s->cycles += 65536; /* wrapped */
            s->max_seq = seq;
        } else if (udelta <= 65535 - MAX_MISORDER) {
            /* A jump this large is a restarted sender (A.1 would probe for
             * two packets): re-base so it is not counted as 60k lost. */
            s->base_seq = seq;
            s->max_seq = seq;
            s->cycles = 0;
            s->received = 0;
            s->expected_prior = s->received_prior = 0;
            s->tl_expected_prior = s->tl_received_prior = 0;
            /* its packet count restarted too; the clock counts from here */
            s->have_sr = false;
            s->bye_us = 0;
            s->have_min = false;
        }
        /* else: duplicate or reordered, counted below as A.1 does */
    }
    track_arrival(s, seq, rtp_ts, arrival_us);
    s->received++;

    /* A.8: J += (|D| - J) / 16 with transit = arrival - timestamp. */
    arrival = (double)arrival_us * s->rate / 1e6;
    transit = arrival - (double)rtp_ts;
    if (s->have_transit) {
        double d = transit - s->last_transit;
        /* rtp_ts wraps at 2^32: fold the difference back. */
        if (d > 2147483648.0)
            d -= 4294967296.0;
        else if (d < -2147483648.0)
            d += 4294967296.0;
        s->jitter += (fabs(d) - s->jitter) / 16.0;
    }
    s->last_transit = transit;
    s->have_transit = true;
    /* lateness of this packet against the fastest one (wrap folded) */
    if (!s->have_min) {
        s->min_transit = transit;
        s->have_min = true;
    }
    {
        double d = transit - s->min_transit;
        if (d > 2147483648.0)
            d -= 4294967296.0;
        else if (d < -2147483648.0)
            d += 4294967296.0;
        if (d < 0) {
            s->min_transit = transit;
            d = 0;
        }
        s->late_ticks = d;
    }
}

void bot_stats_on_rtt(bot_stats *s, double rtt_ms)
{
    if (rtt_ms < 0)
        return;
    s->rtt_last = rtt_ms;
    s->rtt_sum += rtt_ms;
    s->rtt_n++;
    if (rtt_ms > s->rtt_max)
        s->rtt_max = rtt_ms;
}

void bot_stats_on_sr(bot_stats *s, uint32_t pkt_count, uint64_t arrival_us)
{
    uint32_t d;
    if (!s->started)
        return; /* what it sent before we could decrypt is not ours to count */
    if (!s->have_sr) {
        s->have_sr = true;
        s->sr_pc_first = s->sr_pc_last = pkt_count;
        s->sr_pc_delta = 0;
        s->sr_expected_first = bot_stats_expected(s);
        s->sr_received_first = s->received;
    } else {
        d = pkt_count - s->sr_pc_last;
        if (d >= 0x80000000u)
            return; /* older than the last one (reordered): keep the newer */
        s->sr_pc_delta += d;
        s->sr_pc_last = pkt_count;
    }
    s->sr_received_last = s->received;
    s->sr_last_us = arrival_us;
}

void bot_stats_on_bye(bot_stats *s, uint64_t arrival_us)
{
    if (s->started && !s->bye_us)
        s->bye_us = arrival_us;
}

void bot_stats_media_at(const bot_stats *s, uint64_t end_us, bot_stats_media *o)
{
    uint64_t anchor_exp, anchor_us, due = 0, clock_exp, lost;
    double interval_us;

    memset(o, 0, sizeof *o);
    interval_us = s->rate ? (double)(s->ts_step ? s->ts_step : s->rate / 50) * 1e6 / s->rate : 20000;
    o->interval_ms = interval_us / 1000.0;
    if (!s->started)
        return;
    if (s->bye_us && s->bye_us < end_us)
        end_us = s->bye_us; /* nothing is owed after the sender's BYE */
    o->lost_seq = bot_stats_lost(s);
    if (s->have_sr) {
        /* before the first SR: A.1; from it to the last: the sender's count */
        anchor_exp = s->sr_expected_first + s->sr_pc_delta;
        o->lost_sr = anchor_exp > s->sr_received_last ? anchor_exp - s->sr_received_last : 0;
        anchor_us = s->sr_last_us;
    } else {
        anchor_exp = 1; /* the first packet */
        anchor_us = s->first_us;
    }
    {
        /* packets still queued for a late reader are not lost: a busy loop
         * read the last one `late` after its best case (capped, so that a
         * stream that stopped cannot hide behind it) */
        double late = s->rate ? s->late_ticks * 1e6 / s->rate : 0;
        uint64_t slack = BOT_STATS_TAIL_SLACK_US + (uint64_t)(late < 1e6 ? late : 1e6);
        if (end_us > anchor_us + slack)
            due = (uint64_t)((double)(end_us - anchor_us - slack) / interval_us);
    }
    clock_exp = anchor_exp + due;
    o->lost_clock = clock_exp > s->received ? clock_exp - s->received : 0;
    lost = o->lost_seq;
    if (o->lost_sr > lost)
        lost = o->lost_sr;
    if (o->lost_clock > lost)
        lost = o->lost_clock;
    o->lost = lost;
    o->expected = s->received + lost;
    o->loss_pct = o->expected ? 100.0 * (double)lost / (double)o->expected : 0;
    o->max_gap_ms = (double)s->max_gap_us / 1000.0;
    if (end_us > s->last_us && (double)(end_us - s->last_us) / 1000.0 > o->max_gap_ms)
        o->max_gap_ms = (double)(end_us - s->last_us) / 1000.0;
}

uint64_t bot_stats_expected(const bot_stats *s)
{
    if (!s->started)
        return 0;
    return (uint64_t)s->cycles + s->max_seq - s->base_seq + 1;
}

uint64_t bot_stats_lost(const bot_stats *s)
{
    uint64_t e = bot_stats_expected(s);
    return e > s->received ? e - s->received : 0;
}

double bot_stats_loss_pct(const bot_stats *s)
{
    uint64_t e = bot_stats_expected(s);
    return e ? 100.0 * (double)bot_stats_lost(s) / (double)e : 0.0;
}

double bot_stats_jitter_ms(const bot_stats *s)
{
    return s->rate ? s->jitter * 1000.0 / s->rate : 0.0;
}

double bot_stats_rtt_avg(const bot_stats *s) { return s->rtt_n ? s->rtt_sum / (double)s->rtt_n : -1; }

void bot_stats_report_block(bot_stats *s, uint32_t ssrc, bot_rtcp_rb *rb)
{
    uint64_t expected = bot_stats_expected(s);
    uint64_t exp_int = expected - s->expected_prior;
    uint64_t rec_int = s->received - s->received_prior;
    int64_t lost_int = (int64_t)exp_int - (int64_t)rec_int;
    int64_t lost = (int64_t)expected - (int64_t)s->received;

    s->expected_prior = expected;
    s->received_prior = s->received;
    rb->ssrc = ssrc;
    rb->fraction = (exp_int == 0 || lost_int <= 0) ? 0 : (uint8_t)((lost_int << 8) / (int64_t)exp_int);
    /* 24-bit signed, clamped (A.3) */
    if (lost > 0x7fffff)
        lost = 0x7fffff;
    if (lost < -0x800000)
        lost = -0x800000;
    rb->cum_lost = (int32_t)lost;
    rb->ext_max_seq = s->cycles + s->max_seq;
    rb->jitter = (uint32_t)s->jitter;
}

static int sample(bot_stats *s, double t_s, uint64_t expected)
{
    uint64_t exp_int = expected > s->tl_expected_prior ? expected - s->tl_expected_prior : 0;
    uint64_t rec_int = s->received - s->tl_received_prior;
    bot_sample *x;

    if (s->tl_n == s->tl_cap) {
        size_t cap = s->tl_cap ? s->tl_cap * 2 : 64;
        bot_sample *n = realloc(s->tl, cap * sizeof *n);
        if (!n)
            return -ENOMEM;
        s->tl = n;
        s->tl_cap = cap;
    }
    x = &s->tl[s->tl_n++];
    x->t_s = t_s;
    x->jitter_ms = bot_stats_jitter_ms(s);
    x->loss_pct = (exp_int && exp_int > rec_int) ? 100.0 * (double)(exp_int - rec_int) / (double)exp_int : 0;
    x->rtt_ms = s->rtt_last;
    s->tl_expected_prior = expected;
    s->tl_received_prior = s->received;
    return 0;
}

int bot_stats_sample(bot_stats *s, double t_s) { return sample(s, t_s, bot_stats_expected(s)); }

int bot_stats_sample_at(bot_stats *s, double t_s, uint64_t now_us)
{
    bot_stats_media m;
    bot_stats_media_at(s, now_us, &m);
    /* The combined count can step back a little (an SR replacing the
     * clock's guess): never below what was already counted. */
    return sample(s, t_s, m.expected > s->tl_expected_prior ? m.expected : s->tl_expected_prior);
}

double bot_mos_r(double rtt_ms, double jitter_ms, double loss_pct)
{
    double jb = 2 * jitter_ms < 20 ? 20 : 2 * jitter_ms;
    double d = (rtt_ms > 0 ? rtt_ms / 2 : 0) + jb + 26.5;
    double id = 0.024 * d + (d > 177.3 ? 0.11 * (d - 177.3) : 0);
    const double ie = 0, bpl = 25.1, burst_r = 1;
    double ppl = loss_pct < 0 ? 0 : loss_pct > 100 ? 100 : loss_pct;
    double ie_eff = ie + (95 - ie) * ppl / (ppl / burst_r + bpl);
    return 93.2 - id - ie_eff;
}

double bot_mos(double rtt_ms, double jitter_ms, double loss_pct)
{
    double r = bot_mos_r(rtt_ms, jitter_ms, loss_pct);
    double mos;
    if (r <= 0)
        return 1.0;
    if (r >= 100)
        return 4.5;
    mos = 1 + 0.035 * r + 7e-6 * r * (r - 60) * (100 - r);
    return mos < 1 ? 1 : mos > 4.5 ? 4.5 : mos;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double bot_percentile(double *v, size_t n, double p)
{
    double rank, frac;
    size_t lo;
    if (n == 0)
        return 0;
    qsort(v, n, sizeof *v, cmp_double);
    if (p <= 0)
        return v[0];
    if (p >= 100)
        return v[n - 1];
    rank = p / 100.0 * (double)(n - 1);
    lo = (size_t)rank;
    frac = rank - (double)lo;
    return lo + 1 < n ? v[lo] + frac * (v[lo + 1] - v[lo]) : v[lo];
}
