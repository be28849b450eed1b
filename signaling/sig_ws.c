/* sig_ws.c - the libwebsockets adapter of tsunagu-signal: the only file that
 * includes libwebsockets. One lws service thread; every protocol decision is
 * made by sig_proto / sig_room / sig_token / sig_turn, called from here.
 *
 * HTTP: GET / (demo page, embedded at build time), /app.js, /metrics,
 * /healthz. WebSocket: /ws only. Each connection owns one sig_member (see
 * sig_room.h) whose bounded queue feeds exactly one lws_write per WRITEABLE
 * callback. Time-driven work (resume expiry, drain, signals) runs from one
 * 100 ms lws_sul timer.
 *
 * Cluster mode (--redis, sig_cluster.h): a join first goes to Redis (room
 * size across nodes) and completes when its answer comes back as an event;
 * the Redis thread announces events with lws_cancel_service and they are
 * handled in LWS_CALLBACK_EVENT_WAIT_CANCELLED, on this thread. */
#include <errno.h>
#include <stdio.h>
#include <libwebsockets.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "rtc_addr.h"
#include "rtc_clock.h"
#include "rtc_crypto.h"
#include "rtc_err.h"
#include "rtc_log.h"
#include "rtc_metrics.h"
#include "sig_admit.h"
#include "sig_cluster.h"
#include "sig_handover.h"
#include "sig_conf.h"
#include "sig_proto.h"
#include "sig_room.h"
#include "sig_token.h"
#include "sig_turn.h"
#include "sig_www.h"

#define TICK_US 100000
#define OVERSIZE_CLOSE 3 /* oversized messages before the connection is closed */
#define LAT_BUCKETS 12
#define EVENT_BUDGET 4096 /* cluster events handled per wake-up before others get a turn */

/* WebSocket close codes we use (RFC 6455 s.7.4.1, 4000-4999 private). */
enum {
    CLOSE_GOING_AWAY = 1001,  /* drain: the server is shutting down */
    CLOSE_POLICY = 1008,      /* rate-limit abuse, slow reader */
    CLOSE_TOO_BIG = 1009,     /* repeated oversized messages */
    CLOSE_RESUMED = 4001      /* this member was resumed on another connection */
};

typedef struct conn conn;
typedef struct server server;

/* A resume hand-over this node asked for (cluster mode; see "Hand-over" in
 * sig_handover.c): from the moment the request went through the room's
 * channel (marked) until the owner's reply, the member's signals and
 * broadcasts are kept here, to be delivered after the owner's queue. */
typedef struct ho {
    struct ho *next;
    uint64_t serial;
    conn *c;     /* the resuming connection; NULL once it closed */
    char *token; /* what the client sent: the member keeps it */
    char room[SIG_ROOM_MAX + 1], id[SIG_ID_MAX + 1], owner[17];
    bool marked, overflow;
    uint64_t mark_drops; /* cluster events dropped before the MARK */
    bool adopted; /* the member is here; our own publishes before that still come back */
    size_t ntail; /* adopted: our own earlier publishes passed on through the tail */
    uint64_t deadline_us; /* a last resort if the Redis thread's answer never comes */
    char **buf;  /* rendered messages, in arrival order */
    size_t nbuf, cap, bytes;
} ho;

struct conn {
    server *srv;
    struct lws *wsi;
    conn *prev, *next;
    sig_member *m;
    sig_rate rate;
    uint64_t last_rl_error_us;
    char *rx;          /* reassembly of a fragmented message, at most max bytes */
    size_t rxlen, rxcap;
    bool discard;      /* rest of an oversized message is being skipped */
    unsigned oversize;
    int close_code;    /* nonzero: close at the next WRITEABLE */
    const char *close_reason;
    bool keep;         /* on close, keep the member for resume */
    char peer[48];
    rtc_addr addr;     /* the client's address (TURN identity in open mode) */
    /* cluster mode: a join waiting for Redis's answer (serial != 0) */
    uint64_t join_serial;
    conn *pprev, *pnext; /* server's pending list */
    char *pj_room, *pj_name;
    char pj_id[SIG_ID_LEN + 1], pj_resume[33];
    json_t *pj_ice;
    bool ip_counted;   /* addr holds one count in srv->admit (sig_admit_ip_add) */
    ho *ho;            /* cluster mode: a resume waiting for another node */
};

typedef struct {
    const uint8_t *body; /* static file, or metrics.p */
    size_t len, off;
    rtc_buf metrics;
} http_sess;

/* lws hands both HTTP and WS callbacks of one protocol the same (zeroed)
 * user area; `kind` says which half is live. */
enum { SESS_NONE = 0, SESS_HTTP, SESS_WS };
typedef struct {
    int kind;
    union {
        conn c;
        http_sess h;
    };
} sess;

struct server {
    sig_conf *conf;  /* current settings (SIGHUP swaps) */
    sig_conf *boot;  /* start-up settings: lws keeps pointers into it */
    int argc;
    char *const *argv;
    struct lws_context *ctx;
    lws_retry_bo_t *idle; /* lws keeps this pointer; SIGHUP edits it in place */
    sig_hub *hub;
    sig_cluster *cluster; /* NULL without --redis */
    uint64_t join_serial;
    conn *pending;        /* connections with a join waiting for Redis */
    ho *hos;              /* resume hand-overs in flight (at most SIG_HO_MAX) */
    size_t nhos;
    uint64_t ho_ok, ho_failed; /* hand-overs asked for: adopted / lost here */
    conn *conns;
    lws_sorted_usec_list_t tick;
    bool draining;
    uint64_t drain_deadline_us;
    bool stop;
    int exit_code;
    double start_time;
    /* metrics: plain counters, summed nowhere else (one thread) */
    uint64_t connections;
    uint64_t msgs[SIG_MSG__COUNT + 1]; /* last: invalid */
    uint64_t errors[SIG_E__COUNT];
    rtc_hist latency;
    rtc_log_ratelimit warn_rl;
    sig_admit *admit;              /* Origin list, connections per address */
    rtc_log_ratelimit admit_rl;    /* refusal lines (attackers choose their rate) */
    uint64_t reloads_ok, reloads_failed; /* SIGHUP: a failed one keeps the old settings */
};

/* The signal handlers' only link to the loop: flags polled by the tick. */
static volatile sig_atomic_t g_sighup, g_sigterm;

static void on_signal(int sig)
{
    if (sig == SIGHUP)
        g_sighup = 1;
    else
        g_sigterm = 1;
}

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

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

/* ---- connection helpers ---- */

static void close_later(conn *c, int code, const char *reason, bool keep)
{
    if (c->close_code)
        return;
    c->close_code = code;
    c->close_reason = reason;
    c->keep = keep;
    lws_callback_on_writable(c->wsi);
    /* A reader that never drains its socket never gets WRITEABLE: make sure
     * the connection still goes away. */
    lws_set_timeout(c->wsi, PENDING_TIMEOUT_CLOSE_SEND, 5);
}

