/* rtc_conf.c - table-driven settings loader (see rtc_conf.h). */
#include "rtc_conf.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "rtc_addr.h"
#include "rtc_err.h"
#include "rtc_log.h"

#define MAX_LINE 4096

static void *field(const rtc_conf_spec *s, void *out) { return (char *)out + s->offset; }

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return RTC_EMSG;
}

static const rtc_conf_spec *find(const rtc_conf_spec *specs, const char *key, size_t keylen)
{
    for (const rtc_conf_spec *s = specs; s->key; s++)
        if (strlen(s->key) == keylen && memcmp(s->key, key, keylen) == 0)
            return s;
    return NULL;
}

static int parse_bool(const char *v, bool *out)
{
    if (!strcmp(v, "true") || !strcmp(v, "yes") || !strcmp(v, "on") || !strcmp(v, "1"))
        *out = true;
    else if (!strcmp(v, "false") || !strcmp(v, "no") || !strcmp(v, "off") || !strcmp(v, "0"))
        *out = false;
    else
        return RTC_EMSG;
    return 0;
}

static void list_clear(rtc_strlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

/* Set one value. `fresh` marks the first value of a list from a new source
 * (defaults < file < flags): it replaces what the earlier source gave. */
static int set_value(const rtc_conf_spec *s, void *out, const char *v, bool fresh,
                     const char *where, char *err, size_t errlen)
{
    size_t maxlen = s->max > 0 ? (size_t)s->max : 4096;
    const char *shown = (s->flags & RTC_CONF_SECRET) ? "(secret)" : v;
    char why[256] = "";

    if (s->type != RTC_CONF_INT && s->type != RTC_CONF_BOOL && strlen(v) > maxlen)
        return fail(err, errlen, "%s: %s: value longer than %zu bytes", where, s->key, maxlen);
    if (s->validate && s->validate(v, why, sizeof why))
        return fail(err, errlen, "%s: %s: bad value '%s': %s", where, s->key, shown, why);

    switch (s->type) {
    case RTC_CONF_STR: {
        char **slot = field(s, out), *dup = strdup(v);
        if (!dup)
            return fail(err, errlen, "out of memory");
        free(*slot);
        *slot = dup;
        return 0;
    }
    case RTC_CONF_INT: {
        char *end;
        long long n;
        errno = 0;
        n = strtoll(v, &end, 10);
        if (!*v || *end || errno || isspace((unsigned char)*v))
            return fail(err, errlen, "%s: %s: '%s' is not an integer", where, s->key, shown);
        if (n < s->min || n > s->max)
            return fail(err, errlen, "%s: %s: %lld is out of range [%lld, %lld]", where, s->key,
                        n, (long long)s->min, (long long)s->max);
        *(int64_t *)field(s, out) = n;
        return 0;
    }
    case RTC_CONF_BOOL:
        if (parse_bool(v, field(s, out)))
            return fail(err, errlen, "%s: %s: '%s' is not a boolean (true/false)", where, s->key,
                        shown);
        return 0;
    case RTC_CONF_LIST: {
        rtc_strlist *l = field(s, out);
        char **nv, *dup;
        if (fresh)
            list_clear(l);
        if (l->n >= 1024)
            return fail(err, errlen, "%s: %s: more than 1024 values", where, s->key);
        dup = strdup(v);
        nv = dup ? realloc(l->v, (l->n + 1) * sizeof *nv) : NULL;
        if (!nv) {
            free(dup);
            return fail(err, errlen, "out of memory");
        }
        l->v = nv;
        l->v[l->n++] = dup;
        return 0;
    }
    default:
        return fail(err, errlen, "%s: internal error: bad type", s->key);
    }
}

static int apply_defaults(const rtc_conf_spec *specs, void *out, char *err, size_t errlen)
{
    for (const rtc_conf_spec *s = specs; s->key; s++)
        if (s->def && set_value(s, out, s->def, true, "default", err, errlen))
            return RTC_EMSG;
    return 0;
}

static char *trim(char *s)
{
    char *e;
    while (isspace((unsigned char)*s))
        s++;
    e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

static int parse_file(const rtc_conf_spec *specs, void *out, const char *path, char *err,
                      size_t errlen)
{
    char line[MAX_LINE + 2], where[512];
    unsigned lineno = 0;
    /* which list keys this file has already started (to replace defaults) */
    bool started[256] = {false};
    FILE *f = fopen(path, "re");
    int rc = 0;

    if (!f)
        return fail(err, errlen, "config: cannot open '%s': %s", path, strerror(errno));
    while (fgets(line, sizeof line, f)) {
        char *k, *v, *eq;
        const rtc_conf_spec *s;
        size_t idx;

        lineno++;
        snprintf(where, sizeof where, "%s:%u", path, lineno);
        if (strlen(line) > MAX_LINE) {
            rc = fail(err, errlen, "%s: line longer than %d bytes", where, MAX_LINE);
            break;
        }
        k = trim(line);
        if (!*k || *k == '#')
            continue;
        eq = strchr(k, '=');
        if (!eq) {
            rc = fail(err, errlen, "%s: expected 'key = value'", where);
            break;
        }
        *eq = '\0';
        k = trim(k);
        v = trim(eq + 1);
        /* an inline comment needs whitespace before '#' so values may hold '#' */
        for (char *h = v; (h = strchr(h, '#')); h++)
            if (h > v && isspace((unsigned char)h[-1])) {
                *h = '\0';
                v = trim(v);
                break;
            }
        if (strlen(v) >= 2 && v[0] == '"' && v[strlen(v) - 1] == '"') {
            v[strlen(v) - 1] = '\0';
            v++;
        }
        s = find(specs, k, strlen(k));
        if (!s) {
            rc = fail(err, errlen, "%s: unknown key '%s'", where, k);
            break;
        }
        idx = (size_t)(s - specs);
        if (set_value(s, out, v, idx < 256 && !started[idx], where, err, errlen)) {
            rc = RTC_EMSG;
            break;
        }
        if (idx < 256)
            started[idx] = true;
    }
    if (!rc && ferror(f))
        rc = fail(err, errlen, "config: error reading '%s'", path);
    fclose(f);
    return rc;
}

int rtc_conf_load_file(const rtc_conf_spec *specs, void *out, const char *path, char *err,
                       size_t errlen)
{
    if (apply_defaults(specs, out, err, errlen) || parse_file(specs, out, path, err, errlen)) {
        rtc_conf_dispose(specs, out);
        return RTC_EMSG;
    }
    return 0;
}

int rtc_conf_load(const rtc_conf_spec *specs, void *out, int argc, char *const argv[], char *err,
                  size_t errlen)
{
    bool started[256] = {false}, version = false;
    const char *config = NULL;

    /* Pass 1: --help and --config, so the file is applied before any flag. */
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
            return RTC_CONF_HELP;
        if (!strcmp(argv[i], "--version"))
            version = true;
        if (!strcmp(argv[i], "--config")) {
            if (i + 1 >= argc)
                return fail(err, errlen, "--config: missing value");
            config = argv[++i];
        } else if (!strncmp(argv[i], "--config=", 9)) {
            config = argv[i] + 9;
        }
    }
    if (version)
        return RTC_CONF_VERSION;
    if (apply_defaults(specs, out, err, errlen))
        goto fail;
    if (config && parse_file(specs, out, config, err, errlen))
        goto fail;

    /* Pass 2: flags. */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *eq, *v;
        const rtc_conf_spec *s;
        size_t idx;
        char where[64];

        if (strncmp(a, "--", 2) != 0 || !a[2]) {
            fail(err, errlen, "unexpected argument '%s' (flags start with --)", a);
            goto fail;
        }
        a += 2;
        eq = strchr(a, '=');
        if (!strncmp(a, "config", 6) && (a[6] == '\0' || a[6] == '=')) {
            i += a[6] == '\0';
            continue;
        }
        s = find(specs, a, eq ? (size_t)(eq - a) : strlen(a));
        if (!s) {
            fail(err, errlen, "unknown flag '--%.*s' (see --help)",
                 (int)(eq ? (size_t)(eq - a) : strlen(a)), a);
            goto fail;
        }
        if (eq) {
            v = eq + 1;
        } else if (s->type == RTC_CONF_BOOL) {
            v = "true";
        } else {
            if (i + 1 >= argc) {
                fail(err, errlen, "--%s: missing value", s->key);
                goto fail;
            }
            v = argv[++i];
        }
        snprintf(where, sizeof where, "flag");
        idx = (size_t)(s - specs);
        if (set_value(s, out, v, idx < 256 && !started[idx], where, err, errlen))
            goto fail;
        if (idx < 256)
            started[idx] = true;
    }
    return 0;
fail:
    rtc_conf_dispose(specs, out);
    return RTC_EMSG;
}

