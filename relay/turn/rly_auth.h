/* rly_auth.h - long-term credentials for the relay (RFC 8489 s.9.2):
 * static users (--user NAME:PASSWORD) and TURN REST credentials
 * (--auth-secret: username "EXPIRY[:ID]", password
 * base64(HMAC-SHA1(secret, username))), both accepted at the same time.
 *
 * An rly_auth is immutable once built; SIGHUP builds a new one and the
 * worker swaps it in between packets. Keys (MD5(user:realm:pass)) of static
 * users are computed once at build time and kept in rtc_secret buffers. */
#ifndef RLY_AUTH_H
#define RLY_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct rly_auth rly_auth; /* opaque */

/* users: "NAME:PASSWORD" strings; secret may be NULL. NULL with a reason in
 * err (naming the bad entry, never echoing a password) on failure. */
rly_auth *rly_auth_new(const char *realm, char *const *users, size_t n_users,
                       const char *secret, char *err, size_t errlen);
void rly_auth_free(rly_auth *a);

const char *rly_auth_realm(const rly_auth *a);

/* The long-term key for user at wall-clock time now_s: a static user
 * first, then a REST username whose expiry is still ahead (*rest tells
 * which). 0, or RTC_EAUTH (unknown user, expired or malformed REST
 * username). */
int rly_auth_key(const rly_auth *a, const uint8_t *user, size_t ulen, uint64_t now_s,
                 uint8_t key[16], bool *rest);

#endif
