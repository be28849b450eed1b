/* sig_handover.c - resume across nodes in cluster mode: the hand-over of a
 * member and its send queue from the node that holds it to the node its
 * client resumed on (see sig_handover.h). The Redis thread's part runs here
 * through sig_cluster.c's helpers (sig_cluster_int.h), so hiredis stays in
 * sig_cluster.c alone; the data model is at the top of sig_cluster.c.
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
 *     proof = HMAC-SHA256(key T, sig_handover_bound: N, rq, R, B, hash):
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
 *     B in Q and could race O: review xresume #10), and O's may still come.
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rtc_crypto.h"
#include "rtc_err.h"
#include "rtc_log.h"
#include "sig_cluster_int.h"

#define HO_TAIL_MS 10000 /* a fence that never comes back (lost connection) */
#define HO_GONE_MS 60000 /* how long a timed-out request's late reply is still undone */


/* Who holds the member of a resume token (KEYS[1] = rt:HASH; ARGV[1] = key
 * prefix): 0 unknown, 1 its node is dead (its heartbeat expired: the queue
 * died with it), else the rt value. */
static const char LOOKUP_LUA[] =
    "local v = redis.call('GET', KEYS[1])\n"
    "if not v then return 0 end\n"
    "local ok, o = pcall(cjson.decode, v)\n"
    "if not ok or type(o) ~= 'table' or type(o.node) ~= 'string' then return 0 end\n"
    "if redis.call('EXISTS', ARGV[1] .. 'node:' .. o.node) == 0 then return 1 end\n"
    "return v\n";

/* The owner gives member ARGV[1] of room ARGV[2] to node ARGV[10], and the
 * reply (ARGV[7], its queue) goes to that node's channel ARGV[6], atomically.
 * KEYS: nm, nt (owner), room hash, nm, nt (new owner), rt:HASH, the new
 * owner's heartbeat key. ARGV: id, room, room-hash value, token hash, rt
 * value, channel, reply, left event, room channel, new owner.
 * The reply (ARGV[7], without its closing brace) gets the room hash as it is
 * at this instant ("m"): the new owner's member list, atomic with the move
 * (review xresume #6).
 * Not ours any more (a resync took it out): nothing, the asking node times
 * out. The new owner died meanwhile: the member leaves, as its node did. */
static const char XFER_LUA[] =
    "if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end\n"
    "redis.call('HDEL', KEYS[1], ARGV[1])\n"
    "redis.call('HDEL', KEYS[2], ARGV[1])\n"
    "if redis.call('EXISTS', KEYS[7]) == 0 then\n"
    "  redis.call('DEL', KEYS[6])\n"
    "  if redis.call('HDEL', KEYS[3], ARGV[1]) == 1 then\n"
    "    redis.call('PUBLISH', ARGV[9], ARGV[8])\n"
    "  end\n"
    "  return 0\n"
    "end\n"
    "redis.call('HSET', KEYS[4], ARGV[1], ARGV[2])\n"
    "redis.call('HSET', KEYS[5], ARGV[1], ARGV[4])\n"
    "redis.call('HSET', KEYS[3], ARGV[1], ARGV[3])\n"
    "redis.call('SET', KEYS[6], ARGV[5])\n"
    "local all = redis.call('HGETALL', KEYS[3])\n"
    "local m = '[]'\n"
    "if #all > 0 then m = cjson.encode(all) end\n"
    "redis.call('PUBLISH', ARGV[6], ARGV[7] .. ',\"m\":' .. m .. '}')\n"
    "return 1\n";

/* ---- Redis thread: hand-overs asked for ---- */

/* One message of a handed-over queue: a JSON object of a type that a
 * handed-over queue can hold, and nothing else: a bug or an old node must
 * not pass junk or unknown frames to the client. Not `joined` or `resumed`:
 * the member being resumed was joined before (its client has the token,
 * which came in its `joined`), the owner keeps its own greetings out of the
 * queue (sig_hub_hand_over) and `resumed` is made here, on adoption. A
 * `joined` is also the one frame that carries iceServers (TURN credentials):
 * none may ever come out of another node's reply (review xresume #10). */
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

static int hop_find(const sig_cluster *c, uint64_t rq)
{
    for (size_t i = 0; i < c->nho; i++)
        if (c->hos[i].rq == rq)
            return (int)i;
    return -1;
}

