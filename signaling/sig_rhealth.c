/* sig_rhealth.c - the relays' /healthz for the status page (see
 * sig_rhealth.h). One state machine per URL: IDLE -> CONNECTING -> READING
 * -> IDLE, stepped from the tick; every socket non-blocking, every step
 * bounded by the deadline. The answer is read through rtc_rd: only its
 * status line and a short body (a reason such as "draining") are used. */
#include "sig_rhealth.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rtc_addr.h"
#include "rtc_clock.h"
#include "rtc_err.h"
#include "rtc_rd.h"
#include "sig_conf.h"

#define URL_MAX SIG_RHEALTH_URL_MAX
#define ANSWER_MAX 512 /* the status line and a short body; the rest is not read */

enum { IDLE, CONNECTING, READING };

typedef struct {
    char url[URL_MAX], host[RTC_ADDR_STRLEN], path[URL_MAX];
    rtc_addr addr;
    int phase, fd;
    uint64_t next_us, deadline_us, checked_wall_s;
    char answer[ANSWER_MAX];
    size_t alen;
    char state[96];
    uint64_t period_us, timeout_us; /* the owner's, copied when set */
} check;

struct sig_rhealth {
    check c[SIG_RHEALTH_MAX];
    size_t n;
    uint64_t period_us, timeout_us;
};

sig_rhealth *sig_rhealth_new_every(uint64_t period_us, uint64_t timeout_us)
{
    sig_rhealth *h = calloc(1, sizeof(sig_rhealth));
    if (h) {
        h->period_us = period_us;
        h->timeout_us = timeout_us;
    }
    return h;
}

sig_rhealth *sig_rhealth_new(void)
{
    return sig_rhealth_new_every(SIG_RHEALTH_PERIOD_US, SIG_RHEALTH_TIMEOUT_US);
}

static void finish(check *c, const char *state, uint64_t now_us)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->phase = IDLE;
    c->next_us = now_us + c->period_us;
    c->checked_wall_s = rtc_clock_wall_s();
    snprintf(c->state, sizeof c->state, "%s", state);
}

void sig_rhealth_free(sig_rhealth *h)
{
    if (!h)
        return;
    for (size_t i = 0; i < h->n; i++)
        if (h->c[i].fd >= 0)
            close(h->c[i].fd);
    free(h);
}

void sig_rhealth_set(sig_rhealth *h, const rtc_strlist *urls)
{
    check fresh[SIG_RHEALTH_MAX];
    size_t n = 0;
    char err[160];
    bool kept[SIG_RHEALTH_MAX] = {false};

    for (size_t i = 0; i < urls->n && n < SIG_RHEALTH_MAX; i++) {
        check *c = &fresh[n];
        size_t j;
        for (j = 0; j < h->n; j++)
            if (!kept[j] && !strcmp(h->c[j].url, urls->v[i]))
                break;
        if (j < h->n) { /* still listed: keep its state and any check under way */
            *c = h->c[j];
            kept[j] = true;
            n++;
            continue;
        }
        memset(c, 0, sizeof *c);
        if (sig_rhealth_url_parse(urls->v[i], &c->addr, c->path, err, sizeof err))
            continue;
        snprintf(c->url, sizeof c->url, "%s", urls->v[i]);
        rtc_addr_format(&c->addr, false, c->host);
        c->fd = -1;
        c->period_us = h->period_us;
        c->timeout_us = h->timeout_us;
        snprintf(c->state, sizeof c->state, "not checked yet");
        n++;
    }
    for (size_t j = 0; j < h->n; j++)
        if (!kept[j] && h->c[j].fd >= 0)
            close(h->c[j].fd);
    memcpy(h->c, fresh, n * sizeof *fresh);
    h->n = n;
}

static void start(check *c, uint64_t now_us)
{
    struct sockaddr_storage ss;
    socklen_t sl = rtc_addr_to_sockaddr(&c->addr, &ss);
    char why[80];
    c->alen = 0;
    c->deadline_us = now_us + c->timeout_us;
    c->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0 || (connect(c->fd, (struct sockaddr *)&ss, sl) && errno != EINPROGRESS)) {
        snprintf(why, sizeof why, "unreachable: %s", strerror(errno));
        finish(c, why, now_us);
        return;
    }
    c->phase = CONNECTING;
}

