/* sig_fleet.c - the relay fleet: states, placement, canary shares and the
 * automatic rollback (see sig_fleet.h). */
#include "sig_fleet.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rtc_log.h"
#include "rtc_map.h"

#define MAX_GENS 16

const char *const sig_fleet_state_names[SIG_FLEET__N] = {"up", "draining", "full", "dead",
                                                          "stale"};

typedef struct {
    rtc_map_node node;
    int relay; /* index into relays */
    bool orphan;
    char name[];
} room;

/* Running sums of one generation, summed from its relays' increments. */
typedef struct {
    double loss_sum, jitter_sum;
    uint64_t loss_count, jitter_count;
} qsum;

typedef struct {
    char name[SIG_FLEET_NAME_MAX];
    qsum acc;
    qsum ring[SIG_FLEET_HISTORY]; /* one a second; next write at head */
    size_t head, n;
    uint64_t bad_since_us; /* 0: not worse */
    uint64_t rollbacks;
} gen;

typedef struct {
    char gen[SIG_FLEET_NAME_MAX];
    unsigned percent;
} share;

struct sig_fleet {
    sig_fleet_params p;
    sig_fleet_relay relays[SIG_FLEET_MAX_RELAYS];
    qsum prev[SIG_FLEET_MAX_RELAYS]; /* each relay's sums at its last report */
    size_t n;
    share canary[SIG_FLEET_MAX_CANARY];
    size_t ncanary;
    gen gens[MAX_GENS];
    size_t ngens;
    rtc_map rooms;
    uint64_t last_sample_us, rollbacks;
};

/* FNV-1a over a, NUL, b; then a 64-bit finaliser (splitmix64) so that
 * nearby names spread over the whole range. No key: every node must get
 * the same answer (sig_fleet.h). */
