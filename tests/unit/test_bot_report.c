/* test_bot_report.c - totals and percentiles over call legs, and the JSON
 * and HTML reports written from them (read back, not just produced). */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bot_report.h"
#include "tap.h"

#define NEAR(a, b) (fabs((a) - (b)) < 1e-6)

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    long n;
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = calloc(1, (size_t)n + 1);
    if (fread(buf, 1, (size_t)n, f) != (size_t)n)
        buf[0] = '\0';
    fclose(f);
    return buf;
}

/* 25 legs: percentile bands instead of 25 lines, only the failed leg in
 * the table, a PASS banner when all pass. */
static void many_legs(const char *hpath)
{
    enum { N = 25 };
    bot_stats st[N];
    bot_call_info ci[N];
    bot_totals t;
    bot_run_info run;
    bot_gates none = {0, -1, 0};
    char *h;

    memset(&run, 0, sizeof run);
    run.mode = "load";
    run.room = run.signal_url = "x";
    for (int i = 0; i < N; i++) {
        bot_stats_init(&st[i], 48000);
        /* leg i: jitter i ms in every second */
        for (int k = 0; k < 5; k++) {
            bot_stats_sample(&st[i], k + 0.5);
            st[i].tl[k].jitter_ms = i;
        }
        memset(&ci[i], 0, sizeof ci[i]);
        ci[i].stats = &st[i];
        ci[i].label = i == 7 ? "leg-seven" : "leg";
        ci[i].role = "offerer";
        ci[i].state = "ended";
        ci[i].end_reason = "bot finished";
        ci[i].selected = ci[i].srtp = ci[i].peer = "x";
        ci[i].media = true;
        ci[i].mos = 4.4;
        ci[i].rtt_ms = 1;
    }
    bot_report_judge(ci, N, &none);
    bot_totals_compute(ci, N, &t);
    bot_report_verdict(ci, N, N, &run);
    is_int(bot_report_html(hpath, ci, N, &t, &run), 0, "25-leg HTML written");
    h = slurp(hpath);
    ok(h && strstr(h, "class='banner pass'") && strstr(h, "PASS: all 25 legs passed"), "PASS banner");
    ok(h && strstr(h, "class='bands'") && strstr(h, "p5-p95 band, p50 line, over 25 call legs"),
       "bands instead of lines");
    ok(h && strstr(h, "<title>p50</title>"), "p50 line drawn");
    ok(h && strstr(h, "25 legs passed and are not listed"), "passing legs not listed");
    free(h);
    ci[7].loss_pct = 5;
    bot_report_judge(ci, N, &none);
    bot_totals_compute(ci, N, &t);
    bot_report_verdict(ci, N, N, &run);
    bot_report_html(hpath, ci, N, &t, &run);
    h = slurp(hpath);
    ok(h && strstr(h, "class='banner fail'") && strstr(h, "leg-seven") &&
       strstr(h, "24 legs passed and are not listed"), "one failed leg listed, FAIL banner");
    free(h);
    /* the band's p50 of jitter 0..24 is 12: y = 190 - 180 * 12 / (24 * 1.1) */
    {
        double v[N];
        for (int i = 0; i < N; i++)
            v[i] = i;
        ok(NEAR(bot_percentile(v, N, 50), 12) && NEAR(bot_percentile(v, N, 95), 22.8),
           "percentiles the bands use");
    }
    for (int i = 0; i < N; i++)
        bot_stats_dispose(&st[i]);
}

