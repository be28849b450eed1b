/* rly_takeover.h - live takeover of a running relay by a new process
 * (SIGUSR2, docs/relay.md "Live upgrade"): the state blob both sides speak,
 * and the messages on the AF_UNIX SOCK_SEQPACKET socketpair between them.
 *
 * The old process (the parent) pauses its workers at a loop boundary and
 * sends every listening socket (UDP, TCP, TLS, metrics) and the relayed
 * sockets of its UDP allocations with SCM_RIGHTS, plus this blob: the
 * layout (workers, listen addresses) and, per worker, the UDP allocations
 * as plain data. Socket references in the blob are indexes into the array
 * of received descriptors. Monotonic times travel as signed offsets from
 * the sender's "now", so the receiver never depends on sharing a clock.
 *
 * The receiver (the child) treats the blob as untrusted input: everything
 * goes through rtc_rd, every count and length is bounded, every descriptor
 * index must be below the number received and is used at most once.
 *
 * Pure code (no sockets, no clock) except the rly_to_msg_* helpers at the
 * end. Owned by the main thread of either process. */
#ifndef RLY_TAKEOVER_H
#define RLY_TAKEOVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rly_alloc.h"
#include "rtc_addr.h"

#define RLY_TO_VERSION 1
#define RLY_TO_NONE 0xFFFFFFFFu /* "no descriptor" in an index field */
/* bounds the parser enforces (the relay's own limits are lower) */
#define RLY_TO_MAX_WORKERS 1024
#define RLY_TO_MAX_LISTEN 64
#define RLY_TO_MAX_ALLOCS 2000000u     /* per worker */
#define RLY_TO_MAX_FDS 4200000u        /* listeners + two per allocation */
#define RLY_TO_MAX_BLOB (1u << 30)     /* bytes */
#define RLY_TO_MAX_OFFSET_MS (86400000LL * 30) /* |expiry - now| of any timer */
/* SCM_MAX_FD in the kernel: descriptors per message */
#define RLY_TO_FDS_PER_MSG 253
/* every step of the exchange must finish within this */
#define RLY_TO_STEP_MS 10000
/* environment variable naming the child's end of the socketpair */
#define RLY_TO_ENV "TSUNAGU_TAKEOVER_FD"

typedef struct {
    /* descriptor indexes, n_listen (resp. n_tls) of each */
    uint32_t *udp, *tcp, *tls;
    uint32_t n_allocs;
    /* UDP allocations; relay_fd / relay_fd2 hold descriptor indexes (-1 =
     * none), times are the receiver's (or sender's) monotonic ms */
    rly_alloc *allocs;
    /* writer only, instead of allocs: the live allocations themselves
     * (borrowed) and their descriptor indexes, two per allocation (the
     * second -1 = none), so the sender copies no allocation */
    const rly_alloc **src;
    int32_t *src_fd;
} rly_to_worker;

typedef struct {
    uint32_t n_workers, n_listen, n_tls, n_fds;
    rtc_addr *listen, *tls; /* n_listen / n_tls */
    rtc_addr metrics;       /* family 0 = none */
    uint32_t metrics_fd;    /* index or RLY_TO_NONE */
    uint8_t nonce_key[32];
    uint64_t takeovers_ok, takeovers_failed; /* carried so /metrics keeps them */
    rly_to_worker *w;       /* n_workers */
} rly_to_state;

/* Allocate the arrays of a state of this shape (zeroed; allocs left NULL).
 * 0 or -ENOMEM. */
int rly_to_state_init(rly_to_state *s, uint32_t n_workers, uint32_t n_listen, uint32_t n_tls);
/* Frees the arrays (allocs, src, src_fd included); no descriptor is closed. */
void rly_to_state_dispose(rly_to_state *s);

/* Serialize s with times relative to now_ms into a malloc'd buffer. 0 or
 * -ENOMEM / RTC_ELIMIT (too large). */
int rly_to_write(const rly_to_state *s, uint64_t now_ms, uint8_t **out, size_t *len);
/* Parse an untrusted blob into s (times made absolute against now_ms);
 * n_fds_got is the number of descriptors actually received. 0, or RTC_EMSG
 * with the reason in err (s is then disposed). */
int rly_to_parse(const uint8_t *buf, size_t len, uint32_t n_fds_got, uint64_t now_ms,
                 rly_to_state *s, char *err, size_t errlen);

/* The descriptors to send, in index order (the sender keeps owning them). */
typedef struct {
    int *v;
    uint32_t n, cap;
} rly_to_fds;
/* Append fd; its index, or -ENOMEM. */
int rly_to_fds_push(rly_to_fds *f, int fd);

/* ---- messages on the socketpair (SOCK_SEQPACKET: one send, one message) ----
 * child -> parent  HELO u16 version
 * parent -> child  SIZE u32 blob bytes, u32 descriptors
 *                  FDS_ u32 n, with n (<= 253) descriptors, until all are sent
 *                  BLOB bytes (<= 64 KiB each), until all are sent
 * child -> parent  ACK_ | NAK_ reason text
 * parent -> child  GO__  (the parent has stopped reading; the child runs) */
#define RLY_TO_CHUNK 65536

/* Send one message: 4-byte tag + payload, with fds attached (n_fds <=
 * RLY_TO_FDS_PER_MSG). 0 or -errno. */
int rly_to_msg_send(int sock, const char tag[4], const void *p, size_t n, const int *fds,
                    size_t n_fds);
/* Receive one message within deadline_ms (monotonic): tag, payload into
 * buf (cap bytes; longer is an error), descriptors (CLOEXEC) into fds (up to
 * fds_cap; more or a truncated control message is an error, and whatever
 * arrived is closed). Returns the payload length, or -errno (-ETIMEDOUT,
 * -EPIPE at end of stream, -EMSGSIZE). */
long rly_to_msg_recv(int sock, char tag[4], void *buf, size_t cap, int *fds, size_t fds_cap,
                     size_t *n_fds, uint64_t deadline_ms);

#endif
