/* test_sig_seq.c - per-member sequence numbers (sig_room_seq.c, protocol.md
 * "seq") in virtual time, without a socket: who gets numbers, in which
 * order (also for messages parked behind a hand-over's tail), the hook that
 * writes the member stream, the text the client gets, and the numbers
 * travelling with a hand-over and going on after the client's "last". */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rtc_crypto.h"
#include "sig_room.h"
#include "tap.h"

typedef struct {
    sig_member *m;
} fconn;

static void wake(void *c, void *ud) { (void)c, (void)ud; }
static void detach(void *c, sig_member *lobby, void *ud) { (void)ud, ((fconn *)c)->m = lobby; }

static struct {
    int calls;
    uint64_t last_seq;
    char last_id[32], last_text[256];
} hk;

static void queued(void *ud, const char *id, uint64_t seq, const char *text, const char *x)
{
    (void)ud;
    (void)x;
    hk.calls++;
    hk.last_seq = seq;
    snprintf(hk.last_id, sizeof hk.last_id, "%s", id);
    snprintf(hk.last_text, sizeof hk.last_text, "%s", text);
}

static sig_code join(sig_hub *h, fconn *c, const char *id, bool numbered)
{
    char resume[64];
    json_t *ice = json_array();
    sig_join_params p = {.room = "r", .name = id, .id = id, .resume = resume, .ice_servers = ice};
    sig_code rc;
    snprintf(resume, sizeof resume, "resume-%s", id);
    sig_member_set_numbered(c->m, numbered);
    rc = sig_hub_join(h, c->m, &p, 1);
    json_decref(ice);
    return rc;
}

/* Pop the next message: its number, and what the client would get in out. */
static uint64_t pop(fconn *c, char *out, size_t cap)
{
    sig_buf *b = sig_member_peek(c->m);
    uint64_t seq = sig_member_peek_seq(c->m);
    if (!b) {
        out[0] = '\0';
        return UINT64_MAX;
    }
    if (!seq || !sig_seq_splice(b->text, b->len, seq, out, cap))
        snprintf(out, cap, "%s", b->text);
    sig_member_pop(c->m);
    return seq;
}

#define BOUND "tsunagu-ho|node2|7|r|id|hash"

