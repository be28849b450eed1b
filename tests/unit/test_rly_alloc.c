/* test_rly_alloc.c - allocation state in virtual time: lifetimes, expiry of
 * allocations, permissions and channels, refresh, lifetime 0, the
 * channel rebind rules of RFC 8656 s.12, the bandwidth bucket. */
#include <string.h>

#include "rly_alloc.h"
#include "rtc_err.h"
#include "tap.h"

static rtc_addr ip(const char *s, uint16_t port)
{
    rtc_addr a;
    rtc_addr_parse_ip(s, &a);
    a.port = port;
    return a;
}

static rly_tuple tuple(const char *s, uint16_t port)
{
    rly_tuple t;
    memset(&t, 0, sizeof t);
    t.client = ip(s, port);
    t.proto = RLY_UDP;
    return t;
}

static void test_lifetime(void)
{
    is_int(rly_lifetime(false, 0, 600, 3600), 600, "no LIFETIME: default");
    is_int(rly_lifetime(true, 0, 600, 3600), 0, "LIFETIME 0 stays 0 (delete)");
    is_int(rly_lifetime(true, 60, 600, 3600), 600, "below default: default");
    is_int(rly_lifetime(true, 1200, 600, 3600), 1200, "inside: as asked");
    is_int(rly_lifetime(true, 99999, 600, 3600), 3600, "above max: max");
    is_int(rly_lifetime(false, 0, 600, 300), 300, "default above max: max");
}

static void test_table(void)
{
    rly_table *t = rly_table_new(42);
    rly_tuple t1 = tuple("192.0.2.1", 1000), t2 = tuple("192.0.2.1", 1001);
    rly_tuple t3 = tuple("2001:db8::1", 1000);
    rly_alloc *a, *b, *c, *found;
    uint32_t it = 0;
    size_t n = 0;

    ok(t != NULL, "table created");
    a = rly_table_add(t, &t1, "alice");
    b = rly_table_add(t, &t2, "alice");
    c = rly_table_add(t, &t3, "bob");
    ok(a && b && c, "three allocations added");
    is_int(rly_table_count(t), 3, "count 3");
    found = rly_table_find(t, &t2);
    ok(found == b, "find by 5-tuple");
    t2.proto = RLY_TCP;
    ok(rly_table_find(t, &t2) == NULL, "same address over TCP is another 5-tuple");
    t2.proto = RLY_UDP;
    ok(rly_table_get(t, b->id) == b, "get by id");
    while (rly_table_next(t, &it))
        n++;
    is_int(n, 3, "iteration sees all");
    {
        uint32_t id = a->id;
        rly_table_remove(t, a);
        is_int(rly_table_count(t), 2, "released: count 2");
        ok(rly_table_find(t, &t1) == NULL, "released 5-tuple not found");
        ok(rly_table_get(t, id) == NULL, "released id not live");
        a = rly_table_add(t, &t1, "alice");
        ok(a && a->id == id, "released slot is reused");
        rly_table_remove(t, a);
    }
    /* many allocations force the hash to grow; all stay findable */
    {
        bool all = true;
        for (int i = 0; i < 3000; i++) {
            rly_tuple ti = tuple("198.51.100.7", (uint16_t)(2000 + i));
            if (!rly_table_add(t, &ti, "many"))
                all = false;
        }
        for (int i = 0; i < 3000; i++) {
            rly_tuple ti = tuple("198.51.100.7", (uint16_t)(2000 + i));
            rly_alloc *x = rly_table_find(t, &ti);
            if (!x || !rtc_addr_equal(&x->tuple.client, &ti.client))
                all = false;
        }
        ok(all, "3000 allocations added and found after growth");
        it = 0;
        while ((a = rly_table_next(t, &it)))
            if (!strcmp(a->user, "many"))
                rly_table_remove(t, a);
        is_int(rly_table_count(t), 2, "removal during iteration");
    }
    rly_table_free(t);
}

static void test_expiry(void)
{
    rly_table *t = rly_table_new(7);
    rly_tuple tu = tuple("192.0.2.9", 5000);
    rly_alloc *a = rly_table_add(t, &tu, "u");
    uint64_t now = 1000000;
    rtc_addr peer = ip("203.0.113.5", 4000), peer_other_port = ip("203.0.113.5", 4001);
    rtc_addr peer2 = ip("203.0.113.6", 4000);

    rly_alloc_refresh(a, 600, now);
    ok(!rly_alloc_expired(a, now + 599999), "alive at 599.999 s");
    ok(rly_alloc_expired(a, now + 600000), "expired at 600 s");
    is_int(rly_alloc_remaining_s(a, now + 100000), 500, "500 s remaining");
    rly_alloc_refresh(a, 600, now + 500000);
    ok(!rly_alloc_expired(a, now + 700000), "refresh extends");

    ok(!rly_alloc_permitted(a, &peer, now), "no permission at first");
    is_int(rly_alloc_permit(a, &peer, now), 0, "permission installed");
    ok(rly_alloc_permitted(a, &peer, now + 299999), "permission valid 299.999 s");
    ok(rly_alloc_permitted(a, &peer_other_port, now), "permission is per IP, any port");
    ok(!rly_alloc_permitted(a, &peer2, now), "other IP not permitted");
    ok(!rly_alloc_permitted(a, &peer, now + 300000), "permission expires at 300 s");
    rly_alloc_permit(a, &peer, now + 200000);
    ok(rly_alloc_permitted(a, &peer, now + 450000), "permission refresh extends");
    is_int(a->n_perms, 1, "refresh does not duplicate");
    rly_alloc_purge(a, now + 600000);
    is_int(a->n_perms, 0, "purge drops the expired permission");

    /* permission table full */
    {
        int rc = 0;
        for (int i = 0; i < RLY_MAX_PERMS; i++) {
            rtc_addr p = ip("203.0.113.0", 1);
            p.ip[3] = (uint8_t)(10 + i);
            rc |= rly_alloc_permit(a, &p, now);
        }
        is_int(rc, 0, "fill permissions");
        is_int(rly_alloc_permit(a, &peer2, now), RTC_ELIMIT, "full: RTC_ELIMIT");
        is_int(rly_alloc_permit(a, &peer2, now + 400000), 0, "expired ones make room");
    }
    rly_table_free(t);
}

