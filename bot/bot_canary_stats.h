/* bot_canary_stats.h - what the canary (tsunagu-bot --canary) learned about
 * each relay, and its Prometheus text.
 *
 * One entry per relay (its turn: URL as signaling hands it out), at most
 * BOT_CANARY_MAX_RELAYS; probes of further relays are counted under
 * relay="other", so the table never grows however long the canary runs or
 * whatever signaling hands out. Gauges describe the last probe of the relay;
 * counters add up. Pure: no I/O, callers pass the wall clock. One owner
 * thread (the bot's main loop). */
#ifndef BOT_CANARY_STATS_H
#define BOT_CANARY_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rtc_metrics.h"

#define BOT_CANARY_MAX_RELAYS 16
#define BOT_CANARY_RELAY_LEN 256

/* One probe: a short call between two members of the canary through one
 * relay. Figures over its two legs: the worst setup, MOS, loss and jitter,
 * the mean RTT (-1 = none measured). */
typedef struct {
    bool ok;              /* both legs passed (bot_report_judge) */
    double setup_ms;      /* -1 when no audio */
    double mos, loss_pct, jitter_ms, rtt_ms;
} bot_canary_probe;

typedef struct {
    char relay[BOT_CANARY_RELAY_LEN];
    uint64_t attempted, succeeded;
    bool last_ok, have_media;
    double setup_ms, mos, loss_pct, jitter_ms, rtt_ms;
    double last_success_s;   /* wall clock, 0 = never */
} bot_canary_relay;

typedef struct {
    bot_canary_relay r[BOT_CANARY_MAX_RELAYS + 1]; /* the last is "other" */
    size_t n;
    uint64_t rounds;
    double start_s;
} bot_canary_stats;

void bot_canary_stats_init(bot_canary_stats *s, double now_s);
/* Account one probe of `relay` (a URL; truncated to fit) at wall time now_s. */
void bot_canary_stats_record(bot_canary_stats *s, const char *relay, const bot_canary_probe *p,
                             double now_s);
/* The entry of `relay`, NULL if never probed (for tests). */
const bot_canary_relay *bot_canary_stats_get(const bot_canary_stats *s, const char *relay);
/* Every metric, with HELP and TYPE lines (docs/bot.md lists them). */
void bot_canary_stats_render(const bot_canary_stats *s, rtc_buf *b);

#endif