int main(void)
{
    sig_limits lim = {.max_room_size = 8, .max_rooms = 4, .queue_msgs = 64, .queue_bytes = 65536,
                      .resume_us = 30000000ull};
    sig_hub_ops ops = {.wake = wake, .detach = detach, .headroom = 16};
    sig_hub *h = sig_hub_new(&lim, &ops), *h2 = sig_hub_new(&lim, &ops);
    fconn a = {0}, b = {0}, nb = {0};
    json_t *data = json_pack("{s:i}", "n", 1);
    char out[512], proof[2 * RTC_SHA256_LEN + 1], **texts = NULL, *name = NULL;
    uint8_t d[RTC_SHA256_LEN];
    size_t n = 0;
    uint64_t s;

    /* the splice: before the closing brace; "{}" and non-objects */
    ok(sig_seq_splice("{\"a\":1}", 7, 42, out, sizeof out) == 16 &&
           !strcmp(out, "{\"a\":1,\"seq\":42}"), "splice");
    ok(sig_seq_splice("{}", 2, 7, out, sizeof out) && !strcmp(out, "{\"seq\":7}"), "splice {}");
    ok(!sig_seq_splice("[1]", 3, 7, out, sizeof out), "splice: not an object");
    ok(!sig_seq_splice("{\"a\":1}", 7, 42, out, 10), "splice: too small");

    sig_hub_set_queued(h, queued, NULL);
    a.m = sig_hub_connect(h, &a);
    b.m = sig_hub_connect(h, &b);
    is_int(join(h, &a, "a", true), SIG_OK, "a joins numbered");
    ok(sig_member_numbered(a.m), "a numbered");
    is_int(join(h, &b, "b", false), SIG_OK, "b joins plain");
    s = pop(&a, out, sizeof out);
    ok(s == 0 && strstr(out, "\"joined\"") && !strstr(out, "seq"), "joined: no number");
    s = pop(&a, out, sizeof out);
    ok(s == 1 && strstr(out, "peer-joined") && strstr(out, ",\"seq\":1}"), "peer-joined: 1");
    ok(hk.calls == 1 && hk.last_seq == 1 && !strcmp(hk.last_id, "a") &&
           !strstr(hk.last_text, "seq"), "hook: a, 1, the text without the number");
    is_int(sig_hub_signal(h, b.m, "a", data, 2), SIG_OK, "b signals a");
    is_int(sig_hub_broadcast(h, b.m, data, 2), SIG_OK, "b broadcasts");
    ok(pop(&a, out, sizeof out) == 2 && strstr(out, "\"signal\""), "signal: 2");
    ok(pop(&a, out, sizeof out) == 3 && strstr(out, "\"broadcast\""), "broadcast: 3");
    is_int(hk.calls, 3, "hook called per numbered message");
    /* b asked for nothing: no numbers, no hook */
    is_int(sig_hub_signal(h, a.m, "b", data, 3), SIG_OK, "a signals b");
    pop(&b, out, sizeof out); /* joined */
    s = pop(&b, out, sizeof out);
    ok(s == 0 && strstr(out, "\"signal\"") && !strstr(out, "seq"), "b: plain signal");
    is_int(hk.calls, 3, "no hook for b");
    /* errors and pongs are not room traffic */
    is_int(sig_hub_send(h, a.m, "{\"type\":\"pong\"}", 3), 0, "a: pong queued");
    ok(pop(&a, out, sizeof out) == 0 && !strstr(out, "seq"), "pong: no number");

    /* a hand-over: the queue travels numbered */
    is_int(sig_hub_signal(h, b.m, "a", data, 4), SIG_OK, "b signals a (4)");
    is_int(sig_hub_signal(h, b.m, "a", data, 4), SIG_OK, "b signals a (5)");
    rtc_hmac_sha256("resume-a", 8, BOUND, strlen(BOUND), d);
    rtc_hex(d, sizeof d, proof);
    {
        sig_hand_over_req q = {.room = "r", .id = "a", .proof = proof, .bound = BOUND};
        is_int(sig_hub_hand_over(h, &q, &texts, &n, &name, 5), SIG_OK, "a handed over");
    }
    ok(n == 2 && strstr(texts[0], ",\"seq\":4}") && strstr(texts[1], ",\"seq\":5}"),
       "the queue travels with its numbers");
    /* the new node: the client said last = 3; numbers kept, then 6, 7 */
    hk.calls = 0;
    sig_hub_set_queued(h2, queued, NULL);
    nb.m = sig_hub_connect(h2, &nb);
    sig_member_number_from(nb.m, true, 3);
    {
        sig_remote none[1];
        sig_adopt_params p = {.room = "r", .id = "a", .name = "a", .resume = "resume-a",
                              .texts = (const char **)texts, .ntexts = n, .remotes = none};
        is_int(sig_hub_adopt(h2, nb.m, &p, 6), SIG_OK, "adopted");
    }
    ok(pop(&nb, out, sizeof out) == 0 && strstr(out, "resumed"), "resumed: no number");
    ok(pop(&nb, out, sizeof out) == 4 && strstr(out, "\"signal\"") &&
           !strstr(strstr(out, "seq") + 1, "seq"), "4 kept, once");
    ok(pop(&nb, out, sizeof out) == 5, "5 kept");
    is_int(hk.calls, 0, "handed-over messages not written again");
    sig_hub_remote_deliver(h2, "r", "a", "b", data, 7);
    ok(pop(&nb, out, sizeof out) == 6 && hk.calls == 1 && hk.last_seq == 6, "then 6, written");
    /* a text a client made look numbered is not taken for one (its data
     * ends the object) */
    {
        json_t *fake = json_pack("{s:i}", "seq", 99);
        sig_hub_remote_deliver(h2, "r", "a", "b", fake, 8);
        ok(pop(&nb, out, sizeof out) == 7 && strstr(out, "{\"seq\":99},\"seq\":7}"),
           "a seq inside data is data");
        json_decref(fake);
    }
    /* adopting a text that came without a number (an old node) whose data
     * looks like one: numbered here, the data left alone */
    {
        fconn nc = {0};
        const char *t1[] = {"{\"type\":\"signal\",\"from\":\"b\",\"data\":{\"x\":1,\"seq\":9}}"};
        sig_remote none[1];
        sig_adopt_params p = {.room = "r2", .id = "c", .name = "c", .resume = "resume-c",
                              .texts = t1, .ntexts = 1, .remotes = none};
        nc.m = sig_hub_connect(h2, &nc);
        sig_member_number_from(nc.m, true, 0);
        is_int(sig_hub_adopt(h2, nc.m, &p, 9), SIG_OK, "c adopted");
        pop(&nc, out, sizeof out); /* resumed */
        ok(pop(&nc, out, sizeof out) == 1 && strstr(out, "{\"x\":1,\"seq\":9},\"seq\":1}"),
           "adopt: a number inside data is not taken");
    }
    for (size_t i = 0; i < n; i++)
        free(texts[i]);
    free(texts);
    free(name);
    json_decref(data);
    sig_hub_free(h);
    sig_hub_free(h2);
    return done_testing();
}
