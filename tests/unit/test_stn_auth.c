/* test_stn_auth.c - MESSAGE-INTEGRITY, MESSAGE-INTEGRITY-SHA256,
 * FINGERPRINT, long-term keys and the stateless nonces (RFC 8489 s.9.2,
 * s.14.5, s.14.6, s.14.7). The RFC 5769 vectors are in test_stn_rfc5769.c;
 * here: tampering, ordering and nonce rules. The expected MD5 values were
 * computed with Python's hashlib. RFC 8489 has no usable SHA-256 vector
 * (the one in Appendix B.1 is wrong, erratum 6268), so the SHA-256 values
 * are computed here independently of rtc_crypto: OpenSSL's one-shot SHA256()
 * and HMAC() over a message assembled by hand from s.14.6. */
#include <string.h>
#include <sys/socket.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "rtc_crypto.h"
#include "rtc_err.h"
#include "stn_attr.h"
#include "stn_auth.h"
#include "stn_msg.h"
#include "tap.h"

static const uint8_t tid[12] = {9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 1, 2};
static uint8_t buf[512];
static stn_msg m;

static size_t signed_msg(const char *key, bool fp)
{
    stn_builder b;
    size_t n = 0;
    stn_build_init(&b, buf, sizeof buf, STN_ALLOCATE, STN_REQUEST, tid);
    stn_build_attr(&b, STN_A_USERNAME, "alice", 5);
    stn_build_attr(&b, STN_A_REALM, "example.org", 11);
    stn_build_u32(&b, STN_A_LIFETIME, 600);
    if (key)
        stn_build_integrity(&b, key, strlen(key));
    if (fp)
        stn_build_fingerprint(&b);
    stn_build_finish(&b, &n);
    return n;
}

static void integrity(void)
{
    size_t n, flips = 0;

    n = signed_msg("k3y", false);
    ok(stn_msg_parse(&m, buf, n) == 0 && stn_auth_check_integrity(&m, "k3y", 3),
       "MI verifies with its key");
    ok(!stn_auth_check_integrity(&m, "k3Y", 3), "MI fails with another key");
    ok(!stn_auth_check_integrity(&m, "k3y", 2), "MI fails with a key prefix");
    ok(buf[2] == 0 && buf[3] == n - 20, "MI is counted in the header length");
    /* every single-bit flip in the covered bytes or the MAC breaks it */
    for (size_t i = 0; i < n; i++)
        for (int bit = 0; bit < 8; bit++) {
            buf[i] ^= (uint8_t)(1 << bit);
            if (stn_msg_parse(&m, buf, n) == 0 && stn_auth_check_integrity(&m, "k3y", 3))
                flips++;
            buf[i] ^= (uint8_t)(1 << bit);
        }
    is_int(flips, 0, "no single-bit flip anywhere survives MI");

    n = signed_msg("k3y", true);
    ok(stn_msg_parse(&m, buf, n) == 0 && stn_auth_check_integrity(&m, "k3y", 3),
       "MI verifies with FINGERPRINT after it (length adjusted to end at MI)");
    ok(stn_auth_check_fingerprint(&m), "FP verifies after MI");
    n = signed_msg(NULL, false);
    ok(stn_msg_parse(&m, buf, n) == 0 && !stn_auth_check_integrity(&m, "k3y", 3),
       "no MI: integrity check fails");
    ok(stn_auth_check_fingerprint(&m), "no FP: fingerprint check passes");
}

static void fingerprint(void)
{
    size_t n = signed_msg(NULL, true), flips = 0;
    uint32_t crc;

    ok(stn_msg_parse(&m, buf, n) == 0 && m.fp == 3 && stn_auth_check_fingerprint(&m),
       "FP verifies");
    crc = rtc_crc32(buf, n - 8) ^ STN_FP_XOR;
    ok(buf[n - 4] == (uint8_t)(crc >> 24) && buf[n - 1] == (uint8_t)crc,
       "FP value is CRC-32 of the preceding bytes XOR 0x5354554e");
    for (size_t i = 0; i < n; i++) {
        buf[i] ^= 0x10;
        /* (a flip in FP's own type byte makes it another, optional
         * attribute: then the message simply has no FINGERPRINT) */
        if (stn_msg_parse(&m, buf, n) == 0 && m.fp >= 0 && stn_auth_check_fingerprint(&m)) {
            printf("# flip at %zu survives\n", i);
            flips++;
        }
        buf[i] ^= 0x10;
    }
    is_int(flips, 0, "no flipped byte survives FP");
}

