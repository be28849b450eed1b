/* bot_audio.h - the audio a bot sends and the decoder that proves what it
 * received is real Opus. Opus is included only in bot_audio.c.
 *
 * The source is shared by every call in the process: each 20 ms tick it
 * encodes one frame (48 kHz mono, OPUS_APPLICATION_VOIP, no DTX so every
 * call sends a packet every 20 ms and loss is measurable) and all calls send
 * that same payload. Encoding once instead of per call keeps the load
 * generator's CPU on the network path being measured.
 * Each source and decoder is used by one thread (its worker). */
#ifndef BOT_AUDIO_H
#define BOT_AUDIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BOT_AUDIO_RATE 48000
#define BOT_AUDIO_FRAME 960 /* 20 ms */
#define BOT_AUDIO_MAX_PAYLOAD 1275
/* Received audio is decoded at 16 kHz: it proves the payload is valid Opus
 * just as well (every frame is fully decoded), at ~60% of the CPU of 48 kHz
 * output, which matters when one process decodes hundreds of streams. */
#define BOT_AUDIO_DEC_RATE 16000

typedef struct bot_audio_src bot_audio_src;
typedef struct bot_audio_dec bot_audio_dec;

/* NULL wav = a speech-like synthetic signal (voiced harmonics with a moving
 * pitch, syllable-rate envelope, talk spurts and pauses). A WAV file must be
 * 16-bit PCM; it is down-mixed, resampled to 48 kHz and looped.
 * Returns NULL with a reason in err. */
bot_audio_src *bot_audio_src_new(const char *wav, char *err, size_t errlen);
void bot_audio_src_free(bot_audio_src *s);
/* Encode the next 20 ms. Returns payload length or RTC_EMSG. */
int bot_audio_src_next(bot_audio_src *s, uint8_t *out, size_t cap);

/* Synthesize n samples of the synthetic signal starting at sample index
 * `at` (exposed for tests). */
void bot_audio_synth(int16_t *pcm, size_t n, uint64_t at);

/* Parse a WAV file in memory into mono 48 kHz samples (malloc'ed). */
int bot_audio_wav_parse(const uint8_t *buf, size_t len, int16_t **pcm, size_t *n);

bot_audio_dec *bot_audio_dec_new(void);
void bot_audio_dec_free(bot_audio_dec *d);
/* Decode one payload; returns samples per channel decoded at
 * BOT_AUDIO_DEC_RATE (> 0; 320 for 20 ms) or RTC_EMSG. */
int bot_audio_dec_decode(bot_audio_dec *d, const uint8_t *payload, size_t len);

/* A well-formed Opus packet (TOC and frame count make sense, RFC 6716
 * s.3): what a client that decodes later counts as decoded. */
bool bot_audio_payload_ok(const uint8_t *payload, size_t len);

/* Voice for people (tsunagu-phone): an encoder of 20 ms frames of 48 kHz
 * mono PCM with in-band FEC on (each packet also carries a low-rate copy of
 * the previous frame, RFC 6716 s.2.1.7), and a 48 kHz decoder that also
 * conceals a lost frame (PLC) or rebuilds it from the next packet's FEC. */
typedef struct bot_audio_venc bot_audio_venc;
typedef struct bot_audio_vdec bot_audio_vdec;

/* loss_pct: the loss the encoder plans its FEC for (Opus spends bits on
 * the copy only when it expects loss). NULL on failure. */
bot_audio_venc *bot_audio_venc_new(int bitrate, int loss_pct);
void bot_audio_venc_free(bot_audio_venc *e);
/* Opus encoder complexity 0-10 (libopus's default 9). Half the encoding CPU
 * at 5 for speech that sounds the same (docs/phone.md "CPU"). 0 or
 * RTC_EMSG. */
int bot_audio_venc_set_complexity(bot_audio_venc *e, int complexity);
/* 960 samples in; payload length or RTC_EMSG. */
int bot_audio_venc_encode(bot_audio_venc *e, const int16_t *pcm, uint8_t *out, size_t cap);

bot_audio_vdec *bot_audio_vdec_new(void);
void bot_audio_vdec_free(bot_audio_vdec *d);
/* Decode 20 ms into pcm[960]: payload as received (fec false); the FEC
 * copy inside the packet that FOLLOWS a lost one (fec true); or, with
 * payload NULL, concealment. Returns 960 or RTC_EMSG (pcm then silent). */
int bot_audio_vdec_decode(bot_audio_vdec *d, const uint8_t *payload, size_t len, bool fec,
                          int16_t *pcm);

#endif
