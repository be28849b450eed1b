/* sig_ws.c - the libwebsockets adapter of tsunagu-signal: the only file that
 * includes libwebsockets. One lws service thread; what a connection's
 * messages do is decided by the sessions (sig_session.c), called from here.
 *
 * HTTP: GET / (demo page, embedded at build time), /app.js, /tsunagu.js and
 * /tsunagu.d.ts (the client library: any file of signaling/www), /metrics,
 * /healthz, /status (the status page) and /status.json, /admin/ (the admin
 * API: sig_admin.c). WebSocket: /ws only. Each connection embeds one sig_client
 * whose member's bounded queue feeds exactly one lws_write per WRITEABLE
 * callback. Time-driven work (resume expiry, drain, signals) runs from one
 * 100 ms lws_sul timer; keepalive from another, armed at its next deadline.
 *
 * The loop is libev's (epoll backend), owned here and lent to lws (a
 * "foreign loop": lws loads its evlib_ev plugin), so a wake-up costs the
 * events it carries, not a poll() over every connection (issue 16 item 4).
 * libuv was tried first: lws 4.1.6's evlib_uv lost the close frame when a
 * WRITEABLE callback returned -1 after lws_close_reason (clients saw 1006,
 * not 1009/4002). Keepalive is sig_idle's FIFO and one lws_sul, not lws's
 * per-connection validity timers, whose sorted insert walked every
 * connection.
 *
 * Cluster mode: the Redis thread announces events with lws_cancel_service
 * and they are handled in LWS_CALLBACK_EVENT_WAIT_CANCELLED, on this
 * thread. */
#include <errno.h>
#include <stdio.h>
#include <libwebsockets.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <ev.h>

#include "rtc_addr.h"
#include "rtc_clock.h"
#include "rtc_err.h"
#include "rtc_http.h"
#include "rtc_log.h"
#include "rtc_metrics.h"
#include "rtc_notify.h"
#include "sig_admin.h"
#include "sig_admit.h"
#include "sig_conf.h"
#include "sig_idle.h"
#include "sig_session.h"
#include "sig_www.h"

#define TICK_US 100000
#define OVERSIZE_CLOSE 3 /* oversized messages before the connection is closed */
/* keepalive deadlines handled per timer run: bounds one run's time; the
 * rest come in the next loop turn */
#define IDLE_PER_RUN 20000

typedef struct server server;

typedef struct conn {
    sig_client cl;     /* the session (first: lws's user area holds the conn) */
    server *srv;
    struct lws *wsi;
    char *rx;          /* reassembly of a fragmented message, at most max bytes */
    size_t rxlen, rxcap;
    bool discard;      /* rest of an oversized message is being skipped */
    bool ping_due;     /* the keepalive asked for a ping: sent at WRITEABLE */
    unsigned oversize;
    sig_idle_node idle; /* on server.idle_q while open */
} conn;

typedef struct {
    const uint8_t *body; /* static file, or metrics.p */
    size_t len, off;
    rtc_buf metrics;
} http_sess;

/* lws hands both HTTP and WS callbacks of one protocol the same (zeroed)
 * user area; `kind` says which half is live. */
enum { SESS_NONE = 0, SESS_HTTP, SESS_WS };
typedef struct {
    int kind;
    union {
        conn c;
        http_sess h;
    };
} sess;

struct server {
    sig_server *srv;
    struct lws_context *ctx;
    lws_sorted_usec_list_t tick;
    sig_idle idle_q;  /* keepalive deadlines of the open WebSockets */
    lws_sorted_usec_list_t keep; /* fires at idle_q's earliest deadline */
    uint64_t keep_early_us;      /* --keepalive-batch-ms, capped (keep_early) */
    bool keep_armed;
    struct ev_loop *loop; /* the one loop (libev, epoll); lws runs on it */
    bool stop;
    rtc_log_ratelimit warn_rl;
    rtc_log_ratelimit admit_rl; /* refusal lines (attackers choose their rate) */
    rtc_http_site site;         /* /healthz, /metrics */
    sig_admin *admin;           /* /admin/, /status.json */
};

/* The signal handlers' only link to the loop: flags polled by the tick. */
static volatile sig_atomic_t g_sighup, g_sigterm;

static void on_signal(int sig)
{
    if (sig == SIGHUP)
        g_sighup = 1;
    else
        g_sigterm = 1;
}

/* ---- keepalive (sig_idle.h) ---- */

static void on_keepalive(lws_sorted_usec_list_t *sul);

