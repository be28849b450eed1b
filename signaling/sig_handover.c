/* sig_handover.c - resume across nodes in cluster mode: the hand-over of a
 * member and its send queue from the node that holds it to the node its
 * client resumed on (see sig_handover.h). The Redis thread's part runs here
 * as hooks registered with the cluster (sig_cluster_hooks), which calls
 * them; this file calls the cluster's functions, never the other way round.
 * The data model is at the top of sig_cluster.c; threads and locks are in
 * sig_cluster.h.
 *
 * Hand-over (docs/cluster.md "Resume across nodes").
 * Member B of room R lives on node O (the owner); its client resumes on
 * node N with token T. Messages for B reach O three ways: published on R's
 * channel by other nodes (N included), or pushed straight into B's queue by
 * O's own members (never through Redis while B is on O). Facts used:
 *  (F1) Redis runs commands one at a time, and pub/sub messages reach one
 *       subscribing connection in the order the PUBLISHes ran, whatever the
 *       channel (a room's channel and a node's channel alike);
 *  (F2) each node publishes over one connection, in the order its lws
 *       thread queued the commands (one FIFO), and reads over one
 *       connection, handing what it reads to its lws thread in that order
 *       (another FIFO); the lws thread alone touches the hub.
 * Steps:
 *  1. N looks up SHA-256(T) in tsu:rt: (owner O, room R, id B), SUBSCRIBEs
 *     to R's channel and waits for the confirmation, then PUBLISHes the
 *     request Q {"e":"ho","h":SHA-256(T),"p":proof} on R's channel, where
 *     proof = HMAC-SHA256(key T, sig_ho_bound: N, rq, R, B, hash):
 *     the hash is only a lookup key that every Redis reader sees; the proof
 *     needs T itself. Call the position of Q in R's channel order q.
 *  2. O reads Q after everything published before q (F1) and its lws
 *     thread handles Q after all of those (F2): every message published
 *     before q for B is in B's queue. Handling Q (constant-time proof check)
 *     takes B out of the hub at that instant t: from then on O's members'
 *     messages to B are published (B is remote on O), after t, so after q.
 *     O then queues XFER, one script that moves B's registration to N and
 *     PUBLISHes the reply P with B's queue to N's channel. O's publishes
 *     made before t precede P, those after t follow it (F2, F1). P carries
 *     "a" = sig_ho_reply_mac under K = sig_ho_reply_key(T) (O derives K from
 *     its copy of T while taking B out): rq, O, R, B, name and the queue.
 *  3. N reads R's channel from before q (step 1). Its lws thread copies,
 *     for B, every signal/broadcast/join/leave read after Q (the MARK
 *     event) and before P (the DONE event), except those O published: O
 *     published them before t, so they are already in the queue P carries
 *     (a message O published after t comes after P). Its own publishes come
 *     back too while the hand-over is open (`own`): N's members' messages
 *     to B published before q went to O (in P), those after q are copied
 *     here.
 *  4. N takes P as the answer only if "a" checks under the K it derived from
 *     its client's T (kept in the hop, memory only; reply_authentic): any
 *     other "ok" reply is not an answer (whoever can PUBLISH sees rq, R and
 *     B in Q and could race O and hand the client a queue of its own), and
 *     O's may still come.
 *     On P, N adopts B: `resumed` with the room's members as XFER saw them
 *     (the script puts the room hash into P: atomic with the move), then
 *     P's queue, then the copies; every message read after P is delivered
 *     to B live. (As with a local resume, `resumed` lists the room now and
 *     the queued joins/leaves replay how it got there.)
 *  5. The tail: N's own publishes to B made before the adoption may still
 *     be on their way back. N publishes a fence F after adopting (its FIFO:
 *     after all of them); until F is read back they are delivered to B, and
 *     N's members' new messages to B wait (hub `holding`) so that they do
 *     not overtake them; at F the waiting ones follow.
 * Each message for B falls in exactly one of: before q (O's queue, in P),
 * between Q and P (copied by N), after P (live on N); within each part the
 * order is the channel's (or a FIFO's), and the parts are concatenated in
 * that order: exactly once, in order, as with a local resume.
 * Failures: O refuses (bad proof, a replayed rq, B gone): nothing moved,
 * N's copies are dropped, unauthorized. O answers "busy" while B is in its
 * own tail on O (adopted there moments ago; handing it on then would lose
 * O's in-flight publishes to it): nothing moved, server-busy, the client
 * tries again. O silent for SIG_HO_TIMEOUT_MS (dead, or its
 * Redis link down): unauthorized; a reply that still comes makes B leave
 * (nobody has its messages since q) - only the B we asked for, and only
 * for a request of ours: a reply nobody asked for never removes anyone. O dead before the lookup: its
 * heartbeat key is gone, unauthorized at once. N dead when XFER runs: B
 * leaves (peer-left), as if its node died. */
#include "sig_handover.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rtc_clock.h"
#include "rtc_crypto.h"
#include "rtc_err.h"
#include "rtc_log.h"
#include "sig_chan.h"
#include "sig_cluster_lua.h"
#include "sig_handover_int.h"

/* ---- Redis thread: hand-overs asked for ---- */

/* One message of a handed-over queue: a JSON object of a type that a
 * handed-over queue can hold, and nothing else: a bug or an old node must
 * not pass junk or unknown frames to the client. Not `joined` or `resumed`:
 * the member being resumed was joined before (its client has the token,
 * which came in its `joined`), the owner keeps its own greetings out of the
 * queue (sig_hub_hand_over) and `resumed` is made here, on adoption. A
 * `joined` is also the one frame that carries iceServers (TURN credentials):
 * none may ever come out of another node's reply, which anyone who can
 * PUBLISH to Redis could try to forge. */
