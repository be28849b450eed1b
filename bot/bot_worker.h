/* bot_worker.h - a loop that owns calls: its GMainContext carries the calls'
 * libnice agents, DTLS timers, the 20 ms media clock (with its own Opus
 * encoder) and the once-a-second RTCP and statistics.
 *
 * Worker 0 may run on the main thread's context (own_thread false): then
 * posting to it calls the function at once, and everything is one loop, as
 * in member mode. Other workers run on threads of their own; the main
 * thread (signaling) reaches them only through bot_worker_post, and they
 * reach it only through g_main_context_invoke on the global default context.
 * Statistics cross threads only as a snapshot under a mutex, and in full
 * after bot_worker_join. */
#ifndef BOT_WORKER_H
#define BOT_WORKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <glib.h>

#include "bot_call.h"

typedef struct bot_worker bot_worker;

/* Progress figures, refreshed by the worker once a second. */
typedef struct {
    size_t legs, media, failed;
    uint64_t lost, expected;
    double jitter_sum, rtt_sum;
    size_t n_rtt;
} bot_worker_snap;

/* How the worker's own loop fared (valid after bot_worker_join). */
typedef struct {
    double cpu_avg_pct, cpu_max_pct; /* this thread, % of one core */
    double lag_p99_ms, lag_max_ms;   /* lateness of its 20 ms send clock (steady state) */
    uint64_t ticks_skipped;          /* frames dropped because >200 ms late */
} bot_worker_load;

/* `wav` NULL = synthetic audio. NULL with a reason in err. */
bot_worker *bot_worker_new(int index, bool own_thread, const bot_env *env, const char *wav,
                           char *err, size_t errlen);
/* Run fn(data) on the worker's loop (at once if that is the caller's loop);
 * `destroy` (may be NULL) frees data afterwards. */
void bot_worker_post(bot_worker *w, GSourceFunc fn, gpointer data, GDestroyNotify destroy);
/* On the worker: true once bot_worker_finish has run there (no new calls). */
bool bot_worker_stopping(const bot_worker *w);
/* On the worker: it owns c from now on. */
void bot_worker_adopt(bot_worker *w, bot_call *c);
/* On the worker: it no longer owns c (the caller frees it); false if it
 * did not. The canary's calls come and go; a load run's stay to the end. */
bool bot_worker_release(bot_worker *w, bot_call *c);
/* From main: every call is set up; lateness counts from now on (the lag
 * figures then describe carrying the calls, not setting them up). */
void bot_worker_steady(bot_worker *w);
/* From main: stop every call, stop the clocks, let libnice release its TURN
 * allocations for ~300 ms, then end the worker's loop. */
void bot_worker_finish(bot_worker *w);
/* From main, after bot_worker_finish and once the main loop has ended. */
void bot_worker_join(bot_worker *w);
void bot_worker_snapshot(bot_worker *w, bot_worker_snap *out);
void bot_worker_get_load(bot_worker *w, bot_worker_load *out);
/* After join: the calls, in adoption order. */
size_t bot_worker_n_calls(const bot_worker *w);
bot_call *bot_worker_call(const bot_worker *w, size_t i);
/* Frees the calls too. NULL is a no-op. */
void bot_worker_free(bot_worker *w);

#endif
