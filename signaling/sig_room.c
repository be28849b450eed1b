/* sig_room.c - rooms, members, bounded per-member queues (see sig_room.h).
 *
 * Rooms live in a keyed map by name (rtc_map: SipHash under a per-hub
 * random key, since clients choose room names); members of a
 * room are a doubly linked list in join order (rooms hold at most
 * max_room_size members, so lookups by id inside a room are linear on
 * purpose). Every member is also on the hub's list, which tick() walks to
 * expire detached members and resume() searches for a token. Remote members
 * (cluster mode) are on their room's list only: the hub list, tick and
 * resume never see them, and a room goes away with its last local member
 * (taking its remote members with it). */
#include "sig_room.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "rtc_crypto.h"
#include "rtc_err.h"
#include "rtc_map.h"
#include "sig_room_int.h"

/* ---- buffers and queues ---- */

static sig_buf *buf_new(sig_hub *h, const char *text, uint64_t now_us)
{
    size_t len = strlen(text);
    sig_buf *b = malloc(sizeof *b + h->ops.headroom + len + 1);
    if (!b)
        return NULL;
    b->refs = 0;
    b->len = len;
    b->t_us = now_us;
    b->greeting = false;
    b->text = (char *)(b + 1) + h->ops.headroom;
    memcpy(b->text, text, len + 1);
    return b;
}

static void buf_unref(sig_buf *b)
{
    if (b && --b->refs == 0)
        free(b);
}

static bool live(const sig_member *m) { return m->state != SIG_MEMBER_DETACHED && m->conn; }

/* The queue bounds were hit: mark the member (its connection gets dropped)
 * instead of growing memory; a detached member's resume is void. */
static int overflow(sig_member *m)
{
    m->overflowed = true;
    if (live(m))
        m->hub->ops.wake(m->conn, m->hub->ops.ud);
    else if (m->state == SIG_MEMBER_DETACHED) {
        held_unlink(m->hub, m);
        held_link(m->hub, m, true);
        m->hub->due_us = 0; /* evict at the next tick */
    }
    return RTC_ELIMIT;
}

/* Append e, holding one more reference to b, to the list head..tail. */
static void list_append(qent **head, qent **tail, qent *e, sig_buf *b)
{
    e->next = NULL;
    e->b = b;
    b->refs++;
    if (*tail)
        (*tail)->next = e;
    else
        *head = e;
    *tail = e;
}

/* Append b to m's queue, taking one reference. Overflow marks the member
 * (its connection gets dropped) instead of growing memory. */
static int push(sig_member *m, sig_buf *b)
{
    sig_hub *h = m->hub;
    bool was_empty = m->qn == 0;
    qent *e;

    if (m->overflowed)
        return RTC_ELIMIT;
    if (m->qn + 1 > h->lim.queue_msgs || m->qbytes + b->len > h->lim.queue_bytes ||
        !(e = calloc(1, sizeof *e)))
        return overflow(m);
    list_append(&m->qhead, &m->qtail, e, b);
    sig_seq_number(m, e);
    m->qn++;
    m->qbytes += b->len;
    if (was_empty && live(m))
        h->ops.wake(m->conn, h->ops.ud);
    return 0;
}

static void list_free(qent *e)
{
    for (qent *n; e; e = n) {
        n = e->next;
        buf_unref(e->b);
        free(e);
    }
}

static void hold_clear(sig_member *m)
{
    list_free(m->hhead);
    m->hhead = m->htail = NULL;
    m->hn = m->hbytes = 0;
    m->holding = false;
}

static void queue_clear(sig_member *m)
{
    list_free(m->qhead);
    m->qhead = m->qtail = NULL;
    m->qn = m->qbytes = 0;
    hold_clear(m);
}

/* push, or park it while m is holding (see sig_member.holding); the bounds
 * count both lists together */
static int push_local(sig_member *m, sig_buf *b)
{
    sig_hub *h = m->hub;
    qent *e;
    if (!m->holding)
        return push(m, b);
    if (m->overflowed)
        return RTC_ELIMIT;
    if (m->qn + m->hn + 1 > h->lim.queue_msgs ||
        m->qbytes + m->hbytes + b->len > h->lim.queue_bytes || !(e = calloc(1, sizeof *e)))
        return overflow(m);
    list_append(&m->hhead, &m->htail, e, b);
    m->hn++;
    m->hbytes += b->len;
    return 0;
}

