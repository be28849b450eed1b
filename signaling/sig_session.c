/* sig_session.c - the sessions of tsunagu-signal (see sig_session.h): one
 * per client connection, in a hub of rooms (sig_room), joined locally or
 * through the cluster (sig_cluster: a join first goes to Redis for the room
 * size across nodes and completes when its answer comes back as an event),
 * resumed locally or across nodes (sig_xresume), drained on SIGTERM and
 * reconfigured on SIGHUP. Time-driven work runs from sig_server_tick. */
#include "sig_session.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "rtc_clock.h"
#include "rtc_crypto.h"
#include "rtc_err.h"
#include "rtc_log.h"
#include "rtc_notify.h"
#include "sig_addrlim.h"
#include "sig_cluster.h"
#include "sig_handover.h"
#include "sig_mq.h"
#include "sig_token.h"
#include "sig_turn.h"
#include "sig_xresume.h"

#define LAT_BUCKETS 12
#define EVENT_BUDGET 4096 /* cluster events handled per wake-up before others get a turn */

struct sig_server {
    sig_conf *conf; /* current settings (SIGHUP swaps) */
    sig_conf *boot; /* start-up settings: the transport keeps pointers into it */
    int argc;
    char *const *argv;
    sig_server_ops ops;
    sig_hub *hub;
    sig_cluster *cluster;   /* NULL without --redis */
    sig_handover *handover; /* resume across nodes: the Redis side (with cluster) */
    sig_mq *mq;             /* members' message streams (with cluster) */
    sig_xresume *xr;        /* resume across nodes: this thread's side (with cluster) */
    uint64_t join_serial;
    sig_client *pending;    /* clients with a join waiting for Redis */
    sig_client *clients;
    bool draining;
    uint64_t drain_deadline_us;
    bool stop;
    double start_time;
    /* metrics: plain counters, summed nowhere else (one thread) */
    uint64_t connections;
    uint64_t msgs[SIG_MSG__COUNT + 1]; /* last: invalid */
    uint64_t errors[SIG_E__COUNT];
    rtc_hist latency;
    sig_admit *admit;        /* Origin list, connections per address */
    sig_addrlim *addrlim;    /* held places and room creations per address */
    uint64_t addrlim_sweep_us; /* next sig_addrlim_sweep */
    uint64_t reloads_ok, reloads_failed; /* SIGHUP: a failed one keeps the old settings */
    sig_fleetd *fleet; /* relay placement; NULL without --relay / --relay-registry */
};

static sig_limits limits_of(const sig_conf *c)
{
    sig_limits l = {
        .max_room_size = (uint32_t)c->max_room_size,
        .max_rooms = (uint32_t)c->max_rooms,
        .queue_msgs = (uint32_t)c->send_queue_messages,
        .queue_bytes = (size_t)c->send_queue_bytes,
        .resume_us = (uint64_t)c->resume_seconds * 1000000u,
    };
    return l;
}

static void send_error(sig_client *c, sig_code code, const char *message)
{
    char *t = sig_proto_error(code, message);
    c->srv->errors[code]++;
    if (t)
        sig_hub_send(c->srv->hub, c->m, t, rtc_clock_mono_us());
    free(t);
}

static void hub_detach(void *cp, sig_member *lobby, void *ud)
{
    sig_client *c = cp;
    (void)ud;
    c->m = lobby;
    sig_client_close(c, SIG_CLOSE_RESUMED, "resumed on another connection", false);
}

static void random_hex(char *out, size_t nbytes)
{
    uint8_t b[32];
    if (rtc_random(b, nbytes))
        abort(); /* no CSPRNG: ids would be guessable; refuse to go on */
    rtc_hex(b, nbytes, out);
}

/* ---- cluster mode: joins waiting for Redis, events from it ---- */

static void pending_clear(sig_server *s, sig_client *c)
{
    if (!c->join_serial)
        return;
    if (c->pprev)
        c->pprev->pnext = c->pnext;
    else
        s->pending = c->pnext;
    if (c->pnext)
        c->pnext->pprev = c->pprev;
    c->pprev = c->pnext = NULL;
    c->join_serial = 0;
    free(c->pj_room);
    free(c->pj_name);
    c->pj_room = c->pj_name = NULL;
    json_decref(c->pj_ice);
    c->pj_ice = NULL;
}

/* Join and resume attempts per address (issue 14 item 9): true when this
 * one may go on; otherwise the client was told. */
static bool join_rate_ok(sig_client *c)
{
    const sig_conf *cf = c->srv->conf;
    if (sig_addrlim_join(c->srv->addrlim, &c->addr, (uint32_t)cf->max_joins_per_ip_per_sec,
                         rtc_clock_mono_us()))
        return true;
    send_error(c, SIG_E_RATE_LIMITED, "too many joins from your address; retry in a second");
    return false;
}

/* The connection is in a room: from now on it counts against its
 * address's cap on all connections, no longer on unjoined ones. */
static void note_joined(sig_client *c)
{
    if (c->srv && c->ip_counted && !c->ip_joined && c->m &&
        sig_member_get_state(c->m) == SIG_MEMBER_JOINED) {
        sig_admit_ip_joined(c->srv->admit, &c->addr, true);
        c->ip_joined = true;
    }
}

