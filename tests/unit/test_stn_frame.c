/* test_stn_frame.c - ChannelData (RFC 8656 s.12.4) and stream framing
 * (s.12.5): valid frames, padding, bad channel numbers, lying lengths, and
 * a mixed STUN/ChannelData stream fed to the framer one partial read at a
 * time, the way a TCP reader sees it. */
#include <string.h>

#include "rtc_err.h"
#include "stn_frame.h"
#include "stn_msg.h"
#include "tap.h"

static const uint8_t tid[12] = {1, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144};

static size_t chandata(uint8_t *out, uint16_t chan, const char *payload, size_t len, bool pad)
{
    size_t n = STN_CHANDATA_HDR + len;
    stn_chandata_header(out, chan, (uint16_t)len);
    memcpy(out + STN_CHANDATA_HDR, payload, len);
    while (pad && n % 4)
        out[n++] = 0;
    return n;
}

static void datagrams(void)
{
    uint8_t b[64];
    uint16_t chan = 0;
    const uint8_t *data = NULL;
    size_t dlen = 0, n;

    stn_chandata_header(b, 0x4abc, 0x0102);
    ok(memcmp(b, "\x4a\xbc\x01\x02", 4) == 0, "ChannelData header bytes");
    n = chandata(b, 0x4000, "hello", 5, true);
    is_int(n, 12, "5-byte payload padded to 12");
    ok(stn_chandata_parse(b, n, &chan, &data, &dlen) == 0 && chan == 0x4000 && dlen == 5 &&
           data == b + 4 && memcmp(data, "hello", 5) == 0,
       "padded ChannelData parses");
    ok(stn_chandata_parse(b, 9, &chan, &data, &dlen) == 0 && dlen == 5,
       "unpadded ChannelData (UDP) parses");
    b[12] = b[13] = 0;
    is_int(stn_chandata_parse(b, 13, &chan, &data, &dlen), RTC_EMSG, "4 bytes past the payload rejected");
    is_int(stn_chandata_parse(b, 8, &chan, &data, &dlen), RTC_EMSG, "payload cut short rejected");
    for (size_t k = 0; k < 4; k++)
        is_int(stn_chandata_parse(b, k, &chan, &data, &dlen), RTC_EMSG, "partial header rejected");
    n = chandata(b, 0x4fff, "", 0, true);
    ok(stn_chandata_parse(b, n, &chan, &data, &dlen) == 0 && chan == 0x4fff && dlen == 0,
       "empty payload on channel 0x4fff");
    {
        static const uint16_t badch[] = {0x0000, 0x3fff, 0x5000, 0x7fff, 0x8000, 0xffff};
        for (size_t i = 0; i < sizeof badch / sizeof badch[0]; i++) {
            n = chandata(b, badch[i], "abcd", 4, true);
            is_int(stn_chandata_parse(b, n, &chan, &data, &dlen), RTC_EMSG,
                   "channel outside 0x4000-0x4fff rejected");
        }
    }
    stn_chandata_header(b, 0x4001, 0xffff);
    is_int(stn_chandata_parse(b, 64, &chan, &data, &dlen), RTC_EMSG, "length 0xffff in 64 bytes rejected");
    ok(stn_is_channel(0x4000) && stn_is_channel(0x4fff) && !stn_is_channel(0x3fff) &&
           !stn_is_channel(0x5000),
       "stn_is_channel bounds");
}

