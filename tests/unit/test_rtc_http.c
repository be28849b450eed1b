/* test_rtc_http.c - the shared admin responder: routes, the exact bytes of
 * the raw (relay) responses, the reply fields signaling hands to lws, the
 * metrics-render failure, health states, and the reload metrics' names. */
#include <stdio.h>
#include <string.h>

#include "rtc_http.h"
#include "tap.h"

typedef struct {
    const char *why; /* NULL = healthy */
    int renders;
    bool fail;
} fake;

static void render(void *ctx, rtc_buf *b)
{
    fake *f = ctx;
    f->renders++;
    rtc_buf_printf(b, "x_total 1\n");
    if (f->fail)
        b->oom = true;
}

static const char *unhealthy(void *ctx) { return ((fake *)ctx)->why; }

static rtc_http_site relay_site(fake *f)
{
    rtc_http_site s = {RTC_HTTP_METRICS_TYPE "; charset=utf-8", "only GET\n", render, unhealthy, f};
    return s;
}

static int raw_is(const rtc_http_site *s, const char *req, const char *want)
{
    rtc_buf out;
    int same;
    rtc_buf_init(&out);
    rtc_http_respond_raw(s, req, strlen(req), &out);
    same = out.len == strlen(want) && !memcmp(out.p, want, out.len);
    if (!same)
        printf("# got: %.*s\n", (int)out.len, out.p ? out.p : "");
    rtc_buf_dispose(&out);
    return same;
}

static void test_raw(void)
{
    fake f = {0};
    rtc_http_site s = relay_site(&f);

    ok(raw_is(&s, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
              "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
              "Content-Length: 10\r\nConnection: close\r\n\r\nx_total 1\n"),
       "GET /metrics: 200, the relay's content type, the rendered body");
    ok(raw_is(&s, "GET /metrics?name[]=x HTTP/1.1\r\n\r\n",
              "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
              "Content-Length: 10\r\nConnection: close\r\n\r\nx_total 1\n"),
       "a query on /metrics is ignored");
    ok(raw_is(&s, "GET /healthz HTTP/1.1\r\n\r\n",
              "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n"
              "Connection: close\r\n\r\nok\n"),
       "GET /healthz healthy: 200 ok");
    f.why = "draining\n";
    ok(raw_is(&s, "GET /healthz HTTP/1.1\r\n\r\n",
              "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
              "Content-Length: 9\r\nConnection: close\r\n\r\ndraining\n"),
       "draining: 503 with the reason");
    ok(raw_is(&s, "GET /nope HTTP/1.1\r\n\r\n",
              "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 10\r\n"
              "Connection: close\r\n\r\nnot found\n"),
       "other GET: 404");
    ok(raw_is(&s, "GET /metricsx HTTP/1.1\r\n\r\n",
              "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 10\r\n"
              "Connection: close\r\n\r\nnot found\n"),
       "/metricsx is not /metrics");
    ok(raw_is(&s, "POST /metrics HTTP/1.1\r\n\r\n",
              "HTTP/1.1 405 Method Not Allowed\r\nContent-Type: text/plain\r\n"
              "Content-Length: 9\r\nConnection: close\r\n\r\nonly GET\n"),
       "POST: 405 with the site's wording");
    ok(raw_is(&s, "HEAD /healthz HTTP/1.1\r\n\r\n",
              "HTTP/1.1 405 Method Not Allowed\r\nContent-Type: text/plain\r\n"
              "Content-Length: 9\r\nConnection: close\r\n\r\nonly GET\n"),
       "HEAD: 405 (never served)");
    ok(raw_is(&s, "GET\r\n\r\n",
              "HTTP/1.1 405 Method Not Allowed\r\nContent-Type: text/plain\r\n"
              "Content-Length: 9\r\nConnection: close\r\n\r\nonly GET\n"),
       "GET without a space and path: 405, as the relay answered it");
    ok(raw_is(&s, "GET \r\n\r\n",
              "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 10\r\n"
              "Connection: close\r\n\r\nnot found\n"),
       "GET with an empty path: 404");
    ok(raw_is(&s, "\r\n\r\n",
              "HTTP/1.1 405 Method Not Allowed\r\nContent-Type: text/plain\r\n"
              "Content-Length: 9\r\nConnection: close\r\n\r\nonly GET\n"),
       "no request line: 405");
    {
        char big[600];
        memset(big, 'a', sizeof big);
        memcpy(big, "GET /", 5);
        memcpy(big + sizeof big - 5, " \r\n\r", 4);
        big[sizeof big - 1] = '\0';
        ok(raw_is(&s, big,
                  "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 10\r\n"
                  "Connection: close\r\n\r\nnot found\n"),
           "an over-long path: 404, not copied");
    }
    f.fail = true;
    ok(raw_is(&s, "GET /metrics HTTP/1.1\r\n\r\n",
              "HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\n"
              "Content-Length: 14\r\nConnection: close\r\n\r\nout of memory\n"),
       "a failed render: 500");
}

static void test_route(void)
{
    fake f = {0};
    rtc_http_site s = {RTC_HTTP_METRICS_TYPE, "GET only\n", render, unhealthy, &f};
    rtc_http_reply r;
    rtc_buf m;

    rtc_buf_init(&m);
    ok(rtc_http_route(&s, "GET", "/metrics", &m, &r), "route /metrics");
    ok(r.status == 200 && !strcmp(r.type, "text/plain; version=0.0.4") && r.body == m.p &&
           r.len == 10,
       "signaling's fields: status, type, body in the caller's buffer");
    rtc_buf_dispose(&m);
    rtc_buf_init(&m);
    f.why = "redis unavailable\n";
    ok(rtc_http_route(&s, "GET", "/healthz", &m, &r) && r.status == 503 &&
           r.len == 18 && !strcmp(r.reason, "Service Unavailable"),
       "unhealthy: 503 with the site's reason");
    ok(!rtc_http_route(&s, "GET", "/index.html", &m, &r), "other paths are the caller's");
    ok(rtc_http_route(&s, "PUT", "/index.html", &m, &r) && r.status == 405 &&
           !strcmp(r.body, "GET only\n"),
       "any other method: 405 with signaling's wording");
    is_int(f.renders, 1, "metrics rendered only for /metrics");
    s.unhealthy = NULL;
    ok(rtc_http_route(&s, "GET", "/healthz?probe=1", &m, &r) && r.status == 200,
       "no health callback: always healthy");
    rtc_http_not_found(&r);
    ok(r.status == 404 && r.len == 10, "not found reply");
    rtc_buf_dispose(&m);
}

static void test_reload_metrics(void)
{
    rtc_buf b;
    rtc_buf_init(&b);
    rtc_metrics_reloads(&b, "tsunagu_signal", 3, 1);
    ok(b.p && !strcmp(b.p,
                      "# HELP tsunagu_signal_config_reloads_total SIGHUP reloads; a failed one "
                      "keeps the old settings running.\n"
                      "# TYPE tsunagu_signal_config_reloads_total counter\n"
                      "tsunagu_signal_config_reloads_total{result=\"ok\"} 3\n"
                      "tsunagu_signal_config_reloads_total{result=\"failed\"} 1\n"),
       "reload counter: the names and labels both daemons print");
    rtc_buf_dispose(&b);
}

int main(void)
{
    test_raw();
    test_route();
    test_reload_metrics();
    return done_testing();
}