uint64_t sig_fleet_hash(const char *a, const char *b)
{
    uint64_t h = 1469598103934665603ULL;
    for (const char *p = a; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    h = (h ^ 0xffu) * 1099511628211ULL;
    for (const char *p = b; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebULL;
    h ^= h >> 31;
    return h;
}

sig_fleet *sig_fleet_new(const sig_fleet_params *p)
{
    sig_fleet *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->p = *p;
    rtc_map_init(&f->rooms); /* a weaker key is still a working map */
    return f;
}

void sig_fleet_free(sig_fleet *f)
{
    rtc_map_iter it;
    rtc_map_node *nd;
    if (!f)
        return;
    rtc_map_iter_init(&it, &f->rooms);
    while ((nd = rtc_map_iter_next(&it))) {
        rtc_map_remove(&f->rooms, nd);
        free(RTC_MAP_ENTRY(nd, room, node));
    }
    rtc_map_dispose(&f->rooms);
    free(f);
}

void sig_fleet_set_params(sig_fleet *f, const sig_fleet_params *p) { f->p = *p; }

static gen *gen_of(sig_fleet *f, const char *name)
{
    for (size_t i = 0; i < f->ngens; i++)
        if (!strcmp(f->gens[i].name, name))
            return &f->gens[i];
    if (f->ngens == MAX_GENS)
        return NULL;
    memset(&f->gens[f->ngens], 0, sizeof f->gens[0]);
    snprintf(f->gens[f->ngens].name, sizeof f->gens[0].name, "%s", name);
    return &f->gens[f->ngens++];
}

static sig_fleet_state state_of(const sig_fleet *f, const sig_fleet_relay *rl, uint64_t now_us)
{
    const sig_fleet_report *r = &rl->r;
    if (!r->alive)
        return SIG_FLEET_DEAD;
    if (r->beat && now_us - rl->beat_us > SIG_FLEET_STALE_US)
        return SIG_FLEET_STALE;
    if (r->draining)
        return SIG_FLEET_DRAINING;
    if (f->p.max_load && r->allocations >= f->p.max_load)
        return SIG_FLEET_FULL;
    return SIG_FLEET_UP;
}

/* The slot for relay `name`: its own, a new one, or a dead one that holds
 * no room (its history goes). -1 when the table is full. */
static int slot_of(sig_fleet *f, const char *name)
{
    for (size_t i = 0; i < f->n; i++)
        if (!strcmp(f->relays[i].r.name, name))
            return (int)i;
    if (f->n < SIG_FLEET_MAX_RELAYS) {
        memset(&f->relays[f->n], 0, sizeof f->relays[0]);
        memset(&f->prev[f->n], 0, sizeof f->prev[0]);
        return (int)f->n++;
    }
    for (size_t i = 0; i < f->n; i++)
        if (f->relays[i].state == SIG_FLEET_DEAD && !f->relays[i].rooms) {
            memset(&f->relays[i], 0, sizeof f->relays[0]);
            memset(&f->prev[i], 0, sizeof f->prev[0]);
            return (int)i;
        }
    return -1;
}

/* A relay's sums moved from prev to cur: add the increase to its
 * generation (a decrease is a restarted relay: start again from cur). */
static void accumulate(sig_fleet *f, int i, const sig_fleet_report *cur)
{
    qsum *pv = &f->prev[i];
    gen *g = gen_of(f, cur->generation);
    if (g && cur->loss_count >= pv->loss_count && cur->jitter_count >= pv->jitter_count &&
        cur->loss_sum >= pv->loss_sum && cur->jitter_sum >= pv->jitter_sum) {
        g->acc.loss_sum += cur->loss_sum - pv->loss_sum;
        g->acc.loss_count += cur->loss_count - pv->loss_count;
        g->acc.jitter_sum += cur->jitter_sum - pv->jitter_sum;
        g->acc.jitter_count += cur->jitter_count - pv->jitter_count;
    }
    *pv = (qsum){cur->loss_sum, cur->jitter_sum, cur->loss_count, cur->jitter_count};
}

size_t sig_fleet_update(sig_fleet *f, const sig_fleet_report *v, size_t n, uint64_t now_us)
{
    size_t died = 0;
    rtc_map_iter it;
    rtc_map_node *nd;
    for (size_t i = 0; i < f->n; i++)
        f->relays[i].seen = false;
    for (size_t k = 0; k < n; k++) {
        int i = slot_of(f, v[k].name);
        sig_fleet_relay *r;
        if (i < 0)
            continue; /* more relays than the table: the rest are not placed on */
        r = &f->relays[i];
        if (r->r.name[0] && strcmp(r->r.generation, v[k].generation))
            memset(&f->prev[i], 0, sizeof f->prev[0]); /* replaced by another release */
        accumulate(f, i, &v[k]);
        if (!r->r.name[0] || v[k].beat != r->r.beat)
            r->beat_us = now_us;
        r->r = v[k];
        if (r->r.weight <= 0)
            r->r.weight = 1;
        r->seen = true;
    }
    for (size_t i = 0; i < f->n; i++) {
        sig_fleet_relay *r = &f->relays[i];
        sig_fleet_state was = r->state, now;
        if (!r->seen)
            r->r.alive = false;
        now = state_of(f, r, now_us);
        if (now == SIG_FLEET_DEAD && was != SIG_FLEET_DEAD && r->rooms) {
            died++;
            RTC_LOG(RTC_LOG_WARN, "fleet", "relay %s (%s) is dead: its %llu room(s) move",
                    r->r.name, r->r.generation, (unsigned long long)r->rooms);
        } else if (now != was && r->r.name[0]) {
            RTC_LOG(RTC_LOG_INFO, "fleet", "relay %s (%s): %s", r->r.name, r->r.generation,
                    sig_fleet_state_names[now]);
        }
        r->state = now;
    }
    /* rooms on dead relays become orphans: bounded by the rooms here */
    rtc_map_iter_init(&it, &f->rooms);
    while ((nd = rtc_map_iter_next(&it))) {
        room *rm = RTC_MAP_ENTRY(nd, room, node);
        if (rm->relay >= 0 && f->relays[rm->relay].state == SIG_FLEET_DEAD)
            rm->orphan = true;
    }
    return died;
}

int sig_fleet_set_canary(sig_fleet *f, const char *g, unsigned percent)
{
    size_t i;
    if (percent > 100 || !*g || strlen(g) >= SIG_FLEET_NAME_MAX)
        return -EINVAL;
    for (i = 0; i < f->ncanary; i++)
        if (!strcmp(f->canary[i].gen, g))
            break;
    if (i == f->ncanary) {
        if (f->ncanary == SIG_FLEET_MAX_CANARY)
            return -ENOSPC;
        /* kept in name order: every node walks the shares alike */
        while (i > 0 && strcmp(f->canary[i - 1].gen, g) > 0) {
            f->canary[i] = f->canary[i - 1];
            i--;
        }
        snprintf(f->canary[i].gen, sizeof f->canary[i].gen, "%s", g);
        f->ncanary++;
    }
    if (f->canary[i].percent != percent) {
        gen *gg = gen_of(f, g);
        if (gg)
            gg->bad_since_us = 0; /* a new share is judged afresh */
    }
    f->canary[i].percent = percent;
    return 0;
}

void sig_fleet_clear_canary(sig_fleet *f) { f->ncanary = 0; }
size_t sig_fleet_canary_count(const sig_fleet *f) { return f->ncanary; }

void sig_fleet_canary_get(const sig_fleet *f, size_t i, const char **g, unsigned *percent)
{
    *g = f->canary[i].gen;
    *percent = f->canary[i].percent;
}

static bool is_canary(const sig_fleet *f, const char *g)
{
    for (size_t i = 0; i < f->ncanary; i++)
        if (!strcmp(f->canary[i].gen, g))
            return true;
    return false;
}

/* Rendezvous over the usable relays of generation g (NULL: the baseline;
 * "": any). -1 when none. */
static int rendezvous(const sig_fleet *f, const char *room_name, const char *g)
{
    double best = -INFINITY;
    int pick = -1;
    for (size_t i = 0; i < f->n; i++) {
        const sig_fleet_relay *r = &f->relays[i];
        double u, score;
        if (r->state != SIG_FLEET_UP || !r->r.nurls)
            continue;
        if (g ? (*g && strcmp(r->r.generation, g)) : is_canary(f, r->r.generation))
            continue;
        /* u in (0,1): 53 bits, never 0 */
        u = ((double)(sig_fleet_hash(room_name, r->r.name) >> 11) + 0.5) / 9007199254740992.0;
        score = -r->r.weight / log(u);
        if (score > best) {
            best = score;
            pick = (int)i;
        }
    }
    return pick;
}

static int pick_index(const sig_fleet *f, const char *room_name)
{
    uint64_t x = sig_fleet_hash(room_name, "canary") % 10000;
    uint64_t edge = 0;
    int i = -1;
    for (size_t k = 0; k < f->ncanary; k++) {
        edge += (uint64_t)f->canary[k].percent * 100;
        if (x < edge) {
            i = rendezvous(f, room_name, f->canary[k].gen);
            break;
        }
    }
    if (i < 0)
        i = rendezvous(f, room_name, NULL);
    if (i < 0)
        i = rendezvous(f, room_name, "");
    return i;
}

const sig_fleet_relay *sig_fleet_pick(const sig_fleet *f, const char *room_name)
{
    int i = pick_index(f, room_name);
    return i < 0 ? NULL : &f->relays[i];
}

const sig_fleet_relay *sig_fleet_place(sig_fleet *f, const char *room_name)
{
    rtc_map_node *nd = rtc_map_find_str(&f->rooms, room_name);
    room *rm = nd ? RTC_MAP_ENTRY(nd, room, node) : NULL;
    size_t len;
    int i;
    if (rm && rm->relay >= 0 && f->relays[rm->relay].state != SIG_FLEET_DEAD)
        return &f->relays[rm->relay];
    if ((i = pick_index(f, room_name)) < 0)
        return NULL;
    if (!rm) {
        len = strlen(room_name);
        if (!(rm = calloc(1, sizeof *rm + len + 1)))
            return &f->relays[i]; /* placed, not remembered */
        memcpy(rm->name, room_name, len + 1);
        rm->relay = -1;
        if (rtc_map_insert(&f->rooms, &rm->node, rm->name, len)) {
            free(rm);
            return &f->relays[i];
        }
    }
    if (rm->relay >= 0 && f->relays[rm->relay].rooms)
        f->relays[rm->relay].rooms--;
    rm->relay = i;
    rm->orphan = false;
    f->relays[i].rooms++;
    f->relays[i].assignments++;
    return &f->relays[i];
}

void sig_fleet_room_gone(sig_fleet *f, const char *room_name)
{
    rtc_map_node *nd = rtc_map_find_str(&f->rooms, room_name);
    room *rm;
    if (!nd)
        return;
    rm = RTC_MAP_ENTRY(nd, room, node);
    if (rm->relay >= 0 && f->relays[rm->relay].rooms)
        f->relays[rm->relay].rooms--;
    rtc_map_remove(&f->rooms, nd);
    free(rm);
}

size_t sig_fleet_rooms(const sig_fleet *f) { return f->rooms.n; }

size_t sig_fleet_sweep(sig_fleet *f, bool (*keep)(void *ud, const char *room), void *ud)
{
    rtc_map_iter it;
    rtc_map_node *nd;
    size_t gone = 0;
    rtc_map_iter_init(&it, &f->rooms);
    while ((nd = rtc_map_iter_next(&it))) {
        room *rm = RTC_MAP_ENTRY(nd, room, node);
        if (keep(ud, rm->name))
            continue;
        if (rm->relay >= 0 && f->relays[rm->relay].rooms)
            f->relays[rm->relay].rooms--;
        rtc_map_remove(&f->rooms, nd); /* (the iterator allows removing its node) */
        free(rm);
        gone++;
    }
    return gone;
}

const char *sig_fleet_next_orphan(sig_fleet *f)
{
    rtc_map_iter it;
    rtc_map_node *nd;
    rtc_map_iter_init(&it, &f->rooms);
    while ((nd = rtc_map_iter_next(&it))) {
        room *rm = RTC_MAP_ENTRY(nd, room, node);
        if (rm->orphan) {
            rm->orphan = false; /* handed out once: a room with no usable relay stays put */
            return rm->name;
        }
    }
    return NULL;
}

size_t sig_fleet_count(const sig_fleet *f) { return f->n; }
const sig_fleet_relay *sig_fleet_get(const sig_fleet *f, size_t i) { return &f->relays[i]; }
uint64_t sig_fleet_rollbacks(const sig_fleet *f) { return f->rollbacks; }
size_t sig_fleet_gen_count(const sig_fleet *f) { return f->ngens; }

void sig_fleet_gen_get(const sig_fleet *f, size_t i, const char **name, uint64_t *rollbacks)
{
    *name = f->gens[i].name;
    *rollbacks = f->gens[i].rollbacks;
}

static void qsum_add(qsum *a, const qsum *b)
{
    a->loss_sum += b->loss_sum;
    a->jitter_sum += b->jitter_sum;
    a->loss_count += b->loss_count;
    a->jitter_count += b->jitter_count;
}

/* What generation g gained over the last window_s samples. */
static qsum window_of(const sig_fleet *f, const gen *g)
{
    size_t back = f->p.window_s < g->n ? f->p.window_s : g->n - 1;
    const qsum *now = &g->ring[(g->head + SIG_FLEET_HISTORY - 1) % SIG_FLEET_HISTORY];
    const qsum *then = &g->ring[(g->head + SIG_FLEET_HISTORY - 1 - back) % SIG_FLEET_HISTORY];
    return (qsum){now->loss_sum - then->loss_sum, now->jitter_sum - then->jitter_sum,
                  now->loss_count - then->loss_count, now->jitter_count - then->jitter_count};
}

bool sig_fleet_judge(sig_fleet *f, uint64_t now_us, char *gname, size_t genlen, char *why,
                     size_t whylen)
{
    qsum base = {0};
    if (f->last_sample_us && now_us - f->last_sample_us < 1000000u)
        return false;
    f->last_sample_us = now_us;
    for (size_t i = 0; i < f->ngens; i++) {
        gen *g = &f->gens[i];
        g->ring[g->head] = g->acc;
        g->head = (g->head + 1) % SIG_FLEET_HISTORY;
        if (g->n < SIG_FLEET_HISTORY)
            g->n++;
    }
    for (size_t i = 0; i < f->ngens; i++)
        if (!is_canary(f, f->gens[i].name) && f->gens[i].n > 1) {
            qsum w = window_of(f, &f->gens[i]);
            qsum_add(&base, &w);
        }
    for (size_t k = 0; k < f->ncanary; k++) {
        gen *g = gen_of(f, f->canary[k].gen);
        qsum w;
        double bl, cl, bj = 0, cj = 0;
        bool worse_loss, worse_jitter;
        if (!g || !f->canary[k].percent || g->n < 2)
            continue;
        w = window_of(f, g);
        if (w.loss_count < f->p.min_sample || base.loss_count < f->p.min_sample) {
            g->bad_since_us = 0; /* too few streams to say anything */
            continue;
        }
        bl = base.loss_sum / (double)base.loss_count;
        cl = w.loss_sum / (double)w.loss_count;
        if (base.jitter_count && w.jitter_count) {
            bj = base.jitter_sum / (double)base.jitter_count;
            cj = w.jitter_sum / (double)w.jitter_count;
        }
        worse_loss = cl - bl > f->p.max_loss_delta;
        worse_jitter = base.jitter_count && w.jitter_count && cj - bj > f->p.max_jitter_delta;
        if (!worse_loss && !worse_jitter) {
            g->bad_since_us = 0;
            continue;
        }
        if (!g->bad_since_us)
            g->bad_since_us = now_us;
        if (now_us - g->bad_since_us < (uint64_t)f->p.hold_s * 1000000u)
            continue;
        snprintf(gname, genlen, "%s", g->name);
        snprintf(why, whylen,
                 "over %us: loss %.2f%% vs baseline %.2f%% (max delta %.2f), jitter %.1f ms vs "
                 "%.1f ms (max delta %.1f), %llu vs %llu streams, worse for %us",
                 f->p.window_s, cl * 100, bl * 100, f->p.max_loss_delta * 100, cj * 1000,
                 bj * 1000, f->p.max_jitter_delta * 1000, (unsigned long long)w.loss_count,
                 (unsigned long long)base.loss_count, f->p.hold_s);
        f->canary[k].percent = 0;
        g->bad_since_us = 0;
        g->rollbacks++;
        f->rollbacks++;
        return true;
    }
    return false;
}
