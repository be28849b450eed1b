/* test_sig_proto.c - message validation: every type, wrong types, missing
 * fields, unknown fields, huge and hostile inputs, and the builders. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sig_proto.h"
#include "tap.h"

static sig_code parse(const char *s, sig_msg *m)
{
    const char *why = NULL;
    sig_code c = sig_proto_parse(s, strlen(s), m, &why);
    if (c != SIG_OK && !why)
        return (sig_code)-1; /* a refusal must say why */
    return c;
}

static void good(const char *s, sig_msg_type t, const char *name)
{
    sig_msg m;
    sig_code c = parse(s, &m);
    is_int(c, SIG_OK, name);
    if (c == SIG_OK)
        is_int(m.type, t, name);
    sig_msg_dispose(&m);
}

static void bad(const char *s, const char *name)
{
    sig_msg m;
    is_int(parse(s, &m), SIG_E_BAD_REQUEST, name);
    ok(m.root == NULL && m.room == NULL, "refused message leaves nothing behind");
}

/* The reason a refusal gives. */
static const char *why_of(const char *s)
{
    sig_msg m;
    const char *why = "";
    if (sig_proto_parse(s, strlen(s), &m, &why) == SIG_OK) {
        sig_msg_dispose(&m);
        return "(accepted)";
    }
    return why;
}

static void token_too_long(void)
{
    /* issue 14 item 5: an over-long token was refused as "must be a
     * non-empty string" */
    size_t n = SIG_TOKEN_MAX + 1;
    char *big = malloc(n + 64), *msg = malloc(n + 128);
    if (!big || !msg)
        abort();
    memset(big, 'a', n);
    big[n] = '\0';
    snprintf(msg, n + 128, "{\"type\":\"resume\",\"token\":\"%s\"}", big);
    ok(strstr(why_of(msg), "too long") != NULL, "resume token over 4096 bytes: \"too long\"");
    snprintf(msg, n + 128, "{\"type\":\"join\",\"room\":\"r\",\"token\":\"%s\"}", big);
    ok(strstr(why_of(msg), "too long") != NULL, "join token over 4096 bytes: \"too long\"");
    big[n - 1] = '\0';
    snprintf(msg, n + 128, "{\"type\":\"resume\",\"token\":\"%s\"}", big);
    ok(strcmp(why_of(msg), "(accepted)") == 0, "resume token of exactly 4096 bytes accepted");
    ok(strstr(why_of("{\"type\":\"resume\",\"token\":\"\"}"), "too long") == NULL,
       "an empty token is not called too long");
    ok(strstr(why_of("{\"type\":\"join\",\"room\":\"r\",\"token\":5}"), "non-empty") != NULL,
       "a numeric token keeps its message");
    free(big);
    free(msg);
}