void rtc_conf_dispose(const rtc_conf_spec *specs, void *out)
{
    for (const rtc_conf_spec *s = specs; s->key; s++) {
        if (s->type == RTC_CONF_STR) {
            char **slot = field(s, out);
            free(*slot);
            *slot = NULL;
        } else if (s->type == RTC_CONF_LIST) {
            list_clear(field(s, out));
        }
    }
}

static const void *cfield(const rtc_conf_spec *s, const void *out)
{
    return (const char *)out + s->offset;
}

static bool str_equal(const char *a, const char *b) { return a == b || (a && b && !strcmp(a, b)); }

bool rtc_conf_value_equal(const rtc_conf_spec *s, const void *a, const void *b)
{
    switch (s->type) {
    case RTC_CONF_STR:
        return str_equal(*(char *const *)cfield(s, a), *(char *const *)cfield(s, b));
    case RTC_CONF_INT:
        return *(const int64_t *)cfield(s, a) == *(const int64_t *)cfield(s, b);
    case RTC_CONF_BOOL:
        return *(const bool *)cfield(s, a) == *(const bool *)cfield(s, b);
    case RTC_CONF_LIST: {
        const rtc_strlist *la = cfield(s, a), *lb = cfield(s, b);
        if (la->n != lb->n)
            return false;
        for (size_t i = 0; i < la->n; i++)
            if (!str_equal(la->v[i], lb->v[i]))
                return false;
        return true;
    }
    default:
        return false;
    }
}

