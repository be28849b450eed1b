/* test_stn_rfc5769.c - the four RFC 5769 vectors, byte for byte, both ways.
 *
 * Parse: every vector parses, its values decode to what the RFC states, its
 * MESSAGE-INTEGRITY verifies with the RFC's key and fails with a wrong one,
 * and FINGERPRINT verifies (and fails once a covered byte changes).
 * Build: each vector is rebuilt with stn_build_* from the values the RFC
 * states (not from the parsed bytes). s.2.1-2.3 pad USERNAME/SOFTWARE with
 * 0x20 where our builder writes zeros (see tests/vectors/rfc5769/README.md),
 * so those are checked twice: the plain build differs from the vector only
 * in those padding bytes and in the MI/FP values that hash them (and its own
 * MI/FP verify); with 0x20 written into the padding the builder just zeroed,
 * before MI and FP are appended, the build equals the vector exactly.
 * argv[1] is the directory holding the .hex vectors. */
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "rtc_addr.h"
#include "rtc_crypto.h"
#include "stn_attr.h"
#include "stn_auth.h"
#include "stn_msg.h"
#include "tap.h"
#include "test_stn_vec.h"

static const char pw[] = "VOkJxbRl1RmTxUk/WvJxBt";
static const uint8_t tid_short[12] = {0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34,
                                      0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae};
static const uint8_t tid_long[12] = {0x78, 0xad, 0x34, 0x33, 0xc6, 0xad,
                                     0x72, 0xc0, 0x29, 0xda, 0x41, 0x2e};
/* U+30DE U+30C8 U+30EA U+30C3 U+30AF U+30B9 in UTF-8 (already NFKC, so
 * SASLprep leaves it unchanged) */
static const char user_long[] = "\xe3\x83\x9e\xe3\x83\x88\xe3\x83\xaa\xe3\x83\x83\xe3\x82\xaf"
                                "\xe3\x82\xb9";
static const char nonce_long[] = "f//499k954d6OL34oL9FSTvy64sA";
static const char realm_long[] = "example.org";

/* Overwrite the padding the builder just zero-filled after a value of vlen
 * bytes with 0x20, as the RFC's sender did. */
static void space_pad(stn_builder *b, size_t vlen)
{
    size_t pad = (4 - (vlen & 3)) & 3;
    if (!b->w.overflow)
        memset(b->w.p - pad, 0x20, pad);
}

static bool attr_str(const stn_msg *m, uint16_t type, const char *want, size_t wlen)
{
    const stn_attr_ref *a = stn_msg_find(m, type);
    return a && a->len == wlen && memcmp(m->buf + a->off, want, wlen) == 0;
}

/* Byte i of the vector lies in the padding of some attribute. */
static bool in_padding(const stn_msg *m, size_t i)
{
    for (unsigned k = 0; k < m->n_attrs; k++) {
        size_t s = (size_t)m->attrs[k].off + m->attrs[k].len;
        if (i >= s && i < ((size_t)m->attrs[k].off + m->attrs[k].len + 3) / 4 * 4)
            return true;
    }
    return false;
}

static bool in_value(const stn_msg *m, int idx, size_t i)
{
    return idx >= 0 && i >= m->attrs[idx].off && i < (size_t)m->attrs[idx].off + m->attrs[idx].len;
}

/* Compare a zero-padded build with a space-padded vector: equal except for
 * padding (ours zero) and the MI/FP values. */
static void compare_modulo_padding(const vec *v, const uint8_t *got, size_t len, const char *what)
{
    stn_msg m;
    size_t diff_pad = 0, diff_other = 0, nonzero_pad = 0;
    char name[128];

    stn_msg_parse(&m, v->b, v->len);
    is_int(len, v->len, what);
    for (size_t i = 0; i < len && i < v->len; i++) {
        if (in_padding(&m, i)) {
            nonzero_pad += got[i] != 0;
            diff_pad += got[i] != v->b[i];
        } else if (got[i] != v->b[i] && !in_value(&m, m.mi, i) && !in_value(&m, m.fp, i)) {
            diff_other++;
        }
    }
    snprintf(name, sizeof name, "%s: zero-padded build equals the vector outside padding/MI/FP",
             what);
    is_int(diff_other, 0, name);
    snprintf(name, sizeof name, "%s: our padding is all zero", what);
    is_int(nonzero_pad, 0, name);
    snprintf(name, sizeof name, "%s: the vector's padding is not zero (0x20)", what);
    ok(diff_pad > 0, name);
}

static void check_own_build(const uint8_t *buf, size_t len, const void *key, size_t keylen,
                            const char *what)
{
    stn_msg m;
    char name[128];
    snprintf(name, sizeof name, "%s: own build parses, MI and FP verify", what);
    ok(stn_msg_parse(&m, buf, len) == 0 && stn_auth_check_integrity(&m, key, keylen) &&
           stn_auth_check_fingerprint(&m),
       name);
}

