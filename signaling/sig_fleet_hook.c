/* sig_fleet_hook.c - the relay fleet tied to the sessions (see
 * sig_fleet_hook.h). */
#include "sig_fleet_hook.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rtc_clock.h"
#include "rtc_log.h"
#include "rtc_map.h"
#include "sig_fleet.h"
#include "sig_fleet_src.h"
#include "sig_proto.h"
#include "sig_redis.h"
#include "sig_rhealth.h"
#include "sig_turn.h"

#define STATIC_STEP_US 250000u
#define JUDGE_STEP_US 1000000u
/* A join whose placement was made but that never completed (room full, a
 * cluster join Redis refused) left a member and maybe a room here: swept
 * every SWEEP_US once older than SWEEP_AGE_US (a cluster join in flight is
 * younger). */
#define SWEEP_US 10000000u
#define SWEEP_AGE_US 30000000u

typedef struct {
    rtc_map_node node;
    char turn_id[SIG_TURN_ID_LEN + 1];
    char room[SIG_ROOM_MAX + 1];
    uint64_t added_us;
    char id[SIG_ID_MAX + 1];
} member;

struct sig_fleetd {
    sig_fleet *f;
    sig_fleet_src *src;       /* registry mode */
    sig_rhealth *health;      /* static mode: /healthz checks */
    sig_fleet_report *stat;   /* static mode: the --relay entries */
    char (*stat_hz)[SIG_FLEET_HEALTHZ_MAX];
    size_t nstat;
    rtc_map members;
    uint64_t next_static_us, next_judge_us, next_sweep_us;
    bool registry_up;
    uint64_t relays_changed; /* messages sent */
};

static sig_fleet_params params_of(const sig_conf *cf)
{
    sig_fleet_params p = {.max_load = (uint64_t)cf->relay_max_load,
                          .max_loss_delta = strtod(cf->canary_max_loss_delta, NULL) / 100.0,
                          .max_jitter_delta = strtod(cf->canary_max_jitter_delta, NULL) / 1000.0,
                          .min_sample = (uint64_t)cf->canary_min_sample,
                          .window_s = (uint32_t)cf->canary_window,
                          .hold_s = (uint32_t)cf->canary_hold};
    return p;
}

int sig_fleetd_new(const sig_conf *cf, sig_fleetd **out)
{
    sig_fleetd *d;
    sig_fleet_params fp = params_of(cf);
    char gens[SIG_FLEET_MAX_CANARY][SIG_FLEET_NAME_MAX], err[300];
    unsigned pcts[SIG_FLEET_MAX_CANARY];
    rtc_strlist hz = {0};

    *out = NULL;
    if (!cf->relay.n && !cf->relay_registry)
        return 0;
    if (!(d = calloc(1, sizeof *d)) || !(d->f = sig_fleet_new(&fp)))
        goto fail_oom;
    rtc_map_init(&d->members);
    for (size_t i = 0; i < cf->canary.n && i < SIG_FLEET_MAX_CANARY; i++) {
        sig_fleet_parse_canary(cf->canary.v[i], gens[i], sizeof gens[i], &pcts[i], err,
                               sizeof err);
        sig_fleet_set_canary(d->f, gens[i], pcts[i]);
    }
    if (cf->relay_registry) {
        if (!(d->src = sig_fleet_src_start(&sig_redis_hiredis, cf->relay_registry, gens, pcts,
                                           cf->canary.n, err, sizeof err))) {
            RTC_LOG(RTC_LOG_ERROR, "fleet", "relay registry: %s", err);
            goto fail;
        }
        RTC_LOG(RTC_LOG_INFO, "fleet", "placing rooms on the relays of the registry");
    } else {
        d->nstat = cf->relay.n;
        d->stat = calloc(d->nstat, sizeof *d->stat);
        d->stat_hz = calloc(d->nstat, sizeof *d->stat_hz);
        hz.v = calloc(d->nstat, sizeof *hz.v);
        if (!d->stat || !d->stat_hz || !hz.v ||
            !(d->health = sig_rhealth_new_every(1000000u, 800000u)))
            goto fail_oom;
        for (size_t i = 0; i < d->nstat; i++) {
            sig_fleet_parse_static(cf->relay.v[i], &d->stat[i], d->stat_hz[i], err, sizeof err);
            if (d->stat_hz[i][0])
                hz.v[hz.n++] = d->stat_hz[i];
        }
        sig_rhealth_set(d->health, &hz);
        free(hz.v);
        sig_fleet_update(d->f, d->stat, d->nstat, 0);
        RTC_LOG(RTC_LOG_INFO, "fleet", "placing rooms on a static pool of %zu relay(s)",
                d->nstat);
    }
    *out = d;
    return 0;
fail_oom:
    RTC_LOG(RTC_LOG_ERROR, "fleet", "out of memory");
fail:
    free(hz.v);
    sig_fleetd_free(d);
    return -1;
}

