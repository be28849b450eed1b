/* fuzz_rly_turn.c - libFuzzer target for the whole TURN engine: every
 * input is a short session fed to rly_turn_input (the engine's one entry
 * point for client bytes), rly_turn_from_peer, the sweep and the reload
 * swap, over a fake rly_io and a virtual clock (the shape of
 * tests/unit/test_rly_dispatch.c).
 *
 * Authentication would stop a byte-level fuzzer at the first 401, so the
 * harness signs for it: a record's flags may ask for USERNAME, REALM, a
 * fresh NONCE, MESSAGE-INTEGRITY (or -SHA256 with PASSWORD-ALGORITHM(S))
 * and FINGERPRINT to be appended to the fuzzer's header and attributes,
 * with the key of a configured user. Allocate, CreatePermission,
 * ChannelBind, Refresh, Send and ChannelData are all reachable.
 *
 * Input: records, each  kind:u8  len:u16be  payload[len]  (a short last
 * record takes what is left). kind & 3 says what the record is; the other
 * six bits are its flags:
 *   0 client message: flags bits 0-1 the client 5-tuple (tuples[] below),
 *     bit 2 sign it, bit 3 as the REST user (else alice), bit 4 with
 *     SHA-256, bit 5 without FINGERPRINT. The payload is the message: a
 *     20-byte header and attributes (its length field is rewritten when
 *     signing), or any bytes (ChannelData, junk). A RESERVATION-TOKEN of 8
 *     bytes in it gets the value of the last one the relay handed out (it
 *     is random), so an Allocate can claim a reserved port.
 *   1 peer datagram: payload[0] bits 0-2 the allocation id, bits 3-4 the
 *     peer (peers[] below); the rest is the data, delivered through
 *     rly_turn_from_peer as the worker would (on a live allocation, from a
 *     peer of a family it relays).
 *   2 time and housekeeping: the payload (up to 4 bytes, big-endian) is
 *     the ms the clock advances; flags bit 0 sweep, bit 1 the TCP client's
 *     connection closes, bits 2/3/4 toggle failures of relay_open /
 *     relay_attach / DF, bit 5 toggles draining.
 *   3 reload: the engine's configuration becomes cfgs[(flags & 7) % N_CFGS];
 *     flags bit 3 toggles failures of send_peer. cfgs 4 and 5 have one
 *     relay address family only: a real reload keeps the relay addresses
 *     (they need a restart), but the engine reads them only to allocate,
 *     so switching between allocations stands in for a relay started with
 *     one family.
 *
 * Invariants checked after every step: responses parse, answer the
 * request's method and transaction, and verify with the key that signed
 * the request; no descriptor is closed twice, sent on after close, or
 * sent to a peer the policy refuses or of the other family; sockets held
 * and quota units taken stay in step (each allocation holds one unit and
 * one or two sockets, each EVEN-PORT reservation one of each). At the end,
 * dispose and draining the reservations leave no socket open and the
 * quota at 0. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "rly_turn.h"
#include "rtc_err.h"
#include "rtc_log.h"
#include "stn_attr.h"
#include "stn_auth.h"
#include "stn_msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                               \
    do {                                                                                       \
        if (!(c)) {                                                                            \
            fprintf(stderr, "fuzz_rly_turn: invariant failed: %s (line %d)\n", #c, __LINE__); \
            abort();                                                                           \
        }                                                                                      \
    } while (0)

#define MAX_RECORDS 64
#define FD_BASE 100
#define MAX_FDS 512
#define WALL0 1800000000u /* unix time at the start of every session */
#define REALM "tsunagu"

/* ---- the fake socket layer ---- */
typedef struct {
    bool open[MAX_FDS];
    rtc_addr bound[MAX_FDS];
    int next, n_open;
    uint16_t next_port;
    bool fail_open, fail_attach, fail_df, fail_send;
} fake_io;

static fake_io fio;
static rtc_peer_policy *policy; /* to check every peer the engine sends to */
static bool trace; /* FUZZ_RLY_TURN_TRACE set: say what each record did (corpus work) */

static bool fd_live(int fd)
{
    return fd >= FD_BASE && fd < FD_BASE + MAX_FDS && fio.open[fd - FD_BASE];
}