bool sig_handover_in_room(const sig_cluster *c, const char *room)
{
    for (size_t i = 0; i < c->nho; i++)
        if (!strcmp(c->hos[i].room, room))
            return true;
    return false;
}

static void hop_remove(sig_cluster *c, size_t i)
{
    c->hos[i] = c->hos[--c->nho];
    memset(&c->hos[c->nho], 0, sizeof c->hos[c->nho]); /* no stray copy of a key */
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
static void gone_add(sig_cluster *c, const sig_ho_pending *h)
{
    uint64_t now = sig_clu_mono_ms();
    size_t k = 0;
    for (size_t j = 0; j < SIG_HO_MAX; j++) {
        if (c->gone[j].until_ms <= now) {
            k = j;
            break;
        }
        if (c->gone[j].until_ms < c->gone[k].until_ms)
            k = j;
    }
    c->gone[k].rq = h->rq;
    c->gone[k].until_ms = now + HO_GONE_MS;
    memcpy(c->gone[k].room, h->room, sizeof h->room);
    memcpy(c->gone[k].id, h->id, sizeof h->id);
    memcpy(c->gone[k].owner, h->owner, sizeof h->owner);
    memcpy(c->gone[k].key, h->key, sizeof h->key);
}

/* The request `rq` we gave up on, if it asked for (room, id) and o is its
 * owner's own "ok" reply (reply_authentic): taken out. Anything else leaves
 * it in place: a forged reply must not use up the slot the owner's real
 * late reply needs. Expired entries are wiped on the way (their keys). */
static bool gone_take(sig_cluster *c, uint64_t rq, const char *room, const char *id, json_t *o,
                      const char *name, sig_ho_gone *out)
{
    uint64_t now = sig_clu_mono_ms();
    for (size_t j = 0; j < SIG_HO_MAX; j++) {
        sig_ho_gone *g = &c->gone[j];
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

void sig_handover_push_done(sig_cluster *c, uint64_t rq, sig_code result, const char *room,
                            const char *id)
{
    sig_cev *e = calloc(1, sizeof *e);
    if (!e)
        return; /* the lws thread gives up by itself (sig_ws.c, ho_expire) */
    e->kind = SIG_CEV_HO_DONE;
    e->serial = rq;
    e->result = result;
    snprintf(e->room, sizeof e->room, "%s", room);
    snprintf(e->id, sizeof e->id, "%s", id);
    sig_clu_push_event(c, e);
}

static void push_ho_fence(sig_cluster *c, uint64_t rq)
{
    sig_cev *e = calloc(1, sizeof *e);
    if (!e)
        return;
    e->kind = SIG_CEV_HO_FENCE;
    e->serial = rq;
    sig_clu_push_event(c, e);
}

/* The other nodes' members out of the reply's "m" (the room hash as XFER
 * saw it: [id, value, id, value, ...]). */
static int members_of_json(sig_cluster *c, json_t *a, sig_cev *e)
{
    if (!json_is_array(a) || json_array_size(a) % 2)
        return RTC_EMSG;
    e->members = calloc(json_array_size(a) / 2 + 1, sizeof *e->members);
    if (!e->members)
        return -ENOMEM;
    for (size_t i = 0; i + 1 < json_array_size(a); i += 2) {
        json_t *k = json_array_get(a, i), *v = json_array_get(a, i + 1), *o;
        sig_cev_member *m = &e->members[e->nmembers];
        char node[NODE_LEN + 1];
        if (!json_is_string(k) || !json_is_string(v) || json_string_length(v) > 512 ||
            json_string_length(k) < 1 || json_string_length(k) > SIG_ID_MAX)
            continue;
        if (!(o = json_loadb(json_string_value(v), json_string_length(v), JSON_REJECT_DUPLICATES,
                             NULL)))
            continue;
        /* (the id through sig_clu_field too: same length and character checks) */
        if (sig_clu_field(o, "node", 1, NODE_LEN, node, sizeof node) && strcmp(node, c->node) &&
            sig_clu_field(o, "name", 0, SIG_NAME_MAX, m->name, sizeof m->name)) {
            json_t *w = json_pack("{s:O}", "id", k);
            if (w && sig_clu_field(w, "id", 1, SIG_ID_MAX, m->id, sizeof m->id))
                e->nmembers++;
            json_decref(w);
        }
        json_decref(o);
    }
    return 0;
}

/* A hand-over reply on this node's channel (see "Hand-over"). */
void sig_handover_on_reply(sig_cluster *c, const char *payload, size_t len)
{
    char room[SIG_ROOM_MAX + 1], id[SIG_ID_MAX + 1], name[SIG_NAME_MAX + 1] = "", ev[8];
    json_t *o, *q, *okv;
    uint64_t rq;
    int i;
    sig_ho_pending h;
    sig_cev *e;
    size_t bytes = 0, qn;

    /* the queue, plus the room hash XFER appends ("m") */
    size_t cap = c->ho_max_payload +
                 (size_t)atomic_load(&c->max_room) * (2 * (SIG_ID_MAX + 512) + 16);
    if (!payload || len > cap ||
        !(o = json_loadb(payload, len, JSON_REJECT_DUPLICATES, NULL))) {
        RTC_LOG(RTC_LOG_WARN, c->node, "cluster: hand-over reply dropped (%zu bytes)",
                payload ? len : 0);
        sig_clu_count_drop(c);
        return;
    }
    okv = json_object_get(o, "ok");
    if (!sig_clu_field(o, "e", 1, 5, ev, sizeof ev) || strcmp(ev, "hr") ||
        !json_u64(o, "rq", &rq) || !json_is_boolean(okv) ||
        !sig_clu_field(o, "room", 1, SIG_ROOM_MAX, room, sizeof room) ||
        !sig_clu_field(o, "id", 1, SIG_ID_MAX, id, sizeof id) ||
        (json_is_true(okv) && !sig_clu_field(o, "name", 0, SIG_NAME_MAX, name, sizeof name))) {
        json_decref(o);
        sig_clu_count_drop(c);
        return;
    }
    if ((i = hop_find(c, rq)) < 0 || c->hos[i].tail) {
        /* We gave up waiting (timeout) but the owner did hand the member
         * over: it is registered here now and nobody has its messages since
         * the request. It leaves (peer-left), which is what a timed-out
         * client saw coming: it got unauthorized and joins again. Only a
         * request of ours that timed out, and only the member we asked for:
         * a reply nobody asked for (a bug, an old node, anyone who can
         * PUBLISH) or a second one never removes anybody. */
        sig_ho_gone g;
        if (i < 0 && gone_take(c, rq, room, id, o, name, &g)) {
            sig_cluster_leave(c, g.room, g.id);
        } else {
            sig_clu_count_drop(c);
        }
        json_decref(o);
        return;
    }
    if (strcmp(c->hos[i].room, room) || strcmp(c->hos[i].id, id)) {
        /* not the member we asked for: not an answer (the owner's may still come) */
        json_decref(o);
        sig_clu_count_drop(c);
        return;
    }
    if (json_is_true(okv) && !reply_authentic(o, c->hos[i].key, rq, c->hos[i].owner, room, id,
                                              name)) {
        /* not made by a holder of the token (review xresume #10): whoever can
         * PUBLISH to Redis racing the owner, or a bug. Not an answer: the
         * owner's own reply may still come, within SIG_HO_TIMEOUT_MS. (A
         * refusal is not authenticated - the owner has no key for a wrong
         * proof - but it moves nothing: a forged one only fails this resume,
         * which a Redis writer can do anyway.) */
        RTC_LOG(RTC_LOG_WARN, id, "cluster: hand-over reply for rq %llu not authenticated by "
                "node %s: ignored", (unsigned long long)rq, c->hos[i].owner);
        json_decref(o);
        sig_clu_count_drop(c);
        return;
    }
    h = c->hos[i];
    hop_remove(c, (size_t)i);
    if (!json_is_true(okv)) {
        /* busy: the member just arrived on the owner and its tail is still
         * open; nothing moved, the client tries again (server-busy) */
        bool busy = json_is_true(json_object_get(o, "busy"));
        pthread_mutex_lock(&c->mu);
        if (!busy)
            c->st.ho_refused++;
        pthread_mutex_unlock(&c->mu);
        json_decref(o);
        gone_add(c, &h); /* (were it not the owner's answer, the owner's may still come) */
        memset(h.key, 0, sizeof h.key);
        sig_handover_push_done(c, h.rq, busy ? SIG_E_SERVER_BUSY : SIG_E_UNAUTHORIZED, h.room,
                               h.id);
        sig_clu_maybe_unsubscribe(c, h.room);
        return;
    }
    e = calloc(1, sizeof *e);
    q = json_object_get(o, "q");
    qn = json_is_array(q) ? json_array_size(q) : SIZE_MAX;
    if (e && json_is_array(q) && json_array_size(q) <= c->qmsgs &&
        (e->texts = calloc(json_array_size(q) + 1, sizeof *e->texts))) {
        for (size_t k = 0; k < json_array_size(q); k++) {
            json_t *t = json_array_get(q, k);
            /* the owner's queue obeyed the same bounds and holds only what a
             * member is sent: anything else is junk, never passed to the
             * client as it is (queued_text_ok) */
            if (!json_is_string(t) || (bytes += json_string_length(t)) > c->qbytes ||
                !queued_text_ok(json_string_value(t), json_string_length(t)) ||
                !(e->texts[e->ntexts] = strdup(json_string_value(t))))
                break;
            e->ntexts++;
        }
    }
    if (!e || !e->texts || e->ntexts != qn) {
        json_decref(o);
        sig_cev_free(e);
        sig_cluster_leave(c, room, id); /* registered here by the owner: take it out */
        gone_add(c, &h); /* (and if this was not the owner's answer, undo the one to come) */
        sig_handover_push_done(c, h.rq, SIG_E_UNAUTHORIZED, h.room, h.id);
        return;
    }
    /* the room's members on other nodes as XFER saw them (atomic with the
     * move: events after it apply live, those between the request and it
     * were kept by the lws thread, those before are in the queue) */
    if (members_of_json(c, json_object_get(o, "m"), e)) {
        /* no member list: the adoption would announce the room empty */
        json_decref(o);
        gone_add(c, &h);
        sig_cev_free(e);
        sig_cluster_leave(c, room, id);
        sig_handover_push_done(c, h.rq, SIG_E_UNAUTHORIZED, h.room, h.id);
        return;
    }
    json_decref(o);
    e->kind = SIG_CEV_HO_DONE;
    e->serial = h.rq;
    e->result = SIG_OK;
    snprintf(e->room, sizeof e->room, "%s", room);
    snprintf(e->id, sizeof e->id, "%s", id);
    snprintf(e->name, sizeof e->name, "%s", name);
    snprintf(e->node, sizeof e->node, "%s", h.owner);
    {
        /* the member is ours from here: a resync registers it here */
        int rc;
        pthread_mutex_lock(&c->mu);
        rc = sig_clu_mirror_add(c, id, room, name, h.th);
        pthread_mutex_unlock(&c->mu);
        if (rc) {
            sig_cev_free(e);
            sig_cluster_leave(c, room, id);
            sig_handover_push_done(c, h.rq, SIG_E_UNAUTHORIZED, h.room, h.id);
            return;
        }
    }
    /* Our own publishes to the member made before the lws thread adopts it
     * may still be on their way: keep passing them on until the fence it
     * publishes after adopting comes back (see "Hand-over", step 5). */
    memset(h.key, 0, sizeof h.key); /* answered: not needed any more */
    h.tail = true;
    h.deadline_ms = sig_clu_mono_ms() + HO_TAIL_MS;
    c->hos[c->nho++] = h;
    sig_clu_push_event(c, e);
}

/* A hand-over's own traffic on a room channel: our fence or our request
 * coming back, or another node's request (ours to answer if it names us). */
bool sig_handover_on_channel(sig_cluster *c, const char *room, const char *node, bool own,
                             const char *ev, json_t *o)
{
    sig_cev *e;
    uint64_t rq;
    int i;

    if (!strcmp(ev, "fence")) {
        /* ours: every publish of ours made before the adoption has been seen */
        if (own && json_u64(o, "rq", &rq) && (i = hop_find(c, rq)) >= 0 && c->hos[i].tail) {
            sig_ho_pending h = c->hos[i];
            hop_remove(c, (size_t)i);
            if ((e = calloc(1, sizeof *e))) {
                e->kind = SIG_CEV_HO_FENCE;
                e->serial = rq;
                snprintf(e->room, sizeof e->room, "%s", room);
                sig_clu_push_event(c, e);
            }
            sig_clu_maybe_unsubscribe(c, h.room);
        }
        return true;
    }
    if (strcmp(ev, "ho"))
        return false;
    if (own) {
        /* our hand-over request came back through the room's channel: from
         * here on the requested member's messages are ours to keep */
        if (json_u64(o, "rq", &rq) && (i = hop_find(c, rq)) >= 0 && !c->hos[i].tail &&
            (e = calloc(1, sizeof *e))) {
            e->kind = SIG_CEV_HO_MARK;
            e->serial = rq;
            snprintf(e->room, sizeof e->room, "%s", room);
            snprintf(e->id, sizeof e->id, "%s", c->hos[i].id);
            snprintf(e->node, sizeof e->node, "%s", c->hos[i].owner);
            sig_clu_push_event(c, e);
        }
        return true;
    }
    if (!(e = calloc(1, sizeof *e)))
        return true;
    memcpy(e->room, room, strlen(room) + 1);
    memcpy(e->node, node, strlen(node) + 1);
    if (!sig_clu_field(o, "id", 1, SIG_ID_MAX, e->id, sizeof e->id) ||
        !sig_clu_field(o, "to", 1, NODE_LEN, e->to, sizeof e->to) ||
        !sig_clu_field(o, "h", SIG_TH_LEN, SIG_TH_LEN, e->th, sizeof e->th) ||
        !sig_clu_field(o, "p", SIG_TH_LEN, SIG_TH_LEN, e->proof, sizeof e->proof) ||
        !json_u64(o, "rq", &e->serial)) {
        free(e);
        sig_clu_count_drop(c);
        return true;
    }
    if (strcmp(e->to, c->node)) { /* another node's member: not ours to answer */
        free(e);
        return true;
    }
    e->kind = SIG_CEV_HO_REQUEST;
    sig_clu_push_event(c, e);
    return true;
}

/* The asking side of a hand-over (see "Hand-over"): who holds the token's
 * member, subscribe to its room, then publish the request on the room's
 * channel. RTC_EMSG when the connection failed (the answer is sent anyway). */
int sig_handover_run_ask(sig_cluster *c, cmd *k)
{
    char rt[96], ch[SIG_ROOM_MAX + 64];
    char room[SIG_ROOM_MAX + 1], id[SIG_ID_MAX + 1], owner[NODE_LEN + 1];
    json_t *o;
    char *req, *text = NULL;
    size_t len = 0;
    sig_ho_pending h;
    int rc;

    if (c->nho >= SIG_HO_MAX) {
        sig_handover_push_done(c, k->serial, SIG_E_SERVER_BUSY, "", "");
        return 0;
    }
    snprintf(rt, sizeof rt, "%srt:%s", c->kp, k->th);
    {
        const char *argv[] = {"EVAL", LOOKUP_LUA, "1", rt, c->kp};
        if (sig_clu_call_text(c, 5, argv, &text, &len)) {
            sig_handover_push_done(c, k->serial, SIG_E_SERVER_BUSY, "", "");
            return RTC_EMSG;
        }
    }
    o = text ? json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL) : NULL;
    free(text);
    if (!o || !sig_clu_field(o, "id", 1, SIG_ID_MAX, id, sizeof id) ||
        !sig_clu_field(o, "room", 1, SIG_ROOM_MAX, room, sizeof room) ||
        !sig_clu_field(o, "node", 1, NODE_LEN, owner, sizeof owner) || !strcmp(owner, c->node)) {
        /* unknown or expired token, or its node is dead (its queue died with
         * it), or ours but gone from the hub meanwhile (it left) */
        json_decref(o);
        pthread_mutex_lock(&c->mu);
        c->st.ho_unknown++;
        pthread_mutex_unlock(&c->mu);
        sig_handover_push_done(c, k->serial, SIG_E_UNAUTHORIZED, "", "");
        return 0;
    }
    json_decref(o);
    memset(&h, 0, sizeof h);
    h.rq = k->serial;
    memcpy(h.room, room, sizeof room);
    memcpy(h.id, id, sizeof id);
    memcpy(h.owner, owner, sizeof owner);
    memcpy(h.th, k->th, sizeof h.th);
    if (k->token) /* the owner's reply is checked with it (reply_authentic) */
        sig_ho_reply_key(k->token, h.key);
    /* subscribed (and confirmed) before the request is published: every
     * message after the request in the channel's order reaches us. The hop
     * joins the table only then: the subscription dispatches what it has
     * buffered, and replies and fences reorder the table (hop_remove). */
    if ((rc = sig_clu_subscribe(c, room))) {
        sig_handover_push_done(c, k->serial, SIG_E_SERVER_BUSY, room, id);
        return rc;
    }
    h.deadline_ms = sig_clu_mono_ms() + SIG_HO_TIMEOUT_MS;
    c->hos[c->nho++] = h;
    {
        /* the proof: only the token's holder can make it (sig_handover_bound) */
        char bound[SIG_ROOM_MAX + SIG_ID_MAX + NODE_LEN + SIG_TH_LEN + 64], px[SIG_TH_LEN + 1];
        uint8_t d[RTC_SHA256_LEN];
        req = NULL;
        if (k->token && sig_handover_bound(bound, sizeof bound, c->node, k->serial, room, id,
                                           k->th)) {
            rtc_hmac_sha256(k->token, strlen(k->token), bound, strlen(bound), d);
            rtc_hex(d, sizeof d, px);
            req = sig_clu_dumps(json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:I}", "n", c->node, "e",
                                          "ho", "id", id, "to", owner, "h", k->th, "p", px, "rq",
                                          (json_int_t)k->serial));
            memset(d, 0, sizeof d);
        }
    }
    sig_clu_channel_of(c, room, ch, sizeof ch);
    {
        const char *argv[] = {"PUBLISH", ch, req ? req : ""};
        rc = req ? sig_clu_call_text(c, 3, argv, NULL, NULL) : RTC_EMSG;
    }
    free(req);
    if (rc) {
        int i = hop_find(c, k->serial);
        if (i >= 0)
            hop_remove(c, (size_t)i);
        sig_handover_push_done(c, k->serial, SIG_E_SERVER_BUSY, room, id);
        sig_clu_maybe_unsubscribe(c, room);
        return RTC_EMSG;
    }
    return 0;
}

