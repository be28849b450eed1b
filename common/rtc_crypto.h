/* rtc_crypto.h - the only door to OpenSSL's hashes, MACs and RNG.
 *
 * HMAC-SHA1 (STUN MESSAGE-INTEGRITY, TURN REST passwords), HMAC-SHA256 (JWT
 * HS256, STUN MESSAGE-INTEGRITY-SHA256), MD5 and SHA-256 (long-term
 * credential keys, RFC 8489 s.9.2.2), CRC-32 (STUN FINGERPRINT), base64,
 * secure random bytes and a constant-time compare.
 * Keys live in rtc_secret buffers, which are wiped when disposed (s2n).
 * Every function here is thread-safe and allocation-free unless stated. */
#ifndef RTC_CRYPTO_H
#define RTC_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RTC_SHA1_LEN 20
#define RTC_SHA256_LEN 32
#define RTC_MD5_LEN 16

/* Secret bytes owned by whoever embeds the struct. */
typedef struct {
    uint8_t *p;
    size_t len;
} rtc_secret;

/* Copy len bytes into a fresh secret. 0 or -ENOMEM. */
int rtc_secret_init(rtc_secret *s, const void *bytes, size_t len);
/* Wipe and free; the struct is left empty. Safe on an empty secret. */
void rtc_secret_dispose(rtc_secret *s);

void rtc_hmac_sha1(const void *key, size_t keylen, const void *data, size_t len,
                   uint8_t out[RTC_SHA1_LEN]);
/* HMAC over two concatenated pieces without copying them together. */
void rtc_hmac_sha1_2(const void *key, size_t keylen, const void *a, size_t alen, const void *b,
                     size_t blen, uint8_t out[RTC_SHA1_LEN]);
void rtc_hmac_sha256(const void *key, size_t keylen, const void *data, size_t len,
                     uint8_t out[RTC_SHA256_LEN]);
/* HMAC-SHA256 over two pieces (STUN MESSAGE-INTEGRITY-SHA256: a patched
 * header copy, then the message body in place). */
void rtc_hmac_sha256_2(const void *key, size_t keylen, const void *a, size_t alen, const void *b,
                       size_t blen, uint8_t out[RTC_SHA256_LEN]);
void rtc_md5(const void *data, size_t len, uint8_t out[RTC_MD5_LEN]);
void rtc_sha256(const void *data, size_t len, uint8_t out[RTC_SHA256_LEN]);
uint32_t rtc_crc32(const void *data, size_t len);

/* Constant-time equality of two n-byte buffers. */
bool rtc_ct_equal(const void *a, const void *b, size_t n);

/* Fill buf with n bytes from the CSPRNG. 0, or RTC_EAUTH-ish failure (-EIO). */
int rtc_random(void *buf, size_t n);

/* Standard base64 with padding (RFC 4648 s.4). Returns the encoded length
 * (excluding the NUL it always writes) or RTC_ESPACE. */
int rtc_base64_encode(const void *in, size_t len, char *out, size_t cap);
/* base64url without padding (RFC 4648 s.5, as JWT uses). */
int rtc_base64url_encode(const void *in, size_t len, char *out, size_t cap);
/* Decode either alphabet, padding optional; rejects any other character.
 * Returns the decoded length or RTC_EMSG / RTC_ESPACE. */
int rtc_base64_decode(const char *in, size_t len, uint8_t *out, size_t cap);

/* Lowercase hex of n bytes into out (2n+1 bytes). */
void rtc_hex(const void *in, size_t n, char *out);

#endif
