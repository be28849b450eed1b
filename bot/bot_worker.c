/* bot_worker.c - a loop owning calls (see bot_worker.h). */
#include "bot_worker.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "bot_audio.h"
#include "bot_loop.h"
#include "rtc_clock.h"
#include "rtc_log.h"

struct bot_worker {
    int index;
    GThread *thread;      /* NULL: runs on the main thread's loop */
    GMainContext *ctx;
    GMainLoop *loop;      /* own thread only */
    GPtrArray *calls;     /* bot_call*, owned */
    bot_audio_src *src;
    uint64_t next_tick_us, ticks_skipped;
    GArray *lag_ms;       /* steady state only, once marked (see bot_worker_steady) */
    bool steady;
    GSource *tick, *sec;
    double cpu_sum, cpu_max;
    int cpu_n;
    uint64_t cpu_prev_us, wall_prev_us;
    bool stopping;
    pthread_mutex_t mu;   /* guards snap; a pthread mutex so TSan sees it */
    bot_worker_snap snap;
};

/* CPU of the calling thread only: each worker judges its own loop. */
static uint64_t thread_cpu_us(void)
{
    struct rusage ru;
    getrusage(RUSAGE_THREAD, &ru);
    return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000u +
           (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

/* The 20 ms media clock, deadline-driven so lateness is measurable: each
 * deadline passed sends one frame. More than 200 ms behind, the backlog is
 * dropped (as a real audio device would) and counted, since sending it as a
 * burst would only overflow socket buffers and feed the overload. */
static gboolean on_tick(gpointer ud)
{
    bot_worker *w = ud;
    uint64_t now = rtc_clock_mono_us();
    bot_timer_fired(&w->tick);
    if (now > w->next_tick_us + 200000) {
        uint64_t skip = (now - w->next_tick_us) / 20000;
        double lag = (double)(now - w->next_tick_us) / 1000.0;
        g_array_append_val(w->lag_ms, lag);
        w->ticks_skipped += skip;
        w->next_tick_us += skip * 20000;
    }
    while (w->next_tick_us <= now) {
        uint8_t payload[BOT_AUDIO_MAX_PAYLOAD];
        int n = bot_audio_src_next(w->src, payload, sizeof payload);
        double lag = (double)(now - w->next_tick_us) / 1000.0;
        g_array_append_val(w->lag_ms, lag);
        if (n > 0)
            for (guint i = 0; i < w->calls->len; i++)
                bot_call_send_audio(w->calls->pdata[i], payload, (size_t)n, now);
        w->next_tick_us += 20000;
    }
    if (!w->stopping)
        w->tick = bot_timer_new((guint)((w->next_tick_us - now) / 1000), on_tick, w);
    return G_SOURCE_REMOVE;
}

static gboolean on_second(gpointer ud)
{
    bot_worker *w = ud;
    uint64_t now = rtc_clock_mono_us(), c = thread_cpu_us();
    bot_worker_snap s;
    double cpu = 100.0 * (double)(c - w->cpu_prev_us) / (double)(now - w->wall_prev_us + 1);

    w->cpu_prev_us = c;
    w->wall_prev_us = now;
    w->cpu_sum += cpu;
    w->cpu_n++;
    if (cpu > w->cpu_max)
        w->cpu_max = cpu;
    memset(&s, 0, sizeof s);
    for (guint i = 0; i < w->calls->len; i++) {
        bot_call_info ci;
        bot_call_second(w->calls->pdata[i], now);
        bot_call_info_get(w->calls->pdata[i], &ci);
        s.legs++;
        if (ci.media) {
            s.media++;
            s.jitter_sum += ci.jitter_ms;
            if (ci.rtt_ms >= 0) {
                s.rtt_sum += ci.rtt_ms;
                s.n_rtt++;
            }
        } else if (!strcmp(ci.state, "ended")) {
            s.failed++;
        }
        s.lost += ci.lost;
        s.expected += ci.expected;
    }
    pthread_mutex_lock(&w->mu);
    w->snap = s;
    pthread_mutex_unlock(&w->mu);
    return G_SOURCE_CONTINUE;
}

/* Clocks start on the worker's own thread so their sources land on its
 * context (bot_timer_new uses the thread-default context). */
static gboolean start_clocks(gpointer ud)
{
    bot_worker *w = ud;
    w->wall_prev_us = rtc_clock_mono_us();
    w->cpu_prev_us = thread_cpu_us();
    w->next_tick_us = w->wall_prev_us + 20000;
    w->tick = bot_timer_new(20, on_tick, w);
    w->sec = bot_timer_new(1000, on_second, w);
    return G_SOURCE_REMOVE;
}

static gpointer thread_main(gpointer ud)
{
    bot_worker *w = ud;
    g_main_context_push_thread_default(w->ctx);
    g_main_loop_run(w->loop);
    g_main_context_pop_thread_default(w->ctx);
    return NULL;
}

bot_worker *bot_worker_new(int index, bool own_thread, const bot_env *env, const char *wav,
                           char *err, size_t errlen)
{
    bot_worker *w = calloc(1, sizeof *w);
    char name[16];
    (void)env;
    if (!w)
        return NULL;
    w->index = index;
    w->src = bot_audio_src_new(wav, err, errlen);
    if (!w->src) {
        free(w);
        return NULL;
    }
    w->calls = g_ptr_array_new();
    w->lag_ms = g_array_new(FALSE, FALSE, sizeof(double));
    pthread_mutex_init(&w->mu, NULL);
    if (!own_thread) {
        w->ctx = g_main_context_ref(g_main_context_default());
        start_clocks(w);
        return w;
    }
    w->ctx = g_main_context_new();
    w->loop = g_main_loop_new(w->ctx, FALSE);
    snprintf(name, sizeof name, "bot-worker-%d", index);
    w->thread = g_thread_new(name, thread_main, w);
    bot_worker_post(w, start_clocks, w, NULL);
    return w;
}

void bot_worker_post(bot_worker *w, GSourceFunc fn, gpointer data, GDestroyNotify destroy)
{
    g_main_context_invoke_full(w->ctx, G_PRIORITY_DEFAULT, fn, data, destroy);
}

bool bot_worker_stopping(const bot_worker *w) { return w->stopping; }

static gboolean do_steady(gpointer ud)
{
    bot_worker *w = ud;
    /* Lateness while calls were being set up (DTLS handshakes, agents
     * gathering) says little about carrying them: start over. */
    g_array_set_size(w->lag_ms, 0);
    w->steady = true;
    return G_SOURCE_REMOVE;
}

void bot_worker_steady(bot_worker *w) { bot_worker_post(w, do_steady, w, NULL); }

void bot_worker_adopt(bot_worker *w, bot_call *c) { g_ptr_array_add(w->calls, c); }

static gboolean quit_loop(gpointer ud)
{
    g_main_loop_quit(ud);
    return G_SOURCE_REMOVE;
}

static gboolean do_finish(gpointer ud)
{
    bot_worker *w = ud;
    w->stopping = true;
    bot_timer_cancel(&w->tick);
    bot_timer_cancel(&w->sec);
    for (guint i = 0; i < w->calls->len; i++)
        bot_call_stop(w->calls->pdata[i], "bot finished");
    if (w->loop) {
        GSource *s = bot_timer_new(300, quit_loop, w->loop);
        g_source_unref(s); /* the source holds itself until it fires */
    }
    return G_SOURCE_REMOVE;
}

void bot_worker_finish(bot_worker *w) { bot_worker_post(w, do_finish, w, NULL); }

void bot_worker_join(bot_worker *w)
{
    if (w->thread) {
        g_thread_join(w->thread);
        w->thread = NULL;
    }
}

void bot_worker_snapshot(bot_worker *w, bot_worker_snap *out)
{
    pthread_mutex_lock(&w->mu);
    *out = w->snap;
    pthread_mutex_unlock(&w->mu);
}

void bot_worker_get_load(bot_worker *w, bot_worker_load *out)
{
    double *lag = (double *)(void *)w->lag_ms->data;
    out->cpu_avg_pct = w->cpu_n ? w->cpu_sum / w->cpu_n : 0;
    out->cpu_max_pct = w->cpu_max;
    out->lag_p99_ms = bot_percentile(lag, w->lag_ms->len, 99);
    out->lag_max_ms = bot_percentile(lag, w->lag_ms->len, 100);
    out->ticks_skipped = w->ticks_skipped;
}

size_t bot_worker_n_calls(const bot_worker *w) { return w->calls->len; }

bot_call *bot_worker_call(const bot_worker *w, size_t i) { return w->calls->pdata[i]; }

void bot_worker_free(bot_worker *w)
{
    if (!w)
        return;
    bot_worker_join(w);
    bot_timer_cancel(&w->tick);
    bot_timer_cancel(&w->sec);
    for (guint i = 0; i < w->calls->len; i++)
        bot_call_free(w->calls->pdata[i]);
    g_ptr_array_free(w->calls, TRUE);
    g_array_free(w->lag_ms, TRUE);
    bot_audio_src_free(w->src);
    if (w->loop)
        g_main_loop_unref(w->loop);
    g_main_context_unref(w->ctx);
    pthread_mutex_destroy(&w->mu);
    free(w);
}

bool bot_worker_release(bot_worker *w, bot_call *c) { return g_ptr_array_remove(w->calls, c); }
