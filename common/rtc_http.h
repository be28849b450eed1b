/* rtc_http.h - the part of the admin HTTP responder both daemons share:
 * GET /healthz and GET /metrics, the 404 and 405 answers, and the bytes of
 * a whole HTTP/1.1 response.
 *
 * The relay serves its admin port from a raw socket and needs the complete
 * response bytes (rtc_http_respond_raw, or rtc_http_route then
 * rtc_http_format); signaling serves the same paths through libwebsockets,
 * which writes the status line and headers itself, so it takes the routed
 * rtc_http_reply (status, content type, body) and hands those to lws, and
 * serves its other paths (the demo page) when the route is not ours.
 *
 * Pure: no sockets, no clock, no threads of its own. What the daemon knows
 * comes in through an rtc_http_site: a callback renders the Prometheus text
 * (into an rtc_buf, see rtc_metrics.h; summed over workers by the daemon),
 * another says whether the daemon is healthy. The answers, byte for byte as
 * both daemons gave them before this module:
 *   GET /metrics[?...]  200 (site's metrics_type) the rendered text;
 *                       500 text/plain "out of memory\n" if rendering failed
 *   GET /healthz[?...]  200 text/plain "ok\n", or 503 text/plain with the
 *                       health callback's reason ("draining\n")
 *   GET other           not routed here (rtc_http_route returns false); the
 *                       raw responder answers 404 text/plain "not found\n"
 *   any other method    405 text/plain, the site's method_body (HEAD
 *                       included: neither daemon ever served HEAD)
 * Called on the thread that owns the admin socket; callbacks run there. */
#ifndef RTC_HTTP_H
#define RTC_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "rtc_metrics.h"

#define RTC_HTTP_METRICS_TYPE "text/plain; version=0.0.4" /* Prometheus text 0.0.4 */

typedef struct {
    /* Content-Type of /metrics: the relay says "...; charset=utf-8" too */
    const char *metrics_type;
    /* body of the 405 answer (each daemon kept its own wording) */
    const char *method_body;
    /* Append the metrics text to b. A failed append leaves b->oom set; the
     * responder then answers 500. */
    void (*render_metrics)(void *ctx, rtc_buf *b);
    /* NULL when healthy; else the 503 body, e.g. "draining\n" (static
     * storage: it is borrowed by the reply). NULL callback = always healthy. */
    const char *(*unhealthy)(void *ctx);
    void *ctx;
} rtc_http_site;

/* One answer. body is borrowed: static text, or the rtc_buf the metrics were
 * rendered into (valid while that buffer is). */
typedef struct {
    unsigned status;    /* 200, 404, 405, 500, 503 */
    const char *reason; /* "OK", "Not Found", ... (rtc_http_reason) */
    const char *type;   /* Content-Type */
    const char *body;
    size_t len;
} rtc_http_reply;

/* The standard reason phrase of the statuses used here; "Unknown" else. */
const char *rtc_http_reason(unsigned status);

/* Fill *r with status, its reason, type and a borrowed body. */
void rtc_http_reply_set(rtc_http_reply *r, unsigned status, const char *type, const void *body,
                        size_t len);

/* Route one request. method and path are NUL-terminated; path may carry a
 * query ("?...") which is ignored. metrics is an initialised, empty buffer
 * the metrics are rendered into; the caller disposes it after sending.
 * true with *r filled when the request was ours (a non-GET method always
 * is: 405), false for a GET of another path (the caller serves it, or
 * answers rtc_http_not_found). */
bool rtc_http_route(const rtc_http_site *s, const char *method, const char *path, rtc_buf *metrics,
                    rtc_http_reply *r);

/* 404 text/plain "not found\n". */
void rtc_http_not_found(rtc_http_reply *r);

/* Append "HTTP/1.1 <status> <reason>\r\nContent-Type: ..\r\nContent-Length:
 * ..\r\nConnection: close\r\n\r\n" and the body to out. */
void rtc_http_format(rtc_buf *out, const rtc_http_reply *r);

/* The whole raw responder: parse the request line of req[0..len) (the head
 * of one request; only its first line is read), route it, answer 404 for an
 * unrouted GET, and append the full response to out. A request line that
 * cannot be split into method and path is answered 405. */
void rtc_http_respond_raw(const rtc_http_site *s, const char *req, size_t len, rtc_buf *out);

/* An Authorization header value v[0..len) ("Bearer <token>", the scheme
 * case-insensitive, RFC 7235 s.2.1) against the SHA-256 digest of the
 * configured token (want, 32 bytes): the digests are compared in constant
 * time, so neither the token's content nor its length leaks. NULL v: false. */
bool rtc_http_bearer_ok(const char *v, size_t len, const uint8_t want[32]);

#endif
