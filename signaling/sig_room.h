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
 * without a resume window (its queue is no longer complete).
 *
 * Cluster mode (sig_cluster.h) adds REMOTE members: members of a room that
 * live on another node. They have an id and a name but no connection and no
 * queue; they count in the room's size, appear in joined/resumed peer lists,
 * and local members get peer-joined/peer-left for them. A signal or
 * broadcast that has to reach one goes out through ops.remote; the node
 * they live on delivers it. A room is kept only while it has a local member:
 * remote members of rooms nobody here is in are not tracked. */
#ifndef SIG_ROOM_H
#define SIG_ROOM_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sig_proto.h"
#include "sig_homac.h" /* (the hand-over reply's MAC; was here) */
#include "sig_rate.h"  /* (the connection's rate limit; was here) */

typedef struct sig_hub sig_hub;
typedef struct sig_member sig_member;

/* One serialized server message, shared (refcounted) by every queue it sits
 * in: a broadcast to 15 members is stored once. `headroom` bytes precede the
 * text (libwebsockets needs LWS_PRE bytes in front of what it writes). */
typedef struct sig_buf {
    uint32_t refs;
    size_t len;
    uint64_t t_us; /* when the message was created: latency metric */
    bool greeting; /* `joined`/`resumed`: this session's own, never handed over */
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
    const char *id, *name; /* borrowed */
} sig_remote;

typedef struct {
    void (*wake)(void *conn, void *ud); /* conn has a message (or overflowed) */
    /* resume took conn's member away (half-open old connection): conn now
     * owns `lobby` and should be closed. */
    void (*detach)(void *conn, sig_member *lobby, void *ud);
    /* Cluster mode only (NULL otherwise). remote: a signal (to = a remote
     * member's id) or broadcast (to = NULL) from local member `from` that
     * must reach members on other nodes; data borrowed. Nonzero = it could
     * not be handed on (the sender gets server-busy). left: local member
     * `id` left `room` for good (leave, drop, resume window over);
     * `room_empty` when no local member remains there. */
    int (*remote)(void *ud, const char *room, const char *to, const char *from, json_t *data);
    void (*left)(void *ud, const char *room, const char *id, bool room_empty);
    void *ud;
    size_t headroom;
} sig_hub_ops;

typedef enum {
    SIG_MEMBER_LOBBY = 0,
    SIG_MEMBER_JOINED,
    SIG_MEMBER_DETACHED,
    SIG_MEMBER_REMOTE /* on another node (cluster mode); never handed to callers */
} sig_member_state;

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
    /* Cluster mode: the shared store already admitted this member (it
     * checks the room size across nodes), and these are the room's members
     * on other nodes at that moment; they replace the remote members known
     * here (see sig_hub_remote_sync). NULL/0/false without a cluster. */
    const sig_remote *remotes;
    size_t nremotes;
    bool admitted;
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

/* ---- cluster mode: members on other nodes (see the header comment) ----
 * All of these ignore rooms without a local member and return quietly on
 * ids that are too long or already taken by a local member. */

/* Make the remote members of `room` exactly v[0..n): peer-left for those no
 * longer there, peer-joined for new ones, in v's order. At most
 * max_room_size remote members are tracked per room; more are ignored. */
void sig_hub_remote_sync(sig_hub *h, const char *room, const sig_remote *v, size_t n,
                         uint64_t now_us);
/* One remote member joined (no-op when already known). */
void sig_hub_remote_join(sig_hub *h, const char *room, const char *id, const char *name,
                         uint64_t now_us);
/* One remote member left (no-op when unknown). */
void sig_hub_remote_leave(sig_hub *h, const char *room, const char *id, uint64_t now_us);
/* A signal (to = a local member's id) or broadcast (to = NULL: every local
 * member) sent by remote member `from`; data borrowed. Signals to ids that
 * are not local members here are dropped (they left meanwhile). */
void sig_hub_remote_deliver(sig_hub *h, const char *room, const char *to, const char *from,
                            json_t *data, uint64_t now_us);

