/* ph_apm.h - the C face of webrtc-audio-processing 0.3 (Debian's
 * libwebrtc-audio-processing1): echo cancellation, noise suppression and
 * gain control. ph_apm.cc is the one file that includes its C++ headers;
 * only ph_dsp.c calls it. 10 ms frames of 48 kHz mono; one thread. */
#ifndef PH_APM_H
#define PH_APM_H

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ph_apm ph_apm;

/* delay_ms: the render-to-capture delay hint; the canceller also searches
 * for the true delay itself (delay-agnostic mode, extended filter). */
ph_apm *ph_apm_new(int delay_ms, bool aec, bool ns, bool agc);
void ph_apm_free(ph_apm *a);
/* 10 ms (480 samples) as written to the speaker: the echo reference. */
int ph_apm_played(ph_apm *a, const int16_t *pcm);
/* 10 ms of microphone, processed in place. 0 or the library's negative
 * error code (positive codes are warnings, taken as 0). */
int ph_apm_capture(ph_apm *a, int16_t *pcm);

#ifdef __cplusplus
}
#endif

#endif
