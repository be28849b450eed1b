/* rtc_wr.h - bounded writer with a sticky overflow flag.
 *
 * The writer always knows its capacity. A write that does not fit sets
 * `overflow` and writes nothing; every later write is a no-op, so a builder
 * checks the flag once before sending instead of after every call. Padding is
 * zero-filled so no stale memory leaks onto the wire. */
#ifndef RTC_WR_H
#define RTC_WR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct {
    uint8_t *start, *p, *end; /* borrowed buffer [start, end); p = next byte */
    bool overflow;
} rtc_wr;

static inline void rtc_wr_init(rtc_wr *w, void *buf, size_t cap)
{
    w->start = w->p = (uint8_t *)buf;
    w->end = w->start + cap;
    w->overflow = false;
}

static inline size_t rtc_wr_len(const rtc_wr *w) { return (size_t)(w->p - w->start); }

static inline size_t rtc_wr_room(const rtc_wr *w) { return (size_t)(w->end - w->p); }

/* Reserve n bytes and return where they start, or NULL (and overflow). */
static inline uint8_t *rtc_wr_reserve(rtc_wr *w, size_t n)
{
    uint8_t *at;
    if (w->overflow || rtc_wr_room(w) < n) {
        w->overflow = true;
        return NULL;
    }
    at = w->p;
    w->p += n;
    return at;
}

static inline void rtc_wr_u8(rtc_wr *w, uint8_t v)
{
    uint8_t *at = rtc_wr_reserve(w, 1);
    if (at)
        at[0] = v;
}

static inline void rtc_wr_u16(rtc_wr *w, uint16_t v)
{
    uint8_t *at = rtc_wr_reserve(w, 2);
    if (at) {
        at[0] = (uint8_t)(v >> 8);
        at[1] = (uint8_t)v;
    }
}

static inline void rtc_wr_u32(rtc_wr *w, uint32_t v)
{
    uint8_t *at = rtc_wr_reserve(w, 4);
    if (at) {
        at[0] = (uint8_t)(v >> 24);
        at[1] = (uint8_t)(v >> 16);
        at[2] = (uint8_t)(v >> 8);
        at[3] = (uint8_t)v;
    }
}

static inline void rtc_wr_u64(rtc_wr *w, uint64_t v)
{
    /* one reservation: two u32 writes would leave the high half behind
     * when only 4 bytes are left */
    uint8_t *at = rtc_wr_reserve(w, 8);
    if (at)
        for (int i = 0; i < 8; i++)
            at[i] = (uint8_t)(v >> (56 - 8 * i));
}

static inline void rtc_wr_bytes(rtc_wr *w, const void *src, size_t n)
{
    uint8_t *at = rtc_wr_reserve(w, n);
    if (at && n)
        memcpy(at, src, n);
}

static inline void rtc_wr_zero(rtc_wr *w, size_t n)
{
    uint8_t *at = rtc_wr_reserve(w, n);
    if (at && n)
        memset(at, 0, n);
}

/* Store a big-endian u16 at an offset already written (length back-patch). */
static inline void rtc_wr_put_u16_at(rtc_wr *w, size_t off, uint16_t v)
{
    if (!w->overflow && off + 2 <= rtc_wr_len(w)) {
        w->start[off] = (uint8_t)(v >> 8);
        w->start[off + 1] = (uint8_t)v;
    }
}

#endif