void sig_fleetd_free(sig_fleetd *d)
{
    rtc_map_iter it;
    rtc_map_node *nd;
    if (!d)
        return;
    sig_fleet_src_stop(d->src);
    sig_rhealth_free(d->health);
    rtc_map_iter_init(&it, &d->members);
    while ((nd = rtc_map_iter_next(&it))) {
        rtc_map_remove(&d->members, nd);
        free(RTC_MAP_ENTRY(nd, member, node));
    }
    rtc_map_dispose(&d->members);
    sig_fleet_free(d->f);
    free(d->stat);
    free(d->stat_hz);
    free(d);
}

static json_t *ice_of(const sig_fleet_relay *r, const sig_conf *cf, const char *turn_id)
{
    char *urls[SIG_FLEET_MAX_URLS];
    for (size_t i = 0; i < r->r.nurls; i++)
        urls[i] = (char *)r->r.urls[i];
    return sig_turn_ice_servers(urls, r->r.nurls, cf->turn_secret, strlen(cf->turn_secret),
                                turn_id, rtc_clock_wall_s(), (uint64_t)cf->turn_ttl);
}

json_t *sig_fleetd_ice(sig_fleetd *d, const sig_conf *cf, const char *room, const char *id,
                       const char *turn_id)
{
    const sig_fleet_relay *r = sig_fleet_place(d->f, room);
    size_t len = strlen(id);
    member *m;
    if (!r) {
        RTC_LOG(RTC_LOG_WARN, id, "fleet: no usable relay for room '%s': --turn-url instead",
                room);
        return NULL;
    }
    RTC_LOG(RTC_LOG_DEBUG, id, "fleet: room '%s' on relay %s (%s)", room, r->r.name,
            r->r.generation);
    if (len <= SIG_ID_MAX && !rtc_map_find_str(&d->members, id) && (m = calloc(1, sizeof *m))) {
        memcpy(m->id, id, len + 1);
        snprintf(m->turn_id, sizeof m->turn_id, "%s", turn_id);
        snprintf(m->room, sizeof m->room, "%s", room);
        m->added_us = rtc_clock_mono_us();
        if (rtc_map_insert(&d->members, &m->node, m->id, len))
            free(m);
    }
    return ice_of(r, cf, turn_id);
}

void sig_fleetd_left(sig_fleetd *d, const char *room, const char *id, bool room_empty)
{
    rtc_map_node *nd = rtc_map_find_str(&d->members, id);
    if (nd) {
        rtc_map_remove(&d->members, nd);
        free(RTC_MAP_ENTRY(nd, member, node));
    }
    if (room_empty)
        sig_fleet_room_gone(d->f, room);
}

/* ---- sweep ---- */

static bool room_here(void *ud, const char *room)
{
    return sig_hub_room_exists(ud, room);
}

static void sweep(sig_fleetd *d, sig_hub *hub, uint64_t now_us)
{
    rtc_map_iter it;
    rtc_map_node *nd;
    size_t members = 0, rooms;
    rtc_map_iter_init(&it, &d->members);
    while ((nd = rtc_map_iter_next(&it))) {
        member *m = RTC_MAP_ENTRY(nd, member, node);
        if (now_us - m->added_us < SWEEP_AGE_US || sig_hub_find_member(hub, m->room, m->id))
            continue;
        rtc_map_remove(&d->members, nd);
        free(m);
        members++;
    }
    rooms = sig_fleet_sweep(d->f, room_here, hub);
    if (members || rooms)
        RTC_LOG(RTC_LOG_DEBUG, "fleet", "swept %zu member(s), %zu room(s) of joins that did "
                "not complete", members, rooms);
}

