/* sig_admin.c - the admin API and /status.json of tsunagu-signal (see
 * sig_admin.h). Reads the hub through its walks (sig_room_walk.c) and the
 * sessions through their accessors; removes members only through
 * sig_server_kick, after a walk has collected whom to remove. */
#include "sig_admin.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rtc_clock.h"
#include "rtc_crypto.h"
#include "rtc_log.h"
#include "sig_rhealth.h"

enum { CODE_200, CODE_400, CODE_401, CODE_404, CODE_405, CODE_500, CODE__N };
static const unsigned code_num[CODE__N] = {200, 400, 401, 404, 405, 500};

typedef struct {
    uint64_t wall_s;
    uint32_t members, rooms, connections;
    float msgs_per_s;
} sample;

struct sig_admin {
    sig_server *srv;
    uint64_t requests[CODE__N];
    sample hist[SIG_ADMIN_HISTORY]; /* ring: next write at head */
    size_t head, n;
    uint64_t last_us, last_msgs; /* the previous sample */
    sig_rhealth *health;         /* --relay-healthz checks */
    const sig_conf *health_conf; /* the settings they were set from (SIGHUP swaps) */
};

sig_admin *sig_admin_new(sig_server *srv)
{
    sig_admin *a = calloc(1, sizeof *a);
    if (!a)
        return NULL;
    a->srv = srv;
    if (!(a->health = sig_rhealth_new())) {
        free(a);
        return NULL;
    }
    return a;
}

void sig_admin_free(sig_admin *a)
{
    if (!a)
        return;
    sig_rhealth_free(a->health);
    free(a);
}

void sig_admin_tick(sig_admin *a, uint64_t now_us)
{
    sig_hub_stats st;
    sample *s;
    uint64_t msgs;
    const sig_conf *cf = sig_server_conf(a->srv);
    if (cf != a->health_conf) {
        sig_rhealth_set(a->health, &cf->relay_healthz);
        a->health_conf = cf;
    }
    sig_rhealth_tick(a->health, now_us);
    if (a->last_us && now_us - a->last_us < SIG_ADMIN_STEP_US)
        return;
    msgs = sig_server_messages_total(a->srv);
    sig_hub_get_stats(sig_server_hub(a->srv), &st);
    s = &a->hist[a->head];
    s->wall_s = rtc_clock_wall_s();
    s->members = (uint32_t)st.members;
    s->rooms = (uint32_t)st.rooms;
    s->connections = (uint32_t)sig_server_connections(a->srv);
    s->msgs_per_s = a->last_us ? (float)((double)(msgs - a->last_msgs) * 1e6 /
                                         (double)(now_us - a->last_us))
                               : 0.0f;
    a->head = (a->head + 1) % SIG_ADMIN_HISTORY;
    if (a->n < SIG_ADMIN_HISTORY)
        a->n++;
    a->last_us = now_us;
    a->last_msgs = msgs;
}

/* ---- replies ---- */

static bool reply(sig_admin *a, rtc_http_reply *r, rtc_buf *out, int code, const char *type,
                  const char *body)
{
    a->requests[code]++;
    rtc_buf_append(out, body, strlen(body));
    if (out->oom) {
        out->len = 0;
        code = CODE_500;
        type = "text/plain";
    }
    rtc_http_reply_set(r, code_num[code], type, out->oom ? "out of memory\n" : out->p,
                       out->oom ? 14 : out->len);
    return true;
}

static bool reply_text(sig_admin *a, rtc_http_reply *r, rtc_buf *out, int code, const char *text)
{
    return reply(a, r, out, code, "text/plain", text);
}

/* Takes j. */
static bool reply_json(sig_admin *a, rtc_http_reply *r, rtc_buf *out, json_t *j)
{
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    bool rc;
    json_decref(j);
    if (!text)
        return reply_text(a, r, out, CODE_500, "out of memory\n");
    rc = reply(a, r, out, CODE_200, "application/json", text);
    free(text);
    return rc;
}

/* The bearer token, compared over SHA-256 digests (rtc_http_bearer_ok).
 * The token may change on SIGHUP, so its digest is taken per request. */
static bool authorized(const char *token, const char *auth)
{
    uint8_t want[RTC_SHA256_LEN];
    bool ok;
    if (!auth)
        return false;
    rtc_sha256(token, strlen(token), want);
    ok = rtc_http_bearer_ok(auth, strlen(auth), want);
    memset(want, 0, sizeof want);
    return ok;
}

static double wall_of(uint64_t mono_us, uint64_t now_us, uint64_t wall_s)
{
    return (double)wall_s - (double)(now_us - mono_us) / 1e6;
}

