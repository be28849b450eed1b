/* bot_turn.c - `turn:` URLs (RFC 7065) as joined.iceServers carries them.
 * Pure string handling, no libnice, so unit tests link it alone. */
#include <stdlib.h>
#include <string.h>

#include "bot_ice.h"
#include "rtc_err.h"

int bot_turn_parse_url(const char *url, bot_turn *t)
{
    const char *p, *q, *hend;
    size_t hl;
    long port = 3478;

    memset(t, 0, sizeof *t);
    /* turns: is refused on purpose: libnice 0.1.21's NICE_RELAY_TYPE_TURN_TLS
     * in RFC 5245 mode sends plain STUN over TCP (a sniffer saw an Allocate,
     * 00 03 ..., as the first bytes, no ClientHello). Claiming TLS would be a
     * lie; a coturn TLS port accepts the plain TCP and hides it. */
    if (!strncmp(url, "stun:", 5) || !strncmp(url, "turns:", 6) || !strncmp(url, "stuns:", 6))
        return RTC_EUNSUP;
    if (strncmp(url, "turn:", 5) != 0)
        return RTC_EMSG;
    p = url + 5;
    q = strchr(p, '?');
    if (!q)
        q = p + strlen(p);
    if (*p == '[') {
        hend = memchr(p, ']', (size_t)(q - p));
        if (!hend)
            return RTC_EMSG;
        hl = (size_t)(hend - p - 1);
        if (hl == 0 || hl >= sizeof t->host)
            return RTC_EMSG;
        memcpy(t->host, p + 1, hl);
        p = hend + 1;
    } else {
        hend = memchr(p, ':', (size_t)(q - p));
        if (!hend)
            hend = q;
        hl = (size_t)(hend - p);
        if (hl == 0 || hl >= sizeof t->host)
            return RTC_EMSG;
        memcpy(t->host, p, hl);
        p = hend;
    }
    if (p < q && *p == ':') {
        char *end;
        port = strtol(p + 1, &end, 10);
        if (end != q || port < 1 || port > 65535)
            return RTC_EMSG;
    } else if (p != q) {
        return RTC_EMSG;
    }
    t->port = (uint16_t)port;
    if (*q == '?') {
        if (!strcmp(q, "?transport=tcp"))
            t->tcp = true;
        else if (strcmp(q, "?transport=udp") != 0)
            return RTC_EMSG;
    }
    return 0;
}
