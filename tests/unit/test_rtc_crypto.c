/* test_rtc_crypto.c - the OpenSSL adapter against published vectors:
 * HMAC-SHA1 (RFC 2202), HMAC-SHA256 (RFC 4231), MD5/SHA-256 (RFC 1321 / FIPS
 * 180 examples), CRC-32 check value, base64 and base64url (RFC 4648 s.10),
 * plus round trips, rejects and capacity errors. */
#include <stdlib.h>
#include <string.h>

#include "rtc_crypto.h"
#include "rtc_err.h"
#include "tap.h"

static int unhex(const char *h, uint8_t *out)
{
    int n = 0;
    for (; h[0] && h[1]; h += 2) {
        unsigned v;
        sscanf(h, "%2x", &v);
        out[n++] = (uint8_t)v;
    }
    return n;
}

typedef struct {
    const char *key_hex;   /* or NULL with key_byte/key_len */
    uint8_t key_byte;
    size_t key_len;
    const char *data;      /* text, or NULL with data_byte/data_len */
    uint8_t data_byte;
    size_t data_len;
    const char *mac;
} hmac_case;

static void fill(const hmac_case *c, uint8_t *key, size_t *kl, uint8_t *data, size_t *dl)
{
    if (c->key_hex) {
        *kl = (size_t)unhex(c->key_hex, key);
    } else {
        memset(key, c->key_byte, c->key_len);
        *kl = c->key_len;
    }
    if (c->data) {
        *dl = strlen(c->data);
        memcpy(data, c->data, *dl);
    } else {
        memset(data, c->data_byte, c->data_len);
        *dl = c->data_len;
    }
}

static void hmacs(void)
{
    static const hmac_case sha1[] = {
        {NULL, 0x0b, 20, "Hi There", 0, 0, "b617318655057264e28bc0b6fb378c8ef146be00"},
        {"4a656665", 0, 0, "what do ya want for nothing?", 0, 0,
         "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"},
        {NULL, 0xaa, 20, NULL, 0xdd, 50, "125d7342b9ac11cd91a39af48aa17b4f63f175d3"},
        {"0102030405060708090a0b0c0d0e0f10111213141516171819", 0, 0, NULL, 0xcd, 50,
         "4c9007f4026250c6bc8414f9bf50c86c2d7235da"},
        {NULL, 0x0c, 20, "Test With Truncation", 0, 0, "4c1a03424b55e07fe7f27be1d58bb9324a9a5a04"},
        {NULL, 0xaa, 80, "Test Using Larger Than Block-Size Key - Hash Key First", 0, 0,
         "aa4ae5e15272d00e95705637ce8a3b55ed402112"},
        {NULL, 0xaa, 80,
         "Test Using Larger Than Block-Size Key and Larger Than One Block-Size Data", 0, 0,
         "e8e99d0f45237d786d6bbaa7965c7808bbff1a91"},
    };
    static const hmac_case sha256[] = {
        {NULL, 0x0b, 20, "Hi There", 0, 0,
         "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"},
        {"4a656665", 0, 0, "what do ya want for nothing?", 0, 0,
         "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"},
        {NULL, 0xaa, 20, NULL, 0xdd, 50,
         "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"},
        {"0102030405060708090a0b0c0d0e0f10111213141516171819", 0, 0, NULL, 0xcd, 50,
         "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"},
        {NULL, 0xaa, 131, "Test Using Larger Than Block-Size Key - Hash Key First", 0, 0,
         "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"},
        {NULL, 0xaa, 131,
         "This is a test using a larger than block-size key and a larger than block-size "
         "data. The key needs to be hashed before being used by the HMAC algorithm.",
         0, 0, "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"},
    };
    uint8_t key[200], data[200], mac[32], mac2[32];
    char hex[65];
    size_t kl, dl;

    for (size_t i = 0; i < sizeof sha1 / sizeof sha1[0]; i++) {
        fill(&sha1[i], key, &kl, data, &dl);
        rtc_hmac_sha1(key, kl, data, dl, mac);
        rtc_hex(mac, 20, hex);
        ok(strcmp(hex, sha1[i].mac) == 0, "HMAC-SHA1 RFC 2202 test case");
        /* the two-piece form over every split point gives the same MAC */
        {
            size_t bad = 0;
            for (size_t s = 0; s <= dl; s++) {
                rtc_hmac_sha1_2(key, kl, data, s, data + s, dl - s, mac2);
                bad += memcmp(mac, mac2, 20) != 0;
            }
            is_int(bad, 0, "rtc_hmac_sha1_2 equals the one-shot MAC at every split");
        }
    }
    for (size_t i = 0; i < sizeof sha256 / sizeof sha256[0]; i++) {
        fill(&sha256[i], key, &kl, data, &dl);
        rtc_hmac_sha256(key, kl, data, dl, mac);
        rtc_hex(mac, 32, hex);
        ok(strcmp(hex, sha256[i].mac) == 0, "HMAC-SHA256 RFC 4231 test case");
    }
    rtc_md5("", 0, mac);
    rtc_hex(mac, 16, hex);
    ok(strcmp(hex, "d41d8cd98f00b204e9800998ecf8427e") == 0, "MD5 of the empty string");
    rtc_sha256("abc", 3, mac);
    rtc_hex(mac, 32, hex);
    ok(strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad") == 0,
       "SHA-256 of \"abc\"");
}