/* ---- /admin/rooms ---- */

typedef struct {
    json_t *arr;
    uint64_t now_us, wall_s;
} walk_ctx;

static void room_cb(void *ud, const sig_room_info *ri)
{
    walk_ctx *w = ud;
    json_array_append_new(
        w->arr, json_pack("{s:s, s:I, s:I, s:f, s:f}", "name", ri->name, "members",
                          (json_int_t)ri->members, "remote", (json_int_t)ri->remote, "created",
                          wall_of(ri->created_us, w->now_us, w->wall_s), "age_s",
                          (double)(w->now_us - ri->created_us) / 1e6));
}

static bool get_rooms(sig_admin *a, rtc_http_reply *r, rtc_buf *out)
{
    walk_ctx w = {json_array(), rtc_clock_mono_us(), rtc_clock_wall_s()};
    if (w.arr)
        sig_hub_walk_rooms(sig_server_hub(a->srv), room_cb, &w);
    return reply_json(a, r, out, w.arr ? json_pack("{s:o}", "rooms", w.arr) : NULL);
}

/* ---- /admin/rooms/ROOM/members ---- */

typedef struct {
    walk_ctx w;
    const char *node;
} member_ctx;

static void member_cb(void *ud, const sig_member_info *mi)
{
    member_ctx *mc = ud;
    json_t *o;
    const sig_client *c = mi->conn;
    if (mi->state == SIG_MEMBER_REMOTE) {
        o = json_pack("{s:s, s:s, s:s, s:s, s:n, s:n, s:n}", "id", mi->id, "name", mi->name,
                      "state", "remote", "node", "remote", "address", "connected_since",
                      "messages");
    } else if (c) {
        o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:f, s:I}", "id", mi->id, "name", mi->name,
                      "state", "joined", "node", mc->node, "address", c->peer, "connected_since",
                      wall_of(c->opened_us, mc->w.now_us, mc->w.wall_s), "messages",
                      (json_int_t)c->nmsgs);
    } else {
        o = json_pack("{s:s, s:s, s:s, s:s, s:n, s:n, s:n, s:f}", "id", mi->id, "name",
                      mi->name, "state", "detached", "node", mc->node, "address",
                      "connected_since", "messages", "detached_since",
                      wall_of(mi->detached_at, mc->w.now_us, mc->w.wall_s));
    }
    json_array_append_new(mc->w.arr, o);
}

static bool get_members(sig_admin *a, const char *room, rtc_http_reply *r, rtc_buf *out)
{
    const char *node = sig_server_node(a->srv);
    member_ctx mc = {{json_array(), rtc_clock_mono_us(), rtc_clock_wall_s()},
                     node ? node : "local"};
    if (!mc.w.arr)
        return reply_json(a, r, out, NULL);
    if (!sig_hub_walk_members(sig_server_hub(a->srv), room, member_cb, &mc)) {
        json_decref(mc.w.arr);
        return reply_text(a, r, out, CODE_404, "no such room on this node\n");
    }
    return reply_json(a, r, out, json_pack("{s:s, s:o}", "room", room, "members", mc.w.arr));
}

/* ---- kick, close ---- */

static bool kick(sig_admin *a, const char *room, const char *id, rtc_http_reply *r,
                 rtc_buf *out)
{
    sig_member *m = sig_hub_find_member(sig_server_hub(a->srv), room, id);
    if (!m)
        return reply_text(a, r, out, CODE_404, "no such member of this room on this node\n");
    sig_server_kick(a->srv, m, "removed by an administrator");
    return reply_json(a, r, out, json_pack("{s:s, s:s, s:I}", "room", room, "kicked", id,
                                           "count", (json_int_t)1));
}

typedef struct {
    char (*ids)[SIG_ID_MAX + 1];
    size_t n, cap;
} id_list;

static void collect_cb(void *ud, const sig_member_info *mi)
{
    id_list *l = ud;
    if (mi->state == SIG_MEMBER_REMOTE || l->n >= l->cap)
        return;
    snprintf(l->ids[l->n++], SIG_ID_MAX + 1, "%s", mi->id);
}

static void count_cb(void *ud, const sig_member_info *mi)
{
    (void)mi;
    ((id_list *)ud)->cap++;
}

/* Collect first, then kick: a kick of a detached member changes the room
 * (and frees it with its last local member) under a walk. Counted first:
 * a room may hold more than max-room-size after a SIGHUP lowered it. */
