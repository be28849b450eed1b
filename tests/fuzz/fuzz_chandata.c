/* fuzz_chandata.c - libFuzzer target for ChannelData and stream framing:
 * common's stn_frame (RFC 8656 s.12.4, s.12.5) and the relay's own parser
 * and framer (relay/turn/rly_chandata.h, rly_frame_len), which are what the
 * relay runs on client packets.
 *
 * The input is used two ways: as one datagram for both ChannelData parsers,
 * and as a TCP/TLS stream buffer that is walked frame by frame, once with
 * stn_frame_len and once with rly_frame_len, the way the relay's stream
 * reader does. Every frame a framer delimits must be accepted by the
 * matching parser (ChannelData always; STUN when its header is sane), and
 * the walk must always make progress.
 *
 * The two ChannelData parsers differ on purpose in one thing: the relay
 * takes channel numbers 0x4000-0x7FFF (RFC 5766 clients, --legacy-channels),
 * common only RFC 8656's 0x4000-0x4FFF. Inside that range they must agree
 * exactly (verdict, channel, payload), and the relay's framer must cut a
 * stream where common's does.
 *
 * What the relay forwards also goes through its RTP stream tracker
 * (relay/turn/rly_rtpq.c), which reads RTP headers of untrusted bytes: an
 * accepted ChannelData's payload (a client's packet) and the whole input
 * (a peer's datagram), across inputs so that sequences build up; its
 * counts must stay consistent. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "rly_chandata.h"
#include "rly_rtpq.h"
#include "rly_turn.h"
#include "rtc_err.h"
#include "stn_frame.h"
#include "stn_msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                             \
    do {                                                                                     \
        if (!(c)) {                                                                          \
            fprintf(stderr, "fuzz_chandata: invariant failed: %s (line %d)\n", #c, __LINE__); \
            abort();                                                                         \
        }                                                                                    \
    } while (0)

static void datagram(const uint8_t *data, size_t size)
{
    uint16_t chan = 0, rchan = 0, first = size >= 2 ? (uint16_t)(data[0] << 8 | data[1]) : 0;
    const uint8_t *payload = NULL;
    size_t dlen = 0;
    uint8_t hdr[STN_CHANDATA_HDR];
    rtc_rd rd;
    int rc = stn_chandata_parse(data, size, &chan, &payload, &dlen);
    int rrc = rly_chandata_parse(data, size, &rchan, &rd);

    if (rrc == 0) {
        CHECK(rly_is_channel(rchan) && rchan == first);
        CHECK(rd.p == data + STN_CHANDATA_HDR);
        CHECK(rtc_rd_left(&rd) + STN_CHANDATA_HDR <= size &&
              size - STN_CHANDATA_HDR - rtc_rd_left(&rd) <= 3);
    }
    /* the relay parser accepts all that common's does, and more only on
     * the legacy channel numbers */
    if (size < 2 || stn_is_channel(first)) {
        CHECK((rc == 0) == (rrc == 0));
        if (rc == 0)
            CHECK(rchan == chan && rd.p == payload && rtc_rd_left(&rd) == dlen);
    } else {
        CHECK(rc != 0);
        if (rrc == 0)
            CHECK(rchan >= 0x5000 && rchan <= RLY_CHAN_MAX);
    }
    if (rc != 0)
        return;
    CHECK(stn_is_channel(chan));
    CHECK(payload == data + STN_CHANDATA_HDR);
    CHECK(dlen + STN_CHANDATA_HDR <= size && size - STN_CHANDATA_HDR - dlen <= 3);
    stn_chandata_header(hdr, chan, (uint16_t)dlen);
    for (int i = 0; i < STN_CHANDATA_HDR; i++)
        CHECK(hdr[i] == data[i]);
}

