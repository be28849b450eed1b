/* bot_dtls.c - OpenSSL DTLS 1.2 adapter (see bot_dtls.h).
 *
 * Memory BIOs: OpenSSL writes its flights into wbio as one byte stream; we
 * split that stream back into DTLS records (13-byte header, length in bytes
 * 11-12, RFC 6347 s.4.1) and pack whole records into datagrams of at most
 * MTU bytes. A memory BIO cannot report a path MTU, so the MTU is set by hand
 * (SSL_OP_NO_QUERY_MTU + DTLS_set_link_mtu). */
#include "bot_dtls.h"
#include "bot_loop.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "rtc_err.h"
#include "rtc_log.h"
#include "rtc_rd.h"

#define MTU 1200
#define SRTP_LABEL "EXTRACTOR-dtls_srtp" /* RFC 5764 s.4.2 */

struct bot_dtls_ctx {
    SSL_CTX *ssl_ctx;
    char fp[96];
};

typedef enum { ST_NEW, ST_HANDSHAKE, ST_DONE, ST_FAILED } dtls_state;

struct bot_dtls {
    SSL *ssl;
    BIO *rbio, *wbio; /* owned by ssl */
    bot_dtls_cbs cbs;
    char remote_fp[96];
    dtls_state state;
    GSource *timer;
    bool client;
};

static void log_ssl_errors(const char *what)
{
    unsigned long e;
    char buf[256];
    while ((e = ERR_get_error()) != 0) {
        ERR_error_string_n(e, buf, sizeof buf);
        RTC_LOG(RTC_LOG_WARN, "dtls", "%s: %s", what, buf);
    }
}

static void fingerprint(X509 *cert, char *out, size_t cap)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0, i;
    size_t pos = 0;

    out[0] = '\0';
    if (!X509_digest(cert, EVP_sha256(), md, &n))
        return;
    for (i = 0; i < n && pos + 3 < cap; i++)
        pos += (size_t)snprintf(out + pos, cap - pos, i ? ":%02X" : "%02X", md[i]);
}

/* Self-signed ECDSA P-256, valid for 30 days from yesterday (clock skew). */
static X509 *make_cert(EVP_PKEY *key)
{
    X509 *x = X509_new();
    X509_NAME *name;
    unsigned char serial[8];

    if (!x)
        return NULL;
    if (RAND_bytes(serial, sizeof serial) != 1)
        goto out_free;
    serial[0] &= 0x7f;
    ASN1_INTEGER_set_uint64(X509_get_serialNumber(x),
                            ((uint64_t)serial[0] << 56) | ((uint64_t)serial[1] << 48) |
                                ((uint64_t)serial[2] << 40) | ((uint64_t)serial[3] << 32) |
                                ((uint64_t)serial[4] << 24) | ((uint64_t)serial[5] << 16) |
                                ((uint64_t)serial[6] << 8) | serial[7]);
    X509_set_version(x, 2);
    X509_gmtime_adj(X509_getm_notBefore(x), -86400);
    X509_gmtime_adj(X509_getm_notAfter(x), 30L * 86400);
    X509_set_pubkey(x, key);
    name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"tsunagu-bot", -1,
                               -1, 0);
    X509_set_issuer_name(x, name);
    if (!X509_sign(x, key, EVP_sha256()))
        goto out_free;
    return x;
out_free:
    X509_free(x);
    return NULL;
}

/* The peer's certificate is self-signed by design; it is authenticated by
 * the fingerprint carried in the (signalling-protected) SDP instead. */
static int accept_any(int ok, X509_STORE_CTX *st)
{
    (void)ok;
    (void)st;
    return 1;
}