/* The owner's side of a hand-over: one script moves the registration and
 * sends the reply (with the queue) to the asking node's channel. */
int sig_handover_append_xfer(sig_cluster *c, const cmd *k)
{
    char nm1[64], nt1[64], key[SIG_ROOM_MAX + 32], nm2[64], nt2[64], rt[96], hb2[64];
    char ch2[96], ch[SIG_ROOM_MAX + 64];
    char *v2 = sig_clu_dumps(json_pack("{s:s,s:s}", "name", k->name, "node", k->node));
    char *rv2 =
        sig_clu_dumps(json_pack("{s:s,s:s,s:s}", "id", k->id, "room", k->room, "node", k->node));
    char *ev = sig_clu_dumps(json_pack("{s:s,s:s,s:s}", "n", c->node, "e", "left", "id", k->id));
    int rc = RTC_EMSG;

    snprintf(nm1, sizeof nm1, "%snm:%s", c->kp, c->node);
    snprintf(nt1, sizeof nt1, "%snt:%s", c->kp, c->node);
    snprintf(key, sizeof key, "%sroom:%s", c->kp, k->room);
    snprintf(nm2, sizeof nm2, "%snm:%s", c->kp, k->node);
    snprintf(nt2, sizeof nt2, "%snt:%s", c->kp, k->node);
    snprintf(rt, sizeof rt, "%srt:%s", c->kp, k->th);
    snprintf(hb2, sizeof hb2, "%snode:%s", c->kp, k->node);
    snprintf(ch2, sizeof ch2, "%s%s", c->np, k->node);
    sig_clu_channel_of(c, k->room, ch, sizeof ch);
    if (v2 && rv2 && ev) {
        const char *argv[] = {"EVAL", XFER_LUA, "7", nm1, nt1, key, nm2, nt2, rt, hb2,
                              k->id, k->room, v2, k->th, rv2, ch2, k->payload, ev, ch, k->node};
        rc = sig_clu_append(c, 20, argv);
    } else {
        /* out of memory: a harmless command keeps replies and commands paired */
        const char *argv[] = {"PING"};
        rc = sig_clu_append(c, 1, argv);
    }
    free(v2);
    free(rv2);
    free(ev);
    return rc;
}

