/* sig_cluster.c - the Redis side of cluster mode (see sig_cluster.h and
 * docs/cluster.md; threads and locks are written down in sig_cluster.h).
 * Redis is reached through sig_redis_ops (sig_redis.c holds hiredis).
 *
 * Data model: docs/cluster.md "Data model" (standalone Redis; keys built
 * inside scripts, so not Redis Cluster): node set and heartbeats, room
 * hashes, per-node member and token hashes, token owners (tsu:rt:), room
 * streams (tsu:st:ROOM, sig_cluster_st.h), a room's and a node's pub/sub
 * channels (tsu:DB:ch:ROOM, tsu:DB:nd:NODE: channels ignore SELECT). Channel
 * messages are JSON {"n":ORIGIN_NODE,"e":EVENT,...}, EVENT join, left, sig,
 * bc. Every change of a room hash and its announcement happen in one Lua
 * script, and the join script checks the room size across all nodes.
 *
 * Below this file: the registration scripts (sig_cluster_reg.c), the
 * SUBSCRIBE connection (sig_cluster_sub.c), the two queues between the
 * threads (sig_cluster_q.c) and the mirror of local members (sig_mirror.c,
 * under `mu`), which is what the Redis thread re-registers after a
 * reconnect or when it finds the node was presumed dead. It keeps no copy
 * of room state beyond the channels it is subscribed to.
 *
 * Above it: channel events and commands this file does not know go to the
 * hooks of the layers above (sig_cluster_hooks): hand-over (resume across
 * nodes) is sig_handover.c, and the argument that it delivers every message
 * exactly once and in order is at its top. */
#include "sig_cluster.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rtc_clock.h"
#include "rtc_crypto.h"
#include "rtc_err.h"
#include "rtc_log.h"
#include "sig_chan.h"
#include "sig_cluster_q.h"
#include "sig_cluster_reg.h"
#include "sig_cluster_sub.h"

#define HEARTBEAT_MS 1000
#define IO_TIMEOUT_S 2      /* any Redis call; then the connection counts as lost */
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define PIPELINE_MAX 256
#define SYNC_DELAY_MS (BACKOFF_MAX_MS + 2000) /* other nodes' reconnect: backoff + one timeout */
#define QUEUE_BUDGET 4096   /* commands per round: channel reads and heartbeats are not starved */
#define NODE_LEN SIG_NODE_LEN

typedef enum { CMD_JOIN, CMD_LEAVE, CMD_PUB, CMD_EXT } cmd_kind;

typedef struct cmd {
    sig_cq_node node; /* first: the queue links it */
    cmd_kind kind;
    uint64_t serial;
    char room[SIG_ROOM_MAX + 1], id[SIG_ID_MAX + 1], name[SIG_NAME_MAX + 1];
    char th[SIG_TH_LEN + 1]; /* JOIN: the resume token's hash */
    char chan[96];           /* PUB: a node's channel instead of the room's */
    char *payload;           /* PUB: the channel message */
    const sig_cluster_hooks *hooks; /* EXT: whose command */
    void *arg;               /* EXT: the hook owner's */
    bool pipelined;          /* EXT: append/replied, else run */
    bool retain; /* PUB of a signal/broadcast: sent again after a reconnection, never dropped */
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
    size_t max_payload;
    uint32_t ttl_s, st_len; /* st_*: room streams (sig_cluster_st.h) */
    uint64_t st_ms, pub_q;  /* pub_q: signals numbered (lws thread) */
    _Atomic uint32_t max_room;
    _Atomic int up;
    _Atomic int stop;
    sig_cq q; /* commands to the Redis thread, events back (its own lock) */
    pthread_t th;
    bool started;
    const sig_cluster_hooks *hooks[SIG_CLUSTER_HOOKS]; /* set before the thread starts */
    size_t nhooks;

    pthread_mutex_t mu; /* mirror, resync flag, stats */
    bool resync; /* the mirror and Redis may disagree: re-register */
    sig_mirror *mirror; /* local members and their rooms */
    sig_cluster_stats st;

    /* Redis thread only */
    sig_redis_conn *cmd;
    sig_reg reg;       /* registration commands on cmd (sig_cluster_reg.h) */
    sig_sub sub;       /* the SUBSCRIBE connection and its channels */
    uint64_t reap_from; /* no reaping before this (ms): see serve() */
    uint64_t sync_at;   /* re-read the rooms then (ms), 0 = not due: see resync() */
};

