/* sig_addrlim.c - held places and room creations per client address (see
 * sig_addrlim.h): two rtc_maps, addresses and held member ids. */
#include "sig_addrlim.h"

#include <stdlib.h>
#include <string.h>

#include "rtc_map.h"
#include "rtc_tbucket.h"
#include "sig_admit.h"

#define KEY_LEN 17        /* family, then 16 address bytes (sig_admit_ip_key) */
#define ID_MAX 32         /* member ids are 16 hex characters */
#define US_PER_MIN 60000000u

typedef struct {
    rtc_map_node mn;
    uint8_t key[KEY_LEN];
    uint32_t held;
    bool has_bucket, has_jbucket;
    rtc_tbucket bucket;  /* room creations, tokens per minute in us */
    rtc_tbucket jbucket; /* join and resume attempts, tokens per second in us */
} addr_ent;

typedef struct {
    rtc_map_node mn;
    char id[ID_MAX + 1];
    addr_ent *a;
    uint64_t until_us;
} held_ent;

struct sig_addrlim {
    rtc_map addrs; /* of addr_ent */
    rtc_map held;  /* of held_ent, by member id */
    uint64_t held_total;
    uint64_t refused_held, refused_creates, refused_joins;
};

static void key_of(const rtc_addr *addr, uint8_t key[KEY_LEN])
{
    rtc_addr k = sig_admit_ip_key(addr);
    key[0] = k.family;
    memcpy(key + 1, k.ip, 16);
}

static rtc_tbucket_rate rate_of(uint32_t per_min)
{
    rtc_tbucket_rate r = {.per_s = per_min, .burst = per_min, .ticks = US_PER_MIN};
    return r;
}

static rtc_tbucket_rate jrate_of(uint32_t per_s)
{
    rtc_tbucket_rate r = {.per_s = per_s, .burst = per_s, .ticks = 1000000u};
    return r;
}

sig_addrlim *sig_addrlim_new(void)
{
    sig_addrlim *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    /* keys an attacker chooses (its addresses, ids we made): random map
     * keys; without random bytes they still work (rtc_map_init) */
    (void)rtc_map_init(&l->addrs);
    (void)rtc_map_init(&l->held);
    return l;
}

void sig_addrlim_free(sig_addrlim *l)
{
    rtc_map_iter it;
    rtc_map_node *n;
    if (!l)
        return;
    rtc_map_iter_init(&it, &l->held);
    while ((n = rtc_map_iter_next(&it))) {
        rtc_map_remove(&l->held, n);
        free(RTC_MAP_ENTRY(n, held_ent, mn));
    }
    rtc_map_iter_init(&it, &l->addrs);
    while ((n = rtc_map_iter_next(&it))) {
        rtc_map_remove(&l->addrs, n);
        free(RTC_MAP_ENTRY(n, addr_ent, mn));
    }
    rtc_map_dispose(&l->held);
    rtc_map_dispose(&l->addrs);
    free(l);
}

static addr_ent *addr_find(const sig_addrlim *l, const rtc_addr *addr)
{
    uint8_t key[KEY_LEN];
    rtc_map_node *n;
    key_of(addr, key);
    n = rtc_map_find(&l->addrs, key, KEY_LEN);
    return n ? RTC_MAP_ENTRY(n, addr_ent, mn) : NULL;
}

/* The entry of addr, made when missing. NULL on ENOMEM or when the table
 * is full. */
static addr_ent *addr_get(sig_addrlim *l, const rtc_addr *addr)
{
    addr_ent *a = addr_find(l, addr);
    if (a)
        return a;
    if (rtc_map_count(&l->addrs) >= SIG_ADDRLIM_MAX_ADDRS || !(a = calloc(1, sizeof *a)))
        return NULL;
    key_of(addr, a->key);
    if (rtc_map_insert(&l->addrs, &a->mn, a->key, KEY_LEN)) {
        free(a);
        return NULL;
    }
    return a;
}

static void addr_drop(sig_addrlim *l, addr_ent *a)
{
    rtc_map_remove(&l->addrs, &a->mn);
    free(a);
}

bool sig_addrlim_hold(sig_addrlim *l, const rtc_addr *addr, const char *id, uint32_t max,
                      uint64_t until_us)
{
    size_t idl = strlen(id);
    rtc_map_node *n = rtc_map_find_str(&l->held, id);
    held_ent *h;
    addr_ent *a;

    if (n) { /* already counted: a new deadline */
        RTC_MAP_ENTRY(n, held_ent, mn)->until_us = until_us;
        return true;
    }
    if (idl > ID_MAX)
        return false;
    if (!(a = addr_get(l, addr)))
        return false;
    if (max && a->held >= max) {
        l->refused_held++;
        return false;
    }
    if (!(h = calloc(1, sizeof *h))) {
        if (!a->held && !a->has_bucket && !a->has_jbucket)
            addr_drop(l, a);
        return false;
    }
    memcpy(h->id, id, idl + 1);
    h->a = a;
    h->until_us = until_us;
    if (rtc_map_insert_str(&l->held, &h->mn, h->id)) {
        free(h);
        if (!a->held && !a->has_bucket && !a->has_jbucket)
            addr_drop(l, a);
        return false;
    }
    a->held++;
    l->held_total++;
    return true;
}

