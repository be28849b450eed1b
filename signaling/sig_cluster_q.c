/* sig_cluster_q.c - the queues between the lws and the Redis thread (see
 * sig_cluster_q.h). */
#include "sig_cluster_q.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "rtc_err.h"

#define EVENT_WAIT_MS 1000 /* a full event queue blocks the Redis thread this long, then drops */

int sig_cq_init(sig_cq *q, size_t max, void (*wake)(void *ud), void *ud)
{
    memset(q, 0, sizeof *q);
    q->max = max;
    q->wake = wake;
    q->ud = ud;
    if ((q->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0)
        return -errno;
    pthread_mutex_init(&q->mu, NULL);
    pthread_mutex_init(&q->wake_mu, NULL);
    pthread_cond_init(&q->space, NULL);
    return 0;
}

void sig_cq_dispose(sig_cq *q)
{
    if (q->wakefd < 0)
        return;
    close(q->wakefd);
    q->wakefd = -1;
    pthread_cond_destroy(&q->space);
    pthread_mutex_destroy(&q->wake_mu);
    pthread_mutex_destroy(&q->mu);
}

static void poke(int fd)
{
    uint64_t one = 1;
    ssize_t n = write(fd, &one, sizeof one);
    (void)n; /* EAGAIN: the counter is already non-zero, the thread wakes anyway */
}

/* ---- commands ---- */

int sig_cq_put(sig_cq *q, sig_cq_node *n, bool force)
{
    bool was_empty;
    pthread_mutex_lock(&q->mu);
    if (!force && q->qn >= q->max) {
        pthread_mutex_unlock(&q->mu);
        return RTC_ELIMIT;
    }
    n->next = NULL;
    was_empty = !q->qhead;
    if (q->qtail)
        q->qtail->next = n;
    else
        q->qhead = n;
    q->qtail = n;
    q->qn++;
    pthread_mutex_unlock(&q->mu);
    if (was_empty)
        poke(q->wakefd);
    return 0;
}

bool sig_cq_full(sig_cq *q)
{
    bool full;
    pthread_mutex_lock(&q->mu);
    full = q->qn >= q->max;
    pthread_mutex_unlock(&q->mu);
    return full;
}

bool sig_cq_waiting(sig_cq *q)
{
    bool any;
    pthread_mutex_lock(&q->mu);
    any = q->qhead != NULL;
    pthread_mutex_unlock(&q->mu);
    return any;
}

sig_cq_node *sig_cq_take(sig_cq *q, bool (*want)(const sig_cq_node *n))
{
    sig_cq_node *n;
    pthread_mutex_lock(&q->mu);
    if ((n = q->qhead) && (!want || want(n))) {
        q->qhead = n->next;
        if (!q->qhead)
            q->qtail = NULL;
        q->qn--;
    } else {
        n = NULL;
    }
    pthread_mutex_unlock(&q->mu);
    return n;
}

void sig_cq_hold(sig_cq *q, sig_cq_node *n)
{
    n->next = NULL;
    if (q->htail)
        q->htail->next = n;
    else
        q->hhead = n;
    q->htail = n;
}

void sig_cq_unhold(sig_cq *q)
{
    size_t n = 0;
    if (!q->hhead)
        return;
    for (sig_cq_node *k = q->hhead; k; k = k->next)
        n++;
    pthread_mutex_lock(&q->mu);
    q->htail->next = q->qhead;
    if (!q->qhead)
        q->qtail = q->htail;
    q->qhead = q->hhead;
    q->qn += n;
    pthread_mutex_unlock(&q->mu);
    atomic_fetch_add(&q->resent, n);
    q->hhead = q->htail = NULL;
}

void sig_cq_sleep(sig_cq *q, int ms)
{
    struct pollfd p = {.fd = q->wakefd, .events = POLLIN};
    uint64_t v;
    if (poll(&p, 1, ms) > 0 && read(q->wakefd, &v, sizeof v) < 0)
        return;
}

int sig_cq_fd(const sig_cq *q) { return q->wakefd; }

int sig_cq_woken(sig_cq *q)
{
    uint64_t v;
    return read(q->wakefd, &v, sizeof v) < 0 && errno != EAGAIN ? -errno : 0;
}

/* ---- events ---- */

int sig_cq_push(sig_cq *q, sig_cev *e, bool never_drop)
{
    bool was_empty;
    pthread_mutex_lock(&q->mu);
    if (q->en >= q->max && !never_drop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += EVENT_WAIT_MS / 1000;
        while (q->en >= q->max && !atomic_load(&q->stop))
            if (pthread_cond_timedwait(&q->space, &q->mu, &ts))
                break;
    }
    if (q->en >= q->max && !never_drop) {
        q->drops++;
        pthread_mutex_unlock(&q->mu);
        return RTC_ELIMIT;
    }
    e->next = NULL;
    e->drops = q->drops;
    was_empty = !q->ehead;
    if (q->etail)
        q->etail->next = e;
    else
        q->ehead = e;
    q->etail = e;
    q->en++;
    q->received++;
    pthread_mutex_unlock(&q->mu);
    if (was_empty) {
        pthread_mutex_lock(&q->wake_mu);
        if (q->wake)
            q->wake(q->ud);
        pthread_mutex_unlock(&q->wake_mu);
    }
    return 0;
}

sig_cev *sig_cq_poll(sig_cq *q)
{
    sig_cev *e;
    pthread_mutex_lock(&q->mu);
    if ((e = q->ehead)) {
        q->ehead = e->next;
        if (!q->ehead)
            q->etail = NULL;
        if (q->en-- == q->max)
            pthread_cond_signal(&q->space);
    }
    pthread_mutex_unlock(&q->mu);
    return e;
}

void sig_cq_counts(sig_cq *q, uint64_t *received, uint64_t *dropped)
{
    pthread_mutex_lock(&q->mu);
    *received = q->received;
    *dropped = q->drops;
    pthread_mutex_unlock(&q->mu);
}

void sig_cq_mute(sig_cq *q)
{
    pthread_mutex_lock(&q->wake_mu);
    q->wake = NULL;
    pthread_mutex_unlock(&q->wake_mu);
}

void sig_cq_stop(sig_cq *q)
{
    atomic_store(&q->stop, 1);
    pthread_mutex_lock(&q->mu);
    pthread_cond_broadcast(&q->space);
    pthread_mutex_unlock(&q->mu);
    poke(q->wakefd);
}

void sig_cq_kick(sig_cq *q) { poke(q->wakefd); }
