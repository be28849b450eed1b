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

#define SIG_TURN_USER_MAX 96
#define SIG_TURN_CRED_MAX 32 /* base64 of 20 bytes is 28 */

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
