/* rly_worker_takeover.c - a worker's side of a live takeover
 * (rly_takeover.h): describe its listening sockets and UDP allocations for
 * the new process, forget them once it has them, and, in the new process,
 * adopt them. The main thread calls these only while the worker is parked
 * (or before it runs). TCP/TLS connections never move: the old process
 * drains them. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "rly_ports.h"
#include "rly_worker_int.h"
#include "rtc_err.h"

/* The loop reads every socket until EAGAIN (accept4 loops, recvmmsg
 * batches): a blocking one would hang the worker. The old process made
 * them non-blocking, but the flag belongs to the shared file description
 * and costs one call to make sure of. Returns fd. */
static int nonblocking(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0 && !(fl & O_NONBLOCK))
        fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    return fd;
}

/* A descriptor handed over by the old process, now the worker's: -1 when
 * the index names none (the blob parser checked the range). */
int rly_worker_adopt_fd(const rly_worker_params *p, uint32_t idx)
{
    int fd;
    if (idx == RLY_TO_NONE)
        return -1;
    fd = p->adopt_fds[idx];
    p->adopt_fds[idx] = -1;
    return nonblocking(fd);
}


int rly_worker_export(rly_worker *w, rly_to_worker *tw, rly_to_fds *fds)
{
    uint32_t it = 0, n = 0, k = 0;
    rly_alloc *a;
    int idx;

    for (size_t i = 0; i < w->n_listen; i++) {
        if ((idx = rly_to_fds_push(fds, w->udp_fd[i])) < 0)
            return idx;
        tw->udp[i] = (uint32_t)idx;
        if ((idx = rly_to_fds_push(fds, w->tcp_fd[i])) < 0)
            return idx;
        tw->tcp[i] = (uint32_t)idx;
    }
    for (size_t i = 0; i < w->n_tls; i++) {
        if ((idx = rly_to_fds_push(fds, w->tls_fd[i])) < 0)
            return idx;
        tw->tls[i] = (uint32_t)idx;
    }
    while ((a = rly_table_next(w->turn.table, &it)))
        n += a->tuple.proto == RLY_UDP;
    tw->n_allocs = 0;
    if (!n)
        return 0;
    /* pointers, not copies: the worker is paused, its table stays put */
    tw->src = calloc(n, sizeof *tw->src);
    tw->src_fd = calloc(2 * (size_t)n, sizeof *tw->src_fd);
    if (!tw->src || !tw->src_fd)
        return -ENOMEM;
    it = 0;
    while ((a = rly_table_next(w->turn.table, &it)) && k < n) {
        if (a->tuple.proto != RLY_UDP)
            continue;
        tw->src[k] = a;
        if ((idx = rly_to_fds_push(fds, a->relay_fd)) < 0)
            return idx;
        tw->src_fd[2 * k] = idx;
        tw->src_fd[2 * k + 1] = -1;
        if (a->relay_fd2 >= 0) {
            if ((idx = rly_to_fds_push(fds, a->relay_fd2)) < 0)
                return idx;
            tw->src_fd[2 * k + 1] = idx;
        }
        k++;
    }
    tw->n_allocs = k;
    return 0;
}

size_t rly_worker_handed_over(rly_worker *w)
{
    uint32_t it = 0;
    size_t moved = 0;
    rly_alloc *a;

    /* epoll forgets a descriptor only when its socket is closed, and the
     * new process keeps every one of these open: remove them explicitly */
    while ((a = rly_table_next(w->turn.table, &it))) {
        if (a->tuple.proto != RLY_UDP)
            continue;
        if (a->relay_fd >= 0)
            rly_udp_relay_close(w, a->relay_fd, &a->relayed);
        if (a->relay_fd2 >= 0)
            rly_udp_relay_close(w, a->relay_fd2, &a->relayed2);
        rly_quota_give(w->turn.quota, rly_quota_key(a->user, a->rest));
        rly_table_remove(w->turn.table, a);
        moved++;
    }
    for (size_t i = 0; i < w->n_listen; i++) {
        epoll_ctl(w->ep, EPOLL_CTL_DEL, w->udp_fd[i], NULL);
        epoll_ctl(w->ep, EPOLL_CTL_DEL, w->tcp_fd[i], NULL);
        close(w->udp_fd[i]);
        close(w->tcp_fd[i]);
        w->udp_fd[i] = w->tcp_fd[i] = -1;
    }
    for (size_t i = 0; i < w->n_tls; i++) {
        epoll_ctl(w->ep, EPOLL_CTL_DEL, w->tls_fd[i], NULL);
        close(w->tls_fd[i]);
        w->tls_fd[i] = -1;
    }
    rly_worker_start_drain(w);
    atomic_store(&w->n_allocs_pub, rly_table_count(w->turn.table));
    return moved;
}

int rly_worker_adopt(rly_worker *w, const rly_to_worker *tw, int *fds, uint64_t now_ms,
                     char *err, size_t errlen)
{
    for (uint32_t k = 0; k < tw->n_allocs; k++) {
        const rly_alloc *src = &tw->allocs[k];
        const char *qk = rly_quota_key(src->user, src->rest);
        uint32_t id, hnext, serial;
        rly_alloc *a;
        int rc;

        if (src->tuple.listener >= w->n_listen) {
            snprintf(err, errlen, "takeover: allocation on unknown listener %u",
                     src->tuple.listener);
            return RTC_EMSG;
        }
        if (rly_table_find(w->turn.table, &src->tuple)) {
            snprintf(err, errlen, "takeover: two allocations on one 5-tuple");
            return RTC_EMSG;
        }
        /* counted whatever the limits: these allocations exist already */
        if (rly_quota_take(w->turn.quota, qk, UINT64_MAX, UINT64_MAX)) {
            snprintf(err, errlen, "takeover: out of memory");
            return RTC_EMSG;
        }
        if (!(a = rly_table_add(w->turn.table, &src->tuple, src->user))) {
            rly_quota_give(w->turn.quota, qk);
            snprintf(err, errlen, "takeover: out of memory");
            return RTC_EMSG;
        }
        id = a->id;
        hnext = a->hnext;
        serial = a->serial;
        *a = *src;
        a->id = id;
        a->hnext = hnext;
        /* a public id of this process; the traffic figures and the quality
         * state (rly_rtpq) are not in the blob: they start afresh here */
        a->serial = serial;
        a->created_ms = now_ms;
        a->conn = -1;
        /* descriptors: from now on the allocation's (closed with it) */
        a->relay_fd = nonblocking(fds[src->relay_fd]);
        fds[src->relay_fd] = -1;
        a->relay_fd2 = -1;
        if (src->relay_fd2 >= 0) {
            a->relay_fd2 = nonblocking(fds[src->relay_fd2]);
            fds[src->relay_fd2] = -1;
        }
        rly_ports_claim(w->ports, &a->relayed);
        if ((rc = rly_udp_relay_attach(w, a->relay_fd, a->id)) ||
            (a->relay_fd2 >= 0 && (rc = rly_udp_relay_attach(w, a->relay_fd2, a->id)))) {
            snprintf(err, errlen, "takeover: cannot watch a relayed socket: %s", strerror(-rc));
            return RTC_EMSG;
        }
        if (a->relay_fd2 >= 0)
            rly_ports_claim(w->ports, &a->relayed2);
    }
    atomic_store(&w->n_allocs_pub, rly_table_count(w->turn.table));
    return 0;
}

