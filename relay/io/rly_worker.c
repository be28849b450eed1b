/* rly_worker.c - the epoll loop of one worker (see rly_worker.h; its
 * parts are listed in rly_worker_int.h).
 *
 * epoll data carries a tag and an index: listener number, connection slot
 * or allocation id, so each event finds its object in O(1) without
 * pointers that a takeover would have to translate. The clocks are read
 * once per loop iteration. At the end of each iteration what the batch
 * relayed is sent (rly_udp_recycle), streams with input left over get their
 * turn and deferred stream closes happen. */
#include "rly_worker.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <stdatomic.h>

#include "rly_iplimit.h"
#include "rly_ports.h"
#include "rly_udp_path.h"
#include "rly_worker_int.h"
#include "rtc_clock.h"
#include "rtc_err.h"
#include "rtc_log.h"

/* ---- socket helpers ---- */

/* SO_REUSEPORT would let this process share a port with another relay
 * started by the same user; the first worker first binds a plain socket to
 * make sure nobody holds the port. 0 or -errno. */
static int probe_free(const rtc_addr *a, int type)
{
    struct sockaddr_storage ss;
    socklen_t sl = rtc_addr_to_sockaddr(a, &ss);
    int one = 1, rc = 0, fd = socket(a->family, type | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (type == SOCK_STREAM) /* TIME_WAIT only; on UDP it would share the port */
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (a->family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&ss, sl) || (type == SOCK_STREAM && listen(fd, 1)))
        rc = -errno;
    close(fd);
    return rc;
}

enum { LS_PLAIN = 0, LS_REUSEPORT = 1, LS_PROBE = 2 };

static int listen_socket(const rtc_addr *a, int type, int mode, char *err, size_t errlen,
                         const char *what)
{
    struct sockaddr_storage ss;
    socklen_t sl = rtc_addr_to_sockaddr(a, &ss);
    char as[RTC_ADDR_STRLEN];
    int one = 1, fd;

    rtc_addr_format(a, true, as);
    if ((mode & LS_PROBE) && a->port && (errno = -probe_free(a, type)) != 0)
        goto out_err;
    fd = socket(a->family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        goto out_err;
    if (type == SOCK_STREAM) /* TIME_WAIT only; on UDP it would share the port */
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (mode & LS_REUSEPORT)
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (a->family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&ss, sl) || (type == SOCK_STREAM && listen(fd, 1024)))
        goto out_close;
    if (type == SOCK_DGRAM) {
        int sz = UDP_SOCKBUF, got = 0;
        socklen_t gl = sizeof got;
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
        /* The kernel caps the request at net.core.rmem_max (212992 on a
         * stock Debian) without an error, and a burst then overflows the
         * listener: say so once per socket, at start-up. Linux reports
         * twice what it granted. */
        if (getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &got, &gl) == 0 && got / 2 < sz)
            RTC_LOG(RTC_LOG_WARN, NULL,
                    "%s %s: UDP receive buffer capped at %d KiB by net.core.rmem_max; "
                    "raise it to %d (conf/sysctl.d/90-tsunagu.conf)",
                    what, as, got / 2 / 1024, sz);
    }
    return fd;
out_close:
    close(fd);
out_err:
    snprintf(err, errlen, "%s: cannot listen on %s (%s): %s", what, as,
             type == SOCK_DGRAM ? "udp" : "tcp", strerror(errno));
    return -1;
}

/* ---- the main thread's mailbox ---- */

static void wake(rly_worker *w);

/* The admin API's question (rly_worker_post_query): release one allocation
 * if asked, list the rest as JSON, publish, and tell the asker. */
static void answer_query(rly_worker *w)
{
    uint32_t gen = atomic_load(&w->q_req), rel = atomic_load(&w->q_rel);
    uint64_t one = 1;
    int fd = atomic_load(&w->q_notify);
    bool found = rel && rly_turn_release_serial(&w->turn, rel, "admin API");

    if (found)
        atomic_store(&w->n_allocs_pub, rly_table_count(w->turn.table));
    w->q_out.len = 0;
    w->q_out.oom = false;
    rly_turn_list_json(&w->turn, &w->q_out, w->now_ms);
    atomic_store(&w->q_released, found);
    atomic_store_explicit(&w->q_done, gen, memory_order_release);
    if (fd >= 0 && write(fd, &one, sizeof one) < 0) {
        /* EAGAIN: the counter is full, the asker is being woken anyway */
    }
}

