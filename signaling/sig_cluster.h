/* sig_cluster.h - cluster mode of tsunagu-signal (--redis): several nodes
 * share rooms through one Redis (docs/cluster.md has the data model).
 *
 * Layers (each calls only the one below it; the lower one reaches up only
 * through the hooks it was given):
 *   sig_redis.c    the Redis connection (the only hiredis includer), a table
 *                  of functions so that tests can fake Redis
 *   sig_cluster.c  rooms, members, channels, the Redis thread; dispatches
 *                  channel messages and commands it does not know to hooks
 *   sig_handover.c resume across nodes: registers its hooks, owns its state
 *
 * Threads and locks (the one place they are written down; sig_cluster_q.h
 * and sig_mirror.h only repeat what they are told here):
 * - The lws service thread calls the public functions below. It only ever
 *   takes a lock for a queue push or pop or a mirror update, so a slow or
 *   vanished Redis never blocks WebSocket service. Both queues are bounded:
 *   a full outgoing queue fails the operation (the client gets server-busy)
 *   instead of growing. The lws thread is the only one that puts commands.
 * - One Redis thread owns both connections (commands, and the SUBSCRIBE
 *   connection with its set of channels), the resync timers, and calls
 *   every hook (except the lws-thread functions of sig_handover.h, which a
 *   hook owner calls itself). Hooks are called with no lock held, and a hook
 *   may call any function of this header.
 * - Locks: the queues' own (sig_cluster_q.c: the two FIFOs and their
 *   counters), `mu` in sig_cluster.c (the mirror of local members, the
 *   resync flag, the other stats), and the queues' `wake_mu` (only the wake
 *   callback, sig_cluster_mute). Never two at once, and nothing is ever
 *   called with one held (no callback, no Redis I/O) but the wake callback
 *   under `wake_mu`, which only pokes the lws loop.
 * - A hook owner's state is its own: what its Redis-thread hooks touch, only
 *   the Redis thread touches; what its lws-thread functions touch, only the
 *   lws thread; what both touch (stats), it guards itself (atomics).
 *
 * lws thread -> Redis thread: join (with a serial the caller matches the
 * answer to), leave, publish (a signal or broadcast to members on other
 * nodes), and hook owners' commands. Redis thread -> lws thread: sig_cev
 * events, announced through params.wake (called on the Redis thread, so it
 * must only poke the lws loop, e.g. lws_cancel_service), taken with
 * sig_cluster_poll.
 *
 * Commands reach Redis in the order they were queued over one connection,
 * and every node reads a room's channel over one connection: signals from
 * one member to another arrive in order. */
#ifndef SIG_CLUSTER_H
#define SIG_CLUSTER_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sig_proto.h"
#include "sig_redis.h"
#include "sig_room.h"

typedef struct sig_cluster sig_cluster;

typedef enum {
    SIG_CEV_JOINED = 0, /* answer to sig_cluster_join */
    SIG_CEV_SYNC,       /* the room's members on other nodes, after a reconnect */
    SIG_CEV_PEER_JOINED,
    SIG_CEV_PEER_LEFT,
    SIG_CEV_SIGNAL,
    SIG_CEV_BROADCAST,
    /* resume across nodes (sig_handover.h) */
    SIG_CEV_HO_REQUEST, /* owner side: node `node` asks for local member id (th: token hash) */
    SIG_CEV_HO_MARK,    /* new side: our request `serial` went through the room's channel */
    SIG_CEV_HO_DONE,    /* new side: answer to sig_handover_ask `serial` */
    SIG_CEV_HO_FENCE    /* new side: our publishes before the adoption are all through */
} sig_cev_kind;


typedef struct {
    char id[SIG_ID_MAX + 1], name[SIG_NAME_MAX + 1];
} sig_cev_member;