/* ---- reports ---- */

static void static_reports(sig_fleetd *d, uint64_t now_us)
{
    sig_rhealth_tick(d->health, now_us);
    if (now_us < d->next_static_us)
        return;
    d->next_static_us = now_us + STATIC_STEP_US;
    for (size_t i = 0; i < d->nstat; i++) {
        sig_fleet_report *r = &d->stat[i];
        r->alive = true;
        r->draining = false;
        for (size_t k = 0; d->stat_hz[i][0] && k < sig_rhealth_count(d->health); k++) {
            sig_rhealth_info hi;
            sig_rhealth_get(d->health, k, &hi);
            if (strcmp(hi.url, d->stat_hz[i]))
                continue;
            /* "ok", "not checked yet", "unhealthy: 503 draining", else dead */
            r->draining = strstr(hi.state, "draining") != NULL;
            r->alive = !strcmp(hi.state, "ok") || !strcmp(hi.state, "not checked yet") ||
                       r->draining;
        }
    }
    sig_fleet_update(d->f, d->stat, d->nstat, now_us);
}

static void registry_reports(sig_fleetd *d, uint64_t now_us)
{
    sig_fleet_report *v = NULL;
    size_t n = 0, nc = 0;
    char gens[SIG_FLEET_MAX_CANARY][SIG_FLEET_NAME_MAX];
    unsigned pcts[SIG_FLEET_MAX_CANARY];
    bool canary_ok = false, up = false;
    if (!sig_fleet_src_take(d->src, &v, &n, gens, pcts, &nc, &canary_ok, &up)) {
        d->registry_up = up;
        return;
    }
    d->registry_up = up;
    sig_fleet_update(d->f, v, n, now_us);
    free(v);
    if (canary_ok) {
        sig_fleet_clear_canary(d->f);
        for (size_t i = 0; i < nc; i++)
            sig_fleet_set_canary(d->f, gens[i], pcts[i]);
    }
}

/* ---- relays-changed ---- */

typedef struct {
    char (*ids)[SIG_ID_MAX + 1];
    size_t n, cap;
} idlist;

static void collect(void *ud, const sig_member_info *m)
{
    idlist *l = ud;
    if (m->state != SIG_MEMBER_REMOTE && l->n < l->cap && strlen(m->id) <= SIG_ID_MAX)
        snprintf(l->ids[l->n++], SIG_ID_MAX + 1, "%s", m->id);
}

/* The members here of a room whose relay died get its new relay. */
static void move_room(sig_fleetd *d, const sig_conf *cf, sig_hub *hub, const char *room_name,
                      uint64_t now_us)
{
    const sig_fleet_relay *r = sig_fleet_place(d->f, room_name);
    idlist l = {.cap = (size_t)cf->max_room_size};
    char room[SIG_ROOM_MAX + 1];
    size_t sent = 0;
    if (!r) {
        /* asked again at every report (a relay may come back): not a warning
         * each time; the relay's death and the state metric said it */
        RTC_LOG(RTC_LOG_DEBUG, "fleet", "room '%s': its relay died and no relay is usable",
                room_name);
        return;
    }
    snprintf(room, sizeof room, "%s", room_name); /* place may not keep the name still */
    if (!(l.ids = calloc(l.cap, sizeof *l.ids)))
        return;
    sig_hub_walk_members(hub, room, collect, &l);
    for (size_t i = 0; i < l.n; i++) {
        rtc_map_node *nd = rtc_map_find_str(&d->members, l.ids[i]);
        sig_member *m = sig_hub_find_member(hub, room, l.ids[i]);
        json_t *ice, *msg;
        char *text;
        if (!nd || !m) /* (resumed here from another node: no identity known) */
            continue;
        ice = ice_of(r, cf, RTC_MAP_ENTRY(nd, member, node)->turn_id);
        msg = ice ? json_pack("{s:s, s:o, s:s, s:s}", "type", "relays-changed", "iceServers",
                              ice, "reason", "relay-down", "relay", r->r.name)
                  : NULL;
        text = msg ? json_dumps(msg, JSON_COMPACT) : NULL;
        json_decref(msg);
        if (text && !sig_hub_send(hub, m, text, now_us)) {
            sent++;
            d->relays_changed++;
        }
        free(text);
    }
    free(l.ids);
    RTC_LOG(RTC_LOG_INFO, "fleet", "room '%s' moved to relay %s (%s): relays-changed to %zu "
            "member(s)", room, r->r.name, r->r.generation, sent);
}

