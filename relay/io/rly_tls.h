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
void rly_tls_free(rly_tls *t); /* live connections keep working */

rly_tls_conn *rly_tls_conn_new(rly_tls *t, int fd); /* NULL on failure */
void rly_tls_conn_free(rly_tls_conn *c);
/* >0 bytes, 0 closed by the peer, -EAGAIN, -EIO. Drives the handshake. */
long rly_tls_read(rly_tls_conn *c, uint8_t *buf, size_t n);
/* >0 bytes written, -EAGAIN, -EIO. */
long rly_tls_write(rly_tls_conn *c, const uint8_t *buf, size_t n);
/* The handshake has finished (the connection no longer counts as one). */
bool rly_tls_handshake_done(const rly_tls_conn *c);

#endif
