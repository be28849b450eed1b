/* sig_cluster_reg.c - this node's registration in Redis (see
 * sig_cluster_reg.h; the scripts are in sig_cluster_lua.c). */
#include "sig_cluster_reg.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rtc_err.h"
#include "rtc_log.h"
#include "sig_chan.h"
#include "sig_cluster_lua.h"

sig_redis_reply *sig_reg_command(const sig_reg *g, int argc, const char **argv)
{
    sig_redis_reply *r = NULL;
    if (sig_reg_append(g, argc, argv) || g->rops->get_reply(g->conn, &r))
        return NULL;
    return r;
}

int sig_reg_append(const sig_reg *g, int argc, const char **argv)
{
    size_t stack[64] = {0}, *len = argc <= 64 ? stack : calloc((size_t)argc, sizeof *len);
    int rc;
    if (!len)
        return RTC_EMSG;
    for (int i = 0; i < argc; i++)
        len[i] = strlen(argv[i]);
    rc = g->rops->append(g->conn, argc, argv, len);
    if (len != stack)
        free(len);
    return rc;
}

static char *member_value(const sig_reg *g, const char *name)
{
    return sig_chan_dumps(json_pack("{s:s,s:s}", "name", name, "node", g->node));
}

int sig_reg_heartbeat(const sig_reg *g, bool *registered)
{
    char nodes[32], key[64], ttl[16];
    const char *argv[] = {"EVAL", SIG_LUA_HEARTBEAT, "2", nodes, key, g->node, ttl};
    sig_redis_reply *r;
    snprintf(nodes, sizeof nodes, "%snodes", g->kp);
    snprintf(key, sizeof key, "%snode:%s", g->kp, g->node);
    snprintf(ttl, sizeof ttl, "%u", g->ttl_s);
    if (!(r = sig_reg_command(g, 7, argv)))
        return RTC_EMSG;
    *registered = r->type == SIG_RR_INTEGER && r->integer == 1;
    sig_redis_reply_free(r);
    return 0;
}

int sig_reg_reap(const sig_reg *g, uint64_t *reaped)
{
    char nodes[32];
    const char *argv[] = {"EVAL", SIG_LUA_REAP, "1", nodes, g->kp, g->cp};
    sig_redis_reply *r;
    *reaped = 0;
    snprintf(nodes, sizeof nodes, "%snodes", g->kp);
    if (!(r = sig_reg_command(g, 6, argv)))
        return RTC_EMSG;
    if (r->type == SIG_RR_ARRAY) {
        for (size_t i = 0; i < r->elements; i++)
            if (r->element[i]->type == SIG_RR_STRING && strcmp(r->element[i]->str, g->node))
                RTC_LOG(RTC_LOG_WARN, g->node,
                        "cluster: node %.16s stopped heartbeating; its members left their rooms",
                        r->element[i]->str);
        *reaped = r->elements;
    } else if (r->type == SIG_RR_ERROR) {
        RTC_LOG(RTC_LOG_ERROR, g->node, "redis: reap script failed: %s", r->str);
    }
    sig_redis_reply_free(r);
    return 0;
}

int sig_reg_register(const sig_reg *g, const sig_mirror_copy *mc)
{
    const char *const *keep = (const char *const *)mc->keep;
    size_t nkeep = mc->nkeep;
    char nodes[32], key[64], nm[64], nt[64], ttl[16], nk[16];
    const char *head[] = {"EVAL", SIG_LUA_RESYNC, "4", nodes, key, nm, nt,
                          g->node, ttl, g->kp, g->cp, nk};
    size_t n = 0, cap = 12 + nkeep + 4 * mc->n;
    const char **argv = calloc(cap, sizeof *argv);
    char **values = calloc(mc->n + 1, sizeof *values);
    sig_redis_reply *r = NULL;
    int rc = -ENOMEM;

    if (!argv || !values)
        goto out;
    snprintf(nodes, sizeof nodes, "%snodes", g->kp);
    snprintf(key, sizeof key, "%snode:%s", g->kp, g->node);
    snprintf(nm, sizeof nm, "%snm:%s", g->kp, g->node);
    snprintf(nt, sizeof nt, "%snt:%s", g->kp, g->node);
    snprintf(ttl, sizeof ttl, "%u", g->ttl_s);
    snprintf(nk, sizeof nk, "%zu", nkeep);
    for (size_t i = 0; i < 12; i++)
        argv[n++] = head[i];
    for (size_t i = 0; i < nkeep; i++) /* members on their way here (open hand-overs) */
        argv[n++] = keep[i];
    for (size_t i = 0; i < mc->n; i++) {
        if (!(values[i] = member_value(g, mc->v[i].name)))
            goto out;
        argv[n++] = mc->v[i].id;
        argv[n++] = mc->v[i].room;
        argv[n++] = values[i];
        argv[n++] = mc->v[i].th;
    }
    r = sig_reg_command(g, (int)n, argv);
    rc = r && r->type != SIG_RR_ERROR ? 0 : RTC_EMSG;
    if (r && rc)
        RTC_LOG(RTC_LOG_ERROR, g->node, "redis: resync script failed: %s", r->str);
out:
    sig_redis_reply_free(r);
    for (size_t i = 0; values && i < mc->n; i++)
        free(values[i]);
    free(values);
    free(argv);
    return rc;
}

