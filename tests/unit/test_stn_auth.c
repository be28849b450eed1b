/* test_stn_auth.c - MESSAGE-INTEGRITY, FINGERPRINT, long-term keys and the
 * stateless nonces (RFC 8489 s.9.2, s.14.5, s.14.7). The RFC 5769 vectors
 * are in test_stn_rfc5769.c; here: tampering, ordering and nonce rules. The
 * expected MD5 values were computed with Python's hashlib. */
#include <string.h>
#include <sys/socket.h>

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

int main(void)
{
    integrity();
    fingerprint();
    longterm_key();
    nonces();
    return done_testing();
}