static void send_error(conn *c, sig_code code, const char *message)
{
    char *t = sig_proto_error(code, message);
    c->srv->errors[code]++;
    if (t)
        sig_hub_send(c->srv->hub, c->m, t, now_us());
    free(t);
}

static void hub_wake(void *cp, void *ud)
{
    conn *c = cp;
    (void)ud;
    if (sig_member_overflowed(c->m)) {
        /* Slow reader: its queue is full. Drop it now; lws closes it from
         * its own loop (never under our feet). */
        RTC_LOG(RTC_LOG_INFO, sig_member_id(c->m), "send queue full, dropping %s", c->peer);
        c->keep = false;
        c->close_code = CLOSE_POLICY;
        /* Reset rather than FIN: the kernel would otherwise keep the
         * megabytes the reader never took in an orphaned socket. */
        {
            struct linger lg = {.l_onoff = 1, .l_linger = 0};
            setsockopt(lws_get_socket_fd(c->wsi), SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        }
        lws_set_timeout(c->wsi, PENDING_TIMEOUT_KILLED_BY_PARENT, LWS_TO_KILL_ASYNC);
        return;
    }
    lws_callback_on_writable(c->wsi);
}

static void hub_detach(void *cp, sig_member *lobby, void *ud)
{
    conn *c = cp;
    (void)ud;
    c->m = lobby;
    close_later(c, CLOSE_RESUMED, "resumed on another connection", false);
}

/* The TURN REST ID of this user (see sig_turn_user_id): the token's sub
 * when tokens are required, else the client's IPv4 address or IPv6 /64
 * (one subscriber usually holds a whole /64). 0 or RTC_ESPACE. */
static int turn_identity(const conn *c, const sig_conf *cf, const sig_token_claims *claims,
                         char out[SIG_TURN_ID_LEN + 1])
{
    size_t sl = strlen(cf->turn_secret);
    uint8_t key[9] = {0};
    const uint8_t *ip = c->addr.ip;
    bool v6 = c->addr.family == AF_INET6;
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

    if (cf->token_secret.n)
        return sig_turn_user_id(cf->turn_secret, sl, "sub", claims->sub, strlen(claims->sub), out);
    if (v6 && !memcmp(ip, mapped, sizeof mapped)) { /* a v4 client on a v6 listener */
        v6 = false;
        ip += 12;
    }
    key[0] = v6 ? 6 : 4;
    memcpy(key + 1, ip, v6 ? 8 : 4);
    return sig_turn_user_id(cf->turn_secret, sl, "ip", key, v6 ? 9 : 5, out);
}

static void random_hex(char *out, size_t nbytes)
{
    uint8_t b[32];
    if (rtc_random(b, nbytes))
        abort(); /* no CSPRNG: ids would be guessable; refuse to go on */
    rtc_hex(b, nbytes, out);
}

/* ---- cluster mode: joins waiting for Redis, events from it ---- */

static void pending_clear(server *s, conn *c)
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

/* Hand the join to Redis; it completes in on_cluster_joined. Takes ice. */
static void cluster_join(conn *c, const char *room, const char *name, const char *id,
                         const char *resume, json_t *ice)
{
    server *s = c->srv;
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
                                  : -12;
    if (rc) {
        pending_clear(s, c);
        send_error(c, SIG_E_SERVER_BUSY, rc == RTC_EUNSUP ? "cluster store (Redis) unavailable"
                                                          : "too many joins in flight");
    }
}

static void on_cluster_joined(server *s, sig_cev *e)
{
    conn *c = s->pending;
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
    rc = v ? sig_hub_join(s->hub, c->m, &p, now_us()) : SIG_E_SERVER_BUSY;
    free(v);
    if (rc) {
        sig_cluster_leave(s->cluster, e->room, e->id);
        send_error(c, rc, rc == SIG_E_ROOM_FULL ? "room is full" : "too many rooms");
    } else {
        RTC_LOG(RTC_LOG_INFO, c->pj_id, "joined room '%s' from %s (cluster)", c->pj_room, c->peer);
    }
    pending_clear(s, c);
}

/* ---- cluster mode: resume across nodes (ordering argument: sig_handover.c) ---- */

static void ho_free(server *s, ho *h)
{
    ho **pp = &s->hos;
    while (*pp && *pp != h)
        pp = &(*pp)->next;
    if (*pp) {
        *pp = h->next;
        s->nhos--;
    }
    if (h->c)
        h->c->ho = NULL;
    for (size_t i = 0; i < h->nbuf; i++)
        free(h->buf[i]);
    free(h->buf);
    if (h->token)
        memset(h->token, 0, strlen(h->token));
    free(h->token);
    free(h);
}

static ho *ho_find(server *s, uint64_t serial)
{
    ho *h = s->hos;
    while (h && h->serial != serial)
        h = h->next;
    return h;
}

/* Ask the member's node for it; completes in on_ho_done. */
static void cluster_resume(conn *c, const char *token)
{
    server *s = c->srv;
    ho *h;
    int rc;
    if (s->nhos >= SIG_HO_MAX) {
        send_error(c, SIG_E_SERVER_BUSY, "too many resumes in flight; try again");
        return;
    }
    if (!(h = calloc(1, sizeof *h)) || !(h->token = strdup(token))) {
        free(h);
        send_error(c, SIG_E_SERVER_BUSY, "out of memory");
        return;
    }
    h->serial = ++s->join_serial;
    h->deadline_us = now_us() + (SIG_HO_TIMEOUT_MS + 3000) * 1000ull;
    h->c = c;
    h->next = s->hos;
    s->hos = h;
    s->nhos++;
    c->ho = h;
    if ((rc = sig_handover_ask(s->cluster, h->serial, token))) {
        ho_free(s, h);
        send_error(c, SIG_E_SERVER_BUSY, rc == RTC_EUNSUP ? "cluster store (Redis) unavailable"
                                                         : "too many operations in flight");
    }
}

/* A signal or broadcast seen while hand-overs wait: keep a copy for each
 * marked one it is for, unless the owner published it (see the argument in
 * sig_handover.c: the owner's copies are in the queue it hands over). */
static void ho_capture(server *s, const sig_cev *e)
{
    bool bc = e->kind == SIG_CEV_BROADCAST;
    /* joins and leaves too (review xresume #6): the member list the reply
     * carries is the room when the owner's script moved the member, so those
     * between the request and the reply reach it as events, in order */
    bool memb = e->kind == SIG_CEV_PEER_JOINED || e->kind == SIG_CEV_PEER_LEFT;
    char *text = NULL;
    for (ho *h = s->hos; h; h = h->next) {
        char **nb;
        size_t len;
        if (h->adopted && memb)
            continue; /* adopted: this node's hub tells it itself */
        if (h->adopted) {
            /* published here while the member was still remote: it is local
             * now and nobody else here may get them twice */
            if (e->own && !strcmp(h->room, e->room) && strcmp(e->id, h->id) &&
                (bc || !strcmp(e->to, h->id))) {
                sig_hub_deliver_one(s->hub, e->room, h->id, e->id, bc, e->data, now_us());
                h->ntail++;
            }
            continue;
        }
        if (!h->marked || h->overflow || strcmp(h->room, e->room) || !strcmp(e->node, h->owner) ||
            !strcmp(e->id, h->id) || (!bc && !memb && strcmp(e->to, h->id)))
            continue;
        if (!text &&
            !(text = e->kind == SIG_CEV_PEER_JOINED ? sig_proto_peer_joined(e->id, e->name)
                     : e->kind == SIG_CEV_PEER_LEFT
                         ? sig_proto_peer_left(e->id)
                         : sig_proto_forward(bc ? "broadcast" : "signal", e->id, e->data))) {
            h->overflow = true; /* lost one: the member cannot come back complete */
            continue;
        }
        len = strlen(text);
        /* bounded like the send queue it ends up in */
        if (h->nbuf + 1 > (size_t)s->conf->send_queue_messages ||
            h->bytes + len > (size_t)s->conf->send_queue_bytes) {
            h->overflow = true;
            continue;
        }
        if (h->nbuf == h->cap) {
            size_t cap = h->cap ? 2 * h->cap : 16;
            if (!(nb = realloc(h->buf, cap * sizeof *nb))) {
                h->overflow = true;
                continue;
            }
            h->buf = nb;
            h->cap = cap;
        }
        if (!(h->buf[h->nbuf] = strdup(text))) {
            h->overflow = true;
            continue;
        }
        h->nbuf++;
        h->bytes += len;
    }
    free(text);
}

/* The owner side: another node asks for one of our members. */
static void on_ho_request(server *s, sig_cev *e, uint64_t t)
{
    char **texts = NULL, *name = NULL, bound[SIG_ROOM_MAX + SIG_ID_MAX + SIG_TH_LEN + 96];
    size_t n = 0;
    uint8_t key[SIG_HO_KEY_LEN] = {0};
    sig_hand_over_req q = {
        .room = e->room, .id = e->id, .proof = e->proof, .bound = bound, .reply_key = key};
    sig_code rc = SIG_E_UNAUTHORIZED;
    for (ho *h = s->hos; h; h = h->next) {
        if (h->adopted && !strcmp(h->room, e->room) && !strcmp(h->id, e->id)) {
            /* adopted here moments ago, our own publishes to it still on
             * their way back (its tail): they are not in its queue yet, and
             * the asking node would skip them as ours. Not now; the client
             * retries once the fence is back (review xresume.md finding 4). */
            RTC_LOG(RTC_LOG_INFO, e->id, "hand-over to node %s deferred: just adopted here",
                    e->node);
            sig_handover_reply_busy(s->cluster, e);
            return;
        }
    }
    /* the proof binds the asking node, the serial, the member and its token's
     * hash; a serial not newer than the last one served for that node is a
     * replay (of a request that Redis's readers saw) */
    if (sig_handover_bound(bound, sizeof bound, e->node, e->serial, e->room, e->id, e->th) &&
        sig_handover_fresh(s->cluster, e->node, e->serial))
        rc = sig_hub_hand_over(s->hub, &q, &texts, &n, &name, t);
    if (rc == SIG_OK)
        sig_handover_served(s->cluster, e->node, e->serial);
    if (rc == SIG_OK)
        RTC_LOG(RTC_LOG_INFO, e->id, "handed over to node %s with %zu queued messages (resume "
                "there)", e->node, n);
    else
        RTC_LOG(RTC_LOG_INFO, e->id, "hand-over to node %s refused", e->node);
    sig_handover_reply(s->cluster, e, rc == SIG_OK, key, name, texts, n);
    memset(key, 0, sizeof key); /* (the token's key: memory only, as short as can be) */
    free(name);
}

static void on_ho_done(server *s, sig_cev *e, uint64_t t)
{
    ho *h = ho_find(s, e->serial);
    conn *c;
    sig_member *m;
    sig_remote *v = NULL;
    const char **texts = NULL;
    sig_adopt_params p;
    sig_code rc = SIG_E_SERVER_BUSY;

    if (!h) { /* given up (ho_expire): never keep a member nobody has the messages of */
        if (e->result == SIG_OK)
            sig_cluster_leave(s->cluster, e->room, e->id);
        return;
    }
    c = h->c;
    if (e->result != SIG_OK) {
        if (c)
            send_error(c, e->result == SIG_E_SERVER_BUSY ? SIG_E_SERVER_BUSY : SIG_E_UNAUTHORIZED,
                       e->result == SIG_E_SERVER_BUSY ? "cannot take the member over now; try again"
                                                      : "unknown or expired resume token");
        ho_free(s, h);
        return;
    }
    /* an event dropped between the MARK and now may have been one of its
     * messages: it cannot come back complete (never a silent loss) */
    if (!h->marked || e->drops != h->mark_drops)
        h->overflow = true;
    m = c ? c->m : sig_hub_connect(s->hub, NULL);
    v = calloc(e->nmembers + 1, sizeof *v);
    texts = calloc(e->ntexts + h->nbuf + 1, sizeof *texts);
    if (m && v && texts && !h->overflow) {
        for (size_t i = 0; i < e->nmembers; i++)
            v[i] = (sig_remote){.id = e->members[i].id, .name = e->members[i].name};
        /* the owner's queue, then what came after the request: in order */
        for (size_t i = 0; i < e->ntexts; i++)
            texts[i] = e->texts[i];
        for (size_t i = 0; i < h->nbuf; i++)
            texts[e->ntexts + i] = h->buf[i];
        p = (sig_adopt_params){.room = e->room, .id = e->id, .name = e->name, .resume = h->token,
                               .texts = texts, .ntexts = e->ntexts + h->nbuf, .remotes = v,
                               .nremotes = e->nmembers, .hold = true};
        rc = sig_hub_adopt(s->hub, m, &p, t);
    }
    free(v);
    free(texts);
    if (rc != SIG_OK) {
        /* registered here by the owner, but not complete (or no memory): it
         * leaves, like a reader that fell too far behind */
        s->ho_failed++;
        sig_cluster_leave(s->cluster, e->room, e->id);
        if (c)
            send_error(c, SIG_E_UNAUTHORIZED, "resume failed; join again");
        else if (m)
            sig_hub_disconnect(s->hub, m, false, t);
        RTC_LOG(RTC_LOG_WARN, e->id, "resume hand-over from node %s failed%s", e->node,
                h->overflow ? ": too many messages meanwhile" : "");
    } else {
        s->ho_ok++;
        RTC_LOG(RTC_LOG_INFO, e->id, "resumed from %s, handed over by node %s (%zu + %zu queued)",
                c ? c->peer : "(gone meanwhile; kept for resume)", e->node, e->ntexts, h->nbuf);
        if (!c)
            sig_handover_token_ttl(s->cluster, h->token,
                                  (uint32_t)s->conf->resume_seconds + 5);
    }
    sig_handover_fence(s->cluster, e->room, h->serial);
    if (rc != SIG_OK) {
        ho_free(s, h);
        return;
    }
    /* keep the record until the fence is back (ho_capture, adopted) */
    h->adopted = true;
    h->deadline_us = t + 15000000ull; /* the Redis thread's own bound is 10 s */
    if (h->c)
        h->c->ho = NULL;
    h->c = NULL;
    for (size_t i = 0; i < h->nbuf; i++)
        free(h->buf[i]);
    free(h->buf);
    h->buf = NULL;
    h->nbuf = h->cap = h->bytes = 0;
}

/* Hand-overs whose answer (or fence) never came: the Redis thread bounds
 * both, so this only runs when one of its events was lost (no memory). A
 * client never waits forever. */
static void ho_expire(server *s, uint64_t t)
{
    for (ho *h = s->hos, *nx; h; h = nx) {
        nx = h->next;
        if (t < h->deadline_us)
            continue;
        if (h->adopted)
            sig_hub_release(s->hub, h->room, h->id);
        else if (h->c)
            send_error(h->c, SIG_E_UNAUTHORIZED, "unknown or expired resume token");
        ho_free(s, h);
    }
}

static void on_cluster_event(server *s, sig_cev *e, uint64_t t)
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
        if (s->hos)
            ho_capture(s, e);
        if (!e->own) /* our own: only passed on for a hand-over, never applied */
            sig_hub_remote_join(s->hub, e->room, e->id, e->name, t);
        break;
    case SIG_CEV_PEER_LEFT:
        if (s->hos)
            ho_capture(s, e);
        sig_hub_remote_leave(s->hub, e->room, e->id, t);
        break;
    case SIG_CEV_SIGNAL:
        if (s->hos)
            ho_capture(s, e);
        if (!e->own)
            sig_hub_remote_deliver(s->hub, e->room, e->to, e->id, e->data, t);
        break;
    case SIG_CEV_BROADCAST:
        if (s->hos)
            ho_capture(s, e);
        if (!e->own)
            sig_hub_remote_deliver(s->hub, e->room, NULL, e->id, e->data, t);
        break;
    case SIG_CEV_HO_REQUEST:
        on_ho_request(s, e, t);
        break;
    case SIG_CEV_HO_MARK: {
        ho *h = ho_find(s, e->serial);
        if (h) {
            h->marked = true;
            h->mark_drops = e->drops;
            snprintf(h->room, sizeof h->room, "%s", e->room);
            snprintf(h->id, sizeof h->id, "%s", e->id);
            snprintf(h->owner, sizeof h->owner, "%s", e->node);
        }
        break;
    }
    case SIG_CEV_HO_DONE:
        on_ho_done(s, e, t);
        break;
    case SIG_CEV_HO_FENCE: {
        ho *h = ho_find(s, e->serial);
        if (h) {
            if (h->adopted) { /* the tail is through: what waited follows */
                size_t held = sig_hub_release(s->hub, h->room, h->id);
                RTC_LOG(RTC_LOG_INFO, h->id,
                        "hand-over complete: %zu of this node's earlier messages passed on "
                        "through the tail, %zu held until the fence", h->ntail, held);
            }
            ho_free(s, h);
        }
        break;
    }
    default:
        break;
    }
}

