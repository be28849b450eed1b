/* rly_udp.c - a worker's UDP data path (see rly_worker_int.h).
 *
 * Datagrams land in a fixed pool of receive slots, each with RLY_HEADROOM
 * in front so the engine writes ChannelData / Data-indication headers in
 * place (docs/performance.md, "Profile"). What the engine relays is not sent
 * at once but queued (pointing into its slot) and sent at the end of the
 * loop iteration with one sendmmsg per destination socket, so a burst over
 * many allocations costs a few syscalls instead of two per packet. Slots are
 * recycled only after the queue is flushed. A datagram sent to a relayed
 * address this worker owns (both members of a call relayed by this server)
 * is handed to that allocation directly instead of through the kernel: the
 * same checks and counters, one sendmmsg and one recvmmsg fewer per packet.
 * UDP sockets are level-triggered and read with one recvmmsg per event (a
 * bounded batch, for fairness). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "rly_ports.h"
#include "rly_udp_path.h"
#include "rly_worker_int.h"

/* ---- the rly_io callbacks of the engine ---- */

int rly_udp_relay_open(void *ctx, const rtc_addr *ip, bool even, uint16_t port,
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
    if (k == 1) {
        /* one datagram for this socket (a relayed socket in peer mode, the
         * listener at low rates): sendto builds its msghdr in the kernel,
         * where sendmmsg copies the mmsghdr and its iovec in and msg_len out */
        const struct msghdr *h = &w->tx_mm[0].msg_hdr;
        ssize_t rc;
        do
            rc = sendto(fd, h->msg_iov->iov_base, h->msg_iov->iov_len, 0,
                        (const struct sockaddr *)h->msg_name, h->msg_namelen);
        while (rc < 0 && errno == EINTR);
        if (rc < 0)
            w->turn.stats.dropped[RLY_DROP_SEND_ERROR]++;
        return;
    }
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
 * per socket, groups in the order of their first entry). The slots stay
 * reserved: only rly_udp_recycle() frees them. One pass groups the entries:
 * in peer mode most of a turn's entries go to different relayed sockets,
 * and comparing each with every later one cost O(n^2) per flush. */
void rly_udp_flush(rly_worker *w)
{
    uint32_t n = w->n_tx, ng = 0, gen;

    if (n == 1) { /* one datagram per turn: the common case at low rates */
        tx_ent *e = &w->tx[0];
        w->tx_iov[0].iov_base = (void *)(uintptr_t)e->p;
        w->tx_iov[0].iov_len = e->len;
        w->tx_mm[0].msg_hdr = (struct msghdr){.msg_name = &e->to, .msg_namelen = e->tolen,
                                            .msg_iov = &w->tx_iov[0], .msg_iovlen = 1};
        send_group(w, e->fd, 1);
        w->n_tx = 0;
        return;
    }
    gen = ++w->tx_gen;
    if (gen == 0) { /* wrapped: stale stamps could match again */
        memset(w->tx_grp, 0, sizeof w->tx_grp);
        gen = w->tx_gen = 1;
    }
    for (uint32_t i = 0; i < n; i++) {
        int fd = w->tx[i].fd;
        uint32_t h = ((uint32_t)fd * 2654435761u) >> 24; /* TX_GRP = 256 */
        /* bounded: at most TX_MAX of the TX_GRP entries are in use */
        while (w->tx_grp[h].gen == gen && w->tx_grp[h].fd != fd)
            h = (h + 1) & (TX_GRP - 1);
        w->tx_next[i] = UINT16_MAX;
        if (w->tx_grp[h].gen == gen) {
            w->tx_next[w->tx_grp[h].tail] = (uint16_t)i;
            w->tx_grp[h].tail = (uint16_t)i;
        } else {
            w->tx_grp[h].gen = gen;
            w->tx_grp[h].fd = fd;
            w->tx_grp[h].head = w->tx_grp[h].tail = (uint16_t)i;
            w->tx_gorder[ng++] = (uint16_t)h;
        }
    }
    for (uint32_t g = 0; g < ng; g++) {
        uint32_t k = 0;
        for (uint32_t j = w->tx_grp[w->tx_gorder[g]].head; j != UINT16_MAX; j = w->tx_next[j]) {
            tx_ent *e = &w->tx[j];
            w->tx_iov[k].iov_base = (void *)(uintptr_t)e->p;
            w->tx_iov[k].iov_len = e->len;
            w->tx_mm[k].msg_hdr = (struct msghdr){.msg_name = &e->to, .msg_namelen = e->tolen,
                                                .msg_iov = &w->tx_iov[k], .msg_iovlen = 1};
            k++;
        }
        send_group(w, w->tx_grp[w->tx_gorder[g]].fd, k);
    }
    w->n_tx = 0;
}


