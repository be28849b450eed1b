/* rly_tls.c - OpenSSL server side for TURN over TLS: the connections; the
 * context comes from rtc_tls (common to the three programs). */
#include "rly_tls.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "rtc_tls.h"

struct rly_tls {
    SSL_CTX *ctx;
};

struct rly_tls_conn {
    SSL *ssl;
};

rly_tls *rly_tls_new(const char *cert, const char *key, char *err, size_t errlen)
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
    return t;
}

void rly_tls_free(rly_tls *t)
{
    if (!t)
        return;
    rtc_tls_ctx_free(t->ctx); /* connections hold their own reference */
    free(t);
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
    SSL_set_accept_state(c->ssl);
    return c;
}

void rly_tls_conn_free(rly_tls_conn *c)
{
    if (!c)
        return;
    SSL_free(c->ssl);
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

long rly_tls_read(rly_tls_conn *c, uint8_t *buf, size_t n)
{
    int rc = SSL_read(c->ssl, buf, n > 0x7FFFFFFF ? 0x7FFFFFFF : (int)n);
    if (rc > 0)
        return rc;
    rc = (int)result(c, rc);
    /* Waiting for the client: hand back the ~17 KB read buffer. The
     * context's SSL_MODE_RELEASE_BUFFERS frees it only after application
     * data, so a client that finished the handshake and then said nothing
     * kept it (issue 14 item 2). Never mid-record (SSL_has_pending), and
     * never during the handshake, whose own buffers OpenSSL frees at its end;
     * OpenSSL >= 3.0.14 (CVE-2024-4741 fixed). */
    if (rc == -EAGAIN && SSL_is_init_finished(c->ssl) && !SSL_has_pending(c->ssl))
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
