/* sig_room.h - rooms, members and message routing for tsunagu-signal.
 *
 * Pure logic, no I/O: the caller (sig_ws.c, or a unit test) passes the time
 * (monotonic microseconds) into every call and is told through one callback,
 * `wake`, that a connected member has something to send. Owned and used by
 * the single lws service thread.
 *
 * Every connection has one sig_member from the moment it connects (state
 * LOBBY). join puts it in a room (JOINED) under an id the caller generated;
 * when the connection drops without `leave` the member is DETACHED: it keeps
 * its id, place and queue for resume_ms, and messages for it keep queueing.
 * resume moves that member onto the new connection. Each member owns one
 * bounded FIFO of outgoing messages; the connection writes them in order, one
 * per writeable callback, so a peer sees signals in the order they were sent.
 * A member whose queue overflows is marked `overflowed`: the caller drops its
 * connection (a slow reader never makes memory grow) and the member leaves
 * without a resume window (its queue is no longer complete). */
#ifndef SIG_ROOM_H
#define SIG_ROOM_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sig_proto.h"

typedef struct sig_hub sig_hub;
typedef struct sig_member sig_member;

/* One serialized server message, shared (refcounted) by every queue it sits
 * in: a broadcast to 15 members is stored once. `headroom` bytes precede the
 * text (libwebsockets needs LWS_PRE bytes in front of what it writes). */
typedef struct sig_buf {
    uint32_t refs;
    size_t len;
    uint64_t t_us; /* when the message was created: latency metric */
    char *text;    /* points into storage, after the headroom; NUL-terminated */
} sig_buf;

typedef struct {
    uint32_t max_room_size;  /* members per room (room-full) */
    uint32_t max_rooms;      /* rooms per server (server-busy) */
    uint32_t queue_msgs;     /* per-member send queue: messages */
    size_t queue_bytes;      /* ... and bytes */
    uint64_t resume_us;      /* how long a detached member is kept; 0 = never */
} sig_limits;

typedef struct {
    void (*wake)(void *conn, void *ud); /* conn has a message (or overflowed) */
    /* resume took conn's member away (half-open old connection): conn now
     * owns `lobby` and should be closed. */
    void (*detach)(void *conn, sig_member *lobby, void *ud);
    void *ud;
    size_t headroom;
} sig_hub_ops;

typedef enum { SIG_MEMBER_LOBBY = 0, SIG_MEMBER_JOINED, SIG_MEMBER_DETACHED } sig_member_state;

sig_hub *sig_hub_new(const sig_limits *lim, const sig_hub_ops *ops); /* NULL on ENOMEM */
void sig_hub_free(sig_hub *h);
/* Limits take effect for the next join/queue operation (SIGHUP). */
void sig_hub_set_limits(sig_hub *h, const sig_limits *lim);

/* A new connection: its member in the lobby. NULL on ENOMEM. */
sig_member *sig_hub_connect(sig_hub *h, void *conn);

typedef struct {
    const char *room, *name;
    const char *id;          /* SIG_ID_LEN hex chars, unique, chosen by the caller */
    const char *resume;      /* resume token for this member, chosen by the caller */
    json_t *ice_servers;     /* borrowed; copied into the joined message */
} sig_join_params;

/* join: SIG_OK (joined queued to m, peer-joined to the others), or
 * SIG_E_BAD_REQUEST (already in a room), SIG_E_ROOM_FULL, SIG_E_SERVER_BUSY. */
sig_code sig_hub_join(sig_hub *h, sig_member *m, const sig_join_params *p, uint64_t now_us);
/* signal: SIG_OK, SIG_E_NOT_JOINED or SIG_E_UNKNOWN_PEER (no such id in m's room,
 * including m itself). data is borrowed. */
sig_code sig_hub_signal(sig_hub *h, sig_member *m, const char *to, json_t *data, uint64_t now_us);
sig_code sig_hub_broadcast(sig_hub *h, sig_member *m, json_t *data, uint64_t now_us);
/* leave the room (peer-left to the others); m is back in the lobby. */
sig_code sig_hub_leave(sig_hub *h, sig_member *m, uint64_t now_us);
/* Take over the detached (or still attached elsewhere) member holding
 * `token`. On SIG_OK *m is that member, now on `conn`: what the lobby member
 * had queued, then `resumed`, then everything queued while detached; the
 * lobby member is freed. If the member was still attached to another
 * connection, ops.detach hands that connection a fresh lobby member.
 * SIG_E_UNAUTHORIZED for an unknown or expired token, SIG_E_BAD_REQUEST when
 * *m is already in a room. */
sig_code sig_hub_resume(sig_hub *h, sig_member **m, const char *token, uint64_t now_us);
/* The connection of m is gone. A joined member that did not overflow is kept
 * DETACHED for resume_ms when `keep`; otherwise it leaves now (peer-left) and
 * is freed. m must not be used afterwards either way. */
void sig_hub_disconnect(sig_hub *h, sig_member *m, bool keep, uint64_t now_us);
/* Queue an already-built message (error, pong) to m. 0 or RTC_ELIMIT (overflowed). */
int sig_hub_send(sig_hub *h, sig_member *m, const char *text, uint64_t now_us);
/* Expire detached members whose window passed, or that overflowed. Returns
 * the next time (us) this needs calling, or UINT64_MAX. */
uint64_t sig_hub_tick(sig_hub *h, uint64_t now_us);
/* When tick next has work: the earliest end of a resume window (UINT64_MAX
 * when nobody is detached). Cheap; callers poll it instead of walking. */
uint64_t sig_hub_next_deadline(const sig_hub *h);

/* Queue access for the writer: peek the oldest message, pop it once written. */
sig_buf *sig_member_peek(sig_member *m);
void sig_member_pop(sig_member *m);
size_t sig_member_queued(const sig_member *m);
bool sig_member_overflowed(const sig_member *m);
sig_member_state sig_member_get_state(const sig_member *m);
const char *sig_member_id(const sig_member *m); /* "" in the lobby */
const char *sig_member_room(const sig_member *m); /* NULL in the lobby */
void *sig_member_conn(const sig_member *m);

typedef struct {
    uint64_t rooms, members, detached, lobby;
} sig_hub_stats;
void sig_hub_get_stats(const sig_hub *h, sig_hub_stats *st);

/* Token bucket rate limit per connection: `rate` messages a second, burst
 * of one second's worth. Pure; the caller passes the time. */
typedef struct {
    double tokens;
    uint64_t last_us;
    uint64_t limited_since_us; /* start of the current run of refusals, 0 if none */
    uint64_t last_refused_us;
} sig_rate;
void sig_rate_init(sig_rate *r, uint32_t rate, uint64_t now_us);
/* true = allowed. limited_since_us says since when messages keep being
 * refused: a run of refusals ends only after a whole second without one (a
 * flooder gets a message through now and then as tokens trickle back; that
 * must not reset its abuse clock). */
bool sig_rate_take(sig_rate *r, uint32_t rate, uint64_t now_us);

#endif
