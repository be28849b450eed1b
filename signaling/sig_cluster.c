/* sig_cluster.c - the Redis side of cluster mode (see sig_cluster.h and
 * docs/cluster.md). The only file that includes hiredis.
 *
 * Data model (standalone Redis; keys built inside scripts, so not Redis
 * Cluster):
 *   tsu:nodes            set of registered node ids
 *   tsu:node:NODE        heartbeat, SET ... EX node-ttl every second
 *   tsu:room:ROOM        hash member id -> {"name":..,"node":..}
 *   tsu:nm:NODE          hash member id -> room, the node's members (for cleanup)
 *   tsu:nt:NODE          hash member id -> SHA-256 of its resume token (hex)
 *   tsu:rt:HASH          {"id","room","node"}: who holds the member of that resume
 *                        token (never the token itself); expires resume-seconds
 *                        + 5 s after the member detached, deleted when it leaves
 *   tsu:DB:nd:NODE       pub/sub channel of one node: hand-over replies
 *   tsu:DB:ch:ROOM       pub/sub channel of the room (channels ignore SELECT,
 *                        so the database number is part of the name)
 * Channel messages are JSON objects {"n":ORIGIN_NODE,"e":EVENT,...} with
 * EVENT join (id, name), left (id), sig (from, to, data), bc (from, data).
 * Every change of a room hash and its announcement happen in one Lua script,
 * so they are atomic, and the join script checks the room size across all
 * nodes.
 *
 * Threads: the lws thread calls the public functions (queue pushes and
 * pops under `mu`); one Redis thread owns both hiredis contexts. The thread
 * keeps no copy of room state beyond `subs` (channels it is subscribed to);
 * the mirror of local members (`members`, `rooms`, under `mu`) is what it
 * re-registers after a reconnect or when it finds the node was presumed
 * dead.
 *
 * Hand-over (resume across nodes) is sig_handover.c: the argument that it
 * delivers every message exactly once and in order is at its top. */
#include "sig_cluster_int.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "rtc_crypto.h"
#include "rtc_err.h"
#include "rtc_log.h"
#include "sig_conf.h"

#define HEARTBEAT_MS 1000
#define IO_TIMEOUT_S 2      /* any Redis call; then the connection counts as lost */
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define PIPELINE_MAX 256
#define SYNC_DELAY_MS (BACKOFF_MAX_MS + 2000) /* other nodes' reconnect: backoff + one timeout */
#define QUEUE_BUDGET 4096   /* commands per round: channel reads and heartbeats are not starved */
#define EVENT_WAIT_MS 1000  /* a full incoming queue blocks the thread this long, then drops */
#define VALUE_MAX 512       /* a room hash value {"name","node"} */

/* ---- small string-keyed hash (mirror of local members, rooms, subscriptions) ---- */

static uint32_t hkey(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h % HBUCKETS;
}

static hent **hslot(htab *t, const char *key)
{
    hent **pp = &t->b[hkey(key)];
    while (*pp && strcmp((*pp)->key, key))
        pp = &(*pp)->next;
    return pp;
}

static hent *hget(htab *t, const char *key) { return *hslot(t, key); }

static hent *hadd(htab *t, const char *key)
{
    hent **pp = hslot(t, key), *e;
    size_t len = strlen(key);
    if (*pp)
        return *pp;
    if (!(e = calloc(1, sizeof *e + len + 1)))
        return NULL;
    memcpy(e->key, key, len + 1);
    *pp = e;
    t->n++;
    return e;
}

static void hdel(htab *t, const char *key)
{
    hent **pp = hslot(t, key), *e = *pp;
    if (!e)
        return;
    *pp = e->next;
    t->n--;
    free(e->room);
    free(e->name);
    free(e->th);
    free(e);
}

static void hclear(htab *t)
{
    for (size_t i = 0; i < HBUCKETS; i++)
        while (t->b[i])
            hdel(t, t->b[i]->key);
}

/* KEYS: room hash, nm, nt, rt:HASH. ARGV: id, value, max, channel, event,
 * room, token hash, rt value. */
static const char JOIN_LUA[] =
    "if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then\n"
    "  if redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[3]) then return {0} end\n"
    "  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])\n"
    "  redis.call('PUBLISH', ARGV[4], ARGV[5])\n"
    "end\n"
    "redis.call('HSET', KEYS[2], ARGV[1], ARGV[6])\n"
    "redis.call('HSET', KEYS[3], ARGV[1], ARGV[7])\n"
    "redis.call('SET', KEYS[4], ARGV[8])\n"
    "return {1, redis.call('HGETALL', KEYS[1])}\n";

/* KEYS: room hash, nm, nt. ARGV: id, channel, event, key prefix, room.
 * Only a member this node holds (nm says so) is taken out: a leave from
 * here never removes another node's member. */
static const char LEAVE_LUA[] =
    "if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[5] then return 0 end\n"
    "if redis.call('HDEL', KEYS[1], ARGV[1]) == 1 then\n"
    "  redis.call('PUBLISH', ARGV[2], ARGV[3])\n"
    "end\n"
    "redis.call('HDEL', KEYS[2], ARGV[1])\n"
    "local th = redis.call('HGET', KEYS[3], ARGV[1])\n"
    "if th then\n"
    "  redis.call('DEL', ARGV[4] .. 'rt:' .. th)\n"
    "  redis.call('HDEL', KEYS[3], ARGV[1])\n"
    "end\n"
    "return 1\n";

static const char HEARTBEAT_LUA[] =
    "if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 then return 0 end\n"
    "redis.call('SET', KEYS[2], '1', 'EX', tonumber(ARGV[2]))\n"
    "return 1\n";

/* Clean up every registered node whose heartbeat key expired: its members
 * leave their rooms (announced with the dead node as origin). Atomic, so
 * two survivors never both announce one departure. */
static const char REAP_LUA[] =
    "local reaped = {}\n"
    "for _, n in ipairs(redis.call('SMEMBERS', KEYS[1])) do\n"
    "  if redis.call('EXISTS', ARGV[1] .. 'node:' .. n) == 0 then\n"
    "    local nm = ARGV[1] .. 'nm:' .. n\n"
    "    local all = redis.call('HGETALL', nm)\n"
    "    for i = 1, #all, 2 do\n"
    "      if redis.call('HDEL', ARGV[1] .. 'room:' .. all[i + 1], all[i]) == 1 then\n"
    "        redis.call('PUBLISH', ARGV[2] .. all[i + 1],\n"
    "                   cjson.encode({n = n, e = 'left', id = all[i]}))\n"
    "      end\n"
    "    end\n"
    "    redis.call('DEL', nm)\n"
    "    local nt = ARGV[1] .. 'nt:' .. n\n"
    "    for _, th in ipairs(redis.call('HVALS', nt)) do\n"
    "      redis.call('DEL', ARGV[1] .. 'rt:' .. th)\n"
    "    end\n"
    "    redis.call('DEL', nt)\n"
    "    redis.call('SREM', KEYS[1], n)\n"
    "    reaped[#reaped + 1] = n\n"
    "  end\n"
    "end\n"
    "return reaped\n";

/* Make Redis agree with this node's members (ARGV[5..]: id, room, value,
 * token hash quadruples): register the node, drop registrations no longer
 * true (left announced), add missing ones (join announced). No room-size
 * check: these members were admitted before. KEYS[4]: nt. */
