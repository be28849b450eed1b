/* sig_idle.c - keepalive deadlines in one FIFO (see sig_idle.h). */
#include "sig_idle.h"

#include <stddef.h>

void sig_idle_init(sig_idle *q, uint64_t timeout_us)
{
    q->head.prev = q->head.next = &q->head;
    q->half_us = timeout_us / 2;
    q->n = 0;
}

void sig_idle_set_timeout(sig_idle *q, uint64_t timeout_us) { q->half_us = timeout_us / 2; }

void sig_idle_remove(sig_idle *q, sig_idle_node *n)
{
    if (!n->next)
        return;
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->prev = n->next = NULL;
    q->n--;
}

static void append(sig_idle *q, sig_idle_node *n, uint64_t due_us)
{
    sig_idle_remove(q, n);
    n->due_us = due_us;
    n->prev = q->head.prev;
    n->next = &q->head;
    q->head.prev->next = n;
    q->head.prev = n;
    q->n++;
}

void sig_idle_touch(sig_idle *q, sig_idle_node *n, uint64_t now_us)
{
    n->pinged = false;
    append(q, n, now_us + q->half_us);
}

sig_idle_due sig_idle_next(sig_idle *q, uint64_t now_us, sig_idle_node **out)
{
    return sig_idle_next_early(q, now_us, 0, out);
}

sig_idle_due sig_idle_next_early(sig_idle *q, uint64_t now_us, uint64_t early_us,
                                 sig_idle_node **out)
{
    sig_idle_node *n = q->head.next;
    *out = NULL;
    /* a ping may go early, a hang-up never: it waits for its own deadline
     * (and so do the pings behind it, till the next run) */
    if (n == &q->head || n->due_us > now_us + early_us || (n->pinged && n->due_us > now_us))
        return SIG_IDLE_NONE;
    *out = n;
    if (n->pinged) {
        sig_idle_remove(q, n);
        return SIG_IDLE_HANGUP;
    }
    n->pinged = true;
    append(q, n, now_us + q->half_us); /* (from now, not the deadline: the list stays sorted) */
    return SIG_IDLE_PING;
}
