/* rly_admin_api.h - the relay's admin API under /admin/ on the metrics
 * listener (rly_admin.c hands it the requests): list the allocations of
 * every worker with their traffic and call quality, release one, start a
 * drain. Off (every /admin/ path 404) unless a token is configured; then
 * only requests with "Authorization: Bearer <token>" get in (compared in
 * constant time, as SHA-256 digests so the length does not show either).
 *
 *   GET    /admin/allocations        200 {"allocations":[{...}, ...]}
 *   DELETE /admin/allocations/W.N    200 {"released":"W.N"} or 404
 *   POST   /admin/drain              202 {"draining":true} (as SIGTERM)
 *
 * Allocations belong to their workers' threads, so a list or a release is
 * a question posted to every worker (rly_worker_post_query); each answers
 * at its next loop turn and wakes the API through an eventfd. One question
 * is out at a time: more GETs meanwhile share it, a DELETE gets 503 and
 * may retry. Runs on the admin server's thread (worker 0's). */
#ifndef RLY_ADMIN_API_H
#define RLY_ADMIN_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rly_worker.h"
#include "rtc_metrics.h"

typedef struct rly_admin_api rly_admin_api; /* opaque */

typedef struct {
    const char *token;            /* NULL or "" = API off */
    rly_worker *const *workers;   /* borrowed, n_workers of them */
    size_t n_workers;
    void (*drain)(void *arg);     /* start a drain (the daemon's SIGTERM path) */
    void *arg;
} rly_admin_api_params;

/* NULL on ENOMEM (or no eventfd). */
rly_admin_api *rly_admin_api_new(const rly_admin_api_params *p);
void rly_admin_api_free(rly_admin_api *api); /* NULL is a no-op */
/* Readable when workers have answered: then call rly_admin_api_poll. */
int rly_admin_api_fd(const rly_admin_api *api);

/* What a deferred request waits for (opaque to the caller). */
typedef struct {
    uint32_t gen;
    uint32_t worker, serial; /* a DELETE's target; serial 0 for a list */
} rly_admin_wait;

/* One request head (req[0..len)). Not under /admin/: false, nothing done.
 * Otherwise true, and either the whole response is in out (*deferred
 * false) or a question went to the workers (*deferred true, *w says which):
 * call rly_admin_api_finish for it once rly_admin_api_fd is readable. */
bool rly_admin_api_request(rly_admin_api *api, const char *req, size_t len, uint64_t now_ms,
                           rtc_buf *out, bool *deferred, rly_admin_wait *w);
/* Drain the eventfd; true when every worker has answered the current
 * question (then call rly_admin_api_finish for each waiting request). */
bool rly_admin_api_poll(rly_admin_api *api);
/* The response of a deferred request into out; false if its question was
 * abandoned (a newer one replaced it): the caller closes the connection. */
bool rly_admin_api_finish(rly_admin_api *api, const rly_admin_wait *w, rtc_buf *out);

#endif
