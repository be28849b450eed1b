/* rly_turn.h - the TURN protocol engine of one worker (RFC 8656, RFC 8489,
 * RFC 6156): takes the bytes a client sent on a 5-tuple, answers requests,
 * moves data between clients and peers.
 *
 * No I/O of its own: the worker passes packets in and gets the response
 * bytes back; relayed sockets are opened, closed and written through the
 * rly_io callbacks, so unit tests drive the whole engine with crafted STUN
 * bytes and a fake socket layer. The configuration (rly_cfg) is immutable
 * and swapped whole on SIGHUP; the allocation table and counters belong to
 * the worker thread that owns this engine.
 *
 * Where it lives: rly_turn.c the lifecycle (init, dispose, release, sweep);
 * rly_dispatch.c rly_turn_input and the checks before each request handler
 * (rly_allocate.c, rly_perm.c); rly_send.c the data path both ways. */
#ifndef RLY_TURN_H
#define RLY_TURN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rly_alloc.h"
#include "rly_auth.h"
#include "rly_chandata.h"
#include "rly_quota.h"
#include "rtc_addr.h"
#include "rtc_log.h"

/* Settings that SIGHUP may change. */
typedef struct {
    uint32_t default_lifetime_s, max_lifetime_s;
    uint64_t max_allocs, max_allocs_per_user; /* per user: 0 = no cap */
    uint64_t max_allocs_per_rest_id;          /* REST credentials' ID, 0 = no cap */
    uint64_t bandwidth; /* bytes/s per allocation, 0 = none */
    uint32_t nonce_ttl_s;
    bool legacy_channels; /* ChannelBind accepts 0x5000-0x7FFF (RFC 5766) */
    uint32_t max_tcp_per_ip;     /* TCP/TLS connections per source (rly_iplimit.h) */
    uint32_t max_preauth_per_ip; /* of those, without an allocation yet (0: no cap) */
    uint32_t tcp_auth_timeout_s; /* a stream must authenticate within this */
    uint32_t max_tls_handshakes, max_tls_handshakes_per_ip; /* in progress (rly_iplimit.h) */
} rly_limits;

/* Immutable configuration; owned by main, borrowed by workers. */
typedef struct {
    rly_auth *auth;
    rtc_peer_policy *policy;
    rly_limits lim;
    rtc_addr relay_ip[2]; /* [0] IPv4, [1] IPv6; family 0 = not available */
    rtc_addr advertise[2]; /* what XOR-RELAYED-ADDRESS carries per family */
    /* relayed family of an Allocate without REQUESTED-ADDRESS-FAMILY:
     * AF_INET (RFC 8656 s.7.2), AF_INET6, or 0 = the client's own family
     * (browsers and libnice never send the attribute, so an IPv6-only
     * client would otherwise always get an IPv4 relayed address) */
    int default_family;
} rly_cfg;

enum {
    RLY_DROP_MALFORMED = 0, /* not STUN / ChannelData, bad FINGERPRINT */
    RLY_DROP_NO_ALLOCATION, /* data on a 5-tuple without allocation */
    RLY_DROP_NO_PERMISSION, /* peer without permission (either way) */
    RLY_DROP_NO_CHANNEL,    /* ChannelData on an unbound channel */
    RLY_DROP_BANDWIDTH,     /* over --bandwidth-per-allocation */
    RLY_DROP_SEND_ERROR,    /* the kernel refused to send */
    RLY_DROP_BACKPRESSURE,  /* a TCP/TLS client does not read fast enough */
    RLY_DROP_N
};
extern const char *const rly_drop_names[RLY_DROP_N];

/* Plain per-worker counters, summed by the metrics scrape. Written by the
 * worker thread only; the scraper reads them racily (monotonic u64s). */
typedef struct {
    uint64_t allocations_total, auth_failures, permission_denied;
    uint64_t pkts_c2p, pkts_p2c, bytes_c2p, bytes_p2c;
    uint64_t dropped[RLY_DROP_N];
} rly_stats;

/* What the engine asks of the socket layer. */
typedef struct {
    void *ctx;
    /* Open a relayed UDP socket on ip: the given port, or (port 0) one from
     * the relay range, even if asked; fill *bound. fd or -errno. */
    int (*relay_open)(void *ctx, const rtc_addr *ip, bool even, uint16_t port, rtc_addr *bound);
    /* Start delivering the socket's datagrams for allocation id. 0/-errno. */
    int (*relay_attach)(void *ctx, int fd, uint32_t id);
    void (*relay_close)(void *ctx, int fd, const rtc_addr *bound);
    /* Send from a relayed socket to a peer. 0 or -errno. */
    int (*send_peer)(void *ctx, int fd, const rtc_addr *peer, const uint8_t *data, size_t len);
    /* Set DF on a relayed socket (DONT-FRAGMENT, RFC 8656 s.7.2). 0/-errno;
     * NULL = not supported (such Allocates get 420). */
    int (*relay_dont_fragment)(int fd, int family);
} rly_io;

