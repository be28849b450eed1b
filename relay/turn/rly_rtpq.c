/* rly_rtpq.c - per-SSRC RTP statistics of the relay (rly_rtpq.h): RFC 3550
 * A.1 sequence tracking, A.8 jitter, the clock rate inferred from the
 * stream, and the histograms over finished streams.
 *
 * rly_rtpq_rtp runs per RTP packet on the worker thread: no allocation, no
 * logging, loops bounded by RLY_RTPQ_SLOTS. */
#include <stdio.h>
#include <string.h>

#include "rly_rtpq.h"
#include "rtc_rd.h"

#define SEQ_MOD 65536u
#define MAX_DROPOUT 3000u /* A.1 */
#define MAX_MISORDER 100u

static const double loss_bounds[] = {0.001, 0.005, 0.01, 0.02, 0.03, 0.04, 0.06,
                                     0.08,  0.1,   0.15, 0.2,  0.3,  0.5,  1};
static const double jitter_bounds[] = {0.0005, 0.001, 0.002, 0.005, 0.01, 0.02,
                                       0.03,   0.05,  0.1,   0.2,   0.5,  1};

void rly_rtpq_shard_init(rly_rtpq_shard *sh)
{
    memset(sh, 0, sizeof *sh);
    for (int d = 0; d < RLY_DIR_N; d++) {
        rtc_hist_init(&sh->loss[d], loss_bounds, sizeof loss_bounds / sizeof *loss_bounds);
        rtc_hist_init(&sh->jitter[d], jitter_bounds,
                      sizeof jitter_bounds / sizeof *jitter_bounds);
    }
}

uint32_t rly_rtpq_ext_max(const rly_rtpq_src *s)
{
    return s->cycles + s->max_seq;
}

void rly_rtpq_counts(const rly_rtpq_src *s, uint32_t *expected, uint32_t *lost)
{
    uint32_t exp = rly_rtpq_ext_max(s) - s->base_ext + 1;
    *expected = exp;
    *lost = exp > s->received ? exp - s->received : 0;
}

double rly_rtpq_jitter_s(const rly_rtpq_src *s)
{
    if (!s->rate)
        return -1;
    return (double)s->jitter_q4 / 16.0 / (double)s->rate;
}

/* A clock rate from ts advancing by dts in dus µs, snapped to the rates
 * RTP audio and video use; 0 when it is none of them (within a factor of
 * ~1.4: the geometric midpoints between neighbours). */
static uint32_t snap_rate(uint32_t dts, uint64_t dus)
{
    static const uint32_t rates[] = {8000, 16000, 48000, 90000};
    /* the midpoints between neighbours, and a factor of 1.5 outside */
    static const uint32_t lo[] = {5333, 11314, 27713, 65727};
    static const uint32_t hi[] = {11314, 27713, 65727, 135000};
    uint64_t est = dus ? (uint64_t)dts * 1000000u / dus : 0;

    for (size_t i = 0; i < sizeof rates / sizeof *rates; i++)
        if (est >= lo[i] && est < hi[i])
            return rates[i];
    return 0;
}

static void src_start(rly_rtpq_src *s, uint32_t ssrc, uint16_t seq, uint32_t ts,
                      uint64_t now_us)
{
    memset(s, 0, sizeof *s);
    s->used = true;
    s->ssrc = ssrc;
    s->max_seq = seq;
    s->base_ext = seq;
    s->bad_seq = SEQ_MOD + 1;
    s->received = 1;
    s->window = 1;
    s->first_ts = ts;
    s->first_us = s->last_us = now_us;
}

/* A.8 for an in-order packet, once the clock rate is known; before that,
 * try to infer it. Arrival is counted from the stream's first packet so
 * the product stays far from overflow. */
static void src_timing(rly_rtpq_src *s, uint32_t ts, uint64_t now_us)
{
    uint64_t dus = now_us - s->first_us;
    uint32_t arrival, transit;
    int32_t d;

    if (!s->rate) {
        if (dus < RLY_RTPQ_RATE_US)
            return;
        s->rate = snap_rate(ts - s->first_ts, dus);
        if (!s->rate) { /* not a rate we know: look again over the next window */
            s->first_ts = ts;
            s->first_us = now_us;
            return;
        }
    }
    arrival = (uint32_t)(dus * s->rate / 1000000u);
    transit = arrival - ts;
    if (s->have_transit) {
        d = (int32_t)(transit - s->last_transit);
        if (d < 0)
            d = -d;
        s->jitter_q4 += (uint32_t)d - ((s->jitter_q4 + 8) >> 4);
    }
    s->last_transit = transit;
    s->have_transit = true;
}

