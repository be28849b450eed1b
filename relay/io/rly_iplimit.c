/* rly_iplimit.c - shared per-source connection counts (see rly_iplimit.h).
 * A chained hash keyed with SipHash under a random key of this table
 * (sources are chosen by attackers, so the bucket must not be predictable),
 * one mutex. */
#include "rly_iplimit.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "rtc_hash.h"

#define BUCKETS 4096

typedef struct entry {
    struct entry *next;
    uint8_t key[9]; /* family, then 4 (v4) or 8 (v6 /64) address bytes */
    uint32_t n;
    uint32_t pre; /* of those, not authenticated yet (<= n) */
    uint32_t hs;  /* of those, TLS handshakes in progress (<= pre) */
} entry;

struct rly_iplimit {
    pthread_mutex_t mu;
    rtc_hash_key key;
    uint32_t hs_total;
    entry *b[BUCKETS];
};

static void key_of(const rtc_addr *ip, uint8_t key[9])
{
    memset(key, 0, 9);
    key[0] = ip->family;
    memcpy(key + 1, ip->ip, ip->family == AF_INET6 ? 8 : 4);
}

static uint32_t bucket(const rly_iplimit *l, const uint8_t key[9])
{
    return (uint32_t)(rtc_siphash24(&l->key, key, 9) % BUCKETS);
}

rly_iplimit *rly_iplimit_new(void)
{
    rly_iplimit *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    if (rtc_hash_key_random(&l->key) || pthread_mutex_init(&l->mu, NULL)) {
        free(l);
        return NULL;
    }
    return l;
}

void rly_iplimit_free(rly_iplimit *l)
{
    if (!l)
        return;
    for (int i = 0; i < BUCKETS; i++)
        while (l->b[i]) {
            entry *e = l->b[i];
            l->b[i] = e->next;
            free(e);
        }
    pthread_mutex_destroy(&l->mu);
    free(l);
}

bool rly_iplimit_take(rly_iplimit *l, const rtc_addr *ip, uint32_t max, uint32_t max_preauth)
{
    uint8_t key[9];
    entry *e;
    uint32_t h;
    bool ok = false;

    key_of(ip, key);
    h = bucket(l, key);
    pthread_mutex_lock(&l->mu);
    for (e = l->b[h]; e && memcmp(e->key, key, sizeof key); e = e->next)
        ;
    if (!e && max > 0 && (e = calloc(1, sizeof *e))) {
        memcpy(e->key, key, sizeof key);
        e->next = l->b[h];
        l->b[h] = e;
    }
    if (e && e->n < max && (!max_preauth || e->pre < max_preauth)) {
        e->n++;
        e->pre++;
        ok = true;
    }
    pthread_mutex_unlock(&l->mu);
    return ok;
}

void rly_iplimit_give(rly_iplimit *l, const rtc_addr *ip, bool authed)
{
    uint8_t key[9];
    entry **pp, *e;
    uint32_t h;

    key_of(ip, key);
    h = bucket(l, key);
    pthread_mutex_lock(&l->mu);
    for (pp = &l->b[h]; (e = *pp) && memcmp(e->key, key, sizeof key); pp = &e->next)
        ;
    if (e && !authed && e->pre)
        e->pre--;
    if (e && --e->n == 0) {
        *pp = e->next;
        free(e);
    }
    pthread_mutex_unlock(&l->mu);
}

/* Caller holds l->mu. The entry of ip, or NULL. */
static entry *find_locked(rly_iplimit *l, const rtc_addr *ip)
{
    uint8_t key[9];
    entry *e;
    key_of(ip, key);
    for (e = l->b[bucket(l, key)]; e && memcmp(e->key, key, sizeof key); e = e->next)
        ;
    return e;
}

void rly_iplimit_authed(rly_iplimit *l, const rtc_addr *ip)
{
    entry *e;
    pthread_mutex_lock(&l->mu);
    e = find_locked(l, ip);
    if (e && e->pre > e->hs)
        e->pre--;
    pthread_mutex_unlock(&l->mu);
}

void rly_iplimit_count(rly_iplimit *l, const rtc_addr *ip, uint32_t *all, uint32_t *preauth)
{
    entry *e;
    pthread_mutex_lock(&l->mu);
    e = find_locked(l, ip);
    *all = e ? e->n : 0;
    *preauth = e ? e->pre : 0;
    pthread_mutex_unlock(&l->mu);
}

bool rly_iplimit_hs_take(rly_iplimit *l, const rtc_addr *ip, uint32_t max_per_ip,
                         uint32_t max_total)
{
    entry *e;
    bool ok = false;
    pthread_mutex_lock(&l->mu);
    e = find_locked(l, ip);
    if (e && e->hs < e->pre && (!max_per_ip || e->hs < max_per_ip) &&
        (!max_total || l->hs_total < max_total)) {
        e->hs++;
        l->hs_total++;
        ok = true;
    }
    pthread_mutex_unlock(&l->mu);
    return ok;
}

void rly_iplimit_hs_give(rly_iplimit *l, const rtc_addr *ip)
{
    entry *e;
    pthread_mutex_lock(&l->mu);
    e = find_locked(l, ip);
    if (e && e->hs) {
        e->hs--;
        l->hs_total--;
    }
    pthread_mutex_unlock(&l->mu);
}

uint32_t rly_iplimit_hs_total(rly_iplimit *l)
{
    uint32_t n;
    pthread_mutex_lock(&l->mu);
    n = l->hs_total;
    pthread_mutex_unlock(&l->mu);
    return n;
}
