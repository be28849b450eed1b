/* rly_worker.c - the epoll loop of one worker (see rly_worker.h).
 *
 * epoll data carries a tag and an index: listener number, connection slot
 * or allocation id, so each event finds its object in O(1) without
 * pointers that a takeover would have to translate. UDP sockets are
 * level-triggered and read with one recvmmsg per event (a bounded batch, for
 * fairness); stream connections are edge-triggered and read until EAGAIN.
 * Stream closes are deferred to the end of the event batch so a later event
 * of the same batch never sees a reused slot.
 *
 * The UDP data path (see docs/performance.md, "Profile"): datagrams land in
 * a fixed pool of receive slots, each with RLY_HEADROOM in front so the
 * engine writes ChannelData / Data-indication headers in place. What the
 * engine relays is not sent at once but queued (pointing into its slot) and
 * sent at the end of the loop iteration with one sendmmsg per destination
 * socket, so a burst over many allocations costs a few syscalls instead of
 * two per packet. Slots are recycled only after the queue is flushed. A
 * datagram sent to a relayed address this worker owns (both members of a
 * call relayed by this server) is handed to that allocation directly
 * instead of through the kernel: the same checks and counters, one
 * sendmmsg and one recvmmsg fewer per packet. The clocks are read once per
 * loop iteration. */
#include "rly_worker.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
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
#include "rtc_clock.h"
#include "rtc_err.h"
#include "rtc_log.h"
#include "stn_frame.h"

enum { T_UDP = 1, T_TCP_LISTEN, T_TLS_LISTEN, T_RELAY, T_CONN, T_ADMIN_LISTEN, T_ADMIN, T_CTRL };

#define EV_DATA(tag, idx) ((uint64_t)(tag) << 32 | (uint32_t)(idx))
#define UDP_BATCH 64
/* requested UDP socket buffers of the listeners: a few ms of line rate */
#define UDP_SOCKBUF (4 << 20)
/* receive slot: headroom, the largest datagram, room for padding */
#define SLOT_CAP (RLY_HEADROOM + 65536 + 8)
/* receive slots per worker: two recvmmsg batches, so the queue of one
 * loop iteration is flushed in large sendmmsg groups */
#define RX_SLOTS (2 * UDP_BATCH)
#define TX_MAX RX_SLOTS
/* The largest legal frame is a STUN message of 20 + 0xFFFC bytes
 * (ChannelData tops out at 4 + 0xFFFF + 1 of padding); 4 spare bytes. */
#define CONN_IN_CAP (20 + 0xFFFC + 4)
#define CONN_OUT_CAP (256 * 1024)
/* Until a connection has authenticated (made an allocation) its buffers
 * stay this small: an unauthenticated Allocate or Binding is a few hundred
 * bytes, and thousands of idle sockets must not each pin 300 KB. */
#define CONN_INIT_CAP 2048
#define MAX_CONNS 65536
/* A stream that has not made an allocation within this time is closed, so
 * idle connections cannot pile up (Binding-only clients reconnect). */
#define CONN_IDLE_MS 60000
/* Frames one stream connection may hand to the engine per turn of the loop,
 * as a UDP socket gets one recvmmsg of UDP_BATCH: a client flooding over
 * TCP/TLS must not starve the worker's other clients. A connection with more
 * input waits on the pending list for the next turn (edge-triggered epoll
 * would not report it again). */
#define CONN_BUDGET UDP_BATCH

typedef struct {
    int fd;
    uint8_t proto; /* RLY_TCP / RLY_TLS */
    uint16_t listener;
    bool closing;
    bool pending; /* on w->pend: input left over from its last turn */
    rtc_addr client;
    rly_tls_conn *tls;
    bool authed; /* has made an allocation: buffers may grow, no auth timeout */
    uint8_t *in;
    size_t in_len, in_cap;
    uint8_t *out;
    size_t out_off, out_len, out_cap;
    uint64_t born_ms;
} conn;

/* A queued datagram: its bytes stay in a receive slot until the flush. */
typedef struct {
    int fd;
    socklen_t tolen;
    const uint8_t *p;
    size_t len;
    struct sockaddr_storage to;
} tx_ent;

struct rly_worker {
    int ep;
    rly_turn turn;
    rly_ports *ports;
    int *udp_fd, *tcp_fd, *tls_fd;
    size_t n_listen, n_tls;
    rly_tls *tls;
    rly_admin *admin; /* the admin HTTP listener, first worker only */
    rly_iplimit *iplimit; /* shared: TCP/TLS connections per source */
    bool accept_paused; /* stream listeners out of epoll after EMFILE */
    conn **conns;
    uint32_t n_conns_cap;
    uint32_t *closing; /* deferred closes of this batch */
    uint32_t n_closing;
    uint32_t *pend; /* streams with input left over (CONN_BUDGET) */
    uint32_t n_pend;
    /* mailbox from the main thread (rly_worker_post_*), woken by ctrl_fd */
    int ctrl_fd;
    const rly_cfg *_Atomic post_cfg;
    rly_tls *_Atomic post_tls;
    atomic_bool post_drain, post_stop, done, draining_pub;
    _Atomic size_t n_allocs_pub; /* gauge for other threads */
    rly_worker *const *all;
    const size_t *n_all;
    double start_time_s;
    bool stop, draining;
    uint64_t now_ms, wall_s; /* read once per loop iteration */
    rtc_log_ratelimit warn_rl;
    uint8_t resp[RLY_RESP_MAX]; /* response scratch */
    /* UDP data path: receive slots (SLOT_CAP each, used from 0 up and all
     * recycled after a flush) and the send queue pointing into them */
    uint8_t *slots;
    uint32_t n_used;
    bool rx_busy; /* a received batch is being processed: no recycle() now */
    uint32_t n_tx;
    tx_ent tx[TX_MAX];
    struct mmsghdr mm[RX_SLOTS], tx_mm[TX_MAX]; /* separate: a flush may come mid-batch */
    struct iovec iov[RX_SLOTS], tx_iov[TX_MAX];
    struct sockaddr_storage from[RX_SLOTS];
    bool tx_done[TX_MAX];
    /* relayed sockets of this worker: fd -> allocation id + 1, and relayed
     * port -> allocation id + 1 per family (for the direct hand-over) */
    uint32_t *fd_owner;
    uint32_t n_fd_owner;
    uint32_t *port_owner[2];
    /* takeover pause (rly_worker_post_pause): the main thread sets
     * post_pause and wakes the worker, which parks on pcv at its next loop
     * boundary with paused set, until post_pause is cleared */
    atomic_bool post_pause;
    bool pause_req;
    pthread_mutex_t pmu;
    pthread_cond_t pcv;
    bool paused, pmu_ok;
};

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

