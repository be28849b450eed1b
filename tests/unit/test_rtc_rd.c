/* test_rtc_rd.c - the bounds-checked reader: every read either succeeds
 * completely or fails and leaves the reader unchanged; loads are big-endian
 * and alignment-free (run under -fsanitize=alignment). */
#include <stdlib.h>
#include <string.h>

#include "rtc_rd.h"
#include "tap.h"

/* The shape that made relay/io/rly_takeover.c keep its own u64 reader: many
 * u64 reads into struct fields in one && chain (GCC's -Wmaybe-uninitialized
 * misread the old two-u32 version here; -Werror builds this file). */
typedef struct {
    uint64_t a, b, c;
    uint8_t n;
} rec;

static bool read_rec(rtc_rd *r, rec *out)
{
    return rtc_rd_u64(r, &out->a) && rtc_rd_u64(r, &out->b) && rtc_rd_u8(r, &out->n) &&
           rtc_rd_u64(r, &out->c);
}

static void test_u64_chain(void)
{
    uint8_t buf[25];
    rec x;
    rtc_rd r;
    for (int i = 0; i < 25; i++)
        buf[i] = (uint8_t)(0xf0 + (i & 0xf));
    rtc_rd_init(&r, buf, sizeof buf);
    ok(read_rec(&r, &x) && x.a == 0xf0f1f2f3f4f5f6f7ull && x.n == 0xf0 && rtc_rd_left(&r) == 0,
       "a chain of u64 reads, top bit set");
    for (size_t cut = 0; cut < sizeof buf; cut++) {
        rtc_rd_init(&r, buf, cut);
        if (read_rec(&r, &x))
            break;
        if (cut + 1 == sizeof buf)
            ok(1, "every truncation of the chain fails");
    }
}

int main(void)
{
    test_u64_chain();
    static const uint8_t src[] = {0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09};
    uint8_t *odd = malloc(sizeof src + 1);
    rtc_rd r, sub;
    uint8_t u8 = 0, cp[4];
    uint16_t u16 = 0;
    uint32_t u32 = 0;
    uint64_t u64 = 0;
    const uint8_t *before;

    memcpy(odd + 1, src, sizeof src);
    rtc_rd_init(&r, odd + 1, sizeof src); /* odd address on purpose */
    is_int(rtc_rd_left(&r), 9, "9 bytes left");
    ok(rtc_rd_u8(&r, &u8) && u8 == 0x01, "u8");
    ok(rtc_rd_u16(&r, &u16) && u16 == 0x0203, "u16 big-endian at an odd address");
    ok(rtc_rd_u32(&r, &u32) && u32 == 0x04050607, "u32 big-endian, misaligned");
    is_int(rtc_rd_left(&r), 2, "2 left");
    before = r.p;
    ok(!rtc_rd_u32(&r, &u32) && r.p == before && u32 == 0x04050607,
       "short u32 fails, reader and output unchanged");
    ok(!rtc_rd_u64(&r, &u64) && r.p == before, "short u64 fails, reader unchanged");
    ok(!rtc_rd_copy(&r, cp, 3) && r.p == before, "short copy fails, reader unchanged");
    ok(!rtc_rd_skip(&r, 3) && r.p == before, "short skip fails");
    ok(!rtc_rd_sub(&r, 3, &sub) && r.p == before, "short sub fails");
    ok(rtc_rd_peek(&r, 3) == NULL && rtc_rd_peek(&r, 2) == before, "peek checks length, consumes nothing");
    ok(rtc_rd_u16(&r, &u16) && u16 == 0x0809 && rtc_rd_left(&r) == 0, "last u16 ends the input");
    ok(!rtc_rd_u8(&r, &u8), "u8 on empty fails");
    ok(rtc_rd_skip(&r, 0) && rtc_rd_sub(&r, 0, &sub) && rtc_rd_left(&sub) == 0,
       "zero-length skip/sub on empty succeed");

    rtc_rd_init(&r, src, sizeof src);
    ok(rtc_rd_u64(&r, &u64) && u64 == 0x0102030405060708ULL, "u64 big-endian");
    rtc_rd_init(&r, src, sizeof src);
    ok(rtc_rd_sub(&r, 4, &sub) && rtc_rd_left(&sub) == 4 && rtc_rd_left(&r) == 5,
       "sub carves 4 bytes and advances the parent");
    ok(rtc_rd_u32(&sub, &u32) && u32 == 0x01020304 && !rtc_rd_u8(&sub, &u8),
       "sub is bounded: cannot read into the parent's bytes");
    ok(rtc_rd_copy(&r, cp, 4) && memcmp(cp, src + 4, 4) == 0, "copy");
    /* a huge length from the wire never wraps the bounds check */
    before = r.p;
    ok(!rtc_rd_sub(&r, (size_t)-1, &sub) && !rtc_rd_skip(&r, (size_t)-1) && r.p == before,
       "SIZE_MAX length refused without wrapping");
    rtc_rd_init(&r, NULL, 0);
    ok(!rtc_rd_u8(&r, &u8) && rtc_rd_left(&r) == 0, "empty reader");
    free(odd);
    return done_testing();
}