static void longterm_key(void)
{
    static const uint8_t want[16] = {0x84, 0x93, 0xfb, 0xc5, 0x3b, 0xa5, 0x82, 0xfb,
                                     0x4c, 0x04, 0x4c, 0x45, 0x6b, 0xdc, 0x40, 0xeb};
    static const uint8_t want_rfc[16] = {0xe8, 0xca, 0x7a, 0xd5, 0x9d, 0x5e, 0xb0, 0x51,
                                         0x8e, 0x31, 0x29, 0x11, 0xd2, 0xda, 0xb2, 0xa9};
    static const uint8_t zero[16];
    static char huge[600];
    uint8_t key[16];

    stn_auth_longterm_key("user", 4, "realm", 5, "pass", 4, key);
    ok(memcmp(key, want, 16) == 0, "MD5(user:realm:pass)");
    stn_auth_longterm_key("\xe3\x83\x9e\xe3\x83\x88\xe3\x83\xaa\xe3\x83\x83\xe3\x82\xaf\xe3\x82\xb9",
                          18, "example.org", 11, "TheMatrIX", 9, key);
    ok(memcmp(key, want_rfc, 16) == 0, "RFC 5769 s.2.4 long-term key");
    memset(huge, 'a', sizeof huge);
    stn_auth_longterm_key(huge, sizeof huge, "r", 1, "p", 1, key);
    ok(memcmp(key, zero, 16) == 0, "over-long username gives the all-zero key");
    stn_auth_longterm_key("", 0, "", 0, "", 0, key);
    ok(memcmp(key, zero, 16) != 0, "empty fields still hash (\"::\")");
}

static void nonces(void)
{
    static const char key[] = "server-nonce-key";
    const size_t kl = sizeof key - 1;
    rtc_addr c, other;
    char n[STN_NONCE_LEN + 1], forged[STN_NONCE_LEN + 1];
    const uint64_t now = 1700000000u;
    size_t bad = 0;

    rtc_addr_parse_hostport("198.51.100.7:40000", &c);
    stn_nonce_make(key, kl, now + 3600, &c, n);
    is_int(strlen(n), STN_NONCE_LEN, "nonce is 32 characters");
    is_int(stn_nonce_check(key, kl, (const uint8_t *)n, STN_NONCE_LEN, now, &c), 0, "fresh nonce valid");
    is_int(stn_nonce_check(key, kl, (const uint8_t *)n, STN_NONCE_LEN, now + 3599, &c), 0,
           "valid one second before expiry");
    is_int(stn_nonce_check(key, kl, (const uint8_t *)n, STN_NONCE_LEN, now + 3600, &c), RTC_ESTALE,
           "expired at expiry -> RTC_ESTALE (438)");
    is_int(stn_nonce_check(key, kl, (const uint8_t *)n, STN_NONCE_LEN, now + 86400, &c), RTC_ESTALE,
           "long expired -> RTC_ESTALE");

    other = c;
    other.port = 40001;
    is_int(stn_nonce_check(key, kl, (const uint8_t *)n, STN_NONCE_LEN, now, &other), RTC_EMSG,
           "other client port -> RTC_EMSG");
    rtc_addr_parse_hostport("198.51.100.8:40000", &other);
    is_int(stn_nonce_check(key, kl, (const uint8_t *)n, STN_NONCE_LEN, now, &other), RTC_EMSG,
           "other client IP -> RTC_EMSG");
    rtc_addr_parse_hostport("[::ffff:198.51.100.7]:40000", &other);
    is_int(stn_nonce_check(key, kl, (const uint8_t *)n, STN_NONCE_LEN, now, &other), RTC_EMSG,
           "same v4 as a mapped v6 address -> RTC_EMSG");
    is_int(stn_nonce_check("other-key", 9, (const uint8_t *)n, STN_NONCE_LEN, now, &c), RTC_EMSG,
           "another server key -> RTC_EMSG");

    /* forged: change any one character */
    for (size_t i = 0; i < STN_NONCE_LEN; i++) {
        memcpy(forged, n, sizeof forged);
        forged[i] = forged[i] == '0' ? '1' : '0';
        if (stn_nonce_check(key, kl, (const uint8_t *)forged, STN_NONCE_LEN, now, &c) != RTC_EMSG)
            bad++;
    }
    is_int(bad, 0, "every one-character forgery -> RTC_EMSG");
    /* a later expiry is a forgery too, even though it would not be stale */
    memcpy(forged, n, sizeof forged);
    snprintf(forged, 9, "%08x", (unsigned)(now + 7200));
    forged[8] = n[8];
    is_int(stn_nonce_check(key, kl, (const uint8_t *)forged, STN_NONCE_LEN, now, &c), RTC_EMSG,
           "extended expiry -> RTC_EMSG");
    memcpy(forged, n, sizeof forged);
    for (int i = 0; i < 8; i++)
        if (forged[i] >= 'a' && forged[i] <= 'f')
            forged[i] = (char)(forged[i] - 'a' + 'A');
    forged[0] = 'G';
    is_int(stn_nonce_check(key, kl, (const uint8_t *)forged, STN_NONCE_LEN, now, &c), RTC_EMSG,
           "non-hex expiry -> RTC_EMSG");

    is_int(stn_nonce_check(key, kl, (const uint8_t *)n, STN_NONCE_LEN - 1, now, &c), RTC_EMSG,
           "31 bytes -> RTC_EMSG");
    memcpy(forged, n, sizeof forged);
    is_int(stn_nonce_check(key, kl, (const uint8_t *)"", 0, now, &c), RTC_EMSG, "empty -> RTC_EMSG");
    {
        char longer[STN_NONCE_LEN + 2];
        memcpy(longer, n, STN_NONCE_LEN);
        longer[STN_NONCE_LEN] = '0';
        is_int(stn_nonce_check(key, kl, (const uint8_t *)longer, STN_NONCE_LEN + 1, now, &c),
               RTC_EMSG, "33 bytes -> RTC_EMSG");
    }

    /* the nonce carries 32 bits of expiry: it still works across 2^32 s */
    {
        const uint64_t wrap = 0x100000000ULL;
        stn_nonce_make(key, kl, wrap + 100, &c, n);
        is_int(stn_nonce_check(key, kl, (const uint8_t *)n, STN_NONCE_LEN, wrap - 100, &c), 0,
               "expiry after the 2^32 wrap, checked before it: valid");
        is_int(stn_nonce_check(key, kl, (const uint8_t *)n, STN_NONCE_LEN, wrap + 101, &c),
               RTC_ESTALE, "and stale after it");
        stn_nonce_make(key, kl, wrap - 10, &c, n);
        is_int(stn_nonce_check(key, kl, (const uint8_t *)n, STN_NONCE_LEN, wrap + 10, &c),
               RTC_ESTALE, "expiry before the wrap, checked after it: stale");
    }
}

