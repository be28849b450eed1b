/* rly_admin.c - the relay's tiny admin HTTP/1.1 server: GET /metrics
 * (Prometheus text, metric names of DESIGN.md) and GET /healthz. Answers
 * are built from the workers' plain counters, summed here at scrape time;
 * every answer closes the connection. Bound to 127.0.0.1 by default.
 *
 * The connections live in a small fixed table on the worker that owns the
 * listener. Idle clients must not be able to lock the scraper out: an entry
 * that has not sent a whole request head within ADMIN_TIMEOUT_MS is closed
 * by the sweep, and when the table is full the oldest entry makes room for
 * the newcomer. When accept() runs out of descriptors the listener is
 * paused until the next sweep instead of waking the loop at once again. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rly_worker.h"

#define ADMIN_MAX 16
#define ADMIN_TIMEOUT_MS 5000

typedef struct {
    int fd;
    size_t len;
    uint64_t accepted_ms;
    char buf[2048];
} admin_conn;

struct rly_admin {
    rly_admin_params p;
    bool paused; /* listener out of epoll after EMFILE; re-armed by the sweep */
    admin_conn c[ADMIN_MAX];
};

static void metrics(rtc_buf *b, const rly_worker *const *ws, size_t n, double start,
                    const rly_reloads *reloads)
{
    rly_stats sum;
    uint64_t allocs = 0;
    static const char *const dir_c2p = "direction=\"client_to_peer\"";
    static const char *const dir_p2c = "direction=\"peer_to_client\"";

    memset(&sum, 0, sizeof sum);
    for (size_t i = 0; i < n; i++) {
        const rly_stats *s = rly_worker_stats(ws[i]);
        sum.allocations_total += s->allocations_total;
        sum.auth_failures += s->auth_failures;
        sum.permission_denied += s->permission_denied;
        sum.pkts_c2p += s->pkts_c2p;
        sum.pkts_p2c += s->pkts_p2c;
        sum.bytes_c2p += s->bytes_c2p;
        sum.bytes_p2c += s->bytes_p2c;
        for (int d = 0; d < RLY_DROP_N; d++)
            sum.dropped[d] += s->dropped[d];
    }
    /* the shared quota count is exact; per-worker gauges lag a loop turn */
    if (n)
        allocs = rly_worker_total_allocations(ws[0]);
    rtc_metrics_one(b, "tsunagu_relay_allocations", "gauge",
                    "Live TURN allocations.", allocs);
    rtc_metrics_one(b, "tsunagu_relay_allocations_total", "counter",
                    "TURN allocations created.", sum.allocations_total);
    rtc_metrics_one(b, "tsunagu_relay_auth_failures_total", "counter",
                    "Requests with wrong credentials (bad user, realm or integrity).",
                    sum.auth_failures);
    rtc_metrics_header(b, "tsunagu_relay_packets_total", "counter", "Relayed packets.");
    rtc_metrics_u64(b, "tsunagu_relay_packets_total", dir_c2p, sum.pkts_c2p);
    rtc_metrics_u64(b, "tsunagu_relay_packets_total", dir_p2c, sum.pkts_p2c);
    rtc_metrics_header(b, "tsunagu_relay_bytes_total", "counter", "Relayed payload bytes.");
    rtc_metrics_u64(b, "tsunagu_relay_bytes_total", dir_c2p, sum.bytes_c2p);
    rtc_metrics_u64(b, "tsunagu_relay_bytes_total", dir_p2c, sum.bytes_p2c);
    rtc_metrics_header(b, "tsunagu_relay_dropped_total", "counter",
                       "Packets dropped, by reason.");
    for (int d = 0; d < RLY_DROP_N; d++) {
        char label[64];
        snprintf(label, sizeof label, "reason=\"%s\"", rly_drop_names[d]);
        rtc_metrics_u64(b, "tsunagu_relay_dropped_total", label, sum.dropped[d]);
    }
    rtc_metrics_one(b, "tsunagu_relay_permission_denied_total", "counter",
                    "CreatePermission/ChannelBind peers refused by the peer policy.",
                    sum.permission_denied);
    if (reloads) {
        rtc_metrics_header(b, "tsunagu_relay_config_reloads_total", "counter",
                           "SIGHUP reloads; a failed one keeps the old settings running.");
        rtc_metrics_u64(b, "tsunagu_relay_config_reloads_total", "result=\"ok\"",
                        atomic_load(&reloads->ok));
        rtc_metrics_u64(b, "tsunagu_relay_config_reloads_total", "result=\"failed\"",
                        atomic_load(&reloads->failed));
        rtc_metrics_header(b, "tsunagu_relay_takeovers_total", "counter",
                           "Live takeovers (SIGUSR2) that made this process or were tried "
                           "from it; a failed one keeps the old process serving.");
        rtc_metrics_u64(b, "tsunagu_relay_takeovers_total", "result=\"ok\"",
                        atomic_load(&reloads->takeover_ok));
        rtc_metrics_u64(b, "tsunagu_relay_takeovers_total", "result=\"failed\"",
                        atomic_load(&reloads->takeover_failed));
    }
    rtc_metrics_process(b, start);
}

