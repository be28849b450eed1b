/* bot_canary.c - canary calls (see bot_canary.h). */
#include "bot_canary.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <glib.h>

#include "bot_canary_stats.h"
#include "bot_http.h"
#include "bot_report.h"
#include "rtc_clock.h"
#include "rtc_log.h"

typedef enum { PROBE_IDLE, PROBE_JOINING_A, PROBE_JOINING_B, PROBE_CALLING } probe_state;

typedef struct {
    bot_canary *cn;
    bool offerer;          /* b offers: the later joiner calls (DESIGN.md) */
    bot_sig *sig;
    char id[128];
    bot_turn turn[BOT_ICE_MAX_TURN];
    char url[BOT_ICE_MAX_TURN][BOT_CANARY_RELAY_LEN];
    size_t n_turn;
    bot_call *call;
} cmember;

struct bot_canary {
    bot_canary_params p;
    bot_canary_stats st;
    bot_http *http;
    /* the relays signaling handed out last (turn: URLs), probed in order */
    char relays[BOT_CANARY_MAX_RELAYS][BOT_CANARY_RELAY_LEN];
    size_t n_relays;
    /* the probe in progress */
    probe_state state;
    size_t k;              /* index into relays */
    cmember a, b;
    uint64_t seq, t0_us, media_since_us;
    const char *why;       /* why a probe ended early (static text) */
    char room[300];
    guint check_src, round_src;
};

static double wall_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void start_probe(bot_canary *cn);
static bot_sig *member_join(bot_canary *cn, cmember *m, const char *room);

/* --- signaling --- */

static void call_send(void *ud, bot_call *c, json_t *data)
{
    cmember *m = ud;
    cmember *peer = m == &m->cn->a ? &m->cn->b : &m->cn->a;
    (void)c;
    if (m->sig && peer->id[0])
        bot_sig_send(m->sig, peer->id, data);
    else
        json_decref(data);
}

static void call_ended(void *ud, bot_call *c, const char *why)
{
    cmember *m = ud;
    (void)c;
    m->cn->why = why; /* judged at the next check */
}

/* turn: URLs of joined.iceServers, in order, with their credentials. */
static void take_turn(cmember *m, json_t *servers)
{
    size_t i, k;
    json_t *s, *u;
    m->n_turn = 0;
    json_array_foreach(servers, i, s) {
        json_t *urls = json_object_get(s, "urls");
        json_t *one = json_is_string(urls) ? json_pack("[O]", urls) : json_incref(urls);
        const char *user = json_string_value(json_object_get(s, "username"));
        const char *cred = json_string_value(json_object_get(s, "credential"));
        json_array_foreach(one, k, u) {
            const char *url = json_string_value(u);
            bot_turn t;
            if (!url || m->n_turn == BOT_ICE_MAX_TURN || bot_turn_parse_url(url, &t))
                continue; /* stun: and malformed URLs: the canary probes relays */
            snprintf(t.user, sizeof t.user, "%s", user ? user : "");
            snprintf(t.pass, sizeof t.pass, "%s", cred ? cred : "");
            snprintf(m->url[m->n_turn], sizeof m->url[0], "%s", url);
            m->turn[m->n_turn++] = t;
        }
        json_decref(one);
    }
}

/* This member's call through the relay under probe, alone. */
static void start_call(cmember *m)
{
    bot_canary *cn = m->cn;
    cmember *peer = m == &cn->a ? &cn->b : &cn->a;
    bot_call_params cp;
    bot_call_cbs cbs = {call_send, call_ended, m};
    size_t t;

    for (t = 0; t < m->n_turn && strcmp(m->url[t], cn->relays[cn->k]); t++)
        ;
    if (t == m->n_turn) {
        cn->why = "relay not handed out to the second member";
        return;
    }
    memset(&cp, 0, sizeof cp);
    cp.offerer = m->offerer;
    cp.turn = &m->turn[t];
    cp.n_turn = 1;
    cp.label = m->offerer ? "canary/b" : "canary/a";
    cp.peer = peer->id;
    cp.t0_us = cn->t0_us;
    m->call = bot_call_new(cn->p.env, &cp, &cbs);
    if (!m->call) {
        cn->why = "cannot start a call";
        return;
    }
    bot_worker_adopt(cn->p.worker, m->call);
}