/* (Re)arm the keepalive timer at the earliest deadline: one lws_sul for
 * all connections. A deadline that moved later makes it fire early and
 * find nothing due: it re-arms, at most once per deadline. */
static void arm_keepalive(server *s, uint64_t now_us)
{
    const sig_idle_node *h = s->idle_q.head.next;
    if (s->keep_armed || h == &s->idle_q.head)
        return;
    s->keep_armed = true;
    lws_sul_schedule(s->ctx, 0, &s->keep, on_keepalive,
                     h->due_us > now_us ? (lws_usec_t)(h->due_us - now_us) + 1000 : 0);
}

static void touch(server *s, sig_idle_node *n)
{
    uint64_t t = rtc_clock_mono_us();
    sig_idle_touch(&s->idle_q, n, t);
    arm_keepalive(s, t);
}

/* ---- what the sessions ask of the transport (sig_server_ops) ---- */

static void op_close(void *cp)
{
    conn *c = cp;
    lws_callback_on_writable(c->wsi);
    /* A reader that never drains its socket never gets WRITEABLE: make sure
     * the connection still goes away. */
    lws_set_timeout(c->wsi, PENDING_TIMEOUT_CLOSE_SEND, 5);
}

static void op_wake(void *cp)
{
    conn *c = cp;
    if (sig_member_overflowed(c->cl.m)) {
        /* Slow reader: its queue is full. Drop it now; lws closes it from
         * its own loop (never under our feet). */
        RTC_LOG(RTC_LOG_INFO, sig_member_id(c->cl.m), "send queue full, dropping %s", c->cl.peer);
        c->cl.keep = false;
        c->cl.close_code = SIG_CLOSE_POLICY;
        /* Reset rather than FIN: the kernel would otherwise keep the
         * megabytes the reader never took in an orphaned socket. */
        {
            struct linger lg = {.l_onoff = 1, .l_linger = 0};
            setsockopt(lws_get_socket_fd(c->wsi), SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        }
        lws_set_timeout(c->wsi, PENDING_TIMEOUT_KILLED_BY_PARENT, LWS_TO_KILL_ASYNC);
        return;
    }
    lws_callback_on_writable(c->wsi);
}

static void op_poke(void *ud)
{
    server *s = ud;
    lws_cancel_service(s->ctx);
}

static int on_receive(conn *c, const char *in, size_t len)
{
    size_t max = (size_t)sig_server_conf(c->srv->srv)->max_message_bytes;
    size_t remaining = lws_remaining_packet_payload(c->wsi);
    bool final = lws_is_final_fragment(c->wsi);

    touch(c->srv, &c->idle);
    if (c->cl.close_code)
        return 0;
    if (lws_is_first_fragment(c->wsi)) {
        c->rxlen = 0;
        c->discard = false;
        if (lws_frame_is_binary(c->wsi)) {
            c->discard = true;
            sig_client_refuse(&c->cl, SIG_E_BAD_REQUEST, "messages are JSON text frames");
        }
    }
    /* (written so that a huge announced frame length cannot overflow) */
    if (!c->discard && (remaining > max || c->rxlen + len > max - remaining)) {
        c->discard = true;
        c->rxlen = 0;
        free(c->rx);
        c->rx = NULL;
        c->rxcap = 0;
        sig_client_refuse(&c->cl, SIG_E_TOO_LARGE, "message larger than the server's limit");
        if (++c->oversize >= OVERSIZE_CLOSE) {
            sig_client_close(&c->cl, SIG_CLOSE_TOO_BIG, "repeated oversized messages", false);
            return 0;
        }
    }
    if (c->discard)
        return 0;
    if (final && c->rxlen == 0) {
        sig_client_message(&c->cl, in, len); /* the common case: one frame, no copy */
        return 0;
    }
    if (c->rxcap < c->rxlen + len) {
        /* max may have grown by SIGHUP since this buffer was made */
        char *n = realloc(c->rx, max);
        if (!n)
            return -1;
        c->rx = n;
        c->rxcap = max;
    }
    memcpy(c->rx + c->rxlen, in, len);
    c->rxlen += len;
    if (final) {
        sig_client_message(&c->cl, c->rx, c->rxlen);
        c->rxlen = 0;
    }
    return 0;
}

/* b with its sequence number (cluster mode, sig_room.h "seq"): the shared
 * buffer stays as it is (other members get other numbers). */
static int write_numbered(conn *c, const sig_buf *b, uint64_t seq)
{
    size_t cap = LWS_PRE + b->len + 32, n;
    unsigned char *w = malloc(cap);
    int rc = -1;
    if (!w)
        return -1;
    n = sig_seq_splice(b->text, b->len, seq, (char *)w + LWS_PRE, cap - LWS_PRE);
    if (n && lws_write(c->wsi, w + LWS_PRE, n, LWS_WRITE_TEXT) >= (int)n)
        rc = 0;
    free(w);
    return rc;
}

static int on_writeable(conn *c)
{
    sig_buf *b;
    uint64_t t;

    if (c->ping_due && !c->cl.close_code) {
        /* a payload: lws 4.1 reports no RECEIVE_PONG for an empty pong */
        uint8_t ping[LWS_PRE + 2] = {[LWS_PRE] = 't', [LWS_PRE + 1] = 's'};
        c->ping_due = false;
        if (lws_write(c->wsi, ping + LWS_PRE, 2, LWS_WRITE_PING) < 2)
            return -1;
        if (sig_member_peek(c->cl.m))
            lws_callback_on_writable(c->wsi);
        return 0;
    }
    /* What was queued before the close (e.g. the error saying why) goes
     * out first; lws_set_timeout in close_later bounds how long that takes. */
    if (!(b = sig_member_peek(c->cl.m))) {
        if (!c->cl.close_code)
            return 0;
        lws_close_reason(c->wsi, (enum lws_close_status)c->cl.close_code,
                         (unsigned char *)c->cl.close_reason, strlen(c->cl.close_reason));
        return -1;
    }
    if (sig_member_peek_seq(c->cl.m)) {
        if (write_numbered(c, b, sig_member_peek_seq(c->cl.m)))
            return -1;
    } else if (lws_write(c->wsi, (unsigned char *)b->text, b->len, LWS_WRITE_TEXT) < (int)b->len)
        return -1;
    t = rtc_clock_mono_us();
    sig_server_sent(c->srv->srv, b->t_us, t);
    sig_member_pop(c->cl.m);
    if (sig_member_peek(c->cl.m) || c->cl.close_code)
        lws_callback_on_writable(c->wsi);
    return 0;
}

/* ---- HTTP ---- */

static int http_reply(struct lws *wsi, http_sess *h, unsigned status, const char *type,
                      const void *body, size_t len, bool challenge)
{
    uint8_t buf[LWS_PRE + 1024], *start = &buf[LWS_PRE], *p = start, *end = &buf[sizeof buf - 1];
    h->body = body;
    h->len = len;
    h->off = 0;
    if (lws_add_http_common_headers(wsi, status, type, (lws_filepos_t)len, &p, end) ||
        lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CACHE_CONTROL,
                                     (const unsigned char *)"no-store", 8, &p, end) ||
        (challenge && lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_WWW_AUTHENTICATE,
                                                   (const unsigned char *)SIG_ADMIN_REALM,
                                                   (int)strlen(SIG_ADMIN_REALM), &p, end)) ||
        lws_finalize_write_http_header(wsi, start, &p, end))
        return 1;
    lws_callback_on_writable(wsi);
    return 0;
}