static int f_open(void *ctx, const rtc_addr *ip, bool even, uint16_t port, rtc_addr *bound)
{
    int fd = fio.next;
    (void)ctx, (void)even;
    CHECK(ip->family == AF_INET || ip->family == AF_INET6);
    if (fio.fail_open || fd >= FD_BASE + MAX_FDS)
        return -EADDRINUSE;
    fio.next++;
    *bound = *ip;
    if (port) {
        bound->port = port;
    } else {
        bound->port = fio.next_port;
        fio.next_port = (uint16_t)(fio.next_port + 2 > 59998 ? 50000 : fio.next_port + 2);
    }
    fio.open[fd - FD_BASE] = true;
    fio.bound[fd - FD_BASE] = *bound;
    fio.n_open++;
    return fd;
}

static int f_attach(void *ctx, int fd, uint32_t id)
{
    (void)ctx, (void)id;
    CHECK(fd_live(fd));
    return fio.fail_attach ? -ENOMEM : 0;
}

static void f_close(void *ctx, int fd, const rtc_addr *b)
{
    (void)ctx;
    CHECK(fd_live(fd));
    CHECK(rtc_addr_equal(b, &fio.bound[fd - FD_BASE]));
    fio.open[fd - FD_BASE] = false;
    fio.n_open--;
}

static int f_send(void *ctx, int fd, const rtc_addr *peer, const uint8_t *d, size_t n)
{
    (void)ctx, (void)d;
    CHECK(fd_live(fd));
    CHECK(peer->family == fio.bound[fd - FD_BASE].family);
    /* a permission is installed only for a peer the policy allows, and the
     * per-packet check keeps other ports of the relay's own IPs out */
    CHECK(rtc_peer_policy_allows(policy, peer));
    CHECK(n <= 0xFFFF);
    if (trace)
        fprintf(stderr, "sent %zu bytes to a peer%s\n", n, fio.fail_send ? " (failed)" : "");
    return fio.fail_send ? -ENOBUFS : 0;
}

static int f_df(int fd, int family)
{
    CHECK(fd_live(fd));
    CHECK(family == fio.bound[fd - FD_BASE].family);
    return fio.fail_df ? -EINVAL : 0;
}

/* ---- fixed world: configurations, clients, peers ---- */
#define N_CFGS 6
static rly_cfg cfgs[N_CFGS];
static rtc_addr peers[4];
static rly_tuple tuples[4];
static int tuple_conn[4];

static void setup_once(void)
{
    static bool done;
    static rtc_peer_policy_params pp;
    static char *users[] = {"alice:pa55", "bob:w0rd"};
    static char *secrets[] = {"restsecret"};
    static rly_auth *auth;
    static rtc_addr own[2];
    char err[256];
    const char *cl[4] = {"198.51.100.1", "198.51.100.2", "198.51.100.1", "2001:db8:c::1"};
    const char *pe[4] = {"203.0.113.5", "203.0.113.6", "2001:db8:1::5", "192.0.2.100"};
    const uint16_t pe_port[4] = {4000, 5000, 4000, 50002};

    if (done)
        return;
    done = true;
    trace = getenv("FUZZ_RLY_TURN_TRACE") != NULL;
    rtc_log_setup(RTC_LOG_ERROR, RTC_LOG_TEXT, "fuzz_rly_turn");
    auth = rly_auth_new(REALM, users, 2, secrets, 1, err, sizeof err);
    CHECK(auth);
    rtc_addr_parse_ip("192.0.2.100", &own[0]);
    rtc_addr_parse_ip("2001:db8::100", &own[1]);
    pp.own = own;
    pp.n_own = 2;
    pp.own_port_lo = 50000;
    pp.own_port_hi = 60000;
    policy = rtc_peer_policy_new(&pp);
    CHECK(policy);
    for (int i = 0; i < N_CFGS; i++) {
        cfgs[i].auth = auth;
        cfgs[i].policy = policy;
        cfgs[i].relay_ip[0] = cfgs[i].advertise[0] = own[0];
        cfgs[i].relay_ip[1] = cfgs[i].advertise[1] = own[1];
        cfgs[i].lim = (rly_limits){.default_lifetime_s = 600, .max_lifetime_s = 3600,
                                   .max_allocs = 10, .max_allocs_per_user = 3,
                                   .nonce_ttl_s = 60};
    }
    cfgs[1].lim.legacy_channels = true;
    cfgs[1].lim.bandwidth = 2000;
    cfgs[2].lim.max_allocs = 1;
    cfgs[2].lim.max_allocs_per_user = 1;
    cfgs[2].lim.max_lifetime_s = 60;
    cfgs[3].lim.default_lifetime_s = 30;
    cfgs[3].lim.nonce_ttl_s = 1;
    cfgs[3].lim.max_allocs_per_user = 8;
    memset(&cfgs[4].relay_ip[1], 0, sizeof cfgs[4].relay_ip[1]); /* IPv4 only */
    memset(&cfgs[5].relay_ip[0], 0, sizeof cfgs[5].relay_ip[0]); /* IPv6 only */
    for (int i = 0; i < 4; i++) {
        rtc_addr_parse_ip(pe[i], &peers[i]);
        peers[i].port = pe_port[i];
        rtc_addr_parse_ip(cl[i], &tuples[i].client);
        tuples[i].client.port = (uint16_t)(4000 + i);
        tuples[i].proto = RLY_UDP;
        tuple_conn[i] = -1;
    }
    tuples[2].proto = RLY_TCP; /* same IP as tuple 0, a stream */
    tuple_conn[2] = 0;
    tuples[3].listener = 1;
}