/* Queue freshly built text to one member. The text is freed here.
 * greeting: it is the member's `joined`/`resumed` (sig_buf.greeting). */
static int send_text_as(sig_member *m, char *text, bool greeting, uint64_t now_us)
{
    sig_buf *b;
    int rc;
    if (!text)
        return -ENOMEM;
    b = buf_new(m->hub, text, now_us);
    free(text);
    if (!b)
        return -ENOMEM;
    b->greeting = greeting;
    b->refs = 1; /* held across push so a failed push frees it below */
    rc = push(m, b);
    buf_unref(b);
    return rc;
}

static int send_text(sig_member *m, char *text, uint64_t now_us)
{
    return send_text_as(m, text, false, now_us);
}

/* Something local member m did (a signal or broadcast, its join or leave),
 * to every member of m's room except m. Through push_local: a member still
 * holding (just adopted, its tail open: see sig_member.holding) parks it,
 * so m's join or leave waits behind m's own earlier messages to it that are
 * parked or still in the tail, in the order they happened (pushed past the
 * hold, a peer-left would overtake that peer's parked signal). */
static void send_others(sig_member *m, char *text, uint64_t now_us)
{
    sig_buf *b;
    if (!text)
        return;
    b = buf_new(m->hub, text, now_us);
    free(text);
    if (!b)
        return;
    b->refs = 1;
    for (sig_member *o = m->room->head; o; o = o->rnext)
        if (o != m && o->state != SIG_MEMBER_REMOTE)
            push_local(o, b);
    buf_unref(b);
}

/* One message to every local member of r (remote events: no local sender). */
static void send_room(sig_hub *h, sig_room *r, char *text, uint64_t now_us)
{
    sig_buf *b;
    if (!text)
        return;
    b = buf_new(h, text, now_us);
    free(text);
    if (!b)
        return;
    b->refs = 1;
    for (sig_member *o = r->head; o; o = o->rnext)
        if (o->state != SIG_MEMBER_REMOTE)
            push(o, b);
    buf_unref(b);
}

sig_buf *sig_member_peek(sig_member *m) { return m->qhead ? m->qhead->b : NULL; }

void sig_member_pop(sig_member *m)
{
    qent *e = m->qhead;
    if (!e)
        return;
    m->qhead = e->next;
    if (!m->qhead)
        m->qtail = NULL;
    m->qn--;
    m->qbytes -= e->b->len;
    buf_unref(e->b);
    free(e);
}

size_t sig_member_queued(const sig_member *m) { return m->qn; }
bool sig_member_overflowed(const sig_member *m) { return m->overflowed; }
sig_member_state sig_member_get_state(const sig_member *m) { return m->state; }
const char *sig_member_id(const sig_member *m) { return m->id; }
const char *sig_member_room(const sig_member *m) { return m->room ? m->room->name : NULL; }
void *sig_member_conn(const sig_member *m) { return m->conn; }

/* ---- rooms ---- */

static sig_room *room_find(sig_hub *h, const char *name)
{
    rtc_map_node *n = rtc_map_find_str(&h->rooms, name);
    return n ? RTC_MAP_ENTRY(n, sig_room, node) : NULL;
}

static sig_room *room_create(sig_hub *h, const char *name, uint64_t now_us)
{
    size_t len = strlen(name);
    sig_room *r = calloc(1, sizeof *r + len + 1);
    if (!r)
        return NULL;
    memcpy(r->name, name, len + 1);
    r->created_us = now_us;
    if (rtc_map_insert_str(&h->rooms, &r->node, r->name)) {
        free(r);
        return NULL;
    }
    h->nrooms++;
    return r;
}

static void room_destroy(sig_hub *h, sig_room *r)
{
    rtc_map_remove(&h->rooms, &r->node);
    h->nrooms--;
    free(r);
}

static json_t *peers_json(sig_member *m)
{
    json_t *a = json_array();
    for (sig_member *o = m->room->head; a && o; o = o->rnext)
        if (o != m)
            json_array_append_new(a, json_pack("{s:s,s:s}", "id", o->id, "name", o->name));
    return a;
}

