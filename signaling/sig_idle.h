/* sig_idle.h - WebSocket keepalive deadlines in O(1) per event (issue 16
 * item 4). Every connection waits in one list ordered by deadline: hearing
 * from a peer moves it to the tail with deadline now + timeout/2; when the
 * deadline passes it gets a ping and goes to the tail again, marked; a marked
 * one whose deadline passes is closed. All deadlines are now plus the same
 * half-timeout, so appending keeps the list sorted and the tick only ever
 * looks at the head (after a SIGHUP changes the timeout, entries armed
 * before it keep their old deadline and may sit behind later ones for one
 * timeout: harmless). Replaces libwebsockets' own validity timers, whose
 * sorted-list insert walks every connection (lws 4.1 lws_sul), twice per
 * connection and ping round.
 *
 * Pure: no I/O and no clock; the caller passes now_us. One owner: the lws
 * service thread (sig_ws.c). */
#ifndef SIG_IDLE_H
#define SIG_IDLE_H

#include <stdbool.h>
#include <stdint.h>

typedef struct sig_idle_node {
    struct sig_idle_node *prev, *next; /* NULL when not on the list */
    uint64_t due_us;
    bool pinged; /* a ping went out at the last deadline; the next one closes */
} sig_idle_node;

typedef struct {
    sig_idle_node head; /* sentinel: head.next is the earliest deadline */
    uint64_t half_us;
    uint64_t n;
} sig_idle;

void sig_idle_init(sig_idle *q, uint64_t timeout_us);
void sig_idle_set_timeout(sig_idle *q, uint64_t timeout_us); /* SIGHUP */
/* heard from the peer (or it just connected): deadline now + timeout/2 */
void sig_idle_touch(sig_idle *q, sig_idle_node *n, uint64_t now_us);
void sig_idle_remove(sig_idle *q, sig_idle_node *n); /* not on the list: no-op */

typedef enum { SIG_IDLE_NONE, SIG_IDLE_PING, SIG_IDLE_HANGUP } sig_idle_due;
/* The earliest node whose deadline passed (NULL and SIG_IDLE_NONE if none).
 * PING: the node was re-armed (marked, at the tail): send it a ping.
 * HANGUP: the node was taken off the list: close its connection. */
sig_idle_due sig_idle_next(sig_idle *q, uint64_t now_us, sig_idle_node **out);
/* The same, but a ping due within early_us from now goes now (keepalive in
 * rounds: --keepalive-batch-ms). A HANGUP still waits for its deadline. An
 * early ping re-arms from now, so a peer that never answers is closed up
 * to early_us before the full timeout. */
sig_idle_due sig_idle_next_early(sig_idle *q, uint64_t now_us, uint64_t early_us,
                                 sig_idle_node **out);

#endif
