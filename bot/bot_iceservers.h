/* bot_iceservers.h - joined.iceServers (DESIGN.md) into the TURN and STUN
 * servers a call uses. Shared by every client of the call library
 * (tsunagu-bot, tsunagu-phone). Pure: no I/O but logging; any thread. */
#ifndef BOT_ICESERVERS_H
#define BOT_ICESERVERS_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "bot_ice.h"

typedef struct {
    bot_turn turn[BOT_ICE_MAX_TURN];
    size_t n_turn;
    bot_stun stun[BOT_ICE_MAX_TURN]; /* kept in order: the call uses the first usable */
    size_t n_stun;
} bot_ice_servers;

/* [{"urls": "turn:.." | ["turn:..", "stun:..", ..], "username", "credential"}]
 * (borrowed) into out (reset first). Malformed and unsupported URLs are left
 * out with a warning on `label`'s log lines; relay_only only changes what is
 * said about stun: URLs. */
void bot_ice_servers_take(json_t *servers, bool relay_only, const char *label, bot_ice_servers *out);

#endif
