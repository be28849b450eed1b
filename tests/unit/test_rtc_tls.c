/* test_rtc_tls.c - TLS context setup: a server context from PEM files (and
 * the relay's error texts for a missing chain, a missing key and a key that
 * does not match), client contexts with and without verification and their
 * CA errors, the modes and minimum version every context gets, and a real
 * handshake between the two over a socketpair (no network). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "rtc_tls.h"
#include "tap.h"

static char g_cert[64], g_key[64], g_key2[64];

static int write_pem(char *path, int (*wr)(FILE *, void *), void *obj)
{
    int fd;
    FILE *f;
    /* path is one of the 64-byte g_* names below: a mkstemp template */
    snprintf(path, 64, "%s", "/tmp/test_rtc_tls_XXXXXX");
    if ((fd = mkstemp(path)) < 0)
        return -1;
    if (!(f = fdopen(fd, "w"))) {
        close(fd);
        return -1;
    }
    wr(f, obj);
    fclose(f);
    return 0;
}

static int wr_cert(FILE *f, void *x) { return PEM_write_X509(f, x); }
static int wr_key(FILE *f, void *k) { return PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL); }

/* A self-signed P-256 CA certificate for localhost, its key, and an
 * unrelated second key. */
static int make_files(void)
{
    EVP_PKEY *key = EVP_EC_gen("P-256"), *other = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    X509V3_CTX v3;
    X509_EXTENSION *ext;
    X509_NAME *n;
    int rc = -1;

    if (!key || !other || !x)
        goto out;
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, key);
    n = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)"localhost", -1, -1, 0);
    X509_set_issuer_name(x, n);
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
    ext = X509V3_EXT_conf_nid(NULL, &v3, NID_basic_constraints, "critical,CA:TRUE");
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    if (!X509_sign(x, key, EVP_sha256()))
        goto out;
    if (!write_pem(g_cert, wr_cert, x) && !write_pem(g_key, wr_key, key) &&
        !write_pem(g_key2, wr_key, other))
        rc = 0;
out:
    X509_free(x);
    EVP_PKEY_free(key);
    EVP_PKEY_free(other);
    return rc;
}

static void test_server(void)
{
    char err[256], want[256];
    SSL_CTX *c;

    c = rtc_tls_server_new(g_cert, g_key, err, sizeof err);
    ok(c != NULL, "server context from PEM chain and key");
    if (c) {
        long mode = SSL_CTX_get_mode(c);
        ok(SSL_CTX_get_min_proto_version(c) == TLS1_2_VERSION, "TLS 1.2 at least");
        ok((mode & SSL_MODE_RELEASE_BUFFERS) && (mode & SSL_MODE_ENABLE_PARTIAL_WRITE) &&
               (mode & SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER),
           "partial writes, moving buffers, released buffers");
    }
    rtc_tls_ctx_free(c);
    rtc_tls_ctx_free(NULL);

    ok(!rtc_tls_server_new("/nonexistent/cert.pem", g_key, err, sizeof err), "missing chain");
    ok(!strcmp(err, "cert: cannot load certificate chain from '/nonexistent/cert.pem'"),
       "its reason names the file");
    ok(!rtc_tls_server_new(g_cert, "/nonexistent/key.pem", err, sizeof err), "missing key");
    ok(!strcmp(err, "key: cannot load private key from '/nonexistent/key.pem'"),
       "its reason names the file");
    ok(!rtc_tls_server_new(g_cert, g_key2, err, sizeof err), "a key of another certificate");
    /* OpenSSL 3 already refuses the key when loading it next to a certificate
     * it does not match; SSL_CTX_check_private_key is the backstop */
    snprintf(want, sizeof want, "key: cannot load private key from '%s'", g_key2);
    ok(!strcmp(err, want) || strstr(err, "does not match the certificate"),
       "its reason names the key file");
    ok(ERR_peek_error() == 0, "OpenSSL's error queue left clean");
}

