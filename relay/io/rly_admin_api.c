/* rly_admin_api.c - the admin API under /admin/ (see rly_admin_api.h).
 *
 * The request head is untrusted text, NUL-terminated by rly_admin.c within
 * its 2 KB buffer: it is scanned with bounds (tokens copied into fixed
 * buffers, numbers of at most 10 digits), never parsed past its end. */
#include "rly_admin_api.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "rtc_crypto.h"
#include "rtc_http.h"

#define API_TYPE "application/json"
/* a question the workers have not all answered after this is abandoned
 * (a worker parked for a takeover answers late or never) */
#define API_QUESTION_MS 5000

struct rly_admin_api {
    rly_admin_api_params p;
    bool on;
    uint8_t token_hash[RTC_SHA256_LEN];
    int efd;
    uint32_t gen;       /* the current question */
    bool busy;          /* it is out, not all answered */
    uint64_t posted_ms;
};

rly_admin_api *rly_admin_api_new(const rly_admin_api_params *p)
{
    rly_admin_api *api = calloc(1, sizeof *api);
    if (!api)
        return NULL;
    api->p = *p;
    api->p.token = NULL; /* not kept: only its digest */
    api->on = p->token && p->token[0];
    if (api->on)
        rtc_sha256(p->token, strlen(p->token), api->token_hash);
    api->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (api->efd < 0) {
        free(api);
        return NULL;
    }
    return api;
}

void rly_admin_api_free(rly_admin_api *api)
{
    if (!api)
        return;
    close(api->efd);
    free(api);
}

int rly_admin_api_fd(const rly_admin_api *api) { return api->efd; }

static void reply(rtc_buf *out, unsigned status, const char *body)
{
    rtc_http_reply r;
    rtc_http_reply_set(&r, status, API_TYPE, body, strlen(body));
    rtc_http_format(out, &r);
}

/* The next space-delimited token of the request line into out (cap bytes
 * with the NUL); false when empty or too long. */
static bool token(const char **p, char *out, size_t cap)
{
    size_t n = 0;
    while ((*p)[n] && (*p)[n] != ' ' && (*p)[n] != '\r' && (*p)[n] != '\n')
        n++;
    if (n == 0 || n >= cap)
        return false;
    memcpy(out, *p, n);
    out[n] = '\0';
    *p += n;
    if (**p == ' ')
        (*p)++;
    return true;
}

/* "Authorization: Bearer <token>" among the header lines, compared with
 * the configured token's digest in constant time. */
static bool authorized(const rly_admin_api *api, const char *req)
{
    static const char name[] = "authorization:";
    const char *line = strchr(req, '\n');

    while (line && line[1]) {
        const char *v = line + 1, *end;
        line = strchr(v, '\n');
        if (strncasecmp(v, name, sizeof name - 1))
            continue;
        v += sizeof name - 1;
        while (*v == ' ' || *v == '\t')
            v++;
        end = v;
        while (*end && *end != '\r' && *end != '\n')
            end++;
        return rtc_http_bearer_ok(v, (size_t)(end - v), api->token_hash);
    }
    return false;
}

/* A decimal of 1-9 digits at *p; false otherwise. */
static bool number(const char **p, uint32_t *v)
{
    uint32_t n = 0;
    int d = 0;
    while (**p >= '0' && **p <= '9' && d < 9) {
        n = n * 10 + (uint32_t)(**p - '0');
        (*p)++;
        d++;
    }
    *v = n;
    return d > 0 && !(**p >= '0' && **p <= '9');
}

/* Post a question to every worker (releasing serial in worker target
 * when serial is not 0), or join the one out. false: busy (a release
 * cannot share a question). */
static bool ask(rly_admin_api *api, uint32_t target, uint32_t serial, uint64_t now_ms,
                rly_admin_wait *w)
{
    if (api->busy && now_ms - api->posted_ms < API_QUESTION_MS) {
        if (serial)
            return false;
        *w = (rly_admin_wait){.gen = api->gen};
        return true;
    }
    if (++api->gen == 0)
        api->gen = 1;
    for (size_t i = 0; i < api->p.n_workers; i++)
        rly_worker_post_query(api->p.workers[i], api->gen, i == target ? serial : 0, api->efd);
    api->busy = true;
    api->posted_ms = now_ms;
    *w = (rly_admin_wait){.gen = api->gen, .worker = target, .serial = serial};
    return true;
}

