/* rly_takeover.c - the takeover state blob and its socketpair messages
 * (see rly_takeover.h).
 *
 * Blob layout (big-endian, version 1):
 *   "TSGT" u16 version u16 0 u32 body-length, then the body:
 *   u32 workers, u32 listen, u32 tls, u32 fds, addr[listen], addr[tls],
 *   addr metrics, u32 metrics-fd, 32 bytes nonce key, u64 ok, u64 failed,
 *   per worker: u32 udp-fd, u32 tcp-fd (each listener), u32 tls-fd (each),
 *               u32 allocations, allocation[...]
 * addr = u8 family (0, AF_INET, AF_INET6) 16 bytes ip u16 port.
 * A timer is an i64: its time minus the sender's now, in ms. */
#include "rly_takeover.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rtc_clock.h"
#include "rtc_err.h"
#include "rtc_rd.h"
#include "rtc_wr.h"

static const uint8_t magic[4] = {'T', 'S', 'G', 'T'};

#define ADDR_BYTES 19
/* the largest allocation record: fixed fields, a full username, full
 * permission and channel lists */
#define ALLOC_MAX_BYTES                                                                  \
    (4 + ADDR_BYTES + 3 + 3 * (4 + 2 * ADDR_BYTES) + 3 + 8 + 12 + 4 + 1 + RLY_USER_MAX + \
     1 + 16 + 1 + RLY_MAX_PERMS * (ADDR_BYTES + 8) + 1 + RLY_MAX_CHANS * (ADDR_BYTES + 10))

int rly_to_state_init(rly_to_state *s, uint32_t n_workers, uint32_t n_listen, uint32_t n_tls)
{
    memset(s, 0, sizeof *s);
    s->n_workers = n_workers;
    s->n_listen = n_listen;
    s->n_tls = n_tls;
    s->metrics_fd = RLY_TO_NONE;
    s->listen = calloc(n_listen + 1, sizeof *s->listen);
    s->tls = calloc(n_tls + 1, sizeof *s->tls);
    s->w = calloc(n_workers + 1, sizeof *s->w);
    if (!s->listen || !s->tls || !s->w)
        goto out_oom;
    for (uint32_t i = 0; i < n_workers; i++) {
        rly_to_worker *w = &s->w[i];
        w->udp = calloc(n_listen + 1, sizeof *w->udp);
        w->tcp = calloc(n_listen + 1, sizeof *w->tcp);
        w->tls = calloc(n_tls + 1, sizeof *w->tls);
        if (!w->udp || !w->tcp || !w->tls)
            goto out_oom;
    }
    return 0;
out_oom:
    rly_to_state_dispose(s);
    return -ENOMEM;
}

void rly_to_state_dispose(rly_to_state *s)
{
    for (uint32_t i = 0; s->w && i < s->n_workers; i++) {
        free(s->w[i].udp);
        free(s->w[i].tcp);
        free(s->w[i].tls);
        free(s->w[i].allocs);
        free(s->w[i].src);
        free(s->w[i].src_fd);
    }
    free(s->w);
    free(s->listen);
    free(s->tls);
    memset(s, 0, sizeof *s);
}

/* ---- writer ---- */

static void put_addr(rtc_wr *w, const rtc_addr *a)
{
    rtc_wr_u8(w, a->family);
    rtc_wr_bytes(w, a->ip, 16);
    rtc_wr_u16(w, a->port);
}

static void put_time(rtc_wr *w, uint64_t t, uint64_t now_ms)
{
    int64_t off = (int64_t)(t - now_ms);
    /* an unset timer (0) or one long past: "long ago" says the same */
    if (off < -RLY_TO_MAX_OFFSET_MS)
        off = -RLY_TO_MAX_OFFSET_MS;
    if (off > RLY_TO_MAX_OFFSET_MS)
        off = RLY_TO_MAX_OFFSET_MS;
    rtc_wr_u64(w, (uint64_t)off);
}

