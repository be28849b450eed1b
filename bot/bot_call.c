/* bot_call.c - one call end (see bot_call.h): signal payloads in and out,
 * ICE -> DTLS -> SRTP -> Opus, and the per-packet accounting. */
#include "bot_call.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <glib.h>

#include "bot_audio.h"
#include "bot_delay.h"
#include "bot_loop.h"
#include "bot_rtp.h"
#include "bot_sdp.h"
#include "bot_srtp.h"
#include "rtc_clock.h"
#include "rtc_crypto.h"
#include "rtc_err.h"
#include "rtc_log.h"

#define PKT_CAP (1500 + BOT_SRTP_OVERHEAD)
/* ICE restarts one call may begin: a relay that never comes back costs at
 * most this many agents (one a tick at most, see bot_call_second). */
#define MAX_RESTARTS 30

struct bot_call {
    const bot_env *env;
    bot_call_cbs cbs;
    bot_call_state st;
    bool offerer;
    char *label, *peer;
    const char *end_reason;
    bot_turn turn[BOT_ICE_MAX_TURN];
    size_t n_turn;
    bot_stun stun[BOT_ICE_MAX_TURN];
    size_t n_stun;
    /* Local candidate payloads held until our description is out (JSEP
     * order: a candidate belongs to a description the peer must have
     * first); NULL once it has been sent. */
    json_t *held;

    bot_ice *ice;
    bot_dtls *dtls;
    bot_srtp *srtp;
    bot_audio_dec *dec;
    bool dtls_client, remote_set;
    char remote_fp[BOT_SDP_FP_HEX];
    const char *srtp_name;
    char selected[48];
    /* Kept after the agent is gone, for the report. */
    char relay_transport[8], tls_desc[128], turn_error[400], why[600], stun_desc[340];
    unsigned tls_sessions;

    uint32_t ssrc;
    uint16_t seq;
    uint32_t ts;
    int pt;          /* negotiated Opus payload type */
    uint32_t remote_ssrc;
    uint64_t octets_sent;
    uint64_t drop_rng; /* --drop-percent's generator (xorshift64) */

    /* RTCP: the last SR we got (for LSR/DLSR) */
    uint32_t lsr;
    uint64_t lsr_at_us;

    uint64_t t0_us, t_media_us;
    uint64_t t_stop_us;   /* when the call stopped: the media clock ends here */
    bool failed;          /* ended by itself (fail()), not by the bot or the peer */
    GSource *setup_timer;
    bot_stats stats;
    /* --jitter-ms: RTP held back before it is sent (NULL when off) */
    bot_delay *delay;
    GSource *delay_timer;

    /* ICE restart (RFC 8445 s.9, --ice-restart): a dead path gets a new
     * agent (new ufrag/pwd, fresh TURN allocations) while DTLS and SRTP go
     * on, as the DTLS association does not depend on the pair. */
    char remote_ufrag[BOT_SDP_TOKEN];
    uint64_t session_id;
    uint32_t sdp_sent; /* descriptions sent after the first (o= version, bot_sdp_local) */
    uint64_t last_rtp_us;   /* last RTP in, or when media began */
    uint64_t restart_at_us; /* the restart under way began here; 0: none */
    uint64_t attempt_us;    /* its last attempt (a retry is timed from it) */
    bool path_failed;       /* the agent said FAILED while in media */
    bool waiting_logged;    /* answerer: "waiting for a restart" said once */
    unsigned restarts;
    double restart_ms;      /* the last restart: begun to audio again */
};

/* NTP 32.32 from the wall clock (RFC 3550 s.4): only differences of our own
 * timestamps matter for RTT, so the wall clock's offset is irrelevant. */
static uint64_t ntp_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ((uint64_t)ts.tv_sec + 2208988800ull) << 32 |
           (uint64_t)(((uint64_t)ts.tv_nsec << 32) / 1000000000u);
}

static void fail(bot_call *c, const char *why)
{
    if (c->st == BOT_CALL_ENDED)
        return;
    /* A TURN-over-TLS failure is usually why ICE or set-up failed later:
     * say so instead of a bare timeout. */
    if (c->turn_error[0] && why != c->turn_error) {
        snprintf(c->why, sizeof c->why, "%s (%s)", why, c->turn_error);
        why = c->why;
    }
    RTC_LOG(RTC_LOG_WARN, c->label, "call failed: %s", why);
    c->failed = true;
    bot_call_stop(c, why);
    c->cbs.ended(c->cbs.ud, c, why);
}

static gboolean on_setup_timeout(gpointer ud)
{
    bot_call *c = ud;
    bot_timer_fired(&c->setup_timer);
    if (c->st != BOT_CALL_MEDIA && c->st != BOT_CALL_ENDED)
        fail(c, "set-up timeout");
    return G_SOURCE_REMOVE;
}

