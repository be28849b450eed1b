/* bot_main.c - tsunagu-bot: flags, the two modes, the media clock and the
 * reports.
 *
 * Member mode (no --calls): one signaling connection in --room; following
 * the DESIGN.md call convention it offers to every member already there and
 * answers whoever offers later. Load mode (--calls N): N rooms
 * "<room>-<i>", each with two members of this process; the second joins once
 * the first is in, so it is the offerer. Signaling (libwebsockets) runs on
 * the main GMainLoop; calls live on workers (bot_worker.c): with --threads 1
 * the one worker is the main loop itself, with --threads N there are N
 * worker threads, each with its own context, media clock and encoder. A call
 * is reached from the main thread only through its leg (a handle posted to
 * the worker). Each loop's lateness and CPU are measured, and the machine's,
 * to tell when the bot and not the server is the limit. */
#include <glib-unix.h>
#include <glib.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "bot_audio.h"
#include "bot_call.h"
#include "bot_canary.h"
#include "bot_delay.h"
#include "bot_dtls.h"
#include "bot_ice.h"
#include "bot_iceservers.h"
#include "bot_report.h"
#include "bot_sig.h"
#include "bot_srtp.h"
#include "bot_tlsfwd.h"
#include "bot_turnfam.h"
#include "bot_worker.h"
#include "rtc_clock.h"
#include "rtc_conf.h"
#include "rtc_err.h"
#include "rtc_log.h"
#include "rtc_version.h"

typedef struct {
    char *signal, *room, *report, *html, *audio, *log_level, *name, *turn_ca, *turn_family;
    char *min_mos, *max_loss; /* numbers with a fraction: checked by check_range */
    char *metrics_listen;
    int64_t canary, canary_call;
    int64_t calls, duration, drop_every, jitter_ms, setup_timeout, ramp_ms, decode_every, threads;
    int64_t max_setup_ms, ice_restart;
    bool relay_only, turn_insecure;
} bot_conf;

static int check_ws_url(const char *v, char *err, size_t errlen)
{
    if (strncmp(v, "ws://", 5) && strncmp(v, "wss://", 6)) {
        snprintf(err, errlen, "must start with ws:// or wss://");
        return 1;
    }
    return 0;
}

static int check_family(const char *v, char *err, size_t errlen)
{
    if (strcmp(v, "any") && strcmp(v, "ipv4") && strcmp(v, "ipv6")) {
        snprintf(err, errlen, "must be any, ipv4 or ipv6");
        return 1;
    }
    return 0;
}

/* A decimal number in [lo, hi]; the gates parse it again once valid. */
static int check_range(const char *v, double lo, double hi, char *err, size_t errlen)
{
    char *end;
    double d = strtod(v, &end);
    if (end == v || *end || !isfinite(d) || d < lo || d > hi) {
        snprintf(err, errlen, "must be a number from %g to %g", lo, hi);
        return 1;
    }
    return 0;
}

static int check_mos(const char *v, char *err, size_t errlen) { return check_range(v, 1, 4.5, err, errlen); }
static int check_pct(const char *v, char *err, size_t errlen) { return check_range(v, 0, 100, err, errlen); }

