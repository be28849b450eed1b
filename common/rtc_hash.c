/* rtc_hash.c - SipHash-2-4 (see rtc_hash.h), written from the paper's
 * description (s.2): state v0..v3 initialised from the key and the ASCII
 * constant "somepseudorandomlygeneratedbytes"; each 8-byte little-endian
 * message word m is absorbed as v3 ^= m, c SipRounds, v0 ^= m; the last word
 * carries the remaining 0-7 bytes and, in its top byte, the message length
 * mod 256; finalization is v2 ^= 0xff, d SipRounds, and the result
 * v0 ^ v1 ^ v2 ^ v3. Here c = 2 and d = 4. */
#include "rtc_hash.h"

#include <errno.h>
#include <pthread.h>
#include <sys/random.h>
#include <time.h>

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))

typedef struct {
    uint64_t v0, v1, v2, v3;
} sip_state;

/* The SipRound of the paper's Figure 2.1. */
static inline void sipround(sip_state *s)
{
    s->v0 += s->v1;
    s->v1 = ROTL(s->v1, 13);
    s->v1 ^= s->v0;
    s->v0 = ROTL(s->v0, 32);
    s->v2 += s->v3;
    s->v3 = ROTL(s->v3, 16);
    s->v3 ^= s->v2;
    s->v0 += s->v3;
    s->v3 = ROTL(s->v3, 21);
    s->v3 ^= s->v0;
    s->v2 += s->v1;
    s->v1 = ROTL(s->v1, 17);
    s->v1 ^= s->v2;
    s->v2 = ROTL(s->v2, 32);
}

static inline uint64_t load_le64(const uint8_t *p)
{
    uint64_t x = 0;
    for (int i = 7; i >= 0; i--)
        x = x << 8 | p[i];
    return x;
}

static inline void absorb(sip_state *s, uint64_t m)
{
    s->v3 ^= m;
    sipround(s);
    sipround(s);
    s->v0 ^= m;
}

uint64_t rtc_siphash24(const rtc_hash_key *k, const void *data, size_t len)
{
    const uint8_t *p = data, *end = p + (len & ~(size_t)7);
    sip_state s = {
        .v0 = k->k0 ^ 0x736f6d6570736575ull, /* "somepseu" */
        .v1 = k->k1 ^ 0x646f72616e646f6dull, /* "dorandom" */
        .v2 = k->k0 ^ 0x6c7967656e657261ull, /* "lygenera" */
        .v3 = k->k1 ^ 0x7465646279746573ull, /* "tedbytes" */
    };
    uint64_t last = (uint64_t)(len & 0xff) << 56;

    for (; p < end; p += 8)
        absorb(&s, load_le64(p));
    for (size_t i = 0; i < (len & 7); i++)
        last |= (uint64_t)p[i] << (8 * i);
    absorb(&s, last);
    s.v2 ^= 0xff;
    for (int i = 0; i < 4; i++)
        sipround(&s);
    return s.v0 ^ s.v1 ^ s.v2 ^ s.v3;
}

void rtc_hash_key_from_bytes(rtc_hash_key *k, const uint8_t bytes[RTC_HASH_KEY_LEN])
{
    k->k0 = load_le64(bytes);
    k->k1 = load_le64(bytes + 8);
}

int rtc_hash_key_random(rtc_hash_key *k)
{
    uint8_t b[RTC_HASH_KEY_LEN];
    size_t got = 0;

    while (got < sizeof b) {
        ssize_t n = getrandom(b + got, sizeof b - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            /* no kernel randomness (seccomp, ancient kernel): still return a
             * key that differs per table and per run, and say so */
            int rc = n < 0 ? -errno : -EIO;
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            k->k0 = (uint64_t)ts.tv_nsec ^ (uint64_t)(uintptr_t)k;
            k->k1 = (uint64_t)ts.tv_sec ^ (uint64_t)(uintptr_t)&ts;
            return rc;
        }
        got += (size_t)n;
    }
    rtc_hash_key_from_bytes(k, b);
    return 0;
}

static rtc_hash_key g_process_key; /* written once under g_once, then read-only */
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void draw_process_key(void) { (void)rtc_hash_key_random(&g_process_key); }

const rtc_hash_key *rtc_hash_process_key(void)
{
    pthread_once(&g_once, draw_process_key);
    return &g_process_key;
}