static int ep_add(rly_worker *w, int fd, uint32_t events, uint64_t data)
{
    struct epoll_event ev = {.events = events, .data.u64 = data};
    return epoll_ctl(w->ep, EPOLL_CTL_ADD, fd, &ev);
}

/* ---- the rly_io callbacks of the engine ---- */

static int io_relay_open(void *ctx, const rtc_addr *ip, bool even, uint16_t port,
                         rtc_addr *bound)
{
    rly_worker *w = ctx;
    if (port)
        return rly_ports_open_port(w->ports, ip, port, bound);
    return rly_ports_open(w->ports, ip, even, bound);
}

/* ---- the UDP send queue ---- */

static void send_group(rly_worker *w, int fd, uint32_t k)
{
    uint32_t off = 0;
    while (off < k) {
        int rc = sendmmsg(fd, w->tx_mm + off, k - off, 0);
        if (rc < 0) {
            if (errno == EINTR)
                continue;
            /* the first message of the rest failed: count it, go on */
            w->turn.stats.dropped[RLY_DROP_SEND_ERROR]++;
            off++;
            continue;
        }
        off += (uint32_t)rc;
    }
}

/* Send everything queued, one sendmmsg per destination socket (order kept
 * per socket). The slots stay reserved: only recycle() frees them. */
static void tx_flush(rly_worker *w)
{
    uint32_t n = w->n_tx;
    memset(w->tx_done, 0, n * sizeof w->tx_done[0]);
    for (uint32_t i = 0; i < n; i++) {
        uint32_t k = 0;
        int fd = w->tx[i].fd;
        if (w->tx_done[i])
            continue;
        for (uint32_t j = i; j < n; j++) {
            tx_ent *e = &w->tx[j];
            if (w->tx_done[j] || e->fd != fd)
                continue;
            w->tx_done[j] = true;
            w->tx_iov[k].iov_base = (void *)(uintptr_t)e->p;
            w->tx_iov[k].iov_len = e->len;
            w->tx_mm[k].msg_hdr = (struct msghdr){.msg_name = &e->to, .msg_namelen = e->tolen,
                                                .msg_iov = &w->tx_iov[k], .msg_iovlen = 1};
            k++;
        }
        send_group(w, fd, k);
    }
    w->n_tx = 0;
}

/* Free every receive slot (flushes first: queued datagrams live in them).
 * Never while a received batch is being processed. recvmmsg wrote the
 * sender's address length into the slots it filled: restore it. */
static void recycle(rly_worker *w)
{
    if (w->n_tx)
        tx_flush(w);
    for (uint32_t i = 0; i < w->n_used; i++)
        w->mm[i].msg_hdr.msg_namelen = sizeof w->from[i];
    w->n_used = 0;
}

/* Point each slot's receive header at its slot, once. */
static void rx_init(rly_worker *w)
{
    for (uint32_t i = 0; i < RX_SLOTS; i++) {
        w->iov[i].iov_base = w->slots + (size_t)i * SLOT_CAP + RLY_HEADROOM;
        w->iov[i].iov_len = 65536;
        w->mm[i].msg_hdr = (struct msghdr){.msg_name = &w->from[i],
                                            .msg_namelen = sizeof w->from[i],
                                            .msg_iov = &w->iov[i], .msg_iovlen = 1};
    }
}

static void tx_queue(rly_worker *w, int fd, const rtc_addr *to, const uint8_t *p, size_t n)
{
    tx_ent *e;
    if (w->n_tx == TX_MAX)
        tx_flush(w);
    e = &w->tx[w->n_tx++];
    e->fd = fd;
    e->p = p;
    e->len = n;
    e->tolen = rtc_addr_to_sockaddr(to, &e->to);
}

/* Does [p, p+n) sit in a receive slot with RLY_HEADROOM before it and 4
 * spare bytes after it (so the engine may frame it in place)? */
static bool in_slot(const rly_worker *w, const uint8_t *p, size_t n)
{
    uintptr_t base = (uintptr_t)w->slots, a = (uintptr_t)p, off;
    if (a < base || a >= base + (uintptr_t)RX_SLOTS * SLOT_CAP)
        return false;
    off = (a - base) % SLOT_CAP;
    return off >= RLY_HEADROOM && off + n + 4 <= SLOT_CAP;
}

