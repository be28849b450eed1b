/* sig_fleet.h - the relay fleet as signaling sees it (docs/fleet.md): which
 * relays exist, their state, which relay each room here uses, the canary
 * shares, and the automatic rollback. Pure state: no sockets, no clock
 * (callers pass monotonic microseconds; a relay's change of state is
 * logged); sig_fleet_src.c feeds it reports (from the
 * Redis registry or the static pool's /healthz checks) and sig_fleet_hook.c
 * ties it to joins and members. One thread: the lws service thread.
 *
 * Placement (sig_fleet_place): a room keeps its relay while it has members
 * here and the relay is not dead. A new room (or one whose relay died)
 * first picks a generation: a stable hash of the room name in [0, 10000)
 * falls into the canary generations' shares in name order (percent x 100
 * each), else the baseline (every generation without a share entry). Then
 * weighted rendezvous hashing (highest -weight / ln(u), u = hash(room,
 * relay) in (0,1)) over that generation's relays that are up, not draining
 * and below max_load allocations. The hashes use no per-process key, so
 * every signaling node with the same view of the fleet places a room on the
 * same relay, which is what keeps the members of a room that joined through
 * different nodes on one relay. When the chosen generation has no usable
 * relay, the baseline is used, then any usable relay.
 *
 * Rollback (sig_fleet_judge): per generation, the relays' running sums of
 * finished RTP streams' loss ratio and jitter are accumulated (a relay
 * restart that resets its sums adds nothing) and sampled each second; over
 * the last window_s seconds, the mean loss and jitter of each canary
 * generation are compared with the baseline's. When both sides have at
 * least min_sample streams and the canary is worse by more than a margin
 * for hold_s seconds running, its share is set to 0. */
#ifndef SIG_FLEET_H
#define SIG_FLEET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SIG_FLEET_MAX_RELAYS 64
#define SIG_FLEET_MAX_URLS 8
#define SIG_FLEET_MAX_CANARY 8
#define SIG_FLEET_NAME_MAX 128
#define SIG_FLEET_URL_MAX 256
#define SIG_FLEET_HISTORY 600 /* one sample a second: the longest window */
/* A registry relay beats every second and its entry expires 3 s after its
 * last beat; a beat counter that has not moved for 2.2 s (two missed beats)
 * already stops new rooms, so that a relay that died gets none later than
 * ~3 s after its death (2.2 s + the 0.5 s read), before its entry expires. */
#define SIG_FLEET_STALE_US 2200000u

typedef enum {
    SIG_FLEET_UP = 0,
    SIG_FLEET_DRAINING, /* takes no new room; its rooms stay */
    SIG_FLEET_FULL,     /* at or over max_load: no new room */
    SIG_FLEET_DEAD,     /* missed its beats or failed health: rooms move */
    SIG_FLEET_STALE,    /* registry: its beat has not moved for SIG_FLEET_STALE_US:
                         * no new room (its rooms stay until it is dead) */
    SIG_FLEET__N
} sig_fleet_state;

extern const char *const sig_fleet_state_names[SIG_FLEET__N];

/* One relay as a source reports it (copied in). */
typedef struct {
    char name[SIG_FLEET_NAME_MAX], generation[SIG_FLEET_NAME_MAX];
    char urls[SIG_FLEET_MAX_URLS][SIG_FLEET_URL_MAX];
    size_t nurls;
    double weight; /* > 0 */
    uint64_t beat; /* registry: the relay's beat counter (0: no beats, static pool) */
    bool alive, draining;
    uint64_t allocations;
    double cpu;
    /* running sums of finished streams (0 when the source has none) */
    double loss_sum, jitter_sum;
    uint64_t loss_count, jitter_count;
} sig_fleet_report;

/* A relay as the fleet holds it (read-only views for metrics and admin). */
typedef struct {
    sig_fleet_report r;
    sig_fleet_state state;
    uint64_t rooms;       /* rooms here on it */
    uint64_t assignments; /* rooms placed on it (counter) */
    uint64_t beat_us;     /* when its beat counter last moved (registry) */
    bool seen;            /* in the last report set */
} sig_fleet_relay;

typedef struct {
    uint64_t max_load; /* allocations; 0 = no cap */
    double max_loss_delta, max_jitter_delta; /* ratio (0.05 = 5 points), seconds */
    uint64_t min_sample;                     /* streams on each side */
    uint32_t window_s, hold_s;
} sig_fleet_params;