static void fp_tamper(const vec *v, const char *what)
{
    uint8_t copy[512];
    stn_msg m;
    char name[128];

    memcpy(copy, v->b, v->len);
    copy[STN_HDR_LEN + 5] ^= 0x01; /* inside the first attribute's value */
    snprintf(name, sizeof name, "%s: FINGERPRINT fails after one bit flips", what);
    ok(stn_msg_parse(&m, copy, v->len) == 0 && !stn_auth_check_fingerprint(&m), name);
    snprintf(name, sizeof name, "%s: MESSAGE-INTEGRITY fails after one bit flips", what);
    ok(!stn_auth_check_integrity(&m, pw, strlen(pw)), name);
}

static void sample_request(const char *dir)
{
    vec v;
    stn_msg m;
    const stn_attr_ref *a;
    uint32_t prio = 0;
    uint64_t tie = 0;
    rtc_rd r;
    uint8_t out[512];
    size_t len = 0;
    static const uint8_t tie_be[8] = {0x93, 0x2f, 0xf9, 0xb1, 0x51, 0x26, 0x3b, 0x36};

    if (!ok(vec_load(dir, "sample_request", &v) == 0, "2.1: vector loaded"))
        return;
    is_int(v.len, 108, "2.1: 108 bytes");
    ok(stn_msg_parse(&m, v.b, v.len) == 0, "2.1: parses");
    ok(m.method == STN_BINDING && m.cls == STN_REQUEST, "2.1: Binding request");
    ok(memcmp(m.tid, tid_short, 12) == 0, "2.1: transaction id");
    is_int(m.n_attrs, 6, "2.1: six attributes");
    is_int(m.n_unknown, 0, "2.1: nothing unknown");
    ok(attr_str(&m, STN_A_SOFTWARE, "STUN test client", 16), "2.1: SOFTWARE");
    a = stn_msg_find(&m, STN_A_PRIORITY);
    ok(a && stn_attr_get_u32(&m, a, &prio) == 0 && prio == 0x6e0001ff, "2.1: PRIORITY");
    a = stn_msg_find(&m, STN_A_ICE_CONTROLLED);
    r = a ? stn_attr_rd(&m, a) : (rtc_rd){0};
    ok(a && a->len == 8 && rtc_rd_u64(&r, &tie) && tie == 0x932ff9b151263b36ULL,
       "2.1: ICE-CONTROLLED");
    ok(attr_str(&m, STN_A_USERNAME, "evtj:h6vY", 9), "2.1: USERNAME");
    is_int(m.mi, 4, "2.1: MI is the fifth attribute");
    is_int(m.fp, 5, "2.1: FP is last");
    ok(stn_auth_check_integrity(&m, pw, strlen(pw)), "2.1: MI verifies with the password");
    ok(!stn_auth_check_integrity(&m, pw, strlen(pw) - 1), "2.1: MI fails with a wrong key");
    ok(!stn_auth_check_integrity(&m, "", 0), "2.1: MI fails with an empty key");
    ok(stn_auth_check_fingerprint(&m), "2.1: FINGERPRINT verifies");
    fp_tamper(&v, "2.1");

    for (int spaces = 0; spaces <= 1; spaces++) {
        stn_builder b;
        stn_build_init(&b, out, sizeof out, STN_BINDING, STN_REQUEST, tid_short);
        stn_build_attr(&b, STN_A_SOFTWARE, "STUN test client", 16);
        stn_build_u32(&b, STN_A_PRIORITY, 0x6e0001ff);
        stn_build_attr(&b, STN_A_ICE_CONTROLLED, tie_be, 8);
        stn_build_attr(&b, STN_A_USERNAME, "evtj:h6vY", 9);
        if (spaces)
            space_pad(&b, 9);
        stn_build_integrity(&b, pw, strlen(pw));
        stn_build_fingerprint(&b);
        ok(stn_build_finish(&b, &len) == 0, "2.1: build fits");
        if (spaces) {
            ok(len == v.len && memcmp(out, v.b, len) == 0,
               "2.1: space-padded build is byte-identical to the RFC");
        } else {
            compare_modulo_padding(&v, out, len, "2.1");
            check_own_build(out, len, pw, strlen(pw), "2.1");
        }
    }
}

