/* test_sig_tokmap.c - the resume-token map (sig_tokmap.h): insert, lookup,
 * remove (head, middle and tail of a chain), tokens that share a bucket,
 * equal tokens (newest first, across growths), tokens that differ only in
 * length or in their last byte, and 50,000 entries through many growths. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rtc_map.h" /* RTC_MAP_ENTRY */
#include "sig_tokmap.h"
#include "tap.h"

typedef struct {
    sig_tokmap_node node;
    char tok[33];
} ent;

static ent *found(const sig_tokmap *t, const char *tok)
{
    sig_tokmap_node *n = sig_tokmap_find(t, tok);
    return n ? RTC_MAP_ENTRY(n, ent, node) : NULL;
}

static void basic(void)
{
    sig_tokmap t;
    ent a = {0}, b = {0};
    is_int(sig_tokmap_init(&t), 0, "init");
    ok(found(&t, "x") == NULL, "empty: nothing found");
    snprintf(a.tok, sizeof a.tok, "0123456789abcdef0123456789abcdef");
    snprintf(b.tok, sizeof b.tok, "0123456789abcdef0123456789abcdee");
    sig_tokmap_insert(&t, &a.node, a.tok);
    sig_tokmap_insert(&t, &b.node, b.tok);
    is_int((int)sig_tokmap_count(&t), 2, "two in");
    ok(found(&t, a.tok) == &a && found(&t, b.tok) == &b, "each found");
    ok(found(&t, "0123456789abcdef0123456789abcded") == NULL, "last byte differs: not found");
    ok(found(&t, "0123456789abcdef0123456789abcde") == NULL, "a prefix: not found");
    ok(found(&t, "0123456789abcdef0123456789abcdef0") == NULL, "longer: not found");
    ok(found(&t, "") == NULL, "empty token: not found");
    sig_tokmap_remove(&t, &a.node);
    ok(found(&t, a.tok) == NULL && found(&t, b.tok) == &b, "removed one, the other stays");
    sig_tokmap_remove(&t, &a.node); /* no-op */
    is_int((int)sig_tokmap_count(&t), 1, "removing twice is a no-op");
    sig_tokmap_remove(&t, &b.node);
    is_int((int)sig_tokmap_count(&t), 0, "empty again");
    sig_tokmap_dispose(&t);
}

/* With a known key, pick tokens that land in one bucket (of the first 64),
 * and remove them from the chain's head, middle and tail. */
static void same_bucket(void)
{
    sig_tokmap t;
    uint8_t kb[RTC_HASH_KEY_LEN] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    ent e[4] = {{{0}}};
    int n = 0;
    uint64_t want = 0;
    is_int(sig_tokmap_init(&t), 0, "init");
    rtc_hash_key_from_bytes(&t.key, kb);
    for (int i = 0; i < 100000 && n < 4; i++) {
        char tok[33];
        uint64_t h;
        snprintf(tok, sizeof tok, "tok-%d", i);
        h = rtc_siphash24(&t.key, tok, strlen(tok)) & (t.nb - 1);
        if (n == 0)
            want = h;
        if (h == want)
            snprintf(e[n++].tok, sizeof e[0].tok, "%s", tok);
    }
    is_int(n, 4, "four tokens found for one bucket");
    for (int i = 0; i < 4; i++)
        sig_tokmap_insert(&t, &e[i].node, e[i].tok);
    ok(t.b[want] == &e[3].node && e[3].node.next == &e[2].node && e[0].node.next == NULL,
       "one chain of four, newest at the head");
    for (int i = 0; i < 4; i++)
        ok(found(&t, e[i].tok) == &e[i], "each found on a shared chain");
    sig_tokmap_remove(&t, &e[1].node); /* middle */
    ok(found(&t, e[1].tok) == NULL && found(&t, e[0].tok) == &e[0] &&
           found(&t, e[2].tok) == &e[2] && found(&t, e[3].tok) == &e[3],
       "middle removed, the rest found");
    sig_tokmap_remove(&t, &e[3].node); /* head */
    ok(t.b[want] == &e[2].node && found(&t, e[0].tok) == &e[0], "head removed");
    sig_tokmap_remove(&t, &e[0].node); /* tail */
    ok(t.b[want] == &e[2].node && e[2].node.next == NULL && found(&t, e[2].tok) == &e[2],
       "tail removed, one left");
    sig_tokmap_remove(&t, &e[2].node);
    ok(t.b[want] == NULL && sig_tokmap_count(&t) == 0, "chain empty");
    sig_tokmap_dispose(&t);
}

