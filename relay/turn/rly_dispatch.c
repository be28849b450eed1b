/* rly_dispatch.c - from client bytes to a handler and back (RFC 8489 s.6.3,
 * s.9.2.4; RFC 8656 s.5).
 *
 * One table says, per method and class, whether the request must be
 * authenticated and whether it needs an allocation on its 5-tuple; the
 * order of checks below is the RFC's, so each handler sees only requests
 * that passed them. Unauthenticated answers stay small (no SOFTWARE, short
 * reason phrases) so the relay cannot amplify a spoofed request much. */
#include <string.h>

#include "rly_req.h"
#include "rtc_err.h"
#include "stn_attr.h"
#include "stn_auth.h"
#include "stn_frame.h"

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

/* The PASSWORD-ALGORITHMS this relay offers (RFC 8489 s.14.11), in order of
 * preference, and their wire form, which a client must echo unchanged. */
static const uint16_t pw_algs[] = {STN_PWALG_SHA256, STN_PWALG_MD5};
static const uint8_t pw_algs_wire[] = {0x00, 0x02, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00};

/* REALM, a fresh NONCE bound to the client's address, and
 * PASSWORD-ALGORITHMS (401, 438). The nonce carries the RFC 8489 cookie
 * with the "Password algorithms" bit, so a client that knows RFC 8489 can
 * tell a stripped PASSWORD-ALGORITHMS (bid-down, s.9.2.1); older clients
 * echo the nonce as the opaque string it always was. */
static void add_realm_nonce(rly_req *r)
{
    char nonce[STN_NONCE_MAX_LEN + 1];
    const char *realm = rly_auth_realm(r->t->cfg->auth);
    stn_nonce_make_cookie(r->t->nonce_key, sizeof r->t->nonce_key,
                          r->in->wall_s + r->t->cfg->lim.nonce_ttl_s, &r->in->tuple->client,
                          STN_SEC_PASSWORD_ALGORITHMS, nonce);
    stn_build_attr(&r->b, STN_A_REALM, realm, strlen(realm));
    stn_build_attr(&r->b, STN_A_NONCE, nonce, STN_NONCE_MAX_LEN);
    stn_build_password_algorithms(&r->b, pw_algs, sizeof pw_algs / sizeof pw_algs[0]);
}

static bool has_integrity(const stn_msg *m) { return m->mi >= 0 || m->mi256 >= 0; }

/* RFC 8489 s.9.2.4 for a nonce with the "Password algorithms" bit: neither
 * PASSWORD-ALGORITHM nor PASSWORD-ALGORITHMS means MD5, as before RFC 8489
 * (every RFC 5389 client: browsers, libnice, coturn's uclient); otherwise
 * both must be there, the list exactly as we sent it and the choice one of
 * its entries, or 400. *alg is the choice; r->sha256 says one was made. */
static rly_result password_algorithm(rly_req *r, uint16_t *alg)
{
    const stn_msg *m = r->m;
    const stn_attr_ref *pa = stn_msg_find(m, STN_A_PASSWORD_ALGORITHM);
    const stn_attr_ref *pas = stn_msg_find(m, STN_A_PASSWORD_ALGORITHMS);

    *alg = STN_PWALG_MD5;
    if (!pa && !pas)
        return RLY_OK;
    if (!pa || !pas)
        return RLY_ERR(400, "PASSWORD-ALGORITHM and PASSWORD-ALGORITHMS go together");
    if (pas->len != sizeof pw_algs_wire || memcmp(m->buf + pas->off, pw_algs_wire, pas->len))
        return RLY_ERR(400, "PASSWORD-ALGORITHMS differs from the one sent");
    if (stn_attr_get_password_algorithm(m, pa, alg) ||
        (*alg != STN_PWALG_MD5 && *alg != STN_PWALG_SHA256))
        return RLY_ERR(400, "PASSWORD-ALGORITHM not offered");
    r->sha256 = true;
    return RLY_OK;
}

/* RFC 8489 s.9.2.4, in its order, except that the nonce is checked first
 * (a forged or stale nonce gets 438 before any key is derived, and its
 * feature bits are trusted only once its MAC verified). Fills r->user/key
 * on success. */
