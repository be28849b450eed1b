/* test_rtc_clock.c - the monotonic readers agree with each other (one
 * source, three units) and never go back; the fake clock is what tests set. */
#include "rtc_clock.h"
#include "tap.h"

int main(void)
{
    uint64_t ms = rtc_clock_mono_ms(), us = rtc_clock_mono_us(), ns = rtc_clock_mono_ns();
    uint64_t ms2, us2 = us, back = 0;
    rtc_clock c;

    ok(us / 1000 >= ms && ns / 1000 >= us, "ms <= us <= ns read in that order");
    for (int i = 0; i < 100000; i++) {
        uint64_t u = rtc_clock_mono_us();
        back += u < us2;
        us2 = u;
    }
    is_int(back, 0, "the us clock never goes back");
    ms2 = rtc_clock_mono_ms();
    ok(ms2 - us2 / 1000 <= 1, "ms and us of the same source");
    rtc_clock_init_fake(&c, 5000, 1700000000);
    ok(c.now_ms(&c) == 5000 && c.wall_s(&c) == 1700000000, "fake clock");
    c.fake_ms += 600000;
    ok(c.now_ms(&c) == 605000, "fake clock moves when told");
    rtc_clock_init_system(&c);
    ok(c.now_ms(&c) >= ms2, "system clock through the struct");
    return done_testing();
}
