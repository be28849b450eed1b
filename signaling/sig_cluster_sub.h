/* sig_cluster_sub.h - cluster mode's SUBSCRIBE connection: which room
 * channels it is subscribed to, subscribing with a wait for Redis's
 * confirmation (so that everything published after the next command is
 * seen), and reading: each pub/sub message goes to the on_message callback
 * in the order Redis delivered it, also those read while a subscription
 * waits for its confirmation.
 *
 * Durable delivery (sig_cluster_st.h): on subscribing to a room it was in
 * before (a resubscription after a reconnection), it reads the room's
 * stream on the command connection from where it was, and hands those
 * entries to on_message first, before anything live of that room; on a
 * first subscription it notes where the stream is. The positions outlive
 * the connection (sig_sub_close), not the unsubscription.
 *
 * A layer under sig_cluster.c, which gives it the callback; it talks to
 * Redis through sig_redis_ops and calls nothing else. Redis thread only. */
#ifndef SIG_CLUSTER_SUB_H
#define SIG_CLUSTER_SUB_H

#include <stdatomic.h>
#include <stdbool.h>

#include "sig_cluster_st.h"
#include "sig_mirror.h"
#include "sig_redis.h"

typedef struct {
    const sig_redis_ops *rops;
    sig_redis_conn *conn; /* NULL while disconnected */
    int timeout_s;        /* a confirmation that takes longer: the connection is lost */
    /* one message: channel and payload (borrowed during the call) */
    void (*on_message)(void *ud, const sig_redis_reply *ch, const sig_redis_reply *pl);
    void *ud;
    sig_nameset keys; /* the rooms subscribed */
    sig_redis_conn *const *cmd; /* the command connection (for the streams) */
    const char *kp;             /* key prefix: streams are KP "st:" ROOM */
    sig_stpos *pos;             /* where this node is in each room's stream */
    _Atomic uint64_t replayed;  /* entries read from streams after a reconnection (stats) */
} sig_sub;

void sig_sub_init(sig_sub *s, const sig_redis_ops *rops, int timeout_s,
                  void (*on_message)(void *ud, const sig_redis_reply *ch,
                                     const sig_redis_reply *pl),
                  void *ud);
/* Where the streams are: key prefix and command connection (both outlive s). */
void sig_sub_streams(sig_sub *s, const char *kp, sig_redis_conn *const *cmd);
/* Close the connection (if any): nothing is subscribed any more. */
void sig_sub_close(sig_sub *s);
void sig_sub_dispose(sig_sub *s); /* close, and forget the stream positions */
/* A room channel message o from node origin: false when it is a copy this
 * node already took (sig_stpos_take). */
bool sig_sub_take(sig_sub *s, const char *room, const char *origin, json_t *o);
/* Forget the positions of rooms not subscribed (after a resync). */
void sig_sub_prune(sig_sub *s);
int sig_sub_fd(const sig_sub *s);
/* Poll said readable: take in and dispatch what came. 0, or RTC_EMSG. */
int sig_sub_read(sig_sub *s);
/* SUBSCRIBE to channel and wait for the confirmation; key (a room, or NULL
 * for a channel not tracked) is then subscribed, after the stream catch-up
 * (above). Already: nothing. 0, or RTC_EMSG / -ENOMEM. */
int sig_sub_subscribe(sig_sub *s, const char *key, const char *channel);
/* UNSUBSCRIBE (its confirmation is read with the traffic). 0, or RTC_EMSG. */
int sig_sub_unsubscribe(sig_sub *s, const char *key, const char *channel);
bool sig_sub_has(const sig_sub *s, const char *key);

#endif
