/* turnload.c - tsunagu-turnload: a TURN load generator on one core.
 *
 * Why it exists: turnutils_uclient spends ~100 ms per client connecting,
 * measures latency in whole milliseconds and sends one packet per syscall,
 * so it cannot saturate a fast relay nor say how much latency it adds. This
 * tool opens N authenticated allocations (long-term credentials, RFC 8489
 * s.9.2), binds a channel (RFC 8656 s.12) or a permission (s.9) to a peer,
 * and relays timestamped, numbered messages at a fixed offered rate (paced
 * by a timerfd, each allocation staggered so the load is smooth) or as fast
 * as it can (flood). Sends and receives are batched (sendmmsg/recvmmsg) and
 * receive times are kernel timestamps (SO_TIMESTAMPNS), so the generator's
 * own queueing does not count as server latency.
 *
 * Modes:
 *   pair    allocations relay to each other in pairs (client to client through
 *           the server, like `turnutils_uclient -y`); latency is one-way.
 *   echo    every allocation relays to a UDP echo peer (--peer); latency is a
 *           round trip through the server twice.
 *   direct  no TURN: plain UDP to the echo peer (--peer), the reference for
 *           the physical limit and the baseline latency.
 *   alloc   authenticated Allocate + Refresh(lifetime 0) cycles, as many per
 *           second as the server completes with --concurrency in flight.
 *
 * A relayed packet is one datagram the server receives and forwards: in pair
 * and echo modes every delivered message crossed the server twice (client ->
 * peer, then peer -> client), so relayed = 2 x received. With --server-pid
 * the tool samples the server's CPU (per-thread schedstat in ns, and
 * utime+stime from /proc/PID/stat) and memory around each measured phase
 * only (not the setup), and prints µs of server CPU per relayed packet.
 *
 * --transport tcp carries every client connection over TCP instead (RFC 8656
 * s.3.1 framing: STUN messages and ChannelData padded to 4 on one stream per
 * allocation; the relayed side stays UDP), for pair and echo modes; --transport
 * tls the same inside TLS (OpenSSL; the server's certificate is not verified:
 * this measures servers, it does not protect anything). Over TCP
 * the receive time is taken when the generator reads the stream (no kernel
 * timestamp per frame), so its latency figures include the generator's own
 * queueing; CPU and loss figures are as exact as over UDP.
 *
 * Output: one JSON line per measured phase on stdout; progress and errors on
 * stderr. Every loop is bounded by a deadline. Single-threaded by design:
 * pin it with taskset. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "rtc_addr.h"
#include "rtc_clock.h"
#include "rtc_conf.h"
#include "rtc_crypto.h"
#include "rtc_err.h"
#include "rtc_rd.h"
#include "rtc_tls.h"
#include "rtc_wr.h"
#include "stn_attr.h"
#include "stn_auth.h"
#include "stn_frame.h"
#include "stn_msg.h"

#define TL_MAGIC 0x544C4431u /* "TLD1": marks our payloads */
#define TL_HDR 24            /* magic, flow, seq, send time */
#define TL_BATCH 64          /* messages per sendmmsg / recvmmsg */
#define TL_PKT 2048
#define TL_MAX_ALLOCS 20000
#define TL_MAX_STEPS 64
#define TL_STREAM_IN 16384  /* TCP: receive buffer per connection (frames <= TL_PKT) */
#define TL_STREAM_OUT 65536 /* TCP: bytes a connection may hold back after a short write */

/* ---------- settings ---------- */

typedef struct {
    char *server, *user, *realm, *mode, *peer, *send, *steps, *max_loss, *label, *transport;
    int64_t allocations, size, rate, duration_ms, drain_ms, tick_us, batch, server_pid;
    int64_t concurrency, max_cycles, setup_timeout_ms, window, retries;
} tl_conf;

#define OFF(f) offsetof(tl_conf, f)
static const rtc_conf_spec specs[] = {
    {"server", RTC_CONF_STR, OFF(server), 0, 0, "127.0.0.1:3478", "ADDR:PORT",
     "TURN server (UDP)", rtc_conf_check_hostport, 0},
    {"user", RTC_CONF_STR, OFF(user), 0, 0, "u:p", "NAME:PASSWORD", "long-term credential",
     NULL, RTC_CONF_SECRET},
    {"realm", RTC_CONF_STR, OFF(realm), 0, 0, NULL, "R",
     "realm for the key (default: the one the server sends in its 401)", NULL, 0},
    {"mode", RTC_CONF_STR, OFF(mode), 0, 0, "pair", "pair|echo|direct|alloc",
     "what to measure (see the file comment)", NULL, 0},
    {"peer", RTC_CONF_STR, OFF(peer), 0, 0, NULL, "ADDR:PORT", "UDP echo peer (echo, direct)",
     rtc_conf_check_hostport, 0},
    {"transport", RTC_CONF_STR, OFF(transport), 0, 0, "udp", "udp|tcp|tls",
     "client to server transport; tcp and tls (RFC 8656 s.3.1 framing): pair and echo modes only",
     NULL, 0},
    {"send", RTC_CONF_STR, OFF(send), 0, 0, "channel", "channel|indication",
     "ChannelBind + ChannelData, or CreatePermission + Send indications", NULL, 0},
    {"allocations", RTC_CONF_INT, OFF(allocations), 1, TL_MAX_ALLOCS, "10", "N",
     "allocations (sockets); rounded up to even in pair mode", NULL, 0},
    {"size", RTC_CONF_INT, OFF(size), TL_HDR, 1400, "170", "BYTES", "application payload", NULL,
     0},
    {"rate", RTC_CONF_INT, OFF(rate), 0, 10000000, "0", "MSGS/S",
     "offered messages per second, all allocations together; 0 = flood", NULL, 0},
    {"steps", RTC_CONF_STR, OFF(steps), 0, 0, NULL, "R1,R2,...",
     "run one phase per offered rate on the same allocations, stop after the first lossy one",
     NULL, 0},
    {"max-loss", RTC_CONF_STR, OFF(max_loss), 0, 0, "0.001", "FRACTION",
     "loss above which --steps stops", NULL, 0},
    {"duration-ms", RTC_CONF_INT, OFF(duration_ms), 100, 600000, "3000", "MS",
     "length of each measured phase", NULL, 0},
    {"drain-ms", RTC_CONF_INT, OFF(drain_ms), 0, 10000, "300", "MS",
     "receive-only time after each phase", NULL, 0},
    {"tick-us", RTC_CONF_INT, OFF(tick_us), 50, 100000, "100", "US",
     "pacing timer period: messages due in one period leave together, so a coarse tick makes "
     "arrivals bursty (and lets servers batch: lower CPU per packet than independent calls give)",
     NULL, 0},
    {"batch", RTC_CONF_INT, OFF(batch), 1, TL_BATCH, "16", "N",
     "flood: messages per allocation per round", NULL, 0},
    {"server-pid", RTC_CONF_INT, OFF(server_pid), 0, INT_MAX, "0", "PID",
     "sample this process's CPU and memory around each phase", NULL, 0},
    {"concurrency", RTC_CONF_INT, OFF(concurrency), 1, 4096, "32", "N",
     "alloc mode: sockets cycling at once", NULL, 0},
    {"max-cycles", RTC_CONF_INT, OFF(max_cycles), 0, INT64_MAX / 2, "0", "N",
     "alloc mode: stop after N cycles (0 = only the duration)", NULL, 0},
    {"setup-timeout-ms", RTC_CONF_INT, OFF(setup_timeout_ms), 100, 600000, "60000", "MS",
     "bound on allocating and binding", NULL, 0},
    {"window", RTC_CONF_INT, OFF(window), 1, 4096, "64", "N",
     "setup: transactions in flight", NULL, 0},
    {"retries", RTC_CONF_INT, OFF(retries), 0, 5, "1", "N",
     "--steps: run a lossy step again up to N times before stopping (noise from other "
     "processes can cost one phase its packets)",
     NULL, 0},
    {"label", RTC_CONF_STR, OFF(label), 0, 0, "", "TEXT", "copied into the JSON line", NULL,
     0},
    RTC_CONF_END};

