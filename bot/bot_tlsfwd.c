/* bot_tlsfwd.c - local plain TCP -> remote TLS forwarder (see bot_tlsfwd.h).
 *
 * Each accepted connection is one GSource watching two fds (the local one
 * from libnice and the server's), non-blocking both. Bytes go through two
 * bounded buffers; a side is polled for input only while the buffer it fills
 * has room, so a slow reader pushes back on the writer instead of growing
 * memory. OpenSSL can need the socket readable to write (and the reverse),
 * so SSL_write/SSL_read remember what they wait for. No wire parsing here:
 * TURN over TCP frames itself and libnice reads it. */
#include "bot_tlsfwd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <glib-unix.h>
#include <glib.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "rtc_log.h"
#include "rtc_tls.h"

#define MAX_CONNS 8
#define PUMP_ROUNDS 32

struct bot_tls_ctx {
    SSL_CTX *ssl;
    bool verify;
};

bool bot_tls_host_is_ip(const char *host)
{
    unsigned char a[16];
    return inet_pton(AF_INET, host, a) == 1 || inet_pton(AF_INET6, host, a) == 1;
}

static void last_ssl_error(char *out, size_t cap)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    snprintf(out, cap, "%s", r ? r : "unknown OpenSSL error");
}

/* The context rules (TLS 1.2 at least, partial writes, what to trust)
 * are common/rtc_tls.c's; the forwarder only says which CA and how strict. */
bot_tls_ctx *bot_tls_ctx_new(const char *ca_file, bool insecure, char *err, size_t errlen)
{
    bot_tls_ctx *t = calloc(1, sizeof *t);
    rtc_tls_client_opts o = {
        .verify = !insecure,
        .ca_file = ca_file,
        .what = "turn-ca",
        /* A TURN server that just closes TCP has ended the session, not been
         * truncated by an attacker: the TURN framing has no partial-message use. */
        .flags = RTC_TLS_IGNORE_EOF,
    };

    if (!t) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    t->verify = !insecure;
    t->ssl = rtc_tls_client_new(&o, err, errlen);
    if (!t->ssl) {
        free(t);
        return NULL;
    }
    return t;
}

void bot_tls_ctx_free(bot_tls_ctx *t)
{
    if (!t)
        return;
    rtc_tls_ctx_free(t->ssl);
    free(t);
}

bool bot_tls_ctx_verifies(const bot_tls_ctx *t) { return t->verify; }

/* --- one connection --- */

typedef struct {
    uint8_t *b;
    size_t off, len, cap;
} fbuf;

static size_t fbuf_room(fbuf *q)
{
    /* Compact lazily: only when the tail is short. SSL_write may be retried
     * on moved data (SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER). */
    if (q->off && q->off + q->len > q->cap / 2) {
        memmove(q->b, q->b + q->off, q->len);
        q->off = 0;
    }
    return q->cap - q->off - q->len;
}

static uint8_t *fbuf_tail(fbuf *q) { return q->b + q->off + q->len; }

static void fbuf_take(fbuf *q, size_t n)
{
    q->off += n;
    q->len -= n;
    if (!q->len)
        q->off = 0;
}

typedef enum { C_CONNECTING, C_HANDSHAKE, C_OPEN } cstate;

typedef struct conn conn;

typedef struct {
    GSource base;
    conn *c;
} conn_src;

struct conn {
    bot_tlsfwd *f;
    conn *next;
    conn_src *src;
    gpointer ctag, stag;
    int cfd, sfd;
    SSL *ssl;
    cstate st;
    fbuf up, down;       /* to the server, to libnice */
    size_t wpend;        /* length of an SSL_write to retry as is, 0: none */
    bool w_want_read, w_want_write, r_want_write, hs_want_write;
    bool c_eof, s_eof;
    int connect_err;     /* connect() failed at once: reported from dispatch */
    GSource *timer;
};

struct bot_tlsfwd {
    const bot_tls_ctx *tls;
    char host[256], where[300];
    struct sockaddr_storage srv;
    socklen_t srv_len;
    uint32_t hs_timeout_ms;
    size_t buf_cap;
    GMainContext *ctx;
    int lfd;
    uint16_t port;
    GSource *lsrc;
    conn *conns;
    size_t n_conns;
    bot_tlsfwd_cbs cbs;
    bot_tlsfwd_stats st;
};