static void sig_joined(void *ud, const char *id, json_t *msg)
{
    cmember *m = ud;
    bot_canary *cn = m->cn;
    snprintf(m->id, sizeof m->id, "%s", id);
    take_turn(m, json_object_get(msg, "iceServers"));
    if (m == &cn->a) {
        /* the relays to probe are what signaling hands out now */
        cn->n_relays = m->n_turn < BOT_CANARY_MAX_RELAYS ? m->n_turn : BOT_CANARY_MAX_RELAYS;
        for (size_t i = 0; i < cn->n_relays; i++)
            snprintf(cn->relays[i], sizeof cn->relays[i], "%s", m->url[i]);
        if (cn->k >= cn->n_relays) {
            cn->why = cn->n_relays ? "relay list shrank" : "no turn: URL in joined.iceServers";
            return;
        }
        cn->state = PROBE_JOINING_B;
        cn->t0_us = rtc_clock_mono_us();
        cn->b.sig = member_join(cn, &cn->b, cn->room);
        if (!cn->b.sig)
            cn->why = "cannot connect to signaling";
        return;
    }
    cn->state = PROBE_CALLING;
    start_call(m); /* b, the later joiner, offers */
}

static void sig_signal(void *ud, const char *from, json_t *data)
{
    cmember *m = ud;
    bot_canary *cn = m->cn;
    cmember *peer = m == &cn->a ? &cn->b : &cn->a;
    if (strcmp(from, peer->id))
        return; /* not our other member: a stray joiner of the canary room */
    if (!m->call && !m->offerer && json_object_get(data, "description"))
        start_call(m);
    if (m->call)
        bot_call_on_signal(m->call, data);
}

static void sig_error(void *ud, const char *code, const char *msg)
{
    cmember *m = ud;
    RTC_LOG(RTC_LOG_WARN, "canary", "signaling error %s: %s", code, msg);
    (void)m;
}

static void sig_closed(void *ud, const char *why)
{
    cmember *m = ud;
    if (!m->id[0])
        m->cn->why = "could not join through signaling";
    (void)why;
}

static void sig_noop(void *ud, const char *peer) { (void)ud, (void)peer; }

static bot_sig *member_join(bot_canary *cn, cmember *m, const char *room)
{
    bot_sig_cbs cbs = {.joined = sig_joined, .peer_joined = sig_noop, .peer_left = sig_noop,
                       .signal = sig_signal, .error = sig_error, .closed = sig_closed, .ud = m};
    return bot_sig_new(cn->p.sigctx, cn->p.signal, room, cn->p.name, &cbs);
}

/* --- probes and rounds --- */

static void member_drop(bot_canary *cn, cmember *m)
{
    if (m->call) {
        bot_call_stop(m->call, "canary probe done");
        bot_worker_release(cn->p.worker, m->call);
        bot_call_free(m->call);
    }
    bot_sig_free(m->sig);
    memset(m, 0, sizeof *m);
    m->cn = cn;
}

/* Judge the probe as a load run judges its legs, account it, tear down. */
static void end_probe(bot_canary *cn)
{
    bot_call_info ci[2];
    bot_gates g = {0, -1, 0};
    bot_canary_probe pr = {false, -1, 1, 0, 0, -1};
    const char *relay = cn->k < cn->n_relays ? cn->relays[cn->k] : "none";
    size_t n = 0, nrtt = 0;
    double rtt = 0;

    for (int i = 0; i < 2; i++) {
        cmember *m = i ? &cn->b : &cn->a;
        if (m->call)
            bot_call_info_get(m->call, &ci[n++]);
    }
    bot_report_judge(ci, n, &g);
    pr.ok = n == 2 && ci[0].pass && ci[1].pass;
    if (n == 2 && ci[0].media && ci[1].media) {
        pr.setup_ms = ci[0].setup_ms > ci[1].setup_ms ? ci[0].setup_ms : ci[1].setup_ms;
        pr.mos = ci[0].mos < ci[1].mos ? ci[0].mos : ci[1].mos;
        pr.loss_pct = ci[0].loss_pct > ci[1].loss_pct ? ci[0].loss_pct : ci[1].loss_pct;
        pr.jitter_ms = ci[0].jitter_ms > ci[1].jitter_ms ? ci[0].jitter_ms : ci[1].jitter_ms;
        for (size_t i = 0; i < 2; i++)
            if (ci[i].rtt_ms >= 0) {
                rtt += ci[i].rtt_ms;
                nrtt++;
            }
        pr.rtt_ms = nrtt ? rtt / (double)nrtt : -1;
    }
    bot_canary_stats_record(&cn->st, relay, &pr, wall_s());
    if (pr.ok)
        RTC_LOG(RTC_LOG_INFO, "canary", "%s: ok, setup %.0f ms, MOS %.2f, loss %.2f%%, jitter "
                "%.2f ms, RTT %.1f ms", relay, pr.setup_ms, pr.mos, pr.loss_pct, pr.jitter_ms,
                pr.rtt_ms);
    else
        RTC_LOG(RTC_LOG_WARN, "canary", "%s: FAILED: %s", relay,
                cn->why ? cn->why : n ? (ci[0].pass ? ci[n - 1].why : ci[0].why) : "no call");
    member_drop(cn, &cn->a);
    member_drop(cn, &cn->b);
    cn->state = PROBE_IDLE;
    cn->why = NULL;
    cn->media_since_us = 0;
    /* the next relay of this round, if any */
    if (++cn->k < cn->n_relays)
        start_probe(cn);
}

