/* sig_room_walk.c - read-only walks over the hub for the admin API (see
 * sig_room.h): rooms, a room's members, one local member by id. Nothing
 * here changes the hub; a caller that removes members does it through the
 * hub's own calls (sig_hub_disconnect, or closing the connection) after the
 * walk, never from inside a callback. */
#include <string.h>

#include "sig_room_int.h"

size_t sig_hub_walk_rooms(const sig_hub *h, void (*cb)(void *ud, const sig_room_info *r),
                          void *ud)
{
    rtc_map_iter it;
    rtc_map_node *n;
    size_t count = 0;
    rtc_map_iter_init(&it, &h->rooms);
    while ((n = rtc_map_iter_next(&it))) {
        const sig_room *r = RTC_MAP_ENTRY(n, sig_room, node);
        sig_room_info info = {.name = r->name, .members = r->n, .remote = r->nremote,
                              .created_us = r->created_us};
        cb(ud, &info);
        count++;
    }
    return count;
}

static const sig_room *find_room(const sig_hub *h, const char *name)
{
    rtc_map_node *n = rtc_map_find_str(&h->rooms, name);
    return n ? RTC_MAP_ENTRY(n, sig_room, node) : NULL;
}

bool sig_hub_walk_members(const sig_hub *h, const char *room,
                          void (*cb)(void *ud, const sig_member_info *m), void *ud)
{
    const sig_room *r = find_room(h, room);
    if (!r)
        return false;
    /* bounded: a room holds at most max_room_size local plus as many remote */
    for (const sig_member *m = r->head; m; m = m->rnext) {
        sig_member_info info = {.id = m->id, .name = m->name ? m->name : "", .state = m->state,
                                .conn = m->state == SIG_MEMBER_JOINED ? m->conn : NULL,
                                .detached_at = m->detached_at};
        cb(ud, &info);
    }
    return true;
}

sig_member *sig_hub_find_member(sig_hub *h, const char *room, const char *id)
{
    const sig_room *r = find_room(h, room);
    for (sig_member *m = r ? r->head : NULL; m; m = m->rnext)
        if (m->state != SIG_MEMBER_REMOTE && !strcmp(m->id, id))
            return m;
    return NULL;
}