/* ---------- state ---------- */

enum { M_PAIR, M_ECHO, M_DIRECT, M_ALLOC };
enum { W_ALLOC, W_BIND, W_RELEASE };
enum { TX_IDLE, TX_WAIT, TX_DONE, TX_FAIL };

typedef struct {
    int fd;
    rtc_addr relayed; /* XOR-RELAYED-ADDRESS */
    rtc_addr peer;    /* where its data goes */
    uint16_t chan;
    /* the one transaction in flight */
    uint8_t tid[STN_TID_LEN];
    uint8_t step, tries, auth_tries, what;
    uint64_t sent_ns, cycle_ns;
    uint8_t nonce[128];
    size_t nonce_len;
    /* data */
    uint8_t tmpl[TL_PKT];
    size_t tmpl_len, pay_off;
    uint64_t seq;       /* messages sent by this allocation (next sequence number) */
    uint64_t phase_seq; /* seq at the start of the phase */
    uint64_t last_rx_seq;
    uint32_t ovfl; /* last SO_RXQ_OVFL count seen on this socket */
    /* TCP/TLS only: the stream's unparsed input, and output held back by a short write */
    uint8_t *in, *out;
    size_t in_len, out_len;
    SSL *ssl; /* TLS only */
} tl_alloc;

/* Latency histogram: 1 µs buckets to 20 ms, then 1 ms buckets to 10 s. */
#define H_FINE 20000
#define H_COARSE 10000
typedef struct {
    uint32_t fine[H_FINE], coarse[H_COARSE];
    uint64_t over, n, max_ns;
} tl_hist;

typedef struct {
    uint64_t sched_ns, ticks; /* CPU: schedstat over threads; utime+stime */
    long rss_kb, hwm_kb;
    uint64_t sys_busy_ticks; /* whole machine, from /proc/stat */
    uint64_t self_us;
    bool gone; /* --server-pid given but the process is not there */
} tl_snap;

typedef struct {
    tl_conf c;
    int mode;
    bool chan, tcp; /* tcp: a stream, TCP or TLS */
    SSL_CTX *tls;   /* --transport tls */
    size_t out_pending; /* TCP: connections with held-back output */
    rtc_addr server, peer;
    char uname[256];
    const char *pass; /* into c.user, after the ':' */
    char realm[128];
    uint8_t key[16];
    bool have_key;
    tl_alloc *a;
    size_t n;
    int ep;
    tl_hist *hist;
    uint64_t received, reordered, misrouted, foreign, rx_drops;
    uint64_t errors;
    uint32_t next_src; /* next loopback source address (open_sock) */
    uint64_t rates[TL_MAX_STEPS];
    int nsteps;
    double max_loss;
    long clk_tck;
} tl;

/* Payload timestamps use CLOCK_REALTIME because kernel receive timestamps
 * (SO_TIMESTAMPNS) do; sender and receiver are this one process. */
static uint64_t now_real_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---------- /proc sampling of the server ---------- */

static bool read_file(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "r");
    size_t n;
    if (!f)
        return false;
    n = fread(buf, 1, cap - 1, f);
    buf[n] = '\0';
    fclose(f);
    return true;
}

static long status_kb(const char *status, const char *key)
{
    const char *p = strstr(status, key);
    return p ? strtol(p + strlen(key), NULL, 10) : -1;
}

static void snap(const tl *g, tl_snap *s)
{
    char path[64], buf[4096];
    struct rusage ru;
    memset(s, 0, sizeof *s);
    s->rss_kb = s->hwm_kb = -1;
    getrusage(RUSAGE_SELF, &ru);
    s->self_us = (uint64_t)ru.ru_utime.tv_sec * 1000000u + (uint64_t)ru.ru_utime.tv_usec +
                 (uint64_t)ru.ru_stime.tv_sec * 1000000u + (uint64_t)ru.ru_stime.tv_usec;
    if (read_file("/proc/stat", buf, sizeof buf)) {
        unsigned long long v[8] = {0};
        if (sscanf(buf, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
                   &v[4], &v[5], &v[6], &v[7]) == 8)
            s->sys_busy_ticks = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
    }
    if (!g->c.server_pid)
        return;
    snprintf(path, sizeof path, "/proc/%d/stat", (int)g->c.server_pid);
    s->gone = !read_file(path, buf, sizeof buf);
    if (!s->gone) {
        /* fields after the ")" that ends comm: state is field 3, utime 14, stime 15 */
        char *p = strrchr(buf, ')');
        unsigned long long ut = 0, st = 0;
        if (p && (p[2] == 'Z' || p[2] == 'X'))
            s->gone = true; /* exited, not yet reaped */
        if (p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut,
                        &st) == 2)
            s->ticks = ut + st;
    }
    snprintf(path, sizeof path, "/proc/%d/status", (int)g->c.server_pid);
    if (read_file(path, buf, sizeof buf)) {
        s->rss_kb = status_kb(buf, "VmRSS:");
        s->hwm_kb = status_kb(buf, "VmHWM:");
    }
    snprintf(path, sizeof path, "/proc/%d/task", (int)g->c.server_pid);
    DIR *d = opendir(path);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            char tp[96];
            if (e->d_name[0] == '.')
                continue;
            snprintf(tp, sizeof tp, "/proc/%d/task/%.20s/schedstat", (int)g->c.server_pid,
                     e->d_name);
            if (read_file(tp, buf, sizeof buf))
                s->sched_ns += strtoull(buf, NULL, 10);
        }
        closedir(d);
    }
}

/* ---------- latency histogram ---------- */

static void hist_add(tl_hist *h, int64_t ns)
{
    uint64_t us;
    if (ns < 0)
        ns = 0;
    us = (uint64_t)ns / 1000u;
    if (us < H_FINE)
        h->fine[us]++;
    else if (us / 1000u < H_COARSE)
        h->coarse[us / 1000u]++;
    else
        h->over++;
    h->n++;
    if ((uint64_t)ns > h->max_ns)
        h->max_ns = (uint64_t)ns;
}

/* Value in µs at quantile q (upper edge of the bucket), -1 when empty. */
static double hist_q(const tl_hist *h, double q)
{
    uint64_t want, seen = 0;
    if (!h->n)
        return -1;
    want = (uint64_t)(q * (double)h->n);
    if (want >= h->n)
        want = h->n - 1;
    for (size_t i = 0; i < H_FINE; i++) {
        seen += h->fine[i];
        if (seen > want)
            return (double)i + 1;
    }
    for (size_t i = 0; i < H_COARSE; i++) {
        seen += h->coarse[i];
        if (seen > want)
            return (double)(i + 1) * 1000.0;
    }
    return (double)h->max_ns / 1000.0;
}

/* ---------- sockets ---------- */

