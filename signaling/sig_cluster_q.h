/* sig_cluster_q.h - the two bounded queues between the lws service thread
 * and the Redis thread of cluster mode: commands (lws -> Redis, a wake-up
 * eventfd) and events (Redis -> lws, announced through the wake callback).
 * Neither grows past its bound: a full command queue refuses (the client
 * gets server-busy), a full event queue makes the Redis thread wait a while
 * (the lws thread is draining it) and then drop.
 *
 * Its own lock, `mu`, held only for a push or a pop; `wake_mu` guards only
 * the wake callback (sig_cq_mute). Nothing is called with either held but
 * the wake callback itself (it only pokes the lws loop). One producer per
 * queue: commands are put by the lws thread, events by the Redis thread. */
#ifndef SIG_CLUSTER_Q_H
#define SIG_CLUSTER_Q_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sig_cluster.h"

/* Embedded (first) in a command: the queue links it. */
typedef struct sig_cq_node {
    struct sig_cq_node *next;
} sig_cq_node;

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t space; /* events: the lws thread took one from a full queue */
    sig_cq_node *qhead, *qtail;
    size_t qn;
    sig_cq_node *hhead, *htail; /* held for after the reconnection (Redis thread) */
    _Atomic uint64_t resent;    /* held ones put back (stats) */
    sig_cev *ehead, *etail;
    size_t en;
    size_t max;          /* bound of each queue */
    uint64_t drops;      /* events dropped (full): stamped into each event */
    uint64_t received;   /* events queued */
    _Atomic int stop;    /* no more waiting for space */
    int wakefd;          /* eventfd: lws thread -> Redis thread */
    pthread_mutex_t wake_mu;
    void (*wake)(void *ud);
    void *ud;
} sig_cq;

/* 0, or -errno (eventfd). */
int sig_cq_init(sig_cq *q, size_t max, void (*wake)(void *ud), void *ud);
void sig_cq_dispose(sig_cq *q); /* empty it first (take, poll): the items are the caller's */

/* Commands. put: 0, or RTC_ELIMIT when full (force: never refused); the
 * Redis thread is woken when the queue was empty. */
int sig_cq_put(sig_cq *q, sig_cq_node *n, bool force);
bool sig_cq_full(sig_cq *q);
bool sig_cq_waiting(sig_cq *q); /* a command is queued */
/* The next command (if `want` says yes to it, when given), or NULL. */
sig_cq_node *sig_cq_take(sig_cq *q, bool (*want)(const sig_cq_node *n));
/* Redis thread: keep a command that was taken but not run for the next
 * connection (appended to those held); put everything held back at the
 * head of the queue, in the order held (a reconnection). */
void sig_cq_hold(sig_cq *q, sig_cq_node *n);
void sig_cq_unhold(sig_cq *q);
/* Redis thread: sleep up to ms or until woken; the eventfd for a poll of
 * its own, and what to do when it was readable (0, or -errno). */
void sig_cq_sleep(sig_cq *q, int ms);
int sig_cq_fd(const sig_cq *q);
int sig_cq_woken(sig_cq *q);

/* Events. push: 0, or RTC_ELIMIT when dropped (e is still the caller's, to
 * free; it re-synchronises). never_drop: for events a layer bounds itself. */
int sig_cq_push(sig_cq *q, sig_cev *e, bool never_drop);
sig_cev *sig_cq_poll(sig_cq *q);
void sig_cq_counts(sig_cq *q, uint64_t *received, uint64_t *dropped);

void sig_cq_mute(sig_cq *q); /* the wake callback is never called again */
void sig_cq_stop(sig_cq *q); /* stop waiting for space; wake the Redis thread */
void sig_cq_kick(sig_cq *q); /* wake the Redis thread (something else needs it) */

#endif
