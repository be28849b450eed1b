/* test_tc_check.c - turncheck's turn:/turns: URL parser (RFC 7065 s.3.1):
 * default ports, transports, IPv6 hosts, and every malformed shape refused
 * with a reason; the TURN REST credentials it and the relay's self-check
 * mint (against HMAC-SHA1 computed by Python's hmac); the verdict columns.
 * The steps themselves run against real servers in
 * tests/integration/turncheck.py and relay_selfcheck.py. */
#include <string.h>

#include "tap.h"
#include "tc_check.h"
#include "tc_turn.h"

static int parses(const char *s, const char *host, unsigned port, tc_proto proto)
{
    tc_url u;
    char why[300] = "";
    return !tc_url_parse(s, &u, why, sizeof why) && !strcmp(u.host, host) && u.port == port &&
           u.proto == proto && u.text == s;
}

static int refused(const char *s)
{
    tc_url u;
    char why[300] = "";
    return tc_url_parse(s, &u, why, sizeof why) && strstr(why, s) != NULL;
}

int main(void)
{
    ok(parses("turn:relay.example", "relay.example", 3478, TC_UDP), "turn: default port, UDP");
    ok(parses("turns:relay.example", "relay.example", 5349, TC_TLS), "turns: default port 5349");
    ok(parses("turn:1.2.3.4:80?transport=tcp", "1.2.3.4", 80, TC_TCP), "port and tcp");
    ok(parses("turn:1.2.3.4:3479?transport=udp", "1.2.3.4", 3479, TC_UDP), "explicit udp");
    ok(parses("turns:1.2.3.4:443?transport=tcp", "1.2.3.4", 443, TC_TLS), "turns over tcp");
    ok(parses("turn:[2001:db8::1]:3478", "2001:db8::1", 3478, TC_UDP), "IPv6 in brackets");
    ok(parses("turn:[::1]?transport=tcp", "::1", 3478, TC_TCP), "IPv6 without port");

    ok(refused("stun:1.2.3.4"), "stun: is not TURN");
    ok(refused("http://1.2.3.4"), "not a URL of ours");
    ok(refused("turn:"), "no host");
    ok(refused("turn::3478"), "empty host");
    ok(refused("turn:[::1"), "unclosed bracket");
    ok(refused("turn:1.2.3.4:0"), "port 0");
    ok(refused("turn:1.2.3.4:65536"), "port too big");
    ok(refused("turn:1.2.3.4:12ab"), "junk in the port");
    ok(refused("turn:1.2.3.4:"), "empty port");
    ok(refused("turn:1.2.3.4?transport=sctp"), "unknown transport");
    ok(refused("turns:1.2.3.4?transport=udp"), "turns over udp (DTLS) unsupported");
    ok(refused("turn:1.2.3.4?foo=bar"), "unknown query");

    {
        char user[64], pass[64], small[8];
        /* base64(HMAC-SHA1("north-secret", "1700000000:self-check")), by Python's hmac */
        ok(!tc_rest_credentials("north-secret", 1700000000u, "self-check", user, sizeof user,
                                pass, sizeof pass) &&
               !strcmp(user, "1700000000:self-check") &&
               !strcmp(pass, "ijtLWlJKWAAIc0KBN7WoV7lu6ys="),
           "REST credentials: EXPIRY:ID and base64(HMAC-SHA1(secret, username))");
        ok(tc_rest_credentials("s", 1700000000u, "self-check", small, sizeof small, pass,
                               sizeof pass) == -1, "REST credentials: username buffer too small");
        ok(tc_rest_credentials("s", 1u, "x", user, sizeof user, small, sizeof small) == -1,
           "REST credentials: password buffer too small");
    }
    ok(!strcmp(tc_verdict_name(TC_OK), "ok  ") && !strcmp(tc_verdict_name(TC_WARN), "warn") &&
           !strcmp(tc_verdict_name(TC_FAIL), "FAIL"),
       "verdict columns are four characters wide");
    return done_testing();
}