static int open_sock(tl *g, const rtc_addr *dst)
{
    struct sockaddr_storage ss;
    struct sockaddr_in any = {.sin_family = AF_INET};
    socklen_t sl = rtc_addr_to_sockaddr(dst, &ss);
    int one = 1, big = 4 << 20;
    int fd = socket(ss.ss_family, g->tcp ? SOCK_STREAM | SOCK_CLOEXEC
                                          : SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    /* Against a loopback server every client socket gets its own source
     * address in 127.1.0.0-127.254.255.255 (from a random start), so a
     * 5-tuple does not repeat across runs or alloc-mode cycles: the kernel
     * hands a just-closed port straight back, and a server may still hold a
     * released 5-tuple for a while (coturn answers 437 then). */
    if (ss.ss_family == AF_INET && dst->ip[0] == 127) {
        uint32_t k = g->next_src++ % (254u << 16);
        any.sin_addr.s_addr = htonl(0x7F000000u | (1u + (k >> 16)) << 16 | (k & 0xFFFFu));
    }
    /* Large buffers so a flood overflows the server, not us; root may force
     * past rmem_max, others get what the sysctl allows. SO_RXQ_OVFL reports
     * our own drops so they are never blamed on the server. */
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof big))
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
    if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof big))
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
    if (g->tcp) {
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    } else {
        setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one);
        setsockopt(fd, SOL_SOCKET, SO_RXQ_OVFL, &one, sizeof one);
    }
    if (ss.ss_family == AF_INET && bind(fd, (struct sockaddr *)&any, sizeof any))
        goto out_close;
    /* TCP connects blocking (loopback: immediate), then turns non-blocking
     * (TLS: after its handshake, tls_open) */
    if (connect(fd, (struct sockaddr *)&ss, sl) ||
        (g->tcp && !g->tls && fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)))
        goto out_close;
    return fd;
out_close : {
    int e = -errno;
    close(fd);
    return e;
}
}

/* TLS over allocation i's connected, still blocking TCP socket: handshake,
 * then the socket turns non-blocking. 0 or RTC_EMSG (reason on stderr). */
static int tls_open(tl *g, size_t i)
{
    tl_alloc *a = &g->a[i];
    if (!(a->ssl = SSL_new(g->tls)) || !SSL_set_fd(a->ssl, a->fd) || SSL_connect(a->ssl) != 1) {
        char why[160];
        ERR_error_string_n(ERR_get_error(), why, sizeof why);
        fprintf(stderr, "turnload: allocation %zu: TLS handshake failed: %s\n", i, why);
        return RTC_EMSG;
    }
    return fcntl(a->fd, F_SETFL, fcntl(a->fd, F_GETFL) | O_NONBLOCK) ? -errno : 0;
}

static int attach(tl *g, size_t i)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = i};
    return epoll_ctl(g->ep, EPOLL_CTL_ADD, g->a[i].fd, &ev) ? -errno : 0;
}

static void reopen(tl *g, size_t i)
{
    tl_alloc *a = &g->a[i];
    if (a->fd >= 0)
        close(a->fd);
    a->fd = open_sock(g, &g->server);
    a->nonce_len = 0;
    if (a->fd >= 0)
        attach(g, i);
}

/* ---------- TCP streams ---------- */

static void out_set(tl *g, tl_alloc *a, size_t len)
{
    if (!a->out_len && len)
        g->out_pending++;
    else if (a->out_len && !len)
        g->out_pending--;
    a->out_len = len;
}

/* One write on a's stream: bytes taken (maybe fewer than n), 0 when it
 * would block, -1 on error. */
static ssize_t stream_write(tl_alloc *a, const uint8_t *p, size_t n)
{
    if (a->ssl) {
        size_t w = 0;
        if (SSL_write_ex(a->ssl, p, n, &w) == 1)
            return (ssize_t)w;
        int e = SSL_get_error(a->ssl, 0);
        return e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ ? 0 : -1;
    }
    ssize_t w = write(a->fd, p, n);
    return w < 0 && (errno == EAGAIN || errno == EINTR) ? 0 : w;
}

/* Write what a short write held back. true when nothing is left. */
static bool stream_flush(tl *g, tl_alloc *a)
{
    while (a->out_len) {
        ssize_t w = stream_write(a, a->out, a->out_len);
        if (w <= 0)
            return false;
        memmove(a->out, a->out + w, a->out_len - (size_t)w);
        out_set(g, a, a->out_len - (size_t)w);
    }
    return true;
}

/* Send whole frames on a's stream: what the kernel does not take now is held
 * back (never a partial frame lost: a stream cannot skip bytes). 0, or
 * RTC_ELIMIT when the held-back output is full (nothing of iov was taken),
 * or -errno. */
static int stream_send(tl *g, tl_alloc *a, const struct iovec *iov, int n)
{
    size_t total = 0, w = 0;
    for (int k = 0; k < n; k++)
        total += iov[k].iov_len;
    if (total > TL_STREAM_OUT)
        return RTC_ELIMIT;
    if (stream_flush(g, a)) {
        ssize_t r;
        if (a->ssl) { /* one record for the batch: gather it first */
            static uint8_t gather[TL_STREAM_OUT];
            size_t len = 0;
            for (int k = 0; k < n; k++) {
                memcpy(gather + len, iov[k].iov_base, iov[k].iov_len);
                len += iov[k].iov_len;
            }
            r = stream_write(a, gather, len);
        } else {
            r = writev(a->fd, iov, n);
            if (r < 0 && (errno == EAGAIN || errno == EINTR))
                r = 0;
        }
        if (r < 0)
            return RTC_EMSG;
        w = (size_t)r;
        if (w == total)
            return 0;
    }
    if (a->out_len + total - w > TL_STREAM_OUT)
        return w ? RTC_EMSG : RTC_ELIMIT; /* cannot happen with w > 0: out was empty */
    if (!a->out && !(a->out = malloc(TL_STREAM_OUT)))
        return -ENOMEM;
    size_t len = a->out_len;
    for (int k = 0; k < n; k++) { /* the tail of iov after the w bytes written */
        size_t l = iov[k].iov_len, skip = w < l ? w : l;
        memcpy(a->out + len, (const uint8_t *)iov[k].iov_base + skip, l - skip);
        len += l - skip;
        w -= skip;
    }
    out_set(g, a, len);
    return 0;
}

typedef void (*tl_frame_fn)(tl *g, size_t i, const uint8_t *buf, size_t len, void *ud);

/* Read what allocation i's stream has and hand every whole frame to fn.
 * false when the stream is closed or carries something that is not a
 * STUN/ChannelData frame (the caller stops watching it). */
static bool stream_recv(tl *g, size_t i, tl_frame_fn fn, void *ud)
{
    tl_alloc *a = &g->a[i];
    if (!a->in && !(a->in = malloc(TL_STREAM_IN)))
        return false;
    /* TLS reads until OpenSSL wants more from the socket: a record already
     * decrypted into its buffer would not wake epoll again */
    for (int round = 0; a->ssl || round < 16; round++) {
        ssize_t r;
        size_t off = 0;
        if (a->ssl) {
            size_t got = 0;
            if (SSL_read_ex(a->ssl, a->in + a->in_len, TL_STREAM_IN - a->in_len, &got) == 1) {
                r = (ssize_t)got;
            } else {
                int e = SSL_get_error(a->ssl, 0);
                return e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE;
            }
        } else {
            r = read(a->fd, a->in + a->in_len, TL_STREAM_IN - a->in_len);
            if (r < 0)
                return errno == EAGAIN || errno == EINTR;
        }
        if (r == 0)
            return false;
        a->in_len += (size_t)r;
        for (;;) {
            long fl = stn_frame_len(a->in + off, a->in_len - off);
            if (fl < 0 || fl > TL_STREAM_IN)
                return false;
            if (fl == 0 || (size_t)fl > a->in_len - off)
                break;
            fn(g, i, a->in + off, (size_t)fl, ud);
            off += (size_t)fl;
        }
        memmove(a->in, a->in + off, a->in_len - off);
        a->in_len -= off;
    }
    return true;
}

