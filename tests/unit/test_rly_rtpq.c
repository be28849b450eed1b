/* test_rly_rtpq.c - the relay's RTP stream tracker (relay/turn/rly_rtpq.c)
 * on made-up packet sequences: demultiplexing (RFC 7983, RFC 5761), loss,
 * reordering, duplicates, sequence wrap, a restarted sequence, SSRC change,
 * more SSRCs than slots, clock-rate inference at 48 and 90 kHz, and jitter
 * against a value computed by hand from RFC 3550 A.8. */
#include <string.h>

#include "rly_rtpq.h"
#include "tap.h"

static rly_rtpq_shard sh;

/* An RTP header (12 bytes) and 20 opaque payload bytes into p. */
static size_t rtp(uint8_t *p, uint8_t pt, uint16_t seq, uint32_t ts, uint32_t ssrc)
{
    memset(p, 0xA5, 32);
    p[0] = 0x80;
    p[1] = pt;
    p[2] = (uint8_t)(seq >> 8);
    p[3] = (uint8_t)seq;
    for (int i = 0; i < 4; i++) {
        p[4 + i] = (uint8_t)(ts >> (24 - 8 * i));
        p[8 + i] = (uint8_t)(ssrc >> (24 - 8 * i));
    }
    return 32;
}

static void see(rly_rtpq *q, uint16_t seq, uint32_t ts, uint32_t ssrc, uint64_t now_us)
{
    uint8_t p[32];
    size_t n = rtp(p, 111, seq, ts, ssrc);
    rly_rtpq_see(q, &sh, RLY_DIR_C2P, p, n, now_us);
}

static const rly_rtpq_src *find(const rly_rtpq *q, uint32_t ssrc)
{
    for (int i = 0; i < RLY_RTPQ_SLOTS; i++)
        if (q->src[i].used && q->src[i].ssrc == ssrc)
            return &q->src[i];
    return NULL;
}

static void test_demux(void)
{
    rly_rtpq q;
    uint8_t p[32];
    uint64_t rtp0 = sh.rtp[RLY_DIR_C2P], rtcp0 = sh.rtcp[RLY_DIR_C2P];

    memset(&q, 0, sizeof q);
    memset(p, 0, sizeof p); /* STUN: first byte 0 */
    rly_rtpq_see(&q, &sh, RLY_DIR_C2P, p, sizeof p, 0);
    p[0] = 22; /* DTLS handshake */
    rly_rtpq_see(&q, &sh, RLY_DIR_C2P, p, sizeof p, 0);
    p[0] = 0x40; /* ChannelData-looking: not RTP */
    rly_rtpq_see(&q, &sh, RLY_DIR_C2P, p, sizeof p, 0);
    p[0] = 0xC0; /* 192: past RFC 7983's 128-191 */
    rly_rtpq_see(&q, &sh, RLY_DIR_C2P, p, sizeof p, 0);
    ok(!q.src[0].used && q.rtcp == 0, "STUN, DTLS, 0x40 and 0xC0 are neither RTP nor RTCP");
    rtp(p, 200, 0, 0, 1); /* SR: PT 200 = 72 with the marker bit */
    rly_rtpq_see(&q, &sh, RLY_DIR_C2P, p, sizeof p, 0);
    rtp(p, 0x80 | 73, 0, 0, 1); /* RR with the "marker" bit: still RTCP */
    rly_rtpq_see(&q, &sh, RLY_DIR_C2P, p, sizeof p, 0);
    is_int(q.rtcp, 2, "payload types 72 and 73 (marker masked) are RTCP (RFC 5761)");
    ok(!q.src[0].used, "RTCP starts no stream");
    rtp(p, 0x80 | 96, 7, 0, 9); /* marker set, PT 96: RTP */
    rly_rtpq_see(&q, &sh, RLY_DIR_C2P, p, sizeof p, 0);
    ok(find(&q, 9) != NULL, "PT 96 with the marker bit is RTP and starts a stream");
    rly_rtpq_see(&q, &sh, RLY_DIR_C2P, p, 11, 0);
    is_int(find(&q, 9)->received, 1, "a datagram shorter than the RTP header is not counted");
    is_int(sh.rtp[RLY_DIR_C2P] - rtp0, 1, "shard counts the RTP packet");
    is_int(sh.rtcp[RLY_DIR_C2P] - rtcp0, 2, "shard counts the RTCP packets");
}

static void test_loss(void)
{
    rly_rtpq q;
    uint32_t exp, lost;
    const rly_rtpq_src *s;

    memset(&q, 0, sizeof q);
    for (uint32_t i = 0; i < 100; i++)
        if (i % 20 != 10)
            see(&q, (uint16_t)(1000 + i), i * 960, 0xAA, i * 20000);
    s = find(&q, 0xAA);
    rly_rtpq_counts(s, &exp, &lost);
    is_int(rly_rtpq_ext_max(s), 1099, "extended highest sequence number");
    is_int(exp, 100, "expected = highest - first + 1");
    is_int(lost, 5, "every 20th missing: 5 lost");
    is_int(s->received, 95, "95 received");
    is_int(s->dups + s->reordered, 0, "no duplicate, no reordering");
}