/* Our offer or answer, then the candidates gathered meanwhile, in order. */
static void send_description(bot_call *c, const char *type, const char *sdp)
{
    json_t *d = json_pack("{s:{s:s,s:s}}", "description", "type", type, "sdp", sdp), *h = c->held;
    size_t i;
    if (d)
        c->cbs.send(c->cbs.ud, c, d);
    c->held = NULL;
    json_array_foreach(h, i, d)
        c->cbs.send(c->cbs.ud, c, json_incref(d));
    json_decref(h);
}

/* --- ICE callbacks --- */

static void ice_candidate(void *ud, const char *cand)
{
    bot_call *c = ud;
    json_t *d;
    if (cand)
        d = json_pack("{s:{s:s,s:s,s:i}}", "candidate", "candidate", cand, "sdpMid", "0",
                      "sdpMLineIndex", 0);
    else
        d = json_pack("{s:n}", "candidate");
    if (!d)
        return;
    if (c->held)
        json_array_append_new(c->held, d);
    else
        c->cbs.send(c->cbs.ud, c, d);
}

static void ice_turn_error(void *ud, const char *msg, bool all_failed)
{
    bot_call *c = ud;
    snprintf(c->turn_error, sizeof c->turn_error, "%s", msg);
    /* Relay only and every server failed its TLS: no candidate will come,
     * so end now with the reason rather than wait for the set-up timeout. */
    if (all_failed && c->st < BOT_CALL_SECURING)
        fail(c, c->turn_error);
}

static void dtls_send(void *ud, const uint8_t *buf, size_t len)
{
    bot_call *c = ud;
    if (c->ice)
        bot_ice_send(c->ice, buf, len);
}

static void dtls_done(void *ud, int err, bot_srtp_keys *keys)
{
    bot_call *c = ud;
    if (err) {
        fail(c, err == RTC_EAUTH ? "DTLS fingerprint mismatch" : "DTLS handshake failed");
        return;
    }
    c->srtp_name = keys->profile == BOT_SRTP_AEAD_AES_128_GCM ? "AEAD_AES_128_GCM"
                                                               : "AES128_CM_SHA1_80";
    c->srtp = bot_srtp_new(keys);
    if (!c->srtp) {
        fail(c, "SRTP session");
        return;
    }
    c->st = BOT_CALL_MEDIA;
    c->last_rtp_us = rtc_clock_mono_us();
    RTC_LOG(RTC_LOG_INFO, c->label, "DTLS done (%s, %s), media flowing", c->srtp_name,
            c->dtls_client ? "client" : "server");
}

static void ice_state(void *ud, bot_ice_state st)
{
    bot_call *c = ud;
    if (st == BOT_ICE_FAILED && c->st == BOT_CALL_MEDIA && c->env->ice_restart_ms) {
        /* not here: the agent cannot be freed from its own callback */
        RTC_LOG(RTC_LOG_INFO, c->label, "ICE path failed in media%s", c->offerer
                ? ": restarting ICE" : "; the offerer restarts ICE");
        c->path_failed = true;
        return;
    }
    if (st == BOT_ICE_FAILED) {
        fail(c, "ICE failed");
        return;
    }
    if (st == BOT_ICE_READY && c->restart_at_us) {
        snprintf(c->selected, sizeof c->selected, "%s", bot_ice_selected(c->ice));
        RTC_LOG(RTC_LOG_INFO, c->label, "ICE restart %u: path ready after %.0f ms (%s)",
                c->restarts, (double)(rtc_clock_mono_us() - c->restart_at_us) / 1000.0,
                c->selected);
        return;
    }
    if (st != BOT_ICE_READY || c->st >= BOT_CALL_SECURING || !c->dtls)
        return;
    snprintf(c->selected, sizeof c->selected, "%s", bot_ice_selected(c->ice));
    RTC_LOG(RTC_LOG_INFO, c->label, "ICE ready (%s), DTLS as %s", c->selected,
            c->dtls_client ? "client" : "server");
    c->st = BOT_CALL_SECURING;
    bot_dtls_start(c->dtls);
}

