/* sig_cluster_st.h - where this node is in each room's stream (cluster
 * mode, docs/cluster.md "Durable delivery"), and which copies of a message
 * it has already taken.
 *
 * Every signal and broadcast of a room goes into the room's Redis stream
 * tsu:st:ROOM and out on the room's channel in one script (SIG_LUA_PUB), the
 * channel copy carrying the entry's id as "x". A node reads the channel;
 * when it (re)subscribes to a room it was in before (after a reconnection)
 * it first reads the stream from the last id it took, so that what was
 * published while it was away reaches it, in the stream's order. Two kinds
 * of copy must then be dropped:
 *  - an entry read from the stream that also comes live on the channel
 *    (published between the SUBSCRIBE and the XRANGE): "x" at or below the
 *    last id the catch-up read, on the same connection (ids only grow
 *    within one Redis run; a restart also drops the connection);
 *  - a publish the sending node sent again because its connection died
 *    before the reply (it may have run): each sending node numbers its
 *    signals and broadcasts ("q", growing in its queue's order), and a
 *    room's copy from that node with a number at or below the last one
 *    taken is a repeat.
 *
 * Pure state (no I/O); owned by the Redis thread (sig_cluster_sub.c). */
#ifndef SIG_CLUSTER_ST_H
#define SIG_CLUSTER_ST_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A stream entry id "MS-SEQ". */
typedef struct {
    uint64_t ms, seq;
} sig_stid;

#define SIG_STID_LEN 41 /* "MS-SEQ" with two 20-digit numbers, and its NUL */

/* Parse "MS-SEQ" (len bytes): true and *out, false when malformed. */
bool sig_stid_parse(const char *s, size_t len, sig_stid *out);
int sig_stid_cmp(sig_stid a, sig_stid b); /* <0, 0, >0 */
void sig_stid_fmt(sig_stid id, char out[SIG_STID_LEN]);

typedef struct sig_stpos sig_stpos;

sig_stpos *sig_stpos_new(void);     /* NULL on ENOMEM */
void sig_stpos_free(sig_stpos *t);  /* NULL is a no-op */

/* Start following room from `base` (the stream's last id when the node
 * subscribed: what comes after it is new). Already followed: nothing
 * changes. 0 or -ENOMEM. */
int sig_stpos_follow(sig_stpos *t, const char *room, sig_stid base);
/* The last id taken in room: true when the room is followed. */
bool sig_stpos_last(const sig_stpos *t, const char *room, sig_stid *last);
/* After a catch-up that read up to `upto` on the current connection: live
 * copies at or below it are repeats. */
void sig_stpos_caught_up(sig_stpos *t, const char *room, sig_stid upto);
/* The connection is gone: ids of the next one may start lower (a Redis
 * restarted on a clock set back), so no id marks a repeat any more. */
void sig_stpos_new_conn(sig_stpos *t);
void sig_stpos_forget(sig_stpos *t, const char *room);
/* Forget every room `keep` says no to. */
void sig_stpos_prune(sig_stpos *t, bool (*keep)(void *ud, const char *room), void *ud);
size_t sig_stpos_count(const sig_stpos *t);

/* A room channel message o (from node `origin`, optional fields "x" and
 * "q"): true to take it, false when it is a copy already taken. Moves the
 * room's position. Rooms not followed: always true. */
bool sig_stpos_take(sig_stpos *t, const char *room, const char *origin, json_t *o);

#endif