static bool queued_text_ok(const char *text, size_t len)
{
    static const char *const types[] = {"signal",    "broadcast", "peer-joined",
                                        "peer-left", "error",     "pong"};
    json_t *o = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
    const char *type = json_string_value(json_object_get(o, "type"));
    bool good = false;
    for (size_t i = 0; type && json_is_object(o) && i < sizeof types / sizeof *types; i++)
        good = good || !strcmp(type, types[i]);
    json_decref(o);
    return good;
}

static int hop_find(const sig_handover *hv, uint64_t rq)
{
    for (size_t i = 0; i < hv->nho; i++)
        if (hv->hos[i].rq == rq)
            return (int)i;
    return -1;
}

static bool hook_wants_room(void *ud, const char *room)
{
    const sig_handover *hv = ud;
    for (size_t i = 0; i < hv->nho; i++)
        if (!strcmp(hv->hos[i].room, room))
            return true;
    return false;
}

static void hop_remove(sig_handover *hv, size_t i)
{
    hv->hos[i] = hv->hos[--hv->nho];
    memset(&hv->hos[hv->nho], 0, sizeof hv->hos[hv->nho]); /* no stray copy of a key */
}

/* Whether the "ok" reply o (its name already read) was made by a holder of
 * the member's token, i.e. its owner: "a" must be sig_ho_reply_mac under the
 * key we derived from the client's token, over what we asked (rq, the owner
 * we asked, room, id) and what the client will get (name, every queued text).
 * The room hash XFER appends ("m") is not covered (the owner cannot know it
 * beforehand): it is what Redis holds, which a Redis writer can edit anyway. */
static bool reply_authentic(json_t *o, const uint8_t key[SIG_HO_KEY_LEN], uint64_t rq,
                            const char *owner, const char *room, const char *id,
                            const char *name)
{
    json_t *q = json_object_get(o, "q"), *a = json_object_get(o, "a");
    char want[SIG_HO_MAC_LEN + 1];
    const char **v;
    size_t n;
    bool good = false;
    if (!json_is_string(a) || json_string_length(a) != SIG_HO_MAC_LEN || !json_is_array(q))
        return false;
    n = json_array_size(q);
    if (!(v = calloc(n + 1, sizeof *v)))
        return false;
    for (size_t k = 0; k < n; k++) {
        json_t *t = json_array_get(q, k);
        /* (a text with a NUL in it would be cut short below: never the owner's) */
        if (!json_is_string(t) || strlen(json_string_value(t)) != json_string_length(t))
            goto out;
        v[k] = json_string_value(t);
    }
    /* constant time: a forger learns nothing from how fast it is refused */
    good = !sig_ho_reply_mac(key, rq, owner, room, id, name, v, n, want) &&
           rtc_ct_equal(want, json_string_value(a), SIG_HO_MAC_LEN);
out:
    memset(want, 0, sizeof want);
    free(v);
    return good;
}

/* Remember a request we gave up on (the slot that frees first makes room). */
static void gone_add(sig_handover *hv, const sig_ho_pending *h)
{
    uint64_t now = rtc_clock_mono_ms();
    size_t k = 0;
    for (size_t j = 0; j < SIG_HO_MAX; j++) {
        if (hv->gone[j].until_ms <= now) {
            k = j;
            break;
        }
        if (hv->gone[j].until_ms < hv->gone[k].until_ms)
            k = j;
    }
    hv->gone[k].rq = h->rq;
    hv->gone[k].until_ms = now + HO_GONE_MS;
    memcpy(hv->gone[k].room, h->room, sizeof h->room);
    memcpy(hv->gone[k].id, h->id, sizeof h->id);
    memcpy(hv->gone[k].owner, h->owner, sizeof h->owner);
    memcpy(hv->gone[k].key, h->key, sizeof h->key);
}

/* The request `rq` we gave up on, if it asked for (room, id) and o is its
 * owner's own "ok" reply (reply_authentic): taken out. Anything else leaves
 * it in place: a forged reply must not use up the slot the owner's real
 * late reply needs. Expired entries are wiped on the way (their keys). */
static bool gone_take(sig_handover *hv, uint64_t rq, const char *room, const char *id, json_t *o,
                      const char *name, sig_ho_gone *out)
{
    uint64_t now = rtc_clock_mono_ms();
    for (size_t j = 0; j < SIG_HO_MAX; j++) {
        sig_ho_gone *g = &hv->gone[j];
        if (g->until_ms <= now) {
            memset(g, 0, sizeof *g);
            continue;
        }
        if (g->rq == rq && !strcmp(g->room, room) && !strcmp(g->id, id) &&
            json_is_true(json_object_get(o, "ok")) &&
            reply_authentic(o, g->key, rq, g->owner, room, id, name)) {
            *out = *g;
            memset(g, 0, sizeof *g);
            memset(out->key, 0, sizeof out->key);
            return true;
        }
    }
    return false;
}

static bool json_u64(json_t *o, const char *key, uint64_t *out)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return false;
    *out = (uint64_t)json_integer_value(v);
    return true;
}

static void push_done(sig_handover *hv, uint64_t rq, sig_code result, const char *room,
                      const char *id)
{
    sig_cev *e = calloc(1, sizeof *e);
    if (!e)
        return; /* the lws thread gives up by itself (sig_session.c, ho_expire) */
    e->kind = SIG_CEV_HO_DONE;
    e->serial = rq;
    e->result = result;
    snprintf(e->room, sizeof e->room, "%s", room);
    snprintf(e->id, sizeof e->id, "%s", id);
    sig_cluster_push(hv->c, e, true);
}

