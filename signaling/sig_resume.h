/* sig_resume.h - the asking node's side of a resume across nodes (cluster
 * mode; the ordering argument is "Hand-over" at the top of sig_handover.c),
 * as a pure state machine: it is told the hand-over's events in the order
 * the Redis thread delivered them and answers what to do; it never touches
 * the hub, the cluster or a socket, and takes time as an argument.
 *
 *   ASKED  --mark-->  MARKED  --done ok, complete--> (adopted) TAIL --fence--> DONE
 *     |                  |            \-- done failed / incomplete --------> DONE
 *     +--- done failed --+--- expire (no answer) -------------------------> DONE
 *   TAIL --expire--> DONE (release what the hub holds)
 *
 * MARKED: our request went through the room's channel; from then until the
 * owner's answer, the member's signals, broadcasts, joins and leaves (except
 * what the owner published: those are in its queue) are kept here, bounded
 * like a send queue. TAIL: the member is adopted here; this node's own
 * publishes to it made before the adoption still come back from Redis and
 * are passed on until the fence. Events that come in another order, or
 * twice, are ignored (answered SIG_RESUME_STRAY / false): they change
 * nothing. Owned by the lws thread (sig_session.c), one per hand-over. */
#ifndef SIG_RESUME_H
#define SIG_RESUME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sig_proto.h"

#define SIG_RESUME_TAIL_US 15000000ull /* no fence (the Redis thread's own bound is 10 s) */

typedef enum {
    SIG_RESUME_ASKED = 0,
    SIG_RESUME_MARKED,
    SIG_RESUME_TAIL,
    SIG_RESUME_DONE
} sig_resume_state;

typedef struct {
    sig_resume_state state;
    uint64_t serial;
    char room[SIG_ROOM_MAX + 1], id[SIG_ID_MAX + 1], owner[17]; /* from the mark */
    bool overflow;        /* a kept message was lost: the member cannot come back complete */
    uint64_t mark_drops;  /* cluster events dropped before the mark */
    size_t ntail;         /* TAIL: our own earlier publishes passed on */
    uint64_t deadline_us;
    char **buf;           /* kept messages (rendered), in arrival order */
    size_t nbuf, cap, bytes;
} sig_resume;

/* A room event seen while the hand-over is open (from a cluster event). */
typedef struct {
    const char *room, *from, *to, *node; /* from: sender or peer; to: SIGNAL only */
    bool broadcast, membership, own;     /* membership: a peer joined or left */
} sig_resume_event;

typedef enum {
    SIG_RESUME_IGNORE = 0, /* not for this member (or not now) */
    SIG_RESUME_KEEP,       /* render it and sig_resume_keep it */
    SIG_RESUME_PASS_ON     /* deliver it to the member now, then sig_resume_passed */
} sig_resume_verdict;

typedef enum {
    SIG_RESUME_ADOPT = 0,  /* complete: adopt the member with the owner's queue + buf */
    SIG_RESUME_INCOMPLETE, /* handed over, but something between mark and done was lost */
    SIG_RESUME_FAILED,     /* the owner (or Redis) said no */
    SIG_RESUME_STRAY       /* not waiting for an answer: ignore it */
} sig_resume_answer;

typedef enum {
    SIG_RESUME_NOT_YET = 0,
    SIG_RESUME_GIVE_UP, /* no answer came: tell the client no */
    SIG_RESUME_RELEASE  /* no fence came: release what waits for it */
} sig_resume_expiry;

/* deadline_us: when to give up if no answer comes at all. */
void sig_resume_init(sig_resume *r, uint64_t serial, uint64_t deadline_us);
void sig_resume_dispose(sig_resume *r); /* frees what is kept */

/* The request went through the room's channel (room, member, its owner;
 * drops: events dropped so far). true when taken (only in ASKED). */
bool sig_resume_mark(sig_resume *r, const char *room, const char *id, const char *owner,
                     uint64_t drops);
sig_resume_verdict sig_resume_classify(const sig_resume *r, const sig_resume_event *e);
/* Keep a rendered message (copied; NULL: it could not be rendered), bounded
 * by max_msgs/max_bytes: past them, or out of memory, the resume is marked
 * incomplete. */
void sig_resume_keep(sig_resume *r, const char *text, size_t max_msgs, size_t max_bytes);
void sig_resume_passed(sig_resume *r);
/* The owner's answer (ok: handed over; drops: events dropped so far). */
sig_resume_answer sig_resume_done(sig_resume *r, bool ok, uint64_t drops);
/* After SIG_RESUME_ADOPT: the hub took the member (TAIL, kept messages
 * freed: they are in its queue) or did not (DONE). */
void sig_resume_adopted(sig_resume *r, bool ok, uint64_t now_us);
/* The fence came back: true when the tail ends now (release the member's
 * held messages); false (ignored) in any other state. */
bool sig_resume_fence(sig_resume *r);
sig_resume_expiry sig_resume_expire(sig_resume *r, uint64_t now_us);

#endif
