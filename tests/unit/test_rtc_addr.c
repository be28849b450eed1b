/* test_rtc_addr.c - address parsing/formatting, CIDR, and the peer policy
 * (RFC 8656 s.21, CVE-2020-26262): every default-denied range, the
 * IPv4-in-IPv6 disguises of those ranges, explicit allows over denies, and
 * the relay's own address open only inside the relayed-port range; the
 * scope of an address (public, private, link-local, loopback, wildcard) the
 * relay's warnings use, and the bind test of an address this host has
 * (203.0.113.254, TEST-NET-3, is on no real host). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "rtc_addr.h"
#include "rtc_err.h"
#include "tap.h"

static rtc_addr ip(const char *s, uint16_t port)
{
    rtc_addr a;
    if (rtc_addr_parse_ip(s, &a))
        memset(&a, 0, sizeof a);
    a.port = port;
    return a;
}

static void parsing(void)
{
    static const char *const good[] = {"1.2.3.4:3478", "0.0.0.0:0", "255.255.255.255:65535",
                                       "[::1]:3478", "[2001:db8::1]:1", "[::ffff:1.2.3.4]:5"};
    static const char *const bad[] = {"::1", "1.2.3.4", "1.2.3.4:", "1.2.3.4:65536", "1.2.3.4:-1",
                                      "1.2.3.4:+5", "1.2.3.4:0x10", "1.2.3.4:5 ", " 1.2.3.4:5",
                                      "[1.2.3.4]:5", "[::1]", "[::1]:", "[]:5", "[::1]5",
                                      "256.1.1.1:5", "1.2.3:5", "host.example:80", ":80", "",
                                      "[::1:80", "1.2.3.4:99999999999999999999", "[::1]:3478x"};
    rtc_addr a;
    char out[RTC_ADDR_STRLEN];
    size_t rt_bad = 0, rej_bad = 0;

    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        if (rtc_addr_parse_hostport(good[i], &a)) {
            rt_bad++;
            continue;
        }
        rtc_addr_format(&a, true, out);
        rt_bad += strcmp(out, good[i]) != 0;
    }
    is_int(rt_bad, 0, "host:port parse -> format round-trips (v4 and [v6])");
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (rtc_addr_parse_hostport(bad[i], &a) != RTC_EMSG) {
            printf("# accepted: '%s'\n", bad[i]);
            rej_bad++;
        }
    }
    is_int(rej_bad, 0, "malformed host:port strings all rejected");
    ok(rtc_addr_parse_hostport("localhost:80", &a) == 0 && a.family == AF_INET && a.ip[0] == 127 &&
           a.port == 80,
       "localhost means 127.0.0.1");
    ok(rtc_addr_parse_hostport("[2001:DB8::A]:443", &a) == 0 && a.family == AF_INET6 && a.port == 443,
       "uppercase v6");
    rtc_addr_format(&a, false, out);
    ok(strcmp(out, "2001:db8::a") == 0, "format without port, canonical v6");
    a = ip("10.0.0.1", 9);
    rtc_addr_format(&a, false, out);
    ok(strcmp(out, "10.0.0.1") == 0, "v4 without port");
    memset(&a, 0, sizeof a);
    rtc_addr_format(&a, true, out);
    ok(strcmp(out, "(none)") == 0, "unset address formats as (none)");
    is_int(rtc_addr_parse_ip("1.2.3.4:5", &a), RTC_EMSG, "parse_ip refuses a port");
    is_int(rtc_addr_parse_ip("", &a), RTC_EMSG, "parse_ip refuses empty");

    /* sockaddr, equality, hash */
    {
        struct sockaddr_storage ss;
        rtc_addr b, v6 = ip("2001:db8::1", 3478), v4 = ip("192.0.2.1", 3478);
        socklen_t sl = rtc_addr_to_sockaddr(&v6, &ss);
        rtc_addr_from_sockaddr(&b, (struct sockaddr *)&ss);
        ok(sl == sizeof(struct sockaddr_in6) && rtc_addr_equal(&b, &v6), "v6 sockaddr round trip");
        sl = rtc_addr_to_sockaddr(&v4, &ss);
        rtc_addr_from_sockaddr(&b, (struct sockaddr *)&ss);
        ok(sl == sizeof(struct sockaddr_in) && rtc_addr_equal(&b, &v4), "v4 sockaddr round trip");
        b = v4;
        b.port = 3479;
        ok(!rtc_addr_equal(&b, &v4) && rtc_addr_ip_equal(&b, &v4), "port matters to equal, not ip_equal");
        ok(rtc_addr_hash(&v4, 1) == rtc_addr_hash(&v4, 1) &&
               rtc_addr_hash(&v4, 1) != rtc_addr_hash(&b, 1) &&
               rtc_addr_hash(&v4, 1) != rtc_addr_hash(&v4, 2),
           "hash: stable, port-sensitive, keyed");
        b = ip("0.0.0.0", 1);
        ok(rtc_addr_is_any(&b) && !rtc_addr_is_any(&v4), "0.0.0.0 is any");
        b = ip("::", 1);
        ok(rtc_addr_is_any(&b) && !rtc_addr_is_any(&v6), ":: is any");
    }
}