/* Hand the join to Redis; it completes in on_cluster_joined. Takes ice. */
static void cluster_join(sig_client *c, const char *room, const char *name, const char *id,
                         const char *resume, json_t *ice)
{
    sig_server *s = c->srv;
    int rc;
    c->pj_room = strdup(room);
    c->pj_name = strdup(name ? name : "");
    c->pj_ice = ice;
    snprintf(c->pj_id, sizeof c->pj_id, "%s", id);
    snprintf(c->pj_resume, sizeof c->pj_resume, "%s", resume);
    c->join_serial = ++s->join_serial;
    c->pnext = s->pending;
    c->pprev = NULL;
    if (s->pending)
        s->pending->pprev = c;
    s->pending = c;
    rc = c->pj_room && c->pj_name ? sig_cluster_join(s->cluster, c->join_serial, room, id,
                                                     c->pj_name, resume)
                                  : -ENOMEM;
    if (rc) {
        pending_clear(s, c);
        send_error(c, SIG_E_SERVER_BUSY, rc == RTC_EUNSUP ? "cluster store (Redis) unavailable"
                                                          : "too many joins in flight");
    }
}

static void on_cluster_joined(sig_server *s, sig_cev *e)
{
    sig_client *c = s->pending;
    sig_remote *v;
    sig_join_params p;
    sig_code rc;

    while (c && c->join_serial != e->serial)
        c = c->pnext;
    if (!c) {
        /* the connection went away meanwhile: take the place back */
        if (e->result == SIG_OK)
            sig_cluster_leave(s->cluster, e->room, e->id);
        return;
    }
    if (e->result != SIG_OK) {
        pending_clear(s, c);
        send_error(c, e->result,
                   e->result == SIG_E_ROOM_FULL ? "room is full"
                                                : "cluster store (Redis) unavailable");
        return;
    }
    v = calloc(e->nmembers + 1, sizeof *v);
    for (size_t i = 0; v && i < e->nmembers; i++)
        v[i] = (sig_remote){.id = e->members[i].id, .name = e->members[i].name};
    p = (sig_join_params){.room = c->pj_room, .name = c->pj_name, .id = c->pj_id,
                          .resume = c->pj_resume, .ice_servers = c->pj_ice, .remotes = v,
                          .nremotes = e->nmembers, .admitted = true};
    rc = v ? sig_hub_join(s->hub, c->m, &p, rtc_clock_mono_us()) : SIG_E_SERVER_BUSY;
    free(v);
    if (rc) {
        sig_cluster_leave(s->cluster, e->room, e->id);
        send_error(c, rc, rc == SIG_E_ROOM_FULL ? "room is full" : "too many rooms");
    } else {
        RTC_LOG(RTC_LOG_INFO, c->pj_id, "joined room '%s' from %s (cluster)", c->pj_room, c->peer);
        note_joined(c);
    }
    pending_clear(s, c);
}

static void on_cluster_event(sig_server *s, sig_cev *e, uint64_t t)
{
    switch (e->kind) {
    case SIG_CEV_JOINED:
        on_cluster_joined(s, e);
        break;
    case SIG_CEV_SYNC: {
        sig_remote *v = calloc(e->nmembers + 1, sizeof *v);
        if (!v)
            break;
        for (size_t i = 0; i < e->nmembers; i++)
            v[i] = (sig_remote){.id = e->members[i].id, .name = e->members[i].name};
        sig_hub_remote_sync(s->hub, e->room, v, e->nmembers, t);
        free(v);
        break;
    }
    case SIG_CEV_PEER_JOINED:
        if (sig_xresume_open(s->xr))
            sig_xresume_capture(s->xr, e, t, (size_t)s->conf->send_queue_messages,
                                (size_t)s->conf->send_queue_bytes);
        if (!e->own) /* our own: only passed on for a hand-over, never applied */
            sig_hub_remote_join(s->hub, e->room, e->id, e->name, t);
        break;
    case SIG_CEV_PEER_LEFT:
        if (sig_xresume_open(s->xr))
            sig_xresume_capture(s->xr, e, t, (size_t)s->conf->send_queue_messages,
                                (size_t)s->conf->send_queue_bytes);
        sig_hub_remote_leave(s->hub, e->room, e->id, t);
        break;
    case SIG_CEV_SIGNAL:
        if (sig_xresume_open(s->xr))
            sig_xresume_capture(s->xr, e, t, (size_t)s->conf->send_queue_messages,
                                (size_t)s->conf->send_queue_bytes);
        if (!e->own)
            sig_hub_remote_deliver_x(s->hub, e->room, e->to, e->id, e->data, e->x, t);
        break;
    case SIG_CEV_BROADCAST:
        if (sig_xresume_open(s->xr))
            sig_xresume_capture(s->xr, e, t, (size_t)s->conf->send_queue_messages,
                                (size_t)s->conf->send_queue_bytes);
        if (!e->own)
            sig_hub_remote_deliver_x(s->hub, e->room, NULL, e->id, e->data, e->x, t);
        break;
    case SIG_CEV_HO_REQUEST:
        sig_xresume_request(s->xr, e, t);
        break;
    case SIG_CEV_HO_MARK:
        sig_xresume_mark(s->xr, e);
        break;
    case SIG_CEV_HO_DONE:
        sig_xresume_done(s->xr, e, t, (uint32_t)s->conf->resume_seconds);
        break;
    case SIG_CEV_HO_FENCE:
        sig_xresume_fence(s->xr, e);
        break;
    default:
        break;
    }
}