static const char RESYNC_LUA[] =
    "redis.call('SADD', KEYS[1], ARGV[1])\n"
    "redis.call('SET', KEYS[2], '1', 'EX', tonumber(ARGV[2]))\n"
    "local want = {}\n"
    "for i = 5, #ARGV, 4 do want[ARGV[i]] = ARGV[i + 1] end\n"
    "local old = redis.call('HGETALL', KEYS[3])\n"
    "for i = 1, #old, 2 do\n"
    "  local id, room = old[i], old[i + 1]\n"
    "  if want[id] ~= room then\n"
    "    redis.call('HDEL', KEYS[3], id)\n"
    "    local th = redis.call('HGET', KEYS[4], id)\n"
    "    if th then\n"
    "      redis.call('DEL', ARGV[3] .. 'rt:' .. th)\n"
    "      redis.call('HDEL', KEYS[4], id)\n"
    "    end\n"
    "    if redis.call('HDEL', ARGV[3] .. 'room:' .. room, id) == 1 then\n"
    "      redis.call('PUBLISH', ARGV[4] .. room, cjson.encode({n = ARGV[1], e = 'left', id = id}))\n"
    "    end\n"
    "  end\n"
    "end\n"
    "for i = 5, #ARGV, 4 do\n"
    "  local id, room, v, th = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]\n"
    "  redis.call('HSET', KEYS[3], id, room)\n"
    "  redis.call('HSET', KEYS[4], id, th)\n"
    "  redis.call('SET', ARGV[3] .. 'rt:' .. th,\n"
    "             cjson.encode({id = id, room = room, node = ARGV[1]}), 'KEEPTTL')\n"
    "  if redis.call('HSET', ARGV[3] .. 'room:' .. room, id, v) == 1 then\n"
    "    redis.call('PUBLISH', ARGV[4] .. room,\n"
    "               cjson.encode({n = ARGV[1], e = 'join', id = id, name = cjson.decode(v).name}))\n"
    "  end\n"
    "end\n"
    "return 1\n";

uint64_t sig_clu_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void poke(int fd)
{
    uint64_t one = 1;
    ssize_t n = write(fd, &one, sizeof one);
    (void)n; /* EAGAIN: the counter is already non-zero, the thread wakes anyway */
}

char *sig_clu_dumps(json_t *o)
{
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return s;
}

/* ---- Redis thread: replies and helpers ---- */

static void drop_conns(sig_cluster *c)
{
    if (c->cmd)
        redisFree(c->cmd);
    if (c->sub)
        redisFree(c->sub);
    c->cmd = c->sub = NULL;
    hclear(&c->subs);
}

/* One command on the command connection, argv-style (binary safe). NULL
 * when the connection failed (the caller drops it). */
static redisReply *call(sig_cluster *c, int argc, const char **argv)
{
    size_t len[64];
    if (argc > 64)
        return NULL;
    for (int i = 0; i < argc; i++)
        len[i] = strlen(argv[i]);
    return redisCommandArgv(c->cmd, argc, argv, len);
}

static bool reply_ok(const redisReply *r) { return r && r->type != REDIS_REPLY_ERROR; }

static bool text_ok(const char *s, size_t len, size_t min, size_t max)
{
    if (len < min || len > max)
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return false;
    return true;
}

/* A string field of a parsed channel message, length-checked. */
bool sig_clu_field(json_t *o, const char *key, size_t min, size_t max, char *out, size_t cap)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_string(v) || !text_ok(json_string_value(v), json_string_length(v), min, max) ||
        json_string_length(v) >= cap)
        return false;
    memcpy(out, json_string_value(v), json_string_length(v) + 1);
    return true;
}

/* Hand one event to the lws thread. A full queue first waits (the lws
 * thread is draining it), then drops: never grows. A hand-over's own
 * events (MARK, DONE, FENCE: at most three per hand-over in flight, so
 * bounded by SIG_HO_MAX) are never dropped: losing one would lose the
 * member or its messages without anybody knowing. */
void sig_clu_push_event(sig_cluster *c, sig_cev *e)
{
    bool was_empty,
        ctl = e->kind == SIG_CEV_HO_MARK || e->kind == SIG_CEV_HO_DONE || e->kind == SIG_CEV_HO_FENCE;
    pthread_mutex_lock(&c->mu);
    if (c->en >= c->qmax && !ctl) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += EVENT_WAIT_MS / 1000;
        while (c->en >= c->qmax && !atomic_load(&c->stop))
            if (pthread_cond_timedwait(&c->space, &c->mu, &ts))
                break;
    }
    if (c->en >= c->qmax && !ctl) {
        c->st.dropped++;
        c->ev_drops++;
        c->resync = true; /* membership at least comes right again */
        pthread_mutex_unlock(&c->mu);
        sig_cev_free(e);
        return;
    }
    e->next = NULL;
    e->drops = c->ev_drops;
    was_empty = !c->ehead;
    if (c->etail)
        c->etail->next = e;
    else
        c->ehead = e;
    c->etail = e;
    c->en++;
    c->st.received++;
    pthread_mutex_unlock(&c->mu);
    if (was_empty) {
        pthread_mutex_lock(&c->wake_mu);
        if (c->wake)
            c->wake(c->ud);
        pthread_mutex_unlock(&c->wake_mu);
    }
}

void sig_clu_count_drop(sig_cluster *c)
{
    pthread_mutex_lock(&c->mu);
    c->st.dropped++;
    pthread_mutex_unlock(&c->mu);
}

/* The other nodes' members out of an HGETALL reply of a room hash. */
static int members_of(sig_cluster *c, const redisReply *r, sig_cev *e)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements % 2)
        return RTC_EMSG;
    e->members = calloc(r->elements / 2 + 1, sizeof *e->members);
    if (!e->members)
        return -ENOMEM;
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const redisReply *k = r->element[i], *v = r->element[i + 1];
        sig_cev_member *m = &e->members[e->nmembers];
        char node[NODE_LEN + 1];
        json_t *o;
        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING || v->len > VALUE_MAX ||
            !text_ok(k->str, k->len, 1, SIG_ID_MAX))
            continue;
        if (!(o = json_loadb(v->str, v->len, JSON_REJECT_DUPLICATES, NULL)))
            continue;
        if (sig_clu_field(o, "node", 1, NODE_LEN, node, sizeof node) && strcmp(node, c->node) &&
            sig_clu_field(o, "name", 0, SIG_NAME_MAX, m->name, sizeof m->name)) {
            memcpy(m->id, k->str, k->len + 1);
            e->nmembers++;
        }
        json_decref(o);
    }
    return 0;
}

/* ---- Redis I/O for sig_handover.c (which stays free of hiredis) ---- */

int sig_clu_call_text(sig_cluster *c, int argc, const char **argv, char **text, size_t *len)
{
    redisReply *r = call(c, argc, argv);
    if (!r)
        return RTC_EMSG;
    if (text) {
        *text = NULL;
        if (r->type == REDIS_REPLY_STRING && (*text = malloc(r->len + 1))) {
            memcpy(*text, r->str, r->len + 1);
            *len = r->len;
        }
    }
    freeReplyObject(r);
    return 0;
}

int sig_clu_room_members(sig_cluster *c, const char *room, sig_cev *e)
{
    char rk[SIG_ROOM_MAX + 32];
    const char *hv[] = {"HGETALL", rk};
    redisReply *r;
    int rc;
    snprintf(rk, sizeof rk, "%sroom:%s", c->kp, room);
    if (!(r = call(c, 2, hv)))
        return RTC_EMSG;
    rc = members_of(c, r, e);
    freeReplyObject(r);
    return rc;
}