/* /healthz and /metrics are common/rtc_http's (the relay answers them the
 * same way); the demo page's files are ours. */
static const char *http_method(struct lws *wsi)
{
    if (lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) > 0)
        return "GET";
    if (lws_hdr_total_length(wsi, WSI_TOKEN_DELETE_URI) > 0)
        return "DELETE";
    if (lws_hdr_total_length(wsi, WSI_TOKEN_POST_URI) > 0)
        return "POST";
    return "";
}

/* /admin/ and /status.json: sig_admin's (the Authorization header is read
 * with a bounded copy; longer than any token we accept: passed as absent). */
static bool on_admin(server *s, struct lws *wsi, http_sess *h, const char *method,
                     const char *path, rtc_http_reply *r, bool *challenge)
{
    char auth[4200];
    int alen = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_AUTHORIZATION);
    sig_admin_req q = {.method = method, .path = path, .auth = NULL};
    if (alen > 0 && alen < (int)sizeof auth &&
        lws_hdr_copy(wsi, auth, (int)sizeof auth, WSI_TOKEN_HTTP_AUTHORIZATION) == alen)
        q.auth = auth;
    return sig_admin_route(s->admin, &q, &h->metrics, r, challenge);
}

static int on_http(server *s, struct lws *wsi, http_sess *h, const char *path)
{
    const char *method = http_method(wsi);
    const sig_www_file *f;
    rtc_http_reply r;
    bool challenge = false;
    rtc_buf_init(&h->metrics);
    if (on_admin(s, wsi, h, method, path, &r, &challenge))
        return http_reply(wsi, h, r.status, r.type, r.body, r.len, challenge);
    if (!rtc_http_route(&s->site, !strcmp(method, "GET") ? method : "", path, &h->metrics, &r)) {
        if ((f = sig_www_find(!strcmp(path, "/")         ? "/index.html"
                              : !strcmp(path, "/status") ? "/status.html"
                                                         : path)))
            return http_reply(wsi, h, 200, f->type, f->data, f->len, false);
        rtc_http_not_found(&r);
    }
    return http_reply(wsi, h, r.status, r.type, r.body, r.len, false);
}

