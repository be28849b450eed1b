/* test_rtc_log_race.c - rtc_log_setup from one thread (the relay's SIGHUP
 * reload) while others log and ask rtc_log_enabled (the workers). Built
 * with -fsanitize=thread: a plain global for the level or format is a data
 * race TSan reports, and the test then exits non-zero. */
#include <pthread.h>
#include <stdatomic.h>

#include "rtc_log.h"
#include "tap.h"

#define ROUNDS 2000

static atomic_int stop;

static void *worker(void *arg)
{
    long enabled = 0, logged = 0;
    while (!atomic_load(&stop)) {
        enabled += rtc_log_enabled(RTC_LOG_INFO);
        /* ERROR is on at every level: reads the format and program name */
        if (logged < 20 && enabled % 97 == 1) {
            RTC_LOG(RTC_LOG_ERROR, "race", "worker line %ld", logged);
            logged++;
        }
    }
    return (void *)enabled;
}

int main(void)
{
    pthread_t th[2];
    int started = 0;

    for (int i = 0; i < 2; i++)
        started += !pthread_create(&th[i], NULL, worker, NULL);
    for (int i = 0; i < ROUNDS; i++)
        rtc_log_setup(i & 1 ? RTC_LOG_WARN : RTC_LOG_DEBUG, i & 2 ? RTC_LOG_JSON : RTC_LOG_TEXT,
                      "tsunagu-relay");
    atomic_store(&stop, 1);
    for (int i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    is_int(started, 2, "two reader threads ran");
    rtc_log_setup(RTC_LOG_WARN, RTC_LOG_TEXT, NULL);
    ok(!rtc_log_enabled(RTC_LOG_INFO) && rtc_log_enabled(RTC_LOG_WARN), "last setup wins");
    return done_testing();
}