static rly_result authenticate(rly_req *r)
{
    const stn_msg *m = r->m;
    const stn_attr_ref *u = stn_msg_find(m, STN_A_USERNAME);
    const stn_attr_ref *realm = stn_msg_find(m, STN_A_REALM);
    const stn_attr_ref *nonce = stn_msg_find(m, STN_A_NONCE);
    const char *our_realm = rly_auth_realm(r->t->cfg->auth);
    uint32_t features = 0;
    uint16_t alg = STN_PWALG_MD5;
    rly_result res;
    bool mac_ok = false;

    /* the answer to a bare request (the one a spoofer would send) carries
     * no reason phrase: the code says it all */
    if (!has_integrity(m))
        return RLY_ERR(401, "");
    if (!u || !realm || !nonce)
        return RLY_ERR(400, "Missing USERNAME, REALM or NONCE");
    if (stn_nonce_check_cookie(r->t->nonce_key, sizeof r->t->nonce_key, m->buf + nonce->off,
                               nonce->len, r->in->wall_s, &r->in->tuple->client, &features))
        return RLY_ERR(438, "Stale Nonce");
    if (features & STN_SEC_PASSWORD_ALGORITHMS) {
        res = password_algorithm(r, &alg);
        if (res.code)
            return res;
    }
    if (realm->len != strlen(our_realm) || memcmp(m->buf + realm->off, our_realm, realm->len)) {
        r->t->stats.auth_failures++;
        return RLY_ERR(401, "Unauthorized");
    }
    /* one candidate key for a static user, one per REST secret (rotation):
     * the first whose MAC matches; bounded by RLY_AUTH_SECRETS */
    for (unsigned nth = 0; !mac_ok; nth++) {
        if (rly_auth_key_alg(r->t->cfg->auth, m->buf + u->off, u->len, r->in->wall_s, alg, nth,
                             r->key, &r->keylen, &r->rest)) {
            r->t->stats.auth_failures++;
            return RLY_ERR(401, "Unauthorized");
        }
        /* s.9.2.4: MESSAGE-INTEGRITY-SHA256 when present, MI otherwise */
        if (m->mi256 >= 0)
            mac_ok = stn_auth_check_integrity_sha256(m, r->key, r->keylen);
        else
            mac_ok = stn_auth_check_integrity(m, r->key, r->keylen);
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
    if (m->n_unknown && (!has_integrity(m) || !me || !me->needs_auth))
        return RLY_ERR(420, "Unknown Attr"); /* short: unauthenticated */
    if (!me)
        return RLY_ERR(400, "Unknown method");
    /* Amplification: the 401 carries REALM and NONCE, so only a request
     * that could succeed earns it. A bare Allocate (no REQUESTED-TRANSPORT)
     * gets 400 and a request that needs an allocation where there is none
     * gets 437, both before authentication and barely larger than a 20-byte
     * request; with MESSAGE-INTEGRITY the answers come after it, signed. */
    if (me->needs_auth && !has_integrity(m)) {
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
    /* s.9.2.4: a client that chose a PASSWORD-ALGORITHM gets
     * MESSAGE-INTEGRITY-SHA256; every other one MESSAGE-INTEGRITY as before */
    if (r.authed && r.sha256)
        stn_build_integrity_sha256(&r.b, r.key, r.keylen);
    else if (r.authed)
        stn_build_integrity(&r.b, r.key, r.keylen);
    if (m->fp >= 0)
        stn_build_fingerprint(&r.b);
    memset(r.key, 0, sizeof r.key);
    if (stn_build_finish(&r.b, &len))
        return 0; /* cannot happen with RLY_RESP_MAX; never send a cut message */
    return len;
}

/* RFC 8489 s.12 (s.12.2 in RFC 5389): a Binding request without the
 * magic cookie comes from an RFC 3489 client, among them libnice 0.1.21's
 * server-reflexive discovery. Answered with MAPPED-ADDRESS and the 16-byte
 * ID copied; no FINGERPRINT (it needs the cookie). Comprehension-required
 * attributes (CHANGE-REQUEST, RESPONSE-ADDRESS, ...) get 420, no reason
 * phrase: like every unauthenticated answer here it stays small (32 bytes
 * for a 20-byte IPv4 request). */
static size_t binding_rfc3489(const rly_input *in, const stn_msg *m, uint8_t *out, size_t cap)
{
    stn_builder b;
    size_t len = 0;

    if (m->n_unknown) {
        stn_build_init_rfc3489(&b, out, cap, STN_BINDING, STN_ERROR, m->buf + 4);
        stn_build_error(&b, 420, "");
        stn_build_unknown(&b, m->unknown, m->n_unknown);
    } else {
        stn_build_init_rfc3489(&b, out, cap, STN_BINDING, STN_SUCCESS, m->buf + 4);
        stn_build_addr(&b, STN_A_MAPPED_ADDRESS, &in->tuple->client);
    }
    return stn_build_finish(&b, &len) ? 0 : len;
}

size_t rly_turn_input(rly_turn *t, const rly_input *in, uint8_t *out, size_t cap)
{
    stn_msg m;

    if (in->len >= 4 && (in->buf[0] & 0xC0) == 0x40) {
        rly_chandata_from_client(t, in);
        return 0;
    }
    if (!stn_is_stun(in->buf, in->len)) {
        if (!stn_msg_parse_rfc3489_binding(&m, in->buf, in->len))
            return binding_rfc3489(in, &m, out, cap);
        t->stats.dropped[RLY_DROP_MALFORMED]++;
        return 0;
    }
    if (stn_msg_parse(&m, in->buf, in->len) || !stn_auth_check_fingerprint(&m)) {
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