uint64_t sig_handover_next_deadline(const sig_cluster *c, uint64_t due)
{
    for (size_t i = 0; i < c->nho; i++)
        if (c->hos[i].deadline_ms < due)
            due = c->hos[i].deadline_ms;
    return due;
}

/* Hand-overs whose owner did not answer in time: unauthorized (the client
 * joins again; a reply that still comes makes the member leave, sig_handover_on_reply). */
void sig_handover_timeouts(sig_cluster *c)
{
    uint64_t now = sig_clu_mono_ms();
    for (size_t i = 0; i < c->nho;) {
        sig_ho_pending h = c->hos[i];
        if (now < h.deadline_ms) {
            i++;
            continue;
        }
        hop_remove(c, i);
        if (h.tail) { /* the fence never came back: stop passing our publishes on */
            push_ho_fence(c, h.rq);
            sig_clu_maybe_unsubscribe(c, h.room);
            continue;
        }
        RTC_LOG(RTC_LOG_WARN, h.id, "cluster: node %s did not answer a resume hand-over in %d ms",
                h.owner, SIG_HO_TIMEOUT_MS);
        pthread_mutex_lock(&c->mu);
        c->st.ho_timeout++;
        pthread_mutex_unlock(&c->mu);
        gone_add(c, &h);
        memset(h.key, 0, sizeof h.key);
        sig_handover_push_done(c, h.rq, SIG_E_UNAUTHORIZED, h.room, h.id);
        sig_clu_maybe_unsubscribe(c, h.room);
    }
}

