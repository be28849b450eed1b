/* bot_delay.h - the --jitter-ms test impairment: a FIFO that holds each
 * outgoing (already protected) packet for a random 0..max_ms before it is
 * sent, the way a jittery network path would delay it.
 *
 * Order is kept (a packet never leaves before the one queued ahead of it),
 * so the receiver sees jitter, not reordering. Random delays come from a
 * xorshift generator seeded by the caller, so a run repeats. Pure: no
 * clock, no socket; the call (bot_call.c) sends what is due and arms a
 * timer on its thread for the next one. Bounded: BOT_DELAY_SLOTS packets;
 * a full queue refuses, and the caller sends at once. */
#ifndef BOT_DELAY_H
#define BOT_DELAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BOT_DELAY_SLOTS 16   /* 20 ms packets: room for 300 ms of delay */
#define BOT_DELAY_MAX_MS 200 /* the option's upper bound */

typedef struct bot_delay bot_delay; /* opaque */

/* NULL on ENOMEM. seed 0 is replaced by a fixed non-zero one. */
bot_delay *bot_delay_new(uint32_t max_ms, uint64_t seed, size_t pkt_cap);
void bot_delay_free(bot_delay *d); /* NULL is a no-op */

/* Copy p[0..n) in, due at now + random(0..max_ms) µs (not before the
 * packet ahead). false when full or n > pkt_cap: send it now instead. */
bool bot_delay_push(bot_delay *d, const uint8_t *p, size_t n, uint64_t now_us);
/* The oldest packet when it is due by now_us (its length in *n), else
 * NULL; bot_delay_pop drops it once sent. */
const uint8_t *bot_delay_due(const bot_delay *d, uint64_t now_us, size_t *n);
void bot_delay_pop(bot_delay *d);
/* When the oldest packet is due; 0 = empty. */
uint64_t bot_delay_next_us(const bot_delay *d);

#endif