static bool close_room(sig_admin *a, const char *room, rtc_http_reply *r, rtc_buf *out)
{
    sig_hub *h = sig_server_hub(a->srv);
    id_list l = {NULL, 0, 0};
    size_t kicked = 0;
    if (!sig_hub_walk_members(h, room, count_cb, &l))
        return reply_text(a, r, out, CODE_404, "no such room on this node\n");
    if (!(l.ids = calloc(l.cap + 1, sizeof *l.ids)))
        return reply_json(a, r, out, NULL);
    sig_hub_walk_members(h, room, collect_cb, &l);
    for (size_t i = 0; i < l.n; i++) {
        sig_member *m = sig_hub_find_member(h, room, l.ids[i]);
        if (m) {
            sig_server_kick(a->srv, m, "the room was closed by an administrator");
            kicked++;
        }
    }
    free(l.ids);
    RTC_LOG(RTC_LOG_INFO, NULL, "admin API: closed room '%s' (%zu members removed)", room,
            kicked);
    return reply_json(a, r, out, json_pack("{s:s, s:b, s:I}", "room", room, "closed", 1,
                                           "count", (json_int_t)kicked));
}

/* ---- /status.json ---- */

/* The address in a turn:/turns:/stun: URL (RFC 7065: host, [IPv6], then
 * :port or ?transport=) into out; "" when there is none. */
static void url_host(const char *url, char *out, size_t cap)
{
    const char *p = strchr(url, ':'), *end;
    size_t n;
    out[0] = '\0';
    if (!p++)
        return;
    if (*p == '[') {
        end = strchr(++p, ']');
    } else {
        end = p + strcspn(p, ":?");
    }
    if (!end || (n = (size_t)(end - p)) == 0 || n >= cap)
        return;
    memcpy(out, p, n);
    out[n] = '\0';
}

/* A handed-out relay's health: the --relay-healthz check at its address. */
static const char *relay_health(const sig_admin *a, const char *url)
{
    char host[128];
    sig_rhealth_info hi;
    url_host(url, host, sizeof host);
    for (size_t i = 0; host[0] && i < sig_rhealth_count(a->health); i++) {
        sig_rhealth_get(a->health, i, &hi);
        if (!strcmp(hi.host, host))
            return hi.state;
    }
    return "not checked";
}

static bool get_status(sig_admin *a, rtc_http_reply *r, rtc_buf *out)
{
    const sig_conf *cf = sig_server_conf(a->srv);
    const char *node = sig_server_node(a->srv);
    json_t *relays = json_array(), *checks = json_array(), *t = json_array();
    json_t *mem = json_array(), *rooms = json_array(), *mps = json_array(), *j;
    sig_hub_stats st;
    size_t first = (a->head + SIG_ADMIN_HISTORY - a->n) % SIG_ADMIN_HISTORY;
    const sample *last = a->n ? &a->hist[(a->head + SIG_ADMIN_HISTORY - 1) % SIG_ADMIN_HISTORY]
                              : NULL;

    sig_hub_get_stats(sig_server_hub(a->srv), &st);
    for (size_t i = 0; relays && i < cf->turn_url.n; i++)
        json_array_append_new(relays, json_pack("{s:s, s:s}", "url", cf->turn_url.v[i],
                                                "health", relay_health(a, cf->turn_url.v[i])));
    for (size_t i = 0; checks && i < sig_rhealth_count(a->health); i++) {
        sig_rhealth_info hi;
        sig_rhealth_get(a->health, i, &hi);
        json_array_append_new(checks, json_pack("{s:s, s:s, s:I}", "url", hi.url, "state",
                                                hi.state, "checked",
                                                (json_int_t)hi.checked_wall_s));
    }
    for (size_t i = 0; t && mem && rooms && mps && i < a->n; i++) {
        const sample *s = &a->hist[(first + i) % SIG_ADMIN_HISTORY];
        json_array_append_new(t, json_integer((json_int_t)s->wall_s));
        json_array_append_new(mem, json_integer(s->members));
        json_array_append_new(rooms, json_integer(s->rooms));
        json_array_append_new(mps, json_real((double)s->msgs_per_s));
    }
    j = json_pack("{s:I, s:s?, s:b, s:I, s:I, s:I, s:I, s:f, s:o, s:o, "
                  "s:{s:i, s:o, s:o, s:o, s:o}}",
                  "now", (json_int_t)rtc_clock_wall_s(), "node", node, "draining",
                  sig_server_draining(a->srv), "members", (json_int_t)st.members, "rooms",
                  (json_int_t)st.rooms, "connections",
                  (json_int_t)sig_server_connections(a->srv), "detached",
                  (json_int_t)st.detached, "messages_per_s",
                  last ? (double)last->msgs_per_s : 0.0, "relays", relays, "health_checks",
                  checks, "history", "step_s",
                  SIG_ADMIN_STEP_US / 1000000, "t", t, "members", mem, "rooms", rooms,
                  "messages_per_s", mps);
    return reply_json(a, r, out, j);
}

