/* rly_announce.h - the relay's entry in the fleet registry (docs/fleet.md):
 * with --announce redis://..., a heartbeat every RLY_ANNOUNCE_PERIOD_MS that
 * SETs key "tsunagu:relay:NAME" to a small JSON object (its TURN URLs,
 * generation, allocations, CPU, draining flag, and the relay-side quality
 * of finished RTP streams as running sums) with a time to live of three
 * beats, so signaling drops a relay that missed three beats.
 *
 * Runs on a thread of its own with a blocking hiredis connection (bounded by
 * a 1 s timeout): Redis being slow or gone never touches a worker's loop.
 * It reads the workers' counters the way the /metrics scrape does (plain
 * words read while the workers write them) and a draining flag change is
 * announced within RLY_ANNOUNCE_POLL_MS. hiredis is included only by
 * rly_announce.c. */
#ifndef RLY_ANNOUNCE_H
#define RLY_ANNOUNCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rly_worker.h"

#define RLY_ANNOUNCE_PERIOD_MS 1000
#define RLY_ANNOUNCE_POLL_MS 100
#define RLY_ANNOUNCE_BEATS 3 /* missed beats before the entry expires */
#define RLY_ANNOUNCE_FIELD_MAX 256

typedef struct rly_announce rly_announce; /* opaque */

/* What the thread borrows: every pointer must outlive rly_announce_stop. */
typedef struct {
    const char *redis;        /* redis://[[USER]:PASSWORD@]HOST[:PORT][/DB] */
    const char *name;         /* registry name (unique in the fleet) */
    const char *generation;   /* e.g. "v2" */
    char *const *urls;        /* turn:/turns:/stun: URLs clients get */
    size_t n_urls;
    rly_worker *const *workers;
    size_t n_workers;
} rly_announce_params;

/* A check for the settings table: a string that goes into the JSON as is
 * (no quote, backslash or control character; 1..RLY_ANNOUNCE_FIELD_MAX-1
 * bytes). 0 or RTC_EMSG with err. */
int rly_announce_check_field(const char *v, char *err, size_t errlen);
/* The --announce URL. 0 or RTC_EMSG with err (never echoing a password). */
int rly_announce_check_url(const char *v, char *err, size_t errlen);

/* Start the thread. NULL with err (bad URL, no memory, no thread). A Redis
 * that is down is not an error: the thread keeps trying every beat. */
rly_announce *rly_announce_start(const rly_announce_params *p, char *err, size_t errlen);
/* Stop and join the thread (within about a second); NULL is a no-op. The
 * entry is left to expire: a takeover's new process announces the same
 * name, and deleting it here could delete that one's beat. */
void rly_announce_stop(rly_announce *a);

/* The JSON value of one beat (pure; for the unit test). Returns the length,
 * or -1 when it does not fit. */
typedef struct {
    const char *name, *generation;
    char *const *urls;
    size_t n_urls;
    uint64_t allocations, beat;
    double cpu; /* cores busy over the last beat */
    bool draining;
    double loss_sum, jitter_sum; /* finished streams: ratio and seconds, summed */
    uint64_t loss_count, jitter_count;
} rly_announce_beat;
int rly_announce_json(const rly_announce_beat *b, char *out, size_t cap);

#endif
