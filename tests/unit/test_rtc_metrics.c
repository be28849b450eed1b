/* test_rtc_metrics.c - Prometheus text format 0.0.4 rendering: HELP/TYPE
 * lines, samples with and without labels, histograms with cumulative
 * buckets (le is inclusive), _sum/_count, and the growable buffer. */
#include <stdlib.h>
#include <string.h>

#include "rtc_metrics.h"
#include "tap.h"

int main(void)
{
    rtc_buf b;
    rtc_hist h;
    static const double bounds[] = {0.1, 0.5, 1};
    static const double many[20] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20};
    char big[10000];
    bool ok_hist;

    rtc_buf_init(&b);
    rtc_metrics_header(&b, "tsunagu_allocations", "gauge", "Current TURN allocations.");
    rtc_metrics_u64(&b, "tsunagu_allocations", NULL, 42);
    rtc_metrics_u64(&b, "tsunagu_relay_bytes_total", "direction=\"in\"", 18446744073709551615ULL);
    rtc_metrics_f64(&b, "tsunagu_ratio", NULL, 0.25);
    ok(b.p && strcmp(b.p, "# HELP tsunagu_allocations Current TURN allocations.\n"
                          "# TYPE tsunagu_allocations gauge\n"
                          "tsunagu_allocations 42\n"
                          "tsunagu_relay_bytes_total{direction=\"in\"} 18446744073709551615\n"
                          "tsunagu_ratio 0.25\n") == 0,
       "HELP/TYPE and samples, exact text");
    ok(!b.oom && b.len == strlen(b.p), "length tracks the text");
    rtc_buf_dispose(&b);
    ok(b.p == NULL && b.len == 0, "dispose empties the buffer");

    rtc_hist_init(&h, bounds, 3);
    rtc_hist_observe(&h, 0.05);
    rtc_hist_observe(&h, 0.1); /* on the bound: counts in le="0.1" */
    rtc_hist_observe(&h, 0.3);
    rtc_hist_observe(&h, 2);
    rtc_hist_observe(&h, 5);
    rtc_buf_init(&b);
    rtc_metrics_hist(&b, "tsunagu_rtt_seconds", "Round-trip time.", &h);
    ok_hist = b.p && strcmp(b.p, "# HELP tsunagu_rtt_seconds Round-trip time.\n"
                          "# TYPE tsunagu_rtt_seconds histogram\n"
                          "tsunagu_rtt_seconds_bucket{le=\"0.1\"} 2\n"
                          "tsunagu_rtt_seconds_bucket{le=\"0.5\"} 3\n"
                          "tsunagu_rtt_seconds_bucket{le=\"1\"} 3\n"
                          "tsunagu_rtt_seconds_bucket{le=\"+Inf\"} 5\n"
                          "tsunagu_rtt_seconds_sum 7.45\n"
                          "tsunagu_rtt_seconds_count 5\n") == 0;
    ok(ok_hist, "histogram: cumulative buckets, +Inf = count, sum");
    if (!ok_hist && b.p)
        printf("# got:\n%s", b.p);
    rtc_buf_dispose(&b);

    rtc_hist_init(&h, many, 20);
    is_int(h.n, RTC_HIST_MAX_BUCKETS, "more than 16 bounds are capped at 16");
    rtc_hist_observe(&h, 100);
    is_int(h.counts[RTC_HIST_MAX_BUCKETS], 1, "above every bound goes to +Inf");

    rtc_buf_init(&b);
    memset(big, 'x', sizeof big);
    rtc_buf_append(&b, big, sizeof big);
    rtc_buf_printf(&b, "%s", "tail");
    ok(!b.oom && b.len == sizeof big + 4 && b.cap > b.len && b.p[b.len] == '\0' &&
           memcmp(b.p + sizeof big, "tail", 4) == 0,
       "buffer grows past 4 KiB and stays NUL-terminated");
    rtc_buf_dispose(&b);

    rtc_buf_init(&b);
    rtc_metrics_process(&b, 1700000000.5);
    ok(b.p && strstr(b.p, "# TYPE process_start_time_seconds gauge\n") &&
           strstr(b.p, "process_start_time_seconds 1700000000.5\n") &&
           strstr(b.p, "process_resident_memory_bytes "),
       "process metrics");
    ok(rtc_metrics_rss_bytes() > 0, "RSS is readable from /proc/self/statm");
    rtc_buf_dispose(&b);
    return done_testing();
}
