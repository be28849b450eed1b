/* stn_frame.c - ChannelData and stream framing. */
#include "stn_frame.h"

#include "rtc_err.h"
#include "rtc_rd.h"
#include "stn_msg.h"

int stn_chandata_parse(const uint8_t *buf, size_t len, uint16_t *chan, const uint8_t **data,
                       size_t *dlen)
{
    rtc_rd r, payload;
    uint16_t c, l;

    rtc_rd_init(&r, buf, len);
    if (!rtc_rd_u16(&r, &c) || !rtc_rd_u16(&r, &l) || !stn_is_channel(c) ||
        !rtc_rd_sub(&r, l, &payload))
        return RTC_EMSG;
    /* anything left must be padding (at most 3 bytes, RFC 8656 s.12.5) */
    if (rtc_rd_left(&r) > 3)
        return RTC_EMSG;
    *chan = c;
    *data = payload.p;
    *dlen = l;
    return 0;
}

void stn_chandata_header(uint8_t out[STN_CHANDATA_HDR], uint16_t chan, uint16_t dlen)
{
    out[0] = (uint8_t)(chan >> 8);
    out[1] = (uint8_t)chan;
    out[2] = (uint8_t)(dlen >> 8);
    out[3] = (uint8_t)dlen;
}

long stn_frame_len(const uint8_t *buf, size_t len)
{
    rtc_rd r;
    uint16_t first, flen;

    rtc_rd_init(&r, buf, len);
    if (!rtc_rd_u16(&r, &first) || !rtc_rd_u16(&r, &flen))
        return 0;
    switch (first >> 14) {
    case 0: /* STUN: 20-byte header + body; body length is a multiple of 4 */
        if (flen & 3)
            return RTC_EMSG;
        /* no cookie: only an RFC 3489 Binding request (RFC 8489 s.12) */
        if (len >= 8 && (buf[4] != 0x21 || buf[5] != 0x12 || buf[6] != 0xA4 || buf[7] != 0x42) &&
            first != stn_msg_type(STN_BINDING, STN_REQUEST))
            return RTC_EMSG;
        return (long)STN_HDR_LEN + flen;
    case 1: /* ChannelData, padded to 4 on streams */
        if (!stn_is_channel(first))
            return RTC_EMSG;
        return (long)(STN_CHANDATA_HDR + ((flen + 3u) & ~3u));
    default:
        return RTC_EMSG;
    }
}
