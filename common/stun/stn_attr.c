/* stn_attr.c - typed attribute decoders and encoders. */
#include "stn_attr.h"

#include <string.h>
#include <sys/socket.h>

#include "rtc_err.h"

/* Address value: 0x00, family, port, address (RFC 8489 s.14.1). With xor,
 * the port is XORed with the cookie's top 16 bits and the address with the
 * cookie (v4) or cookie || transaction id (v6), s.14.2. */
static int get_addr(const stn_msg *m, const stn_attr_ref *a, rtc_addr *out, bool xor)
{
    rtc_rd r = stn_attr_rd(m, a);
    uint8_t zero, fam;
    uint16_t port;
    size_t n;

    memset(out, 0, sizeof *out);
    if (!rtc_rd_u8(&r, &zero) || !rtc_rd_u8(&r, &fam) || !rtc_rd_u16(&r, &port))
        return RTC_EMSG;
    if (fam == 0x01)
        out->family = AF_INET, n = 4;
    else if (fam == 0x02)
        out->family = AF_INET6, n = 16;
    else
        return RTC_EMSG;
    if (rtc_rd_left(&r) != n || !rtc_rd_copy(&r, out->ip, n))
        return RTC_EMSG;
    if (xor) {
        uint8_t pad[16] = {0x21, 0x12, 0xA4, 0x42};
        memcpy(pad + 4, m->tid, STN_TID_LEN);
        port ^= (uint16_t)(STN_MAGIC >> 16);
        for (size_t i = 0; i < n; i++)
            out->ip[i] ^= pad[i];
    }
    out->port = port;
    return 0;
}

static void build_addr(stn_builder *b, uint16_t type, const rtc_addr *addr, bool xor)
{
    uint8_t v[20], *tid;
    size_t n = addr->family == AF_INET6 ? 16 : 4;
    uint16_t port = addr->port;

    v[0] = 0;
    v[1] = addr->family == AF_INET6 ? 0x02 : 0x01;
    memcpy(v + 4, addr->ip, n);
    if (xor) {
        /* the builder's header holds the transaction id at offset 8 */
        uint8_t pad[16] = {0x21, 0x12, 0xA4, 0x42};
        if (rtc_wr_len(&b->w) < STN_HDR_LEN) {
            b->w.overflow = true;
            return;
        }
        tid = b->w.start + 8;
        memcpy(pad + 4, tid, STN_TID_LEN);
        port ^= (uint16_t)(STN_MAGIC >> 16);
        for (size_t i = 0; i < n; i++)
            v[4 + i] ^= pad[i];
    }
    v[2] = (uint8_t)(port >> 8);
    v[3] = (uint8_t)port;
    stn_build_attr(b, type, v, 4 + n);
}

int stn_attr_get_xor_addr(const stn_msg *m, const stn_attr_ref *a, rtc_addr *out)
{
    return get_addr(m, a, out, true);
}

int stn_attr_get_addr(const stn_msg *m, const stn_attr_ref *a, rtc_addr *out)
{
    return get_addr(m, a, out, false);
}

void stn_build_xor_addr(stn_builder *b, uint16_t type, const rtc_addr *addr)
{
    build_addr(b, type, addr, true);
}

void stn_build_addr(stn_builder *b, uint16_t type, const rtc_addr *addr)
{
    build_addr(b, type, addr, false);
}

int stn_attr_get_error(const stn_msg *m, const stn_attr_ref *a, int *code, rtc_rd *reason)
{
    rtc_rd r = stn_attr_rd(m, a);
    uint16_t reserved;
    uint8_t cls, num;

    if (!rtc_rd_u16(&r, &reserved) || !rtc_rd_u8(&r, &cls) || !rtc_rd_u8(&r, &num))
        return RTC_EMSG;
    cls &= 0x07;
    if (cls < 3 || cls > 6 || num > 99)
        return RTC_EMSG;
    *code = cls * 100 + num;
    *reason = r;
    return 0;
}

void stn_build_error(stn_builder *b, int code, const char *reason)
{
    uint8_t v[4 + 128];
    size_t rl = reason ? strlen(reason) : 0;
    if (rl > 128)
        rl = 128; /* s.14.8 allows 763 bytes; ours are short fixed phrases */
    v[0] = v[1] = 0;
    v[2] = (uint8_t)(code / 100);
    v[3] = (uint8_t)(code % 100);
    if (rl)
        memcpy(v + 4, reason, rl);
    stn_build_attr(b, STN_A_ERROR_CODE, v, 4 + rl);
}

void stn_build_unknown(stn_builder *b, const uint16_t *types, size_t n)
{
    uint8_t v[2 * STN_MAX_UNKNOWN];
    if (n > STN_MAX_UNKNOWN)
        n = STN_MAX_UNKNOWN;
    for (size_t i = 0; i < n; i++) {
        v[2 * i] = (uint8_t)(types[i] >> 8);
        v[2 * i + 1] = (uint8_t)types[i];
    }
    stn_build_attr(b, STN_A_UNKNOWN_ATTRIBUTES, v, 2 * n);
}