static void room_unlink(sig_room *r, sig_member *m)
{
    if (m->rprev)
        m->rprev->rnext = m->rnext;
    else
        r->head = m->rnext;
    if (m->rnext)
        m->rnext->rprev = m->rprev;
    else
        r->tail = m->rprev;
    m->rprev = m->rnext = NULL;
    r->n--;
}

static void room_append(sig_room *r, sig_member *m)
{
    m->rprev = r->tail;
    m->rnext = NULL;
    if (r->tail)
        r->tail->rnext = m;
    else
        r->head = m;
    r->tail = m;
    r->n++;
}

static void remote_free(sig_hub *h, sig_room *r, sig_member *o)
{
    room_unlink(r, o);
    r->nremote--;
    h->nremote--;
    free(o->name);
    free(o);
}

/* Unlink m from its room, tell the others, free the room when no local
 * member is left (remote members are not tracked without one); m goes back
 * to the lobby state (the caller decides whether it lives on). */
static void leave_room(sig_hub *h, sig_member *m, uint64_t now_us)
{
    sig_room *r = m->room;
    bool empty;
    if (!r)
        return;
    send_others(m, sig_proto_peer_left(m->id), now_us);
    room_unlink(r, m);
    empty = r->n == r->nremote;
    if (h->ops.left)
        h->ops.left(h->ops.ud, r->name, m->id, empty);
    if (empty) {
        while (r->head)
            remote_free(h, r, r->head);
        room_destroy(h, r);
    }
    if (m->state == SIG_MEMBER_DETACHED) {
        h->ndetached--;
        held_unlink(h, m);
    }
    h->nmembers--;
    m->room = NULL;
    m->state = SIG_MEMBER_LOBBY;
    m->id[0] = '\0';
    free(m->name);
    m->name = NULL;
    tok_drop(h, m);
    hold_clear(m); /* what waited for it is moot now */
}

static void member_free(sig_hub *h, sig_member *m)
{
    if (m->hprev)
        m->hprev->hnext = m->hnext;
    else
        h->all = m->hnext;
    if (m->hnext)
        m->hnext->hprev = m->hprev;
    if (m->state == SIG_MEMBER_LOBBY)
        h->nlobby--;
    queue_clear(m);
    free(m->name);
    tok_drop(h, m);
    free(m);
}

/* ---- hub ---- */

static void remote_sync(sig_hub *h, sig_room *r, const sig_remote *v, size_t n, uint64_t now_us);

sig_hub *sig_hub_new(const sig_limits *lim, const sig_hub_ops *ops)
{
    sig_hub *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    h->lim = *lim;
    h->ops = *ops;
    h->due_us = UINT64_MAX;
    (void)rtc_map_init(&h->rooms); /* (no random key: still a working map, see rtc_map_init) */
    if (sig_tokmap_init(&h->tokens)) {
        free(h);
        return NULL;
    }
    return h;
}

void sig_hub_free(sig_hub *h)
{
    rtc_map_iter it;
    rtc_map_node *rn;
    if (!h)
        return;
    /* Nobody is listening any more: free without telling anyone. Rooms
     * first: their lists still link local members (freed below) and remote
     * ones (freed here). */
    rtc_map_iter_init(&it, &h->rooms);
    while ((rn = rtc_map_iter_next(&it))) {
        sig_room *r = RTC_MAP_ENTRY(rn, sig_room, node);
        rtc_map_remove(&h->rooms, rn);
        for (sig_member *o = r->head, *n; o; o = n) {
            n = o->rnext;
            if (o->state == SIG_MEMBER_REMOTE) {
                free(o->name);
                free(o);
            }
        }
        free(r);
    }
    rtc_map_dispose(&h->rooms);
    sig_tokmap_dispose(&h->tokens); /* (the members' nodes go with them below) */
    while (h->all) {
        sig_member *m = h->all;
        h->all = m->hnext;
        queue_clear(m);
        free(m->name);
        free(m->resume);
        free(m);
    }
    free(h);
}

void sig_hub_set_limits(sig_hub *h, const sig_limits *lim) { h->lim = *lim; }

sig_member *sig_hub_connect(sig_hub *h, void *conn)
{
    sig_member *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->hub = h;
    m->conn = conn;
    m->state = SIG_MEMBER_LOBBY;
    m->hnext = h->all;
    if (h->all)
        h->all->hprev = m;
    h->all = m;
    h->nlobby++;
    return m;
}

