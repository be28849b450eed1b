/* rtc_http.c - the shared admin responder (see rtc_http.h). */
#include "rtc_http.h"

#include <string.h>
#include <strings.h>

#include "rtc_crypto.h"

/* Longest method and path the raw responder looks at; anything longer is
 * no route of ours (404 for GET) and is never copied whole. */
#define METHOD_MAX 16
#define PATH_MAX_LEN 256

const char *rtc_http_reason(unsigned status)
{
    switch (status) {
    case 200:
        return "OK";
    case 202:
        return "Accepted";
    case 401:
        return "Unauthorized";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    default:
        return "Unknown";
    }
}

void rtc_http_reply_set(rtc_http_reply *r, unsigned status, const char *type, const void *body,
                        size_t len)
{
    r->status = status;
    r->reason = rtc_http_reason(status);
    r->type = type;
    r->body = body;
    r->len = len;
}

static void text(rtc_http_reply *r, unsigned status, const char *body)
{
    rtc_http_reply_set(r, status, "text/plain", body, strlen(body));
}

void rtc_http_not_found(rtc_http_reply *r) { text(r, 404, "not found\n"); }

/* path equals want, or want followed by a query */
static bool path_is(const char *path, const char *want)
{
    size_t l = strlen(want);
    return !strncmp(path, want, l) && (path[l] == '\0' || path[l] == '?');
}

bool rtc_http_route(const rtc_http_site *s, const char *method, const char *path, rtc_buf *metrics,
                    rtc_http_reply *r)
{
    if (strcmp(method, "GET")) {
        text(r, 405, s->method_body);
        return true;
    }
    if (path_is(path, "/metrics")) {
        s->render_metrics(s->ctx, metrics);
        if (metrics->oom)
            text(r, 500, "out of memory\n");
        else
            rtc_http_reply_set(r, 200, s->metrics_type, metrics->p, metrics->len);
        return true;
    }
    if (path_is(path, "/healthz")) {
        const char *why = s->unhealthy ? s->unhealthy(s->ctx) : NULL;
        text(r, why ? 503 : 200, why ? why : "ok\n");
        return true;
    }
    return false;
}

void rtc_http_format(rtc_buf *out, const rtc_http_reply *r)
{
    rtc_buf_printf(out,
                   "HTTP/1.1 %u %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                   "Connection: close\r\n\r\n",
                   r->status, r->reason, r->type, r->len);
    rtc_buf_append(out, r->body, r->len);
}

/* Copy the next token (up to a space, CR, LF or the end) of [*p, end) into
 * out; false when it is empty or does not fit. *p ends after one space. */
static bool token(const char **p, const char *end, char *out, size_t cap)
{
    size_t n = 0;
    while (*p + n < end && (*p)[n] != ' ' && (*p)[n] != '\r' && (*p)[n] != '\n')
        n++;
    if (n == 0 || n >= cap)
        return false;
    memcpy(out, *p, n);
    out[n] = '\0';
    *p += n;
    if (*p < end && **p == ' ')
        (*p)++;
    return true;
}

void rtc_http_respond_raw(const rtc_http_site *s, const char *req, size_t len, rtc_buf *out)
{
    char method[METHOD_MAX], path[PATH_MAX_LEN];
    const char *p = req, *end = req + len;
    rtc_http_reply r;
    rtc_buf metrics;

    rtc_buf_init(&metrics);
    if (!token(&p, end, method, sizeof method) || p == req + strlen(method)) {
        /* no method, or no space after it ("GET\r\n"): not a GET request */
        text(&r, 405, s->method_body);
    } else if (!token(&p, end, path, sizeof path)) {
        /* "GET " with no path, or one too long to be ours */
        if (strcmp(method, "GET"))
            text(&r, 405, s->method_body);
        else
            rtc_http_not_found(&r);
    } else if (!rtc_http_route(s, method, path, &metrics, &r)) {
        rtc_http_not_found(&r);
    }
    rtc_http_format(out, &r);
    rtc_buf_dispose(&metrics);
}

bool rtc_http_bearer_ok(const char *v, size_t len, const uint8_t want[32])
{
    uint8_t got[RTC_SHA256_LEN];
    const char *end = v + len;
    bool ok;

    if (!v || len < 7 || strncasecmp(v, "Bearer ", 7))
        return false;
    v += 7;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
        end--;
    rtc_sha256(v, (size_t)(end - v), got);
    ok = rtc_ct_equal(got, want, sizeof got);
    memset(got, 0, sizeof got);
    return ok;
}
