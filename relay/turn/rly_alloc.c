/* rly_alloc.c - allocation table and the permission/channel rules of
 * RFC 8656 s.9 and s.12. See rly_alloc.h for the design. */
#include "rly_alloc.h"

#include <stdlib.h>
#include <string.h>

#include "rtc_err.h"
#include "rtc_tbucket.h"

struct rly_table {
    rly_alloc **slots; /* by id; NULL = free */
    uint32_t n_slots, n_live;
    uint32_t *free_ids; /* stack of free slot ids */
    uint32_t n_free;
    uint32_t *buckets; /* slot index + 1; 0 = empty */
    uint32_t n_buckets; /* power of two */
    uint64_t key;
    uint32_t serial; /* of the last allocation added */
};

static uint64_t tuple_hash(const rly_table *t, const rly_tuple *tu)
{
    return rtc_addr_hash(&tu->client, t->key ^ ((uint64_t)tu->listener << 8 | tu->proto));
}

static bool tuple_eq(const rly_tuple *a, const rly_tuple *b)
{
    return a->listener == b->listener && a->proto == b->proto &&
           rtc_addr_equal(&a->client, &b->client);
}

rly_table *rly_table_new(uint64_t hash_key)
{
    rly_table *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->key = hash_key;
    t->n_buckets = 1024;
    t->buckets = calloc(t->n_buckets, sizeof *t->buckets);
    if (!t->buckets) {
        free(t);
        return NULL;
    }
    return t;
}

void rly_table_free(rly_table *t)
{
    if (!t)
        return;
    for (uint32_t i = 0; i < t->n_slots; i++)
        free(t->slots[i]);
    free(t->slots);
    free(t->free_ids);
    free(t->buckets);
    free(t);
}

rly_alloc *rly_table_find(const rly_table *t, const rly_tuple *tu)
{
    uint32_t i = t->buckets[tuple_hash(t, tu) & (t->n_buckets - 1)];
    while (i) {
        rly_alloc *a = t->slots[i - 1];
        if (tuple_eq(&a->tuple, tu))
            return a;
        i = a->hnext;
    }
    return NULL;
}

rly_alloc *rly_table_get(const rly_table *t, uint32_t id)
{
    return id < t->n_slots ? t->slots[id] : NULL;
}

static void hash_insert(rly_table *t, rly_alloc *a)
{
    uint32_t *b = &t->buckets[tuple_hash(t, &a->tuple) & (t->n_buckets - 1)];
    a->hnext = *b;
    *b = a->id + 1;
}

/* Double the buckets when the load passes 1, so chains stay short. */
static void maybe_grow(rly_table *t)
{
    uint32_t nb = t->n_buckets * 2, *nbk;
    if (t->n_live < t->n_buckets || nb == 0)
        return;
    nbk = calloc(nb, sizeof *nbk);
    if (!nbk)
        return; /* longer chains, still correct */
    free(t->buckets);
    t->buckets = nbk;
    t->n_buckets = nb;
    for (uint32_t i = 0; i < t->n_slots; i++)
        if (t->slots[i])
            hash_insert(t, t->slots[i]);
}

rly_alloc *rly_table_add(rly_table *t, const rly_tuple *tu, const char *user)
{
    rly_alloc *a;
    uint32_t id;
    size_t ulen = strnlen(user, RLY_USER_MAX);

    a = calloc(1, sizeof *a);
    if (!a)
        return NULL;
    if (t->n_free) {
        id = t->free_ids[--t->n_free];
    } else {
        uint32_t ns = t->n_slots ? t->n_slots * 2 : 64;
        rly_alloc **nsl = realloc(t->slots, ns * sizeof *nsl);
        uint32_t *nf;
        if (!nsl) {
            free(a);
            return NULL;
        }
        t->slots = nsl;
        nf = realloc(t->free_ids, ns * sizeof *nf);
        if (!nf) {
            free(a);
            return NULL;
        }
        t->free_ids = nf;
        for (uint32_t i = t->n_slots; i < ns; i++)
            t->slots[i] = NULL;
        /* push new ids so the lowest is popped first */
        for (uint32_t i = ns; i > t->n_slots + 1; i--)
            t->free_ids[t->n_free++] = i - 1;
        id = t->n_slots;
        t->n_slots = ns;
    }
    a->id = id;
    a->serial = ++t->serial;
    a->tuple = *tu;
    a->conn = -1;
    a->relay_fd = -1;
    a->relay_fd2 = -1;
    memcpy(a->user, user, ulen);
    a->user[ulen] = '\0';
    t->slots[id] = a;
    t->n_live++;
    hash_insert(t, a);
    maybe_grow(t);
    return a;
}

void rly_table_remove(rly_table *t, rly_alloc *a)
{
    uint32_t *p = &t->buckets[tuple_hash(t, &a->tuple) & (t->n_buckets - 1)];

    while (*p && *p != a->id + 1)
        p = &t->slots[*p - 1]->hnext;
    if (*p)
        *p = a->hnext;
    t->slots[a->id] = NULL;
    t->free_ids[t->n_free++] = a->id;
    t->n_live--;
    free(a);
}

size_t rly_table_count(const rly_table *t) { return t->n_live; }

rly_alloc *rly_table_next(const rly_table *t, uint32_t *it)
{
    while (*it < t->n_slots) {
        rly_alloc *a = t->slots[(*it)++];
        if (a)
            return a;
    }
    return NULL;
}

