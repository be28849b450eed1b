/* sig_cluster_int.h - the inside of a sig_cluster, shared by the two files
 * of the Redis side of cluster mode: sig_cluster.c (connections, rooms,
 * members, the Redis thread; the only file that includes hiredis) and
 * sig_handover.c (resume across nodes). Nothing else includes this header.
 * Functions named sig_clu_* are sig_cluster.c's helpers for sig_handover.c;
 * the sig_handover_* hooks below are sig_handover.c's for the Redis thread.
 * Thread rules as in sig_cluster.c: fields under `mu` need it; "Redis
 * thread only" fields are touched by that thread alone. */
#ifndef SIG_CLUSTER_INT_H
#define SIG_CLUSTER_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "sig_cluster.h"
#include "sig_conf.h"
#include "sig_handover.h"

#define HBUCKETS 1024
#define NODE_LEN 16

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

/* A hand-over this node asked for (Redis thread only; see "Hand-over"). */
typedef struct {
    uint64_t rq; /* the lws thread's serial */
    uint64_t deadline_ms;
    char room[SIG_ROOM_MAX + 1], id[SIG_ID_MAX + 1], owner[NODE_LEN + 1];
    char th[SIG_TH_LEN + 1];
    uint8_t key[SIG_HO_KEY_LEN]; /* checks the reply's MAC (sig_ho_reply_key; memory only) */
    bool tail; /* answered; our own publishes still in flight (until the fence) */
} sig_ho_pending;

/* A hand-over we gave up waiting for (timeout): its reply may still come, and
 * must then make the member we asked for leave (Redis thread only). */
typedef struct {
    uint64_t rq, until_ms;
    char room[SIG_ROOM_MAX + 1], id[SIG_ID_MAX + 1], owner[NODE_LEN + 1];
    uint8_t key[SIG_HO_KEY_LEN]; /* only the owner's own late reply counts */
} sig_ho_gone;

#define HO_TAIL_MS 10000 /* a fence that never comes back (lost connection) */

typedef enum { CMD_JOIN, CMD_LEAVE, CMD_PUB, CMD_HO, CMD_XFER, CMD_TTL } cmd_kind;

typedef struct cmd {
    struct cmd *next;
    cmd_kind kind;
    uint64_t serial;
    char room[SIG_ROOM_MAX + 1], id[SIG_ID_MAX + 1], name[SIG_NAME_MAX + 1];
    char th[SIG_TH_LEN + 1]; /* JOIN, HO, XFER, TTL: the resume token's hash */
    char node[NODE_LEN + 1]; /* XFER: the new owner */
    char chan[96];           /* PUB: a node's channel instead of the room's */
    uint32_t secs;           /* TTL: expiry (0: none) */
    char *payload;           /* PUB: the channel message; XFER: the reply */
    char *token;             /* HO: the resume token, for the proof (wiped when freed) */
} cmd;

struct sig_cluster {
    sig_redis_url url;
    char where[300]; /* url without credentials, for logs */
    char node[NODE_LEN + 1];
    char kp[8];      /* key prefix "tsu:" */
    char cp[48];     /* channel prefix "tsu:DB:ch:" */
    char np[48];     /* node channel prefix "tsu:DB:nd:" */
    char inbox[80];  /* this node's channel */
    size_t qmax, max_payload;
    uint32_t qmsgs;  /* send-queue bounds (hand-over replies) */
    size_t qbytes, ho_max_payload;
    uint32_t ttl_s;
    _Atomic uint32_t max_room;
    _Atomic int up;
    _Atomic int stop;
    int wakefd; /* eventfd: lws thread -> Redis thread */
    pthread_t th;
    bool started;

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
    struct redisContext *cmd, *sub; /* hiredis: only sig_cluster.c looks inside */
    htab subs;         /* channels subscribed */
    uint64_t reap_from; /* no reaping before this (ms): see serve() */
    uint64_t sync_at;   /* re-read the rooms then (ms), 0 = not due: see resync() */
    sig_ho_pending hos[SIG_HO_MAX]; /* hand-overs asked for (sig_handover.c) */
    size_t nho;
    sig_ho_gone gone[SIG_HO_MAX]; /* timed out, recently (until_ms 0: free slot) */

