/* rly_admin.c - the admin HTTP/1.1 server (see rly_admin.h): every answer
 * closes the connection.
 *
 * The connections live in a small fixed table. Idle clients must not be
 * able to lock the scraper out: an entry that has not sent a whole request
 * head and taken its answer within ADMIN_TIMEOUT_MS is closed by the tick,
 * and when the table is full the oldest entry makes room for the newcomer.
 * When accept() runs out of descriptors the listener is paused until the
 * next tick instead of waking the loop at once again.
 *
 * Answers are written without blocking and without retrying in a loop
 * (the loop also relays packets): what the socket does not take at once
 * waits in the connection's buffer, sent as EPOLLOUT says there is room.
 * An answer larger than ADMIN_OUT_MAX is not sent (the connection is
 * closed), so a scrape cannot make the worker buffer without bound. */
#include "rly_admin.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rtc_http.h"

#define ADMIN_MAX 16
#define ADMIN_TIMEOUT_MS 5000
#define ADMIN_OUT_MAX (1u << 20)

typedef struct {
    int fd;
    size_t len;
    uint64_t accepted_ms;
    char buf[2048];
    bool answering; /* the head is in; out holds the answer */
    bool deferred;  /* an /admin/ request waiting for the workers' answers */
    rly_admin_wait wait;
    rtc_buf out;    /* the answer, from off on still to send */
    size_t off;
} admin_conn;

struct rly_admin {
    rly_admin_params p;
    rtc_http_site site;
    rly_admin_api *api;
    int listen_fd;
    bool paused; /* listener out of epoll after EMFILE; re-armed by the tick */
    admin_conn c[ADMIN_MAX];
};

/* ---- connections ---- */

static void admin_close(rly_admin *a, int i)
{
    rly_worker_unwatch(a->p.loop, a->c[i].fd);
    close(a->c[i].fd);
    a->c[i].fd = -1;
    rtc_buf_dispose(&a->c[i].out);
}

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

static int conn_of(const rly_admin *a, int fd)
{
    for (int i = 0; i < ADMIN_MAX; i++)
        if (a->c[i].fd == fd)
            return i;
    return -1;
}

/* Send what the socket takes now; the rest waits for EPOLLOUT. Closes the
 * connection when the answer is out or the socket failed. */
static void admin_write(rly_admin *a, int i)
{
    admin_conn *ac = &a->c[i];
    while (ac->off < ac->out.len) {
        ssize_t s = send(ac->fd, ac->out.p + ac->off, ac->out.len - ac->off, MSG_NOSIGNAL);
        if (s > 0) {
            ac->off += (size_t)s;
            continue;
        }
        if (s < 0 && errno == EINTR)
            continue;
        if (s < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) &&
            rly_worker_watch_mod(a->p.loop, ac->fd, EPOLLOUT) == 0)
            return; /* the loop calls again when there is room */
        break;
    }
    admin_close(a, i);
}

/* The answer is in ac->out: send it. */
static void admin_send(rly_admin *a, int i)
{
    admin_conn *ac = &a->c[i];
    if (ac->out.oom || ac->out.len > ADMIN_OUT_MAX) {
        admin_close(a, i);
        return;
    }
    ac->off = 0;
    ac->answering = true;
    admin_write(a, i);
}

/* A request head is complete: build the whole answer and send it, or wait
 * for the workers (an /admin/ question), reading nothing more meanwhile. */
static void admin_answer(rly_admin *a, int i, uint64_t now_ms)
{
    admin_conn *ac = &a->c[i];
    bool deferred = false;
    rtc_buf_init(&ac->out);
    if (!rly_admin_api_request(a->api, ac->buf, ac->len, now_ms, &ac->out, &deferred,
                               &ac->wait))
        rtc_http_respond_raw(&a->site, ac->buf, ac->len, &ac->out);
    if (deferred) {
        ac->deferred = true;
        if (rly_worker_watch_mod(a->p.loop, ac->fd, 0))
            admin_close(a, i);
        return;
    }
    admin_send(a, i);
}

/* Workers answered: every request waiting for that question gets its
 * answer (or, its question abandoned, a closed connection). */
static void on_api(void *arg, int fd, uint32_t events, uint64_t now_ms)
{
    rly_admin *a = arg;
    (void)fd;
    (void)events;
    (void)now_ms;
    if (!rly_admin_api_poll(a->api))
        return;
    for (int i = 0; i < ADMIN_MAX; i++) {
        admin_conn *ac = &a->c[i];
        if (ac->fd < 0 || !ac->deferred)
            continue;
        ac->deferred = false;
        if (rly_admin_api_finish(a->api, &ac->wait, &ac->out))
            admin_send(a, i);
        else
            admin_close(a, i);
    }
}

static void admin_read(rly_admin *a, int i, uint64_t now_ms)
{
    admin_conn *ac = &a->c[i];
    ssize_t n = recv(ac->fd, ac->buf + ac->len, sizeof ac->buf - 1 - ac->len, 0);
    if (n <= 0) {
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        admin_close(a, i);
        return;
    }
    ac->len += (size_t)n;
    ac->buf[ac->len] = '\0';
    if (!strstr(ac->buf, "\r\n\r\n") && !strstr(ac->buf, "\n\n")) {
        if (ac->len >= sizeof ac->buf - 1)
            admin_close(a, i); /* request head too large */
        return;
    }
    admin_answer(a, i, now_ms);
}