/* ---- cluster mode: resume across nodes (docs/cluster.md "Resume across nodes") ---- */

/* The owner's half of a hand-over: local member `id` of `room`, whose
 * resume token proves q->proof (see sig_hand_over_req), moves to
 * another node. On SIG_OK: what it had queued is moved into *texts (*n
 * strings, the caller frees each and the array; its own `joined`/`resumed`
 * are left out: the new node sends `resumed`), *name is a copy of its
 * name; a still-open old connection gets ops.detach (close it with 4001);
 * the member stays in the room as a REMOTE member (or the room goes, if it
 * was the last local one). Nobody is told and ops.left is NOT called: the
 * member did not leave. SIG_E_UNAUTHORIZED when there is no such member,
 * the proof differs, its window passed or its queue overflowed. */
typedef struct {
    const char *room, *id;
    /* lowercase hex HMAC-SHA256 keyed with the member's resume token over
     * `bound` (what the request says: sig_ho_bound): only a holder of
     * the token can make it, unlike the token's SHA-256 that Redis stores */
    const char *proof, *bound;
    /* out, on SIG_OK: sig_ho_reply_key of the member's token, which the
     * owner's reply is authenticated with (the caller wipes it) */
    uint8_t *reply_key;
    /* out, on SIG_OK (optional): the last "seq" this node gave the member,
     * which the new owner numbers on after (its queue may be empty) */
    uint64_t *seq;
} sig_hand_over_req;
sig_code sig_hub_hand_over(sig_hub *h, const sig_hand_over_req *q, char ***texts, size_t *n,
                           char **name, uint64_t now_us);


typedef struct {
    const char *room, *id, *name, *resume; /* resume: the token the client proved */
    const char *const *texts; /* queued on the owner, then arrived since: in order */
    size_t ntexts;
    const sig_remote *remotes; /* the room's members on other nodes now */
    size_t nremotes;
    /* park this node's members' signals and broadcasts to it until
     * sig_hub_release (older ones are still on their way through Redis) */
    bool hold;
    /* the old owner's last "seq" for it: numbering goes on after the larger
     * of this and the client's "last" (a drain's old connection may have
     * carried numbers past the "last" the resume was sent with) */
    uint64_t seq;
} sig_adopt_params;

/* The new owner's half: *m (a lobby member; its conn may be NULL when the
 * client went away meanwhile: then the member is adopted DETACHED, its
 * window starting now) becomes member p->id of p->room: queue = what *m had
 * queued, `resumed`, p->texts. A REMOTE entry for the id is replaced in
 * place without peer-left/peer-joined. SIG_OK or SIG_E_SERVER_BUSY (ENOMEM;
 * *m unchanged). */
sig_code sig_hub_adopt(sig_hub *h, sig_member *m, const sig_adopt_params *p, uint64_t now_us);
/* End the hold of sig_adopt_params.hold: what was parked follows the
 * queue. No-op when the member is gone or not holding. */
size_t sig_hub_release(sig_hub *h, const char *room, const char *id); /* how many were parked */
/* The member's resume token (NULL in the lobby): cluster mode hashes it. */
const char *sig_member_resume(const sig_member *m);

/* One signal (broadcast false) or broadcast (true) from member `from` for
 * local member `to` only (a hand-over's tail: sig_ws.c); nothing when
 * `from` is no longer in the room, unless it left during the tail (its
 * peer-left is parked behind: then delivered). */
void sig_hub_deliver_one(sig_hub *h, const char *room, const char *to, const char *from,
                         bool broadcast, json_t *data, uint64_t now_us);

/* Whether a join into `room` would pass the max_rooms limit now (cluster
 * mode checks this before asking the shared store). */
bool sig_hub_room_allowed(sig_hub *h, const char *room);
/* Whether `room` has members here (a join into it creates nothing). */
bool sig_hub_room_exists(sig_hub *h, const char *room);