static void test_reorder_dup(void)
{
    rly_rtpq q;
    uint32_t exp, lost;
    const rly_rtpq_src *s;
    static const uint16_t seqs[] = {10, 11, 13, 12, 14, 14, 11, 15, 17, 16};

    memset(&q, 0, sizeof q);
    for (size_t i = 0; i < sizeof seqs / sizeof *seqs; i++)
        see(&q, seqs[i], 0, 0xBB, i * 1000);
    s = find(&q, 0xBB);
    rly_rtpq_counts(s, &exp, &lost);
    is_int(exp, 8, "10..17 expected");
    is_int(lost, 0, "reordered and duplicated: nothing lost");
    is_int(s->reordered, 2, "13/12 and 17/16: two reordered");
    is_int(s->dups, 2, "14 twice and 11 again: two duplicates");
    is_int(s->received, 8, "duplicates are not counted as received");

    /* a packet from before the first one: the stream began earlier */
    see(&q, 8, 0, 0xBB, 20000);
    rly_rtpq_counts(s, &exp, &lost);
    is_int(exp, 10, "late packet 8 lowers the base: 8..17 expected");
    is_int(lost, 1, "9 never came");

    /* 79 behind the highest: past the 64-packet window, still reordered */
    memset(&q, 0, sizeof q);
    for (uint16_t i = 0; i < 100; i++)
        if (i != 20)
            see(&q, i, 0, 0xBC, i * 1000u);
    see(&q, 20, 0, 0xBC, 200000);
    s = find(&q, 0xBC);
    rly_rtpq_counts(s, &exp, &lost);
    is_int(s->reordered, 1, "a packet 79 behind counts as reordered");
    is_int(lost, 0, "and is not lost");
}

static void test_wrap_restart(void)
{
    rly_rtpq q;
    uint32_t exp, lost;
    const rly_rtpq_src *s;

    memset(&q, 0, sizeof q);
    for (uint32_t i = 0; i < 12; i++)
        see(&q, (uint16_t)(65530 + i), 0, 0xCC, i * 1000u); /* 65530..65535, 0..5 */
    s = find(&q, 0xCC);
    rly_rtpq_counts(s, &exp, &lost);
    is_int(s->cycles, 65536, "one wrap of the sequence number");
    is_int(rly_rtpq_ext_max(s), 65536 + 5, "extended highest across the wrap");
    is_int(exp, 12, "12 expected across the wrap");
    is_int(lost, 0, "none lost");

    /* a jump of 20000: ignored once (A.1 bad_seq), believed when the next
     * packet follows it: the sender restarted its sequence */
    see(&q, 20000, 0, 0xCC, 20000);
    rly_rtpq_counts(s, &exp, &lost);
    is_int(exp, 12, "a single jump is not believed");
    see(&q, 20001, 0, 0xCC, 21000);
    rly_rtpq_counts(s, &exp, &lost);
    is_int(rly_rtpq_ext_max(s), 20001, "two in sequence after the jump: restarted there");
    is_int(exp, 1, "counting starts again");
    is_int(lost, 0, "the jump is not loss");
}

static void test_ssrcs(void)
{
    rly_rtpq q;
    rly_rtpq_sum sum;
    uint64_t st0 = sh.streams[RLY_DIR_C2P], un0 = sh.untracked[RLY_DIR_C2P];
    uint64_t obs0 = sh.loss[RLY_DIR_C2P].count;

    memset(&q, 0, sizeof q);
    /* SSRC change: a new stream next to the old one */
    for (uint16_t i = 0; i < 20; i++)
        see(&q, i, 0, 1, i * 20000u);
    for (uint16_t i = 0; i < 20; i++)
        see(&q, (uint16_t)(5000 + i), 0, 2, 400000 + i * 20000u);
    rly_rtpq_summary(&q, &sum);
    is_int(sum.streams, 2, "an SSRC change makes a second stream");
    is_int(sum.expected, 40, "both counted");
    is_int(sum.lost, 0, "nothing lost over the change");
    /* more SSRCs than slots: counted, not tracked */
    for (uint32_t k = 3; k <= 6; k++)
        see(&q, 1, 0, k, 800000);
    see(&q, 2, 0, 6, 800001);
    rly_rtpq_summary(&q, &sum);
    is_int(sum.streams, RLY_RTPQ_SLOTS, "slots are bounded");
    is_int(q.untracked, 3, "packets of SSRCs 5 and 6 counted as untracked");
    is_int(sh.streams[RLY_DIR_C2P] - st0, 4, "shard: 4 streams");
    is_int(sh.untracked[RLY_DIR_C2P] - un0, 3, "shard: 3 untracked packets");
    /* 5 s later SSRC 1's slot is idle: a new SSRC takes it, the old
     * stream is observed first */
    see(&q, 1, 0, 7, 800000 + RLY_RTPQ_IDLE_US);
    ok(find(&q, 7) != NULL, "an idle slot is reused for a new SSRC");
    ok(find(&q, 1) == NULL || find(&q, 2) == NULL, "the idle stream left its slot");
    is_int(sh.loss[RLY_DIR_C2P].count - obs0, 1, "the ended stream is observed");
    rly_rtpq_finish(&q, &sh, RLY_DIR_C2P);
    /* SSRC 2 (20 packets) observed; 3, 4, 7 have 1 packet: too short */
    is_int(sh.loss[RLY_DIR_C2P].count - obs0, 2, "finish observes streams of >= 10 packets");
    ok(!q.src[0].used && !q.untracked, "finish clears the tracker");
}

