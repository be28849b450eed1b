/* rly_worker.h - one relay worker: an epoll loop that owns listening
 * sockets (UDP, TCP, TLS), client connections, relayed sockets, the admin
 * HTTP listener and one TURN engine (rly_turn) with its allocation table.
 *
 * Everything a worker touches on the packet path is its own: no locks, no
 * shared counters, no heap allocation per packet (one receive buffer with
 * headroom is reused). Configuration is an immutable rly_cfg swapped in
 * between events (SIGHUP). SIGTERM drains: new Allocates are refused,
 * existing allocations relay until they end or the drain deadline passes.
 * Today the process runs one worker on its main thread. */
#ifndef RLY_WORKER_H
#define RLY_WORKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rly_tls.h"
#include "rly_turn.h"
#include "rtc_addr.h"
#include "rtc_metrics.h"

typedef struct rly_worker rly_worker; /* opaque */

typedef struct {
    const rly_cfg *cfg;
    const rtc_addr *listen; /* UDP + TCP each */
    size_t n_listen;
    const rtc_addr *tls_listen;
    size_t n_tls_listen;
    rly_tls *tls;           /* borrowed; required when n_tls_listen > 0 */
    uint16_t port_lo, port_hi;
    const rtc_addr *metrics; /* admin HTTP listener, NULL = none */
    double start_time_s;     /* process_start_time_seconds */
    int signal_fd;           /* signalfd, -1 = none */
    /* called on the worker thread for each signal read from signal_fd */
    void (*on_signal)(void *ctx, rly_worker *w, int signo);
    void *signal_ctx;
} rly_worker_params;

/* Opens every socket; NULL with a reason naming the address in err. */
rly_worker *rly_worker_new(const rly_worker_params *p, char *err, size_t errlen);
void rly_worker_free(rly_worker *w);

/* Run until stopped or drained. 0 on a clean stop. */
int rly_worker_run(rly_worker *w);

/* From on_signal: swap in new configuration and TLS context (both borrowed
 * and kept by the caller until the next swap or the end). */
void rly_worker_set_cfg(rly_worker *w, const rly_cfg *cfg, rly_tls *tls);
/* From on_signal: start draining; the loop ends when no allocation is left
 * or drain_ms have passed. */
void rly_worker_drain(rly_worker *w, uint64_t drain_ms);
void rly_worker_stop(rly_worker *w);

/* Counters and gauges for the metrics page. */
const rly_stats *rly_worker_stats(const rly_worker *w);
size_t rly_worker_allocations(const rly_worker *w);

bool rly_worker_draining(const rly_worker *w);

/* rly_admin.c: the HTTP/1.1 answer (status line, headers, body) to one
 * request head `req` for /metrics or /healthz, summing the workers. */
void rly_admin_respond(rtc_buf *out, const char *req, size_t len,
                       const rly_worker *const *workers, size_t n, double start_time_s);

#endif
