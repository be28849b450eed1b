/* ph_wav.c - WAV writer (see ph_wav.h): RIFF, "fmt " (PCM, 1 channel,
 * 16 bits), "data". Written little-endian byte by byte. */
#include "ph_wav.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

struct ph_wav {
    FILE *f;
    unsigned rate;
    uint64_t samples;
};

static void le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static void le16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static int put_header(ph_wav *w)
{
    uint8_t h[44] = "RIFF....WAVEfmt ....\1\0\1\0........\2\0\20\0data....";
    uint32_t data = w->samples > 0x7fffffffu ? 0x7fffffffu : (uint32_t)(w->samples * 2);
    le32(h + 4, 36 + data);
    le32(h + 16, 16);
    le16(h + 20, 1);
    le16(h + 22, 1);
    le32(h + 24, w->rate);
    le32(h + 28, w->rate * 2);
    le16(h + 32, 2);
    le16(h + 34, 16);
    le32(h + 40, data);
    if (fseek(w->f, 0, SEEK_SET) || fwrite(h, 1, sizeof h, w->f) != sizeof h)
        return -EIO;
    return fseek(w->f, 0, SEEK_END) ? -EIO : 0;
}

ph_wav *ph_wav_open(const char *path, unsigned rate)
{
    ph_wav *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->rate = rate;
    w->f = fopen(path, "wb");
    if (!w->f)
        goto out_free;
    if (put_header(w))
        goto out_close;
    return w;
out_close:
    fclose(w->f);
out_free:
    free(w);
    return NULL;
}

int ph_wav_write(ph_wav *w, const int16_t *pcm, size_t n)
{
    uint8_t buf[2 * 960];
    while (n) {
        size_t k = n > 960 ? 960 : n;
        for (size_t i = 0; i < k; i++)
            le16(buf + 2 * i, (uint16_t)pcm[i]);
        if (fwrite(buf, 2, k, w->f) != k)
            return -EIO;
        w->samples += k;
        pcm += k;
        n -= k;
    }
    return 0;
}

void ph_wav_sync(ph_wav *w)
{
    if (put_header(w) == 0)
        fflush(w->f);
}

int ph_wav_close(ph_wav *w)
{
    int rc;
    if (!w)
        return 0;
    rc = put_header(w);
    if (fclose(w->f))
        rc = -errno;
    free(w);
    return rc;
}