/* Handle what the Redis thread has queued, a bounded number at a time. */
static void cluster_events(server *s)
{
    uint64_t t = now_us();
    sig_cev *e;
    unsigned n = 0;
    if (!s->cluster)
        return;
    while (n++ < EVENT_BUDGET && (e = sig_cluster_poll(s->cluster))) {
        on_cluster_event(s, e, t);
        sig_cev_free(e);
    }
    if (n > EVENT_BUDGET)
        lws_cancel_service(s->ctx); /* more waiting: come back after the others */
}

static void cluster_wake(void *ud)
{
    server *s = ud;
    lws_cancel_service(s->ctx);
}

static int hub_remote(void *ud, const char *room, const char *to, const char *from, json_t *data)
{
    server *s = ud;
    return s->cluster ? sig_cluster_publish(s->cluster, room, to, from, data) : RTC_EUNSUP;
}

static void hub_left(void *ud, const char *room, const char *id, bool room_empty)
{
    server *s = ud;
    (void)room_empty; /* sig_cluster keeps its own count of local members per room */
    if (s->cluster)
        sig_cluster_leave(s->cluster, room, id);
}

/* ---- message handlers ---- */

static void do_join(conn *c, const sig_msg *msg)
{
    server *s = c->srv;
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
    if (c->join_serial || c->ho) {
        send_error(c, SIG_E_BAD_REQUEST, "a join or resume is in progress");
        return;
    }
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
    random_hex(id, SIG_ID_LEN / 2);
    random_hex(resume, 16);
    /* not the member id: the relay's per-user quota counts by this ID */
    if (cf->turn_secret && turn_identity(c, cf, &claims, turn_id))
        ice = NULL;
    else
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
    rc = sig_hub_join(s->hub, c->m, &p, now_us());
    json_decref(ice);
    if (rc) {
        send_error(c, rc, rc == SIG_E_ROOM_FULL ? "room is full" : "too many rooms");
        return;
    }
    RTC_LOG(RTC_LOG_INFO, id, "joined room '%s' from %s", msg->room, c->peer);
}

