/* bot_stats.h - what one call measured, and the arithmetic behind it.
 *
 * Receive side follows RFC 3550 appendix A: A.1 for the extended highest
 * sequence number, expected and lost packets (duplicates count as received,
 * so loss is clamped at 0), A.8 for interarrival jitter in timestamp units
 * (arrival time is the caller's monotonic clock at the moment the packet
 * came off the ICE socket). RTT comes from RTCP report blocks.
 *
 * A.1 counts loss only from sequence gaps, so a stream that stops (the relay
 * died, the path broke) shows no loss at all: the packets after the last one
 * received are invisible. Two more counts of what should have arrived close
 * that hole (issue 12), and the reported loss is the largest of the three:
 *   - the peer's RTCP sender reports: its packet count grew by so much
 *     between its first SR (after our first packet) and its last, while we
 *     received so much in between; before the first SR, A.1 stands;
 *   - the media clock: after the last SR (or the first packet, without one)
 *     the sender keeps one packet per interval (the RTP timestamp step of
 *     consecutive packets over the clock rate, 20 ms until seen) for as long
 *     as the call is up (until the call stops, or the sender's RTCP BYE), less
 *     BOT_STATS_TAIL_SLACK_US, plus how late the last packet was read
 *     (its transit time over the smallest seen, up to 1 s: a loop that was
 *     busy when the call stopped left packets unread, not lost), at the end
 *     for packets
 *     still in flight when the call stops. A sender with DTX breaks this
 *     assumption; the bot never uses DTX, nor do browsers by default.
 * The longest media gap is the longest time between two arrivals, or from
 * the last arrival to the end of the call (or now, while it is up).
 *
 * MOS uses a simplified ITU-T G.107 E-model, documented in docs/bot.md:
 *   R = 93.2 - Id - Ie_eff  (all other impairments at G.107 defaults)
 *   d = RTT/2 + max(2*jitter, 20 ms) jitter buffer + 26.5 ms (20 ms frame +
 *       6.5 ms Opus look-ahead)
 *   Id = 0.024 d + 0.11 (d - 177.3) H(d - 177.3)
 *   Ie_eff = Ie + (95 - Ie) Ppl / (Ppl/BurstR + Bpl), Ie = 0, Bpl = 25.1
 *       (G.113's G.711-with-PLC value, a conservative stand-in for Opus,
 *       which G.113 does not list), BurstR = 1 (random loss)
 *   MOS = 1 + 0.035 R + 7e-6 R (R - 60) (100 - R), clamped to [1, 4.5].
 *
 * Pure arithmetic, no clock reads: callers pass times. One owner thread. */
#ifndef BOT_STATS_H
#define BOT_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bot_rtp.h"

/* One point of the per-call timeline (one per second). */
typedef struct {
    double t_s;        /* since the call was created */
    double jitter_ms;
    double loss_pct;   /* over the interval since the previous sample */
    double rtt_ms;     /* latest RTT, -1 if none yet */
} bot_sample;

typedef struct {
    uint32_t rate;     /* RTP clock, 48000 for Opus */
    /* RFC 3550 A.1 */
    bool started;
    uint16_t max_seq;
    uint32_t cycles, base_seq;
    uint64_t received;
    /* RFC 3550 A.8, in timestamp units */
    double jitter, last_transit;
    bool have_transit;
    /* for RTCP "fraction lost" and the timeline's interval loss */
    uint64_t expected_prior, received_prior;
    uint64_t tl_expected_prior, tl_received_prior;
    /* counters kept by the call */
    uint64_t sent, sent_bytes, dropped_on_purpose, decoded, decode_errors, srtp_errors;
    /* RTT */
    double rtt_last, rtt_sum, rtt_max;
    uint64_t rtt_n;
    /* media that stops: arrivals (monotonic us), the RTP timestamp step of
     * consecutive packets (0 = not seen yet), the peer's SR packet counts */
    uint64_t first_us, last_us, max_gap_us;
    uint32_t ts_step, last_ts;
    uint16_t last_seq;
    bool have_sr;
    uint32_t sr_pc_first, sr_pc_last;   /* as sent: 32 bits, wrap handled */
    uint64_t sr_pc_delta;               /* sr_pc_last - sr_pc_first, extended */
    uint64_t sr_expected_first;         /* A.1 expected when the first SR came */
    uint64_t sr_received_first, sr_received_last;
    uint64_t sr_last_us;                /* arrival of the last SR */
    uint64_t bye_us;                    /* the sender's RTCP BYE arrived (0 = not) */
    /* how late the last packet was read, against the earliest (RTP
     * timestamp units): packets still queued when a call stops */
    double min_transit, late_ticks;
    bool have_min;
    /* timeline */
    bot_sample *tl;
    size_t tl_n, tl_cap;
} bot_stats;