int sig_clu_append(sig_cluster *c, int argc, const char **argv)
{
    size_t len[32];
    if (argc > 32)
        return RTC_EMSG;
    for (int i = 0; i < argc; i++)
        len[i] = strlen(argv[i]);
    return redisAppendCommandArgv(c->cmd, argc, argv, len) == REDIS_OK ? 0 : RTC_EMSG;
}

/* One message from a room channel (or this node's own channel) -> an event
 * for the lws thread. */
static void on_message(sig_cluster *c, const redisReply *ch, const redisReply *pl)
{
    size_t cpl = strlen(c->cp);
    char node[NODE_LEN + 1], ev[8], room[SIG_ROOM_MAX + 1];
    bool own;
    json_t *o;
    sig_cev *e;

    if (ch->type == REDIS_REPLY_STRING && ch->len == strlen(c->inbox) &&
        !memcmp(ch->str, c->inbox, ch->len)) {
        sig_handover_on_reply(c, pl->type == REDIS_REPLY_STRING ? pl->str : NULL, pl->len);
        return;
    }
    if (ch->type != REDIS_REPLY_STRING || pl->type != REDIS_REPLY_STRING || ch->len <= cpl ||
        ch->len - cpl > SIG_ROOM_MAX || memcmp(ch->str, c->cp, cpl) || pl->len > c->max_payload) {
        sig_clu_count_drop(c);
        return;
    }
    if (!(o = json_loadb(pl->str, pl->len, JSON_REJECT_DUPLICATES, NULL)) ||
        !sig_clu_field(o, "n", 1, NODE_LEN, node, sizeof node) ||
        !sig_clu_field(o, "e", 1, 5, ev, sizeof ev)) {
        json_decref(o);
        sig_clu_count_drop(c);
        return;
    }
    memcpy(room, ch->str + cpl, ch->len - cpl);
    room[ch->len - cpl] = '\0';
    own = !strcmp(node, c->node);
    if (sig_handover_on_channel(c, room, node, own, ev, o)) { /* a hand-over's own traffic */
        json_decref(o);
        return;
    }
    /* our own: already delivered locally, unless a hand-over in this room
     * needs them (signals and broadcasts for the member on its way here), or
     * a leave: our scripts also announce members this node's hub holds as
     * remote (a late or failed hand-over, an XFER to a node that died, a
     * resync), and only this echo tells our members (for a member that was
     * local here the leave is a no-op: sig_hub_remote_leave). A join echo
     * stays dropped: late, it could bring back a member that left. */
    if (own && strcmp(ev, "left") &&
        !((!strcmp(ev, "sig") || !strcmp(ev, "bc")) && sig_handover_in_room(c, room))) {
        json_decref(o);
        return;
    }
    if (!(e = calloc(1, sizeof *e))) {
        json_decref(o);
        return;
    }
    memcpy(e->room, room, strlen(room) + 1);
    memcpy(e->node, node, strlen(node) + 1);
    e->own = own;
    if (!strcmp(ev, "join") && sig_clu_field(o, "id", 1, SIG_ID_MAX, e->id, sizeof e->id) &&
        (sig_clu_field(o, "name", 0, SIG_NAME_MAX, e->name, sizeof e->name) ||
         !json_object_get(o, "name"))) {
        e->kind = SIG_CEV_PEER_JOINED;
    } else if (!strcmp(ev, "left") && sig_clu_field(o, "id", 1, SIG_ID_MAX, e->id, sizeof e->id)) {
        e->kind = SIG_CEV_PEER_LEFT;
    } else if (!strcmp(ev, "sig") && sig_clu_field(o, "from", 1, SIG_ID_MAX, e->id, sizeof e->id) &&
               sig_clu_field(o, "to", 1, SIG_ID_MAX, e->to, sizeof e->to) &&
               (e->data = json_object_get(o, "data"))) {
        e->kind = SIG_CEV_SIGNAL;
        json_incref(e->data);
    } else if (!strcmp(ev, "bc") && sig_clu_field(o, "from", 1, SIG_ID_MAX, e->id, sizeof e->id) &&
               (e->data = json_object_get(o, "data"))) {
        e->kind = SIG_CEV_BROADCAST;
        json_incref(e->data);
    } else {
        json_decref(o);
        free(e);
        sig_clu_count_drop(c);
        return;
    }
    json_decref(o);
    sig_clu_push_event(c, e);
}

/* A reply read on the SUBSCRIBE connection. Sets *confirmed when it is the
 * subscribe confirmation of `want`. */
static void on_sub_reply(sig_cluster *c, redisReply *r, const char *want, bool *confirmed)
{
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
        r->element[0]->type == REDIS_REPLY_STRING) {
        const char *kind = r->element[0]->str;
        if (!strcmp(kind, "message"))
            on_message(c, r->element[1], r->element[2]);
        else if (!strcmp(kind, "subscribe") && want && r->element[1]->type == REDIS_REPLY_STRING &&
                 !strcmp(r->element[1]->str, want))
            *confirmed = true;
    }
    freeReplyObject(r);
}

/* Dispatch the replies hiredis has already buffered for the SUBSCRIBE
 * connection (poll cannot see those). */
static int drain_reader(sig_cluster *c)
{
    void *r;
    bool dummy = false;
    for (;;) {
        if (redisGetReplyFromReader(c->sub, &r) != REDIS_OK)
            return RTC_EMSG;
        if (!r)
            return 0;
        on_sub_reply(c, r, NULL, &dummy);
    }
}

/* Read what the SUBSCRIBE connection has (poll said readable). */
static int read_sub(sig_cluster *c)
{
    if (redisBufferRead(c->sub) != REDIS_OK)
        return RTC_EMSG;
    return drain_reader(c);
}

void sig_clu_channel_of(const sig_cluster *c, const char *room, char *out, size_t cap)
{
    snprintf(out, cap, "%s%s", c->cp, room);
}

/* SUBSCRIBE and wait for the confirmation, so that everything published to
 * the room after the next command is seen. Messages of other rooms read
 * meanwhile are dispatched in order. */
static int subscribe_chan(sig_cluster *c, const char *ch)
{
    const char *argv[2] = {"SUBSCRIBE", ch};
    size_t len[2];
    bool confirmed = false;
    uint64_t deadline = sig_clu_mono_ms() + IO_TIMEOUT_S * 1000u;

    len[0] = 9;
    len[1] = strlen(ch);
    if (redisAppendCommandArgv(c->sub, 2, argv, len) != REDIS_OK)
        return RTC_EMSG;
    while (!confirmed) {
        void *r;
        if (sig_clu_mono_ms() > deadline || redisGetReply(c->sub, &r) != REDIS_OK || !r)
            return RTC_EMSG;
        on_sub_reply(c, r, ch, &confirmed);
    }
    return drain_reader(c) ? RTC_EMSG : 0;
}

int sig_clu_subscribe(sig_cluster *c, const char *room)
{
    char ch[SIG_ROOM_MAX + 64];
    int rc;
    if (hget(&c->subs, room))
        return 0;
    sig_clu_channel_of(c, room, ch, sizeof ch);
    if ((rc = subscribe_chan(c, ch)))
        return rc;
    return hadd(&c->subs, room) ? 0 : -ENOMEM;
}

