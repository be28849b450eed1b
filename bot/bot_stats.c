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
        }
        /* else: duplicate or reordered, counted below as A.1 does */
    }
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

int bot_stats_sample(bot_stats *s, double t_s)
{
    uint64_t expected = bot_stats_expected(s);
    uint64_t exp_int = expected - s->tl_expected_prior;
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