static void stream_lost(tl *g, size_t i)
{
    if (g->errors++ < 5)
        fprintf(stderr, "turnload: allocation %zu: TCP connection closed or broken\n", i);
    epoll_ctl(g->ep, EPOLL_CTL_DEL, g->a[i].fd, NULL);
}

static void frame_discard(tl *g, size_t i, const uint8_t *buf, size_t len, void *ud)
{
    (void)g, (void)i, (void)buf, (void)len, (void)ud;
}

/* ---------- TURN transactions ---------- */

static int build_req(tl *g, tl_alloc *a, uint8_t *buf, size_t cap, size_t *len)
{
    stn_builder b;
    uint16_t method;
    switch (a->what) {
    case W_ALLOC:
        method = STN_ALLOCATE;
        break;
    case W_BIND:
        method = g->chan ? STN_CHANNEL_BIND : STN_CREATE_PERMISSION;
        break;
    case W_RELEASE:
    default:
        method = STN_REFRESH;
        break;
    }
    stn_build_init(&b, buf, cap, method, STN_REQUEST, a->tid);
    switch (a->what) {
    case W_ALLOC: {
        const uint8_t udp[4] = {17, 0, 0, 0}; /* REQUESTED-TRANSPORT: UDP (s.18.6) */
        stn_build_attr(&b, STN_A_REQUESTED_TRANSPORT, udp, sizeof udp);
        break;
    }
    case W_BIND:
        if (g->chan)
            stn_build_channel(&b, a->chan);
        stn_build_xor_addr(&b, STN_A_XOR_PEER_ADDRESS, &a->peer);
        break;
    default:
        stn_build_u32(&b, STN_A_LIFETIME, 0);
        break;
    }
    if (a->nonce_len && g->have_key) {
        stn_build_attr(&b, STN_A_USERNAME, g->uname, strlen(g->uname));
        stn_build_attr(&b, STN_A_REALM, g->realm, strlen(g->realm));
        stn_build_attr(&b, STN_A_NONCE, a->nonce, a->nonce_len);
        stn_build_integrity(&b, g->key, sizeof g->key);
    }
    return stn_build_finish(&b, len);
}

static int send_req(tl *g, tl_alloc *a, bool fresh)
{
    uint8_t buf[512];
    size_t len;
    if (fresh) {
        rtc_random(a->tid, sizeof a->tid);
        a->tries = 0;
    }
    if (build_req(g, a, buf, sizeof buf, &len))
        return RTC_ESPACE;
    a->sent_ns = rtc_clock_mono_ns();
    a->step = TX_WAIT;
    if (g->tcp) {
        struct iovec iov = {buf, len};
        return stream_send(g, a, &iov, 1);
    }
    return send(a->fd, buf, len, 0) < 0 && errno != EAGAIN ? -errno : 0;
}

/* A response to a's transaction. 0 = done, 1 = resent (auth), 2 = not ours,
 * <0 = failed with that STUN code negated (or RTC_EMSG). */
static int on_response(tl *g, tl_alloc *a, const uint8_t *buf, size_t len)
{
    stn_msg m;
    const stn_attr_ref *r;
    if (stn_msg_parse(&m, buf, len) || memcmp(m.tid, a->tid, STN_TID_LEN) ||
        (m.cls != STN_SUCCESS && m.cls != STN_ERROR))
        return 2;
    if (m.cls == STN_ERROR) {
        int code = 0;
        rtc_rd reason;
        if (!(r = stn_msg_find(&m, STN_A_ERROR_CODE)) ||
            stn_attr_get_error(&m, r, &code, &reason))
            return RTC_EMSG;
        if ((code == 401 || code == 438) && a->auth_tries++ < 3) {
            const stn_attr_ref *n = stn_msg_find(&m, STN_A_NONCE);
            const stn_attr_ref *rl = stn_msg_find(&m, STN_A_REALM);
            rtc_rd v;
            if (!n || n->len > sizeof a->nonce)
                return -code;
            v = stn_attr_rd(&m, n);
            a->nonce_len = n->len;
            rtc_rd_copy(&v, a->nonce, n->len);
            if (!g->have_key) { /* first 401: learn the realm, derive the key once */
                if (rl && rl->len < sizeof g->realm) {
                    v = stn_attr_rd(&m, rl);
                    rtc_rd_copy(&v, g->realm, rl->len);
                    g->realm[rl->len] = '\0';
                }
                stn_auth_longterm_key(g->uname, strlen(g->uname), g->realm, strlen(g->realm),
                                      g->pass, strlen(g->pass), g->key);
                g->have_key = true;
            }
            send_req(g, a, true);
            return 1;
        }
        return -code;
    }
    a->auth_tries = 0;
    if (a->what == W_ALLOC) {
        if (!(r = stn_msg_find(&m, STN_A_XOR_RELAYED_ADDRESS)) ||
            stn_attr_get_xor_addr(&m, r, &a->relayed))
            return RTC_EMSG;
    }
    return 0;
}

/* Run one transaction kind on every allocation, `window` in flight, with
 * retransmissions (RFC 8489 s.6.2.1, shortened: loopback). Returns how many
 * failed; the deadline bounds it. */
typedef struct {
    int what;
    size_t inflight, done, failed;
} tl_txns;

/* One message from the server on allocation i during setup or release. */
static void txn_input(tl *g, size_t i, const uint8_t *buf, size_t len, void *ud)
{
    tl_txns *t = ud;
    tl_alloc *a = &g->a[i];
    if (a->step != TX_WAIT)
        return;
    int rc = on_response(g, a, buf, len);
    if (rc == 0) {
        a->step = TX_DONE;
        t->done++;
        t->inflight--;
    } else if (rc < 0) {
        if (g->errors++ < 5)
            fprintf(stderr, "turnload: %s failed: %d\n",
                    t->what == W_ALLOC  ? "Allocate"
                    : t->what == W_BIND ? "bind"
                                        : "Refresh",
                    -rc);
        a->step = TX_FAIL;
        t->failed++;
        t->inflight--;
    }
}

static size_t run_txns(tl *g, int what, uint64_t deadline_ns)
{
    size_t next = 0;
    tl_txns t = {.what = what};
    struct epoll_event evs[256];
    uint8_t buf[TL_PKT];

    for (size_t i = 0; i < g->n; i++) {
        g->a[i].step = TX_IDLE;
        g->a[i].what = (uint8_t)what;
        g->a[i].auth_tries = 0;
    }
    while (t.done + t.failed < g->n) {
        uint64_t now = rtc_clock_mono_ns();
        if (now > deadline_ns) {
            fprintf(stderr, "turnload: setup timed out: %zu done, %zu failed of %zu\n", t.done,
                    t.failed, g->n);
            return t.failed + (g->n - t.done - t.failed);
        }
        while (t.inflight < (size_t)g->c.window && next < g->n) {
            if (send_req(g, &g->a[next++], true) == 0)
                t.inflight++;
            else {
                g->a[next - 1].step = TX_FAIL;
                t.failed++;
            }
        }
        /* retransmit: 200 ms, doubling, 6 tries; over TCP the same timeouts
         * without resending (a stream does not lose the request) */
        for (size_t i = 0; i < next; i++) {
            tl_alloc *a = &g->a[i];
            if (a->step == TX_WAIT && now > a->sent_ns &&
                now - a->sent_ns > (200000000ull << a->tries)) {
                if (++a->tries > 6) {
                    a->step = TX_FAIL;
                    t.failed++;
                    t.inflight--;
                } else if (g->tcp) {
                    a->sent_ns = now;
                } else {
                    uint8_t tries = a->tries;
                    send_req(g, a, false);
                    a->tries = tries;
                }
            }
        }
        if (g->out_pending)
            for (size_t i = 0; i < g->n; i++)
                if (g->a[i].out_len)
                    stream_flush(g, &g->a[i]);
        int ne = epoll_wait(g->ep, evs, 256, 10);
        for (int k = 0; k < ne; k++) {
            size_t i = (size_t)evs[k].data.u64;
            ssize_t len;
            if (g->tcp) {
                if (!stream_recv(g, i, txn_input, &t)) {
                    stream_lost(g, i);
                    if (g->a[i].step == TX_WAIT) {
                        g->a[i].step = TX_FAIL;
                        t.failed++;
                        t.inflight--;
                    }
                }
                continue;
            }
            while ((len = recv(g->a[i].fd, buf, sizeof buf, 0)) > 0)
                txn_input(g, i, buf, (size_t)len, &t);
        }
    }
    return t.failed;
}

