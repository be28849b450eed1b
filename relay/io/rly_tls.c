/* rly_tls.c - OpenSSL server side for TURN over TLS: the connections; the
 * context comes from rtc_tls (common to the three programs). */
#include "rly_tls.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "rtc_log.h"
#include "rtc_tls.h"

struct rly_tls {
    SSL_CTX *ctx;
    bool ktls;             /* SSL_OP_ENABLE_KTLS asked for (--ktls) */
    _Atomic int ktls_said; /* the first handshake's kTLS state was logged */
    /* the owner's reference plus one per connection: a context replaced
     * by a reload is freed by whichever of them lets go last */
    _Atomic unsigned refs;
};

struct rly_tls_conn {
    SSL *ssl;
    rly_tls *t;
    bool busy;    /* carries media: keeps its record buffers (rly_tls_conn_busy) */
    bool drained; /* the socket BIO's last recv came back short */
    bool said;    /* handshake end seen (kTLS state counted) */
    uint8_t ktls; /* RLY_KTLS_* once the handshake is done */
};

static void apply_speed(SSL_CTX *ctx, bool ktls)
{
    /* one TLS 1.3 ticket after a handshake, not OpenSSL's two: a client
     * reconnects with one, and each costs an encryption and a record */
    SSL_CTX_set_num_tickets(ctx, 1);
    if (ktls) /* the kernel frames the records: OpenSSL must not read ahead */
        SSL_CTX_set_options(ctx, SSL_OP_ENABLE_KTLS);
    else /* one recv takes whole records, several when they queued up
          * (without it: a 5-byte header read, then the body: two recvs a
          * record) */
        SSL_CTX_set_read_ahead(ctx, 1);
}

rly_tls *rly_tls_new(const char *cert, const char *key, char *err, size_t errlen)
{
    return rly_tls_new_opts(cert, key, false, err, errlen);
}

rly_tls *rly_tls_new_opts(const char *cert, const char *key, bool ktls, char *err,
                          size_t errlen)
{
    rly_tls *t = calloc(1, sizeof *t);
    if (!t) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    /* TLS 1.2 at least, partial writes from a moving buffer, released
     * buffers for idle connections, the key checked against the chain */
    t->ctx = rtc_tls_server_new(cert, key, err, errlen);
    if (!t->ctx) {
        free(t);
        return NULL;
    }
    t->ktls = ktls;
    atomic_init(&t->refs, 1);
    apply_speed(t->ctx, ktls);
    return t;
}

void rly_tls_free(rly_tls *t)
{
    if (!t || atomic_fetch_sub(&t->refs, 1) != 1)
        return;
    rtc_tls_ctx_free(t->ctx);
    free(t);
}

/* After each recv of the socket BIO: a read that came back shorter than
 * asked emptied the socket, so the worker need not ask again for an EAGAIN
 * (edge-triggered epoll reports the next bytes that arrive). With read-ahead
 * OpenSSL asks for its whole buffer, so "short" means "nothing left". */
static long on_bio_read(BIO *b, int oper, const char *argp, size_t len, int argi, long argl,
                        int ret, size_t *processed)
{
    (void)argp;
    (void)argi;
    (void)argl;
    if (oper == (BIO_CB_READ | BIO_CB_RETURN)) {
        rly_tls_conn *c = (rly_tls_conn *)BIO_get_callback_arg(b);
        if (c)
            c->drained = ret > 0 && processed && *processed < len;
    }
    return ret;
}

rly_tls_conn *rly_tls_conn_new(rly_tls *t, int fd)
{
    rly_tls_conn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->ssl = SSL_new(t->ctx);
    if (!c->ssl || SSL_set_fd(c->ssl, fd) != 1) {
        SSL_free(c->ssl);
        free(c);
        return NULL;
    }
    c->t = t;
    atomic_fetch_add(&t->refs, 1);
    if (!t->ktls) /* see on_bio_read: why the socket BIO is watched */
        BIO_set_callback_ex(SSL_get_rbio(c->ssl), on_bio_read);
    BIO_set_callback_arg(SSL_get_rbio(c->ssl), (char *)c);
    SSL_set_accept_state(c->ssl);
    return c;
}