static void do_resume(conn *c, const sig_msg *msg)
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
    rc = sig_hub_resume(c->srv->hub, &c->m, msg->token, now_us());
    if (rc == SIG_E_UNAUTHORIZED && c->srv->cluster) {
        /* not here: perhaps on another node (non-sticky load balancer,
         * rolling restart); its node hands it over */
        cluster_resume(c, msg->token);
        return;
    }
    if (rc == SIG_OK && c->srv->cluster)
        sig_handover_token_ttl(c->srv->cluster, msg->token, 0); /* attached again */
    if (rc) {
        send_error(c, rc,
                   rc == SIG_E_UNAUTHORIZED ? "unknown or expired resume token"
                                            : "already in a room; leave first");
        return;
    }
    RTC_LOG(RTC_LOG_INFO, sig_member_id(c->m), "resumed from %s", c->peer);
}

static void handle_message(conn *c, const char *buf, size_t len)
{
    server *s = c->srv;
    uint64_t t = now_us();
    const char *why = NULL;
    sig_msg msg;
    sig_code rc = SIG_OK;

    if (!sig_rate_take(&c->rate, (uint32_t)s->conf->rate_limit, t)) {
        if (t - c->rate.limited_since_us >= (uint64_t)s->conf->abuse_seconds * 1000000u) {
            RTC_LOG(RTC_LOG_INFO, c->peer, "closing: over the rate limit for %llds",
                    (long long)s->conf->abuse_seconds);
            close_later(c, CLOSE_POLICY, "rate limit exceeded", false);
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
}

/* One received fragment. Oversized messages are refused from their first
 * fragment on, using the frame length lws already knows, so at most
 * max-message-bytes are ever buffered per connection. */
static int on_receive(conn *c, const char *in, size_t len)
{
    server *s = c->srv;
    size_t max = (size_t)s->conf->max_message_bytes;
    size_t remaining = lws_remaining_packet_payload(c->wsi);
    bool final = lws_is_final_fragment(c->wsi);

    if (c->close_code)
        return 0;
    if (lws_is_first_fragment(c->wsi)) {
        c->rxlen = 0;
        c->discard = false;
        if (lws_frame_is_binary(c->wsi)) {
            c->discard = true;
            s->msgs[SIG_MSG__COUNT]++;
            send_error(c, SIG_E_BAD_REQUEST, "messages are JSON text frames");
        }
    }
    /* (written so that a huge announced frame length cannot overflow) */
    if (!c->discard && (remaining > max || c->rxlen + len > max - remaining)) {
        c->discard = true;
        c->rxlen = 0;
        free(c->rx);
        c->rx = NULL;
        c->rxcap = 0;
        s->msgs[SIG_MSG__COUNT]++;
        send_error(c, SIG_E_TOO_LARGE, "message larger than the server's limit");
        if (++c->oversize >= OVERSIZE_CLOSE) {
            close_later(c, CLOSE_TOO_BIG, "repeated oversized messages", false);
            return 0;
        }
    }
    if (c->discard)
        return 0;
    if (final && c->rxlen == 0) {
        handle_message(c, in, len); /* the common case: one frame, no copy */
        return 0;
    }
    if (c->rxcap < c->rxlen + len) {
        /* max may have grown by SIGHUP since this buffer was made */
        char *n = realloc(c->rx, max);
        if (!n)
            return -1;
        c->rx = n;
        c->rxcap = max;
    }
    memcpy(c->rx + c->rxlen, in, len);
    c->rxlen += len;
    if (final) {
        handle_message(c, c->rx, c->rxlen);
        c->rxlen = 0;
    }
    return 0;
}

static int on_writeable(conn *c)
{
    sig_buf *b;
    uint64_t t;

    /* What was queued before the close (e.g. the error saying why) goes
     * out first; lws_set_timeout in close_later bounds how long that takes. */
    if (!(b = sig_member_peek(c->m))) {
        if (!c->close_code)
            return 0;
        lws_close_reason(c->wsi, (enum lws_close_status)c->close_code,
                         (unsigned char *)c->close_reason, strlen(c->close_reason));
        return -1;
    }
    if (lws_write(c->wsi, (unsigned char *)b->text, b->len, LWS_WRITE_TEXT) < (int)b->len)
        return -1;
    t = now_us();
    rtc_hist_observe(&c->srv->latency, (double)(t - b->t_us) / 1e6);
    sig_member_pop(c->m);
    if (sig_member_peek(c->m) || c->close_code)
        lws_callback_on_writable(c->wsi);
    return 0;
}

/* ---- HTTP ---- */

static void render_metrics(server *s, rtc_buf *b)
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
    rtc_metrics_header(b, "tsunagu_signal_config_reloads_total", "counter",
                       "SIGHUP reloads; a failed one keeps the old settings running.");
    rtc_metrics_u64(b, "tsunagu_signal_config_reloads_total", "result=\"ok\"", s->reloads_ok);
    rtc_metrics_u64(b, "tsunagu_signal_config_reloads_total", "result=\"failed\"",
                    s->reloads_failed);
    rtc_metrics_hist(b, "tsunagu_signal_message_latency_seconds",
                     "time from a message being queued to its lws_write", &s->latency);
    if (s->cluster) {
        sig_cluster_stats cs;
        sig_cluster_get_stats(s->cluster, &cs);
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
        rtc_metrics_header(b, "tsunagu_signal_cluster_handovers_total", "counter",
                           "resume across nodes: hand-overs asked for by this node, by result, "
                           "and members given to other nodes (given)");
        {
            static const char *const lbl_ho[] = {"ok", "unknown", "refused", "timeout", "failed",
                                                 "given"};
            uint64_t val[] = {s->ho_ok, cs.ho_unknown, cs.ho_refused, cs.ho_timeout, s->ho_failed,
                              cs.ho_given};
            for (size_t i = 0; i < sizeof val / sizeof val[0]; i++) {
                snprintf(lbl, sizeof lbl, "result=\"%s\"", lbl_ho[i]);
                rtc_metrics_u64(b, "tsunagu_signal_cluster_handovers_total", lbl, val[i]);
            }
        }
    }
    rtc_metrics_process(b, s->start_time);
}

static int http_reply(struct lws *wsi, http_sess *h, unsigned status, const char *type,
                      const void *body, size_t len)
{
    uint8_t buf[LWS_PRE + 1024], *start = &buf[LWS_PRE], *p = start, *end = &buf[sizeof buf - 1];
    h->body = body;
    h->len = len;
    h->off = 0;
    if (lws_add_http_common_headers(wsi, status, type, (lws_filepos_t)len, &p, end) ||
        lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CACHE_CONTROL,
                                     (const unsigned char *)"no-store", 8, &p, end) ||
        lws_finalize_write_http_header(wsi, start, &p, end))
        return 1;
    lws_callback_on_writable(wsi);
    return 0;
}

