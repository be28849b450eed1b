/* test_bot_audio.c - the WAV reader (format checks, down-mix, resampling,
 * every truncation), the synthetic signal (talk spurts and pauses) and an
 * Opus encode/decode round trip of 20 ms frames. */
#include <math.h>
#include <stdlib.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "bot_audio.h"
#include "rtc_err.h"
#include "tap.h"

static void le16(uint8_t *p, unsigned v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void le32(uint8_t *p, uint32_t v) { le16(p, v & 0xffff); le16(p + 2, v >> 16); }

/* RIFF/WAVE, PCM, `ch` channels at `rate`, `frames` frames: left = 1000,
 * right = 3000 (so the down-mix is 2000). */
static uint8_t *make_wav(unsigned ch, uint32_t rate, unsigned bits, size_t frames, size_t *len)
{
    size_t data = frames * ch * 2;
    uint8_t *w = calloc(1, 44 + data);
    memcpy(w, "RIFF", 4);
    le32(w + 4, (uint32_t)(36 + data));
    memcpy(w + 8, "WAVEfmt ", 8);
    le32(w + 16, 16);
    le16(w + 20, 1);
    le16(w + 22, ch);
    le32(w + 24, rate);
    le32(w + 28, rate * ch * 2);
    le16(w + 32, ch * 2);
    le16(w + 34, bits);
    memcpy(w + 36, "data", 4);
    le32(w + 40, (uint32_t)data);
    for (size_t i = 0; i < frames * ch; i++)
        le16(w + 44 + 2 * i, (ch == 2 && i % 2) ? 3000 : 1000);
    *len = 44 + data;
    return w;
}

static void wav(void)
{
    size_t len, n = 0;
    int16_t *pcm = NULL;
    uint8_t *w = make_wav(2, 24000, 16, 2400, &len);
    is_int(bot_audio_wav_parse(w, len, &pcm, &n), 0, "stereo 24 kHz parses");
    is_int(n, 4800, "resampled to 48 kHz: twice the frames");
    ok(pcm && pcm[0] == 2000 && pcm[n / 2] == 2000, "down-mixed to the channel mean");
    free(pcm);
    {
        int bad = 0;
        for (size_t cut = 0; cut < 44; cut++) {
            uint8_t *c = malloc(cut ? cut : 1);
            memcpy(c, w, cut);
            pcm = NULL;
            if (bot_audio_wav_parse(c, cut, &pcm, &n) == 0)
                bad++;
            free(pcm);
            free(c);
        }
        is_int(bad, 0, "every truncated header refused");
    }
    free(w);
    w = make_wav(1, 48000, 8, 100, &len);
    is_int(bot_audio_wav_parse(w, len, &pcm, &n), RTC_EUNSUP, "8-bit refused");
    free(w);
    w = make_wav(1, 48000, 16, 100, &len);
    memcpy(w + 8, "AVI ", 4);
    is_int(bot_audio_wav_parse(w, len, &pcm, &n), RTC_EMSG, "not WAVE");
    free(w);
    w = make_wav(1, 48000, 16, 100, &len);
    le32(w + 40, 1u << 30); /* data chunk claims far more than the file has */
    is_int(bot_audio_wav_parse(w, len, &pcm, &n), RTC_EMSG, "oversized chunk length refused");
    free(w);
}

static double rms(const int16_t *p, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += (double)p[i] * p[i];
    return sqrt(s / (double)n);
}

static void synth(void)
{
    /* 20 s in 100 ms windows: there must be speech and pauses */
    static int16_t buf[4800];
    int loud = 0, quiet = 0;
    for (uint64_t at = 0; at < 48000ull * 20; at += 4800) {
        bot_audio_synth(buf, 4800, at);
        double r = rms(buf, 4800);
        if (r > 1000)
            loud++;
        else if (r < 50)
            quiet++;
    }
    ok(loud > 50, "synthetic signal has speech");
    ok(quiet > 10, "synthetic signal has pauses");
    /* the same window twice is the same signal (phase from absolute index) */
    {
        static int16_t a[960], b[960];
        bot_audio_synth(a, 960, 123456);
        bot_audio_synth(b, 960, 123456);
        ok(memcmp(a, b, sizeof a) == 0, "deterministic");
    }
}

static void opus_roundtrip(void)
{
    char err[128];
    bot_audio_src *s = bot_audio_src_new(NULL, err, sizeof err);
    bot_audio_dec *d = bot_audio_dec_new();
    uint8_t pkt[BOT_AUDIO_MAX_PAYLOAD];
    int frames = 0, total = 0;
    ok(s && d, "encoder and decoder");
    for (int i = 0; i < 100 && s && d; i++) {
        int n = bot_audio_src_next(s, pkt, sizeof pkt);
        if (n > 0 && bot_audio_dec_decode(d, pkt, (size_t)n) == BOT_AUDIO_DEC_RATE / 50)
            frames++;
        total += n > 0 ? n : 0;
    }
    is_int(frames, 100, "100 frames of 20 ms decoded");
    ok(total / 100 > 20 && total / 100 < 200, "about 32 kbit/s (80 bytes a frame)");
    is_int(bot_audio_dec_decode(d, pkt, 0), RTC_EMSG, "empty payload refused");
    bot_audio_src_free(s);
    bot_audio_dec_free(d);
    s = bot_audio_src_new("/nonexistent.wav", err, sizeof err);
    ok(!s && strstr(err, "nonexistent"), "missing WAV names the file");
}

/* The phone's voice codec: 48 kHz frames; in speech each packet carries an
 * FEC copy of the frame before it (decoding it differs from concealment,
 * and its level is closer to the lost frame's); payload_ok tells Opus from
 * garbage. */
static void voice_fec(void)
{
    bot_audio_venc *e = bot_audio_venc_new(32000, 10);
    bot_audio_vdec *d = bot_audio_vdec_new(), *d2 = bot_audio_vdec_new();
    int16_t in[60][BOT_AUDIO_FRAME], out[BOT_AUDIO_FRAME], fec[BOT_AUDIO_FRAME],
        plc[BOT_AUDIO_FRAME];
    uint8_t pkt[60][BOT_AUDIO_MAX_PAYLOAD];
    int len[60];
    bool all = true;
    double ef = 0, ep = 0;
    uint64_t at = 0;
    ok(e && d && d2, "voice encoder and decoders");
    /* the phone's complexity (half libopus's default CPU): FEC must hold there */
    ok(e && bot_audio_venc_set_complexity(e, 11) != 0 && bot_audio_venc_set_complexity(e, 5) == 0,
       "complexity 5 taken, 11 refused");
    /* 1.6-3.2 s of the synthetic signal is a talk spurt (its 1.6 s
     * segments; the first is a pause): frames 0..59 lie inside it, and
     * Opus spends FEC on speech, not on pauses */
    at = 48000u * 16 / 10;
    for (int i = 0; i < 60 && e; i++) {
        bot_audio_synth(in[i], BOT_AUDIO_FRAME, at + (uint64_t)i * BOT_AUDIO_FRAME);
        len[i] = bot_audio_venc_encode(e, in[i], pkt[i], sizeof pkt[i]);
        if (len[i] <= 0 || !bot_audio_payload_ok(pkt[i], (size_t)len[i]))
            all = false;
    }
    ok(all, "60 frames encoded, each a well-formed Opus packet");
    /* frames 0..49 played in order on both decoders, then frame 50 lost */
    for (int i = 0; i < 50 && d && d2; i++) {
        bot_audio_vdec_decode(d, pkt[i], (size_t)len[i], false, out);
        bot_audio_vdec_decode(d2, pkt[i], (size_t)len[i], false, out);
    }
    is_int(bot_audio_vdec_decode(d, pkt[51], (size_t)len[51], true, fec), BOT_AUDIO_FRAME,
           "frame 50 rebuilt from packet 51's FEC: 20 ms");
    is_int(bot_audio_vdec_decode(d2, NULL, 0, false, plc), BOT_AUDIO_FRAME, "frame 50 concealed: 20 ms");
    for (int k = 0; k < BOT_AUDIO_FRAME; k++) {
        ef += ((double)fec[k] - in[50][k]) * ((double)fec[k] - in[50][k]);
        ep += ((double)plc[k] - in[50][k]) * ((double)plc[k] - in[50][k]);
    }
    printf("# frame 50: waveform error FEC %.3g, PLC %.3g (an FEC copy is low-rate: its\n"
           "# waveform may differ more, its spectrum and level are closer)\n", ef, ep);
    {
        double ei = 0, eo = 0, eq = 0, diff = 0;
        for (int k = 0; k < BOT_AUDIO_FRAME; k++) {
            ei += (double)in[50][k] * in[50][k];
            eo += (double)fec[k] * fec[k];
            eq += (double)plc[k] * plc[k];
            diff += fabs((double)fec[k] - plc[k]);
        }
        /* without an LBRR copy in packet 51 the FEC decode IS concealment */
        ok(diff > 1000.0 * BOT_AUDIO_FRAME / 100, "packet 51 carried an FEC copy of frame 50");
        ok(fabs(log10(eo / ei)) < fabs(log10(eq / ei)),
           "the FEC frame's energy is closer to the original than the concealed one's");
    }
    ok(!bot_audio_payload_ok(pkt[0], 0), "empty payload is not Opus");
    ok(!bot_audio_payload_ok((const uint8_t *)"\xff\xff\xff", 3), "garbage is not Opus");
    bot_audio_venc_free(e);
    bot_audio_vdec_free(d);
    bot_audio_vdec_free(d2);
}

int main(void)
{
    wav();
    synth();
    opus_roundtrip();
    voice_fec();
    return done_testing();
}