/* ---- signing ---- */
typedef struct {
    uint8_t key[RLY_KEY_MAX];
    size_t keylen;
    bool sha256;
} signer;

/* The fuzzer's message with USERNAME, REALM, NONCE (fresh, for this
 * client), optionally PASSWORD-ALGORITHM(S), then MESSAGE-INTEGRITY(-SHA256)
 * and FINGERPRINT appended. Its own attributes are copied as they are (a
 * ragged tail is zero-padded to 4). Length in *len, false if it cannot be
 * built (too short, or the key is not to be had). */
static bool sign(const uint8_t *msg, size_t n, unsigned flags, const rly_turn *t,
                 const rly_tuple *tu, uint64_t wall_s, uint8_t *out, size_t cap, size_t *len,
                 signer *s)
{
    static const uint8_t pw_algs[] = {0x00, 0x02, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00};
    const uint8_t sha_alg[4] = {0x00, 0x02, 0x00, 0x00};
    char user[64], nonce[STN_NONCE_MAX_LEN + 1];
    stn_builder b;
    bool rest;
    size_t pad = (4 - (n & 3)) & 3; /* the header is 20 bytes: n pads like the body */

    if (n < STN_HDR_LEN || n + pad > cap)
        return false;
    if (flags & 8) /* REST: "EXPIRY:ID", valid for a day of virtual time */
        snprintf(user, sizeof user, "%llu:member7", (unsigned long long)WALL0 + 86400);
    else
        snprintf(user, sizeof user, "alice");
    s->sha256 = (flags & 16) != 0;
    if (rly_auth_key_alg(t->cfg->auth, (const uint8_t *)user, strlen(user), wall_s,
                         s->sha256 ? STN_PWALG_SHA256 : STN_PWALG_MD5, 0, s->key, &s->keylen,
                         &rest))
        return false; /* e.g. the REST credential expired: no key to sign with */
    stn_nonce_make_cookie(t->nonce_key, sizeof t->nonce_key, wall_s + t->cfg->lim.nonce_ttl_s,
                          &tu->client, STN_SEC_PASSWORD_ALGORITHMS, nonce);
    rtc_wr_init(&b.w, out, cap);
    rtc_wr_bytes(&b.w, msg, n);
    for (size_t i = 0; i < pad; i++)
        rtc_wr_u8(&b.w, 0);
    stn_build_attr(&b, STN_A_USERNAME, user, strlen(user));
    stn_build_attr(&b, STN_A_REALM, REALM, strlen(REALM));
    stn_build_attr(&b, STN_A_NONCE, nonce, STN_NONCE_MAX_LEN);
    if (s->sha256) {
        stn_build_attr(&b, STN_A_PASSWORD_ALGORITHM, sha_alg, sizeof sha_alg);
        stn_build_attr(&b, STN_A_PASSWORD_ALGORITHMS, pw_algs, sizeof pw_algs);
        stn_build_integrity_sha256(&b, s->key, s->keylen);
    } else {
        stn_build_integrity(&b, s->key, s->keylen);
    }
    if (!(flags & 32))
        stn_build_fingerprint(&b);
    return stn_build_finish(&b, len) == 0;
}