static void reply(rtc_buf *out, const char *status, const char *ctype, const char *body,
                  size_t blen)
{
    rtc_buf_printf(out,
                   "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                   "Connection: close\r\n\r\n",
                   status, ctype, blen);
    rtc_buf_append(out, body, blen);
}

void rly_admin_respond(rtc_buf *out, const char *req, size_t len,
                       const rly_worker *const *workers, size_t n, double start_time_s,
                       const rly_reloads *reloads)
{
    bool draining = false;
    (void)len;
    for (size_t i = 0; i < n; i++)
        draining |= rly_worker_draining(workers[i]);
    if (!strncmp(req, "GET /metrics ", 13) || !strncmp(req, "GET /metrics?", 13)) {
        rtc_buf body;
        rtc_buf_init(&body);
        metrics(&body, workers, n, start_time_s, reloads);
        if (body.oom)
            reply(out, "500 Internal Server Error", "text/plain", "out of memory\n", 14);
        else
            reply(out, "200 OK", "text/plain; version=0.0.4; charset=utf-8", body.p, body.len);
        rtc_buf_dispose(&body);
    } else if (!strncmp(req, "GET /healthz ", 13)) {
        /* draining: tell load balancers to send new clients elsewhere */
        if (draining)
            reply(out, "503 Service Unavailable", "text/plain", "draining\n", 9);
        else
            reply(out, "200 OK", "text/plain", "ok\n", 3);
    } else if (!strncmp(req, "GET ", 4)) {
        reply(out, "404 Not Found", "text/plain", "not found\n", 10);
    } else {
        reply(out, "405 Method Not Allowed", "text/plain", "only GET\n", 9);
    }
}

/* ---- connections ---- */

rly_admin *rly_admin_new(const rly_admin_params *p)
{
    rly_admin *a = calloc(1, sizeof *a);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = p->listen_data};
    if (!a) {
        close(p->listen_fd);
        return NULL;
    }
    a->p = *p;
    for (int i = 0; i < ADMIN_MAX; i++)
        a->c[i].fd = -1;
    if (epoll_ctl(p->ep, EPOLL_CTL_ADD, p->listen_fd, &ev)) {
        rly_admin_free(a);
        return NULL;
    }
    return a;
}

static void admin_close(rly_admin *a, int i)
{
    epoll_ctl(a->p.ep, EPOLL_CTL_DEL, a->c[i].fd, NULL);
    close(a->c[i].fd);
    a->c[i].fd = -1;
}

void rly_admin_free(rly_admin *a)
{
    if (!a)
        return;
    for (int i = 0; i < ADMIN_MAX; i++)
        if (a->c[i].fd >= 0)
            admin_close(a, i);
    /* after a takeover another process holds the listening socket too, and
     * epoll forgets a descriptor only when the socket itself is closed */
    epoll_ctl(a->p.ep, EPOLL_CTL_DEL, a->p.listen_fd, NULL);
    close(a->p.listen_fd);
    free(a);
}