/* The connection is gone: hand-overs asked for cannot get their reply (it
 * went to the channel we no longer read). unauthorized: the client joins
 * again; a member the owner did hand over is registered here without being
 * in the mirror, so the resync after the reconnection makes it leave. */
void sig_handover_fail_all(sig_cluster *c)
{
    while (c->nho) {
        sig_ho_pending h = c->hos[--c->nho];
        memset(&c->hos[c->nho], 0, sizeof c->hos[c->nho]);
        memset(h.key, 0, sizeof h.key);
        if (h.tail)
            push_ho_fence(c, h.rq);
        else
            sig_handover_push_done(c, h.rq, SIG_E_UNAUTHORIZED, h.room, h.id);
    }
}

/* ---- public (lws thread) ---- */

void sig_handover_token_hash(const char *token, char out[SIG_TH_LEN + 1])
{
    uint8_t d[RTC_SHA256_LEN];
    rtc_sha256(token, strlen(token), d);
    rtc_hex(d, sizeof d, out);
}

int sig_handover_ask(sig_cluster *c, uint64_t serial, const char *token)
{
    cmd *k;
    if (!atomic_load(&c->up))
        return RTC_EUNSUP;
    if (!(k = calloc(1, sizeof *k)))
        return -ENOMEM;
    k->kind = CMD_HO;
    k->serial = serial;
    sig_handover_token_hash(token, k->th); /* the token itself never leaves this process */
    if (!(k->token = strdup(token))) {
        free(k);
        return -ENOMEM;
    }
    return sig_clu_submit(c, k, false);
}