/* Handle what the Redis thread has queued, a bounded number at a time. */
bool sig_server_cluster_events(sig_server *s)
{
    uint64_t t = rtc_clock_mono_us();
    sig_cev *e;
    unsigned n = 0;
    if (!s->cluster)
        return false;
    while (n++ < EVENT_BUDGET && (e = sig_cluster_poll(s->cluster))) {
        on_cluster_event(s, e, t);
        sig_cev_free(e);
    }
    return n > EVENT_BUDGET; /* more waiting: come back after the others */
}

static void cluster_wake(void *ud)
{
    sig_server *s = ud;
    s->ops.poke(s->ops.ud);
}

static int hub_remote(void *ud, const char *room, const char *to, const char *from, json_t *data)
{
    sig_server *s = ud;
    return s->cluster ? sig_cluster_publish(s->cluster, room, to, from, data) : RTC_EUNSUP;
}

static void hub_left(void *ud, const char *room, const char *id, bool room_empty)
{
    sig_server *s = ud;
    if (s->fleet) /* (sig_cluster keeps its own count of local members per room) */
        sig_fleetd_left(s->fleet, room, id, room_empty);
    sig_addrlim_unhold(s->addrlim, id); /* (a no-op unless it was held) */
    if (s->cluster)
        sig_cluster_leave(s->cluster, room, id);
}

static void do_join(sig_client *c, const sig_msg *msg)
{
    sig_server *s = c->srv;
    const sig_conf *cf = s->conf;
    char id[SIG_ID_LEN + 1], resume[33], turn_id[SIG_TURN_ID_LEN + 1] = "";
    sig_token_claims claims;
    const char *name = msg->name, *why;
    sig_join_params p;
    json_t *ice;
    sig_code rc;

    if (s->draining) {
        send_error(c, SIG_E_SERVER_BUSY, "server is shutting down");
        return;
    }
    if (sig_member_get_state(c->m) != SIG_MEMBER_LOBBY) {
        send_error(c, SIG_E_BAD_REQUEST, "already in a room; leave first");
        return;
    }
    sig_member_set_numbered(c->m, msg->seq);
    if (c->join_serial || c->ho) {
        send_error(c, SIG_E_BAD_REQUEST, "a join or resume is in progress");
        return;
    }
    if (!join_rate_ok(c))
        return;
    if (s->cluster && !sig_cluster_up(s->cluster)) {
        send_error(c, SIG_E_SERVER_BUSY, "cluster store (Redis) unavailable");
        return;
    }
    if (cf->token_secret.n) {
        if (!msg->token) {
            send_error(c, SIG_E_UNAUTHORIZED, "this server needs an access token");
            return;
        }
        if (sig_token_verify_any(msg->token, cf->token_secret.v, cf->token_secret.n, msg->room,
                                 rtc_clock_wall_s(), &claims, &why)) {
            RTC_LOG(RTC_LOG_INFO, c->peer, "join refused: %s", why);
            send_error(c, SIG_E_UNAUTHORIZED, why);
            return;
        }
        if (claims.name[0])
            name = claims.name;
        RTC_LOG(RTC_LOG_DEBUG, c->peer, "token accepted for sub '%s'", claims.sub);
    }
    /* a room made here is charged to the address (sig_addrlim.h) */
    if (!sig_hub_room_exists(s->hub, msg->room) &&
        !sig_addrlim_create(s->addrlim, &c->addr, (uint32_t)cf->max_room_creates_per_ip_per_min,
                            rtc_clock_mono_us())) {
        RTC_LOG(RTC_LOG_INFO, c->peer, "join refused: max-room-creates-per-ip-per-min (%lld)",
                (long long)cf->max_room_creates_per_ip_per_min);
        send_error(c, SIG_E_RATE_LIMITED,
                   "too many new rooms from your address; join an existing room or wait");
        return;
    }
    random_hex(id, SIG_ID_LEN / 2);
    random_hex(resume, 16);
    /* not the member id: the relay's per-user quota counts by this ID */
    if (cf->turn_secret &&
        sig_turn_identity(cf->turn_secret, cf->token_secret.n ? claims.sub : NULL, &c->addr,
                          turn_id))
        ice = NULL;
    else if (!s->fleet || !(ice = sig_fleetd_ice(s->fleet, cf, msg->room, id, turn_id)))
        ice = sig_turn_ice_servers(cf->turn_url.v, cf->turn_url.n, cf->turn_secret,
                                   cf->turn_secret ? strlen(cf->turn_secret) : 0, turn_id,
                                   rtc_clock_wall_s(), (uint64_t)cf->turn_ttl);
    if (!ice) {
        send_error(c, SIG_E_SERVER_BUSY, "out of memory");
        return;
    }
    if (s->cluster) {
        /* refused before the other nodes hear of it (they would see the
         * member come and go) */
        if (!sig_hub_room_allowed(s->hub, msg->room)) {
            json_decref(ice);
            send_error(c, SIG_E_SERVER_BUSY, "too many rooms");
            return;
        }
        cluster_join(c, msg->room, name, id, resume, ice);
        return;
    }
    p = (sig_join_params){.room = msg->room, .name = name, .id = id, .resume = resume,
                          .ice_servers = ice};
    rc = sig_hub_join(s->hub, c->m, &p, rtc_clock_mono_us());
    json_decref(ice);
    if (rc) {
        send_error(c, rc, rc == SIG_E_ROOM_FULL ? "room is full" : "too many rooms");
        return;
    }
    RTC_LOG(RTC_LOG_INFO, id, "joined room '%s' from %s", msg->room, c->peer);
}

