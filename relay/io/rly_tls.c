/* rly_tls.c - OpenSSL server side for TURN over TLS. */
#include "rly_tls.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

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
    t->ctx = SSL_CTX_new(TLS_server_method());
    if (!t->ctx) {
        snprintf(err, errlen, "cannot create a TLS context");
        goto out_free;
    }
    SSL_CTX_set_min_proto_version(t->ctx, TLS1_2_VERSION);
    /* RELEASE_BUFFERS: an idle connection does not keep ~50 KB of record
     * buffers (many idle or half-open TLS clients must stay cheap) */
    SSL_CTX_set_mode(t->ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                                 SSL_MODE_RELEASE_BUFFERS);
    if (SSL_CTX_use_certificate_chain_file(t->ctx, cert) != 1) {
        snprintf(err, errlen, "cert: cannot load certificate chain from '%s'", cert);
        goto out_ctx;
    }
    if (SSL_CTX_use_PrivateKey_file(t->ctx, key, SSL_FILETYPE_PEM) != 1) {
        snprintf(err, errlen, "key: cannot load private key from '%s'", key);
        goto out_ctx;
    }
    if (SSL_CTX_check_private_key(t->ctx) != 1) {
        snprintf(err, errlen, "key: '%s' does not match the certificate '%s'", key, cert);
        goto out_ctx;
    }
    return t;
out_ctx:
    ERR_clear_error();
    SSL_CTX_free(t->ctx);
out_free:
    free(t);
    return NULL;
}

void rly_tls_free(rly_tls *t)
{
    if (!t)
        return;
    SSL_CTX_free(t->ctx); /* connections hold their own reference */
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
