/* sig_tokmap.c - keyed hash table of resume tokens (see sig_tokmap.h).
 * Chains are linked through a pointer to the previous `next` (the kernel's
 * hlist), so removal needs no walk. */
#include "sig_tokmap.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "rtc_crypto.h"

#define FIRST_BUCKETS 64u

int sig_tokmap_init(sig_tokmap *t)
{
    t->n = 0;
    t->nb = FIRST_BUCKETS;
    (void)rtc_hash_key_random(&t->key); /* (fails only without getrandom: see the header) */
    return (t->b = calloc(t->nb, sizeof *t->b)) ? 0 : -ENOMEM;
}

void sig_tokmap_dispose(sig_tokmap *t)
{
    free(t->b);
    t->b = NULL;
    t->nb = t->n = 0;
}

static void link_head(sig_tokmap_node **head, sig_tokmap_node *n)
{
    n->next = *head;
    if (n->next)
        n->next->pprev = &n->next;
    *head = n;
    n->pprev = head;
}

/* Double the buckets; on ENOMEM keep the old ones. Each chain is reversed
 * first, so that re-linking at the heads keeps equal tokens newest first. */
static void grow(sig_tokmap *t)
{
    size_t nb = t->nb * 2;
    sig_tokmap_node **b;

    if (nb < t->nb || nb > SIZE_MAX / sizeof *b || !(b = calloc(nb, sizeof *b)))
        return;
    for (size_t i = 0; i < t->nb; i++) {
        sig_tokmap_node *rev = NULL, *n = t->b[i], *next;
        for (; n; n = next) {
            next = n->next;
            n->next = rev;
            rev = n;
        }
        for (n = rev; n; n = next) {
            next = n->next;
            link_head(&b[n->hash & (nb - 1)], n);
        }
    }
    free(t->b);
    t->b = b;
    t->nb = nb;
}

void sig_tokmap_insert(sig_tokmap *t, sig_tokmap_node *n, const char *tok)
{
    size_t len = strlen(tok);
    n->tok = tok;
    n->len = len;
    n->hash = rtc_siphash24(&t->key, tok, len);
    link_head(&t->b[n->hash & (t->nb - 1)], n);
    if (++t->n > t->nb)
        grow(t);
}

void sig_tokmap_remove(sig_tokmap *t, sig_tokmap_node *n)
{
    if (!n->pprev)
        return;
    *n->pprev = n->next;
    if (n->next)
        n->next->pprev = n->pprev;
    n->next = NULL;
    n->pprev = NULL;
    t->n--;
}

sig_tokmap_node *sig_tokmap_find(const sig_tokmap *t, const char *tok)
{
    size_t len = strlen(tok);
    uint64_t h;

    if (!t->b)
        return NULL;
    h = rtc_siphash24(&t->key, tok, len);
    for (sig_tokmap_node *n = t->b[h & (t->nb - 1)]; n; n = n->next)
        /* hash and length first (neither says anything about the bytes),
         * then the bytes in constant time */
        if (n->hash == h && n->len == len && rtc_ct_equal(n->tok, tok, len))
            return n;
    return NULL;
}
