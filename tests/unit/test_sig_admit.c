/* test_sig_admit.c - the admission policy of tsunagu-signal (sig_admit.h):
 * Origin matching (case, default and explicit ports, trailing slash, IPv6
 * literals, garbage, over-long and embedded-NUL values), the config
 * validator, reconfiguration, connections per IPv4 address / IPv6 /64 with
 * IPv4-mapped clients, exact counts over many add/del cycles, memory that
 * follows the open connections, the metrics text and log sanitizing. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rtc_err.h"
#include "sig_admit.h"
#include "tap.h"

static rtc_addr ip(const char *s)
{
    rtc_addr a;
    memset(&a, 0, sizeof a);
    if (rtc_addr_parse_ip(s, &a))
        printf("# bad test address %s\n", s);
    return a;
}

static const rtc_addr *v4a(void)
{
    static rtc_addr a;
    a = ip("192.0.2.1");
    return &a;
}

/* Origin check alone: the per-address cap is off in these cases. */
static sig_admit_verdict org(sig_admit *a, const char *o)
{
    return sig_admit_check(a, o, o ? strlen(o) : 0, v4a());
}

static void origins(void)
{
    sig_admit *a = sig_admit_new(1);
    const char *one[] = {"https://app.example.com"};
    const char *two[] = {"http://127.0.0.1:8080/", "https://[::1]:8443"};
    const char *star[] = {"https://app.example.com", "*"};
    const char *bad[] = {"https://ok.example", "https://x/path"};
    char longo[400];

    /* nothing configured: any Origin, or none */
    is_int(org(a, NULL), SIG_ADMIT_OK, "no list: missing Origin accepted");
    is_int(org(a, "https://evil.example"), SIG_ADMIT_OK, "no list: any Origin accepted");
    is_int(org(a, "\x01garbage"), SIG_ADMIT_OK, "no list: garbage accepted");
    ok(!sig_admit_origin_enforced(a), "no list: not enforced");

    is_int(sig_admit_configure(a, one, 1, 0), 0, "configure one origin");
    ok(sig_admit_origin_enforced(a), "enforced");
    is_int(org(a, "https://app.example.com"), SIG_ADMIT_OK, "exact match");
    is_int(org(a, "https://APP.Example.COM"), SIG_ADMIT_OK, "host is case-insensitive");
    is_int(org(a, "HTTPS://app.example.com"), SIG_ADMIT_OK, "scheme is case-insensitive");
    is_int(org(a, "https://app.example.com:443"), SIG_ADMIT_OK, "default port equals no port");
    is_int(org(a, "https://app.example.com:8443"), SIG_ADMIT_ORIGIN, "other port refused");
    is_int(org(a, "http://app.example.com"), SIG_ADMIT_ORIGIN, "other scheme refused");
    is_int(org(a, "http://app.example.com:443"), SIG_ADMIT_ORIGIN, "http on 443 is not https");
    is_int(org(a, "https://app.example.com/"), SIG_ADMIT_ORIGIN,
           "trailing slash in the header refused (browsers never send one)");
    is_int(org(a, "https://app.example.com/x"), SIG_ADMIT_ORIGIN, "path refused");
    is_int(org(a, "https://app.example.com.evil.example"), SIG_ADMIT_ORIGIN, "suffix refused");
    is_int(org(a, "https://evil-app.example.com"), SIG_ADMIT_ORIGIN, "other host refused");
    is_int(org(a, "https://app.example.co"), SIG_ADMIT_ORIGIN, "prefix refused");
    is_int(org(a, "https://user@app.example.com"), SIG_ADMIT_ORIGIN, "userinfo refused");
    is_int(org(a, " https://app.example.com"), SIG_ADMIT_ORIGIN, "leading space refused");
    is_int(org(a, "https://app.example.com,https://app.example.com"), SIG_ADMIT_ORIGIN,
           "two Origin headers (joined with a comma) refused");
    is_int(org(a, NULL), SIG_ADMIT_ORIGIN, "missing Origin refused");
    is_int(org(a, ""), SIG_ADMIT_ORIGIN, "empty Origin refused");
    is_int(org(a, "null"), SIG_ADMIT_ORIGIN, "opaque origin 'null' refused");
    is_int(org(a, "https://"), SIG_ADMIT_ORIGIN, "no host refused");
    is_int(org(a, "https:/app.example.com"), SIG_ADMIT_ORIGIN, "one slash refused");
    is_int(org(a, "https://app.example.com:"), SIG_ADMIT_ORIGIN, "empty port refused");
    is_int(org(a, "https://app.example.com:65536"), SIG_ADMIT_ORIGIN, "port > 65535 refused");
    is_int(org(a, "https://app.example.com:0"), SIG_ADMIT_ORIGIN, "port 0 refused");
    is_int(org(a, "https://app.example.com:44a"), SIG_ADMIT_ORIGIN, "non-digit port refused");
    is_int(org(a, "https://app.example.com:000443"), SIG_ADMIT_ORIGIN,
           "six port digits refused");
    is_int(org(a, "https://app.\xc3\xa9xample.com"), SIG_ADMIT_ORIGIN, "non-ASCII refused");
    is_int(sig_admit_check(a, "https://app.example.com\0x", 25, v4a()), SIG_ADMIT_ORIGIN,
           "embedded NUL refused");
    is_int(sig_admit_check(a, "https://app.example.comX", 23, v4a()), SIG_ADMIT_OK,
           "only len bytes are read");
    memset(longo, 'a', sizeof longo);
    memcpy(longo, "https://", 8);
    is_int(sig_admit_check(a, longo, sizeof longo, v4a()), SIG_ADMIT_ORIGIN, "over-long refused");
    is_int(sig_admit_check(a, longo, SIG_ADMIT_ORIGIN_MAX, v4a()), SIG_ADMIT_ORIGIN,
           "host longer than 253 refused");

    is_int(sig_admit_configure(a, two, 2, 0), 0, "reconfigure: trailing slash in config ok");
    is_int(org(a, "http://127.0.0.1:8080"), SIG_ADMIT_OK, "config slash stripped");
    is_int(org(a, "http://127.0.0.1"), SIG_ADMIT_ORIGIN, "port missing refused");
    is_int(org(a, "http://127.0.0.1:80"), SIG_ADMIT_ORIGIN, "port 80 refused");
    is_int(org(a, "https://app.example.com"), SIG_ADMIT_ORIGIN, "old list replaced");
    is_int(org(a, "https://[::1]:8443"), SIG_ADMIT_OK, "IPv6 literal");
    is_int(org(a, "https://[::1]"), SIG_ADMIT_ORIGIN, "IPv6 literal, other port");
    is_int(org(a, "https://[::1:8443"), SIG_ADMIT_ORIGIN, "unclosed bracket refused");
    is_int(org(a, "https://[::g]:8443"), SIG_ADMIT_ORIGIN, "bad IPv6 character refused");

    is_int(sig_admit_configure(a, bad, 2, 0), RTC_EMSG, "a bad entry fails the whole list");
    is_int(org(a, "http://127.0.0.1:8080"), SIG_ADMIT_OK, "and the old policy stays");
    is_int(org(a, "https://ok.example"), SIG_ADMIT_ORIGIN, "no part of the bad list applied");

    is_int(sig_admit_configure(a, star, 2, 0), 0, "'*' with others");
    is_int(org(a, "https://anything.example"), SIG_ADMIT_OK, "'*' allows any origin");
    is_int(org(a, NULL), SIG_ADMIT_OK, "'*' allows a missing Origin");
    is_int(sig_admit_configure(a, NULL, 0, 0), 0, "empty list");
    ok(!sig_admit_origin_enforced(a), "empty list: not enforced");
    is_int(org(a, NULL), SIG_ADMIT_OK, "empty list: missing Origin accepted");
    sig_admit_free(a);
}