/* Point each slot's receive header at its slot, once. */
void rly_udp_init(rly_worker *w)
{
    for (uint32_t i = 0; i < RX_SLOTS; i++) {
        w->iov[i].iov_base = w->slots + (size_t)i * SLOT_CAP + RLY_HEADROOM;
        w->iov[i].iov_len = 65536;
        w->mm[i].msg_hdr = (struct msghdr){.msg_name = &w->from[i],
                                            .msg_namelen = sizeof w->from[i],
                                            .msg_iov = &w->iov[i], .msg_iovlen = 1};
    }
}



/* A free receive slot (for a copy), or NULL when all are taken. */
static uint8_t *take_slot(rly_worker *w)
{
    if (w->n_used == RX_SLOTS)
        return NULL;
    return w->slots + (size_t)w->n_used++ * SLOT_CAP;
}

/* ---- the rly_io callbacks of the engine ---- */

int rly_udp_relay_attach(void *ctx, int fd, uint32_t id)
{
    rly_worker *w = ctx;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    rtc_addr bound;

    if (fd < 0)
        return -EBADF;
    if ((uint32_t)fd >= w->n_fd_owner) {
        uint32_t nn = (uint32_t)fd * 2 + 64;
        uint32_t *no = realloc(w->fd_owner, nn * sizeof *no), *nt;
        if (!no)
            return -ENOMEM;
        w->fd_owner = no; /* the old size still holds: n_fd_owner stays */
        nt = realloc(w->fd_turn, nn * sizeof *nt);
        if (!nt)
            return -ENOMEM;
        w->fd_turn = nt;
        memset(no + w->n_fd_owner, 0, (nn - w->n_fd_owner) * sizeof *no);
        memset(nt + w->n_fd_owner, 0, (nn - w->n_fd_owner) * sizeof *nt);
        w->n_fd_owner = nn;
    }
    /* the event names the socket, not the allocation: a dual allocation
     * (RFC 8656 s.7.2) has two; fd_owner leads to the allocation */
    if (ep_add(w, fd, EPOLLIN, EV_DATA(T_RELAY, fd)))
        return -errno;
    w->fd_owner[fd] = id + 1;
    w->fd_turn[fd] = 0;
    if (!getsockname(fd, (struct sockaddr *)&ss, &sl)) {
        rtc_addr_from_sockaddr(&bound, (struct sockaddr *)&ss);
        if (bound.family == AF_INET || bound.family == AF_INET6)
            w->port_owner[bound.family == AF_INET6][bound.port] = id + 1;
    }
    return 0;
}

void rly_udp_relay_close(void *ctx, int fd, const rtc_addr *bound)
{
    rly_worker *w = ctx;
    /* queued datagrams name sockets by fd: send them before the number can
     * be reused */
    if (w->n_tx)
        rly_udp_flush(w);
    if (fd >= 0 && (uint32_t)fd < w->n_fd_owner && w->fd_owner[fd]) {
        w->fd_owner[fd] = 0;
        w->port_owner[bound->family == AF_INET6][bound->port] = 0;
    }
    epoll_ctl(w->ep, EPOLL_CTL_DEL, fd, NULL);
    rly_ports_close(w->ports, fd, bound);
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
            rly_udp_recycle(w);
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

int rly_udp_send_peer(void *ctx, int fd, const rtc_addr *peer, const uint8_t *data, size_t len)
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


/* A STUN response to a UDP client: sent at once, after what is queued (so
 * a client sees relayed data and answers in the order they were made). */
void rly_udp_send_response(rly_worker *w, uint16_t listener, const rtc_addr *to, const uint8_t *p,
                     size_t n)
{
    struct sockaddr_storage ss;
    socklen_t sl = rtc_addr_to_sockaddr(to, &ss);
    if (w->n_tx)
        rly_udp_flush(w);
    if (sendto(w->udp_fd[listener], p, n, 0, (struct sockaddr *)&ss, sl) < 0)
        w->turn.stats.dropped[RLY_DROP_SEND_ERROR]++;
}