static void unhold(sig_addrlim *l, held_ent *h)
{
    rtc_map_remove(&l->held, &h->mn);
    h->a->held--;
    l->held_total--;
    /* the address entry stays for its bucket; sweep forgets it */
    free(h);
}

void sig_addrlim_unhold(sig_addrlim *l, const char *id)
{
    rtc_map_node *n = rtc_map_find_str(&l->held, id);
    if (n)
        unhold(l, RTC_MAP_ENTRY(n, held_ent, mn));
}

uint32_t sig_addrlim_held(const sig_addrlim *l, const rtc_addr *addr)
{
    const addr_ent *a = addr_find(l, addr);
    return a ? a->held : 0;
}

bool sig_addrlim_create(sig_addrlim *l, const rtc_addr *addr, uint32_t per_min, uint64_t now_us)
{
    rtc_tbucket_rate r = rate_of(per_min);
    addr_ent *a;
    if (per_min == 0)
        return true;
    if (!(a = addr_get(l, addr))) {
        l->refused_creates++;
        return false;
    }
    if (!a->has_bucket) {
        rtc_tbucket_init(&a->bucket, &r, now_us);
        a->has_bucket = true;
    }
    if (rtc_tbucket_take(&a->bucket, &r, 1, now_us))
        return true;
    l->refused_creates++;
    return false;
}

bool sig_addrlim_join(sig_addrlim *l, const rtc_addr *addr, uint32_t per_s, uint64_t now_us)
{
    rtc_tbucket_rate r = jrate_of(per_s);
    addr_ent *a;
    if (per_s == 0)
        return true;
    if (!(a = addr_get(l, addr))) {
        l->refused_joins++;
        return false;
    }
    if (!a->has_jbucket) {
        rtc_tbucket_init(&a->jbucket, &r, now_us);
        a->has_jbucket = true;
    }
    if (rtc_tbucket_take(&a->jbucket, &r, 1, now_us))
        return true;
    l->refused_joins++;
    return false;
}

void sig_addrlim_sweep(sig_addrlim *l, uint32_t per_min, uint32_t joins_per_s, uint64_t now_us)
{
    rtc_tbucket_rate r = rate_of(per_min), jr = jrate_of(joins_per_s);
    rtc_map_iter it;
    rtc_map_node *n;

    /* both walks are bounded by the maps' sizes, which are bounded (see
     * the header); the only change made while walking is removing the
     * node just returned, which rtc_map allows */
    rtc_map_iter_init(&it, &l->held);
    while ((n = rtc_map_iter_next(&it))) {
        held_ent *h = RTC_MAP_ENTRY(n, held_ent, mn);
        if (now_us >= h->until_us)
            unhold(l, h);
    }
    rtc_map_iter_init(&it, &l->addrs);
    while ((n = rtc_map_iter_next(&it))) {
        addr_ent *a = RTC_MAP_ENTRY(n, addr_ent, mn);
        if (a->held)
            continue;
        if (a->has_bucket && per_min) {
            rtc_tbucket_refill(&a->bucket, &r, now_us);
            if (a->bucket.tokens < r.burst)
                continue; /* still remembers recent creations */
        }
        if (a->has_jbucket && joins_per_s) {
            rtc_tbucket_refill(&a->jbucket, &jr, now_us);
            if (a->jbucket.tokens < jr.burst)
                continue; /* and recent joins */
        }
        addr_drop(l, a);
    }
}

void sig_addrlim_metrics(const sig_addrlim *l, rtc_buf *b)
{
    rtc_metrics_header(b, "tsunagu_signal_address_limited_total", "counter",
                       "places not kept for resume (held), rooms not created "
                       "(room-creates) and join or resume attempts refused (joins) because of "
                       "per-address limits");
    rtc_metrics_u64(b, "tsunagu_signal_address_limited_total", "reason=\"held\"",
                    l->refused_held);
    rtc_metrics_u64(b, "tsunagu_signal_address_limited_total", "reason=\"room-creates\"",
                    l->refused_creates);
    rtc_metrics_u64(b, "tsunagu_signal_address_limited_total", "reason=\"joins\"",
                    l->refused_joins);
    rtc_metrics_header(b, "tsunagu_signal_held_places", "gauge",
                       "members kept for resume, counted against their address");
    rtc_metrics_u64(b, "tsunagu_signal_held_places", NULL, l->held_total);
}
