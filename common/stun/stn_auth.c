/* stn_auth.c - MESSAGE-INTEGRITY, FINGERPRINT, long-term keys, nonces. */
#include "stn_auth.h"

#include <stdio.h>
#include <string.h>

#include "rtc_crypto.h"
#include "rtc_err.h"

/* The 20-byte header with its length field rewritten to end `tail` bytes
 * after the start of attribute a's TLV (RFC 8489 s.14.5, s.14.6); returns
 * how many body bytes precede that TLV. The header is copied so the input
 * buffer stays read-only. */
static size_t patched_header(const stn_msg *m, const stn_attr_ref *a, size_t tail,
                             uint8_t hdr[STN_HDR_LEN])
{
    size_t attr_start = (size_t)a->off - 4; /* TLV header precedes the value */
    size_t fake_len = attr_start + tail - STN_HDR_LEN;

    memcpy(hdr, m->buf, STN_HDR_LEN);
    hdr[2] = (uint8_t)(fake_len >> 8);
    hdr[3] = (uint8_t)fake_len;
    return attr_start - STN_HDR_LEN;
}

bool stn_auth_check_integrity(const stn_msg *m, const void *key, size_t keylen)
{
    uint8_t hdr[STN_HDR_LEN], mac[RTC_SHA1_LEN];
    const stn_attr_ref *a;
    size_t body;

    if (m->mi < 0)
        return false;
    a = &m->attrs[m->mi];
    body = patched_header(m, a, 4 + STN_MI_LEN, hdr);
    rtc_hmac_sha1_2(key, keylen, hdr, STN_HDR_LEN, m->buf + STN_HDR_LEN, body, mac);
    return rtc_ct_equal(mac, m->buf + a->off, STN_MI_LEN);
}

bool stn_auth_check_integrity_sha256(const stn_msg *m, const void *key, size_t keylen)
{
    uint8_t hdr[STN_HDR_LEN], mac[RTC_SHA256_LEN];
    const stn_attr_ref *a;
    size_t body;

    if (m->mi256 < 0)
        return false;
    a = &m->attrs[m->mi256];
    /* the parser admits 16..32 bytes in steps of 4; a view built otherwise
     * must not make us compare past the MAC */
    if (a->len < 16 || a->len > RTC_SHA256_LEN || (a->len & 3))
        return false;
    /* s.14.6: the length field ends just after the (possibly truncated)
     * attribute, and the first len bytes of the HMAC are compared */
    body = patched_header(m, a, 4u + a->len, hdr);
    rtc_hmac_sha256_2(key, keylen, hdr, STN_HDR_LEN, m->buf + STN_HDR_LEN, body, mac);
    return rtc_ct_equal(mac, m->buf + a->off, a->len);
}

bool stn_auth_check_fingerprint(const stn_msg *m)
{
    const stn_attr_ref *a;
    uint32_t want;
    rtc_rd r;

    if (m->fp < 0)
        return true;
    /* The parser guarantees FINGERPRINT is the last attribute, so the length
     * field as sent already ends just after it (s.14.7) and the CRC covers
     * the message exactly as received up to the attribute. */
    a = &m->attrs[m->fp];
    r = stn_attr_rd(m, a);
    if (!rtc_rd_u32(&r, &want))
        return false;
    return (rtc_crc32(m->buf, (size_t)a->off - 4) ^ STN_FP_XOR) == want;
}

void stn_build_integrity(stn_builder *b, const void *key, size_t keylen)
{
    uint8_t mac[RTC_SHA1_LEN];
    size_t len = rtc_wr_len(&b->w);

    if (b->w.overflow || len < STN_HDR_LEN || rtc_wr_room(&b->w) < 4 + STN_MI_LEN) {
        b->w.overflow = true;
        return;
    }
    /* length must already count MI itself (s.14.5) */
    rtc_wr_put_u16_at(&b->w, 2, (uint16_t)(len + 4 + STN_MI_LEN - STN_HDR_LEN));
    rtc_hmac_sha1(key, keylen, b->w.start, len, mac);
    stn_build_attr(b, STN_A_MESSAGE_INTEGRITY, mac, STN_MI_LEN);
}