static int on_http(server *s, struct lws *wsi, http_sess *h, const char *path)
{
    const sig_www_file *f;
    rtc_buf_init(&h->metrics);
    if (lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) <= 0)
        return http_reply(wsi, h, 405, "text/plain", "GET only\n", 9);
    if (!strcmp(path, "/healthz")) {
        if (s->draining)
            return http_reply(wsi, h, 503, "text/plain", "draining\n", 9);
        if (s->cluster && !sig_cluster_up(s->cluster))
            return http_reply(wsi, h, 503, "text/plain", "redis unavailable\n", 18);
        return http_reply(wsi, h, 200, "text/plain", "ok\n", 3);
    }
    if (!strcmp(path, "/metrics")) {
        render_metrics(s, &h->metrics);
        if (h->metrics.oom)
            return http_reply(wsi, h, 500, "text/plain", "out of memory\n", 14);
        return http_reply(wsi, h, 200, "text/plain; version=0.0.4", h->metrics.p,
                          h->metrics.len);
    }
    if ((f = sig_www_find(!strcmp(path, "/") ? "/index.html" : path)))
        return http_reply(wsi, h, 200, f->type, f->data, f->len);
    return http_reply(wsi, h, 404, "text/plain", "not found\n", 10);
}

static int on_http_writeable(struct lws *wsi, http_sess *h)
{
    uint8_t buf[LWS_PRE + 8192];
    size_t n = h->len - h->off;
    bool last;
    if (n > sizeof buf - LWS_PRE)
        n = sizeof buf - LWS_PRE;
    last = h->off + n == h->len;
    if (n)
        memcpy(buf + LWS_PRE, h->body + h->off, n);
    if (lws_write(wsi, buf + LWS_PRE, n, last ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) < (int)n)
        return -1;
    h->off += n;
    if (!last) {
        lws_callback_on_writable(wsi);
        return 0;
    }
    rtc_buf_dispose(&h->metrics);
    h->body = NULL;
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

/* ---- admission: Origin list and connections per address (sig_admit.h) ---- */

/* Install the current settings' admission policy and say what it is. The
 * list was validated with the rest of the settings, so only ENOMEM fails. */
static void admit_configure(server *s, const char *why)
{
    const sig_conf *cf = s->conf;
    int rc = sig_admit_configure(s->admit, (const char *const *)cf->allowed_origin.v,
                                 cf->allowed_origin.n, (uint32_t)cf->max_connections_per_ip);
    if (rc) {
        RTC_LOG(RTC_LOG_ERROR, NULL, "%sadmission policy not applied (%s); the old one stays", why,
                rtc_strerror(rc));
        return;
    }
    RTC_LOG(RTC_LOG_INFO, NULL, "%sadmission: allowed-origin %s, max-connections-per-ip %lld", why,
            !cf->allowed_origin.n ? "not set (any web page may connect; set it in production)"
                                  : "set",
            (long long)cf->max_connections_per_ip);
}

/* Refuse an upgrade with a plain HTTP status instead of the 101. lws has
 * switched the wsi to its ws role already, but an HTTP_HEADERS write still
 * goes out raw (the way lws sends its own 101); the caller then returns 1
 * and lws closes the connection without a close frame. */
static void refuse_upgrade(struct lws *wsi, unsigned status, const char *text)
{
    uint8_t buf[LWS_PRE + 256];
    char *p = (char *)buf + LWS_PRE;
    int n = snprintf(p, sizeof buf - LWS_PRE,
                     "HTTP/1.1 %u %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
                     "Cache-Control: no-store\r\nConnection: close\r\n\r\n%s",
                     status, status == 403 ? "Forbidden" : "Too Many Requests", strlen(text), text);
    if (n > 0 && (size_t)n < sizeof buf - LWS_PRE)
        lws_write(wsi, buf + LWS_PRE, (size_t)n, LWS_WRITE_HTTP_HEADERS);
}

/* FILTER_PROTOCOL_CONNECTION, after the path, cap and drain checks: the
 * Origin list, then the connections of this client address. 0 admits; 1
 * refuses after answering 403 or 429. Header bytes are attacker-chosen:
 * read with a bounded copy, logged sanitized, refusal lines rate-limited
 * (the metric counts every one). */
static int admit_upgrade(server *s, struct lws *wsi)
{
    char origin[SIG_ADMIT_ORIGIN_MAX + 1], shown[SIG_ADMIT_LOG_MAX], ip[RTC_ADDR_STRLEN];
    char more[48] = "";
    int olen = lws_hdr_total_length(wsi, WSI_TOKEN_ORIGIN);
    const char *op = NULL;
    size_t ol = 0;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    rtc_addr peer;
    sig_admit_verdict v;

    memset(&peer, 0, sizeof peer);
    if (!getpeername(lws_get_socket_fd(wsi), (struct sockaddr *)&ss, &sl))
        rtc_addr_from_sockaddr(&peer, (struct sockaddr *)&ss);
    if (olen > 0) {
        /* over-long: never a valid origin; passed on empty, so refused
         * exactly when a list is enforced */
        op = "";
        if (olen <= SIG_ADMIT_ORIGIN_MAX &&
            lws_hdr_copy(wsi, origin, (int)sizeof origin, WSI_TOKEN_ORIGIN) == olen) {
            op = origin;
            ol = (size_t)olen;
        }
    }
    v = sig_admit_check(s->admit, op, ol, &peer);
    if (v == SIG_ADMIT_OK)
        return 0;
    if (rtc_log_ratelimit_ok(&s->admit_rl, rtc_clock_mono_ms())) {
        rtc_addr_format(&peer, false, ip);
        if (s->admit_rl.suppressed)
            snprintf(more, sizeof more, " (%u refusals before not logged)",
                     s->admit_rl.suppressed);
        s->admit_rl.suppressed = 0;
        if (!op)
            snprintf(shown, sizeof shown, "(none)");
        else if (olen > SIG_ADMIT_ORIGIN_MAX)
            snprintf(shown, sizeof shown, "(%d bytes, over the limit)", olen);
        else
            sig_admit_sanitize(op, ol, shown);
        if (v == SIG_ADMIT_ORIGIN)
            RTC_LOG(RTC_LOG_WARN, ip, "WebSocket refused (403): Origin %s not allowed%s", shown,
                    more);
        else
            RTC_LOG(RTC_LOG_INFO, ip,
                    "WebSocket refused (429): max-connections-per-ip (%lld) reached%s",
                    (long long)s->conf->max_connections_per_ip, more);
    }
    if (v == SIG_ADMIT_ORIGIN)
        refuse_upgrade(wsi, 403, "origin not allowed\n");
    else
        refuse_upgrade(wsi, 429, "too many connections from your address\n");
    return 1;
}

/* ---- the lws callback ---- */

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
    struct lws_context *ctx = lws_get_context(wsi);
    server *s = ctx ? lws_context_user(ctx) : NULL;
    sess *u = user;
    char uri[64];

    switch (reason) {
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        /* WebSocket only on /ws, none while draining, and a global cap: with
         * per-connection queues bounded, this bounds the whole server. */
        if (lws_hdr_copy(wsi, uri, sizeof uri, WSI_TOKEN_GET_URI) <= 0 || strcmp(uri, "/ws"))
            return 1;
        if (s->connections >= (uint64_t)s->conf->max_connections) {
            if (rtc_log_ratelimit_ok(&s->warn_rl, rtc_clock_mono_ms()))
                RTC_LOG(RTC_LOG_WARN, NULL, "max-connections (%lld) reached: refusing upgrades",
                        (long long)s->conf->max_connections);
            return 1;
        }
        return s->draining ? 1 : admit_upgrade(s, wsi);
    case LWS_CALLBACK_ESTABLISHED: {
        conn *c = &u->c;
        memset(c, 0, sizeof *c);
        u->kind = SESS_WS;
        c->wsi = wsi;
        if (!(c->m = sig_hub_connect(s->hub, c)))
            return -1;
        /* only now: CLOSED undoes what c->srv says was done (connections++) */
        c->srv = s;
        sig_rate_init(&c->rate, (uint32_t)s->conf->rate_limit, now_us());
        lws_get_peer_simple(wsi, c->peer, sizeof c->peer);
        {
            struct sockaddr_storage ss;
            socklen_t sl = sizeof ss;
            if (!getpeername(lws_get_socket_fd(wsi), (struct sockaddr *)&ss, &sl))
                rtc_addr_from_sockaddr(&c->addr, (struct sockaddr *)&ss);
        }
        c->ip_counted = !sig_admit_ip_add(s->admit, &c->addr);
        c->keep = true;
        c->next = s->conns;
        if (s->conns)
            s->conns->prev = c;
        s->conns = c;
        s->connections++;
        return 0;
    }
    case LWS_CALLBACK_RECEIVE:
        return u->kind == SESS_WS ? on_receive(&u->c, in, len) : -1;
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return u->kind == SESS_WS ? on_writeable(&u->c) : -1;
    case LWS_CALLBACK_CLOSED: {
        conn *c = &u->c;
        if (u->kind != SESS_WS || !c->srv)
            return 0;
        pending_clear(s, c); /* its answer, if it comes, finds nobody and undoes the join */
        if (c->ho) { /* the hand-over goes on: the member is kept for resume here */
            c->ho->c = NULL;
            c->ho = NULL;
        }
        if (c->m) {
            /* A draining node in cluster mode keeps its members for resume:
             * they come back on another node, which asks for them. */
            bool keep = c->keep && (!s->draining || s->cluster);
            if (sig_member_get_state(c->m) == SIG_MEMBER_JOINED) {
                bool kept = keep && !sig_member_overflowed(c->m) && s->conf->resume_seconds > 0;
                RTC_LOG(RTC_LOG_INFO, sig_member_id(c->m), "connection closed%s",
                        kept ? ", kept for resume" : "");
                if (kept && s->cluster)
                    sig_handover_token_ttl(s->cluster, sig_member_resume(c->m),
                                          (uint32_t)s->conf->resume_seconds + 5);
            }
            sig_hub_disconnect(s->hub, c->m, keep, now_us());
        }
        free(c->rx);
        if (c->prev)
            c->prev->next = c->next;
        else
            s->conns = c->next;
        if (c->next)
            c->next->prev = c->prev;
        s->connections--;
        if (c->ip_counted)
            sig_admit_ip_del(s->admit, &c->addr);
        c->srv = NULL;
        return 0;
    }
    case LWS_CALLBACK_HTTP:
        u->kind = SESS_HTTP;
        return on_http(s, wsi, &u->h, in ? (const char *)in : "/");
    case LWS_CALLBACK_HTTP_WRITEABLE:
        return u && u->kind == SESS_HTTP && u->h.body ? on_http_writeable(wsi, &u->h) : 0;
    case LWS_CALLBACK_CLOSED_HTTP:
        if (u && u->kind == SESS_HTTP)
            rtc_buf_dispose(&u->h.metrics);
        return 0;
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
        if (s)
            cluster_events(s);
        return 0;
    default:
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}

/* ---- timers, signals, reload, drain ---- */

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long n;
    if (!f)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) > 0 && n < (1 << 20) &&
        fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)n + 1)) &&
        fread(buf, 1, (size_t)n, f) == (size_t)n) {
        buf[n] = '\0';
        *len = (size_t)n;
    } else {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    return buf;
}