/* SHA-256(user ":" realm ":" pass) by OpenSSL directly (RFC 8489 s.9.2.2). */
static void ref_key256(const char *u, const char *r, const char *p, uint8_t out[32])
{
    char in[256];
    int n = snprintf(in, sizeof in, "%s:%s:%s", u, r, p);
    SHA256((const unsigned char *)in, (size_t)n, out);
}

/* A request with USERNAME, REALM, NONCE, PASSWORD-ALGORITHM SHA-256,
 * PASSWORD-ALGORITHMS, then MESSAGE-INTEGRITY-SHA256 of tlen bytes,
 * written byte by byte from RFC 8489 s.14.6 (not with the builder): the
 * HMAC covers the header, whose length already ends after the attribute,
 * and every attribute before it. */
static size_t ref_sha256_msg(const uint8_t *key, size_t keylen, size_t tlen, bool fp)
{
    static const uint8_t attrs[] = {
        0x00, 0x06, 0x00, 0x05, 'a', 'l', 'i', 'c', 'e', 0, 0, 0,           /* USERNAME */
        0x00, 0x14, 0x00, 0x0b, 'e', 'x', 'a', 'm', 'p', 'l', 'e', '.', 'o', 'r', 'g', 0, /* REALM */
        0x00, 0x15, 0x00, 0x04, 'n', 'o', 'n', 'c',                        /* NONCE */
        0x00, 0x1d, 0x00, 0x04, 0x00, 0x02, 0x00, 0x00,                    /* PASSWORD-ALGORITHM */
        0x80, 0x02, 0x00, 0x08, 0x00, 0x02, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, /* -ALGORITHMS */
    };
    uint8_t mac[32];
    unsigned int ml = 32;
    size_t n = 0, body;

    buf[n++] = 0x00, buf[n++] = 0x03; /* Allocate request */
    n += 2;                           /* length, below */
    buf[n++] = 0x21, buf[n++] = 0x12, buf[n++] = 0xA4, buf[n++] = 0x42;
    memcpy(buf + n, tid, 12), n += 12;
    memcpy(buf + n, attrs, sizeof attrs), n += sizeof attrs;
    body = n - 20 + 4 + tlen;
    buf[2] = (uint8_t)(body >> 8), buf[3] = (uint8_t)body;
    HMAC(EVP_sha256(), key, (int)keylen, buf, n, mac, &ml);
    buf[n++] = 0x00, buf[n++] = 0x1C, buf[n++] = 0x00, buf[n++] = (uint8_t)tlen;
    memcpy(buf + n, mac, tlen), n += tlen;
    if (fp) {
        uint32_t crc;
        body = n - 20 + 8;
        buf[2] = (uint8_t)(body >> 8), buf[3] = (uint8_t)body;
        crc = rtc_crc32(buf, n) ^ STN_FP_XOR;
        buf[n++] = 0x80, buf[n++] = 0x28, buf[n++] = 0x00, buf[n++] = 0x04;
        buf[n++] = (uint8_t)(crc >> 24), buf[n++] = (uint8_t)(crc >> 16);
        buf[n++] = (uint8_t)(crc >> 8), buf[n++] = (uint8_t)crc;
    }
    return n;
}