void rly_worker_post_query(rly_worker *w, uint32_t gen, uint32_t rel, int notify_fd)
{
    atomic_store(&w->q_rel, rel);
    atomic_store(&w->q_notify, notify_fd);
    atomic_store_explicit(&w->q_req, gen, memory_order_release);
    wake(w);
}

const rtc_buf *rly_worker_query_result(const rly_worker *w, uint32_t gen, bool *released)
{
    if (atomic_load_explicit(&w->q_done, memory_order_acquire) != gen)
        return NULL;
    *released = atomic_load(&w->q_released);
    return &w->q_out;
}

static void ctrl_event(rly_worker *w)
{
    uint64_t v;
    const rly_cfg *cfg;
    rly_tls *tls;

    if (read(w->ctrl_fd, &v, sizeof v) < 0 && errno != EAGAIN)
        return;
    cfg = atomic_exchange(&w->post_cfg, NULL);
    tls = atomic_exchange(&w->post_tls, NULL);
    if (cfg)
        w->turn.cfg = cfg;
    if (tls)
        w->tls = tls;
    if (atomic_exchange(&w->post_drain, false))
        rly_worker_start_drain(w);
    if (atomic_load(&w->post_pause))
        w->pause_req = true;
    if (atomic_load(&w->post_stop))
        w->stop = true;
    if (atomic_load(&w->q_req) != atomic_load_explicit(&w->q_done, memory_order_relaxed))
        answer_query(w);
}

static void wake(rly_worker *w)
{
    uint64_t one = 1;
    if (write(w->ctrl_fd, &one, sizeof one) < 0) {
        /* EAGAIN: the counter is full, so the worker is being woken anyway */
    }
}

void rly_worker_post_cfg(rly_worker *w, const rly_cfg *cfg, rly_tls *tls)
{
    if (tls)
        atomic_store(&w->post_tls, tls);
    atomic_store(&w->post_cfg, cfg);
    wake(w);
}

bool rly_worker_cfg_taken(rly_worker *w)
{
    /* ctrl_event swaps both in one go between packets; seq_cst pairs with
     * its exchanges, so every use of the old ones happened before */
    return !atomic_load(&w->post_cfg) && !atomic_load(&w->post_tls);
}

void rly_worker_post_drain(rly_worker *w)
{
    atomic_store(&w->post_drain, true);
    wake(w);
}

void rly_worker_post_stop(rly_worker *w)
{
    atomic_store(&w->post_stop, true);
    wake(w);
}

/* The listening sockets: new ones, or (takeover) the old process's. 0, or
 * RTC_EMSG with err; what was opened is closed by rly_worker_free. */
static int open_listeners(rly_worker *w, const rly_worker_params *p, char *err, size_t errlen)
{
    /* the first of several workers checks that nobody else holds the ports */
    int lsm = !p->reuseport ? LS_PLAIN : p->first ? LS_REUSEPORT | LS_PROBE : LS_REUSEPORT;

    for (size_t i = 0; i < p->n_listen; i++) {
        w->udp_fd[i] = w->tcp_fd[i] = -1;
        w->n_listen = i + 1;
        if (p->adopt) {
            w->udp_fd[i] = rly_worker_adopt_fd(p, p->adopt->udp[i]);
            w->tcp_fd[i] = rly_worker_adopt_fd(p, p->adopt->tcp[i]);
            if (w->udp_fd[i] < 0 || w->tcp_fd[i] < 0) {
                snprintf(err, errlen, "takeover: listener %zu without a socket", i);
                return RTC_EMSG;
            }
        } else if ((w->udp_fd[i] = listen_socket(&p->listen[i], SOCK_DGRAM, lsm, err, errlen,
                                                 "listen")) < 0 ||
                   (w->tcp_fd[i] = listen_socket(&p->listen[i], SOCK_STREAM, lsm, err, errlen,
                                                 "listen")) < 0) {
            return RTC_EMSG;
        }
        ep_add(w, w->udp_fd[i], EPOLLIN, EV_DATA(T_UDP, i));
        ep_add(w, w->tcp_fd[i], EPOLLIN, EV_DATA(T_TCP_LISTEN, i));
    }
    for (size_t i = 0; i < p->n_tls_listen; i++) {
        w->tls_fd[i] = -1;
        w->n_tls = i + 1;
        if (p->adopt) {
            if ((w->tls_fd[i] = rly_worker_adopt_fd(p, p->adopt->tls[i])) < 0) {
                snprintf(err, errlen, "takeover: TLS listener %zu without a socket", i);
                return RTC_EMSG;
            }
        } else if ((w->tls_fd[i] = listen_socket(&p->tls_listen[i], SOCK_STREAM, lsm, err,
                                                 errlen, "tls-listen")) < 0) {
            return RTC_EMSG;
        }
        ep_add(w, w->tls_fd[i], EPOLLIN, EV_DATA(T_TLS_LISTEN, i));
    }
    return 0;
}

