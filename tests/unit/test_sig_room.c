/* test_sig_room.c - rooms in virtual time: join, leave, ordering, limits,
 * slow-reader overflow, resume (in order, none lost, none twice) and resume
 * window expiry, all without a socket. A "connection" here is a struct that
 * counts wake-ups. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rtc_crypto.h"
#include "rtc_err.h"
#include "sig_room.h"
#include "tap.h"

typedef struct {
    int wakes;
    sig_member *m;
    int detached;
} fconn;

static void wake(void *c, void *ud)
{
    (void)ud;
    ((fconn *)c)->wakes++;
}

static void detach(void *c, sig_member *lobby, void *ud)
{
    (void)ud;
    ((fconn *)c)->m = lobby;
    ((fconn *)c)->detached++;
}

/* Pop the next queued message of c: its "type" (static buffer), or "" when empty. */
static const char *next(fconn *c, json_t **out)
{
    static char type[32];
    sig_buf *b = sig_member_peek(c->m);
    json_t *j;
    if (!b)
        return "";
    j = json_loads(b->text, 0, NULL);
    snprintf(type, sizeof type, "%s", json_string_value(json_object_get(j, "type")));
    if (out)
        *out = j;
    else
        json_decref(j);
    sig_member_pop(c->m);
    return type;
}

static void drain(fconn *c)
{
    while (sig_member_peek(c->m))
        sig_member_pop(c->m);
}

static sig_code join(sig_hub *h, fconn *c, const char *room, const char *id, uint64_t t)
{
    char resume[64];
    json_t *ice = json_array();
    sig_join_params p = {.room = room, .name = id, .id = id, .resume = resume, .ice_servers = ice};
    sig_code rc;
    snprintf(resume, sizeof resume, "resume-%s", id);
    rc = sig_hub_join(h, c->m, &p, t);
    json_decref(ice);
    return rc;
}

#define S 1000000ull

/* ---- cluster mode: members on other nodes ---- */

static struct {
    int calls, fail, nleft;
    char room[64], to[64], from[64], left[64];
    bool null_to, empty;
    json_t *data;
} rec;

static int on_remote(void *ud, const char *room, const char *to, const char *from, json_t *data)
{
    (void)ud;
    rec.calls++;
    snprintf(rec.room, sizeof rec.room, "%s", room);
    snprintf(rec.to, sizeof rec.to, "%s", to ? to : "");
    snprintf(rec.from, sizeof rec.from, "%s", from);
    rec.null_to = to == NULL;
    json_decref(rec.data);
    rec.data = json_incref(data);
    return rec.fail;
}

static void on_left(void *ud, const char *room, const char *id, bool empty)
{
    (void)ud;
    (void)room;
    rec.nleft++;
    snprintf(rec.left, sizeof rec.left, "%s", id);
    rec.empty = empty;
}

static sig_code cjoin(sig_hub *h, fconn *c, const char *room, const char *id,
                      const sig_remote *v, size_t n, bool admitted)
{
    json_t *ice = json_array();
    sig_join_params p = {.room = room, .name = id, .id = id, .resume = id, .ice_servers = ice,
                         .remotes = v, .nremotes = n, .admitted = admitted};
    sig_code rc = sig_hub_join(h, c->m, &p, 1);
    json_decref(ice);
    return rc;
}

/* "type" of the next message and, when it has one, its "id"/"from"/peer id in who. */
static const char *nextw(fconn *c, char *who, size_t cap)
{
    json_t *j = NULL, *v;
    const char *t = next(c, &j);
    who[0] = '\0';
    if (j) {
        if ((v = json_object_get(j, "id")) || (v = json_object_get(j, "from")) ||
            (v = json_object_get(json_object_get(j, "peer"), "id")))
            snprintf(who, cap, "%s", json_string_value(v));
        json_decref(j);
    }
    return t;
}

#define BOUND "tsunagu-ho|node2|7|r|id|hash" /* what the requests' proofs cover */

/* A hand-over request's proof: HMAC keyed with the resume token over what
 * the request says (sig_ho_bound). */
static void proof_of(const char *token, char out[2 * RTC_SHA256_LEN + 1])
{
    uint8_t d[RTC_SHA256_LEN];
    rtc_hmac_sha256(token, strlen(token), BOUND, strlen(BOUND), d);
    rtc_hex(d, sizeof d, out);
}

static sig_code hand_over(sig_hub *h, const char *room, const char *id, const char *proof,
                          char ***texts, size_t *n, char **name, uint64_t now_us)
{
    sig_hand_over_req q = {.room = room, .id = id, .proof = proof, .bound = BOUND};
    return sig_hub_hand_over(h, &q, texts, n, name, now_us);
}

