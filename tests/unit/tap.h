/* tap.h - a tiny TAP producer for unit tests (meson runs them with
 * protocol: 'tap'). ok() records one assertion; done_testing() prints the
 * plan and returns the exit status. Header-only on purpose: each test is one
 * executable and its counters are local to it. */
#ifndef TAP_H
#define TAP_H

#include <stdio.h>

static int tap_count, tap_failed;

static inline int tap_ok(int cond, const char *expr, const char *file, int line,
                         const char *name)
{
    tap_count++;
    if (cond) {
        printf("ok %d - %s\n", tap_count, name);
    } else {
        tap_failed++;
        printf("not ok %d - %s\n#   failed: %s at %s:%d\n", tap_count, name, expr, file, line);
    }
    fflush(stdout);
    return cond;
}

#define ok(cond, name) tap_ok(!!(cond), #cond, __FILE__, __LINE__, (name))
#define is_int(got, want, name)                                                             \
    do {                                                                                    \
        long long g_ = (long long)(got), w_ = (long long)(want);                            \
        if (!tap_ok(g_ == w_, #got " == " #want, __FILE__, __LINE__, (name)))                \
            printf("#   got %lld, want %lld\n", g_, w_);                                    \
    } while (0)

static inline int done_testing(void)
{
    printf("1..%d\n", tap_count);
    if (tap_failed)
        printf("# %d of %d failed\n", tap_failed, tap_count);
    return tap_failed ? 1 : 0;
}

#endif