rly_worker *rly_worker_new(const rly_worker_params *p, char *err, size_t errlen)
{
    rly_worker *w = calloc(1, sizeof *w);
    rly_io io = {.relay_open = rly_udp_relay_open, .relay_attach = rly_udp_relay_attach,
                 .relay_close = rly_udp_relay_close,
                 .send_peer = rly_udp_send_peer, .relay_dont_fragment = rly_ports_dont_fragment};

    if (!w) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    w->ep = -1;
    atomic_init(&w->post_cfg, NULL);
    atomic_init(&w->post_tls, NULL);
    atomic_init(&w->post_drain, false);
    atomic_init(&w->post_stop, false);
    atomic_init(&w->done, false);
    atomic_init(&w->draining_pub, false);
    atomic_init(&w->n_allocs_pub, 0);
    atomic_init(&w->post_pause, false);
    atomic_init(&w->q_req, 0);
    atomic_init(&w->q_done, 0);
    atomic_init(&w->q_rel, 0);
    atomic_init(&w->q_notify, -1);
    atomic_init(&w->q_released, false);
    rtc_buf_init(&w->q_out);
    if (pthread_mutex_init(&w->pmu, NULL) == 0) {
        if (pthread_cond_init(&w->pcv, NULL) == 0)
            w->pmu_ok = true;
        else
            pthread_mutex_destroy(&w->pmu);
    }
    w->ctrl_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    w->watch = calloc(RLY_WATCH_MAX, sizeof *w->watch);
    for (int i = 0; w->watch && i < RLY_WATCH_MAX; i++)
        w->watch[i].fd = -1;
    w->tls = p->tls;
    w->warn_rl.per_sec = 5;
    w->n_conns_cap = MAX_CONNS;
    w->slots = malloc((size_t)RX_SLOTS * SLOT_CAP);
    w->port_owner[0] = calloc(65536, sizeof(uint32_t));
    w->port_owner[1] = calloc(65536, sizeof(uint32_t));
    w->conns = calloc(MAX_CONNS, sizeof *w->conns);
    w->closing = calloc(MAX_CONNS, sizeof *w->closing);
    /* a connection is listed once while pending, plus at most one stale
     * entry per slot (freed at the end of a turn, its slot reused in the
     * next turn before the list is taken): 2 x MAX_CONNS bounds it */
    w->pend = calloc(2 * MAX_CONNS, sizeof *w->pend);
    w->flushq = calloc(MAX_CONNS, sizeof *w->flushq);
    w->udp_fd = calloc(p->n_listen + 1, sizeof(int));
    w->udp_turn = calloc(p->n_listen + 1, sizeof(uint32_t));
    w->tcp_fd = calloc(p->n_listen + 1, sizeof(int));
    w->tls_fd = calloc(p->n_tls_listen + 1, sizeof(int));
    w->ports = p->ports;
    w->ep = epoll_create1(EPOLL_CLOEXEC);
    io.ctx = w;
    if (w->slots)
        rly_udp_init(w);
    if (!w->slots || !w->watch || !w->port_owner[0] || !w->port_owner[1] || !w->conns ||
        !w->closing || !w->pend || !w->flushq || !w->udp_fd || !w->udp_turn || !w->tcp_fd ||
        !w->tls_fd || !w->ports || w->ep < 0 || w->ctrl_fd < 0 || !w->pmu_ok ||
        rly_turn_init(&w->turn, p->cfg, &io, p->quota, p->nonce_key)) {
        snprintf(err, errlen, "out of memory");
        goto out_free;
    }
    w->turn.worker = p->index;
    w->turn.now_us = rtc_clock_mono_us();
    if (open_listeners(w, p, err, errlen))
        goto out_free;
    w->iplimit = p->iplimit; /* shared; rly_stream_accept needs it */
    if (!w->iplimit) {
        snprintf(err, errlen, "no per-IP connection table");
        goto out_free;
    }
    ep_add(w, w->ctrl_fd, EPOLLIN, EV_DATA(T_CTRL, 0));
    return w;
out_free:
    rly_worker_free(w);
    return NULL;
}

