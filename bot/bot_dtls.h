/* bot_dtls.h - DTLS 1.2 handshake for DTLS-SRTP (RFC 5763, RFC 5764) over
 * whatever datagram path the caller provides (the ICE component).
 *
 * bot_dtls_ctx is process-wide: one self-signed ECDSA P-256 certificate made
 * at start (as browsers do) and its SHA-256 fingerprint for a=fingerprint.
 * bot_dtls is one handshake: OpenSSL runs over a pair of memory BIOs, the
 * caller feeds received datagrams in and gets datagrams to send through a
 * callback; retransmissions run from a GLib timer on the calling thread's
 * default main context. When the handshake ends, the peer certificate's fingerprint is
 * checked against the one signalled in SDP and the SRTP keys are exported.
 * OpenSSL is only included in bot_dtls.c. A bot_dtls is used by one thread
 * (its call's worker); the ctx is shared read-only. */
#ifndef BOT_DTLS_H
#define BOT_DTLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bot_srtp.h"

typedef struct bot_dtls_ctx bot_dtls_ctx;
typedef struct bot_dtls bot_dtls;

bot_dtls_ctx *bot_dtls_ctx_new(void); /* NULL on failure (logged) */
void bot_dtls_ctx_free(bot_dtls_ctx *c);
/* "AB:CD:..." upper-case SHA-256 of our certificate; owned by the ctx. */
const char *bot_dtls_ctx_fingerprint(const bot_dtls_ctx *c);

typedef struct {
    /* One datagram to send; borrowed, valid during the call. */
    void (*send)(void *ud, const uint8_t *buf, size_t len);
    /* Handshake over: err 0 with keys (the receiver may keep them; they are
     * wiped after the call returns), or an RTC_E* code and keys NULL. Called
     * once; the bot_dtls may be freed from inside it. */
    void (*done)(void *ud, int err, bot_srtp_keys *keys);
    void *ud;
} bot_dtls_cbs;

/* `client` per a=setup (active = DTLS client); `remote_fp` is the peer's
 * a=fingerprint value (sha-256), copied. NULL on failure. */
bot_dtls *bot_dtls_new(bot_dtls_ctx *c, bool client, const char *remote_fp,
                       const bot_dtls_cbs *cbs);
void bot_dtls_free(bot_dtls *d);

/* Begin: a client sends its ClientHello, a server waits. */
void bot_dtls_start(bot_dtls *d);
/* Feed one received DTLS datagram (first byte 20..63, RFC 7983). */
void bot_dtls_recv(bot_dtls *d, const uint8_t *buf, size_t len);
bool bot_dtls_is_done(const bot_dtls *d);

#endif