int main(void)
{
    sig_msg m;

    token_too_long();

    /* every client type */
    good("{\"type\":\"join\",\"room\":\"r\"}", SIG_MSG_JOIN, "join minimal");
    good("{\"type\":\"join\",\"room\":\"r\",\"name\":\"\",\"token\":\"t\"}", SIG_MSG_JOIN,
         "join with empty name and token");
    good("{\"type\":\"signal\",\"to\":\"abc\",\"data\":null}", SIG_MSG_SIGNAL, "signal null data");
    good("{\"type\":\"broadcast\",\"data\":[1,2,{\"x\":\"y\"}]}", SIG_MSG_BROADCAST, "broadcast");
    good("{\"type\":\"leave\"}", SIG_MSG_LEAVE, "leave");
    good("{\"type\":\"ping\"}", SIG_MSG_PING, "ping");
    good("{\"type\":\"resume\",\"token\":\"0123\"}", SIG_MSG_RESUME, "resume");
    /* unknown fields are ignored */
    good("{\"type\":\"ping\",\"x\":{\"deep\":[1,2,3]},\"y\":null}", SIG_MSG_PING, "unknown fields ignored");
    good("{\"room\":\"r\",\"zzz\":1,\"type\":\"join\"}", SIG_MSG_JOIN, "type need not come first");

    /* fields are borrowed from the parsed document */
    is_int(parse("{\"type\":\"join\",\"room\":\"kitchen\",\"name\":\"Ann \\u00e9\",\"token\":\"tk\"}", &m),
           SIG_OK, "join fields");
    ok(!strcmp(m.room, "kitchen") && !strcmp(m.name, "Ann \xc3\xa9") && !strcmp(m.token, "tk"),
       "join fields decoded");
    sig_msg_dispose(&m);
    is_int(parse("{\"type\":\"signal\",\"to\":\"p1\",\"data\":{\"candidate\":null}}", &m), SIG_OK,
           "signal");
    ok(!strcmp(m.to, "p1") && json_is_object(m.data), "signal fields");
    sig_msg_dispose(&m);

    /* not JSON, not an object */
    bad("", "empty");
    bad("{", "truncated");
    bad("{\"type\":\"ping\"} {}", "two documents");
    bad("[]", "array");
    bad("\"ping\"", "string");
    bad("null", "null");
    bad("{\"type\":\"ping\"", "unterminated");
    bad("{'type':'ping'}", "single quotes");
    bad("{\"type\":\"ping\",}", "trailing comma");
    bad("{\"type\":\"ping\",\"type\":\"ping\"}", "duplicate keys");
    bad("{\"type\":\"p\\u0000ing\"}", "NUL in a string");
    bad("{\"type\":\"\xff\"}", "invalid UTF-8");
    /* type */
    bad("{}", "missing type");
    bad("{\"type\":1}", "numeric type");
    bad("{\"type\":null}", "null type");
    bad("{\"type\":\"JOIN\"}", "type is case-sensitive");
    bad("{\"type\":\"joined\"}", "server type from a client");
    bad("{\"type\":\"error\"}", "error type from a client");
    /* join */
    bad("{\"type\":\"join\"}", "join without room");
    bad("{\"type\":\"join\",\"room\":\"\"}", "join empty room");
    bad("{\"type\":\"join\",\"room\":5}", "join numeric room");
    bad("{\"type\":\"join\",\"room\":[\"r\"]}", "join array room");
    bad("{\"type\":\"join\",\"room\":\"a\\tb\"}", "join control char in room");
    bad("{\"type\":\"join\",\"room\":\"r\",\"name\":false}", "join bool name");
    bad("{\"type\":\"join\",\"room\":\"r\",\"name\":\"a\\u007fb\"}", "join DEL in name");
    bad("{\"type\":\"join\",\"room\":\"r\",\"token\":\"\"}", "join empty token");
    bad("{\"type\":\"join\",\"room\":\"r\",\"token\":{}}", "join object token");
    /* signal / broadcast */
    bad("{\"type\":\"signal\",\"data\":1}", "signal without to");
    bad("{\"type\":\"signal\",\"to\":\"p\"}", "signal without data");
    bad("{\"type\":\"signal\",\"to\":\"\",\"data\":1}", "signal empty to");
    bad("{\"type\":\"signal\",\"to\":7,\"data\":1}", "signal numeric to");
    bad("{\"type\":\"broadcast\"}", "broadcast without data");
    /* resume */
    bad("{\"type\":\"resume\"}", "resume without token");
    bad("{\"type\":\"resume\",\"token\":7}", "resume numeric token");

    /* length limits, at and over the edge */
    {
        char room[SIG_ROOM_MAX + 2], name[SIG_NAME_MAX + 2], buf[512];
        memset(room, 'r', sizeof room - 1);
        room[sizeof room - 1] = '\0';
        memset(name, 'n', sizeof name - 1);
        name[sizeof name - 1] = '\0';
        snprintf(buf, sizeof buf, "{\"type\":\"join\",\"room\":\"%.*s\"}", SIG_ROOM_MAX, room);
        good(buf, SIG_MSG_JOIN, "room at the limit");
        snprintf(buf, sizeof buf, "{\"type\":\"join\",\"room\":\"%s\"}", room);
        bad(buf, "room over the limit");
        snprintf(buf, sizeof buf, "{\"type\":\"join\",\"room\":\"r\",\"name\":\"%.*s\"}",
                 SIG_NAME_MAX, name);
        good(buf, SIG_MSG_JOIN, "name at the limit");
        snprintf(buf, sizeof buf, "{\"type\":\"join\",\"room\":\"r\",\"name\":\"%s\"}", name);
        bad(buf, "name over the limit");
    }
    /* huge and deep inputs: refused or accepted, never a crash */
    {
        size_t n = 1 << 20;
        static const char head[] = "{\"type\":\"broadcast\",\"data\":\"";
        char *big = malloc(n + 64);
        size_t len = sizeof head - 1;
        if (!big) {
            printf("Bail out! out of memory\n");
            return 1;
        }
        memcpy(big, head, len);
        memset(big + len, 'x', n);
        strcpy(big + len + n, "\"}");
        is_int(sig_proto_parse(big, strlen(big), &m, &(const char *){NULL}), SIG_OK,
               "1 MiB data string parses (size is limited by the caller)");
        sig_msg_dispose(&m);
        memset(big, '[', n);
        is_int(sig_proto_parse(big, n, &m, &(const char *){NULL}), SIG_E_BAD_REQUEST,
               "1 MiB of '[' refused (depth limit)");
        free(big);
    }
    /* truncation at every offset of a valid message */
    {
        const char *s = "{\"type\":\"signal\",\"to\":\"abcdef0123456789\",\"data\":{\"sdp\":\"v=0\"}}";
        int refused = 0;
        for (size_t i = 0; i < strlen(s); i++)
            refused += sig_proto_parse(s, i, &m, &(const char *){NULL}) == SIG_E_BAD_REQUEST;
        is_int(refused, (int)strlen(s), "every truncation refused");
    }

    /* builders */
    {
        json_t *peers = json_pack("[{s:s,s:s}]", "id", "p1", "name", "a");
        json_t *ice = json_pack("[{s:[s]}]", "urls", "turn:x");
        char *s = sig_proto_joined("r", "me", peers, ice, "tok");
        ok(s && !strcmp(s, "{\"type\":\"joined\",\"room\":\"r\",\"id\":\"me\",\"peers\":[{\"id\":\"p1\","
                           "\"name\":\"a\"}],\"iceServers\":[{\"urls\":[\"turn:x\"]}],\"resume\":\"tok\"}"),
           "joined");
        free(s);
        s = sig_proto_error(SIG_E_ROOM_FULL, "full");
        ok(s && !strcmp(s, "{\"type\":\"error\",\"code\":\"room-full\",\"message\":\"full\"}"), "error");
        free(s);
        s = sig_proto_forward("signal", "p1", ice);
        ok(s && !strcmp(s, "{\"type\":\"signal\",\"from\":\"p1\",\"data\":[{\"urls\":[\"turn:x\"]}]}"),
           "signal forward");
        free(s);
        s = sig_proto_peer_left("p1");
        ok(s && !strcmp(s, "{\"type\":\"peer-left\",\"id\":\"p1\"}"), "peer-left");
        free(s);
        s = sig_proto_peer_joined("p1", "n");
        ok(s && !strcmp(s, "{\"type\":\"peer-joined\",\"peer\":{\"id\":\"p1\",\"name\":\"n\"}}"), "peer-joined");
        free(s);
        s = sig_proto_resumed("p1", peers);
        ok(s && strstr(s, "\"type\":\"resumed\""), "resumed");
        free(s);
        s = sig_proto_pong();
        ok(s && !strcmp(s, "{\"type\":\"pong\"}"), "pong");
        free(s);
        json_decref(peers);
        json_decref(ice);
    }
    {
        static const char *const want[] = {"bad-request", "unauthorized", "room-full", "unknown-peer",
                                           "not-joined", "too-large", "rate-limited", "server-busy",
                                           "kicked"};
        int same = 0;
        for (int i = 1; i < SIG_E__COUNT; i++)
            same += !strcmp(sig_code_name((sig_code)i), want[i - 1]);
        is_int(same, 9, "error code names are DESIGN.md's (and the admin API's kicked)");
    }
    return done_testing();
}
