/* rly_admin.h - the relay's tiny admin HTTP/1.1 server: GET /metrics
 * (Prometheus text) and GET /healthz, bound to 127.0.0.1 by default, and
 * the admin API under /admin/ when a token is set (rly_admin_api.h).
 *
 * It knows no worker: what /metrics says and whether /healthz is happy
 * come from hooks (rly_pool.c sums the workers), the answers from rtc_http
 * (the responder both daemons share), and its sockets ride on
 * one worker's loop through rly_worker_watch. Everything runs on that
 * worker's thread; new, free and listen_fd also from the main thread
 * before the worker runs or while it is parked. */
#ifndef RLY_ADMIN_H
#define RLY_ADMIN_H

#include <stdbool.h>
#include <stddef.h>

#include "rly_admin_api.h"
#include "rly_worker.h"
#include "rtc_addr.h"
#include "rtc_metrics.h"

typedef struct {
    /* append the /metrics body (Prometheus text) to out */
    void (*render)(void *arg, rtc_buf *out);
    /* NULL when healthy, else the 503 body of /healthz ("draining\n" while
     * draining, so load balancers send new clients elsewhere) */
    const char *(*unhealthy)(void *arg);
    void *arg;
} rly_admin_hooks;

typedef struct {
    rly_worker *loop;     /* the worker whose loop watches the sockets */
    const rtc_addr *addr; /* listen here, or: */
    int listen_fd;        /* when addr is NULL: a listener adopted from a
                           * running relay; ours even when rly_admin_new fails */
    rly_admin_hooks hooks;
    rly_admin_api_params api; /* /admin/ (rly_admin_api.h); token NULL = off */
} rly_admin_params;

typedef struct rly_admin rly_admin; /* opaque */

/* NULL with a reason in err (the address for a listen failure). */
rly_admin *rly_admin_new(const rly_admin_params *p, char *err, size_t errlen);
void rly_admin_free(rly_admin *a); /* NULL is a no-op; closes every socket */
int rly_admin_listen_fd(const rly_admin *a);

#endif