static void push_ho_fence(sig_handover *hv, uint64_t rq)
{
    sig_cev *e = calloc(1, sizeof *e);
    if (!e)
        return;
    e->kind = SIG_CEV_HO_FENCE;
    e->serial = rq;
    sig_cluster_push(hv->c, e, true);
}

/* The other nodes' members out of the reply's "m" (the room hash as XFER
 * saw it: [id, value, id, value, ...]). */
static int members_of_json(sig_handover *hv, json_t *a, sig_cev *e)
{
    if (!json_is_array(a) || json_array_size(a) % 2)
        return RTC_EMSG;
    e->members = calloc(json_array_size(a) / 2 + 1, sizeof *e->members);
    if (!e->members)
        return -ENOMEM;
    for (size_t i = 0; i + 1 < json_array_size(a); i += 2) {
        json_t *k = json_array_get(a, i), *v = json_array_get(a, i + 1);
        sig_cev_member *m = &e->members[e->nmembers];
        if (json_is_string(k) && json_is_string(v) &&
            sig_chan_member(hv->node, json_string_value(k), json_string_length(k),
                            json_string_value(v), json_string_length(v), m->id, m->name))
            e->nmembers++;
    }
    return 0;
}

/* What a hand-over reply says (parsed and checked by hook_inbox). */
typedef struct {
    char room[SIG_ROOM_MAX + 1], id[SIG_ID_MAX + 1], name[SIG_NAME_MAX + 1];
    uint64_t rq;
    bool ok;
} reply_fields;

/* The hand-over of ours that reply o answers: its index in hos, or -1 when
 * it answers none (then it has been dealt with: dropped, or the late reply
 * of one we gave up on). */
static int reply_pending(sig_handover *hv, json_t *o, const reply_fields *f)
{
    int i = hop_find(hv, f->rq);
    if (i < 0 || hv->hos[i].tail) {
        /* We gave up waiting (timeout) but the owner did hand the member
         * over: it is registered here now and nobody has its messages since
         * the request. It leaves (peer-left), which is what a timed-out
         * client saw coming: it got unauthorized and joins again. Only a
         * request of ours that timed out, and only the member we asked for:
         * a reply nobody asked for (a bug, an old node, anyone who can
         * PUBLISH) or a second one never removes anybody. */
        sig_ho_gone g;
        if (i < 0 && gone_take(hv, f->rq, f->room, f->id, o, f->name, &g))
            sig_cluster_leave(hv->c, g.room, g.id);
        else
            sig_cluster_count_drop(hv->c);
        return -1;
    }
    if (strcmp(hv->hos[i].room, f->room) || strcmp(hv->hos[i].id, f->id)) {
        /* not the member we asked for: not an answer (the owner's may still come) */
        sig_cluster_count_drop(hv->c);
        return -1;
    }
    if (f->ok && !reply_authentic(o, hv->hos[i].key, f->rq, hv->hos[i].owner, f->room, f->id,
                                  f->name)) {
        /* not made by a holder of the token: whoever can
         * PUBLISH to Redis racing the owner, or a bug. Not an answer: the
         * owner's own reply may still come, within SIG_HO_TIMEOUT_MS. (A
         * refusal is not authenticated - the owner has no key for a wrong
         * proof - but it moves nothing: a forged one only fails this resume,
         * which a Redis writer can do anyway.) */
        RTC_LOG(RTC_LOG_WARN, f->id, "cluster: hand-over reply for rq %llu not authenticated by "
                "node %s: ignored", (unsigned long long)f->rq, hv->hos[i].owner);
        sig_cluster_count_drop(hv->c);
        return -1;
    }
    return i;
}

/* The queue and member list of an "ok" reply as a DONE event (fields but
 * those two still to fill), or NULL when they are not what it can hold. */
static sig_cev *reply_event(sig_handover *hv, json_t *o)
{
    sig_cev *e = calloc(1, sizeof *e);
    json_t *q = json_object_get(o, "q");
    size_t bytes = 0, qn = json_is_array(q) ? json_array_size(q) : SIZE_MAX;
    if (e && json_is_array(q) && json_array_size(q) <= hv->qmsgs &&
        (e->texts = calloc(json_array_size(q) + 1, sizeof *e->texts))) {
        for (size_t k = 0; k < json_array_size(q); k++) {
            json_t *t = json_array_get(q, k);
            /* the owner's queue obeyed the same bounds and holds only what a
             * member is sent: anything else is junk, never passed to the
             * client as it is (queued_text_ok) */
            if (!json_is_string(t) || (bytes += json_string_length(t)) > hv->qbytes ||
                !queued_text_ok(json_string_value(t), json_string_length(t)) ||
                !(e->texts[e->ntexts] = strdup(json_string_value(t))))
                break;
            e->ntexts++;
        }
    }
    /* the room's members on other nodes as XFER saw them (atomic with the
     * move: events after it apply live, those between the request and it
     * were kept by the lws thread, those before are in the queue); without
     * a member list the adoption would announce the room empty */
    if (!e || !e->texts || e->ntexts != qn || members_of_json(hv, json_object_get(o, "m"), e)) {
        sig_cev_free(e);
        return NULL;
    }
    json_u64(o, "sq", &e->ho_seq); /* (absent from an older node: 0) */
    e->kind = SIG_CEV_HO_DONE;
    e->result = SIG_OK;
    return e;
}

