/* tc_conn.c - the blocking client transport of tsunagu-turncheck (see
 * tc_conn.h). Sockets are non-blocking underneath and every wait is a poll()
 * bounded by the caller's deadline, so no step can hang on a silent server. */
#include "tc_conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rtc_clock.h"
#include "rtc_err.h"
#include "stn_frame.h"

struct tc_conn {
    tc_proto proto;
    int fd;
    SSL *ssl;
    X509 *cert;               /* TLS: the server's leaf certificate, seen in verify_cb */
    size_t in_len;            /* stream: bytes buffered in in[] */
    uint8_t in[TC_FRAME_MAX]; /* stream: received, not yet handed out */
};

const char *tc_proto_name(tc_proto p)
{
    switch (p) {
    case TC_UDP:
        return "udp";
    case TC_TCP:
        return "tcp";
    default:
        return "tls";
    }
}

static int wait_fd(int fd, short ev, uint64_t deadline_ms)
{
    for (;;) {
        uint64_t now = rtc_clock_mono_ms();
        if (now >= deadline_ms)
            return 0;
        struct pollfd p = {.fd = fd, .events = ev};
        int n = poll(&p, 1, (int)(deadline_ms - now));
        if (n > 0)
            return 1;
        if (n < 0 && errno != EINTR)
            return -errno;
    }
}

/* The subjectAltName entries of the server's certificate, "DNS:a, IP:b", so
 * a name mismatch says which names the server does have. */
static const char *cert_names(X509 *x, char *out, size_t cap)
{
    GENERAL_NAMES *gn = x ? X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL) : NULL;
    size_t used = 0;

    snprintf(out, cap, "no subjectAltName");
    for (int i = 0; gn && i < sk_GENERAL_NAME_num(gn) && used + 1 < cap; i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(gn, i);
        char ip[INET6_ADDRSTRLEN] = "?";
        int n = 0;
        if (g->type == GEN_DNS)
            n = snprintf(out + used, cap - used, "%sDNS:%.*s", used ? ", " : "",
                         ASN1_STRING_length(g->d.dNSName),
                         (const char *)ASN1_STRING_get0_data(g->d.dNSName));
        else if (g->type == GEN_IPADD) {
            int l = ASN1_STRING_length(g->d.iPAddress);
            if (l == 4 || l == 16)
                inet_ntop(l == 4 ? AF_INET : AF_INET6, ASN1_STRING_get0_data(g->d.iPAddress),
                          ip, sizeof ip);
            n = snprintf(out + used, cap - used, "%sIP:%s", used ? ", " : "", ip);
        }
        if (n > 0)
            used += (size_t)n < cap - used ? (size_t)n : cap - used - 1;
    }
    GENERAL_NAMES_free(gn);
    return out;
}

/* Keeps the leaf certificate: after a failed verification OpenSSL does not
 * hand it out any more, and the mismatch message wants its names. Changes
 * no verdict. */
static int verify_cb(int ok, X509_STORE_CTX *x)
{
    SSL *ssl = X509_STORE_CTX_get_ex_data(x, SSL_get_ex_data_X509_STORE_CTX_idx());
    tc_conn *c = ssl ? SSL_get_app_data(ssl) : NULL;
    X509 *cert = X509_STORE_CTX_get_current_cert(x);
    if (c && !c->cert && cert && X509_STORE_CTX_get_error_depth(x) == 0 && X509_up_ref(cert))
        c->cert = cert;
    return ok;
}

/* TLS handshake, bounded. On a verification failure the cause names what
 * did not match, since that is what an operator has to fix. */