/* Leave the room's channel once no local member is in the room. */
int sig_clu_maybe_unsubscribe(sig_cluster *c, const char *room)
{
    char ch[SIG_ROOM_MAX + 64];
    const char *argv[2] = {"UNSUBSCRIBE", ch};
    size_t len[2];
    bool used;
    pthread_mutex_lock(&c->mu);
    used = hget(&c->rooms, room) != NULL;
    pthread_mutex_unlock(&c->mu);
    used = used || sig_handover_in_room(c, room); /* a hand-over waits for its messages */
    if (used || !hget(&c->subs, room))
        return 0;
    sig_clu_channel_of(c, room, ch, sizeof ch);
    len[0] = 11;
    len[1] = strlen(ch);
    hdel(&c->subs, room);
    /* the confirmation is read (and ignored) with the channel traffic */
    if (redisAppendCommandArgv(c->sub, 2, argv, len) != REDIS_OK)
        return RTC_EMSG;
    {
        int done = 0;
        while (!done)
            if (redisBufferWrite(c->sub, &done) != REDIS_OK)
                return RTC_EMSG;
    }
    return 0;
}

/* ---- mirror of local members (under mu) ---- */

int sig_clu_mirror_add(sig_cluster *c, const char *id, const char *room, const char *name,
                      const char *th)
{
    hent *m, *r;
    if (hget(&c->members, id))
        return RTC_EEXIST;
    if (!(r = hadd(&c->rooms, room)))
        return -ENOMEM;
    if (!(m = hadd(&c->members, id)) || !(m->room = strdup(room)) || !(m->name = strdup(name)) ||
        !(m->th = strdup(th))) {
        if (m)
            hdel(&c->members, id);
        if (r->n == 0)
            hdel(&c->rooms, room);
        return -ENOMEM;
    }
    r->n++;
    return 0;
}

void sig_clu_mirror_del(sig_cluster *c, const char *id)
{
    hent *m = hget(&c->members, id), *r;
    if (!m)
        return;
    if ((r = hget(&c->rooms, m->room)) && --r->n == 0)
        hdel(&c->rooms, m->room);
    hdel(&c->members, id);
}

/* ---- commands ---- */

static char *member_value(const sig_cluster *c, const char *name)
{
    return sig_clu_dumps(json_pack("{s:s,s:s}", "name", name, "node", c->node));
}

static void join_answer(sig_cluster *c, const cmd *k, sig_code rc, const redisReply *all)
{
    sig_cev *e = calloc(1, sizeof *e);
    if (rc != SIG_OK) {
        pthread_mutex_lock(&c->mu);
        sig_clu_mirror_del(c, k->id);
        pthread_mutex_unlock(&c->mu);
    }
    if (!e)
        return;
    e->kind = SIG_CEV_JOINED;
    e->serial = k->serial;
    e->result = rc;
    snprintf(e->room, sizeof e->room, "%s", k->room);
    snprintf(e->id, sizeof e->id, "%s", k->id);
    if (rc == SIG_OK && members_of(c, all, e)) {
        e->result = SIG_E_SERVER_BUSY;
        pthread_mutex_lock(&c->mu);
        sig_clu_mirror_del(c, k->id);
        c->resync = true; /* it is registered in Redis: take it out again */
        pthread_mutex_unlock(&c->mu);
    }
    sig_clu_push_event(c, e);
}