/* A hand-over reply on this node's channel (see "Hand-over"). */
static void hook_inbox(void *ud, const char *payload, size_t len)
{
    sig_handover *hv = ud;
    reply_fields f = {.name = ""};
    char ev[8];
    json_t *o, *okv;
    int i;
    sig_ho_pending h;
    sig_cev *e;

    /* the queue, plus the room hash XFER appends ("m") */
    size_t cap = hv->max_payload +
                 (size_t)sig_cluster_max_room(hv->c) * (2 * (SIG_ID_MAX + 512) + 16);
    if (!payload || len > cap ||
        !(o = json_loadb(payload, len, JSON_REJECT_DUPLICATES, NULL))) {
        RTC_LOG(RTC_LOG_WARN, hv->node, "cluster: hand-over reply dropped (%zu bytes)",
                payload ? len : 0);
        sig_cluster_count_drop(hv->c);
        return;
    }
    okv = json_object_get(o, "ok");
    f.ok = json_is_true(okv);
    if (!sig_chan_field(o, "e", 1, 5, ev, sizeof ev) || strcmp(ev, "hr") ||
        !json_u64(o, "rq", &f.rq) || !json_is_boolean(okv) ||
        !sig_chan_field(o, "room", 1, SIG_ROOM_MAX, f.room, sizeof f.room) ||
        !sig_chan_field(o, "id", 1, SIG_ID_MAX, f.id, sizeof f.id) ||
        (f.ok && !sig_chan_field(o, "name", 0, SIG_NAME_MAX, f.name, sizeof f.name))) {
        json_decref(o);
        sig_cluster_count_drop(hv->c);
        return;
    }
    if ((i = reply_pending(hv, o, &f)) < 0) {
        json_decref(o);
        return;
    }
    h = hv->hos[i];
    hop_remove(hv, (size_t)i);
    if (!f.ok) {
        /* busy: the member just arrived on the owner and its tail is still
         * open; nothing moved, the client tries again (server-busy) */
        bool busy = json_is_true(json_object_get(o, "busy"));
        if (!busy)
            atomic_fetch_add(&hv->refused, 1);
        json_decref(o);
        gone_add(hv, &h); /* (were it not the owner's answer, the owner's may still come) */
        memset(h.key, 0, sizeof h.key);
        push_done(hv, h.rq, busy ? SIG_E_SERVER_BUSY : SIG_E_UNAUTHORIZED, h.room, h.id);
        sig_cluster_unsubscribe_unused(hv->c, h.room);
        return;
    }
    e = reply_event(hv, o);
    if (e && h.claimed) /* our claim's reply: where its room-stream part ends */
        sig_chan_field(o, "xc", 0, sizeof e->x - 1, e->x, sizeof e->x);
    json_decref(o);
    /* the member is ours from here: a resync registers it here */
    if (!e || sig_cluster_mirror_add(hv->c, f.id, f.room, f.name, h.th)) {
        if (!e) /* (and if this was not the owner's answer, undo the one to come) */
            gone_add(hv, &h);
        sig_cev_free(e);
        sig_cluster_leave(hv->c, f.room, f.id); /* registered here by the owner: take it out */
        push_done(hv, h.rq, SIG_E_UNAUTHORIZED, h.room, h.id);
        return;
    }
    e->serial = h.rq;
    snprintf(e->room, sizeof e->room, "%s", f.room);
    snprintf(e->id, sizeof e->id, "%s", f.id);
    snprintf(e->name, sizeof e->name, "%s", f.name);
    snprintf(e->node, sizeof e->node, "%s", h.owner);
    /* Our own publishes to the member made before the lws thread adopts it
     * may still be on their way: keep passing them on until the fence it
     * publishes after adopting comes back (see "Hand-over", step 5). */
    memset(h.key, 0, sizeof h.key); /* answered: not needed any more */
    h.tail = true;
    h.deadline_ms = rtc_clock_mono_ms() + HO_TAIL_MS;
    hv->hos[hv->nho++] = h;
    sig_cluster_push(hv->c, e, true);
}

/* A hand-over's own traffic on a room channel: our fence or our request
 * coming back, or another node's request (ours to answer if it names us). */
static bool hook_channel(void *ud, const char *room, const char *node, bool own,
                             const char *ev, json_t *o)
{
    sig_handover *hv = ud;
    sig_cev *e;
    uint64_t rq;
    int i;

    if (!strcmp(ev, "fence")) {
        /* ours: every publish of ours made before the adoption has been seen */
        if (own && json_u64(o, "rq", &rq) && (i = hop_find(hv, rq)) >= 0 && hv->hos[i].tail) {
            sig_ho_pending h = hv->hos[i];
            hop_remove(hv, (size_t)i);
            if ((e = calloc(1, sizeof *e))) {
                e->kind = SIG_CEV_HO_FENCE;
                e->serial = rq;
                snprintf(e->room, sizeof e->room, "%s", room);
                sig_cluster_push(hv->c, e, true);
            }
            sig_cluster_unsubscribe_unused(hv->c, h.room);
        }
        return true;
    }
    if (strcmp(ev, "ho"))
        return false;
    if (own) {
        /* our hand-over request came back through the room's channel: from
         * here on the requested member's messages are ours to keep */
        if (json_u64(o, "rq", &rq) && (i = hop_find(hv, rq)) >= 0 && !hv->hos[i].tail &&
            (e = calloc(1, sizeof *e))) {
            e->kind = SIG_CEV_HO_MARK;
            e->serial = rq;
            snprintf(e->room, sizeof e->room, "%s", room);
            snprintf(e->id, sizeof e->id, "%s", hv->hos[i].id);
            snprintf(e->node, sizeof e->node, "%s", hv->hos[i].owner);
            sig_cluster_push(hv->c, e, true);
        }
        return true;
    }
    if (!(e = calloc(1, sizeof *e)))
        return true;
    memcpy(e->room, room, strlen(room) + 1);
    memcpy(e->node, node, strlen(node) + 1);
    if (!sig_chan_field(o, "id", 1, SIG_ID_MAX, e->id, sizeof e->id) ||
        !sig_chan_field(o, "to", 1, NODE_LEN, e->to, sizeof e->to) ||
        !sig_chan_field(o, "h", SIG_TH_LEN, SIG_TH_LEN, e->th, sizeof e->th) ||
        !sig_chan_field(o, "p", SIG_TH_LEN, SIG_TH_LEN, e->proof, sizeof e->proof) ||
        !json_u64(o, "rq", &e->serial)) {
        free(e);
        sig_cluster_count_drop(hv->c);
        return true;
    }
    if (strcmp(e->to, hv->node)) { /* another node's member: not ours to answer */
        free(e);
        return true;
    }
    e->kind = SIG_CEV_HO_REQUEST;
    sig_cluster_push(hv->c, e, false);
    return true;
}