uint32_t rly_lifetime(bool present, uint32_t requested, uint32_t def_s, uint32_t max_s)
{
    uint32_t v;
    if (!present)
        return def_s < max_s ? def_s : max_s;
    if (requested == 0)
        return 0;
    v = requested < max_s ? requested : max_s;
    if (v < def_s)
        v = def_s < max_s ? def_s : max_s;
    return v;
}

void rly_alloc_refresh(rly_alloc *a, uint32_t lifetime_s, uint64_t now_ms)
{
    a->expiry_ms = now_ms + (uint64_t)lifetime_s * 1000u;
}

uint32_t rly_alloc_remaining_s(const rly_alloc *a, uint64_t now_ms)
{
    return a->expiry_ms > now_ms ? (uint32_t)((a->expiry_ms - now_ms + 999) / 1000) : 0;
}

int rly_alloc_permit(rly_alloc *a, const rtc_addr *peer, uint64_t now_ms)
{
    for (unsigned i = 0; i < a->n_perms; i++) {
        if (rtc_addr_ip_equal(&a->perms[i].peer, peer)) {
            a->perms[i].expiry_ms = now_ms + RLY_PERM_MS;
            return 0;
        }
    }
    if (a->n_perms >= RLY_MAX_PERMS)
        rly_alloc_purge(a, now_ms);
    if (a->n_perms >= RLY_MAX_PERMS)
        return RTC_ELIMIT;
    a->perms[a->n_perms].peer = *peer;
    a->perms[a->n_perms].peer.port = 0;
    a->perms[a->n_perms].expiry_ms = now_ms + RLY_PERM_MS;
    a->n_perms++;
    return 0;
}

bool rly_alloc_permitted(const rly_alloc *a, const rtc_addr *peer, uint64_t now_ms)
{
    for (unsigned i = 0; i < a->n_perms; i++)
        if (rtc_addr_ip_equal(&a->perms[i].peer, peer))
            return now_ms < a->perms[i].expiry_ms;
    return false;
}

int rly_alloc_bind(rly_alloc *a, uint16_t chan, const rtc_addr *peer, uint64_t now_ms)
{
    int slot = -1;

    /* s.12: a number stays tied to its peer, and a peer to its number, while
     * bound and for 5 minutes after the binding expires, so late packets of
     * the old binding can never be delivered to a new peer. */
    for (unsigned i = 0; i < a->n_chans; i++) {
        rly_chan *c = &a->chans[i];
        bool held = now_ms < c->expiry_ms + RLY_CHAN_HOLD_MS;
        bool same_num = c->num == chan, same_peer = rtc_addr_equal(&c->peer, peer);
        if (!held)
            continue;
        if (same_num && same_peer) {
            slot = (int)i;
            break;
        }
        if (same_num || same_peer)
            return RTC_EEXIST;
    }
    if (slot < 0) {
        if (a->n_chans >= RLY_MAX_CHANS)
            rly_alloc_purge(a, now_ms);
        if (a->n_chans >= RLY_MAX_CHANS)
            return RTC_ELIMIT;
        /* reserve the permission first so a full permission list leaves
         * no half-made binding behind */
        if (rly_alloc_permit(a, peer, now_ms))
            return RTC_ELIMIT;
        slot = a->n_chans++;
        a->chans[slot].num = chan;
        a->chans[slot].peer = *peer;
    } else if (rly_alloc_permit(a, peer, now_ms)) {
        return RTC_ELIMIT;
    }
    a->chans[slot].expiry_ms = now_ms + RLY_CHAN_MS;
    return 0;
}

const rly_chan *rly_alloc_chan_by_num(const rly_alloc *a, uint16_t chan, uint64_t now_ms)
{
    for (unsigned i = 0; i < a->n_chans; i++)
        if (a->chans[i].num == chan)
            return now_ms < a->chans[i].expiry_ms ? &a->chans[i] : NULL;
    return NULL;
}

const rly_chan *rly_alloc_chan_by_peer(const rly_alloc *a, const rtc_addr *peer,
                                       uint64_t now_ms)
{
    for (unsigned i = 0; i < a->n_chans; i++)
        if (now_ms < a->chans[i].expiry_ms && rtc_addr_equal(&a->chans[i].peer, peer))
            return &a->chans[i];
    return NULL;
}

void rly_alloc_purge(rly_alloc *a, uint64_t now_ms)
{
    unsigned o = 0;
    for (unsigned i = 0; i < a->n_perms; i++)
        if (now_ms < a->perms[i].expiry_ms)
            a->perms[o++] = a->perms[i];
    a->n_perms = (uint8_t)o;
    o = 0;
    for (unsigned i = 0; i < a->n_chans; i++)
        if (now_ms < a->chans[i].expiry_ms + RLY_CHAN_HOLD_MS)
            a->chans[o++] = a->chans[i];
    a->n_chans = (uint8_t)o;
}

bool rly_alloc_bw_take_limited(rly_alloc *a, uint64_t rate, size_t len, uint64_t now_ms)
{
    /* The allocation keeps whole bytes and the last refill time, which is
     * what the takeover state carries (relay/io/rly_takeover.c); the part
     * of a byte that accrued (rtc_tbucket's frac) is not kept, so a refill
     * adds floor(dt x rate / 1000) bytes, as the relay always did. */
    const rtc_tbucket_rate r = {.per_s = rate, .burst = rate, .ticks = 1000};
    rtc_tbucket b;
    bool ok;

    rtc_tbucket_set(&b, a->bw_tokens, a->bw_last_ms);
    ok = rtc_tbucket_take(&b, &r, len, now_ms);
    a->bw_tokens = b.tokens;
    a->bw_last_ms = b.last;
    return ok;
}