sig_code sig_hub_join(sig_hub *h, sig_member *m, const sig_join_params *p, uint64_t now_us)
{
    sig_room *r;
    json_t *peers;
    char *name = NULL, *resume = NULL;

    if (m->state != SIG_MEMBER_LOBBY)
        return SIG_E_BAD_REQUEST;
    r = room_find(h, p->room);
    if (r && r->n >= h->lim.max_room_size && !p->admitted)
        return SIG_E_ROOM_FULL;
    if (!r && h->nrooms >= h->lim.max_rooms)
        return SIG_E_SERVER_BUSY;
    name = strdup(p->name ? p->name : "");
    resume = strdup(p->resume);
    if (!name || !resume || (!r && !(r = room_create(h, p->room, now_us)))) {
        free(name);
        free(resume);
        return SIG_E_SERVER_BUSY;
    }
    /* before m is in: m learns them from joined.peers, not peer-joined */
    if (p->admitted)
        remote_sync(h, r, p->remotes, p->nremotes, now_us);
    snprintf(m->id, sizeof m->id, "%s", p->id);
    m->name = name;
    tok_set(h, m, resume);
    m->room = r;
    m->state = SIG_MEMBER_JOINED;
    room_append(r, m);
    h->nlobby--;
    h->nmembers++;

    peers = peers_json(m);
    send_text_as(m, sig_proto_joined(r->name, m->id, peers, p->ice_servers, m->resume), true,
                 now_us);
    json_decref(peers);
    send_others(m, sig_proto_peer_joined(m->id, m->name), now_us);
    return SIG_OK;
}

/* ---- remote members (cluster mode) ---- */

static sig_member *room_member(sig_room *r, const char *id)
{
    for (sig_member *o = r->head; o; o = o->rnext)
        if (!strcmp(o->id, id))
            return o;
    return NULL;
}

static bool id_ok(const char *id) { return *id && strlen(id) <= SIG_ID_MAX; }

static void remote_add(sig_hub *h, sig_room *r, const char *id, const char *name,
                       uint64_t now_us)
{
    sig_member *o;
    /* a remote party controls how many it announces: bounded per room */
    if (!id_ok(id) || room_member(r, id) || r->nremote >= h->lim.max_room_size)
        return;
    if (!(o = calloc(1, sizeof *o)))
        return;
    if (!(o->name = strdup(name ? name : ""))) {
        free(o);
        return;
    }
    o->hub = h;
    o->room = r;
    o->state = SIG_MEMBER_REMOTE;
    snprintf(o->id, sizeof o->id, "%s", id);
    send_room(h, r, sig_proto_peer_joined(o->id, o->name), now_us);
    room_append(r, o);
    r->nremote++;
    h->nremote++;
}

static void remote_del(sig_hub *h, sig_room *r, sig_member *o, uint64_t now_us)
{
    char *text = sig_proto_peer_left(o->id);
    remote_free(h, r, o);
    send_room(h, r, text, now_us);
}

static void remote_sync(sig_hub *h, sig_room *r, const sig_remote *v, size_t n, uint64_t now_us)
{
    /* O(room size^2): rooms are small (max_room_size), syncs are rare */
    for (sig_member *o = r->head, *nx; o; o = nx) {
        size_t i;
        nx = o->rnext;
        if (o->state != SIG_MEMBER_REMOTE)
            continue;
        for (i = 0; i < n; i++)
            if (!strcmp(v[i].id, o->id))
                break;
        if (i == n)
            remote_del(h, r, o, now_us);
    }
    for (size_t i = 0; i < n; i++)
        remote_add(h, r, v[i].id, v[i].name, now_us);
}

void sig_hub_remote_sync(sig_hub *h, const char *room, const sig_remote *v, size_t n,
                         uint64_t now_us)
{
    sig_room *r = room_find(h, room);
    if (r)
        remote_sync(h, r, v, n, now_us);
}

void sig_hub_remote_join(sig_hub *h, const char *room, const char *id, const char *name,
                         uint64_t now_us)
{
    sig_room *r = room_find(h, room);
    if (r)
        remote_add(h, r, id, name, now_us);
}