static void sha256_integrity(void)
{
    uint8_t key[32], ref[32], other[32];
    size_t n, flips = 0;

    stn_auth_longterm_key_sha256("alice", 5, "example.org", 11, "s3cret", 6, key);
    ref_key256("alice", "example.org", "s3cret", ref);
    ok(memcmp(key, ref, 32) == 0, "SHA-256 key = SHA-256(user:realm:pass), 32 bytes");
    ref_key256("alice", "example.org", "s3creT", other);

    n = ref_sha256_msg(ref, 32, 32, false);
    ok(stn_msg_parse(&m, buf, n) == 0 && m.mi256 == 5 && m.mi < 0,
       "MI-SHA256 found by the parser, no MI");
    ok(stn_auth_check_integrity_sha256(&m, key, 32), "full 32-byte MI-SHA256 verifies");
    ok(!stn_auth_check_integrity_sha256(&m, other, 32), "another password: fails");
    ok(!stn_auth_check_integrity(&m, key, 32), "and plain MI finds nothing to check");
    for (size_t i = 0; i < n; i++) {
        buf[i] ^= 0x04;
        if (stn_msg_parse(&m, buf, n) == 0 && stn_auth_check_integrity_sha256(&m, key, 32))
            flips++;
        buf[i] ^= 0x04;
    }
    is_int(flips, 0, "no flipped byte survives MI-SHA256");
    flips = 0;
    for (size_t t = 16; t <= 28; t += 4) {
        n = ref_sha256_msg(ref, 32, t, false);
        flips += !(stn_msg_parse(&m, buf, n) == 0 && stn_auth_check_integrity_sha256(&m, key, 32));
        buf[n - 1] ^= 1;
        flips += stn_msg_parse(&m, buf, n) == 0 && stn_auth_check_integrity_sha256(&m, key, 32);
    }
    is_int(flips, 0, "truncated MI-SHA256 of 16, 20, 24, 28 bytes verifies, tampered fails");
    n = ref_sha256_msg(ref, 32, 16, true);
    ok(stn_msg_parse(&m, buf, n) == 0 && m.fp >= 0 && stn_auth_check_fingerprint(&m) &&
           stn_auth_check_integrity_sha256(&m, key, 32),
       "16-byte MI-SHA256 then FINGERPRINT: both verify");
    n = ref_sha256_msg(ref, 32, 12, false);
    is_int(stn_msg_parse(&m, buf, n), RTC_EMSG, "12-byte MI-SHA256: malformed");
    n = ref_sha256_msg(ref, 32, 32, false);
    buf[n - 33] = 18; /* the attribute's length byte: 18, not a multiple of 4 */
    buf[3] = (uint8_t)(buf[3] - 12);
    is_int(stn_msg_parse(&m, buf, n - 12), RTC_EMSG, "18-byte MI-SHA256: malformed");

    /* the builder's full-length MI-SHA256 checks out against OpenSSL */
    {
        stn_builder b;
        uint8_t mac[32];
        unsigned int ml = 32;
        stn_build_init(&b, buf, sizeof buf, STN_ALLOCATE, STN_SUCCESS, tid);
        stn_build_u32(&b, STN_A_LIFETIME, 600);
        stn_build_integrity_sha256(&b, key, 32);
        ok(stn_build_finish(&b, &n) == 0 && n == 20 + 8 + 36, "built LIFETIME + MI-SHA256");
        ok(buf[3] == 44, "header length counts MI-SHA256");
        HMAC(EVP_sha256(), ref, 32, buf, 28, mac, &ml);
        ok(memcmp(buf + 32, mac, 32) == 0, "built MI-SHA256 = HMAC-SHA256 by OpenSSL");
        ok(stn_msg_parse(&m, buf, n) == 0 && stn_auth_check_integrity_sha256(&m, key, 32),
           "and it parses and verifies");
    }
}