static void do_resume(sig_client *c, const sig_msg *msg)
{
    sig_code rc;
    if (c->srv->draining) {
        send_error(c, SIG_E_SERVER_BUSY, "server is shutting down");
        return;
    }
    if (c->join_serial || c->ho) {
        send_error(c, SIG_E_BAD_REQUEST, "a join or resume is in progress");
        return;
    }
    if (!join_rate_ok(c))
        return;
    sig_member_number_from(c->m, msg->has_last, msg->last); /* (for an adoption) */
    rc = sig_hub_resume(c->srv->hub, &c->m, msg->token, rtc_clock_mono_us());
    if (rc == SIG_E_UNAUTHORIZED && c->srv->cluster) {
        /* not here: perhaps on another node (non-sticky load balancer,
         * rolling restart); its node hands it over */
        const char *why = NULL;
        sig_code busy = sig_xresume_ask(c->srv->xr, c, ++c->srv->join_serial, msg->token,
                                        rtc_clock_mono_us(), &why);
        if (busy)
            send_error(c, busy, why);
        return;
    }
    if (rc == SIG_OK && c->srv->cluster)
        sig_handover_token_ttl(c->srv->handover, msg->token, sig_member_id(c->m),
                               0); /* attached again */
    if (rc == SIG_OK) /* its place is no longer held: it has a connection again */
        sig_addrlim_unhold(c->srv->addrlim, sig_member_id(c->m));
    if (rc) {
        send_error(c, rc,
                   rc == SIG_E_UNAUTHORIZED ? "unknown or expired resume token"
                                            : "already in a room; leave first");
        return;
    }
    RTC_LOG(RTC_LOG_INFO, sig_member_id(c->m), "resumed from %s", c->peer);
}

void sig_client_message(sig_client *c, const char *buf, size_t len)
{
    sig_server *s = c->srv;
    uint64_t t = rtc_clock_mono_us();
    const char *why = NULL;
    sig_msg msg;
    sig_code rc = SIG_OK;

    c->nmsgs++;
    if (!sig_rate_take(&c->rate, (uint32_t)s->conf->rate_limit, t)) {
        if (t - c->rate.limited_since_us >= (uint64_t)s->conf->abuse_seconds * 1000000u) {
            RTC_LOG(RTC_LOG_INFO, c->peer, "closing: over the rate limit for %llds",
                    (long long)s->conf->abuse_seconds);
            sig_client_close(c, SIG_CLOSE_POLICY, "rate limit exceeded", false);
            return;
        }
        /* One error a second is enough to tell the client; more would only
         * feed the flood back to it. The other dropped messages still count. */
        if (t - c->last_rl_error_us >= 1000000u || !c->last_rl_error_us) {
            c->last_rl_error_us = t;
            send_error(c, SIG_E_RATE_LIMITED, "too many messages; slow down");
        } else {
            s->errors[SIG_E_RATE_LIMITED]++;
        }
        return;
    }
    if (sig_proto_parse(buf, len, &msg, &why)) {
        s->msgs[SIG_MSG__COUNT]++;
        send_error(c, SIG_E_BAD_REQUEST, why);
        return;
    }
    s->msgs[msg.type]++;
    switch (msg.type) {
    case SIG_MSG_JOIN:
        do_join(c, &msg);
        break;
    case SIG_MSG_SIGNAL:
        rc = sig_hub_signal(s->hub, c->m, msg.to, msg.data, t);
        break;
    case SIG_MSG_BROADCAST:
        rc = sig_hub_broadcast(s->hub, c->m, msg.data, t);
        break;
    case SIG_MSG_LEAVE:
        rc = sig_hub_leave(s->hub, c->m, t);
        break;
    case SIG_MSG_PING: {
        char *pong = sig_proto_pong();
        if (pong)
            sig_hub_send(s->hub, c->m, pong, t);
        free(pong);
        break;
    }
    case SIG_MSG_RESUME:
        do_resume(c, &msg);
        break;
    default:
        rc = SIG_E_BAD_REQUEST;
        break;
    }
    if (rc)
        send_error(c, rc,
                   rc == SIG_E_NOT_JOINED     ? "join a room first"
                   : rc == SIG_E_UNKNOWN_PEER ? "no such peer in this room"
                   : rc == SIG_E_SERVER_BUSY  ? "cannot reach other nodes now (Redis); try again"
                                              : "bad request");
    sig_msg_dispose(&msg);
    note_joined(c); /* (a resume adopted from another node is noted here too, late) */
}

