/* test_rtc_wr.c - the bounded writer: big-endian stores, capacity always
 * respected, overflow sticky, a write that does not fit writes nothing. */
#include <string.h>

#include "rtc_wr.h"
#include "tap.h"

int main(void)
{
    uint8_t buf[16];
    rtc_wr w;

    memset(buf, 0xEE, sizeof buf);
    rtc_wr_init(&w, buf + 1, 11); /* odd address, 11 bytes of room */
    rtc_wr_u8(&w, 0x01);
    rtc_wr_u16(&w, 0x0203);
    rtc_wr_u32(&w, 0x04050607);
    ok(!w.overflow && rtc_wr_len(&w) == 7 && rtc_wr_room(&w) == 4, "7 written, 4 left");
    ok(memcmp(buf + 1, "\x01\x02\x03\x04\x05\x06\x07", 7) == 0, "big-endian, misaligned");
    rtc_wr_u64(&w, 0x1112131415161718ULL);
    ok(w.overflow, "u64 into 4 bytes overflows");
    is_int(rtc_wr_len(&w), 7, "length unchanged after the failed write");
    ok(buf[8] == 0xEE && buf[11] == 0xEE, "nothing of the failed write reached the buffer");
    rtc_wr_u8(&w, 0x99);
    ok(w.overflow && rtc_wr_len(&w) == 7 && buf[8] == 0xEE,
       "sticky: a later write that would fit is refused too");
    ok(buf[12] == 0xEE && buf[0] == 0xEE, "bytes outside [start, end) never touched");

    rtc_wr_init(&w, buf, sizeof buf);
    rtc_wr_u64(&w, 0x0102030405060708ULL);
    rtc_wr_bytes(&w, "abcd", 4);
    rtc_wr_zero(&w, 4);
    ok(!w.overflow && rtc_wr_len(&w) == 16 && rtc_wr_room(&w) == 0, "exactly full is fine");
    ok(memcmp(buf, "\x01\x02\x03\x04\x05\x06\x07\x08" "abcd\0\0\0\0", 16) == 0,
       "u64, bytes and zero fill");
    rtc_wr_bytes(&w, "", 0);
    ok(!w.overflow, "zero-length write into a full buffer is fine");
    rtc_wr_zero(&w, 1);
    ok(w.overflow, "one more byte overflows");

    rtc_wr_init(&w, buf, sizeof buf);
    rtc_wr_u32(&w, 0);
    rtc_wr_put_u16_at(&w, 1, 0xABCD);
    ok(buf[0] == 0 && buf[1] == 0xAB && buf[2] == 0xCD && buf[3] == 0, "put_u16_at back-patches");
    rtc_wr_put_u16_at(&w, 3, 0x1234);
    ok(buf[3] == 0 && buf[4] == 0x05, "put_u16_at beyond what was written is ignored");
    ok(rtc_wr_reserve(&w, (size_t)-1) == NULL && w.overflow, "SIZE_MAX reserve refused");
    return done_testing();
}