/* Queue access for the writer: peek the oldest message, pop it once written. */
sig_buf *sig_member_peek(sig_member *m);
void sig_member_pop(sig_member *m);

/* Per-member sequence numbers (sig_room_seq.c; protocol.md "seq"), for a
 * member that asked (join with "seq": true): every signal, broadcast,
 * peer-joined and peer-left that enters its send queue gets its next number
 * (from 1), and `queued` (cluster mode) is told (id, number, text without
 * the number, the room-stream id it came from) on the thread that owns the hub; the writer adds `"seq":N`
 * with sig_seq_splice. Numbers continue across a resume on this node, and
 * after sig_member_set_seq. set_numbered: in the lobby, before the join. */
void sig_member_set_numbered(sig_member *m, bool on);
/* a lobby member about to resume: numbered when the client sent "last",
 * numbers going on after it (a member adopted from another node) */
void sig_member_number_from(sig_member *m, bool on, uint64_t last);
bool sig_member_numbered(const sig_member *m);
typedef void (*sig_hub_queued_fn)(void *ud, const char *id, uint64_t seq, const char *text,
                                  const char *x);
/* sig_hub_remote_deliver of a message read from the room stream's entry x:
 * the numbered copies tell `queued` that x ("" otherwise) */
void sig_hub_remote_deliver_x(sig_hub *h, const char *room, const char *to, const char *from,
                              json_t *data, const char *x, uint64_t now_us);
void sig_hub_set_queued(sig_hub *h, sig_hub_queued_fn fn, void *ud);
uint64_t sig_member_peek_seq(const sig_member *m); /* the oldest's number; 0: none */
uint64_t sig_member_seq(const sig_member *m);      /* the last number given */
void sig_member_set_seq(sig_member *m, uint64_t seq); /* continue after seq */
/* text (len bytes, a JSON object) with `,"seq":N` before its closing brace,
 * into out (cap bytes, NUL-terminated); its length, 0 if it does not fit or
 * is not an object. */
size_t sig_seq_splice(const char *text, size_t len, uint64_t seq, char *out, size_t cap);
size_t sig_member_queued(const sig_member *m);
bool sig_member_overflowed(const sig_member *m);
sig_member_state sig_member_get_state(const sig_member *m);
const char *sig_member_id(const sig_member *m); /* "" in the lobby */
const char *sig_member_room(const sig_member *m); /* NULL in the lobby */
void *sig_member_conn(const sig_member *m);

typedef struct {
    uint64_t rooms, members, detached, lobby;
    uint64_t remote; /* members on other nodes, in rooms with a local member */
} sig_hub_stats;
void sig_hub_get_stats(const sig_hub *h, sig_hub_stats *st);

/* ---- read-only walks for the admin API (sig_room_walk.c) ---- */

typedef struct {
    const char *name;     /* borrowed for the callback */
    uint32_t members;     /* local and remote */
    uint32_t remote;      /* of which on other nodes (cluster mode) */
    uint64_t created_us;  /* monotonic time the room was made on this node */
} sig_room_info;

typedef struct {
    const char *id, *name; /* borrowed for the callback */
    sig_member_state state; /* JOINED, DETACHED or REMOTE */
    void *conn;             /* the caller's connection (NULL: detached or remote) */
    uint64_t detached_at;   /* DETACHED: since when (monotonic us) */
} sig_member_info;

/* Call cb for every room, in no set order; returns how many. */
size_t sig_hub_walk_rooms(const sig_hub *h, void (*cb)(void *ud, const sig_room_info *r),
                          void *ud);
/* Call cb for every member of `room`, in join order: false when this hub
 * has no such room. */
bool sig_hub_walk_members(const sig_hub *h, const char *room,
                          void (*cb)(void *ud, const sig_member_info *m), void *ud);
/* The local (JOINED or DETACHED) member `id` of `room`, or NULL. */
sig_member *sig_hub_find_member(sig_hub *h, const char *room, const char *id);

#endif