static void put_fd(rtc_wr *w, int idx) { rtc_wr_u32(w, idx < 0 ? RLY_TO_NONE : (uint32_t)idx); }

/* fd1 / fd2: the descriptor indexes of its relayed sockets (-1 = none) */
static void put_alloc(rtc_wr *w, const rly_alloc *a, int fd1, int fd2, uint64_t now_ms)
{
    size_t ul = strnlen(a->user, RLY_USER_MAX);
    rtc_wr_u32(w, a->id);
    put_addr(w, &a->tuple.client);
    rtc_wr_u16(w, a->tuple.listener);
    rtc_wr_u8(w, a->tuple.proto);
    put_fd(w, fd1);
    put_addr(w, &a->relayed);
    put_addr(w, &a->advertised);
    put_fd(w, fd2);
    put_addr(w, &a->relayed2);
    put_addr(w, &a->advertised2);
    rtc_wr_u8(w, a->addr_err_family);
    rtc_wr_u16(w, a->addr_err_code);
    put_time(w, a->expiry_ms, now_ms);
    rtc_wr_bytes(w, a->alloc_tid, sizeof a->alloc_tid);
    rtc_wr_u32(w, a->granted_s);
    rtc_wr_u8(w, (uint8_t)ul);
    rtc_wr_bytes(w, a->user, ul);
    rtc_wr_u8(w, a->rest);
    rtc_wr_u64(w, a->bw_tokens);
    put_time(w, a->bw_last_ms, now_ms);
    rtc_wr_u8(w, a->n_perms);
    for (unsigned i = 0; i < a->n_perms; i++) {
        put_addr(w, &a->perms[i].peer);
        put_time(w, a->perms[i].expiry_ms, now_ms);
    }
    rtc_wr_u8(w, a->n_chans);
    for (unsigned i = 0; i < a->n_chans; i++) {
        put_addr(w, &a->chans[i].peer);
        rtc_wr_u16(w, a->chans[i].num);
        put_time(w, a->chans[i].expiry_ms, now_ms);
    }
}

int rly_to_write(const rly_to_state *s, uint64_t now_ms, uint8_t **out, size_t *len)
{
    uint64_t cap = 12 + 16 + (uint64_t)(s->n_listen + s->n_tls + 1) * ADDR_BYTES + 4 + 32 + 16;
    uint8_t *buf;
    rtc_wr w;

    *out = NULL;
    *len = 0;
    for (uint32_t i = 0; i < s->n_workers; i++)
        cap += 4 + (uint64_t)(2 * s->n_listen + s->n_tls) * 4 +
               (uint64_t)s->w[i].n_allocs * ALLOC_MAX_BYTES;
    if (cap > RLY_TO_MAX_BLOB)
        return RTC_ELIMIT;
    if (!(buf = malloc((size_t)cap)))
        return -ENOMEM;
    rtc_wr_init(&w, buf, (size_t)cap);
    rtc_wr_bytes(&w, magic, 4);
    rtc_wr_u16(&w, RLY_TO_VERSION);
    rtc_wr_u16(&w, 0);
    rtc_wr_u32(&w, 0); /* body length, set below */
    rtc_wr_u32(&w, s->n_workers);
    rtc_wr_u32(&w, s->n_listen);
    rtc_wr_u32(&w, s->n_tls);
    rtc_wr_u32(&w, s->n_fds);
    for (uint32_t i = 0; i < s->n_listen; i++)
        put_addr(&w, &s->listen[i]);
    for (uint32_t i = 0; i < s->n_tls; i++)
        put_addr(&w, &s->tls[i]);
    put_addr(&w, &s->metrics);
    rtc_wr_u32(&w, s->metrics_fd);
    rtc_wr_bytes(&w, s->nonce_key, 32);
    rtc_wr_u64(&w, s->takeovers_ok);
    rtc_wr_u64(&w, s->takeovers_failed);
    for (uint32_t i = 0; i < s->n_workers; i++) {
        const rly_to_worker *tw = &s->w[i];
        for (uint32_t j = 0; j < s->n_listen; j++) {
            rtc_wr_u32(&w, tw->udp[j]);
            rtc_wr_u32(&w, tw->tcp[j]);
        }
        for (uint32_t j = 0; j < s->n_tls; j++)
            rtc_wr_u32(&w, tw->tls[j]);
        rtc_wr_u32(&w, tw->n_allocs);
        for (uint32_t k = 0; k < tw->n_allocs; k++) {
            if (tw->src)
                put_alloc(&w, tw->src[k], tw->src_fd[2 * k], tw->src_fd[2 * k + 1], now_ms);
            else
                put_alloc(&w, &tw->allocs[k], tw->allocs[k].relay_fd, tw->allocs[k].relay_fd2,
                          now_ms);
        }
    }
    if (w.overflow) { /* cannot happen: cap is an upper bound */
        free(buf);
        return RTC_ELIMIT;
    }
    *len = rtc_wr_len(&w);
    buf[8] = (uint8_t)((*len - 12) >> 24);
    buf[9] = (uint8_t)((*len - 12) >> 16);
    buf[10] = (uint8_t)((*len - 12) >> 8);
    buf[11] = (uint8_t)(*len - 12);
    *out = buf;
    return 0;
}

