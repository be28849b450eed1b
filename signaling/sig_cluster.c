/* sig_cluster.c - the Redis side of cluster mode (see sig_cluster.h and
 * docs/cluster.md; threads and locks are written down in sig_cluster.h).
 * Redis is reached through sig_redis_ops (sig_redis.c holds hiredis).
 *
 * Data model (standalone Redis; keys built inside scripts, so not Redis
 * Cluster):
 *   tsu:nodes            set of registered node ids
 *   tsu:node:NODE        heartbeat, SET ... EX node-ttl every second
 *   tsu:room:ROOM        hash member id -> {"name":..,"node":..}
 *   tsu:nm:NODE          hash member id -> room, the node's members (for cleanup)
 *   tsu:nt:NODE          hash member id -> SHA-256 of its resume token (hex)
 *   tsu:rt:HASH          {"id","room","node"}: who holds the member of that resume
 *                        token (never the token itself); expires resume-seconds
 *                        + 5 s after the member detached, deleted when it leaves
 *   tsu:DB:nd:NODE       pub/sub channel of one node: hand-over replies
 *   tsu:DB:ch:ROOM       pub/sub channel of the room (channels ignore SELECT,
 *                        so the database number is part of the name)
 * Channel messages are JSON objects {"n":ORIGIN_NODE,"e":EVENT,...} with
 * EVENT join (id, name), left (id), sig (from, to, data), bc (from, data).
 * Every change of a room hash and its announcement happen in one Lua script,
 * so they are atomic, and the join script checks the room size across all
 * nodes.
 *
 * The Redis thread keeps no copy of room state beyond `subs` (channels it
 * is subscribed to); the mirror of local members (`members`, `rooms`, under
 * `mu`) is what it re-registers after a reconnect or when it finds the node
 * was presumed dead.
 *
 * Channel events and commands this file does not know go to the hooks of
 * the layers above (sig_cluster_hooks): hand-over (resume across nodes) is
 * sig_handover.c, and the argument that it delivers every message exactly
 * once and in order is at its top. */
#include "sig_cluster.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "rtc_clock.h"
#include "rtc_crypto.h"
#include "rtc_err.h"
#include "rtc_log.h"
#include "sig_chan.h"
#include "sig_cluster_lua.h"
#include "sig_conf.h"

#define HEARTBEAT_MS 1000
#define IO_TIMEOUT_S 2      /* any Redis call; then the connection counts as lost */
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define PIPELINE_MAX 256
#define SYNC_DELAY_MS (BACKOFF_MAX_MS + 2000) /* other nodes' reconnect: backoff + one timeout */
#define QUEUE_BUDGET 4096   /* commands per round: channel reads and heartbeats are not starved */
#define EVENT_WAIT_MS 1000  /* a full incoming queue blocks the thread this long, then drops */
#define HBUCKETS 1024
#define NODE_LEN SIG_NODE_LEN

/* ---- small string-keyed hash (mirror of local members, rooms, subscriptions) ---- */

typedef struct hent {
    struct hent *next;
    uint32_t n;        /* rooms: local members there */
    char *room, *name; /* members: their room and name */
    char *th;          /* members: their resume token's hash */
    char key[];
} hent;

typedef struct {
    hent *b[HBUCKETS];
    size_t n;
} htab;

typedef enum { CMD_JOIN, CMD_LEAVE, CMD_PUB, CMD_EXT } cmd_kind;

typedef struct cmd {
    struct cmd *next;
    cmd_kind kind;
    uint64_t serial;
    char room[SIG_ROOM_MAX + 1], id[SIG_ID_MAX + 1], name[SIG_NAME_MAX + 1];
    char th[SIG_TH_LEN + 1]; /* JOIN: the resume token's hash */
    char chan[96];           /* PUB: a node's channel instead of the room's */
    char *payload;           /* PUB: the channel message */
    const sig_cluster_hooks *hooks; /* EXT: whose command */
    void *arg;               /* EXT: the hook owner's */
    bool pipelined;          /* EXT: append/replied, else run */
} cmd;

struct sig_cluster {
    sig_redis_url url;
    const sig_redis_ops *rops;
    char where[300]; /* url without credentials, for logs */
    char node[NODE_LEN + 1];
    char kp[8];      /* key prefix "tsu:" */
    char cp[48];     /* channel prefix "tsu:DB:ch:" */
    char np[48];     /* node channel prefix "tsu:DB:nd:" */
    char inbox[80];  /* this node's channel */
    size_t qmax, max_payload;
    uint32_t ttl_s;
    _Atomic uint32_t max_room;
    _Atomic int up;
    _Atomic int stop;
    int wakefd; /* eventfd: lws thread -> Redis thread */
    pthread_t th;
    bool started;
    const sig_cluster_hooks *hooks[SIG_CLUSTER_HOOKS]; /* set before the thread starts */
    size_t nhooks;

    pthread_mutex_t mu; /* queues, mirror, resync flag, stats */
    pthread_cond_t space;
    cmd *qhead, *qtail;
    size_t qn;
    sig_cev *ehead, *etail;
    size_t en;
    bool resync; /* the mirror and Redis may disagree: re-register */
    htab members; /* id -> room, name */
    htab rooms;   /* room -> local members there */
    sig_cluster_stats st;
    uint64_t ev_drops; /* events dropped because the lws thread's queue was full */

    pthread_mutex_t wake_mu;
    void (*wake)(void *ud);
    void *ud;

    /* Redis thread only */
    sig_redis_conn *cmd, *sub;
    htab subs;         /* channels subscribed */
    uint64_t reap_from; /* no reaping before this (ms): see serve() */
    uint64_t sync_at;   /* re-read the rooms then (ms), 0 = not due: see resync() */
};

#define EACH_HOOK(c, h) \
    for (size_t hk_ = 0; hk_ < (c)->nhooks; hk_++) \
        for (const sig_cluster_hooks *h = (c)->hooks[hk_]; h; h = NULL)

static uint32_t hkey(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h % HBUCKETS;
}

static hent **hslot(htab *t, const char *key)
{
    hent **pp = &t->b[hkey(key)];
    while (*pp && strcmp((*pp)->key, key))
        pp = &(*pp)->next;
    return pp;
}

static hent *hget(htab *t, const char *key) { return *hslot(t, key); }

static hent *hadd(htab *t, const char *key)
{
    hent **pp = hslot(t, key), *e;
    size_t len = strlen(key);
    if (*pp)
        return *pp;
    if (!(e = calloc(1, sizeof *e + len + 1)))
        return NULL;
    memcpy(e->key, key, len + 1);
    *pp = e;
    t->n++;
    return e;
}

static void hdel(htab *t, const char *key)
{
    hent **pp = hslot(t, key), *e = *pp;
    if (!e)
        return;
    *pp = e->next;
    t->n--;
    free(e->room);
    free(e->name);
    free(e->th);
    free(e);
}

static void hclear(htab *t)
{
    for (size_t i = 0; i < HBUCKETS; i++)
        while (t->b[i])
            hdel(t, t->b[i]->key);
}

