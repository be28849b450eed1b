/* test_stn_msg.c - stn_msg parser and builder, mostly negative cases (s2n's
 * rule: every way a message can lie is a test).
 *
 * Every truncation of every RFC 5769 vector is rejected (parsed from an
 * exact-size heap copy, so ASan sees any read past the end); lengths that lie
 * about the body or an attribute are rejected; odd buffer addresses parse;
 * the attribute cap, MESSAGE-INTEGRITY/FINGERPRINT ordering rules, magic
 * cookie, top bits and unknown-attribute reporting behave as RFC 8489 s.5,
 * s.14 and s.14.5 say; the RFC 3489 form (s.12) only for a Binding request
 * and only through its own parser; the builder zero-pads, fails sticky and never writes a
 * partial attribute. argv[1] is the RFC 5769 vector directory. */
#include <stdlib.h>
#include <string.h>

#include "rtc_err.h"
#include "stn_attr.h"
#include "stn_auth.h"
#include "stn_msg.h"
#include "tap.h"
#include "test_stn_vec.h"

static const uint8_t tid[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
static const char *const vec_names[] = {"sample_request", "ipv4_response", "ipv6_response",
                                        "longterm_request"};

static stn_msg m; /* ~300 bytes; one shared view keeps the stack small */

static int parse_copy(const uint8_t *b, size_t len)
{
    uint8_t *copy = malloc(len ? len : 1);
    int rc;
    memcpy(copy, b, len);
    rc = stn_msg_parse(&m, copy, len);
    free(copy);
    return rc;
}

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void truncations(const char *dir)
{
    for (size_t k = 0; k < 4; k++) {
        vec v;
        size_t bad_ok = 0, trunc_hdr_ok = 0;
        char name[128];

        if (!ok(vec_load(dir, vec_names[k], &v) == 0, vec_names[k]))
            continue;
        ok(parse_copy(v.b, v.len) == 0, "whole vector parses");
        /* every proper prefix, with the header length as sent */
        for (size_t n = 0; n < v.len; n++)
            bad_ok += parse_copy(v.b, n) != RTC_EMSG;
        snprintf(name, sizeof name, "%s: all %zu truncations rejected", vec_names[k], v.len);
        is_int(bad_ok, 0, name);
        /* every 4-aligned prefix with the header length patched to match:
         * cuts inside an attribute must still be rejected; cuts between
         * attributes are complete (shorter) messages */
        for (size_t n = STN_HDR_LEN; n < v.len; n += 4) {
            uint8_t c[512];
            int rc;
            bool boundary = false;
            memcpy(c, v.b, n);
            put16(c + 2, (uint16_t)(n - STN_HDR_LEN));
            stn_msg_parse(&m, v.b, v.len);
            for (unsigned i = 0; i < m.n_attrs; i++)
                boundary |= (size_t)m.attrs[i].off - 4 == n;
            rc = parse_copy(c, n);
            if ((rc == 0) != boundary)
                trunc_hdr_ok++;
        }
        snprintf(name, sizeof name, "%s: length-patched cuts accepted only between attributes",
                 vec_names[k]);
        is_int(trunc_hdr_ok, 0, name);
    }
}

static void lying_lengths(const char *dir)
{
    vec v;
    uint8_t c[600];

    if (!ok(vec_load(dir, "sample_request", &v) == 0, "vector for length tests"))
        return;
    memcpy(c, v.b, v.len);
    put16(c + 2, 0x5c);
    is_int(parse_copy(c, v.len), RTC_EMSG, "header length 4 more than the datagram");
    memcpy(c, v.b, v.len);
    put16(c + 2, 0x54);
    is_int(parse_copy(c, v.len), RTC_EMSG, "header length 4 less than the datagram");
    memcpy(c, v.b, v.len);
    memset(c + v.len, 0, 4);
    is_int(parse_copy(c, v.len + 4), RTC_EMSG, "4 trailing bytes after the message");
    memcpy(c, v.b, v.len);
    c[v.len] = 0;
    put16(c + 2, 0x59);
    is_int(parse_copy(c, v.len + 1), RTC_EMSG, "body length not a multiple of 4");
    memcpy(c, v.b, v.len);
    put16(c + 22, 0x0100); /* SOFTWARE claims 256 bytes */
    is_int(parse_copy(c, v.len), RTC_EMSG, "attribute length past the end");
    memcpy(c, v.b, v.len);
    put16(c + 22, 0xFFFF);
    is_int(parse_copy(c, v.len), RTC_EMSG, "attribute length 0xFFFF");
    memcpy(c, v.b, v.len);
    put16(c + v.len - 6, 0x0008); /* FINGERPRINT claims 8 bytes at the very end */
    is_int(parse_copy(c, v.len), RTC_EMSG, "last attribute length past the end");
    memcpy(c, v.b, v.len);
    put16(c + 62, 0x000c); /* USERNAME 9 -> 12: swallows its own padding: still parses */
    ok(parse_copy(c, v.len) == 0 && stn_msg_find(&m, STN_A_USERNAME)->len == 12,
       "attribute length that covers its padding is taken as sent");
    memcpy(c, v.b, v.len);
    put16(c + 62, 0x000d); /* 13 bytes + 3 padding runs into MI's header */
    ok(parse_copy(c, v.len) != 0 || stn_msg_find(&m, STN_A_MESSAGE_INTEGRITY) == NULL,
       "attribute length into the next TLV never yields the original MI");
    memcpy(c, v.b, v.len);
    put16(c + 78, 19);
    is_int(parse_copy(c, v.len), RTC_EMSG, "MESSAGE-INTEGRITY of 19 bytes rejected");
    memcpy(c, v.b, v.len);
    put16(c + 102, 5);
    is_int(parse_copy(c, v.len), RTC_EMSG, "FINGERPRINT of 5 bytes rejected");
    /* an attribute header cut in half at the end of the body */
    memcpy(c, v.b, v.len);
    memcpy(c + v.len, "\x80\x22\x00\x00", 4);
    put16(c + 2, 0x5a);
    is_int(parse_copy(c, v.len + 2), RTC_EMSG, "half an attribute header at the end");
}

static void misaligned(const char *dir)
{
    for (size_t k = 0; k < 4; k++) {
        vec v;
        uint8_t *raw;
        size_t good = 0;
        char name[128];

        if (vec_load(dir, vec_names[k], &v))
            continue;
        raw = malloc(v.len + 8);
        for (size_t shift = 1; shift <= 7; shift += 2) {
            const stn_attr_ref *a;
            bool fine;
            memcpy(raw + shift, v.b, v.len);
            fine = stn_msg_parse(&m, raw + shift, v.len) == 0 && stn_auth_check_fingerprint(&m);
            /* every decoder reads through rtc_rd: UBSan's alignment check
             * would fire on any wide load from these odd addresses */
            for (unsigned i = 0; fine && i < m.n_attrs; i++) {
                rtc_addr ad;
                uint32_t u;
                a = &m.attrs[i];
                (void)stn_attr_get_xor_addr(&m, a, &ad);
                (void)stn_attr_get_u32(&m, a, &u);
            }
            if (fine && m.mi >= 0 && k < 3)
                fine = stn_auth_check_integrity(&m, "VOkJxbRl1RmTxUk/WvJxBt", 22);
            good += fine;
        }
        snprintf(name, sizeof name, "%s parses and verifies at buf+1, +3, +5, +7",
                 vec_names[k]);
        is_int(good, 4, name);
        free(raw);
    }
}

static size_t build_n(uint8_t *buf, size_t cap, unsigned n, uint16_t type)
{
    stn_builder b;
    size_t len = 0;
    stn_build_init(&b, buf, cap, STN_BINDING, STN_REQUEST, tid);
    for (unsigned i = 0; i < n; i++)
        stn_build_u32(&b, type, i);
    stn_build_finish(&b, &len);
    return len;
}

static void limits(void)
{
    static uint8_t big[STN_HDR_LEN + 0x10000 + 8];
    stn_builder b;
    size_t len = 0;

    len = build_n(big, sizeof big, STN_MAX_ATTRS, STN_A_PRIORITY);
    ok(parse_copy(big, len) == 0 && m.n_attrs == STN_MAX_ATTRS, "40 attributes accepted");
    /* past the cap attributes are counted, not indexed, so the relay can
     * answer the request (issue 14 item 3: it was dropped in silence) */
    len = build_n(big, sizeof big, STN_MAX_ATTRS + 1, STN_A_PRIORITY);
    ok(parse_copy(big, len) == 0 && m.n_attrs == STN_MAX_ATTRS && m.n_over == 1,
       "41 attributes: 40 in the view, 1 counted over");
    len = build_n(big, sizeof big, 1000, STN_A_PRIORITY);
    ok(parse_copy(big, len) == 0 && m.n_attrs == STN_MAX_ATTRS && m.n_over == 960,
       "1000 attributes: 960 counted over");

    /* the attributes that authenticate are kept past the cap, once each */
    stn_build_init(&b, big, sizeof big, STN_CREATE_PERMISSION, STN_REQUEST, tid);
    for (unsigned i = 0; i < STN_MAX_ATTRS + 5; i++)
        stn_build_u32(&b, STN_A_PRIORITY, i);
    stn_build_attr(&b, STN_A_USERNAME, "u", 1);
    stn_build_attr(&b, STN_A_USERNAME, "v", 1);
    stn_build_attr(&b, STN_A_REALM, "r", 1);
    stn_build_attr(&b, STN_A_NONCE, "n", 1);
    stn_build_u32(&b, 0x0030, 1); /* unknown comprehension-required */
    stn_build_integrity(&b, "k", 1);
    stn_build_fingerprint(&b);
    ok(stn_build_finish(&b, &len) == 0 && parse_copy(big, len) == 0 &&
           m.n_attrs == STN_MAX_ATTRS + 5 && m.n_over == 7 && m.mi == STN_MAX_ATTRS + 3 &&
           m.fp == STN_MAX_ATTRS + 4 && m.n_unknown == 1 && m.unknown[0] == 0x0030 &&
           stn_msg_find(&m, STN_A_USERNAME) && stn_msg_find(&m, STN_A_NONCE) &&
           big[stn_msg_find(&m, STN_A_USERNAME)->off] == 'u', /* m.buf was parse_copy's, freed */
       "past the cap: USERNAME (first), REALM, NONCE, MI, FP indexed; the rest counted");

    /* attributes ignored after MI do not count against the cap */
    stn_build_init(&b, big, sizeof big, STN_BINDING, STN_REQUEST, tid);
    for (unsigned i = 0; i < STN_MAX_ATTRS - 2; i++)
        stn_build_u32(&b, STN_A_PRIORITY, i);
    stn_build_integrity(&b, "k", 1);
    for (unsigned i = 0; i < 100; i++)
        stn_build_u32(&b, STN_A_LIFETIME, i);
    stn_build_fingerprint(&b);
    ok(stn_build_finish(&b, &len) == 0 && parse_copy(big, len) == 0 &&
           m.n_attrs == STN_MAX_ATTRS && m.fp == STN_MAX_ATTRS - 1,
       "100 ignored attributes after MI do not hit the cap; FP still found");

    /* the largest message STUN can express: 20 + 0xFFFC bytes */
    stn_build_init(&b, big, sizeof big, STN_SEND, STN_INDICATION, tid);
    {
        static uint8_t payload[0xFFF8];
        memset(payload, 0x5a, sizeof payload);
        stn_build_attr(&b, STN_A_DATA, payload, 0xFFF8);
    }
    ok(stn_build_finish(&b, &len) == 0 && len == STN_HDR_LEN + 0xFFFC,
       "a maximal 65552-byte message builds");
    ok(parse_copy(big, len) == 0 && m.n_attrs == 1 && m.attrs[0].len == 0xFFF8,
       "a maximal message parses");
    big[len] = 0;
    big[len + 1] = 0;
    big[len + 2] = 0;
    big[len + 3] = 0;
    is_int(parse_copy(big, len + 4), RTC_EMSG, "a datagram longer than 20 + 0xFFFC is rejected");
    ok(parse_copy(big, 70000 < sizeof big ? 70000 : sizeof big) == RTC_EMSG,
       "an oversized buffer is rejected");

    /* attributes past the 64 KiB offset mark must keep their true offset:
     * DATA of 0xFFE8 bytes puts LIFETIME's value at 65540 and FINGERPRINT's
     * at 65548 (the message is then maximal: 65552 bytes) */
    {
        static uint8_t payload[0xFFE8];
        const stn_attr_ref *a;
        uint32_t life = 0;
        memset(payload, 0x33, sizeof payload);
        stn_build_init(&b, big, sizeof big, STN_SEND, STN_INDICATION, tid);
        stn_build_attr(&b, STN_A_DATA, payload, sizeof payload);
        stn_build_u32(&b, STN_A_LIFETIME, 0xA1B2C3D4);
        stn_build_fingerprint(&b);
        ok(stn_build_finish(&b, &len) == 0 && len == STN_HDR_LEN + 0xFFFC,
           "maximal message with attributes past 64 KiB built");
        ok(stn_msg_parse(&m, big, len) == 0, "it parses");
        a = stn_msg_find(&m, STN_A_LIFETIME);
        ok(a && (size_t)a->off == 65540 && stn_attr_get_u32(&m, a, &life) == 0 &&
               life == 0xA1B2C3D4,
           "attribute at offset 65540 keeps its offset and decodes to its own value");
        ok(stn_auth_check_fingerprint(&m), "FINGERPRINT at offset 65548 verifies");
        big[len - 1] ^= 1;
        ok(!stn_auth_check_fingerprint(&m), "and fails when its CRC is wrong");
    }
    /* FINGERPRINT's value exactly at offset 65536: a 16-bit offset would
     * wrap to 0 and the CRC would run from 4 bytes before the buffer */
    {
        static uint8_t payload[0xFFE4];
        memset(payload, 0x44, sizeof payload);
        stn_build_init(&b, big, sizeof big, STN_SEND, STN_INDICATION, tid);
        stn_build_attr(&b, STN_A_DATA, payload, sizeof payload);
        stn_build_fingerprint(&b);
        ok(stn_build_finish(&b, &len) == 0 && len == 65540, "FP value at offset 65536 built");
        ok(stn_msg_parse(&m, big, len) == 0 && m.fp == 1 && m.attrs[1].off == 65536,
           "parsed with FP at its true offset");
        ok(stn_auth_check_fingerprint(&m), "FINGERPRINT at offset 65536 verifies");
    }
}

static void mi_fp_order(void)
{
    uint8_t buf[512];
    stn_builder b;
    size_t len = 0;

    /* USERNAME, MI, SOFTWARE, unknown-required 0x0031, FINGERPRINT */
    stn_build_init(&b, buf, sizeof buf, STN_BINDING, STN_REQUEST, tid);
    stn_build_attr(&b, STN_A_USERNAME, "alice", 5);
    stn_build_integrity(&b, "secret", 6);
    stn_build_attr(&b, STN_A_SOFTWARE, "after-mi", 8);
    stn_build_attr(&b, 0x0031, "x", 1);
    stn_build_fingerprint(&b);
    ok(stn_build_finish(&b, &len) == 0, "built MI, junk, FP");
    ok(parse_copy(buf, len) == 0, "attributes after MI do not make the message invalid");
    is_int(m.n_attrs, 3, "only USERNAME, MI, FP are in the view");
    ok(stn_msg_find(&m, STN_A_SOFTWARE) == NULL, "SOFTWARE after MI is ignored");
    is_int(m.n_unknown, 0, "unknown required attribute after MI is ignored, not reported");
    is_int(m.mi, 1, "MI index");
    is_int(m.fp, 2, "FINGERPRINT after MI is honoured");
    stn_msg_parse(&m, buf, len);
    ok(stn_auth_check_integrity(&m, "secret", 6), "MI verifies (covers only what precedes it)");
    ok(stn_auth_check_fingerprint(&m), "FP verifies (covers everything before it)");

    /* a second MESSAGE-INTEGRITY after the first is ignored too */
    stn_build_init(&b, buf, sizeof buf, STN_BINDING, STN_REQUEST, tid);
    stn_build_integrity(&b, "a", 1);
    stn_build_integrity(&b, "b", 1);
    ok(stn_build_finish(&b, &len) == 0 && stn_msg_parse(&m, buf, len) == 0 && m.n_attrs == 1 &&
           stn_auth_check_integrity(&m, "a", 1),
       "second MI ignored; the first one counts");

    /* anything after FINGERPRINT is malformed */
    stn_build_init(&b, buf, sizeof buf, STN_BINDING, STN_REQUEST, tid);
    stn_build_fingerprint(&b);
    stn_build_attr(&b, STN_A_SOFTWARE, "late", 4);
    ok(stn_build_finish(&b, &len) == 0, "built FP then SOFTWARE");
    is_int(parse_copy(buf, len), RTC_EMSG, "attribute after FINGERPRINT rejected");
    stn_build_init(&b, buf, sizeof buf, STN_BINDING, STN_REQUEST, tid);
    stn_build_fingerprint(&b);
    stn_build_fingerprint(&b);
    stn_build_finish(&b, &len);
    is_int(parse_copy(buf, len), RTC_EMSG, "two FINGERPRINTs rejected");
    stn_build_init(&b, buf, sizeof buf, STN_BINDING, STN_REQUEST, tid);
    stn_build_fingerprint(&b);
    stn_build_integrity(&b, "k", 1);
    stn_build_finish(&b, &len);
    is_int(parse_copy(buf, len), RTC_EMSG, "MI after FINGERPRINT rejected");

    /* MI-SHA256 after MI stays in the view (RFC 8489 s.14.6) */
    {
        uint8_t mac256[32] = {0};
        stn_build_init(&b, buf, sizeof buf, STN_BINDING, STN_REQUEST, tid);
        stn_build_integrity(&b, "k", 1);
        stn_build_attr(&b, STN_A_MESSAGE_INTEGRITY_SHA256, mac256, 32);
        stn_build_finish(&b, &len);
        ok(parse_copy(buf, len) == 0 && m.n_attrs == 2 &&
               stn_msg_find(&m, STN_A_MESSAGE_INTEGRITY_SHA256),
           "MESSAGE-INTEGRITY-SHA256 after MI is kept");
    }
    ok(stn_msg_parse(&m, buf, len) == 0 && m.mi == 0 && stn_auth_check_integrity(&m, "k", 1),
       "MI still verifies with MI-SHA256 after it");
    is_int(m.mi256, 1, "and the view indexes MI-SHA256");

    /* after MI-SHA256 only FINGERPRINT counts (s.14.6): SOFTWARE, an
     * unknown required attribute and a late MI are ignored */
    {
        uint8_t mac256[32] = {0};
        stn_build_init(&b, buf, sizeof buf, STN_BINDING, STN_REQUEST, tid);
        stn_build_attr(&b, STN_A_USERNAME, "bob", 3);
        stn_build_attr(&b, STN_A_MESSAGE_INTEGRITY_SHA256, mac256, 16);
        stn_build_attr(&b, STN_A_SOFTWARE, "late", 4);
        stn_build_attr(&b, 0x0031, "x", 1);
        stn_build_integrity(&b, "k", 1);
        stn_build_fingerprint(&b);
        stn_build_finish(&b, &len);
        ok(parse_copy(buf, len) == 0 && m.n_attrs == 3 && m.mi256 == 1 && m.mi == -1 &&
               m.fp == 2 && m.n_unknown == 0,
           "after a 16-byte MI-SHA256 only FINGERPRINT is honoured");
        for (size_t l = 0; l <= 40; l += 4) {
            stn_build_init(&b, buf, sizeof buf, STN_BINDING, STN_REQUEST, tid);
            stn_build_attr(&b, STN_A_MESSAGE_INTEGRITY_SHA256, mac256, l > 32 ? 32 : l);
            if (l > 32) /* 36 and 40: longer than any HMAC-SHA256 */
                stn_build_attr(&b, STN_A_MESSAGE_INTEGRITY_SHA256, mac256, l - 32);
            stn_build_finish(&b, &len);
            if (l > 32) { /* rewrite the first attribute's length to l */
                buf[22] = 0;
                buf[23] = (uint8_t)l;
            }
            if ((parse_copy(buf, len) == 0) != (l >= 16 && l <= 32))
                ok(0, "MI-SHA256 length rule broken");
        }
        ok(1, "MI-SHA256 of 0..12 and 36, 40 bytes malformed; 16..32 accepted");
        stn_build_init(&b, buf, sizeof buf, STN_BINDING, STN_REQUEST, tid);
        stn_build_attr(&b, STN_A_MESSAGE_INTEGRITY_SHA256, mac256, 18);
        stn_build_finish(&b, &len);
        is_int(parse_copy(buf, len), RTC_EMSG, "MI-SHA256 of 18 bytes (not a multiple of 4)");
    }
}

static void header_checks(const char *dir)
{
    vec v;
    uint8_t c[512];
    static const uint16_t top[] = {0x4001, 0x8001, 0xC001};

    if (vec_load(dir, "ipv4_response", &v))
        return;
    memcpy(c, v.b, v.len);
    c[7] ^= 1;
    is_int(parse_copy(c, v.len), RTC_EMSG, "wrong magic cookie rejected");
    ok(!stn_is_stun(c, v.len), "stn_is_stun: wrong cookie");
    memcpy(c, v.b, v.len);
    memcpy(c + 4, "\x42\xA4\x12\x21", 4);
    is_int(parse_copy(c, v.len), RTC_EMSG, "byte-swapped cookie rejected");
    for (int i = 0; i < 3; i++) {
        memcpy(c, v.b, v.len);
        put16(c, top[i]);
        is_int(parse_copy(c, v.len), RTC_EMSG, "top bits of the type set: rejected");
        ok(!stn_is_stun(c, v.len), "stn_is_stun: top bits set");
    }
    ok(stn_is_stun(v.b, v.len), "stn_is_stun: vector");
    ok(!stn_is_stun(v.b, 19), "stn_is_stun: 19 bytes");
    is_int(parse_copy(v.b, 0), RTC_EMSG, "empty input rejected");
    ok(parse_copy(v.b, STN_HDR_LEN) == RTC_EMSG, "header only, length 0x3c: rejected");
    memcpy(c, v.b, STN_HDR_LEN);
    put16(c + 2, 0);
    ok(parse_copy(c, STN_HDR_LEN) == 0 && m.n_attrs == 0 && m.mi == -1 && m.fp == -1,
       "header-only message with length 0 parses");
}

/* RFC 8489 s.12: the RFC 3489 form, a Binding request without the cookie,
 * parses only with stn_msg_parse_rfc3489_binding, and only that. */
static void rfc3489(void)
{
    uint8_t c[64], out[64];
    static const uint8_t id16[16] = {0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    stn_builder b;
    size_t len = 0;
    rtc_addr a, got;

    memset(c, 0, sizeof c);
    put16(c, 0x0001);
    memcpy(c + 4, id16, 16);
    is_int(stn_msg_parse_rfc3489_binding(&m, c, 20), 0, "3489: cookie-less Binding request parses");
    ok(m.method == STN_BINDING && m.cls == STN_REQUEST && m.n_attrs == 0 && m.n_unknown == 0 &&
       !memcmp(m.tid, id16 + 4, STN_TID_LEN), "3489: method, class, last 12 ID bytes");
    ok(!stn_is_stun(c, 20) && stn_msg_parse(&m, c, 20) == RTC_EMSG,
       "3489: not STUN to stn_is_stun / stn_msg_parse (RFC 7983 demultiplexing unchanged)");
    is_int(stn_msg_parse_rfc3489_binding(&m, c, 19), RTC_EMSG, "3489: 19 bytes rejected");
    is_int(stn_msg_parse_rfc3489_binding(&m, c, 24), RTC_EMSG, "3489: length field lies: rejected");
    put16(c, 0x0003);
    is_int(stn_msg_parse_rfc3489_binding(&m, c, 20), RTC_EMSG, "3489: Allocate rejected");
    put16(c, 0x0101);
    is_int(stn_msg_parse_rfc3489_binding(&m, c, 20), RTC_EMSG, "3489: Binding success rejected");
    put16(c, 0x0011);
    is_int(stn_msg_parse_rfc3489_binding(&m, c, 20), RTC_EMSG, "3489: Binding indication rejected");
    put16(c, 0x4001);
    is_int(stn_msg_parse_rfc3489_binding(&m, c, 20), RTC_EMSG, "3489: top bits set rejected");
    put16(c, 0x0001);
    memcpy(c + 4, "\x21\x12\xA4\x42", 4);
    is_int(stn_msg_parse_rfc3489_binding(&m, c, 20), RTC_EMSG,
           "3489: with the cookie it is RFC 8489's, not this parser's");
    memcpy(c + 4, id16, 4);
    /* CHANGE-REQUEST (0x0003): comprehension-required, unknown here; SOFTWARE ignored */
    put16(c + 2, 16);
    put16(c + 20, 0x0003);
    put16(c + 22, 4);
    c[27] = 6;
    put16(c + 28, 0x8022);
    put16(c + 30, 4);
    memcpy(c + 32, "nice", 4);
    ok(stn_msg_parse_rfc3489_binding(&m, c, 36) == 0 && m.n_attrs == 2 && m.n_unknown == 1 &&
       m.unknown[0] == 0x0003, "3489: CHANGE-REQUEST unknown, SOFTWARE not");
    put16(c + 20, STN_A_PRIORITY);
    ok(stn_msg_parse_rfc3489_binding(&m, c, 36) == 0 && m.n_unknown == 1,
       "3489: every comprehension-required attribute is unknown (PRIORITY too)");
    put16(c + 22, 5);
    is_int(stn_msg_parse_rfc3489_binding(&m, c, 36), RTC_EMSG, "3489: attribute overruns: rejected");

    /* the answer: the 16-byte ID in place of cookie + ID, MAPPED-ADDRESS */
    memset(&a, 0, sizeof a);
    a.family = AF_INET;
    a.port = 5000;
    memcpy(a.ip, "\xc0\x00\x02\x01", 4);
    stn_build_init_rfc3489(&b, out, sizeof out, STN_BINDING, STN_SUCCESS, id16);
    stn_build_addr(&b, STN_A_MAPPED_ADDRESS, &a);
    ok(stn_build_finish(&b, &len) == 0 && len == 32 && out[0] == 1 && out[1] == 1 &&
       out[2] == 0 && out[3] == 12 && !memcmp(out + 4, id16, 16),
       "3489 answer: 0x0101, length 12, the 16-byte ID");
    /* with the cookie put in it parses as RFC 8489, MAPPED-ADDRESS intact */
    memcpy(out + 4, "\x21\x12\xA4\x42", 4);
    ok(stn_msg_parse(&m, out, len) == 0 && m.n_attrs == 1 &&
       stn_attr_get_addr(&m, &m.attrs[0], &got) == 0 && got.port == 5000 &&
       !memcmp(got.ip, a.ip, 4), "3489 answer: MAPPED-ADDRESS 192.0.2.1:5000");
    stn_build_init_rfc3489(&b, out, 19, STN_BINDING, STN_SUCCESS, id16);
    ok(stn_build_finish(&b, &len) == RTC_ESPACE, "3489 answer: no room for the header");
}

static void types(void)
{
    struct {
        uint16_t method;
        uint8_t cls;
        uint16_t type;
    } t[] = {
        {STN_BINDING, STN_REQUEST, 0x0001},        {STN_BINDING, STN_INDICATION, 0x0011},
        {STN_BINDING, STN_SUCCESS, 0x0101},        {STN_BINDING, STN_ERROR, 0x0111},
        {STN_ALLOCATE, STN_REQUEST, 0x0003},       {STN_ALLOCATE, STN_ERROR, 0x0113},
        {STN_REFRESH, STN_SUCCESS, 0x0104},        {STN_SEND, STN_INDICATION, 0x0016},
        {STN_DATA, STN_INDICATION, 0x0017},        {STN_CREATE_PERMISSION, STN_REQUEST, 0x0008},
        {STN_CHANNEL_BIND, STN_SUCCESS, 0x0109},   {0xFFF, STN_ERROR, 0x3FFF},
    };
    size_t bad = 0;
    uint8_t buf[64];

    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        is_int(stn_msg_type(t[i].method, t[i].cls), t[i].type, "message type encoding");
    for (unsigned meth = 0; meth <= 0xFFF; meth++)
        for (uint8_t cls = 0; cls < 4; cls++) {
            stn_builder b;
            size_t len;
            stn_build_init(&b, buf, sizeof buf, (uint16_t)meth, cls, tid);
            stn_build_finish(&b, &len);
            if (stn_msg_parse(&m, buf, len) || m.method != meth || m.cls != cls ||
                memcmp(m.tid, tid, 12))
                bad++;
        }
    is_int(bad, 0, "all 4096 methods x 4 classes round-trip through the header");
}

static void unknowns(void)
{
    uint8_t buf[512];
    stn_builder b;
    size_t len = 0;
    static const uint16_t req[] = {0x0031, 0x7FFF, 0x0002, 0x0003, 0x0004,
                                   0x0005, 0x0007, 0x000B, 0x0010, 0x0011};

    stn_build_init(&b, buf, sizeof buf, STN_ALLOCATE, STN_REQUEST, tid);
    stn_build_attr(&b, 0x0031, "a", 1);
    stn_build_attr(&b, 0x8FFF, "opt", 3);
    stn_build_attr(&b, 0xC001, "", 0);
    stn_build_attr(&b, 0x7FFF, "bb", 2);
    stn_build_attr(&b, STN_A_USERNAME, "u", 1);
    stn_build_finish(&b, &len);
    ok(parse_copy(buf, len) == 0, "message with unknown attributes parses");
    is_int(m.n_unknown, 2, "two comprehension-required unknowns reported");
    ok(m.unknown[0] == 0x0031 && m.unknown[1] == 0x7FFF, "in wire order");
    is_int(m.n_attrs, 5, "all five in the view (optional unknowns ignored, not dropped)");

    stn_build_init(&b, buf, sizeof buf, STN_ALLOCATE, STN_REQUEST, tid);
    for (size_t i = 0; i < sizeof req / sizeof req[0]; i++)
        stn_build_attr(&b, req[i], "", 0);
    stn_build_finish(&b, &len);
    ok(parse_copy(buf, len) == 0 && m.n_unknown == STN_MAX_UNKNOWN,
       "ten unknown required: the list is capped at 8");

    stn_build_init(&b, buf, sizeof buf, STN_ALLOCATE, STN_REQUEST, tid);
    stn_build_attr(&b, STN_A_USERNAME, "first", 5);
    stn_build_attr(&b, STN_A_USERNAME, "second", 6);
    stn_build_finish(&b, &len);
    ok(parse_copy(buf, len) == 0 && stn_msg_find(&m, STN_A_USERNAME)->len == 5,
       "duplicate attribute: the first one is found");
    ok(stn_msg_find(&m, STN_A_REALM) == NULL, "missing attribute: NULL");
}

static void builder(void)
{
    uint8_t buf[64];
    stn_builder b;
    size_t len = 0;

    memset(buf, 0xAA, sizeof buf);
    stn_build_init(&b, buf, sizeof buf, STN_BINDING, STN_REQUEST, tid);
    stn_build_attr(&b, STN_A_USERNAME, "abcde", 5);
    ok(stn_build_finish(&b, &len) == 0 && len == 32, "5-byte value padded to 8");
    ok(buf[29] == 0 && buf[30] == 0 && buf[31] == 0, "padding is zero, not stale memory");
    ok(buf[2] == 0 && buf[3] == 12, "header length back-patched");

    /* exactly full: 20 + 8 + 8 = 36 bytes in a 36-byte buffer */
    stn_build_init(&b, buf, 36, STN_BINDING, STN_REQUEST, tid);
    stn_build_u32(&b, STN_A_LIFETIME, 1);
    stn_build_u32(&b, STN_A_PRIORITY, 2);
    ok(stn_build_finish(&b, &len) == 0 && len == 36, "exactly full buffer is fine");

    memset(buf, 0xAA, sizeof buf);
    stn_build_init(&b, buf, 34, STN_BINDING, STN_REQUEST, tid);
    stn_build_u32(&b, STN_A_LIFETIME, 1);
    stn_build_u32(&b, STN_A_PRIORITY, 2); /* does not fit */
    stn_build_u32(&b, STN_A_LIFETIME, 3); /* sticky: even a write that would fit fails */
    is_int(stn_build_finish(&b, &len), RTC_ESPACE, "overflow reported at finish");
    ok(buf[28] == 0xAA && buf[33] == 0xAA, "no partial attribute written on overflow");
    ok(buf[3] == 8, "header length still describes the last complete attribute");

    stn_build_init(&b, buf, 10, STN_BINDING, STN_REQUEST, tid);
    is_int(stn_build_finish(&b, &len), RTC_ESPACE, "header does not fit in 10 bytes");
    stn_build_init(&b, buf, sizeof buf, STN_BINDING, STN_REQUEST, tid);
    stn_build_attr(&b, STN_A_DATA, buf, 0x10000);
    is_int(stn_build_finish(&b, &len), RTC_ESPACE, "value longer than 0xFFFF refused");
    stn_build_init(&b, buf, 30, STN_BINDING, STN_REQUEST, tid);
    stn_build_integrity(&b, "k", 1);
    is_int(stn_build_finish(&b, &len), RTC_ESPACE, "MI that does not fit: overflow");
    stn_build_init(&b, buf, 24, STN_BINDING, STN_REQUEST, tid);
    stn_build_fingerprint(&b);
    is_int(stn_build_finish(&b, &len), RTC_ESPACE, "FP that does not fit: overflow");
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "tests/vectors/rfc5769";
    truncations(dir);
    lying_lengths(dir);
    misaligned(dir);
    limits();
    mi_fp_order();
    header_checks(dir);
    rfc3489();
    types();
    unknowns();
    builder();
    return done_testing();
}