/* The asking side of a hand-over (see "Hand-over"): who holds the token's
 * member, subscribe to its room, then publish the request on the room's
 * channel. RTC_EMSG when the connection failed (the answer is sent anyway). */
static int run_ask(sig_handover *hv, const op *k)
{
    char rt[96], ch[SIG_ROOM_MAX + 64];
    char room[SIG_ROOM_MAX + 1], id[SIG_ID_MAX + 1], owner[NODE_LEN + 1];
    json_t *o = NULL;
    char *req;
    sig_redis_reply *r;
    sig_ho_pending h;
    int rc;

    if (hv->nho >= SIG_HO_MAX) {
        push_done(hv, k->serial, SIG_E_SERVER_BUSY, "", "");
        return 0;
    }
    snprintf(rt, sizeof rt, "%srt:%s", sig_cluster_key_prefix(hv->c), k->th);
    {
        char lim[16];
        const char *argv[] = {"EVAL", SIG_LUA_LOOKUP, "1", rt, sig_cluster_key_prefix(hv->c), lim};
        snprintf(lim, sizeof lim, "%u", hv->max_hops);
        if (!(r = sig_cluster_command(hv->c, 6, argv))) {
            push_done(hv, k->serial, SIG_E_SERVER_BUSY, "", "");
            return RTC_EMSG;
        }
    }
    if (r->type == SIG_RR_STRING)
        o = json_loadb(r->str, r->len, JSON_REJECT_DUPLICATES, NULL);
    if (r->type == SIG_RR_INTEGER && r->integer == 2) { /* hopped too often: stays where it is */
        sig_redis_reply_free(r);
        push_done(hv, k->serial, SIG_E_RATE_LIMITED, "", "");
        return 0;
    }
    sig_redis_reply_free(r);
    if (!o || !sig_chan_field(o, "id", 1, SIG_ID_MAX, id, sizeof id) ||
        !sig_chan_field(o, "room", 1, SIG_ROOM_MAX, room, sizeof room) ||
        !sig_chan_field(o, "node", 1, NODE_LEN, owner, sizeof owner) || !strcmp(owner, hv->node)) {
        /* unknown or expired token, or its node is dead (its queue died with
         * it), or ours but gone from the hub meanwhile (it left) */
        json_decref(o);
        atomic_fetch_add(&hv->unknown, 1);
        push_done(hv, k->serial, SIG_E_UNAUTHORIZED, "", "");
        return 0;
    }
    json_decref(o);
    memset(&h, 0, sizeof h);
    h.rq = k->serial;
    memcpy(h.room, room, sizeof room);
    memcpy(h.id, id, sizeof id);
    memcpy(h.owner, owner, sizeof owner);
    memcpy(h.th, k->th, sizeof h.th);
    h.claim = k->claim;
    h.last = k->last;
    if (k->token) /* the owner's reply is checked with it (reply_authentic) */
        sig_ho_reply_key(k->token, h.key);
    /* subscribed (and confirmed) before the request is published: every
     * message after the request in the channel's order reaches us. The hop
     * joins the table only then: the subscription dispatches what it has
     * buffered, and replies and fences reorder the table (hop_remove). */
    if ((rc = sig_cluster_subscribe(hv->c, room))) {
        push_done(hv, k->serial, SIG_E_SERVER_BUSY, room, id);
        return rc;
    }
    h.deadline_ms = rtc_clock_mono_ms() + SIG_HO_TIMEOUT_MS;
    hv->hos[hv->nho++] = h;
    {
        /* the proof: only the token's holder can make it (sig_ho_bound) */
        char bound[SIG_ROOM_MAX + SIG_ID_MAX + NODE_LEN + SIG_TH_LEN + 64], px[SIG_TH_LEN + 1];
        req = NULL;
        if (k->token && sig_ho_bound(bound, sizeof bound, hv->node, k->serial, room, id, k->th)) {
            sig_ho_proof(k->token, bound, px);
            req = sig_chan_dumps(json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:I}", "n", hv->node, "e",
                                          "ho", "id", id, "to", owner, "h", k->th, "p", px, "rq",
                                          (json_int_t)k->serial));
        }
    }
    sig_cluster_channel(hv->c, room, ch, sizeof ch);
    {
        const char *argv[] = {"PUBLISH", ch, req ? req : ""};
        r = req ? sig_cluster_command(hv->c, 3, argv) : NULL;
        rc = r ? 0 : RTC_EMSG;
        sig_redis_reply_free(r);
    }
    free(req);
    if (rc) {
        int i = hop_find(hv, k->serial);
        if (i >= 0)
            hop_remove(hv, (size_t)i);
        push_done(hv, k->serial, SIG_E_SERVER_BUSY, room, id);
        sig_cluster_unsubscribe_unused(hv->c, room);
        return RTC_EMSG;
    }
    return 0;
}

