/* test_bot_turn.c - turn: and turns: URLs from joined.iceServers (RFC 7065): host,
 * port default, IPv6 brackets, ?transport, and what is refused; stun: URLs
 * (RFC 7064) the same way. */
#include <string.h>

#include "bot_ice.h"
#include "rtc_err.h"
#include "tap.h"

int main(void)
{
    bot_turn t;
    is_int(bot_turn_parse_url("turn:127.0.0.1:3478", &t), 0, "v4 with port");
    ok(!strcmp(t.host, "127.0.0.1") && t.port == 3478 && !t.tcp, "fields");
    is_int(bot_turn_parse_url("turn:relay.example.com", &t), 0, "name, default port");
    ok(!strcmp(t.host, "relay.example.com") && t.port == 3478, "default 3478");
    is_int(bot_turn_parse_url("turn:[::1]:5000?transport=tcp", &t), 0, "v6 + tcp");
    ok(!strcmp(t.host, "::1") && t.port == 5000 && t.tcp, "v6 fields");
    is_int(bot_turn_parse_url("turn:h:1?transport=udp", &t), 0, "explicit udp");
    ok(!t.tcp, "udp");
    is_int(bot_turn_parse_url("stun:h:3478", &t), RTC_EUNSUP, "stun skipped");
    is_int(bot_turn_parse_url("stuns:h:5349", &t), RTC_EUNSUP, "stuns skipped");
    ok(!t.tls, "a turn: URL is not TLS");
    is_int(bot_turn_parse_url("turns:relay.example.com", &t), 0, "turns: name, default port");
    ok(!strcmp(t.host, "relay.example.com") && t.port == 5349 && t.tls && t.tcp,
       "turns: default 5349, TLS over TCP");
    is_int(bot_turn_parse_url("turns:127.0.0.1:443?transport=tcp", &t), 0, "turns: on 443, tcp");
    ok(!strcmp(t.host, "127.0.0.1") && t.port == 443 && t.tls && t.tcp, "turns: fields");
    is_int(bot_turn_parse_url("turns:[::1]:5349", &t), 0, "turns: v6");
    ok(!strcmp(t.host, "::1") && t.port == 5349 && t.tls, "turns: v6 fields");
    is_int(bot_turn_parse_url("turns:h:5349?transport=udp", &t), RTC_EUNSUP,
           "turns: over udp (DTLS) refused");
    is_int(bot_turn_parse_url("turns:h:0", &t), RTC_EMSG, "turns: port 0");
    is_int(bot_turn_parse_url("turns:", &t), RTC_EMSG, "turns: empty host");
    is_int(bot_turn_parse_url("turns:h?transport=sctp", &t), RTC_EMSG, "turns: unknown transport");
    is_int(bot_turn_parse_url("turnss:h", &t), RTC_EMSG, "turnss: is not a scheme");
    is_int(bot_turn_parse_url("http://h", &t), RTC_EMSG, "not turn");
    is_int(bot_turn_parse_url("turn:", &t), RTC_EMSG, "empty host");
    is_int(bot_turn_parse_url("turn:h:0", &t), RTC_EMSG, "port 0");
    is_int(bot_turn_parse_url("turn:h:65536", &t), RTC_EMSG, "port too big");
    is_int(bot_turn_parse_url("turn:h:12x", &t), RTC_EMSG, "junk port");
    is_int(bot_turn_parse_url("turn:[::1", &t), RTC_EMSG, "open bracket");
    is_int(bot_turn_parse_url("turn:[::1]x", &t), RTC_EMSG, "junk after bracket");
    is_int(bot_turn_parse_url("turn:h?transport=sctp", &t), RTC_EMSG, "unknown transport");
    {
        char big[400] = "turn:";
        memset(big + 5, 'a', 300);
        big[305] = '\0';
        is_int(bot_turn_parse_url(big, &t), RTC_EMSG, "host longer than its buffer");
    }
    {
        bot_stun s;
        is_int(bot_stun_parse_url("stun:127.0.0.1:3479", &s), 0, "stun: v4 with port");
        ok(!strcmp(s.host, "127.0.0.1") && s.port == 3479, "stun: fields");
        is_int(bot_stun_parse_url("stun:stun.example.com", &s), 0, "stun: name, default port");
        ok(!strcmp(s.host, "stun.example.com") && s.port == 3478, "stun: default 3478");
        is_int(bot_stun_parse_url("stun:[::1]:5000", &s), 0, "stun: v6");
        ok(!strcmp(s.host, "::1") && s.port == 5000, "stun: v6 fields");
        is_int(bot_stun_parse_url("stuns:h:5349", &s), RTC_EUNSUP, "stuns: not supported");
        is_int(bot_stun_parse_url("stun:h?transport=udp", &s), RTC_EMSG,
               "stun: has no query part (RFC 7064)");
        is_int(bot_stun_parse_url("stun:", &s), RTC_EMSG, "stun: empty host");
        is_int(bot_stun_parse_url("stun:h:0", &s), RTC_EMSG, "stun: port 0");
        is_int(bot_stun_parse_url("stun:h:x", &s), RTC_EMSG, "stun: junk port");
        is_int(bot_stun_parse_url("stun:[::1", &s), RTC_EMSG, "stun: open bracket");
        is_int(bot_stun_parse_url("turn:h", &s), RTC_EMSG, "turn: is not stun:");
    }
    return done_testing();
}