static void free_texts(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* While a just-adopted member holds, a local peer's leave
 * waits behind that peer's earlier (parked) signal, as it happened. */
static void hold_order_tests(void)
{
    sig_limits lim = {.max_room_size = 4, .max_rooms = 4, .queue_msgs = 32, .queue_bytes = 16384,
                      .resume_us = 30 * S};
    sig_hub_ops ops = {.wake = wake, .detach = detach, .remote = on_remote, .left = on_left};
    sig_hub *h = sig_hub_new(&lim, &ops);
    fconn x = {0}, y = {0}, nb = {0};
    json_t *data = json_integer(5), *j = NULL;
    char who[64];
    sig_remote none[1];
    sig_adopt_params p = {.room = "r", .id = "b", .name = "b", .resume = "tok", .remotes = none,
                          .hold = true};
    x.m = sig_hub_connect(h, &x);
    cjoin(h, &x, "r", "x", NULL, 0, true);
    drain(&x);
    nb.m = sig_hub_connect(h, &nb);
    is_int(sig_hub_adopt(h, nb.m, &p, 2), SIG_OK, "hold order: b adopted, holding");
    ok(!strcmp(next(&nb, NULL), "resumed"), "hold order: resumed");
    is_int(sig_hub_signal(h, x.m, "b", data, 3), SIG_OK, "hold order: x signals b (parked)");
    is_int(sig_hub_leave(h, x.m, 4), SIG_OK, "hold order: x leaves");
    ok(!sig_member_peek(nb.m), "hold order: its peer-left is parked too");
    /* x's signal from before the adoption, back through Redis in the tail after x
     * left: delivered (issue 14 item 7), ahead of what is parked (it came later) */
    sig_hub_deliver_one(h, "r", "b", "x", false, data, 4);
    ok(!strcmp(nextw(&nb, who, sizeof who), "signal") && !strcmp(who, "x"),
       "hold order: x's tail signal delivered although x left meanwhile");
    sig_hub_deliver_one(h, "r", "b", "z", false, data, 4);
    ok(!sig_member_peek(nb.m), "hold order: nothing from a sender that never was here");
    y.m = sig_hub_connect(h, &y);
    cjoin(h, &y, "r", "y", NULL, 0, true);
    ok(!sig_member_peek(nb.m), "hold order: a local join is parked too");
    is_int((int)sig_hub_release(h, "r", "b"), 3, "hold order: release returns the 3 parked");
    ok(!strcmp(nextw(&nb, who, sizeof who), "signal") && !strcmp(who, "x"),
       "hold order: x's signal first");
    ok(!strcmp(nextw(&nb, who, sizeof who), "peer-left") && !strcmp(who, "x"),
       "hold order: then peer-left x");
    ok(!strcmp(nextw(&nb, who, sizeof who), "peer-joined") && !strcmp(who, "y"),
       "hold order: then peer-joined y");
    ok(!strcmp(next(&nb, &j), ""), "hold order: nothing else");
    json_decref(j);
    json_decref(data);
    sig_hub_free(h);
}

/* The owner's reply is authenticated with a key only the
 * token's holders can derive, over every byte the client gets; a member's
 * own `joined`/`resumed` never go with it. */
static void reply_auth_tests(void)
{
    sig_limits lim = {.max_room_size = 4, .max_rooms = 4, .queue_msgs = 32, .queue_bytes = 16384,
                      .resume_us = 30 * S};
    sig_hub_ops ops = {.wake = wake, .detach = detach, .remote = on_remote, .left = on_left};
    sig_hub *h = sig_hub_new(&lim, &ops);
    fconn a = {0}, b = {0};
    json_t *data = json_integer(7);
    char th[2 * RTC_SHA256_LEN + 1], **texts = NULL, *name = NULL;
    uint8_t k1[SIG_HO_KEY_LEN], k2[SIG_HO_KEY_LEN] = {0}, d[RTC_SHA256_LEN];
    size_t n = 0;

    a.m = sig_hub_connect(h, &a);
    b.m = sig_hub_connect(h, &b);
    cjoin(h, &a, "r", "a", NULL, 0, true);
    cjoin(h, &b, "r", "b", NULL, 0, true); /* b's `joined` stays queued */
    sig_hub_signal(h, a.m, "b", data, 2);
    sig_hub_disconnect(h, b.m, true, 3);
    proof_of("b", th);
    {
        sig_hand_over_req q = {.room = "r", .id = "b", .proof = th, .bound = BOUND,
                               .reply_key = k2};
        is_int(sig_hub_hand_over(h, &q, &texts, &n, &name, 4), SIG_OK, "reply auth: handed over");
    }
    ok(n == 1 && strstr(texts[0], "\"signal\"") && !strstr(texts[0], "\"joined\""),
       "reply auth: the queue without b's own joined (only a's signal)");
    sig_ho_reply_key("b", k1);
    ok(!memcmp(k1, k2, sizeof k1), "reply auth: the owner's key is the token's reply key");
    rtc_sha256("b", 1, d);
    ok(memcmp(k1, d, sizeof d), "reply auth: ... and not the token's hash that Redis sees");
    {
        const char *q1[] = {"{\"type\":\"signal\"}", "x"}, *q2[] = {"{\"type\":\"joined\"}", "x"};
        const char *q3[] = {"{\"type\":\"signal\"}x"};
        char a1[SIG_HO_MAC_LEN + 1], a2[SIG_HO_MAC_LEN + 1], a3[SIG_HO_MAC_LEN + 1];
        char a4[SIG_HO_MAC_LEN + 1], a5[SIG_HO_MAC_LEN + 1], a6[SIG_HO_MAC_LEN + 1];
        char a7[SIG_HO_MAC_LEN + 1];
        sig_ho_reply_mac(k1, 1, "o", "r", "b", "b", q1, 2, a1);
        sig_ho_reply_mac(k1, 1, "o", "r", "b", "b", q2, 2, a2);
        sig_ho_reply_mac(k1, 1, "o", "r", "b", "b", q3, 1, a3);
        sig_ho_reply_mac(k1, 2, "o", "r", "b", "b", q1, 2, a4);
        sig_ho_reply_mac(k1, 1, "o", "r", "bb", "", q1, 2, a5);
        sig_ho_reply_mac(k1, 1, "p", "r", "b", "b", q1, 2, a6);
        is_int(sig_ho_reply_mac(k1, 1, "o", "r", "b", "b", q1, 2, a7), 0, "reply auth: made");
        ok(strlen(a1) == SIG_HO_MAC_LEN && !strcmp(a1, a7), "reply auth: hex, deterministic");
        ok(strcmp(a1, a2) && strcmp(a1, a3),
           "reply auth: covers each text and the split between texts");
        ok(strcmp(a1, a4) && strcmp(a1, a5) && strcmp(a1, a6),
           "reply auth: covers the serial, the fields' split and the owner");
        k1[0] ^= 1;
        sig_ho_reply_mac(k1, 1, "o", "r", "b", "b", q1, 2, a7);
        ok(strcmp(a1, a7), "reply auth: another key, another MAC");
    }
    free_texts(texts, n);
    free(name);
    json_decref(data);
    sig_hub_free(h);
}

/* Resume across nodes, both halves in one process: h1 owns b, h2 adopts it. */
static void handover_tests(void)
{
    sig_limits lim = {.max_room_size = 4, .max_rooms = 4, .queue_msgs = 32, .queue_bytes = 16384,
                      .resume_us = 30 * S};
    sig_hub_ops ops = {.wake = wake, .detach = detach, .remote = on_remote, .left = on_left};
    sig_hub *h1 = sig_hub_new(&lim, &ops), *h2 = sig_hub_new(&lim, &ops);
    fconn a = {0}, b = {0}, c = {0}, x = {0}, nb = {0};
    sig_hub_stats st;
    json_t *data = json_integer(1);
    char th[2 * RTC_SHA256_LEN + 1], who[64], **texts, *name;
    size_t n;

    rec.nleft = 0;
    a.m = sig_hub_connect(h1, &a);
    b.m = sig_hub_connect(h1, &b);
    c.m = sig_hub_connect(h1, &c);
    cjoin(h1, &a, "r", "a", NULL, 0, true);
    cjoin(h1, &b, "r", "b", NULL, 0, true);
    cjoin(h1, &c, "r", "c", NULL, 0, true);
    drain(&a);
    drain(&b);
    drain(&c);
    sig_hub_disconnect(h1, b.m, true, 1); /* b's network dies */
    for (int i = 0; i < 3; i++) {
        json_t *di = json_integer(i);
        sig_hub_signal(h1, a.m, "b", di, 2);
        json_decref(di);
    }
    proof_of("b", th);
    is_int(hand_over(h1, "r", "b", "00", &texts, &n, &name, 3), SIG_E_UNAUTHORIZED,
           "hand-over: a short proof is refused");
    {
        /* what Redis and the room's channel carry: the token's SHA-256 */
        char sha[sizeof th];
        uint8_t d[RTC_SHA256_LEN];
        rtc_sha256("b", 1, d);
        rtc_hex(d, sizeof d, sha);
        is_int(hand_over(h1, "r", "b", sha, &texts, &n, &name, 3), SIG_E_UNAUTHORIZED,
               "hand-over: the token's hash is no proof");
    }
    {
        /* the right token over another request (another asking node) */
        sig_hand_over_req q = {.room = "r", .id = "b", .proof = th, .bound = BOUND "x"};
        is_int(sig_hub_hand_over(h1, &q, &texts, &n, &name, 3), SIG_E_UNAUTHORIZED,
               "hand-over: a proof for another request is refused");
    }
    {
        char wrong[sizeof th];
        proof_of("c", wrong);
        is_int(hand_over(h1, "r", "b", wrong, &texts, &n, &name, 3), SIG_E_UNAUTHORIZED,
               "hand-over: another member's proof is refused");
    }
    is_int(hand_over(h1, "r", "nobody", th, &texts, &n, &name, 3), SIG_E_UNAUTHORIZED,
           "hand-over: unknown member refused");
    is_int(hand_over(h1, "r", "b", th, &texts, &n, &name, 3), SIG_OK,
           "hand-over: the right proof hands the detached member over");
    ok(n == 3 && !strcmp(name, "b") && strstr(texts[0], "\"signal\""), "its queue goes with it");
    sig_hub_get_stats(h1, &st);
    ok(st.members == 2 && st.remote == 1 && st.detached == 0, "b is a remote member on h1 now");
    {
        char **t2, *n2;
        size_t k2;
        is_int(hand_over(h1, "r", "b", th, &t2, &k2, &n2, 3), SIG_E_UNAUTHORIZED,
               "hand-over: twice is refused");
    }
    ok(!strcmp(next(&a, NULL), "") && !strcmp(next(&c, NULL), "") && rec.nleft == 0,
       "nobody told, ops.left not called");
    rec.calls = 0;
    is_int(sig_hub_signal(h1, a.m, "b", data, 4), SIG_OK, "a's signals to b now go to Redis");
    ok(rec.calls == 1 && !strcmp(rec.to, "b"), "... through ops.remote");

    /* h2: x is there, a, b and c remote; b arrives with its queue */
    x.m = sig_hub_connect(h2, &x);
    {
        sig_remote abc[] = {{"a", "a"}, {"b", "b"}, {"c", "c"}}, ac[] = {{"a", "a"}, {"c", "c"}};
        const char *const extra[] = {"{\"type\":\"signal\",\"from\":\"a\",\"data\":9}"};
        const char **all = calloc(n + 2, sizeof *all);
        sig_adopt_params p;
        json_t *j = NULL;
        cjoin(h2, &x, "r", "x", abc, 3, true);
        drain(&x);
        for (size_t i = 0; i < n; i++)
            all[i] = texts[i];
        all[n] = extra[0];
        nb.m = sig_hub_connect(h2, &nb);
        p = (sig_adopt_params){.room = "r", .id = "b", .name = name, .resume = "b", .texts = all,
                               .ntexts = n + 1, .remotes = ac, .nremotes = 2, .hold = true};
        is_int(sig_hub_adopt(h2, nb.m, &p, 5), SIG_OK, "adopt: b is local on h2");
        free(all);
        ok(!strcmp(next(&x, NULL), ""), "adopt: x sees no peer-left/peer-joined");
        ok(!strcmp(next(&nb, &j), "resumed"), "adopt: resumed first");
        {
            json_t *peers = json_object_get(j, "peers");
            ok(json_array_size(peers) == 3 &&
                   !strcmp(json_string_value(json_object_get(json_array_get(peers, 0), "id")), "a") &&
                   !strcmp(json_string_value(json_object_get(json_array_get(peers, 2), "id")), "x"),
               "adopt: peers in join order (a, c, x)");
        }
        json_decref(j);
        for (int i = 0; i < 3; i++) {
            ok(!strcmp(next(&nb, &j), "signal") &&
                   !strcmp(json_string_value(json_object_get(j, "from")), "a") &&
                   json_integer_value(json_object_get(j, "data")) == i,
               "adopt: the owner's queue, in order (data 0, 1, 2)");
            json_decref(j);
            j = NULL;
        }
        ok(!strcmp(next(&nb, &j), "signal") && json_integer_value(json_object_get(j, "data")) == 9,
           "adopt: then what came meanwhile");
        json_decref(j);
        sig_hub_get_stats(h2, &st);
        ok(st.members == 2 && st.remote == 2, "h2: 2 local (x, b), 2 remote (a, c)");
        /* holding: x's signal waits behind a's tail */
        is_int(sig_hub_signal(h2, x.m, "b", data, 6), SIG_OK, "x signals b while holding");
        ok(!sig_member_peek(nb.m), "... parked");
        sig_hub_deliver_one(h2, "r", "b", "a", false, data, 6);
        sig_hub_deliver_one(h2, "r", "b", "a", true, data, 6);
        ok(!strcmp(nextw(&nb, who, sizeof who), "signal") && !strcmp(who, "a"), "tail: a's signal");
        ok(!strcmp(nextw(&nb, who, sizeof who), "broadcast") && !strcmp(who, "a"),
           "tail: a's broadcast, to b only");
        ok(!strcmp(next(&x, NULL), ""), "x does not get the tail broadcast");
        sig_hub_deliver_one(h2, "r", "b", "gone", false, data, 6);
        ok(!sig_member_peek(nb.m), "tail: nothing from a sender no longer in the room");
        sig_hub_release(h2, "r", "b");
        ok(!strcmp(nextw(&nb, who, sizeof who), "signal") && !strcmp(who, "x"),
           "release: x's signal follows");
        is_int(sig_hub_signal(h2, x.m, "b", data, 7), SIG_OK, "after release");
        ok(!strcmp(nextw(&nb, who, sizeof who), "signal"), "... delivered at once");
    }
    free_texts(texts, n);
    free(name);

    /* half-open: c still attached on h1; handing it over closes the old conn */
    proof_of("c", th);
    is_int(hand_over(h1, "r", "c", th, &texts, &n, &name, 8), SIG_OK,
           "hand-over of an attached member");
    ok(c.detached == 1 && sig_member_get_state(c.m) == SIG_MEMBER_LOBBY,
       "its old connection got a lobby member (closed with 4001 by the caller)");
    free_texts(texts, n);
    free(name);
    /* the last local member handed over: the room goes */
    proof_of("a", th);
    is_int(hand_over(h1, "r", "a", th, &texts, &n, &name, 9), SIG_OK, "hand-over of a");
    sig_hub_get_stats(h1, &st);
    ok(st.rooms == 0 && st.remote == 0 && st.members == 0, "h1: no local member, no room");
    free_texts(texts, n);
    free(name);
    /* adopted without a connection: detached, resumable locally */
    {
        sig_member *m = sig_hub_connect(h2, NULL);
        sig_adopt_params p = {.room = "r", .id = "c", .name = "c", .resume = "tok-c"};
        is_int(sig_hub_adopt(h2, m, &p, 10), SIG_OK, "adopt without a connection");
        sig_hub_get_stats(h2, &st);
        is_int(st.detached, 1, "... kept detached");
        fconn cc = {0};
        cc.m = sig_hub_connect(h2, &cc);
        is_int(sig_hub_resume(h2, &cc.m, "tok-c", 11), SIG_OK, "... and resumed locally");
        ok(!strcmp(next(&cc, NULL), "resumed"), "... resumed once");
        sig_hub_disconnect(h2, cc.m, false, 12);
    }
    json_decref(data);
    sig_hub_disconnect(h1, a.m, false, 20);
    sig_hub_disconnect(h1, c.m, false, 20);
    sig_hub_disconnect(h2, x.m, false, 20);
    sig_hub_disconnect(h2, nb.m, false, 20);
    sig_hub_free(h1);
    sig_hub_free(h2);
    json_decref(rec.data);
    rec.data = NULL;
}

static void remote_tests(void)
{
    sig_limits lim = {.max_room_size = 3, .max_rooms = 4, .queue_msgs = 32, .queue_bytes = 16384,
                      .resume_us = 0};
    sig_hub_ops ops = {.wake = wake, .detach = detach, .remote = on_remote, .left = on_left};
    sig_hub *h = sig_hub_new(&lim, &ops);
    fconn a = {0}, b = {0}, c = {0};
    sig_remote x[] = {{"x", "X"}};
    sig_remote yz[] = {{"y", "Y"}, {"z", "Z"}};
    sig_remote many[] = {{"m1", ""}, {"m2", ""}, {"m3", ""}, {"m4", ""}, {"m5", ""}};
    sig_hub_stats st;
    char who[64];
    json_t *j, *data = json_string("hello");

    a.m = sig_hub_connect(h, &a);
    b.m = sig_hub_connect(h, &b);
    c.m = sig_hub_connect(h, &c);

    /* remote members of rooms nobody here is in are not tracked */
    sig_hub_remote_join(h, "r", "early", "E", 1);
    sig_hub_get_stats(h, &st);
    is_int(st.remote, 0, "remote join into an unknown room is ignored");

    /* an admitted join installs the store's view: peers come from it */
    is_int(cjoin(h, &a, "r", "a", x, 1, true), SIG_OK, "a joins with remote x");
    ok(!strcmp(next(&a, &j), "joined"), "a: joined");
    {
        json_t *peers = json_object_get(j, "peers");
        ok(json_array_size(peers) == 1 &&
               !strcmp(json_string_value(json_object_get(json_array_get(peers, 0), "id")), "x") &&
               !strcmp(json_string_value(json_object_get(json_array_get(peers, 0), "name")), "X"),
           "joined.peers lists the remote member");
    }
    json_decref(j);
    ok(!strcmp(next(&a, NULL), ""), "no peer-joined for members already listed in joined");

    sig_hub_remote_join(h, "r", "y", "Y", 1);
    ok(!strcmp(nextw(&a, who, sizeof who), "peer-joined") && !strcmp(who, "y"),
       "remote join: peer-joined to local members");
    sig_hub_remote_join(h, "r", "y", "Y", 1);
    sig_hub_remote_join(h, "r", "a", "impostor", 1);
    ok(!strcmp(next(&a, NULL), ""), "known id, or a local member's id: ignored");
    sig_hub_get_stats(h, &st);
    ok(st.remote == 2 && st.members == 1 && st.rooms == 1, "stats: 2 remote, 1 local, 1 room");

    /* signal and broadcast to remote members go out through ops.remote */
    is_int(sig_hub_signal(h, a.m, "x", data, 1), SIG_OK, "signal to a remote member");
    ok(rec.calls == 1 && !strcmp(rec.room, "r") && !strcmp(rec.to, "x") && !strcmp(rec.from, "a") &&
           json_equal(rec.data, data),
       "ops.remote(room, to, from, data)");
    ok(!strcmp(next(&a, NULL), ""), "nothing queued locally for it");
    is_int(sig_hub_broadcast(h, a.m, data, 1), SIG_OK, "broadcast");
    ok(rec.calls == 2 && rec.null_to && !strcmp(rec.from, "a"),
       "broadcast goes out once, to = NULL");
    rec.fail = 1;
    is_int(sig_hub_signal(h, a.m, "x", data, 1), SIG_E_SERVER_BUSY,
           "remote path refused: server-busy");
    rec.fail = 0;
    is_int(sig_hub_signal(h, a.m, "nobody", data, 1), SIG_E_UNKNOWN_PEER, "unknown id still refused");

    /* from remote members: signal to one local member, broadcast to all */
    is_int(cjoin(h, &b, "r", "b", NULL, 0, false), SIG_E_ROOM_FULL,
           "remote members count in the room size");
    {
        /* the store admitted b (it may know better, e.g. y left meanwhile) */
        sig_remote xy[] = {{"x", "X"}, {"y", "Y"}};
        is_int(cjoin(h, &b, "r", "b", xy, 2, true), SIG_OK, "admitted join passes");
    }
    ok(!strcmp(nextw(&a, who, sizeof who), "peer-joined") && !strcmp(who, "b"), "a: peer-joined b");
    drain(&b);
    sig_hub_remote_deliver(h, "r", "b", "x", data, 1);
    ok(!strcmp(nextw(&b, who, sizeof who), "signal") && !strcmp(who, "x"), "remote signal to b");
    ok(!strcmp(next(&a, NULL), ""), "...and not to a");
    sig_hub_remote_deliver(h, "r", NULL, "y", data, 1);
    ok(!strcmp(nextw(&a, who, sizeof who), "broadcast") && !strcmp(who, "y") &&
           !strcmp(nextw(&b, who, sizeof who), "broadcast"),
       "remote broadcast to every local member");
    sig_hub_remote_deliver(h, "r", "ghost", "x", data, 1);
    sig_hub_remote_deliver(h, "other", NULL, "x", data, 1);
    ok(!strcmp(next(&a, NULL), "") && !strcmp(next(&b, NULL), ""),
       "to an unknown member or room: dropped");

    /* leave and sync */
    sig_hub_remote_leave(h, "r", "x", 1);
    ok(!strcmp(nextw(&a, who, sizeof who), "peer-left") && !strcmp(who, "x") &&
           !strcmp(next(&b, NULL), "peer-left"),
       "remote leave: peer-left to local members");
    sig_hub_remote_leave(h, "r", "x", 1);
    sig_hub_remote_leave(h, "r", "a", 1);
    ok(!strcmp(next(&a, NULL), "") && sig_member_get_state(a.m) == SIG_MEMBER_JOINED,
       "unknown or local id: no effect");
    sig_hub_remote_sync(h, "r", yz, 2, 1);
    ok(!strcmp(nextw(&a, who, sizeof who), "peer-joined") && !strcmp(who, "z") &&
           !strcmp(next(&a, NULL), ""),
       "sync adds only what is new");
    drain(&b);
    sig_hub_remote_sync(h, "r", NULL, 0, 1);
    ok(!strcmp(next(&a, NULL), "peer-left") && !strcmp(next(&a, NULL), "peer-left") &&
           !strcmp(next(&a, NULL), ""),
       "sync to empty: peer-left for each");
    drain(&b);
    sig_hub_remote_sync(h, "r", many, 5, 1);
    sig_hub_get_stats(h, &st);
    is_int(st.remote, 3, "remote members per room bounded by max_room_size");
    drain(&a);
    drain(&b);

    /* local leaves reach ops.left; the last local member takes the room
     * (and its remote members) away */
    is_int(sig_hub_leave(h, a.m, 1), SIG_OK, "a leaves");
    ok(rec.nleft == 1 && !strcmp(rec.left, "a") && !rec.empty, "ops.left(a), room not empty");
    sig_hub_disconnect(h, b.m, false, 1);
    ok(rec.nleft == 2 && !strcmp(rec.left, "b") && rec.empty, "ops.left(b), room empty");
    sig_hub_get_stats(h, &st);
    ok(st.rooms == 0 && st.remote == 0, "room gone with its remote members");
    /* a second room: remote members stay within their room */
    is_int(cjoin(h, &c, "r2", "c", yz, 2, true), SIG_OK, "c joins r2 with y, z");
    drain(&c);
    is_int(sig_hub_leave(h, a.m, 1), SIG_E_NOT_JOINED, "a is in the lobby");
    sig_hub_free(h); /* with remote members still tracked: freed too (ASan) */
    json_decref(data);
    json_decref(rec.data);
    rec.data = NULL;
}

/* ---- read-only walks (sig_room_walk.c, the admin API) ---- */

typedef struct {
    int n;
    char names[8][32];
    uint32_t members[8], remote[8];
    uint64_t created[8];
    sig_member_state states[8];
    bool conn[8];
} walked;

static void on_room(void *ud, const sig_room_info *r)
{
    walked *w = ud;
    if (w->n < 8) {
        snprintf(w->names[w->n], sizeof w->names[0], "%s", r->name);
        w->members[w->n] = r->members;
        w->remote[w->n] = r->remote;
        w->created[w->n] = r->created_us;
    }
    w->n++;
}

static void on_member(void *ud, const sig_member_info *m)
{
    walked *w = ud;
    if (w->n < 8) {
        snprintf(w->names[w->n], sizeof w->names[0], "%s", m->id);
        w->states[w->n] = m->state;
        w->conn[w->n] = m->conn != NULL;
    }
    w->n++;
}

static void walk_tests(void)
{
    sig_limits lim = {.max_room_size = 4, .max_rooms = 4, .queue_msgs = 32, .queue_bytes = 16384,
                      .resume_us = 30 * S};
    sig_hub_ops ops = {.wake = wake, .detach = detach, .remote = on_remote, .left = on_left};
    sig_hub *h = sig_hub_new(&lim, &ops);
    fconn a = {0}, b = {0}, c = {0};
    sig_remote x[] = {{"x", "X"}};
    walked w;

    a.m = sig_hub_connect(h, &a);
    b.m = sig_hub_connect(h, &b);
    c.m = sig_hub_connect(h, &c);
    memset(&w, 0, sizeof w);
    is_int((int)sig_hub_walk_rooms(h, on_room, &w), 0, "walk: no rooms, none walked");
    is_int(cjoin(h, &a, "r", "a", x, 1, true), SIG_OK, "walk: a joins r (remote x there)");
    is_int(join(h, &b, "r", "b", 7 * S), SIG_OK, "walk: b joins r later");
    is_int(join(h, &c, "q", "c", 9 * S), SIG_OK, "walk: c joins q");
    memset(&w, 0, sizeof w);
    is_int((int)sig_hub_walk_rooms(h, on_room, &w), 2, "walk: two rooms");
    for (int i = 0; i < 2; i++) {
        if (!strcmp(w.names[i], "r"))
            ok(w.members[i] == 3 && w.remote[i] == 1 && w.created[i] == 1,
               "walk: r has 3 members (1 remote), made at its first join");
        else
            ok(!strcmp(w.names[i], "q") && w.members[i] == 1 && w.remote[i] == 0 &&
                   w.created[i] == 9 * S, "walk: q has 1 member, made at 9 s");
    }
    memset(&w, 0, sizeof w);
    ok(sig_hub_walk_members(h, "r", on_member, &w) && w.n == 3, "walk: r's three members");
    {
        /* the store's view (x) is installed as a's join completes: x, a, then b */
        int ia = !strcmp(w.names[0], "a") ? 0 : 1, ix = 1 - ia;
        ok(!strcmp(w.names[ia], "a") && w.states[ia] == SIG_MEMBER_JOINED && w.conn[ia],
           "walk: a joined, with its connection");
        ok(!strcmp(w.names[ix], "x") && w.states[ix] == SIG_MEMBER_REMOTE && !w.conn[ix],
           "walk: remote x, no connection");
        ok(!strcmp(w.names[2], "b") && w.states[2] == SIG_MEMBER_JOINED, "walk: b last");
    }
    ok(!sig_hub_walk_members(h, "nope", on_member, &w), "walk: unknown room: false");
    ok(sig_hub_find_member(h, "r", "b") == b.m, "find: local member b");
    ok(sig_hub_find_member(h, "r", "x") == NULL, "find: never a remote member");
    ok(sig_hub_find_member(h, "q", "b") == NULL, "find: b is not in q");
    /* detached: listed, no connection; removing it (the admin kick) empties nothing else */
    sig_hub_disconnect(h, b.m, true, 10 * S);
    memset(&w, 0, sizeof w);
    sig_hub_walk_members(h, "r", on_member, &w);
    ok(w.n == 3 && w.states[2] == SIG_MEMBER_DETACHED && !w.conn[2], "walk: b detached");
    sig_hub_disconnect(h, sig_hub_find_member(h, "r", "b"), false, 11 * S);
    memset(&w, 0, sizeof w);
    sig_hub_walk_members(h, "r", on_member, &w);
    ok(w.n == 2 && sig_hub_find_member(h, "r", "b") == NULL, "walk: detached b removed");
    sig_hub_disconnect(h, a.m, false, 12 * S);
    ok(!sig_hub_walk_members(h, "r", on_member, &w), "walk: r gone with its last local member");
    sig_hub_disconnect(h, c.m, false, 12 * S);
    sig_hub_free(h);
}

/* The detached list (issue 16 item 4): tick pops expired members from its
 * head instead of walking every member; a resumed one leaves the list; one
 * that overflows while detached is evicted at the next tick, window or not. */
static void held_list_tests(void)
{
    sig_limits lim = {.max_room_size = 16, .max_rooms = 16, .queue_msgs = 4, .queue_bytes = 4096,
                      .resume_us = 30 * S};
    sig_hub_ops ops = {.wake = wake, .detach = detach, .ud = NULL, .headroom = 16};
    sig_hub *h = sig_hub_new(&lim, &ops);
    fconn v[5], x = {0};
    const char *ids[5] = {"h0", "h1", "h2", "h3", "h4"};
    sig_hub_stats st;
    json_t *b;
    memset(v, 0, sizeof v);
    for (int i = 0; i < 5; i++) {
        v[i].m = sig_hub_connect(h, &v[i]);
        join(h, &v[i], "held", ids[i], 0);
    }
    /* h1, h2, h3 drop at 1, 2, 3 s; h4 stays, h0 stays and reads */
    for (int i = 1; i <= 3; i++)
        sig_hub_disconnect(h, v[i].m, true, (uint64_t)i * S);
    is_int(sig_hub_next_deadline(h), 31 * S, "deadline: the first drop's window end");
    /* h2 resumes at 10 s: off the list */
    x.m = sig_hub_connect(h, &x);
    is_int(sig_hub_resume(h, &x.m, "resume-h2", 10 * S), SIG_OK, "h2 resumes");
    is_int(sig_hub_tick(h, 31 * S), 33 * S, "h1 expired; next is h3's (h2 resumed)");
    sig_hub_get_stats(h, &st);
    is_int((int)st.detached, 1, "one left detached (h3)");
    is_int((int)st.members, 4, "h1 gone");
    /* h3 overflows while detached: evicted at the next tick, before its window */
    b = json_string("b");
    for (int i = 0; i < 10; i++)
        sig_hub_broadcast(h, v[4].m, b, 32 * S);
    json_decref(b);
    is_int(sig_hub_next_deadline(h), 0, "overflowed: due at once");
    sig_hub_tick(h, 32 * S);
    sig_hub_get_stats(h, &st);
    is_int((int)st.detached, 0, "h3 evicted before its window ends");
    is_int(sig_hub_next_deadline(h), UINT64_MAX, "nobody detached: no deadline");
    sig_hub_free(h);
}

/* Resume finds its member through the keyed token map (sig_tokmap.h), not by
 * walking every member (issue 16 item 4): among 20,000 members, the right
 * token resumes the right member; a token one byte off, a leaver's, an
 * expired one and a handed-over one are refused; a resume while the old
 * connection is still open keeps the token working. */
static void resume_map_tests(void)
{
    enum { N = 20000 };
    sig_limits lim = {.max_room_size = 10, .max_rooms = N, .queue_msgs = 64,
                      .queue_bytes = 65536, .resume_us = 30 * S};
    sig_hub_ops ops = {.wake = wake, .detach = detach, .ud = NULL, .headroom = 16};
    sig_hub *h = sig_hub_new(&lim, &ops);
    fconn *v = calloc(N, sizeof *v), *back = calloc(N / 1000, sizeof *back), x = {0}, y = {0};
    char id[32], room[32], tok[64];
    int bad = 0;
    struct timespec t0, t1;
    ok(h && v && back, "hub and members");
    if (!h || !v || !back)
        return;
    for (int i = 0; i < N; i++) {
        snprintf(id, sizeof id, "m%05d", i);
        snprintf(room, sizeof room, "r%d", i / 10);
        v[i].m = sig_hub_connect(h, &v[i]);
        bad += join(h, &v[i], room, id, S) != SIG_OK;
    }
    is_int(bad, 0, "20,000 joined");
    /* every 1000th drops and comes back on a new connection */
    for (int i = 0; i < N; i += 1000)
        sig_hub_disconnect(h, v[i].m, true, 2 * S);
    bad = 0;
    for (int i = 0; i < N; i += 1000) {
        fconn *c = &back[i / 1000]; /* (lives till the end: the hub wakes it) */
        sig_member *was = v[i].m;
        c->m = sig_hub_connect(h, c);
        snprintf(tok, sizeof tok, "resume-m%05d", i);
        bad += sig_hub_resume(h, &c->m, tok, 3 * S) != SIG_OK || c->m != was;
        v[i].m = c->m;
    }
    is_int(bad, 0, "each of 20 resumed the member its token names");
    x.m = sig_hub_connect(h, &x);
    is_int(sig_hub_resume(h, &x.m, "resume-m00001", 4 * S), SIG_OK,
           "a joined member's token, old connection still open: resumes");
    ok(v[1].detached == 1 && x.m != v[1].m, "the old connection lost the member");
    y.m = sig_hub_connect(h, &y);
    is_int(sig_hub_resume(h, &y.m, "resume-m00001", 5 * S), SIG_OK, "and again, from a third");
    is_int(sig_hub_resume(h, &v[2].m, "resume-m00002", 5 * S), SIG_E_BAD_REQUEST,
           "not from a joined connection");
    ok(x.detached == 1, "x lost it to y, and holds a lobby member again");
    is_int(sig_hub_resume(h, &x.m, "resume-m0000Z", 5 * S), SIG_E_UNAUTHORIZED,
           "one byte off: refused");
    is_int(sig_hub_resume(h, &x.m, "resume-m0000", 5 * S), SIG_E_UNAUTHORIZED,
           "a prefix: refused");
    is_int(sig_hub_leave(h, v[3].m, 5 * S), SIG_OK, "m00003 leaves");
    is_int(sig_hub_resume(h, &x.m, "resume-m00003", 5 * S), SIG_E_UNAUTHORIZED,
           "a leaver's token: refused");
    sig_hub_disconnect(h, v[4].m, true, 5 * S);
    is_int(sig_hub_resume(h, &x.m, "resume-m00004", 35 * S), SIG_E_UNAUTHORIZED,
           "after the window: refused");
    /* (an unknown token is the old walk's worst case: every member compared) */
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < 10000; i++)
        bad += sig_hub_resume(h, &x.m, "resume-nobody-at-all", 36 * S) != SIG_E_UNAUTHORIZED;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    is_int(bad, 0, "10,000 unknown tokens refused");
    printf("# resume with an unknown token among %d members: %.0f ns each\n", N,
           ((double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec)) / 1e4);
    sig_hub_free(h); /* (frees the lobby members x and y hold too) */
    free(back);
    free(v);
}