void sig_fleetd_tick(sig_fleetd *d, const sig_conf *cf, sig_hub *hub, uint64_t now_us)
{
    const char *orphan;
    size_t budget;
    char gen[SIG_FLEET_NAME_MAX], why[400];
    sig_fleet_params fp = params_of(cf);

    sig_fleet_set_params(d->f, &fp); /* (SIGHUP may change them) */
    if (d->src)
        registry_reports(d, now_us);
    else
        static_reports(d, now_us);
    if (now_us >= d->next_sweep_us) {
        if (d->next_sweep_us)
            sweep(d, hub, now_us);
        d->next_sweep_us = now_us + SWEEP_US;
    }
    budget = sig_fleet_rooms(d->f) + 1; /* each orphan is handed out once */
    while (budget-- && (orphan = sig_fleet_next_orphan(d->f)))
        move_room(d, cf, hub, orphan, now_us);
    if (now_us < d->next_judge_us)
        return;
    d->next_judge_us = now_us + JUDGE_STEP_US;
    if (sig_fleet_judge(d->f, now_us, gen, sizeof gen, why, sizeof why)) {
        RTC_LOG(RTC_LOG_WARN, "fleet", "canary rollback: generation %s share set to 0: %s", gen,
                why);
        if (d->src)
            sig_fleet_src_put_canary(d->src, gen, 0);
    }
}

/* ---- metrics ---- */

void sig_fleetd_metrics(const sig_fleetd *d, rtc_buf *b)
{
    char lbl[400];
    size_t n = sig_fleet_count(d->f);
    rtc_metrics_header(b, "tsunagu_signal_relay_rooms", "gauge",
                       "rooms with a member here, by the relay they are placed on");
    for (size_t i = 0; i < n; i++) {
        const sig_fleet_relay *r = sig_fleet_get(d->f, i);
        snprintf(lbl, sizeof lbl, "relay=\"%s\",generation=\"%s\"", r->r.name, r->r.generation);
        rtc_metrics_u64(b, "tsunagu_signal_relay_rooms", lbl, r->rooms);
    }
    rtc_metrics_header(b, "tsunagu_signal_relay_assignments_total", "counter",
                       "rooms placed on a relay (new rooms, and rooms moved off a dead relay)");
    for (size_t i = 0; i < n; i++) {
        const sig_fleet_relay *r = sig_fleet_get(d->f, i);
        snprintf(lbl, sizeof lbl, "relay=\"%s\",generation=\"%s\"", r->r.name, r->r.generation);
        rtc_metrics_u64(b, "tsunagu_signal_relay_assignments_total", lbl, r->assignments);
    }
    rtc_metrics_header(b, "tsunagu_signal_relay_state", "gauge",
                       "1 for the state each known relay is in (up, draining, full, dead, "
                       "stale)");
    for (size_t i = 0; i < n; i++) {
        const sig_fleet_relay *r = sig_fleet_get(d->f, i);
        for (int s = 0; s < SIG_FLEET__N; s++) {
            snprintf(lbl, sizeof lbl, "relay=\"%s\",generation=\"%s\",state=\"%s\"", r->r.name,
                     r->r.generation, sig_fleet_state_names[s]);
            rtc_metrics_u64(b, "tsunagu_signal_relay_state", lbl, r->state == (sig_fleet_state)s);
        }
    }
    rtc_metrics_header(b, "tsunagu_signal_canary_share_percent", "gauge",
                       "share of new rooms for a canary generation");
    for (size_t i = 0; i < sig_fleet_canary_count(d->f); i++) {
        const char *g;
        unsigned pct;
        sig_fleet_canary_get(d->f, i, &g, &pct);
        snprintf(lbl, sizeof lbl, "generation=\"%s\"", g);
        rtc_metrics_u64(b, "tsunagu_signal_canary_share_percent", lbl, pct);
    }
    rtc_metrics_header(b, "tsunagu_signal_canary_rollbacks_total", "counter",
                       "canaries this node rolled back (share set to 0: worse than the "
                       "baseline), by generation");
    for (size_t i = 0; i < sig_fleet_gen_count(d->f); i++) {
        const char *g;
        uint64_t rb;
        sig_fleet_gen_get(d->f, i, &g, &rb);
        snprintf(lbl, sizeof lbl, "generation=\"%s\"", g);
        rtc_metrics_u64(b, "tsunagu_signal_canary_rollbacks_total", lbl, rb);
    }
    rtc_metrics_one(b, "tsunagu_signal_relays_changed_total", "counter",
                    "relays-changed messages sent (the room's relay died)", d->relays_changed);
    if (d->src)
        rtc_metrics_one(b, "tsunagu_signal_relay_registry_up", "gauge",
                        "1 while the relay registry (Redis) answers", d->registry_up);
}