static void on_rtp(bot_call *c, uint8_t *buf, size_t len, uint64_t now)
{
    bot_rtp_hdr h;
    if (bot_srtp_unprotect(c->srtp, buf, &len)) {
        c->stats.srtp_errors++;
        return;
    }
    if (bot_rtp_parse(buf, len, &h) || (c->pt >= 0 && h.pt != c->pt))
        return; /* not our audio (e.g. a comfort-noise or telephone-event PT) */
    c->remote_ssrc = h.ssrc;
    c->last_rtp_us = now;
    c->waiting_logged = false;
    if (c->restart_at_us) {
        c->restart_ms = (double)(now - c->restart_at_us) / 1000.0;
        c->restart_at_us = 0;
        c->path_failed = false;
        RTC_LOG(RTC_LOG_INFO, c->label, "ICE restart %u: audio again %.0f ms after it began",
                c->restarts, c->restart_ms);
    }
    bot_stats_on_rtp(&c->stats, h.seq, h.ts, now);
    if (c->cbs.audio) {
        bot_call_audio_in in = {h.seq, h.ts, buf + h.payload_off, h.payload_len, now};
        if (!bot_audio_payload_ok(buf + h.payload_off, h.payload_len)) {
            c->stats.decode_errors++;
            return;
        }
        c->stats.decoded++;
        if (!c->t_media_us) {
            c->t_media_us = now;
            RTC_LOG(RTC_LOG_INFO, c->label, "first audio after %.1f ms",
                    (double)(now - c->t0_us) / 1000.0);
        }
        c->cbs.audio(c->cbs.ud, c, &in);
        return;
    }
    /* Load mode may sample: decoding is most of the bot's CPU per packet,
     * and a sampled stream still proves the payload is real Opus. */
    if (c->env->decode_every > 1 && c->t_media_us && c->stats.received % c->env->decode_every)
        return;
    if (bot_audio_dec_decode(c->dec, buf + h.payload_off, h.payload_len) > 0) {
        c->stats.decoded++;
        if (!c->t_media_us) {
            c->t_media_us = now;
            RTC_LOG(RTC_LOG_INFO, c->label, "first audio decoded after %.1f ms",
                    (double)(now - c->t0_us) / 1000.0);
        }
    } else {
        c->stats.decode_errors++;
    }
}

static void on_rtcp(bot_call *c, uint8_t *buf, size_t len, uint64_t now)
{
    bot_rtcp_in in;
    if (bot_srtp_unprotect_rtcp(c->srtp, buf, &len)) {
        c->stats.srtp_errors++;
        return;
    }
    if (bot_rtcp_parse(buf, len, c->ssrc, &in))
        return;
    if (in.got_sr) {
        c->lsr = bot_ntp_mid(in.sr_ntp);
        c->lsr_at_us = now;
        /* the sender's own count of the stream we measure: a stream that
         * stops is then seen as lost, not as nothing (bot_stats.h) */
        if (in.sr_ssrc == c->remote_ssrc)
            bot_stats_on_sr(&c->stats, in.sr_pkt_count, now);
    }
    if (in.got_bye && in.bye_ssrc == c->remote_ssrc)
        bot_stats_on_bye(&c->stats, now);
    if (in.got_rb)
        bot_stats_on_rtt(&c->stats, bot_rtcp_rtt_ms(&in.rb, bot_ntp_mid(ntp_now())));
}

static void ice_recv(void *ud, uint8_t *buf, size_t len)
{
    bot_call *c = ud;
    uint64_t now = rtc_clock_mono_us();
    switch (bot_pkt_classify(buf, len)) {
    case BOT_PKT_DTLS:
        if (c->dtls)
            bot_dtls_recv(c->dtls, buf, len);
        break;
    case BOT_PKT_RTP:
        if (c->srtp)
            on_rtp(c, buf, len, now);
        break;
    case BOT_PKT_RTCP:
        if (c->srtp)
            on_rtcp(c, buf, len, now);
        break;
    default:
        break;
    }
}

/* --- set-up --- */

/* An agent for this call: at set-up, and again for each ICE restart. */
static bot_ice *make_ice(bot_call *c)
{
    bot_ice_params ip;
    bot_ice_cbs icb = {ice_candidate, ice_state, ice_recv, ice_turn_error, c};
    memset(&ip, 0, sizeof ip);
    ip.controlling = c->offerer;
    ip.relay_only = c->env->relay_only;
    ip.turn_family = c->env->turn_family;
    ip.turn = c->turn;
    ip.n_turn = c->n_turn;
    ip.stun = c->stun;
    ip.n_stun = c->n_stun;
    ip.tls = c->env->tls;
    return bot_ice_new(&ip, &icb);
}