static void response(const char *dir, const char *file, const char *what, size_t want_len,
                     const char *want_ip)
{
    vec v;
    stn_msg m;
    const stn_attr_ref *a;
    rtc_addr got, want;
    uint8_t out[512];
    size_t len = 0;
    char name[128];

    snprintf(name, sizeof name, "%s: vector loaded", what);
    if (!ok(vec_load(dir, file, &v) == 0, name))
        return;
    is_int(v.len, want_len, what);
    rtc_addr_parse_ip(want_ip, &want);
    want.port = 32853;
    snprintf(name, sizeof name, "%s: parses as Binding success", what);
    ok(stn_msg_parse(&m, v.b, v.len) == 0 && m.method == STN_BINDING && m.cls == STN_SUCCESS,
       name);
    snprintf(name, sizeof name, "%s: transaction id, SOFTWARE", what);
    ok(memcmp(m.tid, tid_short, 12) == 0 && attr_str(&m, STN_A_SOFTWARE, "test vector", 11),
       name);
    a = stn_msg_find(&m, STN_A_XOR_MAPPED_ADDRESS);
    snprintf(name, sizeof name, "%s: XOR-MAPPED-ADDRESS is %s port 32853", what, want_ip);
    ok(a && stn_attr_get_xor_addr(&m, a, &got) == 0 && rtc_addr_equal(&got, &want), name);
    snprintf(name, sizeof name, "%s: MI verifies, wrong key fails, FP verifies", what);
    ok(stn_auth_check_integrity(&m, pw, strlen(pw)) &&
           !stn_auth_check_integrity(&m, "VOkJxbRl1RmTxUk/WvJxBT", strlen(pw)) &&
           stn_auth_check_fingerprint(&m),
       name);
    fp_tamper(&v, what);

    for (int spaces = 0; spaces <= 1; spaces++) {
        stn_builder b;
        stn_build_init(&b, out, sizeof out, STN_BINDING, STN_SUCCESS, tid_short);
        stn_build_attr(&b, STN_A_SOFTWARE, "test vector", 11);
        if (spaces)
            space_pad(&b, 11);
        stn_build_xor_addr(&b, STN_A_XOR_MAPPED_ADDRESS, &want);
        stn_build_integrity(&b, pw, strlen(pw));
        stn_build_fingerprint(&b);
        snprintf(name, sizeof name, "%s: build fits", what);
        ok(stn_build_finish(&b, &len) == 0, name);
        if (spaces) {
            snprintf(name, sizeof name, "%s: space-padded build is byte-identical to the RFC",
                     what);
            ok(len == v.len && memcmp(out, v.b, len) == 0, name);
        } else {
            compare_modulo_padding(&v, out, len, what);
            check_own_build(out, len, pw, strlen(pw), what);
        }
    }
}

static void longterm(const char *dir)
{
    vec v;
    stn_msg m;
    uint8_t key[16], bad[16], out[512];
    size_t len = 0;
    stn_builder b;

    if (!ok(vec_load(dir, "longterm_request", &v) == 0, "2.4: vector loaded"))
        return;
    is_int(v.len, 116, "2.4: 116 bytes");
    ok(stn_msg_parse(&m, v.b, v.len) == 0, "2.4: parses");
    ok(m.method == STN_BINDING && m.cls == STN_REQUEST, "2.4: Binding request");
    ok(memcmp(m.tid, tid_long, 12) == 0, "2.4: transaction id");
    ok(attr_str(&m, STN_A_USERNAME, user_long, 18), "2.4: USERNAME (UTF-8 katakana)");
    ok(attr_str(&m, STN_A_NONCE, nonce_long, 28), "2.4: NONCE");
    ok(attr_str(&m, STN_A_REALM, realm_long, 11), "2.4: REALM");
    is_int(m.fp, -1, "2.4: no FINGERPRINT");
    ok(stn_auth_check_fingerprint(&m), "2.4: fingerprint check passes when absent");
    stn_auth_longterm_key(user_long, 18, realm_long, 11, "TheMatrIX", 9, key);
    stn_auth_longterm_key(user_long, 18, realm_long, 11, "TheMatrix", 9, bad);
    ok(stn_auth_check_integrity(&m, key, 16), "2.4: MI verifies with MD5(user:realm:pass)");
    ok(!stn_auth_check_integrity(&m, bad, 16), "2.4: MI fails with a wrong password");
    ok(!stn_auth_check_integrity(&m, "TheMatrIX", 9), "2.4: MI fails with the raw password");

    stn_build_init(&b, out, sizeof out, STN_BINDING, STN_REQUEST, tid_long);
    stn_build_attr(&b, STN_A_USERNAME, user_long, 18);
    stn_build_attr(&b, STN_A_NONCE, nonce_long, 28);
    stn_build_attr(&b, STN_A_REALM, realm_long, 11);
    stn_build_integrity(&b, key, 16);
    ok(stn_build_finish(&b, &len) == 0, "2.4: build fits");
    ok(len == v.len && memcmp(out, v.b, len) == 0, "2.4: build is byte-identical to the RFC");
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "tests/vectors/rfc5769";
    sample_request(dir);
    response(dir, "ipv4_response", "2.2", 80, "192.0.2.1");
    response(dir, "ipv6_response", "2.3", 92, "2001:db8:1234:5678:11:2233:4455:6677");
    longterm(dir);
    return done_testing();
}
