/* test_bot_tlsfwd.c - the turns: forwarder (bot/bot_tlsfwd.c) against
 * servers in this process on 127.0.0.1: a TLS echo server with a
 * certificate made here (IP SAN 127.0.0.1), a plain TCP server that
 * answers garbage, one that never answers, and a closed port.
 *
 * - 1 MiB each way through a 4 KiB buffer per direction (back-pressure on
 *   both sides, bytes compared), TLS 1.2+ and verified, once by IP (no
 *   SNI) and once by name ("localhost": SNI sent, DNS SAN checked);
 * - a server that stops reading: the forwarder stops taking bytes from
 *   libnice's side (whose writes then block) without spinning;
 * - untrusted certificate, wrong IP, wrong name, not-TLS, handshake timeout and
 *   connection refused each reported through the error callback naming
 *   the server and the reason, and the local side closed afterwards.
 * The GLib context is the main thread's; servers and the bulk client run
 * on their own threads. Everything is bounded in time. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <glib.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "bot_tlsfwd.h"
#include "rtc_clock.h"
#include "tap.h"

#define BULK (1024 * 1024)

/* tap.h names are plain strings; these carry the figures seen */
static char tname[1024];
#define okf(cond, ...) (snprintf(tname, sizeof tname, __VA_ARGS__), ok(cond, tname))
#define is_intf(got, want, ...) do { snprintf(tname, sizeof tname, __VA_ARGS__); is_int(got, want, tname); } while (0)

static EVP_PKEY *g_key;
static X509 *g_cert;
static char g_ca_path[64];

static double now_s(void) { return (double)rtc_clock_mono_ns() / 1e9; }

/* Self-signed P-256 certificate for IP 127.0.0.1, written to a PEM file
 * the forwarder can trust as its CA. */
static int make_cert(void)
{
    X509_NAME *n;
    X509V3_CTX v3;
    X509_EXTENSION *ext;
    FILE *f;
    int fd;

    g_key = EVP_EC_gen("P-256");
    g_cert = X509_new();
    if (!g_key || !g_cert)
        return -1;
    X509_set_version(g_cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(g_cert), 7);
    X509_gmtime_adj(X509_getm_notBefore(g_cert), -60);
    X509_gmtime_adj(X509_getm_notAfter(g_cert), 3600);
    X509_set_pubkey(g_cert, g_key);
    n = X509_get_subject_name(g_cert);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)"tlsfwd test", -1, -1, 0);
    X509_set_issuer_name(g_cert, n);
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, g_cert, g_cert, NULL, NULL, 0);
    ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, "IP:127.0.0.1,DNS:localhost");
    X509_add_ext(g_cert, ext, -1);
    X509_EXTENSION_free(ext);
    ext = X509V3_EXT_conf_nid(NULL, &v3, NID_basic_constraints, "critical,CA:TRUE");
    X509_add_ext(g_cert, ext, -1);
    X509_EXTENSION_free(ext);
    if (!X509_sign(g_cert, g_key, EVP_sha256()))
        return -1;
    snprintf(g_ca_path, sizeof g_ca_path, "/tmp/test_bot_tlsfwd_XXXXXX");
    fd = mkstemp(g_ca_path);
    if (fd < 0)
        return -1;
    f = fdopen(fd, "w");
    if (!f)
        return -1;
    PEM_write_X509(f, g_cert);
    fclose(f);
    return 0;
}

/* --- servers --- */

typedef enum { SRV_TLS_ECHO, SRV_TLS_STALL, SRV_GARBAGE, SRV_SILENT } srv_mode;

static volatile int g_release; /* SRV_TLS_STALL: stop stalling */

typedef struct {
    srv_mode mode;
    int lfd;
    uint16_t port;
    pthread_t th;
    long echoed;
    char sni[64];    /* server name the client sent, "" if none */
} server;

static int listen_any(uint16_t *port)
{
    struct sockaddr_in a;
    socklen_t al = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) || listen(fd, 4) ||
        getsockname(fd, (struct sockaddr *)&a, &al))
        return -1;
    *port = ntohs(a.sin_port);
    return fd;
}