static void test_rate_jitter(void)
{
    rly_rtpq q;
    const rly_rtpq_src *s;
    uint32_t t0 = 123456789, k;
    double want;

    /* 48 kHz audio, 20 ms packets, on time for 0.4 s */
    memset(&q, 0, sizeof q);
    for (k = 0; k <= 20; k++)
        see(&q, (uint16_t)k, t0 + k * 960, 0x48, 1000000 + k * 20000u);
    s = find(&q, 0x48);
    is_int(s->rate, 48000, "48 kHz inferred from 20 ms / 960 ticks");
    ok(rly_rtpq_jitter_s(s) == 0, "on-time packets: jitter 0");
    /* packet 21 arrives 2 ms late (96 ticks), packet 22 on time.
     * A.8 by hand: J1 = 0 + (96 - 0)/16 = 6; J2 = 6 + (96 - 6)/16 = 11.625
     * ticks = 11.625 / 48000 s */
    see(&q, 21, t0 + 21 * 960, 0x48, 1000000 + 21 * 20000u + 2000);
    see(&q, 22, t0 + 22 * 960, 0x48, 1000000 + 22 * 20000u);
    want = 11.625 / 48000.0;
    ok(rly_rtpq_jitter_s(s) - want < 1e-9 && want - rly_rtpq_jitter_s(s) < 1e-9, "jitter equals the hand-computed A.8 value");
    printf("# jitter %.9f s, want %.9f s\n", rly_rtpq_jitter_s(s), want);

    /* 90 kHz video, 30 frames/s (3000 ticks), a frame in 2 packets with
     * the same timestamp, arrival with ±3 ms of noise */
    memset(&q, 0, sizeof q);
    for (k = 0; k < 40; k++) {
        uint64_t at = 5000000 + (uint64_t)k * 33333 + (k % 3) * 1500u;
        see(&q, (uint16_t)(2 * k), k * 3000, 0x90, at);
        see(&q, (uint16_t)(2 * k + 1), k * 3000, 0x90, at + 200);
    }
    s = find(&q, 0x90);
    is_int(s->rate, 90000, "90 kHz inferred from video timestamps");
    ok(rly_rtpq_jitter_s(s) > 0 && rly_rtpq_jitter_s(s) < 0.005,
       "video jitter is a few ms at most");

    /* 8 kHz and 16 kHz too, and a timestamp that never moves: no rate */
    memset(&q, 0, sizeof q);
    for (k = 0; k <= 25; k++) {
        see(&q, (uint16_t)k, k * 160, 8, k * 20000u);
        see(&q, (uint16_t)k, k * 320, 16, k * 20000u);
        see(&q, (uint16_t)k, 77, 0, k * 20000u);
    }
    is_int(find(&q, 8)->rate, 8000, "8 kHz inferred");
    is_int(find(&q, 16)->rate, 16000, "16 kHz inferred");
    is_int(find(&q, 0)->rate, 0, "a frozen timestamp gives no rate");
    ok(rly_rtpq_jitter_s(find(&q, 0)) < 0, "and no jitter");
}

static void test_render(void)
{
    rly_rtpq_shard sum;
    rtc_buf b;

    rly_rtpq_shard_init(&sum);
    rly_rtpq_shard_add(&sum, &sh);
    rly_rtpq_shard_add(&sum, &sh);
    is_int(sum.loss[RLY_DIR_C2P].count, 2 * sh.loss[RLY_DIR_C2P].count, "shards add up");
    rtc_buf_init(&b);
    rly_rtpq_render(&b, &sum);
    ok(!b.oom && strstr(b.p, "tsunagu_relay_stream_loss_ratio_bucket{direction=\"client_to_peer\","
                             "le=\"0.06\"}"),
       "loss histogram rendered with its direction");
    ok(strstr(b.p, "tsunagu_relay_stream_jitter_seconds_count{direction=\"peer_to_client\"} 0"),
       "jitter histogram per direction");
    ok(strstr(b.p, "# TYPE tsunagu_relay_streams_total counter"), "streams counter");
    rtc_buf_dispose(&b);
}

int main(void)
{
    rly_rtpq_shard_init(&sh);
    test_demux();
    test_loss();
    test_reorder_dup();
    test_wrap_restart();
    test_ssrcs();
    test_rate_jitter();
    test_render();
    return done_testing();
}
