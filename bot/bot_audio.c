/* bot_audio.c - Opus encode/decode and the signals a bot sends (see
 * bot_audio.h). */
#include "bot_audio.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <opus/opus.h>

#include "rtc_err.h"
#include "rtc_rd.h"

struct bot_audio_src {
    OpusEncoder *enc;
    int16_t *wav; /* NULL = synthetic */
    size_t wav_n, wav_pos;
    uint64_t at;  /* synthetic: next sample index */
};

struct bot_audio_dec {
    OpusDecoder *dec;
};

struct bot_audio_venc {
    OpusEncoder *enc;
};

struct bot_audio_vdec {
    OpusDecoder *dec;
};

/* A cheap deterministic hash -> [0,1): picks talk-spurt lengths. */
static double hash01(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return (double)(x >> 11) / 9007199254740992.0;
}

/* Voiced speech caricature: a harmonic series on a pitch that wanders
 * between ~100 and ~160 Hz, shaped by two fixed formant bumps (~700 Hz and
 * ~1200 Hz), amplitude-modulated at a 4 Hz syllable rate; 1.6 s segments of
 * which a pseudo-random ~30% are pauses (conversation has them, and Opus
 * must code both). Phase is computed from the absolute sample index, so any
 * window can be generated independently. */
void bot_audio_synth(int16_t *pcm, size_t n, uint64_t at)
{
    const double fs = BOT_AUDIO_RATE;
    double gain[40];
    int nh = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t k = at + i;
        double t = (double)k / fs;
        uint64_t seg = k / (uint64_t)(1.6 * fs);
        double v = 0;
        if (i % 240 == 0) {
            /* The formant weights move with f0, which moves slowly: refresh
             * them every 5 ms instead of per sample (exp/pow are costly). */
            double f0 = 130 + 30 * sin(2 * M_PI * 0.4 * t);
            for (nh = 0; nh < 40 && (nh + 1) * f0 < 3800; nh++) {
                double f = (nh + 1) * f0;
                gain[nh] = 1.0 / (nh + 1) + 0.8 * exp(-pow((f - 700) / 200, 2)) +
                           0.5 * exp(-pow((f - 1200) / 250, 2));
            }
        }
        if (hash01(seg) >= 0.3) {
            /* pitch phase: integral of f0(t) = 130 + 30 sin(2 pi 0.4 t) */
            double ph = 2 * M_PI * (130 * t - 30 / (2 * M_PI * 0.4) * cos(2 * M_PI * 0.4 * t));
            double env = 0.5 * (1 - cos(2 * M_PI * 4 * t));
            for (int h = 0; h < nh; h++)
                v += gain[h] * sin((h + 1) * ph);
            v *= 0.25 * env;
        }
        v += 0.002 * (hash01(k) - 0.5); /* a little noise floor */
        if (v > 1)
            v = 1;
        if (v < -1)
            v = -1;
        pcm[i] = (int16_t)(v * 20000);
    }
}

/* RIFF/WAVE (16-bit PCM only), read chunk by chunk through rtc_rd. */
int bot_audio_wav_parse(const uint8_t *buf, size_t len, int16_t **pcm, size_t *n)
{
    rtc_rd r, chunk, data = {NULL, NULL};
    uint8_t tag[4];
    uint32_t rate = 0;
    uint16_t fmt = 0, channels = 0, bits = 0;
    size_t frames, out_n;
    int16_t *out;

    rtc_rd_init(&r, buf, len);
    if (!rtc_rd_copy(&r, tag, 4) || memcmp(tag, "RIFF", 4) || !rtc_rd_skip(&r, 4) ||
        !rtc_rd_copy(&r, tag, 4) || memcmp(tag, "WAVE", 4))
        return RTC_EMSG;
    while (rtc_rd_left(&r) >= 8) {
        uint32_t sz;
        uint8_t b[4] = {0};
        rtc_rd_copy(&r, tag, 4);
        rtc_rd_copy(&r, b, 4);
        sz = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
        if (!rtc_rd_sub(&r, sz, &chunk))
            return RTC_EMSG;
        rtc_rd_skip(&r, sz & 1); /* chunks are word-aligned */
        if (!memcmp(tag, "fmt ", 4)) {
            uint8_t f[16];
            if (!rtc_rd_copy(&chunk, f, 16))
                return RTC_EMSG;
            fmt = (uint16_t)(f[0] | f[1] << 8);
            channels = (uint16_t)(f[2] | f[3] << 8);
            rate = (uint32_t)f[4] | (uint32_t)f[5] << 8 | (uint32_t)f[6] << 16 | (uint32_t)f[7] << 24;
            bits = (uint16_t)(f[14] | f[15] << 8);
        } else if (!memcmp(tag, "data", 4)) {
            data = chunk;
        }
    }
    if (fmt != 1 || bits != 16 || channels == 0 || channels > 8 || rate < 8000 || rate > 192000 ||
        !data.p)
        return RTC_EUNSUP;
    frames = rtc_rd_left(&data) / (2u * channels);
    if (frames == 0)
        return RTC_EMSG;
    out_n = (size_t)((double)frames * BOT_AUDIO_RATE / rate);
    if (out_n == 0)
        return RTC_EMSG;
    out = malloc(out_n * sizeof *out);
    if (!out)
        return -12;
    /* Down-mix and resample linearly: good enough for a test signal. */
    for (size_t i = 0; i < out_n; i++) {
        double pos = (double)i * rate / BOT_AUDIO_RATE;
        size_t a = (size_t)pos, bidx = a + 1 < frames ? a + 1 : a;
        double fr = pos - (double)a, va = 0, vb = 0;
        for (uint16_t c = 0; c < channels; c++) {
            const uint8_t *pa = data.p + (a * channels + c) * 2;
            const uint8_t *pb = data.p + (bidx * channels + c) * 2;
            va += (int16_t)(pa[0] | pa[1] << 8);
            vb += (int16_t)(pb[0] | pb[1] << 8);
        }
        out[i] = (int16_t)((va + fr * (vb - va)) / channels);
    }
    *pcm = out;
    *n = out_n;
    return 0;
}