/* A free receive slot (for a copy), or NULL when all are taken. */
static uint8_t *take_slot(rly_worker *w)
{
    if (w->n_used == RX_SLOTS)
        return NULL;
    return w->slots + (size_t)w->n_used++ * SLOT_CAP;
}

/* ---- the rly_io callbacks of the engine ---- */

static int io_relay_attach(void *ctx, int fd, uint32_t id)
{
    rly_worker *w = ctx;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    rtc_addr bound;

    if (fd < 0)
        return -EBADF;
    if ((uint32_t)fd >= w->n_fd_owner) {
        uint32_t nn = (uint32_t)fd * 2 + 64;
        uint32_t *no = realloc(w->fd_owner, nn * sizeof *no);
        if (!no)
            return -ENOMEM;
        memset(no + w->n_fd_owner, 0, (nn - w->n_fd_owner) * sizeof *no);
        w->fd_owner = no;
        w->n_fd_owner = nn;
    }
    /* the event names the socket, not the allocation: a dual allocation
     * (RFC 8656 s.7.2) has two; fd_owner leads to the allocation */
    if (ep_add(w, fd, EPOLLIN, EV_DATA(T_RELAY, fd)))
        return -errno;
    w->fd_owner[fd] = id + 1;
    if (!getsockname(fd, (struct sockaddr *)&ss, &sl)) {
        rtc_addr_from_sockaddr(&bound, (struct sockaddr *)&ss);
        if (bound.family == AF_INET || bound.family == AF_INET6)
            w->port_owner[bound.family == AF_INET6][bound.port] = id + 1;
    }
    return 0;
}

static void io_relay_close(void *ctx, int fd, const rtc_addr *bound)
{
    rly_worker *w = ctx;
    /* queued datagrams name sockets by fd: send them before the number can
     * be reused */
    if (w->n_tx)
        tx_flush(w);
    if (fd >= 0 && (uint32_t)fd < w->n_fd_owner && w->fd_owner[fd]) {
        w->fd_owner[fd] = 0;
        w->port_owner[bound->family == AF_INET6][bound->port] = 0;
    }
    epoll_ctl(w->ep, EPOLL_CTL_DEL, fd, NULL);
    rly_ports_close(w->ports, fd, bound);
}

static void conn_send(rly_worker *w, uint32_t idx, const uint8_t *p, size_t n);

/* A frame for allocation a's client: queued on UDP (p must stay valid until
 * the flush), copied into the connection's queue on TCP/TLS. */
static void to_client(rly_worker *w, const rly_alloc *a, const uint8_t *p, size_t n)
{
    if (a->tuple.proto == RLY_UDP)
        tx_queue(w, w->udp_fd[a->tuple.listener], &a->tuple.client, p, n);
    else if (a->conn >= 0)
        conn_send(w, (uint32_t)a->conn, p, n);
}

/* The allocation of this worker whose relayed address is peer, or NULL. */
static rly_alloc *own_relayed(const rly_worker *w, const rtc_addr *peer)
{
    uint32_t id = w->port_owner[peer->family == AF_INET6][peer->port];
    rly_alloc *b = id ? rly_table_get(w->turn.table, id - 1) : NULL;
    return b && rtc_addr_equal(&b->relayed, peer) ? b : NULL;
}

/* Hand a datagram from allocation `from`'s relayed socket to allocation b
 * of this worker without the kernel: b sees it exactly as its socket would
 * have (source = from's relayed address; b's permission, bandwidth and
 * channel checks and counters apply). */
static void hand_over(rly_worker *w, const rly_alloc *from, rly_alloc *b, const uint8_t *data,
                      size_t len)
{
    uint8_t *buf;
    const uint8_t *frame;
    size_t flen;
    /* from's relayed address of b's family: the source b's socket would
     * have seen (the other half, for a dual allocation sending to IPv6) */
    const rtc_addr *src = rly_alloc_relayed_for(from, b->relayed.family);

    if (!src)
        return; /* cannot happen: the engine sent through that family */

    if (in_slot(w, data, len)) {
        buf = (uint8_t *)(uintptr_t)data - RLY_HEADROOM; /* frame in place */
    } else {
        buf = take_slot(w);
        if (!buf && !w->rx_busy) {
            /* from a stream, between batches: send what is queued and
             * reuse the slots rather than take the kernel's way */
            recycle(w);
            buf = take_slot(w);
        }
        if (!buf) { /* every slot taken: the kernel's way then */
            struct sockaddr_storage ss;
            socklen_t sl = rtc_addr_to_sockaddr(&b->relayed, &ss);
            if (sendto(rly_alloc_fd_for(from, src->family), data, len, 0, (struct sockaddr *)&ss,
                       sl) < 0)
                w->turn.stats.dropped[RLY_DROP_SEND_ERROR]++;
            return;
        }
        memcpy(buf + RLY_HEADROOM, data, len);
    }
    frame = rly_turn_from_peer(&w->turn, b, src, buf, len, w->now_ms, &flen);
    if (frame)
        to_client(w, b, frame, flen);
}

