/* sig_mirror.c - the mirror of local members and a name set (see
 * sig_mirror.h), on rtc_map. */
#include "sig_mirror.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rtc_err.h"

typedef struct {
    rtc_map_node node;
    char *room, *name, *th;
    char id[];
} member;

typedef struct {
    rtc_map_node node;
    uint32_t n; /* rooms: local members there; sets: unused */
    char name[];
} named;

struct sig_mirror {
    rtc_map members; /* id -> member */
    rtc_map rooms;   /* room -> named (n local members) */
};

static named *named_new(const char *name)
{
    size_t len = strlen(name);
    named *e = calloc(1, sizeof *e + len + 1);
    if (e)
        memcpy(e->name, name, len + 1);
    return e;
}

static named *named_find(const rtc_map *m, const char *name)
{
    rtc_map_node *n = rtc_map_find_str(m, name);
    return n ? RTC_MAP_ENTRY(n, named, node) : NULL;
}

static void named_clear(rtc_map *m)
{
    rtc_map_iter it;
    rtc_map_node *n;
    rtc_map_iter_init(&it, m);
    while ((n = rtc_map_iter_next(&it))) {
        rtc_map_remove(m, n);
        free(RTC_MAP_ENTRY(n, named, node));
    }
}

/* ---- the mirror ---- */

sig_mirror *sig_mirror_new(void)
{
    sig_mirror *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    /* (a failed key draw still leaves working maps; see rtc_map_init) */
    (void)rtc_map_init(&m->members);
    (void)rtc_map_init(&m->rooms);
    return m;
}

static member *member_find(const sig_mirror *m, const char *id)
{
    rtc_map_node *n = rtc_map_find_str(&m->members, id);
    return n ? RTC_MAP_ENTRY(n, member, node) : NULL;
}

static void member_free(member *e)
{
    free(e->room);
    free(e->name);
    free(e->th);
    free(e);
}

void sig_mirror_free(sig_mirror *m)
{
    rtc_map_iter it;
    rtc_map_node *n;
    if (!m)
        return;
    rtc_map_iter_init(&it, &m->members);
    while ((n = rtc_map_iter_next(&it))) {
        rtc_map_remove(&m->members, n);
        member_free(RTC_MAP_ENTRY(n, member, node));
    }
    named_clear(&m->rooms);
    rtc_map_dispose(&m->members);
    rtc_map_dispose(&m->rooms);
    free(m);
}

int sig_mirror_add(sig_mirror *m, const char *id, const char *room, const char *name,
                   const char *th)
{
    size_t len = strlen(id);
    named *r = named_find(&m->rooms, room);
    bool new_room = !r;
    member *e;
    if (member_find(m, id))
        return RTC_EEXIST;
    if (new_room && (!(r = named_new(room)) || rtc_map_insert_str(&m->rooms, &r->node, r->name))) {
        free(r);
        return -ENOMEM;
    }
    if (!(e = calloc(1, sizeof *e + len + 1)) || !(e->room = strdup(room)) ||
        !(e->name = strdup(name)) || !(e->th = strdup(th)))
        goto fail;
    memcpy(e->id, id, len + 1);
    if (rtc_map_insert_str(&m->members, &e->node, e->id))
        goto fail;
    r->n++;
    return 0;
fail:
    if (e)
        member_free(e);
    if (new_room) {
        rtc_map_remove(&m->rooms, &r->node);
        free(r);
    }
    return -ENOMEM;
}

void sig_mirror_del(sig_mirror *m, const char *id)
{
    member *e = member_find(m, id);
    named *r;
    if (!e)
        return;
    if ((r = named_find(&m->rooms, e->room)) && --r->n == 0) {
        rtc_map_remove(&m->rooms, &r->node);
        free(r);
    }
    rtc_map_remove(&m->members, &e->node);
    member_free(e);
}

