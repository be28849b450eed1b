/* rly_quota.c - shared allocation counts: a mutex-guarded chained hash of
 * usernames. */
#include "rly_quota.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "rtc_err.h"

#define BUCKETS 4096u

typedef struct node {
    struct node *next;
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
    node *b[BUCKETS];
    resv r[MAX_RESV];
};

static uint32_t hash(const char *s)
{
    uint32_t h = 2166136261u; /* FNV-1a; keys are usernames already authenticated */
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

rly_quota *rly_quota_new(void)
{
    rly_quota *q = calloc(1, sizeof *q);
    if (q && pthread_mutex_init(&q->mu, NULL)) {
        free(q);
        return NULL;
    }
    for (int i = 0; q && i < MAX_RESV; i++)
        q->r[i].fd = -1;
    return q;
}

void rly_quota_free(rly_quota *q)
{
    if (!q)
        return;
    for (unsigned i = 0; i < BUCKETS; i++)
        for (node *n = q->b[i], *nx; n; n = nx) {
            nx = n->next;
            free(n);
        }
    pthread_mutex_destroy(&q->mu);
    free(q);
}

static node **slot(rly_quota *q, const char *user)
{
    node **p = &q->b[hash(user) & (BUCKETS - 1)];
    while (*p && strcmp((*p)->name, user))
        p = &(*p)->next;
    return p;
}

int rly_quota_take(rly_quota *q, const char *user, uint64_t max_total, uint64_t max_user)
{
    int rc = 0;
    node **p;

    pthread_mutex_lock(&q->mu);
    p = slot(q, user);
    if (q->total >= max_total || (*p && (*p)->count >= max_user) || max_user == 0) {
        rc = RTC_ELIMIT;
    } else {
        if (!*p) {
            size_t l = strlen(user);
            *p = calloc(1, sizeof **p + l + 1);
            if (!*p) {
                rc = -ENOMEM;
                goto out;
            }
            memcpy((*p)->name, user, l);
        }
        (*p)->count++;
        q->total++;
    }
out:
    pthread_mutex_unlock(&q->mu);
    return rc;
}

/* Caller holds q->mu. */
static void give_locked(rly_quota *q, const char *user)
{
    node **p = slot(q, user);
    if (*p) {
        if (--(*p)->count == 0) {
            node *dead = *p;
            *p = dead->next;
            free(dead);
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
