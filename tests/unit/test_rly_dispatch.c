/* test_rly_dispatch.c - the TURN engine fed with crafted STUN bytes, with a
 * fake socket layer and virtual time: the order of checks and every error
 * code, the data path in both directions, expiry and release. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "rly_turn.h"
#include "rtc_err.h"
#include "stn_attr.h"
#include "stn_auth.h"
#include "stn_msg.h"
#include "tap.h"

/* ---- fake sockets ---- */
static int next_fd = 100, open_fds, sent, last_fd, fail_family;
static rtc_addr last_peer;
static uint8_t last_data[2048];
static size_t last_len;

static int f_open(void *ctx, const rtc_addr *ip, bool even, uint16_t port, rtc_addr *bound)
{
    (void)ctx;
    if (ip->family == fail_family)
        return -EADDRINUSE; /* that family's port range is full */
    *bound = *ip;
    bound->port = port ? port : (uint16_t)(50000 + 2 * (next_fd - 100));
    (void)even;
    open_fds++;
    return next_fd++;
}
static int f_attach(void *ctx, int fd, uint32_t id)
{
    (void)ctx, (void)fd, (void)id;
    return 0;
}
static void f_close(void *ctx, int fd, const rtc_addr *b)
{
    (void)ctx, (void)fd, (void)b;
    open_fds--;
}
static int f_send(void *ctx, int fd, const rtc_addr *peer, const uint8_t *d, size_t n)
{
    (void)ctx;
    last_fd = fd;
    last_peer = *peer;
    memcpy(last_data, d, n < sizeof last_data ? n : sizeof last_data);
    last_len = n;
    sent++;
    return 0;
}

static int df_calls, df_result;
static int f_df(int fd, int family)
{
    (void)fd, (void)family;
    df_calls++;
    return df_result;
}

/* ---- a client ---- */
typedef struct {
    rly_turn *t;
    rly_tuple tu;
    uint64_t now_ms, wall_s;
    char nonce[64];
    size_t nonce_len;
    uint8_t key[16];
    const char *user;
    uint8_t resp[RLY_RESP_MAX];
    size_t resp_len;
    stn_msg m;
} client;

typedef struct {
    uint16_t type;
    const void *val;
    size_t len;
} a_t;

static size_t feed(client *c, const uint8_t *buf, size_t len)
{
    rly_input in = {.tuple = &c->tu, .conn = -1, .buf = buf, .len = len, .now_ms = c->now_ms,
                    .wall_s = c->wall_s};
    c->resp_len = rly_turn_input(c->t, &in, c->resp, sizeof c->resp);
    if (c->resp_len && stn_msg_parse(&c->m, c->resp, c->resp_len))
        c->resp_len = 0;
    return c->resp_len;
}

/* Send a request; auth adds USERNAME/REALM/NONCE/MI. Returns the error
 * code, 0 for success, -1 for no answer. */
static int req(client *c, uint16_t method, const a_t *attrs, size_t n, bool auth, uint8_t *tid)
{
    uint8_t buf[1024], t[12];
    stn_builder b;
    size_t len;
    const stn_attr_ref *e;
    int code;
    rtc_rd reason;

    if (!tid) {
        for (int i = 0; i < 12; i++)
            t[i] = (uint8_t)(c->now_ms + (uint64_t)i * 7 + (uint64_t)sent);
        t[0] ^= (uint8_t)method;
        tid = t;
    }
    stn_build_init(&b, buf, sizeof buf, method, STN_REQUEST, tid);
    for (size_t i = 0; i < n; i++)
        stn_build_attr(&b, attrs[i].type, attrs[i].val, attrs[i].len);
    if (auth) {
        stn_build_attr(&b, STN_A_USERNAME, c->user, strlen(c->user));
        stn_build_attr(&b, STN_A_REALM, "tsunagu", 7);
        stn_build_attr(&b, STN_A_NONCE, c->nonce, c->nonce_len);
        stn_build_integrity(&b, c->key, 16);
    }
    stn_build_finish(&b, &len);
    if (!feed(c, buf, len))
        return -1;
    if (c->m.cls == STN_SUCCESS)
        return 0;
    e = stn_msg_find(&c->m, STN_A_ERROR_CODE);
    if (!e || stn_attr_get_error(&c->m, e, &code, &reason))
        return -2;
    return code;
}

static void learn_nonce(client *c)
{
    const stn_attr_ref *n;
    uint8_t rt[4] = {17, 0, 0, 0};
    a_t a[] = {{STN_A_REQUESTED_TRANSPORT, rt, 4}};
    req(c, STN_ALLOCATE, a, 1, false, NULL);
    n = stn_msg_find(&c->m, STN_A_NONCE);
    if (n && n->len < sizeof c->nonce) {
        memcpy(c->nonce, c->resp + n->off, n->len);
        c->nonce_len = n->len;
    }
}

static void client_init(client *c, rly_turn *t, const char *ip, uint16_t port, const char *user,
                        const char *pass)
{
    memset(c, 0, sizeof c[0]);
    c->t = t;
    rtc_addr_parse_ip(ip, &c->tu.client);
    c->tu.client.port = port;
    c->tu.proto = RLY_UDP;
    c->now_ms = 1000000;
    c->wall_s = 1800000000;
    c->user = user;
    stn_auth_longterm_key(user, strlen(user), "tsunagu", 7, pass, strlen(pass), c->key);
    learn_nonce(c);
}

/* A request signed the RFC 8489 way, built by hand so the test does not
 * lean on the codec it checks: USERNAME, REALM, NONCE, then
 * PASSWORD-ALGORITHM and PASSWORD-ALGORITHMS (each only when given), then
 * MESSAGE-INTEGRITY-SHA256 of tlen bytes = HMAC-SHA256(key) computed with
 * OpenSSL directly over the header (length ending after it) and the
 * attributes (RFC 8489 s.14.6). Returns as req(). */
static int req256(client *c, uint16_t method, const a_t *attrs, size_t n, const uint8_t *key,
                  size_t keylen, const a_t *pa, const a_t *pas, size_t tlen)
{
    uint8_t buf[1024], tid[12], mac[32];
    unsigned int ml = 32;
    stn_builder b;
    size_t len, body;
    const stn_attr_ref *e;
    int code;
    rtc_rd reason;

    static uint8_t serial;
    for (int i = 0; i < 12; i++)
        tid[i] = (uint8_t)(c->now_ms + (uint64_t)i * 13 + (uint64_t)sent + 0x55);
    tid[11] = ++serial; /* distinct transactions */
    stn_build_init(&b, buf, sizeof buf, method, STN_REQUEST, tid);
    for (size_t i = 0; i < n; i++)
        stn_build_attr(&b, attrs[i].type, attrs[i].val, attrs[i].len);
    stn_build_attr(&b, STN_A_USERNAME, c->user, strlen(c->user));
    stn_build_attr(&b, STN_A_REALM, "tsunagu", 7);
    stn_build_attr(&b, STN_A_NONCE, c->nonce, c->nonce_len);
    if (pa)
        stn_build_attr(&b, pa->type, pa->val, pa->len);
    if (pas)
        stn_build_attr(&b, pas->type, pas->val, pas->len);
    stn_build_finish(&b, &len);
    body = len - 20 + 4 + tlen;
    buf[2] = (uint8_t)(body >> 8);
    buf[3] = (uint8_t)body;
    HMAC(EVP_sha256(), key, (int)keylen, buf, len, mac, &ml);
    buf[len++] = 0x00, buf[len++] = 0x1C, buf[len++] = 0x00, buf[len++] = (uint8_t)tlen;
    memcpy(buf + len, mac, tlen);
    len += tlen;
    if (!feed(c, buf, len))
        return -1;
    if (c->m.cls == STN_SUCCESS)
        return 0;
    e = stn_msg_find(&c->m, STN_A_ERROR_CODE);
    if (!e || stn_attr_get_error(&c->m, e, &code, &reason))
        return -2;
    return code;
}

