/* sig_fleet_src.h - where the fleet's relay reports come from (docs/fleet.md):
 *
 * - the registry: a thread of its own with one blocking connection (bounded
 *   by a 1 s timeout) to --relay-registry's Redis, through sig_redis_ops. Every
 *   SIG_FLEET_SRC_PERIOD_US it first writes the canary shares this node
 *   changed (HSET tsunagu:fleet:canary G PERCENT), then reads every
 *   tsunagu:relay:* entry (SCAN + MGET: what the relays' heartbeats wrote) and
 *   the canary hash, and leaves the result as a snapshot for the lws thread.
 * - the static pool (--relay NAME=URL[,...]): parsed here; its /healthz
 *   checks are stepped by the caller (sig_fleet_hook.c) on the lws thread.
 *
 * The lws thread only ever takes the snapshot under the mutex; it never
 * waits for Redis. */
#ifndef SIG_FLEET_SRC_H
#define SIG_FLEET_SRC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sig_fleet.h"
#include "sig_redis.h"

#define SIG_FLEET_SRC_PERIOD_US 500000


typedef struct sig_fleet_src sig_fleet_src;

/* Start the registry thread on url (a --redis style URL); `initial`
 * shares are written with HSETNX (a share set at runtime survives a node's
 * restart). poke(ud) is called from the thread when a snapshot is ready.
 * NULL with err. */
sig_fleet_src *sig_fleet_src_start(const sig_redis_ops *ops, const char *url,
                                   char (*initial_gen)[SIG_FLEET_NAME_MAX],
                                   const unsigned *initial_pct, size_t ninitial, char *err,
                                   size_t errlen);
void sig_fleet_src_stop(sig_fleet_src *s); /* NULL is a no-op; joins the thread */

/* Queue a share for every node (HSET on the next turn). */
void sig_fleet_src_put_canary(sig_fleet_src *s, const char *gen, unsigned percent);

/* The newest snapshot, if one came since the last take: *v (caller frees)
 * with *n reports, the shares in gens/pcts (*ncanary, at most
 * SIG_FLEET_MAX_CANARY; not filled when `canary_ok` is false: a share this
 * node queued was not written yet when it was read). false when none is
 * new. *up: Redis answered the last turn. */
bool sig_fleet_src_take(sig_fleet_src *s, sig_fleet_report **v, size_t *n,
                        char (*gens)[SIG_FLEET_NAME_MAX], unsigned *pcts, size_t *ncanary,
                        bool *canary_ok, bool *up);

#endif