static int tls_handshake(tc_conn *c, const tc_conn_params *p, uint64_t deadline, char *why,
                         size_t whylen)
{
    struct in6_addr ip;
    bool is_ip = inet_pton(AF_INET, p->host, &ip) == 1 || inet_pton(AF_INET6, p->host, &ip) == 1;

    if (!(c->ssl = SSL_new(p->tls)) || !SSL_set_fd(c->ssl, c->fd)) {
        snprintf(why, whylen, "TLS: cannot create a connection");
        return -1;
    }
    SSL_set_app_data(c->ssl, c);
    SSL_set_verify(c->ssl, SSL_get_verify_mode(c->ssl), verify_cb);
    /* RFC 6125: a name is checked against DNS SANs, an IP against IP SANs;
     * SNI carries names only (RFC 6066 s.3). */
    if (is_ip ? !X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), p->host)
              : !SSL_set1_host(c->ssl, p->host) || !SSL_set_tlsext_host_name(c->ssl, p->host)) {
        snprintf(why, whylen, "TLS: cannot set the expected name '%s'", p->host);
        return -1;
    }
    for (;;) {
        int r = SSL_connect(c->ssl);
        if (r == 1)
            return 0;
        int e = SSL_get_error(c->ssl, r);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
            int w = wait_fd(c->fd, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline);
            if (w > 0)
                continue;
            snprintf(why, whylen, "TLS handshake: no answer within %d ms", p->timeout_ms);
            return -1;
        }
        long v = SSL_get_verify_result(c->ssl);
        if (v == X509_V_ERR_HOSTNAME_MISMATCH || v == X509_V_ERR_IP_ADDRESS_MISMATCH) {
            char names[200];
            snprintf(why, whylen, "TLS name mismatch: the certificate is not for '%s' (it names %s)",
                     p->host, cert_names(c->cert, names, sizeof names));
        }
        else if (v != X509_V_OK)
            snprintf(why, whylen, "TLS: certificate verify failed: %s",
                     X509_verify_cert_error_string(v));
        else {
            unsigned long oe = ERR_peek_last_error();
            char buf[200] = "connection closed during the handshake";
            if (oe)
                ERR_error_string_n(oe, buf, sizeof buf);
            snprintf(why, whylen, "TLS handshake failed: %s", buf);
        }
        ERR_clear_error();
        return -1;
    }
}

tc_conn *tc_conn_open(const tc_conn_params *p, char *why, size_t whylen)
{
    struct sockaddr_storage ss;
    socklen_t sl = rtc_addr_to_sockaddr(&p->server, &ss);
    char as[RTC_ADDR_STRLEN];
    uint64_t deadline = rtc_clock_mono_ms() + (uint64_t)p->timeout_ms;
    tc_conn *c = calloc(1, sizeof *c);

    rtc_addr_format(&p->server, true, as);
    if (!c) {
        snprintf(why, whylen, "out of memory");
        return NULL;
    }
    c->proto = p->proto;
    c->fd = socket(p->server.family, (p->proto == TC_UDP ? SOCK_DGRAM : SOCK_STREAM) |
                                         SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        snprintf(why, whylen, "socket: %s", strerror(errno));
        goto out_free;
    }
    if (connect(c->fd, (struct sockaddr *)&ss, sl) && errno != EINPROGRESS) {
        snprintf(why, whylen, "connect to %s/%s: %s", as, tc_proto_name(p->proto), strerror(errno));
        goto out_close_fd;
    }
    if (p->proto == TC_UDP)
        return c;
    int w = wait_fd(c->fd, POLLOUT, deadline), err = 0;
    socklen_t el = sizeof err;
    if (w <= 0) {
        snprintf(why, whylen, "no answer from %s/%s within %d ms (a firewall dropping packets?)",
                 as, tc_proto_name(p->proto), p->timeout_ms);
        goto out_close_fd;
    }
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el) || err) {
        if (err == ECONNREFUSED)
            snprintf(why, whylen, "no answer on the port: connection refused (nothing listens on "
                                  "%s/%s)", as, tc_proto_name(p->proto));
        else
            snprintf(why, whylen, "connect to %s/%s: %s", as, tc_proto_name(p->proto),
                     strerror(err));
        goto out_close_fd;
    }
    if (p->proto == TC_TLS && tls_handshake(c, p, deadline, why, whylen))
        goto out_close_fd;
    return c;

out_close_fd:
    X509_free(c->cert);
    SSL_free(c->ssl);
    close(c->fd);
out_free:
    free(c);
    return NULL;
}

void tc_conn_close(tc_conn *c)
{
    if (!c)
        return;
    if (c->ssl) {
        SSL_shutdown(c->ssl); /* best effort close_notify; no wait for the answer */
        SSL_free(c->ssl);
    }
    X509_free(c->cert);
    close(c->fd);
    free(c);
}