/* Re-read the certificate and key from the start-up paths (a renewed
 * certificate is written over the old files) into the running vhost;
 * connections already open keep their session. */
static void reload_tls(server *s)
{
    size_t clen = 0, klen = 0;
    char *cert, *key;
    if (!s->boot->cert)
        return;
    cert = slurp(s->boot->cert, &clen);
    key = slurp(s->boot->key, &klen);
    if (!cert || !key ||
        lws_tls_cert_updated(s->ctx, s->boot->cert, s->boot->key, cert, clen, key, klen))
        RTC_LOG(RTC_LOG_ERROR, NULL, "SIGHUP: could not load %s / %s; keeping the old certificate",
                s->boot->cert, s->boot->key);
    else
        RTC_LOG(RTC_LOG_INFO, NULL, "SIGHUP: reloaded TLS certificate %s", s->boot->cert);
    if (key)
        memset(key, 0, klen);
    free(cert);
    free(key);
}

static void reload(server *s)
{
    sig_conf *fresh = calloc(1, sizeof *fresh);
    char err[512];
    if (!fresh || sig_conf_load(fresh, s->argc, s->argv, err, sizeof err)) {
        RTC_LOG(RTC_LOG_ERROR, NULL, "SIGHUP: reload failed, keeping the old settings: %s",
                fresh ? err : "out of memory");
        free(fresh);
        s->reloads_failed++;
        return;
    }
    if (strcmp(fresh->listen, s->boot->listen) || (fresh->cert && s->boot->cert &&
                                                    strcmp(fresh->cert, s->boot->cert)))
        RTC_LOG(RTC_LOG_WARN, NULL, "SIGHUP: listen/cert changes need a restart; ignored");
    {
        sig_limits l = limits_of(fresh);
        sig_hub_set_limits(s->hub, &l);
    }
    if (s->cluster)
        sig_cluster_set_max_room_size(s->cluster, (uint32_t)fresh->max_room_size);
    if ((!fresh->redis != !s->boot->redis) ||
        (fresh->redis && strcmp(fresh->redis, s->boot->redis)) ||
        fresh->redis_node_ttl != s->boot->redis_node_ttl ||
        fresh->redis_queue != s->boot->redis_queue)
        RTC_LOG(RTC_LOG_WARN, NULL, "SIGHUP: redis settings change needs a restart; ignored");
    /* lws reads the policy each time it arms a connection's idle timer */
    s->idle->secs_since_valid_ping = (uint16_t)(fresh->idle_timeout / 2);
    s->idle->secs_since_valid_hangup = (uint16_t)fresh->idle_timeout;
    if (s->conf != s->boot) {
        sig_conf_dispose(s->conf);
        free(s->conf);
    }
    s->conf = fresh;
    admit_configure(s, "SIGHUP: ");
    reload_tls(s);
    RTC_LOG(RTC_LOG_INFO, NULL,
            "SIGHUP: reloaded secrets and limits (max-room-size %lld, max-rooms %lld, "
            "max-message-bytes %lld, rate-limit %lld, token auth %s)",
            (long long)fresh->max_room_size, (long long)fresh->max_rooms,
            (long long)fresh->max_message_bytes, (long long)fresh->rate_limit,
            fresh->token_secret.n ? "on" : "off");
    s->reloads_ok++;
}