/* ---- parser (untrusted input) ---- */

typedef struct {
    rtc_rd r;
    uint64_t now_ms;
    uint32_t n_fds;
    uint8_t *used; /* one byte per descriptor: taken by a field already */
    char *err;
    size_t errlen;
} parser;

static bool fail(parser *p, const char *what)
{
    snprintf(p->err, p->errlen, "takeover state: %s", what);
    return false;
}

static bool get_addr(parser *p, rtc_addr *a, bool may_be_unset)
{
    memset(a, 0, sizeof *a);
    if (!rtc_rd_u8(&p->r, &a->family) || !rtc_rd_copy(&p->r, a->ip, 16) ||
        !rtc_rd_u16(&p->r, &a->port))
        return fail(p, "truncated address");
    if (a->family == 0 && may_be_unset)
        return true;
    if (a->family != AF_INET && a->family != AF_INET6)
        return fail(p, "bad address family");
    if (a->family == AF_INET)
        for (int i = 4; i < 16; i++)
            if (a->ip[i])
                return fail(p, "IPv4 address with stray bytes");
    return true;
}

static bool get_time(parser *p, uint64_t *t)
{
    uint64_t raw;
    int64_t off;
    if (!rtc_rd_u64(&p->r, &raw))
        return fail(p, "truncated timer");
    off = (int64_t)raw;
    if (off < -RLY_TO_MAX_OFFSET_MS || off > RLY_TO_MAX_OFFSET_MS)
        return fail(p, "timer out of range");
    *t = off < 0 && (uint64_t)-off > p->now_ms ? 0 : p->now_ms + (uint64_t)off;
    return true;
}

/* A descriptor index: below the number received, and not used before. */
static bool get_fd(parser *p, uint32_t *idx, bool may_be_none)
{
    if (!rtc_rd_u32(&p->r, idx))
        return fail(p, "truncated descriptor index");
    if (*idx == RLY_TO_NONE && may_be_none)
        return true;
    if (*idx >= p->n_fds)
        return fail(p, "descriptor index out of range");
    if (p->used[*idx])
        return fail(p, "descriptor used twice");
    p->used[*idx] = 1;
    return true;
}

/* Is the binding live or in its 5-minute hold (rly_alloc_bind's test)? */
static bool held(const parser *p, const rly_chan *c)
{
    return p->now_ms < c->expiry_ms + RLY_CHAN_HOLD_MS;
}