/* Returns RTC_EMSG when the connection failed (the answer is sent anyway). */
static int run_join(sig_cluster *c, cmd *k)
{
    char key[SIG_ROOM_MAX + 32], nm[64], nt[64], rt[96], ch[SIG_ROOM_MAX + 64], max[16];
    char *value = member_value(c, k->name);
    char *ev = sig_clu_dumps(json_pack("{s:s,s:s,s:s,s:s}", "n", c->node, "e", "join", "id", k->id,
                               "name", k->name));
    char *rv =
        sig_clu_dumps(json_pack("{s:s,s:s,s:s}", "id", k->id, "room", k->room, "node", c->node));
    redisReply *r = NULL;
    int rc = 0;

    snprintf(key, sizeof key, "%sroom:%s", c->kp, k->room);
    snprintf(nm, sizeof nm, "%snm:%s", c->kp, c->node);
    snprintf(nt, sizeof nt, "%snt:%s", c->kp, c->node);
    snprintf(rt, sizeof rt, "%srt:%s", c->kp, k->th);
    sig_clu_channel_of(c, k->room, ch, sizeof ch);
    snprintf(max, sizeof max, "%u", (unsigned)atomic_load(&c->max_room));
    if (!value || !ev || !rv) {
        join_answer(c, k, SIG_E_SERVER_BUSY, NULL);
        goto out;
    }
    if ((rc = sig_clu_subscribe(c, k->room))) {
        join_answer(c, k, SIG_E_SERVER_BUSY, NULL);
        goto out;
    }
    {
        const char *argv[] = {"EVAL", JOIN_LUA, "4", key, nm, nt, rt, k->id, value, max, ch, ev,
                              k->room, k->th, rv};
        r = call(c, 15, argv);
    }
    if (!r) {
        rc = RTC_EMSG;
        join_answer(c, k, SIG_E_SERVER_BUSY, NULL);
    } else if (r->type == REDIS_REPLY_ARRAY && r->elements >= 1 &&
               r->element[0]->type == REDIS_REPLY_INTEGER && r->element[0]->integer == 0) {
        join_answer(c, k, SIG_E_ROOM_FULL, NULL);
        rc = sig_clu_maybe_unsubscribe(c, k->room);
    } else if (r->type == REDIS_REPLY_ARRAY && r->elements == 2) {
        join_answer(c, k, SIG_OK, r->element[1]);
    } else {
        RTC_LOG(RTC_LOG_ERROR, c->node, "redis: join script failed: %s",
                r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
        join_answer(c, k, SIG_E_SERVER_BUSY, NULL);
        rc = sig_clu_maybe_unsubscribe(c, k->room);
    }
out:
    if (r)
        freeReplyObject(r);
    free(value);
    free(ev);
    free(rv);
    return rc;
}

/* Append one LEAVE, PUB, XFER or TTL to the pipeline. */
static int append_cmd(sig_cluster *c, const cmd *k)
{
    char key[SIG_ROOM_MAX + 32], nm[64], nt[64], ch[SIG_ROOM_MAX + 64];
    sig_clu_channel_of(c, k->room, ch, sizeof ch);
    if (k->kind == CMD_PUB) {
        const char *chan = k->chan[0] ? k->chan : ch;
        const char *argv[] = {"PUBLISH", chan, k->payload};
        size_t len[] = {7, strlen(chan), strlen(k->payload)};
        return redisAppendCommandArgv(c->cmd, 3, argv, len) == REDIS_OK ? 0 : RTC_EMSG;
    } else if (k->kind == CMD_XFER) {
        return sig_handover_append_xfer(c, k);
    } else if (k->kind == CMD_TTL) {
        char secs[16];
        const char *argv[] = {k->secs ? "EXPIRE" : "PERSIST", key, secs};
        size_t len[3];
        snprintf(key, sizeof key, "%srt:%s", c->kp, k->th);
        snprintf(secs, sizeof secs, "%u", (unsigned)k->secs);
        for (int i = 0; i < 3; i++)
            len[i] = strlen(argv[i]);
        return redisAppendCommandArgv(c->cmd, k->secs ? 3 : 2, argv, len) == REDIS_OK ? 0
                                                                                     : RTC_EMSG;
    } else {
        char *ev =
            sig_clu_dumps(json_pack("{s:s,s:s,s:s}", "n", c->node, "e", "left", "id", k->id));
        const char *argv[] = {"EVAL", LEAVE_LUA, "3", key, nm, nt, k->id, ch, ev ? ev : "", c->kp,
                              k->room};
        size_t len[11];
        int rc;
        snprintf(key, sizeof key, "%sroom:%s", c->kp, k->room);
        snprintf(nm, sizeof nm, "%snm:%s", c->kp, c->node);
        snprintf(nt, sizeof nt, "%snt:%s", c->kp, c->node);
        for (int i = 0; i < 11; i++)
            len[i] = strlen(argv[i]);
        rc = redisAppendCommandArgv(c->cmd, 11, argv, len) == REDIS_OK ? 0 : RTC_EMSG;
        free(ev);
        return rc;
    }
}

static cmd *pop_cmd(sig_cluster *c)
{
    cmd *k;
    pthread_mutex_lock(&c->mu);
    if ((k = c->qhead)) {
        c->qhead = k->next;
        if (!c->qhead)
            c->qtail = NULL;
        c->qn--;
    }
    pthread_mutex_unlock(&c->mu);
    return k;
}

void sig_clu_cmd_free(cmd *k)
{
    if (k) {
        free(k->payload);
        if (k->token)
            memset(k->token, 0, strlen(k->token));
        free(k->token);
        free(k);
    }
}

/* Everything queued, in order: joins one by one (they wait for their
 * subscription), runs of leaves and publishes pipelined. RTC_EMSG when the
 * connection failed; commands not run are then answered (joins) or dropped
 * (publishes; leaves are covered by the mirror and the resync). */
static int run_queue(sig_cluster *c, unsigned budget)
{
    cmd *batch[PIPELINE_MAX];
    size_t n;
    cmd *k;

    while (budget-- > 0 && (k = pop_cmd(c))) {
        if (k->kind == CMD_JOIN || k->kind == CMD_HO) {
            int rc = k->kind == CMD_JOIN ? run_join(c, k) : sig_handover_run_ask(c, k);
            sig_clu_cmd_free(k);
            if (rc)
                return rc;
            continue;
        }
        n = 0;
        batch[n++] = k;
        /* gather a run of non-joins */
        for (;;) {
            cmd *nx;
            pthread_mutex_lock(&c->mu);
            nx = n < PIPELINE_MAX && c->qhead && c->qhead->kind != CMD_JOIN &&
                         c->qhead->kind != CMD_HO
                     ? c->qhead
                     : NULL;
            if (nx) {
                c->qhead = nx->next;
                if (!c->qhead)
                    c->qtail = NULL;
                c->qn--;
            }
            pthread_mutex_unlock(&c->mu);
            if (!nx)
                break;
            batch[n++] = nx;
            if (budget)
                budget--;
        }
        {
            int rc = 0;
            for (size_t i = 0; i < n && !rc; i++)
                rc = append_cmd(c, batch[i]);
            for (size_t i = 0; i < n && !rc; i++) {
                void *r = NULL;
                if (redisGetReply(c->cmd, &r) != REDIS_OK || !r) {
                    rc = RTC_EMSG;
                    break;
                }
                if (((redisReply *)r)->type == REDIS_REPLY_ERROR)
                    RTC_LOG(RTC_LOG_WARN, c->node, "redis: %s", ((redisReply *)r)->str);
                if (batch[i]->kind == CMD_XFER && ((redisReply *)r)->type == REDIS_REPLY_INTEGER &&
                    ((redisReply *)r)->integer == 1) {
                    pthread_mutex_lock(&c->mu);
                    c->st.ho_given++;
                    pthread_mutex_unlock(&c->mu);
                }
                freeReplyObject(r);
                if (batch[i]->kind == CMD_LEAVE || batch[i]->kind == CMD_XFER)
                    rc = sig_clu_maybe_unsubscribe(c, batch[i]->room);
            }
            if (rc) {
                pthread_mutex_lock(&c->mu);
                c->resync = true;
                pthread_mutex_unlock(&c->mu);
            }
            for (size_t i = 0; i < n; i++)
                sig_clu_cmd_free(batch[i]);
            if (rc)
                return rc;
        }
    }
    return 0;
}

/* Redis is gone: answer queued joins (server-busy), drop the rest. */
static void fail_queue(sig_cluster *c)
{
    cmd *k;
    while ((k = pop_cmd(c))) {
        if (k->kind == CMD_JOIN)
            join_answer(c, k, SIG_E_SERVER_BUSY, NULL);
        else if (k->kind == CMD_HO)
            sig_handover_push_done(c, k->serial, SIG_E_SERVER_BUSY, "", "");
        sig_clu_cmd_free(k);
    }
}

/* ---- node registration, heartbeat, reaping, resync ---- */

static int heartbeat(sig_cluster *c, bool *registered)
{
    char nodes[32], key[64], ttl[16];
    redisReply *r;
    snprintf(nodes, sizeof nodes, "%snodes", c->kp);
    snprintf(key, sizeof key, "%snode:%s", c->kp, c->node);
    snprintf(ttl, sizeof ttl, "%u", c->ttl_s);
    {
        const char *argv[] = {"EVAL", HEARTBEAT_LUA, "2", nodes, key, c->node, ttl};
        r = call(c, 7, argv);
    }
    if (!r)
        return RTC_EMSG;
    *registered = r->type == REDIS_REPLY_INTEGER && r->integer == 1;
    freeReplyObject(r);
    return 0;
}

static int reap(sig_cluster *c)
{
    char nodes[32];
    redisReply *r;
    snprintf(nodes, sizeof nodes, "%snodes", c->kp);
    {
        const char *argv[] = {"EVAL", REAP_LUA, "1", nodes, c->kp, c->cp};
        r = call(c, 6, argv);
    }
    if (!r)
        return RTC_EMSG;
    if (r->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i < r->elements; i++)
            if (r->element[i]->type == REDIS_REPLY_STRING && strcmp(r->element[i]->str, c->node))
                RTC_LOG(RTC_LOG_WARN, c->node,
                        "cluster: node %.16s stopped heartbeating; its members left their rooms",
                        r->element[i]->str);
        pthread_mutex_lock(&c->mu);
        c->st.reaped_nodes += r->elements;
        pthread_mutex_unlock(&c->mu);
    } else if (r->type == REDIS_REPLY_ERROR) {
        RTC_LOG(RTC_LOG_ERROR, c->node, "redis: reap script failed: %s", r->str);
    }
    freeReplyObject(r);
    return 0;
}

/* What resync works from: the mirror, copied under the lock into the
 * RESYNC script's arguments, and the rooms with a local member. */
typedef struct {
    const char **argv;
    size_t *len, n;
    char **owned, **rooms;
    size_t nowned, nrooms;
    char nodes[32], key[64], nm[64], nt[64], ttl[16];
} snap;

static void snap_dispose(snap *sn)
{
    for (size_t i = 0; i < sn->nowned; i++)
        free(sn->owned[i]);
    for (size_t i = 0; i < sn->nrooms; i++)
        free(sn->rooms[i]);
    free(sn->owned);
    free(sn->rooms);
    free(sn->argv);
    free(sn->len);
}

static char *own(snap *sn, char *p)
{
    if (p)
        sn->owned[sn->nowned++] = p;
    return p;
}

