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
    /* The run's verdict (bot_report_verdict) and where it ran */
    bool pass;
    char verdict[400];
    const char *version;             /* "tsunagu-bot 0.x (describe)"; NULL reads as "" */
    char started_at[32];             /* UTC, ISO 8601 */
} bot_run_info;

/* Quality gates (--min-mos, --max-loss, --max-setup-ms). Without any, a
 * leg passes when it held (bot_call.h: audio, no failure, loss < 1%, no
 * media gap over 1 s); --max-loss replaces the 1% bound (stricter, or
 * looser for a run with a known impairment); the others only add checks. */
typedef struct {
    double min_mos;       /* 0 = off */
    double max_loss_pct;  /* < 0 = off: the held bound (loss < 1%) */
    double max_setup_ms;  /* 0 = off */
} bot_gates;

/* Fill ci[i].pass and ci[i].why for every leg. */
void bot_report_judge(bot_call_info *ci, size_t n, const bot_gates *g);
/* The run: pass when every leg passed and, in load mode, all
 * `legs_wanted` legs exist; run->pass and run->verdict say so. */
void bot_report_verdict(const bot_call_info *ci, size_t n, size_t legs_wanted, bot_run_info *run);

typedef struct {
    size_t legs, with_media, held;   /* held: bot_call_info_held */
    size_t failed;                   /* legs that did not pass (bot_report_judge) */
    double gap_max_ms;               /* longest media gap of any leg */
    uint64_t sent, received, lost, expected, dropped_on_purpose, decoded;
    double loss_pct;                 /* lost / expected over all legs */
    double setup_p50, setup_p95, setup_max;
    double mos_p50, mos_p5, mos_min;
    double jitter_p50, jitter_p95, rtt_p50, rtt_p95, loss_p95;
} bot_totals;

/* Above this many legs the HTML report draws p5/p50/p95 bands instead of a
 * line per leg, and lists only the legs that failed. */
#define BOT_REPORT_MAX_LINES 20

void bot_totals_compute(const bot_call_info *ci, size_t n, bot_totals *t);
void bot_report_table(FILE *f, const bot_call_info *ci, size_t n, const bot_totals *t,
                      const bot_run_info *run);
int bot_report_json(const char *path, const bot_call_info *ci, size_t n, const bot_totals *t,
                    const bot_run_info *run);
int bot_report_html(const char *path, const bot_call_info *ci, size_t n, const bot_totals *t,
                    const bot_run_info *run);

#endif
