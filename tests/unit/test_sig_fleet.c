/* test_sig_fleet.c - the relay fleet's pure state (signaling/sig_fleet.c):
 * canary shares and spread, a room's relay kept while it lives, draining and
 * full relays skipped, dead relays' rooms handed out once as orphans, the
 * rollback judged over the window with its minimum sample and hold time,
 * and the settings parsers (negative cases included). */
#include <stdio.h>
#include <string.h>

#include "sig_fleet.h"
#include "tap.h"

#define S 1000000ull

static sig_fleet_report rep(const char *name, const char *gen)
{
    sig_fleet_report r;
    memset(&r, 0, sizeof r);
    snprintf(r.name, sizeof r.name, "%s", name);
    snprintf(r.generation, sizeof r.generation, "%s", gen);
    snprintf(r.urls[0], sizeof r.urls[0], "turn:%s.example:3478", name);
    r.nurls = 1;
    r.weight = 1;
    r.alive = true;
    return r;
}

static const sig_fleet_params params = {.max_load = 100, .max_loss_delta = 0.03,
                                        .max_jitter_delta = 0.02, .min_sample = 4,
                                        .window_s = 10, .hold_s = 2};

static void shares(void)
{
    sig_fleet *f = sig_fleet_new(&params);
    sig_fleet_report v[3] = {rep("a", "v1"), rep("b", "v1"), rep("c", "v2")};
    unsigned n[3] = {0, 0, 0};
    char room[32];
    sig_fleet_update(f, v, 3, 0);
    is_int(sig_fleet_set_canary(f, "v2", 20), 0, "canary v2=20");
    is_int(sig_fleet_set_canary(f, "v2", 101), -22, "a share over 100 is refused");
    for (int i = 0; i < 5000; i++) {
        const sig_fleet_relay *r;
        snprintf(room, sizeof room, "room-%d", i);
        r = sig_fleet_pick(f, room);
        n[r->r.name[0] - 'a']++;
        if (i < 50)
            ok(sig_fleet_pick(f, room) == r, i == 0 ? "the same room, the same relay" : NULL);
    }
    ok(n[2] > 900 && n[2] < 1100, "v2 gets 20% of 5000 rooms");
    ok(n[0] > 1800 && n[1] > 1800, "v1 rooms spread over both v1 relays");
    printf("# a %u b %u c %u\n", n[0], n[1], n[2]);
    /* weight: a relay twice as heavy gets about twice the rooms */
    v[1].weight = 2;
    sig_fleet_update(f, v, 3, 0);
    memset(n, 0, sizeof n);
    for (int i = 0; i < 5000; i++) {
        snprintf(room, sizeof room, "room-%d", i);
        n[sig_fleet_pick(f, room)->r.name[0] - 'a']++;
    }
    ok(n[1] > 1.6 * n[0] && n[1] < 2.4 * n[0], "weight 2 gets about twice the rooms");
    sig_fleet_set_canary(f, "v2", 0);
    ok(strcmp(sig_fleet_pick(f, "room-1")->r.generation, "v2"), "share 0: no room on v2");
    sig_fleet_set_canary(f, "v2", 100);
    ok(!strcmp(sig_fleet_pick(f, "room-1")->r.generation, "v2"), "share 100: every room on v2");
    sig_fleet_free(f);
}

static bool keep_x(void *ud, const char *room)
{
    (void)ud;
    return room[0] == 'x';
}