static void test_channels(void)
{
    rly_table *t = rly_table_new(9);
    rly_tuple tu = tuple("192.0.2.10", 5000);
    rly_alloc *a = rly_table_add(t, &tu, "u");
    uint64_t now = 5000000;
    rtc_addr p1 = ip("203.0.113.1", 1111), p2 = ip("203.0.113.2", 2222);
    rtc_addr p1b = ip("203.0.113.1", 1112);
    const rly_chan *c;

    rly_alloc_refresh(a, 3600, now);
    is_int(rly_alloc_bind(a, 0x4000, &p1, now), 0, "bind 0x4000 -> p1");
    ok(rly_alloc_permitted(a, &p1, now), "bind installs a permission");
    c = rly_alloc_chan_by_num(a, 0x4000, now);
    ok(c && rtc_addr_equal(&c->peer, &p1), "lookup by number");
    c = rly_alloc_chan_by_peer(a, &p1, now);
    ok(c && c->num == 0x4000, "lookup by peer");
    ok(rly_alloc_chan_by_peer(a, &p1b, now) == NULL, "channels are per IP and port");
    is_int(rly_alloc_bind(a, 0x4000, &p1, now + 1000), 0, "rebind same pair refreshes");
    is_int(a->n_chans, 1, "no duplicate");
    is_int(rly_alloc_bind(a, 0x4000, &p2, now), RTC_EEXIST, "number bound to another peer");
    is_int(rly_alloc_bind(a, 0x4001, &p1, now), RTC_EEXIST, "peer bound to another number");
    is_int(rly_alloc_bind(a, 0x4001, &p1b, now), 0, "same IP other port: new channel");

    /* expiry at 600 s; the permission (300 s) is refreshed by the bind */
    ok(rly_alloc_chan_by_num(a, 0x4000, now + 1000 + 599999) != NULL, "channel alive 600 s");
    ok(rly_alloc_chan_by_num(a, 0x4000, now + 1000 + 600000) == NULL, "channel expired");
    ok(!rly_alloc_permitted(a, &p1, now + 1000 + 300000), "its permission expires at 300 s");
    /* held 5 minutes after expiry: neither side may be rebound elsewhere */
    is_int(rly_alloc_bind(a, 0x4000, &p2, now + 1000 + 700000), RTC_EEXIST,
           "expired number held for 5 min");
    is_int(rly_alloc_bind(a, 0x4002, &p1, now + 1000 + 700000), RTC_EEXIST,
           "expired peer held for 5 min");
    is_int(rly_alloc_bind(a, 0x4000, &p1, now + 1000 + 700000), 0,
           "the same pair may bind again while held");
    is_int(rly_alloc_bind(a, 0x4003, &p2, now + 1000 + 700000), 0, "another pair is fine");
    /* after the hold, the number is free for another peer */
    rly_alloc_purge(a, now + 1000 + 700000 + 600000 + 300000);
    is_int(a->n_chans, 0, "purge after hold empties the list");
    is_int(rly_alloc_bind(a, 0x4003, &p1, now + 3000000), 0, "number free after the hold");
    rly_table_free(t);
}

static void test_bandwidth(void)
{
    rly_alloc a;
    int passed = 0;
    memset(&a, 0, sizeof a);
    a.bw_last_ms = 1000;
    a.bw_tokens = 1000;
    ok(rly_alloc_bw_take(&a, 0, 1000000, 1000), "rate 0: unlimited");
    for (int i = 0; i < 10; i++)
        passed += rly_alloc_bw_take(&a, 1000, 200, 1000);
    is_int(passed, 5, "burst of one second's worth");
    ok(!rly_alloc_bw_take(&a, 1000, 200, 1100), "100 ms refill is 100 bytes: not enough");
    ok(rly_alloc_bw_take(&a, 1000, 200, 1300), "300 ms refill: enough");
    ok(rly_alloc_bw_take(&a, 1000, 1000, 100000), "long idle refills to the burst");
    ok(!rly_alloc_bw_take(&a, 1000, 1, 100000), "but not beyond it");
}

int main(void)
{
    test_lifetime();
    test_table();
    test_expiry();
    test_channels();
    test_bandwidth();
    return done_testing();
}