static void cidr(void)
{
    static const char *const bad[] = {"/8", "10.0.0.0/33", "::/129", "10.0.0.0/", "10.0.0.0/8x",
                                      "10.0.0.0/-1", "foo/8", "10.0.0.0/ 8", "", "10.0.0.0/8/8",
                                      "10.0.0/8", "fc00::/7 "};
    rtc_cidr c;
    rtc_addr a;
    size_t rej = 0;

    ok(rtc_cidr_parse("10.0.0.0/8", &c) == 0 && c.prefix == 8, "10.0.0.0/8");
    a = ip("10.255.255.255", 0);
    ok(rtc_cidr_match(&c, &a), "matches 10.255.255.255");
    a = ip("11.0.0.0", 0);
    ok(!rtc_cidr_match(&c, &a), "not 11.0.0.0");
    a = ip("::ffff:10.0.0.1", 0);
    ok(!rtc_cidr_match(&c, &a), "a v4 range never matches a v6 address");
    ok(rtc_cidr_parse("10.1.2.3/8", &c) == 0 && c.ip[1] == 0 && c.ip[3] == 0,
       "host bits are cleared");
    ok(rtc_cidr_parse("172.16.0.0/12", &c) == 0, "172.16.0.0/12");
    a = ip("172.31.255.255", 0);
    ok(rtc_cidr_match(&c, &a), "/12 matches 172.31.255.255");
    a = ip("172.32.0.0", 0);
    ok(!rtc_cidr_match(&c, &a), "/12 does not match 172.32.0.0");
    ok(rtc_cidr_parse("fc00::/7", &c) == 0, "fc00::/7");
    a = ip("fdff::1", 0);
    ok(rtc_cidr_match(&c, &a), "matches fdff::1");
    a = ip("fe00::1", 0);
    ok(!rtc_cidr_match(&c, &a), "not fe00::1");
    ok(rtc_cidr_parse("0.0.0.0/0", &c) == 0, "0.0.0.0/0");
    a = ip("203.0.113.9", 0);
    ok(rtc_cidr_match(&c, &a), "/0 matches any v4");
    a = ip("2001:db8::1", 0);
    ok(!rtc_cidr_match(&c, &a), "/0 v4 does not match v6");
    ok(rtc_cidr_parse("192.0.2.7", &c) == 0 && c.prefix == 32, "bare v4 is /32");
    ok(rtc_cidr_parse("2001:db8::1", &c) == 0 && c.prefix == 128, "bare v6 is /128");
    a = ip("2001:db8::1", 0);
    ok(rtc_cidr_match(&c, &a), "/128 matches itself");
    a = ip("2001:db8::2", 0);
    ok(!rtc_cidr_match(&c, &a), "/128 matches nothing else");
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (rtc_cidr_parse(bad[i], &c) != RTC_EMSG) {
            printf("# accepted: '%s'\n", bad[i]);
            rej++;
        }
    is_int(rej, 0, "malformed CIDR strings all rejected");
}

