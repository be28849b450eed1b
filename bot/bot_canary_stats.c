/* bot_canary_stats.c - per-relay canary figures and their Prometheus text
 * (see bot_canary_stats.h). */
#include "bot_canary_stats.h"

#include <stdio.h>
#include <string.h>

void bot_canary_stats_init(bot_canary_stats *s, double now_s)
{
    memset(s, 0, sizeof *s);
    s->start_s = now_s;
    snprintf(s->r[BOT_CANARY_MAX_RELAYS].relay, BOT_CANARY_RELAY_LEN, "other");
}

static bot_canary_relay *slot(bot_canary_stats *s, const char *relay)
{
    for (size_t i = 0; i < s->n; i++)
        if (!strncmp(s->r[i].relay, relay, BOT_CANARY_RELAY_LEN - 1))
            return &s->r[i];
    if (s->n == BOT_CANARY_MAX_RELAYS)
        return &s->r[BOT_CANARY_MAX_RELAYS]; /* bounded: the rest is "other" */
    snprintf(s->r[s->n].relay, BOT_CANARY_RELAY_LEN, "%s", relay);
    return &s->r[s->n++];
}

void bot_canary_stats_record(bot_canary_stats *s, const char *relay, const bot_canary_probe *p,
                             double now_s)
{
    bot_canary_relay *r = slot(s, relay);
    r->attempted++;
    r->last_ok = p->ok;
    if (p->ok) {
        r->succeeded++;
        r->last_success_s = now_s;
    }
    /* A probe without audio has no quality to show: keep the last figures
     * with audio, the failure shows in last_ok and the counters. */
    if (p->setup_ms >= 0) {
        r->have_media = true;
        r->setup_ms = p->setup_ms;
        r->mos = p->mos;
        r->loss_pct = p->loss_pct;
        r->jitter_ms = p->jitter_ms;
        r->rtt_ms = p->rtt_ms;
    }
}

const bot_canary_relay *bot_canary_stats_get(const bot_canary_stats *s, const char *relay)
{
    for (size_t i = 0; i <= BOT_CANARY_MAX_RELAYS; i++)
        if ((i < s->n || (i == BOT_CANARY_MAX_RELAYS && s->r[i].attempted)) &&
            !strcmp(s->r[i].relay, relay))
            return &s->r[i];
    return NULL;
}

/* relay="..." with the exposition format's escapes (\\, \", \n). */
static void label(char *out, size_t cap, const char *relay)
{
    size_t o = 0;
    o += (size_t)snprintf(out, cap, "relay=\"");
    for (const char *p = relay; *p && o + 4 < cap; p++) {
        if (*p == '\\' || *p == '"') {
            out[o++] = '\\';
            out[o++] = *p;
        } else if (*p == '\n') {
            out[o++] = '\\';
            out[o++] = 'n';
        } else {
            out[o++] = *p;
        }
    }
    out[o++] = '"';
    out[o] = '\0';
}

typedef enum { F_ATT, F_OK, F_LAST, F_SETUP, F_MOS, F_LOSS, F_JIT, F_RTT, F_LASTOK_TS } field;

static const struct {
    const char *name, *type, *help;
    bool media; /* only once the relay carried audio */
} metric[] = {
    [F_ATT] = {"tsunagu_bot_canary_calls_attempted_total", "counter", "Canary calls placed through the relay", false},
    [F_OK] = {"tsunagu_bot_canary_calls_succeeded_total", "counter", "Canary calls through the relay whose both legs passed (audio, loss < 1%, no gap > 1 s)", false},
    [F_LAST] = {"tsunagu_bot_canary_last_call_success", "gauge", "1 if the relay's last canary call succeeded, else 0", false},
    [F_SETUP] = {"tsunagu_bot_canary_setup_seconds", "gauge", "Set-up time (join to first audio) of the relay's last canary call with audio, slower leg", true},
    [F_MOS] = {"tsunagu_bot_canary_mos", "gauge", "E-model MOS of the relay's last canary call with audio, worse leg", true},
    [F_LOSS] = {"tsunagu_bot_canary_loss_ratio", "gauge", "Packet loss (0-1) of the relay's last canary call with audio, worse leg", true},
    [F_JIT] = {"tsunagu_bot_canary_jitter_seconds", "gauge", "Interarrival jitter of the relay's last canary call with audio, worse leg", true},
    [F_RTT] = {"tsunagu_bot_canary_rtt_seconds", "gauge", "RTCP round-trip time of the relay's last canary call with audio, mean of the legs", true},
    [F_LASTOK_TS] = {"tsunagu_bot_canary_last_success_timestamp_seconds", "gauge", "Wall-clock time of the relay's last successful canary call (0 = never)", false},
};

void bot_canary_stats_render(const bot_canary_stats *s, rtc_buf *b)
{
    char lab[BOT_CANARY_RELAY_LEN * 2 + 16];
    rtc_metrics_build_info(b);
    rtc_metrics_process(b, s->start_s);
    rtc_metrics_one(b, "tsunagu_bot_canary_rounds_total", "counter",
                    "Canary rounds started (one call per relay each)", s->rounds);
    for (size_t f = 0; f < sizeof metric / sizeof metric[0]; f++) {
        rtc_metrics_header(b, metric[f].name, metric[f].type, metric[f].help);
        for (size_t i = 0; i <= BOT_CANARY_MAX_RELAYS; i++) {
            const bot_canary_relay *r = &s->r[i];
            if (i >= s->n && !(i == BOT_CANARY_MAX_RELAYS && r->attempted))
                continue;
            if (metric[f].media && !r->have_media)
                continue;
            label(lab, sizeof lab, r->relay);
            switch ((field)f) {
            case F_ATT: rtc_metrics_u64(b, metric[f].name, lab, r->attempted); break;
            case F_OK: rtc_metrics_u64(b, metric[f].name, lab, r->succeeded); break;
            case F_LAST: rtc_metrics_u64(b, metric[f].name, lab, r->last_ok ? 1 : 0); break;
            case F_SETUP: rtc_metrics_f64(b, metric[f].name, lab, r->setup_ms / 1000.0); break;
            case F_MOS: rtc_metrics_f64(b, metric[f].name, lab, r->mos); break;
            case F_LOSS: rtc_metrics_f64(b, metric[f].name, lab, r->loss_pct / 100.0); break;
            case F_JIT: rtc_metrics_f64(b, metric[f].name, lab, r->jitter_ms / 1000.0); break;
            case F_RTT:
                if (r->rtt_ms >= 0)
                    rtc_metrics_f64(b, metric[f].name, lab, r->rtt_ms / 1000.0);
                break;
            case F_LASTOK_TS: rtc_metrics_f64(b, metric[f].name, lab, r->last_success_s); break;
            default: break;
            }
        }
    }
}