static void frame_len(void)
{
    uint8_t b[64];
    stn_builder sb;
    size_t n = 0;

    stn_build_init(&sb, b, sizeof b, STN_BINDING, STN_REQUEST, tid);
    stn_build_u32(&sb, STN_A_PRIORITY, 7);
    stn_build_finish(&sb, &n);
    is_int(stn_frame_len(b, n), 28, "STUN frame: 20 + body");
    is_int(stn_frame_len(b, 4), 28, "STUN length known from 4 bytes");
    is_int(stn_frame_len(b, 100), 28, "more bytes buffered: still this frame's length");
    for (size_t k = 0; k < 4; k++)
        is_int(stn_frame_len(b, k), 0, "fewer than 4 bytes: need more");
    /* without the cookie only an RFC 3489 Binding request frames (RFC 8489
     * s.12); any other method or class is junk */
    b[5] ^= 1;
    is_int(stn_frame_len(b, n), 28, "Binding request without the cookie: RFC 3489, 20 + body");
    b[1] = 0x03; /* Allocate request */
    is_int(stn_frame_len(b, n), RTC_EMSG, "Allocate with a bad cookie: junk");
    b[0] = 0x01, b[1] = 0x01; /* Binding success */
    is_int(stn_frame_len(b, n), RTC_EMSG, "Binding response with a bad cookie: junk");
    b[1] = 0x11; /* Binding error response */
    is_int(stn_frame_len(b, n), RTC_EMSG, "Binding error with a bad cookie: junk");
    b[0] = 0x00; /* Binding indication */
    is_int(stn_frame_len(b, n), RTC_EMSG, "Binding indication with a bad cookie: junk");
    b[0] = 0x00, b[1] = 0x01;
    b[5] ^= 1;
    b[3] = 9;
    is_int(stn_frame_len(b, n), RTC_EMSG, "STUN body length not a multiple of 4: junk");

    stn_chandata_header(b, 0x4000, 5);
    is_int(stn_frame_len(b, 4), 12, "ChannelData 5 bytes: padded to 12 on streams");
    stn_chandata_header(b, 0x4000, 8);
    is_int(stn_frame_len(b, 4), 12, "ChannelData 8 bytes: 12");
    stn_chandata_header(b, 0x4000, 0);
    is_int(stn_frame_len(b, 4), 4, "ChannelData 0 bytes: 4");
    stn_chandata_header(b, 0x4fff, 0xffff);
    is_int(stn_frame_len(b, 4), 4 + 0x10000, "ChannelData 0xffff bytes: 4 + 0x10000");
    stn_chandata_header(b, 0x5000, 4);
    is_int(stn_frame_len(b, 4), RTC_EMSG, "channel 0x5000: junk");
    stn_chandata_header(b, 0x8000, 4);
    is_int(stn_frame_len(b, 4), RTC_EMSG, "first bits 10: junk");
    stn_chandata_header(b, 0xC001, 4);
    is_int(stn_frame_len(b, 4), RTC_EMSG, "first bits 11: junk");
    memcpy(b, "POST / HTTP/1.1\r\n", 17);
    is_int(stn_frame_len(b, 17), RTC_EMSG, "HTTP POST: junk ('PO' = 0x504f, no channel)");
    /* "GE" is 0x4745, a valid channel number: "GET " frames as ChannelData
     * of 0x5420 ("T ") bytes; the relay then drops it as an unbound channel */
    memcpy(b, "GET / HTTP/1.1\r\n", 16);
    is_int(stn_frame_len(b, 16), 4 + 0x5420, "HTTP GET looks like ChannelData 0x4745");
}

static void stream(void)
{
    uint8_t s[512];
    size_t len = 0, nframes = 0, bounds[8], split_bad = 0, k;
    stn_builder sb;
    size_t n = 0;

    len += chandata(s + len, 0x4000, "abc", 3, true);
    bounds[nframes++] = len;
    stn_build_init(&sb, s + len, sizeof s - len, STN_REFRESH, STN_REQUEST, tid);
    stn_build_u32(&sb, STN_A_LIFETIME, 0);
    stn_build_finish(&sb, &n);
    len += n;
    bounds[nframes++] = len;
    len += chandata(s + len, 0x4abc, "0123456789abcdefg", 17, true);
    bounds[nframes++] = len;
    len += chandata(s + len, 0x4001, "", 0, true);
    bounds[nframes++] = len;

    /* walk the whole buffer */
    {
        size_t off = 0, i = 0, good = 0;
        while (off < len && i < nframes) {
            long fl = stn_frame_len(s + off, len - off);
            if (fl <= 0 || off + (size_t)fl != bounds[i])
                break;
            off += (size_t)fl;
            i++;
            good++;
        }
        is_int(good, nframes, "stream walked frame by frame");
    }
    /* every prefix: the framer says "need more" or gives the right length */
    for (k = 0; k < len; k++) {
        size_t start = 0, i = 0;
        while (i < nframes && bounds[i] <= k)
            start = bounds[i++];
        if (start < k) {
            long fl = stn_frame_len(s + start, k - start);
            if (!(fl == 0 || (fl > 0 && start + (size_t)fl == bounds[i])))
                split_bad++;
        }
    }
    is_int(split_bad, 0, "every partial read: need more or the exact length");
    /* junk after valid frames is detected once reached */
    s[len] = 0xff;
    s[len + 1] = 0xff;
    s[len + 2] = 0;
    s[len + 3] = 0;
    is_int(stn_frame_len(s + len, 4), RTC_EMSG, "junk after the last frame");
}

int main(void)
{
    datagrams();
    frame_len();
    stream();
    return done_testing();
}
