/* stn_auth.h - MESSAGE-INTEGRITY (HMAC-SHA1), FINGERPRINT (CRC-32) and
 * stateless nonces (RFC 8489 s.9.2, s.14.5, s.14.7).
 *
 * Checking MI hashes the message up to the MI attribute with the header
 * length adjusted to end just after MI, as s.14.5 requires, without copying
 * the message. Nonces carry their own expiry and are MACed with a server key
 * and bound to the client's transport address, so the server keeps no
 * per-source state before a request authenticates. */
#ifndef STN_AUTH_H
#define STN_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rtc_addr.h"
#include "stn_msg.h"

#define STN_MI_LEN 20
#define STN_FP_XOR 0x5354554Eu
#define STN_NONCE_LEN 32 /* 8 hex expiry + 24 hex MAC */

/* true when the message has MESSAGE-INTEGRITY and it verifies with key. */
bool stn_auth_check_integrity(const stn_msg *m, const void *key, size_t keylen);
/* true when there is no FINGERPRINT, or it is correct. */
bool stn_auth_check_fingerprint(const stn_msg *m);

/* Append MESSAGE-INTEGRITY computed with key; then optionally FINGERPRINT. */
void stn_build_integrity(stn_builder *b, const void *key, size_t keylen);
void stn_build_fingerprint(stn_builder *b);

/* Long-term credential key: MD5(username ":" realm ":" password). Inputs
 * are used as given (SASLprep of ASCII is the identity). */
void stn_auth_longterm_key(const char *user, size_t ulen, const char *realm, size_t rlen,
                           const char *pass, size_t plen, uint8_t out[16]);

/* Stateless nonce: hex(expiry_s) || hex(trunc96(HMAC(key, expiry||client))). */
void stn_nonce_make(const void *key, size_t keylen, uint64_t expiry_s, const rtc_addr *client,
                    char out[STN_NONCE_LEN + 1]);
/* 0 when valid, RTC_ESTALE when well-formed and MACed but expired (-> 438),
 * RTC_EMSG when forged or not ours (-> 438 as well; a fresh nonce follows). */
int stn_nonce_check(const void *key, size_t keylen, const uint8_t *nonce, size_t len,
                    uint64_t now_s, const rtc_addr *client);

#endif