static void validator(void)
{
    char err[256];
    static const char *const good[] = {"*", "https://app.example.com", "https://app.example.com/",
                                       "http://127.0.0.1:8080", "https://[2001:db8::1]:443",
                                       "app+x-1.y://local_host", "HTTP://EXAMPLE.COM"};
    static const char *const badv[] = {"", "app.example.com", "https://", "https://a.b/path",
                                       "https://a.b//", "https://a.b:99999", "ftp//x",
                                       "https://a b", "1http://a", "**", "https://a.b?q"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        is_int(sig_admit_origin_check(good[i], err, sizeof err), 0, good[i]);
    for (size_t i = 0; i < sizeof badv / sizeof *badv; i++) {
        err[0] = '\0';
        is_int(sig_admit_origin_check(badv[i], err, sizeof err), RTC_EMSG, badv[i]);
        ok(strstr(err, "SCHEME://HOST") != NULL, "the error says what is expected");
    }
}

static void per_ip(void)
{
    sig_admit *a = sig_admit_new(42);
    const char *one[] = {"https://app.example.com"};
    rtc_addr x = ip("10.0.0.1"), y = ip("10.0.0.2"), mx = ip("::ffff:10.0.0.1");
    rtc_addr s1 = ip("2001:db8:1:2::1"), s2 = ip("2001:db8:1:2:ffff:ffff:ffff:9");
    rtc_addr s3 = ip("2001:db8:1:3::1"), unk;

    memset(&unk, 0, sizeof unk);
    is_int(sig_admit_configure(a, NULL, 0, 2), 0, "cap 2");
    is_int(sig_admit_check(a, NULL, 0, &x), SIG_ADMIT_OK, "first");
    is_int(sig_admit_ip_add(a, &x), 0, "add");
    is_int(sig_admit_check(a, NULL, 0, &x), SIG_ADMIT_OK, "second");
    is_int(sig_admit_ip_add(a, &x), 0, "add");
    is_int(sig_admit_check(a, NULL, 0, &x), SIG_ADMIT_PER_IP, "third refused");
    is_int(sig_admit_check(a, NULL, 0, &mx), SIG_ADMIT_PER_IP,
           "the same client as IPv4-mapped IPv6 refused too");
    is_int(sig_admit_check(a, NULL, 0, &y), SIG_ADMIT_OK, "another address is separate");
    is_int(sig_admit_ip_count(a, &x), 2, "count 2");
    sig_admit_ip_del(a, &mx);
    is_int(sig_admit_ip_count(a, &x), 1, "del through the mapped form");
    is_int(sig_admit_check(a, NULL, 0, &x), SIG_ADMIT_OK, "room again after one left");
    sig_admit_ip_del(a, &x);
    is_int(sig_admit_ip_entries(a), 0, "entry freed at zero");
    sig_admit_ip_del(a, &x);
    is_int(sig_admit_ip_count(a, &x), 0, "a del without add changes nothing");

    /* IPv6 by /64 */
    sig_admit_ip_add(a, &s1);
    sig_admit_ip_add(a, &s2);
    is_int(sig_admit_ip_entries(a), 1, "two addresses of one /64: one entry");
    is_int(sig_admit_check(a, NULL, 0, &s1), SIG_ADMIT_PER_IP, "the /64 is at the cap");
    is_int(sig_admit_check(a, NULL, 0, &s3), SIG_ADMIT_OK, "the next /64 is separate");
    sig_admit_ip_del(a, &s2);
    sig_admit_ip_del(a, &s1);
    is_int(sig_admit_ip_entries(a), 0, "freed");

    /* unknown address (getpeername failed): counted under one key */
    sig_admit_ip_add(a, &unk);
    sig_admit_ip_add(a, &unk);
    is_int(sig_admit_check(a, NULL, 0, &unk), SIG_ADMIT_PER_IP, "unknown addresses share a cap");
    sig_admit_ip_del(a, &unk);
    sig_admit_ip_del(a, &unk);

    /* the Origin verdict comes first */
    sig_admit_configure(a, one, 1, 1);
    sig_admit_ip_add(a, &x);
    is_int(sig_admit_check(a, "https://evil.example", 20, &x), SIG_ADMIT_ORIGIN,
           "bad origin at the cap: 403, not 429");
    is_int(sig_admit_check(a, "https://app.example.com", 23, &x), SIG_ADMIT_PER_IP,
           "good origin at the cap: 429");
    /* SIGHUP: counts survive a new policy */
    sig_admit_configure(a, one, 1, 3);
    is_int(sig_admit_check(a, "https://app.example.com", 23, &x), SIG_ADMIT_OK,
           "raised cap applies to open connections' count");
    sig_admit_configure(a, NULL, 0, 0);
    for (int i = 0; i < 100; i++)
        sig_admit_ip_add(a, &x);
    is_int(sig_admit_check(a, NULL, 0, &x), SIG_ADMIT_OK, "cap 0: no cap");
    is_int(sig_admit_ip_count(a, &x), 101, "but still counted (a later cap sees them)");
    for (int i = 0; i < 101; i++)
        sig_admit_ip_del(a, &x);
    is_int(sig_admit_ip_entries(a), 0, "all gone");
    sig_admit_free(a);
}

/* issue 14 item 9: the tight cap is on connections that have not joined;
 * joined ones (an office behind one NAT) count only against the total */
static void unjoined(void)
{
    sig_admit *a = sig_admit_new(7);
    rtc_addr x = ip("198.51.100.9"), y = ip("198.51.100.10");
    int n = 0;

    sig_admit_configure(a, NULL, 0, 4096);
    sig_admit_set_unjoined_cap(a, 64);
    for (int i = 0; i < 1000; i++) {
        if (sig_admit_check(a, NULL, 0, &x) != SIG_ADMIT_OK || sig_admit_ip_add(a, &x))
            break;
        sig_admit_ip_joined(a, &x, true);
        n++;
    }
    is_int(n, 1000, "1000 connections of one address that join: all admitted");
    n = 0;
    while (n < 200 && sig_admit_check(a, NULL, 0, &x) == SIG_ADMIT_OK && !sig_admit_ip_add(a, &x))
        n++;
    is_int(n, 64, "next to them, 64 that do not join, then ...");
    is_int(sig_admit_check(a, NULL, 0, &x), SIG_ADMIT_UNJOINED, "... refused (unjoined)");
    is_int(sig_admit_check(a, NULL, 0, &y), SIG_ADMIT_OK, "another address is not affected");
    is_int(sig_admit_ip_unjoined(a, &x), 64, "64 unjoined of 1064");
    sig_admit_ip_joined(a, &x, false); /* a joined one closes */
    sig_admit_ip_del(a, &x);
    is_int(sig_admit_check(a, NULL, 0, &x), SIG_ADMIT_UNJOINED,
           "a joined one closing frees no unjoined place");
    sig_admit_ip_del(a, &x); /* an unjoined one closes */
    is_int(sig_admit_check(a, NULL, 0, &x), SIG_ADMIT_OK, "an unjoined one closing does");
    sig_admit_ip_add(a, &x);
    is_int(sig_admit_check(a, NULL, 0, &x), SIG_ADMIT_UNJOINED, "taken again");
    sig_admit_ip_joined(a, &x, true);
    is_int(sig_admit_check(a, NULL, 0, &x), SIG_ADMIT_OK, "one joins: a place again");
    sig_admit_configure(a, NULL, 0, 1063);
    is_int(sig_admit_check(a, NULL, 0, &x), SIG_ADMIT_PER_IP, "the cap on all still holds");
    sig_admit_set_unjoined_cap(a, 0);
    sig_admit_configure(a, NULL, 0, 0);
    is_int(sig_admit_check(a, NULL, 0, &x), SIG_ADMIT_OK, "both 0: no cap");
    for (int i = 0; i < 1062; i++)
        sig_admit_ip_del(a, &x);
    is_int(sig_admit_ip_count(a, &x), 1, "one left");
    sig_admit_ip_joined(a, &x, true);
    sig_admit_ip_joined(a, &x, true); /* more than it holds: ignored */
    is_int(sig_admit_ip_unjoined(a, &x), 0, "never more joined than counted");
    sig_admit_ip_del(a, &x);
    is_int(sig_admit_ip_entries(a), 0, "all gone");
    sig_admit_free(a);
}

/* Many addresses, interleaved: exact counts, growth and shrink of the
 * table, nothing left behind (ASan checks the memory). */
static void bounds(void)
{
    enum { N = 20000 };
    sig_admit *a = sig_admit_new(7);
    rtc_addr k;
    bool exact = true;

    memset(&k, 0, sizeof k);
    k.family = AF_INET6;
    k.ip[0] = 0x20;
    for (int round = 0; round < 3; round++)
        for (uint32_t i = 0; i < N; i++) {
            k.ip[4] = (uint8_t)(i >> 16);
            k.ip[5] = (uint8_t)(i >> 8);
            k.ip[6] = (uint8_t)i;
            k.ip[15] = (uint8_t)round; /* same /64 each round */
            if (sig_admit_ip_add(a, &k))
                exact = false;
        }
    is_int(sig_admit_ip_entries(a), N, "20000 /64s, three connections each");
    for (uint32_t i = 0; i < N; i += 997) {
        k.ip[4] = (uint8_t)(i >> 16);
        k.ip[5] = (uint8_t)(i >> 8);
        k.ip[6] = (uint8_t)i;
        exact &= sig_admit_ip_count(a, &k) == 3;
    }
    ok(exact, "every sampled count is 3");
    for (int round = 0; round < 3; round++)
        for (uint32_t i = 0; i < N; i++) {
            k.ip[4] = (uint8_t)(i >> 16);
            k.ip[5] = (uint8_t)(i >> 8);
            k.ip[6] = (uint8_t)i;
            sig_admit_ip_del(a, &k);
            if (round == 1 && i == N / 2)
                exact &= sig_admit_ip_entries(a) == N;
        }
    ok(exact, "entries stay while counts are above zero");
    is_int(sig_admit_ip_entries(a), 0, "every entry freed after the last close");
    /* and the table works again after shrinking */
    sig_admit_ip_add(a, &k);
    is_int(sig_admit_ip_count(a, &k), 1, "usable after shrink");
    sig_admit_ip_del(a, &k);
    sig_admit_free(a);
    sig_admit_free(NULL);
}

static void metrics_and_log(void)
{
    sig_admit *a = sig_admit_new(3);
    const char *one[] = {"https://app.example.com"};
    rtc_addr x = ip("10.0.0.9");
    rtc_buf b;
    char out[SIG_ADMIT_LOG_MAX], big[500];

    sig_admit_configure(a, one, 1, 1);
    sig_admit_check(a, NULL, 0, &x);
    sig_admit_check(a, "https://e.example", 17, &x);
    sig_admit_ip_add(a, &x);
    sig_admit_check(a, "https://app.example.com", 23, &x);
    rtc_buf_init(&b);
    sig_admit_metrics(a, &b);
    rtc_buf_append(&b, "", 1);
    ok(!b.oom && strstr(b.p, "tsunagu_signal_rejected_total{reason=\"origin\"} 2\n"),
       "origin refusals counted");
    ok(strstr(b.p, "tsunagu_signal_rejected_total{reason=\"per-ip\"} 1\n"),
       "per-ip refusals counted");
    ok(strstr(b.p, "tsunagu_signal_client_addresses 1\n"), "addresses gauge");
    ok(strstr(b.p, "# TYPE tsunagu_signal_rejected_total counter"), "counter type");
    rtc_buf_dispose(&b);
    sig_admit_ip_del(a, &x);
    sig_admit_free(a);

    sig_admit_sanitize("https://ok.example", 18, out);
    ok(!strcmp(out, "https://ok.example"), "plain origin kept");
    sig_admit_sanitize("a\"b\\c\nd\x1b[31m\xff", 13, out);
    ok(!strcmp(out, "a?b?c?d?[31m?"), "quotes, backslash, controls and high bytes replaced");
    sig_admit_sanitize("ab\0cd", 5, out);
    ok(!strcmp(out, "ab?cd"), "NUL replaced, length respected");
    memset(big, 'x', sizeof big);
    sig_admit_sanitize(big, sizeof big, out);
    is_int(strlen(out), SIG_ADMIT_LOG_MAX - 1, "truncated to the buffer");
    ok(!strcmp(out + SIG_ADMIT_LOG_MAX - 4, "..."), "with an ellipsis");
    sig_admit_sanitize(big, SIG_ADMIT_LOG_MAX - 4, out);
    is_int(strlen(out), SIG_ADMIT_LOG_MAX - 4, "exactly the limit: no ellipsis");
}

int main(void)
{
    origins();
    validator();
    per_ip();
    unjoined();
    bounds();
    metrics_and_log();
    return done_testing();
}
