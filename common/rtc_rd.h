/* rtc_rd.h - bounds-checked reader over borrowed bytes.
 *
 * Every byte that arrives from the network or a file is read through this
 * reader. A read either succeeds completely or fails and leaves the reader
 * unchanged, so a caller can chain reads with && and bail out once. Lengths
 * taken from the wire are only ever used to carve a sub-reader (rtc_rd_sub);
 * they never reach memcpy directly. Multi-byte loads use shifts, never a cast
 * to a wider pointer, so misaligned input is fine (-fsanitize=alignment). */
#ifndef RTC_RD_H
#define RTC_RD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct {
    const uint8_t *p, *end; /* borrowed; [p, end) is what is left to read */
} rtc_rd;

static inline void rtc_rd_init(rtc_rd *r, const void *buf, size_t len)
{
    r->p = (const uint8_t *)buf;
    r->end = r->p + len;
}

static inline size_t rtc_rd_left(const rtc_rd *r) { return (size_t)(r->end - r->p); }

static inline bool rtc_rd_u8(rtc_rd *r, uint8_t *v)
{
    if (rtc_rd_left(r) < 1)
        return false;
    *v = r->p[0];
    r->p += 1;
    return true;
}

static inline bool rtc_rd_u16(rtc_rd *r, uint16_t *v)
{
    if (rtc_rd_left(r) < 2)
        return false;
    *v = (uint16_t)((unsigned)r->p[0] << 8 | r->p[1]);
    r->p += 2;
    return true;
}

static inline bool rtc_rd_u32(rtc_rd *r, uint32_t *v)
{
    if (rtc_rd_left(r) < 4)
        return false;
    *v = (uint32_t)r->p[0] << 24 | (uint32_t)r->p[1] << 16 | (uint32_t)r->p[2] << 8 | r->p[3];
    r->p += 4;
    return true;
}

/* Spelled out byte by byte rather than as two rtc_rd_u32 calls: with those,
 * GCC's -Wmaybe-uninitialized could not see that both halves are always set
 * once the length check passed, and flagged callers that chain many reads
 * with && (relay/io/rly_takeover.c had to keep its own copy). */
static inline bool rtc_rd_u64(rtc_rd *r, uint64_t *v)
{
    uint64_t x = 0;
    if (rtc_rd_left(r) < 8)
        return false;
    for (int i = 0; i < 8; i++)
        x = x << 8 | r->p[i];
    r->p += 8;
    *v = x;
    return true;
}

/* Copy exactly n bytes out; n is the size of the caller's buffer, never a
 * length read from the wire. */
static inline bool rtc_rd_copy(rtc_rd *r, void *out, size_t n)
{
    if (rtc_rd_left(r) < n)
        return false;
    memcpy(out, r->p, n);
    r->p += n;
    return true;
}

/* Carve the next n bytes into *out and advance past them. */
static inline bool rtc_rd_sub(rtc_rd *r, size_t n, rtc_rd *out)
{
    if (rtc_rd_left(r) < n)
        return false;
    out->p = r->p;
    out->end = r->p + n;
    r->p += n;
    return true;
}

static inline bool rtc_rd_skip(rtc_rd *r, size_t n)
{
    if (rtc_rd_left(r) < n)
        return false;
    r->p += n;
    return true;
}

/* Peek at the next n bytes without consuming them; NULL if short. */
static inline const uint8_t *rtc_rd_peek(const rtc_rd *r, size_t n)
{
    return rtc_rd_left(r) < n ? NULL : r->p;
}

#endif
