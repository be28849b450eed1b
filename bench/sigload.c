/* sigload.c - tsunagu-sigload: a load generator for tsunagu-signal (issue 16
 * item 4). One process, one thread, one epoll loop, any number of WebSocket
 * clients:
 *
 *   1. connects --members idle members (rooms of --room-size) with at most
 *      --concurrency handshakes/joins in flight (and, with --join-rate, at
 *      most that many started a second), then --pairs two-member rooms, and
 *      reports joins/s (first connect to last `joined`) and, with
 *      --server-pid, the server's CPU time per join;
 *   2. with --server-pid: measures the server's CPU (from /proc) over
 *      --idle-seconds while every client is silent, and its RSS per member
 *      (VmRSS after the joins minus before, over the members);
 *   3. sends --rate timestamped `signal`s a second, round robin over the
 *      pairs, for --seconds, and reports the forwarding latency (send to
 *      receive, CLOCK_MONOTONIC, p50/p99/max), how many arrived and, with
 *      --server-pid, the server's CPU time per forwarded signal (less the
 *      idle rate of step 2).
 *
 * The client side of RFC 6455 is written here by hand (a GET with Upgrade,
 * masked text frames out, unmasked frames in, pong for ping) rather than taken
 * from libwebsockets' client: the tool measures libwebsockets, so it must not
 * share its loop or its costs (lws 4.1 allocates a few KB per client wsi and
 * runs its client on the same poll loop under test); the subset a benchmark
 * client needs is ~150 lines. The server's bytes are read with bounds checks
 * (lengths only ever compared with what is buffered).
 *
 * Output: one `key=value` line per figure (bench/signal_load.sh reads them).
 * --check: exit 1 unless every member joined, no error or unexpected close
 * was seen and every signal sent was delivered (CI: test signal_load_check). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { ST_CONNECTING, ST_HANDSHAKE, ST_JOINING, ST_JOINED, ST_DEAD };

typedef struct {
    int fd;
    uint8_t st;
    uint8_t pair_side;  /* 0/1 inside a pair; idle members: 0 */
    int32_t pair;       /* index of its pair, -1 for idle members */
    char id[40];        /* our peer id, from `joined` */
    uint8_t *rb;        /* bytes of an incomplete frame (or HTTP head) */
    uint32_t rlen, rcap;
    uint8_t *wb;        /* what the socket did not take yet */
    uint32_t wlen, wcap;
} client;

typedef struct {
    const char *host;
    int port;
    long members, pairs, room_size, concurrency, rate, nsources;
    long join_rate; /* 0: as fast as the server takes them; else joins started per second */
    double seconds, idle_seconds;
    int server_pid;
    bool check;
} opts;

typedef struct {
    opts o;
    int ep;
    client *c;
    long n;                          /* members + 2 * pairs */
    long next_start, inflight, joined, dead;
    uint64_t errors, closes, conn_fail, hs_fail;
    uint64_t sent, recv;
    uint64_t *lat_ns;                /* one per received signal (bounded by sent) */
    size_t nlat, latcap;
    uint8_t scratch[1 << 16];
} gen;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int buf_add(uint8_t **b, uint32_t *len, uint32_t *cap, const void *p, size_t n)
{
    if (*len + n > *cap) {
        size_t nc = *cap ? *cap : 256;
        uint8_t *nb;
        while (nc < *len + n)
            nc *= 2;
        if (nc > (1u << 24) || !(nb = realloc(*b, nc)))
            return -1;
        *b = nb;
        *cap = (uint32_t)nc;
    }
    memcpy(*b + *len, p, n);
    *len += (uint32_t)n;
    return 0;
}

static void kill_client(gen *g, client *c, bool counted)
{
    if (c->st == ST_DEAD)
        return;
    if (c->st != ST_JOINED)
        g->inflight--;
    if (counted)
        g->closes++;
    epoll_ctl(g->ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c->rb);
    free(c->wb);
    c->rb = c->wb = NULL;
    c->rlen = c->rcap = c->wlen = c->wcap = 0;
    c->st = ST_DEAD;
    g->dead++;
}

static void want_out(gen *g, client *c, bool on)
{
    struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0u),
                             .data.u64 = (uint64_t)(c - g->c)};
    epoll_ctl(g->ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static void flush(gen *g, client *c)
{
    while (c->wlen) {
        ssize_t w = send(c->fd, c->wb, c->wlen, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EAGAIN) {
                want_out(g, c, true);
                return;
            }
            kill_client(g, c, true);
            return;
        }
        memmove(c->wb, c->wb + w, c->wlen - (size_t)w);
        c->wlen -= (uint32_t)w;
    }
}

