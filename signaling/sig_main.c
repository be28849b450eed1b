/* sig_main.c - tsunagu-signal entry point: the `token` subcommand, settings
 * (sig_conf.c), logging, then sig_ws_run. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rtc_clock.h"
#include "rtc_err.h"
#include "rtc_log.h"
#include "rtc_version.h"
#include "sig_conf.h"
#include "sig_token.h"

static int token_cmd(int argc, char **argv)
{
    const char *secret = NULL, *room = NULL, *user = NULL, *name = NULL;
    long long ttl = 3600;
    char *tok;

    for (int i = 2; i < argc; i += 2) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            printf("usage: tsunagu-signal token --secret S --room R --user U [--name N] "
                   "[--ttl SECONDS (3600)]\nprints an HS256 access token for --token-secret S\n");
            return 0;
        }
        if (!v) {
            fprintf(stderr, "token: %s: missing value\n", a);
            return 2;
        }
        if (!strcmp(a, "--secret"))
            secret = v;
        else if (!strcmp(a, "--room"))
            room = v;
        else if (!strcmp(a, "--user"))
            user = v;
        else if (!strcmp(a, "--name"))
            name = v;
        else if (!strcmp(a, "--ttl")) {
            char *end;
            ttl = strtoll(v, &end, 10);
            if (*end || ttl < -86400LL * 365 || ttl > 86400LL * 3650) {
                fprintf(stderr, "token: --ttl: '%s' is not a number of seconds\n", v);
                return 2;
            }
        } else {
            fprintf(stderr, "token: unknown flag '%s'\n", a);
            return 2;
        }
    }
    if (!secret || !*secret || !room || !user) {
        fprintf(stderr, "token: --secret, --room and --user are required\n");
        return 2;
    }
    tok = sig_token_mint(secret, strlen(secret), room, user, name,
                         (uint64_t)((long long)rtc_clock_wall_s() + ttl));
    if (!tok) {
        fprintf(stderr, "token: out of memory\n");
        return 1;
    }
    printf("%s\n", tok);
    free(tok);
    return 0;
}

int main(int argc, char **argv)
{
    sig_conf conf;
    char err[512];
    rtc_log_level lvl;
    rtc_log_format fmt;
    int rc;

    if (argc > 1 && !strcmp(argv[1], "token"))
        return token_cmd(argc, argv);
    rc = sig_conf_load(&conf, argc, argv, err, sizeof err);
    if (rc == RTC_CONF_HELP) {
        printf("usage: tsunagu-signal [flags]\n       tsunagu-signal token --help\n");
        rtc_conf_usage(sig_conf_specs, stdout);
        return 0;
    }
    if (rc == RTC_CONF_VERSION) {
        rtc_version_print(stdout, "tsunagu-signal");
        return 0;
    }
    if (rc) {
        fprintf(stderr, "tsunagu-signal: %s\n", err);
        return 2;
    }
    rtc_log_parse_level(conf.log_level, &lvl);
    rtc_log_parse_format(conf.log_format, &fmt);
    rtc_log_setup(lvl, fmt, "tsunagu-signal");
    return sig_ws_run(&conf, argc, argv);
}