/* The owner's side of a hand-over: one script moves the registration and
 * sends the reply (with the queue) to the asking node's channel. */
static int xfer_append(sig_handover *hv, const op *k)
{
    char nm1[64], nt1[64], key[SIG_ROOM_MAX + 32], nm2[64], nt2[64], rt[96], hb2[64];
    char ch2[96], ch[SIG_ROOM_MAX + 64];
    char *v2 = sig_chan_dumps(json_pack("{s:s,s:s}", "name", k->name, "node", k->node));
    char *rv2 =
        sig_chan_dumps(json_pack("{s:s,s:s,s:s}", "id", k->id, "room", k->room, "node", k->node));
    char *ev = sig_chan_dumps(json_pack("{s:s,s:s,s:s}", "n", hv->node, "e", "left", "id", k->id));
    int rc = RTC_EMSG;

    snprintf(nm1, sizeof nm1, "%snm:%s", sig_cluster_key_prefix(hv->c), hv->node);
    snprintf(nt1, sizeof nt1, "%snt:%s", sig_cluster_key_prefix(hv->c), hv->node);
    snprintf(key, sizeof key, "%sroom:%s", sig_cluster_key_prefix(hv->c), k->room);
    snprintf(nm2, sizeof nm2, "%snm:%s", sig_cluster_key_prefix(hv->c), k->node);
    snprintf(nt2, sizeof nt2, "%snt:%s", sig_cluster_key_prefix(hv->c), k->node);
    snprintf(rt, sizeof rt, "%srt:%s", sig_cluster_key_prefix(hv->c), k->th);
    snprintf(hb2, sizeof hb2, "%snode:%s", sig_cluster_key_prefix(hv->c), k->node);
    sig_cluster_node_channel(hv->c, k->node, ch2, sizeof ch2);
    sig_cluster_channel(hv->c, k->room, ch, sizeof ch);
    if (v2 && rv2 && ev) {
        const char *argv[] = {"EVAL", SIG_LUA_XFER, "7", nm1, nt1, key, nm2, nt2, rt, hb2,
                              k->id, k->room, v2, k->th, rv2, ch2, k->payload, ev, ch, k->node};
        rc = sig_cluster_append(hv->c, 20, argv);
    } else {
        /* out of memory: a harmless command keeps replies and commands paired */
        const char *argv[] = {"PING"};
        rc = sig_cluster_append(hv->c, 1, argv);
    }
    free(v2);
    free(rv2);
    free(ev);
    return rc;
}

static uint64_t hook_deadline(void *ud, uint64_t due)
{
    const sig_handover *hv = ud;
    for (size_t i = 0; i < hv->nho; i++)
        if (hv->hos[i].deadline_ms < due)
            due = hv->hos[i].deadline_ms;
    return due;
}

/* Hand-overs whose owner did not answer in time: unauthorized (the client
 * joins again; a reply that still comes makes the member leave, hook_inbox). */
static void hook_tick(void *ud, uint64_t now)
{
    sig_handover *hv = ud;
    for (size_t i = 0; i < hv->nho;) {
        sig_ho_pending h = hv->hos[i];
        if (now < h.deadline_ms) {
            i++;
            continue;
        }
        if (!h.tail && h.claim && !h.claimed) { /* the owner may have crashed (sig_hoclaim.c) */
            hv->hos[i].claimed = true;
            hv->hos[i].deadline_ms = now + SIG_HO_TIMEOUT_MS; /* for the reply we publish */
            if (!sig_ho_claim(hv, &hv->hos[i]))
                continue; /* (the table may have changed: look at slot i again) */
        }
        hop_remove(hv, i);
        if (h.tail) { /* the fence never came back: stop passing our publishes on */
            push_ho_fence(hv, h.rq);
            sig_cluster_unsubscribe_unused(hv->c, h.room);
            continue;
        }
        RTC_LOG(RTC_LOG_WARN, h.id, "cluster: node %s did not answer a resume hand-over in %d ms",
                h.owner, SIG_HO_TIMEOUT_MS);
        atomic_fetch_add(&hv->timeout, 1);
        gone_add(hv, &h);
        memset(h.key, 0, sizeof h.key);
        push_done(hv, h.rq, SIG_E_UNAUTHORIZED, h.room, h.id);
        sig_cluster_unsubscribe_unused(hv->c, h.room);
    }
}

/* The connection is gone: hand-overs asked for cannot get their reply (it
 * went to the channel we no longer read). unauthorized: the client joins
 * again; a member the owner did hand over is registered here without being
 * in the mirror, so the resync after the reconnection makes it leave. */
static void hook_lost(void *ud)
{
    sig_handover *hv = ud;
    while (hv->nho) {
        sig_ho_pending h = hv->hos[--hv->nho];
        memset(&hv->hos[hv->nho], 0, sizeof hv->hos[hv->nho]);
        memset(h.key, 0, sizeof h.key);
        if (h.tail)
            push_ho_fence(hv, h.rq);
        else
            push_done(hv, h.rq, SIG_E_UNAUTHORIZED, h.room, h.id);
    }
}

/* Members on their way here (asked for, not answered yet): a resync leaves
 * their registration alone (the owner's XFER may have registered one here
 * already, its reply not read yet). */
static size_t hook_keep_ids(void *ud, const char **ids, size_t cap)
{
    const sig_handover *hv = ud;
    size_t n = 0;
    for (size_t i = 0; i < hv->nho && n < cap; i++)
        if (!hv->hos[i].tail)
            ids[n++] = hv->hos[i].id;
    return n;
}