static bool get_alloc(parser *p, rly_alloc *a, uint32_t n_listen)
{
    uint32_t fd1, fd2;
    uint8_t ul, rest;

    memset(a, 0, sizeof *a);
    a->conn = -1;
    if (!rtc_rd_u32(&p->r, &a->id) || !get_addr(p, &a->tuple.client, false) ||
        !rtc_rd_u16(&p->r, &a->tuple.listener) || !rtc_rd_u8(&p->r, &a->tuple.proto))
        return fail(p, "truncated allocation");
    if (a->tuple.proto != RLY_UDP)
        return fail(p, "allocation not over UDP");
    if (a->tuple.listener >= n_listen)
        return fail(p, "allocation on an unknown listener");
    if (!get_fd(p, &fd1, false) || !get_addr(p, &a->relayed, false) ||
        !get_addr(p, &a->advertised, true) || !get_fd(p, &fd2, true) ||
        !get_addr(p, &a->relayed2, true) || !get_addr(p, &a->advertised2, true))
        return false;
    a->relay_fd = (int)fd1;
    a->relay_fd2 = fd2 == RLY_TO_NONE ? -1 : (int)fd2;
    if (a->relay_fd2 >= 0 && a->relayed2.family == a->relayed.family)
        return fail(p, "dual allocation with two relayed addresses of one family");
    if (!rtc_rd_u8(&p->r, &a->addr_err_family) || !rtc_rd_u16(&p->r, &a->addr_err_code) ||
        !get_time(p, &a->expiry_ms) || !rtc_rd_copy(&p->r, a->alloc_tid, sizeof a->alloc_tid) ||
        !rtc_rd_u32(&p->r, &a->granted_s) || !rtc_rd_u8(&p->r, &ul))
        return fail(p, "truncated allocation");
    if (a->addr_err_family && a->addr_err_family != AF_INET && a->addr_err_family != AF_INET6)
        return fail(p, "bad address-error family");
    if (ul == 0 || ul > RLY_USER_MAX)
        return fail(p, "bad username length");
    if (!rtc_rd_copy(&p->r, a->user, ul))
        return fail(p, "truncated username");
    if (memchr(a->user, 0, ul))
        return fail(p, "NUL in username");
    if (!rtc_rd_u8(&p->r, &rest) || rest > 1)
        return fail(p, "bad REST flag");
    a->rest = rest;
    if (!rtc_rd_u64(&p->r, &a->bw_tokens) || !get_time(p, &a->bw_last_ms) ||
        !rtc_rd_u8(&p->r, &a->n_perms))
        return fail(p, "truncated allocation");
    if (a->n_perms > RLY_MAX_PERMS)
        return fail(p, "too many permissions");
    for (unsigned i = 0; i < a->n_perms; i++)
        if (!get_addr(p, &a->perms[i].peer, false) || !get_time(p, &a->perms[i].expiry_ms))
            return false;
    if (!rtc_rd_u8(&p->r, &a->n_chans))
        return fail(p, "truncated allocation");
    if (a->n_chans > RLY_MAX_CHANS)
        return fail(p, "too many channels");
    for (unsigned i = 0; i < a->n_chans; i++) {
        rly_chan *c = &a->chans[i];
        if (!get_addr(p, &c->peer, false) || !rtc_rd_u16(&p->r, &c->num) ||
            !get_time(p, &c->expiry_ms))
            return fail(p, "truncated channel");
        if (c->num < 0x4000 || c->num > 0x7FFF)
            return fail(p, "bad channel number");
        /* RFC 8656 s.12: while bound or held, a number names one peer and
         * a peer has one number; lookups return the first match, so a
         * duplicate would shadow (or misroute) a binding. Entries past
         * their hold may repeat both (rly_alloc_bind skips, purge drops
         * them later). */
        for (unsigned j = 0; j < i && held(p, c); j++)
            if (held(p, &a->chans[j]) &&
                (a->chans[j].num == c->num || rtc_addr_equal(&a->chans[j].peer, &c->peer)))
                return fail(p, "channel number or peer bound twice");
    }
    return true;
}

