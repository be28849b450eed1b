/* rly_udp_path.h - a worker's per-packet UDP path (rly_udp.c has the rest
 * of UDP): receive batches, the engine's input, the send queue.
 *
 * Static inline on purpose: the loop (rly_worker.c) runs rly_udp_event and
 * rly_udp_relay_event for every batch and the engine's send_peer callback
 * (rly_udp.c) queues every relayed datagram; compiled into each of the two
 * files, the path makes no call across files per packet (relay_hotpath
 * counts the instructions: as calls between the files they cost 8 more per
 * packet). Include it from those two files only. */
#ifndef RLY_UDP_PATH_H
#define RLY_UDP_PATH_H

#include <string.h>

#include "rly_worker_int.h"

/* Free every receive slot (flushes first: queued datagrams live in them).
 * Never while a received batch is being processed. recvmmsg wrote the
 * sender's address length into the slots it filled: restore it. */
static inline void rly_udp_recycle(rly_worker *w)
{
    if (w->n_tx)
        rly_udp_flush(w);
    for (uint32_t i = 0; i < w->n_used; i++)
        w->mm[i].msg_hdr.msg_namelen = sizeof w->from[i];
    w->n_used = 0;
}

/* Queue a datagram; p stays in its receive slot until the flush. */
static inline void tx_queue(rly_worker *w, int fd, const rtc_addr *to, const uint8_t *p,
                            size_t n)
{
    tx_ent *e;
    if (w->n_tx == TX_MAX)
        rly_udp_flush(w);
    e = &w->tx[w->n_tx++];
    e->fd = fd;
    e->p = p;
    e->len = n;
    e->tolen = rtc_addr_to_sockaddr(to, &e->to);
}

/* Does [p, p+n) sit in a receive slot with RLY_HEADROOM before it and 4
 * spare bytes after it (so the engine may frame it in place)? */
static inline bool in_slot(const rly_worker *w, const uint8_t *p, size_t n)
{
    uintptr_t base = (uintptr_t)w->slots, a = (uintptr_t)p, off;
    if (a < base || a >= base + (uintptr_t)RX_SLOTS * SLOT_CAP)
        return false;
    off = (a - base) % SLOT_CAP;
    return off >= RLY_HEADROOM && off + n + 4 <= SLOT_CAP;
}

/* A frame for allocation a's client: queued on UDP (p must stay valid until
 * the flush), copied into the connection's queue on TCP/TLS. */
static inline void to_client(rly_worker *w, const rly_alloc *a, const uint8_t *p, size_t n)
{
    if (a->tuple.proto == RLY_UDP)
        tx_queue(w, w->udp_fd[a->tuple.listener], &a->tuple.client, p, n);
    else if (a->conn >= 0)
        rly_stream_send(w, (uint32_t)a->conn, p, n);
}

/* A UDP client's message to the engine; the answer goes straight back. */
static inline void client_input(rly_worker *w, const rly_tuple *tu, const uint8_t *buf, size_t len)
{
    rly_input in = {.tuple = tu,
                    .conn = -1,
                    .buf = buf,
                    .len = len,
                    .now_ms = w->now_ms,
                    .wall_s = w->wall_s};
    size_t rl = rly_turn_input(&w->turn, &in, w->resp, sizeof w->resp);
    if (rl)
        rly_udp_send_response(w, tu->listener, &tu->client, w->resp, rl);
}

/* How many datagrams to ask a socket for. A relayed socket carries one call
 * leg (50 datagrams/s for audio), and a listener at low rates wakes the
 * worker for one datagram: a recvmmsg of UDP_BATCH then takes it and tries
 * the socket a second time inside the kernel for nothing (another msghdr
 * and iovec copied in, another lock), so one is asked for (recvfrom)
 * unless the socket is hot or a single read of it was less than
 * RX_AGAIN_US ago (then it left datagrams behind: level-triggered epoll
 * reports the socket again at once, not after a sleep). A read that gets
 * two or more makes the socket hot; it cools down after RX_COOL batch reads
 * in a row that got one or none, so a socket whose reads get one to three
 * keeps its batches (going cold at every single would cost it an extra
 * loop turn each time). *st is the socket's state (fd_turn, udp_turn):
 * RX_HOT - k (hot, k misses), the time of a single read in µs (low 32
 * bits, below the hot values and never 0), or 0 (cold). */
