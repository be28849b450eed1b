/* ph_dsp.c - echo cancellation, noise suppression, gain control with
 * webrtc-audio-processing (through ph_apm.h) or libspeexdsp (here): see
 * ph_dsp.h. */
#include "ph_dsp.h"

#include <speex/speex_echo.h>
#include <speex/speex_preprocess.h>
#include <stdlib.h>
#include <string.h>

#include "ph_apm.h"
#include "ph_pulse.h"

#define REF_FRAMES 10 /* reference frames kept at most (200 ms) */
#define FILTER_MS 200
#define APM_DELAY_MS 70 /* 60 ms playback buffer + ~10 ms capture fragment (ph_pulse.c) */

struct ph_dsp {
    ph_dsp_opts o;
    ph_apm *apm; /* webrtc: all of it; speex: the fields below */
    SpeexEchoState *echo;
    SpeexPreprocessState *pre;
    int16_t ref[REF_FRAMES][PH_FRAME];
    unsigned ref_head, ref_n;
};

ph_dsp *ph_dsp_new(const ph_dsp_opts *o)
{
    ph_dsp *d = calloc(1, sizeof *d);
    int rate = PH_RATE, on = 1;
    if (!d)
        return NULL;
    d->o = *o;
    if (o->lib == PH_DSP_WEBRTC) {
        d->apm = ph_apm_new(APM_DELAY_MS, o->aec, o->ns, o->agc);
        if (!d->apm)
            goto out_free;
        return d;
    }
    if (o->aec) {
        d->echo = speex_echo_state_init(PH_FRAME, PH_RATE / 1000 * FILTER_MS);
        if (!d->echo)
            goto out_free;
        speex_echo_ctl(d->echo, SPEEX_ECHO_SET_SAMPLING_RATE, &rate);
    }
    if (o->ns || o->agc || o->aec) {
        int off = 0;
        d->pre = speex_preprocess_state_init(PH_FRAME, PH_RATE);
        if (!d->pre)
            goto out_echo;
        speex_preprocess_ctl(d->pre, SPEEX_PREPROCESS_SET_DENOISE, o->ns ? &on : &off);
        speex_preprocess_ctl(d->pre, SPEEX_PREPROCESS_SET_AGC, o->agc ? &on : &off);
        if (o->agc) {
            float level = 8000; /* about -12 dBFS RMS speech */
            speex_preprocess_ctl(d->pre, SPEEX_PREPROCESS_SET_AGC_LEVEL, &level);
        }
        /* the residual echo the filter leaves is suppressed here too */
        if (d->echo)
            speex_preprocess_ctl(d->pre, SPEEX_PREPROCESS_SET_ECHO_STATE, d->echo);
    }
    return d;
out_echo:
    if (d->echo)
        speex_echo_state_destroy(d->echo);
out_free:
    free(d);
    return NULL;
}

void ph_dsp_free(ph_dsp *d)
{
    if (!d)
        return;
    ph_apm_free(d->apm);
    if (d->pre)
        speex_preprocess_state_destroy(d->pre);
    if (d->echo)
        speex_echo_state_destroy(d->echo);
    free(d);
}

void ph_dsp_played(ph_dsp *d, const int16_t *pcm)
{
    if (d->apm) {
        ph_apm_played(d->apm, pcm);
        ph_apm_played(d->apm, pcm + PH_FRAME / 2);
        return;
    }
    if (!d->echo)
        return;
    if (d->ref_n == REF_FRAMES) { /* capture stalled: keep the newest */
        d->ref_head = (d->ref_head + 1) % REF_FRAMES;
        d->ref_n--;
    }
    memcpy(d->ref[(d->ref_head + d->ref_n) % REF_FRAMES], pcm, sizeof d->ref[0]);
    d->ref_n++;
}

void ph_dsp_capture(ph_dsp *d, int16_t *pcm)
{
    if (d->apm) {
        ph_apm_capture(d->apm, pcm);
        ph_apm_capture(d->apm, pcm + PH_FRAME / 2);
        return;
    }
    if (d->echo) {
        static const int16_t silence[PH_FRAME];
        int16_t out[PH_FRAME];
        const int16_t *ref = silence;
        if (d->ref_n) {
            ref = d->ref[d->ref_head];
            d->ref_head = (d->ref_head + 1) % REF_FRAMES;
            d->ref_n--;
        }
        speex_echo_cancellation(d->echo, pcm, ref, out);
        memcpy(pcm, out, sizeof out);
    }
    if (d->pre)
        speex_preprocess_run(d->pre, pcm);
}

const char *ph_dsp_lib_name(ph_dsp_lib lib)
{
    return lib == PH_DSP_WEBRTC ? "webrtc-audio-processing" : "speexdsp";
}