int rly_admin_listen_fd(const rly_admin *a) { return a->p.listen_fd; }

/* The slot for a new connection: a free one, else the oldest (closed). */
static int admin_slot(rly_admin *a)
{
    int oldest = 0;
    for (int i = 0; i < ADMIN_MAX; i++) {
        if (a->c[i].fd < 0)
            return i;
        if (a->c[i].accepted_ms < a->c[oldest].accepted_ms)
            oldest = i;
    }
    admin_close(a, oldest);
    return oldest;
}

static void pause_listener(rly_admin *a)
{
    struct epoll_event ev = {.events = 0, .data.u64 = a->p.listen_data};
    if (!epoll_ctl(a->p.ep, EPOLL_CTL_MOD, a->p.listen_fd, &ev))
        a->paused = true;
}

void rly_admin_accept(rly_admin *a, uint64_t now_ms)
{
    for (int n = 0; n < ADMIN_MAX; n++) {
        int fd = accept4(a->p.listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC), i;
        struct epoll_event ev = {.events = EPOLLIN};
        if (fd < 0) {
            /* level-triggered: out of descriptors, the pending connection
             * would wake the loop again at once, forever */
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                pause_listener(a);
            return;
        }
        i = admin_slot(a);
        ev.data.u64 = a->p.conn_data | (uint32_t)i;
        if (epoll_ctl(a->p.ep, EPOLL_CTL_ADD, fd, &ev)) {
            close(fd);
            continue;
        }
        a->c[i].fd = fd;
        a->c[i].len = 0;
        a->c[i].accepted_ms = now_ms;
    }
}

void rly_admin_event(rly_admin *a, uint32_t idx)
{
    admin_conn *ac;
    rtc_buf out;
    ssize_t n;
    size_t off = 0;
    int tries = 0;

    if (idx >= ADMIN_MAX || a->c[idx].fd < 0)
        return;
    ac = &a->c[idx];
    n = recv(ac->fd, ac->buf + ac->len, sizeof ac->buf - 1 - ac->len, 0);
    if (n <= 0) {
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        admin_close(a, (int)idx);
        return;
    }
    ac->len += (size_t)n;
    ac->buf[ac->len] = '\0';
    if (!strstr(ac->buf, "\r\n\r\n") && !strstr(ac->buf, "\n\n")) {
        if (ac->len >= sizeof ac->buf - 1)
            admin_close(a, (int)idx); /* request head too large */
        return;
    }
    rtc_buf_init(&out);
    rly_admin_respond(&out, ac->buf, ac->len, a->p.all, *a->p.n_all, a->p.start_time_s,
                      a->p.reloads);
    /* small answers: the socket buffer takes them at once; a bounded retry
     * covers the rare partial write without a per-connection queue */
    while (!out.oom && off < out.len && tries++ < 1000) {
        ssize_t s = send(ac->fd, out.p + off, out.len - off, MSG_NOSIGNAL);
        if (s > 0)
            off += (size_t)s;
        else if (s < 0 && errno != EAGAIN && errno != EINTR)
            break;
    }
    rtc_buf_dispose(&out);
    admin_close(a, (int)idx);
}

void rly_admin_sweep(rly_admin *a, uint64_t now_ms)
{
    for (int i = 0; i < ADMIN_MAX; i++)
        if (a->c[i].fd >= 0 && now_ms - a->c[i].accepted_ms >= ADMIN_TIMEOUT_MS)
            admin_close(a, i);
    if (a->paused) {
        struct epoll_event ev = {.events = EPOLLIN, .data.u64 = a->p.listen_data};
        if (!epoll_ctl(a->p.ep, EPOLL_CTL_MOD, a->p.listen_fd, &ev))
            a->paused = false;
    }
}