static void conn_close(conn *c)
{
    bot_tlsfwd *f = c->f;
    for (conn **pp = &f->conns; *pp; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    f->n_conns--;
    f->st.open = f->n_conns;
    if (c->timer) {
        g_source_destroy(c->timer);
        g_source_unref(c->timer);
    }
    c->src->c = NULL;
    g_source_destroy(&c->src->base);
    g_source_unref(&c->src->base);
    if (c->ssl) {
        if (c->st == C_OPEN)
            SSL_shutdown(c->ssl); /* best effort close_notify; non-blocking */
        SSL_free(c->ssl);
    }
    close(c->cfd);
    if (c->sfd >= 0)
        close(c->sfd);
    free(c->up.b);
    free(c->down.b);
    free(c);
    ERR_clear_error();
}

static void conn_fail(conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void conn_fail(conn *c, const char *fmt, ...)
{
    bot_tlsfwd *f = c->f;
    char why[300], msg[700];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    snprintf(msg, sizeof msg, "TURN over TLS to %s: %s", f->where, why);
    f->st.failed++;
    conn_close(c);
    RTC_LOG(RTC_LOG_WARN, "tls", "%s", msg);
    if (f->cbs.error)
        f->cbs.error(f->cbs.ud, msg);
}

/* Why an SSL call failed, in words an operator can act on. */
static void ssl_reason(conn *c, int ret, char *out, size_t cap)
{
    int e = SSL_get_error(c->ssl, ret);
    long v = SSL_get_verify_result(c->ssl);
    int saved = errno;
    if (c->f->tls->verify && v != X509_V_OK) {
        snprintf(out, cap, "certificate verify failed: %s", X509_verify_cert_error_string(v));
    } else if (e == SSL_ERROR_SSL) {
        last_ssl_error(out, cap);
    } else if (e == SSL_ERROR_SYSCALL) {
        snprintf(out, cap, "%s", saved ? strerror(saved) : "connection closed by the server");
    } else if (e == SSL_ERROR_ZERO_RETURN) {
        snprintf(out, cap, "connection closed by the server");
    } else {
        snprintf(out, cap, "SSL error %d", e);
    }
}

static gboolean on_hs_timeout(gpointer ud)
{
    conn *c = ud;
    g_source_unref(c->timer);
    c->timer = NULL;
    conn_fail(c, "%s timed out after %u ms",
              c->st == C_CONNECTING ? "TCP connect" : "TLS handshake", c->f->hs_timeout_ms);
    return G_SOURCE_REMOVE;
}

static void set_interest(conn *c)
{
    GIOCondition ci = 0, si = 0;
    if (!c->c_eof && fbuf_room(&c->up))
        ci |= G_IO_IN;
    if (c->down.len)
        ci |= G_IO_OUT;
    switch (c->st) {
    case C_CONNECTING:
        si = G_IO_OUT;
        break;
    case C_HANDSHAKE:
        si = c->hs_want_write ? G_IO_OUT : G_IO_IN;
        break;
    case C_OPEN:
        if ((!c->s_eof && fbuf_room(&c->down)) || c->w_want_read)
            si |= G_IO_IN;
        if (c->w_want_write || c->r_want_write)
            si |= G_IO_OUT;
        break;
    default:
        break;
    }
    g_source_modify_unix_fd(&c->src->base, c->ctag, ci);
    g_source_modify_unix_fd(&c->src->base, c->stag, si);
}

static int start_tls(conn *c)
{
    bot_tlsfwd *f = c->f;
    c->ssl = SSL_new(f->tls->ssl);
    if (!c->ssl || !SSL_set_fd(c->ssl, c->sfd))
        return -1;
    if (bot_tls_host_is_ip(f->host)) {
        /* No SNI for literals (RFC 6066 s.3); the certificate must carry
         * the address as an IP SAN. */
        if (!X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), f->host))
            return -1;
    } else {
        if (!SSL_set_tlsext_host_name(c->ssl, f->host) || !SSL_set1_host(c->ssl, f->host))
            return -1;
        SSL_set_hostflags(c->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    }
    SSL_set_connect_state(c->ssl);
    c->st = C_HANDSHAKE;
    return 0;
}

/* 1 done, 0 waiting, -1 failed (c freed). */
static int handshake(conn *c)
{
    char why[256];
    int r;
    ERR_clear_error();
    errno = 0;
    r = SSL_do_handshake(c->ssl);
    if (r == 1) {
        bot_tlsfwd *f = c->f;
        char desc[128];
        c->st = C_OPEN;
        if (c->timer) {
            g_source_destroy(c->timer);
            g_source_unref(c->timer);
            c->timer = NULL;
        }
        f->st.secured++;
        snprintf(desc, sizeof desc, "%s %s", SSL_get_version(c->ssl),
                 SSL_CIPHER_get_name(SSL_get_current_cipher(c->ssl)));
        RTC_LOG(RTC_LOG_INFO, "tls", "TURN over TLS to %s: %s%s", f->where, desc,
                f->tls->verify ? ", certificate verified" : ", certificate NOT verified");
        if (f->cbs.secured)
            f->cbs.secured(f->cbs.ud, desc);
        return 1;
    }
    switch (SSL_get_error(c->ssl, r)) {
    case SSL_ERROR_WANT_READ:
        c->hs_want_write = false;
        return 0;
    case SSL_ERROR_WANT_WRITE:
        c->hs_want_write = true;
        return 0;
    default:
        ssl_reason(c, r, why, sizeof why);
        conn_fail(c, "TLS handshake failed: %s", why);
        return -1;
    }
}

/* Move bytes while any step makes progress. 0, or -1 when c was freed. */
static int pump(conn *c)
{
    char why[256];
    for (int round = 0; round < PUMP_ROUNDS; round++) {
        bool progress = false;
        size_t room = fbuf_room(&c->up);
        if (!c->c_eof && room) {
            ssize_t n = read(c->cfd, fbuf_tail(&c->up), room);
            if (n > 0) {
                c->up.len += (size_t)n;
                progress = true;
            } else if (n == 0) {
                c->c_eof = true;
            } else if (errno != EAGAIN && errno != EINTR) {
                c->c_eof = true; /* libnice's side went away: nothing to report */
            }
        }
        if (c->st != C_OPEN)
            return 0;
        if (c->up.len) {
            size_t len = c->wpend ? c->wpend : c->up.len, w = 0;
            ERR_clear_error();
            errno = 0;
            c->w_want_read = c->w_want_write = false;
            int r = SSL_write_ex(c->ssl, c->up.b + c->up.off, len, &w);
            if (r) {
                fbuf_take(&c->up, w);
                c->f->st.bytes_up += w;
                c->wpend = 0;
                progress = true;
            } else {
                switch (SSL_get_error(c->ssl, r)) {
                case SSL_ERROR_WANT_WRITE: c->w_want_write = true; c->wpend = len; break;
                case SSL_ERROR_WANT_READ: c->w_want_read = true; c->wpend = len; break;
                default:
                    ssl_reason(c, r, why, sizeof why);
                    conn_fail(c, "TLS write: %s", why);
                    return -1;
                }
            }
        }
        room = fbuf_room(&c->down);
        if (!c->s_eof && room) {
            size_t n = 0;
            ERR_clear_error();
            errno = 0;
            c->r_want_write = false;
            int r = SSL_read_ex(c->ssl, fbuf_tail(&c->down), room, &n);
            if (r) {
                c->down.len += n;
                c->f->st.bytes_down += n;
                progress = true;
            } else {
                switch (SSL_get_error(c->ssl, r)) {
                case SSL_ERROR_WANT_READ: break;
                case SSL_ERROR_WANT_WRITE: c->r_want_write = true; break;
                case SSL_ERROR_ZERO_RETURN: c->s_eof = true; break;
                default:
                    ssl_reason(c, r, why, sizeof why);
                    conn_fail(c, "TLS read: %s", why);
                    return -1;
                }
            }
        }
        if (c->down.len) {
            ssize_t n = send(c->cfd, c->down.b + c->down.off, c->down.len, MSG_NOSIGNAL);
            if (n > 0) {
                fbuf_take(&c->down, (size_t)n);
                progress = true;
            } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
                c->c_eof = true;
                c->up.len = 0; /* libnice is gone: its last words can go too */
            }
        }
        if (!progress)
            break;
    }
    return 0;
}

