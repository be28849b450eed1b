/* test_sig_token.c - HS256 JWT: good, expired, bad signature, alg none,
 * other algorithms, other room, malformed. Tokens are also built here by
 * hand (OpenSSL HMAC) so mint and verify are not only checked by each other. */
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdlib.h>
#include <string.h>

#include "rtc_crypto.h"
#include "rtc_err.h"
#include "sig_token.h"
#include "tap.h"

static const char *K = "token-key";

/* header.payload.signature with our own encoder and HMAC */
static char *handmade(const char *hdr, const char *payload, const char *key)
{
    static char out[4096];
    unsigned char mac[32];
    unsigned maclen;
    int n = rtc_base64url_encode(hdr, strlen(hdr), out, sizeof out);
    out[n++] = '.';
    n += rtc_base64url_encode(payload, strlen(payload), out + n, sizeof out - (size_t)n);
    HMAC(EVP_sha256(), key, (int)strlen(key), (unsigned char *)out, (size_t)n, mac, &maclen);
    out[n++] = '.';
    rtc_base64url_encode(mac, maclen, out + n, sizeof out - (size_t)n);
    return out;
}

static int verify(const char *tok, const char *room, uint64_t now)
{
    sig_token_claims c;
    const char *why;
    return sig_token_verify(tok, K, strlen(K), room, now, &c, &why);
}

