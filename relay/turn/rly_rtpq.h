/* rly_rtpq.h - call quality seen by the relay without decrypting: the RTP
 * streams inside the datagrams an allocation forwards, one tracker per
 * allocation and direction.
 *
 * SRTP encrypts the payload, not the RTP header (RFC 3711 s.3.1), so the
 * sequence number, timestamp and SSRC are readable. A datagram is RTP or
 * RTCP when its first byte is 128-191 (RFC 7983 s.7: STUN 0-3, DTLS 20-63
 * and the rest are skipped), and RTCP when its payload type, marker bit
 * masked, is 64-95 (RFC 5761 s.4). Per SSRC: the extended highest sequence
 * number, received vs expected (RFC 3550 A.1, A.3), late packets told apart
 * as duplicates or reordered by a 64-packet window, and the interarrival
 * jitter of RFC 3550 A.8. The relay never sees SDP, so the clock rate comes
 * from the stream: timestamp advance over arrival time across its first
 * ~0.4 s, snapped to 8000, 16000, 48000 or 90000 Hz; jitter starts then.
 *
 * Bounded: RLY_RTPQ_SLOTS SSRCs per direction; packets of more SSRCs are
 * counted, not tracked (a slot idle for RLY_RTPQ_IDLE_US is reused, its
 * stream finished first). Pure state, embedded in the allocation: no
 * allocation, no lock, no clock (callers pass the loop's µs clock). A
 * stream is observed into the worker's shard of the histograms when it
 * ends (allocation released, slot reused); the scrape sums the shards. */
#ifndef RLY_RTPQ_H
#define RLY_RTPQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rtc_metrics.h"

#define RLY_RTPQ_SLOTS 4
#define RLY_RTPQ_IDLE_US 5000000u  /* a slot this quiet may take a new SSRC */
#define RLY_RTPQ_RATE_US 400000u   /* clock-rate inference window */
#define RLY_RTPQ_MIN_PKTS 10       /* shorter streams are counted, not observed */

enum { RLY_DIR_C2P = 0, RLY_DIR_P2C = 1, RLY_DIR_N };

typedef struct {
    uint32_t ssrc;
    uint32_t cycles;   /* sequence wraps x 65536 (RFC 3550 A.1) */
    uint32_t base_ext; /* lowest extended sequence number seen */
    uint32_t bad_seq;  /* A.1: a big jump is believed when seq follows it */
    uint32_t received; /* distinct packets (duplicates not counted) */
    uint32_t dups, reordered;
    uint64_t window; /* bit i: extended max - i was received */
    uint32_t rate;   /* inferred clock rate (Hz), 0 = not yet */
    uint32_t first_ts, last_transit;
    uint32_t jitter_q4; /* A.8 jitter x 16, timestamp units */
    uint64_t first_us, last_us;
    uint16_t max_seq;
    bool used, have_transit;
} rly_rtpq_src;

/* One direction of one allocation. */
typedef struct {
    rly_rtpq_src src[RLY_RTPQ_SLOTS];
    uint32_t untracked; /* RTP packets of SSRCs beyond the slots */
    uint32_t rtcp;      /* RTCP packets */
} rly_rtpq;

/* A worker's shard of the exported figures, by direction; written by the
 * worker only, summed by the scrape (rly_rtpq_render). */
typedef struct {
    rtc_hist loss[RLY_DIR_N], jitter[RLY_DIR_N];
    uint64_t streams[RLY_DIR_N];   /* SSRCs that got a slot */
    uint64_t untracked[RLY_DIR_N]; /* RTP packets of SSRCs that did not */
    uint64_t rtp[RLY_DIR_N], rtcp[RLY_DIR_N];
} rly_rtpq_shard;

void rly_rtpq_shard_init(rly_rtpq_shard *sh);

/* One RTP packet (out of line: rly_rtpq_see decides it is one). */
void rly_rtpq_rtp(rly_rtpq *q, rly_rtpq_shard *sh, int dir, const uint8_t *p, size_t n,
                  uint64_t now_us);

/* A datagram the allocation forwarded in direction dir (its payload: the
 * DATA of a Send, a ChannelData's data, a peer's datagram). Inline: most of
 * what is not RTP costs a compare. */
static inline void rly_rtpq_see(rly_rtpq *q, rly_rtpq_shard *sh, int dir, const uint8_t *p,
                                size_t n, uint64_t now_us)
{
    if (n < 8 || (p[0] & 0xC0) != 0x80)
        return;
    if ((p[1] & 0x7F) >= 64 && (p[1] & 0x7F) <= 95) {
        q->rtcp++;
        sh->rtcp[dir]++;
        return;
    }
    rly_rtpq_rtp(q, sh, dir, p, n, now_us);
}

/* Extended highest sequence number, expected and lost (never negative) of
 * one tracked stream. */
uint32_t rly_rtpq_ext_max(const rly_rtpq_src *s);
void rly_rtpq_counts(const rly_rtpq_src *s, uint32_t *expected, uint32_t *lost);
/* A.8 jitter in seconds; < 0 while the clock rate is unknown. */
double rly_rtpq_jitter_s(const rly_rtpq_src *s);

/* What one direction of an allocation saw, for its log line and the admin
 * API: streams tracked, packets expected and lost over them, loss ratio,
 * the largest jitter (s, -1 = none known). */
typedef struct {
    uint32_t streams, untracked, rtcp;
    uint64_t expected, lost, dups, reordered;
    double loss, jitter_s;
} rly_rtpq_sum;
void rly_rtpq_summary(const rly_rtpq *q, rly_rtpq_sum *out);

/* The allocation ends: observe its tracked streams into the shard. */
void rly_rtpq_finish(rly_rtpq *q, rly_rtpq_shard *sh, int dir);

/* The scrape: sum the workers' shards into one (made by
 * rly_rtpq_shard_init), then render it as /metrics text. */
void rly_rtpq_shard_add(rly_rtpq_shard *sum, const rly_rtpq_shard *sh);
void rly_rtpq_render(rtc_buf *b, const rly_rtpq_shard *sum);

#endif