static int io_send_peer(void *ctx, int fd, const rtc_addr *peer, const uint8_t *data, size_t len)
{
    rly_worker *w = ctx;
    uint32_t fid = fd >= 0 && (uint32_t)fd < w->n_fd_owner ? w->fd_owner[fd] : 0;
    rly_alloc *from = fid ? rly_table_get(w->turn.table, fid - 1) : NULL;
    rly_alloc *b;

    if (from && (b = own_relayed(w, peer)) != NULL) {
        hand_over(w, from, b, data, len);
        return 0;
    }
    if (in_slot(w, data, len)) {
        tx_queue(w, fd, peer, data, len);
        return 0;
    }
    {
        /* from a stream's buffer, which moves after this frame */
        struct sockaddr_storage ss;
        socklen_t sl = rtc_addr_to_sockaddr(peer, &ss);
        if (sendto(fd, data, len, 0, (struct sockaddr *)&ss, sl) < 0)
            return -errno;
    }
    return 0;
}

/* ---- stream connections ---- */

static void conn_close_later(rly_worker *w, uint32_t idx)
{
    conn *c = w->conns[idx];
    if (c->closing)
        return;
    c->closing = true;
    w->closing[w->n_closing++] = idx;
}

static void conn_free(rly_worker *w, uint32_t idx)
{
    conn *c = w->conns[idx];
    rly_tuple tu = {.client = c->client, .listener = c->listener, .proto = c->proto};
    rly_turn_tuple_gone(&w->turn, &tu);
    rly_iplimit_give(w->iplimit, &c->client);
    rly_tls_conn_free(c->tls);
    epoll_ctl(w->ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c->in);
    free(c->out);
    free(c);
    w->conns[idx] = NULL;
}

static long conn_write(conn *c, const uint8_t *p, size_t n)
{
    if (c->tls)
        return rly_tls_write(c->tls, p, n);
    {
        ssize_t rc = send(c->fd, p, n, MSG_NOSIGNAL);
        return rc < 0 ? -errno : rc;
    }
}

/* Write out what is queued; -1 when the connection is broken. */
static int conn_flush(conn *c)
{
    while (c->out_len) {
        long rc = conn_write(c, c->out + c->out_off, c->out_len);
        if (rc == -EAGAIN || rc == -EWOULDBLOCK)
            return 0;
        if (rc <= 0)
            return -1;
        c->out_off += (size_t)rc;
        c->out_len -= (size_t)rc;
    }
    c->out_off = 0;
    return 0;
}

/* Make a buffer of *cap bytes hold at least need (up to max): doubles, so
 * a busy connection reallocates a handful of times in its life. */
static bool buf_grow(uint8_t **b, size_t *cap, size_t need, size_t max)
{
    size_t n = *cap;
    uint8_t *nb;
    if (need > max)
        return false;
    while (n < need)
        n = n * 2 > max ? max : n * 2;
    if (n == *cap)
        return true;
    if (!(nb = realloc(*b, n)))
        return false;
    *b = nb;
    *cap = n;
    return true;
}

/* Queue a frame for the client; dropped whole when the queue is full (a
 * client that stops reading cannot make the relay buffer without bound). */
static void conn_send(rly_worker *w, uint32_t idx, const uint8_t *p, size_t n)
{
    conn *c = w->conns[idx];
    if (!c || c->closing)
        return;
    if (c->out_off + c->out_len + n > c->out_cap) {
        memmove(c->out, c->out + c->out_off, c->out_len);
        c->out_off = 0;
        if (c->out_len + n > c->out_cap &&
            !buf_grow(&c->out, &c->out_cap, c->out_len + n,
                      c->authed ? CONN_OUT_CAP : CONN_INIT_CAP)) {
            w->turn.stats.dropped[RLY_DROP_BACKPRESSURE]++;
            return;
        }
    }
    memcpy(c->out + c->out_off + c->out_len, p, n);
    c->out_len += n;
    if (conn_flush(c))
        conn_close_later(w, idx);
}

static void client_input(rly_worker *w, const rly_tuple *tu, int conn_idx, const uint8_t *buf,
                         size_t len);

/* Split the stream into STUN / ChannelData frames (RFC 8656 s.3.1). */
/* Hand up to *budget whole frames of the connection's input to the engine;
 * what is left stays buffered for the next turn. */
static void conn_frames(rly_worker *w, uint32_t idx, uint32_t *budget)
{
    conn *c = w->conns[idx];
    rly_tuple tu = {.client = c->client, .listener = c->listener, .proto = c->proto};
    size_t off = 0;

    while (!c->closing && off < c->in_len && *budget) {
        long fl = rly_frame_len(c->in + off, c->in_len - off);
        /* a frame larger than the buffer: only an authenticated client may
         * make it grow (to the largest legal frame) */
        if (fl > 0 && (size_t)fl > c->in_cap && c->authed)
            buf_grow(&c->in, &c->in_cap, (size_t)fl, CONN_IN_CAP);
        if (fl < 0 || (size_t)fl > c->in_cap) {
            w->turn.stats.dropped[RLY_DROP_MALFORMED]++;
            if (rtc_log_ratelimit_ok(&w->warn_rl, w->now_ms)) {
                char cl[RTC_ADDR_STRLEN];
                rtc_addr_format(&c->client, true, cl);
                RTC_LOG(RTC_LOG_WARN, NULL, "closing %s stream from %s: %s",
                        c->proto == RLY_TLS ? "TLS" : "TCP", cl,
                        fl < 0 ? "not TURN framing"
                        : c->authed ? "frame too large" : "large frame before authenticating");
            }
            conn_close_later(w, idx); /* cannot resynchronise a broken stream */
            return;
        }
        if (fl == 0 || (size_t)fl > c->in_len - off)
            break;
        client_input(w, &tu, (int)idx, c->in + off, (size_t)fl);
        c = w->conns[idx];
        off += (size_t)fl;
        (*budget)--;
        if (!c->authed && rly_table_find(w->turn.table, &tu))
            c->authed = true; /* an Allocate passed authentication */
    }
    if (off) {
        memmove(c->in, c->in + off, c->in_len - off);
        c->in_len -= off;
    }
}