void sig_hub_remote_leave(sig_hub *h, const char *room, const char *id, uint64_t now_us)
{
    sig_room *r = room_find(h, room);
    sig_member *o = r ? room_member(r, id) : NULL;
    if (o && o->state == SIG_MEMBER_REMOTE)
        remote_del(h, r, o, now_us);
}

void sig_hub_remote_deliver(sig_hub *h, const char *room, const char *to, const char *from,
                            json_t *data, uint64_t now_us)
{
    sig_room *r = room_find(h, room);
    sig_member *o;
    if (!r)
        return;
    if (!to) {
        send_room(h, r, sig_proto_forward("broadcast", from, data), now_us);
        return;
    }
    o = room_member(r, to);
    if (o && o->state != SIG_MEMBER_REMOTE)
        send_text(o, sig_proto_forward("signal", from, data), now_us);
}

/* Whether `from`'s peer-left waits in o's hold (it left this node's room
 * while o's tail was open: send_others parked it). Bounded by the hold. */
/* (here: sig_room_seq.c only reads origin_x; calls go one way) */
void sig_hub_remote_deliver_x(sig_hub *h, const char *room, const char *to, const char *from,
                              json_t *data, const char *x, uint64_t now_us)
{
    h->origin_x = x;
    sig_hub_remote_deliver(h, room, to, from, data, now_us);
    h->origin_x = NULL;
}

static bool left_in_tail(const sig_member *o, const char *from)
{
    char *t = o->holding ? sig_proto_peer_left(from) : NULL;
    bool found = false;
    for (const qent *e = t ? o->hhead : NULL; e && !found; e = e->next)
        found = !strcmp(e->b->text, t);
    free(t);
    return found;
}

void sig_hub_deliver_one(sig_hub *h, const char *room, const char *to, const char *from,
                         bool broadcast, json_t *data, uint64_t now_us)
{
    sig_room *r = room_find(h, room);
    sig_member *o = r ? room_member(r, to) : NULL;
    /* A sender still here, or one that left during the tail: its peer-left
     * is parked behind this (issue 14 item 7: accepted, so delivered). One
     * that left before the adoption never was in o's view here (its
     * peer-left went out, or o's member list lacked it): a message now
     * would come from a ghost. */
    if (o && o->state != SIG_MEMBER_REMOTE && (room_member(r, from) || left_in_tail(o, from)))
        send_text(o, sig_proto_forward(broadcast ? "broadcast" : "signal", from, data), now_us);
}

bool sig_hub_room_allowed(sig_hub *h, const char *room)
{
    return h->nrooms < h->lim.max_rooms || room_find(h, room);
}

bool sig_hub_room_exists(sig_hub *h, const char *room) { return room_find(h, room) != NULL; }

sig_code sig_hub_signal(sig_hub *h, sig_member *m, const char *to, json_t *data, uint64_t now_us)
{
    if (m->state != SIG_MEMBER_JOINED)
        return SIG_E_NOT_JOINED;
    for (sig_member *o = m->room->head; o; o = o->rnext)
        if (o != m && !strcmp(o->id, to)) {
            if (o->state == SIG_MEMBER_REMOTE)
                return h->ops.remote(h->ops.ud, m->room->name, o->id, m->id, data)
                           ? SIG_E_SERVER_BUSY
                           : SIG_OK;
            {
                char *text = sig_proto_forward("signal", m->id, data);
                sig_buf *b = text ? buf_new(h, text, now_us) : NULL;
                free(text);
                if (b) {
                    b->refs = 1;
                    push_local(o, b);
                    buf_unref(b);
                }
            }
            return SIG_OK;
        }
    return SIG_E_UNKNOWN_PEER;
}

sig_code sig_hub_broadcast(sig_hub *h, sig_member *m, json_t *data, uint64_t now_us)
{
    if (m->state != SIG_MEMBER_JOINED)
        return SIG_E_NOT_JOINED;
    send_others(m, sig_proto_forward("broadcast", m->id, data), now_us);
    /* once for all remote members: each node fans it out to its own */
    if (m->room->nremote && h->ops.remote &&
        h->ops.remote(h->ops.ud, m->room->name, NULL, m->id, data))
        return SIG_E_SERVER_BUSY;
    return SIG_OK;
}

sig_code sig_hub_leave(sig_hub *h, sig_member *m, uint64_t now_us)
{
    if (m->state != SIG_MEMBER_JOINED)
        return SIG_E_NOT_JOINED;
    leave_room(h, m, now_us);
    h->nlobby++;
    return SIG_OK;
}

