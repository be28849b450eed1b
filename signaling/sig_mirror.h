/* sig_mirror.h - cluster mode's memory of what this node registered in
 * Redis: its local members (id -> room, name, token hash) and the rooms they
 * are in, which is what a resync registers again after a reconnection; and
 * a set of room names (the channels subscribed). Pure data on rtc_map
 * (SipHash under a random key per map: room names are chosen by clients).
 * Not thread-safe: the owner locks (sig_cluster.c, "Threads and locks" in
 * sig_cluster.h). */
#ifndef SIG_MIRROR_H
#define SIG_MIRROR_H

#include <stdbool.h>
#include <stddef.h>

#include "rtc_map.h"

typedef struct sig_mirror sig_mirror;

sig_mirror *sig_mirror_new(void); /* NULL on ENOMEM */
void sig_mirror_free(sig_mirror *m); /* NULL is a no-op */

/* 0, RTC_EEXIST (id is here already: nothing changed) or -ENOMEM. */
int sig_mirror_add(sig_mirror *m, const char *id, const char *room, const char *name,
                   const char *th);
void sig_mirror_del(sig_mirror *m, const char *id);
/* Only when id is this node's member in room (a member that moved on to
 * another room since is not touched). */
void sig_mirror_del_in(sig_mirror *m, const char *id, const char *room);
bool sig_mirror_has_room(const sig_mirror *m, const char *room);

/* A copy of the whole mirror (taken under the owner's lock, used without
 * it): members, and the rooms with a local member. */
typedef struct {
    char *id, *room, *name, *th;
} sig_mirror_entry;
typedef struct {
    sig_mirror_entry *v;
    size_t n;
    char **rooms;
    size_t nrooms;
    char **keep; /* ids a resync leaves alone (sig_mirror_copy_keep) */
    size_t nkeep;
} sig_mirror_copy;
int sig_mirror_copy_all(const sig_mirror *m, sig_mirror_copy *out); /* 0 or -ENOMEM */
/* Add copies of ids to keep (whoever lent them may change them later). 0 or
 * -ENOMEM. */
int sig_mirror_copy_keep(sig_mirror_copy *c, const char *const *ids, size_t n);
void sig_mirror_copy_dispose(sig_mirror_copy *c);

/* A set of names (value type; init cannot fail in a way that matters: the
 * map then works with a weaker key, see rtc_map_init). */
typedef struct {
    rtc_map map;
} sig_nameset;
void sig_nameset_init(sig_nameset *s);
void sig_nameset_dispose(sig_nameset *s); /* empties it */
bool sig_nameset_has(const sig_nameset *s, const char *name);
int sig_nameset_add(sig_nameset *s, const char *name); /* 0 (also when present) or -ENOMEM */
void sig_nameset_del(sig_nameset *s, const char *name);
/* Each name, in no order; fn may sig_nameset_del the name it is given. A
 * nonzero return stops the walk and is returned. */
int sig_nameset_each(sig_nameset *s, int (*fn)(void *ud, const char *name), void *ud);

#endif