static bool get_worker(parser *p, const rly_to_state *s, rly_to_worker *tw)
{
    for (uint32_t j = 0; j < s->n_listen; j++)
        if (!get_fd(p, &tw->udp[j], false) || !get_fd(p, &tw->tcp[j], false))
            return false;
    for (uint32_t j = 0; j < s->n_tls; j++)
        if (!get_fd(p, &tw->tls[j], false))
            return false;
    if (!rtc_rd_u32(&p->r, &tw->n_allocs))
        return fail(p, "truncated worker");
    /* every record takes more than 64 bytes: a count the rest of the blob
     * cannot hold is a lie, refused before any allocation */
    if (tw->n_allocs > RLY_TO_MAX_ALLOCS || tw->n_allocs > rtc_rd_left(&p->r) / 64)
        return fail(p, "allocation count out of range");
    if (!tw->n_allocs)
        return true;
    tw->allocs = calloc(tw->n_allocs, sizeof *tw->allocs);
    if (!tw->allocs)
        return fail(p, "out of memory");
    for (uint32_t k = 0; k < tw->n_allocs; k++)
        if (!get_alloc(p, &tw->allocs[k], s->n_listen))
            return false;
    return true;
}

int rly_to_parse(const uint8_t *buf, size_t len, uint32_t n_fds_got, uint64_t now_ms,
                 rly_to_state *s, char *err, size_t errlen)
{
    parser p = {.now_ms = now_ms, .err = err, .errlen = errlen};
    uint8_t m[4];
    uint16_t ver, resvd;
    uint32_t body, nw, nl, nt, nf;
    rtc_rd hdr;

    memset(s, 0, sizeof *s);
    rtc_rd_init(&hdr, buf, len);
    if (!rtc_rd_copy(&hdr, m, 4) || memcmp(m, magic, 4) || !rtc_rd_u16(&hdr, &ver) ||
        !rtc_rd_u16(&hdr, &resvd) || !rtc_rd_u32(&hdr, &body))
        return fail(&p, "not a takeover blob"), RTC_EMSG;
    if (ver != RLY_TO_VERSION) {
        snprintf(err, errlen, "takeover state: version %u, this binary speaks %u", ver,
                 RLY_TO_VERSION);
        return RTC_EMSG;
    }
    if (body != rtc_rd_left(&hdr))
        return fail(&p, "length does not match"), RTC_EMSG;
    p.r = hdr;
    if (!rtc_rd_u32(&p.r, &nw) || !rtc_rd_u32(&p.r, &nl) || !rtc_rd_u32(&p.r, &nt) ||
        !rtc_rd_u32(&p.r, &nf))
        return fail(&p, "truncated header"), RTC_EMSG;
    if (nw == 0 || nw > RLY_TO_MAX_WORKERS || nl > RLY_TO_MAX_LISTEN || nt > RLY_TO_MAX_LISTEN ||
        nl + nt == 0)
        return fail(&p, "layout out of range"), RTC_EMSG;
    if (nf > RLY_TO_MAX_FDS || nf != n_fds_got) {
        snprintf(err, errlen, "takeover state: %u descriptors announced, %u received", nf,
                 n_fds_got);
        return RTC_EMSG;
    }
    if (rly_to_state_init(s, nw, nl, nt))
        return fail(&p, "out of memory"), RTC_EMSG;
    s->n_fds = nf;
    p.n_fds = nf;
    p.used = calloc(nf + 1, 1);
    if (!p.used) {
        fail(&p, "out of memory");
        goto out_bad;
    }
    for (uint32_t i = 0; i < nl; i++)
        if (!get_addr(&p, &s->listen[i], false))
            goto out_bad;
    for (uint32_t i = 0; i < nt; i++)
        if (!get_addr(&p, &s->tls[i], false))
            goto out_bad;
    if (!get_addr(&p, &s->metrics, true) || !get_fd(&p, &s->metrics_fd, true))
        goto out_bad;
    if ((s->metrics_fd == RLY_TO_NONE) != (s->metrics.family == 0)) {
        fail(&p, "metrics address and descriptor disagree");
        goto out_bad;
    }
    if (!rtc_rd_copy(&p.r, s->nonce_key, 32) || !rtc_rd_u64(&p.r, &s->takeovers_ok) ||
        !rtc_rd_u64(&p.r, &s->takeovers_failed)) {
        fail(&p, "truncated header");
        goto out_bad;
    }
    for (uint32_t i = 0; i < nw; i++)
        if (!get_worker(&p, s, &s->w[i]))
            goto out_bad;
    if (rtc_rd_left(&p.r)) {
        fail(&p, "trailing bytes");
        goto out_bad;
    }
    free(p.used);
    return 0;
out_bad:
    free(p.used);
    rly_to_state_dispose(s);
    return RTC_EMSG;
}

