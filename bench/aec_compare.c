/* aec_compare.c - tsunagu-aec-compare: the two echo cancellers Debian
 * packages, measured on the same recorded-echo scenario (issue 18 asks to
 * choose between them with figures; docs/phone.md quotes this output).
 *
 * Scenario, 48 kHz mono, 20 s, deterministic: the far end (what the
 * speaker plays) and the near talker are the bot's speech-like signal
 * (bot_audio_synth, talk spurts and pauses) at two different offsets; the
 * echo is the far end through a synthetic room: a direct path 60 ms late at
 * -8 dB (playback buffer + capture latency + air), then 300 reflections over
 * the next 100 ms decaying exponentially; plus white noise at -66 dBFS.
 *   0-10 s  far end only           -> ERLE (echo return loss enhancement)
 *                                      over 5-10 s, once converged
 *  10-14 s  near talker only        -> near-end change (dB; 0 = untouched)
 *  14-20 s  both talk               -> double-talk SNR: near talker vs
 *                                      everything else in the output (dB)
 * and the CPU time per 10 ms of audio (this machine, one thread).
 *
 * Both run through the phone's own adapter (phone/ph_dsp.c), exactly as
 * the phone runs them: speexdsp's MDF with a 200 ms filter on 20 ms frames,
 * then its preprocessor's residual echo suppression; webrtc-audio-processing
 * 0.3 (phone/ph_apm.cc) with the extended filter, delay-agnostic mode, high
 * suppression, 10 ms frames, and the phone's fixed 70 ms delay hint (the
 * true delay here is 60 ms: it must find it, as on a desktop).
 *
 * Double talk is judged by correlation, as a listener would: the output's
 * normalized correlation, at the delay the canceller adds (found on the
 * near talker alone), with the near talker (1 = all of the talker, nothing
 * else) and with the echo (0 = no echo left). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bot_audio.h"
#include "ph_dsp.h"

#define RATE 48000
#define SECS 20
#define N (RATE * SECS)
#define F10 480 /* 10 ms */
#define TAPS 300

typedef struct {
    int16_t *far, *near, *echo, *mic;
} scene;

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts); /* CPU, not wall: the machine is shared */
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static uint64_t rng = 88172645463325252ull;
static double urand(void) /* xorshift: a fixed, repeatable room and noise */
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) / 9007199254740992.0;
}

static int16_t clip(double v) { return (int16_t)(v > 32767 ? 32767 : v < -32768 ? -32768 : v); }

static int make_scene(scene *s)
{
    int idx[TAPS + 1];
    double g[TAPS + 1];
    s->far = calloc(N, 2);
    s->near = calloc(N, 2);
    s->echo = calloc(N, 2);
    s->mic = calloc(N, 2);
    if (!s->far || !s->near || !s->echo || !s->mic)
        return -1;
    bot_audio_synth(s->far, N, 0);
    bot_audio_synth(s->near, N, (uint64_t)RATE * 977);
    for (size_t i = 0; i < N; i++) {
        double t = (double)i / RATE;
        s->far[i] = (int16_t)(t < 10 || t >= 14 ? s->far[i] * 0.8 : 0);
        s->near[i] = (int16_t)(t >= 10 ? s->near[i] * 0.5 : 0);
    }
    idx[0] = RATE * 60 / 1000;
    g[0] = 0.4;
    for (int k = 1; k <= TAPS; k++) {
        double d = urand() * 0.1; /* 0..100 ms after the direct path */
        idx[k] = idx[0] + (int)(d * RATE);
        g[k] = (urand() - 0.5) * 0.12 * exp(-d / 0.03);
    }
    for (size_t i = 0; i < N; i++) {
        double e = 0;
        for (int k = 0; k <= TAPS; k++)
            if (i >= (size_t)idx[k])
                e += g[k] * s->far[i - (size_t)idx[k]];
        s->echo[i] = clip(e);
        s->mic[i] = clip(e + s->near[i] + (urand() - 0.5) * 32768 * 0.0017);
    }
    return 0;
}

static double energy(const int16_t *x, size_t a, size_t b)
{
    double e = 1e-3;
    for (size_t i = a; i < b; i++)
        e += (double)x[i] * x[i];
    return e;
}

