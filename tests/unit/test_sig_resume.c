/* test_sig_resume.c - the asking side of a resume across nodes as a pure
 * state machine (sig_resume.h), fed made-up event sequences in virtual time:
 * the normal path (ask, mark, keep, answer, adopt, tail, fence), answers
 * without a mark, lost events, overflow, and events in the wrong order or
 * twice, which must change nothing. No hub, no Redis, no socket. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "sig_resume.h"
#include "tap.h"

#define T0 1000000ull
#define WAIT 5000000ull

/* A room event: kind 's' signal (to), 'b' broadcast, 'j' join/leave. */
static sig_resume_event ev(char kind, const char *from, const char *to, const char *node,
                           bool own)
{
    sig_resume_event e = {.room = "room", .from = from, .to = to ? to : "", .node = node,
                          .broadcast = kind == 'b', .membership = kind == 'j', .own = own};
    return e;
}

static sig_resume asked(uint64_t serial)
{
    sig_resume r;
    sig_resume_init(&r, serial, T0 + WAIT);
    return r;
}

static void normal_path(void)
{
    sig_resume r = asked(7);
    sig_resume_event e;

    is_int(r.state, SIG_RESUME_ASKED, "starts asked");
    e = ev('s', "A", "B", "N2", false);
    is_int(sig_resume_classify(&r, &e), SIG_RESUME_IGNORE, "before the mark: the owner has it");
    ok(sig_resume_mark(&r, "room", "B", "O", 3), "mark taken");
    is_int(r.state, SIG_RESUME_MARKED, "marked");

    e = ev('s', "A", "B", "N2", false);
    is_int(sig_resume_classify(&r, &e), SIG_RESUME_KEEP, "a signal to B from another node: kept");
    sig_resume_keep(&r, "{\"type\":\"signal\"}", 10, 1000);
    e = ev('b', "A", NULL, "N2", false);
    is_int(sig_resume_classify(&r, &e), SIG_RESUME_KEEP, "a broadcast: kept");
    sig_resume_keep(&r, "{\"type\":\"broadcast\"}", 10, 1000);
    e = ev('j', "C", NULL, "N2", false);
    is_int(sig_resume_classify(&r, &e), SIG_RESUME_KEEP, "a peer joined: kept");
    sig_resume_keep(&r, "{\"type\":\"peer-joined\"}", 10, 1000);
    e = ev('s', "A", "B", "O", false);
    is_int(sig_resume_classify(&r, &e), SIG_RESUME_IGNORE, "published by the owner: in its queue");
    e = ev('s', "A", "C", "N2", false);
    is_int(sig_resume_classify(&r, &e), SIG_RESUME_IGNORE, "a signal to someone else: not kept");
    e = ev('b', "B", NULL, "N2", false);
    is_int(sig_resume_classify(&r, &e), SIG_RESUME_IGNORE, "the member's own broadcast: not kept");
    e = ev('s', "A", "B", "N2", false);
    e.room = "other";
    is_int(sig_resume_classify(&r, &e), SIG_RESUME_IGNORE, "another room: not kept");
    is_int(r.nbuf, 3, "three kept");
    ok(!strcmp(r.buf[0], "{\"type\":\"signal\"}") && !strcmp(r.buf[2], "{\"type\":\"peer-joined\"}"),
       "kept in arrival order");

    is_int(sig_resume_done(&r, true, 3), SIG_RESUME_ADOPT, "answer with nothing lost: adopt");
    sig_resume_adopted(&r, true, T0 + 10);
    is_int(r.state, SIG_RESUME_TAIL, "adopted: the tail");
    is_int(r.nbuf, 0, "kept messages went into the member's queue");
    ok(r.deadline_us == T0 + 10 + SIG_RESUME_TAIL_US, "the tail has its own deadline");

    e = ev('s', "A", "B", "N1", true);
    is_int(sig_resume_classify(&r, &e), SIG_RESUME_PASS_ON, "tail: our own signal to B passes on");
    sig_resume_passed(&r);
    e = ev('b', "A", NULL, "N1", true);
    is_int(sig_resume_classify(&r, &e), SIG_RESUME_PASS_ON, "tail: our own broadcast passes on");
    sig_resume_passed(&r);
    e = ev('s', "A", "B", "N2", false);
    is_int(sig_resume_classify(&r, &e), SIG_RESUME_IGNORE, "tail: others' messages come live");
    e = ev('j', "C", NULL, "N1", true);
    is_int(sig_resume_classify(&r, &e), SIG_RESUME_IGNORE, "tail: the hub tells joins itself");
    e = ev('s', "A", "C", "N1", true);
    is_int(sig_resume_classify(&r, &e), SIG_RESUME_IGNORE, "tail: our own signal to C is C's");
    is_int(r.ntail, 2, "two passed on through the tail");

    ok(sig_resume_fence(&r), "fence ends the tail");
    is_int(r.state, SIG_RESUME_DONE, "done");
    ok(!sig_resume_fence(&r), "a second fence changes nothing");
    is_int(sig_resume_expire(&r, T0 + 100 * WAIT), SIG_RESUME_NOT_YET, "done never expires");
    sig_resume_dispose(&r);
}