#define EACH_HOOK(c, h) \
    for (size_t hk_ = 0; hk_ < (c)->nhooks; hk_++) \
        for (const sig_cluster_hooks *h = (c)->hooks[hk_]; h; h = NULL)

/* ---- Redis thread: replies and helpers ---- */

static void drop_conns(sig_cluster *c)
{
    c->rops->close(c->cmd);
    c->cmd = c->reg.conn = NULL;
    sig_sub_close(&c->sub);
}

/* One command on the command connection, argv-style (binary safe). NULL
 * when the connection failed (the caller drops it). */
sig_redis_reply *sig_cluster_command(sig_cluster *c, int argc, const char **argv)
{
    return sig_reg_command(&c->reg, argc, argv);
}

int sig_cluster_append(sig_cluster *c, int argc, const char **argv)
{
    return sig_reg_append(&c->reg, argc, argv);
}

/* Hand one event to the lws thread (sig_cq_push: a full queue waits, then
 * drops). Events a layer above bounds itself (a hand-over's MARK, DONE,
 * FENCE: at most three per hand-over in flight) are never dropped: losing
 * one would lose the member or its messages without anybody knowing. */
void sig_cluster_push(sig_cluster *c, sig_cev *e, bool never_drop)
{
    if (sig_cq_push(&c->q, e, never_drop)) {
        sig_cev_free(e);
        pthread_mutex_lock(&c->mu);
        c->resync = true; /* membership at least comes right again */
        pthread_mutex_unlock(&c->mu);
    }
}

