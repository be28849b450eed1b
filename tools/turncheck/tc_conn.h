/* tc_conn.h - one blocking client transport to a TURN server for
 * tsunagu-turncheck: a connected UDP socket, a TCP stream or TLS over TCP
 * (RFC 8656 s.3.1), with every wait bounded by a deadline.
 *
 * Streams carry STUN and ChannelData frames back to back (RFC 8656 s.12.5);
 * tc_conn_recv cuts them with stn_frame_len and hands back exactly one frame,
 * so the caller sees the same thing over all three transports: one message
 * per call. This is the only turncheck file that touches OpenSSL's SSL
 * objects (the context comes from rtc_tls). Single-threaded. */
#ifndef TC_CONN_H
#define TC_CONN_H

#include <stddef.h>
#include <stdint.h>

#include "rtc_addr.h"
#include "rtc_tls.h"

typedef enum { TC_UDP, TC_TCP, TC_TLS } tc_proto;
/* "udp", "tcp" or "tls", as the check lines print it. */
const char *tc_proto_name(tc_proto p);

#define TC_FRAME_MAX 65600 /* a STUN message is at most 20 + 65532 bytes */

typedef struct tc_conn tc_conn; /* opaque */

typedef struct {
    tc_proto proto;
    rtc_addr server;
    const char *host; /* TLS: the name (or IP) the certificate must carry, and SNI */
    SSL_CTX *tls;     /* TLS: a client context (rtc_tls_client_new); borrowed */
    int timeout_ms;   /* connect and handshake bound */
} tc_conn_params;

/* Connect (TCP: the three-way handshake; TLS: and the TLS handshake with the
 * name check). NULL with the cause in why, worded for a person, e.g.
 * "connection refused (nothing listens on 127.0.0.1:3478/tcp)",
 * "no answer within 3000 ms", "TLS name mismatch: the certificate is not for
 * 'turn.example.org'", "TLS: certificate verify failed: ...". */
tc_conn *tc_conn_open(const tc_conn_params *p, char *why, size_t whylen);
void tc_conn_close(tc_conn *c); /* NULL is a no-op */

bool tc_conn_is_udp(const tc_conn *c);

/* The local address of the connection (the client's host address). */
void tc_conn_local(const tc_conn *c, rtc_addr *out);
/* "TLSv1.3 TLS_AES_256_GCM_SHA384" or "" for UDP/TCP. */
const char *tc_conn_tls_info(const tc_conn *c, char *buf, size_t len);

/* Send one whole message (STUN or padded ChannelData). 0 or -errno/RTC_EMSG. */
int tc_conn_send(tc_conn *c, const void *buf, size_t len);

/* Wait until deadline_ms (rtc_clock ms) for one frame. >0 its length in buf
 * (cap >= TC_FRAME_MAX), 0 on timeout, -ECONNREFUSED when UDP got ICMP port
 * unreachable, -EPIPE when the stream closed, other negative on error
 * (RTC_EMSG: bytes that cannot start a frame). */
long tc_conn_recv(tc_conn *c, uint8_t *buf, size_t cap, uint64_t deadline_ms);

#endif
