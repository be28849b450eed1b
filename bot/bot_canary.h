/* bot_canary.h - canary calls (tsunagu-bot --canary SECONDS, issue 12 item 2):
 * dogfooding in production. Every SECONDS a round starts: for each relay
 * signaling hands out (each turn: URL of joined.iceServers), one after the
 * other, two members of this process join a fresh room, call each other
 * relay-only through that relay alone, carry audio for a few seconds, are
 * judged as load mode judges a leg (bot_report_judge), and leave. The
 * figures go to a bot_canary_stats served on --metrics-listen as Prometheus
 * text (GET /metrics; /healthz says ok).
 *
 * Probe states: IDLE -> JOINING_A (first member joins, learns the relays)
 * -> JOINING_B (second joins and offers) -> CALLING (until both legs had
 * audio for call_s, or the probe's deadline) -> judged, torn down -> the
 * next relay's probe, or IDLE until the next round. A round that finds the
 * last still running is skipped (counted in the log), so probes never pile
 * up. Calls and connections are freed after each probe and the per-relay
 * table is bounded: memory stays flat for weeks.
 * Main thread; the calls run on a worker on the main loop. */
#ifndef BOT_CANARY_H
#define BOT_CANARY_H

#include <stdint.h>

#include "bot_call.h"
#include "bot_sig.h"
#include "bot_worker.h"

typedef struct {
    const char *signal, *room, *name;
    const bot_env *env;          /* borrowed; relay_only is forced by the canary's env */
    bot_sig_ctx *sigctx;         /* borrowed */
    bot_worker *worker;          /* borrowed; must run on the main loop */
    unsigned interval_s;         /* a round every interval_s */
    unsigned call_s;             /* audio per probe once both legs have it */
    unsigned setup_timeout_s;    /* no audio on both legs by then: failed */
    const char *metrics_listen;  /* ADDR:PORT */
} bot_canary_params;

typedef struct bot_canary bot_canary;

/* Listens and starts the first round at once. NULL with a reason in err. */
bot_canary *bot_canary_new(const bot_canary_params *p, char *err, size_t errlen);
uint16_t bot_canary_metrics_port(const bot_canary *c);
/* Tears down a probe in progress. NULL is a no-op. */
void bot_canary_free(bot_canary *c);

#endif
