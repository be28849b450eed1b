/* sig_turn.c - TURN REST credentials (see sig_turn.h). */
#include "sig_turn.h"

#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "rtc_crypto.h"
#include "rtc_err.h"

int sig_turn_credential(const void *secret, size_t secretlen, const char *id, uint64_t now_s,
                        uint64_t ttl_s, char user[SIG_TURN_USER_MAX],
                        char cred[SIG_TURN_CRED_MAX])
{
    uint8_t mac[RTC_SHA1_LEN];
    int n = snprintf(user, SIG_TURN_USER_MAX, "%llu:%s", (unsigned long long)(now_s + ttl_s), id);
    if (n < 0 || n >= SIG_TURN_USER_MAX)
        return RTC_ESPACE;
    rtc_hmac_sha1(secret, secretlen, user, (size_t)n, mac);
    return rtc_base64_encode(mac, sizeof mac, cred, SIG_TURN_CRED_MAX) < 0 ? RTC_ESPACE : 0;
}

int sig_turn_user_id(const void *secret, size_t secretlen, const char *kind, const void *data,
                     size_t len, char out[SIG_TURN_ID_LEN + 1])
{
    uint8_t msg[300], mac[RTC_SHA256_LEN];
    char b64[64];
    size_t kl = strlen(kind);

    if (kl + 1 + len > sizeof msg)
        return RTC_ESPACE;
    memcpy(msg, kind, kl);
    msg[kl] = 0; /* "sub" + "x" never equals "subx" of another kind */
    memcpy(msg + kl + 1, data, len);
    rtc_hmac_sha256(secret, secretlen, msg, kl + 1 + len, mac);
    if (rtc_base64url_encode(mac, sizeof mac, b64, sizeof b64) < SIG_TURN_ID_LEN)
        return RTC_ESPACE;
    memcpy(out, b64, SIG_TURN_ID_LEN);
    out[SIG_TURN_ID_LEN] = '\0';
    return 0;
}

json_t *sig_turn_ice_servers(char *const *urls, size_t nurls, const void *secret,
                             size_t secretlen, const char *id, uint64_t now_s, uint64_t ttl_s)
{
    json_t *arr = json_array(), *entry, *u;
    char user[SIG_TURN_USER_MAX], cred[SIG_TURN_CRED_MAX];

    if (!arr || nurls == 0)
        return arr;
    entry = json_object();
    u = json_array();
    if (!entry || !u)
        goto fail;
    for (size_t i = 0; i < nurls; i++)
        json_array_append_new(u, json_string(urls[i]));
    json_object_set_new(entry, "urls", u);
    u = NULL;
    if (secretlen > 0) {
        if (sig_turn_credential(secret, secretlen, id, now_s, ttl_s, user, cred))
            goto fail;
        json_object_set_new(entry, "username", json_string(user));
        json_object_set_new(entry, "credential", json_string(cred));
    }
    json_array_append_new(arr, entry);
    return arr;
fail:
    json_decref(u);
    json_decref(entry);
    json_decref(arr);
    return NULL;
}

int sig_turn_identity(const char *turn_secret, const char *sub, const rtc_addr *addr,
                      char out[SIG_TURN_ID_LEN + 1])
{
    size_t sl = strlen(turn_secret);
    uint8_t key[9] = {0};
    const uint8_t *ip = addr->ip;
    bool v6 = addr->family == AF_INET6;
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

    if (sub)
        return sig_turn_user_id(turn_secret, sl, "sub", sub, strlen(sub), out);
    if (v6 && !memcmp(ip, mapped, sizeof mapped)) { /* a v4 client on a v6 listener */
        v6 = false;
        ip += 12;
    }
    key[0] = v6 ? 6 : 4;
    memcpy(key + 1, ip, v6 ? 8 : 4);
    return sig_turn_user_id(turn_secret, sl, "ip", key, v6 ? 9 : 5, out);
}
