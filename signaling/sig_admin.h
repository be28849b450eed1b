/* sig_admin.h - the admin API (/admin/...) and the status page's data
 * (/status.json) of tsunagu-signal, on its HTTP port.
 *
 * Admin API (docs/signaling.md "Admin API"), only when an admin token is
 * configured (--admin-token or --admin-token-file; none: 404, the API is
 * off) and only with "Authorization: Bearer <token>" (compared in constant
 * time over SHA-256 digests, so neither content nor length leaks; missing or
 * wrong: 401 with WWW-Authenticate, counted):
 *   GET    /admin/rooms                      rooms: name, members, created
 *   GET    /admin/rooms/ROOM/members         members: id, name, address, node,
 *                                            connected since, messages
 *   DELETE /admin/rooms/ROOM/members/ID      kick: `kicked` error, then close
 *   DELETE /admin/rooms/ROOM                 close: every local member kicked
 * GET /status.json: counts, messages/s, the relays handed out, and the last
 * hour at 10 s resolution; open when no token is set, else behind it too.
 *
 * Cluster mode: what this node's hub holds: its own members, and the members
 * on other nodes of rooms that have a member here (node "remote"); a kick or
 * close acts on this node's members only.
 *
 * Pure HTTP logic: the transport (sig_ws.c) hands in method, decoded path
 * and the Authorization header, and writes the reply. One thread: the lws
 * service thread. */
#ifndef SIG_ADMIN_H
#define SIG_ADMIN_H

#include <stdbool.h>
#include <stdint.h>

#include "rtc_http.h"
#include "rtc_metrics.h"
#include "sig_session.h"

#define SIG_ADMIN_HISTORY 360     /* samples kept: one hour */
#define SIG_ADMIN_STEP_US 10000000 /* at 10 s */
#define SIG_ADMIN_REALM "Bearer realm=\"tsunagu-admin\""

typedef struct sig_admin sig_admin;

typedef struct {
    const char *method; /* "GET", "POST", "DELETE", ... */
    const char *path;   /* decoded, without the query */
    const char *auth;   /* the Authorization header, or NULL */
} sig_admin_req;

sig_admin *sig_admin_new(sig_server *srv); /* NULL on ENOMEM */
void sig_admin_free(sig_admin *a);         /* NULL is a no-op */

/* Every tick: takes a history sample when 10 s have passed. */
void sig_admin_tick(sig_admin *a, uint64_t now_us);

/* true when the path is ours (/admin/..., /status.json) and *r is filled;
 * the body lives in out (the caller disposes it after sending).
 * *challenge: send WWW-Authenticate: SIG_ADMIN_REALM with this 401. */
bool sig_admin_route(sig_admin *a, const sig_admin_req *q, rtc_buf *out, rtc_http_reply *r,
                     bool *challenge);

/* tsunagu_signal_admin_requests_total{code} */
void sig_admin_metrics(const sig_admin *a, rtc_buf *b);

#endif
