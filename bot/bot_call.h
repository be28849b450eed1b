/* bot_call.h - one end of one audio call: a peer connection in browser
 * terms. Owns the ICE agent, the DTLS handshake, the SRTP session, the Opus
 * decoder and the statistics; speaks the DESIGN.md call convention through
 * the signal payloads its owner relays ({"description":..},
 * {"candidate":..}, {"candidate":null}). Local candidates go out only
 * after our description (offer or answer): gathering starts when the call
 * is made, and a peer that does not buffer early candidates drops them
 * ("InvalidStateError: No remoteDescription" in browsers).
 *
 * States: NEW -> SIGNALING (offer/answer) -> CONNECTING (ICE) -> SECURING
 * (DTLS) -> MEDIA -> ENDED. A call ends on ICE or DTLS failure, a set-up
 * timeout, or bot_call_stop; its statistics stay readable until
 * bot_call_free. Used only on the thread of the worker that created it
 * (bot_worker.h); statistics are read elsewhere only after that worker stopped. */
#ifndef BOT_CALL_H
#define BOT_CALL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "bot_dtls.h"
#include "bot_ice.h"
#include "bot_stats.h"

typedef enum {
    BOT_CALL_NEW, BOT_CALL_SIGNALING, BOT_CALL_CONNECTING, BOT_CALL_SECURING, BOT_CALL_MEDIA,
    BOT_CALL_ENDED
} bot_call_state;

/* Shared by every call of the process; borrowed, outlives the calls. */
typedef struct {
    bot_dtls_ctx *dtls;
    const struct bot_tls_ctx *tls; /* turns: servers (bot_tlsfwd.h); NULL: skipped */
    bool relay_only;
    uint8_t turn_family;  /* REQUESTED-ADDRESS-FAMILY for turn: UDP (bot_turnfam.h); 0 = none */
    uint32_t drop_every;  /* test impairment: skip every Nth RTP send (0 = off) */
    uint32_t jitter_ms;   /* test impairment: delay each RTP send 0..N ms (0 = off) */
    uint32_t decode_every; /* Opus-decode every Nth received packet (1 = all) */
    /* test impairment: skip a pseudo-random share of RTP sends, in 1/100 of
     * a percent (500 = 5%), from a generator seeded with drop_seed and the
     * call's label, so a run repeats its losses (0 = off) */
    uint32_t drop_pct100;
    uint64_t drop_seed;
    uint32_t setup_timeout_ms;
    /* a call in MEDIA with no RTP for this long restarts ICE (0 = never) */
    uint32_t ice_restart_ms;
    const char *cname;
} bot_env;

typedef struct bot_call bot_call;

/* One received Opus payload, in arrival order (borrowed for the call). */
typedef struct {
    uint16_t seq;
    uint32_t ts;
    const uint8_t *payload;
    size_t len;
    uint64_t now_us;
} bot_call_audio_in;

typedef struct {
    /* Send `data` (stolen) to the peer as a signal payload. */
    void (*send)(void *ud, bot_call *c, json_t *data);
    /* The call reached ENDED by itself (failure); `why` is static text. The
     * owner may free it later, not from inside this callback. */
    void (*ended)(void *ud, bot_call *c, const char *why);
    void *ud;
    /* Optional (a client that plays what it hears, tsunagu-phone): each
     * received payload of the negotiated Opus stream goes here instead of
     * the call's own check-decode; the owner buffers and decodes it (jitter
     * buffer, FEC, PLC). The call still counts it as decoded when it is a
     * well-formed Opus packet (bot_audio_payload_ok). NULL: the bot's way. */
    void (*audio)(void *ud, bot_call *c, const bot_call_audio_in *in);
} bot_call_cbs;

typedef struct {
    bool offerer;
    const bot_turn *turn;  /* copied */
    size_t n_turn;
    const bot_stun *stun;  /* copied; the first usable one is used (bot_ice.h) */
    size_t n_stun;
    const char *label;     /* for logs and reports, copied */
    const char *peer;      /* peer id, copied */
    uint64_t t0_us;        /* set-up time is measured from here */
} bot_call_params;

bot_call *bot_call_new(const bot_env *env, const bot_call_params *p, const bot_call_cbs *cbs);
/* Releases the network side (ICE, DTLS, SRTP) and keeps the figures. */
void bot_call_stop(bot_call *c, const char *why);
void bot_call_free(bot_call *c);

/* A signal payload from the peer (borrowed). */
void bot_call_on_signal(bot_call *c, json_t *data);

/* Send one 20 ms Opus frame (same payload for every call; a phone sends
 * its encoded microphone frame to each of its calls). */
void bot_call_send_audio(bot_call *c, const uint8_t *payload, size_t len, uint64_t now_us);
/* Once a second: RTCP report and a timeline sample. */
void bot_call_second(bot_call *c, uint64_t now_us);

/* A leg "held" when it carried audio, did not fail, lost under 1% and was
 * never silent for more than 1 s (issue 12: a stream that stopped must not
 * read as held). */
#define BOT_HELD_MAX_LOSS_PCT 1.0
#define BOT_HELD_MAX_GAP_MS 1000.0

/* Read-only view for progress lines and reports. */
typedef struct {
    const char *label, *peer, *role, *state, *end_reason, *selected, *srtp;
    /* How the TURN servers were reached: "udp", "tcp", "tls", "mixed", "" */
    const char *relay_transport;
    unsigned tls_sessions; /* TLS handshakes with turns: servers that completed */
    const char *tls;       /* "TLSv1.3 TLS_AES_256_GCM_SHA384", or "" */
    const char *turn_error; /* last TURN-over-TLS failure, or "" */
    const char *stun_server; /* "ADDR:PORT (stun:HOST:PORT)" in use, or "" */
    bool media;            /* got at least one decoded packet */
    double setup_ms;       /* -1 if no media */
    double loss_pct, jitter_ms, rtt_ms, mos;
    uint64_t sent, received, lost, expected, dropped_on_purpose, decoded, decode_errors, srtp_errors;
    /* lost is the largest of: sequence gaps (RFC 3550 A.1), the peer's SR
     * packet count, the media clock (bot_stats.h) */
    uint64_t lost_seq, lost_sr, lost_clock;
    double max_gap_ms;     /* longest media gap while the call was up */
    unsigned ice_restarts; /* ICE restarts begun (--ice-restart) */
    double restart_ms;     /* last restart: its start to audio again; -1 if none finished */
    bool failed;           /* the call ended by itself (ICE, DTLS, set-up timeout) */
    bool held;             /* media, not failed, loss < 1%, gap <= 1 s */
    /* The verdict, filled by bot_report_judge (not by bot_call_info_get). */
    bool pass;
    char why[200];         /* failed checks, "; "-separated; "" when pass */
    const bot_stats *stats;
} bot_call_info;

void bot_call_info_get(const bot_call *c, bot_call_info *out);
/* The "held" rule above, from a view's figures. */
static inline bool bot_call_info_held(const bot_call_info *o)
{
    return o->media && !o->failed && o->loss_pct < BOT_HELD_MAX_LOSS_PCT &&
           o->max_gap_ms <= BOT_HELD_MAX_GAP_MS;
}
bot_call_state bot_call_get_state(const bot_call *c);

#endif