sig_code sig_hub_resume(sig_hub *h, sig_member **mp, const char *token, uint64_t now_us)
{
    sig_member *lobby = *mp, *m = NULL;
    sig_tokmap_node *tn;
    json_t *peers;
    char *text;
    sig_buf *b;
    qent *e;

    if (lobby->state != SIG_MEMBER_LOBBY)
        return SIG_E_BAD_REQUEST;
    /* keyed hash, then a constant-time compare (sig_tokmap.h): O(1) */
    if ((tn = sig_tokmap_find(&h->tokens, token)))
        m = RTC_MAP_ENTRY(tn, sig_member, tnode);
    if (!m || m->overflowed ||
        (m->state == SIG_MEMBER_DETACHED && now_us - m->detached_at >= h->lim.resume_us))
        return SIG_E_UNAUTHORIZED;

    peers = peers_json(m);
    text = sig_proto_resumed(m->id, peers);
    json_decref(peers);
    b = text ? buf_new(h, text, now_us) : NULL;
    free(text);
    if (b)
        b->greeting = true;
    e = b ? calloc(1, sizeof *e) : NULL; /* (calloc: seq 0, a greeting is never numbered) */
    if (!e) {
        free(b);
        return SIG_E_SERVER_BUSY;
    }

    if (m->state == SIG_MEMBER_JOINED && m->conn) {
        /* The old connection is still open (half-open TCP): it loses the
         * member to the new one and gets an empty lobby member instead. */
        void *old = m->conn;
        sig_member *fresh = sig_hub_connect(h, old);
        m->conn = NULL;
        if (fresh && h->ops.detach)
            h->ops.detach(old, fresh, h->ops.ud);
    } else {
        h->ndetached--;
        held_unlink(h, m);
    }

    /* New order of m's queue: what the lobby member still had to send (it
     * came first), then "resumed", then what waited while detached. */
    b->refs = 1;
    e->b = b;
    e->next = m->qhead;
    m->qhead = e;
    if (!m->qtail)
        m->qtail = e;
    m->qn++;
    m->qbytes += b->len;
    if (lobby->qhead) {
        lobby->qtail->next = m->qhead;
        m->qhead = lobby->qhead;
        m->qn += lobby->qn;
        m->qbytes += lobby->qbytes;
        lobby->qhead = lobby->qtail = NULL;
        lobby->qn = lobby->qbytes = 0;
    }
    m->conn = lobby->conn;
    m->state = SIG_MEMBER_JOINED;
    member_free(h, lobby);
    *mp = m;
    /* The splice can take the queue past its bounds: then this member is a
     * reader that fell too far behind, like any other (found by fuzzing). */
    if (m->qn > h->lim.queue_msgs || m->qbytes > h->lim.queue_bytes)
        m->overflowed = true;
    h->ops.wake(m->conn, h->ops.ud);
    return SIG_OK;
}

/* ---- resume across nodes (cluster mode) ----
 *
 * The ordering argument lives in sig_handover.c ("Hand-over"); these two
 * functions only move a member's state between nodes without telling anyone:
 * the member never left, so no peer-left/peer-joined is sent on either node. */

const char *sig_member_resume(const sig_member *m) { return m->resume; }

static void hub_unlink(sig_hub *h, sig_member *m)
{
    if (m->hprev)
        m->hprev->hnext = m->hnext;
    else
        h->all = m->hnext;
    if (m->hnext)
        m->hnext->hprev = m->hprev;
    m->hprev = m->hnext = NULL;
}

