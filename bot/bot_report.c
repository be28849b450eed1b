/* bot_report.c - summary table, JSON and HTML reports (see bot_report.h). */
#include "bot_report.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "rtc_err.h"

static double pct_of(double *v, size_t n, double p) { return bot_percentile(v, n, p); }

/* Append one failed check to a leg's reason. */
static void why_add(bot_call_info *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void why_add(bot_call_info *c, const char *fmt, ...)
{
    size_t l = strlen(c->why);
    va_list ap;
    if (l && l + 2 < sizeof c->why) {
        memcpy(c->why + l, "; ", 3);
        l += 2;
    }
    va_start(ap, fmt);
    vsnprintf(c->why + l, sizeof c->why - l, fmt, ap);
    va_end(ap);
    c->pass = false;
}

void bot_report_judge(bot_call_info *ci, size_t n, const bot_gates *g)
{
    for (size_t i = 0; i < n; i++) {
        bot_call_info *c = &ci[i];
        c->pass = true;
        c->why[0] = '\0';
        if (!c->media) {
            why_add(c, "no audio (%s)", c->end_reason && c->end_reason[0] ? c->end_reason : c->state);
            continue;
        }
        if (c->failed)
            why_add(c, "call failed: %s", c->end_reason);
        if (c->max_gap_ms > BOT_HELD_MAX_GAP_MS)
            why_add(c, "media gap %.1f s > 1 s", c->max_gap_ms / 1000.0);
        if (g->max_loss_pct < 0 && c->loss_pct >= BOT_HELD_MAX_LOSS_PCT)
            why_add(c, "loss %.2f%% >= 1%% (not held)", c->loss_pct);
        else if (g->max_loss_pct >= 0 && c->loss_pct > g->max_loss_pct)
            why_add(c, "loss %.2f%% > --max-loss %.2f%%", c->loss_pct, g->max_loss_pct);
        if (g->min_mos > 0 && c->mos < g->min_mos)
            why_add(c, "MOS %.2f < --min-mos %.2f", c->mos, g->min_mos);
        if (g->max_setup_ms > 0 && c->setup_ms > g->max_setup_ms)
            why_add(c, "setup %.0f ms > --max-setup-ms %.0f", c->setup_ms, g->max_setup_ms);
    }
}

void bot_report_verdict(const bot_call_info *ci, size_t n, size_t legs_wanted, bot_run_info *run)
{
    size_t bad = 0, first = n;
    for (size_t i = 0; i < n; i++)
        if (!ci[i].pass && bad++ == 0)
            first = i;
    run->pass = bad == 0 && n >= legs_wanted;
    if (n < legs_wanted)
        snprintf(run->verdict, sizeof run->verdict, "FAIL: %zu of %zu call legs exist%s", n,
                 legs_wanted, bad ? ", and some failed" : "");
    else if (bad)
        snprintf(run->verdict, sizeof run->verdict, "FAIL: %zu of %zu legs failed, first %.64s: %s",
                 bad, n, ci[first].label, ci[first].why);
    else
        snprintf(run->verdict, sizeof run->verdict, "PASS: all %zu legs passed", n);
}

void bot_totals_compute(const bot_call_info *ci, size_t n, bot_totals *t)
{
    double *setup = calloc(n + 1, sizeof *setup), *mos = calloc(n + 1, sizeof *mos);
    double *jit = calloc(n + 1, sizeof *jit), *rtt = calloc(n + 1, sizeof *rtt);
    double *loss = calloc(n + 1, sizeof *loss);
    size_t ns = 0, nr = 0;

    memset(t, 0, sizeof *t);
    t->legs = n;
    if (!setup || !mos || !jit || !rtt || !loss)
        goto out;
    for (size_t i = 0; i < n; i++) {
        const bot_call_info *c = &ci[i];
        t->sent += c->sent;
        t->received += c->received;
        t->lost += c->lost;
        t->expected += c->expected;
        t->dropped_on_purpose += c->dropped_on_purpose;
        t->decoded += c->decoded;
        /* Every leg counts in MOS: a call that never carried audio is a 1. */
        mos[i] = c->mos;
        if (!c->pass)
            t->failed++;
        if (c->max_gap_ms > t->gap_max_ms)
            t->gap_max_ms = c->max_gap_ms;
        if (!c->media)
            continue;
        t->with_media++;
        if (bot_call_info_held(c))
            t->held++;
        setup[ns] = c->setup_ms;
        jit[ns] = c->jitter_ms;
        loss[ns] = c->loss_pct;
        ns++;
        if (c->rtt_ms >= 0)
            rtt[nr++] = c->rtt_ms;
    }
    t->loss_pct = t->expected ? 100.0 * (double)t->lost / (double)t->expected : 0;
    t->setup_p50 = pct_of(setup, ns, 50);
    t->setup_p95 = pct_of(setup, ns, 95);
    t->setup_max = pct_of(setup, ns, 100);
    t->jitter_p50 = pct_of(jit, ns, 50);
    t->jitter_p95 = pct_of(jit, ns, 95);
    t->loss_p95 = pct_of(loss, ns, 95);
    t->rtt_p50 = pct_of(rtt, nr, 50);
    t->rtt_p95 = pct_of(rtt, nr, 95);
    t->mos_p50 = pct_of(mos, n, 50);
    t->mos_p5 = pct_of(mos, n, 5);
    t->mos_min = pct_of(mos, n, 0);
out:
    free(setup);
    free(mos);
    free(jit);
    free(rtt);
    free(loss);
}

void bot_report_table(FILE *f, const bot_call_info *ci, size_t n, const bot_totals *t,
                      const bot_run_info *run)
{
    fprintf(f, "\n%-22s %-8s %-9s %9s %7s %7s %6s %7s %8s %7s %7s %5s  %s\n", "call", "role", "state",
            "setup_ms", "sent", "recv", "lost", "loss%", "gap_ms", "jit_ms", "rtt_ms", "MOS", "path");
    for (size_t i = 0; i < n; i++) {
        const bot_call_info *c = &ci[i];
        fprintf(f, "%-22.22s %-8s %-9s %9.1f %7llu %7llu %6llu %7.2f %8.0f %7.2f %7.1f %5.2f  %s %s\n",
                c->label, c->role, !c->media ? "FAILED" : c->held ? "held" : "audio", c->setup_ms,
                (unsigned long long)c->sent, (unsigned long long)c->received,
                (unsigned long long)c->lost, c->loss_pct, c->max_gap_ms, c->jitter_ms, c->rtt_ms,
                c->mos, c->selected, c->media ? c->srtp : c->end_reason);
        if (!c->pass)
            fprintf(f, "  ^ FAIL: %s\n", c->why);
    }
    fprintf(f, "\ntotals: %zu legs, %zu with audio, %zu held (loss < 1%%, no gap > 1 s), %zu failed; "
               "longest media gap %.0f ms; packets sent %llu received %llu lost %llu (%.3f%%)",
            t->legs, t->with_media, t->held, t->failed, t->gap_max_ms, (unsigned long long)t->sent,
            (unsigned long long)t->received, (unsigned long long)t->lost, t->loss_pct);
    if (t->dropped_on_purpose)
        fprintf(f, ", dropped on purpose %llu", (unsigned long long)t->dropped_on_purpose);
    fprintf(f, "\nsetup ms p50 %.1f p95 %.1f max %.1f | jitter ms p50 %.2f p95 %.2f | "
               "rtt ms p50 %.1f p95 %.1f | MOS p50 %.2f p5 %.2f min %.2f\n",
            t->setup_p50, t->setup_p95, t->setup_max, t->jitter_p50, t->jitter_p95, t->rtt_p50,
            t->rtt_p95, t->mos_p50, t->mos_p5, t->mos_min);
    fprintf(f, "bot: %d loop(s), busiest at cpu avg %.0f%% max %.0f%% of one core (process %.0f%%, "
               "other processes %.0f%% of %d cores), send-tick lag p99 %.1f ms max %.1f ms -> %s%s\n",
            run->threads, run->cpu_avg_pct, run->cpu_max_pct, run->process_cpu_avg_pct,
            run->others_avg_pct, run->ncpu, run->lag_p99_ms, run->lag_max_ms,
            run->bottleneck ? "the bot was the bottleneck: " : "bot not saturated",
            run->bottleneck ? run->bottleneck_why : "");
    if (run->machine_saturated)
        fprintf(f, "note: the machine's CPUs were saturated during the run (other processes %.0f%% "
                   "of a core): figures may include CPU contention\n",
                run->others_avg_pct);
    if (run->verdict[0])
        fprintf(f, "%s\n", run->verdict);
}

static json_t *num(double v) { return json_real(isfinite(v) ? round(v * 1000) / 1000 : 0); }

int bot_report_json(const char *path, const bot_call_info *ci, size_t n, const bot_totals *t,
                    const bot_run_info *run)
{
    json_t *root = json_object(), *calls = json_array();
    int rc;
    for (size_t i = 0; i < n; i++) {
        const bot_call_info *c = &ci[i];
        json_t *tl = json_array();
        for (size_t k = 0; k < c->stats->tl_n; k++) {
            const bot_sample *s = &c->stats->tl[k];
            json_array_append_new(tl, json_pack("[o,o,o,o]", num(s->t_s), num(s->jitter_ms),
                                                num(s->loss_pct), num(s->rtt_ms)));
        }
        json_array_append_new(
            calls,
            json_pack("{s:s,s:s,s:s,s:b,s:s,s:s,s:s,s:o,s:I,s:I,s:I,s:I,s:o,s:I,s:I,s:I,s:I,"
                      "s:o,s:o,s:o,s:o}",
                      "label", c->label, "peer", c->peer, "role", c->role, "media", c->media,
                      "end_reason", c->end_reason, "path", c->selected, "srtp", c->srtp,
                      "setup_ms", num(c->setup_ms), "sent", (json_int_t)c->sent, "received",
                      (json_int_t)c->received, "expected", (json_int_t)c->expected, "lost",
                      (json_int_t)c->lost, "loss_pct", num(c->loss_pct), "dropped_on_purpose",
                      (json_int_t)c->dropped_on_purpose, "decoded", (json_int_t)c->decoded,
                      "decode_errors", (json_int_t)c->decode_errors, "srtp_errors",
                      (json_int_t)c->srtp_errors, "jitter_ms", num(c->jitter_ms), "rtt_ms",
                      num(c->rtt_ms), "mos", num(c->mos), "timeline", tl));
        {
            /* TURN transport: how the relay was reached, and for turns: what
             * TLS said (handshakes done, version/cipher, the last failure). */
            json_t *o = json_array_get(calls, json_array_size(calls) - 1);
            json_object_set_new(o, "relay_transport", json_string(c->relay_transport ? c->relay_transport : ""));
            json_object_set_new(o, "tls_sessions", json_integer(c->tls_sessions));
            json_object_set_new(o, "tls", json_string(c->tls ? c->tls : ""));
            json_object_set_new(o, "turn_error", json_string(c->turn_error ? c->turn_error : ""));
            json_object_set_new(o, "stun_server", json_string(c->stun_server ? c->stun_server : ""));
            /* loss when media stops (issue 12) and the verdict (gates) */
            json_object_set_new(o, "max_gap_ms", num(c->max_gap_ms));
            json_object_set_new(o, "lost_seq", json_integer((json_int_t)c->lost_seq));
            json_object_set_new(o, "lost_sr", json_integer((json_int_t)c->lost_sr));
            json_object_set_new(o, "lost_clock", json_integer((json_int_t)c->lost_clock));
            json_object_set_new(o, "failed", json_boolean(c->failed));
            /* --ice-restart: restarts begun, the last one's start to audio again */
            json_object_set_new(o, "ice_restarts", json_integer(c->ice_restarts));
            json_object_set_new(o, "ice_restart_ms", num(c->restart_ms));
            json_object_set_new(o, "held", json_boolean(bot_call_info_held(c)));
            json_object_set_new(o, "pass", json_boolean(c->pass));
            json_object_set_new(o, "fail_reason", json_string(c->why));
        }
    }
    json_object_set_new(root, "turn_tls_verify", json_string(run->turn_tls_verify ? run->turn_tls_verify : ""));
    json_object_set_new(root, "mode", json_string(run->mode));
    json_object_set_new(root, "room", json_string(run->room));
    json_object_set_new(root, "signal", json_string(run->signal_url));
    json_object_set_new(root, "relay_only", json_boolean(run->relay_only));
    json_object_set_new(root, "duration_s", num(run->duration_s));
    json_object_set_new(root, "calls_requested", json_integer(run->calls_requested));
    json_object_set_new(root, "timeline_columns", json_pack("[s,s,s,s]", "t_s", "jitter_ms",
                                                             "loss_pct", "rtt_ms"));
    json_object_set_new(root, "calls", calls);
    json_object_set_new(
        root, "totals",
        json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:o,s:{s:o,s:o,s:o},s:{s:o,s:o,s:o},"
                  "s:{s:o,s:o},s:{s:o,s:o},s:o}",
                  "legs", (json_int_t)t->legs, "with_media", (json_int_t)t->with_media, "held",
                  (json_int_t)t->held, "sent", (json_int_t)t->sent, "received",
                  (json_int_t)t->received, "expected", (json_int_t)t->expected, "lost",
                  (json_int_t)t->lost, "dropped_on_purpose", (json_int_t)t->dropped_on_purpose,
                  "decoded", (json_int_t)t->decoded, "loss_pct", num(t->loss_pct), "setup_ms",
                  "p50", num(t->setup_p50), "p95", num(t->setup_p95), "max", num(t->setup_max),
                  "mos", "p50", num(t->mos_p50), "p5", num(t->mos_p5), "min", num(t->mos_min),
                  "jitter_ms", "p50", num(t->jitter_p50), "p95", num(t->jitter_p95), "rtt_ms",
                  "p50", num(t->rtt_p50), "p95", num(t->rtt_p95), "loss_pct_p95",
                  num(t->loss_p95)));
    {
        json_t *tt = json_object_get(root, "totals");
        json_object_set_new(tt, "failed", json_integer((json_int_t)t->failed));
        json_object_set_new(tt, "max_gap_ms", num(t->gap_max_ms));
    }
    json_object_set_new(root, "pass", json_boolean(run->pass));
    json_object_set_new(root, "verdict", json_string(run->verdict));
    json_object_set_new(root, "version", json_string(run->version ? run->version : ""));
    json_object_set_new(root, "started_at", json_string(run->started_at));
    json_object_set_new(root, "bot",
                        json_pack("{s:o,s:o,s:i,s:b,s:o,s:o,s:I,s:o,s:b,s:s,s:i,s:o}", "cpu_avg_pct",
                                  num(run->cpu_avg_pct), "other_processes_cpu_pct",
                                  num(run->others_avg_pct), "ncpu", run->ncpu,
                                  "machine_saturated", run->machine_saturated,
                                  "cpu_max_pct", num(run->cpu_max_pct), "send_lag_p99_ms",
                                  num(run->lag_p99_ms), "send_ticks_skipped",
                                  (json_int_t)run->ticks_skipped, "send_lag_max_ms", num(run->lag_max_ms),
                                  "bottleneck", run->bottleneck, "bottleneck_reason",
                                  run->bottleneck_why, "threads", run->threads,
                                  "process_cpu_avg_pct", num(run->process_cpu_avg_pct)));
    rc = json_dump_file(root, path, JSON_INDENT(1) | JSON_SORT_KEYS) ? -EIO : 0;
    json_decref(root);
    return rc;
}