static void stream(const uint8_t *data, size_t size)
{
    static stn_msg m;
    size_t off = 0;

    /* each step consumes at least 4 bytes, so this ends within size/4 steps */
    while (off < size) {
        const uint8_t *f = data + off;
        size_t left = size - off;
        long n = stn_frame_len(f, left);

        if (n == RTC_EMSG || n == 0) {
            if (n == 0)
                CHECK(left < 4); /* only a partial header is "need more" */
            return;
        }
        CHECK(n >= STN_CHANDATA_HDR);
        if ((size_t)n > left)
            return; /* the rest of the frame has not arrived */
        if ((f[0] & 0xC0) == 0x40) {
            uint16_t chan;
            const uint8_t *payload;
            size_t dlen;
            CHECK(n % 4 == 0);
            CHECK(stn_chandata_parse(f, (size_t)n, &chan, &payload, &dlen) == 0);
            CHECK(dlen + STN_CHANDATA_HDR <= (size_t)n);
        } else {
            CHECK((f[0] & 0xC0) == 0 && n >= STN_HDR_LEN);
            /* the framer vouches for header shape only; attributes may
             * still be malformed, but a parsed message has the frame's size */
            if (stn_msg_parse(&m, f, (size_t)n) == 0)
                CHECK(m.len == (size_t)n);
        }
        off += (size_t)n;
    }
}

/* The relay's stream walk: rly_frame_len cuts, rly_chandata_parse (or the
 * STUN parser) takes each frame, as the relay's TCP/TLS reader and
 * rly_turn_input do. */
static void stream_rly(const uint8_t *data, size_t size)
{
    static stn_msg m;
    size_t off = 0;

    while (off < size) {
        const uint8_t *f = data + off;
        size_t left = size - off;
        long n = rly_frame_len(f, left);

        if (n <= 0) {
            if (n == 0)
                CHECK(left < 4);
            return;
        }
        CHECK(n >= STN_CHANDATA_HDR);
        if ((size_t)n > left)
            return;
        if ((f[0] & 0xC0) == 0x40) {
            uint16_t chan;
            rtc_rd d;
            CHECK(n % 4 == 0);
            CHECK(rly_chandata_parse(f, (size_t)n, &chan, &d) == 0);
            if (stn_is_channel(chan))
                CHECK(stn_frame_len(f, left) == n);
        } else {
            CHECK((f[0] & 0xC0) == 0 && n >= STN_HDR_LEN);
            CHECK(stn_frame_len(f, left) == n);
            if (stn_msg_parse(&m, f, (size_t)n) == 0)
                CHECK(m.len == (size_t)n);
            /* a frame without the cookie is an RFC 3489 Binding request */
            if (!stn_is_stun(f, (size_t)n))
                CHECK(f[0] == 0 && f[1] == 1);
            if (stn_msg_parse_rfc3489_binding(&m, f, (size_t)n) == 0)
                CHECK(m.len == (size_t)n);
        }
        off += (size_t)n;
    }
}

/* One tracker per direction for the whole run (state across inputs, as an
 * allocation keeps it across packets); a clock 20 ms a packet. */
static void rtpq(const uint8_t *data, size_t size)
{
    static rly_rtpq q[RLY_DIR_N];
    static rly_rtpq_shard sh;
    static bool init;
    static uint64_t now_us = 1000000, n_in;
    uint16_t chan = 0;
    rtc_rd rd;

    if (!init) {
        rly_rtpq_shard_init(&sh);
        init = true;
    }
    now_us += 20000 + (size ? data[size - 1] : 0) * 100u;
    if (rly_chandata_parse(data, size, &chan, &rd) == 0)
        rly_rtpq_see(&q[RLY_DIR_C2P], &sh, RLY_DIR_C2P, rd.p, rtc_rd_left(&rd), now_us);
    rly_rtpq_see(&q[RLY_DIR_P2C], &sh, RLY_DIR_P2C, data, size, now_us);
    for (int d = 0; d < RLY_DIR_N; d++) {
        rly_rtpq_sum s;
        rly_rtpq_summary(&q[d], &s);
        CHECK(s.streams <= RLY_RTPQ_SLOTS && s.lost <= s.expected);
        CHECK(s.loss >= 0 && s.loss <= 1 && (s.jitter_s >= 0 || s.jitter_s == -1));
    }
    if (++n_in % 1000 == 0) /* the allocation ends now and then */
        for (int d = 0; d < RLY_DIR_N; d++)
            rly_rtpq_finish(&q[d], &sh, d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    datagram(data, size);
    rtpq(data, size);
    stream(data, size);
    stream_rly(data, size);
    return 0;
}