sig_code sig_hub_hand_over(sig_hub *h, const sig_hand_over_req *q, char ***texts, size_t *n,
                           char **name, uint64_t now_us)
{
    sig_room *r = room_find(h, q->room);
    sig_member *m = r ? room_member(r, q->id) : NULL, *fresh = NULL;
    char **v = NULL, *nm = NULL;
    size_t i = 0;

    *texts = NULL;
    *n = 0;
    *name = NULL;
    if (!m || m->state == SIG_MEMBER_REMOTE || !m->resume || m->overflowed ||
        !sig_ho_proof_ok(m->resume, q->bound, q->proof) ||
        (m->state == SIG_MEMBER_DETACHED && now_us - m->detached_at >= h->lim.resume_us))
        return SIG_E_UNAUTHORIZED;
    if (!(v = calloc(m->qn + m->hn + 1, sizeof *v)) || !(nm = strdup(m->name ? m->name : "")))
        goto oom;
    if (q->seq)
        *q->seq = m->seq;
    /* the member's own `joined`/`resumed` stay here: a client with the token
     * was sent its `joined` (the token is in it), a stale `resumed` only
     * repeats an older member list, and the new node sends a fresh one. The
     * asking node accepts only what else a queue holds (a `joined` carries
     * TURN credentials, which must never come out of another node's reply). */
    for (qent *e = m->qhead; e; e = e->next)
        if (!e->b->greeting && !(v[i++] = sig_seq_text(e)))
            goto oom;
    for (qent *e = m->hhead; e; e = e->next) /* (still holding: those come after) */
        if (!e->b->greeting && !(v[i++] = sig_seq_text(e)))
            goto oom;
    if (m->state == SIG_MEMBER_JOINED && m->conn && !(fresh = sig_hub_connect(h, m->conn)))
        goto oom;

    if (fresh) {
        /* the old connection is still open (half-open TCP): it loses the
         * member, as with a local resume, and is closed with 4001 */
        void *old = m->conn;
        m->conn = NULL;
        if (h->ops.detach)
            h->ops.detach(old, fresh, h->ops.ud);
    } else if (m->state == SIG_MEMBER_DETACHED) {
        h->ndetached--;
        held_unlink(h, m);
    }
    queue_clear(m);
    hub_unlink(h, m);
    h->nmembers--;
    if (q->reply_key)
        sig_ho_reply_key(m->resume, q->reply_key);
    tok_drop(h, m);
    m->conn = NULL;
    m->overflowed = false;
    m->state = SIG_MEMBER_REMOTE; /* still in the room, now on the other node */
    r->nremote++;
    h->nremote++;
    if (r->n == r->nremote) { /* no local member left: remote ones are not tracked */
        while (r->head)
            remote_free(h, r, r->head);
        room_destroy(h, r);
    }
    *texts = v;
    *n = i;
    *name = nm;
    return SIG_OK;
oom:
    for (size_t j = 0; v && j < i; j++)
        free(v[j]);
    free(v);
    free(nm);
    return SIG_E_SERVER_BUSY;
}

/* Link m into r right after `after` (NULL: at the head). */
static void room_insert_after(sig_room *r, sig_member *after, sig_member *m)
{
    sig_member *nx = after ? after->rnext : r->head;
    m->rprev = after;
    m->rnext = nx;
    if (after)
        after->rnext = m;
    else
        r->head = m;
    if (nx)
        nx->rprev = m;
    else
        r->tail = m;
    r->n++;
}

sig_code sig_hub_adopt(sig_hub *h, sig_member *m, const sig_adopt_params *p, uint64_t now_us)
{
    sig_room *r;
    sig_member *old, *after = NULL;
    char prev_id[SIG_ID_MAX + 1] = "", *name, *resume, *text;
    bool at_head = false;
    json_t *peers;

    if (m->state != SIG_MEMBER_LOBBY || !id_ok(p->id))
        return SIG_E_BAD_REQUEST;
    name = strdup(p->name ? p->name : "");
    resume = strdup(p->resume);
    r = room_find(h, p->room);
    /* no max_rooms check: the member was admitted when it joined */
    if (!name || !resume || (!r && !(r = room_create(h, p->room, now_us)))) {
        free(name);
        free(resume);
        return SIG_E_SERVER_BUSY;
    }
    if ((old = room_member(r, p->id))) {
        if (old->state != SIG_MEMBER_REMOTE) { /* cannot happen: ids are unique */
            free(name);
            free(resume);
            return SIG_E_BAD_REQUEST;
        }
        /* keep its place in the join order, without peer-left/peer-joined */
        if (old->rprev)
            snprintf(prev_id, sizeof prev_id, "%s", old->rprev->id);
        else
            at_head = true;
        remote_free(h, r, old);
    }
    remote_sync(h, r, p->remotes, p->nremotes, now_us);
    if (prev_id[0] && !(after = room_member(r, prev_id)))
        at_head = false; /* its neighbour left meanwhile: append */
    snprintf(m->id, sizeof m->id, "%s", p->id);
    m->name = name;
    tok_set(h, m, resume);
    m->room = r;
    if (after || at_head)
        room_insert_after(r, after, m);
    else
        room_append(r, m);
    h->nlobby--;
    h->nmembers++;
    m->holding = p->hold;
    if (m->conn) {
        m->state = SIG_MEMBER_JOINED;
    } else {
        /* the client went away while its member was on the way here: kept
         * for a (now local) resume, the window starting now */
        m->state = SIG_MEMBER_DETACHED;
        m->detached_at = now_us;
        h->ndetached++;
        held_link(h, m, false);
        if (now_us + h->lim.resume_us < h->due_us)
            h->due_us = now_us + h->lim.resume_us;
    }
    /* queue: what the lobby member had, `resumed`, then the handed texts;
     * past the bounds the member is a reader too far behind (overflowed) */
    peers = peers_json(m);
    text = sig_proto_resumed(m->id, peers);
    json_decref(peers);
    send_text_as(m, text, true, now_us);
    if (m->numbered && p->seq > m->seq)
        m->seq = p->seq;
    m->adopting = true;
    for (size_t i = 0; i < p->ntexts; i++)
        send_text(m, strdup(p->texts[i]), now_us);
    m->adopting = false;
    if (m->conn)
        h->ops.wake(m->conn, h->ops.ud);
    return SIG_OK;
}

