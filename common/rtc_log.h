/* rtc_log.h - one line per event on stderr, text or JSON.
 *
 * RTC_LOG checks the level before any formatting, so a disabled debug line
 * costs one compare. File, line and function are filled in by the macro.
 * `ctx` names what the line is about ("alloc=7f3a", "peer=ab12"), or NULL.
 * The settings are process-wide (a log is a process resource) but have
 * working defaults, so tests and fuzzers need not set anything. Nothing on a
 * per-packet path logs: use counters, and rtc_log_ratelimit for warnings an
 * attacker could trigger. */
#ifndef RTC_LOG_H
#define RTC_LOG_H

#include <stdbool.h>
#include <stdint.h>

typedef enum { RTC_LOG_ERROR = 0, RTC_LOG_WARN, RTC_LOG_INFO, RTC_LOG_DEBUG } rtc_log_level;

typedef enum { RTC_LOG_TEXT = 0, RTC_LOG_JSON } rtc_log_format;

/* Parse "error|warn|info|debug" / "text|json". 0 or RTC_EMSG. */
int rtc_log_parse_level(const char *s, rtc_log_level *out);
int rtc_log_parse_format(const char *s, rtc_log_format *out);

void rtc_log_setup(rtc_log_level level, rtc_log_format format, const char *program);
bool rtc_log_enabled(rtc_log_level level);

void rtc_log_write(rtc_log_level level, const char *ctx, const char *file, int line,
                   const char *func, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

#define RTC_LOG(lvl, ctx, ...)                                                               \
    do {                                                                                     \
        if (rtc_log_enabled(lvl))                                                            \
            rtc_log_write((lvl), (ctx), __FILE__, __LINE__, __func__, __VA_ARGS__);          \
    } while (0)

/* Token bucket for warnings: returns true when a line may be logged now.
 * `now_ms` from the caller's clock; at most `per_sec` lines a second. */
typedef struct {
    uint64_t window_ms;
    uint32_t used, per_sec, suppressed;
} rtc_log_ratelimit;

bool rtc_log_ratelimit_ok(rtc_log_ratelimit *rl, uint64_t now_ms);

#endif
