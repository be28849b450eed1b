/* ph_dsp.h - the microphone's clean-up before it is encoded: acoustic echo
 * cancellation (what the speaker played, heard again by the microphone),
 * noise suppression and automatic gain control, from libspeexdsp (Debian's
 * libspeexdsp1; why this library and not webrtc-audio-processing: see
 * docs/phone.md, measured by bench/aec_compare). libspeexdsp is included
 * only in ph_dsp.c. 20 ms frames of 48 kHz mono; main thread only.
 *
 * The echo reference is what the phone wrote to the sound card, in order;
 * it leads the echo by the playback buffer and the capture latency (~60-100
 * ms), so the adaptive filter spans 200 ms. */
#ifndef PH_DSP_H
#define PH_DSP_H

#include <stdbool.h>
#include <stdint.h>

typedef struct {
    bool aec, ns, agc;
} ph_dsp_opts;

typedef struct ph_dsp ph_dsp;

ph_dsp *ph_dsp_new(const ph_dsp_opts *o); /* NULL on failure */
void ph_dsp_free(ph_dsp *d);
/* A 20 ms frame as written to the speaker (the echo reference). */
void ph_dsp_played(ph_dsp *d, const int16_t *pcm);
/* A 20 ms microphone frame, processed in place. */
void ph_dsp_capture(ph_dsp *d, int16_t *pcm);

#endif