/* ---- commands (sig_cluster_submit), on the Redis thread ---- */

static int hook_run(void *ud, void *arg)
{
    return run_ask(ud, arg); /* OP_ASK: the only one that runs alone */
}

/* KEYS: the token's entry, the member's stream. ARGV: seconds for each (0:
 * no expiry). One command, so one reply, whatever the stream. */
static const char LUA_TTL[] =
    "if ARGV[1] == '0' then\n"
    "  redis.call('PERSIST', KEYS[1])\n"
    "  redis.call('PERSIST', KEYS[2])\n"
    "else\n"
    "  redis.call('EXPIRE', KEYS[1], ARGV[1])\n"
    "  redis.call('EXPIRE', KEYS[2], ARGV[2])\n"
    "end\n"
    "return 1\n";

static int hook_append(void *ud, void *arg)
{
    sig_handover *hv = ud;
    const op *k = arg;
    const char *kp = sig_cluster_key_prefix(hv->c);
    char rt[96], mq[SIG_ID_MAX + 32], secs[16], mq_secs[16];
    const char *argv[] = {"EVAL", LUA_TTL, "2", rt, mq, secs, mq_secs};
    if (k->kind == OP_XFER)
        return xfer_append(hv, k);
    snprintf(rt, sizeof rt, "%srt:%s", kp, k->th);
    snprintf(mq, sizeof mq, "%smq:%s", kp, k->id);
    snprintf(secs, sizeof secs, "%u", (unsigned)k->secs);
    snprintf(mq_secs, sizeof mq_secs, "%u", k->secs ? (unsigned)k->secs + 5u : 0u);
    return sig_cluster_append(hv->c, (int)(sizeof argv / sizeof argv[0]), argv);
}

static int hook_replied(void *ud, void *arg, const sig_redis_reply *r)
{
    sig_handover *hv = ud;
    const op *k = arg;
    if (k->kind != OP_XFER)
        return 0;
    /* not ours any more either way: handed over, or (the new owner died, or
     * a resync took it out) it left; until now a resync kept it registered
     * here, where XFER expects it */
    sig_cluster_mirror_del_in(hv->c, k->id, k->room);
    if (r->type == SIG_RR_INTEGER && r->integer == 1)
        atomic_fetch_add(&hv->given, 1);
    return sig_cluster_unsubscribe_unused(hv->c, k->room);
}

static void hook_refused(void *ud, void *arg)
{
    const op *k = arg;
    if (k->kind == OP_ASK)
        push_done(ud, k->serial, SIG_E_SERVER_BUSY, "", "");
}

static void op_free(void *arg)
{
    op *k = arg;
    if (!k)
        return;
    free(k->payload);
    if (k->token)
        memset(k->token, 0, strlen(k->token));
    free(k->token);
    free(k);
}

/* ---- public (lws thread) ---- */

sig_handover *sig_handover_new(sig_cluster *c, const sig_handover_params *p)
{
    sig_handover *hv = calloc(1, sizeof *hv);
    if (!hv)
        return NULL;
    hv->c = c;
    snprintf(hv->node, sizeof hv->node, "%s", sig_cluster_node(c));
    hv->qmsgs = p->queue_msgs;
    hv->max_hops = p->max_hops_per_min;
    hv->qbytes = p->queue_bytes;
    /* a reply carries at most the whole send queue, each message escaped
     * once more as a JSON string (at most doubling it), plus envelopes */
    hv->max_payload = 2 * p->queue_bytes + 16 * (size_t)p->queue_msgs + 4096;
    hv->hooks = (sig_cluster_hooks){
        .ud = hv,
        .channel = hook_channel,
        .inbox = hook_inbox,
        .wants_room = hook_wants_room,
        .keep_ids = hook_keep_ids,
        .deadline = hook_deadline,
        .tick = hook_tick,
        .lost = hook_lost,
        .run = hook_run,
        .append = hook_append,
        .replied = hook_replied,
        .refused = hook_refused,
        .free_arg = op_free,
    };
    if (sig_cluster_add_hooks(c, &hv->hooks)) {
        free(hv);
        return NULL;
    }
    return hv;
}

void sig_handover_free(sig_handover *hv)
{
    if (!hv)
        return;
    memset(hv, 0, sizeof *hv); /* (reply keys) */
    free(hv);
}

void sig_handover_get_stats(sig_handover *hv, sig_handover_stats *st)
{
    st->unknown = atomic_load(&hv->unknown);
    st->refused = atomic_load(&hv->refused);
    st->timeout = atomic_load(&hv->timeout);
    st->given = atomic_load(&hv->given);
}

int sig_handover_ask(sig_handover *hv, uint64_t serial, const char *token, bool claim,
                     uint64_t last)
{
    op *k;
    if (!sig_cluster_up(hv->c))
        return RTC_EUNSUP;
    if (!(k = calloc(1, sizeof *k)))
        return -ENOMEM;
    k->kind = OP_ASK;
    k->serial = serial;
    k->claim = claim;
    k->last = last;
    sig_token_hash(token, k->th); /* the token itself never leaves this process */
    if (!(k->token = strdup(token))) {
        free(k);
        return -ENOMEM;
    }
    return sig_cluster_submit(hv->c, &hv->hooks, k, false, false);
}