/* ---- admin ---- */

static char *canary_json(const sig_fleetd *d)
{
    json_t *j = json_object(), *shares = json_object(), *relays = json_array();
    char *text;
    for (size_t i = 0; i < sig_fleet_canary_count(d->f); i++) {
        const char *g;
        unsigned pct;
        sig_fleet_canary_get(d->f, i, &g, &pct);
        json_object_set_new(shares, g, json_integer(pct));
    }
    for (size_t i = 0; i < sig_fleet_count(d->f); i++) {
        const sig_fleet_relay *r = sig_fleet_get(d->f, i);
        json_array_append_new(relays, json_pack("{s:s, s:s, s:s, s:I, s:I, s:I}", "name",
                                                r->r.name, "generation", r->r.generation,
                                                "state", sig_fleet_state_names[r->state],
                                                "rooms", (json_int_t)r->rooms, "allocations",
                                                (json_int_t)r->r.allocations, "assignments",
                                                (json_int_t)r->assignments));
    }
    json_object_set_new(j, "shares", shares);
    json_object_set_new(j, "relays", relays);
    json_object_set_new(j, "rollbacks", json_integer((json_int_t)sig_fleet_rollbacks(d->f)));
    text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    return text;
}

unsigned sig_fleetd_admin(sig_fleetd *d, const char *method, const char *path, char **body,
                          bool *json)
{
    char g[SIG_FLEET_NAME_MAX], spec[SIG_FLEET_NAME_MAX + 8], err[128];
    const char *rest = path + strlen("/admin/canary"), *slash;
    unsigned pct;
    *json = false;
    if (!d) {
        *body = strdup("the relay fleet is off (no --relay, no --relay-registry)\n");
        return 404;
    }
    if (!*rest) {
        if (strcmp(method, "GET")) {
            *body = strdup("GET only\n");
            return 405;
        }
        *json = true;
        *body = canary_json(d);
        return 200;
    }
    if (strcmp(method, "PUT") && strcmp(method, "POST")) {
        *body = strdup("PUT or POST only\n");
        return 405;
    }
    slash = strrchr(rest, '/');
    if (rest[0] != '/' || slash == rest || (size_t)(slash - rest - 1) >= sizeof g) {
        *body = strdup("expected /admin/canary/GENERATION/PERCENT\n");
        return 400;
    }
    snprintf(spec, sizeof spec, "%.*s=%s", (int)(slash - rest - 1), rest + 1, slash + 1);
    if (sig_fleet_parse_canary(spec, g, sizeof g, &pct, err, sizeof err) ||
        sig_fleet_set_canary(d->f, g, pct)) {
        *body = strdup("expected /admin/canary/GENERATION/PERCENT (0-100, at most 8 "
                       "generations)\n");
        return 400;
    }
    if (d->src)
        sig_fleet_src_put_canary(d->src, g, pct);
    RTC_LOG(RTC_LOG_INFO, "fleet", "admin API: canary generation %s share %u%%", g, pct);
    *json = true;
    *body = canary_json(d);
    return 200;
}