/* one masked frame (RFC 6455 s.5.2); the mask is fixed: the server only
 * has to unmask, and nothing here is secret */
static void send_frame(gen *g, client *c, unsigned opcode, const char *p, size_t n)
{
    uint8_t h[8], m[4] = {0x12, 0x34, 0x56, 0x78};
    size_t hl = 2, old = c->wlen;
    h[0] = (uint8_t)(0x80 | opcode);
    if (n < 126) {
        h[1] = (uint8_t)(0x80 | n);
    } else {
        h[1] = 0x80 | 126;
        h[2] = (uint8_t)(n >> 8);
        h[3] = (uint8_t)n;
        hl = 4;
    }
    if (n > 65535 || buf_add(&c->wb, &c->wlen, &c->wcap, h, hl) ||
        buf_add(&c->wb, &c->wlen, &c->wcap, m, 4) || buf_add(&c->wb, &c->wlen, &c->wcap, p, n)) {
        kill_client(g, c, true);
        return;
    }
    for (size_t i = 0; i < n; i++)
        c->wb[c->wlen - n + i] ^= m[i & 3];
    if (old == 0)
        flush(g, c);
}

static void send_text(gen *g, client *c, const char *s) { send_frame(g, c, 1, s, strlen(s)); }

static int start_one(gen *g, long i)
{
    client *c = &g->c[i];
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)g->o.port)};
    struct sockaddr_in src = {.sin_family = AF_INET};
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.u64 = (uint64_t)i};
    int one = 1;

    inet_pton(AF_INET, g->o.host, &sa.sin_addr);
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return -errno;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (g->o.nsources > 1) {
        /* 127.0.0.(1+k): each source address has its own ~28k ephemeral
         * ports towards the one server port; the port is picked at connect */
        setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        src.sin_addr.s_addr = htonl(0x7f000001u + (uint32_t)(i % g->o.nsources));
        if (bind(c->fd, (struct sockaddr *)&src, sizeof src) < 0)
            goto fail;
    }
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa) < 0 && errno != EINPROGRESS)
        goto fail;
    c->st = ST_CONNECTING;
    g->inflight++;
    if (epoll_ctl(g->ep, EPOLL_CTL_ADD, c->fd, &ev) < 0) {
        g->inflight--;
        goto fail;
    }
    return 0;
fail:
    close(c->fd);
    c->st = ST_DEAD;
    g->dead++;
    g->conn_fail++;
    return -1;
}

static void on_connected(gen *g, client *c)
{
    char req[256];
    int n = snprintf(req, sizeof req,
                     "GET /ws HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n",
                     g->o.host, g->o.port);
    c->st = ST_HANDSHAKE;
    want_out(g, c, false);
    if (buf_add(&c->wb, &c->wlen, &c->wcap, req, (size_t)n))
        kill_client(g, c, true);
    else
        flush(g, c);
}

static void do_join(gen *g, client *c)
{
    char j[160];
    long i = c - g->c;
    if (c->pair >= 0)
        snprintf(j, sizeof j, "{\"type\":\"join\",\"room\":\"pair-%ld\",\"name\":\"p%ld\"}",
                 (long)c->pair, i);
    else
        snprintf(j, sizeof j, "{\"type\":\"join\",\"room\":\"idle-%ld\",\"name\":\"m%ld\"}",
                 i / g->o.room_size, i);
    c->st = ST_JOINING;
    send_text(g, c, j);
}

/* the value of "key":"..." in a JSON text of the server's (ids and types
 * are short and never escaped) */
static bool json_str(const char *s, size_t n, const char *key, char *out, size_t outsz)
{
    char pat[32];
    const char *p, *e;
    size_t pl = (size_t)snprintf(pat, sizeof pat, "\"%s\":\"", key);
    p = memmem(s, n, pat, pl);
    if (!p)
        return false;
    p += pl;
    e = memchr(p, '"', n - (size_t)(p - s));
    if (!e || (size_t)(e - p) >= outsz)
        return false;
    memcpy(out, p, (size_t)(e - p));
    out[e - p] = '\0';
    return true;
}