typedef struct sig_cev {
    struct sig_cev *next;
    sig_cev_kind kind;
    sig_code result; /* JOINED: SIG_OK, SIG_E_ROOM_FULL or SIG_E_SERVER_BUSY */
    uint64_t serial; /* JOINED: the serial given to sig_cluster_join */
    char room[SIG_ROOM_MAX + 1];
    /* JOINED: the joining member; PEER_*: the peer; SIGNAL/BROADCAST: the sender */
    char id[SIG_ID_MAX + 1];
    char to[SIG_ID_MAX + 1]; /* SIGNAL: the local recipient */
    char name[SIG_NAME_MAX + 1];
    json_t *data;            /* SIGNAL/BROADCAST payload (owned) */
    char x[48];              /* SIGNAL/BROADCAST: its room-stream entry id ("" if none) */
    /* SIGNAL/BROADCAST/PEER_*: the node that published it; HO_REQUEST: the
     * asking node; HO_MARK: the owner */
    char node[17];
    bool own; /* published by this node. PEER_JOINED/SIGNAL/BROADCAST: only
               * while a hand-over in that room needs to see them (never
               * applied or delivered); PEER_LEFT: always, and applied */
    char th[SIG_TH_LEN + 1];    /* HO_REQUEST: the token's hash (Redis keys) */
    char proof[SIG_TH_LEN + 1]; /* HO_REQUEST: HMAC under the token (sig_ho_bound) */
    char **texts;            /* HO_DONE (SIG_OK): the owner's queue, in order (owned) */
    size_t ntexts;
    uint64_t ho_seq;         /* HO_DONE (SIG_OK): the owner's last "seq" for the member */
    sig_cev_member *members; /* JOINED (SIG_OK)/SYNC: members on other nodes */
    size_t nmembers;
    /* HO_MARK/HO_DONE: events dropped so far (full queue); different at
     * DONE than at MARK = something between them was lost */
    uint64_t drops;
} sig_cev;

typedef struct {
    const char *url;        /* --redis */
    uint32_t max_room_size; /* checked atomically across nodes on join */
    uint32_t node_ttl_s;    /* heartbeat key lifetime: the death-detection bound */
    size_t queue;           /* bound of the outgoing and the incoming queue */
    size_t max_payload;     /* largest pub/sub message parsed (bytes) */
    uint32_t stream_len;    /* room streams: entries kept (about) */
    uint64_t stream_ms;     /* ... and for how long */
    void (*wake)(void *ud); /* Redis thread: events are waiting */
    void *ud;
    const sig_redis_ops *redis; /* NULL: sig_redis_hiredis (tests pass a fake) */
} sig_cluster_params;

/* Parse the URL and set up (nothing connects yet: hook owners register
 * between this and sig_cluster_start). 0, or RTC_EMSG / -errno with the
 * reason (without the password) in err. */
int sig_cluster_new(const sig_cluster_params *p, sig_cluster **out, char *err, size_t errlen);
/* Connect (start-up fails when Redis cannot be reached: the reason goes to
 * err), register this node and start the thread. 0, or RTC_EMSG / -errno. */
int sig_cluster_start(sig_cluster *c, char *err, size_t errlen);
/* After this returns params.wake is never called again (call it before the
 * lws context goes away). */
void sig_cluster_mute(sig_cluster *c);
/* Flush what is queued (bounded by Redis timeouts), deregister the node
 * (its remaining members leave their rooms), stop the thread. NULL: no-op. */
void sig_cluster_free(sig_cluster *c);

const char *sig_cluster_node(const sig_cluster *c); /* this node's random id */
bool sig_cluster_up(sig_cluster *c);                /* connected to Redis */
void sig_cluster_set_max_room_size(sig_cluster *c, uint32_t n); /* SIGHUP */

/* Ask to put member `id` into `room`: answered by a SIG_CEV_JOINED event
 * with this serial. 0, or RTC_ELIMIT (queue full) / RTC_EUNSUP (Redis down):
 * then no event comes. */
int sig_cluster_join(sig_cluster *c, uint64_t serial, const char *room, const char *id,
                     const char *name, const char *resume);
/* Member `id` left `room` for good. Never fails: when it cannot be queued,
 * the node re-synchronises its members with Redis as soon as it can. */
void sig_cluster_leave(sig_cluster *c, const char *room, const char *id);
/* A signal (to != NULL) or broadcast from local member `from` for members
 * on other nodes. 0, or RTC_ELIMIT / RTC_EUNSUP / -ENOMEM. */
int sig_cluster_publish(sig_cluster *c, const char *room, const char *to, const char *from,
                        json_t *data);

/* Next event, or NULL. The caller owns it (sig_cev_free). */
sig_cev *sig_cluster_poll(sig_cluster *c);
void sig_cev_free(sig_cev *e);

typedef struct {
    bool up;
    uint64_t reconnects;   /* connections (re)established after the first */
    uint64_t dropped;      /* incoming messages dropped: too large, malformed, queue full */
    uint64_t published;    /* signals and broadcasts handed to Redis */
    uint64_t received;     /* events taken from Redis */
    uint64_t reaped_nodes; /* dead nodes this node cleaned up */
    uint64_t replayed;     /* read from room streams after a reconnection (catch-up) */
    uint64_t resent;       /* signals/broadcasts sent again after a lost connection */
} sig_cluster_stats;
void sig_cluster_get_stats(sig_cluster *c, sig_cluster_stats *st);

