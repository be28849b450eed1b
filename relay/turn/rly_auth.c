/* rly_auth.c - static users and TURN REST credentials. */
#include "rly_auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rtc_crypto.h"
#include "rtc_err.h"
#include "stn_auth.h"

typedef struct {
    char *name;
    uint8_t key[16];    /* MD5(name:realm:password) */
    uint8_t key256[32]; /* SHA-256(name:realm:password) */
} user_ent;

struct rly_auth {
    char *realm;
    user_ent *users; /* sorted by name for bsearch */
    size_t n_users;
    rtc_secret secrets[RLY_AUTH_SECRETS]; /* REST secrets, in order; none: REST off */
    size_t n_secrets;
};

static int cmp_user(const void *a, const void *b)
{
    return strcmp(((const user_ent *)a)->name, ((const user_ent *)b)->name);
}

void rly_auth_free(rly_auth *a)
{
    if (!a)
        return;
    for (size_t i = 0; i < a->n_users; i++) {
        free(a->users[i].name);
        memset(a->users[i].key, 0, sizeof a->users[i].key);
        memset(a->users[i].key256, 0, sizeof a->users[i].key256);
    }
    free(a->users);
    free(a->realm);
    for (size_t i = 0; i < a->n_secrets; i++)
        rtc_secret_dispose(&a->secrets[i]);
    free(a);
}

rly_auth *rly_auth_new(const char *realm, char *const *users, size_t n_users,
                       char *const *secrets, size_t n_secrets, char *err, size_t errlen)
{
    rly_auth *a = calloc(1, sizeof *a);

    if (!a || !(a->realm = strdup(realm)))
        goto out_oom;
    a->users = calloc(n_users + 1, sizeof *a->users);
    if (!a->users)
        goto out_oom;
    for (size_t i = 0; i < n_users; i++) {
        const char *colon = strchr(users[i], ':');
        size_t nl = colon ? (size_t)(colon - users[i]) : 0;
        if (!colon || nl == 0 || nl > 128 || !colon[1]) {
            snprintf(err, errlen, "user: entry %zu: expected NAME:PASSWORD with both non-empty",
                     i + 1);
            goto out_free;
        }
        a->users[i].name = strndup(users[i], nl);
        if (!a->users[i].name)
            goto out_oom;
        a->n_users = i + 1;
        stn_auth_longterm_key(users[i], nl, realm, strlen(realm), colon + 1, strlen(colon + 1),
                              a->users[i].key);
        stn_auth_longterm_key_sha256(users[i], nl, realm, strlen(realm), colon + 1,
                                     strlen(colon + 1), a->users[i].key256);
    }
    qsort(a->users, a->n_users, sizeof *a->users, cmp_user);
    for (size_t i = 1; i < a->n_users; i++)
        if (!strcmp(a->users[i].name, a->users[i - 1].name)) {
            snprintf(err, errlen, "user: '%s' given twice", a->users[i].name);
            goto out_free;
        }
    if (n_secrets > RLY_AUTH_SECRETS) {
        snprintf(err, errlen, "auth-secret: at most %d secrets (one to use, the others being "
                              "rotated out)", RLY_AUTH_SECRETS);
        goto out_free;
    }
    for (size_t i = 0; i < n_secrets; i++) {
        if (!*secrets[i]) {
            snprintf(err, errlen, "auth-secret: entry %zu is empty", i + 1);
            goto out_free;
        }
        if (rtc_secret_init(&a->secrets[i], secrets[i], strlen(secrets[i])))
            goto out_oom;
        a->n_secrets = i + 1;
    }
    return a;
out_oom:
    snprintf(err, errlen, "out of memory");
out_free:
    rly_auth_free(a);
    return NULL;
}

const char *rly_auth_realm(const rly_auth *a) { return a->realm; }

/* REST username: decimal unix expiry, optionally ":" and anything. */
static int rest_expiry(const uint8_t *u, size_t n, uint64_t *exp)
{
    uint64_t v = 0;
    size_t i = 0;
    for (; i < n && u[i] >= '0' && u[i] <= '9'; i++) {
        if (i >= 12)
            return RTC_EMSG;
        v = v * 10 + (u[i] - '0');
    }
    if (i == 0 || (i < n && u[i] != ':'))
        return RTC_EMSG;
    *exp = v;
    return 0;
}

int rly_auth_key_alg(const rly_auth *a, const uint8_t *user, size_t ulen, uint64_t now_s,
                     uint16_t alg, unsigned nth, uint8_t key[RLY_KEY_MAX], size_t *keylen,
                     bool *rest)
{
    char name[129];
    user_ent probe, *hit;
    uint8_t mac[RTC_SHA1_LEN];
    char pass[64];
    uint64_t exp;
    int plen;

    if (alg != STN_PWALG_MD5 && alg != STN_PWALG_SHA256)
        return RTC_EAUTH;
    if (ulen == 0 || ulen > 128)
        return RTC_EAUTH;
    memcpy(name, user, ulen);
    name[ulen] = '\0';
    if (memchr(name, '\0', ulen))
        return RTC_EAUTH;
    probe.name = name;
    hit = a->n_users ? bsearch(&probe, a->users, a->n_users, sizeof *a->users, cmp_user) : NULL;
    *rest = false;
    *keylen = alg == STN_PWALG_SHA256 ? 32 : 16;
    if (hit) {
        if (nth)
            return RTC_EAUTH;
        memcpy(key, alg == STN_PWALG_SHA256 ? hit->key256 : hit->key, *keylen);
        return 0;
    }
    if (nth >= a->n_secrets || rest_expiry(user, ulen, &exp) || exp <= now_s)
        return RTC_EAUTH;
    rtc_hmac_sha1(a->secrets[nth].p, a->secrets[nth].len, user, ulen, mac);
    plen = rtc_base64_encode(mac, sizeof mac, pass, sizeof pass);
    if (plen < 0)
        return RTC_EAUTH;
    if (alg == STN_PWALG_SHA256)
        stn_auth_longterm_key_sha256(name, ulen, a->realm, strlen(a->realm), pass, (size_t)plen,
                                     key);
    else
        stn_auth_longterm_key(name, ulen, a->realm, strlen(a->realm), pass, (size_t)plen, key);
    memset(pass, 0, sizeof pass);
    memset(mac, 0, sizeof mac);
    *rest = true;
    return 0;
}

int rly_auth_key(const rly_auth *a, const uint8_t *user, size_t ulen, uint64_t now_s,
                 uint8_t key[16], bool *rest)
{
    uint8_t k[RLY_KEY_MAX];
    size_t kl;
    int rc = rly_auth_key_alg(a, user, ulen, now_s, STN_PWALG_MD5, 0, k, &kl, rest);
    if (!rc)
        memcpy(key, k, 16);
    memset(k, 0, sizeof k);
    return rc;
}