static void site_metrics(void *ctx, rtc_buf *b)
{
    server *s = ctx;
    sig_server_metrics(s->srv, b);
    sig_admin_metrics(s->admin, b);
}
static const char *site_unhealthy(void *ctx) { return sig_server_unhealthy(((server *)ctx)->srv); }

static int on_http_writeable(struct lws *wsi, http_sess *h)
{
    uint8_t buf[LWS_PRE + 8192];
    size_t n = h->len - h->off;
    bool last;
    if (n > sizeof buf - LWS_PRE)
        n = sizeof buf - LWS_PRE;
    last = h->off + n == h->len;
    if (n)
        memcpy(buf + LWS_PRE, h->body + h->off, n);
    if (lws_write(wsi, buf + LWS_PRE, n, last ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) < (int)n)
        return -1;
    h->off += n;
    if (!last) {
        lws_callback_on_writable(wsi);
        return 0;
    }
    rtc_buf_dispose(&h->metrics);
    h->body = NULL;
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

/* ---- admission: Origin list and connections per address (sig_admit.h) ---- */

/* Seconds a client is told to wait (Retry-After, RFC 9110 s.10.2.3) after a
 * 503: a drained node is usually back, or behind a load balancer replaced,
 * within seconds, and a full one frees places as calls end. */
#define RETRY_AFTER_S 5

/* Refuse an upgrade with a plain HTTP status instead of the 101. lws has
 * switched the wsi to its ws role already, but an HTTP_HEADERS write still
 * goes out raw (the way lws sends its own 101); the caller then returns 1
 * and lws closes the connection without a close frame. */
static void refuse_upgrade(struct lws *wsi, unsigned status, const char *text)
{
    uint8_t buf[LWS_PRE + 320];
    char *p = (char *)buf + LWS_PRE;
    const char *phrase = status == 403   ? "Forbidden"
                         : status == 404 ? "Not Found"
                         : status == 503 ? "Service Unavailable"
                                         : "Too Many Requests";
    char retry[32] = "";
    int n;
    if (status == 503)
        snprintf(retry, sizeof retry, "Retry-After: %d\r\n", RETRY_AFTER_S);
    n = snprintf(p, sizeof buf - LWS_PRE,
                 "HTTP/1.1 %u %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
                 "Cache-Control: no-store\r\n%sConnection: close\r\n\r\n%s",
                 status, phrase, strlen(text), retry, text);
    if (n > 0 && (size_t)n < sizeof buf - LWS_PRE)
        lws_write(wsi, buf + LWS_PRE, (size_t)n, LWS_WRITE_HTTP_HEADERS);
}

/* A refusal decided here (path, max-connections, drain): answered and
 * counted like the admission module's own. Returns 1 (refuse). */
static int refuse_counted(server *s, struct lws *wsi, sig_admit_verdict v, unsigned status,
                          const char *text)
{
    sig_admit_refused(sig_server_admission(s->srv), v);
    refuse_upgrade(wsi, status, text);
    return 1;
}

/* FILTER_PROTOCOL_CONNECTION, after the path, cap and drain checks: the
 * Origin list, then the connections of this client address. 0 admits; 1
 * refuses after answering 403 or 429. Header bytes are attacker-chosen:
 * read with a bounded copy, logged sanitized, refusal lines rate-limited
 * (the metric counts every one). */
static int admit_upgrade(server *s, struct lws *wsi)
{
    char origin[SIG_ADMIT_ORIGIN_MAX + 1], shown[SIG_ADMIT_LOG_MAX], ip[RTC_ADDR_STRLEN];
    char more[48] = "";
    int olen = lws_hdr_total_length(wsi, WSI_TOKEN_ORIGIN);
    const char *op = NULL;
    size_t ol = 0;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    rtc_addr peer;
    sig_admit_verdict v;

    memset(&peer, 0, sizeof peer);
    if (!getpeername(lws_get_socket_fd(wsi), (struct sockaddr *)&ss, &sl))
        rtc_addr_from_sockaddr(&peer, (struct sockaddr *)&ss);
    if (olen > 0) {
        /* over-long: never a valid origin; passed on empty, so refused
         * exactly when a list is enforced */
        op = "";
        if (olen <= SIG_ADMIT_ORIGIN_MAX &&
            lws_hdr_copy(wsi, origin, (int)sizeof origin, WSI_TOKEN_ORIGIN) == olen) {
            op = origin;
            ol = (size_t)olen;
        }
    }
    v = sig_admit_check(sig_server_admission(s->srv), op, ol, &peer);
    if (v == SIG_ADMIT_OK)
        return 0;
    if (rtc_log_ratelimit_ok(&s->admit_rl, rtc_clock_mono_ms())) {
        rtc_addr_format(&peer, false, ip);
        if (s->admit_rl.suppressed)
            snprintf(more, sizeof more, " (%u refusals before not logged)",
                     s->admit_rl.suppressed);
        s->admit_rl.suppressed = 0;
        if (!op)
            snprintf(shown, sizeof shown, "(none)");
        else if (olen > SIG_ADMIT_ORIGIN_MAX)
            snprintf(shown, sizeof shown, "(%d bytes, over the limit)", olen);
        else
            sig_admit_sanitize(op, ol, shown);
        if (v == SIG_ADMIT_ORIGIN)
            RTC_LOG(RTC_LOG_WARN, ip, "WebSocket refused (403): Origin %s not allowed%s", shown,
                    more);
        else if (v == SIG_ADMIT_UNJOINED)
            RTC_LOG(RTC_LOG_INFO, ip,
                    "WebSocket refused (429): max-unjoined-per-ip (%lld) connections not in a "
                    "room%s",
                    (long long)sig_server_conf(s->srv)->max_unjoined_per_ip, more);
        else
            RTC_LOG(RTC_LOG_INFO, ip,
                    "WebSocket refused (429): max-connections-per-ip (%lld) reached%s",
                    (long long)sig_server_conf(s->srv)->max_connections_per_ip, more);
    }
    if (v == SIG_ADMIT_ORIGIN)
        refuse_upgrade(wsi, 403, "origin not allowed\n");
    else if (v == SIG_ADMIT_UNJOINED)
        refuse_upgrade(wsi, 429, "too many connections from your address not in a room\n");
    else
        refuse_upgrade(wsi, 429, "too many connections from your address\n");
    return 1;
}

/* ---- the lws callback ---- */

/* RFC 6455 s.5.5.1 and s.7.4: a close frame's body is empty or a 2-byte
 * status code (1000-1003, 1007-1011, 3000-4999) then UTF-8 (lws checks
 * that). lws 4.1.6 echoes any body back, a 1-byte one included; a malformed
 * one is a protocol error: answered with 1002 and closed (false). */
static bool close_frame_ok(struct lws *wsi, const void *in, size_t len)
{
    const uint8_t *p = in;
    unsigned code;
    if (len == 0)
        return true;
    if (len >= 2 && p) {
        code = (unsigned)p[0] << 8 | p[1];
        if ((code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1011) ||
            (code >= 3000 && code <= 4999))
            return true;
    }
    lws_close_reason(wsi, LWS_CLOSE_STATUS_PROTOCOL_ERR, (unsigned char *)"bad close frame", 15);
    return false;
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
    struct lws_context *ctx = lws_get_context(wsi);
    server *s = ctx ? lws_context_user(ctx) : NULL;
    sess *u = user;
    char uri[64];

    switch (reason) {
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        /* WebSocket only on /ws, none while draining, and a global cap: with
         * per-connection queues bounded, this bounds the whole server. */
        if (lws_hdr_copy(wsi, uri, sizeof uri, WSI_TOKEN_GET_URI) <= 0 || strcmp(uri, "/ws"))
            return refuse_counted(s, wsi, SIG_ADMIT_PATH, 404, "WebSocket only on /ws\n");
        if (sig_server_connections(s->srv) >=
            (uint64_t)sig_server_conf(s->srv)->max_connections) {
            if (rtc_log_ratelimit_ok(&s->warn_rl, rtc_clock_mono_ms()))
                RTC_LOG(RTC_LOG_WARN, NULL, "max-connections (%lld) reached: refusing upgrades",
                        (long long)sig_server_conf(s->srv)->max_connections);
            return refuse_counted(s, wsi, SIG_ADMIT_FULL, 503, "server full, retry later\n");
        }
        if (sig_server_draining(s->srv))
            return refuse_counted(s, wsi, SIG_ADMIT_DRAINING, 503, "server draining\n");
        return admit_upgrade(s, wsi);
    case LWS_CALLBACK_ESTABLISHED: {
        conn *c = &u->c;
        char peer[RTC_ADDR_STRLEN] = "";
        rtc_addr addr;
        memset(c, 0, sizeof *c);
        memset(&addr, 0, sizeof addr);
        u->kind = SESS_WS;
        c->wsi = wsi;
        c->srv = s;
        {
            struct sockaddr_storage ss;
            socklen_t sl = sizeof ss;
            /* inet_ntop gives RFC 5952 text (lws 4.1's own writer put "::"
             * on a single zero group: 2001:db8::2:0:0:0:2) */
            if (!getpeername(lws_get_socket_fd(wsi), (struct sockaddr *)&ss, &sl)) {
                rtc_addr_from_sockaddr(&addr, (struct sockaddr *)&ss);
                rtc_addr_format(&addr, false, peer);
            } else {
                lws_get_peer_simple(wsi, peer, sizeof peer);
            }
        }
        /* on the keepalive list only once open: CLOSED takes it off */
        if (sig_client_open(s->srv, &c->cl, c, peer, &addr, rtc_clock_mono_us()))
            return -1;
        touch(s, &c->idle);
        return 0;
    }
    case LWS_CALLBACK_RECEIVE_PONG:
        if (u->kind == SESS_WS)
            touch(s, &u->c.idle);
        return 0;
    case LWS_CALLBACK_RECEIVE:
        return u->kind == SESS_WS ? on_receive(&u->c, in, len) : -1;
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        return close_frame_ok(wsi, in, len) ? 0 : -1;
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return u->kind == SESS_WS ? on_writeable(&u->c) : -1;
    case LWS_CALLBACK_CLOSED: {
        conn *c = &u->c;
        if (u->kind != SESS_WS)
            return 0;
        sig_idle_remove(&s->idle_q, &c->idle);
        if (!c->cl.srv)
            return 0;
        sig_client_closed(&c->cl, rtc_clock_mono_us());
        free(c->rx);
        c->rx = NULL;
        return 0;
    }
    case LWS_CALLBACK_HTTP:
        u->kind = SESS_HTTP;
        return on_http(s, wsi, &u->h, in ? (const char *)in : "/");
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        /* a POST: lws holds the answer back until the body is read (we
         * read none: the admin API's commands carry no body) */
        if (u && u->kind == SESS_HTTP && u->h.body)
            lws_callback_on_writable(wsi);
        return 0;
    case LWS_CALLBACK_HTTP_WRITEABLE:
        return u && u->kind == SESS_HTTP && u->h.body ? on_http_writeable(wsi, &u->h) : 0;
    case LWS_CALLBACK_CLOSED_HTTP:
        if (u && u->kind == SESS_HTTP)
            rtc_buf_dispose(&u->h.metrics);
        return 0;
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
        if (s && sig_server_cluster_events(s->srv))
            lws_cancel_service(s->ctx); /* more waiting: come back after the others */
        return 0;
    default:
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}

/* ---- timers, signals, reload, drain ---- */

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long n;
    if (!f)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) > 0 && n < (1 << 20) &&
        fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)n + 1)) &&
        fread(buf, 1, (size_t)n, f) == (size_t)n) {
        buf[n] = '\0';
        *len = (size_t)n;
    } else {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    return buf;
}

