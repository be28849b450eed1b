/* sig_homac.h - the MAC that authenticates a resume hand-over's reply
 * (cluster mode; "Hand-over" in sig_handover.c, step 4). Pure functions of
 * the token and the reply's fields; no state. */
#ifndef SIG_HOMAC_H
#define SIG_HOMAC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The hand-over reply's authentication: without it, anyone who can PUBLISH
 * to Redis could race the owner and hand a resuming client a queue of its
 * own making (with iceServers in it, say). Both ends hold
 * the resume token T: the owner in its member, the asking node from its
 * client; Redis only ever sees SHA-256(T). The key is
 * HMAC-SHA256(T, "tsunagu-hr-key") (a key of its own, so that a reply MAC is
 * never a request proof), kept in memory only until the reply is checked.
 * The MAC, lowercase hex, is HMAC-SHA256(key, "tsunagu-hr" then rq, owner,
 * room, id, name and each queued text, every one prefixed with its length):
 * it binds the reply to the request serial, the member and every byte the
 * client will get from it. 0, or -ENOMEM. */
#define SIG_HO_KEY_LEN 32
#define SIG_HO_MAC_LEN 64
void sig_ho_reply_key(const char *token, uint8_t key[SIG_HO_KEY_LEN]);
int sig_ho_reply_mac(const uint8_t key[SIG_HO_KEY_LEN], uint64_t rq, const char *owner,
                     const char *room, const char *id, const char *name,
                     const char *const *texts, size_t n, char out[SIG_HO_MAC_LEN + 1]);

/* Lowercase hex SHA-256 of a resume token: its lookup key in Redis (the
 * token itself never leaves this process; 128 random bits need no salt). */
#define SIG_TH_LEN 64
void sig_token_hash(const char *token, char out[SIG_TH_LEN + 1]);

/* What a hand-over request's proof covers: the asking node (the member goes
 * there), its request serial, the room, the member and the token's hash.
 * The proof is HMAC-SHA256(key = resume token, bound), lowercase hex: only
 * a holder of the token (the asking node, from its client; the owner) can
 * make it. Knowing the hash (Redis keys, the request itself) is not enough.
 * Returns false when it does not fit `cap`. */
bool sig_ho_bound(char *out, size_t cap, const char *node, uint64_t rq, const char *room,
                        const char *id, const char *th);
/* The proof itself: HMAC-SHA256(key = token, bound), lowercase hex (the
 * asking node makes it from its client's token); _ok checks one in
 * constant time (the owner, with its member's token). */
void sig_ho_proof(const char *token, const char *bound, char out[SIG_TH_LEN + 1]);
bool sig_ho_proof_ok(const char *token, const char *bound, const char *proof);

#endif
