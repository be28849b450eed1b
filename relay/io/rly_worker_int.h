/* rly_worker_int.h - the inside of one worker (rly_worker.h), shared by
 * the files of that one module, each with one job:
 *
 *   rly_worker.c           the epoll loop, the listeners, the main thread's
 *                          mailbox (post_*, pause), life cycle
 *   rly_udp.c              UDP: receive slots, the send queue, the engine's
 *   (+ rly_udp_path.h)     socket callbacks, the direct hand-over between
 *                          allocations of this worker
 *   rly_stream.c           TCP/TLS client connections: accept, framing,
 *                          bounded output queues, sweeps
 *   rly_worker_takeover.c  export and adopt of a worker's state for a live
 *                          takeover (rly_takeover.h carries it)
 *
 * Calls go one way: the loop -> UDP, streams, takeover; takeover -> UDP ->
 * streams (a peer's data for a TCP/TLS client); the engine reaches UDP
 * through its rly_io table. Nothing here is for other modules. Owned by
 * the worker's thread, except what rly_worker.h says the main thread may
 * touch (atomics, and everything while the worker is parked). */
#ifndef RLY_WORKER_INT_H
#define RLY_WORKER_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "rly_worker.h"

enum { T_UDP = 1, T_TCP_LISTEN, T_TLS_LISTEN, T_RELAY, T_CONN, T_WATCH, T_CTRL };

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
/* the flush's socket table: a power of two, at least 2 x TX_MAX */
#define TX_GRP 256
/* rx_vlen: the last read of this socket got two or more datagrams */
#define RX_HOT UINT32_MAX
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


struct rly_conn; /* rly_stream.c */

struct rly_watch {
    int fd;
    bool dead;
    rly_watch_cb cb;
    void *arg;
};

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
    rly_iplimit *iplimit; /* shared: TCP/TLS connections per source */
    bool accept_paused; /* stream listeners out of epoll after EMFILE */
    struct rly_conn **conns; /* rly_stream.c's */
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
    /* descriptors watched for other modules (rly_worker_watch), a table of
     * RLY_WATCH_MAX; a slot unwatched during a batch stays dead until the
     * batch is over, so a later event of the batch cannot reach a new
     * watcher in it. Kept out of line: the fields around here are on the
     * packet path, and relay_hotpath counts how the compiler addresses
     * them. */
    struct rly_watch *watch;
    void (*tick_cb)(void *arg, uint64_t now_ms);
    void *tick_arg;
    bool stop, draining;
    bool watch_dead; /* a watch slot is dead until the batch is over */
    uint64_t now_ms, wall_s; /* read once per loop iteration */
    /* CLOCK_REALTIME - CLOCK_MONOTONIC in ms, read at each sweep (1 s):
     * wall_s is derived from the monotonic reading, one vDSO call less
     * per loop iteration (docs/performance.md, issue 16 item 3) */
    int64_t wall_off_ms;
    rtc_log_ratelimit warn_rl;
    uint8_t resp[RLY_RESP_MAX]; /* response scratch */
    /* UDP data path: receive slots (SLOT_CAP each, used from 0 up and all
     * recycled after a flush) and the send queue pointing into them */
    uint8_t *slots;
    uint32_t n_used;
    bool rx_busy; /* a received batch is being processed: no rly_udp_recycle now */
    uint32_t n_tx;
    tx_ent tx[TX_MAX];
    struct mmsghdr mm[RX_SLOTS], tx_mm[TX_MAX]; /* separate: a flush may come mid-batch */
    struct iovec iov[RX_SLOTS], tx_iov[TX_MAX];
    struct sockaddr_storage from[RX_SLOTS];
    /* the flush's grouping by socket in one pass (rly_udp_flush): each
     * entry's successor on its socket, and an open-addressed table fd ->
     * group, valid where gen == tx_gen (so it is never cleared) */
    uint16_t tx_next[TX_MAX];
    uint16_t tx_gorder[TX_MAX];
    uint32_t tx_gen;
    struct {
        int fd;
        uint32_t gen;
        uint16_t head, tail;
    } tx_grp[TX_GRP];
    /* relayed sockets of this worker: fd -> allocation id + 1, and relayed
     * port -> allocation id + 1 per family (for the direct hand-over) */
    uint32_t *fd_owner;
    uint32_t n_fd_owner;
    /* how many datagrams to ask a socket for (rx_vlen in rly_udp_path.h):
     * per relayed fd and per UDP listener, RX_HOT, the time of a single
     * read, or 0 */
    uint32_t *fd_turn, *udp_turn;
    uint32_t *port_owner[2];
    /* takeover pause (rly_worker_post_pause): the main thread sets
     * post_pause and wakes the worker, which parks on pcv at its next loop
     * boundary with paused set, until post_pause is cleared */
    atomic_bool post_pause;
    bool pause_req;
    pthread_mutex_t pmu;
    pthread_cond_t pcv;
    bool paused, pmu_ok;
    uint32_t streams_freed; /* since the last malloc_trim (rly_stream_sweep) */
    /* admin API queries (rly_worker_post_query) from worker 0's thread:
     * q_out is the worker's until it publishes q_done, then the reader's */
    _Atomic uint32_t q_req, q_done, q_rel;
    atomic_int q_notify;
    atomic_bool q_released;
    rtc_buf q_out;
    /* streams with output queued this turn (rly_stream_flush); a connection
     * is listed at most once, so MAX_CONNS bounds it */
    uint32_t *flushq;
    uint32_t n_flushq;
};


