/* sig_hoclaim.c - taking over the member of an owner that does not answer
 * (crashed), for a client that said what it processed (resume "last"):
 * docs/cluster.md "A node's crash". Redis thread; called by sig_handover.c's
 * tick when a hand-over request of ours reaches its deadline.
 *
 * Why in order and once (member B of room R, its dead owner O, this node N):
 * the script below runs atomically at instant c. It moves B's registration
 * from O to N only if `tsu:rt:` and the room hash still name O (a reap, a
 * leave, or O's own late XFER, whichever runs first, wins), and only if B's
 * stream reaches `last`: O writes a message to the stream (pipelined) and
 * to the client independently, so a client may have processed numbers the
 * stream never got; the newest room-stream id in the stream (x0, below)
 * would then be older than what the client has, and (b) would give it
 * messages again under new numbers. Refused then (unauthorized: the client
 * joins again): nothing twice. It returns
 *  (a) B's stream after `last`: what O numbered for B and the client did
 *      not process, in O's order, with O's numbers;
 *  (b) the room stream after x0, the room-stream id of B's newest stream
 *      entry that came from there: O had taken everything up to x0 into
 *      B's queue (it reads the room's channel in order), and nothing after
 *      it (its numbering stopped there). Kept: signals to B and broadcasts
 *      not from B, not published by O (O's own reached B locally, numbered
 *      in (a), or died with O);
 *  (c) xc, where (b) ends.
 * We then publish the reply for our request on our own channel, as O would
 * have: the channel order puts it after everything published before it, so
 * the lws thread's copies kept since the request are exactly those read
 * before it; of those, the ones from the room stream up to xc are in (b)
 * (dropped there by their ids), the rest came after c and follow. Then the
 * usual tail and fence (sig_handover.c, step 5). Not covered: joins and
 * leaves between O's death and the request (not in the room stream), and
 * what O's own members sent B that O had not numbered. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rtc_log.h"
#include "sig_chan.h"
#include "sig_handover_int.h"
#include "sig_homac.h"

/* KEYS: rt, room hash, B's stream, the room stream. ARGV: N, B, R, O, last,
 * key prefix, max entries of (b). Returns 0, or {1, name, (a) as seq, text
 * pairs, (b) as id, message pairs, top of the room stream, the room hash}. */
static const char LUA_CLAIM[] =
    "local N, B, R, O = ARGV[1], ARGV[2], ARGV[3], ARGV[4]\n"
    "local v = redis.call('GET', KEYS[1])\n"
    "if not v then return 0 end\n"
    "local d = cjson.decode(v)\n"
    "if d.id ~= B or d.room ~= R or d.node ~= O then return 0 end\n"
    "local mv = redis.call('HGET', KEYS[2], B)\n"
    "if not mv then return 0 end\n"
    "local md = cjson.decode(mv)\n"
    "if md.node ~= O then return 0 end\n"
    "local last, a, x0, top = tonumber(ARGV[5]), {}, nil, 0\n"
    "for _, e in ipairs(redis.call('XRANGE', KEYS[3], '-', '+')) do\n"
    "  local f, m, x = e[2], nil, nil\n"
    "  for i = 1, #f, 2 do\n"
    "    if f[i] == 'm' then m = f[i + 1] elseif f[i] == 'x' then x = f[i + 1] end\n"
    "  end\n"
    "  if x then x0 = x end\n"
    "  top = tonumber(string.sub(e[1], 3))\n"
    "  if m and tonumber(string.sub(e[1], 3)) > last then\n"
    "    a[#a + 1] = string.sub(e[1], 3)\n"
    "    a[#a + 1] = m\n"
    "  end\n"
    "end\n"
    "if top < last then return 0 end\n"
    "local p = ARGV[6]\n"
    "if redis.call('HDEL', p .. 'nm:' .. O, B) == 0 then return 0 end\n"
    "local th = redis.call('HGET', p .. 'nt:' .. O, B)\n"
    "redis.call('HDEL', p .. 'nt:' .. O, B)\n"
    "redis.call('HSET', p .. 'nm:' .. N, B, R)\n"
    "if th then redis.call('HSET', p .. 'nt:' .. N, B, th) end\n"
    "md.node = N\n"
    "redis.call('HSET', KEYS[2], B, cjson.encode(md))\n"
    "d.node = N\n"
    "redis.call('SET', KEYS[1], cjson.encode(d))\n"
    "local b = {}\n"
    "if x0 then\n"
    "  for _, e in ipairs(redis.call('XRANGE', KEYS[4], '(' .. x0, '+', 'COUNT', ARGV[7])) do\n"
    "    b[#b + 1] = e[1]\n"
    "    b[#b + 1] = e[2][2]\n"
    "  end\n"
    "end\n"
    "local xc = redis.call('XREVRANGE', KEYS[4], '+', '-', 'COUNT', 1)[1]\n"
    "return {1, md.name or '', a, b, xc and xc[1] or '', redis.call('HGETALL', KEYS[2])}\n";

