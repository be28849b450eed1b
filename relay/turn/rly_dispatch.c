/* rly_dispatch.c - from client bytes to a handler and back (RFC 8489 s.6.3,
 * s.9.2.4; RFC 8656 s.5).
 *
 * One table says, per method and class, whether the request must be
 * authenticated and whether it needs an allocation on its 5-tuple; the
 * order of checks below is the RFC's, so each handler sees only requests
 * that passed them. Unauthenticated answers stay small (no SOFTWARE, short
 * reason phrases) so the relay cannot amplify a spoofed request much. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rly_req.h"
#include "rtc_crypto.h"
#include "rtc_err.h"
#include "rtc_log.h"
#include "stn_attr.h"
#include "stn_auth.h"
#include "stn_frame.h"

const char *const rly_drop_names[RLY_DROP_N] = {
    "malformed", "no_allocation", "no_permission", "no_channel",
    "bandwidth", "send_error",    "backpressure",
};

typedef struct {
    uint16_t method;
    uint8_t cls;
    bool needs_auth;
    bool needs_alloc; /* 437 without an allocation on the 5-tuple */
    rly_result (*handler)(rly_req *r);
} method_entry;

static const method_entry methods[] = {
    {STN_BINDING, STN_REQUEST, false, false, rly_h_binding},
    {STN_ALLOCATE, STN_REQUEST, true, false, rly_h_allocate},
    {STN_REFRESH, STN_REQUEST, true, true, rly_h_refresh},
    {STN_CREATE_PERMISSION, STN_REQUEST, true, true, rly_h_create_permission},
    {STN_CHANNEL_BIND, STN_REQUEST, true, true, rly_h_channel_bind},
};

int rly_turn_init(rly_turn *t, const rly_cfg *cfg, const rly_io *io, rly_quota *quota,
                  const uint8_t nonce_key[32])
{
    uint64_t hk = 0;
    memset(t, 0, sizeof *t);
    t->cfg = cfg;
    t->io = *io;
    t->quota = quota;
    t->warn_rl.per_sec = 5;
    memcpy(t->nonce_key, nonce_key, sizeof t->nonce_key);
    if (rtc_random(&hk, sizeof hk))
        return -EIO;
    t->table = rly_table_new(hk);
    return t->table ? 0 : -ENOMEM;
}

void rly_turn_release(rly_turn *t, rly_alloc *a, const char *why)
{
    char ctx[32], cl[RTC_ADDR_STRLEN], rl[RTC_ADDR_STRLEN];
    if (rtc_log_enabled(RTC_LOG_INFO)) {
        snprintf(ctx, sizeof ctx, "alloc=%u", a->id);
        rtc_addr_format(&a->tuple.client, true, cl);
        rtc_addr_format(&a->relayed, true, rl);
        RTC_LOG(RTC_LOG_INFO, ctx, "released (%s) client=%s relayed=%s user=%s", why, cl, rl,
                a->user);
    }
    if (a->relay_fd >= 0)
        t->io.relay_close(t->io.ctx, a->relay_fd, &a->relayed);
    rly_quota_give(t->quota, rly_quota_key(a->user, a->rest));
    rly_table_remove(t->table, a);
}

void rly_turn_dispose(rly_turn *t)
{
    uint32_t it = 0;
    rly_alloc *a;
    if (!t->table)
        return;
    while ((a = rly_table_next(t->table, &it))) {
        if (a->relay_fd >= 0)
            t->io.relay_close(t->io.ctx, a->relay_fd, &a->relayed);
        rly_quota_give(t->quota, rly_quota_key(a->user, a->rest));
    }
    rly_table_free(t->table);
    t->table = NULL;
}

void rly_turn_tuple_gone(rly_turn *t, const rly_tuple *tu)
{
    rly_alloc *a = rly_table_find(t->table, tu);
    if (a)
        rly_turn_release(t, a, "connection closed");
}

void rly_turn_sweep(rly_turn *t, uint64_t now_ms)
{
    uint32_t it = 0;
    rly_alloc *a;
    rtc_addr held;
    int fd;
    while ((fd = rly_quota_resv_expired(t->quota, now_ms, &held)) >= 0)
        t->io.relay_close(t->io.ctx, fd, &held);
    while ((a = rly_table_next(t->table, &it))) {
        if (rly_alloc_expired(a, now_ms))
            rly_turn_release(t, a, "expired");
        else
            rly_alloc_purge(a, now_ms);
    }
}

