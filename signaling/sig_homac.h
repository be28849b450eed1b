/* sig_homac.h - the MAC that authenticates a resume hand-over's reply
 * (cluster mode; "Hand-over" in sig_handover.c, step 4). Pure functions of
 * the token and the reply's fields; no state. */
#ifndef SIG_HOMAC_H
#define SIG_HOMAC_H

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

#endif
