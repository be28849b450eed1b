/* bot_rtp.c - RTP/RTCP codec (see bot_rtp.h). Reads through rtc_rd, writes
 * through rtc_wr. */
#include "bot_rtp.h"

#include <string.h>

#include "rtc_err.h"
#include "rtc_rd.h"
#include "rtc_wr.h"

bot_pkt_kind bot_pkt_classify(const uint8_t *buf, size_t len)
{
    uint8_t b;
    if (len == 0)
        return BOT_PKT_OTHER;
    b = buf[0];
    if (b <= 3)
        return BOT_PKT_STUN;
    if (b >= 20 && b <= 63)
        return BOT_PKT_DTLS;
    if (b >= 128 && b <= 191) {
        if (len < 2)
            return BOT_PKT_OTHER;
        uint8_t pt = buf[1] & 0x7f;
        return (pt >= 64 && pt <= 95) ? BOT_PKT_RTCP : BOT_PKT_RTP;
    }
    return BOT_PKT_OTHER;
}

int bot_rtp_write(uint8_t *out, size_t cap, const bot_rtp_hdr *h)
{
    rtc_wr w;
    rtc_wr_init(&w, out, cap);
    rtc_wr_u8(&w, 0x80);
    rtc_wr_u8(&w, (uint8_t)((h->marker ? 0x80 : 0) | (h->pt & 0x7f)));
    rtc_wr_u16(&w, h->seq);
    rtc_wr_u32(&w, h->ts);
    rtc_wr_u32(&w, h->ssrc);
    return w.overflow ? RTC_ESPACE : (int)rtc_wr_len(&w);
}

int bot_rtp_parse(const uint8_t *buf, size_t len, bot_rtp_hdr *h)
{
    rtc_rd r;
    uint8_t b0, b1, pad = 0;
    size_t body;

    rtc_rd_init(&r, buf, len);
    if (!rtc_rd_u8(&r, &b0) || !rtc_rd_u8(&r, &b1) || !rtc_rd_u16(&r, &h->seq) ||
        !rtc_rd_u32(&r, &h->ts) || !rtc_rd_u32(&r, &h->ssrc))
        return RTC_EMSG;
    if ((b0 >> 6) != 2)
        return RTC_EMSG;
    if (!rtc_rd_skip(&r, 4u * (b0 & 0x0f)))
        return RTC_EMSG; /* CSRC list */
    if (b0 & 0x10) {     /* header extension (RFC 3550 s.5.3.1) */
        uint16_t profile, words;
        if (!rtc_rd_u16(&r, &profile) || !rtc_rd_u16(&r, &words) || !rtc_rd_skip(&r, 4u * words))
            return RTC_EMSG;
    }
    body = rtc_rd_left(&r);
    if (b0 & 0x20) { /* padding: count in the last byte, includes itself */
        if (body == 0)
            return RTC_EMSG;
        pad = r.end[-1];
        if (pad == 0 || pad > body)
            return RTC_EMSG;
    }
    h->pt = b1 & 0x7f;
    h->marker = (b1 & 0x80) != 0;
    h->payload_off = (size_t)(r.p - buf);
    h->payload_len = body - pad;
    return 0;
}

static void write_rb(rtc_wr *w, const bot_rtcp_rb *rb)
{
    uint32_t cum = (uint32_t)rb->cum_lost & 0xffffffu;
    rtc_wr_u32(w, rb->ssrc);
    rtc_wr_u32(w, (uint32_t)rb->fraction << 24 | cum);
    rtc_wr_u32(w, rb->ext_max_seq);
    rtc_wr_u32(w, rb->jitter);
    rtc_wr_u32(w, rb->lsr);
    rtc_wr_u32(w, rb->dlsr);
}