bot_call *bot_call_new(const bot_env *env, const bot_call_params *p, const bot_call_cbs *cbs)
{
    bot_call *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->env = env;
    c->cbs = *cbs;
    c->offerer = p->offerer;
    c->label = strdup(p->label ? p->label : "call");
    c->peer = strdup(p->peer ? p->peer : "?");
    c->n_turn = p->n_turn > BOT_ICE_MAX_TURN ? BOT_ICE_MAX_TURN : p->n_turn;
    if (c->n_turn)
        memcpy(c->turn, p->turn, c->n_turn * sizeof *c->turn);
    c->n_stun = p->n_stun > BOT_ICE_MAX_TURN ? BOT_ICE_MAX_TURN : p->n_stun;
    if (c->n_stun)
        memcpy(c->stun, p->stun, c->n_stun * sizeof *c->stun);
    c->t0_us = p->t0_us ? p->t0_us : rtc_clock_mono_us();
    c->pt = 111;
    c->end_reason = "";
    bot_stats_init(&c->stats, 48000);
    if (rtc_random(&c->ssrc, sizeof c->ssrc) || rtc_random(&c->seq, sizeof c->seq) ||
        rtc_random(&c->ts, sizeof c->ts))
        goto out_free;
    c->seq &= 0x7fff; /* RFC 3550 s.5.1 suggests random; keep room before a wrap */
    c->dec = bot_audio_dec_new();
    c->held = json_array();
    if (!c->label || !c->peer || !c->dec || !c->held)
        goto out_free;
    if (env->jitter_ms) {
        /* seeded by the call's label (FNV-1a), so a run repeats its delays */
        uint64_t seed = 1469598103934665603ull;
        for (const char *s = c->label; *s; s++)
            seed = (seed ^ (uint8_t)*s) * 1099511628211ull;
        if (!(c->delay = bot_delay_new(env->jitter_ms, seed, PKT_CAP)))
            goto out_free;
    }
    if (env->drop_pct100) {
        uint64_t seed = 1469598103934665603ull ^ env->drop_seed;
        for (const char *s = c->label; *s; s++)
            seed = (seed ^ (uint8_t)*s) * 1099511628211ull;
        c->drop_rng = seed ? seed : 1;
    }
    c->ice = make_ice(c);
    if (!c->ice)
        goto out_free;
    snprintf(c->relay_transport, sizeof c->relay_transport, "%s", bot_ice_relay_transport(c->ice));
    snprintf(c->stun_desc, sizeof c->stun_desc, "%s", bot_ice_stun_server(c->ice));
    if (c->stun_desc[0])
        RTC_LOG(RTC_LOG_INFO, c->label, "STUN server %s", c->stun_desc);
    else if (c->n_stun)
        RTC_LOG(RTC_LOG_INFO, c->label, "no STUN server used (%s)",
                env->relay_only ? "relay only" : "none resolves to IPv4");
    c->st = BOT_CALL_SIGNALING;
    c->session_id = ((uint64_t)c->ssrc << 16) | c->seq;
    c->restart_ms = -1;
    c->setup_timer = bot_timer_new(env->setup_timeout_ms ? env->setup_timeout_ms : 30000,
                                   on_setup_timeout, c);
    if (p->offerer) {
        char sdp[4096];
        bot_sdp_local l = {bot_ice_ufrag(c->ice), bot_ice_pwd(c->ice),
                           bot_dtls_ctx_fingerprint(env->dtls), BOT_SETUP_ACTPASS, c->ssrc,
                           c->session_id, env->cname};
        if (bot_sdp_build_offer(&l, sdp, sizeof sdp) < 0)
            goto out_ice;
        send_description(c, "offer", sdp);
    }
    return c;
out_ice:
    bot_ice_free(c->ice);
out_free:
    json_decref(c->held);
    bot_audio_dec_free(c->dec);
    free(c->label);
    free(c->peer);
    bot_stats_dispose(&c->stats);
    free(c);
    return NULL;
}

/* Take the remote description's ICE and DTLS parameters (both roles). */
static int apply_remote(bot_call *c, const bot_sdp *s, int ai)
{
    const bot_sdp_mline *m = &s->m[ai];
    bot_dtls_cbs dcb = {dtls_send, dtls_done, c};

    if (!m->ufrag[0] || !m->pwd[0] || !m->fp[0] || g_ascii_strcasecmp(m->fp_alg, "sha-256"))
        return RTC_EUNSUP;
    snprintf(c->remote_fp, sizeof c->remote_fp, "%s", m->fp);
    snprintf(c->remote_ufrag, sizeof c->remote_ufrag, "%s", m->ufrag);
    c->pt = m->opus_pt;
    if (c->offerer)
        /* We offered actpass; the answer picks (RFC 5763 s.5). */
        c->dtls_client = m->setup == BOT_SETUP_PASSIVE;
    else
        /* We answer active, as browsers do, unless the offerer insisted on
         * being the client. */
        c->dtls_client = m->setup != BOT_SETUP_ACTIVE;
    c->dtls = bot_dtls_new(c->env->dtls, c->dtls_client, c->remote_fp, &dcb);
    if (!c->dtls)
        return RTC_EMSG;
    if (bot_ice_set_remote_credentials(c->ice, m->ufrag, m->pwd))
        return RTC_EMSG;
    (void)ai; /* BUNDLE: candidates of every m-line belong to the one transport */
    for (size_t i = 0; i < s->n_cands; i++)
        bot_ice_add_remote_candidate(c->ice, s->cands[i].cand);
    if (s->end_of_candidates)
        bot_ice_remote_gathering_done(c->ice);
    c->remote_set = true;
    c->st = BOT_CALL_CONNECTING;
    return 0;
}