/* ---- for modules layered on the cluster (sig_handover.c) ---- */

#define SIG_NODE_LEN 16     /* a node id: 64 random bits, hex */
#define SIG_CLUSTER_HOOKS 4 /* hook tables one cluster takes */

/* What a layer above tells the cluster. Every function is optional (NULL)
 * and called on the Redis thread with no lock held (see "Threads and locks"
 * above), with `ud` as the first argument. */
typedef struct sig_cluster_hooks {
    void *ud;
    /* A room channel message whose event `ev` the cluster does not handle
     * itself (join, left, sig, bc). `own`: published by this node. `o` stays
     * the caller's. true: taken; when no hook takes it, it is dropped and
     * counted. */
    bool (*channel)(void *ud, const char *room, const char *node, bool own, const char *ev,
                    json_t *o);
    /* A message on this node's own channel (payload NULL: not a string). */
    void (*inbox)(void *ud, const char *payload, size_t len);
    /* The hook owner waits for the room's messages: keep the subscription,
     * and pass this node's own signals, broadcasts and joins on as events. */
    bool (*wants_room)(void *ud, const char *room);
    /* Members on their way to this node: a resync leaves their registration
     * alone. Up to cap ids (valid until the next hook call); their number. */
    size_t (*keep_ids)(void *ud, const char **ids, size_t cap);
    /* The earliest time (rtc_clock_mono_ms) the tick hook needs, or `due`. */
    uint64_t (*deadline)(void *ud, uint64_t due);
    void (*tick)(void *ud, uint64_t now_ms);
    void (*lost)(void *ud); /* the connection is gone (reconnecting) */
    /* Commands queued with sig_cluster_submit (arg is the hook owner's):
     * run one alone (blocking calls; RTC_EMSG when the connection failed),
     * or, pipelined, append it and take its reply (0, or RTC_EMSG); refused
     * when Redis is gone before it ran; then always freed. */
    int (*run)(void *ud, void *arg);
    int (*append)(void *ud, void *arg);
    int (*replied)(void *ud, void *arg, const sig_redis_reply *r);
    void (*refused)(void *ud, void *arg);
    void (*free_arg)(void *arg);
} sig_cluster_hooks;

/* Before sig_cluster_start; h must outlive the cluster. 0 or RTC_ELIMIT. */
int sig_cluster_add_hooks(sig_cluster *c, const sig_cluster_hooks *h);
/* Queue a hook owner's command (force: never refused, for what must reach
 * Redis; pipelined: through h->append/replied, else h->run). 0, or
 * RTC_ELIMIT (arg freed). Any thread but the Redis thread. */
int sig_cluster_submit(sig_cluster *c, const sig_cluster_hooks *h, void *arg, bool pipelined,
                       bool force);
/* Queue a PUBLISH of text (taken) on `room`'s channel, or on node `to`'s
 * channel when to != NULL. Never refused (force). */
void sig_cluster_publish_text(sig_cluster *c, const char *room, const char *to, char *text);
/* Hand an event to the lws thread; never_drop: even when its queue is full
 * (for events a layer bounds itself). Redis thread. */
void sig_cluster_push(sig_cluster *c, sig_cev *e, bool never_drop);
void sig_cluster_count_drop(sig_cluster *c);
uint32_t sig_cluster_max_room(sig_cluster *c);
/* Redis thread: one command and its reply (NULL: the connection failed),
 * or one appended to the pipeline (its reply read by the caller's hook). */
sig_redis_reply *sig_cluster_command(sig_cluster *c, int argc, const char **argv);
int sig_cluster_append(sig_cluster *c, int argc, const char **argv);
/* Redis thread: SUBSCRIBE to the room's channel and wait for the
 * confirmation; leave it once nobody here needs it. 0 or < 0. */
int sig_cluster_subscribe(sig_cluster *c, const char *room);
int sig_cluster_unsubscribe_unused(sig_cluster *c, const char *room);
/* The mirror of local members (what a resync registers): add, or remove
 * `id` when it is this node's member in `room`. Any thread. */
int sig_cluster_mirror_add(sig_cluster *c, const char *id, const char *room, const char *name,
                           const char *th);
void sig_cluster_mirror_del_in(sig_cluster *c, const char *id, const char *room);
/* Names in Redis: "tsu:" (keys), a room's channel, a node's channel. */
const char *sig_cluster_key_prefix(const sig_cluster *c);
void sig_cluster_channel(const sig_cluster *c, const char *room, char *out, size_t cap);
void sig_cluster_node_channel(const sig_cluster *c, const char *node, char *out, size_t cap);

#endif
