/* fuzz_stun.c - libFuzzer target for the STUN codec (stn_msg, stn_attr,
 * stn_auth).
 *
 * Parse the input; when the parser accepts it, run every attribute decoder
 * on every attribute (decoders must cope with any attribute the parser lets
 * through, whatever its type), check MESSAGE-INTEGRITY (SHA-1 and SHA-256)
 * with a fixed key and FINGERPRINT, check the nonce decoders, then re-encode: each decoded typed
 * value is built again and must decode to the same value, and the whole view
 * is rebuilt attribute by attribute and must parse to the same view with
 * verifying MI/FP. Any disagreement aborts, so the codec's round-trip
 * properties are checked along with memory safety. The same file is linked
 * with standalone.c to replay the corpus as an ordinary meson test. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "rtc_addr.h"
#include "rtc_err.h"
#include "stn_attr.h"
#include "stn_auth.h"
#include "stn_frame.h"
#include "stn_msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                             \
    do {                                                                                     \
        if (!(c)) {                                                                          \
            fprintf(stderr, "fuzz_stun: invariant failed: %s (line %d)\n", #c, __LINE__);    \
            abort();                                                                         \
        }                                                                                    \
    } while (0)

static const uint8_t key[] = "VOkJxbRl1RmTxUk/WvJxBt";

/* Room for the largest message the codec can build (20 + 0xFFFC). */
static uint8_t out[STN_HDR_LEN + 0x10000];

static bool same_addr(const rtc_addr *a, const rtc_addr *b)
{
    return a->family == b->family && a->port == b->port &&
           memcmp(a->ip, b->ip, a->family == AF_INET6 ? 16 : 4) == 0;
}

/* Build one attribute into a fresh message with the same transaction id
 * and parse it back; returns the single attribute of the result. */
static const stn_attr_ref *reparse_one(stn_msg *m2, size_t len)
{
    CHECK(stn_msg_parse(m2, out, len) == 0);
    CHECK(m2->n_attrs == 1);
    return &m2->attrs[0];
}

static void check_addr(const stn_msg *m, const stn_attr_ref *a, bool xor)
{
    rtc_addr ad, back;
    stn_builder b;
    stn_msg m2;
    size_t len;
    int rc = xor ? stn_attr_get_xor_addr(m, a, &ad) : stn_attr_get_addr(m, a, &ad);

    if (rc) {
        CHECK(rc == RTC_EMSG);
        return;
    }
    CHECK(ad.family == AF_INET || ad.family == AF_INET6);
    stn_build_init(&b, out, sizeof out, m->method, m->cls, m->tid);
    if (xor)
        stn_build_xor_addr(&b, a->type, &ad);
    else
        stn_build_addr(&b, a->type, &ad);
    CHECK(stn_build_finish(&b, &len) == 0);
    a = reparse_one(&m2, len);
    rc = xor ? stn_attr_get_xor_addr(&m2, a, &back) : stn_attr_get_addr(&m2, a, &back);
    CHECK(rc == 0 && same_addr(&ad, &back));
}

static void check_error(const stn_msg *m, const stn_attr_ref *a)
{
    char reason[129];
    int code, code2;
    rtc_rd r, r2;
    stn_builder b;
    stn_msg m2;
    size_t len, rl;

    if (stn_attr_get_error(m, a, &code, &r))
        return;
    CHECK(code >= 300 && code <= 699);
    CHECK(rtc_rd_left(&r) + 4 == a->len);
    /* the encoder takes a C string of at most 128 bytes */
    rl = rtc_rd_left(&r) < 128 ? rtc_rd_left(&r) : 128;
    memcpy(reason, r.p, rl);
    reason[rl] = '\0';
    rl = strlen(reason);
    stn_build_init(&b, out, sizeof out, m->method, m->cls, m->tid);
    stn_build_error(&b, code, reason);
    CHECK(stn_build_finish(&b, &len) == 0);
    a = reparse_one(&m2, len);
    CHECK(stn_attr_get_error(&m2, a, &code2, &r2) == 0);
    CHECK(code2 == code && rtc_rd_left(&r2) == rl && memcmp(r2.p, reason, rl) == 0);
}

static void check_u32(const stn_msg *m, const stn_attr_ref *a)
{
    uint32_t v, v2;
    stn_builder b;
    stn_msg m2;
    size_t len;

    if (stn_attr_get_u32(m, a, &v)) {
        CHECK(a->len != 4);
        return;
    }
    CHECK(a->len == 4);
    stn_build_init(&b, out, sizeof out, m->method, m->cls, m->tid);
    stn_build_u32(&b, a->type, v);
    CHECK(stn_build_finish(&b, &len) == 0);
    a = reparse_one(&m2, len);
    CHECK(stn_attr_get_u32(&m2, a, &v2) == 0 && v2 == v);
}

