/* rly_stream.c - a worker's TCP and TLS client connections (RFC 8656
 * s.3.1; see rly_worker_int.h).
 *
 * Connections live in a slot table (epoll data carries the slot index).
 * They are edge-triggered and read until EAGAIN, up to CONN_BUDGET frames a
 * turn; output goes through a bounded per-connection queue. Closes are
 * deferred to the end of the event batch so a later event of the same batch
 * never sees a reused slot. */
#include <errno.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rly_iplimit.h"
#include "rly_worker_int.h"
#include "rtc_log.h"
#include "stn_frame.h"

typedef struct rly_conn {
    int fd;
    uint8_t proto; /* RLY_TCP / RLY_TLS */
    uint16_t listener;
    bool closing;
    bool pending; /* on w->pend: input left over from its last turn */
    bool queued;  /* on w->flushq: output to write at the end of the turn */
    rtc_addr client;
    rly_tls_conn *tls; /* RLY_TLS: made when the client's first bytes arrive */
    bool hs_counted;   /* holds a handshake slot (rly_iplimit_hs_take) */
    bool authed; /* has made an allocation: buffers may grow, no auth timeout */
    uint8_t *in;
    size_t in_len, in_cap;
    uint8_t *out;
    size_t out_off, out_len, out_cap;
    uint64_t born_ms;
} rly_conn;

/* A queued datagram: its bytes stay in a receive slot until the flush. */

/* ---- stream connections ---- */

static void conn_close_later(rly_worker *w, uint32_t idx)
{
    rly_conn *c = w->conns[idx];
    if (c->closing)
        return;
    c->closing = true;
    w->closing[w->n_closing++] = idx;
}

static void conn_free(rly_worker *w, uint32_t idx)
{
    rly_conn *c = w->conns[idx];
    rly_tuple tu = {.client = c->client, .listener = c->listener, .proto = c->proto};
    rly_turn_tuple_gone(&w->turn, &tu);
    if (c->hs_counted)
        rly_iplimit_hs_give(w->iplimit, &c->client);
    rly_iplimit_give(w->iplimit, &c->client, c->authed);
    rly_tls_conn_free(c->tls);
    epoll_ctl(w->ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c->in);
    free(c->out);
    free(c);
    w->conns[idx] = NULL;
    w->streams_freed++;
}

static long conn_write(rly_conn *c, const uint8_t *p, size_t n)
{
    if (c->tls)
        return rly_tls_write(c->tls, p, n);
    if (c->proto == RLY_TLS)
        return -EIO; /* no session yet: never plaintext on a TLS listener */
    {
        ssize_t rc = send(c->fd, p, n, MSG_NOSIGNAL);
        return rc < 0 ? -errno : rc;
    }
}

/* Write out what is queued; -1 when the connection is broken. */
static int conn_flush(rly_conn *c)
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

/* A connection that has not authenticated and waits for its client keeps
 * no empty buffers: thousands of idle pre-auth connections must cost little
 * more than their slot (issue 14 item 2). Authenticated ones keep theirs
 * (they carry media; no malloc per packet). */
static void idle_buffers(rly_conn *c)
{
    if (c->authed)
        return;
    if (!c->in_len) {
        free(c->in);
        c->in = NULL;
        c->in_cap = 0;
    }
    if (!c->out_len) {
        free(c->out);
        c->out = NULL;
        c->out_cap = c->out_off = 0;
    }
}

/* Queue a frame for the client; dropped whole when the queue is full (a
 * client that stops reading cannot make the relay buffer without bound).
 * Written at the end of the loop turn (rly_stream_flush): the frames one
 * turn relays to a connection leave in one send, over TLS in one record,
 * instead of one each (issue 16 item 2). */
void rly_stream_send(rly_worker *w, uint32_t idx, const uint8_t *p, size_t n)
{
    rly_conn *c = w->conns[idx];
    if (!c || c->closing)
        return;
    if (c->out && c->out_len && c->out_off + c->out_len + n > c->out_cap && conn_flush(c)) {
        conn_close_later(w, idx); /* full: what is queued goes first */
        return;
    }
    if (!c->out) { /* made when first needed (idle_buffers gives it back) */
        if (!(c->out = malloc(CONN_INIT_CAP))) {
            w->turn.stats.dropped[RLY_DROP_BACKPRESSURE]++;
            return;
        }
        c->out_cap = CONN_INIT_CAP;
    }
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
    if (!c->queued) {
        c->queued = true;
        w->flushq[w->n_flushq++] = idx;
    }
}

void rly_stream_flush(rly_worker *w)
{
    uint32_t nq = w->n_flushq;
    w->n_flushq = 0;
    for (uint32_t i = 0; i < nq; i++) {
        uint32_t idx = w->flushq[i];
        rly_conn *c = w->conns[idx];
        if (!c || !c->queued)
            continue;
        c->queued = false;
        /* (a closing connection too: its last answers go out, as they did
         * when every frame was written at once) */
        if (conn_flush(c))
            conn_close_later(w, idx);
    }
}