static int load_wav(bot_audio_src *s, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf = NULL;
    long len;
    int rc = RTC_EMSG;

    if (!f) {
        snprintf(err, errlen, "--audio %s: cannot open", path);
        return RTC_EMSG;
    }
    if (fseek(f, 0, SEEK_END) || (len = ftell(f)) <= 0 || len > (256L << 20) || fseek(f, 0, SEEK_SET))
        goto out_close;
    buf = malloc((size_t)len);
    if (!buf || fread(buf, 1, (size_t)len, f) != (size_t)len)
        goto out_free;
    rc = bot_audio_wav_parse(buf, (size_t)len, &s->wav, &s->wav_n);
out_free:
    free(buf);
out_close:
    fclose(f);
    if (rc)
        snprintf(err, errlen, "--audio %s: not a 16-bit PCM WAV file", path);
    return rc;
}

bot_audio_src *bot_audio_src_new(const char *wav, char *err, size_t errlen)
{
    bot_audio_src *s = calloc(1, sizeof *s);
    int e;
    if (!s)
        return NULL;
    if (wav && load_wav(s, wav, err, errlen))
        goto out_free;
    s->enc = opus_encoder_create(BOT_AUDIO_RATE, 1, OPUS_APPLICATION_VOIP, &e);
    if (!s->enc) {
        snprintf(err, errlen, "opus encoder: %s", opus_strerror(e));
        goto out_free;
    }
    opus_encoder_ctl(s->enc, OPUS_SET_BITRATE(32000));
    opus_encoder_ctl(s->enc, OPUS_SET_INBAND_FEC(1));
    opus_encoder_ctl(s->enc, OPUS_SET_PACKET_LOSS_PERC(5));
    opus_encoder_ctl(s->enc, OPUS_SET_DTX(0));
    return s;
out_free:
    free(s->wav);
    free(s);
    return NULL;
}

void bot_audio_src_free(bot_audio_src *s)
{
    if (!s)
        return;
    opus_encoder_destroy(s->enc);
    free(s->wav);
    free(s);
}

int bot_audio_src_next(bot_audio_src *s, uint8_t *out, size_t cap)
{
    int16_t pcm[BOT_AUDIO_FRAME];
    opus_int32 n;
    if (s->wav) {
        for (size_t i = 0; i < BOT_AUDIO_FRAME; i++) {
            pcm[i] = s->wav[s->wav_pos++];
            if (s->wav_pos == s->wav_n)
                s->wav_pos = 0;
        }
    } else {
        bot_audio_synth(pcm, BOT_AUDIO_FRAME, s->at);
        s->at += BOT_AUDIO_FRAME;
    }
    n = opus_encode(s->enc, pcm, BOT_AUDIO_FRAME, out, (opus_int32)(cap > 4000 ? 4000 : cap));
    return n > 0 ? (int)n : RTC_EMSG;
}