static void policy(void)
{
    static const char *const deny[] = {
        "0.0.0.0", "0.1.2.3", "127.0.0.1", "127.255.255.254", "10.0.0.1", "10.255.255.255",
        "172.16.0.1", "172.31.255.255", "192.168.1.1", "100.64.0.1", "100.127.255.255",
        "169.254.169.254", "224.0.0.1", "239.255.255.250", "255.255.255.255", "240.0.0.1",
        "198.18.0.1", "192.0.0.1", "::", "::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1",
        "::ffff:8.8.8.8", "::127.0.0.1", "::10.0.0.1", "fe80::1", "febf::1", "fc00::1",
        "fd12:3456::1", "ff02::1", "ff05::2", "64:ff9b::7f00:1", "64:ff9b::a00:1",
        "64:ff9b::a9fe:a9fe", "2002:7f00:1::", "2002:a00:1::1", "2002:c0a8:101::",
        "64:ff9b:1::1", "100::1", "fec0::1"};
    static const char *const allow[] = {"8.8.8.8", "93.184.216.34", "1.1.1.1", "172.32.0.1",
                                        "100.128.0.1", "192.0.2.1", "2001:4860:4860::8888",
                                        "2606:4700:4700::1111", "64:ff9b::808:808",
                                        "2002:808:808::1"};
    rtc_peer_policy_params p = {0};
    rtc_peer_policy *pp = rtc_peer_policy_new(&p);
    rtc_addr a;

    if (!ok(pp != NULL, "default policy built"))
        return;
    for (size_t i = 0; i < sizeof deny / sizeof deny[0]; i++) {
        char name[80];
        a = ip(deny[i], 3478);
        snprintf(name, sizeof name, "default denies %s", deny[i]);
        ok(a.family && !rtc_peer_policy_allows(pp, &a), name);
    }
    for (size_t i = 0; i < sizeof allow / sizeof allow[0]; i++) {
        char name[80];
        a = ip(allow[i], 3478);
        snprintf(name, sizeof name, "default allows public %s", allow[i]);
        ok(a.family && rtc_peer_policy_allows(pp, &a), name);
    }
    rtc_peer_policy_free(pp);
    rtc_peer_policy_free(NULL);

    /* explicit allow wins over deny; configured denies add to the defaults */
    {
        rtc_cidr al[2], dn[1];
        rtc_cidr_parse("10.0.0.0/8", &al[0]);
        rtc_cidr_parse("fd00::/8", &al[1]);
        rtc_cidr_parse("8.8.8.0/24", &dn[0]);
        p = (rtc_peer_policy_params){.allow = al, .n_allow = 2, .deny = dn, .n_deny = 1};
        pp = rtc_peer_policy_new(&p);
        a = ip("10.1.2.3", 80);
        ok(rtc_peer_policy_allows(pp, &a), "allow 10.0.0.0/8 wins over the default deny");
        a = ip("fd00::5", 80);
        ok(rtc_peer_policy_allows(pp, &a), "allow fd00::/8 wins over fc00::/7");
        a = ip("fc00::5", 80);
        ok(!rtc_peer_policy_allows(pp, &a), "fc00::5 (outside the allow) still denied");
        a = ip("127.0.0.1", 80);
        ok(!rtc_peer_policy_allows(pp, &a), "loopback still denied");
        a = ip("192.168.0.1", 80);
        ok(!rtc_peer_policy_allows(pp, &a), "other private ranges still denied");
        a = ip("8.8.8.8", 53);
        ok(!rtc_peer_policy_allows(pp, &a), "configured deny 8.8.8.0/24");
        a = ip("64:ff9b::808:808", 53);
        ok(!rtc_peer_policy_allows(pp, &a), "configured deny also applies through NAT64");
        a = ip("8.8.4.4", 53);
        ok(rtc_peer_policy_allows(pp, &a), "outside the configured deny: allowed");
        rtc_peer_policy_free(pp);
    }

    /* own relayed addresses: only inside the relayed-port range */
    {
        rtc_addr own[2] = {ip("127.0.0.1", 0), ip("::1", 0)};
        p = (rtc_peer_policy_params){.own = own, .n_own = 2, .own_port_lo = 49152,
                                     .own_port_hi = 65535};
        pp = rtc_peer_policy_new(&p);
        a = ip("127.0.0.1", 50000);
        ok(rtc_peer_policy_allows(pp, &a), "own IP inside the relay port range: allowed");
        a = ip("127.0.0.1", 49152);
        ok(rtc_peer_policy_allows(pp, &a), "own IP at the low bound: allowed");
        a = ip("127.0.0.1", 65535);
        ok(rtc_peer_policy_allows(pp, &a), "own IP at the high bound: allowed");
        a = ip("127.0.0.1", 49151);
        ok(!rtc_peer_policy_allows(pp, &a), "own IP just below the range: denied");
        a = ip("127.0.0.1", 6379);
        ok(!rtc_peer_policy_allows(pp, &a), "own IP, Redis port: denied");
        a = ip("127.0.0.1", 9100);
        ok(!rtc_peer_policy_allows(pp, &a), "own IP, metrics port: denied");
        a = ip("127.0.0.2", 50000);
        ok(!rtc_peer_policy_allows(pp, &a), "another loopback IP in the range: denied");
        a = ip("::1", 50000);
        ok(rtc_peer_policy_allows(pp, &a), "own v6 IP in the range: allowed");
        a = ip("::ffff:127.0.0.1", 50000);
        ok(!rtc_peer_policy_allows(pp, &a), "mapped form of the own IP is not the own IP");
        /* the per-packet form: only own IPs are judged (by port) */
        a = ip("127.0.0.1", 50000);
        ok(rtc_peer_policy_port_ok(pp, &a), "port_ok: own IP in the range");
        a = ip("127.0.0.1", 6379);
        ok(!rtc_peer_policy_port_ok(pp, &a), "port_ok: own IP, Redis port refused");
        a = ip("::ffff:127.0.0.1", 50000);
        ok(!rtc_peer_policy_port_ok(pp, &a), "port_ok: mapped own IP refused");
        a = ip("::1", 50000);
        ok(rtc_peer_policy_port_ok(pp, &a), "port_ok: own v6 IP in the range");
        a = ip("203.0.113.1", 6379);
        ok(rtc_peer_policy_port_ok(pp, &a), "port_ok: a stranger is left to its permission");
        a = ip("10.0.0.1", 22);
        ok(rtc_peer_policy_port_ok(pp, &a),
           "port_ok: a denied stranger too (the permission was refused before)");
        rtc_peer_policy_free(pp);
    }
    /* a public own IP (no built-in deny covers it) outside the relay range:
     * its SSH, Redis... are not peers */
    {
        rtc_addr own[2] = {ip("192.0.2.2", 0), ip("198.51.100.7", 0)}; /* relay IP, external IP */
        rtc_cidr al[2];
        rtc_cidr_parse("192.0.2.0/24", &al[0]);
        rtc_cidr_parse("198.51.100.7/32", &al[1]);
        p = (rtc_peer_policy_params){.own = own, .n_own = 2, .own_port_lo = 49152,
                                     .own_port_hi = 65535};
        pp = rtc_peer_policy_new(&p);
        a = ip("192.0.2.2", 22);
        ok(!rtc_peer_policy_allows(pp, &a), "public own IP, port 22: denied");
        a = ip("198.51.100.7", 6379);
        ok(!rtc_peer_policy_allows(pp, &a), "external IP, port 6379: denied");
        a = ip("198.51.100.7", 50000);
        ok(rtc_peer_policy_allows(pp, &a), "external IP inside the range: allowed");
        a = ip("2002:c000:202::1", 22);
        ok(!rtc_peer_policy_allows(pp, &a), "own IP through 6to4: denied");
        a = ip("192.0.2.3", 22);
        ok(rtc_peer_policy_allows(pp, &a), "neighbour of the own IP: allowed");
        rtc_peer_policy_free(pp);
        /* an allow range that merely contains the own IP does not open it;
         * a host rule naming it exactly does (a test peer on the relay host) */
        p.allow = al;
        p.n_allow = 2;
        pp = rtc_peer_policy_new(&p);
        a = ip("192.0.2.2", 22);
        ok(!rtc_peer_policy_allows(pp, &a), "allow /24 around the own IP: own port 22 still denied");
        a = ip("192.0.2.3", 22);
        ok(rtc_peer_policy_allows(pp, &a), "allow /24: other hosts allowed");
        a = ip("198.51.100.7", 6379);
        ok(rtc_peer_policy_allows(pp, &a), "allow naming the own IP as a host: opened");
        rtc_peer_policy_free(pp);
    }
}

