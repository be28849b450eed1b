/* test_rly_iplimit.c - the shared per-source TCP/TLS connection counts:
 * the cap per IPv4 address and per IPv6 /64, give-back, threads sharing it. */
#include <pthread.h>

#include "rly_iplimit.h"
#include "tap.h"

static rtc_addr ip(const char *s)
{
    rtc_addr a;
    rtc_addr_parse_ip(s, &a);
    return a;
}

static rly_iplimit *shared;

static void *churn(void *arg)
{
    rtc_addr a = ip(arg);
    for (int i = 0; i < 20000; i++)
        if (rly_iplimit_take(shared, &a, 1000000, 0))
            rly_iplimit_give(shared, &a, false);
    return NULL;
}

int main(void)
{
    rly_iplimit *l = rly_iplimit_new();
    rtc_addr a = ip("192.0.2.1"), b = ip("192.0.2.2"), v6a = ip("2001:db8:1:2::1"),
             v6b = ip("2001:db8:1:2:ffff::9"), v6c = ip("2001:db8:1:3::1");
    int n = 0;

    ok(l != NULL, "new");
    while (n < 100 && rly_iplimit_take(l, &a, 3, 0))
        n++;
    is_int(n, 3, "three connections from one IPv4 address, then refused");
    ok(rly_iplimit_take(l, &b, 3, 0), "another address has its own count");
    rly_iplimit_give(l, &a, false);
    ok(rly_iplimit_take(l, &a, 3, 0), "a given-back slot can be taken again");
    ok(!rly_iplimit_take(l, &a, 3, 0), "and the cap holds again");
    ok(rly_iplimit_take(l, &a, 4, 0), "a raised cap (SIGHUP) applies at once");
    ok(rly_iplimit_take(l, &v6a, 2, 0) && rly_iplimit_take(l, &v6b, 2, 0),
       "two addresses of one IPv6 /64 ...");
    ok(!rly_iplimit_take(l, &v6a, 2, 0), "... share one count");
    ok(rly_iplimit_take(l, &v6c, 2, 0), "another /64 does not");
    for (int i = 0; i < 4; i++)
        rly_iplimit_give(l, &a, false);
    rly_iplimit_give(l, &b, false);
    n = 0;
    while (n < 100 && rly_iplimit_take(l, &a, 5, 0))
        n++;
    is_int(n, 5, "all given back: the full cap again");
    rly_iplimit_free(l);

    shared = rly_iplimit_new();
    {
        pthread_t t[4];
        char *who[4] = {"198.51.100.1", "198.51.100.1", "198.51.100.2", "2001:db8::1"};
        rtc_addr x = ip("198.51.100.1");
        for (int i = 0; i < 4; i++)
            pthread_create(&t[i], NULL, churn, who[i]);
        for (int i = 0; i < 4; i++)
            pthread_join(t[i], NULL);
        n = 0;
        while (n < 10 && rly_iplimit_take(shared, &x, 2, 0))
            n++;
        is_int(n, 2, "threads taking and giving leave the count exact");
    }
    rly_iplimit_free(shared);
    {
        /* TLS handshakes in progress (issue 14 item 2): per source and in
         * total, only for counted connections */
        rly_iplimit *h = rly_iplimit_new();
        rtc_addr p = ip("203.0.113.5"), q = ip("203.0.113.6");
        ok(!rly_iplimit_hs_take(h, &p, 2, 3), "no handshake slot without a counted connection");
        for (int i = 0; i < 4; i++)
            rly_iplimit_take(h, &p, 10, 0);
        rly_iplimit_take(h, &q, 10, 0);
        rly_iplimit_take(h, &q, 10, 0);
        ok(rly_iplimit_hs_take(h, &p, 2, 3) && rly_iplimit_hs_take(h, &p, 2, 3),
           "two handshakes from one source");
        ok(!rly_iplimit_hs_take(h, &p, 2, 3), "a third: refused (per source)");
        ok(rly_iplimit_hs_take(h, &q, 2, 3), "another source: allowed");
        ok(!rly_iplimit_hs_take(h, &q, 2, 3), "a fourth in total: refused (total)");
        is_int(rly_iplimit_hs_total(h), 3, "three in progress");
        rly_iplimit_hs_give(h, &p);
        ok(rly_iplimit_hs_take(h, &q, 2, 3), "a finished one frees a slot");
        ok(rly_iplimit_hs_take(h, &p, 0, 0) && rly_iplimit_hs_take(h, &p, 0, 0) &&
               rly_iplimit_hs_take(h, &p, 0, 0),
           "0: no cap (up to the connections counted)");
        ok(!rly_iplimit_hs_take(h, &p, 0, 0), "never more than the source's connections");
        for (int i = 0; i < 4; i++)
            rly_iplimit_hs_give(h, &p);
        rly_iplimit_hs_give(h, &q);
        rly_iplimit_hs_give(h, &q);
        rly_iplimit_hs_give(h, &q); /* one too many: ignored */
        is_int(rly_iplimit_hs_total(h), 0, "all given back, never below 0");
        for (int i = 0; i < 4; i++)
            rly_iplimit_give(h, &p, false);
        rly_iplimit_give(h, &q, false);
        rly_iplimit_give(h, &q, false);
        rly_iplimit_free(h);
    }
    {
        /* issue 14 item 9: the tight cap is on connections without an
         * allocation; authenticated ones count only against the total */
        rly_iplimit *o = rly_iplimit_new();
        rtc_addr office = ip("198.51.100.7"), other = ip("198.51.100.8");
        uint32_t all, pre;
        int got = 0;
        for (int i = 0; i < 1000; i++) {
            if (!rly_iplimit_take(o, &office, 4096, 64))
                break;
            rly_iplimit_authed(o, &office);
            got++;
        }
        is_int(got, 1000, "1000 connections of one address that authenticate: all counted");
        n = 0;
        while (n < 100 && rly_iplimit_take(o, &office, 4096, 64))
            n++;
        is_int(n, 64, "next to them, 64 unauthenticated ones, then refused");
        ok(rly_iplimit_take(o, &other, 4096, 64), "another address is not affected");
        rly_iplimit_count(o, &office, &all, &pre);
        ok(all == 1064 && pre == 64, "counts: 1064 in all, 64 before auth");
        ok(rly_iplimit_hs_take(o, &office, 0, 0), "a handshake slot for a pre-auth one");
        rly_iplimit_hs_give(o, &office);
        rly_iplimit_give(o, &office, false);
        ok(rly_iplimit_take(o, &office, 4096, 64), "a closed pre-auth one frees its place");
        rly_iplimit_give(o, &office, true);
        ok(!rly_iplimit_take(o, &office, 4096, 64),
           "a closed authenticated one frees no pre-auth place");
        ok(rly_iplimit_take(o, &other, 2, 0), "another's second connection (total cap 2)");
        ok(!rly_iplimit_take(o, &other, 2, 0), "the total cap (max-tcp-per-ip) still holds");
        for (int i = 0; i < 999; i++)
            rly_iplimit_give(o, &office, true);
        for (int i = 0; i < 64; i++)
            rly_iplimit_give(o, &office, false);
        rly_iplimit_count(o, &office, &all, &pre);
        ok(all == 0 && pre == 0, "all given back");
        rly_iplimit_free(o);
    }
    rly_iplimit_free(NULL);
    return done_testing();
}
