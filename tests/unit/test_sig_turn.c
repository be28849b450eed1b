/* test_sig_turn.c - TURN REST credentials, checked against an HMAC computed
 * here independently with OpenSSL's one-shot HMAC(). */
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <string.h>

#include "sig_turn.h"
#include "tap.h"

int main(void)
{
    char user[SIG_TURN_USER_MAX], cred[SIG_TURN_CRED_MAX], want[64];
    unsigned char mac[20];
    unsigned maclen = 0;
    const char *secret = "north-wind";

    is_int(sig_turn_credential(secret, strlen(secret), "0123456789abcdef", 1700000000, 86400, user,
                               cred),
           0, "credential");
    ok(!strcmp(user, "1700086400:0123456789abcdef"), "username is expiry:member");
    HMAC(EVP_sha1(), secret, (int)strlen(secret), (const unsigned char *)user, strlen(user), mac,
         &maclen);
    EVP_EncodeBlock((unsigned char *)want, mac, (int)maclen);
    ok(!strcmp(cred, want), "credential is base64(HMAC-SHA1(secret, username))");
    is_int(strlen(cred), 28, "28 base64 characters");
    /* a known vector: coturn's turnutils would accept this pair for this secret */
    sig_turn_credential("secret", 6, "alice", 0, 3600, user, cred);
    HMAC(EVP_sha1(), "secret", 6, (const unsigned char *)"3600:alice", 10, mac, &maclen);
    EVP_EncodeBlock((unsigned char *)want, mac, (int)maclen);
    ok(!strcmp(user, "3600:alice") && !strcmp(cred, want), "second vector");

    {
        char *urls[] = {"turn:127.0.0.1:3478?transport=udp", "turns:relay.example:5349"};
        json_t *a = sig_turn_ice_servers(urls, 2, secret, strlen(secret), "m1", 100, 50);
        json_t *e = json_array_get(a, 0);
        ok(json_array_size(a) == 1 && json_array_size(json_object_get(e, "urls")) == 2,
           "one entry with every URL");
        ok(!strcmp(json_string_value(json_object_get(e, "username")), "150:m1"), "entry username");
        ok(json_string_length(json_object_get(e, "credential")) == 28, "entry credential");
        json_decref(a);
        a = sig_turn_ice_servers(urls, 1, NULL, 0, "m1", 100, 50);
        e = json_array_get(a, 0);
        ok(!json_object_get(e, "username") && !json_object_get(e, "credential"),
           "no secret: URLs only (STUN or static TURN)");
        json_decref(a);
        a = sig_turn_ice_servers(NULL, 0, secret, strlen(secret), "m1", 100, 50);
        ok(json_is_array(a) && json_array_size(a) == 0, "no URLs: empty iceServers");
        json_decref(a);
    }
    {
        char id[100];
        memset(id, 'i', sizeof id - 1);
        id[sizeof id - 1] = '\0';
        ok(sig_turn_credential(secret, strlen(secret), id, 1, 1, user, cred) != 0,
           "over-long member id refused, not truncated");
    }
    {
        /* stable TURN identity: base64url(HMAC-SHA256(secret, kind NUL data)), 16 chars */
        char a1[SIG_TURN_ID_LEN + 1], a2[SIG_TURN_ID_LEN + 1], b[SIG_TURN_ID_LEN + 1],
            x[SIG_TURN_ID_LEN + 1], k[SIG_TURN_ID_LEN + 1];
        unsigned char m2[32];
        char w[64];
        unsigned ml = 0;
        is_int(sig_turn_user_id(secret, strlen(secret), "sub", "alice", 5, a1), 0, "user id");
        sig_turn_user_id(secret, strlen(secret), "sub", "alice", 5, a2);
        sig_turn_user_id(secret, strlen(secret), "sub", "bob", 3, b);
        sig_turn_user_id(secret, strlen(secret), "ip", "alice", 5, x);
        sig_turn_user_id("other", 5, "sub", "alice", 5, k);
        ok(strlen(a1) == SIG_TURN_ID_LEN && !strcmp(a1, a2), "same sub, same id");
        ok(strcmp(a1, b) && strcmp(a1, x) && strcmp(a1, k),
           "another sub, kind or secret gives another id");
        ok(!strstr(a1, "alice") && !strchr(a1, ':'), "id hides the sub and has no ':'");
        HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)"sub\0alice", 9,
             m2, &ml);
        EVP_EncodeBlock((unsigned char *)w, m2, (int)ml);
        for (char *p = w; *p; p++)
            *p = *p == '+' ? '-' : *p == '/' ? '_' : *p;
        ok(!strncmp(a1, w, SIG_TURN_ID_LEN), "id is base64url(HMAC-SHA256(secret, kind NUL data))");
        {
            char big[300];
            memset(big, 's', sizeof big);
            ok(sig_turn_user_id(secret, strlen(secret), "sub", big, sizeof big, x) != 0,
               "over-long identity refused");
        }
    }
    return done_testing();
}
