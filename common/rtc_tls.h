/* rtc_tls.h - TLS context setup shared by the three programs that speak
 * TLS over TCP: the relay (server, TURN over TLS, RFC 8656 s.3.1), the
 * bot's TLS forwarder and the load generator (clients).
 *
 * Only the SSL_CTX is built here; connections (SSL_new, the handshake,
 * non-blocking reads and writes) stay with each program's own adapter
 * (relay/io/rly_tls.c, bot/bot_tlsfwd.c, bench/turnload.c). What every
 * context gets:
 *   - TLS 1.2 at least (RFC 8656 s.3.1; nothing older is acceptable today);
 *   - SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER:
 *     the callers write from non-blocking sockets and may retry a partial
 *     write from a buffer that has moved.
 * Server: certificate chain and key from PEM files, the key checked against
 * the certificate, SSL_MODE_RELEASE_BUFFERS (an idle connection does not keep
 * ~50 KB of record buffers: many idle or half-open TLS clients must stay
 * cheap). Client: verification on (a CA file, or the system's default paths)
 * or explicitly off; RTC_TLS_IGNORE_EOF and RTC_TLS_RELEASE_BUFFERS on
 * request.
 *
 * The header names OpenSSL's SSL_CTX only as an incomplete type, so callers
 * that never touch OpenSSL otherwise need not include its headers. Errors
 * come back as text naming the file or the setting (`what`), with the
 * OpenSSL queue cleared. Thread-safe (no state of its own). */
#ifndef RTC_TLS_H
#define RTC_TLS_H

#include <stdbool.h>
#include <stddef.h>

typedef struct ssl_ctx_st SSL_CTX; /* OpenSSL's own typedef, repeated (C11 allows it) */

enum {
    /* A peer that closes TCP without close_notify has ended the session
     * (TURN framing has no use for a partial message), not been truncated
     * by an attacker: report it as a plain end of stream. */
    RTC_TLS_IGNORE_EOF = 1u << 0,
    RTC_TLS_RELEASE_BUFFERS = 1u << 1 /* clients; servers always set it */
};

/* A server context from a PEM certificate chain file and a PEM private key
 * file. NULL with the reason in err, one of (the relay's wording):
 *   "cannot create a TLS context"
 *   "cert: cannot load certificate chain from '<cert>'"
 *   "key: cannot load private key from '<key>'"
 *   "key: '<key>' does not match the certificate '<cert>'" */
SSL_CTX *rtc_tls_server_new(const char *cert, const char *key, char *err, size_t errlen);

typedef struct {
    bool verify;         /* check the server's certificate chain */
    const char *ca_file; /* PEM CA bundle; NULL = the system's default paths */
    const char *what;    /* setting named in CA errors, e.g. "turn-ca"; NULL = "ca" */
    unsigned flags;      /* RTC_TLS_* */
} rtc_tls_client_opts;

/* A client context. Host name or IP checks are per connection (SSL_set1_host
 * and friends) and stay with the caller. NULL with the reason in err:
 *   "<what>: cannot open <ca_file>: <errno text>"
 *   "<what>: cannot load <ca_file>: <OpenSSL reason>"
 *   "TLS client context: <OpenSSL reason>" */
SSL_CTX *rtc_tls_client_new(const rtc_tls_client_opts *o, char *err, size_t errlen);

/* SSL_CTX_free; NULL is a no-op. Connections made from the context keep
 * their own reference (OpenSSL counts them), so this is safe while they live. */
void rtc_tls_ctx_free(SSL_CTX *ctx);

#endif
