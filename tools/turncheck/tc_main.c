/* tc_main.c - tsunagu-turncheck: flags, credentials, one check per URL.
 *
 * A command-line client with positional URLs, so its flags go through
 * getopt_long rather than the daemons' rtc_conf table (which has no
 * positional arguments and reads config files this tool does not have).
 * Exit status: 0 when every step of every URL passed, 1 when a check failed,
 * 2 on bad usage. */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rtc_clock.h"
#include "rtc_version.h"
#include "tc_check.h"
#include "tc_turn.h"

#define TC_MAX_URLS 16

static const char usage[] =
    "usage: tsunagu-turncheck URL... (--user NAME:PASS | --secret S [--ttl SEC])\n"
    "         [--realm R] [--expect-ip ADDR] [--peer-ip ADDR] [--ca FILE | --insecure]\n"
    "         [--timeout-ms N] [--json]\n"
    "  URL          turn:HOST[:PORT][?transport=udp|tcp] or turns:HOST[:PORT] (RFC 7065);\n"
    "               one check per URL\n"
    "  --user       static long-term credentials\n"
    "  --secret     TURN REST shared secret: the username is \"EXPIRY:turncheck\"\n"
    "  --ttl        REST username lifetime in seconds (default 600)\n"
    "  --realm      fail unless the server's 401 names this realm\n"
    "  --expect-ip  fail unless the relayed address is this IP\n"
    "  --peer-ip    bind the local peer socket here (default: this host's address\n"
    "               towards the server); the relay must be allowed to relay to it\n"
    "  --ca         PEM CA bundle for turns: (default: the system's)\n"
    "  --insecure   do not check the TLS certificate\n"
    "  --timeout-ms bound of every wait (default 3000)\n"
    "  --json       one JSON object per step instead of text\n"
    "Each step prints \"ok   step: detail\" or \"FAIL step: cause\" (docs/turncheck.md).\n"
    "Exit status: 0 all passed, 1 a check failed, 2 bad usage.\n";

__attribute__((format(printf, 1, 2))) static int bad(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "tsunagu-turncheck: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n%s", usage);
    return 2;
}

static bool parse_uint(const char *s, unsigned long lo, unsigned long hi, unsigned long *out)
{
    char *end;
    unsigned long v = strtoul(s, &end, 10);
    if (!*s || *end || *s == '-' || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"user", required_argument, 0, 'u'},       {"secret", required_argument, 0, 's'},
        {"ttl", required_argument, 0, 't'},        {"realm", required_argument, 0, 'r'},
        {"expect-ip", required_argument, 0, 'e'},  {"peer-ip", required_argument, 0, 'p'},
        {"ca", required_argument, 0, 'c'},         {"insecure", no_argument, 0, 'k'},
        {"timeout-ms", required_argument, 0, 'T'}, {"json", no_argument, 0, 'j'},
        {"help", no_argument, 0, 'h'},             {"version", no_argument, 0, 'V'},
        {0, 0, 0, 0}};
    const char *user_pass = NULL, *secret = NULL, *ca = NULL;
    unsigned long ttl = 600, timeout = 3000;
    bool insecure = false, any_tls = false, ok = true;
    rtc_addr expect, peer;
    tc_check_params p = {.out = stdout};
    tc_url urls[TC_MAX_URLS];
    char user[128], pass[128], why[300];
    int c, n_urls = 0;

    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'u':
            user_pass = optarg;
            break;
        case 's':
            secret = optarg;
            break;
        case 't':
            if (!parse_uint(optarg, 1, 86400 * 365, &ttl))
                return bad("--ttl: '%s' is not a number of seconds (1..31536000)", optarg);
            break;
        case 'r':
            p.realm = optarg;
            break;
        case 'e':
            if (rtc_addr_parse_ip(optarg, &expect))
                return bad("--expect-ip: '%s' is not an IP address", optarg);
            p.expect = &expect;
            break;
        case 'p':
            if (rtc_addr_parse_ip(optarg, &peer))
                return bad("--peer-ip: '%s' is not an IP address", optarg);
            p.peer_ip = &peer;
            break;
        case 'c':
            ca = optarg;
            break;
        case 'k':
            insecure = true;
            break;
        case 'T':
            if (!parse_uint(optarg, 1, 600000, &timeout))
                return bad("--timeout-ms: '%s' is not a number of ms (1..600000)", optarg);
            break;
        case 'j':
            p.json = true;
            break;
        case 'h':
            fputs(usage, stdout);
            return 0;
        case 'V':
            rtc_version_print(stdout, "tsunagu-turncheck");
            return 0;
        default:
            fputs(usage, stderr);
            return 2;
        }
    }
    for (int i = optind; i < argc; i++) {
        if (n_urls == TC_MAX_URLS)
            return bad("at most %d URLs", TC_MAX_URLS);
        if (tc_url_parse(argv[i], &urls[n_urls], why, sizeof why))
            return bad("%s", why);
        any_tls |= urls[n_urls++].proto == TC_TLS;
    }
    if (!n_urls)
        return bad("%s", "no TURN URL given");
    if (!user_pass == !secret)
        return bad("%s", "give exactly one of --user NAME:PASS and --secret S");
    if (ca && insecure)
        return bad("%s", "--ca and --insecure contradict each other");
    if (user_pass) {
        const char *colon = strchr(user_pass, ':');
        if (!colon || colon == user_pass || (size_t)(colon - user_pass) >= sizeof user ||
            strlen(colon + 1) >= sizeof pass)
            return bad("--user: '%s' is not NAME:PASS", user_pass);
        memcpy(user, user_pass, (size_t)(colon - user_pass));
        user[colon - user_pass] = '\0';
        strcpy(pass, colon + 1);
    } else if (!*secret || tc_rest_credentials(secret, rtc_clock_wall_s() + ttl, "turncheck",
                                               user, sizeof user, pass, sizeof pass)) {
        return bad("%s", "--secret: empty, or cannot make credentials");
    }
    p.user = user;
    p.pass = pass;
    p.timeout_ms = (int)timeout;
    p.tls_verify = !insecure;
    if (any_tls) {
        rtc_tls_client_opts o = {.verify = !insecure, .ca_file = ca, .what = "ca",
                                 .flags = RTC_TLS_IGNORE_EOF};
        if (!(p.tls = rtc_tls_client_new(&o, why, sizeof why))) {
            fprintf(stderr, "tsunagu-turncheck: %s\n", why);
            return 2;
        }
    }
    for (int i = 0; i < n_urls; i++)
        ok &= tc_check_url(&p, &urls[i]);
    rtc_tls_ctx_free(p.tls);
    explicit_bzero(pass, sizeof pass);
    return ok ? 0 : 1;
}