static void check_channel(const stn_msg *m, const stn_attr_ref *a)
{
    uint16_t c, c2;
    stn_builder b;
    stn_msg m2;
    size_t len;

    if (stn_attr_get_channel(m, a, &c))
        return;
    stn_build_init(&b, out, sizeof out, m->method, m->cls, m->tid);
    stn_build_channel(&b, c);
    CHECK(stn_build_finish(&b, &len) == 0);
    a = reparse_one(&m2, len);
    CHECK(stn_attr_get_channel(&m2, a, &c2) == 0 && c2 == c);
}

static void check_others(const stn_msg *m, const stn_attr_ref *a)
{
    uint8_t proto;
    int fam;
    bool reserve;
    rtc_addr client = {.family = AF_INET, .ip = {192, 0, 2, 1}, .port = 3478};
    int rc;

    if (stn_attr_get_transport(m, a, &proto) == 0)
        CHECK(a->len == 4);
    if (stn_attr_get_family(m, a, &fam) == 0)
        CHECK(fam == AF_INET || fam == AF_INET6);
    if (stn_attr_get_even_port(m, a, &reserve) == 0)
        CHECK(a->len == 1 || a->len == 4);
    /* any attribute value is fed to the nonce checker as if it were NONCE */
    rc = stn_nonce_check(key, sizeof key - 1, m->buf + a->off, a->len, 1700000000u, &client);
    CHECK(rc == 0 || rc == RTC_EMSG || rc == RTC_ESTALE);
    {
        uint32_t feat = 0;
        rc = stn_nonce_check_cookie(key, sizeof key - 1, m->buf + a->off, a->len, 1700000000u,
                                    &client, &feat);
        CHECK(rc == 0 || rc == RTC_EMSG || rc == RTC_ESTALE);
        CHECK(feat <= 0xFFFFFFu);
    }
}

/* RFC 8489 / RFC 8656 additions: PASSWORD-ALGORITHM and ADDRESS-ERROR-CODE
 * decode any attribute or refuse it; what decodes builds back the same. */
static void check_rfc8489(const stn_msg *m, const stn_attr_ref *a)
{
    uint16_t alg, alg2;
    int fam, code, fam2, code2;
    rtc_rd r, r2;
    stn_builder b;
    stn_msg m2;
    size_t len;

    if (stn_attr_get_password_algorithm(m, a, &alg) == 0) {
        CHECK(a->len >= 4);
        stn_build_init(&b, out, sizeof out, m->method, m->cls, m->tid);
        stn_build_password_algorithm(&b, alg);
        CHECK(stn_build_finish(&b, &len) == 0);
        a = reparse_one(&m2, len);
        CHECK(stn_attr_get_password_algorithm(&m2, a, &alg2) == 0 && alg2 == alg);
        return;
    }
    if (stn_attr_get_address_error(m, a, &fam, &code, &r) == 0) {
        char reason[129];
        size_t rl = rtc_rd_left(&r) < 128 ? rtc_rd_left(&r) : 128;
        CHECK(code >= 300 && code <= 699 && (fam == AF_INET || fam == AF_INET6));
        memcpy(reason, r.p, rl);
        reason[rl] = '\0';
        rl = strlen(reason);
        stn_build_init(&b, out, sizeof out, m->method, m->cls, m->tid);
        stn_build_address_error(&b, fam, code, reason);
        CHECK(stn_build_finish(&b, &len) == 0);
        a = reparse_one(&m2, len);
        CHECK(stn_attr_get_address_error(&m2, a, &fam2, &code2, &r2) == 0);
        CHECK(fam2 == fam && code2 == code && rtc_rd_left(&r2) == rl);
    }
}

/* Rebuild the whole view and parse it again: same header, same attributes
 * in the same order, and MI/FP recomputed by the builder verify. */
