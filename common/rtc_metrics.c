/* rtc_metrics.c - Prometheus text rendering. */
#include "rtc_metrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rtc_version.h"

static bool grow(rtc_buf *b, size_t need)
{
    size_t cap;
    char *np;
    if (b->oom)
        return false;
    if (b->len + need + 1 <= b->cap)
        return true;
    cap = b->cap ? b->cap : 4096;
    while (cap < b->len + need + 1)
        cap *= 2;
    np = realloc(b->p, cap);
    if (!np) {
        b->oom = true;
        return false;
    }
    b->p = np;
    b->cap = cap;
    return true;
}

void rtc_buf_init(rtc_buf *b) { memset(b, 0, sizeof *b); }

void rtc_buf_dispose(rtc_buf *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

void rtc_buf_append(rtc_buf *b, const void *data, size_t len)
{
    if (!grow(b, len))
        return;
    memcpy(b->p + b->len, data, len);
    b->len += len;
    b->p[b->len] = '\0';
}

void rtc_buf_printf(rtc_buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;
    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || !grow(b, (size_t)n))
        return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void rtc_metrics_header(rtc_buf *b, const char *name, const char *type, const char *help)
{
    rtc_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void rtc_metrics_u64(rtc_buf *b, const char *name, const char *labels, uint64_t v)
{
    if (labels)
        rtc_buf_printf(b, "%s{%s} %llu\n", name, labels, (unsigned long long)v);
    else
        rtc_buf_printf(b, "%s %llu\n", name, (unsigned long long)v);
}

void rtc_metrics_one(rtc_buf *b, const char *name, const char *type, const char *help,
                     uint64_t v)
{
    rtc_metrics_header(b, name, type, help);
    rtc_metrics_u64(b, name, NULL, v);
}

void rtc_metrics_f64(rtc_buf *b, const char *name, const char *labels, double v)
{
    if (labels)
        rtc_buf_printf(b, "%s{%s} %.17g\n", name, labels, v);
    else
        rtc_buf_printf(b, "%s %.17g\n", name, v);
}

uint64_t rtc_metrics_rss_bytes(void)
{
    unsigned long size = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "re");
    if (!f)
        return 0;
    if (fscanf(f, "%lu %lu", &size, &resident) != 2)
        resident = 0;
    fclose(f);
    return (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

void rtc_metrics_build_info(rtc_buf *b)
{
    char labels[160];
    /* git describe prints no quote or backslash: no escaping needed */
    snprintf(labels, sizeof labels, "version=\"%s\",commit=\"%s\"", rtc_version(),
             rtc_version_commit());
    rtc_metrics_header(b, "tsunagu_build_info", "gauge",
                       "The running build: version and git describe of its sources; always 1.");
    rtc_metrics_u64(b, "tsunagu_build_info", labels, 1);
}

void rtc_metrics_process(rtc_buf *b, double start_time_s)
{
    rtc_metrics_header(b, "process_start_time_seconds", "gauge",
                       "Start time of the process since unix epoch in seconds.");
    rtc_metrics_f64(b, "process_start_time_seconds", NULL, start_time_s);
    rtc_metrics_header(b, "process_resident_memory_bytes", "gauge",
                       "Resident memory size in bytes.");
    rtc_metrics_u64(b, "process_resident_memory_bytes", NULL, rtc_metrics_rss_bytes());
}

void rtc_hist_init(rtc_hist *h, const double *bounds, size_t n)
{
    memset(h, 0, sizeof *h);
    if (n > RTC_HIST_MAX_BUCKETS)
        n = RTC_HIST_MAX_BUCKETS;
    memcpy(h->bounds, bounds, n * sizeof *bounds);
    h->n = n;
}

void rtc_hist_observe(rtc_hist *h, double v)
{
    size_t i = 0;
    while (i < h->n && v > h->bounds[i])
        i++;
    h->counts[i]++;
    h->sum += v;
    h->count++;
}

void rtc_metrics_hist(rtc_buf *b, const char *name, const char *help, const rtc_hist *h)
{
    uint64_t cum = 0;
    rtc_metrics_header(b, name, "histogram", help);
    for (size_t i = 0; i < h->n; i++) {
        cum += h->counts[i];
        rtc_buf_printf(b, "%s_bucket{le=\"%g\"} %llu\n", name, h->bounds[i],
                       (unsigned long long)cum);
    }
    cum += h->counts[h->n];
    rtc_buf_printf(b, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)cum);
    rtc_buf_printf(b, "%s_sum %.9g\n%s_count %llu\n", name, h->sum, name,
                   (unsigned long long)h->count);
}

void rtc_metrics_reloads(rtc_buf *b, const char *prefix, uint64_t ok, uint64_t failed)
{
    char name[96];
    snprintf(name, sizeof name, "%s_config_reloads_total", prefix);
    rtc_metrics_header(b, name, "counter",
                       "SIGHUP reloads; a failed one keeps the old settings running.");
    rtc_metrics_u64(b, name, "result=\"ok\"", ok);
    rtc_metrics_u64(b, name, "result=\"failed\"", failed);
}