/* Normalized correlation of out, lagging by `lag` samples, with ref over [a, b). */
static double corr_at(const int16_t *out, const int16_t *ref, size_t a, size_t b, size_t lag)
{
    double xy = 0, xx = 1e-9, yy = 1e-9;
    for (size_t i = a; i + lag < b; i++) {
        xy += (double)out[i + lag] * ref[i];
        xx += (double)out[i + lag] * out[i + lag];
        yy += (double)ref[i] * ref[i];
    }
    return fabs(xy) / sqrt(xx * yy);
}

/* The delay the canceller adds (0..25 ms; speexdsp's is one frame), found
 * on 1 s of the near talker alone; then the correlation over [a, b) at it. */
static size_t out_delay(const scene *s, const int16_t *out)
{
    size_t best_lag = 0, a = 11 * RATE;
    double best = -1;
    for (size_t lag = 0; lag < RATE / 40; lag++) {
        double c = corr_at(out, s->near, a, a + RATE, lag);
        if (c > best) {
            best = c;
            best_lag = lag;
        }
    }
    return best_lag;
}

static void report(const char *name, const scene *s, const int16_t *out, double us, size_t frames)
{
    size_t s5 = 5 * RATE, s10 = 10 * RATE, s14 = 14 * RATE;
    double erle = 10 * log10(energy(s->mic, s5, s10) / energy(out, s5, s10));
    double nearchg = 10 * log10(energy(out, s10 + RATE, s14) / energy(s->near, s10 + RATE, s14));
    size_t lag = out_delay(s, out);
    printf("%-38s ERLE %5.1f dB | near alone %+5.1f dB, delay %4.1f ms | double talk: corr near %.2f,"
           " echo %.2f | %5.1f us CPU per 10 ms (%.2f%% of a core)\n",
           name, erle, nearchg, (double)lag * 1000 / RATE, corr_at(out, s->near, s14, N, lag),
           corr_at(out, s->echo, s14, N, lag),
           us / (double)frames, us / (double)frames / 100.0);
}

static int run_dsp(const scene *s, const char *name, ph_dsp_opts o)
{
    int16_t *out = malloc(N * 2);
    ph_dsp *d = ph_dsp_new(&o);
    double t = 0;
    if (!out || !d)
        return -1;
    memcpy(out, s->mic, N * 2);
    for (size_t i = 0; i + 2 * F10 <= N; i += 2 * F10) {
        double t0 = now_us();
        ph_dsp_played(d, s->far + i);
        ph_dsp_capture(d, out + i);
        t += now_us() - t0;
    }
    report(name, s, out, t, N / F10);
    ph_dsp_free(d);
    free(out);
    return 0;
}


int main(void)
{
    scene s;
    if (make_scene(&s)) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    printf("scenario: 20 s at 48 kHz, echo 60 ms late at -8 dB + 100 ms of reflections\n");
    printf("mic before cancelling: double talk corr near %.2f, echo %.2f\n",
           corr_at(s.mic, s.near, 14 * RATE, N, 0), corr_at(s.mic, s.echo, 14 * RATE, N, 0));
    if (run_dsp(&s, "speexdsp AEC", (ph_dsp_opts){true, false, false, PH_DSP_SPEEX}) ||
        run_dsp(&s, "speexdsp AEC + NS", (ph_dsp_opts){true, true, false, PH_DSP_SPEEX}) ||
        run_dsp(&s, "speexdsp AEC + NS + AGC", (ph_dsp_opts){true, true, true, PH_DSP_SPEEX}) ||
        run_dsp(&s, "webrtc-audio-processing AEC", (ph_dsp_opts){true, false, false, PH_DSP_WEBRTC}) ||
        run_dsp(&s, "webrtc-audio-processing AEC + NS", (ph_dsp_opts){true, true, false, PH_DSP_WEBRTC}) ||
        run_dsp(&s, "webrtc-audio-processing AEC + NS + AGC", (ph_dsp_opts){true, true, true, PH_DSP_WEBRTC})) {
        fprintf(stderr, "a canceller failed\n");
        return 1;
    }
    free(s.far);
    free(s.near);
    free(s.echo);
    free(s.mic);
    return 0;
}