void sig_server_metrics(sig_server *s, rtc_buf *b)
{
    static const char *const type_labels[SIG_MSG__COUNT + 1] = {
        "join", "signal", "broadcast", "leave", "ping", "resume", "invalid"};
    sig_hub_stats st;
    char lbl[64];

    sig_hub_get_stats(s->hub, &st);
    rtc_metrics_header(b, "tsunagu_signal_connections", "gauge", "open WebSocket connections");
    rtc_metrics_u64(b, "tsunagu_signal_connections", NULL, s->connections);
    rtc_metrics_header(b, "tsunagu_signal_rooms", "gauge", "rooms with at least one member");
    rtc_metrics_u64(b, "tsunagu_signal_rooms", NULL, st.rooms);
    rtc_metrics_header(b, "tsunagu_signal_members", "gauge",
                       "members in rooms, including those detached awaiting resume");
    rtc_metrics_u64(b, "tsunagu_signal_members", NULL, st.members);
    rtc_metrics_header(b, "tsunagu_signal_messages_total", "counter",
                       "client messages received, by type");
    for (int i = 0; i <= SIG_MSG__COUNT; i++) {
        snprintf(lbl, sizeof lbl, "type=\"%s\"", type_labels[i]);
        rtc_metrics_u64(b, "tsunagu_signal_messages_total", lbl, s->msgs[i]);
    }
    rtc_metrics_header(b, "tsunagu_signal_errors_total", "counter", "error messages, by code");
    for (int i = 1; i < SIG_E__COUNT; i++) {
        snprintf(lbl, sizeof lbl, "code=\"%s\"", sig_code_name((sig_code)i));
        rtc_metrics_u64(b, "tsunagu_signal_errors_total", lbl, s->errors[i]);
    }
    sig_admit_metrics(s->admit, b);
    sig_addrlim_metrics(s->addrlim, b);
    if (s->fleet)
        sig_fleetd_metrics(s->fleet, b);
    rtc_metrics_reloads(b, "tsunagu_signal", s->reloads_ok, s->reloads_failed);
    rtc_metrics_hist(b, "tsunagu_signal_message_latency_seconds",
                     "time from a message being queued to its lws_write", &s->latency);
    if (s->cluster) {
        sig_cluster_stats cs;
        sig_handover_stats hs;
        sig_cluster_get_stats(s->cluster, &cs);
        sig_handover_get_stats(s->handover, &hs);
        rtc_metrics_one(b, "tsunagu_signal_redis_up", "gauge",
                        "1 while connected to Redis (cluster mode)", cs.up);
        rtc_metrics_one(b, "tsunagu_signal_remote_members", "gauge",
                        "members on other nodes in rooms with a member here", st.remote);
        rtc_metrics_one(b, "tsunagu_signal_cluster_published_total", "counter",
                        "signals and broadcasts handed to Redis for other nodes", cs.published);
        rtc_metrics_one(b, "tsunagu_signal_cluster_received_total", "counter",
                        "events from other nodes taken from Redis", cs.received);
        rtc_metrics_one(b, "tsunagu_signal_cluster_dropped_total", "counter",
                        "messages from Redis dropped: too large, malformed, or queue full",
                        cs.dropped);
        rtc_metrics_one(b, "tsunagu_signal_redis_reconnects_total", "counter",
                        "times the connection to Redis was re-established", cs.reconnects);
        rtc_metrics_one(b, "tsunagu_signal_cluster_reaped_nodes_total", "counter",
                        "dead nodes whose members this node removed", cs.reaped_nodes);
        rtc_metrics_one(b, "tsunagu_signal_cluster_replayed_total", "counter",
                        "signals and broadcasts read from room streams after a reconnection",
                        cs.replayed);
        rtc_metrics_one(b, "tsunagu_signal_cluster_resent_total", "counter",
                        "signals and broadcasts sent to Redis again after a lost connection",
                        cs.resent);
        rtc_metrics_header(b, "tsunagu_signal_cluster_handovers_total", "counter",
                           "resume across nodes: hand-overs asked for by this node, by result, "
                           "and members given to other nodes (given)");
        {
            static const char *const lbl_ho[] = {"ok", "unknown", "refused", "timeout", "failed",
                                                 "given"};
            uint64_t ok, failed;
            sig_xresume_counts(s->xr, &ok, &failed);
            uint64_t val[] = {ok, hs.unknown, hs.refused, hs.timeout, failed, hs.given};
            for (size_t i = 0; i < sizeof val / sizeof val[0]; i++) {
                snprintf(lbl, sizeof lbl, "result=\"%s\"", lbl_ho[i]);
                rtc_metrics_u64(b, "tsunagu_signal_cluster_handovers_total", lbl, val[i]);
            }
        }
    }
    rtc_metrics_build_info(b);
    rtc_metrics_process(b, s->start_time);
}

/* ---- admission: Origin list and connections per address (sig_admit.h) ---- */

/* Install the current settings' admission policy and say what it is. The
 * list was validated with the rest of the settings, so only ENOMEM fails. */
static void admit_configure(sig_server *s, const char *why)
{
    const sig_conf *cf = s->conf;
    int rc = sig_admit_configure(s->admit, (const char *const *)cf->allowed_origin.v,
                                 cf->allowed_origin.n, (uint32_t)cf->max_connections_per_ip);
    if (rc) {
        RTC_LOG(RTC_LOG_ERROR, NULL, "%sadmission policy not applied (%s); the old one stays", why,
                rtc_strerror(rc));
        return;
    }
    sig_admit_set_unjoined_cap(s->admit, (uint32_t)cf->max_unjoined_per_ip);
    RTC_LOG(RTC_LOG_INFO, NULL,
            "%sadmission: allowed-origin %s, max-connections-per-ip %lld, "
            "max-unjoined-per-ip %lld", why,
            !cf->allowed_origin.n ? "not set (any web page may connect; set it in production)"
                                  : "set",
            (long long)cf->max_connections_per_ip, (long long)cf->max_unjoined_per_ip);
}