/* Called with mu held. */
static int snapshot(sig_cluster *c, snap *sn)
{
    size_t cap = 11 + 4 * c->members.n;
    sn->argv = calloc(cap, sizeof *sn->argv);
    sn->len = calloc(cap, sizeof *sn->len);
    sn->owned = calloc(4 * c->members.n + 1, sizeof *sn->owned);
    sn->rooms = calloc(c->rooms.n + 1, sizeof *sn->rooms);
    if (!sn->argv || !sn->len || !sn->owned || !sn->rooms)
        return -ENOMEM;
    snprintf(sn->nodes, sizeof sn->nodes, "%snodes", c->kp);
    snprintf(sn->key, sizeof sn->key, "%snode:%s", c->kp, c->node);
    snprintf(sn->nm, sizeof sn->nm, "%snm:%s", c->kp, c->node);
    snprintf(sn->nt, sizeof sn->nt, "%snt:%s", c->kp, c->node);
    snprintf(sn->ttl, sizeof sn->ttl, "%u", c->ttl_s);
    {
        const char *head[] = {"EVAL", RESYNC_LUA, "4", sn->nodes, sn->key, sn->nm, sn->nt,
                              c->node, sn->ttl, c->kp, c->cp};
        for (size_t i = 0; i < 11; i++)
            sn->argv[sn->n++] = head[i];
    }
    for (size_t i = 0; i < HBUCKETS; i++)
        for (hent *m = c->members.b[i]; m; m = m->next) {
            const char *id = own(sn, strdup(m->key)), *room = own(sn, strdup(m->room));
            const char *v = own(sn, member_value(c, m->name));
            const char *th = own(sn, strdup(m->th ? m->th : ""));
            if (!id || !room || !v || !th)
                return -ENOMEM;
            sn->argv[sn->n++] = id;
            sn->argv[sn->n++] = room;
            sn->argv[sn->n++] = v;
            sn->argv[sn->n++] = th;
        }
    for (size_t i = 0; i < HBUCKETS; i++)
        for (hent *e = c->rooms.b[i]; e; e = e->next)
            if (!(sn->rooms[sn->nrooms++] = strdup(e->key)))
                return -ENOMEM;
    for (size_t i = 0; i < sn->n; i++)
        sn->len[i] = strlen(sn->argv[i]);
    return 0;
}

/* Channels first: nothing published after the registration snapshot is missed. */
static int resync_subs(sig_cluster *c, const snap *sn)
{
    int rc;
    for (size_t i = 0; i < HBUCKETS; i++)
        for (hent *e = c->subs.b[i], *nx; e; e = nx) {
            bool keep = false;
            nx = e->next;
            for (size_t j = 0; j < sn->nrooms && !keep; j++)
                keep = sn->rooms[j] && !strcmp(sn->rooms[j], e->key);
            if (!keep && (rc = sig_clu_maybe_unsubscribe(c, e->key)))
                return rc;
        }
    for (size_t j = 0; j < sn->nrooms; j++)
        if (sn->rooms[j] && (rc = sig_clu_subscribe(c, sn->rooms[j])))
            return rc;
    return 0;
}

/* Every listed room's members on other nodes, as SYNC events. */
static int sync_rooms(sig_cluster *c, char *const *rooms, size_t nrooms)
{
    for (size_t j = 0; j < nrooms; j++) {
        char rk[SIG_ROOM_MAX + 32];
        const char *hv[] = {"HGETALL", rk};
        redisReply *r;
        sig_cev *e;
        snprintf(rk, sizeof rk, "%sroom:%s", c->kp, rooms[j]);
        if (!(r = call(c, 2, hv)) || r->type != REDIS_REPLY_ARRAY) {
            if (r)
                freeReplyObject(r);
            return RTC_EMSG;
        }
        if ((e = calloc(1, sizeof *e))) {
            e->kind = SIG_CEV_SYNC;
            snprintf(e->room, sizeof e->room, "%s", rooms[j]);
            if (members_of(c, r, e) == 0)
                sig_clu_push_event(c, e);
            else
                sig_cev_free(e);
        }
        freeReplyObject(r);
    }
    return 0;
}

/* The rooms with a local member now, re-read (the deferred SYNC). */
static int sync_mirror_rooms(sig_cluster *c)
{
    snap sn;
    int rc;
    memset(&sn, 0, sizeof sn);
    pthread_mutex_lock(&c->mu);
    rc = snapshot(c, &sn);
    pthread_mutex_unlock(&c->mu);
    if (!rc)
        rc = sync_rooms(c, sn.rooms, sn.nrooms);
    snap_dispose(&sn);
    return rc;
}

/* Make subscriptions and Redis's registrations match the mirror, then tell
 * the lws thread every room's members on other nodes (SYNC). After a
 * reconnection (`rooms_now` false) that last step waits SYNC_DELAY_MS: if
 * Redis lost its data, the other nodes have not re-registered their members
 * yet, and a SYNC now would announce them gone (peer-left ends a call). Joins
 * and leaves announced meanwhile still apply one by one. */
static int resync(sig_cluster *c, bool rooms_now)
{
    snap sn;
    redisReply *r;
    int rc;

    memset(&sn, 0, sizeof sn);
    pthread_mutex_lock(&c->mu);
    c->resync = false;
    rc = snapshot(c, &sn);
    pthread_mutex_unlock(&c->mu);
    if (!rc)
        rc = resync_subs(c, &sn);
    if (!rc) {
        r = redisCommandArgv(c->cmd, (int)sn.n, sn.argv, sn.len);
        if (!reply_ok(r)) {
            if (r)
                RTC_LOG(RTC_LOG_ERROR, c->node, "redis: resync script failed: %s", r->str);
            rc = RTC_EMSG;
        }
        if (r)
            freeReplyObject(r);
    }
    if (!rc && rooms_now)
        rc = sync_rooms(c, sn.rooms, sn.nrooms);
    else if (!rc)
        c->sync_at = sig_clu_mono_ms() + SYNC_DELAY_MS;
    snap_dispose(&sn);
    if (rc) {
        pthread_mutex_lock(&c->mu);
        c->resync = true;
        pthread_mutex_unlock(&c->mu);
    }
    return rc;
}

/* ---- connections ---- */

static redisContext *dial(sig_cluster *c, char *err, size_t errlen)
{
    struct timeval tv = {IO_TIMEOUT_S, 0};
    redisContext *r = c->url.path[0] ? redisConnectUnixWithTimeout(c->url.path, tv)
                                     : redisConnectWithTimeout(c->url.host, c->url.port, tv);
    redisReply *rep = NULL;
    char db[16];

    if (!r || r->err) {
        snprintf(err, errlen, "cannot connect to %s: %s", c->where, r ? r->errstr : "out of memory");
        goto fail;
    }
    if (redisSetTimeout(r, tv) != REDIS_OK || (!c->url.path[0] && redisEnableKeepAlive(r) != REDIS_OK)) {
        snprintf(err, errlen, "%s: cannot set socket options", c->where);
        goto fail;
    }
    if (c->url.pass[0]) {
        const char *a3[] = {"AUTH", c->url.user, c->url.pass};
        const char *a2[] = {"AUTH", c->url.pass};
        size_t l3[] = {4, strlen(c->url.user), strlen(c->url.pass)}, l2[] = {4, strlen(c->url.pass)};
        rep = c->url.user[0] ? redisCommandArgv(r, 3, a3, l3) : redisCommandArgv(r, 2, a2, l2);
        if (!reply_ok(rep)) {
            /* Redis's reply names no secret ("WRONGPASS invalid username-password pair") */
            snprintf(err, errlen, "%s: AUTH failed: %s", c->where, rep ? rep->str : r->errstr);
            goto fail;
        }
        freeReplyObject(rep);
        rep = NULL;
    }
    snprintf(db, sizeof db, "%d", c->url.db);
    {
        const char *a[] = {"SELECT", db};
        size_t l[] = {6, strlen(db)};
        rep = redisCommandArgv(r, 2, a, l);
        if (!reply_ok(rep)) {
            snprintf(err, errlen, "%s: SELECT %d failed: %s", c->where, c->url.db,
                     rep ? rep->str : r->errstr);
            goto fail;
        }
        freeReplyObject(rep);
    }
    return r;
fail:
    if (rep)
        freeReplyObject(rep);
    if (r)
        redisFree(r);
    return NULL;
}