static void on_text(gen *g, client *c, const char *s, size_t n, uint64_t t)
{
    char type[24];
    if (!json_str(s, n, "type", type, sizeof type)) {
        g->errors++;
        return;
    }
    if (!strcmp(type, "signal")) {
        const char *p = memmem(s, n, "\"t\":", 4);
        uint64_t sent = 0;
        if (!p) {
            g->errors++;
            return;
        }
        for (p += 4; p < s + n && *p >= '0' && *p <= '9'; p++)
            sent = sent * 10 + (uint64_t)(*p - '0');
        g->recv++;
        if (g->nlat < g->latcap)
            g->lat_ns[g->nlat++] = t - sent;
    } else if (!strcmp(type, "joined") && c->st == ST_JOINING) {
        if (!json_str(s, n, "id", c->id, sizeof c->id)) {
            g->errors++;
            return;
        }
        c->st = ST_JOINED;
        g->inflight--;
        g->joined++;
    } else if (!strcmp(type, "error")) {
        if (g->errors < 5)
            fprintf(stderr, "sigload: server error: %.*s\n", (int)(n > 200 ? 200 : n), s);
        g->errors++;
    }
    /* peer-joined, peer-left, pong: nothing to do */
}

/* Frames in buf[0..len): handled; returns bytes consumed (a partial frame
 * at the end stays for the next read). */
static size_t parse_frames(gen *g, client *c, const uint8_t *b, size_t len, uint64_t t)
{
    size_t off = 0;
    while (c->st != ST_DEAD && len - off >= 2) {
        unsigned op = b[off] & 0x0f;
        uint64_t pl = b[off + 1] & 0x7f;
        size_t hl = 2;
        if (b[off + 1] & 0x80) { /* a server never masks (s.5.1) */
            kill_client(g, c, true);
            return len;
        }
        if (pl == 126) {
            if (len - off < 4)
                break;
            pl = (uint64_t)b[off + 2] << 8 | b[off + 3];
            hl = 4;
        } else if (pl == 127) {
            if (len - off < 10)
                break;
            pl = 0;
            for (int k = 0; k < 8; k++)
                pl = pl << 8 | b[off + 2 + k];
            hl = 10;
        }
        if (pl > (1u << 20)) {
            kill_client(g, c, true);
            return len;
        }
        if (len - off - hl < pl)
            break;
        if (op == 1 || op == 0)
            on_text(g, c, (const char *)b + off + hl, (size_t)pl, t);
        else if (op == 9)
            send_frame(g, c, 10, (const char *)b + off + hl, (size_t)pl);
        else if (op == 8) {
            kill_client(g, c, true);
            return len;
        }
        off += hl + (size_t)pl;
    }
    return off;
}

static void on_readable(gen *g, client *c)
{
    uint64_t t;
    for (int rounds = 0; rounds < 16 && c->st != ST_DEAD; rounds++) {
        ssize_t r = recv(c->fd, g->scratch, sizeof g->scratch, 0);
        const uint8_t *b;
        size_t len, used;
        if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
            kill_client(g, c, true);
            return;
        }
        if (r < 0)
            return;
        t = now_ns();
        if (c->rlen) {
            if (buf_add(&c->rb, &c->rlen, &c->rcap, g->scratch, (size_t)r)) {
                kill_client(g, c, true);
                return;
            }
            b = c->rb;
            len = c->rlen;
        } else {
            b = g->scratch;
            len = (size_t)r;
        }
        used = 0;
        if (c->st == ST_HANDSHAKE) {
            const uint8_t *e = memmem(b, len, "\r\n\r\n", 4);
            if (!e) {
                if (b == g->scratch && buf_add(&c->rb, &c->rlen, &c->rcap, b, len))
                    kill_client(g, c, true);
                if (c->rlen > 4096) {
                    g->hs_fail++;
                    kill_client(g, c, false);
                }
                continue;
            }
            if (len < 12 || memcmp(b, "HTTP/1.1 101", 12)) {
                if (g->hs_fail < 5)
                    fprintf(stderr, "sigload: handshake refused: %.*s\n",
                            (int)(e - b > 120 ? 120 : e - b), b);
                g->hs_fail++;
                kill_client(g, c, false);
                return;
            }
            used = (size_t)(e - b) + 4;
            do_join(g, c);
        }
        if (c->st != ST_DEAD)
            used += parse_frames(g, c, b + used, len - used, t);
        if (c->st == ST_DEAD)
            return;
        if (b == c->rb) {
            memmove(c->rb, c->rb + used, len - used);
            c->rlen = (uint32_t)(len - used);
        } else if (used < len && buf_add(&c->rb, &c->rlen, &c->rcap, b + used, len - used)) {
            kill_client(g, c, true);
            return;
        }
        if ((size_t)r < sizeof g->scratch)
            return;
    }
}