static void *server_main(void *ud)
{
    server *s = ud;
    struct timeval tv = {5, 0};
    struct pollfd p = {s->lfd, POLLIN, 0};
    int fd;
    if (poll(&p, 1, 10000) != 1)
        return NULL;
    fd = accept(s->lfd, NULL, NULL);
    if (fd < 0)
        return NULL;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (s->mode == SRV_GARBAGE) {
        char b[512];
        (void)!read(fd, b, sizeof b);
        (void)!write(fd, "HTTP/1.0 400 Bad Request\r\n\r\n", 28);
        while (read(fd, b, sizeof b) > 0)
            ;
    } else if (s->mode == SRV_SILENT) {
        char b[512];
        while (read(fd, b, sizeof b) > 0)
            ;
    } else {
        SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
        SSL *ssl;
        char b[8192];
        int n;
        SSL_CTX_use_certificate(ctx, g_cert);
        SSL_CTX_use_PrivateKey(ctx, g_key);
        ssl = SSL_new(ctx);
        SSL_set_fd(ssl, fd);
        if (SSL_accept(ssl) == 1) {
            const char *sn = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
            snprintf(s->sni, sizeof s->sni, "%s", sn ? sn : "");
        }
        if (s->mode == SRV_TLS_STALL)
            for (int i = 0; i < 1000 && !g_release; i++)
                usleep(10000); /* handshake done, then never read */
        else if (SSL_is_init_finished(ssl))
            while ((n = SSL_read(ssl, b, sizeof b)) > 0) {
                if (SSL_write(ssl, b, n) != n)
                    break;
                s->echoed += n;
            }
        SSL_free(ssl);
        SSL_CTX_free(ctx);
    }
    close(fd);
    return NULL;
}

static int server_start(server *s, srv_mode mode)
{
    memset(s, 0, sizeof *s);
    s->mode = mode;
    s->lfd = listen_any(&s->port);
    if (s->lfd < 0)
        return -1;
    return pthread_create(&s->th, NULL, server_main, s);
}

static void server_join(server *s)
{
    pthread_join(s->th, NULL);
    close(s->lfd);
}

/* --- forwarder callbacks --- */

typedef struct {
    int errors, secured;
    char last[800], desc[128];
} result;

static void on_error(void *ud, const char *msg)
{
    result *r = ud;
    r->errors++;
    snprintf(r->last, sizeof r->last, "%s", msg);
}

static void on_secured(void *ud, const char *desc)
{
    result *r = ud;
    r->secured++;
    snprintf(r->desc, sizeof r->desc, "%s", desc);
}

static int connect_local(uint16_t port)
{
    struct sockaddr_in a;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a)) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

static void spin(volatile int *until, double secs)
{
    double end = now_s() + secs;
    while (!*until && now_s() < end)
        g_main_context_iteration(NULL, FALSE), usleep(1000);
}

/* --- bulk client: 1 MiB out, 1 MiB back, compared --- */

typedef struct {
    uint16_t port;
    volatile int done;
    long sent, got;
    int ok;
} bulk;

static uint8_t pattern(long i) { return (uint8_t)(i * 131 + (i >> 9)); }

static void *bulk_main(void *ud)
{
    bulk *b = ud;
    int fd = connect_local(b->port);
    uint8_t buf[16384];
    double end = now_s() + 20;
    b->ok = 1;
    if (fd < 0) {
        b->ok = 0;
        b->done = 1;
        return NULL;
    }
    while (b->got < BULK && now_s() < end) {
        struct pollfd p = {fd, POLLIN | (b->sent < BULK ? POLLOUT : 0), 0};
        if (poll(&p, 1, 200) <= 0)
            continue;
        if (p.revents & POLLOUT) {
            size_t n = sizeof buf;
            ssize_t w;
            if ((long)n > BULK - b->sent)
                n = (size_t)(BULK - b->sent);
            for (size_t i = 0; i < n; i++)
                buf[i] = pattern(b->sent + (long)i);
            w = send(fd, buf, n, MSG_DONTWAIT | MSG_NOSIGNAL);
            if (w > 0)
                b->sent += w;
        }
        if (p.revents & (POLLIN | POLLHUP)) {
            ssize_t r = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
            if (r == 0)
                break;
            for (ssize_t i = 0; i < r; i++)
                if (buf[i] != pattern(b->got + i))
                    b->ok = 0;
            if (r > 0)
                b->got += r;
        }
    }
    close(fd);
    b->done = 1;
    return NULL;
}

