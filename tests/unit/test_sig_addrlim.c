/* test_sig_addrlim.c - per-address limits beyond open connections
 * (sig_addrlim.h): held places counted per IPv4 address / IPv6 /64 with the
 * cap, unhold and sweep expiry, room creations per minute as a token bucket
 * (burst, refill, other addresses apart), forgetting idle addresses, and the
 * metrics text. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sig_addrlim.h"
#include "tap.h"

#define MIN_US 60000000ull

static rtc_addr ip(const char *s)
{
    rtc_addr a;
    memset(&a, 0, sizeof a);
    if (rtc_addr_parse_ip(s, &a))
        printf("# bad test address %s\n", s);
    return a;
}

static void held(void)
{
    sig_addrlim *l = sig_addrlim_new();
    rtc_addr a = ip("192.0.2.1"), b = ip("192.0.2.2"), m = ip("::ffff:192.0.2.1");
    rtc_addr v6a = ip("2001:db8:1:2::1"), v6b = ip("2001:db8:1:2::ffff");
    rtc_addr v6c = ip("2001:db8:1:3::1");
    char id[17];

    for (int i = 0; i < 3; i++) {
        snprintf(id, sizeof id, "%016x", i);
        ok(sig_addrlim_hold(l, i == 1 ? &m : &a, id, 3, 1000), "hold within the cap");
    }
    is_int(sig_addrlim_held(l, &a), 3, "an IPv4-mapped address counts as its IPv4 address");
    ok(!sig_addrlim_hold(l, &a, "00000000000000ff", 3, 1000), "the fourth is refused");
    ok(sig_addrlim_hold(l, &a, "0000000000000000", 3, 2000), "a held id again: counted once");
    is_int(sig_addrlim_held(l, &a), 3, "still 3");
    ok(sig_addrlim_hold(l, &b, "00000000000000aa", 3, 1000), "another address: its own cap");
    sig_addrlim_unhold(l, "0000000000000001");
    is_int(sig_addrlim_held(l, &a), 2, "unhold frees a place");
    sig_addrlim_unhold(l, "0000000000000001");
    sig_addrlim_unhold(l, "nobody");
    is_int(sig_addrlim_held(l, &a), 2, "unhold of an id not held: nothing");
    ok(sig_addrlim_hold(l, &a, "00000000000000ff", 3, 1000), "the freed place is usable");
    ok(sig_addrlim_hold(l, &v6a, "00000000000000b1", 2, 1000) &&
           sig_addrlim_hold(l, &v6b, "00000000000000b2", 2, 1000) &&
           !sig_addrlim_hold(l, &v6b, "00000000000000b3", 2, 1000),
       "IPv6: one /64 shares the cap");
    ok(sig_addrlim_hold(l, &v6c, "00000000000000b4", 2, 1000), "another /64 does not");
    ok(sig_addrlim_hold(l, &v6c, "00000000000000c1", 0, 1000) &&
           sig_addrlim_hold(l, &v6c, "00000000000000c2", 0, 1000) &&
           sig_addrlim_hold(l, &v6c, "00000000000000c3", 0, 1000),
       "cap 0: no cap");
    /* sweep: past their time, uncounted ("0000000000000000" got 2000) */
    sig_addrlim_sweep(l, 0, 0, 1500);
    is_int(sig_addrlim_held(l, &a), 1, "sweep uncounts places past their time");
    is_int(sig_addrlim_held(l, &b), 0, "on every address");
    sig_addrlim_sweep(l, 0, 0, 2000);
    is_int(sig_addrlim_held(l, &a), 0, "the later deadline too");
    {
        rtc_buf buf;
        rtc_buf_init(&buf);
        sig_addrlim_metrics(l, &buf);
        ok(buf.p && strstr(buf.p, "tsunagu_signal_held_places 0\n") &&
               strstr(buf.p, "tsunagu_signal_address_limited_total{reason=\"held\"} 2\n") &&
               strstr(buf.p, "tsunagu_signal_address_limited_total{reason=\"room-creates\"} 0\n"),
           "metrics: held places and refusals");
        rtc_buf_dispose(&buf);
    }
    sig_addrlim_free(l);
}