/* --- HTML --- */

static void html_escape(FILE *f, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '&': fputs("&amp;", f); break;
        case '"': fputs("&quot;", f); break;
        default: fputc(*s, f);
        }
    }
}

#define W 720
#define H 220
#define PADL 50
#define PADB 30

static const char *color(size_t i)
{
    static const char *c[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                              "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
    return c[i % 10];
}

/* One line chart: column `col` of every call's timeline against time. */
static void svg_lines(FILE *f, const char *title, const char *unit, const bot_call_info *ci,
                      size_t n, int col)
{
    double tmax = 1, vmax = 0;
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < ci[i].stats->tl_n; k++) {
            const bot_sample *s = &ci[i].stats->tl[k];
            double v = col == 0 ? s->jitter_ms : col == 1 ? s->loss_pct : s->rtt_ms;
            if (s->t_s > tmax)
                tmax = s->t_s;
            if (v > vmax)
                vmax = v;
        }
    if (vmax <= 0)
        vmax = col == 1 ? 1 : 1;
    vmax *= 1.1;
    fprintf(f, "<h3>");
    html_escape(f, title);
    fprintf(f, "</h3>\n<svg width='%d' height='%d' viewBox='0 0 %d %d' "
               "xmlns='http://www.w3.org/2000/svg' font-size='11'>\n",
            W, H, W, H);
    fprintf(f, "<line x1='%d' y1='%d' x2='%d' y2='%d' stroke='#000'/>", PADL, H - PADB, W - 10,
            H - PADB);
    fprintf(f, "<line x1='%d' y1='10' x2='%d' y2='%d' stroke='#000'/>\n", PADL, PADL, H - PADB);
    for (int g = 0; g <= 4; g++) {
        double v = vmax * g / 4, y = (H - PADB) - (double)(H - PADB - 10) * g / 4;
        fprintf(f, "<text x='%d' y='%.1f' text-anchor='end'>%.2f</text>", PADL - 4, y + 4, v);
        fprintf(f, "<line x1='%d' y1='%.1f' x2='%d' y2='%.1f' stroke='#ddd'/>", PADL, y, W - 10, y);
    }
    fprintf(f, "<text x='%d' y='%d' text-anchor='end'>time (s), max %.0f</text>", W - 10, H - 8, tmax);
    fprintf(f, "<text x='%d' y='%d' text-anchor='middle' transform='rotate(-90 %d %d)'>", 12,
            H / 2, 12, H / 2);
    html_escape(f, unit);
    fprintf(f, "</text>\n");
    for (size_t i = 0; i < n; i++) {
        fprintf(f, "<polyline fill='none' stroke='%s' stroke-width='1.2' points='", color(i));
        for (size_t k = 0; k < ci[i].stats->tl_n; k++) {
            const bot_sample *s = &ci[i].stats->tl[k];
            double v = col == 0 ? s->jitter_ms : col == 1 ? s->loss_pct : s->rtt_ms;
            if (v < 0)
                continue; /* no RTT yet */
            fprintf(f, "%.1f,%.1f ", PADL + (W - 10 - PADL) * s->t_s / tmax,
                    (H - PADB) - (H - PADB - 10) * v / vmax);
        }
        fprintf(f, "'><title>");
        html_escape(f, ci[i].label);
        fprintf(f, "</title></polyline>\n");
    }
    fprintf(f, "</svg>\n");
}