/* Re-read the certificate and key from the start-up paths (a renewed
 * certificate is written over the old files) into the running vhost;
 * connections already open keep their session. */
static void reload_tls(server *s)
{
    const sig_conf *boot = sig_server_boot(s->srv);
    size_t clen = 0, klen = 0;
    char *cert, *key;
    if (!boot->cert)
        return;
    cert = slurp(boot->cert, &clen);
    key = slurp(boot->key, &klen);
    if (!cert || !key ||
        lws_tls_cert_updated(s->ctx, boot->cert, boot->key, cert, clen, key, klen))
        RTC_LOG(RTC_LOG_ERROR, NULL, "SIGHUP: could not load %s / %s; keeping the old certificate",
                boot->cert, boot->key);
    else
        RTC_LOG(RTC_LOG_INFO, NULL, "SIGHUP: reloaded TLS certificate %s", boot->cert);
    if (key)
        memset(key, 0, klen);
    free(cert);
    free(key);
}


/* How early a keepalive ping may go (--keepalive-batch-ms): at most a
 * quarter of the timeout, so that a round never pings the freshly heard. */
static uint64_t keep_early(const sig_conf *c)
{
    uint64_t e = (uint64_t)c->keepalive_batch_ms * 1000u;
    uint64_t cap = (uint64_t)c->idle_timeout * 250000u;
    return e < cap ? e : cap;
}

