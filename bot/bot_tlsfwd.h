/* bot_tlsfwd.h - TURN over TLS (RFC 8656 s.3.1, `turns:` URLs of RFC 7065)
 * for libnice, through a local TLS forwarder.
 *
 * libnice 0.1.21's NICE_RELAY_TYPE_TURN_TLS is not TLS in RFC 5245 mode: it
 * sends plain STUN over TCP (seen on the wire). So the bot hands libnice a
 * plain TURN-over-TCP server on 127.0.0.1:<ephemeral> and this forwarder
 * carries every connection libnice opens there to the real server inside a
 * real TLS 1.2+ client session (OpenSSL, certificate and host name or IP
 * verified). TURN over TCP frames its own messages (RFC 8656 s.10.1 /
 * RFC 6062), so the forwarder only moves bytes.
 *
 * One bot_tlsfwd per `turns:` server per ICE agent: it lives on the
 * thread-default GLib context of the thread that creates it (the call's
 * worker) and is used from that thread only, so no locking. The
 * bot_tls_ctx (trust store, OpenSSL SSL_CTX) is shared by every thread:
 * it is set up once before any worker starts and only read afterwards. */
#ifndef BOT_TLSFWD_H
#define BOT_TLSFWD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct bot_tls_ctx bot_tls_ctx;

/* ca_file: PEM bundle trusted instead of the system store (NULL: system
 * store). insecure: no certificate verification at all. NULL on failure
 * with a reason in err. */
bot_tls_ctx *bot_tls_ctx_new(const char *ca_file, bool insecure, char *err, size_t errlen);
void bot_tls_ctx_free(bot_tls_ctx *ctx);
bool bot_tls_ctx_verifies(const bot_tls_ctx *ctx);

typedef struct {
    /* A connection to the server failed (TCP connect, TLS handshake,
     * handshake timeout, or a TLS error later); `msg` names the server and
     * the reason, borrowed for the call. May fire more than once. */
    void (*error)(void *ud, const char *msg);
    /* A TLS handshake with the server completed; `desc` like
     * "TLSv1.3 TLS_AES_256_GCM_SHA384", borrowed. */
    void (*secured)(void *ud, const char *desc);
    void *ud;
} bot_tlsfwd_cbs;

typedef struct {
    const bot_tls_ctx *tls;
    const char *host;          /* as in the URL: SNI and verified name/IP */
    const char *ip;            /* numeric address to connect to */
    uint16_t port;
    uint32_t handshake_timeout_ms; /* 0: 10000 */
    size_t buf_cap;            /* per direction; 0: 64 KiB */
} bot_tlsfwd_params;

typedef struct bot_tlsfwd bot_tlsfwd;

/* Listens on 127.0.0.1:0 on the thread-default context. NULL on failure
 * (no callback fires). */
bot_tlsfwd *bot_tlsfwd_new(const bot_tlsfwd_params *p, const bot_tlsfwd_cbs *cbs);
/* Closes the listener and every connection; no callback fires after. NULL
 * is a no-op. */
void bot_tlsfwd_free(bot_tlsfwd *f);
/* The local port to give libnice as a TURN-over-TCP server. */
uint16_t bot_tlsfwd_port(const bot_tlsfwd *f);

typedef struct {
    uint64_t accepted, secured, failed, open;
    uint64_t bytes_up, bytes_down; /* plaintext: to the server, from it */
} bot_tlsfwd_stats;

void bot_tlsfwd_get_stats(const bot_tlsfwd *f, bot_tlsfwd_stats *out);

/* True when `host` is an IPv4 or IPv6 literal (no SNI then, and the
 * certificate is checked for an IP address SAN). */
bool bot_tls_host_is_ip(const char *host);

#endif
