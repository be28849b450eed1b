/* test_sig_idle.c - keepalive deadlines (sig_idle.h): ping at half the
 * timeout, hang-up at the timeout without an answer, any message or pong
 * re-arming, removal, the order kept over many connections, and the work per
 * check being the deadlines due (not the connections). */
#include <stdio.h>
#include <stdlib.h>

#include "sig_idle.h"
#include "tap.h"

#define S 1000000ull

static void one(void)
{
    sig_idle q;
    sig_idle_node a = {0}, *n;
    sig_idle_init(&q, 60 * S);
    sig_idle_touch(&q, &a, 0);
    is_int(sig_idle_next(&q, 29 * S, &n), SIG_IDLE_NONE, "nothing due before timeout/2");
    ok(n == NULL, "no node returned");
    is_int(sig_idle_next(&q, 30 * S, &n), SIG_IDLE_PING, "ping at timeout/2");
    ok(n == &a, "the silent one");
    is_int(sig_idle_next(&q, 30 * S, &n), SIG_IDLE_NONE, "pinged once, re-armed");
    is_int(sig_idle_next(&q, 59 * S, &n), SIG_IDLE_NONE, "no hang-up before the timeout");
    is_int(sig_idle_next(&q, 60 * S, &n), SIG_IDLE_HANGUP, "hang-up at the timeout");
    ok(n == &a && a.next == NULL && q.n == 0, "off the list");
    sig_idle_remove(&q, &a); /* no-op */
    is_int((int)q.n, 0, "remove of an unlisted node is a no-op");

    /* an answer (a pong or any message) re-arms from now, unmarked */
    sig_idle_touch(&q, &a, 100 * S);
    is_int(sig_idle_next(&q, 130 * S, &n), SIG_IDLE_PING, "ping");
    sig_idle_touch(&q, &a, 131 * S);
    is_int(sig_idle_next(&q, 160 * S, &n), SIG_IDLE_NONE, "pong re-armed: nothing at 160 s");
    is_int(sig_idle_next(&q, 161 * S, &n), SIG_IDLE_PING, "pinged again, not hung up");
    sig_idle_remove(&q, &a);
    is_int(sig_idle_next(&q, 1000 * S, &n), SIG_IDLE_NONE, "removed: never due");
}

static void many(void)
{
    enum { N = 50000 };
    sig_idle q;
    sig_idle_node *v = calloc(N, sizeof *v), *n;
    unsigned pings = 0, hups = 0, odd = 0, steps = 0;
    sig_idle_due d;
    sig_idle_init(&q, 60 * S);
    for (unsigned i = 0; i < N; i++)
        sig_idle_touch(&q, &v[i], (uint64_t)i * 100); /* one each 0.1 ms */
    /* odd ones talk at 20 s: they move behind the even ones */
    for (unsigned i = 1; i < N; i += 2)
        sig_idle_touch(&q, &v[i], 20 * S);
    is_int(sig_idle_next(&q, 29 * S, &n), SIG_IDLE_NONE, "none due at 29 s");
    /* at 30.025 s: the even ones of the first 25 ms, nothing else */
    while (sig_idle_next(&q, 30 * S + 25000, &n) == SIG_IDLE_PING && ++steps < N) {
        pings++;
        odd += (unsigned)((n - v) & 1);
    }
    is_int((int)pings, 126, "126 pings due at 30.025 s (0, 0.2, ..., 25 ms)");
    is_int((int)odd, 0, "none to a member that talked");
    /* just before 50 s: every even one pinged; no odd one (due at 50 s) */
    pings = 0;
    while (sig_idle_next(&q, 50 * S - 1, &n) == SIG_IDLE_PING && ++steps < 2 * N) {
        pings++;
        odd += (unsigned)((n - v) & 1);
    }
    is_int((int)pings, N / 2 - 126, "the other even ones by 50 s");
    is_int((int)odd, 0, "still none to a member that talked");
    is_int(sig_idle_next(&q, 50 * S, &n), SIG_IDLE_PING, "the odd ones at 50 s");
    ok(n == &v[1], "in the order they talked");
    /* at 80.049 s: the other odd ones pinged; the even ones (pinged at
     * 30.025 s and 49.999999 s) and v[1] (pinged at 50 s) hung up */
    pings = hups = 0;
    while ((d = sig_idle_next(&q, 80 * S + 49000, &n)) != SIG_IDLE_NONE && ++steps < 4 * N) {
        if (d == SIG_IDLE_PING)
            pings++;
        else
            hups++;
    }
    is_int((int)pings, N / 2 - 1, "odd ones pinged");
    is_int((int)hups, N / 2 + 1, "even ones and v[1] hung up");
    is_int((int)q.n, N / 2 - 1, "the odd ones wait, re-armed");
    free(v);
}

/* --keepalive-batch-ms: pings due within the window go together and early;
 * a hang-up waits for its own deadline, and holds back the pings behind it
 * till the next run; early pings re-arm from now (the list stays sorted). */
static void early(void)
{
    sig_idle q;
    sig_idle_node a = {0}, b = {0}, c = {0}, *n;
    sig_idle_init(&q, 10 * S); /* pings at 5 s of silence */
    sig_idle_touch(&q, &a, 0);
    sig_idle_touch(&q, &b, 200000);  /* due 5.2 s */
    sig_idle_touch(&q, &c, 900000);  /* due 5.9 s */
    is_int(sig_idle_next_early(&q, 4 * S, 500000, &n), SIG_IDLE_NONE, "nothing within 0.5 s at 4 s");
    is_int(sig_idle_next_early(&q, 4800000, 500000, &n), SIG_IDLE_PING, "a (due 5 s) at 4.8 s");
    ok(n == &a && a.due_us == 4800000 + 5 * S, "a pinged early, re-armed from now");
    is_int(sig_idle_next_early(&q, 4800000, 500000, &n), SIG_IDLE_PING, "b (due 5.2 s) too");
    ok(n == &b, "b");
    is_int(sig_idle_next_early(&q, 4800000, 500000, &n), SIG_IDLE_NONE, "c (due 5.9 s) not yet");
    /* c answers nothing, gets its ping at 5.9 s; a and b stay silent */
    is_int(sig_idle_next_early(&q, 5900000, 0, &n), SIG_IDLE_PING, "c at its deadline");
    ok(n == &c, "c");
    is_int(sig_idle_next_early(&q, 9700000, 500000, &n), SIG_IDLE_NONE,
           "a's hang-up (9.8 s) is not early, even within the window");
    is_int(sig_idle_next_early(&q, 9800000, 500000, &n), SIG_IDLE_HANGUP, "a hung up at 9.8 s");
    ok(n == &a && q.n == 2, "a off the list");
    sig_idle_touch(&q, &b, 9800000); /* b answers: due 14.8 s */
    is_int(sig_idle_next_early(&q, 10 * S, 5 * S, &n), SIG_IDLE_NONE,
           "c's pending hang-up (10.9 s) holds back b's early ping");
    is_int(sig_idle_next_early(&q, 10900000, 5 * S, &n), SIG_IDLE_HANGUP, "c hung up at 10.9 s");
    is_int(sig_idle_next_early(&q, 10900000, 5 * S, &n), SIG_IDLE_PING, "then b, early");
    ok(n == &b, "b");
    is_int(sig_idle_next(&q, 100 * S, &n), SIG_IDLE_HANGUP, "plain next: b's hang-up");
    is_int((int)q.n, 0, "empty");
}

int main(void)
{
    one();
    many();
    early();
    return done_testing();
}
