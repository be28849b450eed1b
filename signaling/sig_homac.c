/* sig_homac.c - the hand-over reply's key and MAC (see sig_homac.h). */
#include "sig_homac.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rtc_crypto.h"

_Static_assert(SIG_HO_KEY_LEN == RTC_SHA256_LEN, "the reply key is an HMAC-SHA256");

void sig_ho_reply_key(const char *token, uint8_t key[SIG_HO_KEY_LEN])
{
    static const char label[] = "tsunagu-hr-key";
    rtc_hmac_sha256(token, strlen(token), label, sizeof label - 1, key);
}

int sig_ho_reply_mac(const uint8_t key[SIG_HO_KEY_LEN], uint64_t rq, const char *owner,
                     const char *room, const char *id, const char *name,
                     const char *const *texts, size_t n, char out[SIG_HO_MAC_LEN + 1])
{
    const char *f[] = {owner, room, id, name};
    size_t cap = 64, len = 0;
    uint8_t d[RTC_SHA256_LEN];
    char *b;
    for (size_t i = 0; i < 4; i++)
        cap += strlen(f[i]) + 24;
    for (size_t i = 0; i < n; i++)
        cap += strlen(texts[i]) + 24;
    if (!(b = malloc(cap)))
        return -ENOMEM;
    len += (size_t)snprintf(b, cap, "tsunagu-hr|%llu|", (unsigned long long)rq);
    /* every field length-prefixed: no two different replies read the same */
    for (size_t i = 0; i < 4 + n; i++) {
        const char *t = i < 4 ? f[i] : texts[i - 4];
        size_t tl = strlen(t);
        len += (size_t)snprintf(b + len, cap - len, "%zu:", tl);
        memcpy(b + len, t, tl);
        len += tl;
    }
    rtc_hmac_sha256(key, SIG_HO_KEY_LEN, b, len, d);
    rtc_hex(d, sizeof d, out);
    free(b);
    return 0;
}

void sig_token_hash(const char *token, char out[SIG_TH_LEN + 1])
{
    uint8_t d[RTC_SHA256_LEN];
    rtc_sha256(token, strlen(token), d);
    rtc_hex(d, sizeof d, out);
}

bool sig_ho_bound(char *out, size_t cap, const char *node, uint64_t rq, const char *room,
                        const char *id, const char *th)
{
    int n = snprintf(out, cap, "tsunagu-ho|%s|%llu|%s|%s|%s", node, (unsigned long long)rq, room,
                     id, th);
    return n > 0 && (size_t)n < cap;
}

void sig_ho_proof(const char *token, const char *bound, char out[SIG_TH_LEN + 1])
{
    uint8_t d[RTC_SHA256_LEN];
    rtc_hmac_sha256(token, strlen(token), bound, strlen(bound), d);
    rtc_hex(d, sizeof d, out);
    memset(d, 0, sizeof d);
}

bool sig_ho_proof_ok(const char *token, const char *bound, const char *proof)
{
    char want[SIG_TH_LEN + 1];
    bool good;
    if (strlen(proof) != SIG_TH_LEN)
        return false;
    sig_ho_proof(token, bound, want);
    /* constant time: a wrong guess learns nothing about the right proof */
    good = rtc_ct_equal(want, proof, SIG_TH_LEN);
    memset(want, 0, sizeof want);
    return good;
}