void sig_cluster_count_drop(sig_cluster *c)
{
    pthread_mutex_lock(&c->mu);
    c->st.dropped++;
    pthread_mutex_unlock(&c->mu);
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
static void on_message(void *ud, const sig_redis_reply *ch, const sig_redis_reply *pl)
{
    sig_cluster *c = ud;
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
    if (!sig_sub_take(&c->sub, room, node, o) || /* caught up already, or sent twice */
        (own && strcmp(ev, "left") && !wanted(c, room))) {
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
    if (!sig_chan_room_event(o, ev, e)) {
        json_decref(o);
        free(e);
        sig_cluster_count_drop(c);
        return;
    }
    json_decref(o);
    sig_cluster_push(c, e, false);
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

int sig_cluster_subscribe(sig_cluster *c, const char *room)
{
    char ch[SIG_ROOM_MAX + 64];
    sig_cluster_channel(c, room, ch, sizeof ch);
    return sig_sub_subscribe(&c->sub, room, ch);
}

/* Leave the room's channel once no local member is in the room. */
int sig_cluster_unsubscribe_unused(sig_cluster *c, const char *room)
{
    char ch[SIG_ROOM_MAX + 64];
    bool used;
    pthread_mutex_lock(&c->mu);
    used = sig_mirror_has_room(c->mirror, room);
    pthread_mutex_unlock(&c->mu);
    used = used || wanted(c, room); /* a hand-over waits for its messages */
    if (used || !sig_sub_has(&c->sub, room))
        return 0;
    sig_cluster_channel(c, room, ch, sizeof ch);
    return sig_sub_unsubscribe(&c->sub, room, ch);
}

/* ---- mirror of local members (under mu) ---- */

int sig_cluster_mirror_add(sig_cluster *c, const char *id, const char *room, const char *name,
                           const char *th)
{
    int rc;
    pthread_mutex_lock(&c->mu);
    rc = sig_mirror_add(c->mirror, id, room, name, th);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

void sig_cluster_mirror_del_in(sig_cluster *c, const char *id, const char *room)
{
    pthread_mutex_lock(&c->mu);
    sig_mirror_del_in(c->mirror, id, room);
    pthread_mutex_unlock(&c->mu);
}

/* ---- commands ---- */

/* Tell the lws thread how a join went (in e, taken; NULL: no memory for an
 * answer); a failed one leaves the mirror. */
static void join_answer(sig_cluster *c, const cmd *k, sig_code rc, sig_cev *e)
{
    if (rc != SIG_OK) {
        pthread_mutex_lock(&c->mu);
        sig_mirror_del(c->mirror, k->id);
        pthread_mutex_unlock(&c->mu);
    }
    if (!e)
        return;
    e->kind = SIG_CEV_JOINED;
    e->serial = k->serial;
    e->result = rc;
    snprintf(e->room, sizeof e->room, "%s", k->room);
    snprintf(e->id, sizeof e->id, "%s", k->id);
    sig_cluster_push(c, e, false);
}

/* A join: subscribed to the room first (its traffic after the join script
 * is seen), then the script. RTC_EMSG when the connection failed (the
 * answer is sent anyway). */
static int run_join(sig_cluster *c, cmd *k)
{
    sig_cev *e = calloc(1, sizeof *e);
    sig_code result = SIG_E_SERVER_BUSY;
    int rc;

    if ((rc = sig_cluster_subscribe(c, k->room))) {
        join_answer(c, k, SIG_E_SERVER_BUSY, e);
        return rc;
    }
    if (!e) { /* (no answer possible: the lws side gives up with the connection) */
        join_answer(c, k, SIG_E_SERVER_BUSY, NULL);
        return sig_cluster_unsubscribe_unused(c, k->room);
    }
    rc = sig_reg_join(&c->reg, k->room, k->id, k->name, k->th, atomic_load(&c->max_room),
                      &result, e);
    if (rc == 1) {
        /* registered in Redis, but its answer cannot be read: take it out
         * again (the resync does) */
        pthread_mutex_lock(&c->mu);
        sig_mirror_del(c->mirror, k->id);
        c->resync = true;
        pthread_mutex_unlock(&c->mu);
        join_answer(c, k, SIG_E_SERVER_BUSY, e);
        return 0;
    }
    join_answer(c, k, result, e);
    if (!rc && result != SIG_OK)
        rc = sig_cluster_unsubscribe_unused(c, k->room);
    return rc;
}

/* Append one LEAVE, PUB or pipelined hook command to the pipeline. */
static int append_cmd(sig_cluster *c, const cmd *k)
{
    char ch[SIG_ROOM_MAX + 64];
    sig_cluster_channel(c, k->room, ch, sizeof ch);
    if (k->kind == CMD_PUB && k->retain) { /* through the room's stream */
        return sig_reg_append_pub(&c->reg, k->room, ch, k->payload, c->st_len, c->st_ms);
    } else if (k->kind == CMD_PUB) {
        const char *argv[] = {"PUBLISH", k->chan[0] ? k->chan : ch, k->payload};
        return sig_reg_append(&c->reg, 3, argv);
    } else if (k->kind == CMD_EXT) {
        return k->hooks->append(k->hooks->ud, k->arg);
    } else {
        return sig_reg_append_leave(&c->reg, k->room, k->id);
    }
}

static cmd *as_cmd(sig_cq_node *n) { return (cmd *)(void *)n; } /* (node is first) */

static cmd *pop_cmd(sig_cluster *c) { return as_cmd(sig_cq_take(&c->q, NULL)); }

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

static bool pipelines(const sig_cq_node *n) { return !alone((const cmd *)(const void *)n); }

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
            cmd *nx = n < PIPELINE_MAX ? as_cmd(sig_cq_take(&c->q, pipelines)) : NULL;
            if (!nx)
                break;
            batch[n++] = nx;
            if (budget)
                budget--;
        }
        {
            int rc = 0;
            size_t done = 0; /* replies read: what surely ran */
            for (size_t i = 0; i < n && !rc; i++)
                rc = append_cmd(c, batch[i]);
            for (size_t i = 0; i < n && !rc; i++) {
                sig_redis_reply *r = NULL;
                if (c->rops->get_reply(c->cmd, &r)) {
                    rc = RTC_EMSG;
                    break;
                }
                done = i + 1;
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
            for (size_t i = 0; i < n; i++) {
                if (rc && i >= done && batch[i]->retain)
                    sig_cq_hold(&c->q, &batch[i]->node); /* maybe not run: again (deduplicated) */
                else
                    cmd_free(batch[i]);
            }
            if (rc)
                return rc;
        }
    }
    return 0;
}

/* Redis is gone: answer queued joins and hook commands, keep accepted
 * signals and broadcasts for the next connection (unless `final`), drop the
 * rest. */
static void fail_queue(sig_cluster *c, bool final)
{
    cmd *k;
    if (final)
        sig_cq_unhold(&c->q);
    while ((k = pop_cmd(c))) {
        if (k->retain && !final)
            sig_cq_hold(&c->q, &k->node);
        else if (k->kind == CMD_JOIN)
            join_answer(c, k, SIG_E_SERVER_BUSY, calloc(1, sizeof(sig_cev)));
        else if (k->kind == CMD_EXT && k->hooks->refused)
            k->hooks->refused(k->hooks->ud, k->arg);
        if (!k->retain || final)
            cmd_free(k);
    }
}

/* ---- node registration: resync ---- */

/* The ids the hooks say a resync must leave alone (their state: no lock). */
#define KEEP_MAX 256
static size_t keep_ids(sig_cluster *c, const char **ids)
{
    size_t n = 0;
    EACH_HOOK(c, h)
    if (h->keep_ids)
        n += h->keep_ids(h->ud, ids + n, KEEP_MAX - n);
    return n;
}

/* Leave a channel no local member (and no hook) needs any more. */
static int drop_unused(void *c, const char *room)
{
    return sig_cluster_unsubscribe_unused(c, room);
}

/* Channels first: nothing published after the registration snapshot is missed. */
static int resync_subs(sig_cluster *c, const sig_mirror_copy *mc)
{
    int rc = sig_nameset_each(&c->sub.keys, drop_unused, c);
    for (size_t j = 0; !rc && j < mc->nrooms; j++)
        rc = sig_cluster_subscribe(c, mc->rooms[j]);
    if (!rc)
        sig_sub_prune(&c->sub); /* (stream positions of rooms left) */
    return rc;
}

/* Every listed room's members on other nodes, as SYNC events. */
static int sync_rooms(sig_cluster *c, char *const *rooms, size_t nrooms)
{
    for (size_t j = 0; j < nrooms; j++) {
        sig_cev *e = calloc(1, sizeof *e);
        int rc;
        if (!e)
            continue;
        e->kind = SIG_CEV_SYNC;
        snprintf(e->room, sizeof e->room, "%s", rooms[j]);
        if ((rc = sig_reg_room_members(&c->reg, rooms[j], e))) {
            sig_cev_free(e);
            if (rc < 0)
                return rc;
            continue;
        }
        sig_cluster_push(c, e, false);
    }
    return 0;
}

/* The rooms with a local member now, re-read (the deferred SYNC). */
static int sync_mirror_rooms(sig_cluster *c)
{
    sig_mirror_copy mc;
    int rc;
    pthread_mutex_lock(&c->mu);
    rc = sig_mirror_copy_all(c->mirror, &mc);
    pthread_mutex_unlock(&c->mu);
    if (!rc)
        rc = sync_rooms(c, mc.rooms, mc.nrooms);
    sig_mirror_copy_dispose(&mc);
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
    sig_mirror_copy mc;
    const char *keep[KEEP_MAX];
    size_t nkeep = keep_ids(c, keep);
    int rc;

    pthread_mutex_lock(&c->mu);
    c->resync = false;
    rc = sig_mirror_copy_all(c->mirror, &mc);
    pthread_mutex_unlock(&c->mu);
    /* copied now: resync_subs dispatches traffic that changes the hooks' tables */
    if (!rc)
        rc = sig_mirror_copy_keep(&mc, keep, nkeep);
    if (!rc)
        rc = resync_subs(c, &mc);
    if (!rc)
        rc = sig_reg_register(&c->reg, &mc);
    if (!rc && rooms_now)
        rc = sync_rooms(c, mc.rooms, mc.nrooms);
    else if (!rc)
        c->sync_at = rtc_clock_mono_ms() + SYNC_DELAY_MS;
    sig_mirror_copy_dispose(&mc);
    if (rc) {
        pthread_mutex_lock(&c->mu);
        c->resync = true;
        pthread_mutex_unlock(&c->mu);
    }
    return rc;
}

static int reap(sig_cluster *c)
{
    uint64_t n;
    int rc = sig_reg_reap(&c->reg, &n);
    pthread_mutex_lock(&c->mu);
    c->st.reaped_nodes += n;
    pthread_mutex_unlock(&c->mu);
    return rc;
}

/* ---- connections ---- */

static int connect_all(sig_cluster *c, char *err, size_t errlen)
{
    drop_conns(c);
    if (!(c->cmd = c->rops->dial(c->rops->ud, &c->url, c->where, IO_TIMEOUT_S, err, errlen)) ||
        !(c->sub.conn = c->rops->dial(c->rops->ud, &c->url, c->where, IO_TIMEOUT_S, err, errlen))) {
        drop_conns(c);
        return RTC_EMSG;
    }
    c->reg.conn = c->cmd;
    if (sig_sub_subscribe(&c->sub, NULL, c->inbox)) { /* hand-over replies */
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

/* One round while connected: channel traffic, queued commands, heartbeat. */
static int serve(sig_cluster *c, uint64_t *next_hb)
{
    struct pollfd p[2] = {{.fd = sig_cq_fd(&c->q), .events = POLLIN},
                          {.fd = sig_sub_fd(&c->sub), .events = POLLIN}};
    uint64_t now = rtc_clock_mono_ms(), due = *next_hb;
    int timeout;
    bool again;

    EACH_HOOK(c, h)
    if (h->deadline)
        due = h->deadline(h->ud, due);
    timeout = due > now ? (int)(due - now) : 0;

    if (sig_cq_waiting(&c->q))
        timeout = 0; /* left over from the last round's budget */
    if (poll(p, 2, timeout) < 0 && errno != EINTR)
        return -errno;
    if ((p[0].revents & POLLIN) && sig_cq_woken(&c->q))
        return -errno;
    if ((p[1].revents & (POLLIN | POLLHUP | POLLERR)) && sig_sub_read(&c->sub))
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
        if (sig_reg_heartbeat(&c->reg, &registered) ||
            (rtc_clock_mono_ms() >= c->reap_from && reap(c)))
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
    if (run_queue(c, UINT32_MAX))
        return;
    sig_reg_deregister(&c->reg);
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
                fail_queue(c, false);
                sig_cq_sleep(&c->q, backoff); /* (or until woken) */
                backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
                continue;
            }
            backoff = BACKOFF_MIN_MS;
            sig_cq_unhold(&c->q); /* accepted before the loss: first, in order */
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
            fail_queue(c, false);
        }
    }
    if (c->cmd)
        shutdown_node(c);
    fail_queue(c, true);
    lost(c);
    drop_conns(c);
    return NULL;
}

/* ---- public (lws thread) ---- */

int sig_cluster_new(const sig_cluster_params *p, sig_cluster **out, char *err, size_t errlen)
{
    sig_cluster *c = calloc(1, sizeof *c);
    uint8_t rnd[NODE_LEN / 2];
    int rc;

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
    c->max_payload = p->max_payload;
    c->ttl_s = p->node_ttl_s;
    c->st_len = p->stream_len ? p->stream_len : 10000; /* (0: tests' params) */
    c->st_ms = p->stream_ms ? p->stream_ms : 120000;
    atomic_store(&c->max_room, p->max_room_size);
    c->reg = (sig_reg){.rops = c->rops, .node = c->node, .kp = c->kp, .cp = c->cp,
                       .ttl_s = c->ttl_s};
    sig_sub_init(&c->sub, c->rops, IO_TIMEOUT_S, on_message, c);
    sig_sub_streams(&c->sub, c->kp, &c->cmd);
    if ((rc = sig_cq_init(&c->q, p->queue, p->wake, p->ud))) {
        snprintf(err, errlen, "eventfd: %s", strerror(-rc));
        goto out_free;
    }
    if (!(c->mirror = sig_mirror_new())) {
        snprintf(err, errlen, "out of memory");
        rc = -ENOMEM;
        goto out_q;
    }
    pthread_mutex_init(&c->mu, NULL);
    *out = c;
    return 0;
out_q:
    sig_cq_dispose(&c->q);
out_free:
    sig_sub_dispose(&c->sub);
    memset(&c->url, 0, sizeof c->url);
    free(c);
    return rc;
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
    if (c)
        sig_cq_mute(&c->q);
}

void sig_cluster_free(sig_cluster *c)
{
    sig_cev *e;
    if (!c)
        return;
    sig_cluster_mute(c);
    atomic_store(&c->stop, 1);
    sig_cq_stop(&c->q);
    if (c->started)
        pthread_join(c->th, NULL);
    else
        drop_conns(c);
    while ((e = sig_cq_poll(&c->q)))
        sig_cev_free(e);
    sig_cq_dispose(&c->q); /* (the thread answered or freed every command) */
    sig_mirror_free(c->mirror);
    sig_sub_dispose(&c->sub);
    pthread_mutex_destroy(&c->mu);
    memset(&c->url, 0, sizeof c->url);
    free(c);
}

const char *sig_cluster_node(const sig_cluster *c) { return c->node; }
bool sig_cluster_up(sig_cluster *c) { return atomic_load(&c->up); }
void sig_cluster_set_max_room_size(sig_cluster *c, uint32_t n) { atomic_store(&c->max_room, n); }

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
    sig_token_hash(resume, k->th);
    /* (this thread alone puts commands: what is not full now takes one) */
    if (sig_cq_full(&c->q)) {
        free(k);
        return RTC_ELIMIT;
    }
    pthread_mutex_lock(&c->mu);
    rc = sig_mirror_add(c->mirror, id, room, k->name, k->th);
    pthread_mutex_unlock(&c->mu);
    if (!rc && (rc = sig_cq_put(&c->q, &k->node, false))) {
        pthread_mutex_lock(&c->mu);
        sig_mirror_del(c->mirror, id);
        pthread_mutex_unlock(&c->mu);
    }
    if (rc)
        free(k);
    return rc;
}