int main(void)
{
    bot_stats st[3];
    bot_call_info ci[3];
    bot_totals t;
    bot_run_info run;
    char jpath[] = "/tmp/test_bot_report_XXXXXX", hpath[64];
    int fd;

    for (int i = 0; i < 3; i++) {
        bot_stats_init(&st[i], 48000);
        bot_stats_sample(&st[i], 1.0);
        memset(&ci[i], 0, sizeof ci[i]);
        ci[i].stats = &st[i];
        ci[i].role = i % 2 ? "answerer" : "offerer";
        ci[i].state = "ended";
        ci[i].end_reason = "bot finished";
        ci[i].selected = "relay/udp";
        ci[i].srtp = "AEAD_AES_128_GCM";
        ci[i].peer = "p";
    }
    ci[0].label = "a<b>&c";  /* must come out escaped in HTML */
    ci[0].media = true;
    ci[0].setup_ms = 100;
    ci[0].sent = ci[0].received = ci[0].expected = 1000;
    ci[0].jitter_ms = 1;
    ci[0].rtt_ms = 10;
    ci[0].mos = 4.4;
    ci[1].label = "lossy";
    ci[1].media = true;
    ci[1].setup_ms = 300;
    ci[1].sent = 1000;
    ci[1].expected = 1000;
    ci[1].received = 980;
    ci[1].lost = 20;
    ci[1].loss_pct = 2.0;
    ci[1].jitter_ms = 3;
    ci[1].rtt_ms = -1; /* no RTCP answer yet: left out of RTT percentiles */
    ci[1].mos = 3.9;
    ci[2].label = "failed";
    ci[2].mos = 1.0;
    ci[2].setup_ms = -1;
    ci[2].rtt_ms = -1;

    {
        /* the default rule, then gates (bot_report.h) */
        bot_gates none = {0, -1, 0}, strict = {4.2, 0.5, 200};
        bot_run_info v;
        ci[0].max_gap_ms = 40;
        ci[1].max_gap_ms = 1500; /* the media stopped for 1.5 s */
        bot_report_judge(ci, 3, &none);
        ok(ci[0].pass && !ci[0].why[0], "clean leg passes without gates");
        ok(!ci[1].pass && strstr(ci[1].why, "media gap 1.5 s > 1 s") &&
           strstr(ci[1].why, "loss 2.00% >= 1% (not held)"), "lossy leg: gap and loss named");
        ok(!ci[2].pass && !strcmp(ci[2].why, "no audio (bot finished)"), "leg without audio");
        memset(&v, 0, sizeof v);
        bot_report_verdict(ci, 3, 0, &v);
        ok(!v.pass && strstr(v.verdict, "FAIL: 2 of 3 legs failed, first lossy"), "run fails");
        bot_report_verdict(ci, 1, 0, &v);
        ok(v.pass && !strcmp(v.verdict, "PASS: all 1 legs passed"), "one clean leg: pass");
        bot_report_verdict(ci, 1, 2, &v);
        ok(!v.pass && strstr(v.verdict, "1 of 2 call legs exist"), "missing legs fail the run");
        bot_report_judge(ci, 3, &strict);
        ok(ci[0].pass && !ci[0].why[0], "within every gate: setup 100 ms, MOS 4.4, loss 0");
        ci[0].setup_ms = 250;
        bot_report_judge(ci, 1, &strict);
        ok(!ci[0].pass && !strcmp(ci[0].why, "setup 250 ms > --max-setup-ms 200"), "setup gate");
        ci[0].setup_ms = 100;
        ci[0].mos = 4.1;
        ci[0].loss_pct = 0.6;
        bot_report_judge(ci, 1, &strict);
        ok(!strcmp(ci[0].why, "loss 0.60% > --max-loss 0.50%; MOS 4.10 < --min-mos 4.20"),
           "loss and MOS gates, in order");
        ci[0].mos = 4.4;
        ci[0].loss_pct = 0;
        strict.max_loss_pct = 3; /* looser than the held bound */
        bot_report_judge(ci, 2, &strict);
        ok(ci[0].pass && strstr(ci[1].why, "loss") == NULL && strstr(ci[1].why, "media gap"),
           "--max-loss 3 lets 2% pass; the gap still fails");
        bot_report_judge(ci, 3, &none);
    }
    bot_totals_compute(ci, 3, &t);
    is_int(t.legs, 3, "legs");
    is_int(t.with_media, 2, "with media");
    is_int(t.held, 1, "held: media and loss < 1%");
    is_int(t.failed, 2, "failed legs counted");
    ok(NEAR(t.gap_max_ms, 1500), "longest gap over legs");
    is_int(t.lost, 20, "lost summed");
    ok(NEAR(t.loss_pct, 1.0), "overall loss = 20 / 2000 expected");
    ok(NEAR(t.setup_p50, 200) && NEAR(t.setup_p95, 290) && NEAR(t.setup_max, 300),
       "setup percentiles over legs with media only");
    ok(NEAR(t.rtt_p50, 10), "RTT only from legs with samples");
    ok(NEAR(t.mos_min, 1.0) && NEAR(t.mos_p50, 3.9), "MOS over all legs, failed = 1.0");

    memset(&run, 0, sizeof run);
    run.version = "tsunagu-bot 9.9 (abc)";
    snprintf(run.started_at, sizeof run.started_at, "2026-12-06T10:00:00Z");
    bot_report_verdict(ci, 3, 0, &run);
    run.mode = "load";
    run.room = "r";
    run.signal_url = "ws://x/ws";
    run.threads = 1;
    fd = mkstemp(jpath);
    ok(fd >= 0, "temp file");
    close(fd);
    snprintf(hpath, sizeof hpath, "%s.html", jpath);
    is_int(bot_report_json(jpath, ci, 3, &t, &run), 0, "JSON written");
    {
        json_error_t e;
        json_t *r = json_load_file(jpath, 0, &e);
        json_t *calls = json_object_get(r, "calls");
        ok(r != NULL, "JSON parses");
        is_int(json_array_size(calls), 3, "three calls");
        ok(!strcmp(json_string_value(json_object_get(json_array_get(calls, 2), "label")), "failed"),
           "labels kept");
        is_int(json_integer_value(json_object_get(json_object_get(r, "totals"), "held")), 1,
               "totals.held");
        ok(json_is_array(json_object_get(json_array_get(calls, 0), "timeline")), "timeline present");
        ok(json_is_boolean(json_object_get(json_object_get(r, "bot"), "bottleneck")), "bot section");
        json_decref(r);
    }
    is_int(bot_report_html(hpath, ci, 3, &t, &run), 0, "HTML written");
    {
        char *h = slurp(hpath);
        ok(h && strstr(h, "<svg") && strstr(h, "MOS distribution"), "HTML has plots");
        ok(h && strstr(h, "a&lt;b&gt;&amp;c") && !strstr(h, "a<b>&c"), "labels escaped");
        free(h);
    }
    {
        /* HTML: the verdict banner, the date and version, the run failed */
        char *h = slurp(hpath);
        ok(h && strstr(h, "class='banner fail'") && strstr(h, "FAIL: 2 of 3 legs failed"),
           "HTML banner says FAIL with the verdict");
        ok(h && strstr(h, "2026-12-06T10:00:00Z") && strstr(h, "tsunagu-bot 9.9 (abc)"),
           "HTML has the date and the version");
        ok(h && !strstr(h, "class='bands'") && strstr(h, "<polyline"), "3 legs: one line each");
        free(h);
    }
    many_legs(hpath);
    unlink(jpath);
    unlink(hpath);
    for (int i = 0; i < 3; i++)
        bot_stats_dispose(&st[i]);
    return done_testing();
}