static void poke(int fd)
{
    uint64_t one = 1;
    ssize_t n = write(fd, &one, sizeof one);
    (void)n; /* EAGAIN: the counter is already non-zero, the thread wakes anyway */
}

/* ---- Redis thread: replies and helpers ---- */

static void drop_conns(sig_cluster *c)
{
    c->rops->close(c->cmd);
    c->rops->close(c->sub);
    c->cmd = c->sub = NULL;
    hclear(&c->subs);
}

static int append_argv(sig_cluster *c, sig_redis_conn *conn, int argc, const char **argv)
{
    size_t len[64];
    if (argc > 64)
        return RTC_EMSG;
    for (int i = 0; i < argc; i++)
        len[i] = strlen(argv[i]);
    return c->rops->append(conn, argc, argv, len);
}

/* One command on the command connection, argv-style (binary safe). NULL
 * when the connection failed (the caller drops it). */
sig_redis_reply *sig_cluster_command(sig_cluster *c, int argc, const char **argv)
{
    sig_redis_reply *r = NULL;
    if (append_argv(c, c->cmd, argc, argv) || c->rops->get_reply(c->cmd, &r))
        return NULL;
    return r;
}

int sig_cluster_append(sig_cluster *c, int argc, const char **argv)
{
    return append_argv(c, c->cmd, argc, argv);
}

static bool reply_ok(const sig_redis_reply *r) { return r && r->type != SIG_RR_ERROR; }

/* Hand one event to the lws thread. A full queue first waits (the lws
 * thread is draining it), then drops: never grows. Events a layer above
 * bounds itself (a hand-over's MARK, DONE, FENCE: at most three per
 * hand-over in flight) are never dropped: losing one would lose the member
 * or its messages without anybody knowing. */
void sig_cluster_push(sig_cluster *c, sig_cev *e, bool never_drop)
{
    bool was_empty;
    pthread_mutex_lock(&c->mu);
    if (c->en >= c->qmax && !never_drop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += EVENT_WAIT_MS / 1000;
        while (c->en >= c->qmax && !atomic_load(&c->stop))
            if (pthread_cond_timedwait(&c->space, &c->mu, &ts))
                break;
    }
    if (c->en >= c->qmax && !never_drop) {
        c->st.dropped++;
        c->ev_drops++;
        c->resync = true; /* membership at least comes right again */
        pthread_mutex_unlock(&c->mu);
        sig_cev_free(e);
        return;
    }
    e->next = NULL;
    e->drops = c->ev_drops;
    was_empty = !c->ehead;
    if (c->etail)
        c->etail->next = e;
    else
        c->ehead = e;
    c->etail = e;
    c->en++;
    c->st.received++;
    pthread_mutex_unlock(&c->mu);
    if (was_empty) {
        pthread_mutex_lock(&c->wake_mu);
        if (c->wake)
            c->wake(c->ud);
        pthread_mutex_unlock(&c->wake_mu);
    }
}

void sig_cluster_count_drop(sig_cluster *c)
{
    pthread_mutex_lock(&c->mu);
    c->st.dropped++;
    pthread_mutex_unlock(&c->mu);
}

/* The other nodes' members out of an HGETALL reply of a room hash. */
static int members_of(sig_cluster *c, const sig_redis_reply *r, sig_cev *e)
{
    if (r->type != SIG_RR_ARRAY || r->elements % 2)
        return RTC_EMSG;
    e->members = calloc(r->elements / 2 + 1, sizeof *e->members);
    if (!e->members)
        return -ENOMEM;
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const sig_redis_reply *k = r->element[i], *v = r->element[i + 1];
        sig_cev_member *m = &e->members[e->nmembers];
        if (k->type == SIG_RR_STRING && v->type == SIG_RR_STRING &&
            sig_chan_member(c->node, k->str, k->len, v->str, v->len, m->id, m->name))
            e->nmembers++;
    }
    return 0;
}

static bool wanted(sig_cluster *c, const char *room)
{
    EACH_HOOK(c, h)
    if (h->wants_room && h->wants_room(h->ud, room))
        return true;
    return false;
}

/* One message from a room channel (or this node's own channel) -> an event
 * for the lws thread, or a hook's. */
static void on_message(sig_cluster *c, const sig_redis_reply *ch, const sig_redis_reply *pl)
{
    size_t cpl = strlen(c->cp);
    char node[NODE_LEN + 1], ev[8], room[SIG_ROOM_MAX + 1];
    bool own;
    json_t *o;
    sig_cev *e;

    if (ch->type == SIG_RR_STRING && ch->len == strlen(c->inbox) &&
        !memcmp(ch->str, c->inbox, ch->len)) {
        EACH_HOOK(c, h)
        if (h->inbox)
            h->inbox(h->ud, pl->type == SIG_RR_STRING ? pl->str : NULL, pl->len);
        return;
    }
    if (ch->type != SIG_RR_STRING || pl->type != SIG_RR_STRING || ch->len <= cpl ||
        ch->len - cpl > SIG_ROOM_MAX || memcmp(ch->str, c->cp, cpl) || pl->len > c->max_payload) {
        sig_cluster_count_drop(c);
        return;
    }
    if (!(o = json_loadb(pl->str, pl->len, JSON_REJECT_DUPLICATES, NULL)) ||
        !sig_chan_field(o, "n", 1, NODE_LEN, node, sizeof node) ||
        !sig_chan_field(o, "e", 1, 5, ev, sizeof ev)) {
        json_decref(o);
        sig_cluster_count_drop(c);
        return;
    }
    memcpy(room, ch->str + cpl, ch->len - cpl);
    room[ch->len - cpl] = '\0';
    own = !strcmp(node, c->node);
    if (strcmp(ev, "join") && strcmp(ev, "left") && strcmp(ev, "sig") && strcmp(ev, "bc")) {
        bool taken = false;
        EACH_HOOK(c, h)
        if (!taken && h->channel)
            taken = h->channel(h->ud, room, node, own, ev, o);
        json_decref(o);
        if (!taken)
            sig_cluster_count_drop(c);
        return;
    }
    /* our own: already delivered locally, unless a hand-over in this room
     * needs them (signals and broadcasts for the member on its way here), or
     * a leave: our scripts also announce members this node's hub holds as
     * remote (a late or failed hand-over, an XFER to a node that died, a
     * resync), and only this echo tells our members (for a member that was
     * local here the leave is a no-op: sig_hub_remote_leave). A join echo
     * stays dropped (late, it could bring back a member that left) unless a
     * hand-over in the room must tell the member on its way here: the member
     * list it gets is the room when the owner moved it, so joins after that
     * reach it only this way; it is then only kept for that member, never
     * applied (sig_session.c). */
    if (own && strcmp(ev, "left") && !wanted(c, room)) {
        json_decref(o);
        return;
    }
    if (!(e = calloc(1, sizeof *e))) {
        json_decref(o);
        return;
    }
    memcpy(e->room, room, strlen(room) + 1);
    memcpy(e->node, node, strlen(node) + 1);
    e->own = own;
    if (!strcmp(ev, "join") && sig_chan_field(o, "id", 1, SIG_ID_MAX, e->id, sizeof e->id) &&
        (sig_chan_field(o, "name", 0, SIG_NAME_MAX, e->name, sizeof e->name) ||
         !json_object_get(o, "name"))) {
        e->kind = SIG_CEV_PEER_JOINED;
    } else if (!strcmp(ev, "left") && sig_chan_field(o, "id", 1, SIG_ID_MAX, e->id, sizeof e->id)) {
        e->kind = SIG_CEV_PEER_LEFT;
    } else if (!strcmp(ev, "sig") && sig_chan_field(o, "from", 1, SIG_ID_MAX, e->id, sizeof e->id) &&
               sig_chan_field(o, "to", 1, SIG_ID_MAX, e->to, sizeof e->to) &&
               (e->data = json_object_get(o, "data"))) {
        e->kind = SIG_CEV_SIGNAL;
        json_incref(e->data);
    } else if (!strcmp(ev, "bc") && sig_chan_field(o, "from", 1, SIG_ID_MAX, e->id, sizeof e->id) &&
               (e->data = json_object_get(o, "data"))) {
        e->kind = SIG_CEV_BROADCAST;
        json_incref(e->data);
    } else {
        json_decref(o);
        free(e);
        sig_cluster_count_drop(c);
        return;
    }
    json_decref(o);
    sig_cluster_push(c, e, false);
}