static void start_drain(server *s, uint64_t t)
{
    s->draining = true;
    s->drain_deadline_us = t + (uint64_t)s->conf->drain_seconds * 1000000u;
    RTC_LOG(RTC_LOG_INFO, NULL, "SIGTERM: draining %llu connections for %llds",
            (unsigned long long)s->connections, (long long)s->conf->drain_seconds);
    /* Tell every member now so clients can reconnect elsewhere at their
     * own pace; their connections keep working until the deadline. The
     * "drain" field tells this notice from other server-busy errors (a full
     * Redis queue...) and says what to do: in cluster mode every member can
     * resume at once on another node (the old connection is closed with 4001
     * once it moved: nothing is lost); alone, this node is going away and a
     * client can only come back after the close. */
    for (conn *c = s->conns; c; c = c->next) {
        char *text = sig_proto_drain("server is shutting down; reconnect later",
                                     s->cluster ? "resume" : "reconnect");
        s->errors[SIG_E_SERVER_BUSY]++;
        if (text)
            sig_hub_send(s->hub, c->m, text, t);
        free(text);
    }
}

static void on_tick(lws_sorted_usec_list_t *sul)
{
    server *s = lws_container_of(sul, server, tick);
    uint64_t t = now_us();

    if (g_sighup) {
        g_sighup = 0;
        reload(s);
    }
    if (g_sigterm && !s->draining) {
        g_sigterm = 0;
        start_drain(s, t);
    } else if (g_sigterm && s->draining) {
        g_sigterm = 0;
        s->drain_deadline_us = t; /* second SIGTERM: stop now */
    }
    if (t >= sig_hub_next_deadline(s->hub))
        sig_hub_tick(s->hub, t);
    cluster_events(s); /* (events normally come through EVENT_WAIT_CANCELLED at once) */
    if (s->hos)
        ho_expire(s, t);
    if (s->draining) {
        sig_hub_stats hs;
        sig_hub_get_stats(s->hub, &hs);
        /* cluster mode: members kept for resume wait (until the deadline)
         * for another node to ask for them */
        if (!s->conns && (!s->cluster || !hs.detached || t >= s->drain_deadline_us)) {
            s->stop = true;
        } else if (t >= s->drain_deadline_us) {
            for (conn *c = s->conns; c; c = c->next)
                close_later(c, CLOSE_GOING_AWAY, "server shutting down", false);
            if (t >= s->drain_deadline_us + 3000000u)
                s->stop = true; /* a peer that does not answer the close */
        }
    }
    if (s->stop) {
        lws_cancel_service(s->ctx);
        return;
    }
    lws_sul_schedule(s->ctx, 0, &s->tick, on_tick, TICK_US);
}