static void lifetimes(void)
{
    sig_fleet *f = sig_fleet_new(&params);
    sig_fleet_report v[2] = {rep("a", "v1"), rep("b", "v1")};
    const sig_fleet_relay *r, *r2;
    char other[2] = "?";
    sig_fleet_update(f, v, 2, 0);
    r = sig_fleet_place(f, "r");
    ok(r != NULL, "placed");
    is_int(r->rooms, 1, "one room on it");
    is_int(r->assignments, 1, "one assignment");
    other[0] = r->r.name[0] == 'a' ? 'b' : 'a';
    /* its relay drains: the room keeps it, new rooms go elsewhere */
    v[r->r.name[0] - 'a'].draining = true;
    sig_fleet_update(f, v, 2, 1 * S);
    is_int(r->state, SIG_FLEET_DRAINING, "draining");
    ok(sig_fleet_place(f, "r") == r, "a room keeps its draining relay");
    for (int i = 0; i < 20; i++) {
        char room[16];
        snprintf(room, sizeof room, "n%d", i);
        ok(sig_fleet_pick(f, room)->r.name[0] == other[0], i == 0 ? "new rooms avoid it" : NULL);
    }
    /* full: at max_load allocations */
    v[r->r.name[0] - 'a'].draining = false;
    v[r->r.name[0] - 'a'].allocations = 100;
    sig_fleet_update(f, v, 2, 2 * S);
    is_int(r->state, SIG_FLEET_FULL, "full at relay-max-load");
    /* dies (missing from the report set): the room is an orphan, once */
    is_int(sig_fleet_update(f, &v[other[0] - 'a'], 1, 3 * S), 1, "one relay with rooms died");
    ok(!strcmp(sig_fleet_next_orphan(f), "r"), "its room is an orphan");
    ok(sig_fleet_next_orphan(f) == NULL, "handed out once");
    r2 = sig_fleet_place(f, "r");
    ok(r2 && r2->r.name[0] == other[0], "moved to the live relay");
    is_int(r2->rooms, 1, "counted there");
    is_int(r->rooms, 0, "not on the dead one");
    sig_fleet_room_gone(f, "r");
    is_int(r2->rooms, 0, "room gone");
    is_int(sig_fleet_rooms(f), 0, "nothing remembered");
    /* joins that never completed: swept */
    sig_fleet_place(f, "x1");
    sig_fleet_place(f, "y1");
    sig_fleet_place(f, "y2");
    is_int(sig_fleet_sweep(f, keep_x, NULL), 2, "two swept");
    is_int(sig_fleet_rooms(f), 1, "x1 kept");
    is_int(r2->rooms, 1, "counted once");
    sig_fleet_room_gone(f, "x1");
    /* registry beats: a counter that stops moving for 2.2 s stops new rooms */
    {
        sig_fleet_report b = rep("b", "v1");
        b.beat = 5;
        sig_fleet_update(f, &b, 1, 10 * S);
        is_int(sig_fleet_get(f, 1)->state, SIG_FLEET_UP, "beating: up");
        sig_fleet_update(f, &b, 1, 12 * S);
        is_int(sig_fleet_get(f, 1)->state, SIG_FLEET_UP, "2 s without a new beat: still up");
        sig_fleet_update(f, &b, 1, 12 * S + 300000);
        is_int(sig_fleet_get(f, 1)->state, SIG_FLEET_STALE, "2.3 s: stale");
        ok(sig_fleet_pick(f, "s") == NULL, "no new room on a stale relay");
        b.beat = 6;
        sig_fleet_update(f, &b, 1, 12 * S + 400000);
        is_int(sig_fleet_get(f, 1)->state, SIG_FLEET_UP, "it beat again: up");
    }
    /* nothing usable */
    sig_fleet_update(f, NULL, 0, 4 * S);
    ok(sig_fleet_place(f, "x") == NULL, "no relay: NULL");
    sig_fleet_free(f);
}

/* report one generation's relay with `streams` more finished streams of loss `l` */
static void add(sig_fleet_report *r, unsigned streams, double l)
{
    r->loss_count += streams;
    r->loss_sum += streams * l;
    r->jitter_count += streams;
    r->jitter_sum += streams * 0.002;
}