/* ---- the session ---- */
typedef struct {
    rly_turn t;
    rly_quota *q;
    uint64_t now_ms;
    uint8_t token[8]; /* the last RESERVATION-TOKEN the relay handed out */
    bool have_token;
} session;

/* Give every 8-byte RESERVATION-TOKEN among the attributes in m[20..n) the
 * session's last token (a walk over the TLVs as they stand; a ragged one
 * ends it). */
static void patch_token(const session *s, uint8_t *m, size_t n)
{
    size_t off = STN_HDR_LEN;
    if (!s->have_token)
        return;
    while (off + 4 <= n) {
        uint16_t type = (uint16_t)(m[off] << 8 | m[off + 1]);
        size_t len = (size_t)(m[off + 2] << 8 | m[off + 3]);
        if (off + 4 + len > n)
            return;
        if (type == STN_A_RESERVATION_TOKEN && len == 8)
            memcpy(m + off + 4, s->token, 8);
        off += 4 + ((len + 3) & ~(size_t)3);
    }
}

static uint64_t wall(const session *s) { return WALL0 + s->now_ms / 1000; }

/* Sockets and quota units in step: allocations hold one unit and one or
 * two sockets each; whatever is left over on both sides is the held
 * EVEN-PORT reservations, one socket and one unit each. */
static void check_books(session *s)
{
    uint32_t it = 0;
    rly_alloc *a;
    long alloc_fds = 0, n_allocs = 0;
    while ((a = rly_table_next(s->t.table, &it))) {
        CHECK(fd_live(a->relay_fd));
        CHECK(rtc_addr_equal(&a->relayed, &fio.bound[a->relay_fd - FD_BASE]));
        CHECK(a->n_perms <= RLY_MAX_PERMS && a->n_chans <= RLY_MAX_CHANS);
        alloc_fds++;
        if (a->relay_fd2 >= 0) {
            CHECK(fd_live(a->relay_fd2) && a->relay_fd2 != a->relay_fd);
            CHECK(a->relayed2.family != a->relayed.family);
            alloc_fds++;
        }
        n_allocs++;
    }
    CHECK((size_t)n_allocs == rly_table_count(s->t.table));
    CHECK(fio.n_open - alloc_fds == (long)rly_quota_total(s->q) - n_allocs);
}

static void trace_answer(unsigned ti, bool is_signed, const stn_msg *rm, size_t len)
{
    const stn_attr_ref *e = rm ? stn_msg_find(rm, STN_A_ERROR_CODE) : NULL;
    int code = 0;
    rtc_rd reason;
    if (e)
        stn_attr_get_error(rm, e, &code, &reason);
    fprintf(stderr, "client %u%s, %zu bytes: ", ti, is_signed ? " signed" : "", len);
    if (!rm)
        fprintf(stderr, "no answer\n");
    else
        fprintf(stderr, "method %u %s %d\n", rm->method,
                rm->cls == STN_SUCCESS ? "success" : "error", code);
}

/* The answer to an RFC 3489 Binding request (no cookie, RFC 8489 s.12):
 * the same 16-byte ID, success with exactly MAPPED-ADDRESS = the client,
 * or 420 naming unknown attributes; never signed, never FINGERPRINT. With
 * the cookie put in place of the ID's first 4 bytes it must parse as an
 * RFC 8489 message, which lets the codec check the rest. */
static void check_rfc3489_answer(const stn_msg *req, const uint8_t *resp, size_t rlen,
                                 const rly_tuple *tu)
{
    static uint8_t copy[RLY_RESP_MAX];
    stn_msg rm;
    const stn_attr_ref *ma;
    rtc_addr got;

    CHECK(req->method == STN_BINDING && req->cls == STN_REQUEST);
    CHECK(rlen >= STN_HDR_LEN && rlen <= sizeof copy);
    CHECK(!memcmp(resp + 4, req->buf + 4, STN_TID3489_LEN));
    memcpy(copy, resp, rlen);
    copy[4] = 0x21, copy[5] = 0x12, copy[6] = 0xA4, copy[7] = 0x42;
    CHECK(stn_msg_parse(&rm, copy, rlen) == 0 && rm.method == STN_BINDING);
    CHECK(rm.mi < 0 && rm.mi256 < 0 && rm.fp < 0);
    if (rm.cls == STN_SUCCESS) {
        CHECK(req->n_unknown == 0 && rm.n_attrs == 1);
        ma = stn_msg_find(&rm, STN_A_MAPPED_ADDRESS);
        CHECK(ma && stn_attr_get_addr(&rm, ma, &got) == 0);
        CHECK(got.family == tu->client.family && got.port == tu->client.port &&
              !memcmp(got.ip, tu->client.ip, got.family == AF_INET6 ? 16 : 4));
    } else {
        CHECK(rm.cls == STN_ERROR && req->n_unknown > 0);
        CHECK(stn_msg_find(&rm, STN_A_UNKNOWN_ATTRIBUTES) != NULL);
    }
}