static void reload(sig_server *s)
{
    sig_conf *fresh = calloc(1, sizeof *fresh);
    const char *keys[8];
    bool listen = false, redis = false;
    size_t nk;
    char err[512];
    if (!fresh || sig_conf_load(fresh, s->argc, s->argv, err, sizeof err)) {
        RTC_LOG(RTC_LOG_ERROR, NULL, "SIGHUP: reload failed, keeping the old settings: %s",
                fresh ? err : "out of memory");
        free(fresh);
        s->reloads_failed++;
        return;
    }
    /* the settings table says which keys a running server cannot change
     * (RTC_CONF_RESTART): the listener's, and the cluster's */
    nk = rtc_conf_restart_changed(sig_conf_specs, s->boot, fresh, keys, 8);
    for (size_t i = 0; i < nk && i < 8; i++) {
        if (!strncmp(keys[i], "redis", 5))
            redis = true;
        else
            listen = true;
    }
    if (listen)
        RTC_LOG(RTC_LOG_WARN, NULL, "SIGHUP: listen/cert changes need a restart; ignored");
    {
        sig_limits l = limits_of(fresh);
        sig_hub_set_limits(s->hub, &l);
    }
    if (s->cluster)
        sig_cluster_set_max_room_size(s->cluster, (uint32_t)fresh->max_room_size);
    if (redis)
        RTC_LOG(RTC_LOG_WARN, NULL, "SIGHUP: redis settings change needs a restart; ignored");
    s->ops.reloaded(s->ops.ud, fresh); /* the transport's part: idle timeouts, TLS */
    if (s->conf != s->boot) {
        sig_conf_dispose(s->conf);
        free(s->conf);
    }
    s->conf = fresh;
    admit_configure(s, "SIGHUP: ");
    RTC_LOG(RTC_LOG_INFO, NULL,
            "SIGHUP: reloaded secrets and limits (max-room-size %lld, max-rooms %lld, "
            "max-message-bytes %lld, rate-limit %lld, token auth %s)",
            (long long)fresh->max_room_size, (long long)fresh->max_rooms,
            (long long)fresh->max_message_bytes, (long long)fresh->rate_limit,
            fresh->token_secret.n ? "on" : "off");
    s->reloads_ok++;
}

static void start_drain(sig_server *s, uint64_t t)
{
    s->draining = true;
    s->drain_deadline_us = t + (uint64_t)s->conf->drain_seconds * 1000000u;
    rtc_notify("STOPPING=1"); /* under systemd: the stop has begun; else a no-op */
    RTC_LOG(RTC_LOG_INFO, NULL, "SIGTERM: draining %llu connections for %llds",
            (unsigned long long)s->connections, (long long)s->conf->drain_seconds);
    /* Tell every member now so clients can reconnect elsewhere at their
     * own pace; their connections keep working until the deadline. The
     * "drain" field tells this notice from other server-busy errors (a full
     * Redis queue...) and says what to do: in cluster mode every member can
     * resume at once on another node (the old connection is closed with 4001
     * once it moved: nothing is lost); alone, this node is going away and a
     * client can only come back after the close. */
    for (sig_client *c = s->clients; c; c = c->next) {
        char *text = sig_proto_drain("server is shutting down; reconnect later",
                                     s->cluster ? "resume" : "reconnect");
        s->errors[SIG_E_SERVER_BUSY]++;
        if (text)
            sig_hub_send(s->hub, c->m, text, t);
        free(text);
    }
}

void sig_server_reload(sig_server *s) { reload(s); }

void sig_server_terminate(sig_server *s, uint64_t t)
{
    if (!s->draining)
        start_drain(s, t);
    else
        s->drain_deadline_us = t; /* second SIGTERM: stop now */
}

bool sig_server_tick(sig_server *s, uint64_t t)
{
    if (t >= sig_hub_next_deadline(s->hub))
        sig_hub_tick(s->hub, t);
    if (t >= s->addrlim_sweep_us) {
        sig_addrlim_sweep(s->addrlim, (uint32_t)s->conf->max_room_creates_per_ip_per_min,
                          (uint32_t)s->conf->max_joins_per_ip_per_sec, t);
        s->addrlim_sweep_us = t + 1000000u;
    }
    if (s->fleet)
        sig_fleetd_tick(s->fleet, s->conf, s->hub, t);
    if (s->cluster && sig_server_cluster_events(s)) /* (events normally come at once) */
        s->ops.poke(s->ops.ud);
    if (s->xr && sig_xresume_open(s->xr))
        sig_xresume_expire(s->xr, t);
    if (s->draining) {
        sig_hub_stats hs;
        sig_hub_get_stats(s->hub, &hs);
        /* cluster mode: members kept for resume wait (until the deadline)
         * for another node to ask for them */
        if (!s->clients && (!s->cluster || !hs.detached || t >= s->drain_deadline_us)) {
            s->stop = true;
        } else if (t >= s->drain_deadline_us) {
            for (sig_client *c = s->clients; c; c = c->next)
                sig_client_close(c, SIG_CLOSE_GOING_AWAY, "server shutting down", false);
            if (t >= s->drain_deadline_us + 3000000u)
                s->stop = true; /* a peer that does not answer the close */
        }
    }
    return s->stop;
}