bot_dtls_ctx *bot_dtls_ctx_new(void)
{
    bot_dtls_ctx *c = calloc(1, sizeof *c);
    EVP_PKEY *key = NULL;
    X509 *cert = NULL;

    if (!c)
        return NULL;
    key = EVP_EC_gen("P-256");
    if (!key)
        goto out_err;
    cert = make_cert(key);
    if (!cert)
        goto out_key;
    c->ssl_ctx = SSL_CTX_new(DTLS_method());
    if (!c->ssl_ctx)
        goto out_cert;
    SSL_CTX_set_min_proto_version(c->ssl_ctx, DTLS1_2_VERSION);
    SSL_CTX_set_max_proto_version(c->ssl_ctx, DTLS1_2_VERSION);
    if (SSL_CTX_use_certificate(c->ssl_ctx, cert) != 1 ||
        SSL_CTX_use_PrivateKey(c->ssl_ctx, key) != 1)
        goto out_ctx;
    SSL_CTX_set_verify(c->ssl_ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, accept_any);
    /* Inverted convention: 0 means success here. GCM first, as browsers. */
    if (SSL_CTX_set_tlsext_use_srtp(c->ssl_ctx, "SRTP_AEAD_AES_128_GCM:SRTP_AES128_CM_SHA1_80"))
        goto out_ctx;
    SSL_CTX_set_options(c->ssl_ctx, SSL_OP_NO_QUERY_MTU);
    SSL_CTX_set_read_ahead(c->ssl_ctx, 1);
    fingerprint(cert, c->fp, sizeof c->fp);
    X509_free(cert);
    EVP_PKEY_free(key);
    return c;
out_ctx:
    SSL_CTX_free(c->ssl_ctx);
out_cert:
    X509_free(cert);
out_key:
    EVP_PKEY_free(key);
out_err:
    log_ssl_errors("certificate");
    free(c);
    return NULL;
}

void bot_dtls_ctx_free(bot_dtls_ctx *c)
{
    if (!c)
        return;
    SSL_CTX_free(c->ssl_ctx);
    free(c);
}

const char *bot_dtls_ctx_fingerprint(const bot_dtls_ctx *c) { return c->fp; }

/* Retransmission back-off: start at 200 ms rather than OpenSSL's 1 s, so a
 * ClientHello lost while the relay permission is being installed costs
 * little; double up to 2 s. */
static unsigned int timer_cb(SSL *ssl, unsigned int prev_us)
{
    (void)ssl;
    if (prev_us == 0)
        return 200000;
    return prev_us >= 1000000 ? 2000000 : prev_us * 2;
}

bot_dtls *bot_dtls_new(bot_dtls_ctx *c, bool client, const char *remote_fp,
                       const bot_dtls_cbs *cbs)
{
    bot_dtls *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    d->ssl = SSL_new(c->ssl_ctx);
    if (!d->ssl)
        goto out_free;
    d->rbio = BIO_new(BIO_s_mem());
    d->wbio = BIO_new(BIO_s_mem());
    if (!d->rbio || !d->wbio) {
        BIO_free(d->rbio);
        BIO_free(d->wbio);
        goto out_ssl;
    }
    BIO_set_mem_eof_return(d->rbio, -1);
    SSL_set_bio(d->ssl, d->rbio, d->wbio);
    DTLS_set_link_mtu(d->ssl, MTU);
    DTLS_set_timer_cb(d->ssl, timer_cb);
    if (client)
        SSL_set_connect_state(d->ssl);
    else
        SSL_set_accept_state(d->ssl);
    d->client = client;
    d->cbs = *cbs;
    snprintf(d->remote_fp, sizeof d->remote_fp, "%s", remote_fp ? remote_fp : "");
    return d;
out_ssl:
    SSL_free(d->ssl);
out_free:
    free(d);
    return NULL;
}

void bot_dtls_free(bot_dtls *d)
{
    if (!d)
        return;
    bot_timer_cancel(&d->timer);
    SSL_free(d->ssl);
    free(d);
}

bool bot_dtls_is_done(const bot_dtls *d) { return d->state == ST_DONE; }

/* Send what OpenSSL wrote: whole records, packed up to MTU per datagram. */
static void flush(bot_dtls *d)
{
    uint8_t stream[16384], dgram[MTU + 64];
    int n;

    while ((n = BIO_read(d->wbio, stream, sizeof stream)) > 0) {
        rtc_rd r;
        size_t used = 0;
        rtc_rd_init(&r, stream, (size_t)n);
        while (rtc_rd_left(&r) >= 13) {
            const uint8_t *h = r.p;
            size_t rec = 13 + ((size_t)h[11] << 8 | h[12]);
            rtc_rd body;
            if (!rtc_rd_sub(&r, rec, &body))
                break; /* cannot happen: OpenSSL writes whole records */
            if (used && used + rec > MTU) {
                d->cbs.send(d->cbs.ud, dgram, used);
                used = 0;
            }
            if (rec > sizeof dgram) {
                d->cbs.send(d->cbs.ud, body.p, rec);
                continue;
            }
            memcpy(dgram + used, body.p, rec);
            used += rec;
        }
        if (used)
            d->cbs.send(d->cbs.ud, dgram, used);
    }
}

static gboolean on_timer(gpointer ud);