/* A reply read on the SUBSCRIBE connection. Sets *confirmed when it is the
 * subscribe confirmation of `want`. */
static void on_sub_reply(sig_cluster *c, sig_redis_reply *r, const char *want, bool *confirmed)
{
    if (r->type == SIG_RR_ARRAY && r->elements == 3 && r->element[0]->type == SIG_RR_STRING) {
        const char *kind = r->element[0]->str;
        if (!strcmp(kind, "message"))
            on_message(c, r->element[1], r->element[2]);
        else if (!strcmp(kind, "subscribe") && want && r->element[1]->type == SIG_RR_STRING &&
                 !strcmp(r->element[1]->str, want))
            *confirmed = true;
    }
    sig_redis_reply_free(r);
}

/* Dispatch the replies already read from the SUBSCRIBE connection (poll
 * cannot see those). */
static int drain_reader(sig_cluster *c)
{
    sig_redis_reply *r;
    bool dummy = false;
    for (;;) {
        if (c->rops->buffered(c->sub, &r))
            return RTC_EMSG;
        if (!r)
            return 0;
        on_sub_reply(c, r, NULL, &dummy);
    }
}

/* Read what the SUBSCRIBE connection has (poll said readable). */
static int read_sub(sig_cluster *c)
{
    if (c->rops->read(c->sub))
        return RTC_EMSG;
    return drain_reader(c);
}

void sig_cluster_channel(const sig_cluster *c, const char *room, char *out, size_t cap)
{
    snprintf(out, cap, "%s%s", c->cp, room);
}

void sig_cluster_node_channel(const sig_cluster *c, const char *node, char *out, size_t cap)
{
    snprintf(out, cap, "%s%s", c->np, node);
}

const char *sig_cluster_key_prefix(const sig_cluster *c) { return c->kp; }

/* SUBSCRIBE and wait for the confirmation, so that everything published to
 * the room after the next command is seen. Messages of other rooms read
 * meanwhile are dispatched in order. */
static int subscribe_chan(sig_cluster *c, const char *ch)
{
    const char *argv[2] = {"SUBSCRIBE", ch};
    bool confirmed = false;
    uint64_t deadline = rtc_clock_mono_ms() + IO_TIMEOUT_S * 1000u;

    if (append_argv(c, c->sub, 2, argv))
        return RTC_EMSG;
    while (!confirmed) {
        sig_redis_reply *r;
        if (rtc_clock_mono_ms() > deadline || c->rops->get_reply(c->sub, &r))
            return RTC_EMSG;
        on_sub_reply(c, r, ch, &confirmed);
    }
    return drain_reader(c) ? RTC_EMSG : 0;
}

int sig_cluster_subscribe(sig_cluster *c, const char *room)
{
    char ch[SIG_ROOM_MAX + 64];
    int rc;
    if (hget(&c->subs, room))
        return 0;
    sig_cluster_channel(c, room, ch, sizeof ch);
    if ((rc = subscribe_chan(c, ch)))
        return rc;
    return hadd(&c->subs, room) ? 0 : -ENOMEM;
}

/* Leave the room's channel once no local member is in the room. */
int sig_cluster_unsubscribe_unused(sig_cluster *c, const char *room)
{
    char ch[SIG_ROOM_MAX + 64];
    const char *argv[2] = {"UNSUBSCRIBE", ch};
    bool used;
    pthread_mutex_lock(&c->mu);
    used = hget(&c->rooms, room) != NULL;
    pthread_mutex_unlock(&c->mu);
    used = used || wanted(c, room); /* a hand-over waits for its messages */
    if (used || !hget(&c->subs, room))
        return 0;
    sig_cluster_channel(c, room, ch, sizeof ch);
    hdel(&c->subs, room);
    /* the confirmation is read (and ignored) with the channel traffic */
    if (append_argv(c, c->sub, 2, argv))
        return RTC_EMSG;
    return c->rops->flush(c->sub);
}

/* ---- mirror of local members (under mu) ---- */

static int mirror_add(sig_cluster *c, const char *id, const char *room, const char *name,
                      const char *th)
{
    hent *m, *r;
    if (hget(&c->members, id))
        return RTC_EEXIST;
    if (!(r = hadd(&c->rooms, room)))
        return -ENOMEM;
    if (!(m = hadd(&c->members, id)) || !(m->room = strdup(room)) || !(m->name = strdup(name)) ||
        !(m->th = strdup(th))) {
        if (m)
            hdel(&c->members, id);
        if (r->n == 0)
            hdel(&c->rooms, room);
        return -ENOMEM;
    }
    r->n++;
    return 0;
}

static void mirror_del(sig_cluster *c, const char *id)
{
    hent *m = hget(&c->members, id), *r;
    if (!m)
        return;
    if ((r = hget(&c->rooms, m->room)) && --r->n == 0)
        hdel(&c->rooms, m->room);
    hdel(&c->members, id);
}

/* the mirror's entry for id is this member only if it is in room */
static void mirror_del_in(sig_cluster *c, const char *id, const char *room)
{
    hent *m = hget(&c->members, id);
    if (m && m->room && !strcmp(m->room, room))
        mirror_del(c, id);
}

