/* bot_iceservers.c - joined.iceServers into TURN and STUN servers (see
 * bot_iceservers.h). */
#include "bot_iceservers.h"

#include <stdio.h>
#include <string.h>

#include "rtc_err.h"
#include "rtc_log.h"

/* A stun: URL: kept in order (the call uses the first that resolves to
 * IPv4, bot_ice.h); stuns: and malformed ones are left out, saying why. */
static void take_stun_url(bot_ice_servers *o, const char *label, const char *url)
{
    bot_stun s;
    int rc = bot_stun_parse_url(url, &s);
    if (rc) {
        RTC_LOG(RTC_LOG_WARN, label, "skipping ICE server %s: %s", url,
                rc == RTC_EUNSUP ? "not supported (STUN over TLS)" : "malformed");
        return;
    }
    if (o->n_stun < BOT_ICE_MAX_TURN)
        o->stun[o->n_stun++] = s;
}

static void take_turn_url(bot_ice_servers *o, const char *label, const char *url,
                          const char *user, const char *cred)
{
    bot_turn t;
    int rc;
    if (o->n_turn == BOT_ICE_MAX_TURN)
        return;
    rc = bot_turn_parse_url(url, &t);
    if (rc) {
        RTC_LOG(RTC_LOG_WARN, label, "skipping ICE server %s: %s", url,
                rc == RTC_EUNSUP ? "not supported (turns: needs ?transport=tcp)" : "malformed");
        return;
    }
    snprintf(t.user, sizeof t.user, "%s", user ? user : "");
    snprintf(t.pass, sizeof t.pass, "%s", cred ? cred : "");
    o->turn[o->n_turn++] = t;
}

void bot_ice_servers_take(json_t *servers, bool relay_only, const char *label, bot_ice_servers *out)
{
    size_t i, k;
    json_t *s;
    memset(out, 0, sizeof *out);
    json_array_foreach(servers, i, s) {
        json_t *urls = json_object_get(s, "urls"), *u;
        const char *user = json_string_value(json_object_get(s, "username"));
        const char *cred = json_string_value(json_object_get(s, "credential"));
        json_t *one = json_is_string(urls) ? json_pack("[O]", urls) : json_incref(urls);
        json_array_foreach(one, k, u) {
            const char *url = json_string_value(u);
            if (!url)
                continue;
            if (!strncmp(url, "stun", 4))
                take_stun_url(out, label, url);
            else
                take_turn_url(out, label, url, user, cred);
        }
        json_decref(one);
    }
    if (out->n_turn == 0)
        RTC_LOG(RTC_LOG_WARN, label, "no usable turn: URL in joined.iceServers");
    if (out->n_stun && relay_only)
        RTC_LOG(RTC_LOG_INFO, label, "relay only: %zu stun: URL(s) not used", out->n_stun);
    else if (out->n_stun)
        RTC_LOG(RTC_LOG_INFO, label, "%zu stun: URL(s), the first stun:%s:%u; each call "
                "uses the first that resolves to IPv4", out->n_stun, out->stun[0].host, out->stun[0].port);
}