static void creates(void)
{
    sig_addrlim *l = sig_addrlim_new();
    rtc_addr a = ip("198.51.100.7"), b = ip("198.51.100.8");
    uint64_t t = 5 * MIN_US;
    int n = 0;

    while (n < 100 && sig_addrlim_create(l, &a, 10, t))
        n++;
    is_int(n, 10, "a burst of per_min creations, then refused");
    ok(sig_addrlim_create(l, &b, 10, t), "another address is not limited by it");
    ok(!sig_addrlim_create(l, &a, 10, t + MIN_US / 20), "3 s later: not a whole token yet");
    ok(sig_addrlim_create(l, &a, 10, t + MIN_US / 10), "6 s later: one token (10 a minute)");
    ok(!sig_addrlim_create(l, &a, 10, t + MIN_US / 10), "and only one");
    ok(sig_addrlim_create(l, &a, 0, t), "per_min 0: no limit");
    sig_addrlim_sweep(l, 10, 0, t + MIN_US / 2);
    n = 0;
    while (n < 100 && sig_addrlim_create(l, &a, 10, t + MIN_US / 2))
        n++;
    is_int(n, 4, "sweep keeps an address whose bucket is not full (24 s: 4 tokens)");
    {
        /* after a full minute every bucket is full and the address forgotten:
         * a fresh burst (nothing stale remembered) */
        int m = 0;
        sig_addrlim_sweep(l, 10, 0, t + 3 * MIN_US);
        while (m < 100 && sig_addrlim_create(l, &a, 10, t + 3 * MIN_US))
            m++;
        is_int(m, 10, "a forgotten address starts with a full burst");
    }
    sig_addrlim_free(l);
}

static void table_bound(void)
{
    sig_addrlim *l = sig_addrlim_new();
    rtc_addr a = ip("10.0.0.0");
    int refused = 0;
    /* every address made a room this minute: the table stops at its bound */
    for (uint32_t i = 0; i < SIG_ADDRLIM_MAX_ADDRS + 10; i++) {
        a.ip[1] = (uint8_t)(i >> 16);
        a.ip[2] = (uint8_t)(i >> 8);
        a.ip[3] = (uint8_t)i;
        refused += !sig_addrlim_create(l, &a, 5, 1000);
    }
    is_int(refused, 10, "addresses past SIG_ADDRLIM_MAX_ADDRS are refused, not stored");
    sig_addrlim_sweep(l, 5, 0, 1000 + 2 * MIN_US);
    a.ip[1] = 0xff;
    ok(sig_addrlim_create(l, &a, 5, 2000 + 2 * MIN_US), "after the sweep there is room again");
    sig_addrlim_free(l);
}

/* issue 14 item 9: join and resume attempts per address per second */
static void joins(void)
{
    sig_addrlim *l = sig_addrlim_new();
    rtc_addr a = ip("198.51.100.20"), b = ip("198.51.100.21");
    uint64_t t = 5000000;
    int n = 0, m = 0;
    while (n < 1000 && sig_addrlim_join(l, &a, 100, t))
        n++;
    is_int(n, 100, "a burst of 100 joins, then rate-limited");
    ok(sig_addrlim_join(l, &b, 100, t), "another address is not affected");
    ok(sig_addrlim_join(l, &a, 100, t + 10000), "10 ms later: one more");
    /* 1000 joins at 90 a second: none refused */
    for (int i = 0; i < 1000; i++)
        m += !sig_addrlim_join(l, &a, 100, t + 2000000 + (uint64_t)i * 1000000 / 90);
    is_int(m, 0, "1000 joins at 90/s from one address: all pass");
    ok(sig_addrlim_join(l, &a, 0, t), "0: no limit");
    sig_addrlim_sweep(l, 0, 100, t + 60000000);
    n = 0;
    while (n < 1000 && sig_addrlim_join(l, &a, 100, t + 60000000))
        n++;
    is_int(n, 100, "after a quiet sweep the address starts with a full burst");
    sig_addrlim_free(l);
}

int main(void)
{
    joins();
    held();
    creates();
    table_bound();
    return done_testing();
}
