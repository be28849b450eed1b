/* rtc_map.h - an intrusive hash map keyed by strings or byte strings.
 *
 * Replaces the hand-written chained tables that hashed names with unkeyed
 * FNV-1a (rooms, usernames, cluster mirrors, per-address counts): the bucket
 * index here is SipHash-2-4 (rtc_hash.h) under a random key drawn for each
 * map, so a client that chooses room names cannot aim them at one bucket,
 * and what it learns about one map (or one process) says nothing about
 * another.
 *
 * Intrusive: the caller embeds an rtc_map_node in its own struct and finds
 * the struct again with RTC_MAP_ENTRY (container_of). Insert and remove
 * never allocate a node; the only allocation is the bucket array, made on
 * the first insert and doubled when the map holds more nodes than buckets
 * (load factor 1). A failed doubling is not an error: the old array keeps
 * working with longer chains.
 *
 * Keys are BORROWED: the map stores a pointer to the key bytes and their
 * length, not a copy. The key must live inside (or as long as) the container
 * and must not change while the node is in the map; typically it is a
 * flexible array member or a fixed array in the same struct.
 *
 * Iteration: rtc_map_iter_next may be followed by removing (and freeing) the
 * node it just returned; that is the only change allowed during an
 * iteration (an insert can re-bucket everything; removing another node can
 * unlink the one the iterator holds next).
 *
 * Not thread-safe: one owner thread, or the caller's lock around every call
 * (rly_quota keeps a mutex). No call ever blocks. */
#ifndef RTC_MAP_H
#define RTC_MAP_H

#include <errno.h> /* -EEXIST, -ENOMEM */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rtc_hash.h"

typedef struct rtc_map_node {
    struct rtc_map_node *next, **pprev; /* chain; private to rtc_map */
    const void *key;                    /* borrowed, see above */
    size_t klen;
    uint64_t hash;                      /* cached: rehash and compare without SipHash */
} rtc_map_node;

/* A value type the owner embeds; fields are private to rtc_map.c. */
typedef struct {
    rtc_map_node **b; /* NULL until the first insert */
    size_t nb;        /* bucket count, a power of two (0 before the first insert) */
    size_t n;         /* nodes in the map */
    rtc_hash_key key;
} rtc_map;

/* The struct that embeds node `n` as `member`. */
#define RTC_MAP_ENTRY(n, type, member) ((type *)(void *)((char *)(n) - offsetof(type, member)))

/* An empty map with a fresh random key; allocates nothing. 0, or -errno
 * when the kernel gave no random bytes (the map still works, with a key
 * that is merely hard to guess: see rtc_hash_key_random). */
int rtc_map_init(rtc_map *m);

/* Free the bucket array. Nodes belong to the caller: free them first (e.g.
 * by iterating and removing). The map may be re-initialised afterwards. */
void rtc_map_dispose(rtc_map *m);

/* Insert node n under key[0..klen) (borrowed). 0; -EEXIST when the key is
 * already present (nothing changed); -ENOMEM when the very first bucket array
 * cannot be allocated. n must not be in any map. */
int rtc_map_insert(rtc_map *m, rtc_map_node *n, const void *key, size_t klen);
/* The same for a NUL-terminated key (its length excludes the NUL). */
int rtc_map_insert_str(rtc_map *m, rtc_map_node *n, const char *key);

/* The node whose key equals key[0..klen), or NULL. */
rtc_map_node *rtc_map_find(const rtc_map *m, const void *key, size_t klen);
rtc_map_node *rtc_map_find_str(const rtc_map *m, const char *key);

/* Unlink a node that is in m (O(1)); the node may be freed afterwards. */
void rtc_map_remove(rtc_map *m, rtc_map_node *n);

static inline size_t rtc_map_count(const rtc_map *m) { return m->n; }

/* The bucket hash this map gives a key (tests; a diagnostic). */
uint64_t rtc_map_hash(const rtc_map *m, const void *key, size_t klen);

/* Iteration in bucket order (unspecified, differs between maps):
 *     rtc_map_iter it;
 *     rtc_map_node *n;
 *     rtc_map_iter_init(&it, m);
 *     while ((n = rtc_map_iter_next(&it))) { ... may rtc_map_remove(m, n) ... } */
typedef struct {
    const rtc_map *m;
    size_t bucket;       /* next bucket to look at */
    rtc_map_node *next;  /* next node to return, read before the current one is handed out */
} rtc_map_iter;

void rtc_map_iter_init(rtc_map_iter *it, const rtc_map *m);
rtc_map_node *rtc_map_iter_next(rtc_map_iter *it); /* NULL at the end */

#endif