static bool is_str(const sig_redis_reply *r) { return r && r->type == SIG_RR_STRING; }

/* One room-stream message (b) as what B gets, or NULL when it is not B's. */
static char *room_text(const char *m, size_t len, const char *b, const char *owner)
{
    json_t *o = json_loadb(m, len, JSON_REJECT_DUPLICATES, NULL);
    char ev[8], node[SIG_NODE_LEN + 1], from[SIG_ID_MAX + 1], to[SIG_ID_MAX + 1];
    json_t *data = json_object_get(o, "data");
    char *text = NULL;
    if (o && data && sig_chan_field(o, "e", 1, 3, ev, sizeof ev) &&
        sig_chan_field(o, "n", 1, SIG_NODE_LEN, node, sizeof node) && strcmp(node, owner) &&
        sig_chan_field(o, "from", 1, SIG_ID_MAX, from, sizeof from) && strcmp(from, b)) {
        if (!strcmp(ev, "sig") && sig_chan_field(o, "to", 1, SIG_ID_MAX, to, sizeof to) &&
            !strcmp(to, b))
            text = sig_proto_forward("signal", from, data);
        else if (!strcmp(ev, "bc"))
            text = sig_proto_forward("broadcast", from, data);
    }
    json_decref(o);
    return text;
}

/* The texts of (a) (numbered again) and (b), in that order; *xc where (b)
 * ends. -1 on a malformed reply or no memory. */
static int texts_of(const sig_redis_reply *r, const sig_ho_pending *h, uint32_t maxb, char ***out,
                    size_t *n, char xc[48])
{
    const sig_redis_reply *a = r->element[2], *b = r->element[3];
    char **v = calloc(a->elements / 2 + b->elements / 2 + 1, sizeof *v);
    size_t k = 0;
    if (!v)
        return -1;
    for (size_t i = 0; i + 1 < a->elements; i += 2) {
        const sig_redis_reply *s = a->element[i], *m = a->element[i + 1];
        uint64_t seq = is_str(s) ? strtoull(s->str, NULL, 10) : 0;
        size_t cap = is_str(m) ? m->len + 32 : 0;
        if (!seq || !cap || !(v[k] = malloc(cap)) || !sig_seq_splice(m->str, m->len, seq, v[k], cap))
            goto fail;
        k++;
    }
    snprintf(xc, 48, "%s", is_str(r->element[4]) ? r->element[4]->str : "");
    for (size_t i = 0; i + 1 < b->elements; i += 2) {
        const sig_redis_reply *id = b->element[i], *m = b->element[i + 1];
        if (!is_str(id) || !is_str(m) || id->len >= 48)
            goto fail;
        if (b->elements / 2 >= maxb) /* (cut short: (b) ends at its last entry) */
            snprintf(xc, 48, "%s", id->str);
        if ((v[k] = room_text(m->str, m->len, h->id, h->owner)))
            k++;
    }
    *out = v;
    *n = k;
    return 0;
fail:
    for (size_t i = 0; i <= k; i++)
        free(v[i]);
    free(v);
    return -1;
}

