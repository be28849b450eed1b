/* sig_handover_int.h - the hand-over's private types, shared by
 * sig_handover.c and sig_hoclaim.c (the claim of a crashed owner's member)
 * only. Redis-thread and lws-thread parts are marked as in sig_handover.c. */
#ifndef SIG_HANDOVER_INT_H
#define SIG_HANDOVER_INT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "sig_cluster.h"
#include "sig_handover.h"

#define HO_TAIL_MS 10000 /* a fence that never comes back (lost connection) */
#define HO_GONE_MS 60000 /* how long a timed-out request's late reply is still undone */
#define NODE_LEN SIG_NODE_LEN

/* A hand-over this node asked for (Redis thread only; see "Hand-over"). */
typedef struct {
    uint64_t rq; /* the lws thread's serial */
    uint64_t deadline_ms;
    char room[SIG_ROOM_MAX + 1], id[SIG_ID_MAX + 1], owner[NODE_LEN + 1];
    char th[SIG_TH_LEN + 1];
    uint8_t key[SIG_HO_KEY_LEN]; /* checks the reply's MAC (sig_ho_reply_key; memory only) */
    bool tail; /* answered; our own publishes still in flight (until the fence) */
    bool claim;    /* the client sent "last": a silent owner's member may be claimed */
    bool claimed;  /* ... and that was tried: the next deadline is the last */
    uint64_t last; /* ... the highest "seq" it processed */
} sig_ho_pending;

/* A hand-over we gave up waiting for (timeout): its reply may still come, and
 * must then make the member we asked for leave (Redis thread only). */
typedef struct {
    uint64_t rq, until_ms;
    char room[SIG_ROOM_MAX + 1], id[SIG_ID_MAX + 1], owner[NODE_LEN + 1];
    uint8_t key[SIG_HO_KEY_LEN]; /* only the owner's own late reply counts */
} sig_ho_gone;

/* A command for the Redis thread (sig_cluster_submit). */
typedef enum { OP_ASK, OP_XFER, OP_TTL } op_kind;
typedef struct {
    op_kind kind;
    uint64_t serial;
    char room[SIG_ROOM_MAX + 1], id[SIG_ID_MAX + 1], name[SIG_NAME_MAX + 1];
    char th[SIG_TH_LEN + 1]; /* the resume token's hash */
    char node[NODE_LEN + 1]; /* XFER: the new owner */
    uint32_t secs;           /* TTL: expiry (0: none) */
    char *payload;           /* XFER: the reply */
    char *token;             /* ASK: the resume token, for the proof (wiped when freed) */
    bool claim;              /* ASK: sig_ho_pending.claim, .last */
    uint64_t last;
} op;

struct sig_handover {
    sig_cluster *c;
    sig_cluster_hooks hooks;
    char node[NODE_LEN + 1];
    uint32_t qmsgs;          /* send-queue bounds: a handed-over queue is no larger */
    uint32_t max_hops;       /* --max-resumes-per-member-per-min (SIG_LUA_LOOKUP) */
    size_t qbytes, max_payload;
    _Atomic uint64_t unknown, refused, timeout, given; /* sig_handover_stats */

    /* Redis thread only */
    sig_ho_pending hos[SIG_HO_MAX]; /* hand-overs asked for */
    size_t nho;
    sig_ho_gone gone[SIG_HO_MAX]; /* timed out, recently (until_ms 0: free slot) */

    /* lws thread only: the last request served per asking node (replays) */
    struct {
        char node[NODE_LEN + 1];
        uint64_t rq, used;
    } seen[SIG_HO_MAX];
    uint64_t seen_tick;
};

/* sig_hoclaim.c, Redis thread: the owner of h did not answer in time and
 * its client sent "last": take the member over (docs/cluster.md "A node's
 * crash") and publish the reply for h on this node's channel, as the owner
 * would have. 0 when published (the reply then comes as usual); else the
 * hand-over times out as before. */
int sig_ho_claim(sig_handover *hv, const sig_ho_pending *h);

#endif
