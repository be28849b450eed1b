/* rly_pool.c - the workers of the process and their threads, told as one,
 * and the admin server on the first worker's loop with the hooks that sum
 * the workers for it (see rly_proc.h). Main thread, except the hooks
 * (worker 0's thread). */
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rly_proc.h"
#include "rtc_clock.h"
#include "rtc_err.h"
#include "rtc_log.h"

/* The admin listener reads until EAGAIN: a blocking one would hang the
 * worker. The old process made it non-blocking, but the flag belongs to the
 * shared file description and costs one call to make sure of. */
static int nonblocking(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0 && !(fl & O_NONBLOCK))
        fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    return fd;
}

/* The /metrics body: the workers' plain counters summed at scrape time (on
 * worker 0's thread while the others write them). */
static void render(void *arg, rtc_buf *b)
{
    const rly_proc *p = arg;
    rly_worker *const *ws = p->workers;
    size_t n = p->n_workers;
    const rly_reloads *reloads = &p->reloads;
    rly_stats sum;
    uint64_t allocs = 0;
    static const char *const dir_c2p = "direction=\"client_to_peer\"";
    static const char *const dir_p2c = "direction=\"peer_to_client\"";

    memset(&sum, 0, sizeof sum);
    for (size_t i = 0; i < n; i++) {
        const rly_stats *s = rly_worker_stats(ws[i]);
        sum.allocations_total += s->allocations_total;
        sum.auth_failures += s->auth_failures;
        sum.permission_denied += s->permission_denied;
        sum.pkts_c2p += s->pkts_c2p;
        sum.pkts_p2c += s->pkts_p2c;
        sum.bytes_c2p += s->bytes_c2p;
        sum.bytes_p2c += s->bytes_p2c;
        for (int d = 0; d < RLY_DROP_N; d++)
            sum.dropped[d] += s->dropped[d];
    }
    /* the shared quota count is exact; per-worker gauges lag a loop turn */
    if (n)
        allocs = rly_worker_total_allocations(ws[0]);
    rtc_metrics_one(b, "tsunagu_relay_allocations", "gauge",
                    "Live TURN allocations.", allocs);
    rtc_metrics_one(b, "tsunagu_relay_allocations_total", "counter",
                    "TURN allocations created.", sum.allocations_total);
    rtc_metrics_one(b, "tsunagu_relay_auth_failures_total", "counter",
                    "Requests with wrong credentials (bad user, realm or integrity).",
                    sum.auth_failures);
    rtc_metrics_header(b, "tsunagu_relay_packets_total", "counter", "Relayed packets.");
    rtc_metrics_u64(b, "tsunagu_relay_packets_total", dir_c2p, sum.pkts_c2p);
    rtc_metrics_u64(b, "tsunagu_relay_packets_total", dir_p2c, sum.pkts_p2c);
    rtc_metrics_header(b, "tsunagu_relay_bytes_total", "counter", "Relayed payload bytes.");
    rtc_metrics_u64(b, "tsunagu_relay_bytes_total", dir_c2p, sum.bytes_c2p);
    rtc_metrics_u64(b, "tsunagu_relay_bytes_total", dir_p2c, sum.bytes_p2c);
    rtc_metrics_header(b, "tsunagu_relay_dropped_total", "counter",
                       "Packets dropped, by reason.");
    for (int d = 0; d < RLY_DROP_N; d++) {
        char label[64];
        snprintf(label, sizeof label, "reason=\"%s\"", rly_drop_names[d]);
        rtc_metrics_u64(b, "tsunagu_relay_dropped_total", label, sum.dropped[d]);
    }
    rtc_metrics_one(b, "tsunagu_relay_permission_denied_total", "counter",
                    "CreatePermission/ChannelBind peers refused by the peer policy.",
                    sum.permission_denied);
    rtc_metrics_reloads(b, "tsunagu_relay", atomic_load(&reloads->ok),
                        atomic_load(&reloads->failed));
    rtc_metrics_header(b, "tsunagu_relay_takeovers_total", "counter",
                       "Live takeovers (SIGUSR2 or --takeover-from) that made this process "
                       "or were tried from it; a failed one keeps the old process serving.");
    rtc_metrics_u64(b, "tsunagu_relay_takeovers_total", "result=\"ok\"",
                    atomic_load(&reloads->takeover_ok));
    rtc_metrics_u64(b, "tsunagu_relay_takeovers_total", "result=\"failed\"",
                    atomic_load(&reloads->takeover_failed));
    rly_selfcheck_render(p->selfcheck, b);
    rtc_metrics_build_info(b);
    rtc_metrics_process(b, p->start_time_s);
}

static const char *unhealthy(void *arg)
{
    const rly_proc *p = arg;
    for (size_t i = 0; i < p->n_workers; i++)
        if (rly_worker_draining(p->workers[i]))
            return "draining\n";
    return NULL;
}

int rly_pool_create(rly_proc *p, const rly_to_state *st, int *fds, char *err, size_t errlen)
{
    size_t n = rly_settings_workers(&p->s);
    rly_worker_params wp = {
        .cfg = p->cfg, .listen = p->listen, .n_listen = p->s.listen.n,
        .tls_listen = p->tls_listen, .n_tls_listen = p->s.tls_listen.n, .tls = p->tls,
        .ports = p->ports, .reuseport = n > 1, .quota = p->quota, .iplimit = p->iplimit,
        .nonce_key = p->nonce_key};
    rly_admin_params ap = {.addr = &p->metrics, .listen_fd = -1,
                           .hooks = {.render = render, .unhealthy = unhealthy, .arg = p}};
    char r4[RTC_ADDR_STRLEN], r6[RTC_ADDR_STRLEN];

    for (size_t i = 0; i < n; i++) {
        wp.first = i == 0;
        if (st) { /* the running relay's sockets */
            wp.adopt = &st->w[i];
            wp.adopt_fds = fds;
        }
        p->workers[i] = rly_worker_new(&wp, err, errlen);
        if (!p->workers[i])
            return RTC_EMSG;
        p->n_workers = i + 1;
    }
    /* one admin server, on the first worker's loop */
    p->start_time_s = (double)rtc_clock_wall_s();
    ap.loop = p->workers[0];
    if (st) {
        if (st->metrics_fd == RLY_TO_NONE) {
            snprintf(err, errlen, "takeover: no metrics-listen socket");
            return RTC_EMSG;
        }
        ap.addr = NULL;
        ap.listen_fd = nonblocking(fds[st->metrics_fd]);
        fds[st->metrics_fd] = -1;
    }
    if (!(p->admin = rly_admin_new(&ap, err, errlen)))
        return RTC_EMSG;
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
    rly_admin_free(p->admin); /* it unwatches its sockets on worker 0 */
    p->admin = NULL;
    for (size_t i = 0; i < p->n_workers; i++)
        rly_worker_free(p->workers[i]);
    free(p->workers);
    p->workers = NULL;
    p->n_workers = 0;
}