/* Equal tokens: the newest is found, the older after it is removed; the
 * order holds across growths of the table. */
static void equal_tokens(void)
{
    sig_tokmap t;
    ent old = {0}, young = {0};
    ent *fill = calloc(300, sizeof *fill);
    is_int(sig_tokmap_init(&t), 0, "init");
    snprintf(old.tok, sizeof old.tok, "same");
    snprintf(young.tok, sizeof young.tok, "same");
    sig_tokmap_insert(&t, &old.node, old.tok);
    sig_tokmap_insert(&t, &young.node, young.tok);
    ok(found(&t, "same") == &young, "newest of two equal tokens found");
    for (int i = 0; fill && i < 300; i++) { /* 64 -> 512 buckets: three growths */
        snprintf(fill[i].tok, sizeof fill[i].tok, "fill-%d", i);
        sig_tokmap_insert(&t, &fill[i].node, fill[i].tok);
    }
    ok(t.nb >= 512, "the table grew");
    ok(found(&t, "same") == &young, "still the newest after growing");
    sig_tokmap_remove(&t, &young.node);
    ok(found(&t, "same") == &old, "then the older one");
    sig_tokmap_remove(&t, &old.node);
    ok(found(&t, "same") == NULL, "then none");
    for (int i = 0; fill && i < 300; i++)
        sig_tokmap_remove(&t, &fill[i].node);
    is_int((int)sig_tokmap_count(&t), 0, "all out");
    free(fill);
    sig_tokmap_dispose(&t);
}

static void many(void)
{
    enum { N = 50000 };
    sig_tokmap t;
    ent *e = calloc(N, sizeof *e);
    int bad = 0;
    size_t longest = 0;
    ok(e != NULL, "alloc");
    if (!e)
        return;
    is_int(sig_tokmap_init(&t), 0, "init");
    for (int i = 0; i < N; i++) {
        snprintf(e[i].tok, sizeof e[i].tok, "%08x%024d", (unsigned)i * 2654435761u, i);
        sig_tokmap_insert(&t, &e[i].node, e[i].tok);
    }
    is_int((int)sig_tokmap_count(&t), N, "50,000 in");
    ok(t.nb >= N, "load factor at most 1");
    for (size_t b = 0; b < t.nb; b++) {
        size_t len = 0;
        for (sig_tokmap_node *n = t.b[b]; n; n = n->next)
            len++;
        if (len > longest)
            longest = len;
    }
    ok(longest <= 16, "no long chain (keyed hash spreads them)");
    for (int i = 0; i < N; i++)
        bad += found(&t, e[i].tok) != &e[i];
    is_int(bad, 0, "every one found");
    for (int i = 0; i < N; i += 2)
        sig_tokmap_remove(&t, &e[i].node);
    bad = 0;
    for (int i = 0; i < N; i++)
        bad += found(&t, e[i].tok) != (i % 2 ? &e[i] : NULL);
    is_int(bad, 0, "the even half gone, the odd half found");
    is_int((int)sig_tokmap_count(&t), N / 2, "count");
    for (int i = 1; i < N; i += 2)
        sig_tokmap_remove(&t, &e[i].node);
    is_int((int)sig_tokmap_count(&t), 0, "all out");
    free(e);
    sig_tokmap_dispose(&t);
}

int main(void)
{
    basic();
    same_bucket();
    equal_tokens();
    many();
    return done_testing();
}
