/* rtc_metrics.h - Prometheus text exposition (format 0.0.4) helpers.
 *
 * Counters themselves are plain uint64_t fields in each module's per-worker
 * struct, summed only when scraped; this module only renders them. rtc_buf is
 * a growable text buffer used for the scrape response (it runs on the admin
 * path, never per packet). */
#ifndef RTC_METRICS_H
#define RTC_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    char *p;
    size_t len, cap;
    bool oom; /* sticky: an append failed; the text is incomplete */
} rtc_buf;

void rtc_buf_init(rtc_buf *b);
void rtc_buf_dispose(rtc_buf *b);
void rtc_buf_printf(rtc_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void rtc_buf_append(rtc_buf *b, const void *data, size_t len);

/* "# HELP name help\n# TYPE name type\n" */
void rtc_metrics_header(rtc_buf *b, const char *name, const char *type, const char *help);
/* "name{labels} value\n"; labels is NULL or e.g. "direction=\"in\"". */
void rtc_metrics_u64(rtc_buf *b, const char *name, const char *labels, uint64_t v);
void rtc_metrics_f64(rtc_buf *b, const char *name, const char *labels, double v);
/* A metric with one unlabelled sample: its header, then "name value\n". */
void rtc_metrics_one(rtc_buf *b, const char *name, const char *type, const char *help,
                     uint64_t v);

/* The SIGHUP reload counter both daemons export, named <prefix>_config_
 * reloads_total with result="ok"|"failed" (prefix "tsunagu_relay" or
 * "tsunagu_signal"); its HELP and TYPE lines included. */
void rtc_metrics_reloads(rtc_buf *b, const char *prefix, uint64_t ok, uint64_t failed);

/* tsunagu_build_info{version="0.1.0",commit="<git describe>|unknown"} 1, the
build both daemons run (rtc_version.h); its HELP and TYPE lines included. */
void rtc_metrics_build_info(rtc_buf *b);

/* process_start_time_seconds and process_resident_memory_bytes. */
void rtc_metrics_process(rtc_buf *b, double start_time_s);
/* Resident set size from /proc/self/statm, 0 if unknown. */
uint64_t rtc_metrics_rss_bytes(void);

/* A fixed-bucket histogram, owned by one thread. */
#define RTC_HIST_MAX_BUCKETS 16
typedef struct {
    double bounds[RTC_HIST_MAX_BUCKETS]; /* upper bounds, ascending */
    uint64_t counts[RTC_HIST_MAX_BUCKETS + 1]; /* last = +Inf */
    size_t n;
    double sum;
    uint64_t count;
} rtc_hist;

void rtc_hist_init(rtc_hist *h, const double *bounds, size_t n);
void rtc_hist_observe(rtc_hist *h, double v);
void rtc_metrics_hist(rtc_buf *b, const char *name, const char *help, const rtc_hist *h);

#endif