static double tl_col(const bot_sample *s, int col)
{
    return col == 0 ? s->jitter_ms : col == 1 ? s->loss_pct : s->rtt_ms;
}

/* Many calls: one line each is unreadable, so p5..p95 as a band and p50 as a
 * line, over time bins (at most MAX_BINS, each call's last sample in a bin).
 * Memory: one value per call for the bin at hand, whatever the run's length. */
#define MAX_BINS 600
static void svg_bands(FILE *f, const char *title, const char *unit, const bot_call_info *ci,
                      size_t n, int col)
{
    double tmax = 1, vmax = 0, w;
    size_t nb, *cur = calloc(n + 1, sizeof *cur);
    double *v = calloc(n + 1, sizeof *v), (*band)[3] = NULL;
    bool *have = NULL;

    if (!cur || !v)
        goto out;
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < ci[i].stats->tl_n; k++)
            if (ci[i].stats->tl[k].t_s > tmax)
                tmax = ci[i].stats->tl[k].t_s;
    w = ceil(tmax / MAX_BINS);
    nb = (size_t)(tmax / w) + 1;
    band = calloc(nb, sizeof *band);
    have = calloc(nb, sizeof *have);
    if (!band || !have)
        goto out;
    for (size_t b = 0; b < nb; b++) {
        size_t m = 0;
        for (size_t i = 0; i < n; i++) {
            const bot_stats *st = ci[i].stats;
            double last = -1;
            while (cur[i] < st->tl_n && st->tl[cur[i]].t_s < (double)(b + 1) * w)
                last = tl_col(&st->tl[cur[i]++], col);
            if (last >= 0)
                v[m++] = last;
        }
        if (!m)
            continue;
        have[b] = true;
        band[b][0] = bot_percentile(v, m, 5);
        band[b][1] = bot_percentile(v, m, 50);
        band[b][2] = bot_percentile(v, m, 95);
        if (band[b][2] > vmax)
            vmax = band[b][2];
    }
    vmax = vmax > 0 ? vmax * 1.1 : 1;
    fprintf(f, "<h3>");
    html_escape(f, title);
    fprintf(f, " (p5-p95 band, p50 line, over %zu call legs)</h3>\n<svg width='%d' height='%d' "
               "xmlns='http://www.w3.org/2000/svg' font-size='11' class='bands'>\n",
            n, W, H);
    fprintf(f, "<line x1='%d' y1='%d' x2='%d' y2='%d' stroke='#000'/>", PADL, H - PADB, W - 10,
            H - PADB);
    fprintf(f, "<line x1='%d' y1='10' x2='%d' y2='%d' stroke='#000'/>\n", PADL, PADL, H - PADB);
    for (int g = 0; g <= 4; g++) {
        double y = (H - PADB) - (double)(H - PADB - 10) * g / 4;
        fprintf(f, "<text x='%d' y='%.1f' text-anchor='end'>%.2f</text>", PADL - 4, y + 4, vmax * g / 4);
    }
    fprintf(f, "<text x='%d' y='%d' text-anchor='end'>time (s), max %.0f</text>", W - 10, H - 8, tmax);
    fprintf(f, "<text x='12' y='%d' text-anchor='middle' transform='rotate(-90 12 %d)'>", H / 2, H / 2);
    html_escape(f, unit);
    fprintf(f, "</text>\n<polygon fill='#1f77b4' fill-opacity='0.25' stroke='none' points='");
    for (size_t b = 0; b < nb; b++)
        if (have[b])
            fprintf(f, "%.1f,%.1f ", PADL + (W - 10 - PADL) * (double)b * w / tmax,
                    (H - PADB) - (H - PADB - 10) * band[b][2] / vmax);
    for (size_t b = nb; b-- > 0;)
        if (have[b])
            fprintf(f, "%.1f,%.1f ", PADL + (W - 10 - PADL) * (double)b * w / tmax,
                    (H - PADB) - (H - PADB - 10) * band[b][0] / vmax);
    fprintf(f, "'><title>p5..p95</title></polygon>\n<polyline fill='none' stroke='#1f77b4' "
               "stroke-width='1.5' points='");
    for (size_t b = 0; b < nb; b++)
        if (have[b])
            fprintf(f, "%.1f,%.1f ", PADL + (W - 10 - PADL) * (double)b * w / tmax,
                    (H - PADB) - (H - PADB - 10) * band[b][1] / vmax);
    fprintf(f, "'><title>p50</title></polyline>\n</svg>\n");