/* ---- clients ---- */

void sig_client_close(sig_client *c, int code, const char *reason, bool keep)
{
    if (c->close_code)
        return;
    c->close_code = code;
    c->close_reason = reason;
    c->keep = keep;
    c->srv->ops.close(c->ud);
}

void sig_client_refuse(sig_client *c, sig_code code, const char *message)
{
    c->srv->msgs[SIG_MSG__COUNT]++;
    send_error(c, code, message);
}

static void tell(sig_client *c, sig_code code, const char *message)
{
    send_error(c, code, message);
}

static void hub_wake(void *cp, void *ud)
{
    sig_client *c = cp;
    (void)ud;
    c->srv->ops.wake(c->ud);
}

int sig_client_open(sig_server *s, sig_client *c, void *conn, const char *peer,
                    const rtc_addr *addr, uint64_t t)
{
    memset(c, 0, sizeof *c);
    c->ud = conn;
    if (!(c->m = sig_hub_connect(s->hub, c)))
        return -1;
    /* only now: closed undoes what c->srv says was done (connections++) */
    c->srv = s;
    sig_rate_init(&c->rate, (uint32_t)s->conf->rate_limit, t);
    snprintf(c->peer, sizeof c->peer, "%s", peer);
    c->addr = *addr;
    c->opened_us = t;
    c->ip_counted = !sig_admit_ip_add(s->admit, &c->addr);
    c->keep = true;
    c->next = s->clients;
    if (s->clients)
        s->clients->prev = c;
    s->clients = c;
    s->connections++;
    return 0;
}

void sig_client_closed(sig_client *c, uint64_t t)
{
    sig_server *s = c->srv;
    if (!s)
        return;
    pending_clear(s, c); /* its answer, if it comes, finds nobody and undoes the join */
    if (c->ho) /* the hand-over goes on: the member is kept for resume here */
        sig_xresume_client_gone(s->xr, c);
    if (c->m) {
        /* A draining node in cluster mode keeps its members for resume:
         * they come back on another node, which asks for them. */
        bool keep = c->keep && (!s->draining || s->cluster);
        if (sig_member_get_state(c->m) == SIG_MEMBER_JOINED) {
            bool kept = keep && !sig_member_overflowed(c->m) && s->conf->resume_seconds > 0;
            /* a held place counts against its address; past the cap the
             * member leaves now (issue 14 item 1: drops in a loop filled
             * max-rooms). +5 s: sweep only catches what no leave reported. */
            if (kept && !sig_addrlim_hold(s->addrlim, &c->addr, sig_member_id(c->m),
                                          (uint32_t)s->conf->max_held_per_ip,
                                          t + ((uint64_t)s->conf->resume_seconds + 5) * 1000000u)) {
                kept = keep = false;
                RTC_LOG(RTC_LOG_INFO, sig_member_id(c->m),
                        "not kept for resume: %s holds max-held-per-ip (%lld) places", c->peer,
                        (long long)s->conf->max_held_per_ip);
            }
            RTC_LOG(RTC_LOG_INFO, sig_member_id(c->m), "connection closed%s",
                    kept ? ", kept for resume" : "");
            if (kept && s->cluster)
                sig_handover_token_ttl(s->handover, sig_member_resume(c->m),
                                       sig_member_id(c->m),
                                       (uint32_t)s->conf->resume_seconds + 5);
        }
        sig_hub_disconnect(s->hub, c->m, keep, t);
    }
    if (c->prev)
        c->prev->next = c->next;
    else
        s->clients = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->connections--;
    if (c->ip_joined)
        sig_admit_ip_joined(s->admit, &c->addr, false);
    if (c->ip_counted)
        sig_admit_ip_del(s->admit, &c->addr);
    c->srv = NULL;
}

/* ---- the server ---- */

sig_server *sig_server_new(sig_conf *conf, int argc, char *const argv[],
                           const sig_server_ops *ops)
{
    static const double lat_bounds[LAT_BUCKETS] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                                   0.01,   0.025,   0.05,   0.1,   0.25,   1.0};
    sig_server *s = calloc(1, sizeof *s);
    sig_limits lim;
    sig_hub_ops hops;
    uint64_t seed;

    if (!s) {
        sig_conf_dispose(conf);
        return NULL;
    }
    s->conf = s->boot = conf;
    s->argc = argc;
    s->argv = argv;
    s->ops = *ops;
    s->start_time = (double)rtc_clock_wall_s();
    rtc_hist_init(&s->latency, lat_bounds, LAT_BUCKETS);
    lim = limits_of(conf);
    /* left: always, a held place ends with its member (sig_addrlim) */
    hops = (sig_hub_ops){.wake = hub_wake, .detach = hub_detach, .left = hub_left, .ud = s,
                         .headroom = ops->headroom};
    if (conf->redis)
        hops.remote = hub_remote;
    if (!(s->hub = sig_hub_new(&lim, &hops)))
        goto fail;
    if (rtc_random(&seed, sizeof seed) || !(s->admit = sig_admit_new(seed)) ||
        !(s->addrlim = sig_addrlim_new()) || sig_fleetd_new(conf, &s->fleet))
        goto fail;
    admit_configure(s, "");
    return s;
fail:
    sig_server_free(s);
    return NULL;
}