static inline int ep_add(rly_worker *w, int fd, uint32_t events, uint64_t data)
{
    struct epoll_event ev = {.events = events, .data.u64 = data};
    return epoll_ctl(w->ep, EPOLL_CTL_ADD, fd, &ev);
}

/* Refuse new allocations and connections; the main thread decides when the
 * drain is over (no allocation left in any worker, or the deadline) and
 * then posts stop: a worker that stopped alone would leave its SO_REUSEPORT
 * sockets open and unread. */
static inline void rly_worker_start_drain(rly_worker *w)
{
    if (w->draining)
        return;
    w->draining = true;
    w->turn.draining = true;
    atomic_store(&w->draining_pub, true);
}

/* ---- rly_udp.c (the per-packet part is rly_udp_path.h) ---- */
void rly_udp_init(rly_worker *w); /* point the receive headers at their slots */
/* Send everything queued, one sendmmsg per destination socket (order kept
 * per socket). The slots stay reserved: only rly_udp_recycle frees them. */
void rly_udp_flush(rly_worker *w);
/* A STUN response to a UDP client: sent at once, after what is queued. */
void rly_udp_send_response(rly_worker *w, uint16_t listener, const rtc_addr *to,
                           const uint8_t *p, size_t n);
/* rly_io callbacks (ctx is the worker) */
int rly_udp_relay_open(void *ctx, const rtc_addr *ip, bool even, uint16_t port,
                       rtc_addr *bound);
int rly_udp_relay_attach(void *ctx, int fd, uint32_t id);
void rly_udp_relay_close(void *ctx, int fd, const rtc_addr *bound);
int rly_udp_send_peer(void *ctx, int fd, const rtc_addr *peer, const uint8_t *data, size_t len);

/* ---- rly_stream.c ---- */
/* Queue a frame for connection idx (dropped whole when the queue is full). */
void rly_stream_send(rly_worker *w, uint32_t idx, const uint8_t *p, size_t n);
void rly_stream_accept(rly_worker *w, int lfd, uint8_t proto, uint16_t listener);
void rly_stream_event(rly_worker *w, uint32_t idx, uint32_t events);
/* End of a loop turn: the turn of streams with input left over, then the
 * deferred closes. */
void rly_stream_pending(rly_worker *w);
/* Write what rly_stream_send queued this turn: one write per connection. */
void rly_stream_flush(rly_worker *w);
void rly_stream_reap(rly_worker *w);
/* Once a second: auth and idle timeouts, listeners paused by EMFILE. */
void rly_stream_sweep(rly_worker *w);
void rly_stream_free_all(rly_worker *w);

/* ---- rly_worker_takeover.c ---- */
/* A descriptor handed over by the old process, now the worker's (made
 * non-blocking): -1 when idx is RLY_TO_NONE. */
int rly_worker_adopt_fd(const rly_worker_params *p, uint32_t idx);

#endif
