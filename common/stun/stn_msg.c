/* stn_msg.c - parse a STUN message into a view; build one into a writer. */
#include "stn_msg.h"

#include <string.h>

#include "rtc_err.h"

bool stn_is_stun(const uint8_t *buf, size_t len)
{
    return len >= STN_HDR_LEN && (buf[0] & 0xC0) == 0 && buf[4] == 0x21 && buf[5] == 0x12 &&
           buf[6] == 0xA4 && buf[7] == 0x42;
}

uint16_t stn_msg_type(uint16_t method, uint8_t cls)
{
    /* M11..M7 C1 M6..M4 C0 M3..M0 (RFC 8489 s.5, figure 3) */
    return (uint16_t)((method & 0x000F) | ((method & 0x0070) << 1) | ((method & 0x0F80) << 2) |
                      ((cls & 1) << 4) | ((cls & 2) << 7));
}

/* Attributes this codec understands: anything else below 0x8000 is
 * comprehension-required and goes to the unknown list (-> 420). */
static bool known(uint16_t t)
{
    switch (t) {
    case STN_A_MAPPED_ADDRESS:
    case STN_A_USERNAME:
    case STN_A_MESSAGE_INTEGRITY:
    case STN_A_ERROR_CODE:
    case STN_A_UNKNOWN_ATTRIBUTES:
    case STN_A_CHANNEL_NUMBER:
    case STN_A_LIFETIME:
    case STN_A_XOR_PEER_ADDRESS:
    case STN_A_DATA:
    case STN_A_REALM:
    case STN_A_NONCE:
    case STN_A_XOR_RELAYED_ADDRESS:
    case STN_A_REQUESTED_ADDRESS_FAMILY:
    case STN_A_EVEN_PORT:
    case STN_A_REQUESTED_TRANSPORT:
    case STN_A_DONT_FRAGMENT:
    case STN_A_MESSAGE_INTEGRITY_SHA256:
    case STN_A_PASSWORD_ALGORITHM:
    case STN_A_USERHASH:
    case STN_A_XOR_MAPPED_ADDRESS:
    case STN_A_RESERVATION_TOKEN:
    case STN_A_PRIORITY:
    case STN_A_USE_CANDIDATE:
    case STN_A_PADDING:
    case STN_A_RESPONSE_PORT:
    case STN_A_CONNECTION_ID:
        return true;
    default:
        return t >= 0x8000; /* comprehension-optional: ignored if unknown */
    }
}

/* Both header forms: RFC 8489 (classic false: the cookie required) and an
 * RFC 3489 Binding request (classic true: type 0x0001 and no cookie). The
 * flag is a constant at each call, so stn_msg_parse keeps its code. */
static inline int parse(stn_msg *m, const uint8_t *buf, size_t len, bool classic)
{
    rtc_rd r, body;
    uint16_t type, mlen;
    uint32_t magic;
    bool after_mi = false, after_mi256 = false;

    m->buf = buf;
    m->len = len;
    m->n_attrs = 0;
    m->mi = m->fp = m->mi256 = -1;
    m->n_unknown = 0;

    rtc_rd_init(&r, buf, len);
    if (!rtc_rd_u16(&r, &type) || !rtc_rd_u16(&r, &mlen) || !rtc_rd_u32(&r, &magic) ||
        !rtc_rd_copy(&r, m->tid, STN_TID_LEN))
        return RTC_EMSG;
    /* top two bits zero, 4-byte aligned body, the exact length, the cookie */
    if ((type & 0xC000) || (mlen & 3) || rtc_rd_left(&r) != mlen)
        return RTC_EMSG;
    if (classic ? magic == STN_MAGIC || type != stn_msg_type(STN_BINDING, STN_REQUEST)
                : magic != STN_MAGIC)
        return RTC_EMSG;
    m->method = (uint16_t)((type & 0x000F) | ((type & 0x00E0) >> 1) | ((type & 0x3E00) >> 2));
    m->cls = (uint8_t)(((type >> 4) & 1) | ((type >> 7) & 2));
    body = r;

    while (rtc_rd_left(&body) > 0) {
        uint16_t at, alen;
        rtc_rd val;
        size_t off;

        if (m->fp >= 0)
            return RTC_EMSG; /* FINGERPRINT must be the last attribute */
        if (!rtc_rd_u16(&body, &at) || !rtc_rd_u16(&body, &alen))
            return RTC_EMSG;
        off = (size_t)(body.p - buf);
        if (!rtc_rd_sub(&body, alen, &val) || !rtc_rd_skip(&body, (4u - (alen & 3u)) & 3u))
            return RTC_EMSG;
        if (after_mi && at != STN_A_FINGERPRINT && at != STN_A_MESSAGE_INTEGRITY_SHA256)
            continue; /* RFC 8489 s.14.5: ignored, not an error */
        if (after_mi256 && at != STN_A_FINGERPRINT)
            continue; /* s.14.6: only FINGERPRINT may follow MI-SHA256 */
        if (m->n_attrs >= STN_MAX_ATTRS)
            return RTC_EMSG;
        if (at == STN_A_MESSAGE_INTEGRITY) {
            if (alen != 20)
                return RTC_EMSG;
            m->mi = m->n_attrs;
            after_mi = true;
        } else if (at == STN_A_MESSAGE_INTEGRITY_SHA256) {
            /* s.14.6: 16 to 32 bytes (truncation allowed), a multiple of 4 */
            if (alen < 16 || alen > 32 || (alen & 3))
                return RTC_EMSG;
            m->mi256 = m->n_attrs;
            after_mi256 = true;
        } else if (at == STN_A_FINGERPRINT) {
            if (alen != 4)
                return RTC_EMSG;
            m->fp = m->n_attrs;
        } else if ((classic ? at < 0x8000 : !known(at)) && m->n_unknown < STN_MAX_UNKNOWN) {
            m->unknown[m->n_unknown++] = at;
        }
        m->attrs[m->n_attrs].type = at;
        m->attrs[m->n_attrs].len = alen;
        m->attrs[m->n_attrs].off = (uint32_t)off;
        m->n_attrs++;
    }
    return 0;
}

