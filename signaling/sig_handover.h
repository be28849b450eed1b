/* sig_handover.h - resume across nodes in cluster mode (--redis): a client
 * resumes on a node that does not hold its member; the node that does hands
 * the member over with its send queue, through the room's Redis channel, so
 * that every message reaches it exactly once and in order (the argument is
 * at the top of sig_handover.c; docs/cluster.md "Resume across nodes").
 *
 * The module registers hooks with the sig_cluster (sig_cluster_hooks): its
 * Redis-thread part runs there, called by the cluster; the functions below
 * are called on the lws service thread and only queue commands for the
 * Redis thread. Answers come back as sig_cluster events (SIG_CEV_HO_*,
 * sig_cluster_poll). Threads and locks: sig_cluster.h. */
#ifndef SIG_HANDOVER_H
#define SIG_HANDOVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sig_cluster.h"

typedef struct sig_handover sig_handover;

typedef struct {
    uint32_t queue_msgs; /* send-queue bounds: a handed-over queue is no larger */
    size_t queue_bytes;
    uint32_t max_hops_per_min; /* resumes of one member on another node (0: no limit) */
} sig_handover_params;

/* Registers the hooks: between sig_cluster_new and sig_cluster_start. NULL
 * on ENOMEM (or no hook slot left). */
sig_handover *sig_handover_new(sig_cluster *c, const sig_handover_params *p);
/* After sig_cluster_free (the Redis thread calls the hooks until then). */
void sig_handover_free(sig_handover *h);

typedef struct {
    /* resume hand-overs asked for by this node that failed: token unknown
     * (or its node dead), refused by the owner, owner silent; and members
     * this node handed over to others */
    uint64_t unknown, refused, timeout, given;
} sig_handover_stats;
void sig_handover_get_stats(sig_handover *h, sig_handover_stats *st);

/* New side: the resume token is unknown here; ask Redis who owns it and have
 * that node hand the member over. Answered by SIG_CEV_HO_DONE with this
 * serial (preceded by SIG_CEV_HO_MARK when the request reached the room's
 * channel): SIG_OK with the owner's queue and the room's other members (the
 * member is then registered here), or SIG_E_UNAUTHORIZED (unknown or expired
 * token, owner dead, owner refused, no answer within SIG_HO_TIMEOUT_MS).
 * 0, or RTC_ELIMIT / RTC_EUNSUP (then no event comes). */
#define SIG_HO_TIMEOUT_MS 2000
#define SIG_HO_MAX 64 /* hand-overs in flight per node (asked for) */
/* claim, last: the client sent "last" (the highest "seq" it processed); if
 * the owner does not answer in time, the member is claimed (sig_hoclaim.c) */
int sig_handover_ask(sig_handover *h, uint64_t serial, const char *token, bool claim,
                     uint64_t last);
/* New side, after SIG_CEV_HO_DONE with SIG_OK (adopted or not): publish the
 * fence. Until SIG_CEV_HO_FENCE comes back, signals and broadcasts this node
 * published to the room keep coming back as events with `own` set: those
 * were published while the member was still remote here, and only it must
 * get them. */
void sig_handover_fence(sig_handover *h, const char *room, uint64_t serial);
/* Owner side, answering a SIG_CEV_HO_REQUEST: ok = the member was taken out
 * of the hub (sig_hub_hand_over); texts (taken, freed here) are its queue;
 * key (sig_hand_over_req.reply_key) authenticates the reply (sig_ho_reply_mac:
 * the asking node checks it with the key it derived from its client's token).
 * Not ok (key unused, may be NULL): the asking node is told no. */
void sig_handover_reply(sig_handover *h, const sig_cev *req, bool ok,
                        const uint8_t key[SIG_HO_KEY_LEN], const char *name, char **texts,
                        size_t n, uint64_t seq); /* seq: sig_hand_over_req.seq */
/* Owner side: not now (the member has just been adopted here and its tail
 * is open: answering would break the ordering argument, see "Hand-over");
 * the asking node tells its client server-busy, and the client tries again. */
void sig_handover_reply_busy(sig_handover *h, const sig_cev *req);
/* Member `id`, holding `resume`, is detached (secs > 0: its token's entry in
 * Redis expires after secs, its message stream tsu:mq: 5 s later) or attached
 * again (0: neither expires; they are deleted when it leaves or its node is
 * reaped). A stream that expired under a connected member that was quiet for
 * a while made its resume after a node crash impossible (the claim checks the
 * stream against the client's "last"). */
void sig_handover_token_ttl(sig_handover *h, const char *resume, const char *id, uint32_t secs);

/* Owner side, lws thread: a request from `node` with serial `rq` is new (a
 * node's serials only grow, and reach us in that order: an older or equal
 * one is a replay); sig_handover_served records one that was honoured. */
bool sig_handover_fresh(const sig_handover *h, const char *node, uint64_t rq);
void sig_handover_served(sig_handover *h, const char *node, uint64_t rq);

#endif