static int connect_all(sig_cluster *c, char *err, size_t errlen)
{
    drop_conns(c);
    if (!(c->cmd = dial(c, err, errlen)) || !(c->sub = dial(c, err, errlen))) {
        drop_conns(c);
        return RTC_EMSG;
    }
    if (subscribe_chan(c, c->inbox)) { /* hand-over replies */
        snprintf(err, errlen, "%s: SUBSCRIBE failed", c->where);
        drop_conns(c);
        return RTC_EMSG;
    }
    if (resync(c, false)) {
        snprintf(err, errlen, "%s: registering this node failed", c->where);
        drop_conns(c);
        return RTC_EMSG;
    }
    return 0;
}

static void set_up(sig_cluster *c, bool up)
{
    bool was = atomic_exchange(&c->up, up);
    if (was == up)
        return;
    if (up) {
        RTC_LOG(RTC_LOG_INFO, c->node, "redis: connected to %s", c->where);
        pthread_mutex_lock(&c->mu);
        c->st.reconnects++;
        pthread_mutex_unlock(&c->mu);
    } else {
        RTC_LOG(RTC_LOG_ERROR, c->node,
                "redis: lost %s: new joins get server-busy until it is back", c->where);
    }
}

/* Sleep up to ms, or until the lws thread queues something or stops us. */
static void wait_wake(sig_cluster *c, int ms)
{
    struct pollfd p = {.fd = c->wakefd, .events = POLLIN};
    uint64_t v;
    if (poll(&p, 1, ms) > 0 && read(c->wakefd, &v, sizeof v) < 0)
        return;
}

/* One round while connected: channel traffic, queued commands, heartbeat. */
static int serve(sig_cluster *c, uint64_t *next_hb)
{
    struct pollfd p[2] = {{.fd = c->wakefd, .events = POLLIN}, {.fd = c->sub->fd, .events = POLLIN}};
    uint64_t now = sig_clu_mono_ms(), v, due = *next_hb;
    int timeout;
    bool again;

    due = sig_handover_next_deadline(c, due);
    timeout = due > now ? (int)(due - now) : 0;

    pthread_mutex_lock(&c->mu);
    if (c->qhead)
        timeout = 0; /* left over from the last round's budget */
    pthread_mutex_unlock(&c->mu);
    if (poll(p, 2, timeout) < 0 && errno != EINTR)
        return -errno;
    if ((p[0].revents & POLLIN) && read(c->wakefd, &v, sizeof v) < 0 && errno != EAGAIN)
        return -errno;
    if ((p[1].revents & (POLLIN | POLLHUP | POLLERR)) && read_sub(c))
        return RTC_EMSG;
    if (run_queue(c, QUEUE_BUDGET))
        return RTC_EMSG;
    sig_handover_timeouts(c);
    if (sig_clu_mono_ms() >= *next_hb) {
        bool registered = true;
        *next_hb = sig_clu_mono_ms() + HEARTBEAT_MS;
        /* Right after a (re)connection, other nodes may still be on their way
         * back (Redis stalled, every heartbeat expired): give them their
         * backoff and a heartbeat before calling them dead. */
        if (heartbeat(c, &registered) || (sig_clu_mono_ms() >= c->reap_from && reap(c)))
            return RTC_EMSG;
        if (!registered) {
            /* Presumed dead (we stalled past the TTL, or Redis lost its data):
             * the others saw our members leave; register them again. */
            RTC_LOG(RTC_LOG_WARN, c->node,
                    "cluster: this node was not registered in Redis; re-registering its members");
            pthread_mutex_lock(&c->mu);
            c->resync = true;
            pthread_mutex_unlock(&c->mu);
        }
    }
    pthread_mutex_lock(&c->mu);
    again = c->resync;
    pthread_mutex_unlock(&c->mu);
    if (again && resync(c, true))
        return RTC_EMSG;
    if (c->sync_at && sig_clu_mono_ms() >= c->sync_at) {
        c->sync_at = 0;
        if (sync_mirror_rooms(c))
            return RTC_EMSG;
    }
    return 0;
}

/* Clean exit: what is queued goes out, then the node deregisters (its
 * heartbeat key deleted and reaped at once, so members still registered
 * leave their rooms now rather than after node-ttl). */
static void shutdown_node(sig_cluster *c)
{
    char key[64];
    const char *argv[] = {"DEL", key};
    redisReply *r;
    if (run_queue(c, UINT32_MAX))
        return;
    snprintf(key, sizeof key, "%snode:%s", c->kp, c->node);
    if ((r = call(c, 2, argv)))
        freeReplyObject(r);
    reap(c);
}

static void *thread_main(void *arg)
{
    sig_cluster *c = arg;
    uint64_t next_hb = sig_clu_mono_ms() + HEARTBEAT_MS;
    int backoff = BACKOFF_MIN_MS;
    char err[512];

    while (!atomic_load(&c->stop)) {
        if (!c->cmd) {
            if (connect_all(c, err, sizeof err)) {
                RTC_LOG(RTC_LOG_DEBUG, c->node, "redis: %s; retrying in %d ms", err, backoff);
                fail_queue(c);
                wait_wake(c, backoff);
                backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
                continue;
            }
            backoff = BACKOFF_MIN_MS;
            c->reap_from = sig_clu_mono_ms() + BACKOFF_MAX_MS + 1000u * c->ttl_s;
            set_up(c, true);
            next_hb = sig_clu_mono_ms(); /* heartbeat and reap right away */
        }
        if (serve(c, &next_hb)) {
            drop_conns(c);
            sig_handover_fail_all(c);
            set_up(c, false);
            pthread_mutex_lock(&c->mu);
            c->resync = true;
            pthread_mutex_unlock(&c->mu);
            fail_queue(c);
        }
    }
    if (c->cmd)
        shutdown_node(c);
    fail_queue(c);
    sig_handover_fail_all(c);
    drop_conns(c);
    return NULL;
}

/* ---- public (lws thread) ---- */

int sig_cluster_new(const sig_cluster_params *p, sig_cluster **out, char *err, size_t errlen)
{
    sig_cluster *c = calloc(1, sizeof *c);
    uint8_t rnd[NODE_LEN / 2];
    int rc;

    *out = NULL;
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    if (sig_redis_url_parse(p->url, &c->url, err, errlen)) {
        free(c);
        return RTC_EMSG;
    }
    sig_redis_url_describe(&c->url, c->where, sizeof c->where);
    if (rtc_random(rnd, sizeof rnd)) {
        snprintf(err, errlen, "no randomness for the node id");
        rc = RTC_EMSG;
        goto out_free;
    }
    rtc_hex(rnd, sizeof rnd, c->node);
    snprintf(c->kp, sizeof c->kp, "tsu:");
    snprintf(c->cp, sizeof c->cp, "tsu:%d:ch:", c->url.db);
    snprintf(c->np, sizeof c->np, "tsu:%d:nd:", c->url.db);
    snprintf(c->inbox, sizeof c->inbox, "%s%s", c->np, c->node);
    c->qmsgs = p->queue_msgs;
    c->qbytes = p->queue_bytes;
    /* a reply carries at most the whole send queue, each message escaped
     * once more as a JSON string (at most doubling it), plus envelopes */
    c->ho_max_payload = 2 * p->queue_bytes + 16 * (size_t)p->queue_msgs + 4096;
    c->qmax = p->queue;
    c->max_payload = p->max_payload;
    c->ttl_s = p->node_ttl_s;
    atomic_store(&c->max_room, p->max_room_size);
    c->wake = p->wake;
    c->ud = p->ud;
    pthread_mutex_init(&c->mu, NULL);
    pthread_mutex_init(&c->wake_mu, NULL);
    pthread_cond_init(&c->space, NULL);
    if ((c->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
        rc = -errno;
        snprintf(err, errlen, "eventfd: %s", strerror(errno));
        goto out_sync;
    }
    /* Start-up needs Redis: a node that cannot reach it would only refuse
     * every join (documented; systemd restarts it). */
    if ((rc = connect_all(c, err, errlen)))
        goto out_fd;
    atomic_store(&c->up, 1);
    if ((rc = pthread_create(&c->th, NULL, thread_main, c))) {
        snprintf(err, errlen, "pthread_create: %s", strerror(rc));
        rc = -rc;
        goto out_conns;
    }
    c->started = true;
    RTC_LOG(RTC_LOG_INFO, c->node, "cluster mode: node %s, redis %s, node-ttl %us", c->node,
            c->where, c->ttl_s);
    *out = c;
    return 0;
out_conns:
    drop_conns(c);
out_fd:
    close(c->wakefd);
out_sync:
    pthread_cond_destroy(&c->space);
    pthread_mutex_destroy(&c->wake_mu);
    pthread_mutex_destroy(&c->mu);
out_free:
    memset(&c->url, 0, sizeof c->url);
    free(c);
    return rc;
}

void sig_cluster_mute(sig_cluster *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->wake_mu);
    c->wake = NULL;
    pthread_mutex_unlock(&c->wake_mu);
}