/* Does the response end in a MESSAGE-INTEGRITY-SHA256 (32 bytes) that
 * OpenSSL's HMAC-SHA256 with key reproduces? (No FINGERPRINT follows: the
 * header length as sent already ends after it.) */
static bool resp_mi256_ok(const client *c, const uint8_t *key, size_t keylen)
{
    uint8_t mac[32];
    unsigned int ml = 32;
    const uint8_t *p = c->resp + c->resp_len - 36;
    if (c->resp_len < 56 || p[0] != 0x00 || p[1] != 0x1C || p[2] != 0 || p[3] != 32)
        return false;
    HMAC(EVP_sha256(), key, (int)keylen, c->resp, c->resp_len - 36, mac, &ml);
    return memcmp(mac, p + 4, 32) == 0;
}

static void sha256_key(const char *user, const char *realm, const char *pass, uint8_t out[32])
{
    char in[256];
    int n = snprintf(in, sizeof in, "%s:%s:%s", user, realm, pass);
    SHA256((const unsigned char *)in, (size_t)n, out);
}

static int allocate(client *c)
{
    uint8_t rt[4] = {17, 0, 0, 0};
    a_t a[] = {{STN_A_REQUESTED_TRANSPORT, rt, 4}};
    return req(c, STN_ALLOCATE, a, 1, true, NULL);
}

static int refresh(client *c, uint32_t life)
{
    uint8_t v[4] = {(uint8_t)(life >> 24), (uint8_t)(life >> 16), (uint8_t)(life >> 8),
                    (uint8_t)life};
    a_t a[] = {{STN_A_LIFETIME, v, 4}};
    return req(c, STN_REFRESH, a, 1, true, NULL);
}

/* XOR-PEER-ADDRESS value for a transaction id */
static size_t xor_peer(uint8_t out[20], const char *ip, uint16_t port, const uint8_t tid[12])
{
    uint8_t buf[64];
    stn_builder b;
    rtc_addr a;
    size_t len;
    rtc_addr_parse_ip(ip, &a);
    a.port = port;
    stn_build_init(&b, buf, sizeof buf, STN_BINDING, STN_REQUEST, tid);
    stn_build_xor_addr(&b, STN_A_XOR_PEER_ADDRESS, &a);
    stn_build_finish(&b, &len);
    memcpy(out, buf + 24, len - 24);
    return len - 24;
}

static int permit(client *c, const char *ip, uint16_t port)
{
    uint8_t tid[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, (uint8_t)sent}, v[20];
    size_t n = xor_peer(v, ip, port, tid);
    a_t a[] = {{STN_A_XOR_PEER_ADDRESS, v, n}};
    return req(c, STN_CREATE_PERMISSION, a, 1, true, tid);
}

static int chan_bind(client *c, uint16_t chan, const char *ip, uint16_t port)
{
    uint8_t tid[12] = {9, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, (uint8_t)sent}, v[20];
    uint8_t cn[4] = {(uint8_t)(chan >> 8), (uint8_t)chan, 0, 0};
    size_t n = xor_peer(v, ip, port, tid);
    a_t a[] = {{STN_A_CHANNEL_NUMBER, cn, 4}, {STN_A_XOR_PEER_ADDRESS, v, n}};
    return req(c, STN_CHANNEL_BIND, a, 2, true, tid);
}

