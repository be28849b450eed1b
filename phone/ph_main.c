/* ph_main.c - tsunagu-phone: a desktop audio client for people (issue 18).
 *
 * One signaling connection in --room (the bot's signaling client, bot_sig),
 * and the DESIGN.md call convention: on joining, call every member already
 * there; answer whoever offers later. Each call is a bot_call from the
 * shared call library (ICE, DTLS-SRTP, RTP/RTCP, statistics, ICE restart
 * after a relay crash); what it receives comes to us through the call's
 * audio hook into a jitter buffer per call (ph_jbuf.h).
 *
 * The sound card's clocks drive the media (ph_pulse.h): each captured 20 ms
 * frame is cleaned (echo, noise, gain: ph_dsp.h), encoded once and sent to
 * every call; each time the speaker has room for 20 ms, every call's jitter
 * buffer gives a frame (played, rebuilt from FEC, or concealed), the frames
 * are mixed, written to the speaker, fed to the echo canceller as its
 * reference and to --record. Everything is on the one GLib main loop. */
#include <glib-unix.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "bot_dtls.h"
#include "bot_srtp.h"
#include "bot_tlsfwd.h"
#include "ph_phone.h"
#include "ph_ui.h"
#include "rtc_clock.h"
#include "rtc_conf.h"
#include "rtc_err.h"
#include "rtc_log.h"
#include "rtc_version.h"

static int check_ws_url(const char *v, char *err, size_t errlen)
{
    if (strncmp(v, "ws://", 5) && strncmp(v, "wss://", 6)) {
        snprintf(err, errlen, "must start with ws:// or wss://");
        return 1;
    }
    return 0;
}

static int check_aec_lib(const char *v, char *err, size_t errlen)
{
    if (strcmp(v, "webrtc") && strcmp(v, "speex")) {
        snprintf(err, errlen, "must be webrtc or speex");
        return 1;
    }
    return 0;
}

static int check_pct(const char *v, char *err, size_t errlen)
{
    char *end;
    double d = strtod(v, &end);
    if (end == v || *end || !isfinite(d) || d < 0 || d > 100) {
        snprintf(err, errlen, "must be a number from 0 to 100");
        return 1;
    }
    return 0;
}