static void client_message(session *s, unsigned flags, const uint8_t *p, size_t n)
{
    static uint8_t signed_buf[2048], raw[65536];
    uint8_t resp[RLY_RESP_MAX];
    const uint8_t *msg = raw;
    size_t len = n, rlen;
    unsigned ti = flags & 3;
    signer sg = {.keylen = 0};
    bool is_signed = false;
    stn_msg req, rm;
    const stn_attr_ref *tok;
    rly_input in;
    uint8_t *buf;

    memcpy(raw, p, n); /* n < 65536: record lengths are 16 bits */
    patch_token(s, raw, n);
    if ((flags & 4) && sign(raw, n, flags, &s->t, &tuples[ti], wall(s), signed_buf,
                            sizeof signed_buf, &len, &sg)) {
        msg = signed_buf;
        is_signed = true;
    }
    /* an exact-size copy, so ASan sees any read past the message */
    buf = malloc(len ? len : 1);
    CHECK(buf);
    memcpy(buf, msg, len);
    in = (rly_input){.tuple = &tuples[ti], .conn = tuple_conn[ti], .buf = buf, .len = len,
                     .now_ms = s->now_ms, .wall_s = wall(s)};
    rlen = rly_turn_input(&s->t, &in, resp, sizeof resp);
    CHECK(rlen <= sizeof resp);
    if (rlen && stn_msg_parse_rfc3489_binding(&req, buf, len) == 0) {
        check_rfc3489_answer(&req, resp, rlen, &tuples[ti]);
        if (trace)
            fprintf(stderr, "client %u, %zu bytes: RFC 3489 Binding %s\n", ti, len,
                    resp[1] == 0x01 ? "success" : "error");
        free(buf);
        return;
    }
    if (rlen) {
        /* only a request that parsed is answered, and it is answered in kind */
        CHECK(stn_msg_parse(&req, buf, len) == 0 && req.cls == STN_REQUEST);
        CHECK(stn_msg_parse(&rm, resp, rlen) == 0);
        CHECK(rm.method == req.method && !memcmp(rm.tid, req.tid, sizeof rm.tid));
        CHECK(rm.cls == STN_SUCCESS || rm.cls == STN_ERROR);
        CHECK(rm.fp < 0 || stn_auth_check_fingerprint(&rm));
        /* a signed answer is signed with the key that verified the request
         * (which one of MI / MI-SHA256 follows the request's own
         * PASSWORD-ALGORITHM, which the fuzzer may have chosen itself) */
        if (is_signed && rm.mi256 >= 0)
            CHECK(stn_auth_check_integrity_sha256(&rm, sg.key, sg.keylen));
        else if (is_signed && rm.mi >= 0)
            CHECK(stn_auth_check_integrity(&rm, sg.key, sg.keylen));
        /* a success for an authenticated method is always signed */
        if (rm.cls == STN_SUCCESS && req.method != STN_BINDING)
            CHECK(rm.mi >= 0 || rm.mi256 >= 0);
        tok = stn_msg_find(&rm, STN_A_RESERVATION_TOKEN);
        if (rm.cls == STN_SUCCESS && tok && tok->len == 8) {
            memcpy(s->token, resp + tok->off, 8);
            s->have_token = true;
        }
    }
    if (trace)
        trace_answer(ti, is_signed, rlen ? &rm : NULL, len);
    free(buf);
}

