/* rtc_crypto.c - OpenSSL adapter. The only file of common/ that includes
 * OpenSSL headers, so the rest of the code base never depends on its API. */
#include "rtc_crypto.h"

/* HMAC_CTX is deprecated in OpenSSL 3.0; see rtc_hmac_sha1_2. */
#define OPENSSL_SUPPRESS_DEPRECATED

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "rtc_err.h"

int rtc_secret_init(rtc_secret *s, const void *bytes, size_t len)
{
    s->p = malloc(len ? len : 1);
    if (!s->p) {
        s->len = 0;
        return -ENOMEM;
    }
    if (len)
        memcpy(s->p, bytes, len);
    s->len = len;
    return 0;
}

void rtc_secret_dispose(rtc_secret *s)
{
    if (s->p) {
        OPENSSL_cleanse(s->p, s->len);
        free(s->p);
    }
    s->p = NULL;
    s->len = 0;
}

void rtc_hmac_sha1(const void *key, size_t keylen, const void *data, size_t len,
                   uint8_t out[RTC_SHA1_LEN])
{
    rtc_hmac_sha1_2(key, keylen, data, len, NULL, 0, out);
}

void rtc_hmac_sha1_2(const void *key, size_t keylen, const void *a, size_t alen, const void *b,
                     size_t blen, uint8_t out[RTC_SHA1_LEN])
{
    /* HMAC_CTX is marked deprecated in 3.0 but is the one streaming HMAC that
     * needs no per-call algorithm fetch by name (EVP_MAC_fetch does). */
    unsigned int olen = RTC_SHA1_LEN;
    HMAC_CTX *ctx = HMAC_CTX_new();

    if (!ctx || HMAC_Init_ex(ctx, key, (int)keylen, EVP_sha1(), NULL) != 1 ||
        HMAC_Update(ctx, a, alen) != 1 || (blen && HMAC_Update(ctx, b, blen) != 1) ||
        HMAC_Final(ctx, out, &olen) != 1)
        memset(out, 0, RTC_SHA1_LEN); /* fails closed: a zero MAC is compared, not trusted */
    HMAC_CTX_free(ctx);
}

void rtc_hmac_sha256(const void *key, size_t keylen, const void *data, size_t len,
                     uint8_t out[RTC_SHA256_LEN])
{
    unsigned int olen = RTC_SHA256_LEN;
    if (!HMAC(EVP_sha256(), key, (int)keylen, data, len, out, &olen))
        memset(out, 0, RTC_SHA256_LEN);
}

void rtc_hmac_sha256_2(const void *key, size_t keylen, const void *a, size_t alen, const void *b,
                       size_t blen, uint8_t out[RTC_SHA256_LEN])
{
    unsigned int olen = RTC_SHA256_LEN;
    HMAC_CTX *ctx = HMAC_CTX_new();

    if (!ctx || HMAC_Init_ex(ctx, key, (int)keylen, EVP_sha256(), NULL) != 1 ||
        HMAC_Update(ctx, a, alen) != 1 || (blen && HMAC_Update(ctx, b, blen) != 1) ||
        HMAC_Final(ctx, out, &olen) != 1)
        memset(out, 0, RTC_SHA256_LEN); /* fails closed, as rtc_hmac_sha1_2 */
    HMAC_CTX_free(ctx);
}

void rtc_md5(const void *data, size_t len, uint8_t out[RTC_MD5_LEN])
{
    unsigned int olen = RTC_MD5_LEN;
    if (!EVP_Digest(data, len, out, &olen, EVP_md5(), NULL))
        memset(out, 0, RTC_MD5_LEN);
}

void rtc_sha256(const void *data, size_t len, uint8_t out[RTC_SHA256_LEN])
{
    unsigned int olen = RTC_SHA256_LEN;
    if (!EVP_Digest(data, len, out, &olen, EVP_sha256(), NULL))
        memset(out, 0, RTC_SHA256_LEN);
}

/* CRC-32 (ISO-HDLC, as STUN FINGERPRINT uses), slicing-by-1 table. The
 * table is computed at compile time by the macro below so no init call or
 * mutable global is needed. */
#define C1(c) (((c) & 1) ? (0xEDB88320u ^ ((c) >> 1)) : ((c) >> 1))
#define C8(c) C1(C1(C1(C1(C1(C1(C1(C1(c))))))))
#define R4(n) C8(n), C8(n + 1), C8(n + 2), C8(n + 3)
#define R16(n) R4(n), R4(n + 4), R4(n + 8), R4(n + 12)
#define R64(n) R16(n), R16(n + 16), R16(n + 32), R16(n + 48)
static const uint32_t crc_table[256] = {R64(0u), R64(64u), R64(128u), R64(192u)};

uint32_t rtc_crc32(const void *data, size_t len)
{
    const uint8_t *p = data;
    uint32_t c = 0xFFFFFFFFu;
    while (len--)
        c = crc_table[(c ^ *p++) & 0xFF] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

bool rtc_ct_equal(const void *a, const void *b, size_t n) { return CRYPTO_memcmp(a, b, n) == 0; }

int rtc_random(void *buf, size_t n)
{
    return RAND_bytes(buf, (int)n) == 1 ? 0 : -EIO;
}

static int b64_encode(const void *in, size_t len, char *out, size_t cap, bool url)
{
    static const char std[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    static const char urlabc[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const char *abc = url ? urlabc : std;
    const uint8_t *p = in;
    size_t need = url ? (len * 4 + 2) / 3 : (len + 2) / 3 * 4, o = 0, i = 0;

    if (need + 1 > cap)
        return RTC_ESPACE;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        out[o++] = abc[v >> 18];
        out[o++] = abc[(v >> 12) & 63];
        out[o++] = abc[(v >> 6) & 63];
        out[o++] = abc[v & 63];
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        out[o++] = abc[v >> 18];
        out[o++] = abc[(v >> 12) & 63];
        if (!url) {
            out[o++] = '=';
            out[o++] = '=';
        }
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        out[o++] = abc[v >> 18];
        out[o++] = abc[(v >> 12) & 63];
        out[o++] = abc[(v >> 6) & 63];
        if (!url)
            out[o++] = '=';
    }
    out[o] = '\0';
    return (int)o;
}

int rtc_base64_encode(const void *in, size_t len, char *out, size_t cap)
{
    return b64_encode(in, len, out, cap, false);
}

int rtc_base64url_encode(const void *in, size_t len, char *out, size_t cap)
{
    return b64_encode(in, len, out, cap, true);
}

static int b64_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+' || c == '-')
        return 62;
    if (c == '/' || c == '_')
        return 63;
    return -1;
}

int rtc_base64_decode(const char *in, size_t len, uint8_t *out, size_t cap)
{
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;

    while (len > 0 && in[len - 1] == '=')
        len--;
    if (len % 4 == 1)
        return RTC_EMSG;
    for (size_t i = 0; i < len; i++) {
        int v = b64_value(in[i]);
        if (v < 0)
            return RTC_EMSG;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o >= cap)
                return RTC_ESPACE;
            out[o++] = (uint8_t)(acc >> bits);
        }
    }
    return (int)o;
}

void rtc_hex(const void *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    const uint8_t *p = in;
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = '\0';
}