static gboolean conn_dispatch(GSource *s, GSourceFunc cb, gpointer ud)
{
    conn *c = ((conn_src *)s)->c;
    GIOCondition cr, sr;
    (void)cb;
    (void)ud;
    if (!c)
        return G_SOURCE_REMOVE;
    cr = g_source_query_unix_fd(s, c->ctag);
    sr = g_source_query_unix_fd(s, c->stag);
    g_source_set_ready_time(s, -1);
    if (c->st == C_CONNECTING) {
        int e = c->connect_err;
        socklen_t el = sizeof e;
        if (e) {
            conn_fail(c, "TCP connect: %s", strerror(e));
            return G_SOURCE_CONTINUE;
        }
        if (!(sr & (G_IO_OUT | G_IO_ERR | G_IO_HUP)))
            goto local;
        if (getsockopt(c->sfd, SOL_SOCKET, SO_ERROR, &e, &el) || e) {
            conn_fail(c, "TCP connect: %s", strerror(e ? e : errno));
            return G_SOURCE_CONTINUE;
        }
        if (start_tls(c)) {
            char why[200];
            last_ssl_error(why, sizeof why);
            conn_fail(c, "TLS set-up: %s", why);
            return G_SOURCE_CONTINUE;
        }
        sr = 0;
    }
    if (c->st == C_HANDSHAKE && handshake(c) < 0)
        return G_SOURCE_CONTINUE;
local:
    /* Hang-up or error on a socket we are not reading (back-pressure)
     * would wake us forever: end the connection. */
    if (cr & (G_IO_ERR | G_IO_HUP)) {
        conn_close(c);
        return G_SOURCE_CONTINUE;
    }
    if (c->st == C_OPEN && (sr & G_IO_ERR)) {
        conn_fail(c, "connection error");
        return G_SOURCE_CONTINUE;
    }
    if (pump(c) < 0)
        return G_SOURCE_CONTINUE;
    if ((c->c_eof && !c->up.len) || (c->s_eof && !c->down.len) ||
        (c->st == C_OPEN && (sr & G_IO_HUP) && !(sr & G_IO_IN))) {
        if (c->s_eof)
            RTC_LOG(RTC_LOG_INFO, "tls", "TURN over TLS to %s: closed by the server",
                    c->f->where);
        conn_close(c);
        return G_SOURCE_CONTINUE;
    }
    set_interest(c);
    return G_SOURCE_CONTINUE;
}

