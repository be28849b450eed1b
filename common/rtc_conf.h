/* rtc_conf.h - one table drives flags, config files, --help and the sample.
 *
 * A program describes each setting once in an rtc_conf_spec array (redis's
 * static_configs[], nginx's ngx_command_t): key, type, where it lives in the
 * program's settings struct, range, default and help. The same table parses
 * `--key value` / `--key=value` flags, `key = value` lines of `--config FILE`
 * (flags win over the file), prints --help and lets tests check the
 * conf/ sample files. An unknown key, a bad value or an out-of-range number
 * is an error that names the key and the reason; the program stops.
 *
 * The settings struct is filled in full by rtc_conf_load and is then
 * immutable: reload builds a fresh one and swaps it in. */
#ifndef RTC_CONF_H
#define RTC_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum {
    RTC_CONF_STR,  /* char *; NULL when unset and no default */
    RTC_CONF_INT,  /* int64_t, checked against [min, max] */
    RTC_CONF_BOOL, /* bool; a bare --flag means true */
    RTC_CONF_LIST  /* rtc_strlist; repeatable; a new source replaces the default */
} rtc_conf_type;

typedef struct {
    char **v;
    size_t n;
} rtc_strlist;

enum {
    RTC_CONF_SECRET = 1u << 0,  /* never echoed back in errors */
    /* A running program cannot apply a new value on SIGHUP (a listening
     * address, a connection to open at start): a reload that changes it
     * keeps the old value and says that a restart is needed. The table, not
     * a hand-kept list at the reload site, says which keys these are. */
    RTC_CONF_RESTART = 1u << 1
};

typedef struct rtc_conf_spec {
    const char *key;   /* long flag name without "--", and config key */
    rtc_conf_type type;
    size_t offset;     /* offsetof(settings struct, field) */
    int64_t min, max;  /* INT: value range; STR/LIST: max length (0 = 4096) */
    const char *def;   /* default as text, NULL for none */
    const char *metavar;
    const char *help;
    /* Optional extra check of one value; 0, or nonzero with a reason in err. */
    int (*validate)(const char *value, char *err, size_t errlen);
    unsigned flags;
} rtc_conf_spec;

#define RTC_CONF_END {NULL, RTC_CONF_STR, 0, 0, 0, NULL, NULL, NULL, NULL, 0}

/* rtc_conf_load returns this when --help or -h was given (usage printed by
 * the caller with rtc_conf_usage), ... */
#define RTC_CONF_HELP 1
/* ... and this when --version was given (printed by the caller with
 * rtc_version_print). --help wins when both are there. */
#define RTC_CONF_VERSION 2

/* Fill *out from defaults, then --config FILE (if present in argv), then the
 * flags. argv[0] is skipped. Returns 0, RTC_CONF_HELP, or RTC_EMSG with a
 * message naming the key in err. On error *out is disposed already.
 * RTC_CONF_HELP and RTC_CONF_VERSION leave *out untouched. */
int rtc_conf_load(const rtc_conf_spec *specs, void *out, int argc, char *const argv[], char *err,
                  size_t errlen);

/* Defaults, then one config file only (used by the sample-file test). */
int rtc_conf_load_file(const rtc_conf_spec *specs, void *out, const char *path, char *err,
                       size_t errlen);

/* Free every string and list that load allocated; *out becomes zeroed. */
void rtc_conf_dispose(const rtc_conf_spec *specs, void *out);

/* Print "--key METAVAR  help (default: X)" for every entry. */
void rtc_conf_usage(const rtc_conf_spec *specs, FILE *f);

/* true when the setting `s` holds the same value in both filled structs
 * (strings and lists compared by content; NULL equals only NULL). */
bool rtc_conf_value_equal(const rtc_conf_spec *s, const void *a, const void *b);

/* The RTC_CONF_RESTART settings whose value differs between the running
 * settings `old` and the freshly loaded `fresh`, in table order: up to `max`
 * of their keys (pointers into the table) go to keys[]. Returns how many
 * differ, which may exceed max. keys may be NULL when max is 0. */
size_t rtc_conf_restart_changed(const rtc_conf_spec *specs, const void *old, const void *fresh,
                                const char **keys, size_t max);

/* Shared validators for common value shapes. */
int rtc_conf_check_hostport(const char *value, char *err, size_t errlen); /* ADDR:PORT */
int rtc_conf_check_ip(const char *value, char *err, size_t errlen);       /* v4 or v6 */
int rtc_conf_check_cidr(const char *value, char *err, size_t errlen);
/* ADDR:PORT / IP that this host has (rtc_addr_check_local: a bind test, port
 * 0); a wildcard (0.0.0.0, ::) passes. For listeners and relay addresses: a
 * value that parses but names an address of another host could only fail
 * later, one bind or one Allocate at a time. */
int rtc_conf_check_local_hostport(const char *value, char *err, size_t errlen);
int rtc_conf_check_local_ip(const char *value, char *err, size_t errlen);
/* Why rtc_addr_check_local failed (rc < 0), as those two put it, in err. */
void rtc_conf_local_reason(int rc, char *err, size_t errlen);
int rtc_conf_check_log_level(const char *value, char *err, size_t errlen);  /* error..debug */
int rtc_conf_check_log_format(const char *value, char *err, size_t errlen); /* text|json */

#endif