int sig_cluster_mirror_add(sig_cluster *c, const char *id, const char *room, const char *name,
                           const char *th)
{
    int rc;
    pthread_mutex_lock(&c->mu);
    rc = mirror_add(c, id, room, name, th);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

void sig_cluster_mirror_del_in(sig_cluster *c, const char *id, const char *room)
{
    pthread_mutex_lock(&c->mu);
    mirror_del_in(c, id, room);
    pthread_mutex_unlock(&c->mu);
}

/* ---- commands ---- */

static char *member_value(const sig_cluster *c, const char *name)
{
    return sig_chan_dumps(json_pack("{s:s,s:s}", "name", name, "node", c->node));
}

static void join_answer(sig_cluster *c, const cmd *k, sig_code rc, const sig_redis_reply *all)
{
    sig_cev *e = calloc(1, sizeof *e);
    if (rc != SIG_OK) {
        pthread_mutex_lock(&c->mu);
        mirror_del(c, k->id);
        pthread_mutex_unlock(&c->mu);
    }
    if (!e)
        return;
    e->kind = SIG_CEV_JOINED;
    e->serial = k->serial;
    e->result = rc;
    snprintf(e->room, sizeof e->room, "%s", k->room);
    snprintf(e->id, sizeof e->id, "%s", k->id);
    if (rc == SIG_OK && members_of(c, all, e)) {
        e->result = SIG_E_SERVER_BUSY;
        pthread_mutex_lock(&c->mu);
        mirror_del(c, k->id);
        c->resync = true; /* it is registered in Redis: take it out again */
        pthread_mutex_unlock(&c->mu);
    }
    sig_cluster_push(c, e, false);
}

/* Returns RTC_EMSG when the connection failed (the answer is sent anyway). */
static int run_join(sig_cluster *c, cmd *k)
{
    char key[SIG_ROOM_MAX + 32], nm[64], nt[64], rt[96], ch[SIG_ROOM_MAX + 64], max[16];
    char *value = member_value(c, k->name);
    char *ev = sig_chan_dumps(json_pack("{s:s,s:s,s:s,s:s}", "n", c->node, "e", "join", "id", k->id,
                               "name", k->name));
    char *rv =
        sig_chan_dumps(json_pack("{s:s,s:s,s:s}", "id", k->id, "room", k->room, "node", c->node));
    sig_redis_reply *r = NULL;
    int rc = 0;

    snprintf(key, sizeof key, "%sroom:%s", c->kp, k->room);
    snprintf(nm, sizeof nm, "%snm:%s", c->kp, c->node);
    snprintf(nt, sizeof nt, "%snt:%s", c->kp, c->node);
    snprintf(rt, sizeof rt, "%srt:%s", c->kp, k->th);
    sig_cluster_channel(c, k->room, ch, sizeof ch);
    snprintf(max, sizeof max, "%u", (unsigned)atomic_load(&c->max_room));
    if (!value || !ev || !rv) {
        join_answer(c, k, SIG_E_SERVER_BUSY, NULL);
        goto out;
    }
    if ((rc = sig_cluster_subscribe(c, k->room))) {
        join_answer(c, k, SIG_E_SERVER_BUSY, NULL);
        goto out;
    }
    {
        const char *argv[] = {"EVAL", SIG_LUA_JOIN, "4", key, nm, nt, rt, k->id, value, max, ch, ev,
                              k->room, k->th, rv};
        r = sig_cluster_command(c, 15, argv);
    }
    if (!r) {
        rc = RTC_EMSG;
        join_answer(c, k, SIG_E_SERVER_BUSY, NULL);
    } else if (r->type == SIG_RR_ARRAY && r->elements >= 1 &&
               r->element[0]->type == SIG_RR_INTEGER && r->element[0]->integer == 0) {
        join_answer(c, k, SIG_E_ROOM_FULL, NULL);
        rc = sig_cluster_unsubscribe_unused(c, k->room);
    } else if (r->type == SIG_RR_ARRAY && r->elements == 2) {
        join_answer(c, k, SIG_OK, r->element[1]);
    } else {
        RTC_LOG(RTC_LOG_ERROR, c->node, "redis: join script failed: %s",
                r->type == SIG_RR_ERROR ? r->str : "unexpected reply");
        join_answer(c, k, SIG_E_SERVER_BUSY, NULL);
        rc = sig_cluster_unsubscribe_unused(c, k->room);
    }
out:
    sig_redis_reply_free(r);
    free(value);
    free(ev);
    free(rv);
    return rc;
}

/* Append one LEAVE, PUB or pipelined hook command to the pipeline. */
static int append_cmd(sig_cluster *c, const cmd *k)
{
    char key[SIG_ROOM_MAX + 32], nm[64], nt[64], ch[SIG_ROOM_MAX + 64];
    sig_cluster_channel(c, k->room, ch, sizeof ch);
    if (k->kind == CMD_PUB) {
        const char *argv[] = {"PUBLISH", k->chan[0] ? k->chan : ch, k->payload};
        return append_argv(c, c->cmd, 3, argv);
    } else if (k->kind == CMD_EXT) {
        return k->hooks->append(k->hooks->ud, k->arg);
    } else {
        char *ev =
            sig_chan_dumps(json_pack("{s:s,s:s,s:s}", "n", c->node, "e", "left", "id", k->id));
        const char *argv[] = {"EVAL", SIG_LUA_LEAVE, "3", key, nm, nt, k->id, ch, ev ? ev : "", c->kp,
                              k->room};
        int rc;
        snprintf(key, sizeof key, "%sroom:%s", c->kp, k->room);
        snprintf(nm, sizeof nm, "%snm:%s", c->kp, c->node);
        snprintf(nt, sizeof nt, "%snt:%s", c->kp, c->node);
        rc = append_argv(c, c->cmd, 11, argv);
        free(ev);
        return rc;
    }
}

static cmd *pop_cmd(sig_cluster *c)
{
    cmd *k;
    pthread_mutex_lock(&c->mu);
    if ((k = c->qhead)) {
        c->qhead = k->next;
        if (!c->qhead)
            c->qtail = NULL;
        c->qn--;
    }
    pthread_mutex_unlock(&c->mu);
    return k;
}

static void cmd_free(cmd *k)
{
    if (!k)
        return;
    if (k->kind == CMD_EXT && k->hooks->free_arg)
        k->hooks->free_arg(k->arg);
    free(k->payload);
    free(k);
}

/* Run alone (it waits for replies of its own) rather than pipelined. */
static bool alone(const cmd *k)
{
    return k->kind == CMD_JOIN || (k->kind == CMD_EXT && !k->pipelined);
}

/* Everything queued, in order: joins (and hook commands that run alone)
 * one by one (they wait for their subscription), runs of leaves and
 * publishes pipelined. RTC_EMSG when the connection failed; commands not
 * run are then answered (joins, hook commands) or dropped (publishes;
 * leaves are covered by the mirror and the resync). */
static int run_queue(sig_cluster *c, unsigned budget)
{
    cmd *batch[PIPELINE_MAX];
    size_t n;
    cmd *k;

    while (budget-- > 0 && (k = pop_cmd(c))) {
        if (alone(k)) {
            int rc = k->kind == CMD_JOIN ? run_join(c, k) : k->hooks->run(k->hooks->ud, k->arg);
            cmd_free(k);
            if (rc)
                return rc;
            continue;
        }
        n = 0;
        batch[n++] = k;
        /* gather a run of commands that pipeline */
        for (;;) {
            cmd *nx;
            pthread_mutex_lock(&c->mu);
            nx = n < PIPELINE_MAX && c->qhead && !alone(c->qhead) ? c->qhead : NULL;
            if (nx) {
                c->qhead = nx->next;
                if (!c->qhead)
                    c->qtail = NULL;
                c->qn--;
            }
            pthread_mutex_unlock(&c->mu);
            if (!nx)
                break;
            batch[n++] = nx;
            if (budget)
                budget--;
        }
        {
            int rc = 0;
            for (size_t i = 0; i < n && !rc; i++)
                rc = append_cmd(c, batch[i]);
            for (size_t i = 0; i < n && !rc; i++) {
                sig_redis_reply *r = NULL;
                if (c->rops->get_reply(c->cmd, &r)) {
                    rc = RTC_EMSG;
                    break;
                }
                if (r->type == SIG_RR_ERROR)
                    RTC_LOG(RTC_LOG_WARN, c->node, "redis: %s", r->str);
                if (batch[i]->kind == CMD_EXT && batch[i]->hooks->replied)
                    rc = batch[i]->hooks->replied(batch[i]->hooks->ud, batch[i]->arg, r);
                sig_redis_reply_free(r);
                if (batch[i]->kind == CMD_LEAVE)
                    rc = sig_cluster_unsubscribe_unused(c, batch[i]->room);
            }
            if (rc) {
                pthread_mutex_lock(&c->mu);
                c->resync = true;
                pthread_mutex_unlock(&c->mu);
            }
            for (size_t i = 0; i < n; i++)
                cmd_free(batch[i]);
            if (rc)
                return rc;
        }
    }
    return 0;
}

/* Redis is gone: answer queued joins and hook commands, drop the rest. */
static void fail_queue(sig_cluster *c)
{
    cmd *k;
    while ((k = pop_cmd(c))) {
        if (k->kind == CMD_JOIN)
            join_answer(c, k, SIG_E_SERVER_BUSY, NULL);
        else if (k->kind == CMD_EXT && k->hooks->refused)
            k->hooks->refused(k->hooks->ud, k->arg);
        cmd_free(k);
    }
}

/* ---- node registration, heartbeat, reaping, resync ---- */

static int heartbeat(sig_cluster *c, bool *registered)
{
    char nodes[32], key[64], ttl[16];
    sig_redis_reply *r;
    snprintf(nodes, sizeof nodes, "%snodes", c->kp);
    snprintf(key, sizeof key, "%snode:%s", c->kp, c->node);
    snprintf(ttl, sizeof ttl, "%u", c->ttl_s);
    {
        const char *argv[] = {"EVAL", SIG_LUA_HEARTBEAT, "2", nodes, key, c->node, ttl};
        r = sig_cluster_command(c, 7, argv);
    }
    if (!r)
        return RTC_EMSG;
    *registered = r->type == SIG_RR_INTEGER && r->integer == 1;
    sig_redis_reply_free(r);
    return 0;
}

static int reap(sig_cluster *c)
{
    char nodes[32];
    sig_redis_reply *r;
    snprintf(nodes, sizeof nodes, "%snodes", c->kp);
    {
        const char *argv[] = {"EVAL", SIG_LUA_REAP, "1", nodes, c->kp, c->cp};
        r = sig_cluster_command(c, 6, argv);
    }
    if (!r)
        return RTC_EMSG;
    if (r->type == SIG_RR_ARRAY) {
        for (size_t i = 0; i < r->elements; i++)
            if (r->element[i]->type == SIG_RR_STRING && strcmp(r->element[i]->str, c->node))
                RTC_LOG(RTC_LOG_WARN, c->node,
                        "cluster: node %.16s stopped heartbeating; its members left their rooms",
                        r->element[i]->str);
        pthread_mutex_lock(&c->mu);
        c->st.reaped_nodes += r->elements;
        pthread_mutex_unlock(&c->mu);
    } else if (r->type == SIG_RR_ERROR) {
        RTC_LOG(RTC_LOG_ERROR, c->node, "redis: reap script failed: %s", r->str);
    }
    sig_redis_reply_free(r);
    return 0;
}

/* What resync works from: the mirror, copied under the lock into the
 * RESYNC script's arguments, and the rooms with a local member. */
typedef struct {
    const char **argv;
    size_t n;
    char **owned, **rooms;
    size_t nowned, nrooms;
    char nodes[32], key[64], nm[64], nt[64], ttl[16], nkeep[16];
} snap;

static void snap_dispose(snap *sn)
{
    for (size_t i = 0; i < sn->nowned; i++)
        free(sn->owned[i]);
    for (size_t i = 0; i < sn->nrooms; i++)
        free(sn->rooms[i]);
    free(sn->owned);
    free(sn->rooms);
    free(sn->argv);
}

static char *own(snap *sn, char *p)
{
    if (p)
        sn->owned[sn->nowned++] = p;
    return p;
}

/* The ids the hooks say a resync must leave alone (Redis thread, no lock:
 * the hook owners' state is theirs). */
#define KEEP_MAX 256
static size_t keep_ids(sig_cluster *c, const char **ids)
{
    size_t n = 0;
    EACH_HOOK(c, h)
    if (h->keep_ids)
        n += h->keep_ids(h->ud, ids + n, KEEP_MAX - n);
    return n;
}

/* Called with mu held; keep: keep_ids, taken before the lock. */
static int snapshot(sig_cluster *c, snap *sn, const char *const *keep, size_t nkeep)
{
    size_t cap = 12 + nkeep + 4 * c->members.n;
    sn->argv = calloc(cap, sizeof *sn->argv);
    sn->owned = calloc(nkeep + 4 * c->members.n + 1, sizeof *sn->owned);
    sn->rooms = calloc(c->rooms.n + 1, sizeof *sn->rooms);
    if (!sn->argv || !sn->owned || !sn->rooms)
        return -ENOMEM;
    snprintf(sn->nodes, sizeof sn->nodes, "%snodes", c->kp);
    snprintf(sn->key, sizeof sn->key, "%snode:%s", c->kp, c->node);
    snprintf(sn->nm, sizeof sn->nm, "%snm:%s", c->kp, c->node);
    snprintf(sn->nt, sizeof sn->nt, "%snt:%s", c->kp, c->node);
    snprintf(sn->ttl, sizeof sn->ttl, "%u", c->ttl_s);
    {
        const char *head[] = {"EVAL", SIG_LUA_RESYNC, "4", sn->nodes, sn->key, sn->nm, sn->nt,
                              c->node, sn->ttl, c->kp, c->cp};
        for (size_t i = 0; i < 11; i++)
            sn->argv[sn->n++] = head[i];
    }
    /* members on their way here (open hand-overs) */
    snprintf(sn->nkeep, sizeof sn->nkeep, "%zu", nkeep);
    sn->argv[sn->n++] = sn->nkeep;
    for (size_t i = 0; i < nkeep; i++) {
        const char *id = own(sn, strdup(keep[i]));
        if (!id)
            return -ENOMEM;
        sn->argv[sn->n++] = id;
    }
    for (size_t i = 0; i < HBUCKETS; i++)
        for (hent *m = c->members.b[i]; m; m = m->next) {
            const char *id = own(sn, strdup(m->key)), *room = own(sn, strdup(m->room));
            const char *v = own(sn, member_value(c, m->name));
            const char *th = own(sn, strdup(m->th ? m->th : ""));
            if (!id || !room || !v || !th)
                return -ENOMEM;
            sn->argv[sn->n++] = id;
            sn->argv[sn->n++] = room;
            sn->argv[sn->n++] = v;
            sn->argv[sn->n++] = th;
        }
    for (size_t i = 0; i < HBUCKETS; i++)
        for (hent *e = c->rooms.b[i]; e; e = e->next)
            if (!(sn->rooms[sn->nrooms++] = strdup(e->key)))
                return -ENOMEM;
    return 0;
}

/* Channels first: nothing published after the registration snapshot is missed. */
static int resync_subs(sig_cluster *c, const snap *sn)
{
    int rc;
    for (size_t i = 0; i < HBUCKETS; i++)
        for (hent *e = c->subs.b[i], *nx; e; e = nx) {
            bool keep = false;
            nx = e->next;
            for (size_t j = 0; j < sn->nrooms && !keep; j++)
                keep = sn->rooms[j] && !strcmp(sn->rooms[j], e->key);
            if (!keep && (rc = sig_cluster_unsubscribe_unused(c, e->key)))
                return rc;
        }
    for (size_t j = 0; j < sn->nrooms; j++)
        if (sn->rooms[j] && (rc = sig_cluster_subscribe(c, sn->rooms[j])))
            return rc;
    return 0;
}

/* Every listed room's members on other nodes, as SYNC events. */
static int sync_rooms(sig_cluster *c, char *const *rooms, size_t nrooms)
{
    for (size_t j = 0; j < nrooms; j++) {
        char rk[SIG_ROOM_MAX + 32];
        const char *hv[] = {"HGETALL", rk};
        sig_redis_reply *r;
        sig_cev *e;
        snprintf(rk, sizeof rk, "%sroom:%s", c->kp, rooms[j]);
        if (!(r = sig_cluster_command(c, 2, hv)) || r->type != SIG_RR_ARRAY) {
            sig_redis_reply_free(r);
            return RTC_EMSG;
        }
        if ((e = calloc(1, sizeof *e))) {
            e->kind = SIG_CEV_SYNC;
            snprintf(e->room, sizeof e->room, "%s", rooms[j]);
            if (members_of(c, r, e) == 0)
                sig_cluster_push(c, e, false);
            else
                sig_cev_free(e);
        }
        sig_redis_reply_free(r);
    }
    return 0;
}

/* The rooms with a local member now, re-read (the deferred SYNC). */
static int sync_mirror_rooms(sig_cluster *c)
{
    snap sn;
    int rc;
    memset(&sn, 0, sizeof sn);
    pthread_mutex_lock(&c->mu);
    rc = snapshot(c, &sn, NULL, 0);
    pthread_mutex_unlock(&c->mu);
    if (!rc)
        rc = sync_rooms(c, sn.rooms, sn.nrooms);
    snap_dispose(&sn);
    return rc;
}

/* Make subscriptions and Redis's registrations match the mirror, then tell
 * the lws thread every room's members on other nodes (SYNC). After a
 * reconnection (`rooms_now` false) that last step waits SYNC_DELAY_MS: if
 * Redis lost its data, the other nodes have not re-registered their members
 * yet, and a SYNC now would announce them gone (peer-left ends a call). Joins
 * and leaves announced meanwhile still apply one by one. */
static int resync(sig_cluster *c, bool rooms_now)
{
    snap sn;
    sig_redis_reply *r = NULL;
    const char *keep[KEEP_MAX];
    size_t nkeep = keep_ids(c, keep);
    int rc;

    memset(&sn, 0, sizeof sn);
    pthread_mutex_lock(&c->mu);
    c->resync = false;
    rc = snapshot(c, &sn, keep, nkeep);
    pthread_mutex_unlock(&c->mu);
    if (!rc)
        rc = resync_subs(c, &sn);
    if (!rc) {
        size_t *len = calloc(sn.n + 1, sizeof *len);
        for (size_t i = 0; len && i < sn.n; i++)
            len[i] = strlen(sn.argv[i]);
        if (!len || c->rops->append(c->cmd, (int)sn.n, sn.argv, len) ||
            c->rops->get_reply(c->cmd, &r))
            r = NULL;
        free(len);
        if (!reply_ok(r)) {
            if (r)
                RTC_LOG(RTC_LOG_ERROR, c->node, "redis: resync script failed: %s", r->str);
            rc = RTC_EMSG;
        }
        sig_redis_reply_free(r);
    }
    if (!rc && rooms_now)
        rc = sync_rooms(c, sn.rooms, sn.nrooms);
    else if (!rc)
        c->sync_at = rtc_clock_mono_ms() + SYNC_DELAY_MS;
    snap_dispose(&sn);
    if (rc) {
        pthread_mutex_lock(&c->mu);
        c->resync = true;
        pthread_mutex_unlock(&c->mu);
    }
    return rc;
}

/* ---- connections ---- */

static int connect_all(sig_cluster *c, char *err, size_t errlen)
{
    drop_conns(c);
    if (!(c->cmd = c->rops->dial(c->rops->ud, &c->url, c->where, IO_TIMEOUT_S, err, errlen)) ||
        !(c->sub = c->rops->dial(c->rops->ud, &c->url, c->where, IO_TIMEOUT_S, err, errlen))) {
        drop_conns(c);
        return RTC_EMSG;
    }
    if (subscribe_chan(c, c->inbox)) { /* hand-over replies */
        snprintf(err, errlen, "%s: SUBSCRIBE failed", c->where);
        drop_conns(c);
        return RTC_EMSG;
    }
    if (resync(c, false)) {
        snprintf(err, errlen, "%s: registering this node failed", c->where);
        drop_conns(c);
        return RTC_EMSG;
    }
    return 0;
}

static void set_up(sig_cluster *c, bool up)
{
    bool was = atomic_exchange(&c->up, up);
    if (was == up)
        return;
    if (up) {
        RTC_LOG(RTC_LOG_INFO, c->node, "redis: connected to %s", c->where);
        pthread_mutex_lock(&c->mu);
        c->st.reconnects++;
        pthread_mutex_unlock(&c->mu);
    } else {
        RTC_LOG(RTC_LOG_ERROR, c->node,
                "redis: lost %s: new joins get server-busy until it is back", c->where);
    }
}

/* Sleep up to ms, or until the lws thread queues something or stops us. */
static void wait_wake(sig_cluster *c, int ms)
{
    struct pollfd p = {.fd = c->wakefd, .events = POLLIN};
    uint64_t v;
    if (poll(&p, 1, ms) > 0 && read(c->wakefd, &v, sizeof v) < 0)
        return;
}

/* One round while connected: channel traffic, queued commands, heartbeat. */
static int serve(sig_cluster *c, uint64_t *next_hb)
{
    struct pollfd p[2] = {{.fd = c->wakefd, .events = POLLIN},
                          {.fd = c->rops->fd(c->sub), .events = POLLIN}};
    uint64_t now = rtc_clock_mono_ms(), v, due = *next_hb;
    int timeout;
    bool again;

    EACH_HOOK(c, h)
    if (h->deadline)
        due = h->deadline(h->ud, due);
    timeout = due > now ? (int)(due - now) : 0;

    pthread_mutex_lock(&c->mu);
    if (c->qhead)
        timeout = 0; /* left over from the last round's budget */
    pthread_mutex_unlock(&c->mu);
    if (poll(p, 2, timeout) < 0 && errno != EINTR)
        return -errno;
    if ((p[0].revents & POLLIN) && read(c->wakefd, &v, sizeof v) < 0 && errno != EAGAIN)
        return -errno;
    if ((p[1].revents & (POLLIN | POLLHUP | POLLERR)) && read_sub(c))
        return RTC_EMSG;
    if (run_queue(c, QUEUE_BUDGET))
        return RTC_EMSG;
    EACH_HOOK(c, h)
    if (h->tick)
        h->tick(h->ud, rtc_clock_mono_ms());
    if (rtc_clock_mono_ms() >= *next_hb) {
        bool registered = true;
        *next_hb = rtc_clock_mono_ms() + HEARTBEAT_MS;
        /* Right after a (re)connection, other nodes may still be on their way
         * back (Redis stalled, every heartbeat expired): give them their
         * backoff and a heartbeat before calling them dead. */
        if (heartbeat(c, &registered) || (rtc_clock_mono_ms() >= c->reap_from && reap(c)))
            return RTC_EMSG;
        if (!registered) {
            /* Presumed dead (we stalled past the TTL, or Redis lost its data):
             * the others saw our members leave; register them again. */
            RTC_LOG(RTC_LOG_WARN, c->node,
                    "cluster: this node was not registered in Redis; re-registering its members");
            pthread_mutex_lock(&c->mu);
            c->resync = true;
            pthread_mutex_unlock(&c->mu);
        }
    }
    pthread_mutex_lock(&c->mu);
    again = c->resync;
    pthread_mutex_unlock(&c->mu);
    if (again && resync(c, true))
        return RTC_EMSG;
    if (c->sync_at && rtc_clock_mono_ms() >= c->sync_at) {
        c->sync_at = 0;
        if (sync_mirror_rooms(c))
            return RTC_EMSG;
    }
    return 0;
}

/* Clean exit: what is queued goes out, then the node deregisters (its
 * heartbeat key deleted and reaped at once, so members still registered
 * leave their rooms now rather than after node-ttl). */
static void shutdown_node(sig_cluster *c)
{
    char key[64];
    const char *argv[] = {"DEL", key};
    if (run_queue(c, UINT32_MAX))
        return;
    snprintf(key, sizeof key, "%snode:%s", c->kp, c->node);
    sig_redis_reply_free(sig_cluster_command(c, 2, argv));
    reap(c);
}

static void lost(sig_cluster *c)
{
    EACH_HOOK(c, h)
    if (h->lost)
        h->lost(h->ud);
}

static void *thread_main(void *arg)
{
    sig_cluster *c = arg;
    uint64_t next_hb = rtc_clock_mono_ms() + HEARTBEAT_MS;
    int backoff = BACKOFF_MIN_MS;
    char err[512];

    while (!atomic_load(&c->stop)) {
        if (!c->cmd) {
            if (connect_all(c, err, sizeof err)) {
                RTC_LOG(RTC_LOG_DEBUG, c->node, "redis: %s; retrying in %d ms", err, backoff);
                fail_queue(c);
                wait_wake(c, backoff);
                backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
                continue;
            }
            backoff = BACKOFF_MIN_MS;
            c->reap_from = rtc_clock_mono_ms() + BACKOFF_MAX_MS + 1000u * c->ttl_s;
            set_up(c, true);
            next_hb = rtc_clock_mono_ms(); /* heartbeat and reap right away */
        }
        if (serve(c, &next_hb)) {
            drop_conns(c);
            lost(c);
            set_up(c, false);
            pthread_mutex_lock(&c->mu);
            c->resync = true;
            pthread_mutex_unlock(&c->mu);
            fail_queue(c);
        }
    }
    if (c->cmd)
        shutdown_node(c);
    fail_queue(c);
    lost(c);
    drop_conns(c);
    return NULL;
}

/* ---- public (lws thread) ---- */

int sig_cluster_new(const sig_cluster_params *p, sig_cluster **out, char *err, size_t errlen)
{
    sig_cluster *c = calloc(1, sizeof *c);
    uint8_t rnd[NODE_LEN / 2];

    *out = NULL;
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    if (sig_redis_url_parse(p->url, &c->url, err, errlen)) {
        free(c);
        return RTC_EMSG;
    }
    sig_redis_url_describe(&c->url, c->where, sizeof c->where);
    if (rtc_random(rnd, sizeof rnd)) {
        snprintf(err, errlen, "no randomness for the node id");
        memset(&c->url, 0, sizeof c->url);
        free(c);
        return RTC_EMSG;
    }
    rtc_hex(rnd, sizeof rnd, c->node);
    c->rops = p->redis ? p->redis : &sig_redis_hiredis;
    snprintf(c->kp, sizeof c->kp, "tsu:");
    snprintf(c->cp, sizeof c->cp, "tsu:%d:ch:", c->url.db);
    snprintf(c->np, sizeof c->np, "tsu:%d:nd:", c->url.db);
    snprintf(c->inbox, sizeof c->inbox, "%s%s", c->np, c->node);
    c->qmax = p->queue;
    c->max_payload = p->max_payload;
    c->ttl_s = p->node_ttl_s;
    atomic_store(&c->max_room, p->max_room_size);
    c->wake = p->wake;
    c->ud = p->ud;
    c->wakefd = -1;
    pthread_mutex_init(&c->mu, NULL);
    pthread_mutex_init(&c->wake_mu, NULL);
    pthread_cond_init(&c->space, NULL);
    *out = c;
    return 0;
}

int sig_cluster_add_hooks(sig_cluster *c, const sig_cluster_hooks *h)
{
    if (c->started || c->nhooks >= SIG_CLUSTER_HOOKS)
        return RTC_ELIMIT;
    c->hooks[c->nhooks++] = h;
    return 0;
}

int sig_cluster_start(sig_cluster *c, char *err, size_t errlen)
{
    int rc;
    if ((c->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
        rc = -errno;
        snprintf(err, errlen, "eventfd: %s", strerror(errno));
        return rc;
    }
    /* Start-up needs Redis: a node that cannot reach it would only refuse
     * every join (documented; systemd restarts it). */
    if ((rc = connect_all(c, err, errlen)))
        return rc;
    atomic_store(&c->up, 1);
    if ((rc = pthread_create(&c->th, NULL, thread_main, c))) {
        snprintf(err, errlen, "pthread_create: %s", strerror(rc));
        drop_conns(c);
        return -rc;
    }
    c->started = true;
    RTC_LOG(RTC_LOG_INFO, c->node, "cluster mode: node %s, redis %s, node-ttl %us", c->node,
            c->where, c->ttl_s);
    return 0;
}

void sig_cluster_mute(sig_cluster *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->wake_mu);
    c->wake = NULL;
    pthread_mutex_unlock(&c->wake_mu);
}

void sig_cluster_free(sig_cluster *c)
{
    sig_cev *e;
    if (!c)
        return;
    sig_cluster_mute(c);
    atomic_store(&c->stop, 1);
    pthread_mutex_lock(&c->mu);
    pthread_cond_broadcast(&c->space);
    pthread_mutex_unlock(&c->mu);
    if (c->wakefd >= 0)
        poke(c->wakefd);
    if (c->started)
        pthread_join(c->th, NULL);
    else
        drop_conns(c);
    while ((e = sig_cluster_poll(c)))
        sig_cev_free(e);
    hclear(&c->members);
    hclear(&c->rooms);
    hclear(&c->subs);
    if (c->wakefd >= 0)
        close(c->wakefd);
    pthread_cond_destroy(&c->space);
    pthread_mutex_destroy(&c->wake_mu);
    pthread_mutex_destroy(&c->mu);
    memset(&c->url, 0, sizeof c->url);
    free(c);
}

const char *sig_cluster_node(const sig_cluster *c) { return c->node; }
bool sig_cluster_up(sig_cluster *c) { return atomic_load(&c->up); }
void sig_cluster_set_max_room_size(sig_cluster *c, uint32_t n) { atomic_store(&c->max_room, n); }

static int enqueue(sig_cluster *c, cmd *k, bool force)
{
    bool was_empty;
    if (!force && c->qn >= c->qmax)
        return RTC_ELIMIT;
    k->next = NULL;
    was_empty = !c->qhead;
    if (c->qtail)
        c->qtail->next = k;
    else
        c->qhead = k;
    c->qtail = k;
    c->qn++;
    return was_empty ? 1 : 0;
}

int sig_cluster_join(sig_cluster *c, uint64_t serial, const char *room, const char *id,
                     const char *name, const char *resume)
{
    cmd *k;
    int rc;
    if (!atomic_load(&c->up))
        return RTC_EUNSUP;
    if (!(k = calloc(1, sizeof *k)))
        return -ENOMEM;
    k->kind = CMD_JOIN;
    k->serial = serial;
    snprintf(k->room, sizeof k->room, "%s", room);
    snprintf(k->id, sizeof k->id, "%s", id);
    snprintf(k->name, sizeof k->name, "%s", name ? name : "");
    sig_cluster_token_hash(resume, k->th);
    pthread_mutex_lock(&c->mu);
    if (c->qn >= c->qmax) {
        rc = RTC_ELIMIT;
    } else if ((rc = mirror_add(c, id, room, k->name, k->th)) == 0) {
        rc = enqueue(c, k, false);
    }
    pthread_mutex_unlock(&c->mu);
    if (rc < 0) {
        free(k);
        return rc;
    }
    if (rc == 1)
        poke(c->wakefd);
    return 0;
}

void sig_cluster_leave(sig_cluster *c, const char *room, const char *id)
{
    cmd *k = calloc(1, sizeof *k);
    int rc = -1;
    pthread_mutex_lock(&c->mu);
    mirror_del_in(c, id, room);
    if (k && atomic_load(&c->up)) {
        k->kind = CMD_LEAVE;
        snprintf(k->room, sizeof k->room, "%s", room);
        snprintf(k->id, sizeof k->id, "%s", id);
        rc = enqueue(c, k, false);
    }
    if (rc < 0)
        c->resync = true; /* the resync takes it out of Redis instead */
    pthread_mutex_unlock(&c->mu);
    if (rc < 0)
        free(k);
    if (rc != 0)
        poke(c->wakefd);
}

int sig_cluster_publish(sig_cluster *c, const char *room, const char *to, const char *from,
                        json_t *data)
{
    cmd *k;
    json_t *o;
    int rc;
    if (!atomic_load(&c->up))
        return RTC_EUNSUP;
    o = to ? json_pack("{s:s,s:s,s:s,s:s,s:O}", "n", c->node, "e", "sig", "from", from, "to", to,
                       "data", data)
           : json_pack("{s:s,s:s,s:s,s:O}", "n", c->node, "e", "bc", "from", from, "data", data);
    if (!(k = calloc(1, sizeof *k)) || !(k->payload = sig_chan_dumps(o))) {
        free(k);
        return -ENOMEM;
    }
    k->kind = CMD_PUB;
    snprintf(k->room, sizeof k->room, "%s", room);
    pthread_mutex_lock(&c->mu);
    rc = enqueue(c, k, false);
    if (rc >= 0)
        c->st.published++;
    pthread_mutex_unlock(&c->mu);
    if (rc < 0) {
        cmd_free(k);
        return rc;
    }
    if (rc == 1)
        poke(c->wakefd);
    return 0;
}

/* Queue one command (force: never refused); wake the thread. 0 or
 * RTC_ELIMIT (k freed). */
static int submit(sig_cluster *c, cmd *k, bool force)
{
    int rc;
    pthread_mutex_lock(&c->mu);
    rc = enqueue(c, k, force);
    pthread_mutex_unlock(&c->mu);
    if (rc < 0) {
        cmd_free(k);
        return rc;
    }
    if (rc == 1)
        poke(c->wakefd);
    return 0;
}

int sig_cluster_submit(sig_cluster *c, const sig_cluster_hooks *h, void *arg, bool pipelined,
                       bool force)
{
    cmd *k = calloc(1, sizeof *k);
    if (!k) {
        if (h->free_arg)
            h->free_arg(arg);
        return -ENOMEM;
    }
    k->kind = CMD_EXT;
    k->hooks = h;
    k->arg = arg;
    k->pipelined = pipelined;
    return submit(c, k, force);
}

void sig_cluster_publish_text(sig_cluster *c, const char *room, const char *to, char *text)
{
    cmd *k = calloc(1, sizeof *k);
    if (!k) {
        free(text);
        return;
    }
    k->kind = CMD_PUB;
    k->payload = text;
    snprintf(k->room, sizeof k->room, "%s", room ? room : "");
    if (to)
        sig_cluster_node_channel(c, to, k->chan, sizeof k->chan);
    submit(c, k, true);
}

uint32_t sig_cluster_max_room(sig_cluster *c) { return atomic_load(&c->max_room); }

void sig_cluster_token_hash(const char *token, char out[SIG_TH_LEN + 1])
{
    uint8_t d[RTC_SHA256_LEN];
    rtc_sha256(token, strlen(token), d);
    rtc_hex(d, sizeof d, out);
}

sig_cev *sig_cluster_poll(sig_cluster *c)
{
    sig_cev *e;
    pthread_mutex_lock(&c->mu);
    if ((e = c->ehead)) {
        c->ehead = e->next;
        if (!c->ehead)
            c->etail = NULL;
        if (c->en-- == c->qmax)
            pthread_cond_signal(&c->space);
    }
    pthread_mutex_unlock(&c->mu);
    return e;
}

void sig_cev_free(sig_cev *e)
{
    if (!e)
        return;
    json_decref(e->data);
    free(e->members);
    for (size_t i = 0; i < e->ntexts; i++)
        free(e->texts[i]);
    free(e->texts);
    free(e);
}

void sig_cluster_get_stats(sig_cluster *c, sig_cluster_stats *st)
{
    pthread_mutex_lock(&c->mu);
    *st = c->st;
    pthread_mutex_unlock(&c->mu);
    st->up = atomic_load(&c->up);
}