bool tc_conn_is_udp(const tc_conn *c) { return c->proto == TC_UDP; }

void tc_conn_local(const tc_conn *c, rtc_addr *out)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    memset(out, 0, sizeof *out);
    if (!getsockname(c->fd, (struct sockaddr *)&ss, &sl))
        rtc_addr_from_sockaddr(out, (struct sockaddr *)&ss);
}

const char *tc_conn_tls_info(const tc_conn *c, char *buf, size_t len)
{
    if (!c->ssl)
        buf[0] = '\0';
    else
        snprintf(buf, len, "%s %s", SSL_get_version(c->ssl), SSL_get_cipher_name(c->ssl));
    return buf;
}

/* Write all of buf; the stream is non-blocking, so wait (bounded) on a full
 * socket buffer. */
int tc_conn_send(tc_conn *c, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    uint64_t deadline = rtc_clock_mono_ms() + 5000;

    if (c->proto == TC_UDP)
        return send(c->fd, buf, len, 0) < 0 ? -errno : 0;
    while (len) {
        size_t w = 0;
        int again = 0;
        if (c->ssl) {
            if (SSL_write_ex(c->ssl, p, len, &w) != 1) {
                int e = SSL_get_error(c->ssl, 0);
                ERR_clear_error();
                if (e != SSL_ERROR_WANT_WRITE && e != SSL_ERROR_WANT_READ)
                    return -EPIPE;
                again = e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
            }
        } else {
            ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
            if (n < 0 && errno != EAGAIN && errno != EINTR)
                return -errno;
            if (n < 0)
                again = POLLOUT;
            else
                w = (size_t)n;
        }
        if (again && wait_fd(c->fd, (short)again, deadline) <= 0)
            return -ETIMEDOUT;
        p += w;
        len -= w;
    }
    return 0;
}

/* Hand out the first complete frame in the stream buffer, if any. */
static long take_frame(tc_conn *c, uint8_t *buf, size_t cap)
{
    long fl = c->in_len ? stn_frame_len(c->in, c->in_len) : 0;
    if (fl < 0)
        return RTC_EMSG;
    if (fl == 0 || (size_t)fl > c->in_len)
        return 0;
    if ((size_t)fl > cap)
        return RTC_ESPACE;
    memcpy(buf, c->in, (size_t)fl);
    memmove(c->in, c->in + fl, c->in_len - (size_t)fl);
    c->in_len -= (size_t)fl;
    return fl;
}

/* Read what the stream has now into in[]: >0 bytes, 0 nothing yet, <0 error
 * or end of stream. */
static long stream_read(tc_conn *c)
{
    size_t room = sizeof c->in - c->in_len, got = 0;
    if (!room)
        return RTC_EMSG; /* a frame longer than any STUN message */
    if (c->ssl) {
        if (SSL_read_ex(c->ssl, c->in + c->in_len, room, &got) == 1) {
            c->in_len += got;
            return (long)got;
        }
        int e = SSL_get_error(c->ssl, 0);
        ERR_clear_error();
        return e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE ? 0 : -EPIPE;
    }
    ssize_t n = recv(c->fd, c->in + c->in_len, room, 0);
    if (n > 0) {
        c->in_len += (size_t)n;
        return n;
    }
    if (n == 0)
        return -EPIPE;
    return errno == EAGAIN || errno == EINTR ? 0 : -errno;
}

long tc_conn_recv(tc_conn *c, uint8_t *buf, size_t cap, uint64_t deadline_ms)
{
    for (;;) {
        if (c->proto == TC_UDP) {
            ssize_t n = recv(c->fd, buf, cap, 0);
            if (n > 0)
                return n;
            if (n == 0) /* an empty datagram carries nothing: wait for the next */
                continue;
            if (errno != EAGAIN && errno != EINTR)
                return -errno; /* -ECONNREFUSED: ICMP port unreachable */
        } else {
            long f = take_frame(c, buf, cap);
            if (f)
                return f;
            long r = stream_read(c);
            if (r < 0)
                return r;
            if (r > 0 || (c->ssl && SSL_pending(c->ssl)))
                continue;
        }
        int w = wait_fd(c->fd, POLLIN, deadline_ms);
        if (w <= 0)
            return w;
    }
}