/* ---------- data phase ---------- */

/* The message template for allocation i: ChannelData header, or a Send
 * indication with XOR-PEER-ADDRESS and DATA (RFC 8656 s.11.1); in direct mode
 * the bare payload. pay_off is where the 24-byte stamp goes. */
static int make_template(tl *g, tl_alloc *a)
{
    size_t size = (size_t)g->c.size;
    uint8_t zero[1500] = {0};
    if (g->mode == M_DIRECT) {
        memset(a->tmpl, 0, size);
        a->tmpl_len = size;
        a->pay_off = 0;
        return 0;
    }
    if (g->chan) {
        stn_chandata_header(a->tmpl, a->chan, (uint16_t)size);
        memset(a->tmpl + STN_CHANDATA_HDR, 0, size);
        a->tmpl_len = STN_CHANDATA_HDR + size;
        a->pay_off = STN_CHANDATA_HDR;
        return 0;
    }
    uint8_t tid[STN_TID_LEN];
    stn_builder b;
    stn_msg m;
    const stn_attr_ref *d;
    rtc_random(tid, sizeof tid);
    stn_build_init(&b, a->tmpl, sizeof a->tmpl, STN_SEND, STN_INDICATION, tid);
    stn_build_xor_addr(&b, STN_A_XOR_PEER_ADDRESS, &a->peer);
    stn_build_attr(&b, STN_A_DATA, zero, size);
    if (stn_build_finish(&b, &a->tmpl_len) || stn_msg_parse(&m, a->tmpl, a->tmpl_len) ||
        !(d = stn_msg_find(&m, STN_A_DATA)))
        return RTC_EMSG;
    a->pay_off = d->off;
    return 0;
}

/* Send k messages of allocation i in one sendmmsg; the stamp is a separate
 * iovec so the template is never copied. Returns how many went out. */
static unsigned send_batch(tl *g, size_t i, unsigned k)
{
    tl_alloc *a = &g->a[i];
    struct mmsghdr mm[TL_BATCH];
    struct iovec iov[TL_BATCH][3];
    uint8_t stamp[TL_BATCH][TL_HDR];
    uint64_t ts = now_real_ns();
    int rc;
    if (k > TL_BATCH)
        k = TL_BATCH;
    for (unsigned j = 0; j < k; j++) {
        rtc_wr w;
        rtc_wr_init(&w, stamp[j], TL_HDR);
        rtc_wr_u32(&w, TL_MAGIC);
        rtc_wr_u32(&w, (uint32_t)i);
        rtc_wr_u64(&w, a->seq + j);
        rtc_wr_u64(&w, ts);
        iov[j][0] = (struct iovec){a->tmpl, a->pay_off};
        iov[j][1] = (struct iovec){stamp[j], TL_HDR};
        iov[j][2] = (struct iovec){a->tmpl + a->pay_off + TL_HDR,
                                   a->tmpl_len - a->pay_off - TL_HDR};
        memset(&mm[j], 0, sizeof mm[j]);
        mm[j].msg_hdr.msg_iov = iov[j];
        mm[j].msg_hdr.msg_iovlen = 3;
    }
    if (g->tcp) { /* one writev; ChannelData padded to 4 on a stream (s.12.5) */
        static const uint8_t pad[3];
        struct iovec flat[TL_BATCH * 4];
        size_t padn = g->chan ? (4 - a->tmpl_len % 4) % 4 : 0;
        int n = 0;
        for (unsigned j = 0; j < k; j++) {
            for (int v = 0; v < 3; v++)
                flat[n++] = iov[j][v];
            if (padn)
                flat[n++] = (struct iovec){(void *)pad, padn};
        }
        if (stream_send(g, a, flat, n))
            return 0;
        a->seq += k;
        return k;
    }
    rc = sendmmsg(a->fd, mm, k, MSG_DONTWAIT);
    if (rc <= 0)
        return 0;
    a->seq += (unsigned)rc;
    return (unsigned)rc;
}

/* The payload of one received datagram on allocation i, or NULL. */
static const uint8_t *payload_of(tl *g, const uint8_t *buf, size_t len, size_t *plen)
{
    if (g->mode == M_DIRECT) {
        *plen = len;
        return buf;
    }
    if (len >= 4 && (buf[0] >> 6) == 1) {
        uint16_t ch;
        const uint8_t *d;
        if (stn_chandata_parse(buf, len, &ch, &d, plen))
            return NULL;
        return d;
    }
    stn_msg m;
    const stn_attr_ref *d;
    if (stn_msg_parse(&m, buf, len) || m.method != STN_DATA || m.cls != STN_INDICATION ||
        !(d = stn_msg_find(&m, STN_A_DATA)))
        return NULL;
    *plen = d->len;
    return buf + d->off;
}

/* Two u32 reads: rtc_rd_u64 trips -Wmaybe-uninitialized at -O2 on gcc 12. */
static bool rd_u64(rtc_rd *r, uint64_t *v)
{
    uint32_t hi = 0, lo = 0;
    if (!rtc_rd_u32(r, &hi) || !rtc_rd_u32(r, &lo))
        return false;
    *v = (uint64_t)hi << 32 | lo;
    return true;
}

static void on_data(tl *g, size_t i, const uint8_t *buf, size_t len, uint64_t rx_ns)
{
    size_t plen;
    const uint8_t *p = payload_of(g, buf, len, &plen);
    rtc_rd r;
    uint32_t magic, flow;
    uint64_t seq, ts;
    if (!p) {
        if (getenv("TL_DEBUG"))
            fprintf(stderr, "foreign: len %zu type %02x%02x\n", len, buf[0], buf[1]);
        g->foreign++;
        return;
    }
    rtc_rd_init(&r, p, plen);
    if (!rtc_rd_u32(&r, &magic) || magic != TL_MAGIC || !rtc_rd_u32(&r, &flow) ||
        !rd_u64(&r, &seq) || !rd_u64(&r, &ts) || flow >= g->n) {
        g->foreign++;
        return;
    }
    /* pair: the partner sent it; echo/direct: our own message came back */
    if (flow != (g->mode == M_PAIR ? (i ^ 1u) : i))
        g->misrouted++;
    tl_alloc *s = &g->a[flow];
    if (seq < s->last_rx_seq)
        g->reordered++;
    s->last_rx_seq = seq;
    g->received++;
    hist_add(g->hist, (int64_t)(rx_ns - ts));
}

static void frame_data(tl *g, size_t i, const uint8_t *buf, size_t len, void *ud)
{
    (void)ud;
    on_data(g, i, buf, len, now_real_ns());
}

