/* test_tc_check.c - turncheck's turn:/turns: URL parser (RFC 7065 s.3.1):
 * default ports, transports, IPv6 hosts, and every malformed shape refused
 * with a reason. The steps themselves run against real servers in
 * tests/integration/turncheck.py. */
#include <string.h>

#include "tap.h"
#include "tc_check.h"

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
    return done_testing();
}