/* A packet behind the highest: a duplicate when the window saw it. */
static void src_late(rly_rtpq_src *s, uint32_t back)
{
    uint32_t ext_max = rly_rtpq_ext_max(s);
    if (back < 64) {
        uint64_t bit = (uint64_t)1 << back;
        if (s->window & bit) {
            s->dups++;
            return;
        }
        s->window |= bit;
    }
    s->reordered++;
    s->received++;
    /* older than the first packet: the stream started earlier */
    if (back <= ext_max && ext_max - back < s->base_ext)
        s->base_ext = ext_max - back;
}

static void src_seq(rly_rtpq_src *s, uint16_t seq, uint32_t ts, uint64_t now_us)
{
    uint16_t udelta = (uint16_t)(seq - s->max_seq);

    s->last_us = now_us;
    if (udelta == 0) {
        s->dups++;
    } else if (udelta < MAX_DROPOUT) {
        if (seq < s->max_seq)
            s->cycles += SEQ_MOD;
        s->max_seq = seq;
        s->window = udelta >= 64 ? 1 : (s->window << udelta) | 1;
        s->received++;
        s->bad_seq = SEQ_MOD + 1;
        src_timing(s, ts, now_us);
    } else if (udelta > SEQ_MOD - MAX_MISORDER) {
        src_late(s, SEQ_MOD - udelta);
    } else if (seq == s->bad_seq) {
        /* two packets in sequence after a jump: the sender restarted its
         * numbering (A.1); what came before is one stream, this another */
        uint32_t ssrc = s->ssrc;
        src_start(s, ssrc, seq, ts, now_us);
    } else {
        s->bad_seq = (uint32_t)(seq + 1) & (SEQ_MOD - 1);
    }
}

static void observe(const rly_rtpq_src *s, rly_rtpq_shard *sh, int dir)
{
    uint32_t exp, lost;
    double j = rly_rtpq_jitter_s(s);

    if (s->received < RLY_RTPQ_MIN_PKTS)
        return;
    rly_rtpq_counts(s, &exp, &lost);
    rtc_hist_observe(&sh->loss[dir], (double)lost / (double)exp);
    if (j >= 0)
        rtc_hist_observe(&sh->jitter[dir], j);
}

/* An SSRC without a slot: a free one, else one idle long enough (its
 * stream is observed first), else none (counted). Once per stream. */
static void src_new(rly_rtpq *q, rly_rtpq_shard *sh, int dir, uint16_t seq, uint32_t ts,
                    uint32_t ssrc, uint64_t now_us)
{
    rly_rtpq_src *s, *free_slot = NULL, *idle = NULL;

    for (int i = 0; i < RLY_RTPQ_SLOTS; i++) {
        s = &q->src[i];
        if (!s->used) {
            if (!free_slot)
                free_slot = s;
        } else if (!idle && now_us - s->last_us >= RLY_RTPQ_IDLE_US) {
            idle = s;
        }
    }
    s = free_slot;
    if (!s && idle) {
        observe(idle, sh, dir); /* its stream ended: a new one takes the slot */
        s = idle;
    }
    if (!s) {
        q->untracked++;
        sh->untracked[dir]++;
        return;
    }
    src_start(s, ssrc, seq, ts, now_us);
    sh->streams[dir]++;
}

void rly_rtpq_rtp(rly_rtpq *q, rly_rtpq_shard *sh, int dir, const uint8_t *p, size_t n,
                  uint64_t now_us)
{
    rtc_rd r;
    uint16_t seq;
    uint32_t ts, ssrc;

    rtc_rd_init(&r, p, n);
    if (!rtc_rd_skip(&r, 2) || !rtc_rd_u16(&r, &seq) || !rtc_rd_u32(&r, &ts) ||
        !rtc_rd_u32(&r, &ssrc))
        return;
    sh->rtp[dir]++;
    /* the common case: a packet of a stream that has its slot */
    for (int i = 0; i < RLY_RTPQ_SLOTS; i++)
        if (q->src[i].ssrc == ssrc && q->src[i].used) {
            src_seq(&q->src[i], seq, ts, now_us);
            return;
        }
    src_new(q, sh, dir, seq, ts, ssrc, now_us);
}