static GSourceFuncs conn_funcs = {NULL, NULL, conn_dispatch, NULL, NULL, NULL};

static void set_nodelay(int fd)
{
    int one = 1;
    /* Media packets over TCP: every one should leave at once. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static void accept_one(bot_tlsfwd *f, int cfd)
{
    conn *c = calloc(1, sizeof *c);
    if (!c)
        goto out_close;
    c->f = f;
    c->cfd = cfd;
    c->up.cap = c->down.cap = f->buf_cap;
    c->up.b = malloc(f->buf_cap);
    c->down.b = malloc(f->buf_cap);
    c->sfd = socket(f->srv.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (!c->up.b || !c->down.b || c->sfd < 0)
        goto out_free;
    set_nodelay(cfd);
    set_nodelay(c->sfd);
    c->src = (conn_src *)g_source_new(&conn_funcs, sizeof(conn_src));
    c->src->c = c;
    c->ctag = g_source_add_unix_fd(&c->src->base, cfd, G_IO_IN);
    c->stag = g_source_add_unix_fd(&c->src->base, c->sfd, G_IO_OUT);
    g_source_attach(&c->src->base, f->ctx);
    c->timer = g_timeout_source_new(f->hs_timeout_ms);
    g_source_set_callback(c->timer, on_hs_timeout, c, NULL);
    g_source_attach(c->timer, f->ctx);
    c->next = f->conns;
    f->conns = c;
    f->n_conns++;
    f->st.accepted++;
    f->st.open = f->n_conns;
    /* A failure is reported from the source, not from here: the error
     * callback may free the forwarder, which on_accept still uses. */
    if (connect(c->sfd, (struct sockaddr *)&f->srv, f->srv_len) && errno != EINPROGRESS) {
        c->connect_err = errno;
        g_source_set_ready_time(&c->src->base, 0);
    }
    return;
out_free:
    if (c->sfd >= 0)
        close(c->sfd);
    free(c->up.b);
    free(c->down.b);
    free(c);
out_close:
    close(cfd);
}

