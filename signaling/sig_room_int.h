/* sig_room_int.h - the hub's private types, shared by sig_room.c (which
 * owns every change to them) and sig_room_walk.c (read-only walks for the
 * admin API), so that sig_room.c stays under the size limit. Nobody else
 * includes this. One thread: the lws service thread. */
#ifndef SIG_ROOM_INT_H
#define SIG_ROOM_INT_H

#include <stdlib.h> /* free (tok_drop) */

#include "rtc_map.h"
#include "sig_room.h"
#include "sig_tokmap.h"

typedef struct qent {
    struct qent *next;
    sig_buf *b;
    uint64_t seq; /* the member's number for it ("seq"), 0: none (sig_room_seq.c) */
} qent;

typedef struct sig_room {
    rtc_map_node node; /* in the hub's rooms, keyed by name */
    sig_member *head, *tail;
    uint32_t n;       /* all members, local and remote: the room size */
    uint32_t nremote; /* of which on other nodes */
    uint64_t created_us; /* monotonic: the admin API shows its age */
    char name[];
} sig_room;

struct sig_member {
    sig_hub *hub;
    sig_room *room;
    sig_member *rprev, *rnext; /* room list, join order */
    sig_member *hprev, *hnext; /* hub list */
    sig_member_state state;
    void *conn;
    char id[SIG_ID_MAX + 1];
    char *name;   /* owned; NULL in the lobby */
    char *resume; /* owned resume token; NULL in the lobby */
    sig_tokmap_node tnode; /* in the hub's tokens while resume is set */
    qent *qhead, *qtail;
    size_t qn, qbytes;
    bool overflowed;
    bool numbered; /* it asked for "seq" (join), or resumed with "last" */
    bool adopting; /* sig_hub_adopt: texts from the old node keep their "seq" */
    uint64_t seq;  /* the last "seq" given to room traffic for it (sig_room_seq.c) */
    uint64_t detached_at;
    sig_member *dprev, *dnext; /* hub's detached list, while DETACHED */
    /* cluster mode, just adopted from another node: this node's own members'
     * signals and broadcasts wait here until the older ones, still on their
     * way through Redis, are delivered (sig_hub_release) */
    bool holding;
    qent *hhead, *htail;
    size_t hn, hbytes;
};

struct sig_hub {
    sig_limits lim;
    sig_hub_ops ops;
    sig_hub_queued_fn queued; /* cluster mode: room traffic numbered (sig_room_seq.c) */
    void *queued_ud;
    const char *origin_x; /* sig_hub_remote_deliver_x: the entry being delivered */
    sig_member *all;
    /* the DETACHED members in detach order, so in resume-window order (one
     * window for all): tick() pops expired ones from the head instead of
     * walking every member (issue 16 item 4); an overflowed one is moved to
     * the head to be evicted at the next tick */
    sig_member *dhead, *dtail;
    uint64_t nrooms, nmembers, ndetached, nlobby, nremote;
    uint64_t due_us; /* earliest resume-window end, or overflow eviction: tick then */
    rtc_map rooms; /* name -> sig_room */
    sig_tokmap tokens; /* resume token -> member: O(1) resume (issue 16 item 4) */
};

/* m's resume token (owned) goes into the hub's token map, or out of it and
 * freed: every set and clear of m->resume goes through these two */
static inline void tok_set(sig_hub *h, sig_member *m, char *tok)
{
    m->resume = tok;
    sig_tokmap_insert(&h->tokens, &m->tnode, tok);
}

static inline void tok_drop(sig_hub *h, sig_member *m)
{
    sig_tokmap_remove(&h->tokens, &m->tnode);
    free(m->resume);
    m->resume = NULL;
}

/* the detached list (see sig_hub): link when a member becomes DETACHED,
 * unlink when it stops being one (ndetached counts the same members) */
static inline void held_link(sig_hub *h, sig_member *m, bool front)
{
    m->dprev = front ? NULL : h->dtail;
    m->dnext = front ? h->dhead : NULL;
    if (m->dprev)
        m->dprev->dnext = m;
    else
        h->dhead = m;
    if (m->dnext)
        m->dnext->dprev = m;
    else
        h->dtail = m;
}

static inline void held_unlink(sig_hub *h, sig_member *m)
{
    if (m->dprev)
        m->dprev->dnext = m->dnext;
    else if (h->dhead == m)
        h->dhead = m->dnext;
    if (m->dnext)
        m->dnext->dprev = m->dprev;
    else if (h->dtail == m)
        h->dtail = m->dprev;
    m->dprev = m->dnext = NULL;
}
/* sig_room_seq.c: number e (room traffic only, when numbering is on) as it
 * enters m's send queue, and hand it to the hook. */
void sig_seq_number(sig_member *m, qent *e);
/* e's text as a client gets it (with "seq" when numbered); malloc'd */
char *sig_seq_text(const qent *e);

#endif