/* /admin/canary[/G/PERCENT]: the relay fleet's canary shares (sig_fleet_hook.h) */
static bool fleet_route(sig_admin *a, const sig_admin_req *q, rtc_http_reply *r, rtc_buf *out)
{
    char *body = NULL;
    bool json = false, rc;
    unsigned st = sig_fleetd_admin(sig_server_fleet(a->srv), q->method, q->path, &body, &json);
    int code = st == 200 ? CODE_200 : st == 400 ? CODE_400 : st == 404 ? CODE_404 : CODE_405;
    if (!body)
        return reply_text(a, r, out, CODE_500, "out of memory\n");
    rc = reply(a, r, out, code, json ? "application/json" : "text/plain", body);
    free(body);
    return rc;
}

/* ---- routing ---- */

#define ROOMS "/admin/rooms"

bool sig_admin_route(sig_admin *a, const sig_admin_req *q, rtc_buf *out, rtc_http_reply *r,
                     bool *challenge)
{
    const char *token = sig_server_conf(a->srv)->admin_token;
    bool status = !strcmp(q->path, "/status.json");
    const char *p, *slash;
    char room[SIG_ROOM_MAX + 1];
    size_t n;

    *challenge = false;
    if (!status && strcmp(q->path, "/admin") && strncmp(q->path, "/admin/", 7))
        return false;
    if (!status && !token)
        return reply_text(a, r, out, CODE_404, "not found\n"); /* the API is off */
    if (token && !authorized(token, q->auth)) {
        *challenge = true;
        return reply_text(a, r, out, CODE_401, "admin token required\n");
    }
    if (status)
        return strcmp(q->method, "GET") ? reply_text(a, r, out, CODE_405, "GET only\n")
                                        : get_status(a, r, out);
    if (!strncmp(q->path, "/admin/canary", 13) && (!q->path[13] || q->path[13] == '/'))
        return fleet_route(a, q, r, out);
    if (!strcmp(q->path, ROOMS))
        return strcmp(q->method, "GET") ? reply_text(a, r, out, CODE_405, "GET only\n")
                                        : get_rooms(a, r, out);
    if (strncmp(q->path, ROOMS "/", sizeof ROOMS))
        return reply_text(a, r, out, CODE_404, "not found\n");
    /* /admin/rooms/ROOM[/members[/ID]]: an id never holds '/', a room may */
    p = q->path + sizeof ROOMS;
    n = strlen(p);
    if (n > 8 && !strcmp(p + n - 8, "/members")) {
        if (strcmp(q->method, "GET"))
            return reply_text(a, r, out, CODE_405, "GET only\n");
        n -= 8;
        if (n == 0 || n > SIG_ROOM_MAX)
            return reply_text(a, r, out, CODE_400, "bad room name\n");
        memcpy(room, p, n);
        room[n] = '\0';
        return get_members(a, room, r, out);
    }
    if (strcmp(q->method, "DELETE"))
        return reply_text(a, r, out, CODE_405, "DELETE only\n");
    slash = strrchr(p, '/');
    if (slash && slash - p > 8 && !strncmp(slash - 8, "/members", 8)) {
        const char *id = slash + 1;
        n = (size_t)(slash - 8 - p);
        if (n == 0 || n > SIG_ROOM_MAX || !*id || strlen(id) > SIG_ID_MAX)
            return reply_text(a, r, out, CODE_400, "bad room name or member id\n");
        memcpy(room, p, n);
        room[n] = '\0';
        return kick(a, room, id, r, out);
    }
    if (n == 0 || n > SIG_ROOM_MAX)
        return reply_text(a, r, out, CODE_400, "bad room name\n");
    return close_room(a, p, r, out);
}

void sig_admin_metrics(const sig_admin *a, rtc_buf *b)
{
    char lbl[32];
    rtc_metrics_header(b, "tsunagu_signal_admin_requests_total", "counter",
                       "admin API and /status.json requests, by HTTP status (401: missing or "
                       "wrong token)");
    for (int i = 0; i < CODE__N; i++) {
        snprintf(lbl, sizeof lbl, "code=\"%u\"", code_num[i]);
        rtc_metrics_u64(b, "tsunagu_signal_admin_requests_total", lbl, a->requests[i]);
    }
}