void rly_tls_conn_free(rly_tls_conn *c)
{
    if (!c)
        return;
    SSL_free(c->ssl);
    rly_tls_free(c->t); /* its reference (the last one after a reload) */
    free(c);
}

static long result(rly_tls_conn *c, int rc)
{
    switch (SSL_get_error(c->ssl, rc)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
        return -EAGAIN;
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    default:
        ERR_clear_error(); /* a peer's bad handshake must not linger for the next conn */
        return -EIO;
    }
}

/* The handshake just ended: note whether the kernel took the records over,
 * and say it once per context (docs/relay.md, "Kernel TLS"). */
static void handshake_end(rly_tls_conn *c)
{
    int zero = 0;
    c->said = true;
    c->ktls = (uint8_t)((BIO_get_ktls_send(SSL_get_wbio(c->ssl)) ? RLY_KTLS_SEND : 0) |
                        (BIO_get_ktls_recv(SSL_get_rbio(c->ssl)) ? RLY_KTLS_RECV : 0));
    if (atomic_compare_exchange_strong(&c->t->ktls_said, &zero, 1))
        RTC_LOG(RTC_LOG_INFO, NULL, "TLS: kernel TLS %s (send %s, receive %s; %s)",
                c->ktls ? "active" : "off", c->ktls & RLY_KTLS_SEND ? "on" : "off",
                c->ktls & RLY_KTLS_RECV ? "on" : "off",
                !c->t->ktls ? "not asked for: --ktls" : c->ktls ? SSL_get_version(c->ssl)
                : "asked for, but the kernel's tls module or the suite does not allow it; "
                  "user-space records");
}

long rly_tls_read(rly_tls_conn *c, uint8_t *buf, size_t n, bool *drained)
{
    int rc;
    c->drained = false;
    rc = SSL_read(c->ssl, buf, n > 0x7FFFFFFF ? 0x7FFFFFFF : (int)n);
    if (!c->said && SSL_is_init_finished(c->ssl))
        handshake_end(c);
    if (rc > 0) {
        *drained = c->drained && !SSL_has_pending(c->ssl);
        if (*drained && !c->busy && SSL_is_init_finished(c->ssl))
            SSL_free_buffers(c->ssl); /* as on EAGAIN below */
        return rc;
    }
    *drained = false;
    rc = (int)result(c, rc);
    /* Waiting for the client: hand back the ~17 KB read buffer. The
     * context's SSL_MODE_RELEASE_BUFFERS frees it only after application
     * data, so a client that finished the handshake and then said nothing
     * kept it (issue 14 item 2). Never mid-record (SSL_has_pending), and
     * never during the handshake, whose own buffers OpenSSL frees at its end;
     * OpenSSL >= 3.0.14 (CVE-2024-4741 fixed). */
    if (rc == -EAGAIN && !c->busy && SSL_is_init_finished(c->ssl) && !SSL_has_pending(c->ssl))
        SSL_free_buffers(c->ssl);
    return rc == 0 ? 0 : rc;
}

long rly_tls_write(rly_tls_conn *c, const uint8_t *buf, size_t n)
{
    int rc = SSL_write(c->ssl, buf, n > 0x7FFFFFFF ? 0x7FFFFFFF : (int)n);
    if (rc > 0)
        return rc;
    rc = (int)result(c, rc);
    return rc == 0 ? -EIO : rc;
}

bool rly_tls_handshake_done(const rly_tls_conn *c) { return SSL_is_init_finished(c->ssl) == 1; }

void rly_tls_conn_busy(rly_tls_conn *c)
{
    /* A connection that carries media gets a record every 20 ms or so:
     * freeing both ~17 KB record buffers after each one and allocating
     * them again for the next was a malloc/free pair per message each way */
    c->busy = true;
    SSL_clear_mode(c->ssl, SSL_MODE_RELEASE_BUFFERS);
}

int rly_tls_conn_ktls(const rly_tls_conn *c) { return c->ktls; }
