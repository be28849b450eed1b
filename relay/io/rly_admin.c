/* rly_admin.c - the relay's tiny admin HTTP/1.1 server: GET /metrics
 * (Prometheus text, metric names of DESIGN.md) and GET /healthz. Answers
 * are built from the workers' plain counters, summed here at scrape time;
 * every answer closes the connection. Bound to 127.0.0.1 by default. */
#include <stdio.h>
#include <string.h>

#include "rly_worker.h"

static void metrics(rtc_buf *b, const rly_worker *const *ws, size_t n, double start)
{
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
    rtc_metrics_header(b, "tsunagu_relay_allocations", "gauge", "Live TURN allocations.");
    rtc_metrics_u64(b, "tsunagu_relay_allocations", NULL, allocs);
    rtc_metrics_header(b, "tsunagu_relay_allocations_total", "counter",
                       "TURN allocations created.");
    rtc_metrics_u64(b, "tsunagu_relay_allocations_total", NULL, sum.allocations_total);
    rtc_metrics_header(b, "tsunagu_relay_auth_failures_total", "counter",
                       "Requests with wrong credentials (bad user, realm or integrity).");
    rtc_metrics_u64(b, "tsunagu_relay_auth_failures_total", NULL, sum.auth_failures);
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
    rtc_metrics_header(b, "tsunagu_relay_permission_denied_total", "counter",
                       "CreatePermission/ChannelBind peers refused by the peer policy.");
    rtc_metrics_u64(b, "tsunagu_relay_permission_denied_total", NULL, sum.permission_denied);
    rtc_metrics_process(b, start);
}

static void reply(rtc_buf *out, const char *status, const char *ctype, const char *body,
                  size_t blen)
{
    rtc_buf_printf(out,
                   "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                   "Connection: close\r\n\r\n",
                   status, ctype, blen);
    rtc_buf_append(out, body, blen);
}

void rly_admin_respond(rtc_buf *out, const char *req, size_t len,
                       const rly_worker *const *workers, size_t n, double start_time_s)
{
    bool draining = false;
    (void)len;
    for (size_t i = 0; i < n; i++)
        draining |= rly_worker_draining(workers[i]);
    if (!strncmp(req, "GET /metrics ", 13) || !strncmp(req, "GET /metrics?", 13)) {
        rtc_buf body;
        rtc_buf_init(&body);
        metrics(&body, workers, n, start_time_s);
        if (body.oom)
            reply(out, "500 Internal Server Error", "text/plain", "out of memory\n", 14);
        else
            reply(out, "200 OK", "text/plain; version=0.0.4; charset=utf-8", body.p, body.len);
        rtc_buf_dispose(&body);
    } else if (!strncmp(req, "GET /healthz ", 13)) {
        /* draining: tell load balancers to send new clients elsewhere */
        if (draining)
            reply(out, "503 Service Unavailable", "text/plain", "draining\n", 9);
        else
            reply(out, "200 OK", "text/plain", "ok\n", 3);
    } else if (!strncmp(req, "GET ", 4)) {
        reply(out, "404 Not Found", "text/plain", "not found\n", 10);
    } else {
        reply(out, "405 Method Not Allowed", "text/plain", "only GET\n", 9);
    }
}