void sig_cluster_leave(sig_cluster *c, const char *room, const char *id)
{
    cmd *k = calloc(1, sizeof *k);
    int rc = -1;
    pthread_mutex_lock(&c->mu);
    sig_mirror_del_in(c->mirror, id, room);
    pthread_mutex_unlock(&c->mu);
    if (k && atomic_load(&c->up)) {
        k->kind = CMD_LEAVE;
        snprintf(k->room, sizeof k->room, "%s", room);
        snprintf(k->id, sizeof k->id, "%s", id);
        rc = sig_cq_put(&c->q, &k->node, false);
    }
    if (rc) {
        free(k);
        pthread_mutex_lock(&c->mu);
        c->resync = true; /* the resync takes it out of Redis instead */
        pthread_mutex_unlock(&c->mu);
        sig_cq_kick(&c->q);
    }
}

int sig_cluster_publish(sig_cluster *c, const char *room, const char *to, const char *from,
                        json_t *data)
{
    cmd *k;
    json_t *o;
    int rc;
    if (!atomic_load(&c->up))
        return RTC_EUNSUP;
    /* "q": numbered, so that a copy sent again after a reconnection is known */
    o = to ? json_pack("{s:s,s:s,s:I,s:s,s:s,s:O}", "n", c->node, "e", "sig", "q",
                       (json_int_t)(c->pub_q + 1), "from", from, "to", to, "data", data)
           : json_pack("{s:s,s:s,s:I,s:s,s:O}", "n", c->node, "e", "bc", "q",
                       (json_int_t)(c->pub_q + 1), "from", from, "data", data);
    if (!(k = calloc(1, sizeof *k)) || !(k->payload = sig_chan_dumps(o))) {
        free(k);
        return -ENOMEM;
    }
    k->kind = CMD_PUB;
    k->retain = true;
    snprintf(k->room, sizeof k->room, "%s", room);
    if ((rc = sig_cq_put(&c->q, &k->node, false))) {
        cmd_free(k);
        return rc;
    }
    c->pub_q++;
    pthread_mutex_lock(&c->mu);
    c->st.published++;
    pthread_mutex_unlock(&c->mu);
    return 0;
}

/* Queue one command (force: never refused); wake the thread. 0 or
 * RTC_ELIMIT (k freed). */
static int submit(sig_cluster *c, cmd *k, bool force)
{
    int rc = sig_cq_put(&c->q, &k->node, force);
    if (rc)
        cmd_free(k);
    return rc;
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

sig_cev *sig_cluster_poll(sig_cluster *c) { return sig_cq_poll(&c->q); }

void sig_cluster_get_stats(sig_cluster *c, sig_cluster_stats *st)
{
    uint64_t received, dropped;
    sig_cq_counts(&c->q, &received, &dropped);
    pthread_mutex_lock(&c->mu);
    *st = c->st;
    pthread_mutex_unlock(&c->mu);
    st->received = received;
    st->dropped += dropped; /* (full event queue; the rest: malformed, too large) */
    st->up = atomic_load(&c->up);
    st->replayed = atomic_load(&c->sub.replayed);
    st->resent = atomic_load(&c->q.resent);
}