static void test_client(void)
{
    char err[256];
    rtc_tls_client_opts o = {.verify = false, .flags = RTC_TLS_IGNORE_EOF};
    SSL_CTX *c = rtc_tls_client_new(&o, err, sizeof err);

    ok(c != NULL, "client without verification");
    if (c) {
        ok(SSL_CTX_get_verify_mode(c) == SSL_VERIFY_NONE, "verify off");
        ok(!(SSL_CTX_get_mode(c) & SSL_MODE_RELEASE_BUFFERS), "buffers kept unless asked");
#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF
        ok(SSL_CTX_get_options(c) & SSL_OP_IGNORE_UNEXPECTED_EOF, "unexpected EOF ignored");
#endif
        ok(SSL_CTX_get_min_proto_version(c) == TLS1_2_VERSION, "client TLS 1.2 at least");
    }
    rtc_tls_ctx_free(c);

    o = (rtc_tls_client_opts){.verify = true, .flags = RTC_TLS_RELEASE_BUFFERS};
    c = rtc_tls_client_new(&o, err, sizeof err);
    ok(c && SSL_CTX_get_verify_mode(c) == SSL_VERIFY_PEER, "verifying client, system CAs");
    ok(c && (SSL_CTX_get_mode(c) & SSL_MODE_RELEASE_BUFFERS), "released buffers on request");
#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF
    ok(c && !(SSL_CTX_get_options(c) & SSL_OP_IGNORE_UNEXPECTED_EOF), "EOF strict unless asked");
#endif
    rtc_tls_ctx_free(c);

    o = (rtc_tls_client_opts){.verify = true, .ca_file = "/nonexistent/ca.pem", .what = "turn-ca"};
    ok(!rtc_tls_client_new(&o, err, sizeof err), "missing CA file");
    ok(!strcmp(err, "turn-ca: cannot open /nonexistent/ca.pem: No such file or directory"),
       "its reason names the setting and the file");
    o.ca_file = g_key; /* a PEM file with no certificate in it */
    ok(!rtc_tls_client_new(&o, err, sizeof err) && !strncmp(err, "turn-ca: cannot load ", 21),
       "a CA file without certificates");
    o.what = NULL;
    o.ca_file = "/nonexistent/ca.pem";
    ok(!rtc_tls_client_new(&o, err, sizeof err) && !strncmp(err, "ca: cannot open", 15),
       "default setting name");
    ok(ERR_peek_error() == 0, "error queue clean after client failures");
}

/* Drive both ends of a socketpair until neither wants more. */
static int handshake(SSL *s, SSL *c)
{
    int ds = 0, dc = 0;
    for (int i = 0; i < 100 && !(ds && dc); i++) {
        int r;
        if (!ds) {
            r = SSL_do_handshake(s);
            if (r == 1)
                ds = 1;
            else if (SSL_get_error(s, r) != SSL_ERROR_WANT_READ)
                return -1;
        }
        if (!dc) {
            r = SSL_do_handshake(c);
            if (r == 1)
                dc = 1;
            else if (SSL_get_error(c, r) != SSL_ERROR_WANT_READ)
                return -1;
        }
    }
    return ds && dc ? 0 : -1;
}

static void test_handshake(void)
{
    char err[256], buf[8] = {0};
    rtc_tls_client_opts o = {.verify = true, .ca_file = g_cert, .what = "ca"};
    SSL_CTX *sc = rtc_tls_server_new(g_cert, g_key, err, sizeof err);
    SSL_CTX *cc = rtc_tls_client_new(&o, err, sizeof err);
    SSL *s = NULL, *c = NULL;
    int sv[2];

    if (!sc || !cc || socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv)) {
        ok(0, "handshake set-up");
        goto out;
    }
    s = SSL_new(sc);
    c = SSL_new(cc);
    SSL_set_fd(s, sv[0]);
    SSL_set_fd(c, sv[1]);
    SSL_set_accept_state(s);
    SSL_set_connect_state(c);
    SSL_set1_host(c, "localhost");
    ok(handshake(s, c) == 0, "handshake between the two contexts, peer verified");
    ok(SSL_get_verify_result(c) == X509_V_OK, "the CA file made the chain trusted");
    ok(SSL_version(c) >= TLS1_2_VERSION, "negotiated TLS 1.2 or later");
    ok(SSL_write(c, "ping", 4) == 4 && SSL_read(s, buf, sizeof buf) == 4 && !memcmp(buf, "ping", 4),
       "application data flows");
    SSL_free(s);
    SSL_free(c);
    close(sv[0]);
    close(sv[1]);
out:
    rtc_tls_ctx_free(sc);
    rtc_tls_ctx_free(cc);
}

int main(void)
{
    if (make_files()) {
        printf("Bail out! cannot make test certificates\n");
        return 1;
    }
    test_server();
    test_client();
    test_handshake();
    unlink(g_cert);
    unlink(g_key);
    unlink(g_key2);
    return done_testing();
}
