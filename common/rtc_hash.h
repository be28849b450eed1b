/* rtc_hash.h - SipHash-2-4, the keyed hash for tables that hold names or
 * addresses chosen by remote parties.
 *
 * Why keyed: a table indexed by an unkeyed hash (FNV-1a, djb2) lets whoever
 * chooses the keys (room names, usernames, source addresses) compute which
 * bucket each lands in, and pile thousands into one chain: every lookup
 * then walks the whole chain (hash flooding, CVE-2011-4885 and kin). SipHash
 * (Aumasson and Bernstein, "SipHash: a fast short-input PRF", 2012) is a PRF
 * under a 128-bit secret key: without the key the bucket cannot be predicted.
 * SipHash-2-4 (two compression rounds per 8-byte word, four finalization
 * rounds) is the variant the paper recommends and the one its test vectors
 * are for.
 *
 * Keys: rtc_hash_key_random() draws a fresh key from getrandom(2) (each
 * rtc_map does this, so two tables never share a key); rtc_hash_process_key()
 * is one key per process, drawn on first use and immutable afterwards, for
 * callers that hash outside any one table (e.g. a sharding decision that must
 * be stable for the life of the process but unpredictable from outside).
 *
 * Everything here is pure, thread-safe and allocation-free. */
#ifndef RTC_HASH_H
#define RTC_HASH_H

#include <stddef.h>
#include <stdint.h>

#define RTC_HASH_KEY_LEN 16

/* A 128-bit SipHash key: k0 and k1 are the key bytes 0-7 and 8-15 read
 * little-endian, as the paper defines them. */
typedef struct {
    uint64_t k0, k1;
} rtc_hash_key;

/* The key from its 16-byte wire form (paper's byte order). */
void rtc_hash_key_from_bytes(rtc_hash_key *k, const uint8_t bytes[RTC_HASH_KEY_LEN]);

/* Fill *k from getrandom(2) (the kernel CSPRNG; it blocks only before the
 * pool is first initialised at boot). 0, or -errno when no random bytes
 * could be had (then *k is still filled, from the clock and addresses, which
 * keeps tables working but is guessable: callers that care check the code). */
int rtc_hash_key_random(rtc_hash_key *k);

/* One random key per process, drawn on the first call (pthread_once) and
 * never changed. Never NULL. */
const rtc_hash_key *rtc_hash_process_key(void);

/* SipHash-2-4 of len bytes (any alignment) under key k. */
uint64_t rtc_siphash24(const rtc_hash_key *k, const void *data, size_t len);

#endif
