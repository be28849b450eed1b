/* test_rtc_map.c - the intrusive SipHash map: insert/find/remove by string
 * and byte keys, duplicates refused, growth through many keys, removal of
 * the current node during iteration, and per-map random keys. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rtc_map.h"
#include "tap.h"

typedef struct {
    rtc_map_node node;
    int value;
    char name[24]; /* the borrowed key lives here */
} item;

typedef struct {
    rtc_map_node node;
    uint8_t addr[9]; /* a byte key with NULs in it */
} ipent;

static void test_basic(void)
{
    rtc_map m;
    item a = {.value = 1}, b = {.value = 2}, dup = {.value = 3};
    rtc_map_node *n;

    ok(rtc_map_init(&m) == 0, "init");
    is_int(rtc_map_count(&m), 0, "empty");
    ok(rtc_map_find_str(&m, "x") == NULL, "find in an empty map");
    strcpy(a.name, "alpha");
    strcpy(b.name, "beta");
    strcpy(dup.name, "alpha");
    ok(rtc_map_insert_str(&m, &a.node, a.name) == 0, "insert alpha");
    ok(rtc_map_insert_str(&m, &b.node, b.name) == 0, "insert beta");
    is_int(rtc_map_insert_str(&m, &dup.node, dup.name), -EEXIST, "duplicate key refused");
    is_int(rtc_map_count(&m), 2, "count 2");
    n = rtc_map_find_str(&m, "alpha");
    ok(n && RTC_MAP_ENTRY(n, item, node)->value == 1, "find alpha, container_of");
    ok(rtc_map_find(&m, "alph", 4) == NULL, "a prefix is another key");
    ok(rtc_map_find(&m, "alpha\0", 6) == NULL, "the length is part of the key");
    rtc_map_remove(&m, &a.node);
    ok(rtc_map_find_str(&m, "alpha") == NULL, "removed");
    ok(rtc_map_find_str(&m, "beta") == &b.node, "the other stays");
    ok(rtc_map_insert_str(&m, &dup.node, dup.name) == 0, "the key can come back");
    is_int(rtc_map_count(&m), 2, "count 2 again");
    ok(rtc_map_insert(&m, &a.node, "", 0) == 0 && rtc_map_find(&m, "", 0) == &a.node,
       "the empty key is a key");
    rtc_map_dispose(&m);
    is_int(rtc_map_count(&m), 0, "dispose empties");
}

static void test_bytes(void)
{
    rtc_map m;
    ipent e[3];
    memset(e, 0, sizeof e);
    rtc_map_init(&m);
    e[1].addr[0] = 4;
    e[2].addr[8] = 1;
    for (int i = 0; i < 3; i++)
        ok(rtc_map_insert(&m, &e[i].node, e[i].addr, sizeof e[i].addr) == 0,
           "insert a 9-byte key with NULs");
    ok(rtc_map_find(&m, e[2].addr, 9) == &e[2].node, "found by content");
    rtc_map_dispose(&m);
}

#define MANY 20000

static void test_many_and_iterate(void)
{
    rtc_map m;
    item *v = calloc(MANY, sizeof *v);
    rtc_map_iter it;
    rtc_map_node *n;
    size_t missing = 0, seen = 0, removed = 0;
    char *mark = calloc(MANY, 1);

    rtc_map_init(&m);
    for (int i = 0; i < MANY; i++) {
        snprintf(v[i].name, sizeof v[i].name, "room-%d", i);
        v[i].value = i;
        if (rtc_map_insert_str(&m, &v[i].node, v[i].name))
            missing++;
    }
    is_int(missing, 0, "20000 inserts");
    is_int(rtc_map_count(&m), MANY, "count 20000");
    ok(m.nb >= MANY / 2 && (m.nb & (m.nb - 1)) == 0, "buckets doubled, a power of two");
    for (int i = 0; i < MANY; i++) {
        n = rtc_map_find_str(&m, v[i].name);
        if (!n || RTC_MAP_ENTRY(n, item, node)->value != i)
            missing++;
    }
    is_int(missing, 0, "every key found after growth");

    /* remove every odd one while iterating: only the current node goes */
    rtc_map_iter_init(&it, &m);
    while ((n = rtc_map_iter_next(&it))) {
        item *x = RTC_MAP_ENTRY(n, item, node);
        mark[x->value]++;
        seen++;
        if (x->value & 1) {
            rtc_map_remove(&m, n);
            memset(x, 0xa5, sizeof *x); /* as if freed: the iterator must not look */
            removed++;
        }
    }
    is_int(seen, MANY, "iteration saw every node");
    missing = 0;
    for (int i = 0; i < MANY; i++)
        missing += mark[i] != 1;
    is_int(missing, 0, "each node exactly once");
    is_int(removed, MANY / 2, "half removed during iteration");
    is_int(rtc_map_count(&m), MANY / 2, "count follows");
    missing = 0;
    for (int i = 0; i < MANY; i += 2)
        missing += rtc_map_find_str(&m, v[i].name) != &v[i].node;
    is_int(missing, 0, "the even ones are all still there");

    /* empty it the same way (what a destructor does) */
    rtc_map_iter_init(&it, &m);
    while ((n = rtc_map_iter_next(&it)))
        rtc_map_remove(&m, n);
    is_int(rtc_map_count(&m), 0, "emptied by iteration");
    rtc_map_iter_init(&it, &m);
    ok(rtc_map_iter_next(&it) == NULL, "nothing left to iterate");
    rtc_map_dispose(&m);
    free(v);
    free(mark);
}

static void test_keys_differ(void)
{
    rtc_map a, b;
    int same = 0;
    rtc_map_init(&a);
    rtc_map_init(&b);
    ok(a.key.k0 != b.key.k0 || a.key.k1 != b.key.k1, "two maps draw different keys");
    for (int i = 0; i < 8; i++) {
        char name[16];
        snprintf(name, sizeof name, "r%d", i);
        same += rtc_map_hash(&a, name, strlen(name)) == rtc_map_hash(&b, name, strlen(name));
    }
    is_int(same, 0, "the same key hashes differently in two maps");
    rtc_map_dispose(&a);
    rtc_map_dispose(&b);
}

int main(void)
{
    test_basic();
    test_bytes();
    test_many_and_iterate();
    test_keys_differ();
    return done_testing();
}
