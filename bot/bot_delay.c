/* bot_delay.c - the delay FIFO of --jitter-ms (bot_delay.h). */
#include "bot_delay.h"

#include <stdlib.h>
#include <string.h>

struct bot_delay {
    uint32_t max_ms;
    uint64_t rng;
    size_t cap;
    unsigned head, len;
    uint64_t last_due;
    uint64_t due[BOT_DELAY_SLOTS];
    size_t n[BOT_DELAY_SLOTS];
    uint8_t *buf; /* BOT_DELAY_SLOTS x cap */
};

bot_delay *bot_delay_new(uint32_t max_ms, uint64_t seed, size_t pkt_cap)
{
    bot_delay *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    d->buf = malloc(BOT_DELAY_SLOTS * pkt_cap);
    if (!d->buf) {
        free(d);
        return NULL;
    }
    d->max_ms = max_ms;
    d->rng = seed ? seed : 0x9E3779B97F4A7C15ull;
    d->cap = pkt_cap;
    return d;
}

void bot_delay_free(bot_delay *d)
{
    if (!d)
        return;
    free(d->buf);
    free(d);
}

/* xorshift64 (Marsaglia): enough for a test impairment, and repeatable */
static uint64_t next_rand(bot_delay *d)
{
    d->rng ^= d->rng << 13;
    d->rng ^= d->rng >> 7;
    d->rng ^= d->rng << 17;
    return d->rng;
}

bool bot_delay_push(bot_delay *d, const uint8_t *p, size_t n, uint64_t now_us)
{
    unsigned i;
    uint64_t due;

    if (d->len == BOT_DELAY_SLOTS || n > d->cap)
        return false;
    due = now_us + next_rand(d) % ((uint64_t)d->max_ms * 1000 + 1);
    if (d->len && due < d->last_due)
        due = d->last_due; /* FIFO: jitter, not reordering */
    i = (d->head + d->len) % BOT_DELAY_SLOTS;
    memcpy(d->buf + (size_t)i * d->cap, p, n);
    d->n[i] = n;
    d->due[i] = due;
    d->last_due = due;
    d->len++;
    return true;
}

const uint8_t *bot_delay_due(const bot_delay *d, uint64_t now_us, size_t *n)
{
    if (!d->len || d->due[d->head] > now_us)
        return NULL;
    *n = d->n[d->head];
    return d->buf + (size_t)d->head * d->cap;
}

void bot_delay_pop(bot_delay *d)
{
    if (!d->len)
        return;
    d->head = (d->head + 1) % BOT_DELAY_SLOTS;
    d->len--;
}

uint64_t bot_delay_next_us(const bot_delay *d)
{
    return d->len ? d->due[d->head] : 0;
}