    /* lws thread only: the last request served per asking node (replays) */
    struct {
        char node[NODE_LEN + 1];
        uint64_t rq, used;
    } seen[SIG_HO_MAX];
    uint64_t seen_tick;
};

/* ---- sig_cluster.c, for sig_handover.c ---- */

uint64_t sig_clu_mono_ms(void);
char *sig_clu_dumps(json_t *o); /* compact text of o (consumed), NULL on ENOMEM */
/* A string field of a parsed channel message, length-checked. */
bool sig_clu_field(json_t *o, const char *key, size_t min, size_t max, char *out, size_t cap);
void sig_clu_push_event(sig_cluster *c, sig_cev *e); /* Redis thread -> lws thread */
void sig_clu_count_drop(sig_cluster *c);
void sig_clu_channel_of(const sig_cluster *c, const char *room, char *out, size_t cap);
/* Redis thread: SUBSCRIBE to the room's channel and wait for the confirmation */
int sig_clu_subscribe(sig_cluster *c, const char *room);
/* Redis thread: leave the room's channel once nobody here needs it */
int sig_clu_maybe_unsubscribe(sig_cluster *c, const char *room);
/* The mirror of local members (under mu). */
int sig_clu_mirror_add(sig_cluster *c, const char *id, const char *room, const char *name,
                       const char *th);
void sig_clu_mirror_del(sig_cluster *c, const char *id);
/* mirror_del only when `id` is this node's member in `room` */
void sig_clu_mirror_del_in(sig_cluster *c, const char *id, const char *room);
/* Queue one command (force: never refused); takes k. 0 or RTC_ELIMIT. */
int sig_clu_submit(sig_cluster *c, cmd *k, bool force);
void sig_clu_cmd_free(cmd *k);
/* Redis thread, command connection (no hiredis types outside sig_cluster.c):
 * one command and its reply, a string reply copied to *text (malloc'd; NULL
 * for any other reply) when text is given: 0, or RTC_EMSG when the
 * connection failed. */
int sig_clu_call_text(sig_cluster *c, int argc, const char **argv, char **text, size_t *len);
/* The room's members on other nodes into e->members (HGETALL). 0 or < 0. */
int sig_clu_room_members(sig_cluster *c, const char *room, sig_cev *e);
/* Append one command to the pipeline (its reply is read by the caller). */
int sig_clu_append(sig_cluster *c, int argc, const char **argv);

/* ---- sig_handover.c, for the Redis thread (sig_cluster.c) ---- */

/* CMD_HO: look the token up, subscribe, publish the request. RTC_EMSG when
 * the connection failed (the answer is sent anyway). */
int sig_handover_run_ask(sig_cluster *c, cmd *k);
/* CMD_XFER: append the owner's script to the pipeline. */
int sig_handover_append_xfer(sig_cluster *c, const cmd *k);
/* A message on this node's own channel: a hand-over reply (payload NULL:
 * not a string). */
void sig_handover_on_reply(sig_cluster *c, const char *payload, size_t len);
/* A room channel message whose event is a hand-over's ("ho", "fence"):
 * handled (true), or not one (false). `o` stays the caller's. */
bool sig_handover_on_channel(sig_cluster *c, const char *room, const char *node, bool own,
                             const char *ev, json_t *o);
/* A hand-over waits for the room's messages (keep the subscription; pass
 * our own publishes on). */
bool sig_handover_in_room(const sig_cluster *c, const char *room);
void sig_handover_push_done(sig_cluster *c, uint64_t rq, sig_code result, const char *room,
                            const char *id);
uint64_t sig_handover_next_deadline(const sig_cluster *c, uint64_t due);
void sig_handover_timeouts(sig_cluster *c);
void sig_handover_fail_all(sig_cluster *c); /* the connection is gone */

#endif