static void wrong_order_and_duplicates(void)
{
    sig_resume r = asked(1);
    sig_resume_event e;

    ok(!sig_resume_fence(&r), "fence before the answer: ignored");
    is_int(r.state, SIG_RESUME_ASKED, "still asked");
    sig_resume_adopted(&r, true, T0);
    is_int(r.state, SIG_RESUME_ASKED, "adopted before the answer: ignored");
    sig_resume_keep(&r, "x", 10, 1000);
    is_int(r.nbuf, 0, "keep before the mark: ignored");

    ok(sig_resume_mark(&r, "room", "B", "O", 0), "mark");
    ok(!sig_resume_mark(&r, "room", "X", "Q", 5), "duplicate mark: refused");
    ok(!strcmp(r.id, "B") && !strcmp(r.owner, "O") && r.mark_drops == 0,
       "duplicate mark changed nothing");

    is_int(sig_resume_done(&r, true, 0), SIG_RESUME_ADOPT, "answer");
    sig_resume_adopted(&r, true, T0);
    is_int(sig_resume_done(&r, true, 0), SIG_RESUME_STRAY, "a second answer: stray");
    is_int(sig_resume_done(&r, false, 0), SIG_RESUME_STRAY, "a late refusal: stray");
    is_int(r.state, SIG_RESUME_TAIL, "still in the tail");
    ok(!sig_resume_mark(&r, "room", "B", "O", 0), "a mark in the tail: refused");
    e = ev('s', "A", "B", "N2", false);
    sig_resume_keep(&r, "x", 10, 1000);
    is_int(r.nbuf, 0, "keep in the tail: ignored");
    (void)e;
    sig_resume_dispose(&r);

    r = asked(2);
    is_int(sig_resume_done(&r, true, 0), SIG_RESUME_INCOMPLETE,
           "answer without a mark: nothing between request and answer was kept");
    is_int(r.state, SIG_RESUME_DONE, "done");
    ok(r.overflow, "marked incomplete");
    is_int(sig_resume_done(&r, true, 0), SIG_RESUME_STRAY, "answered twice: stray");
    sig_resume_dispose(&r);
}

static void losses_and_failures(void)
{
    sig_resume r = asked(3);
    sig_resume_event e;

    sig_resume_mark(&r, "room", "B", "O", 4);
    is_int(sig_resume_done(&r, true, 5), SIG_RESUME_INCOMPLETE,
           "an event dropped between mark and answer: incomplete");
    sig_resume_dispose(&r);

    r = asked(4);
    sig_resume_mark(&r, "room", "B", "O", 0);
    sig_resume_keep(&r, "one", 2, 1000);
    sig_resume_keep(&r, "two", 2, 1000);
    ok(!r.overflow, "two messages fit a two-message queue");
    sig_resume_keep(&r, "three", 2, 1000);
    ok(r.overflow, "the third overflows");
    e = ev('s', "A", "B", "N2", false);
    is_int(sig_resume_classify(&r, &e), SIG_RESUME_IGNORE, "after an overflow nothing is kept");
    is_int(sig_resume_done(&r, true, 0), SIG_RESUME_INCOMPLETE, "overflow: incomplete");
    sig_resume_dispose(&r);

    r = asked(5);
    sig_resume_mark(&r, "room", "B", "O", 0);
    sig_resume_keep(&r, "12345", 10, 8);
    sig_resume_keep(&r, "12345", 10, 8);
    ok(r.overflow, "byte bound");
    sig_resume_dispose(&r);

    r = asked(6);
    sig_resume_mark(&r, "room", "B", "O", 0);
    sig_resume_keep(&r, NULL, 10, 1000);
    ok(r.overflow, "a message that could not be rendered: incomplete");
    sig_resume_dispose(&r);

    r = asked(7);
    sig_resume_mark(&r, "room", "B", "O", 0);
    is_int(sig_resume_done(&r, false, 0), SIG_RESUME_FAILED, "refused");
    is_int(r.state, SIG_RESUME_DONE, "done");
    sig_resume_dispose(&r);

    r = asked(8);
    sig_resume_mark(&r, "room", "B", "O", 0);
    is_int(sig_resume_done(&r, true, 0), SIG_RESUME_ADOPT, "answer");
    sig_resume_keep(&r, "kept", 10, 1000);
    sig_resume_adopted(&r, false, T0);
    is_int(r.state, SIG_RESUME_DONE, "the hub did not take it: done");
    is_int(r.nbuf, 0, "and nothing kept");
    sig_resume_dispose(&r);
}

static void expiry(void)
{
    sig_resume r = asked(9);
    is_int(sig_resume_expire(&r, T0 + WAIT - 1), SIG_RESUME_NOT_YET, "before the deadline");
    is_int(sig_resume_expire(&r, T0 + WAIT), SIG_RESUME_GIVE_UP, "no answer: give up");
    is_int(sig_resume_expire(&r, T0 + 2 * WAIT), SIG_RESUME_NOT_YET, "given up once");
    is_int(sig_resume_done(&r, true, 0), SIG_RESUME_STRAY, "an answer after giving up: stray");
    sig_resume_dispose(&r);

    r = asked(10);
    sig_resume_mark(&r, "room", "B", "O", 0);
    is_int(sig_resume_expire(&r, T0 + WAIT), SIG_RESUME_GIVE_UP, "marked, no answer: give up");
    sig_resume_dispose(&r);

    r = asked(11);
    sig_resume_mark(&r, "room", "B", "O", 0);
    sig_resume_done(&r, true, 0);
    sig_resume_adopted(&r, true, T0);
    is_int(sig_resume_expire(&r, T0 + WAIT), SIG_RESUME_NOT_YET, "the tail has its own deadline");
    is_int(sig_resume_expire(&r, T0 + SIG_RESUME_TAIL_US), SIG_RESUME_RELEASE,
           "no fence: release what waits");
    ok(!sig_resume_fence(&r), "a fence after that: ignored");
    sig_resume_dispose(&r);
}

int main(void)
{
    normal_path();
    wrong_order_and_duplicates();
    losses_and_failures();
    expiry();
    return done_testing();
}