typedef struct sig_fleet sig_fleet;

sig_fleet *sig_fleet_new(const sig_fleet_params *p); /* NULL on ENOMEM */
void sig_fleet_free(sig_fleet *f);                   /* NULL is a no-op */
void sig_fleet_set_params(sig_fleet *f, const sig_fleet_params *p);

/* A full report set from one source: relays missing from it are DEAD (kept
 * for the metrics). Returns how many relays turned DEAD with this call;
 * their rooms are for sig_fleet_next_orphan. */
size_t sig_fleet_update(sig_fleet *f, const sig_fleet_report *v, size_t n, uint64_t now_us);

/* Canary shares: percent 0..100 of new rooms for generation gen. A
 * generation with an entry (even 0) is not baseline. 0 or -ENOSPC/-EINVAL. */
int sig_fleet_set_canary(sig_fleet *f, const char *gen, unsigned percent);
/* Drop every share (static mode's reset; a registry set replaces all). */
void sig_fleet_clear_canary(sig_fleet *f);
size_t sig_fleet_canary_count(const sig_fleet *f);
void sig_fleet_canary_get(const sig_fleet *f, size_t i, const char **gen, unsigned *percent);

/* The relay for room: its current one, or a fresh placement (counted in
 * assignments). NULL when no relay is usable. Borrowed until the next
 * update. The room is remembered until sig_fleet_room_gone. */
const sig_fleet_relay *sig_fleet_place(sig_fleet *f, const char *room);
/* Where a room would go now, without remembering it (tests, admin). */
const sig_fleet_relay *sig_fleet_pick(const sig_fleet *f, const char *room);
void sig_fleet_room_gone(sig_fleet *f, const char *room);
size_t sig_fleet_rooms(const sig_fleet *f);
/* Forget every room keep(ud, name) says no to (a join that failed after
 * its placement: room full, Redis refused). Returns how many went. */
size_t sig_fleet_sweep(sig_fleet *f, bool (*keep)(void *ud, const char *room), void *ud);
/* A room whose relay is dead: its name (borrowed until the next call that
 * changes rooms), or NULL when none is left. The caller places it again
 * (sig_fleet_place moves it) and tells its members. Each orphan is handed
 * out once per update: one that found no usable relay comes again after
 * the next sig_fleet_update. */
const char *sig_fleet_next_orphan(sig_fleet *f);

size_t sig_fleet_count(const sig_fleet *f);
const sig_fleet_relay *sig_fleet_get(const sig_fleet *f, size_t i);

/* Rollback check (call about once a second). When a canary is rolled back:
 * true, its generation in gen and the reason in why (its share is 0 now).
 * At most one per call. */
bool sig_fleet_judge(sig_fleet *f, uint64_t now_us, char *gen, size_t genlen, char *why,
                     size_t whylen);
uint64_t sig_fleet_rollbacks(const sig_fleet *f);
/* The generations seen so far (at most 16), with their rollbacks. */
size_t sig_fleet_gen_count(const sig_fleet *f);
void sig_fleet_gen_get(const sig_fleet *f, size_t i, const char **name, uint64_t *rollbacks);

#define SIG_FLEET_HEALTHZ_MAX 256
/* One --relay value: NAME=URL[,URL...][,generation=G][,weight=W]
 * [,healthz=http://IP:PORT/healthz] (the healthz
 * URL's form is the caller's to check). 0, or RTC_EMSG with err. */
int sig_fleet_parse_static(const char *v, sig_fleet_report *out, char healthz[SIG_FLEET_HEALTHZ_MAX],
                           char *err, size_t errlen);
/* One --canary value: G=PERCENT. 0, or RTC_EMSG with err. */
int sig_fleet_parse_canary(const char *v, char *gen, size_t genlen, unsigned *percent,
                           char *err, size_t errlen);
/* A registry entry's JSON (what the relay's rly_announce writes; bytes from
 * Redis, checked like any input) -> report. 0 or RTC_EMSG. */
int sig_fleet_parse_beat(const char *json, size_t len, sig_fleet_report *out);

/* The stable hash placement uses (exposed for the unit test). */
uint64_t sig_fleet_hash(const char *a, const char *b);

#endif
