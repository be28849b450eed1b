/* bot_sdp.h - the slice of SDP (RFC 8866) and JSEP (RFC 8829) a WebRTC audio
 * call needs: parse an offer or answer from a browser or another bot into a
 * flat view, and build an offer or answer that Chromium accepts.
 *
 * Parsing goes line by line through rtc_rd; every string lands in a fixed
 * buffer (too long = error, never truncated silently), so the view owns no
 * heap memory and a fuzzer can throw anything at it. Only what the bot acts
 * on is kept: per m-line media/port/proto/formats/mid, the Opus payload type,
 * rtcp-mux, ICE credentials, the DTLS fingerprint and role (a=setup), and
 * a=candidate lines. Session-level ice-ufrag/pwd/fingerprint/setup are the
 * fallback for m-lines that lack them (Firefox puts the fingerprint there).
 *
 * Pure functions: no I/O, no allocation, any thread. */
#ifndef BOT_SDP_H
#define BOT_SDP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BOT_SDP_MAX_LEN 65536  /* bigger descriptions are refused */
#define BOT_SDP_MAX_MLINES 16
#define BOT_SDP_MAX_CANDS 32
#define BOT_SDP_TOKEN 256      /* ufrag, pwd, mid, media, proto */
#define BOT_SDP_FMTS 256       /* the format list of one m-line */
#define BOT_SDP_CAND 512       /* one candidate attribute value */
#define BOT_SDP_FP_HEX 96      /* "AB:CD:..." of a SHA-256 digest is 95 chars */

typedef enum {
    BOT_SETUP_NONE = 0,
    BOT_SETUP_ACTPASS,
    BOT_SETUP_ACTIVE,  /* this side is the DTLS client (RFC 5763 s.5) */
    BOT_SETUP_PASSIVE, /* this side is the DTLS server */
    BOT_SETUP_HOLDCONN
} bot_setup;

typedef struct {
    char media[BOT_SDP_TOKEN]; /* "audio", "video", "application" */
    uint16_t port;
    char proto[BOT_SDP_TOKEN];
    char fmts[BOT_SDP_FMTS];   /* format list as written, e.g. "111 63 9 0 8" */
    char mid[BOT_SDP_TOKEN];
    char ufrag[BOT_SDP_TOKEN], pwd[BOT_SDP_TOKEN];
    char fp_alg[16], fp[BOT_SDP_FP_HEX];
    bot_setup setup;
    int opus_pt;               /* -1 when no "opus/48000/2" rtpmap */
    bool rtcp_mux;
    uint32_t ssrc;             /* first a=ssrc, 0 if none */
} bot_sdp_mline;

typedef struct {
    char cand[BOT_SDP_CAND];   /* "candidate:..." without "a=" */
    int mline;                 /* index of its m-line */
} bot_sdp_cand;

typedef struct {
    bot_sdp_mline m[BOT_SDP_MAX_MLINES];
    size_t n_m;
    bot_sdp_cand cands[BOT_SDP_MAX_CANDS];
    size_t n_cands;            /* extra candidates beyond the cap are dropped */
    bool end_of_candidates;
    char bundle[BOT_SDP_FMTS]; /* a=group:BUNDLE value ("0 1"), "" if none */
} bot_sdp;

/* Parse `len` bytes of SDP. 0, or RTC_EMSG for malformed or over-long
 * input (the view is then unspecified). Line ends may be CRLF or LF. */
int bot_sdp_parse(bot_sdp *out, const char *text, size_t len);

/* The m-line a call uses: the first audio m-line with a non-zero port and
 * Opus at 48 kHz; -1 when there is none. */
int bot_sdp_audio_index(const bot_sdp *s);

/* What the local side puts into an offer or answer. */
typedef struct {
    const char *ufrag, *pwd; /* ICE credentials (RFC 8445 s.5.3) */
    const char *fp_sha256;   /* "AB:CD:..", upper-case hex */
    bot_setup setup;         /* actpass in an offer; active/passive in an answer */
    uint32_t ssrc;
    uint64_t session_id;
    const char *cname;
    /* descriptions sent before this one in the session: the o= line's
     * version is 2 + it, so an ICE restart's offer and answer carry a
     * higher version than the first (RFC 3264 s.8, JSEP s.5.2.2) */
    uint32_t session_version;
} bot_sdp_local;

/* Build an offer with one audio m-line (mid "0", BUNDLE, rtcp-mux, Opus 111).
 * Returns the length written (without the NUL) or RTC_ESPACE. */
int bot_sdp_build_offer(const bot_sdp_local *l, char *out, size_t cap);

/* Build the answer to `offer`: the audio m-line at bot_sdp_audio_index is
 * accepted with the offered Opus payload type; every other m-line is
 * rejected with port 0 and left out of BUNDLE (JSEP s.5.3.1). RTC_EUNSUP
 * when the offer has no usable audio, RTC_ESPACE when `cap` is too small. */
int bot_sdp_build_answer(const bot_sdp *offer, const bot_sdp_local *l, char *out, size_t cap);

const char *bot_setup_name(bot_setup s);

#endif
