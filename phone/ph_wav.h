/* ph_wav.h - --record: a 16-bit mono PCM WAV file of what the phone plays.
 * The header's sizes are brought up to date by ph_wav_sync (once a second)
 * and on close, so a file cut short by a crash is still readable up to its
 * last sync. Main thread only. */
#ifndef PH_WAV_H
#define PH_WAV_H

#include <stddef.h>
#include <stdint.h>

typedef struct ph_wav ph_wav;

ph_wav *ph_wav_open(const char *path, unsigned rate); /* NULL with errno */
int ph_wav_write(ph_wav *w, const int16_t *pcm, size_t n);
void ph_wav_sync(ph_wav *w);
/* Syncs and closes; 0 or -errno. NULL is a no-op. */
int ph_wav_close(ph_wav *w);

#endif
