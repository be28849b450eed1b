/* test_rly_quota.c - the shared allocation quota (relay/turn/rly_quota.c),
 * which is what enforces --max-allocations and --max-allocations-per-user:
 * per-user counts, release freeing a unit at once, the total cap, REST
 * usernames sharing their ID's quota, and EVEN-PORT reservations holding a
 * unit until taken or expired. */
#include <string.h>

#include "rly_alloc.h"
#include "rly_quota.h"
#include "rtc_err.h"
#include "tap.h"

static void test_per_user(void)
{
    rly_quota *q = rly_quota_new();
    int fails = 0;

    ok(q != NULL, "quota created");
    is_int(rly_quota_take(q, "alice", 100, 2), 0, "alice 1/2");
    is_int(rly_quota_take(q, "alice", 100, 2), 0, "alice 2/2");
    is_int(rly_quota_take(q, "bob", 100, 2), 0, "bob 1/2");
    is_int(rly_quota_take(q, "alice", 100, 2), RTC_ELIMIT, "alice holds 2: third refused");
    is_int(rly_quota_total(q), 3, "total 3");
    /* issue 14 item 9: 0 is no per-user cap (coturn's default), not a
     * quota nobody can use */
    for (int i = 0; i < 80; i++)
        fails += rly_quota_take(q, "carol", 100, 0) != 0;
    is_int(fails, 0, "per-user limit 0: no cap (80 of one user, past the old default 64)");
    is_int(rly_quota_total(q), 83, "total 83");
    for (int i = 0; i < 80; i++)
        rly_quota_give(q, "carol");
    rly_quota_give(q, "alice");
    is_int(rly_quota_total(q), 2, "released: total 2");
    is_int(rly_quota_take(q, "alice", 100, 2), 0, "released: alice's quota freed at once");
    rly_quota_give(q, "nobody");
    is_int(rly_quota_total(q), 3, "giving back an unknown user changes nothing");

    for (int i = 0; i < 3000; i++)
        fails += rly_quota_take(q, "many", 10000, 3000) != 0;
    is_int(fails, 0, "per-user count 3000");
    is_int(rly_quota_take(q, "many", 10000, 3000), RTC_ELIMIT, "3001st refused");
    for (int i = 0; i < 3000; i++)
        rly_quota_give(q, "many");
    is_int(rly_quota_total(q), 3, "all released");
    is_int(rly_quota_take(q, "many", 10000, 1), 0, "a released user starts from 0");
    is_int(rly_quota_take(q, "dave", 4, 10), RTC_ELIMIT, "the total cap refuses everyone");
    rly_quota_free(q);
}

static void test_rest_key(void)
{
    rly_quota *q = rly_quota_new();
    const char *k1 = rly_quota_key("1800000000:member7", true);
    const char *k2 = rly_quota_key("1800000600:member7", true);

    ok(!strcmp(k1, k2), "fresh REST credentials of one ID share one quota key");
    ok(!strcmp(rly_quota_key("alice", false), "alice"), "a static user is its own key");
    ok(strcmp(rly_quota_key("a:b", false), k1) != 0, "a static name never collides with an ID");
    is_int(rly_quota_take(q, k1, 100, 1), 0, "first credential of member7");
    is_int(rly_quota_take(q, k2, 100, 1), RTC_ELIMIT, "second credential shares the quota");
    rly_quota_free(q);
}

/* which cap applies to a key (issue 14 item 9) */
static void test_user_max(void)
{
    is_int((int)rly_quota_user_max(0, 4096, false), 0, "static user, defaults: no cap");
    is_int((int)rly_quota_user_max(0, 4096, true), 4096, "REST ID, defaults: per-rest-id cap");
    is_int((int)rly_quota_user_max(3, 4096, true), 3, "REST ID: the smaller per-user cap wins");
    is_int((int)rly_quota_user_max(5000, 4096, true), 4096, "REST ID: the smaller rest-id cap");
    is_int((int)rly_quota_user_max(3, 4096, false), 3, "static user: per-user cap");
    is_int((int)rly_quota_user_max(7, 0, true), 7, "REST ID, rest-id cap off: per-user");
    is_int((int)rly_quota_user_max(0, 0, true), 0, "both off: no cap");
}

static void test_reservations(void)
{
    rly_quota *q = rly_quota_new();
    uint8_t tok[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    rtc_addr bound, got;
    int placed = 0;

    memset(&bound, 0, sizeof bound);
    rtc_addr_parse_ip("192.0.2.1", &bound);
    bound.port = 50001;
    for (int i = 0; i < RLY_RESV_PER_USER + 1; i++) {
        tok[0] = (uint8_t)i;
        rly_quota_take(q, "eve", 100, 100);
        if (rly_quota_resv_put(q, tok, 10 + i, &bound, 30000, "eve") == 0)
            placed++;
        else
            rly_quota_give(q, "eve"); /* refused: the unit stays the caller's */
    }
    is_int(placed, RLY_RESV_PER_USER, "reservations capped per user");
    is_int(rly_quota_total(q), RLY_RESV_PER_USER, "each held reservation keeps its unit");
    {
        /* the metrics split the units: reservations are no allocations */
        size_t na = 99, nr = 99;
        rly_quota_take(q, "eve", 100, 100); /* one real allocation besides */
        rly_quota_counts(q, &na, &nr);
        ok(na == 1 && nr == RLY_RESV_PER_USER, "counts: 1 allocation, 4 reservations");
        rly_quota_give(q, "eve");
    }
    tok[0] = 1;
    is_int(rly_quota_resv_take(q, tok, 1000, &got), 11, "taken by token");
    ok(got.port == 50001, "taken with its bound address");
    is_int(rly_quota_total(q), RLY_RESV_PER_USER - 1, "taking gives the unit back");
    is_int(rly_quota_resv_take(q, tok, 1000, &got), -1, "a token is taken once");
    tok[0] = 2;
    is_int(rly_quota_resv_take(q, tok, 30000, &got), -1, "expired token not taken");
    placed = 0;
    while (rly_quota_resv_expired(q, 30000, &got) >= 0)
        placed++;
    is_int(placed, RLY_RESV_PER_USER - 1, "expired reservations handed back to close");
    is_int(rly_quota_total(q), 0, "and their units given back");
    rly_quota_free(q);
}

int main(void)
{
    test_per_user();
    test_rest_key();
    test_user_max();
    test_reservations();
    return done_testing();
}
