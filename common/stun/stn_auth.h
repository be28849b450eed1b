/* stn_auth.h - MESSAGE-INTEGRITY (HMAC-SHA1), MESSAGE-INTEGRITY-SHA256,
 * FINGERPRINT (CRC-32), long-term keys (MD5 and SHA-256) and stateless
 * nonces (RFC 8489 s.9.2, s.14.5, s.14.6, s.14.7).
 *
 * Checking MI hashes the message up to the MI attribute with the header
 * length adjusted to end just after MI, as s.14.5 requires, without copying
 * the message; MI-SHA256 the same way (s.14.6). Nonces carry their own expiry
 * and are MACed with a server key and bound to the client's transport
 * address, so the server keeps no per-source state before a request
 * authenticates. A nonce may start with the RFC 8489 "nonce cookie"
 * (s.9.2: "obMatJos2" + base64 of the 24 STUN Security Feature bits); the
 * feature bits are covered by the MAC, so a man in the middle cannot strip
 * them (bid-down protection, s.9.2.1). */
#ifndef STN_AUTH_H
#define STN_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rtc_addr.h"
#include "stn_msg.h"

#define STN_MI_LEN 20
#define STN_MI256_LEN 32 /* what we send; received ones may be 16..32 */
#define STN_FP_XOR 0x5354554Eu
#define STN_NONCE_LEN 32 /* 8 hex expiry + 24 hex MAC */

/* RFC 8489 s.9.2 nonce cookie: "obMatJos2" and 4 base64 characters of the
 * 24-bit STUN Security Features (s.18.1). Bits count from the right
 * (RFC 8489 erratum 6290): bit 0, "Password algorithms", is 0x000001. */
#define STN_NONCE_COOKIE "obMatJos2"
#define STN_NONCE_COOKIE_LEN 13
/* A cookie nonce: the cookie, 8 hex expiry, 16 base64url characters of the
 * 96-bit MAC (base64, not hex: the 401 is what a spoofer gets for a 28-byte
 * Allocate, so every byte of it counts). 37 characters. */
#define STN_NONCE_MAX_LEN (STN_NONCE_COOKIE_LEN + 8 + 16)
#define STN_SEC_PASSWORD_ALGORITHMS 0x000001u
#define STN_SEC_USERNAME_ANONYMITY 0x000002u

/* PASSWORD-ALGORITHM numbers (RFC 8489 s.18.5). */
enum { STN_PWALG_MD5 = 0x0001, STN_PWALG_SHA256 = 0x0002 };

/* true when the message has MESSAGE-INTEGRITY and it verifies with key. */
bool stn_auth_check_integrity(const stn_msg *m, const void *key, size_t keylen);
/* true when the message has MESSAGE-INTEGRITY-SHA256 and it verifies with
 * key: HMAC-SHA256 truncated to the attribute's length (16..32, s.14.6). */
bool stn_auth_check_integrity_sha256(const stn_msg *m, const void *key, size_t keylen);
/* true when there is no FINGERPRINT, or it is correct. */
bool stn_auth_check_fingerprint(const stn_msg *m);

/* Append MESSAGE-INTEGRITY computed with key; then optionally FINGERPRINT. */
void stn_build_integrity(stn_builder *b, const void *key, size_t keylen);
/* Append MESSAGE-INTEGRITY-SHA256 (full 32 bytes) computed with key. */
void stn_build_integrity_sha256(stn_builder *b, const void *key, size_t keylen);
void stn_build_fingerprint(stn_builder *b);

/* Long-term credential key: MD5(username ":" realm ":" password). Inputs
 * are used as given (SASLprep of ASCII is the identity). */
void stn_auth_longterm_key(const char *user, size_t ulen, const char *realm, size_t rlen,
                           const char *pass, size_t plen, uint8_t out[16]);
/* The same with PASSWORD-ALGORITHM SHA-256 (s.9.2.2): SHA-256(username ":"
 * realm ":" password), 32 bytes. */
void stn_auth_longterm_key_sha256(const char *user, size_t ulen, const char *realm, size_t rlen,
                                  const char *pass, size_t plen, uint8_t out[32]);

/* Stateless nonce: hex(expiry_s) || hex(trunc96(HMAC(key, expiry||client))). */
void stn_nonce_make(const void *key, size_t keylen, uint64_t expiry_s, const rtc_addr *client,
                    char out[STN_NONCE_LEN + 1]);
/* 0 when valid, RTC_ESTALE when well-formed and MACed but expired (-> 438),
 * RTC_EMSG when forged or not ours (-> 438 as well; a fresh nonce follows). */
int stn_nonce_check(const void *key, size_t keylen, const uint8_t *nonce, size_t len,
                    uint64_t now_s, const rtc_addr *client);

/* A nonce with the RFC 8489 cookie in front: "obMatJos2" || base64(features,
 * 3 bytes) || hex(expiry_s) || base64url(trunc96(HMAC(key, expiry || client
 * || features))). out has STN_NONCE_MAX_LEN + 1 bytes. */
void stn_nonce_make_cookie(const void *key, size_t keylen, uint64_t expiry_s,
                           const rtc_addr *client, uint32_t features,
                           char out[STN_NONCE_MAX_LEN + 1]);
/* Checks either form: a cookie nonce (its feature bits in *features) or a
 * plain one from stn_nonce_make (*features = 0). Returns as stn_nonce_check. */
int stn_nonce_check_cookie(const void *key, size_t keylen, const uint8_t *nonce, size_t len,
                           uint64_t now_s, const rtc_addr *client, uint32_t *features);

#endif