void sig_cluster_free(sig_cluster *c)
{
    sig_cev *e;
    if (!c)
        return;
    sig_cluster_mute(c);
    atomic_store(&c->stop, 1);
    pthread_mutex_lock(&c->mu);
    pthread_cond_broadcast(&c->space);
    pthread_mutex_unlock(&c->mu);
    poke(c->wakefd);
    if (c->started)
        pthread_join(c->th, NULL);
    while ((e = sig_cluster_poll(c)))
        sig_cev_free(e);
    hclear(&c->members);
    hclear(&c->rooms);
    hclear(&c->subs);
    close(c->wakefd);
    pthread_cond_destroy(&c->space);
    pthread_mutex_destroy(&c->wake_mu);
    pthread_mutex_destroy(&c->mu);
    memset(&c->url, 0, sizeof c->url);
    free(c);
}

const char *sig_cluster_node(const sig_cluster *c) { return c->node; }
bool sig_cluster_up(sig_cluster *c) { return atomic_load(&c->up); }
void sig_cluster_set_max_room_size(sig_cluster *c, uint32_t n) { atomic_store(&c->max_room, n); }

static int enqueue(sig_cluster *c, cmd *k, bool force)
{
    bool was_empty;
    if (!force && c->qn >= c->qmax)
        return RTC_ELIMIT;
    k->next = NULL;
    was_empty = !c->qhead;
    if (c->qtail)
        c->qtail->next = k;
    else
        c->qhead = k;
    c->qtail = k;
    c->qn++;
    return was_empty ? 1 : 0;
}

int sig_cluster_join(sig_cluster *c, uint64_t serial, const char *room, const char *id,
                     const char *name, const char *resume)
{
    cmd *k;
    int rc;
    if (!atomic_load(&c->up))
        return RTC_EUNSUP;
    if (!(k = calloc(1, sizeof *k)))
        return -ENOMEM;
    k->kind = CMD_JOIN;
    k->serial = serial;
    snprintf(k->room, sizeof k->room, "%s", room);
    snprintf(k->id, sizeof k->id, "%s", id);
    snprintf(k->name, sizeof k->name, "%s", name ? name : "");
    sig_handover_token_hash(resume, k->th);
    pthread_mutex_lock(&c->mu);
    if (c->qn >= c->qmax) {
        rc = RTC_ELIMIT;
    } else if ((rc = sig_clu_mirror_add(c, id, room, k->name, k->th)) == 0) {
        rc = enqueue(c, k, false);
    }
    pthread_mutex_unlock(&c->mu);
    if (rc < 0) {
        free(k);
        return rc;
    }
    if (rc == 1)
        poke(c->wakefd);
    return 0;
}

void sig_cluster_leave(sig_cluster *c, const char *room, const char *id)
{
    cmd *k = calloc(1, sizeof *k);
    int rc = -1;
    pthread_mutex_lock(&c->mu);
    {
        /* the mirror's entry for id is this member only if it is in room */
        hent *m = hget(&c->members, id);
        if (m && !strcmp(m->room, room))
            sig_clu_mirror_del(c, id);
    }
    if (k && atomic_load(&c->up)) {
        k->kind = CMD_LEAVE;
        snprintf(k->room, sizeof k->room, "%s", room);
        snprintf(k->id, sizeof k->id, "%s", id);
        rc = enqueue(c, k, false);
    }
    if (rc < 0)
        c->resync = true; /* the resync takes it out of Redis instead */
    pthread_mutex_unlock(&c->mu);
    if (rc < 0)
        free(k);
    if (rc != 0)
        poke(c->wakefd);
}

int sig_cluster_publish(sig_cluster *c, const char *room, const char *to, const char *from,
                        json_t *data)
{
    cmd *k;
    json_t *o;
    int rc;
    if (!atomic_load(&c->up))
        return RTC_EUNSUP;
    o = to ? json_pack("{s:s,s:s,s:s,s:s,s:O}", "n", c->node, "e", "sig", "from", from, "to", to,
                       "data", data)
           : json_pack("{s:s,s:s,s:s,s:O}", "n", c->node, "e", "bc", "from", from, "data", data);
    if (!(k = calloc(1, sizeof *k)) || !(k->payload = sig_clu_dumps(o))) {
        free(k);
        return -ENOMEM;
    }
    k->kind = CMD_PUB;
    snprintf(k->room, sizeof k->room, "%s", room);
    pthread_mutex_lock(&c->mu);
    rc = enqueue(c, k, false);
    if (rc >= 0)
        c->st.published++;
    pthread_mutex_unlock(&c->mu);
    if (rc < 0) {
        sig_clu_cmd_free(k);
        return rc;
    }
    if (rc == 1)
        poke(c->wakefd);
    return 0;
}

/* Queue one command (force: never refused, for what must reach Redis);
 * wake the thread. 0 or RTC_ELIMIT. */
int sig_clu_submit(sig_cluster *c, cmd *k, bool force)
{
    int rc;
    pthread_mutex_lock(&c->mu);
    rc = enqueue(c, k, force);
    pthread_mutex_unlock(&c->mu);
    if (rc < 0) {
        sig_clu_cmd_free(k);
        return rc;
    }
    if (rc == 1)
        poke(c->wakefd);
    return 0;
}

sig_cev *sig_cluster_poll(sig_cluster *c)
{
    sig_cev *e;
    pthread_mutex_lock(&c->mu);
    if ((e = c->ehead)) {
        c->ehead = e->next;
        if (!c->ehead)
            c->etail = NULL;
        if (c->en-- == c->qmax)
            pthread_cond_signal(&c->space);
    }
    pthread_mutex_unlock(&c->mu);
    return e;
}

void sig_cev_free(sig_cev *e)
{
    if (!e)
        return;
    json_decref(e->data);
    free(e->members);
    for (size_t i = 0; i < e->ntexts; i++)
        free(e->texts[i]);
    free(e->texts);
    free(e);
}

void sig_cluster_get_stats(sig_cluster *c, sig_cluster_stats *st)
{
    pthread_mutex_lock(&c->mu);
    *st = c->st;
    pthread_mutex_unlock(&c->mu);
    st->up = atomic_load(&c->up);
}