static const struct lws_protocols protocols[] = {
    {"tsunagu", callback, sizeof(sess), 4096, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static void lws_to_rtc_log(int level, const char *line)
{
    size_t n = strlen(line);
    while (n && line[n - 1] == '\n')
        n--;
    /* one per refused upgrade, unthrottled: ours are logged (rate-limited)
     * where the refusal is decided */
    if (strstr(line, "User code denied connection"))
        return;
    RTC_LOG(level == LLL_ERR ? RTC_LOG_ERROR : RTC_LOG_WARN, "lws", "%.*s", (int)n, line);
}

int sig_ws_run(sig_conf *conf, int argc, char *const argv[])
{
    static const double lat_bounds[LAT_BUCKETS] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                                   0.01,   0.025,   0.05,   0.1,   0.25,   1.0};
    struct lws_context_creation_info info;
    lws_retry_bo_t idle;
    server s;
    rtc_addr la;
    char host[RTC_ADDR_STRLEN];
    sig_limits lim;
    sig_hub_ops ops;
    struct sigaction sa;
    int rc = 1;

    memset(&s, 0, sizeof s);
    s.conf = s.boot = conf;
    s.argc = argc;
    s.argv = argv;
    s.start_time = (double)rtc_clock_wall_s();
    rtc_hist_init(&s.latency, lat_bounds, LAT_BUCKETS);
    s.warn_rl.per_sec = 1;
    lim = limits_of(conf);
    ops = (sig_hub_ops){.wake = hub_wake, .detach = hub_detach, .ud = &s, .headroom = LWS_PRE};
    if (conf->redis) {
        ops.remote = hub_remote;
        ops.left = hub_left;
    }
    if (!(s.hub = sig_hub_new(&lim, &ops)))
        goto out;
    {
        uint64_t seed;
        if (rtc_random(&seed, sizeof seed) || !(s.admit = sig_admit_new(seed)))
            goto out_hub;
        s.admit_rl.per_sec = 10;
        admit_configure(&s, "");
    }

    rtc_addr_parse_hostport(conf->listen, &la);
    rtc_addr_format(&la, false, host);

    lws_set_log_level(LLL_ERR | LLL_WARN, lws_to_rtc_log);
    memset(&info, 0, sizeof info);
    memset(&idle, 0, sizeof idle);
    /* Ping after half the idle timeout of silence, hang up at the timeout. */
    idle.secs_since_valid_ping = (uint16_t)(conf->idle_timeout / 2);
    idle.secs_since_valid_hangup = (uint16_t)conf->idle_timeout;
    info.retry_and_idle_policy = &idle;
    s.idle = &idle;
    info.port = la.port;
    info.iface = host;
    info.protocols = protocols;
    info.user = &s;
    info.gid = -1;
    info.uid = -1;
    info.options = LWS_SERVER_OPTION_VALIDATE_UTF8 | LWS_SERVER_OPTION_DISABLE_IPV6;
    if (la.family == AF_INET6)
        info.options &= ~(uint64_t)LWS_SERVER_OPTION_DISABLE_IPV6;
    if (conf->cert) {
        info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
        info.ssl_cert_filepath = conf->cert;
        info.ssl_private_key_filepath = conf->key;
    }
    info.timeout_secs = 20;
    info.keepalive_timeout = 10;
    s.ctx = lws_create_context(&info);
    if (!s.ctx) {
        RTC_LOG(RTC_LOG_ERROR, NULL, "cannot listen on %s%s", conf->listen,
                conf->cert ? " with the given cert/key" : "");
        goto out_hub;
    }

    if (conf->redis) {
        sig_cluster_params cp = {
            .url = conf->redis,
            .max_room_size = (uint32_t)conf->max_room_size,
            .node_ttl_s = (uint32_t)conf->redis_node_ttl,
            .queue = (size_t)conf->redis_queue,
            /* a client message re-serialized (numbers can grow: 1e9 is
             * 1000000000.0) plus its envelope; nothing bigger is parsed */
            .max_payload = (size_t)conf->max_message_bytes * 8 + 4096,
            .queue_msgs = (uint32_t)conf->send_queue_messages,
            .queue_bytes = (size_t)conf->send_queue_bytes,
            .wake = cluster_wake,
            .ud = &s,
        };
        char err[512];
        if (sig_cluster_new(&cp, &s.cluster, err, sizeof err)) {
            RTC_LOG(RTC_LOG_ERROR, NULL, "redis: %s", err);
            goto out_ctx;
        }
    }

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGHUP, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    RTC_LOG(RTC_LOG_INFO, NULL, "listening on %s://%s/ (WebSocket /ws)",
            conf->cert ? "https" : "http", conf->listen);
    lws_sul_schedule(s.ctx, 0, &s.tick, on_tick, TICK_US);
    while (!s.stop)
        if (lws_service(s.ctx, 0) < 0)
            break;
    RTC_LOG(RTC_LOG_INFO, NULL, "stopped");
    rc = 0;
out_ctx:
    /* the Redis thread must not poke a context being destroyed; the leaves
     * the closing connections cause are still queued, then flushed below */
    sig_cluster_mute(s.cluster);
    lws_context_destroy(s.ctx);
    sig_cluster_free(s.cluster);
    while (s.hos) /* hand-overs still waiting: their connections are gone */
        ho_free(&s, s.hos);
    if (sig_admit_ip_entries(s.admit)) /* every CLOSED has run: counts must be back to zero */
        RTC_LOG(RTC_LOG_ERROR, NULL, "bug: %zu client addresses still counted at exit",
                sig_admit_ip_entries(s.admit));
out_hub:
    sig_admit_free(s.admit);
    sig_hub_free(s.hub);
out:
    if (s.conf != s.boot) {
        sig_conf_dispose(s.conf);
        free(s.conf);
    }
    sig_conf_dispose(s.boot);
    return rc;
}
