// ph_apm.cc - webrtc-audio-processing 0.3 behind the C interface of
// ph_apm.h: the one file of tsunagu that includes its C++ headers.
#include "ph_apm.h"

#include <new>

#include <webrtc/modules/audio_processing/include/audio_processing.h>

#define APM_RATE 48000
#define APM_FRAME 480 // 10 ms

struct ph_apm {
    webrtc::AudioProcessing *apm;
    int delay_ms;
    bool aec;
};

extern "C" ph_apm *ph_apm_new(int delay_ms, bool aec, bool ns, bool agc)
{
    ph_apm *a = new (std::nothrow) ph_apm;
    if (!a)
        return nullptr;
    webrtc::Config cfg;
    // A desktop cannot report its speaker-to-microphone delay exactly: the
    // extended filter (128 ms) and the delay-agnostic mode find it.
    cfg.Set<webrtc::ExtendedFilter>(new webrtc::ExtendedFilter(true));
    cfg.Set<webrtc::DelayAgnostic>(new webrtc::DelayAgnostic(true));
    a->apm = webrtc::AudioProcessing::Create(cfg);
    if (!a->apm) {
        delete a;
        return nullptr;
    }
    a->delay_ms = delay_ms;
    a->aec = aec;
    a->apm->echo_cancellation()->enable_drift_compensation(false);
    a->apm->echo_cancellation()->set_suppression_level(webrtc::EchoCancellation::kModerateSuppression);
    a->apm->echo_cancellation()->Enable(aec);
    a->apm->noise_suppression()->set_level(webrtc::NoiseSuppression::kHigh);
    a->apm->noise_suppression()->Enable(ns);
    a->apm->gain_control()->set_mode(webrtc::GainControl::kAdaptiveDigital);
    a->apm->gain_control()->Enable(agc);
    a->apm->high_pass_filter()->Enable(true);
    return a;
}

extern "C" void ph_apm_free(ph_apm *a)
{
    if (!a)
        return;
    delete a->apm;
    delete a;
}

// The float interface: the AudioFrame one refuses 48 kHz in 0.3
// (kBadSampleRateError); this one splits into bands itself.
static void to_float(const int16_t *in, float *out)
{
    for (int i = 0; i < APM_FRAME; i++)
        out[i] = (float)in[i] / 32768.0f;
}

extern "C" int ph_apm_played(ph_apm *a, const int16_t *pcm)
{
    float b[APM_FRAME];
    float *p = b;
    webrtc::StreamConfig sc(APM_RATE, 1);
    int rc;
    if (!a->aec)
        return 0;
    to_float(pcm, b);
    rc = a->apm->ProcessReverseStream(&p, sc, sc, &p);
    return rc < 0 ? rc : 0;
}

extern "C" int ph_apm_capture(ph_apm *a, int16_t *pcm)
{
    float b[APM_FRAME];
    float *p = b;
    webrtc::StreamConfig sc(APM_RATE, 1);
    int rc;
    to_float(pcm, b);
    if (a->aec)
        a->apm->set_stream_delay_ms(a->delay_ms);
    rc = a->apm->ProcessStream(&p, sc, sc, &p);
    if (rc < 0)
        return rc;
    for (int i = 0; i < APM_FRAME; i++) {
        float v = b[i] * 32768.0f;
        pcm[i] = (int16_t)(v > 32767.0f ? 32767.0f : v < -32768.0f ? -32768.0f : v);
    }
    return 0;
}