int sig_reg_members_of(const sig_reg *g, const sig_redis_reply *r, sig_cev *e)
{
    if (r->type != SIG_RR_ARRAY || r->elements % 2)
        return RTC_EMSG;
    e->members = calloc(r->elements / 2 + 1, sizeof *e->members);
    if (!e->members)
        return -ENOMEM;
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const sig_redis_reply *k = r->element[i], *v = r->element[i + 1];
        sig_cev_member *m = &e->members[e->nmembers];
        if (k->type == SIG_RR_STRING && v->type == SIG_RR_STRING &&
            sig_chan_member(g->node, k->str, k->len, v->str, v->len, m->id, m->name))
            e->nmembers++;
    }
    return 0;
}

int sig_reg_room_members(const sig_reg *g, const char *room, sig_cev *e)
{
    char rk[SIG_ROOM_MAX + 32];
    const char *hv[] = {"HGETALL", rk};
    sig_redis_reply *r;
    int rc;
    snprintf(rk, sizeof rk, "%sroom:%s", g->kp, room);
    if (!(r = sig_reg_command(g, 2, hv)) || r->type != SIG_RR_ARRAY) {
        sig_redis_reply_free(r);
        return RTC_EMSG;
    }
    rc = sig_reg_members_of(g, r, e);
    sig_redis_reply_free(r);
    return rc ? 1 : 0; /* (a malformed hash: no event, the connection is fine) */
}

int sig_reg_join(const sig_reg *g, const char *room, const char *id, const char *name,
                 const char *th, uint32_t max_room, sig_code *result, sig_cev *e)
{
    char key[SIG_ROOM_MAX + 32], nm[64], nt[64], rt[96], ch[SIG_ROOM_MAX + 64], max[16];
    char *value = member_value(g, name);
    char *ev = sig_chan_dumps(
        json_pack("{s:s,s:s,s:s,s:s}", "n", g->node, "e", "join", "id", id, "name", name));
    char *rv = sig_chan_dumps(json_pack("{s:s,s:s,s:s}", "id", id, "room", room, "node", g->node));
    const char *argv[] = {"EVAL", SIG_LUA_JOIN, "4", key, nm, nt, rt, id, value, max, ch, ev,
                          room, th, rv};
    sig_redis_reply *r = NULL;
    int rc = 0;

    *result = SIG_E_SERVER_BUSY;
    snprintf(key, sizeof key, "%sroom:%s", g->kp, room);
    snprintf(nm, sizeof nm, "%snm:%s", g->kp, g->node);
    snprintf(nt, sizeof nt, "%snt:%s", g->kp, g->node);
    snprintf(rt, sizeof rt, "%srt:%s", g->kp, th);
    snprintf(ch, sizeof ch, "%s%s", g->cp, room);
    snprintf(max, sizeof max, "%u", (unsigned)max_room);
    if (!value || !ev || !rv)
        goto out;
    if (!(r = sig_reg_command(g, 15, argv))) {
        rc = RTC_EMSG;
    } else if (r->type == SIG_RR_ARRAY && r->elements >= 1 &&
               r->element[0]->type == SIG_RR_INTEGER && r->element[0]->integer == 0) {
        *result = SIG_E_ROOM_FULL;
    } else if (r->type == SIG_RR_ARRAY && r->elements == 2) {
        /* registered: a member list that cannot be read is still busy (the
         * caller takes the registration back out) */
        *result = sig_reg_members_of(g, r->element[1], e) ? SIG_E_SERVER_BUSY : SIG_OK;
        if (*result != SIG_OK)
            rc = 1;
    } else {
        RTC_LOG(RTC_LOG_ERROR, g->node, "redis: join script failed: %s",
                r->type == SIG_RR_ERROR ? r->str : "unexpected reply");
    }
out:
    sig_redis_reply_free(r);
    free(value);
    free(ev);
    free(rv);
    return rc;
}

int sig_reg_append_leave(const sig_reg *g, const char *room, const char *id)
{
    char key[SIG_ROOM_MAX + 32], nm[64], nt[64], ch[SIG_ROOM_MAX + 64];
    char *ev = sig_chan_dumps(json_pack("{s:s,s:s,s:s}", "n", g->node, "e", "left", "id", id));
    const char *argv[] = {"EVAL", SIG_LUA_LEAVE, "3", key, nm, nt, id, ch, ev ? ev : "", g->kp,
                          room};
    int rc;
    snprintf(key, sizeof key, "%sroom:%s", g->kp, room);
    snprintf(nm, sizeof nm, "%snm:%s", g->kp, g->node);
    snprintf(nt, sizeof nt, "%snt:%s", g->kp, g->node);
    snprintf(ch, sizeof ch, "%s%s", g->cp, room);
    rc = sig_reg_append(g, 11, argv);
    free(ev);
    return rc;
}

void sig_reg_deregister(const sig_reg *g)
{
    char key[64];
    const char *argv[] = {"DEL", key};
    uint64_t reaped;
    snprintf(key, sizeof key, "%snode:%s", g->kp, g->node);
    sig_redis_reply_free(sig_reg_command(g, 2, argv));
    sig_reg_reap(g, &reaped);
}

int sig_reg_append_pub(const sig_reg *g, const char *room, const char *channel,
                       const char *payload, uint32_t len, uint64_t ms)
{
    char key[SIG_ROOM_MAX + 16], n[16], t[24];
    const char *argv[] = {"EVAL", SIG_LUA_PUB, "1", key, channel, payload, n, t};
    snprintf(key, sizeof key, "%sst:%s", g->kp, room);
    snprintf(n, sizeof n, "%u", len);
    snprintf(t, sizeof t, "%llu", (unsigned long long)ms);
    return sig_reg_append(g, 8, argv);
}
