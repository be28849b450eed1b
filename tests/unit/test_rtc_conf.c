/* test_rtc_conf.c - the table-driven loader: defaults, config file, flags
 * (flags win), list replacement per source, and every error naming the key
 * (unknown key/flag, out-of-range int, bad bool, missing value, validator),
 * --help and --version, inline comments, quoted values, secrets never echoed,
 * which restart-required settings a reload changed, and the validators of
 * addresses this host must have. Config files
 * are written to mkstemp files and removed. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rtc_conf.h"
#include "rtc_err.h"
#include "tap.h"

typedef struct {
    char *listen;
    int64_t workers;
    bool verbose;
    rtc_strlist deny;
    char *secret;
    char *name;
} cfg;

static int check_secret(const char *v, char *err, size_t errlen)
{
    if (strlen(v) < 4) {
        snprintf(err, errlen, "shorter than 4 bytes");
        return 1;
    }
    return 0;
}

static const rtc_conf_spec specs[] = {
    {"listen", RTC_CONF_STR, offsetof(cfg, listen), 0, 0, "0.0.0.0:3478", "ADDR:PORT",
     "where to listen", rtc_conf_check_hostport, 0},
    {"workers", RTC_CONF_INT, offsetof(cfg, workers), 1, 64, "2", "N", "worker threads", NULL, 0},
    {"verbose", RTC_CONF_BOOL, offsetof(cfg, verbose), 0, 0, "false", NULL, "log more", NULL, 0},
    {"deny", RTC_CONF_LIST, offsetof(cfg, deny), 0, 0, "10.0.0.0/8", "CIDR", "deny peers",
     rtc_conf_check_cidr, 0},
    {"secret", RTC_CONF_STR, offsetof(cfg, secret), 0, 0, "default-secret-value", "S",
     "shared secret", check_secret, RTC_CONF_SECRET},
    {"name", RTC_CONF_STR, offsetof(cfg, name), 0, 8, NULL, "NAME", "short name", NULL, 0},
    RTC_CONF_END,
};

static char err[512];
static char path[64];

static int load(cfg *c, int argc, const char *const *argv)
{
    memset(c, 0, sizeof *c);
    err[0] = '\0';
    return rtc_conf_load(specs, c, argc, (char *const *)argv, err, sizeof err);
}

static void write_file(const char *text)
{
    int fd;
    strcpy(path, "/tmp/test_rtc_conf.XXXXXX");
    fd = mkstemp(path);
    if (fd >= 0) {
        if (write(fd, text, strlen(text)) < 0)
            printf("# write failed\n");
        close(fd);
    }
}

static void defaults_and_flags(void)
{
    cfg c;
    const char *a0[] = {"prog"};
    const char *a1[] = {"prog", "--workers", "4", "--verbose", "--listen=[::1]:5349",
                        "--name", "relay1"};
    const char *a2[] = {"prog", "--workers=5", "--verbose=false", "--verbose=yes", "--verbose=off"};

    ok(load(&c, 1, a0) == 0, "no arguments: defaults load");
    ok(c.listen && strcmp(c.listen, "0.0.0.0:3478") == 0 && c.workers == 2 && !c.verbose &&
           c.deny.n == 1 && strcmp(c.deny.v[0], "10.0.0.0/8") == 0 && c.name == NULL,
       "defaults are the table's");
    rtc_conf_dispose(specs, &c);
    ok(c.listen == NULL && c.deny.n == 0 && c.deny.v == NULL && c.secret == NULL,
       "dispose frees and zeroes");
    ok(load(&c, 7, a1) == 0 && c.workers == 4 && c.verbose && strcmp(c.listen, "[::1]:5349") == 0 &&
           strcmp(c.name, "relay1") == 0,
       "--key value, --key=value, bare bool flag");
    rtc_conf_dispose(specs, &c);
    ok(load(&c, 5, a2) == 0 && c.workers == 5 && !c.verbose, "later flag wins; bool words");
    rtc_conf_dispose(specs, &c);
}

static void files(void)
{
    cfg c;
    write_file("# a comment line\n"
               "\n"
               "   workers = 3   # inline comment\n"
               "name = \"a b#c\"\n"
               "listen=127.0.0.1:3478\n"
               "deny = 192.168.0.0/16\n"
               "deny = fc00::/7 # second entry\n"
               "verbose = on\n"
               "secret = hash#inside\n");
    {
        const char *a[] = {"prog", "--config", path};
        ok(load(&c, 3, a) == 0, "config file loads");
        is_int(c.workers, 3, "value before an inline comment");
        ok(c.name && strcmp(c.name, "a b#c") == 0, "quoted value keeps spaces and '#'");
        ok(strcmp(c.listen, "127.0.0.1:3478") == 0, "key=value without spaces");
        ok(c.deny.n == 2 && strcmp(c.deny.v[0], "192.168.0.0/16") == 0 &&
               strcmp(c.deny.v[1], "fc00::/7") == 0,
           "file list replaces the default list");
        ok(c.verbose, "bool 'on'");
        ok(c.secret && strcmp(c.secret, "hash#inside") == 0, "'#' without whitespace stays in the value");
        rtc_conf_dispose(specs, &c);
    }
    {
        const char *a[] = {"prog", "--workers", "7", "--config", path, "--deny", "100.64.0.0/10"};
        ok(load(&c, 7, a) == 0 && c.workers == 7, "flag before --config still wins over the file");
        ok(c.deny.n == 1 && strcmp(c.deny.v[0], "100.64.0.0/10") == 0,
           "flag list replaces the file's list");
        ok(strcmp(c.listen, "127.0.0.1:3478") == 0, "file value kept where no flag");
        rtc_conf_dispose(specs, &c);
    }
    {
        const char *a[] = {"prog", "--config=" , "x"};
        char p2[80];
        snprintf(p2, sizeof p2, "--config=%s", path);
        a[1] = p2;
        ok(load(&c, 2, a) == 0 && c.workers == 3, "--config=FILE form");
        rtc_conf_dispose(specs, &c);
    }
    memset(&c, 0, sizeof c);
    ok(rtc_conf_load_file(specs, &c, path, err, sizeof err) == 0 && c.workers == 3,
       "rtc_conf_load_file");
    rtc_conf_dispose(specs, &c);
    unlink(path);

    write_file("workers = 3\nbogus_key = 1\n");
    {
        const char *a[] = {"prog", "--config", path};
        ok(load(&c, 3, a) == RTC_EMSG && strstr(err, "bogus_key") && strstr(err, ":2"),
           "unknown key in file: error names the key and the line");
        printf("# %s\n", err);
        ok(c.listen == NULL && c.deny.v == NULL, "on error the settings are disposed");
    }
    unlink(path);
    write_file("workers 3\n");
    {
        const char *a[] = {"prog", "--config", path};
        ok(load(&c, 3, a) == RTC_EMSG && strstr(err, "key = value"), "line without '=' rejected");
    }
    unlink(path);
    write_file("workers = 0\n");
    {
        const char *a[] = {"prog", "--config", path};
        ok(load(&c, 3, a) == RTC_EMSG && strstr(err, "workers") && strstr(err, "out of range"),
           "out-of-range value in file names the key");
    }
    unlink(path);
    {
        const char *a[] = {"prog", "--config", "/nonexistent/tsunagu.conf"};
        ok(load(&c, 3, a) == RTC_EMSG && strstr(err, "/nonexistent/tsunagu.conf"),
           "missing config file: error names the path");
    }
}

static void errors(void)
{
    cfg c;
    struct {
        int argc;
        const char *argv[4];
        const char *must[2];
        const char *what;
    } t[] = {
        {2, {"prog", "--bogus"}, {"--bogus", NULL}, "unknown flag named"},
        {2, {"prog", "--bogus=1"}, {"--bogus", NULL}, "unknown --flag=value named"},
        {3, {"prog", "--workers", "65"}, {"workers", "out of range"}, "int above max"},
        {3, {"prog", "--workers", "0"}, {"workers", "out of range"}, "int below min"},
        {3, {"prog", "--workers", "abc"}, {"workers", "not an integer"}, "not a number"},
        {3, {"prog", "--workers", "5x"}, {"workers", "not an integer"}, "trailing junk"},
        {3, {"prog", "--workers", " 5"}, {"workers", "not an integer"}, "leading space"},
        {3, {"prog", "--workers", ""}, {"workers", "not an integer"}, "empty int"},
        {3, {"prog", "--workers", "99999999999999999999"}, {"workers", NULL}, "int overflow"},
        {2, {"prog", "--verbose=maybe"}, {"verbose", "boolean"}, "bad bool"},
        {2, {"prog", "--workers"}, {"workers", "missing value"}, "missing value"},
        {2, {"prog", "--config"}, {"config", "missing value"}, "--config without file"},
        {3, {"prog", "--listen", "1.2.3.4"}, {"listen", "PORT"}, "validator rejects"},
        {3, {"prog", "--deny", "10.0.0.0/33"}, {"deny", NULL}, "list validator rejects"},
        {3, {"prog", "--name", "ninechars"}, {"name", "longer than 8"}, "string too long"},
        {2, {"prog", "positional"}, {"positional", NULL}, "positional argument rejected"},
        {2, {"prog", "--"}, {"--", NULL}, "bare -- rejected"},
    };

    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        int rc = load(&c, t[i].argc, t[i].argv);
        bool fine = rc == RTC_EMSG;
        for (int k = 0; k < 2; k++)
            if (t[i].must[k] && !strstr(err, t[i].must[k]))
                fine = false;
        if (!fine)
            printf("# rc=%d err='%s'\n", rc, err);
        ok(fine, t[i].what);
        if (rc == 0)
            rtc_conf_dispose(specs, &c);
    }
    {
        const char *a[] = {"prog", "--secret", "abc"};
        ok(load(&c, 3, a) == RTC_EMSG && strstr(err, "secret") && !strstr(err, "abc") &&
               strstr(err, "(secret)"),
           "rejected secret value is not echoed");
    }
    {
        const char *a[] = {"prog", "--workers", "65", "--help"};
        ok(load(&c, 4, a) == RTC_CONF_HELP, "--help returns RTC_CONF_HELP (before any error)");
        a[3] = "-h";
        ok(load(&c, 4, a) == RTC_CONF_HELP, "-h too");
        a[3] = "--version";
        ok(load(&c, 4, a) == RTC_CONF_VERSION, "--version returns RTC_CONF_VERSION (before any "
                                               "error)");
    }
    {
        const char *a[] = {"prog", "--version", "--help"};
        ok(load(&c, 3, a) == RTC_CONF_HELP, "--help wins over --version");
    }
}

/* Addresses this host must have: a bind test with port 0. 127.0.0.1 and
 * wildcards are everywhere; 203.0.113.254 (TEST-NET-3, RFC 5737: for
 * documentation, never configured on a real host) is nowhere. */
