/* rly_worker.h - one relay worker: an epoll loop that owns listening
 * sockets (UDP, TCP, TLS), client connections, relayed sockets and one
 * TURN engine (rly_turn) with its allocation table, and watches descriptors
 * of other modules for them (rly_worker_watch: the admin HTTP server).
 *
 * Everything a worker touches on the packet path is its own: no locks, no
 * shared counters, no heap allocation per packet (a fixed pool of receive
 * slots with headroom; recvmmsg in, sendmmsg out). Configuration is an immutable rly_cfg swapped in
 * between events (SIGHUP). SIGTERM drains: new Allocates are refused,
 * existing allocations relay until they end or the drain deadline passes.
 *
 * The process runs N workers, one thread each; with N > 1 the listening
 * sockets use SO_REUSEPORT, so the kernel keeps each client 5-tuple on one
 * worker. The main thread talks to a worker only through the rly_worker_post_*
 * calls (an eventfd and a mailbox); the only state workers share is the
 * quota (rly_quota.h), touched on Allocate and release. */
#ifndef RLY_WORKER_H
#define RLY_WORKER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rly_iplimit.h"
#include "rly_ports.h"
#include "rly_takeover.h"
#include "rly_tls.h"
#include "rly_turn.h"
#include "rtc_addr.h"

typedef struct rly_worker rly_worker; /* opaque */

typedef struct {
    const rly_cfg *cfg;
    const rtc_addr *listen; /* UDP + TCP each */
    size_t n_listen;
    const rtc_addr *tls_listen;
    size_t n_tls_listen;
    rly_tls *tls;           /* borrowed; required when n_tls_listen > 0 */
    rly_ports *ports;        /* shared relayed-port pool */
    bool reuseport;          /* several workers share the listening ports */
    bool first;              /* the first worker made (checks the ports are free) */
    uint32_t index;          /* 0.. in the process: public allocation ids "index.serial" */
    rly_quota *quota;        /* shared */
    rly_iplimit *iplimit;    /* shared: TCP/TLS connections per source */
    const uint8_t *nonce_key; /* 32 bytes, shared */
    /* live takeover (child side): the listening sockets are descriptors of
     * adopt_fds named by adopt instead of new ones; each one taken is set to
     * -1 there (the worker owns it, even when rly_worker_new fails) */
    const rly_to_worker *adopt;
    int *adopt_fds;
} rly_worker_params;

/* Opens every socket; NULL with a reason naming the address in err. */
rly_worker *rly_worker_new(const rly_worker_params *p, char *err, size_t errlen);
void rly_worker_free(rly_worker *w);

/* Run until stopped or drained (on the worker's own thread). 0 on a clean
 * stop. */
int rly_worker_run(rly_worker *w);
/* true once rly_worker_run has returned. Any thread. */
bool rly_worker_done(const rly_worker *w);

/* From any thread: the worker swaps in a new configuration and TLS context
 * at its next wake-up (both borrowed; the caller keeps old ones alive until
 * rly_worker_cfg_taken says the worker has moved on). */
void rly_worker_post_cfg(rly_worker *w, const rly_cfg *cfg, rly_tls *tls);
/* true once the worker has taken what was last posted: from then on it
 * never touches a configuration or TLS context replaced before that post,
 * so the main thread may free them. */
bool rly_worker_cfg_taken(rly_worker *w);
/* From any thread: start draining (refuse new allocations and streams,
 * keep relaying); the caller posts stop when the drain is over. */
void rly_worker_post_drain(rly_worker *w);
void rly_worker_post_stop(rly_worker *w);

/* Live takeover, parent side (all from the main thread). post_pause asks
 * the worker to stop at its next loop boundary, after sending what it has
 * queued; wait_paused waits for that (false when deadline_ms passes). While
 * it is paused the main thread may export and hand over its state; resume
 * lets it run again. */
void rly_worker_post_pause(rly_worker *w);
bool rly_worker_wait_paused(rly_worker *w, uint64_t deadline_ms);
void rly_worker_resume(rly_worker *w);
/* Paused: describe the worker's listening sockets and UDP allocations into
 * tw (descriptors appended to fds, which stay the worker's). 0 or -ENOMEM. */
int rly_worker_export(rly_worker *w, rly_to_worker *tw, rly_to_fds *fds);
/* Paused, once the new process has the state: forget the UDP allocations
 * and the listening sockets (closing this process's
 * descriptors only; the new process holds the sockets) and start draining
 * the TCP/TLS connections left. Returns the number of allocations moved. */
size_t rly_worker_handed_over(rly_worker *w);
/* Child side, before the worker runs: take over tw's UDP allocations, their
 * relayed sockets taken from fds (set to -1 once owned). 0, or RTC_EMSG with
 * err. */
int rly_worker_adopt(rly_worker *w, const rly_to_worker *tw, int *fds, uint64_t now_ms,
                     char *err, size_t errlen);

/* Counters and gauges for the metrics page; other threads read them while
 * the worker writes (plain monotonic counters, read at scrape time). */
const rly_stats *rly_worker_stats(const rly_worker *w);
/* Admin API (relay/io/rly_admin_api.c, on worker 0's thread): ask the
 * worker for its allocations as JSON objects (query generation gen, never
 * 0; one query at a time per worker), releasing the allocation of serial
 * rel first (0 = none). It answers at its next loop turn (not while parked
 * for a takeover) and then writes to notify_fd (an eventfd). The result is
 * NULL until generation gen is answered, then the JSON (the worker's until
 * the next post) and in *released whether rel was found. */
void rly_worker_post_query(rly_worker *w, uint32_t gen, uint32_t rel, int notify_fd);
const rtc_buf *rly_worker_query_result(const rly_worker *w, uint32_t gen, bool *released);
/* Its shard of the RTP stream histograms (rly_rtpq_render sums them). */
const rly_rtpq_shard *rly_worker_qshard(const rly_worker *w);
size_t rly_worker_allocations(const rly_worker *w);
/* Allocations of the whole process, exact (the shared quota count), and
 * the EVEN-PORT reservations held besides them (*reservations). */
size_t rly_worker_total_allocations(const rly_worker *w, size_t *reservations);
bool rly_worker_draining(const rly_worker *w);

/* Descriptors of other modules on the worker's loop (the admin HTTP
 * server): cb runs on the worker's thread with the epoll events of fd. Call
 * these on that thread, or before the worker runs, or while it is parked.
 * At most RLY_WATCH_MAX at a time. watch: 0 or -errno (-ENOSPC when full);
 * the callback never fires for fd after unwatch, not even for an event of
 * the same batch. */
#define RLY_WATCH_MAX 64
typedef void (*rly_watch_cb)(void *arg, int fd, uint32_t events, uint64_t now_ms);
int rly_worker_watch(rly_worker *w, int fd, uint32_t events, rly_watch_cb cb, void *arg);
int rly_worker_watch_mod(rly_worker *w, int fd, uint32_t events); /* 0 or -errno */
void rly_worker_unwatch(rly_worker *w, int fd);                   /* does not close fd */
/* One callback run about once a second on the worker's loop (the admin's
 * timeouts); cb NULL removes it. Same threads as rly_worker_watch. */
void rly_worker_on_tick(rly_worker *w, void (*cb)(void *arg, uint64_t now_ms), void *arg);

#endif