void stn_build_integrity_sha256(stn_builder *b, const void *key, size_t keylen)
{
    uint8_t mac[RTC_SHA256_LEN];
    size_t len = rtc_wr_len(&b->w);

    if (b->w.overflow || len < STN_HDR_LEN || rtc_wr_room(&b->w) < 4 + STN_MI256_LEN) {
        b->w.overflow = true;
        return;
    }
    /* length must already count MI-SHA256 itself (s.14.6) */
    rtc_wr_put_u16_at(&b->w, 2, (uint16_t)(len + 4 + STN_MI256_LEN - STN_HDR_LEN));
    rtc_hmac_sha256(key, keylen, b->w.start, len, mac);
    stn_build_attr(b, STN_A_MESSAGE_INTEGRITY_SHA256, mac, STN_MI256_LEN);
}

void stn_build_fingerprint(stn_builder *b)
{
    size_t len = rtc_wr_len(&b->w);
    uint32_t crc;

    if (b->w.overflow || len < STN_HDR_LEN || rtc_wr_room(&b->w) < 8) {
        b->w.overflow = true;
        return;
    }
    rtc_wr_put_u16_at(&b->w, 2, (uint16_t)(len + 8 - STN_HDR_LEN));
    crc = rtc_crc32(b->w.start, len) ^ STN_FP_XOR;
    stn_build_u32(b, STN_A_FINGERPRINT, crc);
}

/* username ":" realm ":" password into buf (3 * 514 bytes); 0, or -1 when
 * a part is longer than STUN allows (such a key cannot match a real one). */
static int key_input(const char *user, size_t ulen, const char *realm, size_t rlen,
                     const char *pass, size_t plen, uint8_t *buf, size_t *n)
{
    if (ulen > 513 || rlen > 513 || plen > 513)
        return -1;
    *n = 0;
    memcpy(buf + *n, user, ulen), *n += ulen;
    buf[(*n)++] = ':';
    memcpy(buf + *n, realm, rlen), *n += rlen;
    buf[(*n)++] = ':';
    memcpy(buf + *n, pass, plen), *n += plen;
    return 0;
}

void stn_auth_longterm_key(const char *user, size_t ulen, const char *realm, size_t rlen,
                           const char *pass, size_t plen, uint8_t out[16])
{
    uint8_t buf[3 * 514];
    size_t n;

    if (key_input(user, ulen, realm, rlen, pass, plen, buf, &n)) {
        memset(out, 0, 16);
        return;
    }
    rtc_md5(buf, n, out);
    memset(buf, 0, sizeof buf);
}

void stn_auth_longterm_key_sha256(const char *user, size_t ulen, const char *realm, size_t rlen,
                                  const char *pass, size_t plen, uint8_t out[32])
{
    uint8_t buf[3 * 514];
    size_t n;

    if (key_input(user, ulen, realm, rlen, pass, plen, buf, &n)) {
        memset(out, 0, 32);
        return;
    }
    rtc_sha256(buf, n, out);
    memset(buf, 0, sizeof buf);
}

/* MAC of a nonce: expiry, the client's transport address and, for cookie
 * nonces, the 3 feature bytes (so the cookie cannot be edited). */
static void nonce_mac(const void *key, size_t keylen, uint64_t expiry_s, const rtc_addr *client,
                      const uint8_t *feat, uint8_t mac[RTC_SHA1_LEN])
{
    uint8_t msg[8 + 1 + 16 + 2 + 3];
    size_t n = 0;
    for (int i = 7; i >= 0; i--)
        msg[n++] = (uint8_t)(expiry_s >> (8 * i));
    msg[n++] = client->family;
    memcpy(msg + n, client->ip, 16), n += 16;
    msg[n++] = (uint8_t)(client->port >> 8);
    msg[n++] = (uint8_t)client->port;
    if (feat)
        memcpy(msg + n, feat, 3), n += 3;
    rtc_hmac_sha1(key, keylen, msg, n, mac);
}

void stn_nonce_make(const void *key, size_t keylen, uint64_t expiry_s, const rtc_addr *client,
                    char out[STN_NONCE_LEN + 1])
{
    uint8_t mac[RTC_SHA1_LEN];
    nonce_mac(key, keylen, expiry_s, client, NULL, mac);
    snprintf(out, 9, "%08x", (unsigned)(uint32_t)expiry_s);
    rtc_hex(mac, 12, out + 8);
}