static void on_event(gen *g, struct epoll_event *ev)
{
    client *c = &g->c[ev->data.u64];
    if (c->st == ST_DEAD)
        return;
    if (c->st == ST_CONNECTING) {
        int err = 0;
        socklen_t sl = sizeof err;
        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &sl) || err) {
            if (g->conn_fail < 5)
                fprintf(stderr, "sigload: connect: %s\n", strerror(err));
            g->conn_fail++;
            kill_client(g, c, false);
            return;
        }
        on_connected(g, c);
        return;
    }
    if (ev->events & EPOLLOUT) {
        flush(g, c);
        if (c->st != ST_DEAD && !c->wlen)
            want_out(g, c, false);
    }
    if (c->st != ST_DEAD && (ev->events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
        on_readable(g, c);
}

static void poll_once(gen *g, int timeout_ms)
{
    struct epoll_event evs[256];
    int n = epoll_wait(g->ep, evs, 256, timeout_ms);
    for (int i = 0; i < n; i++)
        on_event(g, &evs[i]);
}

/* CPU time of a process in seconds: /proc/PID/schedstat's first field
 * (nanoseconds on the CPU; the ticks of /proc/PID/stat are 10 ms, too coarse
 * for an idle server over a few seconds), else utime + stime */
static double proc_cpu_s(int pid)
{
    char path[64], buf[1024], *p;
    unsigned long ut = 0, st = 0;
    unsigned long long ns;
    FILE *f;
    snprintf(path, sizeof path, "/proc/%d/schedstat", pid);
    if ((f = fopen(path, "r"))) {
        int n = fscanf(f, "%llu", &ns);
        fclose(f);
        if (n == 1)
            return (double)ns / 1e9;
    }
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    if (!(f = fopen(path, "r")))
        return -1;
    p = fgets(buf, sizeof buf, f);
    fclose(f);
    if (!p || !(p = strrchr(buf, ')')))
        return -1;
    /* after ")": state(3) ... utime(14) stime(15) */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static long proc_rss_kb(int pid)
{
    char path[64], line[256];
    long kb = -1;
    FILE *f;
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    if (!(f = fopen(path, "r")))
        return -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld", &kb) == 1)
            break;
    fclose(f);
    return kb;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Connect and join clients [from, to) with at most --concurrency in flight;
 * false when the time bound passed first. */
static bool join_range(gen *g, long from, long to, double max_s)
{
    uint64_t t0 = now_ns();
    g->next_start = from;
    while (g->joined + g->dead < to) {
        /* (--join-rate: members arriving over time, so that their keepalive
         * deadlines are spread as in real life, not bunched in one second) */
        while (g->next_start < to && g->inflight < g->o.concurrency &&
               (!g->o.join_rate || (double)(g->next_start - from) <
                                       (double)(now_ns() - t0) / 1e9 * (double)g->o.join_rate))
            start_one(g, g->next_start++);
        poll_once(g, 10);
        if ((double)(now_ns() - t0) / 1e9 > max_s)
            return false;
    }
    return true;
}

static void run_signals(gen *g)
{
    uint64_t t0 = now_ns(), end = t0 + (uint64_t)(g->o.seconds * 1e9), due = 0;
    long turn = 0;
    char msg[160], to[40];
    for (uint64_t t = t0; t < end; t = now_ns()) {
        uint64_t want = (uint64_t)((double)(t - t0) / 1e9 * (double)g->o.rate);
        /* bounded: never more than one second's worth at once */
        for (uint64_t k = 0; due < want && k < (uint64_t)g->o.rate; k++, due++) {
            long p = turn % g->o.pairs, side = (turn / g->o.pairs) & 1;
            client *a = &g->c[g->o.members + 2 * p + side];
            client *b = &g->c[g->o.members + 2 * p + (1 - side)];
            turn++;
            if (a->st != ST_JOINED || b->st != ST_JOINED)
                continue;
            snprintf(to, sizeof to, "%s", b->id);
            snprintf(msg, sizeof msg,
                     "{\"type\":\"signal\",\"to\":\"%s\",\"data\":{\"t\":%" PRIu64
                     ",\"s\":%" PRIu64 "}}",
                     to, now_ns(), g->sent);
            g->sent++;
            send_text(g, a, msg);
        }
        poll_once(g, 1);
    }
    /* the stragglers: at most 3 s */
    for (uint64_t t = now_ns(); g->recv < g->sent && now_ns() - t < 3000000000u;)
        poll_once(g, 10);
}

static long arg_l(const char *v, long lo, long hi, const char *name)
{
    char *e;
    long x = strtol(v, &e, 10);
    if (*e || x < lo || x > hi) {
        fprintf(stderr, "sigload: %s: %s is not in %ld..%ld\n", name, v, lo, hi);
        exit(2);
    }
    return x;
}

static void usage(void)
{
    printf("usage: tsunagu-sigload --port P [--host 127.0.0.1] [--members N (1000)]\n"
           "  [--pairs P (20)] [--room-size K (10)] [--rate SIGNALS/S (1000)]\n"
           "  [--seconds S (10)] [--idle-seconds S (5)] [--server-pid PID]\n"
           "  [--concurrency C (256)] [--join-rate R (0: unpaced)]\n"
           "  [--sources N (1): 127.0.0.1..N] [--check]\n");
}

static void parse_args(opts *o, int argc, char **argv)
{
    *o = (opts){.host = "127.0.0.1", .members = 1000, .pairs = 20, .room_size = 10,
                .concurrency = 256, .rate = 1000, .nsources = 1, .seconds = 10,
                .idle_seconds = 5};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--check")) {
            o->check = true;
            continue;
        }
        if (!strcmp(a, "--help")) {
            usage();
            exit(0);
        }
        if (!v) {
            fprintf(stderr, "sigload: %s needs a value\n", a);
            exit(2);
        }
        i++;
        if (!strcmp(a, "--host"))
            o->host = v;
        else if (!strcmp(a, "--port"))
            o->port = (int)arg_l(v, 1, 65535, a);
        else if (!strcmp(a, "--members"))
            o->members = arg_l(v, 0, 1000000, a);
        else if (!strcmp(a, "--pairs"))
            o->pairs = arg_l(v, 1, 10000, a);
        else if (!strcmp(a, "--room-size"))
            o->room_size = arg_l(v, 1, 1000, a);
        else if (!strcmp(a, "--rate"))
            o->rate = arg_l(v, 1, 1000000, a);
        else if (!strcmp(a, "--seconds"))
            o->seconds = (double)arg_l(v, 1, 3600, a);
        else if (!strcmp(a, "--idle-seconds"))
            o->idle_seconds = (double)arg_l(v, 0, 3600, a);
        else if (!strcmp(a, "--server-pid"))
            o->server_pid = (int)arg_l(v, 1, 1 << 30, a);
        else if (!strcmp(a, "--join-rate"))
            o->join_rate = arg_l(v, 0, 1000000, a);
        else if (!strcmp(a, "--concurrency"))
            o->concurrency = arg_l(v, 1, 100000, a);
        else if (!strcmp(a, "--sources"))
            o->nsources = arg_l(v, 1, 250, a);
        else {
            fprintf(stderr, "sigload: unknown flag %s\n", a);
            exit(2);
        }
    }
    if (!o->port) {
        usage();
        exit(2);
    }
}

int main(int argc, char **argv)
{
    gen *g = calloc(1, sizeof *g);
    struct rlimit rl;
    uint64_t t0, t1;
    long rss0 = -1, rss1 = -1;
    double cpu0 = 0, cpu1, join_s, jcpu0 = 0, idle_pct = 0;
    bool ok;
    int rc = 0;

    if (!g)
        return 1;
    parse_args(&g->o, argc, argv);
    g->n = g->o.members + 2 * g->o.pairs;
    /* one descriptor per client, plus a few */
    if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur < (rlim_t)g->n + 64) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        if (rl.rlim_cur < (rlim_t)g->n + 64) {
            fprintf(stderr, "sigload: RLIMIT_NOFILE %lu is below %ld clients\n",
                    (unsigned long)rl.rlim_cur, g->n);
            return 2;
        }
    }
    g->c = calloc((size_t)g->n, sizeof *g->c);
    g->latcap = (size_t)(g->o.seconds * (double)g->o.rate) + 16;
    g->lat_ns = malloc(g->latcap * sizeof *g->lat_ns);
    g->ep = epoll_create1(EPOLL_CLOEXEC);
    if (!g->c || !g->lat_ns || g->ep < 0)
        return 1;
    for (long i = 0; i < g->n; i++) {
        g->c[i].pair = i < g->o.members ? -1 : (int32_t)((i - g->o.members) / 2);
        g->c[i].pair_side = (uint8_t)(i < g->o.members ? 0 : (i - g->o.members) & 1);
        g->c[i].st = ST_DEAD; /* not started */
    }
    if (g->o.server_pid) {
        rss0 = proc_rss_kb(g->o.server_pid);
        jcpu0 = proc_cpu_s(g->o.server_pid);
    }

    t0 = now_ns();
    ok = join_range(g, 0, g->n, 600);
    t1 = now_ns();
    join_s = (double)(t1 - t0) / 1e9;
    printf("members=%ld\njoined=%ld\njoin_seconds=%.3f\njoins_per_s=%.0f\n", g->n, g->joined,
           join_s, (double)g->joined / join_s);
    /* Server CPU per join (handshake, join, joined, the room's peer-joined):
     * CPU time is what the server spent, so it holds up on a shared machine
     * where the wall-clock rate mostly measures who else had the core. */
    if (g->o.server_pid && g->joined)
        printf("server_cpu_us_per_join=%.2f\n",
               (proc_cpu_s(g->o.server_pid) - jcpu0) * 1e6 / (double)g->joined);
    if (!ok)
        fprintf(stderr, "sigload: joins did not finish within 600 s\n");

    if (g->o.server_pid) {
        /* let the last peer-joined notices drain, then measure silence */
        for (uint64_t t = now_ns(); now_ns() - t < 1000000000u;)
            poll_once(g, 50);
        rss1 = proc_rss_kb(g->o.server_pid);
        cpu0 = proc_cpu_s(g->o.server_pid);
        t0 = now_ns();
        while ((double)(now_ns() - t0) / 1e9 < g->o.idle_seconds)
            poll_once(g, 100);
        cpu1 = proc_cpu_s(g->o.server_pid);
        idle_pct = 100.0 * (cpu1 - cpu0) / ((double)(now_ns() - t0) / 1e9);
        printf("server_idle_cpu_pct=%.3f\n", idle_pct);
        printf("server_rss_kb_before=%ld\nserver_rss_kb_after=%ld\n", rss0, rss1);
        if (g->joined)
            printf("server_rss_bytes_per_member=%.0f\n",
                   (double)(rss1 - rss0) * 1024.0 / (double)g->joined);
    }

    if (g->o.server_pid) {
        cpu0 = proc_cpu_s(g->o.server_pid);
        t0 = now_ns();
    }
    run_signals(g);
    if (g->o.server_pid && g->recv) {
        /* per forwarded signal (read, parse, look up, build, write), less
         * the idle rate measured above (tick, keepalive) over the same time */
        double busy = proc_cpu_s(g->o.server_pid) - cpu0;
        double idle = idle_pct / 100.0 * ((double)(now_ns() - t0) / 1e9);
        printf("server_cpu_us_per_signal=%.2f\n", (busy - idle) * 1e6 / (double)g->recv);
    }
    printf("signals_sent=%" PRIu64 "\nsignals_delivered=%" PRIu64 "\n", g->sent, g->recv);
    if (g->nlat) {
        qsort(g->lat_ns, g->nlat, sizeof *g->lat_ns, cmp_u64);
        printf("latency_p50_ms=%.3f\nlatency_p99_ms=%.3f\nlatency_max_ms=%.3f\n",
               (double)g->lat_ns[g->nlat / 2] / 1e6, (double)g->lat_ns[g->nlat * 99 / 100] / 1e6,
               (double)g->lat_ns[g->nlat - 1] / 1e6);
    }
    printf("errors=%" PRIu64 "\nunexpected_closes=%" PRIu64 "\nconnect_failures=%" PRIu64
           "\nhandshake_failures=%" PRIu64 "\n",
           g->errors, g->closes, g->conn_fail, g->hs_fail);
    if (g->o.check && (g->joined != g->n || g->errors || g->closes || g->conn_fail ||
                       g->hs_fail || g->recv != g->sent || !g->sent)) {
        fprintf(stderr, "sigload: FAIL: joined %ld of %ld, %" PRIu64 " errors, %" PRIu64
                        " closes, delivered %" PRIu64 " of %" PRIu64 "\n",
                g->joined, g->n, g->errors, g->closes, g->recv, g->sent);
        rc = 1;
    }
    for (long i = 0; i < g->n; i++)
        if (g->c[i].st != ST_DEAD)
            kill_client(g, &g->c[i], false);
    close(g->ep);
    free(g->lat_ns);
    free(g->c);
    free(g);
    return rc;
}