bool rly_admin_api_request(rly_admin_api *api, const char *req, size_t len, uint64_t now_ms,
                           rtc_buf *out, bool *deferred, rly_admin_wait *w)
{
    char method[16], path[256], *q;
    const char *p = req, *rest;
    uint32_t worker, serial;

    (void)len; /* req is NUL-terminated within len + 1 bytes */
    *deferred = false;
    if (!token(&p, method, sizeof method) || !token(&p, path, sizeof path) ||
        strncmp(path, "/admin/", 7))
        return false;
    if ((q = strchr(path, '?')))
        *q = '\0';
    if (!api->on) {
        reply(out, 404, "{\"error\":\"not found\"}\n");
        return true;
    }
    if (!authorized(api, req)) {
        reply(out, 401, "{\"error\":\"unauthorized\"}\n");
        return true;
    }
    rest = path + 7;
    if (!strcmp(rest, "allocations")) {
        if (strcmp(method, "GET")) {
            reply(out, 405, "{\"error\":\"GET only\"}\n");
            return true;
        }
        ask(api, 0, 0, now_ms, w);
        *deferred = true;
        return true;
    }
    if (!strncmp(rest, "allocations/", 12)) {
        rest += 12;
        if (strcmp(method, "DELETE")) {
            reply(out, 405, "{\"error\":\"DELETE only\"}\n");
            return true;
        }
        if (!number(&rest, &worker) || *rest++ != '.' || !number(&rest, &serial) || *rest ||
            serial == 0 || worker >= api->p.n_workers) {
            reply(out, 404, "{\"error\":\"no such allocation\"}\n");
            return true;
        }
        if (!ask(api, worker, serial, now_ms, w)) {
            reply(out, 503, "{\"error\":\"busy, try again\"}\n");
            return true;
        }
        *deferred = true;
        return true;
    }
    if (!strcmp(rest, "drain")) {
        if (strcmp(method, "POST")) {
            reply(out, 405, "{\"error\":\"POST only\"}\n");
            return true;
        }
        api->p.drain(api->p.arg);
        reply(out, 202, "{\"draining\":true}\n");
        return true;
    }
    reply(out, 404, "{\"error\":\"not found\"}\n");
    return true;
}

bool rly_admin_api_poll(rly_admin_api *api)
{
    uint64_t v;
    bool released;

    if (read(api->efd, &v, sizeof v) < 0 && errno != EAGAIN) {
        /* nothing to do: the next answer writes again */
    }
    if (!api->busy)
        return false;
    for (size_t i = 0; i < api->p.n_workers; i++)
        if (!rly_worker_query_result(api->p.workers[i], api->gen, &released))
            return false;
    api->busy = false;
    return true;
}

bool rly_admin_api_finish(rly_admin_api *api, const rly_admin_wait *w, rtc_buf *out)
{
    rtc_buf body;
    bool released = false, first = true;
    const rtc_buf *r;
    rtc_http_reply hr;

    if (w->gen != api->gen || api->busy)
        return false;
    if (w->serial) {
        char b[96];
        if (!rly_worker_query_result(api->p.workers[w->worker], w->gen, &released) ||
            !released) {
            reply(out, 404, "{\"error\":\"no such allocation\"}\n");
            return true;
        }
        snprintf(b, sizeof b, "{\"released\":\"%u.%u\"}\n", w->worker, w->serial);
        reply(out, 200, b);
        return true;
    }
    rtc_buf_init(&body);
    rtc_buf_printf(&body, "{\"allocations\":[");
    for (size_t i = 0; i < api->p.n_workers; i++) {
        r = rly_worker_query_result(api->p.workers[i], w->gen, &released);
        if (!r || !r->len)
            continue;
        if (!first)
            rtc_buf_append(&body, ",", 1);
        first = false;
        rtc_buf_append(&body, r->p, r->len);
        if (r->oom)
            body.oom = true;
    }
    rtc_buf_printf(&body, "]}\n");
    if (body.oom)
        reply(out, 500, "{\"error\":\"out of memory\"}\n");
    else {
        rtc_http_reply_set(&hr, 200, API_TYPE, body.p, body.len);
        rtc_http_format(out, &hr);
    }
    rtc_buf_dispose(&body);
    return true;
}