/* The peer's new ICE credentials and candidates for the agent of a
 * restart. The DTLS association stays, so its fingerprint must too. */
static int apply_restart(bot_call *c, const bot_sdp *s, int ai)
{
    const bot_sdp_mline *m = &s->m[ai];
    if (!m->ufrag[0] || !m->pwd[0] || g_ascii_strcasecmp(m->fp, c->remote_fp))
        return RTC_EUNSUP;
    snprintf(c->remote_ufrag, sizeof c->remote_ufrag, "%s", m->ufrag);
    if (bot_ice_set_remote_credentials(c->ice, m->ufrag, m->pwd))
        return RTC_EMSG;
    for (size_t i = 0; i < s->n_cands; i++)
        bot_ice_add_remote_candidate(c->ice, s->cands[i].cand);
    if (s->end_of_candidates)
        bot_ice_remote_gathering_done(c->ice);
    return 0;
}

/* A fresh agent in place of the old one (freed: its TURN allocations are
 * released if the server still knows them). Candidates wait for our next
 * description. false when no agent could be made: the old one stays. */
static bool swap_agent(bot_call *c, uint64_t now)
{
    bot_ice *n;
    json_t *held = json_array();
    if (!held)
        return false;
    json_decref(c->held);
    c->held = held;
    n = make_ice(c);
    if (!n) {
        RTC_LOG(RTC_LOG_WARN, c->label, "ICE restart: no new agent");
        json_decref(c->held);
        c->held = NULL;
        return false;
    }
    bot_ice_free(c->ice);
    c->ice = n;
    c->restarts++;
    c->path_failed = false;
    if (!c->restart_at_us)
        c->restart_at_us = now;
    c->attempt_us = now;
    return true;
}

/* Offerer: a new offer with new credentials (RFC 8445 s.9, JSEP 5.2.1:
 * an ICE restart is just a subsequent offer). */
static void start_restart(bot_call *c, uint64_t now, const char *why)
{
    char sdp[4096];
    bot_sdp_local l;
    if (!swap_agent(c, now))
        return;
    RTC_LOG(RTC_LOG_INFO, c->label, "ICE restart %u (%s): new credentials, gathering again",
            c->restarts, why);
    l = (bot_sdp_local){bot_ice_ufrag(c->ice), bot_ice_pwd(c->ice),
                        bot_dtls_ctx_fingerprint(c->env->dtls), BOT_SETUP_ACTPASS, c->ssrc,
                        c->session_id, c->env->cname, ++c->sdp_sent};
    if (bot_sdp_build_offer(&l, sdp, sizeof sdp) < 0)
        return;
    send_description(c, "offer", sdp);
}

/* A description after the first exchange: an ICE restart offer (new ufrag)
 * to answer, or the answer to ours; other renegotiation is not supported. */
static void on_later_description(bot_call *c, const char *type, bot_sdp *s, const char *text)
{
    int ai;
    if (bot_sdp_parse(s, text, strlen(text)) || (ai = bot_sdp_audio_index(s)) < 0) {
        RTC_LOG(RTC_LOG_WARN, c->label, "unusable later %s; ignored", type);
        return;
    }
    if (!c->offerer && !strcmp(type, "offer") && strcmp(s->m[ai].ufrag, c->remote_ufrag) &&
        c->st == BOT_CALL_MEDIA) {
        char ans[8192];
        bot_sdp_local l;
        if (g_ascii_strcasecmp(s->m[ai].fp, c->remote_fp)) {
            RTC_LOG(RTC_LOG_WARN, c->label, "restart offer with a new DTLS fingerprint; ignored");
            return;
        }
        if (!swap_agent(c, rtc_clock_mono_us()))
            return;
        RTC_LOG(RTC_LOG_INFO, c->label, "ICE restart %u asked by the offerer: new credentials",
                c->restarts);
        if (apply_restart(c, s, ai)) {
            RTC_LOG(RTC_LOG_WARN, c->label, "restart offer unusable");
            return;
        }
        /* the DTLS roles stay (RFC 8842 s.5.5): the same setup as before */
        l = (bot_sdp_local){bot_ice_ufrag(c->ice), bot_ice_pwd(c->ice),
                            bot_dtls_ctx_fingerprint(c->env->dtls),
                            c->dtls_client ? BOT_SETUP_ACTIVE : BOT_SETUP_PASSIVE, c->ssrc,
                            c->session_id, c->env->cname, ++c->sdp_sent};
        if (bot_sdp_build_answer(s, &l, ans, sizeof ans) < 0)
            return;
        send_description(c, "answer", ans);
    } else if (c->offerer && !strcmp(type, "answer") && c->restart_at_us &&
               strcmp(s->m[ai].ufrag, c->remote_ufrag)) {
        if (apply_restart(c, s, ai))
            RTC_LOG(RTC_LOG_WARN, c->label, "restart answer unusable; retried later");
    } else {
        RTC_LOG(RTC_LOG_WARN, c->label, "renegotiation (%s) not supported; ignored", type);
    }
}