#define F(x) offsetof(bot_conf, x)
static const rtc_conf_spec specs[] = {
    {"signal", RTC_CONF_STR, F(signal), 0, 0, NULL, "URL", "signaling WebSocket, ws:// or wss://HOST:PORT/ws (required)", check_ws_url, 0},
    {"room", RTC_CONF_STR, F(room), 0, 200, NULL, "R", "room to join; load mode uses R-0 .. R-(N-1) (required)", NULL, 0},
    {"calls", RTC_CONF_INT, F(calls), 0, 5000, "0", "N", "load mode: N concurrent bot-to-bot calls (2N call legs) in this process; 0 = desktop-client member", NULL, 0},
    {"duration", RTC_CONF_INT, F(duration), 0, 86400, "0", "S", "seconds of calling (load mode: after the last call started); 0 = until SIGINT/SIGTERM (member mode) or 30 (load mode)", NULL, 0},
    {"relay-only", RTC_CONF_BOOL, F(relay_only), 0, 0, "false", NULL, "use only relayed (TURN) candidates", NULL, 0},
    {"turn-ca", RTC_CONF_STR, F(turn_ca), 0, 0, NULL, "FILE.pem", "turns: servers: trust the CA certificates in this PEM bundle instead of the system store", NULL, 0},
    {"turn-insecure", RTC_CONF_BOOL, F(turn_insecure), 0, 0, "false", NULL, "turns: servers: do NOT verify the certificate (testing only: anyone in the path can read and change the TURN traffic)", NULL, 0},
    {"turn-family", RTC_CONF_STR, F(turn_family), 0, 0, "any", "any|ipv4|ipv6", "turn: UDP servers: ask for a relayed address of this family (REQUESTED-ADDRESS-FAMILY, through a local shim: libnice cannot ask); any = the server's default, IPv4", check_family, 0},
    {"report", RTC_CONF_STR, F(report), 0, 0, NULL, "FILE.json", "write the JSON report here", NULL, 0},
    {"html", RTC_CONF_STR, F(html), 0, 0, NULL, "FILE.html", "write a self-contained HTML report with plots here", NULL, 0},
    {"audio", RTC_CONF_STR, F(audio), 0, 0, NULL, "FILE.wav", "send this 16-bit PCM WAV (looped) instead of the synthetic speech-like signal", NULL, 0},
    {"name", RTC_CONF_STR, F(name), 0, 100, "tsunagu-bot", "NAME", "display name sent with join", NULL, 0},
    {"threads", RTC_CONF_INT, F(threads), 1, 64, "1", "N", "loops that carry the calls: 1 = everything on the main loop; N > 1 = N worker threads (signaling stays on the main thread)", NULL, 0},
    {"ramp-ms", RTC_CONF_INT, F(ramp_ms), 0, 60000, "50", "MS", "load mode: delay between starting two calls", NULL, 0},
    {"setup-timeout", RTC_CONF_INT, F(setup_timeout), 1, 600, "30", "S", "a call with no audio after this many seconds counts as failed", NULL, 0},
    {"ice-restart", RTC_CONF_INT, F(ice_restart), 0, 60, "2", "S", "a call in media with no audio received for S seconds (or whose ICE path failed) restarts ICE: new credentials, fresh TURN allocations, a new offer from the offerer; 0 = off", NULL, 0},
    {"decode-every", RTC_CONF_INT, F(decode_every), 1, 1000, "1", "N", "Opus-decode every Nth received packet (1 = all); more calls per core in load mode, reported as decoded", NULL, 0},
    {"drop-every", RTC_CONF_INT, F(drop_every), 0, 1000000, "0", "N", "testing only: do not send every Nth RTP packet (counted as dropped_on_purpose) to check that reported loss is honest", NULL, 0},
    {"jitter-ms", RTC_CONF_INT, F(jitter_ms), 0, BOT_DELAY_MAX_MS, "0", "MS", "testing only: hold each RTP packet a random 0..MS ms before sending it (order kept, seeded per call) to check the jitter a receiver or relay measures", NULL, 0},
    {"min-mos", RTC_CONF_STR, F(min_mos), 0, 0, NULL, "MOS", "quality gate: a leg with a lower MOS fails the run (exit 1)", check_mos, 0},
    {"max-loss", RTC_CONF_STR, F(max_loss), 0, 0, NULL, "PCT", "quality gate: a leg losing more than PCT percent fails the run (replaces the default: fail at 1% or more)", check_pct, 0},
    {"max-setup-ms", RTC_CONF_INT, F(max_setup_ms), 0, 600000, "0", "MS", "quality gate: a leg whose set-up (join to first audio) took longer fails the run; 0 = off", NULL, 0},
    {"canary", RTC_CONF_INT, F(canary), 0, 86400, "0", "SECONDS", "canary mode: every SECONDS a short relay-only call between two of the bot's own members through each relay signaling hands out; Prometheus metrics on --metrics-listen; 0 = off", NULL, 0},
    {"canary-call", RTC_CONF_INT, F(canary_call), 1, 600, "3", "S", "canary mode: seconds of audio per call once both legs have it", NULL, 0},
    {"metrics-listen", RTC_CONF_STR, F(metrics_listen), 0, 0, NULL, "ADDR:PORT", "canary mode: serve GET /metrics and /healthz here (required with --canary)", NULL, 0},
    {"log-level", RTC_CONF_STR, F(log_level), 0, 0, "warn", "LEVEL", "error|warn|info|debug", NULL, 0},
    RTC_CONF_END};
#undef F

typedef struct app app;

typedef struct member {
    app *app;
    bot_sig *sig;
    char *id;
    char label[64];
    int pair;              /* load mode: pair index; -1 in member mode */
    struct member *partner; /* load mode: the other member of the pair */
    bot_turn turn[BOT_ICE_MAX_TURN];
    size_t n_turn;
    bot_stun stun[BOT_ICE_MAX_TURN];
    size_t n_stun;
    uint64_t t_join_us;
    GHashTable *by_peer;   /* peer id -> leg* (owned by app->legs) */
} member;

/* The main thread's handle on one call living on a worker. Filled by main
 * before the create job is posted; `call` is touched only on the worker. */
typedef struct leg {
    member *m;
    bot_worker *w;
    char peer[128], label[96];
    bot_turn turn[BOT_ICE_MAX_TURN];
    bot_stun stun[BOT_ICE_MAX_TURN];
    bot_call_params p;
    bot_call *call;
} leg;

