/* rly_quota.c - shared allocation counts: a mutex-guarded map (rtc_map,
 * SipHash under a random key) from quota key to count, and the EVEN-PORT
 * reservation table. */
#include "rly_quota.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "rtc_err.h"
#include "rtc_map.h"

/* One quota key with allocations; removed when its count drops to 0. */
typedef struct {
    rtc_map_node mn; /* keyed by name */
    uint64_t count;
    char name[];
} node;

#define MAX_RESV 256

typedef struct {
    uint8_t token[8];
    int fd; /* -1 = free */
    rtc_addr bound;
    uint64_t expiry_ms;
    char user[RLY_QUOTA_NAME_MAX + 1]; /* quota key the reservation is charged to */
} resv;

struct rly_quota {
    pthread_mutex_t mu;
    uint64_t total;
    rtc_map users; /* of node */
    resv r[MAX_RESV];
};

rly_quota *rly_quota_new(void)
{
    rly_quota *q = calloc(1, sizeof *q);
    if (!q)
        return NULL;
    if (pthread_mutex_init(&q->mu, NULL)) {
        free(q);
        return NULL;
    }
    /* without random bytes the map still works, under a key that is only
     * hard to guess (rtc_map_init); its keys are authenticated usernames */
    (void)rtc_map_init(&q->users);
    for (int i = 0; i < MAX_RESV; i++)
        q->r[i].fd = -1;
    return q;
}

void rly_quota_free(rly_quota *q)
{
    rtc_map_iter it;
    rtc_map_node *mn;

    if (!q)
        return;
    rtc_map_iter_init(&it, &q->users);
    while ((mn = rtc_map_iter_next(&it))) {
        rtc_map_remove(&q->users, mn);
        free(RTC_MAP_ENTRY(mn, node, mn));
    }
    rtc_map_dispose(&q->users);
    pthread_mutex_destroy(&q->mu);
    free(q);
}

/* Caller holds q->mu. The node counting user, or NULL. */
static node *find(rly_quota *q, const char *user)
{
    rtc_map_node *mn = rtc_map_find_str(&q->users, user);
    return mn ? RTC_MAP_ENTRY(mn, node, mn) : NULL;
}

int rly_quota_take(rly_quota *q, const char *user, uint64_t max_total, uint64_t max_user)
{
    int rc = 0;
    node *n;

    pthread_mutex_lock(&q->mu);
    n = find(q, user);
    if (q->total >= max_total || (n && max_user && n->count >= max_user)) {
        rc = RTC_ELIMIT;
    } else {
        if (!n) {
            size_t l = strlen(user);
            n = calloc(1, sizeof *n + l + 1);
            if (!n) {
                rc = -ENOMEM;
                goto out;
            }
            memcpy(n->name, user, l);
            if (rtc_map_insert_str(&q->users, &n->mn, n->name)) {
                free(n); /* only -ENOMEM: the key was not there */
                rc = -ENOMEM;
                goto out;
            }
        }
        n->count++;
        q->total++;
    }
out:
    pthread_mutex_unlock(&q->mu);
    return rc;
}

/* Caller holds q->mu. */
static void give_locked(rly_quota *q, const char *user)
{
    node *n = find(q, user);
    if (n) {
        if (--n->count == 0) {
            rtc_map_remove(&q->users, &n->mn);
            free(n);
        }
        q->total--;
    }
}

void rly_quota_give(rly_quota *q, const char *user)
{
    pthread_mutex_lock(&q->mu);
    give_locked(q, user);
    pthread_mutex_unlock(&q->mu);
}

size_t rly_quota_total(rly_quota *q)
{
    size_t t;
    pthread_mutex_lock(&q->mu);
    t = (size_t)q->total;
    pthread_mutex_unlock(&q->mu);
    return t;
}

void rly_quota_counts(rly_quota *q, size_t *allocations, size_t *reservations)
{
    size_t held = 0;
    pthread_mutex_lock(&q->mu);
    for (int i = 0; i < MAX_RESV; i++)
        held += q->r[i].fd >= 0;
    *reservations = held;
    *allocations = (size_t)q->total - held; /* every held one took a unit */
    pthread_mutex_unlock(&q->mu);
}

int rly_quota_resv_put(rly_quota *q, const uint8_t token[8], int fd, const rtc_addr *bound,
                       uint64_t expiry_ms, const char *user)
{
    int rc = RTC_ELIMIT, free_slot = -1, held = 0;
    size_t ul = strlen(user);
    if (ul > RLY_QUOTA_NAME_MAX)
        return RTC_ELIMIT;
    pthread_mutex_lock(&q->mu);
    for (int i = 0; i < MAX_RESV; i++) {
        if (q->r[i].fd < 0) {
            if (free_slot < 0)
                free_slot = i;
        } else if (!strcmp(q->r[i].user, user)) {
            held++;
        }
    }
    if (free_slot >= 0 && held < RLY_RESV_PER_USER) {
        resv *r = &q->r[free_slot];
        memcpy(r->token, token, 8);
        r->fd = fd;
        r->bound = *bound;
        r->expiry_ms = expiry_ms;
        memcpy(r->user, user, ul + 1);
        rc = 0;
    }
    pthread_mutex_unlock(&q->mu);
    return rc;
}

/* Caller holds q->mu: hand slot i's socket out and its quota unit back. */
static int release_slot(rly_quota *q, int i, rtc_addr *bound)
{
    int fd = q->r[i].fd;
    *bound = q->r[i].bound;
    q->r[i].fd = -1;
    give_locked(q, q->r[i].user);
    return fd;
}

int rly_quota_resv_take(rly_quota *q, const uint8_t *token, uint64_t now_ms, rtc_addr *bound)
{
    int fd = -1;
    pthread_mutex_lock(&q->mu);
    for (int i = 0; i < MAX_RESV; i++)
        if (q->r[i].fd >= 0 && now_ms < q->r[i].expiry_ms && !memcmp(q->r[i].token, token, 8)) {
            fd = release_slot(q, i, bound);
            break;
        }
    pthread_mutex_unlock(&q->mu);
    return fd;
}

int rly_quota_resv_expired(rly_quota *q, uint64_t now_ms, rtc_addr *bound)
{
    int fd = -1;
    pthread_mutex_lock(&q->mu);
    for (int i = 0; i < MAX_RESV; i++)
        if (q->r[i].fd >= 0 && (now_ms == UINT64_MAX || now_ms >= q->r[i].expiry_ms)) {
            fd = release_slot(q, i, bound);
            break;
        }
    pthread_mutex_unlock(&q->mu);
    return fd;
}