/* SIGHUP, after the sessions took the fresh settings: what lws holds. */
static void op_reloaded(void *ud, const sig_conf *fresh)
{
    server *s = ud;
    sig_idle_set_timeout(&s->idle_q, (uint64_t)fresh->idle_timeout * 1000000u);
    s->keep_early_us = keep_early(fresh);
}

/* The ping of a connection with nothing else to send goes out at once, not
 * at WRITEABLE: a keepalive round then costs one send (and the pong's
 * read) instead of a send plus two epoll_ctl (POLLOUT on, then off) and a
 * wake-up for the writable event. Safe outside WRITEABLE on the service
 * thread: the frame is whole, nothing is queued or half-sent before it
 * (else the WRITEABLE path sends it after what waits), and a send the
 * kernel cannot take in full is kept and finished by lws. false: send it
 * at WRITEABLE instead. */
static bool ping_now(conn *c)
{
    uint8_t ping[LWS_PRE + 2] = {[LWS_PRE] = 't', [LWS_PRE + 1] = 's'};
    if (!c->cl.m || c->cl.close_code || c->ping_due || sig_member_peek(c->cl.m) ||
        lws_partial_buffered(c->wsi))
        return false;
    if (lws_write(c->wsi, ping + LWS_PRE, 2, LWS_WRITE_PING) < 2)
        /* a broken socket: no callback to return -1 from, so close it the
         * way a missed pong does */
        lws_set_timeout(c->wsi, PENDING_TIMEOUT_KILLED_BY_PARENT, LWS_TO_KILL_ASYNC);
    return true;
}