/* REALM and a fresh NONCE bound to the client's address (401, 438). */
static void add_realm_nonce(rly_req *r)
{
    char nonce[STN_NONCE_LEN + 1];
    const char *realm = rly_auth_realm(r->t->cfg->auth);
    stn_nonce_make(r->t->nonce_key, sizeof r->t->nonce_key,
                   r->in->wall_s + r->t->cfg->lim.nonce_ttl_s, &r->in->tuple->client, nonce);
    stn_build_attr(&r->b, STN_A_REALM, realm, strlen(realm));
    stn_build_attr(&r->b, STN_A_NONCE, nonce, STN_NONCE_LEN);
}

/* RFC 8489 s.9.2.4, in its order. Fills r->user/key on success. */
static rly_result authenticate(rly_req *r)
{
    const stn_msg *m = r->m;
    const stn_attr_ref *u = stn_msg_find(m, STN_A_USERNAME);
    const stn_attr_ref *realm = stn_msg_find(m, STN_A_REALM);
    const stn_attr_ref *nonce = stn_msg_find(m, STN_A_NONCE);
    const char *our_realm = rly_auth_realm(r->t->cfg->auth);

    /* the answer to a bare request (the one a spoofer would send) carries
     * no reason phrase: 76 bytes for a 28-byte Allocate with the default
     * realm, and the code says it all */
    if (m->mi < 0)
        return RLY_ERR(401, "");
    if (!u || !realm || !nonce)
        return RLY_ERR(400, "Missing USERNAME, REALM or NONCE");
    if (stn_nonce_check(r->t->nonce_key, sizeof r->t->nonce_key, m->buf + nonce->off,
                        nonce->len, r->in->wall_s, &r->in->tuple->client))
        return RLY_ERR(438, "Stale Nonce");
    if (realm->len != strlen(our_realm) || memcmp(m->buf + realm->off, our_realm, realm->len)) {
        r->t->stats.auth_failures++;
        return RLY_ERR(401, "Unauthorized");
    }
    if (rly_auth_key(r->t->cfg->auth, m->buf + u->off, u->len, r->in->wall_s, r->key,
                     &r->rest) ||
        !stn_auth_check_integrity(m, r->key, sizeof r->key)) {
        r->t->stats.auth_failures++;
        return RLY_ERR(401, "Unauthorized");
    }
    r->user = m->buf + u->off;
    r->ulen = u->len;
    r->authed = true;
    return RLY_OK;
}

static const method_entry *find_method(uint16_t method, uint8_t cls)
{
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
        if (methods[i].method == method && methods[i].cls == cls)
            return &methods[i];
    return NULL;
}

/* The allocation on this 5-tuple, released first if it expired. */
static rly_alloc *live_alloc(rly_req *r)
{
    rly_alloc *a = rly_table_find(r->t->table, r->in->tuple);
    if (a && rly_alloc_expired(a, r->in->now_ms)) {
        rly_turn_release(r->t, a, "expired");
        a = NULL;
    }
    return a;
}

/* Run the checks and the handler; the result decides success or error. */
static rly_result process(rly_req *r, const method_entry *me)
{
    const stn_msg *m = r->m;
    rly_result res;

    /* An unauthenticated 420 grants nothing and is no larger than the
     * request that carried the unknown attributes, so a client that sends
     * them before authenticating learns it at once; with
     * MESSAGE-INTEGRITY, authentication comes first (s.6.3). */
    if (m->n_unknown && (m->mi < 0 || !me || !me->needs_auth))
        return RLY_ERR(420, "Unknown Attr"); /* short: unauthenticated */
    if (!me)
        return RLY_ERR(400, "Unknown method");
    /* Amplification: the 401 carries REALM and NONCE, so only a request
     * that could succeed earns it. A bare Allocate (no REQUESTED-TRANSPORT)
     * gets 400 and a request that needs an allocation where there is none
     * gets 437, both before authentication and barely larger than a 20-byte
     * request; with MESSAGE-INTEGRITY the answers come after it, signed. */
    if (me->needs_auth && m->mi < 0) {
        if (me->method == STN_ALLOCATE && !stn_msg_find(m, STN_A_REQUESTED_TRANSPORT))
            return RLY_ERR(400, "");
        if (me->needs_alloc && !live_alloc(r))
            return RLY_ERR(437, "");
    }
    if (me->needs_auth) {
        res = authenticate(r);
        if (res.code)
            return res;
    }
    if (m->n_unknown)
        return RLY_ERR(420, "Unknown Attribute");
    r->a = live_alloc(r);
    if (r->a && me->needs_auth &&
        (strlen(r->a->user) != r->ulen || memcmp(r->a->user, r->user, r->ulen)))
        return RLY_ERR(441, "Wrong Credentials");
    if (me->needs_alloc && !r->a)
        return RLY_ERR(437, "Allocation Mismatch");
    return me->handler(r);
}