/* The reply O would have sent (sig_handover.c, reply()), made by us. */
static char *reply_payload(const sig_handover *hv, const sig_ho_pending *h, const char *name,
                           char **texts, size_t n, const sig_redis_reply *hash, const char *xc)
{
    char mac[SIG_HO_MAC_LEN + 1];
    json_t *q = json_array(), *m = json_array();
    char *out = NULL;
    if (!q || !m ||
        sig_ho_reply_mac(h->key, h->rq, h->owner, h->room, h->id, name,
                         (const char *const *)texts, n, mac))
        goto out;
    for (size_t i = 0; i < n; i++)
        if (json_array_append_new(q, json_string(texts[i])))
            goto out;
    for (size_t i = 0; i < hash->elements; i++)
        if (!is_str(hash->element[i]) ||
            json_array_append_new(m, json_stringn(hash->element[i]->str, hash->element[i]->len)))
            goto out;
    out = sig_chan_dumps(json_pack("{s:s,s:s,s:I,s:b,s:s,s:s,s:s,s:s,s:O,s:O,s:s}", "n",
                                   h->owner, "e", "hr", "rq", (json_int_t)h->rq, "ok", 1, "id",
                                   h->id, "room", h->room, "name", name, "a", mac, "q", q, "m", m,
                                   "xc", xc));
out:
    json_decref(q);
    json_decref(m);
    return out;
}

int sig_ho_claim(sig_handover *hv, const sig_ho_pending *h)
{
    const char *kp = sig_cluster_key_prefix(hv->c);
    char rt[96], key[SIG_ROOM_MAX + 32], mq[SIG_ID_MAX + 32], st[SIG_ROOM_MAX + 32];
    char last[24], maxb[16], ch[96], xc[48] = "", name[SIG_NAME_MAX + 1];
    char **texts = NULL, *payload = NULL;
    size_t n = 0;
    sig_redis_reply *r;
    int rc = -1;

    snprintf(rt, sizeof rt, "%srt:%s", kp, h->th);
    snprintf(key, sizeof key, "%sroom:%s", kp, h->room);
    snprintf(mq, sizeof mq, "%smq:%s", kp, h->id);
    snprintf(st, sizeof st, "%sst:%s", kp, h->room);
    snprintf(last, sizeof last, "%" PRIu64, h->last);
    snprintf(maxb, sizeof maxb, "%" PRIu32, hv->qmsgs);
    {
        const char *argv[] = {"EVAL", LUA_CLAIM, "4", rt, key, mq, st, hv->node, h->id, h->room,
                              h->owner, last, kp, maxb};
        r = sig_cluster_command(hv->c, (int)(sizeof argv / sizeof argv[0]), argv);
    }
    if (!r || r->type != SIG_RR_ARRAY || r->elements != 6) {
        RTC_LOG(RTC_LOG_INFO, h->id, "cluster: node %s silent; member not claimed (%s)",
                h->owner, r && r->type == SIG_RR_INTEGER ? "it moved or left" : "no answer");
        sig_redis_reply_free(r);
        return -1;
    }
    /* registered here from now on: whatever fails below, it leaves */
    if (r->element[2]->type != SIG_RR_ARRAY || r->element[3]->type != SIG_RR_ARRAY ||
        r->element[5]->type != SIG_RR_ARRAY || !is_str(r->element[1]) ||
        texts_of(r, h, hv->qmsgs, &texts, &n, xc))
        goto out;
    snprintf(name, sizeof name, "%s", r->element[1]->str);
    if (!(payload = reply_payload(hv, h, name, texts, n, r->element[5], xc)))
        goto out;
    sig_cluster_node_channel(hv->c, hv->node, ch, sizeof ch);
    {
        const char *argv[] = {"PUBLISH", ch, payload};
        sig_redis_reply *p = sig_cluster_command(hv->c, 3, argv);
        rc = p ? 0 : -1;
        sig_redis_reply_free(p);
    }
    RTC_LOG(RTC_LOG_INFO, h->id, "cluster: node %s silent for %d ms: member claimed with %zu "
            "messages (after seq %" PRIu64 ")", h->owner, SIG_HO_TIMEOUT_MS, n, h->last);
out:
    if (rc)
        sig_cluster_leave(hv->c, h->room, h->id); /* (a registration nobody has) */
    for (size_t i = 0; texts && i < n; i++)
        free(texts[i]);
    free(texts);
    free(payload);
    sig_redis_reply_free(r);
    return rc;
}