/* Connections silent for half the idle timeout get a ping; those silent
 * for all of it (no pong either) are closed, their member kept for resume
 * like any other drop. Costs the deadlines due, not the connections; runs
 * at the earliest deadline (to the millisecond, as lws's own timers did:
 * a 100 ms tick would batch neighbours' deadlines). */
static void on_keepalive(lws_sorted_usec_list_t *sul)
{
    server *s = lws_container_of(sul, server, keep);
    uint64_t t = rtc_clock_mono_us();
    sig_idle_node *n;
    sig_idle_due d;
    s->keep_armed = false;
    for (unsigned k = 0;
         k < IDLE_PER_RUN && (d = sig_idle_next_early(&s->idle_q, t, s->keep_early_us, &n));
         k++) {
        conn *c = lws_container_of(n, conn, idle);
        if (d == SIG_IDLE_PING) {
            if (!ping_now(c)) {
                c->ping_due = true;
                lws_callback_on_writable(c->wsi);
            }
            continue;
        }
        RTC_LOG(RTC_LOG_INFO, c->cl.m ? sig_member_id(c->cl.m) : NULL,
                "no answer to ping within --idle-timeout: closing %s", c->cl.peer);
        lws_set_timeout(c->wsi, PENDING_TIMEOUT_KILLED_BY_PARENT, LWS_TO_KILL_ASYNC);
    }
    arm_keepalive(s, t);
}

static void on_tick(lws_sorted_usec_list_t *sul)
{
    server *s = lws_container_of(sul, server, tick);
    uint64_t t = rtc_clock_mono_us();

    if (g_sighup) {
        g_sighup = 0;
        sig_server_reload(s->srv);
        reload_tls(s);
    }
    if (g_sigterm) {
        g_sigterm = 0;
        sig_server_terminate(s->srv, t);
    }
    sig_admin_tick(s->admin, t);
    s->stop = sig_server_tick(s->srv, t) || s->stop;
    if (s->stop) {
        lws_cancel_service(s->ctx);
        return;
    }
    lws_sul_schedule(s->ctx, 0, &s->tick, on_tick, TICK_US);
}