static void test_bulk(bot_tls_ctx *ctx, const char *host)
{
    server s;
    result r = {0};
    bulk b = {0};
    pthread_t th;
    bot_tlsfwd_stats st;
    bot_tlsfwd_params p = {ctx, host, "127.0.0.1", 0, 5000, 4096};
    bool ip = bot_tls_host_is_ip(host);
    bot_tlsfwd_cbs cbs = {on_error, on_secured, &r};
    bot_tlsfwd *f;

    if (server_start(&s, SRV_TLS_ECHO)) {
        ok(0, "echo server");
        return;
    }
    p.port = s.port;
    f = bot_tlsfwd_new(&p, &cbs);
    ok(f != NULL && bot_tlsfwd_port(f) > 0, "forwarder listens on a local port");
    if (!f)
        return;
    b.port = bot_tlsfwd_port(f);
    pthread_create(&th, NULL, bulk_main, &b);
    spin(&b.done, 25);
    pthread_join(th, NULL);
    is_int(b.done, 1, "bulk client finished in time");
    okf(b.sent == BULK && b.got == BULK, "1 MiB each way through 4 KiB buffers (sent %ld, got %ld)",
       b.sent, b.got);
    ok(b.ok, "bytes came back unchanged and in order");
    is_intf(r.errors, 0, "no error reported (%s)", r.last);
    is_int(r.secured, 1, "one verified TLS session");
    okf(!strncmp(r.desc, "TLSv1.2", 7) || !strncmp(r.desc, "TLSv1.3", 7), "TLS 1.2+ (%s)", r.desc);
    /* the client closed: the forwarder must close its side too */
    {
        volatile int never = 0;
        double end = now_s() + 5;
        do {
            spin(&never, 0.05);
            bot_tlsfwd_get_stats(f, &st);
        } while (st.open && now_s() < end);
    }
    ok(st.accepted == 1 && st.secured == 1 && st.open == 0, "stats: 1 accepted, 1 secured, 0 open");
    ok(st.bytes_up == BULK && st.bytes_down == BULK, "stats count the bytes each way");
    bot_tlsfwd_free(f);
    server_join(&s);
    okf(s.echoed == BULK, "%s: server echoed 1 MiB", host);
    okf(!strcmp(s.sni, ip ? "" : host), "%s: SNI '%s' (none for an IP literal)", host, s.sni);
}

/* A server that stops reading: the forwarder must stop reading libnice
 * (bounded buffer, so the client's writes block) and must not spin on the
 * readable local socket meanwhile. */
static void test_stall(bot_tls_ctx *ctx)
{
    server s;
    result r = {0};
    bot_tlsfwd_params p = {ctx, "127.0.0.1", "127.0.0.1", 0, 5000, 4096};
    bot_tlsfwd_cbs cbs = {on_error, on_secured, &r};
    bot_tlsfwd *f;
    bot_tlsfwd_stats st;
    static uint8_t chunk[65536];
    long written = 0;
    uint64_t up_mid = 0;
    int busy = 0, fd;
    double t0, t;

    g_release = 0;
    if (server_start(&s, SRV_TLS_STALL)) {
        ok(0, "stall server");
        return;
    }
    p.port = s.port;
    f = bot_tlsfwd_new(&p, &cbs);
    fd = f ? connect_local(bot_tlsfwd_port(f)) : -1;
    ok(fd >= 0, "stall: connected");
    t0 = now_s();
    /* 3 s of writing as fast as the forwarder takes it; the last 0.5 s are
     * watched for progress and for dispatches. */
    while ((t = now_s() - t0) < 3.0 && fd >= 0 && written < 512L * 1024 * 1024) {
        ssize_t w = send(fd, chunk, sizeof chunk, MSG_DONTWAIT | MSG_NOSIGNAL);
        bool dispatched;
        if (w > 0)
            written += w;
        dispatched = g_main_context_iteration(NULL, FALSE);
        if (t >= 2.5) {
            if (!up_mid) {
                bot_tlsfwd_get_stats(f, &st);
                up_mid = st.bytes_up ? st.bytes_up : 1;
            }
            busy += dispatched;
        }
        usleep(1000);
    }
    bot_tlsfwd_get_stats(f, &st);
    okf(r.secured == 1 && st.bytes_up > 0, "stall: session up, %llu bytes went to the server",
        (unsigned long long)st.bytes_up);
    okf(st.bytes_up == up_mid, "stall: nothing more taken in the last 0.5 s (%llu then %llu)",
        (unsigned long long)up_mid, (unsigned long long)st.bytes_up);
    okf(written < 256L * 1024 * 1024, "stall: the client's writes blocked after %ld bytes", written);
    okf(busy < 50, "stall: loop quiet while blocked (%d dispatches in 0.5 s)", busy);
    g_release = 1;
    if (fd >= 0)
        close(fd);
    bot_tlsfwd_free(f);
    server_join(&s);
}