int stn_attr_get_u32(const stn_msg *m, const stn_attr_ref *a, uint32_t *out)
{
    rtc_rd r = stn_attr_rd(m, a);
    if (a->len != 4 || !rtc_rd_u32(&r, out))
        return RTC_EMSG;
    return 0;
}

int stn_attr_get_channel(const stn_msg *m, const stn_attr_ref *a, uint16_t *chan)
{
    rtc_rd r = stn_attr_rd(m, a);
    if (a->len != 4 || !rtc_rd_u16(&r, chan))
        return RTC_EMSG;
    return 0;
}

void stn_build_channel(stn_builder *b, uint16_t chan)
{
    uint8_t v[4] = {(uint8_t)(chan >> 8), (uint8_t)chan, 0, 0};
    stn_build_attr(b, STN_A_CHANNEL_NUMBER, v, 4);
}

int stn_attr_get_transport(const stn_msg *m, const stn_attr_ref *a, uint8_t *proto)
{
    rtc_rd r = stn_attr_rd(m, a);
    if (a->len != 4 || !rtc_rd_u8(&r, proto))
        return RTC_EMSG;
    return 0;
}

int stn_attr_get_family(const stn_msg *m, const stn_attr_ref *a, int *family)
{
    rtc_rd r = stn_attr_rd(m, a);
    uint8_t f;
    if (a->len != 4 || !rtc_rd_u8(&r, &f))
        return RTC_EMSG;
    if (f == 0x01)
        *family = AF_INET;
    else if (f == 0x02)
        *family = AF_INET6;
    else
        return RTC_EMSG;
    return 0;
}

int stn_attr_get_even_port(const stn_msg *m, const stn_attr_ref *a, bool *reserve)
{
    rtc_rd r = stn_attr_rd(m, a);
    uint8_t v;
    /* one byte; some clients pad the value to 4 bytes */
    if ((a->len != 1 && a->len != 4) || !rtc_rd_u8(&r, &v))
        return RTC_EMSG;
    *reserve = (v & 0x80) != 0;
    return 0;
}

int stn_attr_get_address_error(const stn_msg *m, const stn_attr_ref *a, int *family, int *code,
                               rtc_rd *reason)
{
    rtc_rd r = stn_attr_rd(m, a);
    uint8_t fam, reserved, cls, num;

    /* Family (8), Reserved (13 bits), Class (3 bits), Number (8) */
    if (!rtc_rd_u8(&r, &fam) || !rtc_rd_u8(&r, &reserved) || !rtc_rd_u8(&r, &cls) ||
        !rtc_rd_u8(&r, &num))
        return RTC_EMSG;
    if (fam == 0x01)
        *family = AF_INET;
    else if (fam == 0x02)
        *family = AF_INET6;
    else
        return RTC_EMSG;
    cls &= 0x07;
    if (cls < 3 || cls > 6 || num > 99)
        return RTC_EMSG;
    *code = cls * 100 + num;
    *reason = r;
    return 0;
}

void stn_build_address_error(stn_builder *b, int family, int code, const char *reason)
{
    uint8_t v[4 + 128];
    size_t rl = reason ? strlen(reason) : 0;
    if (rl > 128)
        rl = 128;
    v[0] = family == AF_INET6 ? 0x02 : 0x01;
    v[1] = 0;
    v[2] = (uint8_t)(code / 100);
    v[3] = (uint8_t)(code % 100);
    if (rl)
        memcpy(v + 4, reason, rl);
    stn_build_attr(b, STN_A_ADDRESS_ERROR_CODE, v, 4 + rl);
}

int stn_attr_get_password_algorithm(const stn_msg *m, const stn_attr_ref *a, uint16_t *alg)
{
    rtc_rd r = stn_attr_rd(m, a);
    uint16_t plen;

    if (!rtc_rd_u16(&r, alg) || !rtc_rd_u16(&r, &plen) || !rtc_rd_skip(&r, plen) ||
        !rtc_rd_skip(&r, (4u - (plen & 3u)) & 3u) || rtc_rd_left(&r) != 0)
        return RTC_EMSG;
    return 0;
}

void stn_build_password_algorithm(stn_builder *b, uint16_t alg)
{
    uint8_t v[4] = {(uint8_t)(alg >> 8), (uint8_t)alg, 0, 0};
    stn_build_attr(b, STN_A_PASSWORD_ALGORITHM, v, 4);
}

void stn_build_password_algorithms(stn_builder *b, const uint16_t *algs, size_t n)
{
    uint8_t v[4 * 8];
    if (n > 8)
        n = 8;
    for (size_t i = 0; i < n; i++) {
        v[4 * i] = (uint8_t)(algs[i] >> 8);
        v[4 * i + 1] = (uint8_t)algs[i];
        v[4 * i + 2] = v[4 * i + 3] = 0;
    }
    stn_build_attr(b, STN_A_PASSWORD_ALGORITHMS, v, 4 * n);
}
