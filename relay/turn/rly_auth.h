/* rly_auth.h - long-term credentials for the relay (RFC 8489 s.9.2):
 * static users (--user NAME:PASSWORD) and TURN REST credentials
 * (--auth-secret: username "EXPIRY[:ID]", password
 * base64(HMAC-SHA1(secret, username))), both accepted at the same time.
 * Up to RLY_AUTH_SECRETS REST secrets are accepted together, so a secret
 * can be rotated without refusing credentials handed out under the old
 * one: a REST username has one candidate key per secret, and the caller
 * tries them in order until MESSAGE-INTEGRITY matches.
 *
 * An rly_auth is immutable once built; SIGHUP builds a new one and the
 * worker swaps it in between packets. Keys of static users, MD5(user:realm:
 * pass) and SHA-256(user:realm:pass) for the RFC 8489 PASSWORD-ALGORITHMs,
 * are computed once at build time and wiped on free. */
#ifndef RLY_AUTH_H
#define RLY_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct rly_auth rly_auth; /* opaque */

#define RLY_AUTH_SECRETS 4 /* REST secrets accepted at once (rotation) */

/* users: "NAME:PASSWORD" strings; secrets: up to RLY_AUTH_SECRETS REST
 * secrets (none: REST credentials off). NULL with a reason in err (naming
 * the bad entry, never echoing a password or secret) on failure. */
rly_auth *rly_auth_new(const char *realm, char *const *users, size_t n_users,
                       char *const *secrets, size_t n_secrets, char *err, size_t errlen);
void rly_auth_free(rly_auth *a);

const char *rly_auth_realm(const rly_auth *a);

/* The long-term key for user at wall-clock time now_s: a static user
 * first, then a REST username whose expiry is still ahead (*rest tells
 * which), under the first secret. 0, or RTC_EAUTH (unknown user, expired or
 * malformed REST username). */
int rly_auth_key(const rly_auth *a, const uint8_t *user, size_t ulen, uint64_t now_s,
                 uint8_t key[16], bool *rest);

#define RLY_KEY_MAX 32 /* the longest long-term key (SHA-256) */

/* The nth candidate key (from 0) for a PASSWORD-ALGORITHM (RFC 8489
 * s.18.5: STN_PWALG_MD5, 16 bytes; STN_PWALG_SHA256, 32 bytes); the length
 * goes to *keylen. A static user has one candidate, a REST username one per
 * secret. RTC_EAUTH past the last candidate, for an unknown algorithm, or as
 * rly_auth_key. */
int rly_auth_key_alg(const rly_auth *a, const uint8_t *user, size_t ulen, uint64_t now_s,
                     uint16_t alg, unsigned nth, uint8_t key[RLY_KEY_MAX], size_t *keylen,
                     bool *rest);

#endif
