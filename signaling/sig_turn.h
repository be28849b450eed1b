/* sig_turn.h - TURN REST API credentials for joined.iceServers
 * (draft-uberti-behave-turn-rest-00, as coturn's --use-auth-secret and
 * tsunagu-relay's --auth-secret check them): username "EXPIRY:MEMBERID" with
 * EXPIRY in unix seconds, credential base64(HMAC-SHA1(secret, username)).
 * Pure: the caller passes the wall clock. */
#ifndef SIG_TURN_H
#define SIG_TURN_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "rtc_addr.h"

#define SIG_TURN_USER_MAX 96
#define SIG_TURN_CRED_MAX 32 /* base64 of 20 bytes is 28 */

/* The ID part of the username must name the user, not the join: the relay
 * counts its per-user allocation quota by ID, so a fresh ID per join would
 * let one user hold any number of allocations by joining again. The ID is
 * base64url(HMAC-SHA256(secret, kind NUL data)) cut to SIG_TURN_ID_LEN
 * characters (96 bits): stable for one (kind, data) as long as the secret
 * stays, different kinds never collide by construction, and without the
 * secret it tells nothing about data (a token's sub stays private). The
 * caller uses kind "sub" with a verified token's sub, or "ip" with the
 * client's address bytes in open mode. 0 or RTC_ESPACE. */
#define SIG_TURN_ID_LEN 16
int sig_turn_user_id(const void *secret, size_t secretlen, const char *kind, const void *data,
                     size_t len, char out[SIG_TURN_ID_LEN + 1]);

/* The TURN REST ID of a member (see sig_turn_user_id): the token's sub when
 * tokens are required (sub non-NULL), else the client's IPv4 address or
 * IPv6 /64 (one subscriber usually holds a whole /64); a v4-mapped v6
 * address counts as v4. 0 or RTC_ESPACE. */
int sig_turn_identity(const char *turn_secret, const char *sub, const rtc_addr *addr,
                      char out[SIG_TURN_ID_LEN + 1]);

/* Username and credential for `id`, valid until now_s + ttl_s. 0 or RTC_ESPACE. */
int sig_turn_credential(const void *secret, size_t secretlen, const char *id, uint64_t now_s,
                        uint64_t ttl_s, char user[SIG_TURN_USER_MAX],
                        char cred[SIG_TURN_CRED_MAX]);

/* The iceServers array: one entry with every URL; with username/credential
 * when a secret is set (secretlen > 0). An empty array when there are no URLs.
 * New reference, NULL on ENOMEM. */
json_t *sig_turn_ice_servers(char *const *urls, size_t nurls, const void *secret,
                             size_t secretlen, const char *id, uint64_t now_s, uint64_t ttl_s);

#endif