static void local_addresses(void)
{
    char why[256];
    ok(!rtc_conf_check_local_hostport("127.0.0.1:3478", why, sizeof why), "127.0.0.1 is local");
    ok(!rtc_conf_check_local_hostport("0.0.0.0:3478", why, sizeof why), "0.0.0.0 passes");
    ok(!rtc_conf_check_local_hostport("[::]:3478", why, sizeof why), ":: passes");
    ok(!rtc_conf_check_local_ip("127.0.0.2", why, sizeof why), "127/8 is all local");
    ok(rtc_conf_check_local_hostport("1.2.3:99", why, sizeof why) && strstr(why, "expected"),
       "a malformed value is still a shape error");
    ok(rtc_conf_check_local_ip("not-an-ip", why, sizeof why) && strstr(why, "expected"),
       "a malformed IP is a shape error");
    ok(rtc_conf_check_local_ip("203.0.113.254", why, sizeof why) &&
           !strcmp(why, "not an address of this host (ip -br addr lists them)"),
       "203.0.113.254 is not here: the reason says so");
    ok(rtc_conf_check_local_hostport("[fe80::1]:3478", why, sizeof why),
       "IPv6 link-local without a scope is refused");
}

static void usage(void)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) {
        ok(0, "open_memstream");
        return;
    }
    rtc_conf_usage(specs, f);
    fclose(f);
    ok(strstr(text, "--workers N") && strstr(text, "[default: 2]"), "usage shows flag, metavar, default");
    ok(strstr(text, "--deny CIDR") && strstr(text, "(repeatable)"), "lists are marked repeatable");
    ok(strstr(text, "[default: (secret)]") && !strstr(text, "default-secret-value"),
       "secret default not printed");
    ok(strstr(text, "--verbose ") && !strstr(text, "--verbose V"), "bool flag takes no value");
    ok(strstr(text, "--config FILE") && strstr(text, "--help"), "--config and --help listed");
    free(text);
}