static void recv_ready(tl *g, size_t i)
{
    static uint8_t bufs[TL_BATCH][TL_PKT];
    if (g->tcp) {
        if (!stream_recv(g, i, frame_data, NULL))
            stream_lost(g, i);
        return;
    }
    static uint8_t ctl[TL_BATCH][128];
    struct mmsghdr mm[TL_BATCH];
    struct iovec iov[TL_BATCH];
    tl_alloc *a = &g->a[i];
    int rc;
    for (int round = 0; round < 4; round++) {
        for (int j = 0; j < TL_BATCH; j++) {
            iov[j] = (struct iovec){bufs[j], TL_PKT};
            memset(&mm[j], 0, sizeof mm[j]);
            mm[j].msg_hdr.msg_iov = &iov[j];
            mm[j].msg_hdr.msg_iovlen = 1;
            mm[j].msg_hdr.msg_control = ctl[j];
            mm[j].msg_hdr.msg_controllen = sizeof ctl[j];
        }
        rc = recvmmsg(a->fd, mm, TL_BATCH, MSG_DONTWAIT, NULL);
        if (rc <= 0)
            return;
        uint64_t fallback = now_real_ns();
        for (int j = 0; j < rc; j++) {
            uint64_t rx = fallback;
            for (struct cmsghdr *c = CMSG_FIRSTHDR(&mm[j].msg_hdr); c;
                 c = CMSG_NXTHDR(&mm[j].msg_hdr, c)) {
                if (c->cmsg_level != SOL_SOCKET)
                    continue;
                if (c->cmsg_type == SCM_TIMESTAMPNS) {
                    struct timespec ts;
                    memcpy(&ts, CMSG_DATA(c), sizeof ts);
                    rx = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
                } else if (c->cmsg_type == SO_RXQ_OVFL) {
                    uint32_t drops; /* this socket's drops so far: count the growth */
                    memcpy(&drops, CMSG_DATA(c), sizeof drops);
                    g->rx_drops += (uint32_t)(drops - a->ovfl);
                    a->ovfl = drops;
                }
            }
            on_data(g, i, bufs[j], mm[j].msg_len, rx);
        }
        if (rc < TL_BATCH)
            return;
    }
}

typedef struct {
    uint64_t rate, sent, received;
    double secs;
} tl_phase;

/* Offered load for `dur` ns: rate 0 floods, otherwise allocation i has sent
 * floor((rate*t + i*1e9) / (n*1e9)) messages by time t, so allocations are
 * staggered evenly across each period instead of bursting together. */
static void run_phase(tl *g, uint64_t rate, tl_phase *ph)
{
    struct epoll_event evs[256];
    int tfd = -1;
    uint64_t start = rtc_clock_mono_ns(), end = start + (uint64_t)g->c.duration_ms * 1000000u;
    uint64_t drain_end = end + (uint64_t)g->c.drain_ms * 1000000u;
    uint64_t rx0 = g->received, sent = 0;
    const uint64_t tmr_id = UINT64_MAX;

    memset(ph, 0, sizeof *ph);

    for (size_t i = 0; i < g->n; i++)
        g->a[i].phase_seq = g->a[i].seq;
    if (rate) {
        struct itimerspec it = {0};
        it.it_interval.tv_nsec = g->c.tick_us * 1000;
        it.it_value.tv_nsec = 1000;
        tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
        struct epoll_event ev = {.events = EPOLLIN, .data.u64 = tmr_id};
        if (tfd < 0 || timerfd_settime(tfd, 0, &it, NULL) ||
            epoll_ctl(g->ep, EPOLL_CTL_ADD, tfd, &ev)) {
            fprintf(stderr, "turnload: timerfd: %s\n", strerror(errno));
            if (tfd >= 0)
                close(tfd);
            return;
        }
    }
    for (;;) {
        uint64_t now = rtc_clock_mono_ns();
        bool sending = now < end;
        if (now >= drain_end)
            break;
        if (sending && !rate) {
            for (size_t i = 0; i < g->n; i++)
                sent += send_batch(g, i, (unsigned)g->c.batch);
        }
        if (g->out_pending) /* TCP: what short writes held back goes first */
            for (size_t i = 0; i < g->n; i++)
                if (g->a[i].out_len)
                    stream_flush(g, &g->a[i]);
        int ne = epoll_wait(g->ep, evs, 256, sending && !rate ? 0 : 1);
        for (int k = 0; k < ne; k++) {
            if (evs[k].data.u64 == tmr_id) {
                uint64_t exp;
                if (read(tfd, &exp, sizeof exp) < 0) {
                    /* spurious wakeup: nothing to do */
                }
                if (!sending)
                    continue;
                uint64_t t = rtc_clock_mono_ns() - start;
                for (size_t i = 0; i < g->n; i++) {
                    tl_alloc *a = &g->a[i];
                    /* rate <= 1e7 and t <= 610 s keep this below 2^64 */
                    uint64_t target = (rate * t + (uint64_t)i * 1000000000u) /
                                      ((uint64_t)g->n * 1000000000u);
                    while (a->seq - a->phase_seq < target) {
                        uint64_t want = target - (a->seq - a->phase_seq);
                        unsigned got = send_batch(g, i, want > TL_BATCH ? TL_BATCH : (unsigned)want);
                        sent += got;
                        if (!got)
                            break;
                    }
                }
                continue;
            }
            recv_ready(g, evs[k].data.u64);
        }
        if (!sending && g->received - rx0 >= sent)
            break; /* everything is back: no need to wait out the drain */
    }
    if (tfd >= 0) {
        epoll_ctl(g->ep, EPOLL_CTL_DEL, tfd, NULL);
        close(tfd);
    }
    ph->rate = rate;
    ph->sent = sent;
    ph->received = g->received - rx0;
    ph->secs = (double)g->c.duration_ms / 1000.0;
}

/* ---------- output ---------- */

static const char *mode_name(int m)
{
    static const char *const names[] = {"pair", "echo", "direct", "alloc"};
    return names[m];
}

static void print_common(const tl *g, const tl_snap *s0, const tl_snap *s1, double wall_s,
                         double work_units, const char *unit)
{
    double server_ms = (double)(s1->sched_ns - s0->sched_ns) / 1e6;
    double server_tick_ms = (double)(s1->ticks - s0->ticks) * 1000.0 / (double)g->clk_tck;
    double self_ms = (double)(s1->self_us - s0->self_us) / 1000.0;
    double busy_ms =
        (double)(s1->sys_busy_ticks - s0->sys_busy_ticks) * 1000.0 / (double)g->clk_tck;
    double other_ms = busy_ms - self_ms - (g->c.server_pid ? server_tick_ms : 0);
    printf(",\"gen_cpu_ms\":%.1f,\"gen_cpu_frac\":%.3f,\"other_cpu_ms\":%.0f", self_ms,
           wall_s > 0 ? self_ms / (wall_s * 1000.0) : 0, other_ms < 0 ? 0 : other_ms);
    if (g->c.server_pid && (s0->gone || s1->gone)) {
        /* no server figures from a process that died (or was killed) meanwhile */
        printf(",\"server_died\":true");
        return;
    }
    if (g->c.server_pid) {
        printf(",\"server_cpu_ms\":%.2f,\"server_cpu_ms_ticks\":%.0f", server_ms, server_tick_ms);
        if (work_units > 0)
            printf(",\"server_us_per_%s\":%.3f", unit, server_ms * 1000.0 / work_units);
        printf(",\"server_rss_start_kb\":%ld,\"server_rss_kb\":%ld,\"server_hwm_kb\":%ld",
               s0->rss_kb, s1->rss_kb, s1->hwm_kb);
    }
}