void rly_worker_free(rly_worker *w)
{
    if (!w)
        return;
    rly_stream_free_all(w);
    rly_turn_dispose(&w->turn);
    for (size_t i = 0; i < w->n_listen; i++) {
        if (w->udp_fd[i] >= 0)
            close(w->udp_fd[i]);
        if (w->tcp_fd[i] >= 0)
            close(w->tcp_fd[i]);
    }
    for (size_t i = 0; i < w->n_tls; i++)
        if (w->tls_fd[i] >= 0)
            close(w->tls_fd[i]);
    if (w->ep >= 0)
        close(w->ep);
    if (w->ctrl_fd >= 0)
        close(w->ctrl_fd);
    if (w->pmu_ok) {
        pthread_cond_destroy(&w->pcv);
        pthread_mutex_destroy(&w->pmu);
    }
    free(w->udp_fd);
    free(w->udp_turn);
    free(w->tcp_fd);
    free(w->tls_fd);
    free(w->conns);
    free(w->closing);
    free(w->pend);
    free(w->flushq);
    free(w->slots);
    free(w->port_owner[0]);
    free(w->port_owner[1]);
    free(w->fd_owner);
    free(w->fd_turn);
    free(w->watch);
    rtc_buf_dispose(&w->q_out);
    free(w);
}

bool rly_worker_draining(const rly_worker *w) { return atomic_load(&w->draining_pub); }
bool rly_worker_done(const rly_worker *w) { return atomic_load(&w->done); }
const rly_stats *rly_worker_stats(const rly_worker *w) { return &w->turn.stats; }
const rly_rtpq_shard *rly_worker_qshard(const rly_worker *w) { return &w->turn.qshard; }
size_t rly_worker_allocations(const rly_worker *w) { return atomic_load(&w->n_allocs_pub); }
size_t rly_worker_total_allocations(const rly_worker *w, size_t *reservations)
{
    size_t allocs;
    rly_quota_counts(w->turn.quota, &allocs, reservations);
    return allocs;
}

/* ---- descriptors of other modules ---- */

static int watch_slot(const rly_worker *w, int fd)
{
    for (int i = 0; i < RLY_WATCH_MAX; i++)
        if (w->watch[i].cb && w->watch[i].fd == fd)
            return i;
    return -1;
}

int rly_worker_watch(rly_worker *w, int fd, uint32_t events, rly_watch_cb cb, void *arg)
{
    int i;
    for (i = 0; i < RLY_WATCH_MAX && (w->watch[i].cb || w->watch[i].dead); i++)
        ;
    if (i == RLY_WATCH_MAX)
        return -ENOSPC;
    if (ep_add(w, fd, events, EV_DATA(T_WATCH, i)))
        return -errno;
    w->watch[i].fd = fd;
    w->watch[i].cb = cb;
    w->watch[i].arg = arg;
    return 0;
}

int rly_worker_watch_mod(rly_worker *w, int fd, uint32_t events)
{
    int i = watch_slot(w, fd);
    struct epoll_event ev = {.events = events, .data.u64 = EV_DATA(T_WATCH, i)};
    if (i < 0)
        return -ENOENT;
    return epoll_ctl(w->ep, EPOLL_CTL_MOD, fd, &ev) ? -errno : 0;
}

void rly_worker_unwatch(rly_worker *w, int fd)
{
    int i = watch_slot(w, fd);
    if (i < 0)
        return;
    /* explicit: after a takeover another process may hold the socket too,
     * and epoll forgets a descriptor only when the socket itself is closed */
    epoll_ctl(w->ep, EPOLL_CTL_DEL, fd, NULL);
    w->watch[i].fd = -1;
    w->watch[i].cb = NULL;
    w->watch[i].arg = NULL;
    w->watch[i].dead = true;
    w->watch_dead = true;
}

/* End of a batch: slots unwatched in it may be used again. */
static void watch_revive(rly_worker *w)
{
    for (int i = 0; i < RLY_WATCH_MAX; i++)
        w->watch[i].dead = false;
    w->watch_dead = false;
}

void rly_worker_on_tick(rly_worker *w, void (*cb)(void *arg, uint64_t now_ms), void *arg)
{
    w->tick_cb = cb;
    w->tick_arg = arg;
}

static void handle(rly_worker *w, const struct epoll_event *ev)
{
    uint32_t tag = (uint32_t)(ev->data.u64 >> 32), idx = (uint32_t)ev->data.u64;
    switch (tag) {
    case T_UDP:
        rly_udp_event(w, (uint16_t)idx);
        break;
    case T_TCP_LISTEN:
        rly_stream_accept(w, w->tcp_fd[idx], RLY_TCP, (uint16_t)idx);
        break;
    case T_TLS_LISTEN:
        /* TLS tuples use listener numbers after the plain ones */
        rly_stream_accept(w, w->tls_fd[idx], RLY_TLS, (uint16_t)(w->n_listen + idx));
        break;
    case T_RELAY:
        rly_udp_relay_event(w, idx);
        break;
    case T_CONN:
        rly_stream_event(w, idx, ev->events);
        break;
    case T_WATCH:
        if (idx < RLY_WATCH_MAX && w->watch[idx].cb)
            w->watch[idx].cb(w->watch[idx].arg, w->watch[idx].fd, ev->events, w->now_ms);
        break;
    case T_CTRL:
        ctrl_event(w);
        break;
    default:
        break;
    }
}