static void reply(sig_cluster *c, const sig_cev *req, bool ok, bool busy,
                  const uint8_t key[SIG_HO_KEY_LEN], const char *name, char **texts, size_t n)
{
    cmd *k = calloc(1, sizeof *k);
    json_t *q = ok ? json_array() : NULL;
    bool taken = ok; /* out of our hub: handed over, or it leaves (never both, never neither) */
    char mac[SIG_HO_MAC_LEN + 1] = "";
    /* the asking node acts on an "ok" only with this MAC (review xresume #10:
     * nobody without the token can hand its client a queue) */
    if (ok && sig_ho_reply_mac(key, req->serial, c->node, req->room, req->id, name ? name : "",
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
            sig_cluster_leave(c, req->room, req->id);
        return; /* the asking node times out */
    }
    snprintf(k->room, sizeof k->room, "%s", req->room);
    snprintf(k->id, sizeof k->id, "%s", req->id);
    snprintf(k->node, sizeof k->node, "%s", req->node);
    memcpy(k->th, req->th, sizeof k->th);
    if (ok && q) {
        snprintf(k->name, sizeof k->name, "%s", name ? name : "");
        k->kind = CMD_XFER;
        k->payload = sig_clu_dumps(json_pack("{s:s,s:s,s:I,s:b,s:s,s:s,s:s,s:s,s:o}", "n", c->node,
                                             "e", "hr", "rq", (json_int_t)req->serial, "ok", 1,
                                             "id", req->id, "room", req->room, "name", k->name,
                                             "a", mac, "q", q));
        q = NULL;
        if (k->payload && k->payload[0]) /* XFER_LUA appends ,"m":[...]} */
            k->payload[strlen(k->payload) - 1] = '\0';
        /* it leaves the mirror (without a leave: it did not leave) when
         * XFER has run (sig_cluster.c run_queue): a resync meanwhile keeps it
         * registered here, where XFER expects it (review xresume #5) */
    } else {
        /* (a member taken out of the hub whose reply cannot be built would
         * be lost silently: it leaves instead) */
        if (taken)
            sig_cluster_leave(c, req->room, req->id);
        k->kind = CMD_PUB;
        snprintf(k->chan, sizeof k->chan, "%s%s", c->np, req->node);
        k->payload = sig_clu_dumps(json_pack("{s:s,s:s,s:I,s:b,s:b,s:s,s:s}", "n", c->node, "e",
                                             "hr", "rq", (json_int_t)req->serial, "ok", 0, "busy",
                                             busy, "id", req->id, "room", req->room));
    }
    json_decref(q);
    if (!k->payload) {
        if (k->kind == CMD_XFER)
            sig_cluster_leave(c, req->room, req->id);
        sig_clu_cmd_free(k);
        return;
    }
    sig_clu_submit(c, k, true);
}

void sig_handover_reply(sig_cluster *c, const sig_cev *req, bool ok,
                        const uint8_t key[SIG_HO_KEY_LEN], const char *name, char **texts,
                        size_t n)
{
    reply(c, req, ok, false, key, name, texts, n);
}

void sig_handover_reply_busy(sig_cluster *c, const sig_cev *req)
{
    reply(c, req, false, true, NULL, NULL, NULL, 0);
}

void sig_handover_fence(sig_cluster *c, const char *room, uint64_t serial)
{
    cmd *k = calloc(1, sizeof *k);
    if (!k)
        return; /* the Redis thread stops waiting for it after HO_TAIL_MS */
    k->kind = CMD_PUB;
    snprintf(k->room, sizeof k->room, "%s", room);
    k->payload = sig_clu_dumps(json_pack("{s:s,s:s,s:I}", "n", c->node, "e", "fence", "rq",
                                 (json_int_t)serial));
    if (!k->payload) {
        sig_clu_cmd_free(k);
        return;
    }
    sig_clu_submit(c, k, true);
}

void sig_handover_token_ttl(sig_cluster *c, const char *resume, uint32_t secs)
{
    cmd *k;
    if (!resume || !atomic_load(&c->up) || !(k = calloc(1, sizeof *k)))
        return; /* a safety net only: the member's leave deletes the entry */
    k->kind = CMD_TTL;
    k->secs = secs;
    sig_handover_token_hash(resume, k->th);
    /* forced like the hand-over's other commands: a dropped PERSIST would let
     * the lookup entry of an attached member expire (tiny, one per member) */
    sig_clu_submit(c, k, true);
}

bool sig_handover_bound(char *out, size_t cap, const char *node, uint64_t rq, const char *room,
                        const char *id, const char *th)
{
    int n = snprintf(out, cap, "tsunagu-ho|%s|%llu|%s|%s|%s", node, (unsigned long long)rq, room,
                     id, th);
    return n > 0 && (size_t)n < cap;
}

bool sig_handover_fresh(const sig_cluster *c, const char *node, uint64_t rq)
{
    for (size_t i = 0; i < SIG_HO_MAX; i++)
        if (c->seen[i].used && !strcmp(c->seen[i].node, node))
            return rq > c->seen[i].rq;
    return true;
}

void sig_handover_served(sig_cluster *c, const char *node, uint64_t rq)
{
    size_t k = 0;
    for (size_t i = 0; i < SIG_HO_MAX; i++) {
        if (c->seen[i].used && !strcmp(c->seen[i].node, node)) {
            k = i;
            break;
        }
        if (c->seen[i].used < c->seen[k].used) /* a free slot (0), or the least recent */
            k = i;
    }
    snprintf(c->seen[k].node, sizeof c->seen[k].node, "%s", node);
    c->seen[k].rq = rq;
    c->seen[k].used = ++c->seen_tick;
}