/* The same settings with the restart-required flag on some of them: a
 * reload reports exactly those that changed, by content, in table order. */
static const rtc_conf_spec restart_specs[] = {
    {"listen", RTC_CONF_STR, offsetof(cfg, listen), 0, 0, "0.0.0.0:3478", "ADDR:PORT",
     "where to listen", rtc_conf_check_hostport, RTC_CONF_RESTART},
    {"workers", RTC_CONF_INT, offsetof(cfg, workers), 1, 64, "2", "N", "worker threads", NULL,
     RTC_CONF_RESTART},
    {"verbose", RTC_CONF_BOOL, offsetof(cfg, verbose), 0, 0, "false", NULL, "log more", NULL,
     RTC_CONF_RESTART},
    {"deny", RTC_CONF_LIST, offsetof(cfg, deny), 0, 0, "10.0.0.0/8", "CIDR", "deny peers",
     rtc_conf_check_cidr, RTC_CONF_RESTART},
    {"secret", RTC_CONF_STR, offsetof(cfg, secret), 0, 0, "default-secret-value", "S",
     "shared secret", check_secret, RTC_CONF_SECRET},
    {"name", RTC_CONF_STR, offsetof(cfg, name), 0, 8, NULL, "NAME", "short name", NULL,
     RTC_CONF_RESTART},
    RTC_CONF_END,
};