static void on_conn(void *arg, int fd, uint32_t events, uint64_t now_ms)
{
    rly_admin *a = arg;
    int i = conn_of(a, fd);
    if (i < 0)
        return;
    if (a->c[i].deferred) { /* waiting for the workers: only a hang-up matters */
        if (events & (EPOLLERR | EPOLLHUP))
            admin_close(a, i);
        return;
    }
    if (a->c[i].answering) { /* only room to write matters now */
        if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
            admin_write(a, i);
        return;
    }
    admin_read(a, i, now_ms);
}

static void pause_listener(rly_admin *a)
{
    if (!rly_worker_watch_mod(a->p.loop, a->listen_fd, 0))
        a->paused = true;
}

static void on_listen(void *arg, int lfd, uint32_t events, uint64_t now_ms)
{
    rly_admin *a = arg;
    (void)events;
    for (int n = 0; n < ADMIN_MAX; n++) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC), i;
        if (fd < 0) {
            /* level-triggered: out of descriptors, the pending connection
             * would wake the loop again at once, forever */
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                pause_listener(a);
            return;
        }
        i = admin_slot(a);
        if (rly_worker_watch(a->p.loop, fd, EPOLLIN, on_conn, a)) {
            close(fd);
            continue;
        }
        a->c[i].fd = fd;
        a->c[i].len = 0;
        a->c[i].accepted_ms = now_ms;
        rtc_buf_init(&a->c[i].out);
        a->c[i].off = 0;
        a->c[i].answering = false;
        a->c[i].deferred = false;
    }
}

/* Once a second: close connections too slow to ask or to take the answer,
 * resume a paused listener. */
static void on_tick(void *arg, uint64_t now_ms)
{
    rly_admin *a = arg;
    for (int i = 0; i < ADMIN_MAX; i++)
        if (a->c[i].fd >= 0 && now_ms - a->c[i].accepted_ms >= ADMIN_TIMEOUT_MS)
            admin_close(a, i);
    if (a->paused && !rly_worker_watch_mod(a->p.loop, a->listen_fd, EPOLLIN))
        a->paused = false;
}

/* ---- life cycle ---- */

static int listen_on(const rtc_addr *addr, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    socklen_t sl = rtc_addr_to_sockaddr(addr, &ss);
    char as[RTC_ADDR_STRLEN];
    int one = 1, fd = socket(addr->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    if (fd >= 0) {
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one); /* TIME_WAIT only */
        if (addr->family == AF_INET6)
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
        if (!bind(fd, (struct sockaddr *)&ss, sl) && !listen(fd, 1024))
            return fd;
    }
    {
        int e = errno;
        if (fd >= 0)
            close(fd);
        rtc_addr_format(addr, true, as);
        snprintf(err, errlen, "metrics-listen: cannot listen on %s (tcp): %s", as, strerror(e));
    }
    return -1;
}

rly_admin *rly_admin_new(const rly_admin_params *p, char *err, size_t errlen)
{
    rly_admin *a = calloc(1, sizeof *a);
    int fd = p->addr ? -1 : p->listen_fd;

    if (!a) {
        snprintf(err, errlen, "metrics-listen: out of memory");
        goto out_close;
    }
    a->p = *p;
    a->site = (rtc_http_site){.metrics_type = RTC_HTTP_METRICS_TYPE "; charset=utf-8",
                              .method_body = "only GET\n",
                              .render_metrics = p->hooks.render,
                              .unhealthy = p->hooks.unhealthy,
                              .ctx = p->hooks.arg};
    for (int i = 0; i < ADMIN_MAX; i++)
        a->c[i].fd = -1;
    if (!(a->api = rly_admin_api_new(&p->api))) {
        snprintf(err, errlen, "metrics-listen: out of memory");
        goto out_free;
    }
    if (p->addr && (fd = listen_on(p->addr, err, errlen)) < 0)
        goto out_free;
    a->listen_fd = fd;
    if (rly_worker_watch(p->loop, fd, EPOLLIN, on_listen, a)) {
        snprintf(err, errlen, "metrics-listen: cannot watch the listener");
        goto out_free;
    }
    if (rly_worker_watch(p->loop, rly_admin_api_fd(a->api), EPOLLIN, on_api, a)) {
        rly_worker_unwatch(p->loop, fd);
        snprintf(err, errlen, "metrics-listen: cannot watch the admin API");
        goto out_free;
    }
    rly_worker_on_tick(p->loop, on_tick, a);
    return a;
out_free:
    rly_admin_api_free(a->api);
    free(a);
out_close:
    if (fd >= 0)
        close(fd);
    return NULL;
}

void rly_admin_free(rly_admin *a)
{
    if (!a)
        return;
    for (int i = 0; i < ADMIN_MAX; i++)
        if (a->c[i].fd >= 0)
            admin_close(a, i);
    rly_worker_on_tick(a->p.loop, NULL, NULL);
    rly_worker_unwatch(a->p.loop, a->listen_fd);
    rly_worker_unwatch(a->p.loop, rly_admin_api_fd(a->api));
    rly_admin_api_free(a->api);
    close(a->listen_fd);
    free(a);
}

int rly_admin_listen_fd(const rly_admin *a) { return a->listen_fd; }