/* A takeover pause, at the loop boundary: everything relayed so far has
 * been sent (recycle above), nothing is half-read. The main thread reads and
 * changes the worker's state only while it is parked here. */
static void park(rly_worker *w)
{
    w->pause_req = false;
    pthread_mutex_lock(&w->pmu);
    w->paused = true;
    pthread_cond_broadcast(&w->pcv);
    while (atomic_load(&w->post_pause))
        pthread_cond_wait(&w->pcv, &w->pmu);
    w->paused = false;
    pthread_mutex_unlock(&w->pmu);
    w->turn.now_us = rtc_clock_mono_us();
    w->now_ms = w->turn.now_us / 1000;
}

void rly_worker_post_pause(rly_worker *w)
{
    atomic_store(&w->post_pause, true);
    wake(w);
}

bool rly_worker_wait_paused(rly_worker *w, uint64_t deadline_ms)
{
    bool ok;
    pthread_mutex_lock(&w->pmu);
    while (!w->paused && !atomic_load(&w->done)) {
        uint64_t now = rtc_clock_mono_ms();
        struct timespec ts;
        if (now >= deadline_ms)
            break;
        /* the condition variable uses CLOCK_REALTIME: a short slice, then
         * the monotonic deadline is checked again */
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 50 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&w->pcv, &w->pmu, &ts);
    }
    ok = w->paused;
    pthread_mutex_unlock(&w->pmu);
    return ok;
}

void rly_worker_resume(rly_worker *w)
{
    pthread_mutex_lock(&w->pmu);
    atomic_store(&w->post_pause, false);
    pthread_cond_broadcast(&w->pcv);
    pthread_mutex_unlock(&w->pmu);
}

/* The wall clock against the monotonic one (a step of the system clock
 * shows within a second, at the next sweep). */
static void wall_sync(rly_worker *w)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    w->wall_off_ms = (int64_t)((uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u) -
                     (int64_t)w->now_ms;
    w->wall_s = (uint64_t)((int64_t)w->now_ms + w->wall_off_ms) / 1000u;
}

int rly_worker_run(rly_worker *w)
{
    struct epoll_event evs[128];
    uint64_t next_sweep = 0;
    int rc = 0;

    /* a takeover child starts its threads paused until the old process's
     * GO, and stops them unread if GO never comes */
    if (atomic_load(&w->post_pause))
        park(w);
    if (atomic_load(&w->post_stop))
        w->stop = true;
    while (!w->stop) {
        /* streams with input left over: look, but do not sleep */
        int n = epoll_wait(w->ep, evs, 128, w->n_pend ? 0 : 200);
        if (n < 0 && errno != EINTR) {
            RTC_LOG(RTC_LOG_ERROR, NULL, "epoll_wait: %s", strerror(errno));
            rc = -1;
            break;
        }
        /* one clock read per iteration, never per packet */
        w->turn.now_us = rtc_clock_mono_us();
        w->now_ms = w->turn.now_us / 1000;
        if (w->now_ms >= next_sweep)
            wall_sync(w);
        else
            w->wall_s = (uint64_t)((int64_t)w->now_ms + w->wall_off_ms) / 1000u;
        for (int i = 0; i < n; i++)
            handle(w, &evs[i]);
        if (w->n_pend)
            rly_stream_pending(w);
        if (w->n_flushq)
            rly_stream_flush(w); /* what the turn queued for streams */
        rly_udp_recycle(w); /* send what the batch relayed */
        rly_stream_reap(w);
        if (w->watch_dead)
            watch_revive(w);
        if (w->now_ms >= next_sweep) {
            rly_turn_sweep(&w->turn, w->now_ms);
            rly_stream_sweep(w);
            if (w->tick_cb)
                w->tick_cb(w->tick_arg, w->now_ms);
            next_sweep = w->now_ms + 1000;
        }
        atomic_store(&w->n_allocs_pub, rly_table_count(w->turn.table));
        if (w->pause_req)
            park(w);
    }
    atomic_store(&w->done, true);
    return rc;
}

