/* rtc_tls.c - OpenSSL context setup (see rtc_tls.h). The one place that
 * decides protocol versions and modes for TLS over TCP. */
#include "rtc_tls.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#define BASE_MODES (SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER)

static void last_ssl_error(char *out, size_t cap)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    snprintf(out, cap, "%s", r ? r : "unknown OpenSSL error");
}

SSL_CTX *rtc_tls_server_new(const char *cert, const char *key, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

    if (!ctx) {
        snprintf(err, errlen, "cannot create a TLS context");
        goto out_clear;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(ctx, BASE_MODES | SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        snprintf(err, errlen, "cert: cannot load certificate chain from '%s'", cert);
        goto out_ctx;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
        /* OpenSSL compares the key with the certificate already loaded while
         * it loads it: a key that parsed but belongs to another certificate
         * fails here, and is worth saying so (a renewed certificate next to
         * the old key is the usual way to get it) */
        unsigned long e = ERR_peek_last_error();
        if (ERR_GET_LIB(e) == ERR_LIB_X509 && (ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH ||
                                               ERR_GET_REASON(e) == X509_R_KEY_TYPE_MISMATCH))
            snprintf(err, errlen, "key: '%s' does not match the certificate '%s'", key, cert);
        else
            snprintf(err, errlen, "key: cannot load private key from '%s'", key);
        goto out_ctx;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        snprintf(err, errlen, "key: '%s' does not match the certificate '%s'", key, cert);
        goto out_ctx;
    }
    return ctx;
out_ctx:
    SSL_CTX_free(ctx);
out_clear:
    ERR_clear_error();
    return NULL;
}

/* Trust the CA bundle o->ca_file, or the system's default paths. 0, or -1
 * with err set. */
static int load_trust(SSL_CTX *ctx, const rtc_tls_client_opts *o, char *err, size_t errlen)
{
    const char *what = o->what ? o->what : "ca";
    char why[200];
    FILE *probe;

    if (!o->ca_file) {
        if (SSL_CTX_set_default_verify_paths(ctx))
            return 0;
        last_ssl_error(why, sizeof why);
        snprintf(err, errlen, "TLS client context: %s", why);
        return -1;
    }
    /* OpenSSL's own error for a missing file is "system lib"; say which */
    probe = fopen(o->ca_file, "r");
    if (!probe) {
        snprintf(err, errlen, "%s: cannot open %s: %s", what, o->ca_file, strerror(errno));
        return -1;
    }
    fclose(probe);
    if (!SSL_CTX_load_verify_locations(ctx, o->ca_file, NULL)) {
        last_ssl_error(why, sizeof why);
        snprintf(err, errlen, "%s: cannot load %s: %s", what, o->ca_file, why);
        return -1;
    }
    return 0;
}

SSL_CTX *rtc_tls_client_new(const rtc_tls_client_opts *o, char *err, size_t errlen)
{
    char why[200];
    long mode = BASE_MODES;
    SSL_CTX *ctx;

    ERR_clear_error();
    ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx || !SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION)) {
        last_ssl_error(why, sizeof why);
        snprintf(err, errlen, "TLS client context: %s", why);
        goto out_ctx;
    }
    if (o->flags & RTC_TLS_RELEASE_BUFFERS)
        mode |= SSL_MODE_RELEASE_BUFFERS;
    SSL_CTX_set_mode(ctx, mode);
#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF
    if (o->flags & RTC_TLS_IGNORE_EOF)
        SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
#endif
    if (!o->verify) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
        return ctx;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if (load_trust(ctx, o, err, errlen))
        goto out_ctx;
    return ctx;
out_ctx:
    SSL_CTX_free(ctx);
    ERR_clear_error();
    return NULL;
}

void rtc_tls_ctx_free(SSL_CTX *ctx) { SSL_CTX_free(ctx); }
