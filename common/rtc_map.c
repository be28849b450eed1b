/* rtc_map.c - intrusive SipHash map (see rtc_map.h). Chains are doubly
 * linked through a pointer to the previous `next` field (the kernel's hlist),
 * so removal is O(1) without walking the chain. */
#include "rtc_map.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define FIRST_BUCKETS 16u

int rtc_map_init(rtc_map *m)
{
    m->b = NULL;
    m->nb = m->n = 0;
    return rtc_hash_key_random(&m->key);
}

void rtc_map_dispose(rtc_map *m)
{
    free(m->b);
    m->b = NULL;
    m->nb = m->n = 0;
}

uint64_t rtc_map_hash(const rtc_map *m, const void *key, size_t klen)
{
    return rtc_siphash24(&m->key, key, klen);
}

static void link_head(rtc_map_node **head, rtc_map_node *n)
{
    n->next = *head;
    if (n->next)
        n->next->pprev = &n->next;
    *head = n;
    n->pprev = head;
}

/* Double the bucket array; on ENOMEM keep the old one (longer chains). */
static void grow(rtc_map *m)
{
    size_t nb = m->nb * 2;
    rtc_map_node **b;

    if (nb < m->nb || nb > SIZE_MAX / sizeof *b)
        return;
    b = calloc(nb, sizeof *b);
    if (!b)
        return;
    for (size_t i = 0; i < m->nb; i++)
        while (m->b[i]) {
            rtc_map_node *n = m->b[i];
            m->b[i] = n->next;
            link_head(&b[n->hash & (nb - 1)], n);
        }
    free(m->b);
    m->b = b;
    m->nb = nb;
}

static rtc_map_node *lookup(const rtc_map *m, uint64_t h, const void *key, size_t klen)
{
    if (!m->nb)
        return NULL;
    for (rtc_map_node *n = m->b[h & (m->nb - 1)]; n; n = n->next)
        if (n->hash == h && n->klen == klen && (klen == 0 || !memcmp(n->key, key, klen)))
            return n;
    return NULL;
}

int rtc_map_insert(rtc_map *m, rtc_map_node *n, const void *key, size_t klen)
{
    uint64_t h = rtc_map_hash(m, key, klen);

    if (lookup(m, h, key, klen))
        return -EEXIST;
    if (!m->b) {
        if (!(m->b = calloc(FIRST_BUCKETS, sizeof *m->b)))
            return -ENOMEM;
        m->nb = FIRST_BUCKETS;
    } else if (m->n >= m->nb) {
        grow(m);
    }
    n->key = key;
    n->klen = klen;
    n->hash = h;
    link_head(&m->b[h & (m->nb - 1)], n);
    m->n++;
    return 0;
}

int rtc_map_insert_str(rtc_map *m, rtc_map_node *n, const char *key)
{
    return rtc_map_insert(m, n, key, strlen(key));
}

rtc_map_node *rtc_map_find(const rtc_map *m, const void *key, size_t klen)
{
    if (!m->n)
        return NULL; /* an empty map skips the SipHash */
    return lookup(m, rtc_map_hash(m, key, klen), key, klen);
}

rtc_map_node *rtc_map_find_str(const rtc_map *m, const char *key)
{
    return rtc_map_find(m, key, strlen(key));
}

void rtc_map_remove(rtc_map *m, rtc_map_node *n)
{
    *n->pprev = n->next;
    if (n->next)
        n->next->pprev = n->pprev;
    n->next = NULL;
    n->pprev = NULL;
    m->n--;
}

void rtc_map_iter_init(rtc_map_iter *it, const rtc_map *m)
{
    it->m = m;
    it->bucket = 0;
    it->next = NULL;
}

rtc_map_node *rtc_map_iter_next(rtc_map_iter *it)
{
    rtc_map_node *n = it->next;

    while (!n && it->bucket < it->m->nb)
        n = it->m->b[it->bucket++];
    if (n)
        it->next = n->next; /* taken now: the caller may unlink n */
    return n;
}
