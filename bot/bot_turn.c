/* bot_turn.c - `turn:`/`turns:` (RFC 7065) and `stun:` (RFC 7064) URLs as
 * joined.iceServers carries them. Pure string handling, no libnice, so unit
 * tests link it alone. */
#include <stdlib.h>
#include <string.h>

#include "bot_ice.h"
#include "rtc_err.h"

/* host[:port] in [p, q): an IPv6 literal in brackets, a name or an IPv4
 * literal; *port keeps its default when none is given. */
static int parse_hostport(const char *p, const char *q, char *host, size_t cap, long *port)
{
    const char *hend;
    size_t hl;

    if (*p == '[') {
        hend = memchr(p, ']', (size_t)(q - p));
        if (!hend)
            return RTC_EMSG;
        hl = (size_t)(hend - p - 1);
        if (hl == 0 || hl >= cap)
            return RTC_EMSG;
        memcpy(host, p + 1, hl);
        p = hend + 1;
    } else {
        hend = memchr(p, ':', (size_t)(q - p));
        if (!hend)
            hend = q;
        hl = (size_t)(hend - p);
        if (hl == 0 || hl >= cap)
            return RTC_EMSG;
        memcpy(host, p, hl);
        p = hend;
    }
    host[hl] = '\0';
    if (p < q && *p == ':') {
        char *end;
        *port = strtol(p + 1, &end, 10);
        if (end != q || *port < 1 || *port > 65535)
            return RTC_EMSG;
    } else if (p != q) {
        return RTC_EMSG;
    }
    return 0;
}

int bot_turn_parse_url(const char *url, bot_turn *t)
{
    const char *p, *q;
    long port = 3478;

    memset(t, 0, sizeof *t);
    /* turns: is TLS to the server (RFC 7065 s.3.1), which the bot does
     * itself (bot_tlsfwd.c): libnice 0.1.21's NICE_RELAY_TYPE_TURN_TLS in
     * RFC 5245 mode sends plain STUN over TCP (a sniffer saw an Allocate,
     * 00 03 ..., as the first bytes, no ClientHello). */
    if (!strncmp(url, "stun:", 5) || !strncmp(url, "stuns:", 6))
        return RTC_EUNSUP;
    if (!strncmp(url, "turns:", 6)) {
        t->tls = t->tcp = true;
        port = 5349;
        p = url + 6;
    } else if (!strncmp(url, "turn:", 5)) {
        p = url + 5;
    } else {
        return RTC_EMSG;
    }
    q = strchr(p, '?');
    if (!q)
        q = p + strlen(p);
    if (parse_hostport(p, q, t->host, sizeof t->host, &port))
        return RTC_EMSG;
    t->port = (uint16_t)port;
    if (*q == '?') {
        if (!strcmp(q, "?transport=tcp"))
            t->tcp = true;
        else if (strcmp(q, "?transport=udp") != 0)
            return RTC_EMSG;
        else if (t->tls)
            /* turns + udp would be DTLS to the server: not in RFC 7065's
             * grammar as WebRTC uses it, and not something we do. */
            return RTC_EUNSUP;
    }
    return 0;
}

int bot_stun_parse_url(const char *url, bot_stun *s)
{
    long port = 3478;
    const char *p = url + 5;

    memset(s, 0, sizeof *s);
    /* stuns: (STUN over TLS, RFC 7064 s.3.2) is not something libnice
     * does; srflx discovery is plain UDP Binding. */
    if (!strncmp(url, "stuns:", 6))
        return RTC_EUNSUP;
    if (strncmp(url, "stun:", 5))
        return RTC_EMSG;
    /* RFC 7064 s.3.1: stun:host[:port], no query part. */
    if (strchr(p, '?') || parse_hostport(p, p + strlen(p), s->host, sizeof s->host, &port))
        return RTC_EMSG;
    s->port = (uint16_t)port;
    return 0;
}