size_t sig_hub_release(sig_hub *h, const char *room, const char *id)
{
    sig_room *r = room_find(h, room);
    sig_member *m = r ? room_member(r, id) : NULL;
    size_t held;
    if (!m || m->state == SIG_MEMBER_REMOTE || !m->holding)
        return 0;
    m->holding = false;
    held = m->hn;
    if (m->hhead) {
        bool was_empty = m->qn == 0;
        for (qent *e = m->hhead; e; e = e->next)
            sig_seq_number(m, e);
        if (m->qtail)
            m->qtail->next = m->hhead;
        else
            m->qhead = m->hhead;
        m->qtail = m->htail;
        m->qn += m->hn;
        m->qbytes += m->hbytes;
        m->hhead = m->htail = NULL;
        m->hn = m->hbytes = 0;
        if (was_empty && live(m))
            h->ops.wake(m->conn, h->ops.ud);
    }
    return held;
}

void sig_hub_disconnect(sig_hub *h, sig_member *m, bool keep, uint64_t now_us)
{
    if (m->state == SIG_MEMBER_JOINED && keep && !m->overflowed && h->lim.resume_us > 0) {
        m->state = SIG_MEMBER_DETACHED;
        m->conn = NULL;
        m->detached_at = now_us;
        h->ndetached++;
        held_link(h, m, false);
        if (now_us + h->lim.resume_us < h->due_us)
            h->due_us = now_us + h->lim.resume_us;
        return;
    }
    if (m->state != SIG_MEMBER_LOBBY) {
        leave_room(h, m, now_us);
        h->nlobby++;
    }
    member_free(h, m);
}

int sig_hub_send(sig_hub *h, sig_member *m, const char *text, uint64_t now_us)
{
    sig_buf *b = buf_new(h, text, now_us);
    int rc;
    if (!b)
        return -ENOMEM;
    b->refs = 1;
    rc = push(m, b);
    buf_unref(b);
    return rc;
}

uint64_t sig_hub_tick(sig_hub *h, uint64_t now_us)
{
    sig_member *m;
    /* the expired (and overflowed) ones are at the head; leave_room unlinks
     * m and frees no other member */
    while ((m = h->dhead) && (m->overflowed || now_us - m->detached_at >= h->lim.resume_us)) {
        leave_room(h, m, now_us);
        h->nlobby++;
        member_free(h, m);
    }
    h->due_us = m ? m->detached_at + h->lim.resume_us : UINT64_MAX;
    return h->due_us;
}

uint64_t sig_hub_next_deadline(const sig_hub *h) { return h->due_us; }

void sig_hub_get_stats(const sig_hub *h, sig_hub_stats *st)
{
    st->rooms = h->nrooms;
    st->members = h->nmembers;
    st->detached = h->ndetached;
    st->lobby = h->nlobby;
    st->remote = h->nremote;
}