/* The status line "HTTP/1.x NNN ..." and the body's first line, read
 * through rtc_rd from what arrived. */
static void judge(check *c, uint64_t now_us)
{
    rtc_rd r = {(const uint8_t *)c->answer, (const uint8_t *)c->answer + c->alen}, body = r;
    uint8_t proto[9], d[3], ch;
    char state[96], reason[48] = "";
    unsigned code;
    size_t n = 0;
    if (!rtc_rd_copy(&r, proto, sizeof proto) || memcmp(proto, "HTTP/1.", 7) ||
        proto[8] != ' ' || !rtc_rd_copy(&r, d, sizeof d) || d[0] < '1' || d[0] > '5' ||
        d[1] < '0' || d[1] > '9' || d[2] < '0' || d[2] > '9') {
        finish(c, "unhealthy: not an HTTP answer", now_us);
        return;
    }
    code = (unsigned)(d[0] - '0') * 100 + (unsigned)(d[1] - '0') * 10 + (unsigned)(d[2] - '0');
    if (code == 200) {
        finish(c, "ok", now_us);
        return;
    }
    /* the body's first line, printable bytes only: after the blank line */
    for (const char *p = c->answer; (size_t)(p - c->answer) + 4 <= c->alen; p++)
        if (!memcmp(p, "\r\n\r\n", 4)) {
            body = (rtc_rd){(const uint8_t *)p + 4, (const uint8_t *)c->answer + c->alen};
            while (n + 1 < sizeof reason && rtc_rd_u8(&body, &ch) && ch >= ' ' && ch < 0x7f)
                reason[n++] = (char)ch;
            reason[n] = '\0';
            break;
        }
    snprintf(state, sizeof state, "unhealthy: %u%s%s", code, n ? " " : "", reason);
    finish(c, state, now_us);
}

static void step(check *c, uint64_t now_us)
{
    struct pollfd pfd = {.fd = c->fd, .events = c->phase == CONNECTING ? POLLOUT : POLLIN};
    char req[URL_MAX + 96], why[80];
    int err = 0, len;
    socklen_t el = sizeof err;
    ssize_t got;

    if (now_us >= c->deadline_us) {
        c->alen ? judge(c, now_us) : finish(c, "timeout", now_us);
        return;
    }
    if (poll(&pfd, 1, 0) <= 0)
        return; /* not yet */
    if (c->phase == CONNECTING) {
        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el) || err) {
            snprintf(why, sizeof why, "unreachable: %s", strerror(err ? err : errno));
            finish(c, why, now_us);
            return;
        }
        len = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n", c->path,
                       c->host);
        /* a few hundred bytes into a fresh socket's buffer: all or nothing */
        if (len <= 0 || (size_t)len >= sizeof req ||
            send(c->fd, req, (size_t)len, MSG_NOSIGNAL) != len) {
            finish(c, "unreachable: send failed", now_us);
            return;
        }
        c->phase = READING;
        return;
    }
    got = recv(c->fd, c->answer + c->alen, sizeof c->answer - c->alen, 0);
    if (got > 0)
        c->alen += (size_t)got;
    if (got == 0 || c->alen == sizeof c->answer)
        judge(c, now_us); /* the whole answer (HTTP/1.0: the server closes), or enough */
    else if (got < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
        c->alen ? judge(c, now_us) : finish(c, "unreachable: connection reset", now_us);
}

void sig_rhealth_tick(sig_rhealth *h, uint64_t now_us)
{
    for (size_t i = 0; i < h->n; i++) {
        check *c = &h->c[i];
        if (c->phase == IDLE && now_us >= c->next_us)
            start(c, now_us);
        else if (c->phase != IDLE)
            step(c, now_us);
    }
}

size_t sig_rhealth_count(const sig_rhealth *h) { return h->n; }

void sig_rhealth_get(const sig_rhealth *h, size_t i, sig_rhealth_info *out)
{
    const check *c = &h->c[i];
    *out = (sig_rhealth_info){.url = c->url, .host = c->host, .state = c->state,
                              .checked_wall_s = c->checked_wall_s};
}