int sig_server_start(sig_server *s)
{
    const sig_conf *conf = s->boot;
    sig_cluster_params cp = {
        .url = conf->redis,
        .max_room_size = (uint32_t)conf->max_room_size,
        .node_ttl_s = (uint32_t)conf->redis_node_ttl,
        .queue = (size_t)conf->redis_queue,
        .stream_len = (uint32_t)conf->redis_stream_len,
        .stream_ms = (uint64_t)conf->redis_stream_seconds * 1000u,
        /* a client message re-serialized (numbers can grow: 1e9 is
         * 1000000000.0) plus its envelope; nothing bigger is parsed */
        .max_payload = (size_t)conf->max_message_bytes * 8 + 4096,
        .wake = cluster_wake,
        .ud = s,
    };
    sig_handover_params hp = {.queue_msgs = (uint32_t)conf->send_queue_messages,
                              .queue_bytes = (size_t)conf->send_queue_bytes,
                              .max_hops_per_min = (uint32_t)conf->max_resumes_per_member_per_min};
    sig_mq_params mp = {.maxlen = (uint32_t)conf->send_queue_messages * 2,
                        .ttl_s = (uint32_t)conf->resume_seconds + 10};
    sig_xresume_params xp;
    char err[512];
    if (!conf->redis)
        return 0;
    if (sig_cluster_new(&cp, &s->cluster, err, sizeof err)) {
        RTC_LOG(RTC_LOG_ERROR, NULL, "redis: %s", err);
        return -1;
    }
    if (!(s->handover = sig_handover_new(s->cluster, &hp)) ||
        !(s->mq = sig_mq_new(s->cluster, s->hub, &mp))) {
        RTC_LOG(RTC_LOG_ERROR, NULL, "redis: out of memory");
        return -1;
    }
    xp = (sig_xresume_params){
        .hub = s->hub, .cluster = s->cluster, .handover = s->handover, .tell = tell};
    if (!(s->xr = sig_xresume_new(&xp))) {
        RTC_LOG(RTC_LOG_ERROR, NULL, "redis: out of memory");
        return -1;
    }
    if (sig_cluster_start(s->cluster, err, sizeof err)) {
        RTC_LOG(RTC_LOG_ERROR, NULL, "redis: %s", err);
        return -1;
    }
    return 0;
}

void sig_server_mute(sig_server *s)
{
    /* the Redis thread must not poke a transport being destroyed; the leaves
     * the closing connections cause are still queued, then flushed at free */
    if (s)
        sig_cluster_mute(s->cluster);
}

void sig_server_free(sig_server *s)
{
    if (!s)
        return;
    sig_cluster_free(s->cluster);
    sig_handover_free(s->handover);
    sig_mq_free(s->mq);
    sig_xresume_free(s->xr);
    if (s->admit && sig_admit_ip_entries(s->admit)) /* every close has run: counts must be 0 */
        RTC_LOG(RTC_LOG_ERROR, NULL, "bug: %zu client addresses still counted at exit",
                sig_admit_ip_entries(s->admit));
    sig_admit_free(s->admit);
    sig_hub_free(s->hub);
    sig_addrlim_free(s->addrlim); /* after the hub: its members' leaves unhold */
    sig_fleetd_free(s->fleet);    /* after the hub: its members' leaves are told */
    if (s->conf != s->boot) {
        sig_conf_dispose(s->conf);
        free(s->conf);
    }
    sig_conf_dispose(s->boot);
    free(s);
}

const sig_conf *sig_server_conf(const sig_server *s) { return s->conf; }
const sig_conf *sig_server_boot(const sig_server *s) { return s->boot; }
sig_admit *sig_server_admission(sig_server *s) { return s->admit; }
uint64_t sig_server_connections(const sig_server *s) { return s->connections; }
bool sig_server_draining(const sig_server *s) { return s->draining; }

const char *sig_server_unhealthy(sig_server *s)
{
    if (s->draining)
        return "draining\n";
    if (s->cluster && !sig_cluster_up(s->cluster))
        return "redis unavailable\n";
    return NULL;
}

sig_hub *sig_server_hub(sig_server *s) { return s->hub; }
sig_fleetd *sig_server_fleet(sig_server *s) { return s->fleet; }
const char *sig_server_node(const sig_server *s)
{
    return s->cluster ? sig_cluster_node(s->cluster) : NULL;
}

uint64_t sig_server_messages_total(const sig_server *s)
{
    uint64_t n = 0;
    for (int i = 0; i <= SIG_MSG__COUNT; i++)
        n += s->msgs[i];
    return n;
}

void sig_server_kick(sig_server *s, sig_member *m, const char *message)
{
    sig_client *c = sig_member_get_state(m) == SIG_MEMBER_JOINED ? sig_member_conn(m) : NULL;
    RTC_LOG(RTC_LOG_INFO, sig_member_id(m), "removed by the admin API: %s", message);
    if (!c) { /* detached: nobody to tell; its place goes now */
        sig_hub_disconnect(s->hub, m, false, rtc_clock_mono_us());
        return;
    }
    send_error(c, SIG_E_KICKED, message);
    sig_client_close(c, SIG_CLOSE_KICKED, "kicked", false);
}

void sig_server_sent(sig_server *s, uint64_t queued_us, uint64_t now)
{
    rtc_hist_observe(&s->latency, (double)(now - queued_us) / 1e6);
}