/* A client's frame to the engine; the answer is queued on its stream. */
static void frame_input(rly_worker *w, const rly_tuple *tu, uint32_t idx, const uint8_t *buf,
                        size_t len)
{
    rly_input in = {.tuple = tu,
                    .conn = (int)idx,
                    .buf = buf,
                    .len = len,
                    .now_ms = w->now_ms,
                    .wall_s = w->wall_s};
    size_t rl = rly_turn_input(&w->turn, &in, w->resp, sizeof w->resp);
    if (rl)
        rly_stream_send(w, idx, w->resp, rl);
}

/* Split the stream into STUN / ChannelData frames (RFC 8656 s.3.1): hand up
 * to *budget whole frames of the connection's input to the engine; what is
 * left stays buffered for the next turn. */
static void conn_frames(rly_worker *w, uint32_t idx, uint32_t *budget)
{
    rly_conn *c = w->conns[idx];
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
        frame_input(w, &tu, idx, c->in + off, (size_t)fl);
        c = w->conns[idx];
        off += (size_t)fl;
        (*budget)--;
        if (!c->authed && rly_table_find(w->turn.table, &tu)) {
            /* an Allocate passed authentication: the connection now counts
             * against its credential's quota, no longer against its
             * address's pre-auth cap (issue 14 item 9) */
            if (c->hs_counted) { /* (the handshake is done before any frame) */
                rly_iplimit_hs_give(w->iplimit, &c->client);
                c->hs_counted = false;
            }
            rly_iplimit_authed(w->iplimit, &c->client);
            c->authed = true;
            if (c->tls)
                rly_tls_conn_busy(c->tls);
        }
    }
    if (off) {
        memmove(c->in, c->in + off, c->in_len - off);
        c->in_len -= off;
    }
}