size_t rtc_conf_restart_changed(const rtc_conf_spec *specs, const void *old, const void *fresh,
                                const char **keys, size_t max)
{
    size_t n = 0;
    for (const rtc_conf_spec *s = specs; s->key; s++)
        if ((s->flags & RTC_CONF_RESTART) && !rtc_conf_value_equal(s, old, fresh)) {
            if (n < max)
                keys[n] = s->key;
            n++;
        }
    return n;
}

void rtc_conf_usage(const rtc_conf_spec *specs, FILE *f)
{
    fprintf(f, "  --config FILE                 read 'key = value' lines (keys as the flags)\n");
    for (const rtc_conf_spec *s = specs; s->key; s++) {
        char left[96];
        snprintf(left, sizeof left, "--%s%s%s", s->key, s->type == RTC_CONF_BOOL ? "" : " ",
                 s->type == RTC_CONF_BOOL ? "" : (s->metavar ? s->metavar : "V"));
        fprintf(f, "  %-30s%s%s", left, s->help ? s->help : "",
                s->type == RTC_CONF_LIST ? " (repeatable)" : "");
        if (s->def)
            fprintf(f, " [default: %s]", (s->flags & RTC_CONF_SECRET) ? "(secret)" : s->def);
        fputc('\n', f);
    }
    fprintf(f, "  --version                     print the version and the git commit, then exit\n");
    fprintf(f, "  --help                        this text\n");
}

int rtc_conf_check_hostport(const char *value, char *err, size_t errlen)
{
    rtc_addr a;
    if (rtc_addr_parse_hostport(value, &a)) {
        snprintf(err, errlen, "expected IPv4:PORT or [IPv6]:PORT");
        return RTC_EMSG;
    }
    return 0;
}

int rtc_conf_check_ip(const char *value, char *err, size_t errlen)
{
    rtc_addr a;
    if (rtc_addr_parse_ip(value, &a)) {
        snprintf(err, errlen, "expected an IPv4 or IPv6 address");
        return RTC_EMSG;
    }
    return 0;
}

int rtc_conf_check_cidr(const char *value, char *err, size_t errlen)
{
    rtc_cidr c;
    if (rtc_cidr_parse(value, &c)) {
        snprintf(err, errlen, "expected ADDRESS/PREFIX, e.g. 10.0.0.0/8 or fc00::/7");
        return RTC_EMSG;
    }
    return 0;
}

void rtc_conf_local_reason(int rc, char *err, size_t errlen)
{
    if (rc == -EADDRNOTAVAIL)
        snprintf(err, errlen, "not an address of this host (ip -br addr lists them)");
    else
        snprintf(err, errlen, "cannot bind to it: %s", strerror(-rc));
}

static int check_local(const rtc_addr *a, char *err, size_t errlen)
{
    int rc = rtc_addr_check_local(a);
    if (!rc)
        return 0;
    rtc_conf_local_reason(rc, err, errlen);
    return RTC_EMSG;
}

int rtc_conf_check_local_hostport(const char *value, char *err, size_t errlen)
{
    rtc_addr a;
    if (rtc_conf_check_hostport(value, err, errlen))
        return RTC_EMSG;
    rtc_addr_parse_hostport(value, &a);
    return check_local(&a, err, errlen);
}

int rtc_conf_check_local_ip(const char *value, char *err, size_t errlen)
{
    rtc_addr a;
    if (rtc_conf_check_ip(value, err, errlen))
        return RTC_EMSG;
    rtc_addr_parse_ip(value, &a);
    return check_local(&a, err, errlen);
}

int rtc_conf_check_log_level(const char *value, char *err, size_t errlen)
{
    rtc_log_level l;
    if (rtc_log_parse_level(value, &l)) {
        snprintf(err, errlen, "expected error, warn, info or debug");
        return RTC_EMSG;
    }
    return 0;
}

int rtc_conf_check_log_format(const char *value, char *err, size_t errlen)
{
    rtc_log_format f;
    if (rtc_log_parse_format(value, &f)) {
        snprintf(err, errlen, "expected text or json");
        return RTC_EMSG;
    }
    return 0;
}