int bot_rtcp_write(uint8_t *out, size_t cap, const bot_rtcp_out *o)
{
    rtc_wr w;
    size_t clen, words, padn;
    uint8_t rc = o->has_rb ? 1 : 0;

    rtc_wr_init(&w, out, cap);
    /* SR (PT 200, s.6.4.1) or RR (PT 201, s.6.4.2); length in words - 1. */
    rtc_wr_u8(&w, (uint8_t)(0x80 | rc));
    rtc_wr_u8(&w, o->is_sr ? 200 : 201);
    rtc_wr_u16(&w, (uint16_t)((o->is_sr ? 6 : 1) + 6 * rc));
    rtc_wr_u32(&w, o->ssrc);
    if (o->is_sr) {
        rtc_wr_u64(&w, o->ntp);
        rtc_wr_u32(&w, o->rtp_ts);
        rtc_wr_u32(&w, o->pkt_count);
        rtc_wr_u32(&w, o->octet_count);
    }
    if (rc)
        write_rb(&w, &o->rb);
    /* SDES (PT 202, s.6.5) with one chunk: SSRC, CNAME item, END, pad to 4. */
    clen = o->cname ? strlen(o->cname) : 0;
    if (clen > 255)
        clen = 255;
    words = (4 + 2 + clen + 1 + 3) / 4; /* chunk: ssrc + item + end, padded */
    padn = words * 4 - (4 + 2 + clen);
    rtc_wr_u8(&w, 0x81);
    rtc_wr_u8(&w, 202);
    rtc_wr_u16(&w, (uint16_t)words);
    rtc_wr_u32(&w, o->ssrc);
    rtc_wr_u8(&w, 1);
    rtc_wr_u8(&w, (uint8_t)clen);
    rtc_wr_bytes(&w, o->cname, clen);
    rtc_wr_zero(&w, padn);
    if (o->bye) {
        /* BYE (PT 203, s.6.6): one source, no reason */
        rtc_wr_u8(&w, 0x81);
        rtc_wr_u8(&w, 203);
        rtc_wr_u16(&w, 1);
        rtc_wr_u32(&w, o->ssrc);
    }
    return w.overflow ? RTC_ESPACE : (int)rtc_wr_len(&w);
}

static bool read_rb(rtc_rd *r, bot_rtcp_rb *rb)
{
    uint32_t x;
    if (!rtc_rd_u32(r, &rb->ssrc) || !rtc_rd_u32(r, &x) || !rtc_rd_u32(r, &rb->ext_max_seq) ||
        !rtc_rd_u32(r, &rb->jitter) || !rtc_rd_u32(r, &rb->lsr) || !rtc_rd_u32(r, &rb->dlsr))
        return false;
    rb->fraction = (uint8_t)(x >> 24);
    x &= 0xffffffu;
    rb->cum_lost = (x & 0x800000u) ? (int32_t)(x | 0xff000000u) : (int32_t)x;
    return true;
}

int bot_rtcp_parse(const uint8_t *buf, size_t len, uint32_t our_ssrc, bot_rtcp_in *in)
{
    rtc_rd r;
    memset(in, 0, sizeof *in);
    rtc_rd_init(&r, buf, len);
    while (rtc_rd_left(&r) >= 4) {
        uint8_t b0, pt;
        uint16_t words;
        rtc_rd p;
        uint32_t ssrc;
        if (!rtc_rd_u8(&r, &b0) || !rtc_rd_u8(&r, &pt) || !rtc_rd_u16(&r, &words) ||
            (b0 >> 6) != 2 || !rtc_rd_sub(&r, 4u * words, &p))
            return RTC_EMSG;
        if (pt == 203 && (b0 & 0x1fu) && rtc_rd_u32(&p, &ssrc)) {
            in->got_bye = true;
            in->bye_ssrc = ssrc;
            continue;
        }
        if (pt != 200 && pt != 201)
            continue;
        if (!rtc_rd_u32(&p, &ssrc))
            return RTC_EMSG;
        if (pt == 200) {
            uint32_t hi, lo, ts, pc, oc;
            if (!rtc_rd_u32(&p, &hi) || !rtc_rd_u32(&p, &lo) || !rtc_rd_u32(&p, &ts) || !rtc_rd_u32(&p, &pc) ||
                !rtc_rd_u32(&p, &oc))
                return RTC_EMSG;
            in->sr_ntp = (uint64_t)hi << 32 | lo;
            in->sr_pkt_count = pc;
            in->got_sr = true;
            in->sr_ssrc = ssrc;
        }
        for (unsigned i = 0; i < (b0 & 0x1fu); i++) {
            bot_rtcp_rb rb;
            if (!read_rb(&p, &rb))
                return RTC_EMSG;
            if (rb.ssrc == our_ssrc) {
                in->rb = rb;
                in->got_rb = true;
            }
        }
    }
    return 0;
}

double bot_rtcp_rtt_ms(const bot_rtcp_rb *rb, uint32_t now_ntp32)
{
    uint32_t rtt;
    if (rb->lsr == 0)
        return -1;
    rtt = now_ntp32 - rb->lsr - rb->dlsr;
    if (rtt > 0x7fffffffu)
        return -1; /* clock went backwards or garbage: no sample */
    return (double)rtt * 1000.0 / 65536.0;
}