int rly_to_fds_push(rly_to_fds *f, int fd)
{
    if (f->n == f->cap) {
        uint32_t nc = f->cap ? f->cap * 2 : 64;
        int *nv = realloc(f->v, nc * sizeof *nv);
        if (!nv)
            return -ENOMEM;
        f->v = nv;
        f->cap = nc;
    }
    f->v[f->n] = fd;
    return (int)f->n++;
}

/* ---- messages ---- */

int rly_to_msg_send(int sock, const char tag[4], const void *p, size_t n, const int *fds,
                    size_t n_fds)
{
    struct iovec iov[2] = {{.iov_base = (void *)(uintptr_t)tag, .iov_len = 4},
                           {.iov_base = (void *)(uintptr_t)p, .iov_len = n}};
    union {
        struct cmsghdr h;
        char b[CMSG_SPACE(sizeof(int) * RLY_TO_FDS_PER_MSG)];
    } ctl;
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = n ? 2 : 1};

    if (n_fds > RLY_TO_FDS_PER_MSG)
        return -EINVAL;
    if (n_fds) {
        struct cmsghdr *c;
        memset(&ctl, 0, sizeof ctl);
        mh.msg_control = ctl.b;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * n_fds);
        c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * n_fds);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * n_fds);
    }
    for (;;) {
        ssize_t rc = sendmsg(sock, &mh, MSG_NOSIGNAL);
        if (rc >= 0)
            return 0;
        if (errno != EINTR)
            return -errno;
    }
}

long rly_to_msg_recv(int sock, char tag[4], void *buf, size_t cap, int *fds, size_t fds_cap,
                     size_t *n_fds, uint64_t deadline_ms)
{
    union {
        struct cmsghdr h;
        char b[CMSG_SPACE(sizeof(int) * RLY_TO_FDS_PER_MSG)];
    } ctl;
    struct iovec iov[2] = {{.iov_base = tag, .iov_len = 4}, {.iov_base = buf, .iov_len = cap}};
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = 2, .msg_control = ctl.b,
                        .msg_controllen = sizeof ctl.b};
    size_t got_fds = 0;
    bool too_many = false;
    ssize_t rc;

    *n_fds = 0;
    for (;;) {
        struct pollfd pfd = {.fd = sock, .events = POLLIN};
        uint64_t now = rtc_clock_mono_ms();
        int pr;
        if (now >= deadline_ms)
            return -ETIMEDOUT;
        pr = poll(&pfd, 1, (int)(deadline_ms - now));
        if (pr < 0 && errno != EINTR)
            return -errno;
        if (pr > 0)
            break;
    }
    do
        rc = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    while (rc < 0 && errno == EINTR);
    if (rc < 0)
        return -errno;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
        size_t k;
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < k; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
            if (got_fds < fds_cap) {
                fds[got_fds++] = fd;
            } else {
                close(fd);
                too_many = true;
            }
        }
    }
    if (too_many || (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) {
        for (size_t i = 0; i < got_fds; i++)
            close(fds[i]);
        return -EMSGSIZE;
    }
    if (rc < 4) {
        for (size_t i = 0; i < got_fds; i++)
            close(fds[i]);
        return rc == 0 ? -EPIPE : -EPROTO;
    }
    *n_fds = got_fds;
    return (long)(rc - 4);
}