static int load_r(cfg *c, int argc, const char *const *argv)
{
    memset(c, 0, sizeof *c);
    return rtc_conf_load(restart_specs, c, argc, (char *const *)argv, err, sizeof err);
}

static void restart_keys(void)
{
    cfg a, b;
    const char *keys[8];
    static const char *const base[] = {"prog", "--secret", "aaaa"};
    static const char *const moved[] = {"prog", "--secret", "bbbb", "--listen",
                                        "127.0.0.1:9", "--deny", "10.0.0.0/8",
                                        "--name", "x"};
    static const char *const reordered[] = {"prog", "--deny", "192.168.0.0/16", "--deny",
                                            "10.0.0.0/8"};
    static const char *const both[] = {"prog", "--deny", "10.0.0.0/8", "--deny",
                                       "192.168.0.0/16"};

    ok(load_r(&a, 3, base) == 0 && load_r(&b, 3, base) == 0, "two loads of the same settings");
    is_int(rtc_conf_restart_changed(restart_specs, &a, &b, keys, 8), 0, "nothing changed");
    ok(rtc_conf_value_equal(&restart_specs[0], &a, &b), "equal strings by content");
    rtc_conf_dispose(restart_specs, &b);

    ok(load_r(&b, 9, moved) == 0, "load with listen, name and secret changed");
    is_int(rtc_conf_restart_changed(restart_specs, &a, &b, keys, 8), 2,
           "two restart-required keys changed (secret is reloadable; deny is the same)");
    ok(!strcmp(keys[0], "listen") && !strcmp(keys[1], "name"), "named in table order");
    is_int(rtc_conf_restart_changed(restart_specs, &a, &b, keys, 1), 2,
           "the count is whole even when keys[] is short");
    is_int(rtc_conf_restart_changed(restart_specs, &a, &b, NULL, 0), 2, "count only");
    ok(!rtc_conf_value_equal(&restart_specs[5], &a, &b), "unset (NULL) differs from set");
    is_int(rtc_conf_restart_changed(specs, &a, &b, keys, 8), 0,
           "a table without the flag reports nothing");
    rtc_conf_dispose(restart_specs, &b);

    rtc_conf_dispose(restart_specs, &a);
    ok(load_r(&a, 5, reordered) == 0 && load_r(&b, 5, both) == 0, "two lists, other order");
    is_int(rtc_conf_restart_changed(restart_specs, &a, &b, keys, 8), 1,
           "a list in another order is a change");
    ok(!strcmp(keys[0], "deny"), "named deny");
    rtc_conf_dispose(restart_specs, &a);
    rtc_conf_dispose(restart_specs, &b);
}

int main(void)
{
    defaults_and_flags();
    files();
    errors();
    usage();
    restart_keys();
    local_addresses();
    return done_testing();
}