static void conn_event(rly_worker *w, uint32_t idx, uint32_t events)
{
    conn *c = idx < w->n_conns_cap ? w->conns[idx] : NULL;
    if (!c || c->closing)
        return;
    if (events & (EPOLLERR | EPOLLHUP)) {
        conn_close_later(w, idx);
        return;
    }
    if (events & EPOLLOUT && conn_flush(c)) {
        conn_close_later(w, idx);
        return;
    }
    if (!(events & (EPOLLIN | EPOLLRDHUP)) && !c->tls)
        return;
    uint32_t budget = CONN_BUDGET;
    if (c->in_len) { /* frames left over from the last turn go first */
        conn_frames(w, idx, &budget);
        if (c->closing)
            return;
    }
    for (;;) {
        long rc;
        if (!budget) { /* more may be waiting: come back next turn */
            if (!c->pending && w->n_pend < 2 * MAX_CONNS) {
                c->pending = true;
                w->pend[w->n_pend++] = idx;
            }
            return;
        }
        if (c->in_len >= c->in_cap) {
            conn_close_later(w, idx);
            return;
        }
        if (c->tls) {
            rc = rly_tls_read(c->tls, c->in + c->in_len, c->in_cap - c->in_len);
        } else {
            ssize_t n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
            rc = n < 0 ? -errno : n;
        }
        if (rc == -EAGAIN || rc == -EWOULDBLOCK || rc == -EINTR) {
            if (c->tls && conn_flush(c))
                conn_close_later(w, idx);
            return;
        }
        if (rc <= 0) {
            conn_close_later(w, idx);
            return;
        }
        c->in_len += (size_t)rc;
        conn_frames(w, idx, &budget);
        if (c->closing)
            return;
    }
}

/* Take the TCP/TLS listeners out of epoll (EMFILE) or put them back. */
static void pause_listeners(rly_worker *w, bool pause)
{
    for (size_t i = 0; i < w->n_listen + w->n_tls; i++) {
        bool tls = i >= w->n_listen;
        size_t j = tls ? i - w->n_listen : i;
        struct epoll_event ev = {.events = pause ? 0 : EPOLLIN,
                                 .data.u64 = EV_DATA(tls ? T_TLS_LISTEN : T_TCP_LISTEN, j)};
        int fd = tls ? w->tls_fd[j] : w->tcp_fd[j];
        if (fd >= 0)
            epoll_ctl(w->ep, EPOLL_CTL_MOD, fd, &ev);
    }
    w->accept_paused = pause;
}