void sig_mirror_del_in(sig_mirror *m, const char *id, const char *room)
{
    member *e = member_find(m, id);
    if (e && !strcmp(e->room, room))
        sig_mirror_del(m, id);
}

bool sig_mirror_has_room(const sig_mirror *m, const char *room)
{
    return named_find(&m->rooms, room) != NULL;
}

int sig_mirror_copy_all(const sig_mirror *m, sig_mirror_copy *out)
{
    rtc_map_iter it;
    rtc_map_node *n;
    memset(out, 0, sizeof *out);
    out->v = calloc(rtc_map_count(&m->members) + 1, sizeof *out->v);
    out->rooms = calloc(rtc_map_count(&m->rooms) + 1, sizeof *out->rooms);
    if (!out->v || !out->rooms)
        goto oom;
    rtc_map_iter_init(&it, &m->members);
    while ((n = rtc_map_iter_next(&it))) {
        const member *e = RTC_MAP_ENTRY(n, member, node);
        sig_mirror_entry *d = &out->v[out->n++];
        if (!(d->id = strdup(e->id)) || !(d->room = strdup(e->room)) ||
            !(d->name = strdup(e->name)) || !(d->th = strdup(e->th)))
            goto oom;
    }
    rtc_map_iter_init(&it, &m->rooms);
    while ((n = rtc_map_iter_next(&it)))
        if (!(out->rooms[out->nrooms++] = strdup(RTC_MAP_ENTRY(n, named, node)->name)))
            goto oom;
    return 0;
oom:
    sig_mirror_copy_dispose(out);
    return -ENOMEM;
}

int sig_mirror_copy_keep(sig_mirror_copy *c, const char *const *ids, size_t n)
{
    if (!n)
        return 0;
    if (!(c->keep = calloc(n, sizeof *c->keep)))
        return -ENOMEM;
    for (; c->nkeep < n; c->nkeep++)
        if (!(c->keep[c->nkeep] = strdup(ids[c->nkeep])))
            return -ENOMEM;
    return 0;
}

void sig_mirror_copy_dispose(sig_mirror_copy *c)
{
    for (size_t i = 0; c->v && i < c->n; i++) {
        free(c->v[i].id);
        free(c->v[i].room);
        free(c->v[i].name);
        free(c->v[i].th);
    }
    for (size_t i = 0; c->rooms && i < c->nrooms; i++)
        free(c->rooms[i]);
    for (size_t i = 0; c->keep && i < c->nkeep; i++)
        free(c->keep[i]);
    free(c->v);
    free(c->rooms);
    free(c->keep);
    memset(c, 0, sizeof *c);
}

/* ---- name sets ---- */

void sig_nameset_init(sig_nameset *s) { (void)rtc_map_init(&s->map); }

void sig_nameset_dispose(sig_nameset *s)
{
    named_clear(&s->map);
    rtc_map_dispose(&s->map);
}

bool sig_nameset_has(const sig_nameset *s, const char *name)
{
    return named_find(&s->map, name) != NULL;
}

int sig_nameset_add(sig_nameset *s, const char *name)
{
    named *e;
    if (named_find(&s->map, name))
        return 0;
    if (!(e = named_new(name)) || rtc_map_insert_str(&s->map, &e->node, e->name)) {
        free(e);
        return -ENOMEM;
    }
    return 0;
}

void sig_nameset_del(sig_nameset *s, const char *name)
{
    named *e = named_find(&s->map, name);
    if (e) {
        rtc_map_remove(&s->map, &e->node);
        free(e);
    }
}

int sig_nameset_each(sig_nameset *s, int (*fn)(void *ud, const char *name), void *ud)
{
    rtc_map_iter it;
    rtc_map_node *n;
    int rc;
    rtc_map_iter_init(&it, &s->map);
    while ((n = rtc_map_iter_next(&it)))
        if ((rc = fn(ud, RTC_MAP_ENTRY(n, named, node)->name)))
            return rc;
    return 0;
}
