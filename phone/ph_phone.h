/* ph_phone.h - the state tsunagu-phone's files share: the application
 * (flags, sound card, signaling, the calls) and one call per room member.
 * ph_main.c owns it (flags, signaling, media); ph_ui.c only reads it to draw
 * the screen and the status lines. Main thread only: everything runs on the
 * one GLib main loop (libwebsockets, libnice, PulseAudio, timers). */
#ifndef PH_PHONE_H
#define PH_PHONE_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#include "bot_audio.h"
#include "bot_call.h"
#include "bot_iceservers.h"
#include "bot_sig.h"
#include "ph_dsp.h"
#include "ph_jbuf.h"
#include "ph_pulse.h"
#include "ph_wav.h"

typedef struct {
    char *signal, *room, *name, *token, *input, *output, *record, *report, *log_level;
    char *drop_percent, *turn_ca, *aec_lib;
    int64_t duration, drop_seed, ice_restart, setup_timeout, bitrate, complexity;
    bool no_ui, relay_only, list_devices, no_aec, no_ns, no_agc, muted, turn_insecure;
} ph_conf;

typedef struct phone phone;

/* One member of the room and our call with it. */
typedef struct {
    phone *ph;
    char id[128], name[64];
    bot_call *call;     /* NULL until a call starts */
    bool left;          /* the member left; the call is stopped, kept for the report */
    ph_jbuf *jb;
    bot_audio_vdec *dec;
    double level_db;    /* what we play of it, last frame */
    bool quiet;         /* the last frame played was a pause (see ph_main.c QUIET_*) */
    double loud_db;     /* its recent loudest frame (falls 3 dB a second): what quiet is measured against */
    uint64_t frames_out; /* 20 ms frames decoded for playout */
} ph_peer;

struct phone {
    ph_conf conf;
    GMainLoop *loop;
    bot_env env;
    struct bot_tls_ctx *tls;
    bot_sig_ctx *sigctx;
    bot_sig *sig;
    ph_pulse *pulse;
    ph_dsp *dsp;
    ph_wav *wav;
    bot_audio_venc *enc;
    char my_id[128];
    bool joined, audio_ready, stopping, muted;
    bool play_waiting; /* the speaker's fill waits for a packet of a dry jitter buffer */
    bot_ice_servers ice;
    GPtrArray *peers;   /* ph_peer*, in the order they came */
    double mic_db;      /* after clean-up, before mute */
    uint64_t frames_in, frames_sent;
    uint64_t t_start_us, t_media_us, t_end_us;
    uint64_t cpu_prev_us, cpu_prev_wall_us;
    /* CPU in a call: from 1 s after the first audio (set-up and the sound
     * server's start are over) to leaving */
    uint64_t cpu_call_us, cpu_call_wall_us, cpu_end_us, cpu_end_wall_us;
    double cpu_pct;     /* last second, % of one core */
    double dsp_us_sum;  /* clean-up time per frame, summed */
    guint sec_src, key_src, quit_src, poll_src;
    int exit_code;
    char status[160];   /* the last notable event, for the screen */
    struct ph_ui *ui;   /* the terminal while the screen is on (ph_ui.c); NULL otherwise */
};

#endif