/* Every 100 ms during a probe: enough audio on both legs, a failure, or
 * the deadline ends it. */
static gboolean on_check(gpointer ud)
{
    bot_canary *cn = ud;
    uint64_t now = rtc_clock_mono_us();
    bool media = cn->a.call && cn->b.call;
    bot_call_info ci;

    if (cn->state == PROBE_IDLE) {
        cn->check_src = 0;
        return G_SOURCE_REMOVE;
    }
    for (int i = 0; media && i < 2; i++) {
        bot_call_info_get(i ? cn->b.call : cn->a.call, &ci);
        media = ci.media;
    }
    if (media && !cn->media_since_us)
        cn->media_since_us = now;
    if (cn->why || (media && now - cn->media_since_us >= cn->p.call_s * 1000000ull) ||
        now - cn->t0_us > (uint64_t)(cn->p.setup_timeout_s + cn->p.call_s) * 1000000ull) {
        if (!cn->why && !media)
            cn->why = "no audio on both legs before the deadline";
        end_probe(cn); /* may start the next probe, which has its own check */
        if (cn->state == PROBE_IDLE) {
            cn->check_src = 0;
            return G_SOURCE_REMOVE;
        }
    }
    return G_SOURCE_CONTINUE;
}

static void start_probe(bot_canary *cn)
{
    cn->seq++;
    snprintf(cn->room, sizeof cn->room, "%s-%llu", cn->p.room, (unsigned long long)cn->seq);
    memset(&cn->a, 0, sizeof cn->a);
    memset(&cn->b, 0, sizeof cn->b);
    cn->a.cn = cn->b.cn = cn;
    cn->b.offerer = true;
    cn->state = PROBE_JOINING_A;
    cn->t0_us = rtc_clock_mono_us();
    cn->a.sig = member_join(cn, &cn->a, cn->room);
    if (!cn->a.sig)
        cn->why = "cannot connect to signaling";
    if (!cn->check_src)
        cn->check_src = g_timeout_add(100, on_check, cn);
}

static gboolean on_round(gpointer ud)
{
    bot_canary *cn = ud;
    if (cn->state != PROBE_IDLE) {
        RTC_LOG(RTC_LOG_WARN, "canary", "round skipped: the last one is still running");
        return G_SOURCE_CONTINUE;
    }
    cn->st.rounds++;
    cn->k = 0;
    /* The worker keeps every send-clock lateness sample since its last
     * "steady" mark (for a load run's report); restarting it each round
     * keeps that list to one round's worth: weeks in constant memory. */
    bot_worker_steady(cn->p.worker);
    start_probe(cn);
    return G_SOURCE_CONTINUE;
}

static void render(void *ctx, rtc_buf *b) { bot_canary_stats_render(&((bot_canary *)ctx)->st, b); }

bot_canary *bot_canary_new(const bot_canary_params *p, char *err, size_t errlen)
{
    bot_canary *cn = calloc(1, sizeof *cn);
    rtc_http_site site = {.metrics_type = RTC_HTTP_METRICS_TYPE, .method_body = "method not allowed\n",
                          .render_metrics = render};
    if (!cn) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    cn->p = *p;
    cn->a.cn = cn->b.cn = cn;
    bot_canary_stats_init(&cn->st, wall_s());
    site.ctx = cn;
    cn->http = bot_http_new(p->metrics_listen, &site, err, errlen);
    if (!cn->http) {
        free(cn);
        return NULL;
    }
    RTC_LOG(RTC_LOG_INFO, "canary", "a round every %u s, metrics on port %u", p->interval_s,
            bot_http_port(cn->http));
    cn->round_src = g_timeout_add(p->interval_s * 1000u, on_round, cn);
    on_round(cn);
    return cn;
}

uint16_t bot_canary_metrics_port(const bot_canary *c) { return bot_http_port(c->http); }

void bot_canary_free(bot_canary *cn)
{
    if (!cn)
        return;
    if (cn->round_src)
        g_source_remove(cn->round_src);
    if (cn->check_src)
        g_source_remove(cn->check_src);
    member_drop(cn, &cn->a);
    member_drop(cn, &cn->b);
    bot_http_free(cn->http);
    free(cn);
}