struct app {
    bot_conf conf;
    bot_tls_ctx *tls; /* for turns: servers; read-only once workers run */
    GMainLoop *loop;
    bot_sig_ctx *sigctx;
    bot_env env;
    bot_worker **workers;
    size_t n_workers, next_worker;
    GPtrArray *members, *legs;
    uint64_t t_start_us, t_all_started_us, t_end_us;
    guint sec_src, ramp_src;
    double cpu_sum, cpu_max; /* the whole process, % of one core */
    int cpu_n;
    uint64_t cpu_prev_us, cpu_prev_wall_us;
    /* whole machine, from /proc/stat: to tell "the bot is slow" from "the
     * machine is busy with other processes" */
    uint64_t sys_prev_busy, sys_prev_total;
    double others_sum;
    int others_n, ncpu;
    long pairs_started;
    bool stopping, tty, steady;
    int exit_code;
    time_t started_wall;  /* for the reports' date */
    char version[128];
};

static uint64_t cpu_us(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000u +
           (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

static void finish(app *a);

/* Busy and total jiffies of all CPUs (first line of /proc/stat). */
static bool sys_jiffies(uint64_t *busy, uint64_t *total)
{
    unsigned long long v[8] = {0};
    FILE *f = fopen("/proc/stat", "r");
    int n;
    if (!f)
        return false;
    n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
               &v[4], &v[5], &v[6], &v[7]);
    fclose(f);
    if (n < 5)
        return false;
    *total = 0;
    for (int i = 0; i < 8; i++)
        *total += v[i];
    *busy = *total - v[3] - v[4]; /* minus idle and iowait */
    return true;
}

/* --- calls <-> signaling --- */

/* --- calls <-> signaling, across threads --- */

typedef struct {
    member *m;
    char peer[128];
    json_t *data;
} deliver_job;

static void deliver_free(gpointer p)
{
    deliver_job *j = p;
    json_decref(j->data);
    free(j);
}

/* Main thread: a call's signal payload goes out on its member's connection. */
static gboolean deliver(gpointer p)
{
    deliver_job *j = p;
    if (j->m->sig) {
        bot_sig_send(j->m->sig, j->peer, j->data); /* takes the reference */
        j->data = NULL;
    }
    return G_SOURCE_REMOVE;
}

/* Worker thread: hand the payload to the main thread (called at once when
 * the worker is the main loop). */
static void call_send(void *ud, bot_call *c, json_t *data)
{
    leg *l = ud;
    deliver_job *j = calloc(1, sizeof *j);
    (void)c;
    if (!j) {
        json_decref(data);
        return;
    }
    j->m = l->m;
    snprintf(j->peer, sizeof j->peer, "%s", l->peer);
    j->data = data;
    g_main_context_invoke_full(NULL, G_PRIORITY_DEFAULT, deliver, j, deliver_free);
}

static void call_ended(void *ud, bot_call *c, const char *why)
{
    leg *l = ud;
    (void)c;
    RTC_LOG(RTC_LOG_WARN, l->m->label, "call to %s ended: %s", l->peer, why);
}

/* Worker jobs posted by the main thread, in order. */
static gboolean job_create(gpointer ud)
{
    leg *l = ud;
    bot_call_cbs cbs = {call_send, call_ended, l};
    if (bot_worker_stopping(l->w))
        return G_SOURCE_REMOVE;
    l->call = bot_call_new(&l->m->app->env, &l->p, &cbs);
    if (l->call)
        bot_worker_adopt(l->w, l->call);
    else
        RTC_LOG(RTC_LOG_ERROR, l->m->label, "cannot start a call to %s", l->peer);
    return G_SOURCE_REMOVE;
}

typedef struct {
    leg *l;
    json_t *data;
} signal_job;

static void signal_job_free(gpointer p)
{
    signal_job *j = p;
    json_decref(j->data);
    free(j);
}

static gboolean job_signal(gpointer ud)
{
    signal_job *j = ud;
    if (j->l->call)
        bot_call_on_signal(j->l->call, j->data);
    return G_SOURCE_REMOVE;
}

static gboolean job_stop(gpointer ud)
{
    leg *l = ud;
    if (l->call)
        bot_call_stop(l->call, "peer left");
    return G_SOURCE_REMOVE;
}

static leg *start_call(member *m, const char *peer, bool offerer, uint64_t t0)
{
    app *a = m->app;
    leg *l = calloc(1, sizeof *l);

    if (!l)
        return NULL;
    l->m = m;
    l->w = a->workers[a->next_worker++ % a->n_workers];
    snprintf(l->peer, sizeof l->peer, "%s", peer);
    if (m->pair >= 0)
        snprintf(l->label, sizeof l->label, "%s", m->label);
    else
        snprintf(l->label, sizeof l->label, "%s>%.8s", m->label, peer);
    memcpy(l->turn, m->turn, sizeof l->turn);
    l->p.offerer = offerer;
    l->p.turn = l->turn;
    l->p.n_turn = m->n_turn;
    memcpy(l->stun, m->stun, sizeof l->stun);
    l->p.stun = l->stun;
    l->p.n_stun = m->n_stun;
    l->p.label = l->label;
    l->p.peer = l->peer;
    l->p.t0_us = t0;
    g_ptr_array_add(a->legs, l);
    g_hash_table_insert(m->by_peer, g_strdup(peer), l);
    bot_worker_post(l->w, job_create, l, NULL);
    return l;
}

/* joined.iceServers into the member's servers (bot_iceservers.h). */
static void take_ice_servers(member *m, json_t *servers)
{
    bot_ice_servers is;
    bot_ice_servers_take(servers, m->app->conf.relay_only, m->label, &is);
    memcpy(m->turn, is.turn, sizeof m->turn);
    m->n_turn = is.n_turn;
    memcpy(m->stun, is.stun, sizeof m->stun);
    m->n_stun = is.n_stun;
}

static member *member_new(app *a, const char *room, int pair, const char *label);

static void sig_joined(void *ud, const char *id, json_t *msg)
{
    member *m = ud;
    app *a = m->app;
    size_t i;
    json_t *p;

    free(m->id);
    m->id = strdup(id);
    take_ice_servers(m, json_object_get(msg, "iceServers"));
    RTC_LOG(RTC_LOG_INFO, m->label, "joined as %s, %zu peers, %zu TURN servers, %zu STUN", id,
            json_array_size(json_object_get(msg, "peers")), m->n_turn, m->n_stun);
    /* The later joiner calls everyone already there (call convention). */
    json_array_foreach(json_object_get(msg, "peers"), i, p) {
        const char *pid = json_string_value(json_object_get(p, "id"));
        if (pid && !g_hash_table_contains(m->by_peer, pid) && !a->stopping)
            start_call(m, pid, true, m->t_join_us);
    }
    /* Load mode: the first member is in, so its partner can join and offer. */
    if (m->pair >= 0 && !m->partner) {
        char room[256], label[64];
        snprintf(room, sizeof room, "%s-%d", a->conf.room, m->pair);
        snprintf(label, sizeof label, "call%d/b", m->pair);
        m->partner = member_new(a, room, m->pair, label);
        if (m->partner)
            m->partner->partner = m;
    }
}

static void sig_peer_joined(void *ud, const char *peer)
{
    member *m = ud;
    RTC_LOG(RTC_LOG_INFO, m->label, "peer %s joined; waiting for its offer", peer);
}

static void sig_peer_left(void *ud, const char *peer)
{
    member *m = ud;
    leg *l = g_hash_table_lookup(m->by_peer, peer);
    if (l) {
        RTC_LOG(RTC_LOG_INFO, m->label, "peer %s left: call over", peer);
        bot_worker_post(l->w, job_stop, l, NULL);
        g_hash_table_remove(m->by_peer, peer);
    }
}

static void sig_signal(void *ud, const char *from, json_t *data)
{
    member *m = ud;
    leg *l = g_hash_table_lookup(m->by_peer, from);
    json_t *desc = json_object_get(data, "description");
    const char *type = json_string_value(json_object_get(desc, "type"));
    signal_job *j;

    if (!l && type && !strcmp(type, "offer")) {
        uint64_t t0 = m->partner ? m->partner->t_join_us : rtc_clock_mono_us();
        l = start_call(m, from, false, t0);
    }
    if (!l || m->app->stopping)
        return;
    j = calloc(1, sizeof *j);
    if (!j)
        return;
    j->l = l;
    /* A copy of its own: jansson values are not shared between threads. */
    j->data = json_deep_copy(data);
    bot_worker_post(l->w, job_signal, j, signal_job_free);
}

static void sig_resumed(void *ud, const char *id, json_t *msg)
{
    member *m = ud;
    (void)msg;
    RTC_LOG(RTC_LOG_INFO, m->label, "signaling resumed as %s; calls continue", id);
}

static void sig_error(void *ud, const char *code, const char *msg)
{
    member *m = ud;
    RTC_LOG(RTC_LOG_WARN, m->label, "signaling error %s: %s", code, msg);
}

static void sig_closed(void *ud, const char *why)
{
    member *m = ud;
    /* Media does not depend on signaling: calls in progress go on. The
     * bot_sig stays ours (freed in member_free); it refuses further sends. */
    RTC_LOG(m->app->stopping ? RTC_LOG_INFO : RTC_LOG_WARN, m->label, "signaling closed: %s", why);
    if (!m->id && m->pair < 0 && !m->app->stopping) {
        /* Member mode never got into the room: nothing to wait for. */
        RTC_LOG(RTC_LOG_ERROR, m->label, "could not join %s: %s", m->app->conf.room, why);
        m->app->exit_code = 1;
        finish(m->app);
    }
}

static member *member_new(app *a, const char *room, int pair, const char *label)
{
    member *m = calloc(1, sizeof *m);
    bot_sig_cbs cbs = {.joined = sig_joined, .peer_joined = sig_peer_joined,
                       .peer_left = sig_peer_left, .resumed = sig_resumed,
                       .signal = sig_signal, .error = sig_error, .closed = sig_closed, .ud = m};
    if (!m)
        return NULL;
    m->app = a;
    m->pair = pair;
    snprintf(m->label, sizeof m->label, "%s", label);
    m->by_peer = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    m->t_join_us = rtc_clock_mono_us();
    m->sig = bot_sig_new(a->sigctx, a->conf.signal, room, a->conf.name, &cbs);
    g_ptr_array_add(a->members, m);
    if (!m->sig)
        RTC_LOG(RTC_LOG_ERROR, label, "cannot connect to %s", a->conf.signal);
    return m;
}

static void member_free(member *m)
{
    bot_sig_free(m->sig);
    g_hash_table_destroy(m->by_peer);
    free(m->id);
    free(m);
}

/* --- clocks --- */

static void progress(app *a, uint64_t now, double cpu)
{
    bot_worker_snap t, w;
    memset(&t, 0, sizeof t);
    for (size_t i = 0; i < a->n_workers; i++) {
        bot_worker_snapshot(a->workers[i], &w);
        t.legs += w.legs;
        t.media += w.media;
        t.failed += w.failed;
        t.lost += w.lost;
        t.expected += w.expected;
        t.jitter_sum += w.jitter_sum;
        t.rtt_sum += w.rtt_sum;
        t.n_rtt += w.n_rtt;
    }
    fprintf(stderr, "%s[%4.0fs] legs %zu/%zu with audio, %zu failed | loss %.3f%% | jitter %.2f ms"
                    " | rtt %.1f ms | bot cpu %.0f%%%s",
            a->tty ? "\r" : "", (double)(now - a->t_start_us) / 1e6, t.media, t.legs, t.failed,
            t.expected ? 100.0 * (double)t.lost / (double)t.expected : 0.0,
            t.media ? t.jitter_sum / (double)t.media : 0, t.n_rtt ? t.rtt_sum / (double)t.n_rtt : 0,
            cpu, a->tty ? "   " : "\n");
}

/* Main thread, once a second: process and machine CPU, progress, the end. */
static gboolean on_second(gpointer ud)
{
    app *a = ud;
    uint64_t now = rtc_clock_mono_us(), c = cpu_us(), busy, total;
    double cpu = 100.0 * (double)(c - a->cpu_prev_us) / (double)(now - a->cpu_prev_wall_us);
    a->cpu_prev_us = c;
    a->cpu_prev_wall_us = now;
    a->cpu_sum += cpu;
    a->cpu_n++;
    if (cpu > a->cpu_max)
        a->cpu_max = cpu;
    if (sys_jiffies(&busy, &total)) {
        if (total > a->sys_prev_total && a->sys_prev_total) {
            /* machine busy in "percent of one core", minus our own share */
            double all = 100.0 * a->ncpu * (double)(busy - a->sys_prev_busy) /
                         (double)(total - a->sys_prev_total);
            double others = all - cpu;
            a->others_sum += others > 0 ? others : 0;
            a->others_n++;
        }
        a->sys_prev_busy = busy;
        a->sys_prev_total = total;
    }
    progress(a, now, cpu);
    /* Load mode: 3 s after the last call started, set-up is over. */
    if (!a->steady && a->t_all_started_us && now >= a->t_all_started_us + 3000000u) {
        a->steady = true;
        for (size_t i = 0; i < a->n_workers; i++)
            bot_worker_steady(a->workers[i]);
    }
    if (a->t_end_us && now >= a->t_end_us)
        finish(a);
    return G_SOURCE_CONTINUE;
}

static gboolean on_ramp(gpointer ud)
{
    app *a = ud;
    char room[256], label[64];
    snprintf(room, sizeof room, "%s-%ld", a->conf.room, a->pairs_started);
    snprintf(label, sizeof label, "call%ld/a", a->pairs_started);
    member_new(a, room, (int)a->pairs_started, label);
    a->pairs_started++;
    if (a->pairs_started < a->conf.calls)
        return G_SOURCE_CONTINUE;
    a->ramp_src = 0;
    a->t_all_started_us = rtc_clock_mono_us();
    a->t_end_us = a->t_all_started_us + (uint64_t)a->conf.duration * 1000000u;
    return G_SOURCE_REMOVE;
}

static gboolean on_unix_signal(gpointer ud)
{
    finish(ud);
    return G_SOURCE_CONTINUE;
}

static gboolean quit_loop(gpointer ud)
{
    g_main_loop_quit(ud);
    return G_SOURCE_REMOVE;
}

/* --- the end --- */

/* The busiest worker loop speaks for the bot: one saturated loop is enough
 * to distort the calls it carries. */
static void fill_run(app *a, bot_run_info *r)
{
    memset(r, 0, sizeof *r);
    r->mode = a->conf.calls ? "load" : "member";
    r->room = a->conf.room;
    r->signal_url = a->conf.signal;
    r->relay_only = a->conf.relay_only;
    r->turn_tls_verify = a->conf.turn_insecure ? "off (--turn-insecure)"
                         : a->conf.turn_ca     ? a->conf.turn_ca
                                               : "system store";
    r->duration_s = (double)(rtc_clock_mono_us() - a->t_start_us) / 1e6;
    r->calls_requested = (long)a->conf.calls;
    r->threads = (int)a->conf.threads;
    r->process_cpu_avg_pct = a->cpu_n ? a->cpu_sum / a->cpu_n : 0;
    for (size_t i = 0; i < a->n_workers; i++) {
        bot_worker_load l;
        bot_worker_get_load(a->workers[i], &l);
        if (l.cpu_avg_pct > r->cpu_avg_pct)
            r->cpu_avg_pct = l.cpu_avg_pct;
        if (l.cpu_max_pct > r->cpu_max_pct)
            r->cpu_max_pct = l.cpu_max_pct;
        if (l.lag_p99_ms > r->lag_p99_ms)
            r->lag_p99_ms = l.lag_p99_ms;
        if (l.lag_max_ms > r->lag_max_ms)
            r->lag_max_ms = l.lag_max_ms;
        r->ticks_skipped += l.ticks_skipped;
    }
    r->others_avg_pct = a->others_n ? a->others_sum / a->others_n : 0;
    r->ncpu = a->ncpu;
    r->machine_saturated = r->others_avg_pct + r->process_cpu_avg_pct > 90.0 * a->ncpu &&
                           r->others_avg_pct > 50;
    if (r->cpu_avg_pct > 85)
        snprintf(r->bottleneck_why, sizeof r->bottleneck_why,
                 "its busiest loop used %.0f%% of a core on average", r->cpu_avg_pct);
    else if (r->ticks_skipped)
        snprintf(r->bottleneck_why, sizeof r->bottleneck_why,
                 "a loop fell more than 200 ms behind and skipped %llu send ticks (%.1f s of "
                 "audio)%s",
                 (unsigned long long)r->ticks_skipped, (double)r->ticks_skipped * 0.02,
                 r->machine_saturated ? ", starved of CPU by other processes on this machine" : "");
    else if (r->lag_p99_ms > 20)
        /* Late without using a full core: starved by other processes. */
        snprintf(r->bottleneck_why, sizeof r->bottleneck_why,
                 "its 20 ms send clock ran %.1f ms late (p99)%s", r->lag_p99_ms,
                 r->machine_saturated ? ", starved of CPU by other processes on this machine" : "");
    r->bottleneck = r->bottleneck_why[0] != '\0';
    snprintf(a->version, sizeof a->version, "tsunagu-bot %s (%s)", rtc_version(), rtc_version_commit());
    r->version = a->version;
    {
        struct tm tm;
        gmtime_r(&a->started_wall, &tm);
        strftime(r->started_at, sizeof r->started_at, "%Y-%m-%dT%H:%M:%SZ", &tm);
    }
}

/* After every worker has stopped: the calls are quiet and readable. */
static void report(app *a)
{
    size_t n = 0, k = 0;
    bot_call_info *ci;
    bot_totals t;
    bot_run_info run;

    for (size_t i = 0; i < a->n_workers; i++)
        n += bot_worker_n_calls(a->workers[i]);
    ci = calloc(n + 1, sizeof *ci);
    if (!ci)
        return;
    for (size_t i = 0; i < a->n_workers; i++)
        for (size_t j = 0; j < bot_worker_n_calls(a->workers[i]); j++)
            bot_call_info_get(bot_worker_call(a->workers[i], j), &ci[k++]);
    {
        bot_gates g = {a->conf.min_mos ? strtod(a->conf.min_mos, NULL) : 0,
                       a->conf.max_loss ? strtod(a->conf.max_loss, NULL) : -1,
                       (double)a->conf.max_setup_ms};
        bot_report_judge(ci, n, &g);
    }
    bot_totals_compute(ci, n, &t);
    fill_run(a, &run);
    bot_report_verdict(ci, n, a->conf.calls ? 2 * (size_t)a->conf.calls : 0, &run);
    if (a->tty)
        fputc('\n', stderr);
    bot_report_table(stdout, ci, n, &t, &run);
    fflush(stdout);
    if (a->conf.report && bot_report_json(a->conf.report, ci, n, &t, &run))
        RTC_LOG(RTC_LOG_ERROR, NULL, "cannot write %s", a->conf.report);
    if (a->conf.html && bot_report_html(a->conf.html, ci, n, &t, &run))
        RTC_LOG(RTC_LOG_ERROR, NULL, "cannot write %s", a->conf.html);
    /* Exit rule (docs/bot.md): 1 unless every leg passed (held, and the
     * gates asked for) and load mode has all its legs. */
    if (!run.pass)
        a->exit_code = 1;
    for (guint i = 0; i < a->members->len; i++)
        if (!((member *)a->members->pdata[i])->id) {
            RTC_LOG(RTC_LOG_ERROR, ((member *)a->members->pdata[i])->label, "never joined its room");
            a->exit_code = 1;
        }
    free(ci);
}

/* Stop starting calls, stop the workers (they release their TURN
 * allocations), close the WebSockets, and end the main loop shortly after;
 * main() then joins the workers and reports. */
static void finish(app *a)
{
    if (a->stopping)
        return;
    a->stopping = true;
    if (a->ramp_src)
        g_source_remove(a->ramp_src);
    a->ramp_src = 0;
    if (a->sec_src)
        g_source_remove(a->sec_src);
    a->sec_src = 0;
    for (size_t i = 0; i < a->n_workers; i++)
        bot_worker_finish(a->workers[i]);
    for (guint i = 0; i < a->members->len; i++) {
        member *m = a->members->pdata[i];
        bot_sig_free(m->sig);
        m->sig = NULL;
    }
    g_timeout_add(400, quit_loop, a->loop);
}

/* Flags into a.conf and the log level; 0, or the exit code to stop with. */
static int load_flags(app *a, int argc, char **argv, rtc_log_level *lvl)
{
    char err[512];
    int rc = rtc_conf_load(specs, &a->conf, argc, argv, err, sizeof err);
    if (rc == RTC_CONF_HELP) {
        printf("usage: tsunagu-bot --signal URL --room R [--calls N] [--duration S] "
               "[--relay-only] [--report FILE.json] [--html FILE.html] [--turn-ca FILE.pem]\n\n");
        rtc_conf_usage(specs, stdout);
        return -1;
    }
    if (rc == RTC_CONF_VERSION) {
        rtc_version_print(stdout, "tsunagu-bot");
        return -1;
    }
    if (rc) {
        fprintf(stderr, "tsunagu-bot: %s\n", err);
        return 2;
    }
    if (!a->conf.signal || !a->conf.room) {
        fprintf(stderr, "tsunagu-bot: --signal and --room are required (see --help)\n");
        return 2;
    }
    if (rtc_log_parse_level(a->conf.log_level, lvl)) {
        fprintf(stderr, "tsunagu-bot: log-level: bad value '%s'\n", a->conf.log_level);
        return 2;
    }
    if (a->conf.calls && !a->conf.duration)
        a->conf.duration = 30;
    if (a->conf.canary && (!a->conf.metrics_listen || a->conf.calls)) {
        fprintf(stderr, "tsunagu-bot: --canary needs --metrics-listen and excludes --calls\n");
        return 2;
    }
    return 0;
}

static gboolean canary_stop(gpointer ud)
{
    g_main_loop_quit(ud);
    return G_SOURCE_REMOVE;
}

/* Canary mode (bot_canary.h): one worker on the main loop, until
 * SIGINT/SIGTERM or --duration. Exits 0 unless it could not start. */
static void run_canary(app *a)
{
    char err[512];
    bot_canary *cn;
    bot_worker *w = bot_worker_new(0, false, &a->env, a->conf.audio, err, sizeof err);
    bot_canary_params p = {a->conf.signal, a->conf.room, a->conf.name, &a->env, a->sigctx, w,
                           (unsigned)a->conf.canary, (unsigned)a->conf.canary_call,
                           (unsigned)a->conf.setup_timeout, a->conf.metrics_listen};
    guint s1, s2, s3 = 0;

    if (!w) {
        fprintf(stderr, "tsunagu-bot: %s\n", err);
        a->exit_code = 2;
        return;
    }
    cn = bot_canary_new(&p, err, sizeof err);
    if (!cn) {
        fprintf(stderr, "tsunagu-bot: %s\n", err);
        a->exit_code = 2;
        goto out_worker;
    }
    fprintf(stderr, "tsunagu-bot: canary every %lld s, metrics on port %u\n",
            (long long)a->conf.canary, bot_canary_metrics_port(cn));
    s1 = g_unix_signal_add(SIGINT, canary_stop, a->loop);
    s2 = g_unix_signal_add(SIGTERM, canary_stop, a->loop);
    if (a->conf.duration)
        s3 = g_timeout_add((guint)a->conf.duration * 1000u, canary_stop, a->loop);
    g_main_loop_run(a->loop);
    g_source_remove(s1);
    g_source_remove(s2);
    if (s3 && a->conf.duration)
        g_source_remove(s3);
    bot_canary_free(cn);
    /* let libnice release the last probe's allocations (~300 ms) */
    {
        GSource *q = g_timeout_source_new(300);
        g_source_set_callback(q, canary_stop, a->loop, NULL);
        g_source_attach(q, NULL);
        g_source_unref(q);
        g_main_loop_run(a->loop);
    }
out_worker:
    bot_worker_finish(w);
    bot_worker_free(w);
}

/* Workers, members, the loop; then join, report and free. */
static void run(app *a)
{
    char err[512];
    size_t nw = a->conf.threads > 1 ? (size_t)a->conf.threads : 1;

    a->members = g_ptr_array_new();
    a->legs = g_ptr_array_new_with_free_func(free);
    a->tty = isatty(2);
    a->t_start_us = a->cpu_prev_wall_us = rtc_clock_mono_us();
    a->started_wall = time(NULL);
    a->cpu_prev_us = cpu_us();
    a->ncpu = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (a->ncpu < 1)
        a->ncpu = 1;
    sys_jiffies(&a->sys_prev_busy, &a->sys_prev_total);
    a->workers = calloc(nw, sizeof *a->workers);
    if (!a->workers)
        goto out;
    for (size_t i = 0; i < nw; i++) {
        a->workers[i] = bot_worker_new((int)i, nw > 1, &a->env, a->conf.audio, err, sizeof err);
        if (!a->workers[i]) {
            fprintf(stderr, "tsunagu-bot: %s\n", err);
            a->exit_code = 2;
            goto out;
        }
        a->n_workers++;
    }

    if (a->conf.calls) {
        on_ramp(a);
        if (a->pairs_started < a->conf.calls)
            a->ramp_src = g_timeout_add(a->conf.ramp_ms ? (guint)a->conf.ramp_ms : 1, on_ramp, a);
    } else {
        member_new(a, a->conf.room, -1, "bot");
        if (a->conf.duration)
            a->t_end_us = a->t_start_us + (uint64_t)a->conf.duration * 1000000u;
    }
    a->sec_src = g_timeout_add(1000, on_second, a);
    g_unix_signal_add(SIGINT, on_unix_signal, a);
    g_unix_signal_add(SIGTERM, on_unix_signal, a);
    g_main_loop_run(a->loop);

    for (size_t i = 0; i < a->n_workers; i++)
        bot_worker_join(a->workers[i]);
    /* Payloads the workers handed over at the very end: their connections
     * are closed, so delivering them frees them. */
    for (int i = 0; i < 10000 && g_main_context_iteration(NULL, FALSE); i++)
        ;
    report(a);
out:
    for (size_t i = 0; i < a->n_workers; i++)
        bot_worker_free(a->workers[i]);
    free(a->workers);
    for (guint i = 0; i < a->members->len; i++)
        member_free(a->members->pdata[i]);
    g_ptr_array_free(a->members, TRUE);
    g_ptr_array_free(a->legs, TRUE);
}

int main(int argc, char **argv)
{
    app a;
    char err[512];
    rtc_log_level lvl = RTC_LOG_WARN;
    int rc;

    memset(&a, 0, sizeof a);
    signal(SIGPIPE, SIG_IGN);
    rc = load_flags(&a, argc, argv, &lvl);
    if (rc)
        goto out_conf;
    rtc_log_setup(lvl, RTC_LOG_TEXT, "tsunagu-bot");
    {
        /* Check --audio before anything starts (workers load it again). */
        bot_audio_src *probe = bot_audio_src_new(a.conf.audio, err, sizeof err);
        if (!probe) {
            fprintf(stderr, "tsunagu-bot: %s\n", err);
            rc = 2;
            goto out_conf;
        }
        bot_audio_src_free(probe);
    }
    rc = 1;
    if (bot_srtp_global_init())
        goto out_conf;
    a.env.dtls = bot_dtls_ctx_new();
    if (!a.env.dtls)
        goto out_srtp;
    if (a.conf.turn_insecure && a.conf.turn_ca) {
        fprintf(stderr, "tsunagu-bot: --turn-ca and --turn-insecure exclude each other\n");
        rc = 2;
        goto out_dtls;
    }
    a.tls = bot_tls_ctx_new(a.conf.turn_ca, a.conf.turn_insecure, err, sizeof err);
    if (!a.tls) {
        fprintf(stderr, "tsunagu-bot: %s\n", err);
        rc = 2;
        goto out_dtls;
    }
    if (a.conf.turn_insecure)
        fprintf(stderr, "tsunagu-bot: WARNING: --turn-insecure: certificates of turns: servers "
                        "are NOT verified; anyone between the bot and the TURN server can "
                        "impersonate it. Use --turn-ca FILE instead outside tests.\n");
    a.env.tls = a.tls;
    a.env.relay_only = a.conf.relay_only;
    a.env.turn_family = !strcmp(a.conf.turn_family, "ipv6")   ? BOT_TURNFAM_IPV6
                        : !strcmp(a.conf.turn_family, "ipv4") ? BOT_TURNFAM_IPV4
                                                              : 0;
    a.env.drop_every = (uint32_t)a.conf.drop_every;
    a.env.jitter_ms = (uint32_t)a.conf.jitter_ms;
    a.env.decode_every = (uint32_t)a.conf.decode_every;
    a.env.ice_restart_ms = (uint32_t)a.conf.ice_restart * 1000u;
    a.env.setup_timeout_ms = (uint32_t)a.conf.setup_timeout * 1000u;
    a.env.cname = "tsunagu-bot";
    a.loop = g_main_loop_new(NULL, FALSE);
    a.sigctx = bot_sig_ctx_new(a.loop, lvl >= RTC_LOG_DEBUG);
    if (!a.sigctx)
        goto out_loop;
    if (a.conf.canary) {
        a.env.relay_only = true; /* the canary measures the relays */
        run_canary(&a);
    } else {
        run(&a);
    }
    rc = a.exit_code;
    bot_sig_ctx_free(a.sigctx);
out_loop:
    g_main_loop_unref(a.loop);
    bot_tls_ctx_free(a.tls);
out_dtls:
    bot_dtls_ctx_free(a.env.dtls);
out_srtp:
    bot_srtp_global_shutdown();
out_conf:
    rtc_conf_dispose(specs, &a.conf);
    return rc < 0 ? 0 : rc; /* -1: --help */
}