static void check_rebuild(const stn_msg *m)
{
    static stn_msg m2; /* large; keep it off the fuzzer's stack */
    stn_builder b;
    size_t len;

    stn_build_init(&b, out, sizeof out, m->method, m->cls, m->tid);
    for (unsigned i = 0; i < m->n_attrs; i++) {
        const stn_attr_ref *a = &m->attrs[i];
        if ((int)i == m->mi)
            stn_build_integrity(&b, key, sizeof key - 1);
        else if ((int)i == m->mi256 && a->len == STN_MI256_LEN)
            stn_build_integrity_sha256(&b, key, sizeof key - 1);
        else if ((int)i == m->fp)
            stn_build_fingerprint(&b);
        else
            stn_build_attr(&b, a->type, m->buf + a->off, a->len);
    }
    /* the rebuild never holds more bytes than the original (ignored
     * attributes after MI are dropped), so it always fits */
    CHECK(stn_build_finish(&b, &len) == 0);
    CHECK(len <= m->len);
    CHECK(stn_msg_parse(&m2, out, len) == 0);
    CHECK(m2.method == m->method && m2.cls == m->cls);
    CHECK(memcmp(m2.tid, m->tid, STN_TID_LEN) == 0);
    CHECK(m2.n_attrs == m->n_attrs && m2.mi == m->mi && m2.fp == m->fp && m2.mi256 == m->mi256);
    CHECK(m2.n_unknown == m->n_unknown);
    CHECK(memcmp(m2.unknown, m->unknown, m->n_unknown * sizeof m->unknown[0]) == 0);
    for (unsigned i = 0; i < m->n_attrs; i++) {
        CHECK(m2.attrs[i].type == m->attrs[i].type && m2.attrs[i].len == m->attrs[i].len);
        if ((int)i != m->mi && (int)i != m->fp && !((int)i == m->mi256 && m->attrs[i].len == 32))
            CHECK(memcmp(out + m2.attrs[i].off, m->buf + m->attrs[i].off, m->attrs[i].len) ==
                  0);
    }
    if (m->mi >= 0)
        CHECK(stn_auth_check_integrity(&m2, key, sizeof key - 1));
    if (m->mi256 >= 0 && m->attrs[m->mi256].len == STN_MI256_LEN)
        CHECK(stn_auth_check_integrity_sha256(&m2, key, sizeof key - 1));
    CHECK(stn_auth_check_fingerprint(&m2));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static stn_msg m;
    long fl;

    fl = stn_frame_len(data, size);
    CHECK(fl == 0 || fl == RTC_EMSG || fl >= STN_CHANDATA_HDR);
    if (stn_msg_parse_rfc3489_binding(&m, data, size) == 0) {
        /* RFC 3489 form: only a cookie-less Binding request, one whole
         * stream frame, never also an RFC 8489 message; every
         * comprehension-required attribute is unknown to it */
        CHECK(!stn_is_stun(data, size) && fl == (long)size);
        CHECK(m.method == STN_BINDING && m.cls == STN_REQUEST && data[0] == 0 && data[1] == 1);
        CHECK(m.n_attrs <= STN_MAX_ATTRS && m.n_unknown <= STN_MAX_UNKNOWN);
        for (unsigned i = 0; i < m.n_unknown; i++)
            CHECK(m.unknown[i] < 0x8000);
        CHECK(stn_msg_parse(&m, data, size) == RTC_EMSG);
        return 0;
    }
    if (stn_msg_parse(&m, data, size) != 0)
        return 0;

    CHECK(stn_is_stun(data, size));
    CHECK(fl == (long)size); /* a parsed message is exactly one stream frame */
    CHECK(m.method <= 0xFFF && m.cls <= 3);
    CHECK((uint16_t)(data[0] << 8 | data[1]) == stn_msg_type(m.method, m.cls));
    CHECK(m.n_attrs <= STN_MAX_ATTRS && m.n_unknown <= STN_MAX_UNKNOWN);
    CHECK(m.mi < (int)m.n_attrs && m.fp < (int)m.n_attrs && m.mi256 < (int)m.n_attrs);
    if (m.mi256 >= 0) {
        uint16_t l = m.attrs[m.mi256].len;
        CHECK(l >= 16 && l <= 32 && l % 4 == 0);
        CHECK(m.mi256 == m.n_attrs - 1 || m.mi256 == m.fp - 1); /* only FP follows */
    }
    if (m.fp >= 0)
        CHECK(m.fp == m.n_attrs - 1);
    for (unsigned i = 0; i < m.n_attrs; i++) {
        const stn_attr_ref *a = &m.attrs[i];
        CHECK((size_t)a->off >= STN_HDR_LEN + 4 && (size_t)a->off + a->len <= size);
        check_addr(&m, a, true);
        check_addr(&m, a, false);
        check_error(&m, a);
        check_u32(&m, a);
        check_channel(&m, a);
        check_others(&m, a);
        check_rfc8489(&m, a);
    }
    for (unsigned i = 0; i < m.n_attrs; i++)
        CHECK(stn_msg_find(&m, m.attrs[i].type) <= &m.attrs[i]);
    (void)stn_auth_check_integrity(&m, key, sizeof key - 1);
    (void)stn_auth_check_integrity_sha256(&m, key, sizeof key - 1);
    (void)stn_auth_check_fingerprint(&m);
    check_rebuild(&m);
    return 0;
}
