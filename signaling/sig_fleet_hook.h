/* sig_fleet_hook.h - the relay fleet tied to the sessions (docs/fleet.md):
 * joined.iceServers from the room's relay, `relays-changed` to the members
 * of a room whose relay died, the canary admin API, the rollback log line
 * and the fleet's metrics. Off (NULL) without --relay and --relay-registry:
 * then joins keep handing out --turn-url.
 *
 * Owns the fleet state (sig_fleet.h), the registry thread or the static
 * pool's /healthz checks (sig_fleet_src.h), and per local member the TURN
 * identity its credentials are minted for (so that a relays-changed carries
 * credentials for the same user as its joined did). lws thread only. */
#ifndef SIG_FLEET_HOOK_H
#define SIG_FLEET_HOOK_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "rtc_metrics.h"
#include "sig_conf.h"
#include "sig_room.h"

typedef struct sig_fleetd sig_fleetd;

/* *out NULL when the fleet is off. 0, or -1 (logged). */
int sig_fleetd_new(const sig_conf *cf, sig_fleetd **out);
void sig_fleetd_free(sig_fleetd *d); /* NULL is a no-op */

/* iceServers for member `id` (TURN identity turn_id) joining `room`: its
 * relay's URLs with fresh credentials. NULL when no relay is usable (or
 * ENOMEM): the caller falls back to --turn-url. The member is remembered
 * until sig_fleetd_left. */
json_t *sig_fleetd_ice(sig_fleetd *d, const sig_conf *cf, const char *room, const char *id,
                       const char *turn_id);
/* A local member left (room_empty: the room has no local member left). */
void sig_fleetd_left(sig_fleetd *d, const char *room, const char *id, bool room_empty);

/* Reports, orphans (relays-changed), rollback; every loop tick. */
void sig_fleetd_tick(sig_fleetd *d, const sig_conf *cf, sig_hub *hub, uint64_t now_us);
void sig_fleetd_metrics(const sig_fleetd *d, rtc_buf *b);

/* Admin API: GET /admin/canary (shares, relays, rollbacks as JSON) and
 * PUT or POST /admin/canary/GENERATION/PERCENT. The HTTP status, with the
 * body in *body (malloc'd) and its type in *json. */
unsigned sig_fleetd_admin(sig_fleetd *d, const char *method, const char *path, char **body,
                          bool *json);

#endif