int main(void)
{
    sig_limits lim = {.max_room_size = 3, .max_rooms = 2, .queue_msgs = 8, .queue_bytes = 4096,
                      .resume_us = 30 * S};
    sig_hub_ops ops = {.wake = wake, .detach = detach, .ud = NULL, .headroom = 16};
    sig_hub *h = sig_hub_new(&lim, &ops);
    fconn a = {0}, b = {0}, c = {0}, d = {0}, e = {0}, b2 = {0}, b3 = {0};
    sig_hub_stats st;
    json_t *j, *data;
    uint64_t t = 1 * S;

    a.m = sig_hub_connect(h, &a);
    b.m = sig_hub_connect(h, &b);
    c.m = sig_hub_connect(h, &c);
    d.m = sig_hub_connect(h, &d);
    e.m = sig_hub_connect(h, &e);
    ok(h && a.m && b.m, "hub and lobby members");
    is_int(sig_member_get_state(a.m), SIG_MEMBER_LOBBY, "lobby state");

    /* not joined yet */
    data = json_integer(1);
    is_int(sig_hub_signal(h, a.m, "b", data, t), SIG_E_NOT_JOINED, "signal before join");
    is_int(sig_hub_broadcast(h, a.m, data, t), SIG_E_NOT_JOINED, "broadcast before join");
    is_int(sig_hub_leave(h, a.m, t), SIG_E_NOT_JOINED, "leave before join");

    /* join: joined to the newcomer, peer-joined to the others, in join order */
    is_int(join(h, &a, "r1", "a", t), SIG_OK, "a joins r1");
    is_int(a.wakes, 1, "a woken once");
    ok(!strcmp(next(&a, &j), "joined"), "a: joined");
    is_int(json_array_size(json_object_get(j, "peers")), 0, "a: no peers");
    ok(!strcmp(json_string_value(json_object_get(j, "resume")), "resume-a"), "a: resume token");
    json_decref(j);
    is_int(join(h, &b, "r1", "b", t), SIG_OK, "b joins r1");
    ok(!strcmp(next(&b, &j), "joined"), "b: joined");
    ok(!strcmp(json_string_value(json_object_get(json_array_get(json_object_get(j, "peers"), 0), "id")), "a"),
       "b: peers = [a]");
    json_decref(j);
    ok(!strcmp(next(&a, NULL), "peer-joined"), "a: peer-joined b");
    is_int(join(h, &c, "r1", "c", t), SIG_OK, "c joins r1");
    drain(&a);
    drain(&b);
    drain(&c);
    is_int(join(h, &a, "r2", "a2", t), SIG_E_BAD_REQUEST, "one room per connection");

    /* limits */
    is_int(join(h, &d, "r1", "d", t), SIG_E_ROOM_FULL, "room-full at max_room_size");
    is_int(join(h, &d, "r2", "d", t), SIG_OK, "second room");
    is_int(join(h, &e, "r3", "e", t), SIG_E_SERVER_BUSY, "server-busy at max_rooms");
    ok(!sig_hub_room_allowed(h, "r3") && sig_hub_room_allowed(h, "r1"),
       "room_allowed: a new room refused at max_rooms, an existing one fine");
    sig_hub_get_stats(h, &st);
    ok(st.rooms == 2 && st.members == 4 && st.lobby == 1, "stats: 2 rooms, 4 members, 1 lobby");
    drain(&d);

    /* signal: only to `to`, in order; unknown peers, self, other rooms refused */
    for (int i = 0; i < 5; i++) {
        json_t *n = json_integer(i);
        sig_hub_signal(h, a.m, "b", n, t);
        json_decref(n);
    }
    {
        int inorder = 0;
        for (int i = 0; i < 5; i++) {
            if (!strcmp(next(&b, &j), "signal") &&
                json_integer_value(json_object_get(j, "data")) == i &&
                !strcmp(json_string_value(json_object_get(j, "from")), "a"))
                inorder++;
            json_decref(j);
        }
        is_int(inorder, 5, "5 signals a->b in order");
    }
    ok(!strcmp(next(&c, NULL), ""), "c got none of them");
    is_int(sig_hub_signal(h, a.m, "a", data, t), SIG_E_UNKNOWN_PEER, "signal to self");
    is_int(sig_hub_signal(h, a.m, "zz", data, t), SIG_E_UNKNOWN_PEER, "signal to nobody");
    is_int(sig_hub_signal(h, a.m, "d", data, t), SIG_E_UNKNOWN_PEER, "signal to another room");

    /* broadcast: every other member, not the sender, not other rooms */
    is_int(sig_hub_broadcast(h, c.m, data, t), SIG_OK, "broadcast");
    ok(!strcmp(next(&a, NULL), "broadcast") && !strcmp(next(&b, NULL), "broadcast"), "a and b got it");
    ok(!strcmp(next(&c, NULL), "") && !strcmp(next(&d, NULL), ""), "not c (sender), not d");

    /* leave: peer-left to the others, member back in the lobby, can rejoin */
    is_int(sig_hub_leave(h, c.m, t), SIG_OK, "c leaves");
    ok(!strcmp(next(&a, &j), "peer-left") && !strcmp(json_string_value(json_object_get(j, "id")), "c"),
       "a: peer-left c");
    json_decref(j);
    drain(&b);
    is_int(sig_member_get_state(c.m), SIG_MEMBER_LOBBY, "c in the lobby");
    is_int(join(h, &c, "r1", "c2", t), SIG_OK, "c rejoins with a new id");
    drain(&a);
    drain(&b);
    drain(&c);

    /* resume: b's connection drops; a signals it 5 times; b resumes on a new
     * connection and gets resumed, then the 5 in order, once each. */
    sig_hub_disconnect(h, b.m, true, t);
    sig_hub_get_stats(h, &st);
    ok(st.detached == 1 && st.members == 4, "b detached, still a member");
    ok(!strcmp(next(&a, NULL), ""), "no peer-left for a detached member");
    for (int i = 0; i < 5; i++) {
        json_t *n = json_integer(100 + i);
        is_int(sig_hub_signal(h, a.m, "b", n, t + (uint64_t)i), SIG_OK, "signal to detached b queues");
        json_decref(n);
    }
    {
        int inorder = 0;
        b2.m = sig_hub_connect(h, &b2);
        sig_hub_send(h, b2.m, "{\"type\":\"pong\"}", t); /* queued before resume */
        t += 29 * S;
        is_int(sig_hub_resume(h, &b2.m, "resume-x", t), SIG_E_UNAUTHORIZED, "unknown token");
        is_int(sig_hub_resume(h, &b2.m, "resume-b", t), SIG_OK, "resume within the window");
        ok(!strcmp(sig_member_id(b2.m), "b") && sig_member_conn(b2.m) == &b2, "same id, new connection");
        ok(b2.wakes >= 1, "new connection woken");
        ok(!strcmp(next(&b2, NULL), "pong"), "what the new connection had queued comes first");
        ok(!strcmp(next(&b2, &j), "resumed"), "then resumed");
        is_int(json_array_size(json_object_get(j, "peers")), 2, "resumed lists a and c2");
        json_decref(j);
        for (int i = 0; i < 5; i++) {
            if (!strcmp(next(&b2, &j), "signal") && json_integer_value(json_object_get(j, "data")) == 100 + i)
                inorder++;
            json_decref(j);
        }
        is_int(inorder, 5, "queued signals after resume, in order");
        ok(!strcmp(next(&b2, NULL), ""), "none twice");
    }
    /* resume while the old connection is still attached: takeover */
    {
        b3.m = sig_hub_connect(h, &b3);
        is_int(sig_hub_resume(h, &b3.m, "resume-b", t), SIG_OK, "resume takes over a live member");
        is_int(b2.detached, 1, "old connection told (and given a lobby member)");
        is_int(sig_member_get_state(b2.m), SIG_MEMBER_LOBBY, "old connection now in the lobby");
        sig_hub_disconnect(h, b2.m, true, t);
        ok(!strcmp(next(&b3, NULL), "resumed"), "new connection resumed");
    }

    /* window expiry in virtual time: peer-left after resume_us, token dead */
    drain(&a);
    sig_hub_tick(h, t); /* a deadline may be early (a resumed member), never late */
    is_int(sig_hub_next_deadline(h), UINT64_MAX, "nobody detached: no deadline");
    sig_hub_disconnect(h, b3.m, true, t);
    is_int(sig_hub_next_deadline(h), t + 30 * S, "a drop sets the deadline");
    is_int(sig_hub_tick(h, t + 29 * S), t + 30 * S, "next deadline is the window's end");
    ok(!strcmp(next(&a, NULL), ""), "nothing before the window ends");
    sig_hub_tick(h, t + 30 * S);
    ok(!strcmp(next(&a, &j), "peer-left") && !strcmp(json_string_value(json_object_get(j, "id")), "b"),
       "peer-left when the window ends");
    json_decref(j);
    {
        fconn x = {0};
        x.m = sig_hub_connect(h, &x);
        is_int(sig_hub_resume(h, &x.m, "resume-b", t + 31 * S), SIG_E_UNAUTHORIZED, "expired token");
        sig_hub_disconnect(h, x.m, true, t);
    }
    /* expired but not yet ticked: resume still refused */
    {
        fconn x = {0};
        drain(&c);
        sig_hub_disconnect(h, c.m, true, t);
        x.m = sig_hub_connect(h, &x);
        is_int(sig_hub_resume(h, &x.m, "resume-c2", t + 30 * S), SIG_E_UNAUTHORIZED,
               "window over even before tick runs");
        sig_hub_disconnect(h, x.m, true, t);
        sig_hub_tick(h, t + 30 * S);
    }

    /* slow reader: the queue is bounded; overflow marks the member and wakes
     * its connection once; memory stays bounded */
    {
        fconn s = {0};
        int refused = 0;
        s.m = sig_hub_connect(h, &s);
        join(h, &s, "r1", "s", t);
        drain(&a);
        s.wakes = 0;
        for (int i = 0; i < 50; i++)
            sig_hub_broadcast(h, a.m, data, t);
        ok(sig_member_overflowed(s.m), "slow reader overflowed");
        ok(sig_member_queued(s.m) <= lim.queue_msgs, "queue never beyond its bound");
        ok(s.wakes >= 1, "connection woken to be dropped");
        refused = sig_hub_send(h, s.m, "{}", t) == RTC_ELIMIT;
        ok(refused, "an overflowed member takes nothing more");
        /* it is not kept for resume: its queue is incomplete */
        sig_hub_disconnect(h, s.m, true, t);
        ok(!strcmp(next(&a, &j), "peer-left"), "overflowed member leaves at once");
        json_decref(j);
    }
    /* byte bound */
    {
        fconn s = {0};
        char big[1100];
        s.m = sig_hub_connect(h, &s);
        memset(big, 'x', sizeof big - 1);
        big[sizeof big - 1] = '\0';
        for (int i = 0; i < 4; i++)
            sig_hub_send(h, s.m, big, t);
        ok(sig_member_overflowed(s.m), "queue_bytes bound");
        sig_hub_disconnect(h, s.m, false, t);
    }
    /* SIGHUP-style limit change */
    {
        sig_limits l2 = lim;
        fconn x = {0};
        l2.max_rooms = 3;
        sig_hub_set_limits(h, &l2);
        x.m = sig_hub_connect(h, &x);
        is_int(join(h, &x, "r9", "x", t), SIG_OK, "raised max_rooms applies");
        sig_hub_disconnect(h, x.m, false, t);
    }
    /* resume off */
    {
        sig_limits l3 = lim;
        l3.resume_us = 0;
        sig_hub_set_limits(h, &l3);
        drain(&a);
        sig_hub_disconnect(h, d.m, true, t);
        sig_hub_get_stats(h, &st);
        is_int(st.detached, 0, "resume off: a dropped member leaves at once");
    }

    /* rate limiter */
    {
        sig_rate r;
        int passed = 0;
        sig_rate_init(&r, 10, 0);
        for (int i = 0; i < 30; i++)
            passed += sig_rate_take(&r, 10, 1000);
        is_int(passed, 10, "burst of one second's worth");
        ok(r.limited_since_us == 1000, "limited since the first refusal");
        passed = 0;
        for (uint64_t us = 0; us < 2 * S; us += 10000)
            passed += sig_rate_take(&r, 10, 1000 + us);
        ok(passed >= 19 && passed <= 21, "10/s sustained");
        ok(r.limited_since_us == 1000, "a flood keeps its abuse clock running");
        ok(sig_rate_take(&r, 10, 4 * S), "after a quiet second, allowed");
        ok(r.limited_since_us == 0, "abuse clock reset after a quiet second");
    }

    json_decref(data);
    sig_hub_disconnect(h, a.m, false, t);
    sig_hub_disconnect(h, e.m, false, t);
    sig_hub_free(h); /* c is still joined: free must clean up */
    remote_tests();
    handover_tests();
    hold_order_tests();
    reply_auth_tests();
    walk_tests();
    held_list_tests();
    resume_map_tests();
    return done_testing();
}