static gboolean on_accept(gint fd, GIOCondition cond, gpointer ud)
{
    bot_tlsfwd *f = ud;
    (void)cond;
    for (int i = 0; i < MAX_CONNS; i++) {
        int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0)
            break;
        if (f->n_conns >= MAX_CONNS) {
            RTC_LOG(RTC_LOG_WARN, "tls", "TURN over TLS to %s: more than %d connections; refused",
                    f->where, MAX_CONNS);
            close(cfd);
            continue;
        }
        accept_one(f, cfd);
    }
    return G_SOURCE_CONTINUE;
}

bot_tlsfwd *bot_tlsfwd_new(const bot_tlsfwd_params *p, const bot_tlsfwd_cbs *cbs)
{
    bot_tlsfwd *f = calloc(1, sizeof *f);
    struct addrinfo hints, *res = NULL;
    struct sockaddr_in lo;
    socklen_t ll = sizeof lo;
    char port[8];

    if (!f)
        return NULL;
    f->tls = p->tls;
    f->cbs = *cbs;
    f->hs_timeout_ms = p->handshake_timeout_ms ? p->handshake_timeout_ms : 10000;
    f->buf_cap = p->buf_cap ? p->buf_cap : 65536;
    f->lfd = -1;
    snprintf(f->host, sizeof f->host, "%s", p->host);
    snprintf(f->where, sizeof f->where, "%s%s%s:%u", strchr(p->host, ':') ? "[" : "", p->host,
             strchr(p->host, ':') ? "]" : "", p->port);
    memset(&hints, 0, sizeof hints);
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
    hints.ai_socktype = SOCK_STREAM;
    snprintf(port, sizeof port, "%u", p->port);
    if (getaddrinfo(p->ip, port, &hints, &res) || !res || res->ai_addrlen > sizeof f->srv)
        goto out_free;
    memcpy(&f->srv, res->ai_addr, res->ai_addrlen);
    f->srv_len = res->ai_addrlen;
    freeaddrinfo(res);
    res = NULL;

    f->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (f->lfd < 0)
        goto out_free;
    memset(&lo, 0, sizeof lo);
    lo.sin_family = AF_INET;
    lo.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(f->lfd, (struct sockaddr *)&lo, sizeof lo) || listen(f->lfd, MAX_CONNS) ||
        getsockname(f->lfd, (struct sockaddr *)&lo, &ll))
        goto out_close;
    f->port = ntohs(lo.sin_port);
    f->ctx = g_main_context_ref_thread_default();
    f->lsrc = g_unix_fd_source_new(f->lfd, G_IO_IN);
    g_source_set_callback(f->lsrc, G_SOURCE_FUNC(on_accept), f, NULL);
    g_source_attach(f->lsrc, f->ctx);
    return f;
out_close:
    close(f->lfd);
out_free:
    if (res)
        freeaddrinfo(res);
    free(f);
    return NULL;
}

void bot_tlsfwd_free(bot_tlsfwd *f)
{
    if (!f)
        return;
    while (f->conns)
        conn_close(f->conns);
    g_source_destroy(f->lsrc);
    g_source_unref(f->lsrc);
    close(f->lfd);
    g_main_context_unref(f->ctx);
    free(f);
}

uint16_t bot_tlsfwd_port(const bot_tlsfwd *f) { return f->port; }

void bot_tlsfwd_get_stats(const bot_tlsfwd *f, bot_tlsfwd_stats *out) { *out = f->st; }