static void print_phase(const tl *g, int stepno, const tl_phase *ph, const tl_snap *s0,
                        const tl_snap *s1, long rss_before_alloc_kb, double setup_ms)
{
    double loss = ph->sent ? 1.0 - (double)ph->received / (double)ph->sent : 0;
    double relayed = g->mode == M_DIRECT ? (double)ph->received : 2.0 * (double)ph->received;
    if (loss < 0)
        loss = 0;
    printf("{\"tool\":\"tsunagu-turnload\",\"label\":\"%s\",\"mode\":\"%s\",\"send\":\"%s\","
           "\"transport\":\"%s\",\"allocations\":%zu,\"size\":%" PRId64 ",\"step\":%d,\"offered_rate\":%" PRIu64
           ",\"duration_s\":%.3f,\"setup_ms\":%.0f,\"sent\":%" PRIu64 ",\"received\":%" PRIu64
           ",\"loss\":%.6f,\"send_rate\":%.0f,\"recv_rate\":%.0f,\"%s_pps\":%.0f",
           g->c.label, mode_name(g->mode),
           g->mode == M_DIRECT ? "raw" : (g->chan ? "channel" : "indication"),
           g->c.transport, g->n, g->c.size,
           stepno, ph->rate, ph->secs, setup_ms, ph->sent, ph->received, loss,
           (double)ph->sent / ph->secs, (double)ph->received / ph->secs,
           g->mode == M_DIRECT ? "echoed" : "relayed", relayed / ph->secs);
    printf(",\"lat_kind\":\"%s\",\"lat_p50_us\":%.0f,\"lat_p99_us\":%.0f,\"lat_max_us\":%.0f",
           g->mode == M_PAIR ? "one-way" : "round-trip", hist_q(g->hist, 0.5),
           hist_q(g->hist, 0.99), (double)g->hist->max_ns / 1000.0);
    printf(",\"reordered\":%" PRIu64 ",\"misrouted\":%" PRIu64 ",\"foreign\":%" PRIu64
           ",\"gen_rx_drops\":%" PRIu64 ",\"errors\":%" PRIu64,
           g->reordered, g->misrouted, g->foreign, g->rx_drops, g->errors);
    print_common(g, s0, s1, ph->secs, relayed, "pkt");
    if (g->c.server_pid && !s1->gone && rss_before_alloc_kb > 0 && s1->hwm_kb > 0)
        printf(",\"server_rss_before_alloc_kb\":%ld,\"server_kb_per_1000_alloc\":%.0f",
               rss_before_alloc_kb,
               (double)(s1->hwm_kb - rss_before_alloc_kb) * 1000.0 / (double)g->n);
    printf("}\n");
    fflush(stdout);
}

/* ---------- alloc-rate mode ---------- */

static int run_alloc_mode(tl *g)
{
    struct epoll_event evs[256];
    uint8_t buf[TL_PKT];
    uint64_t cycles = 0, start = rtc_clock_mono_ns();
    uint64_t end = start + (uint64_t)g->c.duration_ms * 1000000u;
    tl_snap s0, s1;
    tl_hist *h = g->hist;

    snap(g, &s0);
    for (size_t i = 0; i < g->n; i++) {
        g->a[i].what = W_ALLOC;
        g->a[i].auth_tries = 0;
        g->a[i].cycle_ns = rtc_clock_mono_ns();
        send_req(g, &g->a[i], true);
    }
    for (;;) {
        uint64_t now = rtc_clock_mono_ns();
        if (now >= end || (g->c.max_cycles && cycles >= (uint64_t)g->c.max_cycles))
            break;
        for (size_t i = 0; i < g->n; i++) { /* lost request: resend, then give up the socket */
            tl_alloc *a = &g->a[i];
            if (a->step == TX_WAIT && now > a->sent_ns &&
                now - a->sent_ns > (200000000ull << a->tries)) {
                if (++a->tries > 4) {
                    g->errors++;
                    reopen(g, i);
                    a->what = W_ALLOC;
                    a->auth_tries = 0;
                    send_req(g, a, true);
                } else {
                    uint8_t t = a->tries;
                    send_req(g, a, false);
                    a->tries = t;
                }
            }
        }
        int ne = epoll_wait(g->ep, evs, 256, 10);
        for (int k = 0; k < ne; k++) {
            size_t i = evs[k].data.u64;
            tl_alloc *a = &g->a[i];
            ssize_t len;
            while (a->fd >= 0 && (len = recv(a->fd, buf, sizeof buf, 0)) > 0) {
                int rc = on_response(g, a, buf, (size_t)len);
                if (rc == 1 || rc == 2)
                    continue;
                if (rc == 0 && a->what == W_ALLOC) {
                    a->what = W_RELEASE;
                    send_req(g, a, true);
                } else if (rc == 0) {
                    /* a cycle is a new client: fresh 5-tuple, 401 first, as
                     * servers may hold a released 5-tuple for a while (coturn
                     * answers 437 to an Allocate on it) */
                    cycles++;
                    hist_add(h, (int64_t)(rtc_clock_mono_ns() - a->cycle_ns));
                    reopen(g, i);
                    a->what = W_ALLOC;
                    a->auth_tries = 0;
                    a->cycle_ns = rtc_clock_mono_ns();
                    send_req(g, a, true);
                    break;
                } else {
                    /* e.g. 437 while the previous allocation on this 5-tuple
                     * lingers: continue from a fresh 5-tuple */
                    if (g->errors++ < 5)
                        fprintf(stderr, "turnload: alloc cycle error %d\n", -rc);
                    reopen(g, i);
                    a->what = W_ALLOC;
                    a->auth_tries = 0;
                    a->cycle_ns = rtc_clock_mono_ns();
                    send_req(g, a, true);
                    break;
                }
            }
        }
    }
    double secs = (double)(rtc_clock_mono_ns() - start) / 1e9;
    snap(g, &s1);
    printf("{\"tool\":\"tsunagu-turnload\",\"label\":\"%s\",\"mode\":\"alloc\",\"concurrency\":%zu,"
           "\"duration_s\":%.3f,\"cycles\":%" PRIu64 ",\"cycles_per_s\":%.0f,\"errors\":%" PRIu64
           ",\"cycle_p50_us\":%.0f,\"cycle_p99_us\":%.0f",
           g->c.label, g->n, secs, cycles, (double)cycles / secs, g->errors, hist_q(h, 0.5),
           hist_q(h, 0.99));
    print_common(g, &s0, &s1, secs, (double)cycles, "cycle");
    printf("}\n");
    fflush(stdout);
    return cycles ? 0 : 1;
}

/* ---------- main ---------- */

static int parse_steps(const char *s, uint64_t *out, size_t cap)
{
    size_t n = 0;
    while (s && *s && n < cap) {
        char *end;
        unsigned long long v = strtoull(s, &end, 10);
        if (end == s)
            return -1;
        out[n++] = v;
        s = *end == ',' ? end + 1 : end;
        if (*end && *end != ',')
            return -1;
    }
    return (int)n;
}

