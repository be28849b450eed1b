/* sig_tokmap.h - resume tokens -> members, in O(1) per lookup, without
 * letting lookups leak timing about the tokens (issue 16 item 4).
 *
 * `resume` used to compare the offered token against every member's, in
 * constant time each: O(members) per resume (10k members, 10k compares).
 * Here a token is found through a hash table instead. Tokens are secrets,
 * so the table must not become an oracle:
 *  - the bucket index and the cached 64-bit hash are SipHash-2-4 under a
 *    random key drawn for each map (rtc_hash_key_random). Without the key a
 *    client cannot tell which bucket a token lands in, nor aim two tokens at
 *    one; how long a chain walk takes says nothing about the token's bytes.
 *  - on the chain, a node is a candidate only when its cached keyed hash
 *    equals the offered token's (a comparison of PRF outputs, which reveals
 *    nothing about the token), and then the token itself is compared with
 *    rtc_ct_equal over its full length. No memcmp ever runs on token bytes.
 *
 * Intrusive, like rtc_map: the owner embeds a sig_tokmap_node and finds its
 * struct with RTC_MAP_ENTRY. Tokens are BORROWED (the owner's string must
 * outlive its node's stay in the map). Unlike rtc_map, equal tokens may be
 * in the map twice (a member being adopted while its old self lingers):
 * lookup returns the most recently inserted one, as the member list walk
 * it replaces did (newest connection first).
 *
 * Value type: _init/_dispose. One thread (the hub's). */
#ifndef SIG_TOKMAP_H
#define SIG_TOKMAP_H

#include <stddef.h>
#include <stdint.h>

#include "rtc_hash.h"

typedef struct sig_tokmap_node {
    struct sig_tokmap_node *next, **pprev; /* chain; private to sig_tokmap */
    const char *tok;                       /* borrowed */
    size_t len;
    uint64_t hash; /* keyed: safe to compare in variable time */
} sig_tokmap_node;

typedef struct {
    sig_tokmap_node **b; /* NULL only after dispose */
    size_t nb, n;        /* buckets (a power of two), nodes */
    rtc_hash_key key;
} sig_tokmap;

/* Empty, with a fresh random key and its first buckets, so that inserting
 * never fails afterwards. 0, or -ENOMEM. (When getrandom fails the key is
 * merely hard to guess, see rtc_hash_key_random: still a working map.) */
int sig_tokmap_init(sig_tokmap *t);
void sig_tokmap_dispose(sig_tokmap *t); /* frees the buckets; nodes are the owner's */

/* Add n under tok (borrowed, NUL-terminated); n must not be in a map.
 * Never fails: a growth that finds no memory leaves chains longer. */
void sig_tokmap_insert(sig_tokmap *t, sig_tokmap_node *n, const char *tok);
/* Unlink n if it is in the map (a node never inserted, or already removed,
 * with next/pprev NULL, is left alone); O(1). */
void sig_tokmap_remove(sig_tokmap *t, sig_tokmap_node *n);
/* The newest node whose token equals tok, or NULL. */
sig_tokmap_node *sig_tokmap_find(const sig_tokmap *t, const char *tok);

static inline size_t sig_tokmap_count(const sig_tokmap *t) { return t->n; }

#endif
