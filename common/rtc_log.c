/* rtc_log.c - stderr logger. One fprintf per line so concurrent threads never
 * interleave within a line (stdio locks the stream per call). */
#include "rtc_log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "rtc_err.h"

/* Process-wide settings; defaults work without rtc_log_setup. Atomics:
 * a daemon's SIGHUP reload calls rtc_log_setup while its worker threads log.
 * Relaxed is enough: each is read on its own, and a line logged at the old
 * level just after a reload is harmless. */
static _Atomic int g_level = RTC_LOG_INFO;
static _Atomic int g_format = RTC_LOG_TEXT;
static const char *_Atomic g_program = "tsunagu";

static const char *const level_names[] = {"error", "warn", "info", "debug"};

int rtc_log_parse_level(const char *s, rtc_log_level *out)
{
    for (int i = 0; i < 4; i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *out = (rtc_log_level)i;
            return 0;
        }
    }
    return RTC_EMSG;
}

int rtc_log_parse_format(const char *s, rtc_log_format *out)
{
    if (strcmp(s, "text") == 0)
        *out = RTC_LOG_TEXT;
    else if (strcmp(s, "json") == 0)
        *out = RTC_LOG_JSON;
    else
        return RTC_EMSG;
    return 0;
}

void rtc_log_setup(rtc_log_level level, rtc_log_format format, const char *program)
{
    atomic_store_explicit(&g_level, (int)level, memory_order_relaxed);
    atomic_store_explicit(&g_format, (int)format, memory_order_relaxed);
    if (program)
        atomic_store_explicit(&g_program, program, memory_order_relaxed);
}

bool rtc_log_enabled(rtc_log_level level)
{
    return (int)level <= atomic_load_explicit(&g_level, memory_order_relaxed);
}

/* Escape for a JSON string value into out (always NUL-terminated). */
static void json_escape(char *out, size_t cap, const char *in)
{
    size_t o = 0;
    for (; *in && o + 7 < cap; in++) {
        unsigned char c = (unsigned char)*in;
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (c < 0x20) {
            o += (size_t)snprintf(out + o, cap - o, "\\u%04x", c);
        } else {
            out[o++] = (char)c;
        }
    }
    out[o] = '\0';
}

void rtc_log_write(rtc_log_level level, const char *ctx, const char *file, int line,
                   const char *func, const char *fmt, ...)
{
    char msg[1024], ts[96];
    struct timespec now;
    struct tm tm;
    va_list ap;
    const char *base = strrchr(file, '/');

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    base = base ? base + 1 : file;

    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    snprintf(ts, sizeof ts, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             now.tv_nsec / 1000000);

    const char *prog = atomic_load_explicit(&g_program, memory_order_relaxed);
    if (atomic_load_explicit(&g_format, memory_order_relaxed) == RTC_LOG_JSON) {
        char emsg[2048], ectx[256];
        json_escape(emsg, sizeof emsg, msg);
        json_escape(ectx, sizeof ectx, ctx ? ctx : "");
        fprintf(stderr,
                "{\"ts\":\"%s\",\"level\":\"%s\",\"prog\":\"%s\",\"ctx\":\"%s\","
                "\"src\":\"%s:%d\",\"func\":\"%s\",\"msg\":\"%s\"}\n",
                ts, level_names[level], prog, ectx, base, line, func, emsg);
    } else {
        fprintf(stderr, "%s %-5s %s%s%s%s %s (%s:%d)\n", ts, level_names[level], prog,
                ctx ? " [" : "", ctx ? ctx : "", ctx ? "]" : "", msg, base, line);
    }
}

bool rtc_log_ratelimit_ok(rtc_log_ratelimit *rl, uint64_t now_ms)
{
    if (now_ms - rl->window_ms >= 1000) {
        rl->window_ms = now_ms;
        rl->used = 0;
    }
    if (rl->used < rl->per_sec) {
        rl->used++;
        return true;
    }
    rl->suppressed++;
    return false;
}