static void on_description(bot_call *c, const char *type, const char *sdp_text)
{
    bot_sdp *s = malloc(sizeof *s); /* ~40 KB: not on the stack */
    int ai;
    if (!s)
        return;
    if (c->remote_set) {
        on_later_description(c, type, s, sdp_text);
        goto out;
    }
    if (bot_sdp_parse(s, sdp_text, strlen(sdp_text))) {
        fail(c, "malformed SDP");
        goto out;
    }
    ai = bot_sdp_audio_index(s);
    if (ai < 0) {
        fail(c, "no Opus audio in the remote description");
        goto out;
    }
    if (c->offerer && strcmp(type, "answer") == 0) {
        if (apply_remote(c, s, ai))
            fail(c, "unusable answer (ICE credentials or sha-256 fingerprint missing)");
    } else if (!c->offerer && strcmp(type, "offer") == 0) {
        char ans[8192];
        bot_sdp_local l = {bot_ice_ufrag(c->ice), bot_ice_pwd(c->ice),
                           bot_dtls_ctx_fingerprint(c->env->dtls), BOT_SETUP_ACTIVE, c->ssrc,
                           c->session_id, c->env->cname};
        if (apply_remote(c, s, ai)) {
            fail(c, "unusable offer (ICE credentials or sha-256 fingerprint missing)");
            goto out;
        }
        l.setup = c->dtls_client ? BOT_SETUP_ACTIVE : BOT_SETUP_PASSIVE;
        if (bot_sdp_build_answer(s, &l, ans, sizeof ans) < 0) {
            fail(c, "cannot build answer");
            goto out;
        }
        send_description(c, "answer", ans);
    } else {
        RTC_LOG(RTC_LOG_WARN, c->label, "unexpected %s; ignored", type);
    }
out:
    free(s);
}

void bot_call_on_signal(bot_call *c, json_t *data)
{
    json_t *desc, *cand;
    if (c->st == BOT_CALL_ENDED || !json_is_object(data))
        return;
    desc = json_object_get(data, "description");
    cand = json_object_get(data, "candidate");
    if (desc) {
        const char *type = json_string_value(json_object_get(desc, "type"));
        const char *sdp = json_string_value(json_object_get(desc, "sdp"));
        if (type && sdp)
            on_description(c, type, sdp);
    } else if (cand && json_is_null(cand)) {
        bot_ice_remote_gathering_done(c->ice);
    } else if (cand) {
        const char *s = json_string_value(json_object_get(cand, "candidate"));
        /* Browsers signal end-of-candidates as an empty candidate string.
         * With BUNDLE there is one transport, whichever m-line (sdpMid) a
         * candidate is tagged with, so every candidate goes to the agent. */
        if (s && !s[0])
            bot_ice_remote_gathering_done(c->ice);
        else if (s)
            bot_ice_add_remote_candidate(c->ice, s);
    }
}

/* --- media --- */

/* --jitter-ms: send what is due, then wake for the next packet */
static gboolean on_delay(gpointer ud)
{
    bot_call *c = ud;
    uint64_t now = rtc_clock_mono_us(), next;
    const uint8_t *p;
    size_t n;

    bot_timer_fired(&c->delay_timer);
    if (c->st != BOT_CALL_MEDIA)
        return G_SOURCE_REMOVE;
    while ((p = bot_delay_due(c->delay, now, &n))) {
        bot_ice_send(c->ice, p, n);
        bot_delay_pop(c->delay);
    }
    next = bot_delay_next_us(c->delay);
    if (next)
        c->delay_timer = bot_timer_new((guint)((next - now + 999) / 1000), on_delay, c);
    return G_SOURCE_REMOVE;
}

/* A protected RTP packet out: at once, or through the delay queue. With the
 * queue it counts as sent when queued (a full queue sends at once). */