#define F(x) offsetof(ph_conf, x)
static const rtc_conf_spec specs[] = {
    {"signal", RTC_CONF_STR, F(signal), 0, 0, NULL, "URL", "signaling WebSocket, ws:// or wss://HOST:PORT/ws (required)", check_ws_url, 0},
    {"room", RTC_CONF_STR, F(room), 0, 200, NULL, "R", "room to join (required)", NULL, 0},
    {"name", RTC_CONF_STR, F(name), 0, 100, "tsunagu-phone", "NAME", "display name sent with join", NULL, 0},
    {"token", RTC_CONF_STR, F(token), 0, 4096, NULL, "JWT", "access token for join (signaling --token-secret; tsunagu-signal token makes one)", NULL, RTC_CONF_SECRET},
    {"list-devices", RTC_CONF_BOOL, F(list_devices), 0, 0, "false", NULL, "print PulseAudio inputs (sources) and outputs (sinks) and exit", NULL, 0},
    {"input", RTC_CONF_STR, F(input), 0, 0, NULL, "SOURCE", "microphone: a PulseAudio source name (--list-devices); default: the server's default source", NULL, 0},
    {"output", RTC_CONF_STR, F(output), 0, 0, NULL, "SINK", "speaker: a PulseAudio sink name (--list-devices); default: the server's default sink", NULL, 0},
    {"record", RTC_CONF_STR, F(record), 0, 0, NULL, "FILE.wav", "also write what the phone plays (48 kHz mono 16-bit WAV)", NULL, 0},
    {"report", RTC_CONF_STR, F(report), 0, 0, NULL, "FILE.json", "write the calls' figures here at the end", NULL, 0},
    {"muted", RTC_CONF_BOOL, F(muted), 0, 0, "false", NULL, "start with the microphone muted (key m toggles)", NULL, 0},
    {"no-ui", RTC_CONF_BOOL, F(no_ui), 0, 0, "false", NULL, "no screen and no keys: one status line per call per second on stderr (tests, scripts)", NULL, 0},
    {"duration", RTC_CONF_INT, F(duration), 0, 86400, "0", "S", "leave after S seconds; 0 = until q, SIGINT or SIGTERM", NULL, 0},
    {"aec-lib", RTC_CONF_STR, F(aec_lib), 0, 0, "webrtc", "webrtc|speex", "library for echo cancellation, noise suppression and gain control: webrtc-audio-processing or libspeexdsp (docs/phone.md compares them)", check_aec_lib, 0},
    {"no-aec", RTC_CONF_BOOL, F(no_aec), 0, 0, "false", NULL, "no echo cancellation (headphones)", NULL, 0},
    {"no-ns", RTC_CONF_BOOL, F(no_ns), 0, 0, "false", NULL, "no noise suppression", NULL, 0},
    {"no-agc", RTC_CONF_BOOL, F(no_agc), 0, 0, "false", NULL, "no automatic gain control", NULL, 0},
    {"bitrate", RTC_CONF_INT, F(bitrate), 6000, 128000, "32000", "BPS", "Opus bitrate", NULL, 0},
    {"complexity", RTC_CONF_INT, F(complexity), 0, 10, "5", "N", "Opus encoder complexity 0-10: 5 costs half the CPU of libopus's default 9 for speech that measures the same (docs/phone.md)", NULL, 0},
    {"relay-only", RTC_CONF_BOOL, F(relay_only), 0, 0, "false", NULL, "use only relayed (TURN) candidates", NULL, 0},
    {"turn-ca", RTC_CONF_STR, F(turn_ca), 0, 0, NULL, "FILE.pem", "turns: servers: trust the CA certificates in this PEM bundle instead of the system store", NULL, 0},
    {"turn-insecure", RTC_CONF_BOOL, F(turn_insecure), 0, 0, "false", NULL, "turns: servers: do NOT verify the certificate (testing only)", NULL, 0},
    {"setup-timeout", RTC_CONF_INT, F(setup_timeout), 1, 600, "30", "S", "a call with no audio after this many seconds has failed", NULL, 0},
    {"ice-restart", RTC_CONF_INT, F(ice_restart), 0, 60, "2", "S", "a call with no audio for S seconds (or whose ICE path failed) restarts ICE (relay crash or upgrade); 0 = off", NULL, 0},
    {"drop-percent", RTC_CONF_STR, F(drop_percent), 0, 0, "0", "PCT", "testing only: do not send this share of our RTP packets (pseudo-random, repeatable with --drop-seed), to hear loss concealment", check_pct, 0},
    {"drop-seed", RTC_CONF_INT, F(drop_seed), 0, INT64_MAX, "1", "N", "seed of --drop-percent's generator", NULL, 0},
    {"log-level", RTC_CONF_STR, F(log_level), 0, 0, "warn", "LEVEL", "error|warn|info|debug", NULL, 0},
    RTC_CONF_END};
#undef F