/* The RFC 8489 s.9.2 nonce cookie: "obMatJos2" + base64 of 24 feature bits,
 * bit 0 (Password algorithms) being the rightmost (erratum 6290). */
static void cookie_nonces(void)
{
    static const char key[] = "server-nonce-key";
    const size_t kl = sizeof key - 1;
    char n[STN_NONCE_MAX_LEN + 1], f[STN_NONCE_MAX_LEN + 1], plain[STN_NONCE_LEN + 1];
    const uint64_t now = 1700000000u;
    uint32_t feat = 99;
    rtc_addr c;
    size_t bad = 0;

    rtc_addr_parse_hostport("198.51.100.7:40000", &c);
    stn_nonce_make_cookie(key, kl, now + 600, &c, STN_SEC_PASSWORD_ALGORITHMS, n);
    is_int(strlen(n), STN_NONCE_MAX_LEN, "cookie nonce is 37 characters");
    is_int(strspn(n + 21, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"), 16,
           "its MAC is 16 base64url characters");
    ok(!memcmp(n, "obMatJos2AAAB", 13), "starts with obMatJos2AAAB (Password algorithms bit)");
    is_int(stn_nonce_check_cookie(key, kl, (const uint8_t *)n, strlen(n), now, &c, &feat), 0,
           "valid");
    is_int(feat, STN_SEC_PASSWORD_ALGORITHMS, "its feature bits come back");
    is_int(stn_nonce_check_cookie(key, kl, (const uint8_t *)n, strlen(n), now + 600, &c, &feat),
           RTC_ESTALE, "expired -> RTC_ESTALE");
    is_int(stn_nonce_check(key, kl, (const uint8_t *)n, strlen(n), now, &c), RTC_EMSG,
           "the plain checker does not take a cookie nonce");
    /* the bid-down: editing the feature bits breaks the MAC */
    memcpy(f, n, sizeof f);
    memcpy(f + 9, "AAAA", 4);
    is_int(stn_nonce_check_cookie(key, kl, (const uint8_t *)f, strlen(f), now, &c, &feat),
           RTC_EMSG, "feature bits cleared -> RTC_EMSG");
    memcpy(f, n, sizeof f);
    f[12] = 'D';
    is_int(stn_nonce_check_cookie(key, kl, (const uint8_t *)f, strlen(f), now, &c, &feat),
           RTC_EMSG, "feature bits added -> RTC_EMSG");
    /* stripping the cookie leaves a plain nonce whose MAC was made with the
     * feature bytes: not valid either */
    is_int(stn_nonce_check_cookie(key, kl, (const uint8_t *)n + 13, strlen(n) - 13, now, &c,
                                  &feat),
           RTC_EMSG, "cookie stripped -> RTC_EMSG");
    for (size_t i = 0; i < STN_NONCE_MAX_LEN; i++) {
        memcpy(f, n, sizeof f);
        f[i] = f[i] == 'A' ? 'B' : (f[i] == '0' ? '1' : '0');
        if (stn_nonce_check_cookie(key, kl, (const uint8_t *)f, STN_NONCE_MAX_LEN, now, &c,
                                   &feat) != RTC_EMSG)
            bad++;
    }
    is_int(bad, 0, "every one-character change -> RTC_EMSG");
    memcpy(f, n, sizeof f);
    f[12] = '_'; /* base64url spelling of the same bits is another string */
    is_int(stn_nonce_check_cookie(key, kl, (const uint8_t *)f, strlen(f), now, &c, &feat),
           RTC_EMSG, "non-canonical base64 -> RTC_EMSG");
    /* plain nonces still pass the cookie checker, with no features */
    stn_nonce_make(key, kl, now + 600, &c, plain);
    is_int(stn_nonce_check_cookie(key, kl, (const uint8_t *)plain, STN_NONCE_LEN, now, &c, &feat),
           0, "a plain nonce is accepted");
    is_int(feat, 0, "with no feature bits");
    stn_nonce_make_cookie(key, kl, now + 600, &c, 0, n);
    ok(!memcmp(n, "obMatJos2AAAA", 13), "no features: obMatJos2AAAA");
}

int main(void)
{
    integrity();
    fingerprint();
    longterm_key();
    nonces();
    sha256_integrity();
    cookie_nonces();
    return done_testing();
}
