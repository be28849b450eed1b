/* test_sig_cluster_st.c - positions in the rooms' streams and repeat
 * detection (sig_cluster_st.h): stream ids, the catch-up's overlap with
 * live copies, copies sent again after a reconnection, rooms forgotten. */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "sig_cluster_st.h"
#include "tap.h"

static json_t *msg(const char *x, long long q)
{
    json_t *o = json_pack("{s:s,s:s}", "n", "00000000000000aa", "e", "sig");
    if (x)
        json_object_set_new(o, "x", json_string(x));
    if (q)
        json_object_set_new(o, "q", json_integer(q));
    return o;
}

static bool take(sig_stpos *t, const char *room, const char *origin, const char *x, long long q)
{
    json_t *o = msg(x, q);
    bool r = sig_stpos_take(t, room, origin, o);
    json_decref(o);
    return r;
}

static bool keep_a(void *ud, const char *room)
{
    (void)ud;
    return !strcmp(room, "a");
}

int main(void)
{
    sig_stid id, a, b;
    char s[SIG_STID_LEN];
    sig_stpos *t = sig_stpos_new();

    /* ids */
    ok(sig_stid_parse("1700000000000-3", 15, &id) && id.ms == 1700000000000ULL && id.seq == 3,
       "parse MS-SEQ");
    ok(sig_stid_parse("18446744073709551615-18446744073709551615", 41, &id) &&
           id.ms == UINT64_MAX && id.seq == UINT64_MAX, "parse the largest id");
    ok(!sig_stid_parse("18446744073709551616-0", 22, &id), "refuse an id past 64 bits");
    ok(!sig_stid_parse("12", 2, &id), "refuse an id without a dash");
    ok(!sig_stid_parse("-1", 2, &id) && !sig_stid_parse("1-", 2, &id), "refuse an empty half");
    ok(!sig_stid_parse("1-2x", 4, &id) && !sig_stid_parse("+1-2", 4, &id),
       "refuse other characters");
    ok(!sig_stid_parse("1-2", 2, &id), "a length that cuts the id short is honoured");
    sig_stid_parse("5-9", 3, &a);
    sig_stid_parse("6-0", 3, &b);
    ok(sig_stid_cmp(a, b) < 0 && sig_stid_cmp(b, a) > 0 && sig_stid_cmp(a, a) == 0,
       "order by ms, then seq");
    sig_stid_fmt(a, s);
    ok(!strcmp(s, "5-9"), "format");

    /* a room not followed: everything is taken */
    ok(take(t, "r", "n1", "1-0", 1) && take(t, "r", "n1", "1-0", 1), "unfollowed: no state");
    ok(!sig_stpos_last(t, "r", &id), "unfollowed: no position");

    /* followed from the stream's end at subscribe time */
    sig_stid_parse("100-0", 5, &id);
    is_int(sig_stpos_follow(t, "r", id), 0, "follow r from 100-0");
    ok(take(t, "r", "n1", "100-1", 1) && take(t, "r", "n1", "101-0", 2), "live copies taken");
    ok(sig_stpos_last(t, "r", &id) && id.ms == 101 && id.seq == 0, "position moves to 101-0");
    ok(take(t, "r", "n1", NULL, 0), "a message without x or q (a join, a forged one): taken");
    ok(take(t, "r", "n1", "bogus", 0), "a malformed x is ignored");
    ok(sig_stpos_last(t, "r", &id) && id.ms == 101, "... and does not move the position");

    /* a reconnection: the catch-up read up to 105-0, live copies up to it are repeats */
    sig_stpos_new_conn(t);
    ok(take(t, "r", "n2", "102-0", 1) && take(t, "r", "n2", "105-0", 2), "catch-up entries taken");
    sig_stid_parse("105-0", 5, &id);
    sig_stpos_caught_up(t, "r", id);
    ok(!take(t, "r", "n2", "104-0", 0), "live copy of a caught-up entry: repeat");
    ok(!take(t, "r", "n2", "105-0", 0), "live copy of the last caught-up entry: repeat");
    ok(take(t, "r", "n2", "106-0", 3), "the first live entry after it: taken");
    ok(take(t, "r", "n2", "105-5", 4), "ids no longer mark repeats once past the catch-up");

    /* a node sending again what may have run: its number says */
    ok(!take(t, "r", "n2", "200-0", 4), "a copy of n2's 4th, sent again: repeat");
    ok(!take(t, "r", "n2", "200-1", 3), "an older number: repeat");
    ok(take(t, "r", "n2", "200-2", 5), "n2's next number: taken");
    ok(take(t, "r", "n3", "200-3", 1), "another node's numbers are its own");
    ok(sig_stpos_last(t, "r", &id) && id.ms == 200 && id.seq == 3,
       "a repeat by number still moves the position");

    /* a Redis restarted on a clock set back: after new_conn, lower ids are not repeats */
    sig_stpos_new_conn(t);
    ok(take(t, "r", "n2", "50-0", 6), "after a reconnection a lower id is taken");

    /* many sending nodes: the least recently heard is forgotten, the others kept */
    for (int i = 0; i < 20; i++) {
        char node[17];
        snprintf(node, sizeof node, "%016x", i);
        take(t, "r", node, NULL, 10);
    }
    {
        char node[17];
        snprintf(node, sizeof node, "%016x", 19);
        ok(!take(t, "r", node, NULL, 10), "a recent sender still known");
    }

    /* rooms forgotten */
    sig_stid_parse("1-0", 3, &id);
    sig_stpos_follow(t, "a", id);
    sig_stpos_follow(t, "b", id);
    is_int((int)sig_stpos_count(t), 3, "three rooms followed");
    sig_stid_parse("9-9", 3, &a);
    is_int(sig_stpos_follow(t, "a", a), 0, "following again changes nothing");
    ok(sig_stpos_last(t, "a", &id) && id.ms == 1, "... the position stays");
    sig_stpos_forget(t, "r");
    sig_stpos_prune(t, keep_a, NULL);
    ok(sig_stpos_count(t) == 1 && sig_stpos_last(t, "a", &id) && !sig_stpos_last(t, "b", &id),
       "forget one, prune the rest but a");
    sig_stpos_free(t);
    sig_stpos_free(NULL);
    return done_testing();
}