static uint64_t cpu_us(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000u +
           (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

static double frame_db(const int16_t *pcm, size_t n)
{
    double e = 0;
    for (size_t i = 0; i < n; i++)
        e += (double)pcm[i] * pcm[i];
    e = sqrt(e / (double)n) / 32768.0;
    return e > 1e-5 ? 20 * log10(e) : -100;
}

static void finish(phone *ph, int code);
static void on_need(void *ud);

/* --- calls --- */

static void call_send(void *ud, bot_call *c, json_t *data)
{
    ph_peer *p = ud;
    (void)c;
    if (p->ph->sig)
        bot_sig_send(p->ph->sig, p->id, data); /* takes the reference */
    else
        json_decref(data);
}

static void call_ended(void *ud, bot_call *c, const char *why)
{
    ph_peer *p = ud;
    (void)c;
    RTC_LOG(RTC_LOG_WARN, "phone", "call with %s ended: %s", p->id, why);
    snprintf(p->ph->status, sizeof p->ph->status, "call with %s ended: %s",
             p->name[0] ? p->name : p->id, why);
}

static void call_audio(void *ud, bot_call *c, const bot_call_audio_in *in)
{
    ph_peer *p = ud;
    (void)c;
    ph_jbuf_push(p->jb, in->seq, in->ts, in->payload, in->len, in->now_us);
    /* the packet the speaker's fill waited for: play it now, not at the
     * next poll */
    if (p->ph->play_waiting)
        on_need(p->ph);
    if (!p->ph->t_media_us)
        p->ph->t_media_us = in->now_us;
    if (!p->ph->cpu_call_wall_us && in->now_us > p->ph->t_media_us + 1000000u) {
        p->ph->cpu_call_us = cpu_us();
        p->ph->cpu_call_wall_us = in->now_us;
    }
}

static ph_peer *peer_find(phone *ph, const char *id)
{
    for (guint i = 0; i < ph->peers->len; i++) {
        ph_peer *p = ph->peers->pdata[i];
        if (!p->left && !strcmp(p->id, id))
            return p;
    }
    return NULL;
}

static ph_peer *peer_add(phone *ph, const char *id, const char *name)
{
    ph_peer *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->ph = ph;
    snprintf(p->id, sizeof p->id, "%s", id);
    snprintf(p->name, sizeof p->name, "%s", name ? name : "");
    p->level_db = -100;
    p->loud_db = -100;
    p->jb = ph_jbuf_new();
    p->dec = bot_audio_vdec_new();
    if (!p->jb || !p->dec) {
        ph_jbuf_free(p->jb);
        bot_audio_vdec_free(p->dec);
        free(p);
        return NULL;
    }
    g_ptr_array_add(ph->peers, p);
    return p;
}

static void peer_free(gpointer ud)
{
    ph_peer *p = ud;
    bot_call_free(p->call);
    ph_jbuf_free(p->jb);
    bot_audio_vdec_free(p->dec);
    free(p);
}

static void start_call(phone *ph, ph_peer *p, bool offerer)
{
    bot_call_cbs cbs = {.send = call_send, .ended = call_ended, .ud = p, .audio = call_audio};
    char label[64];
    bot_call_params cp = {offerer, ph->ice.turn, ph->ice.n_turn, ph->ice.stun, ph->ice.n_stun,
                          label, p->id, rtc_clock_mono_us()};
    snprintf(label, sizeof label, "phone>%.8s", p->id);
    p->call = bot_call_new(&ph->env, &cp, &cbs);
    if (!p->call) {
        RTC_LOG(RTC_LOG_ERROR, "phone", "cannot start a call to %s", p->id);
        snprintf(ph->status, sizeof ph->status, "cannot start a call to %s", p->id);
    }
}

/* --- signaling --- */

static void sig_joined(void *ud, const char *id, json_t *msg)
{
    phone *ph = ud;
    size_t i;
    json_t *m;
    snprintf(ph->my_id, sizeof ph->my_id, "%s", id);
    ph->joined = true;
    bot_ice_servers_take(json_object_get(msg, "iceServers"), ph->conf.relay_only, "phone", &ph->ice);
    snprintf(ph->status, sizeof ph->status, "joined %s as %s", ph->conf.room, id);
    RTC_LOG(RTC_LOG_INFO, "phone", "joined %s as %s, %zu members", ph->conf.room, id,
            json_array_size(json_object_get(msg, "peers")));
    /* The later joiner calls everyone already there (call convention). */
    json_array_foreach(json_object_get(msg, "peers"), i, m) {
        const char *pid = json_string_value(json_object_get(m, "id"));
        ph_peer *p;
        if (!pid || peer_find(ph, pid) || ph->stopping)
            continue;
        p = peer_add(ph, pid, json_string_value(json_object_get(m, "name")));
        if (p)
            start_call(ph, p, true);
    }
}

static void sig_peer_joined(void *ud, const char *id)
{
    phone *ph = ud;
    if (!peer_find(ph, id))
        peer_add(ph, id, NULL); /* it calls us (convention) */
    RTC_LOG(RTC_LOG_INFO, "phone", "member %s joined; waiting for its offer", id);
    snprintf(ph->status, sizeof ph->status, "%s joined", id);
}

static void sig_peer_left(void *ud, const char *id)
{
    phone *ph = ud;
    ph_peer *p = peer_find(ph, id);
    if (!p)
        return;
    if (p->call)
        bot_call_stop(p->call, "peer left");
    p->left = true;
    RTC_LOG(RTC_LOG_INFO, "phone", "member %s left: call over", id);
    snprintf(ph->status, sizeof ph->status, "%s left", p->name[0] ? p->name : id);
}

static void sig_signal(void *ud, const char *from, json_t *data)
{
    phone *ph = ud;
    ph_peer *p = peer_find(ph, from);
    const char *type = json_string_value(json_object_get(json_object_get(data, "description"), "type"));
    if (ph->stopping)
        return;
    if ((!p || !p->call) && type && !strcmp(type, "offer")) {
        if (!p)
            p = peer_add(ph, from, NULL);
        if (p)
            start_call(ph, p, false);
    }
    if (p && p->call)
        bot_call_on_signal(p->call, data);
}

static void sig_resumed(void *ud, const char *id, json_t *msg)
{
    phone *ph = ud;
    (void)msg;
    RTC_LOG(RTC_LOG_INFO, "phone", "signaling resumed as %s; calls continue", id);
    snprintf(ph->status, sizeof ph->status, "signaling resumed; calls continued");
}

static void sig_error(void *ud, const char *code, const char *message)
{
    phone *ph = ud;
    RTC_LOG(RTC_LOG_WARN, "phone", "signaling error %s: %s", code, message);
    snprintf(ph->status, sizeof ph->status, "signaling error %s: %s", code, message);
}

static void sig_closed(void *ud, const char *why)
{
    phone *ph = ud;
    /* Media does not depend on signaling: calls in progress go on. */
    RTC_LOG(ph->stopping ? RTC_LOG_INFO : RTC_LOG_WARN, "phone", "signaling closed: %s", why);
    snprintf(ph->status, sizeof ph->status, "signaling closed: %s", why);
    if (!ph->joined && !ph->stopping) {
        RTC_LOG(RTC_LOG_ERROR, "phone", "could not join %s: %s", ph->conf.room, why);
        finish(ph, 1);
    }
}

/* --- media: the sound card drives it --- */

/* Each captured 20 ms: clean, encode once, send to every call in media. */
static void on_captured(void *ud)
{
    phone *ph = ud;
    int16_t pcm[PH_FRAME];
    uint8_t pay[BOT_AUDIO_MAX_PAYLOAD];
    uint64_t now = rtc_clock_mono_us();
    /* bounded: the ring holds 500 ms at most */
    for (int k = 0; k < 32 && ph_pulse_read(ph->pulse, pcm, PH_FRAME); k++) {
        int n;
        if (ph->dsp) {
            uint64_t t0 = rtc_clock_mono_us();
            ph_dsp_capture(ph->dsp, pcm);
            ph->dsp_us_sum += (double)(rtc_clock_mono_us() - t0);
        }
        if (++ph->frames_in == 1)
            RTC_LOG(RTC_LOG_INFO, "phone", "first microphone frame");
        ph->mic_db = frame_db(pcm, PH_FRAME);
        if (ph->muted)
            memset(pcm, 0, sizeof pcm); /* keep sending: silence costs ~1 kbit/s and loss stays measurable */
        n = bot_audio_venc_encode(ph->enc, pcm, pay, sizeof pay);
        if (n <= 0)
            continue;
        for (guint i = 0; i < ph->peers->len; i++) {
            ph_peer *p = ph->peers->pdata[i];
            if (p->call && !p->left && bot_call_get_state(p->call) == BOT_CALL_MEDIA)
                bot_call_send_audio(p->call, pay, (size_t)n, now);
        }
        ph->frames_sent++;
    }
}

/* A frame this far under the call's recent loudest, or under QUIET_ABS_DB,
 * is a pause: the jitter buffer may drop it to shrink its delay (a 20 ms cut
 * in a pause is not heard; in a word it is). */
#define QUIET_REL_DB 40.0
#define QUIET_ABS_DB -55.0
/* Squeezed frames per pop at most (bounded loop). */
#define SQUEEZE_MAX 4

static bool is_quiet(const ph_peer *p, double db)
{
    return db < QUIET_ABS_DB || db < p->loud_db - QUIET_REL_DB;
}

static void peer_decode(ph_peer *p, const ph_jb_out *o, int16_t *pcm)
{
    switch (o->kind) {
    case PH_JB_PLAY:
        bot_audio_vdec_decode(p->dec, o->payload, o->len, false, pcm);
        break;
    case PH_JB_FEC:
        bot_audio_vdec_decode(p->dec, o->payload, o->len, true, pcm);
        break;
    case PH_JB_PLC:
        bot_audio_vdec_decode(p->dec, NULL, 0, false, pcm);
        break;
    case PH_JB_WAIT:
    default:
        break;
    }
}

/* One call's next 20 ms for the speaker. */
static void peer_frame(ph_peer *p, int16_t *pcm)
{
    ph_jb_out o;
    double db;
    memset(pcm, 0, PH_FRAME * sizeof *pcm);
    if (p->left)
        return;
    /* in a pause, below a target a stall raised: one more frame of silence */
    if (p->quiet && ph_jbuf_stretch(p->jb))
        return;
    ph_jbuf_pop(p->jb, &o);
    if (o.kind == PH_JB_WAIT)
        return;
    peer_decode(p, &o, pcm);
    db = frame_db(pcm, PH_FRAME);
    /* A backlog (a burst after a stall) goes in the pauses: a quiet frame
     * decoded (the decoder keeps its state) and dropped, the next played. */
    for (int k = 0; k < SQUEEZE_MAX && o.kind == PH_JB_PLAY && is_quiet(p, db) && ph_jbuf_squeeze(p->jb);
         k++) {
        ph_jbuf_pop(p->jb, &o);
        memset(pcm, 0, PH_FRAME * sizeof *pcm);
        peer_decode(p, &o, pcm);
        db = frame_db(pcm, PH_FRAME);
    }
    if (++p->frames_out == 1)
        RTC_LOG(RTC_LOG_INFO, "phone", "first frame from %s to the speaker", p->id);
    p->level_db = db;
    p->quiet = o.kind == PH_JB_PLAY && is_quiet(p, db);
    p->loud_db = db > p->loud_db ? db : p->loud_db - 0.06; /* 3 dB a second */
}

/* Some call is playing with nothing buffered: popping now would conceal a
 * frame that is merely not here yet and add 20 ms of delay for good. */
static bool any_dry(const phone *ph)
{
    for (guint i = 0; i < ph->peers->len; i++) {
        const ph_peer *p = ph->peers->pdata[i];
        if (!p->left && ph_jbuf_dry(p->jb))
            return true;
    }
    return false;
}

/* The speaker has room: fill it 20 ms at a time from every call. While the
 * speaker still holds PLAY_MARGIN_MS, a dry jitter buffer is waited for
 * rather than concealed (the packet usually comes within a poll). */
#define PLAY_MARGIN_MS 30
#define PH_POLL_MS 100
static void on_need(void *ud)
{
    phone *ph = ud;
    int16_t mix[PH_FRAME], one[PH_FRAME];
    int32_t acc[PH_FRAME];
    ph->play_waiting = false;
    for (int k = 0; k < 16 && ph_pulse_writable(ph->pulse) >= PH_FRAME; k++) {
        /* dry: wait while the speaker holds a margin; below it conceal one
         * frame a call (this poll or request), not a burst of them (after an
         * underrun the server asks for its whole buffer at once) */
        if (any_dry(ph) && (k > 0 || ph_pulse_queued(ph->pulse) >= PH_RATE / 1000 * PLAY_MARGIN_MS)) {
            ph->play_waiting = true;
            break;
        }
        memset(acc, 0, sizeof acc);
        for (guint i = 0; i < ph->peers->len; i++) {
            peer_frame(ph->peers->pdata[i], one);
            for (size_t j = 0; j < PH_FRAME; j++)
                acc[j] += one[j];
        }
        for (size_t j = 0; j < PH_FRAME; j++)
            mix[j] = (int16_t)(acc[j] > 32767 ? 32767 : acc[j] < -32768 ? -32768 : acc[j]);
        if (ph_pulse_write(ph->pulse, mix, PH_FRAME))
            break;
        if (ph->dsp)
            ph_dsp_played(ph->dsp, mix);
        if (ph->wav && ph_wav_write(ph->wav, mix, PH_FRAME)) {
            RTC_LOG(RTC_LOG_ERROR, "phone", "cannot write %s; recording stopped", ph->conf.record);
            ph_wav_close(ph->wav);
            ph->wav = NULL;
        }
    }
}

/* The speaker is also filled on each microphone fragment (every 20 ms, a
 * wake-up the phone has anyway) and when a packet a wait was for arrives
 * (call_audio), as well as on PulseAudio's own requests: a request the
 * server skipped (seen at stream start) must not stall playout. This poll
 * is the net under those for a microphone that stops delivering; it was a
 * 10 ms timer of its own, 100 wake-ups a second (docs/phone.md "CPU"). */
static gboolean on_poll(gpointer ud)
{
    phone *ph = ud;
    on_need(ph);
    on_captured(ph);
    return G_SOURCE_CONTINUE;
}

static void on_mic(void *ud)
{
    on_captured(ud);
    on_need(ud);
}

static void on_audio_ready(void *ud)
{
    phone *ph = ud;
    bot_sig_cbs cbs = {.joined = sig_joined, .peer_joined = sig_peer_joined,
                       .peer_left = sig_peer_left, .resumed = sig_resumed,
                       .signal = sig_signal, .error = sig_error, .closed = sig_closed, .ud = ph};
    ph->audio_ready = true;
    ph->poll_src = g_timeout_add(PH_POLL_MS, on_poll, ph);
    RTC_LOG(RTC_LOG_INFO, "phone", "sound card ready; joining %s", ph->conf.room);
    snprintf(ph->status, sizeof ph->status, "sound ready; joining %s", ph->conf.room);
    /* Join only once the sound card works: a wrong device fails before
     * anyone is called. */
    ph->sig = bot_sig_new(ph->sigctx, ph->conf.signal, ph->conf.room, ph->conf.name, &cbs);
    if (!ph->sig) {
        RTC_LOG(RTC_LOG_ERROR, "phone", "cannot connect to %s", ph->conf.signal);
        finish(ph, 1);
        return;
    }
    if (ph->conf.token)
        bot_sig_set_token(ph->sig, ph->conf.token);
}

static void on_audio_failed(void *ud, const char *why)
{
    phone *ph = ud;
    RTC_LOG(RTC_LOG_ERROR, "phone", "sound: %s", why);
    fprintf(stderr, "tsunagu-phone: sound: %s\n", why);
    finish(ph, 1);
}

/* --- clocks, keys, the end --- */

static gboolean on_second(gpointer ud)
{
    phone *ph = ud;
    uint64_t now = rtc_clock_mono_us(), c = cpu_us();
    if (now > ph->cpu_prev_wall_us)
        ph->cpu_pct = 100.0 * (double)(c - ph->cpu_prev_us) / (double)(now - ph->cpu_prev_wall_us);
    ph->cpu_prev_us = c;
    ph->cpu_prev_wall_us = now;
    for (guint i = 0; i < ph->peers->len; i++) {
        ph_peer *p = ph->peers->pdata[i];
        if (p->call && !p->left)
            bot_call_second(p->call, now);
    }
    if (ph->wav)
        ph_wav_sync(ph->wav);
    ph_ui_second(ph);
    if (ph->t_end_us && now >= ph->t_end_us)
        finish(ph, 0);
    return G_SOURCE_CONTINUE;
}

static void on_key(phone *ph, int key)
{
    if (key == 'm' || key == 'M') {
        ph->muted = !ph->muted;
        snprintf(ph->status, sizeof ph->status, "microphone %s", ph->muted ? "muted" : "on");
    } else if (key == 'q' || key == 'Q') {
        finish(ph, 0);
    }
    ph_ui_draw(ph);
}

static gboolean on_unix_signal(gpointer ud)
{
    finish(ud, 0);
    return G_SOURCE_CONTINUE;
}

static gboolean quit_loop(gpointer ud)
{
    phone *ph = ud;
    ph->quit_src = 0;
    g_main_loop_quit(ph->loop);
    return G_SOURCE_REMOVE;
}

/* Leave: stop the calls (RTCP BYE), close the WebSocket, let libnice
 * release its TURN allocations for ~300 ms, then end the loop. */
static void finish(phone *ph, int code)
{
    if (ph->stopping)
        return;
    ph->stopping = true;
    ph->cpu_end_us = cpu_us();
    ph->cpu_end_wall_us = rtc_clock_mono_us();
    if (code)
        ph->exit_code = code;
    for (guint i = 0; i < ph->peers->len; i++) {
        ph_peer *p = ph->peers->pdata[i];
        if (p->call && bot_call_get_state(p->call) != BOT_CALL_ENDED)
            bot_call_stop(p->call, "left");
    }
    bot_sig_free(ph->sig);
    ph->sig = NULL;
    ph->quit_src = g_timeout_add(400, quit_loop, ph);
}

static void write_report(phone *ph)
{
    json_t *r = json_object(), *calls = json_array();
    double wall = (double)(ph->cpu_end_wall_us - ph->cpu_call_wall_us);
    for (guint i = 0; i < ph->peers->len; i++) {
        ph_peer *p = ph->peers->pdata[i];
        bot_call_info ci;
        ph_jb_stats js;
        if (!p->call)
            continue;
        bot_call_info_get(p->call, &ci);
        ph_jbuf_stats_get(p->jb, &js);
        json_array_append_new(calls, json_pack(
            "{s:s,s:s,s:s,s:s,s:b,s:f,s:f,s:f,s:f,s:f,s:I,s:I,s:I,s:I,s:I,s:f,s:f,s:{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:f,s:i}}",
            "peer", p->id, "name", p->name, "state", ci.state, "path", ci.selected, "media", ci.media,
            "setup_ms", ci.setup_ms, "loss_pct", ci.loss_pct, "jitter_ms", ci.jitter_ms,
            "rtt_ms", ci.rtt_ms, "mos", ci.mos, "sent", (json_int_t)ci.sent,
            "received", (json_int_t)ci.received, "lost", (json_int_t)ci.lost,
            "dropped_on_purpose", (json_int_t)ci.dropped_on_purpose,
            "ice_restarts", (json_int_t)ci.ice_restarts, "max_gap_ms", ci.max_gap_ms,
            "restart_ms", ci.restart_ms, "jitter_buffer", "played",
            (json_int_t)js.played, "fec", (json_int_t)js.fec, "plc", (json_int_t)js.plc, "late",
            (json_int_t)js.late, "skipped", (json_int_t)js.skipped, "capped", (json_int_t)js.capped,
            "squeezed", (json_int_t)js.squeezed, "stretched", (json_int_t)js.stretched, "resets", (json_int_t)js.resets,
            "jitter_ms", js.jitter_ms, "target_ms", (int)(js.target_frames * PH_JB_FRAME_MS)));
    }
    json_object_set_new(r, "calls", calls);
    json_object_set_new(r, "cpu_in_call_pct",
                        json_real(ph->cpu_call_wall_us && wall > 0
                                      ? 100.0 * (double)(ph->cpu_end_us - ph->cpu_call_us) / wall
                                      : -1));
    json_object_set_new(r, "dsp_us_per_frame",
                        json_real(ph->frames_in ? ph->dsp_us_sum / (double)ph->frames_in : 0));
    json_object_set_new(r, "frames_captured", json_integer((json_int_t)ph->frames_in));
    json_object_set_new(r, "capture_overrun_samples", json_integer((json_int_t)ph_pulse_overruns(ph->pulse)));
    json_object_set_new(r, "playback_underruns", json_integer((json_int_t)ph_pulse_underruns(ph->pulse)));
    json_object_set_new(r, "playback_target_ms", json_integer((json_int_t)ph_pulse_play_target_ms(ph->pulse)));
    if (json_dump_file(r, ph->conf.report, JSON_INDENT(2)))
        RTC_LOG(RTC_LOG_ERROR, "phone", "cannot write %s", ph->conf.report);
    json_decref(r);
}

/* Flags; 0, or the exit code to stop with (-1: --help/--version). */
static int load_flags(phone *ph, int argc, char **argv, rtc_log_level *lvl)
{
    char err[512];
    int rc = rtc_conf_load(specs, &ph->conf, argc, argv, err, sizeof err);
    if (rc == RTC_CONF_HELP) {
        printf("usage: tsunagu-phone --signal URL --room R [--name NAME] [--token JWT]\n"
               "                     [--input SOURCE] [--output SINK] [--record FILE.wav]\n"
               "       tsunagu-phone --list-devices\n\n"
               "keys: m = mute/unmute, q = leave\n\n");
        rtc_conf_usage(specs, stdout);
        return -1;
    }
    if (rc == RTC_CONF_VERSION) {
        rtc_version_print(stdout, "tsunagu-phone");
        return -1;
    }
    if (rc) {
        fprintf(stderr, "tsunagu-phone: %s\n", err);
        return 2;
    }
    if (rtc_log_parse_level(ph->conf.log_level, lvl)) {
        fprintf(stderr, "tsunagu-phone: log-level: bad value '%s'\n", ph->conf.log_level);
        return 2;
    }
    if (ph->conf.list_devices)
        return 0;
    if (!ph->conf.signal || !ph->conf.room) {
        fprintf(stderr, "tsunagu-phone: --signal and --room are required (see --help)\n");
        return 2;
    }
    if (ph->conf.turn_insecure && ph->conf.turn_ca) {
        fprintf(stderr, "tsunagu-phone: --turn-ca and --turn-insecure exclude each other\n");
        return 2;
    }
    return 0;
}

/* The sound card, the codec, the clean-up, the recording: 0 or exit code. */
static int open_media(phone *ph)
{
    char err[256];
    ph_pulse_cbs pc = {on_audio_ready, on_audio_failed, on_mic, on_need, ph};
    ph_dsp_opts d = {!ph->conf.no_aec, !ph->conf.no_ns, !ph->conf.no_agc,
                     !strcmp(ph->conf.aec_lib, "speex") ? PH_DSP_SPEEX : PH_DSP_WEBRTC};
    ph->enc = bot_audio_venc_new((int)ph->conf.bitrate, 10);
    if (!ph->enc || bot_audio_venc_set_complexity(ph->enc, (int)ph->conf.complexity))
        return 1;
    if (d.aec || d.ns || d.agc) {
        ph->dsp = ph_dsp_new(&d);
        if (!ph->dsp)
            return 1;
    }
    if (ph->conf.record) {
        ph->wav = ph_wav_open(ph->conf.record, PH_RATE);
        if (!ph->wav) {
            fprintf(stderr, "tsunagu-phone: cannot create %s\n", ph->conf.record);
            return 2;
        }
    }
    ph->pulse = ph_pulse_new(ph->conf.input, ph->conf.output, &pc, err, sizeof err);
    if (!ph->pulse) {
        fprintf(stderr, "tsunagu-phone: %s\n", err);
        return 1;
    }
    return 0;
}

static void close_media(phone *ph)
{
    ph_pulse_free(ph->pulse);
    if (ph->wav && ph_wav_close(ph->wav))
        RTC_LOG(RTC_LOG_ERROR, "phone", "cannot finish %s", ph->conf.record);
    ph_dsp_free(ph->dsp);
    bot_audio_venc_free(ph->enc);
}

static void run(phone *ph)
{
    int rc = open_media(ph);
    if (rc) { /* (what it opened before failing goes too) */
        close_media(ph);
        ph->exit_code = rc;
        return;
    }
    ph->t_start_us = ph->cpu_prev_wall_us = rtc_clock_mono_us();
    ph->cpu_prev_us = cpu_us();
    if (ph->conf.duration)
        ph->t_end_us = ph->t_start_us + (uint64_t)ph->conf.duration * 1000000u;
    ph->sec_src = g_timeout_add(1000, on_second, ph);
    g_unix_signal_add(SIGINT, on_unix_signal, ph);
    g_unix_signal_add(SIGTERM, on_unix_signal, ph);
    ph_ui_start(ph, on_key);
    g_main_loop_run(ph->loop);
    ph_ui_stop(ph);
    g_source_remove(ph->sec_src);
    if (ph->poll_src)
        g_source_remove(ph->poll_src);
    if (ph->quit_src)
        g_source_remove(ph->quit_src);
    ph_ui_summary(ph);
    if (ph->conf.report)
        write_report(ph);
    /* the calls before the sound card: nothing calls back into either */
    g_ptr_array_free(ph->peers, TRUE);
    ph->peers = NULL;
    close_media(ph);
}

int main(int argc, char **argv)
{
    phone ph;
    char err[512];
    rtc_log_level lvl = RTC_LOG_WARN;
    int rc;

    memset(&ph, 0, sizeof ph);
    signal(SIGPIPE, SIG_IGN);
    rc = load_flags(&ph, argc, argv, &lvl);
    if (rc)
        goto out_conf;
    rtc_log_setup(lvl, RTC_LOG_TEXT, "tsunagu-phone");
    if (ph.conf.list_devices) {
        rc = ph_pulse_list_devices(stdout);
        goto out_conf;
    }
    rc = 1;
    if (bot_srtp_global_init())
        goto out_conf;
    ph.env.dtls = bot_dtls_ctx_new();
    if (!ph.env.dtls)
        goto out_srtp;
    ph.tls = bot_tls_ctx_new(ph.conf.turn_ca, ph.conf.turn_insecure, err, sizeof err);
    if (!ph.tls) {
        fprintf(stderr, "tsunagu-phone: %s\n", err);
        rc = 2;
        goto out_dtls;
    }
    ph.env.tls = ph.tls;
    ph.env.relay_only = ph.conf.relay_only;
    ph.env.decode_every = 1;
    ph.env.ice_restart_ms = (uint32_t)ph.conf.ice_restart * 1000u;
    ph.env.setup_timeout_ms = (uint32_t)ph.conf.setup_timeout * 1000u;
    ph.env.drop_pct100 = (uint32_t)lround(strtod(ph.conf.drop_percent, NULL) * 100.0);
    ph.env.drop_seed = (uint64_t)ph.conf.drop_seed;
    ph.env.cname = "tsunagu-phone";
    ph.muted = ph.conf.muted;
    ph.peers = g_ptr_array_new_with_free_func(peer_free);
    ph.loop = g_main_loop_new(NULL, FALSE);
    ph.sigctx = bot_sig_ctx_new(ph.loop, lvl >= RTC_LOG_DEBUG);
    if (!ph.sigctx)
        goto out_loop;
    run(&ph);
    rc = ph.exit_code;
    bot_sig_ctx_free(ph.sigctx);
out_loop:
    if (ph.peers)
        g_ptr_array_free(ph.peers, TRUE);
    g_main_loop_unref(ph.loop);
    bot_tls_ctx_free(ph.tls);
out_dtls:
    bot_dtls_ctx_free(ph.env.dtls);
out_srtp:
    bot_srtp_global_shutdown();
out_conf:
    rtc_conf_dispose(specs, &ph.conf);
    return rc < 0 ? 0 : rc;
}