static void scope(void)
{
    static const struct {
        const char *ip;
        rtc_addr_scope want;
    } cases[] = {
        {"203.0.113.5", RTC_ADDR_PUBLIC},    {"8.8.8.8", RTC_ADDR_PUBLIC},
        {"10.0.0.5", RTC_ADDR_PRIVATE},      {"172.16.0.1", RTC_ADDR_PRIVATE},
        {"172.31.255.255", RTC_ADDR_PRIVATE}, {"172.32.0.1", RTC_ADDR_PUBLIC},
        {"172.15.255.255", RTC_ADDR_PUBLIC}, {"192.168.1.1", RTC_ADDR_PRIVATE},
        {"100.64.0.1", RTC_ADDR_PRIVATE},    {"100.127.255.255", RTC_ADDR_PRIVATE},
        {"100.128.0.1", RTC_ADDR_PUBLIC},    {"169.254.1.1", RTC_ADDR_LINKLOCAL},
        {"127.0.0.1", RTC_ADDR_LOOPBACK},    {"127.9.9.9", RTC_ADDR_LOOPBACK},
        {"0.0.0.0", RTC_ADDR_ANY},           {"::", RTC_ADDR_ANY},
        {"::1", RTC_ADDR_LOOPBACK},          {"fe80::1", RTC_ADDR_LINKLOCAL},
        {"febf::1", RTC_ADDR_LINKLOCAL},     {"fec0::1", RTC_ADDR_PUBLIC},
        {"fd00::2", RTC_ADDR_PRIVATE},       {"fc00::1", RTC_ADDR_PRIVATE},
        {"2001:db8::1", RTC_ADDR_PUBLIC},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char name[96];
        rtc_addr a = ip(cases[i].ip, 0);
        snprintf(name, sizeof name, "%s is %s", cases[i].ip, rtc_addr_scope_name(cases[i].want));
        ok(rtc_addr_scope_of(&a) == cases[i].want, name);
    }
}

static void local(void)
{
    rtc_addr a = ip("127.0.0.1", 80);
    is_int(rtc_addr_check_local(&a), 0, "127.0.0.1 is an address of this host (port ignored)");
    a = ip("0.0.0.0", 3478);
    is_int(rtc_addr_check_local(&a), 0, "a wildcard passes");
    a = ip("203.0.113.254", 0);
    is_int(rtc_addr_check_local(&a), -EADDRNOTAVAIL, "203.0.113.254 is not: -EADDRNOTAVAIL");
}

int main(void)
{
    parsing();
    cidr();
    policy();
    scope();
    local();
    return done_testing();
}