/* One connection that must fail: the reason must be reported, naming the
 * server, and the local side closed. */
static void expect_failure(const char *what, bot_tls_ctx *ctx, const char *host, srv_mode mode,
                           bool closed_port, const char *want)
{
    server s;
    result r = {0};
    bot_tlsfwd_params p = {ctx, host, "127.0.0.1", 0, 400, 0};
    bot_tlsfwd_cbs cbs = {on_error, on_secured, &r};
    bot_tlsfwd *f;
    char where[64], b[16];
    int fd;
    volatile int *errs = (volatile int *)&r.errors;

    if (closed_port) {
        int lfd = listen_any(&p.port); /* a port that was free a moment ago */
        close(lfd);
    } else if (server_start(&s, mode)) {
        okf(0, "%s: server", what);
        return;
    } else {
        p.port = s.port;
    }
    f = bot_tlsfwd_new(&p, &cbs);
    fd = f ? connect_local(bot_tlsfwd_port(f)) : -1;
    if (fd >= 0)
        (void)!write(fd, "\0\3\0\0", 4); /* libnice's first bytes would be an Allocate */
    spin(errs, 5);
    snprintf(where, sizeof where, "%s:%u", host, p.port);
    okf(r.errors >= 1 && strstr(r.last, want) && strstr(r.last, where),
       "%s: reported with the server and '%s' (%s)", what, want, r.last);
    is_intf(r.secured, 0, "%s: no session", what);
    {
        struct pollfd pf = {fd, POLLIN, 0};
        volatile int never = 0;
        double end = now_s() + 3;
        int got = -1;
        while (now_s() < end) {
            spin(&never, 0.02);
            if (poll(&pf, 1, 0) == 1) {
                got = (int)read(fd, b, sizeof b);
                break;
            }
        }
        okf(got == 0 || (got < 0 && errno == ECONNRESET), "%s: local side closed", what);
    }
    if (fd >= 0)
        close(fd);
    bot_tlsfwd_free(f);
    if (!closed_port)
        server_join(&s);
}

int main(void)
{
    char err[256];
    bot_tls_ctx *trust, *sys, *bad;

    ok(bot_tls_host_is_ip("127.0.0.1") && bot_tls_host_is_ip("::1") &&
           !bot_tls_host_is_ip("relay.example.com") && !bot_tls_host_is_ip("127.0.0.1.nip.io"),
       "IP literals told from names");
    bad = bot_tls_ctx_new("/nonexistent/ca.pem", false, err, sizeof err);
    okf(!bad && strstr(err, "/nonexistent/ca.pem"), "missing --turn-ca file refused (%s)", err);
    if (make_cert()) {
        ok(0, "test certificate");
        return done_testing();
    }
    trust = bot_tls_ctx_new(g_ca_path, false, err, sizeof err);
    sys = bot_tls_ctx_new(NULL, false, err, sizeof err);
    ok(trust && sys && bot_tls_ctx_verifies(trust), "contexts: test CA, system store");
    if (!trust || !sys)
        return done_testing();

    test_bulk(trust, "127.0.0.1");
    test_bulk(trust, "localhost"); /* a name: SNI and the DNS SAN checked */
    test_stall(trust);
    expect_failure("untrusted", sys, "127.0.0.1", SRV_TLS_ECHO, false, "certificate verify failed");
    expect_failure("wrong IP", trust, "127.0.0.2", SRV_TLS_ECHO, false, "IP address mismatch");
    expect_failure("wrong name", trust, "other.example", SRV_TLS_ECHO, false, "hostname mismatch");
    expect_failure("not TLS", trust, "127.0.0.1", SRV_GARBAGE, false, "TLS handshake failed");
    expect_failure("silent server", trust, "127.0.0.1", SRV_SILENT, false, "timed out");
    expect_failure("closed port", trust, "127.0.0.1", SRV_SILENT, true, "Connection refused");

    bot_tls_ctx_free(trust);
    bot_tls_ctx_free(sys);
    X509_free(g_cert);
    EVP_PKEY_free(g_key);
    unlink(g_ca_path);
    return done_testing();
}