out:
    free(cur);
    free(v);
    free(band);
    free(have);
}

/* MOS histogram, bins of 0.1 from 1.0 to 4.5. */
static void svg_mos(FILE *f, const bot_call_info *ci, size_t n)
{
    int bins[36] = {0}, maxc = 1;
    double bw = (double)(W - PADL - 10) / 36;
    for (size_t i = 0; i < n; i++) {
        int b = (int)((ci[i].mos - 1.0) * 10);
        b = b < 0 ? 0 : b > 35 ? 35 : b;
        if (++bins[b] > maxc)
            maxc = bins[b];
    }
    fprintf(f, "<h3>MOS distribution (E-model estimate, %zu call legs)</h3>\n"
               "<svg width='%d' height='%d' xmlns='http://www.w3.org/2000/svg' font-size='11'>\n",
            n, W, H);
    fprintf(f, "<line x1='%d' y1='%d' x2='%d' y2='%d' stroke='#000'/>\n", PADL, H - PADB, W - 10,
            H - PADB);
    for (int b = 0; b < 36; b++) {
        double h = (double)(H - PADB - 10) * bins[b] / maxc;
        double x = PADL + b * bw;
        if (bins[b])
            fprintf(f, "<rect x='%.1f' y='%.1f' width='%.1f' height='%.1f' fill='%s'><title>MOS "
                       "%.1f-%.1f: %d</title></rect><text x='%.1f' y='%.1f' "
                       "text-anchor='middle'>%d</text>\n",
                    x + 1, (H - PADB) - h, bw - 2, h, b >= 30 ? "#2ca02c" : b >= 25 ? "#bcbd22" : "#d62728",
                    1.0 + b / 10.0, 1.1 + b / 10.0, bins[b], x + bw / 2, (H - PADB) - h - 3, bins[b]);
        if (b % 5 == 0)
            fprintf(f, "<text x='%.1f' y='%d' text-anchor='middle'>%.1f</text>", x, H - PADB + 14,
                    1.0 + b / 10.0);
    }
    fprintf(f, "</svg>\n");
}