static void rollback(void)
{
    sig_fleet *f = sig_fleet_new(&params);
    sig_fleet_report v[2] = {rep("a", "v1"), rep("c", "v2")};
    char gen[32], why[400];
    uint64_t t = 0;
    bool rb = false;
    sig_fleet_set_canary(f, "v2", 20);
    sig_fleet_update(f, v, 2, t);
    ok(!sig_fleet_judge(f, t, gen, sizeof gen, why, sizeof why), "nothing yet");
    /* too few canary streams: never judged, however bad */
    add(&v[0], 10, 0.0);
    add(&v[1], 3, 0.5);
    for (int i = 1; i <= 5; i++) {
        sig_fleet_update(f, v, 2, t += S);
        rb |= sig_fleet_judge(f, t, gen, sizeof gen, why, sizeof why);
    }
    ok(!rb, "3 streams < min sample 4: no rollback");
    /* a relay restart (sums fall back) adds nothing */
    v[1].loss_count = v[1].jitter_count = 0;
    v[1].loss_sum = v[1].jitter_sum = 0;
    sig_fleet_update(f, v, 2, t += S);
    ok(!sig_fleet_judge(f, t, gen, sizeof gen, why, sizeof why), "restart: nothing");
    /* 8% against 0%: rolled back after the 2 s hold, not before */
    add(&v[1], 8, 0.08);
    sig_fleet_update(f, v, 2, t += S);
    ok(!sig_fleet_judge(f, t, gen, sizeof gen, why, sizeof why), "worse: hold starts");
    sig_fleet_update(f, v, 2, t += S);
    ok(!sig_fleet_judge(f, t, gen, sizeof gen, why, sizeof why), "1 s into the hold");
    sig_fleet_update(f, v, 2, t += S);
    ok(sig_fleet_judge(f, t, gen, sizeof gen, why, sizeof why), "rolled back after 2 s");
    ok(!strcmp(gen, "v2"), "generation v2");
    /* the window holds the 3 streams at 50% from before the restart and the
     * 8 at 8%: (1.5 + 0.64) / 11 */
    ok(strstr(why, "loss 19.45%") != NULL, "the reason names the window's loss");
    printf("# %s\n", why);
    is_int(sig_fleet_rollbacks(f), 1, "counted");
    {
        const char *g;
        unsigned pct;
        sig_fleet_canary_get(f, 0, &g, &pct);
        is_int(pct, 0, "share 0");
    }
    sig_fleet_free(f);
    /* a canary about as good as the baseline (within the delta) stays */
    f = sig_fleet_new(&params);
    v[0] = rep("a", "v1");
    v[1] = rep("c", "v2");
    sig_fleet_set_canary(f, "v2", 20);
    rb = false;
    for (int i = 0; i < 30; i++) {
        add(&v[0], 2, 0.01);
        add(&v[1], 2, 0.03);
        sig_fleet_update(f, v, 2, t += S);
        rb |= sig_fleet_judge(f, t, gen, sizeof gen, why, sizeof why);
    }
    ok(!rb, "2 points worse with a 3 point delta: kept");
    sig_fleet_free(f);
}

static void parsers(void)
{
    sig_fleet_report r;
    char hz[SIG_FLEET_HEALTHZ_MAX], err[200], g[32];
    unsigned pct;
    is_int(sig_fleet_parse_static("a=turn:198.51.100.7:3478,turn:198.51.100.7:3478?transport=tcp,"
                                  "generation=v2,weight=2.5,healthz=http://198.51.100.7:9641/healthz",
                                  &r, hz, err, sizeof err),
           0, "a full --relay value");
    ok(!strcmp(r.name, "a") && r.nurls == 2 && !strcmp(r.generation, "v2") && r.weight == 2.5 &&
           !strcmp(hz, "http://198.51.100.7:9641/healthz"),
       "its parts");
    is_int(sig_fleet_parse_static("b=turn:x:3478", &r, hz, err, sizeof err), 0, "URL only");
    ok(!strcmp(r.generation, "default") && hz[0] == 0 && r.weight == 1, "defaults");
    ok(sig_fleet_parse_static("turn:x:3478", &r, hz, err, sizeof err), "no name");
    ok(sig_fleet_parse_static("a=", &r, hz, err, sizeof err), "no URL");
    ok(sig_fleet_parse_static("a=http://x", &r, hz, err, sizeof err), "not a TURN URL");
    ok(sig_fleet_parse_static("a=turn:x,weight=0", &r, hz, err, sizeof err), "weight 0");
    ok(sig_fleet_parse_static("a=turn:x,weight=", &r, hz, err, sizeof err), "empty weight");
    ok(sig_fleet_parse_static("a\"=turn:x", &r, hz, err, sizeof err), "quote in the name");
    ok(sig_fleet_parse_static("a=turn:x,,", &r, hz, err, sizeof err), "empty item");
    is_int(sig_fleet_parse_canary("v2=20", g, sizeof g, &pct, err, sizeof err), 0, "v2=20");
    ok(!strcmp(g, "v2") && pct == 20, "its parts");
    ok(sig_fleet_parse_canary("v2=101", g, sizeof g, &pct, err, sizeof err), "101");
    ok(sig_fleet_parse_canary("v2=", g, sizeof g, &pct, err, sizeof err), "no percent");
    ok(sig_fleet_parse_canary("=5", g, sizeof g, &pct, err, sizeof err), "no generation");
    ok(sig_fleet_parse_canary("v2=5x", g, sizeof g, &pct, err, sizeof err), "junk");
    ok(sig_fleet_hash("room", "a") == sig_fleet_hash("room", "a"), "hash is stable");
    ok(sig_fleet_hash("ro", "oma") != sig_fleet_hash("room", "a"), "the separator counts");
}

int main(void)
{
    shares();
    lifetimes();
    rollback();
    parsers();
    return done_testing();
}
