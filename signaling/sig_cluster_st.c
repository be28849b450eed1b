/* sig_cluster_st.c - positions in the rooms' streams and repeat detection
 * (see sig_cluster_st.h). */
#include "sig_cluster_st.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rtc_map.h"
#include "sig_cluster.h"

/* Nodes remembered per room for the "q" check: more sending nodes than this
 * in one room push out the one heard from least recently (a repeat comes
 * right after a reconnection, from a node that was sending just before). */
#define ORIGINS_MAX 16

typedef struct {
    char node[SIG_NODE_LEN + 1];
    uint64_t q;     /* last number taken from it */
    uint64_t stamp; /* when (room's counter), for the eviction */
} sender;

typedef struct {
    rtc_map_node node;
    sig_stid last;    /* last stream id taken */
    sig_stid skip;    /* live copies at or below: read by the catch-up */
    bool skipping;
    uint64_t clock;
    sender o[ORIGINS_MAX];
    size_t no;
    char room[]; /* the key */
} pos;

struct sig_stpos {
    rtc_map map;
};

static bool parse_u64(const char *s, size_t len, uint64_t *out)
{
    uint64_t v = 0;
    if (len == 0 || len > 20)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9' || v > (UINT64_MAX - (uint64_t)(s[i] - '0')) / 10)
            return false;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *out = v;
    return true;
}

bool sig_stid_parse(const char *s, size_t len, sig_stid *out)
{
    const char *dash = memchr(s, '-', len);
    if (!dash)
        return false;
    return parse_u64(s, (size_t)(dash - s), &out->ms) &&
           parse_u64(dash + 1, len - (size_t)(dash - s) - 1, &out->seq);
}

int sig_stid_cmp(sig_stid a, sig_stid b)
{
    if (a.ms != b.ms)
        return a.ms < b.ms ? -1 : 1;
    if (a.seq != b.seq)
        return a.seq < b.seq ? -1 : 1;
    return 0;
}

void sig_stid_fmt(sig_stid id, char out[SIG_STID_LEN])
{
    snprintf(out, SIG_STID_LEN, "%" PRIu64 "-%" PRIu64, id.ms, id.seq);
}

sig_stpos *sig_stpos_new(void)
{
    sig_stpos *t = calloc(1, sizeof *t);
    if (t)
        (void)rtc_map_init(&t->map); /* (a weaker key still works: rtc_map.h) */
    return t;
}

static pos *find(const sig_stpos *t, const char *room)
{
    rtc_map_node *n = rtc_map_find_str(&t->map, room);
    return n ? RTC_MAP_ENTRY(n, pos, node) : NULL;
}

static bool keep_none(void *ud, const char *room)
{
    (void)ud;
    (void)room;
    return false;
}

void sig_stpos_free(sig_stpos *t)
{
    if (!t)
        return;
    sig_stpos_prune(t, keep_none, NULL);
    rtc_map_dispose(&t->map);
    free(t);
}

int sig_stpos_follow(sig_stpos *t, const char *room, sig_stid base)
{
    size_t len = strlen(room);
    pos *p;
    if (find(t, room))
        return 0;
    if (!(p = calloc(1, sizeof *p + len + 1)))
        return -ENOMEM;
    memcpy(p->room, room, len + 1);
    p->last = base;
    if (rtc_map_insert_str(&t->map, &p->node, p->room)) {
        free(p);
        return -ENOMEM;
    }
    return 0;
}

bool sig_stpos_last(const sig_stpos *t, const char *room, sig_stid *last)
{
    pos *p = find(t, room);
    if (p)
        *last = p->last;
    return p != NULL;
}

void sig_stpos_caught_up(sig_stpos *t, const char *room, sig_stid upto)
{
    pos *p = find(t, room);
    if (p) {
        p->skip = upto;
        p->skipping = true;
    }
}

void sig_stpos_new_conn(sig_stpos *t)
{
    rtc_map_iter it;
    rtc_map_node *n;
    rtc_map_iter_init(&it, &t->map);
    while ((n = rtc_map_iter_next(&it)))
        RTC_MAP_ENTRY(n, pos, node)->skipping = false;
}

void sig_stpos_forget(sig_stpos *t, const char *room)
{
    pos *p = find(t, room);
    if (p) {
        rtc_map_remove(&t->map, &p->node);
        free(p);
    }
}

void sig_stpos_prune(sig_stpos *t, bool (*keep)(void *ud, const char *room), void *ud)
{
    rtc_map_iter it;
    rtc_map_node *n;
    rtc_map_iter_init(&it, &t->map);
    while ((n = rtc_map_iter_next(&it))) {
        pos *p = RTC_MAP_ENTRY(n, pos, node);
        if (!keep(ud, p->room)) {
            rtc_map_remove(&t->map, n);
            free(p);
        }
    }
}

size_t sig_stpos_count(const sig_stpos *t) { return rtc_map_count(&t->map); }

/* The "q" check: false when origin's number q was taken already. */
static bool take_q(pos *p, const char *from, uint64_t q)
{
    size_t i, oldest = 0;
    p->clock++;
    for (i = 0; i < p->no; i++) {
        if (!strcmp(p->o[i].node, from)) {
            if (q <= p->o[i].q)
                return false;
            p->o[i].q = q;
            p->o[i].stamp = p->clock;
            return true;
        }
        if (p->o[i].stamp < p->o[oldest].stamp)
            oldest = i;
    }
    i = p->no < ORIGINS_MAX ? p->no++ : oldest;
    snprintf(p->o[i].node, sizeof p->o[i].node, "%s", from);
    p->o[i].q = q;
    p->o[i].stamp = p->clock;
    return true;
}

bool sig_stpos_take(sig_stpos *t, const char *room, const char *origin, json_t *o)
{
    pos *p = find(t, room);
    json_t *jx = json_object_get(o, "x"), *jq = json_object_get(o, "q");
    sig_stid x;
    bool has_x;
    if (!p)
        return true;
    has_x = json_is_string(jx) &&
            sig_stid_parse(json_string_value(jx), json_string_length(jx), &x);
    if (has_x) {
        if (p->skipping && sig_stid_cmp(x, p->skip) <= 0)
            return false; /* the catch-up read it from the stream */
        p->skipping = false; /* (ids only grow: no more copies after this one) */
        if (sig_stid_cmp(x, p->last) > 0)
            p->last = x;
    }
    if (json_is_integer(jq) && json_integer_value(jq) > 0)
        return take_q(p, origin, (uint64_t)json_integer_value(jq));
    return true;
}