bot_audio_dec *bot_audio_dec_new(void)
{
    bot_audio_dec *d = calloc(1, sizeof *d);
    int e;
    if (!d)
        return NULL;
    d->dec = opus_decoder_create(BOT_AUDIO_DEC_RATE, 1, &e);
    if (!d->dec) {
        free(d);
        return NULL;
    }
    return d;
}

void bot_audio_dec_free(bot_audio_dec *d)
{
    if (!d)
        return;
    opus_decoder_destroy(d->dec);
    free(d);
}

int bot_audio_dec_decode(bot_audio_dec *d, const uint8_t *payload, size_t len)
{
    int16_t pcm[5760]; /* 120 ms at 48 kHz, Opus's longest frame, at most */
    int n;
    if (len == 0 || len > BOT_AUDIO_MAX_PAYLOAD * 3)
        return RTC_EMSG;
    n = opus_decode(d->dec, payload, (opus_int32)len, pcm, 5760, 0);
    return n > 0 ? n : RTC_EMSG;
}

bool bot_audio_payload_ok(const uint8_t *payload, size_t len)
{
    if (len == 0 || len > BOT_AUDIO_MAX_PAYLOAD * 3)
        return false;
    return opus_packet_get_nb_samples(payload, (opus_int32)len, BOT_AUDIO_RATE) > 0;
}

bot_audio_venc *bot_audio_venc_new(int bitrate, int loss_pct)
{
    bot_audio_venc *e = calloc(1, sizeof *e);
    int err;
    if (!e)
        return NULL;
    e->enc = opus_encoder_create(BOT_AUDIO_RATE, 1, OPUS_APPLICATION_VOIP, &err);
    if (!e->enc) {
        free(e);
        return NULL;
    }
    opus_encoder_ctl(e->enc, OPUS_SET_BITRATE(bitrate));
    /* In-band FEC lives in the SILK layer (LBRR, RFC 6716 s.4.2.4): tell
     * the encoder this is voice so it stays in SILK or hybrid mode, where
     * a lost frame can be rebuilt, rather than CELT, where it cannot. */
    opus_encoder_ctl(e->enc, OPUS_SET_SIGNAL(OPUS_SIGNAL_VOICE));
    opus_encoder_ctl(e->enc, OPUS_SET_INBAND_FEC(1));
    opus_encoder_ctl(e->enc, OPUS_SET_PACKET_LOSS_PERC(loss_pct));
    opus_encoder_ctl(e->enc, OPUS_SET_DTX(0)); /* a packet every 20 ms: loss stays measurable */
    return e;
}

int bot_audio_venc_set_complexity(bot_audio_venc *e, int complexity)
{
    if (complexity < 0 || complexity > 10 ||
        opus_encoder_ctl(e->enc, OPUS_SET_COMPLEXITY(complexity)) != OPUS_OK)
        return RTC_EMSG;
    return 0;
}

void bot_audio_venc_free(bot_audio_venc *e)
{
    if (!e)
        return;
    opus_encoder_destroy(e->enc);
    free(e);
}

int bot_audio_venc_encode(bot_audio_venc *e, const int16_t *pcm, uint8_t *out, size_t cap)
{
    opus_int32 n = opus_encode(e->enc, pcm, BOT_AUDIO_FRAME, out, (opus_int32)(cap > 4000 ? 4000 : cap));
    return n > 0 ? (int)n : RTC_EMSG;
}

bot_audio_vdec *bot_audio_vdec_new(void)
{
    bot_audio_vdec *d = calloc(1, sizeof *d);
    int e;
    if (!d)
        return NULL;
    d->dec = opus_decoder_create(BOT_AUDIO_RATE, 1, &e);
    if (!d->dec) {
        free(d);
        return NULL;
    }
    return d;
}

void bot_audio_vdec_free(bot_audio_vdec *d)
{
    if (!d)
        return;
    opus_decoder_destroy(d->dec);
    free(d);
}

int bot_audio_vdec_decode(bot_audio_vdec *d, const uint8_t *payload, size_t len, bool fec,
                          int16_t *pcm)
{
    int n;
    if (payload && (len == 0 || len > BOT_AUDIO_MAX_PAYLOAD * 3))
        payload = NULL;
    /* With FEC or PLC the frame size asked for is the frame size produced
     * (RFC 6716 s.4.4 / opus_decode docs): exactly one 20 ms frame. */
    n = opus_decode(d->dec, payload, payload ? (opus_int32)len : 0, pcm, BOT_AUDIO_FRAME,
                    fec ? 1 : 0);
    if (n != BOT_AUDIO_FRAME) {
        memset(pcm, 0, BOT_AUDIO_FRAME * sizeof *pcm);
        return RTC_EMSG;
    }
    return n;
}