static void reply(sig_handover *hv, const sig_cev *req, bool ok, bool busy,
                  const uint8_t key[SIG_HO_KEY_LEN], const char *name, char **texts, size_t n,
                  uint64_t seq)
{
    op *k = calloc(1, sizeof *k);
    json_t *q = ok ? json_array() : NULL;
    bool taken = ok; /* out of our hub: handed over, or it leaves (never both, never neither) */
    char mac[SIG_HO_MAC_LEN + 1] = "", *refusal;
    /* the asking node acts on an "ok" only with this MAC: nobody without
     * the token can hand its client a queue */
    if (ok && sig_ho_reply_mac(key, req->serial, hv->node, req->room, req->id, name ? name : "",
                               (const char *const *)texts, n, mac))
        ok = false; /* out of memory: it leaves, see below */
    for (size_t i = 0; i < n; i++) {
        if (q && json_array_append_new(q, json_string(texts[i])))
            ok = false; /* cannot build the reply: see below */
        free(texts[i]);
    }
    free(texts);
    if (!k) {
        json_decref(q);
        if (taken)
            sig_cluster_leave(hv->c, req->room, req->id);
        return; /* the asking node times out */
    }
    if (!ok || !q) {
        /* (a member taken out of the hub whose reply cannot be built would
         * be lost silently: it leaves instead) */
        json_decref(q);
        op_free(k);
        if (taken)
            sig_cluster_leave(hv->c, req->room, req->id);
        refusal = sig_chan_dumps(json_pack("{s:s,s:s,s:I,s:b,s:b,s:s,s:s}", "n", hv->node, "e",
                                           "hr", "rq", (json_int_t)req->serial, "ok", 0, "busy",
                                           busy, "id", req->id, "room", req->room));
        if (refusal)
            sig_cluster_publish_text(hv->c, req->room, req->node, refusal);
        return;
    }
    snprintf(k->room, sizeof k->room, "%s", req->room);
    snprintf(k->id, sizeof k->id, "%s", req->id);
    snprintf(k->node, sizeof k->node, "%s", req->node);
    memcpy(k->th, req->th, sizeof k->th);
    snprintf(k->name, sizeof k->name, "%s", name ? name : "");
    k->kind = OP_XFER;
    /* "sq": the last "seq" given to the member here (not under the MAC: a
     * forged one can only make the new owner's numbers jump ahead, which a
     * client takes as new) */
    k->payload = sig_chan_dumps(json_pack("{s:s,s:s,s:I,s:b,s:s,s:s,s:s,s:s,s:o,s:I}", "n",
                                          hv->node, "e", "hr", "rq", (json_int_t)req->serial,
                                          "ok", 1, "id", req->id, "room", req->room, "name",
                                          k->name, "a", mac, "q", q, "sq", (json_int_t)seq));
    if (k->payload && k->payload[0]) /* SIG_LUA_XFER appends ,"m":[...]} */
        k->payload[strlen(k->payload) - 1] = '\0';
    /* it leaves the mirror (without a leave: it did not leave) when XFER
     * has run (hook_replied): a resync meanwhile keeps it registered here,
     * where XFER expects it (else XFER would find it gone and do nothing,
     * and the asking node would time out) */
    if (!k->payload) {
        sig_cluster_leave(hv->c, req->room, req->id);
        op_free(k);
        return;
    }
    sig_cluster_submit(hv->c, &hv->hooks, k, true, true);
}

void sig_handover_reply(sig_handover *hv, const sig_cev *req, bool ok,
                        const uint8_t key[SIG_HO_KEY_LEN], const char *name, char **texts,
                        size_t n, uint64_t seq)
{
    reply(hv, req, ok, false, key, name, texts, n, seq);
}

void sig_handover_reply_busy(sig_handover *hv, const sig_cev *req)
{
    reply(hv, req, false, true, NULL, NULL, NULL, 0, 0);
}

void sig_handover_fence(sig_handover *hv, const char *room, uint64_t serial)
{
    /* (out of memory: the Redis thread stops waiting for it after HO_TAIL_MS) */
    char *text = sig_chan_dumps(
        json_pack("{s:s,s:s,s:I}", "n", hv->node, "e", "fence", "rq", (json_int_t)serial));
    if (text)
        sig_cluster_publish_text(hv->c, room, NULL, text);
}

void sig_handover_token_ttl(sig_handover *hv, const char *resume, const char *id, uint32_t secs)
{
    op *k;
    if (!resume || !id || !sig_cluster_up(hv->c) || !(k = calloc(1, sizeof *k)))
        return; /* a safety net only: the member's leave deletes the entries */
    k->kind = OP_TTL;
    k->secs = secs;
    snprintf(k->id, sizeof k->id, "%s", id);
    sig_token_hash(resume, k->th);
    /* forced like the hand-over's other commands: a dropped PERSIST would let
     * the lookup entry of an attached member expire (tiny, one per member) */
    sig_cluster_submit(hv->c, &hv->hooks, k, true, true);
}

bool sig_handover_fresh(const sig_handover *hv, const char *node, uint64_t rq)
{
    for (size_t i = 0; i < SIG_HO_MAX; i++)
        if (hv->seen[i].used && !strcmp(hv->seen[i].node, node))
            return rq > hv->seen[i].rq;
    return true;
}

void sig_handover_served(sig_handover *hv, const char *node, uint64_t rq)
{
    size_t k = 0;
    for (size_t i = 0; i < SIG_HO_MAX; i++) {
        if (hv->seen[i].used && !strcmp(hv->seen[i].node, node)) {
            k = i;
            break;
        }
        if (hv->seen[i].used < hv->seen[k].used) /* a free slot (0), or the least recent */
            k = i;
    }
    snprintf(hv->seen[k].node, sizeof hv->seen[k].node, "%s", node);
    hv->seen[k].rq = rq;
    hv->seen[k].used = ++hv->seen_tick;
}