void rly_stream_event(rly_worker *w, uint32_t idx, uint32_t events)
{
    rly_conn *c = idx < w->n_conns_cap ? w->conns[idx] : NULL;
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
        return; /* (a TLS session may need EPOLLOUT to go on reading) */
    uint32_t budget = CONN_BUDGET;
    if (c->in_len) { /* frames left over from the last turn go first */
        conn_frames(w, idx, &budget);
        if (c->closing)
            return;
    }
    for (;;) {
        long rc;
        bool drained = false;
        if (!budget) { /* more may be waiting: come back next turn */
            if (!c->pending && w->n_pend < 2 * MAX_CONNS) {
                c->pending = true;
                w->pend[w->n_pend++] = idx;
            }
            return;
        }
        if (!c->in && (c->in = malloc(CONN_INIT_CAP)))
            c->in_cap = CONN_INIT_CAP; /* made when first needed, like out */
        if (c->in_len >= c->in_cap) {
            conn_close_later(w, idx);
            return;
        }
        if (c->proto == RLY_TLS && !c->tls) {
            /* OpenSSL allocates its handshake and record buffers (~35 KB)
             * as soon as the handshake is driven: not before the client
             * has sent something (a connection that never does costs only
             * its slot) */
            uint8_t b;
            ssize_t n = recv(c->fd, &b, 1, MSG_PEEK);
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
                return;
            if (n <= 0 || !(c->tls = rly_tls_conn_new(w->tls, c->fd))) {
                conn_close_later(w, idx);
                return;
            }
        }
        if (c->tls) {
            rc = rly_tls_read(c->tls, c->in + c->in_len, c->in_cap - c->in_len, &drained);
            if (c->hs_counted && rly_tls_handshake_done(c->tls)) {
                rly_iplimit_hs_give(w->iplimit, &c->client);
                c->hs_counted = false;
            }
        } else {
            ssize_t n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
            rc = n < 0 ? -errno : n;
            /* a short read emptied the socket: edge-triggered epoll reports
             * the next bytes, so no recv just to hear EAGAIN (one syscall a
             * message less at paced loads) */
            drained = n > 0 && (size_t)n < c->in_cap - c->in_len;
        }
        if (rc == -EAGAIN || rc == -EWOULDBLOCK || rc == -EINTR) {
            if (c->tls && conn_flush(c))
                conn_close_later(w, idx);
            else
                idle_buffers(c);
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
        /* as on EAGAIN, without asking for it; not when the peer's FIN came
         * with this event: only a recv returning 0 sees it, and no later
         * event would come to say it again */
        if (drained && budget && !(events & EPOLLRDHUP)) {
            if (c->tls && conn_flush(c))
                conn_close_later(w, idx);
            else
                idle_buffers(c);
            return;
        }
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

void rly_stream_accept(rly_worker *w, int lfd, uint8_t proto, uint16_t listener)
{
    for (int n = 0; n < 64; n++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int one = 1, fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        uint32_t idx;
        rtc_addr client;
        rly_conn *c;

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
        if (!rly_iplimit_take(w->iplimit, &client, w->turn.cfg->lim.max_tcp_per_ip,
                              w->turn.cfg->lim.max_preauth_per_ip)) {
            if (rtc_log_ratelimit_ok(&w->warn_rl, w->now_ms)) {
                char cl[RTC_ADDR_STRLEN];
                uint32_t all, pre;
                rtc_addr_format(&client, false, cl);
                rly_iplimit_count(w->iplimit, &client, &all, &pre);
                if (all >= w->turn.cfg->lim.max_tcp_per_ip)
                    RTC_LOG(RTC_LOG_WARN, NULL,
                            "refusing stream from %s: max-tcp-per-ip (%u) reached", cl,
                            (unsigned)w->turn.cfg->lim.max_tcp_per_ip);
                else
                    RTC_LOG(RTC_LOG_WARN, NULL,
                            "refusing stream from %s: max-preauth-per-ip (%u) connections "
                            "without an allocation", cl,
                            (unsigned)w->turn.cfg->lim.max_preauth_per_ip);
            }
            close(fd);
            continue;
        }
        if (proto == RLY_TLS &&
            !rly_iplimit_hs_take(w->iplimit, &client, w->turn.cfg->lim.max_tls_handshakes_per_ip,
                                 w->turn.cfg->lim.max_tls_handshakes)) {
            if (rtc_log_ratelimit_ok(&w->warn_rl, w->now_ms)) {
                char cl[RTC_ADDR_STRLEN];
                rtc_addr_format(&client, false, cl);
                RTC_LOG(RTC_LOG_WARN, NULL,
                        "refusing TLS stream from %s: max-tls-handshakes-per-ip (%u) or "
                        "max-tls-handshakes (%u) reached",
                        cl, (unsigned)w->turn.cfg->lim.max_tls_handshakes_per_ip,
                        (unsigned)w->turn.cfg->lim.max_tls_handshakes);
            }
            rly_iplimit_give(w->iplimit, &client, false);
            close(fd);
            continue;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        c = calloc(1, sizeof *c);
        if (!c)
            goto out_free;
        c->hs_counted = proto == RLY_TLS; /* (out_free gives it back) */
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
        if (proto == RLY_TLS)
            rly_iplimit_hs_give(w->iplimit, &client);
        if (c) {
            rly_tls_conn_free(c->tls);
            free(c->in);
            free(c->out);
            free(c);
        }
        rly_iplimit_give(w->iplimit, &client, false);
        close(fd);
    }
}

/* Close streams that have not authenticated (TLS handshake included)
 * within --tcp-auth-timeout, and streams without an allocation after
 * CONN_IDLE_MS; resume listeners paused by EMFILE. */
void rly_stream_sweep(rly_worker *w)
{
    uint64_t auth_ms = (uint64_t)w->turn.cfg->lim.tcp_auth_timeout_s * 1000u;
    if (w->accept_paused)
        pause_listeners(w, false);
#ifdef __GLIBC__
    /* Many streams went away (a flood of idle TLS connections timed out):
     * hand the freed heap back to the kernel. glibc keeps it otherwise,
     * and the holes the handshake buffers left are too scattered for its
     * own trimming; at most once a sweep, so the cost (a walk of the
     * arenas) stays off the packet path. */
    if (w->streams_freed >= 64) {
        malloc_trim(0);
        w->streams_freed = 0;
    }
#endif
    for (uint32_t i = 0; i < w->n_conns_cap; i++) {
        rly_conn *c = w->conns[i];
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


void rly_stream_pending(rly_worker *w)
{
    uint32_t np = w->n_pend;

    /* their next turn, after everyone else's */
    w->n_pend = 0;
    for (uint32_t i = 0; i < np; i++) {
        uint32_t idx = w->pend[i];
        rly_conn *c = w->conns[idx];
        if (c && c->pending) {
            c->pending = false;
            /* (EPOLLRDHUP: read on to EAGAIN; the FIN that may have come
             * with the event that left it pending is not reported again) */
            rly_stream_event(w, idx, EPOLLIN | EPOLLRDHUP);
        }
    }
}

void rly_stream_reap(rly_worker *w)
{
    for (uint32_t i = 0; i < w->n_closing; i++)
        conn_free(w, w->closing[i]);
    w->n_closing = 0;
}

void rly_stream_free_all(rly_worker *w)
{
    if (w->conns)
        for (uint32_t i = 0; i < w->n_conns_cap; i++)
            if (w->conns[i])
                conn_free(w, i);
}