/* Validate the settings that the table cannot check alone. 0 or -1 (said why). */
static int configure(tl *g)
{
    static const char *const modes[] = {"pair", "echo", "direct", "alloc"};
    const char *sep = strchr(g->c.user, ':');

    g->mode = -1;
    for (int m = 0; m < 4; m++)
        if (!strcmp(g->c.mode, modes[m]))
            g->mode = m;
    if (g->mode < 0) {
        fprintf(stderr, "tsunagu-turnload: mode: '%s' is not pair|echo|direct|alloc\n", g->c.mode);
        return -1;
    }
    g->tcp = !strcmp(g->c.transport, "tcp") || !strcmp(g->c.transport, "tls");
    if (!g->tcp && strcmp(g->c.transport, "udp")) {
        fprintf(stderr, "tsunagu-turnload: transport: '%s' is not udp|tcp|tls\n", g->c.transport);
        return -1;
    }
    if (g->tcp && g->mode != M_PAIR && g->mode != M_ECHO) {
        fprintf(stderr, "tsunagu-turnload: --transport %s works in pair and echo modes only\n",
                g->c.transport);
        return -1;
    }
    if (!strcmp(g->c.transport, "tls")) {
        /* a load generator measures the relay, not the certificate */
        rtc_tls_client_opts o = {.verify = false};
        char err[256];
        if (!(g->tls = rtc_tls_client_new(&o, err, sizeof err))) {
            fprintf(stderr, "tsunagu-turnload: %s\n", err);
            return -1;
        }
    }
    g->chan = !strcmp(g->c.send, "channel");
    if (!g->chan && strcmp(g->c.send, "indication")) {
        fprintf(stderr, "tsunagu-turnload: send: '%s' is not channel|indication\n", g->c.send);
        return -1;
    }
    if ((g->mode == M_ECHO || g->mode == M_DIRECT) &&
        (!g->c.peer || rtc_addr_parse_hostport(g->c.peer, &g->peer))) {
        fprintf(stderr, "tsunagu-turnload: mode %s needs --peer ADDR:PORT\n", g->c.mode);
        return -1;
    }
    rtc_addr_parse_hostport(g->c.server, &g->server); /* validated by the table */
    if (!sep || (size_t)(sep - g->c.user) >= sizeof g->uname) {
        fprintf(stderr, "tsunagu-turnload: user: expected NAME:PASSWORD\n");
        return -1;
    }
    /* USERNAME carries the name only; the password only feeds the key */
    memcpy(g->uname, g->c.user, (size_t)(sep - g->c.user));
    g->uname[sep - g->c.user] = '\0';
    g->pass = sep + 1;
    if (g->c.realm) { /* otherwise learnt from the first 401 */
        snprintf(g->realm, sizeof g->realm, "%s", g->c.realm);
        stn_auth_longterm_key(g->uname, strlen(g->uname), g->realm, strlen(g->realm), g->pass,
                              strlen(g->pass), g->key);
        g->have_key = true;
    }
    if (g->c.steps) {
        g->nsteps = parse_steps(g->c.steps, g->rates, TL_MAX_STEPS);
        if (g->nsteps <= 0) {
            fprintf(stderr, "tsunagu-turnload: steps: expected R1,R2,...\n");
            return -1;
        }
    } else {
        g->rates[0] = (uint64_t)g->c.rate;
        g->nsteps = 1;
    }
    g->max_loss = strtod(g->c.max_loss, NULL);
    g->n = g->mode == M_ALLOC ? (size_t)g->c.concurrency : (size_t)g->c.allocations;
    if (g->mode == M_PAIR)
        g->n = (g->n + 1) & ~(size_t)1;
    return 0;
}

/* Allocate and bind every allocation, run the phases, release. 0 when every
 * phase sent something, 1 otherwise. */
static int run_load(tl *g)
{
    tl_snap before;
    int ret = 1;
    uint64_t t0 = rtc_clock_mono_ns(), deadline = t0 + (uint64_t)g->c.setup_timeout_ms * 1000000u;

    snap(g, &before);
    if (g->mode != M_DIRECT) {
        if (run_txns(g, W_ALLOC, deadline)) {
            fprintf(stderr, "tsunagu-turnload: some allocations failed\n");
            goto out_release;
        }
        for (size_t i = 0; i < g->n; i++)
            g->a[i].peer = g->mode == M_PAIR ? g->a[i ^ 1u].relayed : g->peer;
        if (run_txns(g, W_BIND, deadline)) {
            fprintf(stderr, "tsunagu-turnload: some binds failed\n");
            goto out_release;
        }
    }
    for (size_t i = 0; i < g->n; i++)
        if (make_template(g, &g->a[i])) {
            fprintf(stderr, "tsunagu-turnload: template\n");
            goto out_release;
        }
    double setup_ms = (double)(rtc_clock_mono_ns() - t0) / 1e6;
    fprintf(stderr, "turnload: %zu %s ready in %.0f ms\n", g->n,
            g->mode == M_DIRECT ? "sockets" : "allocations", setup_ms);

    ret = 0;
    for (int s = 0, tries = 0, phno = 0; s < g->nsteps; phno++) {
        tl_phase ph;
        tl_snap s0, s1;
        memset(g->hist, 0, sizeof *g->hist);
        g->reordered = g->misrouted = g->foreign = g->rx_drops = 0;
        snap(g, &s0);
        run_phase(g, g->rates[s], &ph);
        snap(g, &s1);
        print_phase(g, phno, &ph, &s0, &s1, before.rss_kb, setup_ms);
        double loss = ph.sent ? 1.0 - (double)ph.received / (double)ph.sent : 1;
        if (!ph.sent)
            ret = 1;
        if (g->nsteps > 1 && loss > g->max_loss) {
            if (tries++ < g->c.retries)
                continue; /* same rate again: was it the server or a noisy neighbour? */
            break;
        }
        tries = 0;
        s++;
    }
out_release:
    if (g->mode != M_DIRECT) { /* give the server its state back: Refresh lifetime 0 */
        size_t ok = 0;
        for (size_t i = 0; i < g->n; i++)
            ok += g->a[i].relayed.family != 0;
        if (ok) {
            for (size_t i = 0; i < g->n; i++) { /* drain queued data so responses are seen */
                if (g->tcp)
                    stream_recv(g, i, frame_discard, NULL);
                else
                    while (recv(g->a[i].fd, g->a[i].tmpl, sizeof g->a[i].tmpl, 0) > 0)
                        ;
            }
            run_txns(g, W_RELEASE, rtc_clock_mono_ns() + 5000000000ull);
        }
    }
    return ret;
}

int main(int argc, char **argv)
{
    tl g;
    char err[256];
    int rc, ret = 2;

    memset(&g, 0, sizeof g);
    g.ep = -1;
    rc = rtc_conf_load(specs, &g.c, argc, argv, err, sizeof err);
    if (rc == RTC_CONF_HELP) {
        printf("usage: tsunagu-turnload [options]  (one JSON line per measured phase)\n");
        rtc_conf_usage(specs, stdout);
        return 0;
    }
    if (rc) {
        fprintf(stderr, "tsunagu-turnload: %s\n", err);
        return 2;
    }
    g.clk_tck = sysconf(_SC_CLK_TCK);
    rtc_random(&g.next_src, sizeof g.next_src);
    if (configure(&g))
        goto out_conf;
    g.a = calloc(g.n, sizeof *g.a);
    g.hist = calloc(1, sizeof *g.hist);
    g.ep = epoll_create1(EPOLL_CLOEXEC);
    if (!g.a || !g.hist || g.ep < 0) {
        fprintf(stderr, "tsunagu-turnload: out of memory\n");
        goto out_free;
    }
    for (size_t i = 0; i < g.n; i++) {
        g.a[i].fd = open_sock(&g, g.mode == M_DIRECT ? &g.peer : &g.server);
        if (g.a[i].fd >= 0 && g.tls && tls_open(&g, i))
            goto out_close;
        if (g.a[i].fd < 0 || attach(&g, i)) {
            fprintf(stderr, "tsunagu-turnload: socket %zu: %s (raise ulimit -n?)\n", i,
                    rtc_strerror(g.a[i].fd));
            goto out_close;
        }
        g.a[i].chan = STN_CHAN_MIN;
    }
    ret = g.mode == M_ALLOC ? run_alloc_mode(&g) : run_load(&g);
out_close:
    for (size_t i = 0; i < g.n; i++) {
        SSL_free(g.a[i].ssl);
        if (g.a[i].fd > 0)
            close(g.a[i].fd);
        free(g.a[i].in);
        free(g.a[i].out);
    }
out_free:
    rtc_tls_ctx_free(g.tls);
    if (g.ep >= 0)
        close(g.ep);
    free(g.hist);
    free(g.a);
out_conf:
    rtc_conf_dispose(specs, &g.c);
    return ret;
}