static void crc_and_misc(void)
{
    uint8_t a[32], b[32];
    rtc_secret s = {0};

    is_int(rtc_crc32("123456789", 9), 0xCBF43926u, "CRC-32 check value 0xCBF43926");
    is_int(rtc_crc32("", 0), 0, "CRC-32 of nothing is 0");
    is_int(rtc_crc32("a", 1), 0xE8B7BE43u, "CRC-32 of \"a\"");
    ok(rtc_ct_equal("abcd", "abcd", 4) && !rtc_ct_equal("abcd", "abce", 4) &&
           rtc_ct_equal("x", "y", 0),
       "constant-time compare");
    ok(rtc_random(a, sizeof a) == 0 && rtc_random(b, sizeof b) == 0 && memcmp(a, b, 32) != 0,
       "two random draws differ");
    ok(rtc_secret_init(&s, "hunter2", 7) == 0 && s.len == 7 && memcmp(s.p, "hunter2", 7) == 0,
       "secret holds a copy");
    rtc_secret_dispose(&s);
    ok(s.p == NULL && s.len == 0, "disposed secret is empty");
    rtc_secret_dispose(&s);
    ok(1, "disposing twice is safe");
    {
        char h[9];
        rtc_hex("\x00\xff\x10\xab", 4, h);
        ok(strcmp(h, "00ff10ab") == 0, "hex is lowercase");
    }
}

static void base64(void)
{
    static const char *const in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *const std[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    static const char *const url[] = {"", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy"};
    char out[128];
    uint8_t dec[128], rnd[64];
    size_t bad = 0;

    for (size_t i = 0; i < 7; i++) {
        size_t l = strlen(in[i]);
        is_int(rtc_base64_encode(in[i], l, out, sizeof out), strlen(std[i]), "std length");
        ok(strcmp(out, std[i]) == 0, "RFC 4648 s.10 vector (std)");
        is_int(rtc_base64url_encode(in[i], l, out, sizeof out), strlen(url[i]), "url length");
        ok(strcmp(out, url[i]) == 0, "RFC 4648 vector, url alphabet, no padding");
        ok(rtc_base64_decode(std[i], strlen(std[i]), dec, sizeof dec) == (int)l &&
               memcmp(dec, in[i], l) == 0,
           "std decodes back");
        ok(rtc_base64_decode(url[i], strlen(url[i]), dec, sizeof dec) == (int)l &&
               memcmp(dec, in[i], l) == 0,
           "unpadded decodes back");
    }
    rtc_base64_encode("\xfb\xff", 2, out, sizeof out);
    ok(strcmp(out, "+/8=") == 0, "std alphabet uses + and /");
    rtc_base64url_encode("\xfb\xff", 2, out, sizeof out);
    ok(strcmp(out, "-_8") == 0, "url alphabet uses - and _");

    for (size_t len = 0; len <= sizeof rnd; len++) {
        int n;
        rtc_random(rnd, len);
        n = rtc_base64_encode(rnd, len, out, sizeof out);
        bad += n < 0 || rtc_base64_decode(out, (size_t)n, dec, sizeof dec) != (int)len ||
               memcmp(dec, rnd, len) != 0;
        n = rtc_base64url_encode(rnd, len, out, sizeof out);
        bad += n < 0 || strpbrk(out, "+/=") != NULL ||
               rtc_base64_decode(out, (size_t)n, dec, sizeof dec) != (int)len ||
               memcmp(dec, rnd, len) != 0;
    }
    is_int(bad, 0, "random 0..64-byte buffers round-trip both alphabets");

    is_int(rtc_base64_decode("Zm9v!", 5, dec, sizeof dec), RTC_EMSG, "'!' rejected");
    is_int(rtc_base64_decode("Zm 9v", 5, dec, sizeof dec), RTC_EMSG, "space rejected");
    is_int(rtc_base64_decode("Zm9=v", 5, dec, sizeof dec), RTC_EMSG, "'=' inside rejected");
    is_int(rtc_base64_decode("Z", 1, dec, sizeof dec), RTC_EMSG, "one lone character rejected");
    is_int(rtc_base64_decode("Zm9vY", 5, dec, sizeof dec), RTC_EMSG, "4n+1 characters rejected");
    is_int(rtc_base64_decode("Zm9v\n", 5, dec, sizeof dec), RTC_EMSG, "newline rejected");
    is_int(rtc_base64_decode("Zm9vYmFy", 8, dec, 5), RTC_ESPACE, "6 bytes into 5: RTC_ESPACE");
    is_int(rtc_base64_encode("foo", 3, out, 4), RTC_ESPACE, "no room for the NUL: RTC_ESPACE");
    is_int(rtc_base64_encode("foo", 3, out, 5), 4, "exact room incl. NUL is fine");
    is_int(rtc_base64url_encode("fo", 2, out, 3), RTC_ESPACE, "url: no room for the NUL");
}

int main(void)
{
    hmacs();
    crc_and_misc();
    base64();
    return done_testing();
}