int stn_msg_parse(stn_msg *m, const uint8_t *buf, size_t len)
{
    return parse(m, buf, len, false);
}

int stn_msg_parse_rfc3489_binding(stn_msg *m, const uint8_t *buf, size_t len)
{
    return parse(m, buf, len, true);
}

const stn_attr_ref *stn_msg_find(const stn_msg *m, uint16_t type)
{
    for (unsigned i = 0; i < m->n_attrs; i++)
        if (m->attrs[i].type == type)
            return &m->attrs[i];
    return NULL;
}

static void patch_len(stn_builder *b)
{
    size_t len = rtc_wr_len(&b->w);
    if (len >= STN_HDR_LEN)
        rtc_wr_put_u16_at(&b->w, 2, (uint16_t)(len - STN_HDR_LEN));
}

void stn_build_init(stn_builder *b, void *buf, size_t cap, uint16_t method, uint8_t cls,
                    const uint8_t tid[STN_TID_LEN])
{
    rtc_wr_init(&b->w, buf, cap);
    rtc_wr_u16(&b->w, stn_msg_type(method, cls));
    rtc_wr_u16(&b->w, 0);
    rtc_wr_u32(&b->w, STN_MAGIC);
    rtc_wr_bytes(&b->w, tid, STN_TID_LEN);
}

void stn_build_attr(stn_builder *b, uint16_t type, const void *val, size_t len)
{
    size_t pad = (4 - (len & 3)) & 3;
    uint8_t *at;

    /* The whole padded TLV or nothing, so an overflow never leaves half an
     * attribute behind; the body must still fit the 16-bit length field
     * (at most 0xFFFC, a multiple of 4). */
    if (len > 0xFFFF || rtc_wr_len(&b->w) + 4 + len + pad > STN_HDR_LEN + 0xFFFCu) {
        b->w.overflow = true;
        return;
    }
    at = rtc_wr_reserve(&b->w, 4 + len + pad);
    if (!at)
        return;
    at[0] = (uint8_t)(type >> 8);
    at[1] = (uint8_t)type;
    at[2] = (uint8_t)(len >> 8);
    at[3] = (uint8_t)len;
    if (len)
        memcpy(at + 4, val, len);
    memset(at + 4 + len, 0, pad); /* zero padding: never leak memory */
    patch_len(b);
}

void stn_build_u32(stn_builder *b, uint16_t type, uint32_t v)
{
    uint8_t be[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    stn_build_attr(b, type, be, 4);
}

void stn_build_init_rfc3489(stn_builder *b, void *buf, size_t cap, uint16_t method,
                            uint8_t cls, const uint8_t id[STN_TID3489_LEN])
{
    rtc_wr_init(&b->w, buf, cap);
    rtc_wr_u16(&b->w, stn_msg_type(method, cls));
    rtc_wr_u16(&b->w, 0);
    rtc_wr_bytes(&b->w, id, STN_TID3489_LEN);
}

int stn_build_finish(stn_builder *b, size_t *len)
{
    if (b->w.overflow)
        return RTC_ESPACE;
    *len = rtc_wr_len(&b->w);
    return 0;
}