int bot_report_html(const char *path, const bot_call_info *ci, size_t n, const bot_totals *t,
                    const bot_run_info *run)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -errno;
    fprintf(f, "<!doctype html>\n<html><head><meta charset='utf-8'><title>tsunagu-bot report"
               "</title>\n<style>body{font-family:sans-serif;margin:2em;max-width:1100px}"
               "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;"
               "padding:2px 6px;text-align:right}td:first-child{text-align:left}.bad{color:#c00}"
               ".banner{padding:.6em 1em;font-size:1.2em;font-weight:bold;color:#fff}"
               ".pass{background:#2ca02c}.fail{background:#d62728}"
               "</style></head><body>\n<h1>tsunagu-bot report</h1>\n");
    /* The verdict first: a CI user opens the page to learn pass or fail. */
    fprintf(f, "<div class='banner %s' id='verdict'>", run->pass ? "pass" : "fail");
    html_escape(f, run->verdict[0] ? run->verdict : run->pass ? "PASS" : "FAIL");
    fprintf(f, "</div>\n<p id='when'>Run started ");
    html_escape(f, run->started_at[0] ? run->started_at : "(unknown)");
    fprintf(f, " UTC by ");
    html_escape(f, run->version ? run->version : "tsunagu-bot");
    fprintf(f, ".</p>\n<p>Mode <b>");
    html_escape(f, run->mode);
    fprintf(f, "</b>, room <b>");
    html_escape(f, run->room);
    fprintf(f, "</b>, signaling ");
    html_escape(f, run->signal_url);
    fprintf(f, ", %s, %.0f s.</p>\n", run->relay_only ? "relay only" : "all candidates",
            run->duration_s);
    fprintf(f, "<h2>Summary</h2><ul><li>%zu call legs, %zu carried audio, <b>%zu held with loss "
               "under 1%%</b></li><li>packets sent %llu, received %llu, lost %llu (%.3f%%)</li>"
               "<li>setup time (join to first decrypted packet) p50 %.1f ms, p95 %.1f ms</li>"
               "<li>MOS p50 %.2f, p5 %.2f, min %.2f</li><li>jitter p50 %.2f ms, p95 %.2f ms; RTT "
               "p50 %.1f ms, p95 %.1f ms</li>",
            t->legs, t->with_media, t->held, (unsigned long long)t->sent,
            (unsigned long long)t->received, (unsigned long long)t->lost, t->loss_pct,
            t->setup_p50, t->setup_p95, t->mos_p50, t->mos_p5, t->mos_min, t->jitter_p50,
            t->jitter_p95, t->rtt_p50, t->rtt_p95);
    fprintf(f, "<li%s>bot process: CPU avg %.0f%% max %.0f%% of one core, send-tick lag p99 %.1f "
               "ms, max %.1f ms: %s",
            run->bottleneck ? " class='bad'" : "", run->cpu_avg_pct, run->cpu_max_pct,
            run->lag_p99_ms, run->lag_max_ms,
            run->bottleneck ? "<b>the bot was the bottleneck:</b> " : "not saturated");
    html_escape(f, run->bottleneck_why);
    fprintf(f, "</li><li>%zu legs failed; longest media gap %.0f ms</li></ul>\n", t->failed,
            t->gap_max_ms);
    if (n > BOT_REPORT_MAX_LINES) {
        svg_bands(f, "Interarrival jitter (RFC 3550)", "ms", ci, n, 0);
        svg_bands(f, "Packet loss per second", "%", ci, n, 1);
        svg_bands(f, "Round-trip time (RTCP)", "ms", ci, n, 2);
    } else {
        svg_lines(f, "Interarrival jitter per call (RFC 3550)", "ms", ci, n, 0);
        svg_lines(f, "Packet loss per call, per second", "%", ci, n, 1);
        svg_lines(f, "Round-trip time per call (RTCP)", "ms", ci, n, 2);
    }
    svg_mos(f, ci, n);
    fprintf(f, "<h2>Calls</h2><table><tr><th>call</th><th>role</th><th>setup ms</th><th>sent"
               "</th><th>received</th><th>lost</th><th>loss %%</th><th>jitter ms</th><th>RTT ms"
               "</th><th>MOS</th><th>gap ms</th><th>path</th><th>SRTP</th><th>result</th></tr>\n");
    for (size_t i = 0; i < n; i++) {
        const bot_call_info *c = &ci[i];
        /* many legs: only those that failed, the rest are in the bands */
        if (n > BOT_REPORT_MAX_LINES && c->pass)
            continue;
        fprintf(f, "<tr%s><td style='color:%s'>", c->pass ? "" : " class='bad'", color(i));
        html_escape(f, c->label);
        fprintf(f, "</td><td>%s</td><td>%.1f</td><td>%llu</td><td>%llu</td><td>%llu</td>"
                   "<td>%.2f</td><td>%.2f</td><td>%.1f</td><td>%.2f</td><td>",
                c->role, c->setup_ms, (unsigned long long)c->sent,
                (unsigned long long)c->received, (unsigned long long)c->lost, c->loss_pct,
                c->jitter_ms, c->rtt_ms, c->mos);
        fprintf(f, "%.0f</td><td>", c->max_gap_ms);
        html_escape(f, c->selected);
        fprintf(f, "</td><td>");
        html_escape(f, c->media ? c->srtp : c->end_reason);
        fprintf(f, "</td><td>");
        html_escape(f, c->pass ? "pass" : c->why);
        fprintf(f, "</td></tr>\n");
    }
    fprintf(f, "</table>\n");
    if (n > BOT_REPORT_MAX_LINES)
        fprintf(f, "<p>%zu legs passed and are not listed (%zu legs in all).</p>\n",
                n - t->failed, n);
    fprintf(f, "<p>MOS: simplified ITU-T G.107 E-model (see docs/bot.md): R = 93.2 - "
               "Id - Ie_eff with Ie = 0, Bpl = 25.1, random loss.</p></body></html>\n");
    return fclose(f) ? -errno : 0;
}