static void accept_conns(rly_worker *w, int lfd, uint8_t proto, uint16_t listener)
{
    for (int n = 0; n < 64; n++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int one = 1, fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        uint32_t idx;
        rtc_addr client;
        conn *c;

        if (fd < 0) {
            /* The listener is level-triggered: without a descriptor for
             * the pending connection, epoll would report it again at once,
             * forever. Take the listeners out until the next sweep. */
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                pause_listeners(w, true);
            return;
        }
        for (idx = 0; idx < w->n_conns_cap && w->conns[idx]; idx++)
            ;
        rtc_addr_from_sockaddr(&client, (struct sockaddr *)&ss);
        if (idx == w->n_conns_cap || w->draining) {
            close(fd);
            continue;
        }
        if (!rly_iplimit_take(w->iplimit, &client, w->turn.cfg->lim.max_tcp_per_ip)) {
            if (rtc_log_ratelimit_ok(&w->warn_rl, w->now_ms)) {
                char cl[RTC_ADDR_STRLEN];
                rtc_addr_format(&client, false, cl);
                RTC_LOG(RTC_LOG_WARN, NULL, "refusing stream from %s: max-tcp-per-ip (%u) reached",
                        cl, (unsigned)w->turn.cfg->lim.max_tcp_per_ip);
            }
            close(fd);
            continue;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        c = calloc(1, sizeof *c);
        if (!c || !(c->in = malloc(CONN_INIT_CAP)) || !(c->out = malloc(CONN_INIT_CAP)))
            goto out_free;
        c->in_cap = c->out_cap = CONN_INIT_CAP;
        if (proto == RLY_TLS && !(c->tls = rly_tls_conn_new(w->tls, fd)))
            goto out_free;
        c->fd = fd;
        c->proto = proto;
        c->listener = listener;
        c->born_ms = w->now_ms;
        c->client = client;
        if (ep_add(w, fd, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, EV_DATA(T_CONN, idx)))
            goto out_free;
        w->conns[idx] = c;
        continue;
out_free:
        if (c) {
            rly_tls_conn_free(c->tls);
            free(c->in);
            free(c->out);
            free(c);
        }
        rly_iplimit_give(w->iplimit, &client);
        close(fd);
    }
}

/* ---- datagrams ---- */

/* A STUN response to a UDP client: sent at once, after what is queued (so
 * a client sees relayed data and answers in the order they were made). */
static void send_udp(rly_worker *w, uint16_t listener, const rtc_addr *to, const uint8_t *p,
                     size_t n)
{
    struct sockaddr_storage ss;
    socklen_t sl = rtc_addr_to_sockaddr(to, &ss);
    if (w->n_tx)
        tx_flush(w);
    if (sendto(w->udp_fd[listener], p, n, 0, (struct sockaddr *)&ss, sl) < 0)
        w->turn.stats.dropped[RLY_DROP_SEND_ERROR]++;
}

static void client_input(rly_worker *w, const rly_tuple *tu, int conn_idx, const uint8_t *buf,
                         size_t len)
{
    rly_input in = {.tuple = tu,
                    .conn = conn_idx,
                    .buf = buf,
                    .len = len,
                    .now_ms = w->now_ms,
                    .wall_s = w->wall_s};
    size_t rl = rly_turn_input(&w->turn, &in, w->resp, sizeof w->resp);
    if (!rl)
        return;
    if (tu->proto == RLY_UDP)
        send_udp(w, tu->listener, &tu->client, w->resp, rl);
    else
        conn_send(w, (uint32_t)conn_idx, w->resp, rl);
}

/* One recvmmsg of up to UDP_BATCH into free receive slots (recycling them
 * all first when fewer are left). Returns the number of datagrams; they are slots *first,
 * *first + 1, ... (w->mm, w->from are indexed by slot and point at their
 * slot for good, so nothing is set up per call). */
static int rx_batch(rly_worker *w, int fd, uint32_t *first)
{
    int got;

    if (RX_SLOTS - w->n_used < UDP_BATCH)
        recycle(w);
    got = recvmmsg(fd, w->mm + w->n_used, UDP_BATCH, MSG_DONTWAIT, NULL);
    if (got <= 0)
        return 0;
    *first = w->n_used;
    w->n_used += (uint32_t)got;
    return got;
}

static void udp_event(rly_worker *w, uint16_t listener)
{
    uint32_t first = 0;
    int got = rx_batch(w, w->udp_fd[listener], &first);

    w->rx_busy = true;
    for (int k = 0; k < got; k++) {
        rly_tuple tu = {.listener = listener, .proto = RLY_UDP};
        const uint8_t *p = w->slots + (size_t)(first + (uint32_t)k) * SLOT_CAP + RLY_HEADROOM;
        uint32_t i = first + (uint32_t)k;
        rtc_addr_from_sockaddr(&tu.client, (struct sockaddr *)&w->from[i]);
        client_input(w, &tu, -1, p, w->mm[i].msg_len);
    }
    w->rx_busy = false;
}

static void relay_event(rly_worker *w, uint32_t fd)
{
    uint32_t owner = fd < w->n_fd_owner ? w->fd_owner[fd] : 0, id = owner - 1;
    rly_alloc *a = owner ? rly_table_get(w->turn.table, id) : NULL;
    uint32_t first = 0;
    int got;

    if (!a)
        return;
    got = rx_batch(w, (int)fd, &first);
    w->rx_busy = true;
    for (int k = 0; k < got; k++) {
        uint8_t *slot = w->slots + (size_t)(first + (uint32_t)k) * SLOT_CAP;
        const uint8_t *frame;
        size_t flen;
        rtc_addr peer;

        /* a Refresh 0 earlier in this iteration may have released it */
        if (rly_table_get(w->turn.table, id) != a)
            break;
        rtc_addr_from_sockaddr(&peer, (struct sockaddr *)&w->from[first + (uint32_t)k]);
        frame = rly_turn_from_peer(&w->turn, a, &peer, slot, w->mm[first + (uint32_t)k].msg_len,
                                   w->now_ms, &flen);
        if (frame)
            to_client(w, a, frame, flen);
    }
    w->rx_busy = false;
}

/* ---- the main thread's mailbox ---- */

/* Refuse new allocations and connections; the main thread decides when the
 * drain is over (no allocation left in any worker, or the deadline) and
 * then posts stop: a worker that stopped alone would leave its SO_REUSEPORT
 * sockets open and unread. */
static void start_drain(rly_worker *w)
{
    if (w->draining)
        return;
    w->draining = true;
    w->turn.draining = true;
    atomic_store(&w->draining_pub, true);
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
        start_drain(w);
    if (atomic_load(&w->post_pause))
        w->pause_req = true;
    if (atomic_load(&w->post_stop))
        w->stop = true;
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

/* ---- life cycle ---- */

/* The loop reads every socket until EAGAIN (accept4 loops, the admin
 * listener): a blocking one would hang the worker. The old process made
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
static int adopt_fd(const rly_worker_params *p, uint32_t idx)
{
    int fd;
    if (idx == RLY_TO_NONE)
        return -1;
    fd = p->adopt_fds[idx];
    p->adopt_fds[idx] = -1;
    return nonblocking(fd);
}

rly_worker *rly_worker_new(const rly_worker_params *p, char *err, size_t errlen)
{
    rly_worker *w = calloc(1, sizeof *w);
    /* the first of several workers checks that nobody else holds the ports */
    int lsm = !p->reuseport ? LS_PLAIN : p->first ? LS_REUSEPORT | LS_PROBE : LS_REUSEPORT;
    rly_io io = {.relay_open = io_relay_open, .relay_attach = io_relay_attach,
                 .relay_close = io_relay_close,
                 .send_peer = io_send_peer, .relay_dont_fragment = rly_ports_dont_fragment};

    if (!w) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    w->ep = -1;
    w->all = p->all;
    w->n_all = p->n_all;
    atomic_init(&w->post_cfg, NULL);
    atomic_init(&w->post_tls, NULL);
    atomic_init(&w->post_drain, false);
    atomic_init(&w->post_stop, false);
    atomic_init(&w->done, false);
    atomic_init(&w->draining_pub, false);
    atomic_init(&w->n_allocs_pub, 0);
    atomic_init(&w->post_pause, false);
    if (pthread_mutex_init(&w->pmu, NULL) == 0) {
        if (pthread_cond_init(&w->pcv, NULL) == 0)
            w->pmu_ok = true;
        else
            pthread_mutex_destroy(&w->pmu);
    }
    w->ctrl_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    w->start_time_s = p->start_time_s;
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
    w->udp_fd = calloc(p->n_listen + 1, sizeof(int));
    w->tcp_fd = calloc(p->n_listen + 1, sizeof(int));
    w->tls_fd = calloc(p->n_tls_listen + 1, sizeof(int));
    w->ports = p->ports;
    w->ep = epoll_create1(EPOLL_CLOEXEC);
    io.ctx = w;
    if (w->slots)
        rx_init(w);
    if (!w->slots || !w->port_owner[0] || !w->port_owner[1] || !w->conns || !w->closing || !w->pend || !w->udp_fd || !w->tcp_fd || !w->tls_fd ||
        !w->ports || w->ep < 0 || w->ctrl_fd < 0 || !w->pmu_ok ||
        rly_turn_init(&w->turn, p->cfg, &io, p->quota, p->nonce_key)) {
        snprintf(err, errlen, "out of memory");
        goto out_free;
    }
    for (size_t i = 0; i < p->n_listen; i++) {
        w->udp_fd[i] = w->tcp_fd[i] = -1;
        w->n_listen = i + 1;
        if (p->adopt) {
            w->udp_fd[i] = adopt_fd(p, p->adopt->udp[i]);
            w->tcp_fd[i] = adopt_fd(p, p->adopt->tcp[i]);
            if (w->udp_fd[i] < 0 || w->tcp_fd[i] < 0) {
                snprintf(err, errlen, "takeover: listener %zu without a socket", i);
                goto out_free;
            }
        } else if ((w->udp_fd[i] = listen_socket(&p->listen[i], SOCK_DGRAM, lsm, err, errlen,
                                                 "listen")) < 0 ||
                   (w->tcp_fd[i] = listen_socket(&p->listen[i], SOCK_STREAM, lsm, err, errlen,
                                                 "listen")) < 0) {
            goto out_free;
        }
        ep_add(w, w->udp_fd[i], EPOLLIN, EV_DATA(T_UDP, i));
        ep_add(w, w->tcp_fd[i], EPOLLIN, EV_DATA(T_TCP_LISTEN, i));
    }
    for (size_t i = 0; i < p->n_tls_listen; i++) {
        w->tls_fd[i] = -1;
        w->n_tls = i + 1;
        if (p->adopt) {
            if ((w->tls_fd[i] = adopt_fd(p, p->adopt->tls[i])) < 0) {
                snprintf(err, errlen, "takeover: TLS listener %zu without a socket", i);
                goto out_free;
            }
        } else if ((w->tls_fd[i] = listen_socket(&p->tls_listen[i], SOCK_STREAM, lsm, err,
                                                 errlen, "tls-listen")) < 0) {
            goto out_free;
        }
        ep_add(w, w->tls_fd[i], EPOLLIN, EV_DATA(T_TLS_LISTEN, i));
    }
    w->iplimit = p->iplimit; /* shared; accept_conns needs it */
    if (!w->iplimit) {
        snprintf(err, errlen, "no per-IP connection table");
        goto out_free;
    }
    if (p->metrics) {
        rly_admin_params ap = {.ep = w->ep, .listen_data = EV_DATA(T_ADMIN_LISTEN, 0),
                               .conn_data = EV_DATA(T_ADMIN, 0),
                               .all = (const rly_worker *const *)p->all,
                               .n_all = p->n_all, .start_time_s = p->start_time_s,
                               .reloads = p->reloads};
        if (p->adopt) {
            if ((ap.listen_fd = adopt_fd(p, p->adopt_metrics_fd)) < 0) {
                snprintf(err, errlen, "takeover: no metrics-listen socket");
                goto out_free;
            }
        } else if ((ap.listen_fd = listen_socket(p->metrics, SOCK_STREAM, LS_PLAIN, err, errlen,
                                                 "metrics-listen")) < 0) {
            goto out_free;
        }
        if (!(w->admin = rly_admin_new(&ap))) {
            snprintf(err, errlen, "metrics-listen: out of memory");
            goto out_free;
        }
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
    if (w->conns)
        for (uint32_t i = 0; i < w->n_conns_cap; i++)
            if (w->conns[i])
                conn_free(w, i);
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
    rly_admin_free(w->admin);
    if (w->ep >= 0)
        close(w->ep);
    if (w->ctrl_fd >= 0)
        close(w->ctrl_fd);
    if (w->pmu_ok) {
        pthread_cond_destroy(&w->pcv);
        pthread_mutex_destroy(&w->pmu);
    }
    free(w->udp_fd);
    free(w->tcp_fd);
    free(w->tls_fd);
    free(w->conns);
    free(w->closing);
    free(w->pend);
    free(w->slots);
    free(w->port_owner[0]);
    free(w->port_owner[1]);
    free(w->fd_owner);
    free(w);
}

bool rly_worker_draining(const rly_worker *w) { return atomic_load(&w->draining_pub); }
bool rly_worker_done(const rly_worker *w) { return atomic_load(&w->done); }
const rly_stats *rly_worker_stats(const rly_worker *w) { return &w->turn.stats; }
size_t rly_worker_allocations(const rly_worker *w) { return atomic_load(&w->n_allocs_pub); }
size_t rly_worker_total_allocations(const rly_worker *w) { return rly_quota_total(w->turn.quota); }

/* Close streams that have not authenticated (TLS handshake included)
 * within --tcp-auth-timeout, and streams without an allocation after
 * CONN_IDLE_MS; resume listeners paused by EMFILE. */
static void sweep_conns(rly_worker *w)
{
    uint64_t auth_ms = (uint64_t)w->turn.cfg->lim.tcp_auth_timeout_s * 1000u;
    if (w->accept_paused)
        pause_listeners(w, false);
    for (uint32_t i = 0; i < w->n_conns_cap; i++) {
        conn *c = w->conns[i];
        rly_tuple tu;
        if (!c || c->closing)
            continue;
        if (!c->authed && w->now_ms - c->born_ms >= auth_ms) {
            conn_close_later(w, i);
            continue;
        }
        if (w->now_ms - c->born_ms < CONN_IDLE_MS)
            continue;
        tu = (rly_tuple){.client = c->client, .listener = c->listener, .proto = c->proto};
        if (!rly_table_find(w->turn.table, &tu))
            conn_close_later(w, i);
    }
}

static void handle(rly_worker *w, const struct epoll_event *ev)
{
    uint32_t tag = (uint32_t)(ev->data.u64 >> 32), idx = (uint32_t)ev->data.u64;
    switch (tag) {
    case T_UDP:
        udp_event(w, (uint16_t)idx);
        break;
    case T_TCP_LISTEN:
        accept_conns(w, w->tcp_fd[idx], RLY_TCP, (uint16_t)idx);
        break;
    case T_TLS_LISTEN:
        /* TLS tuples use listener numbers after the plain ones */
        accept_conns(w, w->tls_fd[idx], RLY_TLS, (uint16_t)(w->n_listen + idx));
        break;
    case T_RELAY:
        relay_event(w, idx);
        break;
    case T_CONN:
        conn_event(w, idx, ev->events);
        break;
    case T_ADMIN_LISTEN:
        rly_admin_accept(w->admin, w->now_ms);
        break;
    case T_ADMIN:
        rly_admin_event(w->admin, idx);
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
    w->now_ms = rtc_clock_mono_ms();
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

int rly_worker_export(rly_worker *w, rly_to_worker *tw, rly_to_fds *fds, bool with_metrics,
                      uint32_t *metrics_idx)
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
    if (with_metrics && w->admin) {
        if ((idx = rly_to_fds_push(fds, rly_admin_listen_fd(w->admin))) < 0)
            return idx;
        *metrics_idx = (uint32_t)idx;
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
            io_relay_close(w, a->relay_fd, &a->relayed);
        if (a->relay_fd2 >= 0)
            io_relay_close(w, a->relay_fd2, &a->relayed2);
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
    rly_admin_free(w->admin);
    w->admin = NULL;
    start_drain(w);
    atomic_store(&w->n_allocs_pub, rly_table_count(w->turn.table));
    return moved;
}

int rly_worker_adopt(rly_worker *w, const rly_to_worker *tw, int *fds, uint64_t now_ms,
                     char *err, size_t errlen)
{
    (void)now_ms;
    for (uint32_t k = 0; k < tw->n_allocs; k++) {
        const rly_alloc *src = &tw->allocs[k];
        const char *qk = rly_quota_key(src->user, src->rest);
        uint32_t id, hnext;
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
        *a = *src;
        a->id = id;
        a->hnext = hnext;
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
        if ((rc = io_relay_attach(w, a->relay_fd, a->id)) ||
            (a->relay_fd2 >= 0 && (rc = io_relay_attach(w, a->relay_fd2, a->id)))) {
            snprintf(err, errlen, "takeover: cannot watch a relayed socket: %s", strerror(-rc));
            return RTC_EMSG;
        }
        if (a->relay_fd2 >= 0)
            rly_ports_claim(w->ports, &a->relayed2);
    }
    atomic_store(&w->n_allocs_pub, rly_table_count(w->turn.table));
    return 0;
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
        w->now_ms = rtc_clock_mono_ms();
        w->wall_s = rtc_clock_wall_s();
        for (int i = 0; i < n; i++)
            handle(w, &evs[i]);
        if (w->n_pend) { /* their next turn, after everyone else's */
            uint32_t np = w->n_pend;
            w->n_pend = 0;
            for (uint32_t i = 0; i < np; i++) {
                uint32_t idx = w->pend[i];
                conn *c = w->conns[idx];
                if (c && c->pending) {
                    c->pending = false;
                    conn_event(w, idx, EPOLLIN);
                }
            }
        }
        recycle(w); /* send what the batch relayed */
        for (uint32_t i = 0; i < w->n_closing; i++)
            conn_free(w, w->closing[i]);
        w->n_closing = 0;
        if (w->now_ms >= next_sweep) {
            rly_turn_sweep(&w->turn, w->now_ms);
            sweep_conns(w);
            if (w->admin)
                rly_admin_sweep(w->admin, w->now_ms);
            next_sweep = w->now_ms + 1000;
        }
        atomic_store(&w->n_allocs_pub, rly_table_count(w->turn.table));
        if (w->pause_req)
            park(w);
    }
    atomic_store(&w->done, true);
    return rc;
}
