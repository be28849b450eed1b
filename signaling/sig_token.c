/* sig_token.c - HS256 JWT verify and mint (see sig_token.h). */
#include "sig_token.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "rtc_crypto.h"
#include "rtc_err.h"

#define PART_MAX 4096

/* Claims end up in logs and in other members' UIs: no control characters. */
static bool printable(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return false;
    return true;
}

/* Decode one base64url part into a NUL-terminated buffer. */
static int part(const char *p, size_t len, uint8_t *out, size_t cap)
{
    int n;
    if (len == 0 || len > PART_MAX)
        return RTC_EMSG;
    /* JWT uses base64url (RFC 7515 s.2): '+', '/' and '=' are not allowed. */
    for (size_t i = 0; i < len; i++)
        if (p[i] == '+' || p[i] == '/' || p[i] == '=')
            return RTC_EMSG;
    n = rtc_base64_decode(p, len, out, cap - 1);
    if (n < 0)
        return n;
    out[n] = '\0';
    return n;
}

typedef struct {
    const void *p;
    size_t len;
} key_ref;

static int verify(const char *token, const key_ref *keys, size_t n_keys, const char *room,
                  uint64_t now_s, sig_token_claims *out, const char **why)
{
    const char *d1, *d2;
    uint8_t hdr[PART_MAX], pay[PART_MAX], sig[64], mac[RTC_SHA256_LEN];
    int hlen, plen, slen, rc = RTC_EAUTH;
    json_t *h = NULL, *p = NULL, *v;
    const char *alg;

    memset(out, 0, sizeof *out);
    *why = "malformed token";
    if (!(d1 = strchr(token, '.')) || !(d2 = strchr(d1 + 1, '.')) || strchr(d2 + 1, '.'))
        return RTC_EAUTH;
    if ((hlen = part(token, (size_t)(d1 - token), hdr, sizeof hdr)) < 0 ||
        (plen = part(d1 + 1, (size_t)(d2 - d1 - 1), pay, sizeof pay)) < 0)
        return RTC_EAUTH;
    /* Algorithm first: nothing else about an unsigned token is trusted. */
    h = json_loadb((const char *)hdr, (size_t)hlen, JSON_REJECT_DUPLICATES, NULL);
    alg = json_string_value(json_object_get(h, "alg"));
    if (!alg || strcmp(alg, "HS256")) {
        *why = "token algorithm is not HS256";
        goto out;
    }
    /* RFC 7515 s.4.1.11: "crit" names extensions the recipient must
     * understand or reject the token; we implement none (e.g. RFC 7797's
     * unencoded payload would change what the signature covers). */
    if (json_object_get(h, "crit")) {
        *why = "token has a crit header (no JWS extension is supported)";
        goto out;
    }
    slen = part(d2 + 1, strlen(d2 + 1), sig, sizeof sig);
    {
        bool signed_ok = false;
        for (size_t k = 0; k < n_keys && slen == RTC_SHA256_LEN && !signed_ok; k++) {
            rtc_hmac_sha256(keys[k].p, keys[k].len, token, (size_t)(d2 - token), mac);
            signed_ok = rtc_ct_equal(sig, mac, RTC_SHA256_LEN);
        }
        if (!signed_ok) {
            *why = "bad token signature";
            goto out;
        }
    }
    p = json_loadb((const char *)pay, (size_t)plen, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(p)) {
        *why = "token payload is not a JSON object";
        goto out;
    }
    v = json_object_get(p, "room");
    if (!json_is_string(v) || strcmp(json_string_value(v), room)) {
        *why = "token is for another room";
        goto out;
    }
    v = json_object_get(p, "sub");
    if (!json_is_string(v) || json_string_length(v) > SIG_TOKEN_SUB_MAX ||
        !printable(json_string_value(v))) {
        *why = "token has no usable sub";
        goto out;
    }
    memcpy(out->sub, json_string_value(v), json_string_length(v) + 1);
    v = json_object_get(p, "name");
    if (v) {
        if (!json_is_string(v) || json_string_length(v) >= sizeof out->name ||
            !printable(json_string_value(v))) {
            *why = "token name is not a short string";
            goto out;
        }
        memcpy(out->name, json_string_value(v), json_string_length(v) + 1);
    }
    v = json_object_get(p, "exp");
    /* Range-check before converting: a double past INT64 range (1e300) would
     * make the cast undefined behaviour. */
    if (!json_is_number(v) || !(json_number_value(v) > -9.2e18 && json_number_value(v) < 9.2e18)) {
        *why = "token has no usable exp";
        goto out;
    }
    out->exp = (int64_t)json_number_value(v);
    if (out->exp <= (int64_t)now_s) {
        *why = "token expired";
        rc = RTC_ESTALE;
        goto out;
    }
    *why = "ok";
    rc = 0;
out:
    json_decref(h);
    json_decref(p);
    return rc;
}

int sig_token_verify(const char *token, const void *secret, size_t secretlen, const char *room,
                     uint64_t now_s, sig_token_claims *out, const char **why)
{
    key_ref k = {secret, secretlen};
    return verify(token, &k, 1, room, now_s, out, why);
}

int sig_token_verify_any(const char *token, char *const *secrets, size_t n, const char *room,
                         uint64_t now_s, sig_token_claims *out, const char **why)
{
    key_ref keys[SIG_TOKEN_SECRETS];
    if (n > SIG_TOKEN_SECRETS)
        n = SIG_TOKEN_SECRETS;
    for (size_t i = 0; i < n; i++)
        keys[i] = (key_ref){secrets[i], strlen(secrets[i])};
    return verify(token, keys, n, room, now_s, out, why);
}

char *sig_token_mint(const void *secret, size_t secretlen, const char *room, const char *sub,
                     const char *name, uint64_t exp_s)
{
    static const char hdr[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    json_t *claims = json_pack("{s:s,s:s,s:I}", "room", room, "sub", sub, "exp", (json_int_t)exp_s);
    char *pay = NULL, *tok = NULL;
    uint8_t mac[RTC_SHA256_LEN];
    size_t cap, n;
    int k;

    if (claims && name)
        json_object_set_new(claims, "name", json_string(name));
    if (!claims || !(pay = json_dumps(claims, JSON_COMPACT)))
        goto out;
    cap = (sizeof hdr + strlen(pay)) * 4 / 3 + 64 + 8;
    if (!(tok = malloc(cap)))
        goto out;
    k = rtc_base64url_encode(hdr, sizeof hdr - 1, tok, cap);
    n = (size_t)k;
    tok[n++] = '.';
    k = rtc_base64url_encode(pay, strlen(pay), tok + n, cap - n);
    n += (size_t)k;
    rtc_hmac_sha256(secret, secretlen, tok, n, mac);
    tok[n++] = '.';
    rtc_base64url_encode(mac, sizeof mac, tok + n, cap - n);
out:
    free(pay);
    json_decref(claims);
    return tok;
}