int main(void)
{
    rly_turn t;
    rly_quota *quota;
    rly_cfg cfg;
    rtc_peer_policy_params pp = {0};
    char err[256];
    char *users[] = {"alice:pa55", "bob:w0rd"};
    rly_io io = {NULL, f_open, f_attach, f_close, f_send, NULL};
    client c, d;
    uint8_t rt[4] = {17, 0, 0, 0}, tcp[4] = {6, 0, 0, 0}, fam6[4] = {2, 0, 0, 0};

    memset(&cfg, 0, sizeof cfg);
    char *secrets[] = {"restsecret"};
    cfg.auth = rly_auth_new("tsunagu", users, 2, secrets, 1, err, sizeof err);
    rtc_addr_parse_ip("192.0.2.100", &cfg.relay_ip[0]);
    cfg.advertise[0] = cfg.relay_ip[0];
    pp.own = &cfg.relay_ip[0];
    pp.n_own = 1;
    pp.own_port_lo = 50000;
    pp.own_port_hi = 60000;
    cfg.policy = rtc_peer_policy_new(&pp);
    cfg.lim = (rly_limits){.default_lifetime_s = 600, .max_lifetime_s = 3600, .max_allocs = 10,
                           .max_allocs_per_user = 2, .bandwidth = 0, .nonce_ttl_s = 60};
    ok(cfg.auth && cfg.policy, "config built");
    {
        uint8_t nk[32] = {1, 2, 3};
        quota = rly_quota_new();
        is_int(rly_turn_init(&t, &cfg, &io, quota, nk), 0, "engine init");
    }

    /* Binding without auth */
    client_init(&c, &t, "198.51.100.1", 4000, "alice", "pa55");
    {
        rtc_addr mapped;
        is_int(req(&c, STN_BINDING, NULL, 0, false, NULL), 0, "binding answered");
        ok(!stn_attr_get_xor_addr(&c.m, stn_msg_find(&c.m, STN_A_XOR_MAPPED_ADDRESS), &mapped) &&
               rtc_addr_equal(&mapped, &c.tu.client),
           "binding: XOR-MAPPED-ADDRESS is the client");
    }
    /* 401 with REALM and NONCE */
    {
        a_t a[] = {{STN_A_REQUESTED_TRANSPORT, rt, 4}};
        is_int(req(&c, STN_ALLOCATE, a, 1, false, NULL), 401, "no credentials: 401");
        ok(stn_msg_find(&c.m, STN_A_REALM) && stn_msg_find(&c.m, STN_A_NONCE),
           "401 has REALM and NONCE");
        ok(c.m.mi < 0, "401 without MESSAGE-INTEGRITY");
        ok(c.nonce_len == STN_NONCE_MAX_LEN, "nonce learnt");
        ok(!memcmp(c.nonce, "obMatJos2AAAB", 13),
           "nonce starts with the RFC 8489 cookie, Password algorithms bit set");
        {
            const stn_attr_ref *pa = stn_msg_find(&c.m, STN_A_PASSWORD_ALGORITHMS);
            ok(pa && pa->len == 8 &&
                   !memcmp(c.resp + pa->off, "\x00\x02\x00\x00\x00\x01\x00\x00", 8),
               "401 offers PASSWORD-ALGORITHMS SHA-256, MD5");
        }
    }
    /* amplification: bare requests get small answers
     * before authentication, not the 401 with REALM and NONCE */
    is_int(req(&c, STN_ALLOCATE, NULL, 0, false, NULL), 400, "bare Allocate: 400 before auth");
    ok(c.resp_len <= 28 && !stn_msg_find(&c.m, STN_A_NONCE), "bare Allocate: answer <= 28 bytes");
    is_int(req(&c, STN_REFRESH, NULL, 0, false, NULL), 437, "bare Refresh: 437 before auth");
    ok(c.resp_len <= 28 && !stn_msg_find(&c.m, STN_A_NONCE), "bare Refresh: answer <= 28 bytes");
    is_int(req(&c, STN_CREATE_PERMISSION, NULL, 0, false, NULL), 437,
           "bare CreatePermission: 437 before auth");
    is_int(t.stats.auth_failures, 0, "none of them counted as an auth failure");
    /* malformed / unsupported */
    is_int(req(&c, STN_ALLOCATE, NULL, 0, true, NULL), 400, "no REQUESTED-TRANSPORT: 400");
    {
        a_t a[] = {{STN_A_REQUESTED_TRANSPORT, tcp, 4}};
        is_int(req(&c, STN_ALLOCATE, a, 1, true, NULL), 442, "TCP transport: 442");
    }
    {
        a_t a[] = {{STN_A_REQUESTED_TRANSPORT, rt, 4}, {STN_A_REQUESTED_ADDRESS_FAMILY, fam6, 4}};
        is_int(req(&c, STN_ALLOCATE, a, 2, true, NULL), 440, "IPv6 not available: 440");
    }
    {
        a_t a[] = {{STN_A_REQUESTED_TRANSPORT, rt, 4}, {0x7ABC, "abcd", 4}};
        const stn_attr_ref *u;
        is_int(req(&c, STN_ALLOCATE, a, 2, true, NULL), 420, "unknown attribute: 420");
        u = stn_msg_find(&c.m, STN_A_UNKNOWN_ATTRIBUTES);
        ok(u && u->len == 2 && c.resp[u->off] == 0x7A && c.resp[u->off + 1] == 0xBC,
           "UNKNOWN-ATTRIBUTES lists 0x7ABC");
        ok(c.m.mi >= 0 && stn_auth_check_integrity(&c.m, c.key, 16), "authenticated 420 has MI");
    }
    is_int(req(&c, 0x0FF, NULL, 0, false, NULL), 400, "unknown method: 400");
    {
        client bad;
        client_init(&bad, &t, "198.51.100.9", 4000, "alice", "wrong");
        is_int(allocate(&bad), 401, "wrong password: 401");
        is_int(t.stats.auth_failures, 1, "auth failure counted");
        bad.wall_s += 61;
        is_int(allocate(&bad), 438, "nonce past its ttl: 438 before the password is checked");
        ok(stn_msg_find(&bad.m, STN_A_NONCE) != NULL, "438 carries a fresh NONCE");
    }
    /* Allocate */
    {
        uint8_t tid[12] = {7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7};
        a_t a[] = {{STN_A_REQUESTED_TRANSPORT, rt, 4}};
        rtc_addr rel1, rel2;
        is_int(req(&c, STN_ALLOCATE, a, 1, true, tid), 0, "allocate");
        ok(stn_auth_check_integrity(&c.m, c.key, 16), "success has valid MI");
        stn_attr_get_xor_addr(&c.m, stn_msg_find(&c.m, STN_A_XOR_RELAYED_ADDRESS), &rel1);
        is_int(req(&c, STN_ALLOCATE, a, 1, true, tid), 0, "retransmission: same success");
        stn_attr_get_xor_addr(&c.m, stn_msg_find(&c.m, STN_A_XOR_RELAYED_ADDRESS), &rel2);
        ok(rtc_addr_equal(&rel1, &rel2), "retransmission: same relayed address");
        is_int(open_fds, 1, "one relayed socket");
        is_int(allocate(&c), 437, "second allocate: 437");
    }
    /* quota: per user 2, alice has 1 */
    {
        client c2, c3;
        client_init(&c2, &t, "198.51.100.2", 4000, "alice", "pa55");
        client_init(&c3, &t, "198.51.100.3", 4000, "alice", "pa55");
        is_int(allocate(&c2), 0, "alice 2/2");
        is_int(allocate(&c3), 486, "alice 3/2: 486");
        is_int(refresh(&c2, 0), 0, "refresh 0");
        is_int(allocate(&c3), 0, "quota freed at once");
        is_int(refresh(&c3, 0), 0, "release again");
        is_int(refresh(&c3, 600), 437, "refresh after release: 437");
    }
    /* permissions, policy */
    is_int(permit(&c, "127.0.0.1", 5000), 403, "loopback peer: 403");
    is_int(permit(&c, "10.1.2.3", 5000), 403, "private peer: 403");
    is_int(permit(&c, "::ffff:127.0.0.1", 5000), 403, "v4-mapped loopback: 403");
    is_int(t.stats.permission_denied, 3, "denials counted");
    is_int(permit(&c, "192.0.2.100", 50010), 0, "own relayed address allowed");
    is_int(permit(&c, "2001:db8::1", 5000), 443, "v6 peer on v4 allocation: 443");
    is_int(permit(&c, "203.0.113.5", 7000), 0, "public peer allowed");

    /* Send indication -> peer */
    {
        uint8_t buf[256], tid[12] = {3}, v[20];
        stn_builder b;
        size_t len, n = xor_peer(v, "203.0.113.5", 7000, tid);
        int before = sent;
        stn_build_init(&b, buf, sizeof buf, STN_SEND, STN_INDICATION, tid);
        stn_build_attr(&b, STN_A_XOR_PEER_ADDRESS, v, n);
        stn_build_attr(&b, STN_A_DATA, "hello", 5);
        stn_build_finish(&b, &len);
        is_int(feed(&c, buf, len), 0, "indications get no answer");
        ok(sent == before + 1 && last_len == 5 && !memcmp(last_data, "hello", 5) &&
               last_peer.port == 7000,
           "Send indication relayed to the peer");
        n = xor_peer(v, "203.0.113.77", 7000, tid);
        stn_build_init(&b, buf, sizeof buf, STN_SEND, STN_INDICATION, tid);
        stn_build_attr(&b, STN_A_XOR_PEER_ADDRESS, v, n);
        stn_build_attr(&b, STN_A_DATA, "nope", 4);
        stn_build_finish(&b, &len);
        feed(&c, buf, len);
        ok(sent == before + 1 && t.stats.dropped[RLY_DROP_NO_PERMISSION] == 1,
           "Send to a peer without permission dropped and counted");
    }
    /* SSRF through the own IP: the permission is per IP,
     * so one for RELAY_IP:<relayed port> must not let Send, ChannelData or
     * inbound data use the relay host's other ports */
    {
        uint8_t buf[256], tid[12] = {4}, v[20];
        stn_builder b;
        size_t len, n;
        int before = sent;
        uint64_t drops = t.stats.dropped[RLY_DROP_NO_PERMISSION];
        rly_alloc *a = rly_table_find(t.table, &c.tu);
        rtc_addr own = cfg.relay_ip[0];
        uint8_t pb[RLY_HEADROOM + 64];
        size_t flen;
        n = xor_peer(v, "192.0.2.100", 6379, tid);
        stn_build_init(&b, buf, sizeof buf, STN_SEND, STN_INDICATION, tid);
        stn_build_attr(&b, STN_A_XOR_PEER_ADDRESS, v, n);
        stn_build_attr(&b, STN_A_DATA, "INFO", 4);
        stn_build_finish(&b, &len);
        feed(&c, buf, len);
        ok(sent == before && t.stats.dropped[RLY_DROP_NO_PERMISSION] == drops + 1,
           "Send to own IP outside the relay range dropped (no_permission)");
        n = xor_peer(v, "192.0.2.100", 50012, tid);
        stn_build_init(&b, buf, sizeof buf, STN_SEND, STN_INDICATION, tid);
        stn_build_attr(&b, STN_A_XOR_PEER_ADDRESS, v, n);
        stn_build_attr(&b, STN_A_DATA, "hi", 2);
        stn_build_finish(&b, &len);
        feed(&c, buf, len);
        ok(sent == before + 1, "Send to another relayed address on the own IP relayed");
        own.port = 6379;
        memcpy(pb + RLY_HEADROOM, "+OK\r\n", 5);
        ok(a && rly_turn_from_peer(&t, a, &own, pb, 5, c.now_ms, &flen) == NULL &&
               t.stats.dropped[RLY_DROP_NO_PERMISSION] == drops + 2,
           "data from own IP outside the relay range dropped");
        own.port = 50012;
        ok(a && rly_turn_from_peer(&t, a, &own, pb, 5, c.now_ms, &flen) != NULL,
           "data from another relayed address on the own IP passes");
        is_int(chan_bind(&c, 0x4F00, "192.0.2.100", 6379), 403,
               "ChannelBind to own IP outside the range: 403");
    }
    /* channels */
    is_int(chan_bind(&c, 0x3FFF, "203.0.113.5", 7000), 400, "channel 0x3FFF: 400");
    is_int(chan_bind(&c, 0x5000, "203.0.113.5", 7000), 400, "channel 0x5000: 400 (RFC 8656)");
    cfg.lim.legacy_channels = true;
    is_int(chan_bind(&c, 0x5000, "203.0.113.5", 7002), 0, "0x5000 with legacy channels");
    cfg.lim.legacy_channels = false;
    is_int(chan_bind(&c, 0x4000, "203.0.113.5", 7000), 0, "bind 0x4000");
    is_int(chan_bind(&c, 0x4001, "203.0.113.5", 7000), 400, "peer on two channels: 400");
    is_int(chan_bind(&c, 0x4000, "203.0.113.6", 7000), 400, "channel to two peers: 400");
    {
        uint8_t cd[12] = {0x40, 0x00, 0x00, 0x05, 'w', 'o', 'r', 'l', 'd', 0, 0, 0};
        int before = sent;
        feed(&c, cd, 9);
        ok(sent == before + 1 && last_len == 5 && !memcmp(last_data, "world", 5),
           "ChannelData relayed");
        feed(&c, cd, 12);
        ok(sent == before + 2, "ChannelData with padding relayed");
        cd[1] = 0x09;
        feed(&c, cd, 9);
        ok(sent == before + 2 && t.stats.dropped[RLY_DROP_NO_CHANNEL] == 1,
           "unbound channel dropped");
        cd[1] = 0x00;
        cd[3] = 0x40;
        feed(&c, cd, 9);
        ok(sent == before + 2, "ChannelData with a lying length dropped");
    }
    /* peer -> client */
    {
        rly_alloc *a = rly_table_find(t.table, &c.tu);
        uint8_t buf[RLY_HEADROOM + 64];
        rtc_addr peer, stranger;
        const uint8_t *f;
        size_t flen;
        stn_msg m;
        rtc_addr_parse_ip("203.0.113.5", &peer);
        peer.port = 7000;
        memcpy(buf + RLY_HEADROOM, "pong!", 5);
        f = rly_turn_from_peer(&t, a, &peer, buf, 5, c.now_ms, &flen);
        ok(f && flen == 9 && f[0] == 0x40 && f[1] == 0x00 && f[3] == 5 && !memcmp(f + 4, "pong!", 5),
           "bound peer -> ChannelData (UDP: unpadded)");
        a->tuple.proto = RLY_TCP;
        f = rly_turn_from_peer(&t, a, &peer, buf, 5, c.now_ms, &flen);
        ok(f && flen == 12, "over TCP ChannelData is padded to 4");
        a->tuple.proto = RLY_UDP;
        peer.port = 7001; /* permitted IP, no channel */
        memcpy(buf + RLY_HEADROOM, "data!", 5);
        f = rly_turn_from_peer(&t, a, &peer, buf, 5, c.now_ms, &flen);
        ok(f && !stn_msg_parse(&m, f, flen) && m.method == STN_DATA && m.cls == STN_INDICATION,
           "other port -> Data indication");
        if (f) {
            const stn_attr_ref *da = stn_msg_find(&m, STN_A_DATA);
            rtc_addr got;
            ok(da && da->len == 5 && !memcmp(f + da->off, "data!", 5), "Data indication payload");
            ok(!stn_attr_get_xor_addr(&m, stn_msg_find(&m, STN_A_XOR_PEER_ADDRESS), &got) &&
                   rtc_addr_equal(&got, &peer),
               "Data indication XOR-PEER-ADDRESS");
        }
        rtc_addr_parse_ip("203.0.113.99", &stranger);
        stranger.port = 1;
        ok(rly_turn_from_peer(&t, a, &stranger, buf, 5, c.now_ms, &flen) == NULL,
           "peer without permission dropped");
    }
    /* CreatePermission is all or nothing (RFC 8656 s.9.2):
     * a request that would overflow RLY_MAX_PERMS installs none of its peers */
    {
        client e;
        rly_alloc *a;
        uint8_t tid[12] = {8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8}, v[3][20];
        a_t at[3];
        char ip[32];
        int fails = 0;
        client_init(&e, &t, "198.51.100.8", 4000, "bob", "w0rd");
        is_int(allocate(&e), 0, "bob allocates for the permission test");
        for (int i = 0; i < RLY_MAX_PERMS - 1; i++) {
            snprintf(ip, sizeof ip, "203.0.113.%d", 100 + i);
            fails += permit(&e, ip, 1000) != 0;
        }
        is_int(fails, 0, "31 permissions installed");
        for (int i = 0; i < 3; i++) {
            snprintf(ip, sizeof ip, "198.51.100.%d", 200 + i);
            at[i] = (a_t){STN_A_XOR_PEER_ADDRESS, v[i], xor_peer(v[i], ip, 1000, tid)};
        }
        is_int(req(&e, STN_CREATE_PERMISSION, at, 3, true, tid), 508,
               "3 new peers on 31 of 32: 508");
        a = rly_table_find(t.table, &e.tu);
        ok(a && a->n_perms == RLY_MAX_PERMS - 1, "and none of them installed");
        at[1] = at[0];
        at[2] = at[0];
        is_int(req(&e, STN_CREATE_PERMISSION, at, 3, true, tid), 0,
               "one new peer named three times fits");
        ok(a && a->n_perms == RLY_MAX_PERMS, "installed once");
        is_int(permit(&e, "203.0.113.100", 1000), 0, "refreshing an existing one on a full table");
        is_int(refresh(&e, 0), 0, "bob releases the permission test allocation");
    }
    /* EVEN-PORT reservations are charged to the user's quota and capped per
     * user, so one user cannot fill the shared table */
    {
        client e, f;
        uint8_t ep[1] = {0x80}, tok[8];
        a_t ar[] = {{STN_A_REQUESTED_TRANSPORT, rt, 4}, {STN_A_EVEN_PORT, ep, 1}};
        a_t at[] = {{STN_A_REQUESTED_TRANSPORT, rt, 4}, {STN_A_RESERVATION_TOKEN, tok, 8}};
        const stn_attr_ref *tr;
        size_t total0 = rly_quota_total(quota);
        int fds0 = open_fds, made = 0, code = 0;
        client_init(&e, &t, "198.51.100.11", 4000, "bob", "w0rd");
        client_init(&f, &t, "198.51.100.12", 4000, "bob", "w0rd");
        is_int(req(&e, STN_ALLOCATE, ar, 2, true, NULL), 0, "EVEN-PORT R allocate");
        tr = stn_msg_find(&e.m, STN_A_RESERVATION_TOKEN);
        ok(tr && tr->len == 8, "RESERVATION-TOKEN returned");
        if (tr)
            memcpy(tok, e.resp + tr->off, 8);
        is_int(rly_quota_total(quota), total0 + 2, "allocation + reservation: 2 quota units");
        is_int(refresh(&e, 0), 0, "release the even allocation");
        is_int(rly_quota_total(quota), total0 + 1, "the held reservation still counts");
        is_int(req(&e, STN_ALLOCATE, ar, 2, true, NULL), 486,
               "bob (2 max) with 1 reservation: EVEN-PORT R needs 2 more: 486");
        is_int(open_fds, fds0 + 1, "nothing leaked by the refused one");
        is_int(req(&f, STN_ALLOCATE, at, 2, true, NULL), 0, "allocate with the token");
        is_int(rly_quota_total(quota), total0 + 1, "the reservation's unit moved to it");
        is_int(refresh(&f, 0), 0, "release it");
        is_int(rly_quota_total(quota), total0, "all of bob's quota back");
        /* per-user cap with a large quota */
        cfg.lim.max_allocs_per_user = 100;
        cfg.lim.max_allocs = 100;
        for (int i = 0; i < 8 && !code; i++) {
            code = req(&e, STN_ALLOCATE, ar, 2, true, NULL);
            if (!code) {
                made++;
                refresh(&e, 0);
            }
        }
        is_int(made, RLY_RESV_PER_USER, "reservations capped per user");
        is_int(code, 486, "the next EVEN-PORT R: 486");
        is_int(req(&f, STN_ALLOCATE, ar, 1, true, NULL), 0, "plain allocate still works");
        is_int(refresh(&f, 0), 0, "release it");
        rly_turn_sweep(&t, e.now_ms + RLY_RESV_MS);
        is_int(rly_quota_total(quota), total0, "expired reservations give their quota back");
        is_int(open_fds, fds0, "and close their sockets");
        cfg.lim.max_allocs_per_user = 2;
        cfg.lim.max_allocs = 10;
    }
    /* DONT-FRAGMENT (RFC 8656 s.7.2): honoured by setting
     * DF on the relayed socket, or refused with 420 naming it */
    {
        client e;
        a_t ad[] = {{STN_A_REQUESTED_TRANSPORT, rt, 4}, {STN_A_DONT_FRAGMENT, NULL, 0}};
        const stn_attr_ref *u;
        int fds0 = open_fds;
        size_t total0 = rly_quota_total(quota);
        client_init(&e, &t, "198.51.100.21", 4000, "bob", "w0rd");
        t.io.relay_dont_fragment = f_df;
        df_result = -ENOPROTOOPT;
        is_int(req(&e, STN_ALLOCATE, ad, 2, true, NULL), 420, "DF cannot be set: 420");
        u = stn_msg_find(&e.m, STN_A_UNKNOWN_ATTRIBUTES);
        ok(u && u->len == 2 && e.resp[u->off] == 0x00 && e.resp[u->off + 1] == 0x1A,
           "420 UNKNOWN-ATTRIBUTES names DONT-FRAGMENT");
        ok(open_fds == fds0 && rly_quota_total(quota) == total0,
           "refused: socket closed, quota given back");
        df_result = 0;
        df_calls = 0;
        is_int(req(&e, STN_ALLOCATE, ad, 2, true, NULL), 0, "DF set: allocate succeeds");
        is_int(df_calls, 1, "DF was set on the relayed socket");
        is_int(refresh(&e, 0), 0, "release it");
        df_calls = 0;
        is_int(allocate(&e), 0, "without DONT-FRAGMENT");
        is_int(df_calls, 0, "DF left alone");
        is_int(refresh(&e, 0), 0, "release it");
        t.io.relay_dont_fragment = NULL;
        is_int(req(&e, STN_ALLOCATE, ad, 2, true, NULL), 420, "no DF support at all: 420");
    }
    /* RFC 8489 s.9.2: PASSWORD-ALGORITHM SHA-256 and MESSAGE-INTEGRITY-SHA256,
     * static and REST users; everything else unchanged for RFC 5389 clients */
    {
        client e, g;
        uint8_t k256[32], md5k[16], wrong[32];
        uint8_t v_sha[4] = {0, 2, 0, 0}, v_md5[4] = {0, 1, 0, 0}, v_3[4] = {0, 3, 0, 0};
        uint8_t v_pas[8] = {0, 2, 0, 0, 0, 1, 0, 0}, v_pas_md5[4] = {0, 1, 0, 0};
        uint8_t v_pas_rev[8] = {0, 1, 0, 0, 0, 2, 0, 0};
        a_t pa_sha = {STN_A_PASSWORD_ALGORITHM, v_sha, 4}, pa_md5 = {STN_A_PASSWORD_ALGORITHM, v_md5, 4};
        a_t pa_3 = {STN_A_PASSWORD_ALGORITHM, v_3, 4};
        a_t pas = {STN_A_PASSWORD_ALGORITHMS, v_pas, 8};
        a_t pas_md5 = {STN_A_PASSWORD_ALGORITHMS, v_pas_md5, 4};
        a_t pas_rev = {STN_A_PASSWORD_ALGORITHMS, v_pas_rev, 8};
        a_t ar[] = {{STN_A_REQUESTED_TRANSPORT, rt, 4}};
        uint8_t life0[4] = {0, 0, 0, 0}, life600[4] = {0, 0, 2, 0x58};
        a_t l0[] = {{STN_A_LIFETIME, life0, 4}}, l600[] = {{STN_A_LIFETIME, life600, 4}};
        uint64_t fails;

        client_init(&e, &t, "198.51.100.41", 4000, "bob", "w0rd");
        sha256_key("bob", "tsunagu", "w0rd", k256);
        memcpy(md5k, e.key, 16);
        is_int(req256(&e, STN_ALLOCATE, ar, 1, k256, 32, &pa_sha, &pas, 32), 0,
               "PASSWORD-ALGORITHM SHA-256 + MI-SHA256 with SHA-256(user:realm:pass): success");
        ok(e.m.mi256 >= 0 && e.m.mi < 0, "the success carries MI-SHA256 and no MI");
        ok(resp_mi256_ok(&e, k256, 32), "its MI-SHA256 is HMAC-SHA256 with the SHA-256 key");
        is_int(req256(&e, STN_REFRESH, l600, 1, k256, 32, &pa_sha, &pas, 16), 0,
               "Refresh with MI-SHA256 truncated to 16 bytes: success");
        ok(resp_mi256_ok(&e, k256, 32), "answered with a full MI-SHA256");
        fails = t.stats.auth_failures;
        sha256_key("bob", "tsunagu", "w0rD", wrong);
        is_int(req256(&e, STN_REFRESH, l600, 1, wrong, 32, &pa_sha, &pas, 32), 401,
               "SHA-256 key of a wrong password: 401");
        is_int(req256(&e, STN_REFRESH, l600, 1, md5k, 16, &pa_sha, &pas, 32), 401,
               "the MD5 key where SHA-256 was chosen: 401");
        is_int(t.stats.auth_failures, fails + 2, "both counted as auth failures");
        ok(stn_msg_find(&e.m, STN_A_PASSWORD_ALGORITHMS) && stn_msg_find(&e.m, STN_A_NONCE),
           "the 401 offers PASSWORD-ALGORITHMS and a NONCE again");
        is_int(req256(&e, STN_REFRESH, l600, 1, k256, 32, &pa_sha, &pas_md5, 32), 400,
               "PASSWORD-ALGORITHMS echo that lost SHA-256 (bid-down): 400");
        is_int(req256(&e, STN_REFRESH, l600, 1, k256, 32, &pa_sha, &pas_rev, 32), 400,
               "PASSWORD-ALGORITHMS echo in another order: 400");
        is_int(req256(&e, STN_REFRESH, l600, 1, k256, 32, &pa_sha, NULL, 32), 400,
               "PASSWORD-ALGORITHM without PASSWORD-ALGORITHMS: 400");
        is_int(req256(&e, STN_REFRESH, l600, 1, k256, 32, NULL, &pas, 32), 400,
               "PASSWORD-ALGORITHMS without PASSWORD-ALGORITHM: 400");
        is_int(req256(&e, STN_REFRESH, l600, 1, k256, 32, &pa_3, &pas, 32), 400,
               "PASSWORD-ALGORITHM 3, not offered: 400");
        is_int(req256(&e, STN_REFRESH, l600, 1, md5k, 16, &pa_md5, &pas, 32), 0,
               "PASSWORD-ALGORITHM MD5 chosen, MI-SHA256 with the MD5 key: success");
        ok(resp_mi256_ok(&e, md5k, 16), "answered with MI-SHA256 under the MD5 key (s.9.2.4)");
        is_int(req256(&e, STN_REFRESH, l600, 1, md5k, 16, NULL, NULL, 20), 0,
               "no PASSWORD-ALGORITHM(S), MI-SHA256 with the MD5 key: treated as MD5");
        ok(e.m.mi >= 0 && e.m.mi256 < 0 && stn_auth_check_integrity(&e.m, md5k, 16),
           "and answered with MI, as an MD5 client expects (s.9.2.4)");
        is_int(refresh(&e, 600), 0, "plain MI (RFC 5389 client) on the same allocation: success");
        ok(e.m.mi >= 0 && e.m.mi256 < 0, "answered with MI only");
        is_int(req256(&e, STN_REFRESH, l0, 1, k256, 32, &pa_sha, &pas, 32), 0, "Refresh 0");

        /* TURN REST credentials: password base64(HMAC-SHA1(secret, user)),
         * key SHA-256(user:realm:password), all computed with OpenSSL here */
        {
            const char *ru = "1800003600:carol";
            uint8_t h[20];
            unsigned int hl = 20;
            unsigned char pw[64];
            HMAC(EVP_sha1(), "restsecret", 10, (const unsigned char *)ru, strlen(ru), h, &hl);
            EVP_EncodeBlock(pw, h, 20);
            client_init(&g, &t, "198.51.100.42", 4000, ru, (const char *)pw);
            sha256_key(ru, "tsunagu", (const char *)pw, k256);
            is_int(req256(&g, STN_ALLOCATE, ar, 1, k256, 32, &pa_sha, &pas, 32), 0,
                   "REST credentials with SHA-256: success");
            ok(resp_mi256_ok(&g, k256, 32), "MI-SHA256 under the REST SHA-256 key");
            is_int(req256(&g, STN_REFRESH, l0, 1, k256, 32, &pa_sha, &pas, 32), 0, "Refresh 0");
            g.wall_s += 3601;
            learn_nonce(&g);
            is_int(req256(&g, STN_ALLOCATE, ar, 1, k256, 32, &pa_sha, &pas, 32), 401,
                   "expired REST username with SHA-256: 401");
        }
    }
    /* dual allocations (RFC 8656 s.7.2 ADDITIONAL-ADDRESS-FAMILY) */
    {
        client e;
        uint8_t fam4[4] = {1, 0, 0, 0}, fam3[4] = {3, 0, 0, 0}, ep[1] = {0x80}, tok[8] = {0};
        a_t dual[] = {{STN_A_REQUESTED_TRANSPORT, rt, 4}, {STN_A_ADDITIONAL_ADDRESS_FAMILY, fam6, 4}};
        a_t aaf4[] = {{STN_A_REQUESTED_TRANSPORT, rt, 4}, {STN_A_ADDITIONAL_ADDRESS_FAMILY, fam4, 4}};
        a_t aaf3[] = {{STN_A_REQUESTED_TRANSPORT, rt, 4}, {STN_A_ADDITIONAL_ADDRESS_FAMILY, fam3, 4}};
        a_t both[] = {{STN_A_REQUESTED_TRANSPORT, rt, 4},
                      {STN_A_REQUESTED_ADDRESS_FAMILY, fam4, 4},
                      {STN_A_ADDITIONAL_ADDRESS_FAMILY, fam6, 4}};
        a_t withr[] = {{STN_A_REQUESTED_TRANSPORT, rt, 4},
                       {STN_A_ADDITIONAL_ADDRESS_FAMILY, fam6, 4}, {STN_A_EVEN_PORT, ep, 1}};
        a_t withtok[] = {{STN_A_REQUESTED_TRANSPORT, rt, 4},
                         {STN_A_ADDITIONAL_ADDRESS_FAMILY, fam6, 4},
                         {STN_A_RESERVATION_TOKEN, tok, 8}};
        uint8_t tid[12] = {0xd, 0xa, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
        rtc_addr rel[4], got;
        size_t nrel;
        const stn_attr_ref *aec;
        int fam = 0, code = 0, fds0 = open_fds;
        size_t total0 = rly_quota_total(quota);
        rtc_rd reason;
        rly_alloc *a;

        client_init(&e, &t, "198.51.100.51", 4000, "bob", "w0rd");
        /* the relay has only an IPv4 relay address so far */
        is_int(req(&e, STN_ALLOCATE, dual, 2, true, NULL), 0, "dual on an IPv4-only relay: success");
        nrel = 0;
        for (unsigned i = 0; i < e.m.n_attrs && nrel < 4; i++)
            if (e.m.attrs[i].type == STN_A_XOR_RELAYED_ADDRESS &&
                !stn_attr_get_xor_addr(&e.m, &e.m.attrs[i], &rel[nrel]))
                nrel++;
        ok(nrel == 1 && rel[0].family == AF_INET, "one XOR-RELAYED-ADDRESS, IPv4");
        aec = stn_msg_find(&e.m, STN_A_ADDRESS_ERROR_CODE);
        ok(aec && !stn_attr_get_address_error(&e.m, aec, &fam, &code, &reason) &&
               fam == AF_INET6 && code == 440,
           "ADDRESS-ERROR-CODE: IPv6, 440");
        is_int(refresh(&e, 0), 0, "release it");
        is_int(req(&e, STN_ALLOCATE, aaf4, 2, true, NULL), 400, "ADDITIONAL-ADDRESS-FAMILY IPv4: 400");
        is_int(req(&e, STN_ALLOCATE, aaf3, 2, true, NULL), 400, "ADDITIONAL-ADDRESS-FAMILY 3: 400");
        is_int(req(&e, STN_ALLOCATE, both, 3, true, NULL), 400,
               "REQUESTED- and ADDITIONAL-ADDRESS-FAMILY together: 400");
        is_int(req(&e, STN_ALLOCATE, withr, 3, true, NULL), 400,
               "ADDITIONAL-ADDRESS-FAMILY with EVEN-PORT R: 400");
        is_int(req(&e, STN_ALLOCATE, withtok, 3, true, NULL), 400,
               "ADDITIONAL-ADDRESS-FAMILY with RESERVATION-TOKEN: 400");
        is_int(open_fds, fds0, "no socket left behind");

        /* now with an IPv6 relay address too */
        rtc_addr_parse_ip("2001:db8::100", &cfg.relay_ip[1]);
        cfg.advertise[1] = cfg.relay_ip[1];
        is_int(req(&e, STN_ALLOCATE, dual, 2, true, tid), 0, "dual allocation: success");
        nrel = 0;
        for (unsigned i = 0; i < e.m.n_attrs && nrel < 4; i++)
            if (e.m.attrs[i].type == STN_A_XOR_RELAYED_ADDRESS &&
                !stn_attr_get_xor_addr(&e.m, &e.m.attrs[i], &rel[nrel]))
                nrel++;
        ok(nrel == 2 && rel[0].family == AF_INET && rel[1].family == AF_INET6,
           "two XOR-RELAYED-ADDRESS: IPv4, then IPv6");
        ok(!stn_msg_find(&e.m, STN_A_ADDRESS_ERROR_CODE), "no ADDRESS-ERROR-CODE");
        ok(stn_auth_check_integrity(&e.m, e.key, 16), "MI valid");
        is_int(open_fds, fds0 + 2, "two relayed sockets");
        is_int(rly_quota_total(quota), total0 + 1, "one quota unit: it is one allocation");
        is_int(req(&e, STN_ALLOCATE, dual, 2, true, tid), 0, "retransmission: success");
        nrel = 0;
        for (unsigned i = 0; i < e.m.n_attrs && nrel < 4; i++)
            if (e.m.attrs[i].type == STN_A_XOR_RELAYED_ADDRESS &&
                !stn_attr_get_xor_addr(&e.m, &e.m.attrs[i], &got))
                nrel += rtc_addr_equal(&got, &rel[nrel]);
        is_int(nrel, 2, "with the same two relayed addresses");
        a = rly_table_find(t.table, &e.tu);
        is_int(permit(&e, "203.0.113.50", 1000), 0, "IPv4 peer permitted");
        is_int(permit(&e, "2001:db8::50", 1000), 0, "IPv6 peer permitted on the same allocation");
        is_int(chan_bind(&e, 0x4200, "2001:db8::51", 2000), 0, "IPv6 channel");
        is_int(chan_bind(&e, 0x4201, "203.0.113.51", 2000), 0, "IPv4 channel");
        {
            uint8_t buf[256], tid2[12] = {5}, v[20], pb[RLY_HEADROOM + 64];
            uint8_t cd[8] = {0x42, 0x00, 0x00, 0x03, 's', 'i', 'x', 0};
            stn_builder b;
            size_t len, n;
            int before = sent;
            rtc_addr p6;
            const uint8_t *f;
            n = xor_peer(v, "2001:db8::50", 1000, tid2);
            stn_build_init(&b, buf, sizeof buf, STN_SEND, STN_INDICATION, tid2);
            stn_build_attr(&b, STN_A_XOR_PEER_ADDRESS, v, n);
            stn_build_attr(&b, STN_A_DATA, "v6", 2);
            stn_build_finish(&b, &len);
            feed(&e, buf, len);
            ok(sent == before + 1 && a && last_fd == a->relay_fd2 && last_peer.family == AF_INET6,
               "Send to the IPv6 peer leaves through the IPv6 socket");
            n = xor_peer(v, "203.0.113.50", 1000, tid2);
            stn_build_init(&b, buf, sizeof buf, STN_SEND, STN_INDICATION, tid2);
            stn_build_attr(&b, STN_A_XOR_PEER_ADDRESS, v, n);
            stn_build_attr(&b, STN_A_DATA, "v4", 2);
            stn_build_finish(&b, &len);
            feed(&e, buf, len);
            ok(sent == before + 2 && a && last_fd == a->relay_fd, "Send to IPv4 through the IPv4 one");
            feed(&e, cd, 7);
            ok(sent == before + 3 && a && last_fd == a->relay_fd2 && last_len == 3,
               "ChannelData on the IPv6 channel through the IPv6 socket");
            rtc_addr_parse_ip("2001:db8::51", &p6);
            p6.port = 2000;
            memcpy(pb + RLY_HEADROOM, "hey", 3);
            f = a ? rly_turn_from_peer(&t, a, &p6, pb, 3, e.now_ms, &len) : NULL;
            ok(f && len == 7 && f[0] == 0x42 && f[1] == 0x00, "IPv6 peer -> ChannelData 0x4200");
        }
        /* Refresh REQUESTED-ADDRESS-FAMILY IPv6, LIFETIME 0: that half goes */
        {
            uint8_t z[4] = {0, 0, 0, 0};
            a_t r6[] = {{STN_A_LIFETIME, z, 4}, {STN_A_REQUESTED_ADDRESS_FAMILY, fam6, 4}};
            is_int(req(&e, STN_REFRESH, r6, 2, true, NULL), 0, "Refresh IPv6 LIFETIME 0: success");
            is_int(open_fds, fds0 + 1, "the IPv6 socket is closed");
            a = rly_table_find(t.table, &e.tu);
            ok(a && a->relayed.family == AF_INET && a->relay_fd2 < 0, "the IPv4 half lives on");
            is_int(permit(&e, "2001:db8::50", 1000), 443, "IPv6 peers now: 443");
            is_int(permit(&e, "203.0.113.50", 1000), 0, "IPv4 peers still fine");
            is_int(req(&e, STN_REFRESH, r6, 2, true, NULL), 443,
                   "Refresh naming the deleted family: 443");
        }
        is_int(refresh(&e, 0), 0, "Refresh 0 releases the rest");
        is_int(open_fds, fds0, "every socket closed");
        is_int(rly_quota_total(quota), total0, "quota back");
        /* deleting the IPv4 half first leaves an IPv6 allocation */
        {
            uint8_t z[4] = {0, 0, 0, 0};
            a_t r4[] = {{STN_A_LIFETIME, z, 4}, {STN_A_REQUESTED_ADDRESS_FAMILY, fam4, 4}};
            is_int(req(&e, STN_ALLOCATE, dual, 2, true, NULL), 0, "dual again");
            is_int(req(&e, STN_REFRESH, r4, 2, true, NULL), 0, "Refresh IPv4 LIFETIME 0");
            a = rly_table_find(t.table, &e.tu);
            ok(a && a->relayed.family == AF_INET6 && a->relay_fd2 < 0 && open_fds == fds0 + 1,
               "the IPv6 half is now the allocation");
            is_int(permit(&e, "2001:db8::50", 1000), 0, "IPv6 peers fine");
            is_int(permit(&e, "203.0.113.50", 1000), 443, "IPv4 peers: 443");
            is_int(refresh(&e, 0), 0, "release");
        }
        /* (expiry of a dual allocation: with the others at the end) */
        /* the IPv6 range is full: IPv4 alone, ADDRESS-ERROR-CODE 508 */
        fail_family = AF_INET6;
        is_int(req(&e, STN_ALLOCATE, dual, 2, true, NULL), 0, "IPv6 ports exhausted: success");
        aec = stn_msg_find(&e.m, STN_A_ADDRESS_ERROR_CODE);
        ok(aec && !stn_attr_get_address_error(&e.m, aec, &fam, &code, &reason) &&
               fam == AF_INET6 && code == 508 && open_fds == fds0 + 1,
           "IPv4 only, ADDRESS-ERROR-CODE IPv6 508");
        is_int(refresh(&e, 0), 0, "release");
        fail_family = AF_INET;
        is_int(req(&e, STN_ALLOCATE, dual, 2, true, NULL), 0, "IPv4 ports exhausted: success");
        aec = stn_msg_find(&e.m, STN_A_ADDRESS_ERROR_CODE);
        ok(aec && !stn_attr_get_address_error(&e.m, aec, &fam, &code, &reason) &&
               fam == AF_INET && code == 508 && open_fds == fds0 + 1,
           "IPv6 only, ADDRESS-ERROR-CODE IPv4 508");
        ok(!stn_attr_get_xor_addr(&e.m, stn_msg_find(&e.m, STN_A_XOR_RELAYED_ADDRESS), &got) &&
               got.family == AF_INET6,
           "its XOR-RELAYED-ADDRESS is IPv6");
        is_int(refresh(&e, 0), 0, "release");
        fail_family = 0;
        /* a relay with an IPv6 relay address only: the IPv6 half, and
         * ADDRESS-ERROR-CODE IPv4 440 (step 9 rather than step 7's 440) */
        {
            rtc_addr v4 = cfg.relay_ip[0];
            memset(&cfg.relay_ip[0], 0, sizeof cfg.relay_ip[0]);
            is_int(req(&e, STN_ALLOCATE, dual, 2, true, NULL), 0, "dual on an IPv6-only relay");
            aec = stn_msg_find(&e.m, STN_A_ADDRESS_ERROR_CODE);
            ok(aec && !stn_attr_get_address_error(&e.m, aec, &fam, &code, &reason) &&
                   fam == AF_INET && code == 440 && open_fds == fds0 + 1,
               "IPv6 only, ADDRESS-ERROR-CODE IPv4 440");
            is_int(refresh(&e, 0), 0, "release");
            cfg.relay_ip[0] = v4;
        }
        is_int(open_fds, fds0, "nothing leaked");
        is_int(rly_quota_total(quota), total0, "no quota leaked");
    }
    /* draining */
    t.draining = true;
    client_init(&d, &t, "198.51.100.4", 4000, "bob", "w0rd");
    is_int(allocate(&d), 403, "draining: new allocate 403");
    t.draining = false;
    is_int(allocate(&d), 0, "bob allocates");
    is_int(refresh(&c, 0), 0, "alice releases");
    /* expiry; alice's dual allocation (the relay has IPv6 since the dual
     * tests) loses both sockets and its quota with it */
    {
        client e;
        a_t dual[] = {{STN_A_REQUESTED_TRANSPORT, rt, 4}, {STN_A_ADDITIONAL_ADDRESS_FAMILY, fam6, 4}};
        client_init(&e, &t, "198.51.100.61", 4000, "alice", "pa55");
        is_int(req(&e, STN_ALLOCATE, dual, 2, true, NULL), 0, "alice makes a dual allocation");
    }
    is_int(open_fds, 3, "bob's socket and alice's two open");
    rly_turn_sweep(&t, d.now_ms + 599000);
    is_int(open_fds, 3, "not expired at 599 s");
    rly_turn_sweep(&t, d.now_ms + 600000);
    is_int(open_fds, 0, "expired at 600 s: every socket closed (both of the dual one)");
    is_int(rly_quota_total(quota), 0, "and every quota unit back");
    is_int(rly_table_count(t.table), 0, "table empty");
    d.now_ms += 600000;
    is_int(refresh(&d, 600), 437, "refresh of an expired allocation: 437");

    rly_turn_dispose(&t);
    is_int(rly_quota_total(quota), 0, "every quota given back");
    rly_quota_free(quota);
    rly_auth_free(cfg.auth);
    rtc_peer_policy_free(cfg.policy);
    return done_testing();
}
