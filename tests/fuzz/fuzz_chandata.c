/* fuzz_chandata.c - libFuzzer target for ChannelData and stream framing
 * (stn_frame: RFC 8656 s.12.4, s.12.5).
 *
 * The input is used two ways: as one datagram for stn_chandata_parse, and as
 * a TCP/TLS stream buffer that is walked frame by frame with stn_frame_len,
 * the way the relay's stream reader does. Every frame the framer delimits
 * must be accepted by the matching parser (ChannelData always; STUN when its
 * header is sane), and the walk must always make progress. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

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
    uint16_t chan;
    const uint8_t *payload;
    size_t dlen;
    uint8_t hdr[STN_CHANDATA_HDR];

    if (stn_chandata_parse(data, size, &chan, &payload, &dlen) != 0)
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    datagram(data, size);
    stream(data, size);
    return 0;
}