void stn_nonce_make_cookie(const void *key, size_t keylen, uint64_t expiry_s,
                           const rtc_addr *client, uint32_t features,
                           char out[STN_NONCE_MAX_LEN + 1])
{
    uint8_t feat[3] = {(uint8_t)(features >> 16), (uint8_t)(features >> 8), (uint8_t)features};
    uint8_t mac[RTC_SHA1_LEN];

    memcpy(out, STN_NONCE_COOKIE, 9);
    rtc_base64_encode(feat, 3, out + 9, 5); /* exactly 4 characters, no padding */
    nonce_mac(key, keylen, expiry_s, client, feat, mac);
    snprintf(out + STN_NONCE_COOKIE_LEN, 9, "%08x", (unsigned)(uint32_t)expiry_s);
    rtc_base64url_encode(mac, 12, out + STN_NONCE_COOKIE_LEN + 8, 17); /* 16 characters */
}

static int hexval(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* The full expiry from its 8 lowercase hex digits (the low 32 bits),
 * rebuilt near now: valid until 2106 and across the wrap after it. */
static int nonce_expiry(const uint8_t *hex, uint64_t now_s, uint64_t *expiry)
{
    uint32_t exp32 = 0;
    for (int i = 0; i < 8; i++) {
        int v = hexval(hex[i]);
        if (v < 0)
            return RTC_EMSG;
        exp32 = exp32 << 4 | (uint32_t)v;
    }
    *expiry = (now_s & ~(uint64_t)0xFFFFFFFFu) | exp32;
    if (*expiry + 0x80000000u < now_s)
        *expiry += 0x100000000ULL;
    else if (*expiry > now_s + 0x80000000u && *expiry >= 0x100000000ULL)
        *expiry -= 0x100000000ULL;
    return 0;
}

int stn_nonce_check(const void *key, size_t keylen, const uint8_t *nonce, size_t len,
                    uint64_t now_s, const rtc_addr *client)
{
    uint8_t mac[RTC_SHA1_LEN];
    char want[2 * 12 + 1];
    uint64_t expiry;

    if (len != STN_NONCE_LEN || nonce_expiry(nonce, now_s, &expiry))
        return RTC_EMSG;
    nonce_mac(key, keylen, expiry, client, NULL, mac);
    rtc_hex(mac, 12, want);
    if (!rtc_ct_equal(want, nonce + 8, 24))
        return RTC_EMSG;
    return now_s >= expiry ? RTC_ESTALE : 0;
}

int stn_nonce_check_cookie(const void *key, size_t keylen, const uint8_t *nonce, size_t len,
                           uint64_t now_s, const rtc_addr *client, uint32_t *features)
{
    const uint8_t *body = nonce + STN_NONCE_COOKIE_LEN;
    uint8_t feat[4], mac[RTC_SHA1_LEN];
    char canon[5], want[17];
    uint64_t expiry;

    *features = 0;
    if (len < 9 || memcmp(nonce, STN_NONCE_COOKIE, 9) != 0)
        return stn_nonce_check(key, keylen, nonce, len, now_s, client);
    if (len != STN_NONCE_MAX_LEN ||
        rtc_base64_decode((const char *)nonce + 9, 4, feat, sizeof feat) != 3)
        return RTC_EMSG;
    /* one spelling only (base64 has two alphabets): re-encode and compare */
    if (rtc_base64_encode(feat, 3, canon, sizeof canon) != 4 || memcmp(canon, nonce + 9, 4))
        return RTC_EMSG;
    if (nonce_expiry(body, now_s, &expiry))
        return RTC_EMSG;
    nonce_mac(key, keylen, expiry, client, feat, mac);
    if (rtc_base64url_encode(mac, 12, want, sizeof want) != 16 ||
        !rtc_ct_equal(want, body + 8, 16))
        return RTC_EMSG;
    *features = (uint32_t)feat[0] << 16 | (uint32_t)feat[1] << 8 | feat[2];
    return now_s >= expiry ? RTC_ESTALE : 0;
}