#define RX_AGAIN_US 50u
#define RX_COOL 8u
static inline uint32_t rx_vlen(const rly_worker *w, uint32_t st)
{
    return st > RX_HOT - RX_COOL || (st && (uint32_t)w->turn.now_us - st < RX_AGAIN_US)
               ? UDP_BATCH
               : 1;
}

static inline void rx_learn(const rly_worker *w, uint32_t *st, uint32_t vlen, int got)
{
    uint32_t now = (uint32_t)w->turn.now_us;
    if (vlen == 1)
        *st = got == 1 ? (now == 0 || now > RX_HOT - RX_COOL ? 1 : now) : 0;
    else if (got >= 2)
        *st = RX_HOT;
    else
        *st = *st > RX_HOT - RX_COOL + 1 ? *st - 1 : 0;
}

/* One recvmmsg of up to vlen datagrams into free receive slots (recycling
 * them all first when fewer than UDP_BATCH are left). Returns the number of
 * datagrams; they are slots *first, *first + 1, ... (w->mm, w->from are
 * indexed by slot and point at their slot for good, so nothing is set up per
 * call). */
static inline int rx_batch(rly_worker *w, int fd, uint32_t *first, uint32_t *st)
{
    uint32_t vlen = rx_vlen(w, *st);
    int got;

    if (RX_SLOTS - w->n_used < UDP_BATCH)
        rly_udp_recycle(w);
    if (vlen == 1) {
        /* recvfrom: the kernel builds the msghdr itself instead of copying
         * an mmsghdr and its iovec in and msg_len out */
        struct mmsghdr *m = &w->mm[w->n_used];
        ssize_t n = recvfrom(fd, m->msg_hdr.msg_iov->iov_base, m->msg_hdr.msg_iov->iov_len,
                             MSG_DONTWAIT, (struct sockaddr *)m->msg_hdr.msg_name,
                             &m->msg_hdr.msg_namelen);
        got = n < 0 ? -1 : 1;
        m->msg_len = n < 0 ? 0 : (unsigned)n;
    } else {
        got = recvmmsg(fd, w->mm + w->n_used, vlen, MSG_DONTWAIT, NULL);
    }
    rx_learn(w, st, vlen, got);
    if (got <= 0)
        return 0;
    *first = w->n_used;
    w->n_used += (uint32_t)got;
    return got;
}

static inline void rly_udp_event(rly_worker *w, uint16_t listener)
{
    uint32_t first = 0;
    int got = rx_batch(w, w->udp_fd[listener], &first, &w->udp_turn[listener]);

    w->rx_busy = true;
    for (int k = 0; k < got; k++) {
        rly_tuple tu = {.listener = listener, .proto = RLY_UDP};
        const uint8_t *p = w->slots + (size_t)(first + (uint32_t)k) * SLOT_CAP + RLY_HEADROOM;
        uint32_t i = first + (uint32_t)k;
        rtc_addr_from_sockaddr(&tu.client, (struct sockaddr *)&w->from[i]);
        client_input(w, &tu, p, w->mm[i].msg_len);
    }
    w->rx_busy = false;
}

static inline void rly_udp_relay_event(rly_worker *w, uint32_t fd)
{
    uint32_t owner = fd < w->n_fd_owner ? w->fd_owner[fd] : 0, id = owner - 1;
    rly_alloc *a = owner ? rly_table_get(w->turn.table, id) : NULL;
    uint32_t first = 0;
    int got;

    if (!a)
        return;
    got = rx_batch(w, (int)fd, &first, &w->fd_turn[fd]);
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

#endif
