/* bot_http.c - the bot's metrics listener (see bot_http.h). */
#include "bot_http.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <glib-unix.h>
#include <glib.h>

#include "rtc_addr.h"
#include "rtc_clock.h"

#define HTTP_MAX 8
#define HTTP_TIMEOUT_US 5000000u

typedef struct {
    int fd;               /* -1 = free */
    guint src;
    uint64_t accepted_us;
    size_t len;
    char buf[2048];
    struct bot_http *h;
} http_conn;

struct bot_http {
    rtc_http_site site;
    int fd;
    uint16_t port;
    guint src, tick;
    http_conn c[HTTP_MAX];
};

static void conn_close(http_conn *c)
{
    if (c->fd < 0)
        return;
    g_source_remove(c->src);
    close(c->fd);
    c->fd = -1;
    c->src = 0;
}

/* The head is in: answer with one send and close. */
static void conn_answer(http_conn *c)
{
    rtc_buf out;
    rtc_buf_init(&out);
    rtc_http_respond_raw(&c->h->site, c->buf, c->len, &out);
    if (!out.oom)
        (void)!send(c->fd, out.p, out.len, MSG_NOSIGNAL | MSG_DONTWAIT);
    rtc_buf_dispose(&out);
    conn_close(c);
}

static gboolean on_conn(gint fd, GIOCondition cond, gpointer ud)
{
    http_conn *c = ud;
    ssize_t n;
    (void)fd;
    (void)cond;
    n = recv(c->fd, c->buf + c->len, sizeof c->buf - 1 - c->len, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return G_SOURCE_CONTINUE;
    if (n <= 0) {
        c->src = 0; /* removed by returning REMOVE */
        close(c->fd);
        c->fd = -1;
        return G_SOURCE_REMOVE;
    }
    c->len += (size_t)n;
    c->buf[c->len] = '\0';
    if (strstr(c->buf, "\r\n\r\n") || strstr(c->buf, "\n\n")) {
        conn_answer(c);
        return G_SOURCE_REMOVE; /* conn_close removed the source already */
    }
    if (c->len >= sizeof c->buf - 1) {
        conn_close(c); /* head too large */
        return G_SOURCE_REMOVE;
    }
    return G_SOURCE_CONTINUE;
}

static gboolean on_accept(gint lfd, GIOCondition cond, gpointer ud)
{
    bot_http *h = ud;
    int fd, slot = 0;
    (void)cond;
    /* bounded: at most HTTP_MAX accepts per wake-up */
    for (int k = 0; k < HTTP_MAX; k++) {
        fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            break;
        for (int i = 0; i < HTTP_MAX; i++) {
            if (h->c[i].fd < 0) {
                slot = i;
                break;
            }
            if (h->c[i].accepted_us < h->c[slot].accepted_us)
                slot = i;
        }
        conn_close(&h->c[slot]); /* the oldest, when all are taken */
        h->c[slot].fd = fd;
        h->c[slot].len = 0;
        h->c[slot].accepted_us = rtc_clock_mono_us();
        h->c[slot].src = g_unix_fd_add(fd, G_IO_IN | G_IO_HUP | G_IO_ERR, on_conn, &h->c[slot]);
    }
    return G_SOURCE_CONTINUE;
}

static gboolean on_tick(gpointer ud)
{
    bot_http *h = ud;
    uint64_t now = rtc_clock_mono_us();
    for (int i = 0; i < HTTP_MAX; i++)
        if (h->c[i].fd >= 0 && now - h->c[i].accepted_us > HTTP_TIMEOUT_US)
            conn_close(&h->c[i]);
    return G_SOURCE_CONTINUE;
}

bot_http *bot_http_new(const char *addr_port, const rtc_http_site *site, char *err, size_t errlen)
{
    bot_http *h;
    rtc_addr a;
    struct sockaddr_storage ss;
    socklen_t sl;
    int one = 1;

    if (rtc_addr_parse_hostport(addr_port, &a)) {
        snprintf(err, errlen, "metrics-listen: '%s' is not ADDR:PORT", addr_port);
        return NULL;
    }
    h = calloc(1, sizeof *h);
    if (!h) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    h->site = *site;
    for (int i = 0; i < HTTP_MAX; i++) {
        h->c[i].fd = -1;
        h->c[i].h = h;
    }
    sl = rtc_addr_to_sockaddr(&a, &ss);
    h->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (h->fd < 0)
        goto out_err;
    setsockopt(h->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(h->fd, (struct sockaddr *)&ss, sl) || listen(h->fd, 16))
        goto out_close;
    sl = sizeof ss;
    if (getsockname(h->fd, (struct sockaddr *)&ss, &sl))
        goto out_close;
    rtc_addr_from_sockaddr(&a, (struct sockaddr *)&ss);
    h->port = a.port;
    h->src = g_unix_fd_add(h->fd, G_IO_IN, on_accept, h);
    h->tick = g_timeout_add(1000, on_tick, h);
    return h;
out_close:
    snprintf(err, errlen, "metrics-listen %s: %s", addr_port, strerror(errno));
    close(h->fd);
    free(h);
    return NULL;
out_err:
    snprintf(err, errlen, "metrics-listen %s: %s", addr_port, strerror(errno));
    free(h);
    return NULL;
}

uint16_t bot_http_port(const bot_http *h) { return h->port; }

void bot_http_free(bot_http *h)
{
    if (!h)
        return;
    for (int i = 0; i < HTTP_MAX; i++)
        conn_close(&h->c[i]);
    g_source_remove(h->src);
    g_source_remove(h->tick);
    close(h->fd);
    free(h);
}
