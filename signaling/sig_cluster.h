/* sig_cluster.h - cluster mode of tsunagu-signal (--redis): several nodes
 * share rooms through one Redis (docs/cluster.md has the data model).
 *
 * The only file that includes hiredis is sig_cluster.c. All Redis I/O runs
 * on one thread of its own, with blocking hiredis connections (commands, and
 * a SUBSCRIBE connection); the lws service thread only ever takes a mutex
 * for a queue push or pop, so a slow or vanished Redis never blocks
 * WebSocket service. Both queues are bounded: a full outgoing queue fails
 * the operation (the client gets server-busy) instead of growing.
 *
 * lws thread -> Redis thread: join (with a serial the caller matches the
 * answer to), leave, publish (a signal or broadcast to members on other
 * nodes). Redis thread -> lws thread: sig_cev events, announced through
 * params.wake (called on the Redis thread, so it must only poke the lws
 * loop, e.g. lws_cancel_service), taken with sig_cluster_poll.
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

#define SIG_TH_LEN 64 /* lowercase hex SHA-256 of a resume token */

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
    /* SIGNAL/BROADCAST/PEER_*: the node that published it; HO_REQUEST: the
     * asking node; HO_MARK: the owner */
    char node[17];
    bool own; /* SIGNAL/BROADCAST published by this node (only while a
               * hand-over in that room needs to see them; never deliver) */
    char th[SIG_TH_LEN + 1];    /* HO_REQUEST: the token's hash (Redis keys) */
    char proof[SIG_TH_LEN + 1]; /* HO_REQUEST: HMAC under the token (sig_handover_bound) */
    char **texts;            /* HO_DONE (SIG_OK): the owner's queue, in order (owned) */
    size_t ntexts;
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
    uint32_t queue_msgs;    /* send-queue bounds: a handed-over queue is no larger */
    size_t queue_bytes;
    void (*wake)(void *ud); /* Redis thread: events are waiting */
    void *ud;
} sig_cluster_params;

/* Connect (start-up fails when Redis cannot be reached: the reason, without
 * the password, goes to err), register this node and start the thread.
 * 0, or RTC_EMSG / -errno. */
int sig_cluster_new(const sig_cluster_params *p, sig_cluster **out, char *err, size_t errlen);
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
    /* resume hand-overs asked for by this node that failed: token unknown
     * (or its node dead), refused by the owner, owner silent; and members
     * this node handed over to others */
    uint64_t ho_unknown, ho_refused, ho_timeout, ho_given;
} sig_cluster_stats;
void sig_cluster_get_stats(sig_cluster *c, sig_cluster_stats *st);

#endif
