/* rly_pool.c - the workers of the process and their threads, told as one
 * (see rly_proc.h). Main thread. */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#include "rly_proc.h"
#include "rtc_clock.h"
#include "rtc_err.h"
#include "rtc_log.h"

int rly_pool_create(rly_proc *p, const rly_to_state *st, int *fds, char *err, size_t errlen)
{
    size_t n = rly_settings_workers(&p->s);
    rly_worker_params wp = {
        .cfg = p->cfg, .listen = p->listen, .n_listen = p->s.listen.n,
        .tls_listen = p->tls_listen, .n_tls_listen = p->s.tls_listen.n, .tls = p->tls,
        .ports = p->ports, .start_time_s = (double)rtc_clock_wall_s(), .reuseport = n > 1,
        .quota = p->quota, .iplimit = p->iplimit, .nonce_key = p->nonce_key, .all = p->workers,
        .n_all = &p->n_workers, .reloads = &p->reloads};
    char r4[RTC_ADDR_STRLEN], r6[RTC_ADDR_STRLEN];

    for (size_t i = 0; i < n; i++) {
        wp.metrics = i == 0 ? &p->metrics : NULL; /* one admin listener */
        wp.first = i == 0;
        if (st) { /* the running relay's sockets */
            wp.adopt = &st->w[i];
            wp.adopt_fds = fds;
            wp.adopt_metrics_fd = i == 0 ? st->metrics_fd : RLY_TO_NONE;
        }
        p->workers[i] = rly_worker_new(&wp, err, errlen);
        if (!p->workers[i])
            return RTC_EMSG;
        p->n_workers = i + 1;
    }
    rtc_addr_format(&p->base.relay_ip[0], false, r4);
    rtc_addr_format(&p->base.relay_ip[1], false, r6);
    RTC_LOG(RTC_LOG_INFO, NULL,
            "%s: %zu worker(s), %zu listener(s) (first %s), %zu TLS, relay %s / %s ports "
            "%u-%u, metrics %s, realm %s, %zu static user(s), %zu REST secret(s)",
            st ? "taking over" : "started", n, p->s.listen.n,
            p->s.listen.n ? p->s.listen.v[0] : "-", p->s.tls_listen.n, r4,
            r6, p->base.port_lo, p->base.port_hi, p->s.metrics_listen, p->s.realm, p->s.user.n,
            p->s.auth_secret.n);
    return 0;
}

static void *worker_main(void *arg)
{
    return (void *)(intptr_t)rly_worker_run(arg);
}

int rly_pool_join(rly_proc *p)
{
    int status = 0;
    for (size_t i = 0; i < p->n_started; i++) {
        void *wrc = NULL;
        pthread_join(p->threads[i], &wrc);
        if (wrc)
            status = 1;
    }
    free(p->threads);
    p->threads = NULL;
    p->n_started = 0;
    return status;
}

int rly_pool_start(rly_proc *p)
{
    if (!(p->threads = calloc(p->n_workers, sizeof *p->threads)))
        return -1;
    for (p->n_started = 0; p->n_started < p->n_workers; p->n_started++)
        if (pthread_create(&p->threads[p->n_started], NULL, worker_main,
                           p->workers[p->n_started]))
            break;
    if (p->n_started == p->n_workers)
        return 0;
    RTC_LOG(RTC_LOG_ERROR, NULL, "cannot start worker thread %zu", p->n_started);
    rly_pool_stop(p);
    rly_pool_resume(p);
    rly_pool_join(p);
    return -1;
}

void rly_pool_stop(rly_proc *p)
{
    p->stopping = true;
    for (size_t i = 0; i < p->n_workers; i++)
        rly_worker_post_stop(p->workers[i]);
}

void rly_pool_drain(rly_proc *p)
{
    for (size_t i = 0; i < p->n_workers; i++)
        rly_worker_post_drain(p->workers[i]);
}

void rly_pool_pause(rly_proc *p)
{
    for (size_t i = 0; i < p->n_workers; i++)
        rly_worker_post_pause(p->workers[i]);
}

void rly_pool_resume(rly_proc *p)
{
    for (size_t i = 0; i < p->n_workers; i++)
        rly_worker_resume(p->workers[i]);
}

size_t rly_pool_done(const rly_proc *p)
{
    size_t done = 0;
    for (size_t i = 0; i < p->n_workers; i++)
        done += rly_worker_done(p->workers[i]);
    return done;
}

void rly_pool_free(rly_proc *p)
{
    for (size_t i = 0; i < p->n_workers; i++)
        rly_worker_free(p->workers[i]);
    free(p->workers);
    p->workers = NULL;
    p->n_workers = 0;
}