int main(void)
{
    sig_token_claims c;
    const char *why;
    char *t;
    const char *hs = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";

    t = sig_token_mint(K, strlen(K), "kitchen", "alice", "Alice", 2000);
    ok(t != NULL, "mint");
    is_int(sig_token_verify(t, K, strlen(K), "kitchen", 1000, &c, &why), 0, "good token");
    ok(!strcmp(c.sub, "alice") && !strcmp(c.name, "Alice") && c.exp == 2000, "claims");
    is_int(verify(t, "kitchen", 2000), RTC_ESTALE, "expired at exp");
    is_int(verify(t, "kitchen", 5000), RTC_ESTALE, "expired later");
    is_int(verify(t, "hall", 1000), RTC_EAUTH, "other room");
    is_int(sig_token_verify(t, "other", 5, "kitchen", 1000, &c, &why), RTC_EAUTH, "other key");
    {
        /* rotation: any of several secrets, the claims checked once */
        char k[] = "token-key", new_k[] = "new-key", third[] = "third"; /* k is K */
        char *both[] = {new_k, k}, *wrong[] = {new_k, third};
        is_int(sig_token_verify_any(t, both, 2, "kitchen", 1000, &c, &why), 0,
               "signed by the second of two secrets");
        ok(!strcmp(c.sub, "alice"), "claims from a rotated secret");
        is_int(sig_token_verify_any(t, wrong, 2, "kitchen", 1000, &c, &why), RTC_EAUTH,
               "signed by neither");
        ok(!strcmp(why, "bad token signature"), "reason: signature");
        is_int(sig_token_verify_any(t, both, 2, "kitchen", 5000, &c, &why), RTC_ESTALE,
               "old secret, expired: the claims still decide");
        is_int(sig_token_verify_any(t, both, 0, "kitchen", 1000, &c, &why), RTC_EAUTH,
               "no secret: refused");
    }
    {
        /* flip one character of the signature / of the payload */
        char *u = strdup(t);
        size_t n = strlen(u);
        u[n - 2] = u[n - 2] == 'A' ? 'B' : 'A';
        is_int(verify(u, "kitchen", 1000), RTC_EAUTH, "tampered signature");
        strcpy(u, t);
        u[strchr(u, '.') - u + 3] ^= 1;
        is_int(verify(u, "kitchen", 1000), RTC_EAUTH, "tampered payload");
        free(u);
    }
    free(t);

    /* hand-made tokens */
    is_int(verify(handmade(hs, "{\"room\":\"r\",\"sub\":\"s\",\"exp\":100}", K), "r", 50), 0,
           "independently signed token accepted");
    is_int(verify(handmade(hs, "{\"room\":\"r\",\"sub\":\"s\",\"exp\":100}", "nope"), "r", 50),
           RTC_EAUTH, "wrong key");
    is_int(verify(handmade("{\"alg\":\"none\"}", "{\"room\":\"r\",\"sub\":\"s\",\"exp\":100}", K), "r", 50),
           RTC_EAUTH, "alg none (even when signed)");
    {
        char buf[512];
        int n = rtc_base64url_encode("{\"alg\":\"none\"}", 14, buf, sizeof buf);
        buf[n++] = '.';
        n += rtc_base64url_encode("{\"room\":\"r\",\"sub\":\"s\",\"exp\":100}", 33, buf + n, sizeof buf - (size_t)n);
        strcpy(buf + n, ".");
        is_int(verify(buf, "r", 50), RTC_EAUTH, "alg none, empty signature");
    }
    is_int(verify(handmade("{\"alg\":\"HS512\"}", "{\"room\":\"r\",\"sub\":\"s\",\"exp\":100}", K), "r", 50),
           RTC_EAUTH, "HS512 refused");
    is_int(verify(handmade("{\"alg\":\"RS256\"}", "{\"room\":\"r\",\"sub\":\"s\",\"exp\":100}", K), "r", 50),
           RTC_EAUTH, "RS256 refused");
    is_int(verify(handmade("{}", "{\"room\":\"r\",\"sub\":\"s\",\"exp\":100}", K), "r", 50),
           RTC_EAUTH, "no alg");
    /* RFC 7515 s.4.1.11: an extension we must understand and do not (issue
     * 14 item 5: such tokens were accepted) */
    {
        const char *cwhy = "";
        sig_token_claims ccl;
        const char *ct = handmade("{\"alg\":\"HS256\",\"crit\":[\"b64\"],\"b64\":false}",
                                 "{\"room\":\"r\",\"sub\":\"s\",\"exp\":100}", K);
        is_int(sig_token_verify(ct, K, strlen(K), "r", 50, &ccl, &cwhy), RTC_EAUTH,
               "crit header refused, though well signed");
        ok(strstr(cwhy, "crit") != NULL, "and the reason names crit");
        is_int(verify(handmade("{\"alg\":\"HS256\",\"crit\":[]}",
                               "{\"room\":\"r\",\"sub\":\"s\",\"exp\":100}", K), "r", 50),
               RTC_EAUTH, "crit with an empty list refused (s.4.1.11: MUST NOT be empty)");
        is_int(verify(handmade("{\"alg\":\"HS256\",\"kid\":\"k1\"}",
                               "{\"room\":\"r\",\"sub\":\"s\",\"exp\":100}", K), "r", 50),
               0, "other header parameters are still ignored");
    }
    is_int(verify(handmade(hs, "{\"room\":\"r\",\"sub\":\"s\"}", K), "r", 50), RTC_EAUTH, "no exp");
    is_int(verify(handmade(hs, "{\"room\":\"r\",\"exp\":100}", K), "r", 50), RTC_EAUTH, "no sub");
    is_int(verify(handmade(hs, "{\"sub\":\"s\",\"exp\":100}", K), "r", 50), RTC_EAUTH, "no room");
    is_int(verify(handmade(hs, "{\"room\":5,\"sub\":\"s\",\"exp\":100}", K), "r", 50), RTC_EAUTH,
           "numeric room");
    is_int(verify(handmade(hs, "{\"room\":\"r\",\"sub\":\"s\",\"exp\":\"100\"}", K), "r", 50),
           RTC_EAUTH, "string exp");
    is_int(verify(handmade(hs, "[1]", K), "r", 50), RTC_EAUTH, "payload not an object");
    is_int(verify(handmade(hs, "{\"room\":\"r\",\"sub\":\"s\",\"exp\":1e300}", K), "r", 50),
           RTC_EAUTH, "exp beyond int64 refused, not cast");
    is_int(verify(handmade(hs, "{\"room\":\"r\",\"room\":\"x\",\"sub\":\"s\",\"exp\":100}", K), "r", 50),
           RTC_EAUTH, "duplicate claim");
    is_int(verify(handmade(hs, "{\"room\":\"r\",\"sub\":\"s\\nx\",\"exp\":100}", K), "r", 50),
           RTC_EAUTH, "control character in sub");
    is_int(verify(handmade(hs, "{\"room\":\"r\",\"sub\":\"s\",\"name\":\"a\\u001bb\",\"exp\":100}", K), "r", 50),
           RTC_EAUTH, "control character in name");
    /* malformed shapes */
    {
        static const char *const junk[] = {"", ".", "..", "...", "a", "a.b", "a.b.c.d", "!!.??.**",
                                           "eyJhbGciOiJIUzI1NiJ9..", "e30.e30.e30"};
        int refused = 0;
        for (size_t i = 0; i < sizeof junk / sizeof *junk; i++)
            refused += verify(junk[i], "r", 1) == RTC_EAUTH;
        is_int(refused, (int)(sizeof junk / sizeof *junk), "malformed tokens refused");
    }
    {
        char *big = malloc(20000);
        memset(big, 'A', 19999);
        big[19999] = '\0';
        big[5000] = '.';
        big[10000] = '.';
        is_int(verify(big, "r", 1), RTC_EAUTH, "huge token refused");
        free(big);
    }
    return done_testing();
}