static const struct lws_protocols protocols[] = {
    {"tsunagu", callback, sizeof(sess), 4096, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static void lws_to_rtc_log(int level, const char *line)
{
    size_t n = strlen(line);
    while (n && line[n - 1] == '\n')
        n--;
    /* one per refused upgrade, unthrottled: ours are logged (rate-limited)
     * where the refusal is decided */
    if (strstr(line, "User code denied connection"))
        return;
    RTC_LOG(level == LLL_ERR ? RTC_LOG_ERROR : RTC_LOG_WARN, "lws", "%.*s", (int)n, line);
}

int sig_ws_run(sig_conf *conf, int argc, char *const argv[])
{
    struct lws_context_creation_info info;
    lws_retry_bo_t idle;
    void *foreign[1];
    server s;
    rtc_addr la;
    char host[RTC_ADDR_STRLEN];
    sig_server_ops ops;
    struct sigaction sa;
    int rc = 1;

    memset(&s, 0, sizeof s);
    s.warn_rl.per_sec = 1;
    s.admit_rl.per_sec = 10;
    ops = (sig_server_ops){.wake = op_wake, .close = op_close, .poke = op_poke,
                           .reloaded = op_reloaded, .ud = &s, .headroom = LWS_PRE};
    if (!(s.srv = sig_server_new(conf, argc, argv, &ops)))
        return rc; /* (it took conf) */
    if (!(s.admin = sig_admin_new(s.srv)))
        goto out_srv;
    s.site = (rtc_http_site){.metrics_type = RTC_HTTP_METRICS_TYPE, .method_body = "GET only\n",
                             .render_metrics = site_metrics, .unhealthy = site_unhealthy,
                             .ctx = &s};

    rtc_addr_parse_hostport(conf->listen, &la);
    rtc_addr_format(&la, false, host);

    lws_set_log_level(LLL_ERR | LLL_WARN, lws_to_rtc_log);
    memset(&info, 0, sizeof info);
    memset(&idle, 0, sizeof idle);
    /* lws's own keepalive off (a zero hang-up: without a policy lws applies
     * its default); ours is sig_idle's (on_keepalive) */
    info.retry_and_idle_policy = &idle;
    sig_idle_init(&s.idle_q, (uint64_t)conf->idle_timeout * 1000000u);
    s.keep_early_us = keep_early(conf);
    if (!(s.loop = ev_loop_new(EVBACKEND_EPOLL)) && !(s.loop = ev_loop_new(EVFLAG_AUTO))) {
        RTC_LOG(RTC_LOG_ERROR, NULL, "cannot create the event loop");
        goto out_srv;
    }
    foreign[0] = s.loop;
    info.foreign_loops = foreign;
    info.port = la.port;
    info.iface = host;
    info.protocols = protocols;
    info.user = &s;
    info.gid = -1;
    info.uid = -1;
    info.options = LWS_SERVER_OPTION_VALIDATE_UTF8 | LWS_SERVER_OPTION_DISABLE_IPV6 |
                   LWS_SERVER_OPTION_LIBEV;
    if (la.family == AF_INET6)
        info.options &= ~(uint64_t)LWS_SERVER_OPTION_DISABLE_IPV6;
    if (conf->cert) {
        info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
        info.ssl_cert_filepath = conf->cert;
        info.ssl_private_key_filepath = conf->key;
    }
    info.timeout_secs = 20;
    info.keepalive_timeout = 10;
    s.ctx = lws_create_context(&info);
    if (!s.ctx) {
        RTC_LOG(RTC_LOG_ERROR, NULL, "cannot listen on %s%s", conf->listen,
                conf->cert ? " with the given cert/key" : "");
        goto out_loop;
    }
    if (sig_server_start(s.srv)) /* cluster mode: Redis (the loop can be poked now) */
        goto out_ctx;

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGHUP, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    RTC_LOG(RTC_LOG_INFO, NULL, "listening on %s://%s/ (WebSocket /ws)",
            conf->cert ? "https" : "http", conf->listen);
    rtc_notify("READY=1"); /* under systemd (Type=notify): serving now; else a no-op */
    lws_sul_schedule(s.ctx, 0, &s.tick, on_tick, TICK_US);
    /* one turn at a time: on_tick sets s.stop (and wakes the loop) */
    while (!s.stop)
        ev_run(s.loop, EVRUN_ONCE);
    RTC_LOG(RTC_LOG_INFO, NULL, "stopped");
    rc = 0;
out_ctx:
    sig_server_mute(s.srv);
    /* on a foreign loop lws may finish closing (and call CLOSED for what
     * was open) while the loop runs: bounded turns */
    lws_context_destroy(s.ctx);
    for (int i = 0; i < 1000 && ev_run(s.loop, EVRUN_NOWAIT); i++)
        ;
out_loop:
    ev_loop_destroy(s.loop);
out_srv:
    sig_admin_free(s.admin);
    sig_server_free(s.srv); /* (and conf) */
    return rc;
}