void bot_stats_init(bot_stats *s, uint32_t rate);
void bot_stats_dispose(bot_stats *s);

/* One RTP packet that decrypted. arrival_us: monotonic microseconds. */
void bot_stats_on_rtp(bot_stats *s, uint16_t seq, uint32_t rtp_ts, uint64_t arrival_us);
void bot_stats_on_rtt(bot_stats *s, double rtt_ms);
/* The peer's RTCP sender report arrived at arrival_us with its sender's
 * packet count (RFC 3550 s.6.4.1). Ignored before our first RTP packet. */
void bot_stats_on_sr(bot_stats *s, uint32_t pkt_count, uint64_t arrival_us);

/* The sender said BYE (RFC 3550 s.6.6): it stopped sending on purpose, so
 * the media clock and the gap end there (a peer finishing before us). */
void bot_stats_on_bye(bot_stats *s, uint64_t arrival_us);

/* Packets in flight when a call stops are not counted lost by the clock. */
#define BOT_STATS_TAIL_SLACK_US 200000u

/* Loss of the stream as of end_us (when the call stopped, or now), the
 * largest of the three counts above; lost_* say what each count gave. */
typedef struct {
    uint64_t expected, lost;       /* expected = received + lost */
    double loss_pct;
    uint64_t lost_seq, lost_sr, lost_clock;
    double interval_ms;            /* the sender's packet interval used */
    double max_gap_ms;             /* longest media gap, 0 without media */
} bot_stats_media;
void bot_stats_media_at(const bot_stats *s, uint64_t end_us, bot_stats_media *out);

uint64_t bot_stats_expected(const bot_stats *s);
uint64_t bot_stats_lost(const bot_stats *s); /* expected - received, >= 0 */
double bot_stats_loss_pct(const bot_stats *s);
double bot_stats_jitter_ms(const bot_stats *s);
double bot_stats_rtt_avg(const bot_stats *s); /* -1 without samples */

/* Fill an RTCP report block about `ssrc` (RFC 3550 s.6.4.1, A.3). lsr/dlsr
 * are the caller's (they need the last SR's arrival time). */
void bot_stats_report_block(bot_stats *s, uint32_t ssrc, bot_rtcp_rb *rb);

/* Append a timeline point at t_s. -ENOMEM or 0. bot_stats_sample counts
 * the interval's loss by A.1 only; bot_stats_sample_at by
 * bot_stats_media_at(now_us), so a second without any packet shows up. */
int bot_stats_sample(bot_stats *s, double t_s);
int bot_stats_sample_at(bot_stats *s, double t_s, uint64_t now_us);

/* The E-model above. */
double bot_mos(double rtt_ms, double jitter_ms, double loss_pct);
double bot_mos_r(double rtt_ms, double jitter_ms, double loss_pct);

/* p-th percentile (0..100) of v[0..n) by linear interpolation between
 * closest ranks; sorts v in place. NAN-free; 0 when n == 0. */
double bot_percentile(double *v, size_t n, double p);

#endif