static size_t stun_request(rly_turn *t, const rly_input *in, const stn_msg *m, uint8_t *out,
                           size_t cap)
{
    rly_req r;
    rly_result res;
    size_t len = 0;
    const method_entry *me = find_method(m->method, m->cls);

    memset(&r, 0, sizeof r);
    r.t = t;
    r.in = in;
    r.m = m;
    stn_build_init(&r.b, out, cap, m->method, STN_SUCCESS, m->tid);
    res = process(&r, me);
    if (res.code) {
        stn_build_init(&r.b, out, cap, m->method, STN_ERROR, m->tid);
        stn_build_error(&r.b, res.code, res.reason);
        if (res.code == 420 && m->n_unknown) {
            stn_build_unknown(&r.b, m->unknown, m->n_unknown);
        } else if (res.code == 420) {
            /* the one known attribute a handler refuses: DONT-FRAGMENT when
             * DF cannot be set on the relayed socket (RFC 8656 s.7.2) */
            const uint16_t df = STN_A_DONT_FRAGMENT;
            stn_build_unknown(&r.b, &df, 1);
        }
        if (res.code == 401 || res.code == 438)
            add_realm_nonce(&r);
    }
    if (r.authed)
        stn_build_integrity(&r.b, r.key, sizeof r.key);
    if (m->fp >= 0)
        stn_build_fingerprint(&r.b);
    memset(r.key, 0, sizeof r.key);
    if (stn_build_finish(&r.b, &len))
        return 0; /* cannot happen with RLY_RESP_MAX; never send a cut message */
    return len;
}

size_t rly_turn_input(rly_turn *t, const rly_input *in, uint8_t *out, size_t cap)
{
    stn_msg m;

    if (in->len >= 4 && (in->buf[0] & 0xC0) == 0x40) {
        rly_chandata_from_client(t, in);
        return 0;
    }
    if (!stn_is_stun(in->buf, in->len) || stn_msg_parse(&m, in->buf, in->len) ||
        !stn_auth_check_fingerprint(&m)) {
        t->stats.dropped[RLY_DROP_MALFORMED]++;
        return 0;
    }
    switch (m.cls) {
    case STN_REQUEST:
        return stun_request(t, in, &m, out, cap);
    case STN_INDICATION:
        if (m.method == STN_SEND)
            rly_h_send(t, in, &m);
        else
            t->stats.dropped[RLY_DROP_MALFORMED]++;
        return 0;
    default: /* responses are never sent to a server */
        t->stats.dropped[RLY_DROP_MALFORMED]++;
        return 0;
    }
}

rly_result rly_h_binding(rly_req *r)
{
    /* RFC 8489 s.6.3.1: answered without authentication */
    stn_build_xor_addr(&r->b, STN_A_XOR_MAPPED_ADDRESS, &r->in->tuple->client);
    return RLY_OK;
}

rly_result rly_check_peer(rly_req *r, const stn_attr_ref *ref, rtc_addr *peer)
{
    if (stn_attr_get_xor_addr(r->m, ref, peer))
        return RLY_ERR(400, "Bad XOR-PEER-ADDRESS");
    /* policy first: a forbidden address (e.g. ::ffff:127.0.0.1 sent to an
     * IPv4 allocation) is reported as forbidden whatever its family */
    if (!rtc_peer_policy_allows(r->t->cfg->policy, peer)) {
        r->t->stats.permission_denied++;
        return RLY_ERR(403, "Forbidden peer address");
    }
    if (peer->family != r->a->relayed.family)
        return RLY_ERR(443, "Peer Address Family Mismatch");
    return RLY_OK;
}
