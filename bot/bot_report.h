/* bot_report.h - turning per-call figures into totals, percentiles and the
 * three outputs: the summary table (stdout), the JSON report (--report) and
 * a self-contained HTML page with inline SVG plots (--html). No I/O besides
 * the named file or stream. Main thread. */
#ifndef BOT_REPORT_H
#define BOT_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "bot_call.h"

/* How the bot process itself fared: if it was the bottleneck, its figures
 * describe the bot, not the server. */
typedef struct {
    const char *mode, *room, *signal_url;
    bool relay_only;
    /* turns: certificate checking: "system store", "--turn-ca FILE",
     * "off (--turn-insecure)"; NULL reads as "" */
    const char *turn_tls_verify;
    double duration_s;
    long calls_requested;   /* load mode: pairs asked for; member mode: 0 */
    double cpu_avg_pct, cpu_max_pct; /* busiest loop thread, % of one core */
    double process_cpu_avg_pct;      /* whole process, % of one core */
    int threads;                     /* worker loops (1 = the main loop) */
    double lag_p99_ms, lag_max_ms;   /* lateness of the 20 ms send tick */
    uint64_t ticks_skipped;          /* send ticks dropped by an overloaded loop */
    double others_avg_pct;           /* other processes' CPU, % of one core */
    int ncpu;
    bool machine_saturated;          /* bot + others near all cores */
    bool bottleneck;
    char bottleneck_why[160];
} bot_run_info;

typedef struct {
    size_t legs, with_media, held;   /* held: media and loss < 1% */
    uint64_t sent, received, lost, expected, dropped_on_purpose, decoded;
    double loss_pct;                 /* lost / expected over all legs */
    double setup_p50, setup_p95, setup_max;
    double mos_p50, mos_p5, mos_min;
    double jitter_p50, jitter_p95, rtt_p50, rtt_p95, loss_p95;
} bot_totals;

void bot_totals_compute(const bot_call_info *ci, size_t n, bot_totals *t);
void bot_report_table(FILE *f, const bot_call_info *ci, size_t n, const bot_totals *t,
                      const bot_run_info *run);
int bot_report_json(const char *path, const bot_call_info *ci, size_t n, const bot_totals *t,
                    const bot_run_info *run);
int bot_report_html(const char *path, const bot_call_info *ci, size_t n, const bot_totals *t,
                    const bot_run_info *run);

#endif