static void send_rtp(bot_call *c, const uint8_t *pkt, size_t n, size_t len, uint64_t now_us)
{
    if (c->delay && bot_delay_push(c->delay, pkt, n, now_us)) {
        if (!c->delay_timer)
            c->delay_timer = bot_timer_new(
                (guint)((bot_delay_next_us(c->delay) - now_us + 999) / 1000), on_delay, c);
    } else if (bot_ice_send(c->ice, pkt, n)) {
        return;
    }
    c->stats.sent++;
    c->octets_sent += len;
}

void bot_call_send_audio(bot_call *c, const uint8_t *payload, size_t len, uint64_t now_us)
{
    uint8_t pkt[PKT_CAP];
    bot_rtp_hdr h;
    size_t n;
    if (c->st != BOT_CALL_MEDIA || len > 1400)
        return;
    c->seq++;
    c->ts += 960;
    h.pt = (uint8_t)c->pt;
    h.marker = false;
    h.seq = c->seq;
    h.ts = c->ts;
    h.ssrc = c->ssrc;
    if (bot_rtp_write(pkt, sizeof pkt, &h) < 0)
        return;
    memcpy(pkt + BOT_RTP_HDR, payload, len);
    n = BOT_RTP_HDR + len;
    /* Hidden test impairment (--drop-every N): the packet is numbered and
     * counted, then not sent, so the receiver must see exactly this loss. */
    if (c->env->drop_every && (uint32_t)(c->stats.sent + c->stats.dropped_on_purpose + 1) % c->env->drop_every == 0) {
        c->stats.dropped_on_purpose++;
        return;
    }
    if (c->env->drop_pct100) {
        /* xorshift64: a uniform draw in 0..9999 against the share */
        c->drop_rng ^= c->drop_rng << 13;
        c->drop_rng ^= c->drop_rng >> 7;
        c->drop_rng ^= c->drop_rng << 17;
        if (c->drop_rng % 10000u < c->env->drop_pct100) {
            c->stats.dropped_on_purpose++;
            return;
        }
    }
    if (bot_srtp_protect(c->srtp, pkt, &n, sizeof pkt))
        return;
    send_rtp(c, pkt, n, len, now_us);
}

/* One compound SR/RR + SDES (+ BYE), SRTCP-protected, to the peer. */
static void send_rtcp(bot_call *c, uint64_t now_us, bool bye)
{
    uint8_t pkt[512];
    bot_rtcp_out o;
    size_t n;
    int len;

    memset(&o, 0, sizeof o);
    o.ssrc = c->ssrc;
    o.is_sr = c->stats.sent > 0;
    o.ntp = ntp_now();
    o.rtp_ts = c->ts;
    /* --drop-every stands for loss on the path: those packets were "sent"
     * into it, so the receiver's SR-based count must see them missing. */
    o.pkt_count = (uint32_t)(c->stats.sent + c->stats.dropped_on_purpose);
    o.octet_count = (uint32_t)c->octets_sent;
    o.cname = c->env->cname;
    o.bye = bye;
    if (c->stats.started) {
        o.has_rb = true;
        bot_stats_report_block(&c->stats, c->remote_ssrc, &o.rb);
        if (c->lsr_at_us) {
            o.rb.lsr = c->lsr;
            o.rb.dlsr = (uint32_t)((now_us - c->lsr_at_us) * 65536 / 1000000);
        }
    }
    len = bot_rtcp_write(pkt, sizeof pkt - BOT_SRTP_OVERHEAD, &o);
    if (len < 0)
        return;
    n = (size_t)len;
    if (bot_srtp_protect_rtcp(c->srtp, pkt, &n, sizeof pkt) == 0)
        bot_ice_send(c->ice, pkt, n);
}

void bot_call_second(bot_call *c, uint64_t now_us)
{
    bot_stats_sample_at(&c->stats, (double)(now_us - c->t0_us) / 1e6, now_us);
    if (c->st != BOT_CALL_MEDIA)
        return;
    send_rtcp(c, now_us, false);
    /* a peer that said BYE stopped on purpose: its silence is no dead path */
    if (c->env->ice_restart_ms && !c->stats.bye_us) {
        /* silence counts from the last RTP, or from the restart under way
         * (a retry waits as long as the first restart did) */
        uint64_t since = c->restart_at_us && c->attempt_us > c->last_rtp_us ? c->attempt_us
                                                                            : c->last_rtp_us;
        bool dead = c->path_failed || now_us - since >= (uint64_t)c->env->ice_restart_ms * 1000u;
        if (dead && c->offerer && c->restarts < MAX_RESTARTS)
            start_restart(c, now_us, c->path_failed ? "ICE path failed" : "no audio");
        else if (dead && !c->offerer && !c->waiting_logged) {
            RTC_LOG(RTC_LOG_INFO, c->label, "no audio for %u ms: waiting for the offerer's ICE "
                    "restart", c->env->ice_restart_ms);
            c->waiting_logged = true;
        }
    }
}

