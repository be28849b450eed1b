/* rly_tls.h - TURN over TLS (RFC 8656 s.3.1): the relay's only OpenSSL
 * adapter for TLS. A server context is loaded from --cert/--key and can be
 * replaced on SIGHUP; connections made before a reload keep the context
 * they started with (OpenSSL counts the references). Non-blocking: reads
 * and writes report -EAGAIN and the worker retries on the next event.
 * Used by one worker thread at a time. */
#ifndef RLY_TLS_H
#define RLY_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct rly_tls rly_tls;           /* server context */
typedef struct rly_tls_conn rly_tls_conn; /* one connection */

/* NULL with a reason naming the file in err. */
rly_tls *rly_tls_new(const char *cert, const char *key, char *err, size_t errlen);
/* ktls: set SSL_OP_ENABLE_KTLS (--ktls); OpenSSL hands the records to the
 * kernel after the handshake when its tls module and the suite allow it,
 * and keeps them in user space otherwise (rly_tls_conn_ktls says which). */
rly_tls *rly_tls_new_opts(const char *cert, const char *key, bool ktls, char *err,
                          size_t errlen);
/* Drops the owner's reference: live connections keep working (each holds
 * one) and the last to go frees it. */
void rly_tls_free(rly_tls *t);

rly_tls_conn *rly_tls_conn_new(rly_tls *t, int fd); /* NULL on failure */
void rly_tls_conn_free(rly_tls_conn *c);
/* >0 bytes, 0 closed by the peer, -EAGAIN, -EIO. Drives the handshake.
 * *drained: bytes came back and the socket was emptied on the way (no need
 * to read again for an EAGAIN under edge-triggered epoll). */
long rly_tls_read(rly_tls_conn *c, uint8_t *buf, size_t n, bool *drained);
/* >0 bytes written, -EAGAIN, -EIO. */
long rly_tls_write(rly_tls_conn *c, const uint8_t *buf, size_t n);
/* The handshake has finished (the connection no longer counts as one). */
bool rly_tls_handshake_done(const rly_tls_conn *c);
/* The connection carries media (it has an allocation): keep OpenSSL's
 * record buffers between messages instead of freeing them when idle. */
void rly_tls_conn_busy(rly_tls_conn *c);
/* RLY_KTLS_SEND | RLY_KTLS_RECV: the kernel does the records (set when the
 * handshake ends; 0 before, and when kTLS is off or unavailable). */
#define RLY_KTLS_SEND 1
#define RLY_KTLS_RECV 2
int rly_tls_conn_ktls(const rly_tls_conn *c);

#endif
