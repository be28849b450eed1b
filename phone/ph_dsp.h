/* ph_dsp.h - the microphone's clean-up before it is encoded: acoustic echo
 * cancellation (what the speaker played, heard again by the microphone),
 * noise suppression and automatic gain control, from a library Debian
 * packages: webrtc-audio-processing 0.3 (the default, through ph_apm.h) or
 * libspeexdsp (included only in ph_dsp.c). Why the default: measured by
 * bench/aec_compare.c, figures in docs/phone.md. 20 ms frames of 48 kHz
 * mono; main thread only.
 *
 * The echo reference is what the phone wrote to the sound card, in order;
 * it leads the echo by the playback buffer and the capture latency (~60-100
 * ms): speexdsp's adaptive filter spans 200 ms for it, webrtc's is given
 * the hint and searches for the delay itself. */
#ifndef PH_DSP_H
#define PH_DSP_H

#include <stdbool.h>
#include <stdint.h>

typedef enum { PH_DSP_WEBRTC, PH_DSP_SPEEX } ph_dsp_lib;

typedef struct {
    bool aec, ns, agc;
    ph_dsp_lib lib;
} ph_dsp_opts;

typedef struct ph_dsp ph_dsp;

ph_dsp *ph_dsp_new(const ph_dsp_opts *o); /* NULL on failure */
void ph_dsp_free(ph_dsp *d);
/* A 20 ms frame as written to the speaker (the echo reference). */
void ph_dsp_played(ph_dsp *d, const int16_t *pcm);
/* A 20 ms microphone frame, processed in place. */
void ph_dsp_capture(ph_dsp *d, int16_t *pcm);
/* "webrtc-audio-processing" or "speexdsp" */
const char *ph_dsp_lib_name(ph_dsp_lib lib);

#endif