/* --- teardown and views --- */

void bot_call_stop(bot_call *c, const char *why)
{
    if (c->st == BOT_CALL_ENDED)
        return;
    /* RTCP BYE (RFC 3550 s.6.6): the peer then knows our stream ended on
     * purpose and does not count what we no longer send as lost. */
    if (c->st == BOT_CALL_MEDIA && c->srtp && c->ice)
        send_rtcp(c, rtc_clock_mono_us(), true);
    c->st = BOT_CALL_ENDED;
    c->end_reason = why;
    c->t_stop_us = rtc_clock_mono_us();
    bot_timer_cancel(&c->setup_timer);
    bot_timer_cancel(&c->delay_timer);
    if (c->ice) {
        /* a pair selected without READY (yet) still tells the path */
        if (!c->selected[0])
            snprintf(c->selected, sizeof c->selected, "%s", bot_ice_selected(c->ice));
        c->tls_sessions = bot_ice_tls_sessions(c->ice);
        snprintf(c->tls_desc, sizeof c->tls_desc, "%s", bot_ice_tls_desc(c->ice));
    }
    bot_dtls_free(c->dtls);
    c->dtls = NULL;
    bot_srtp_free(c->srtp);
    c->srtp = NULL;
    bot_ice_free(c->ice);
    c->ice = NULL;
}

void bot_call_free(bot_call *c)
{
    if (!c)
        return;
    bot_call_stop(c, "freed");
    json_decref(c->held);
    bot_audio_dec_free(c->dec);
    bot_delay_free(c->delay);
    bot_stats_dispose(&c->stats);
    free(c->label);
    free(c->peer);
    free(c);
}

bot_call_state bot_call_get_state(const bot_call *c) { return c->st; }

static const char *state_name(bot_call_state s)
{
    switch (s) {
    case BOT_CALL_NEW: return "new";
    case BOT_CALL_SIGNALING: return "signaling";
    case BOT_CALL_CONNECTING: return "connecting";
    case BOT_CALL_SECURING: return "securing";
    case BOT_CALL_MEDIA: return "media";
    case BOT_CALL_ENDED: return "ended";
    default: return "?";
    }
}

void bot_call_info_get(const bot_call *c, bot_call_info *o)
{
    memset(o, 0, sizeof *o);
    o->label = c->label;
    o->peer = c->peer;
    o->role = c->offerer ? "offerer" : "answerer";
    o->state = state_name(c->st);
    o->end_reason = c->end_reason;
    /* not READY (yet): the pair the agent selected, if any */
    o->selected = c->selected[0] ? c->selected : c->ice ? bot_ice_selected(c->ice) : "-";
    o->srtp = c->srtp_name ? c->srtp_name : "-";
    o->relay_transport = c->relay_transport;
    o->tls_sessions = c->ice ? bot_ice_tls_sessions(c->ice) : c->tls_sessions;
    o->tls = c->ice ? bot_ice_tls_desc(c->ice) : c->tls_desc;
    o->turn_error = c->turn_error;
    o->stun_server = c->stun_desc;
    o->media = c->t_media_us != 0;
    o->setup_ms = c->t_media_us ? (double)(c->t_media_us - c->t0_us) / 1000.0 : -1;
    {
        bot_stats_media m;
        bot_stats_media_at(&c->stats, c->t_stop_us ? c->t_stop_us : rtc_clock_mono_us(), &m);
        o->loss_pct = m.loss_pct;
        o->lost = m.lost;
        o->expected = m.expected;
        o->lost_seq = m.lost_seq;
        o->lost_sr = m.lost_sr;
        o->lost_clock = m.lost_clock;
        o->max_gap_ms = m.max_gap_ms;
    }
    o->ice_restarts = c->restarts;
    o->restart_ms = c->restart_ms;
    o->failed = c->failed;
    o->jitter_ms = bot_stats_jitter_ms(&c->stats);
    o->rtt_ms = bot_stats_rtt_avg(&c->stats);
    o->mos = o->media ? bot_mos(o->rtt_ms, o->jitter_ms, o->loss_pct) : 1.0;
    o->sent = c->stats.sent;
    o->received = c->stats.received;
    o->held = bot_call_info_held(o);
    o->dropped_on_purpose = c->stats.dropped_on_purpose;
    o->decoded = c->stats.decoded;
    o->decode_errors = c->stats.decode_errors;
    o->srtp_errors = c->stats.srtp_errors;
    o->stats = &c->stats;
}