void rly_rtpq_summary(const rly_rtpq *q, rly_rtpq_sum *out)
{
    memset(out, 0, sizeof *out);
    out->untracked = q->untracked;
    out->rtcp = q->rtcp;
    out->jitter_s = -1;
    for (int i = 0; i < RLY_RTPQ_SLOTS; i++) {
        const rly_rtpq_src *s = &q->src[i];
        uint32_t exp, lost;
        double j;
        if (!s->used)
            continue;
        rly_rtpq_counts(s, &exp, &lost);
        out->streams++;
        out->expected += exp;
        out->lost += lost;
        out->dups += s->dups;
        out->reordered += s->reordered;
        j = rly_rtpq_jitter_s(s);
        if (j > out->jitter_s)
            out->jitter_s = j;
    }
    out->loss = out->expected ? (double)out->lost / (double)out->expected : 0;
}

void rly_rtpq_finish(rly_rtpq *q, rly_rtpq_shard *sh, int dir)
{
    for (int i = 0; i < RLY_RTPQ_SLOTS; i++)
        if (q->src[i].used)
            observe(&q->src[i], sh, dir);
    memset(q, 0, sizeof *q);
}

/* ---- the scrape ---- */

static void hist_add(rtc_hist *sum, const rtc_hist *h)
{
    for (size_t i = 0; i <= h->n && i <= RTC_HIST_MAX_BUCKETS; i++)
        sum->counts[i] += h->counts[i];
    sum->sum += h->sum;
    sum->count += h->count;
}

void rly_rtpq_shard_add(rly_rtpq_shard *sum, const rly_rtpq_shard *sh)
{
    for (int d = 0; d < RLY_DIR_N; d++) {
        hist_add(&sum->loss[d], &sh->loss[d]);
        hist_add(&sum->jitter[d], &sh->jitter[d]);
        sum->streams[d] += sh->streams[d];
        sum->untracked[d] += sh->untracked[d];
        sum->rtp[d] += sh->rtp[d];
        sum->rtcp[d] += sh->rtcp[d];
    }
}

static const char *const dir_label[RLY_DIR_N] = {"client_to_peer", "peer_to_client"};

static void render_hist(rtc_buf *b, const char *name, const char *help, const rtc_hist *h)
{
    rtc_metrics_header(b, name, "histogram", help);
    for (int d = 0; d < RLY_DIR_N; d++) {
        uint64_t cum = 0;
        for (size_t i = 0; i < h[d].n; i++) {
            cum += h[d].counts[i];
            rtc_buf_printf(b, "%s_bucket{direction=\"%s\",le=\"%g\"} %llu\n", name, dir_label[d],
                           h[d].bounds[i], (unsigned long long)cum);
        }
        cum += h[d].counts[h[d].n];
        rtc_buf_printf(b, "%s_bucket{direction=\"%s\",le=\"+Inf\"} %llu\n", name, dir_label[d],
                       (unsigned long long)cum);
        rtc_buf_printf(b, "%s_sum{direction=\"%s\"} %.9g\n", name, dir_label[d], h[d].sum);
        rtc_buf_printf(b, "%s_count{direction=\"%s\"} %llu\n", name, dir_label[d],
                       (unsigned long long)h[d].count);
    }
}

static void render_counter(rtc_buf *b, const char *name, const char *help, const uint64_t *v)
{
    rtc_metrics_header(b, name, "counter", help);
    for (int d = 0; d < RLY_DIR_N; d++) {
        char label[48];
        snprintf(label, sizeof label, "direction=\"%s\"", dir_label[d]);
        rtc_metrics_u64(b, name, label, v[d]);
    }
}

void rly_rtpq_render(rtc_buf *b, const rly_rtpq_shard *sum)
{
    render_hist(b, "tsunagu_relay_stream_loss_ratio",
                "RTP streams (SSRCs) the relay forwarded, by the share of their packets lost "
                "before the relay (RFC 3550 A.3); observed when the stream ends.",
                sum->loss);
    render_hist(b, "tsunagu_relay_stream_jitter_seconds",
                "RTP streams by interarrival jitter at the relay (RFC 3550 A.8, clock rate "
                "inferred from the stream); observed when the stream ends.",
                sum->jitter);
    render_counter(b, "tsunagu_relay_streams_total",
                   "RTP streams (SSRCs) tracked, per allocation and direction.", sum->streams);
    render_counter(b, "tsunagu_relay_stream_untracked_packets_total",
                   "RTP packets of SSRCs beyond the tracked slots of their allocation.",
                   sum->untracked);
    render_counter(b, "tsunagu_relay_rtp_packets_total",
                   "Relayed datagrams that were RTP (RFC 7983, RFC 5761).", sum->rtp);
    render_counter(b, "tsunagu_relay_rtcp_packets_total",
                   "Relayed datagrams that were RTCP (RFC 7983, RFC 5761).", sum->rtcp);
}