static void arm_timer(bot_dtls *d)
{
    struct timeval tv;
    bot_timer_cancel(&d->timer);
    if (d->state != ST_HANDSHAKE || DTLSv1_get_timeout(d->ssl, &tv) != 1)
        return;
    d->timer = bot_timer_new((guint)(tv.tv_sec * 1000 + tv.tv_usec / 1000) + 1, on_timer, d);
}

/* Split the 2*(key+salt) bytes of exported material (RFC 5764 s.4.2:
 * client key, server key, client salt, server salt) into ours and theirs. */
static int export_keys(bot_dtls *d, bot_srtp_keys *k)
{
    const SRTP_PROTECTION_PROFILE *p = SSL_get_selected_srtp_profile(d->ssl);
    uint8_t mat[2 * BOT_SRTP_MAX_KEY];
    size_t kl = 16, sl;
    uint8_t *cli, *srv;

    if (!p)
        return RTC_EUNSUP;
    if (p->id == SRTP_AEAD_AES_128_GCM) {
        k->profile = BOT_SRTP_AEAD_AES_128_GCM;
        sl = 12;
    } else if (p->id == SRTP_AES128_CM_SHA1_80) {
        k->profile = BOT_SRTP_AES128_CM_SHA1_80;
        sl = 14;
    } else {
        return RTC_EUNSUP;
    }
    if (SSL_export_keying_material(d->ssl, mat, 2 * (kl + sl), SRTP_LABEL, strlen(SRTP_LABEL),
                                   NULL, 0, 0) != 1)
        return RTC_EMSG;
    cli = d->client ? k->local : k->remote;
    srv = d->client ? k->remote : k->local;
    memcpy(cli, mat, kl);
    memcpy(srv, mat + kl, kl);
    memcpy(cli + kl, mat + 2 * kl, sl);
    memcpy(srv + kl, mat + 2 * kl + sl, sl);
    k->key_len = kl + sl;
    OPENSSL_cleanse(mat, sizeof mat);
    return 0;
}

static int check_peer(bot_dtls *d)
{
    X509 *peer = SSL_get1_peer_certificate(d->ssl);
    char fp[96];
    if (!peer)
        return RTC_EAUTH;
    fingerprint(peer, fp, sizeof fp);
    X509_free(peer);
    return g_ascii_strcasecmp(fp, d->remote_fp) == 0 ? 0 : RTC_EAUTH;
}

static void finish(bot_dtls *d, int err)
{
    bot_srtp_keys keys;
    memset(&keys, 0, sizeof keys);
    if (!err)
        err = check_peer(d);
    if (!err)
        err = export_keys(d, &keys);
    d->state = err ? ST_FAILED : ST_DONE;
    bot_timer_cancel(&d->timer);
    /* May free d: nothing touches d after this call. */
    d->cbs.done(d->cbs.ud, err, err ? NULL : &keys);
    OPENSSL_cleanse(&keys, sizeof keys);
}

/* Advance the handshake; after it completes, drain application data (none
 * is expected in DTLS-SRTP, but alerts arrive this way). */
static void step(bot_dtls *d)
{
    int rc, e;
    if (d->state == ST_HANDSHAKE) {
        rc = SSL_do_handshake(d->ssl);
        flush(d);
        if (rc == 1) {
            finish(d, 0);
            return;
        }
        e = SSL_get_error(d->ssl, rc);
        if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
            log_ssl_errors("handshake");
            finish(d, RTC_EMSG);
            return;
        }
        arm_timer(d);
    } else if (d->state == ST_DONE) {
        uint8_t junk[2048];
        while (SSL_read(d->ssl, junk, sizeof junk) > 0)
            ;
        flush(d);
    }
}

static gboolean on_timer(gpointer ud)
{
    bot_dtls *d = ud;
    bot_timer_fired(&d->timer);
    if (d->state == ST_HANDSHAKE) {
        if (DTLSv1_handle_timeout(d->ssl) < 0) {
            finish(d, RTC_EMSG);
            return G_SOURCE_REMOVE;
        }
        flush(d);
        arm_timer(d);
    }
    return G_SOURCE_REMOVE;
}

void bot_dtls_start(bot_dtls *d)
{
    if (d->state != ST_NEW)
        return;
    d->state = ST_HANDSHAKE;
    if (d->client)
        step(d);
}

void bot_dtls_recv(bot_dtls *d, const uint8_t *buf, size_t len)
{
    if (d->state == ST_NEW)
        d->state = ST_HANDSHAKE; /* a ClientHello may beat our own start */
    if (d->state == ST_FAILED || len > INT_MAX)
        return;
    BIO_write(d->rbio, buf, (int)len);
    step(d);
}