/* How long the odd port of an EVEN-PORT pair is held for a later Allocate
 * with its RESERVATION-TOKEN (RFC 8656 s.7.2, s.14.9). */
#define RLY_RESV_MS 30000u

typedef struct {
    const rly_cfg *cfg; /* borrowed; swapped by the worker on reload */
    rly_table *table;
    rly_quota *quota; /* borrowed: shared by all workers */
    rly_stats stats;
    rly_io io;
    uint8_t nonce_key[32]; /* per process, survives reloads */
    bool draining;         /* SIGTERM: new Allocate requests get 403 */
    uint32_t ind_seq;      /* transaction ids of Data indications */
    rtc_log_ratelimit warn_rl; /* warnings an attacker could trigger */
    uint32_t worker;           /* index of the owning worker: public ids (rly_alloc) */
    uint64_t now_us;           /* the loop's clock (µs): RTP arrival times for rly_rtpq */
    rly_rtpq_shard qshard;     /* this worker's share of the stream histograms */
} rly_turn;

/* quota is shared and borrowed; nonce_key (32 bytes) is shared by all
 * workers so any of them accepts a nonce another made. 0 or -ENOMEM. */
int rly_turn_init(rly_turn *t, const rly_cfg *cfg, const rly_io *io, rly_quota *quota,
                  const uint8_t nonce_key[32]);
/* Closes every relayed socket and frees the table. */
void rly_turn_dispose(rly_turn *t);

/* Bytes from a client on a 5-tuple (one datagram, or one framed message
 * from a stream). conn is the TCP/TLS connection index, -1 for UDP. */
typedef struct {
    const rly_tuple *tuple;
    int conn;
    const uint8_t *buf;
    size_t len;
    uint64_t now_ms; /* monotonic */
    uint64_t wall_s; /* unix time: nonces, REST credential expiry */
} rly_input;

/* Stream framing (RFC 8656 s.3.1) with rly_is_channel's range: bytes of the
 * next frame (>0), 0 = need more bytes, <0 = not a TURN stream. */
long rly_frame_len(const uint8_t *buf, size_t len);

#define RLY_RESP_MAX 1024 /* every response the engine builds fits */

/* Handle one client message; writes the response (if any) to out and
 * returns its length, 0 when nothing is to be sent back. */
size_t rly_turn_input(rly_turn *t, const rly_input *in, uint8_t *out, size_t cap);

/* Headroom the worker keeps before a peer datagram so the engine can put a
 * ChannelData or Data-indication header in front without copying. */
#define RLY_HEADROOM 64

/* A datagram from peer arrived on allocation a's relayed socket at
 * buf[RLY_HEADROOM .. RLY_HEADROOM+len) (buf has 4 spare bytes after it).
 * Returns the frame to send to the client (a pointer into buf) and its
 * length in *out_len, or NULL to drop. */
const uint8_t *rly_turn_from_peer(rly_turn *t, rly_alloc *a, const rtc_addr *peer,
                                  uint8_t *buf, size_t len, uint64_t now_ms, size_t *out_len);

/* Release the allocation on a 5-tuple (TCP connection closed). */
void rly_turn_tuple_gone(rly_turn *t, const rly_tuple *tu);
/* Release expired allocations, purge expired permissions and channels. */
void rly_turn_sweep(rly_turn *t, uint64_t now_ms);
/* Release one allocation (closes its relayed sockets). */
void rly_turn_release(rly_turn *t, rly_alloc *a, const char *why);
/* rly_turn_json.c, for the admin API: append the allocations as JSON
 * objects separated by commas (no brackets) to b; release the allocation
 * whose public id is "<t->worker>.<serial>" (false when there is none). */
void rly_turn_list_json(const rly_turn *t, rtc_buf *b, uint64_t now_ms);
bool rly_turn_release_serial(rly_turn *t, uint32_t serial, const char *why);
/* Delete the relayed address of family from a dual allocation (Refresh
 * with REQUESTED-ADDRESS-FAMILY and LIFETIME 0, RFC 8656 s.8); the
 * allocation lives on with the other one. No-op on a single allocation. */
void rly_turn_release_family(rly_turn *t, rly_alloc *a, int family);

#endif