static void peer_datagram(session *s, const uint8_t *p, size_t n)
{
    rly_alloc *a;
    const rtc_addr *peer;
    const uint8_t *out;
    uint8_t *buf;
    size_t out_len = 0, len;

    if (n < 1)
        return;
    a = rly_table_get(s->t.table, p[0] & 7);
    peer = &peers[(p[0] >> 3) & 3];
    if (!a || !rly_alloc_has_family(a, peer->family))
        return; /* the worker only reads a live allocation's sockets */
    len = n - 1;
    buf = malloc(RLY_HEADROOM + len + 4); /* the worker's headroom and tail room */
    CHECK(buf);
    memcpy(buf + RLY_HEADROOM, p + 1, len);
    out = rly_turn_from_peer(&s->t, a, peer, buf, len, s->now_ms, &out_len);
    if (trace)
        fprintf(stderr, "peer %u -> allocation %u: %s\n", (p[0] >> 3) & 3, p[0] & 7,
                !out ? "dropped" : (out[0] & 0xC0) == 0x40 ? "ChannelData" : "Data indication");
    if (out) {
        CHECK(out >= buf && out + out_len <= buf + RLY_HEADROOM + len + 4);
        CHECK(out_len >= len + 4);
        if ((out[0] & 0xC0) == 0x40) {
            uint16_t chan;
            rtc_rd d;
            CHECK(rly_chandata_parse(out, out_len, &chan, &d) == 0);
            CHECK(rtc_rd_left(&d) == len && !memcmp(d.p, p + 1, len));
        } else {
            stn_msg m;
            const stn_attr_ref *da;
            CHECK(stn_msg_parse(&m, out, out_len) == 0 && m.method == STN_DATA &&
                  m.cls == STN_INDICATION);
            da = stn_msg_find(&m, STN_A_DATA);
            CHECK(da && da->len == len && !memcmp(out + da->off, p + 1, len));
        }
    }
    free(buf);
}

static void housekeeping(session *s, unsigned flags, const uint8_t *p, size_t n)
{
    uint64_t adv = 0;
    for (size_t i = 0; i < n && i < 4; i++)
        adv = adv << 8 | p[i];
    s->now_ms += adv;
    if (flags & 1)
        rly_turn_sweep(&s->t, s->now_ms);
    if (flags & 2)
        rly_turn_tuple_gone(&s->t, &tuples[2]);
    if (flags & 4)
        fio.fail_open = !fio.fail_open;
    if (flags & 8)
        fio.fail_attach = !fio.fail_attach;
    if (flags & 16)
        fio.fail_df = !fio.fail_df;
    if (flags & 32)
        s->t.draining = !s->t.draining;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint8_t nonce_key[32] = {7, 7, 7};
    const rly_io io = {NULL, f_open, f_attach, f_close, f_send, f_df};
    session s;
    rtc_addr held;
    int fd;

    setup_once();
    memset(&fio, 0, sizeof fio);
    fio.next = FD_BASE;
    fio.next_port = 50000;
    memset(&s, 0, sizeof s);
    s.now_ms = 1000000;
    s.q = rly_quota_new();
    CHECK(s.q);
    CHECK(rly_turn_init(&s.t, &cfgs[0], &io, s.q, nonce_key) == 0);

    for (int rec = 0; rec < MAX_RECORDS && size > 0; rec++) {
        unsigned kind = data[0], flags = kind >> 2;
        size_t n = size >= 3 ? (size_t)data[1] << 8 | data[2] : 0;
        const uint8_t *p = data + (size >= 3 ? 3 : size);
        size -= (size_t)(p - data);
        if (n > size)
            n = size;
        switch (kind & 3) {
        case 0:
            client_message(&s, flags, p, n);
            break;
        case 1:
            peer_datagram(&s, p, n);
            break;
        case 2:
            housekeeping(&s, flags, p, n);
            break;
        default:
            s.t.cfg = &cfgs[(flags & 7) % N_CFGS];
            if (flags & 8)
                fio.fail_send = !fio.fail_send;
            break;
        }
        check_books(&s);
        data = p + n;
        size -= n;
    }

    rly_turn_dispose(&s.t);
    while ((fd = rly_quota_resv_expired(s.q, UINT64_MAX, &held)) >= 0)
        f_close(NULL, fd, &held);
    CHECK(fio.n_open == 0);
    CHECK(rly_quota_total(s.q) == 0);
    rly_quota_free(s.q);
    return 0;
}
