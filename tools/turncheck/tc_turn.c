/* tc_turn.c - TURN transactions and the data path for tsunagu-turncheck
 * (see tc_turn.h). */
#include "tc_turn.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "rtc_clock.h"
#include "rtc_crypto.h"
#include "rtc_err.h"
#include "stn_attr.h"
#include "stn_auth.h"
#include "stn_frame.h"

int tc_rest_credentials(const char *secret, uint64_t expiry, const char *id, char *user,
                        size_t ulen, char *pass, size_t plen)
{
    uint8_t mac[RTC_SHA1_LEN];
    int n = snprintf(user, ulen, "%llu:%s", (unsigned long long)expiry, id);
    int rc;
    if (n < 0 || (size_t)n >= ulen)
        return -1;
    rtc_hmac_sha1(secret, strlen(secret), user, (size_t)n, mac);
    rc = rtc_base64_encode(mac, sizeof mac, pass, plen) < 0 ? -1 : 0;
    explicit_bzero(mac, sizeof mac);
    return rc;
}

void tc_turn_init(tc_turn *t, tc_conn *c, const char *user, const char *pass, int timeout_ms)
{
    memset(t, 0, sizeof *t);
    t->conn = c;
    t->user = user;
    t->pass = pass;
    t->timeout_ms = timeout_ms;
}

void tc_turn_dispose(tc_turn *t)
{
    /* the key stands for the password: wipe it as rtc_secret would */
    explicit_bzero(t->key, sizeof t->key);
    t->have_key = false;
}

/* Copy a text attribute, replacing anything unprintable, so a hostile server
 * cannot write escape sequences to the operator's terminal. */
static void copy_text(rtc_rd v, char *out, size_t cap)
{
    size_t i = 0;
    uint8_t ch;
    while (i + 1 < cap && rtc_rd_u8(&v, &ch))
        out[i++] = ch >= 0x20 && ch < 0x7F && ch != '"' ? (char)ch : '?';
    out[i] = '\0';
}

static int build(tc_turn *t, const tc_req *rq, const uint8_t tid[STN_TID_LEN], uint8_t *buf,
                 size_t cap, size_t *len)
{
    stn_builder b;
    stn_build_init(&b, buf, cap, rq->method, STN_REQUEST, tid);
    if (rq->transport_udp) {
        static const uint8_t udp[4] = {17, 0, 0, 0}; /* RFC 8656 s.18.6 */
        stn_build_attr(&b, STN_A_REQUESTED_TRANSPORT, udp, sizeof udp);
    }
    if (rq->family_v6) {
        static const uint8_t v6[4] = {0x02, 0, 0, 0}; /* RFC 8656 s.18.10 */
        stn_build_attr(&b, STN_A_REQUESTED_ADDRESS_FAMILY, v6, sizeof v6);
    }
    if (rq->channel)
        stn_build_channel(&b, rq->channel);
    if (rq->peer)
        stn_build_xor_addr(&b, STN_A_XOR_PEER_ADDRESS, rq->peer);
    if (rq->has_lifetime)
        stn_build_u32(&b, STN_A_LIFETIME, rq->lifetime);
    if (rq->auth && t->have_key) {
        stn_build_attr(&b, STN_A_USERNAME, t->user, strlen(t->user));
        stn_build_attr(&b, STN_A_REALM, t->realm, strlen(t->realm));
        stn_build_attr(&b, STN_A_NONCE, t->nonce, t->nonce_len);
        stn_build_integrity(&b, t->key, sizeof t->key);
    }
    stn_build_fingerprint(&b);
    return stn_build_finish(&b, len);
}

/* Fill res from a parsed answer. */
static void read_answer(tc_turn *t, const stn_msg *m, bool authed, tc_result *res)
{
    const stn_attr_ref *a;
    rtc_rd reason;

    if (!stn_auth_check_fingerprint(m)) {
        res->status = TC_R_MALFORMED;
        return;
    }
    if ((a = stn_msg_find(m, STN_A_REALM)))
        copy_text(stn_attr_rd(m, a), res->realm, sizeof res->realm);
    if (m->cls == STN_ERROR) {
        if (!(a = stn_msg_find(m, STN_A_ERROR_CODE)) ||
            stn_attr_get_error(m, a, &res->code, &reason)) {
            res->status = TC_R_MALFORMED;
            return;
        }
        res->status = TC_R_ERROR;
        copy_text(reason, res->reason, sizeof res->reason);
        if ((res->code == 401 || res->code == 438) && (a = stn_msg_find(m, STN_A_NONCE))) {
            rtc_rd v = stn_attr_rd(m, a);
            size_t n = rtc_rd_left(&v);
            if (n && n < sizeof t->got_nonce && rtc_rd_copy(&v, t->got_nonce, n)) {
                t->got_nonce_len = n;
                res->has_nonce = true;
            }
            snprintf(t->got_realm, sizeof t->got_realm, "%s", res->realm);
        }
        return;
    }
    /* RFC 8489 s.9.2.5: an answer to an authenticated request must carry
     * MESSAGE-INTEGRITY made with the same key; anything else is not from
     * the server we share the password with. */
    if (authed && !stn_auth_check_integrity(m, t->key, sizeof t->key)) {
        res->status = TC_R_BADMI;
        return;
    }
    res->status = TC_R_SUCCESS;
    if ((a = stn_msg_find(m, STN_A_XOR_RELAYED_ADDRESS)) &&
        stn_attr_get_xor_addr(m, a, &res->relayed))
        res->status = TC_R_MALFORMED;
    if ((a = stn_msg_find(m, STN_A_XOR_MAPPED_ADDRESS)) &&
        stn_attr_get_xor_addr(m, a, &res->mapped))
        res->status = TC_R_MALFORMED;
    if ((a = stn_msg_find(m, STN_A_LIFETIME))) {
        if (stn_attr_get_u32(m, a, &res->lifetime))
            res->status = TC_R_MALFORMED;
        res->has_lifetime = true;
    }
}

/* One request and its answer, retransmitted over UDP. */
static void transact_once(tc_turn *t, const tc_req *rq, tc_result *res)
{
    uint8_t tid[STN_TID_LEN], req[1024];
    size_t len;
    uint64_t now = rtc_clock_mono_ms(), deadline = now + (uint64_t)t->timeout_ms;
    uint64_t rto = 500, next;
    bool udp = tc_conn_is_udp(t->conn);

    memset(res, 0, sizeof *res);
    if (rtc_random(tid, sizeof tid) || build(t, rq, tid, req, sizeof req, &len) ||
        tc_conn_send(t->conn, req, len)) {
        res->status = TC_R_IOERR;
        return;
    }
    next = now + rto;
    for (;;) {
        uint64_t until = udp && next < deadline ? next : deadline;
        long n = tc_conn_recv(t->conn, t->rx, sizeof t->rx, until);
        stn_msg m;
        if (n == 0) {
            if (rtc_clock_mono_ms() >= deadline) {
                res->status = TC_R_TIMEOUT;
                return;
            }
            rto *= 2; /* RFC 8489 s.6.2.1 */
            next = rtc_clock_mono_ms() + rto;
            if (tc_conn_send(t->conn, req, len)) {
                res->status = TC_R_IOERR;
                return;
            }
            continue;
        }
        if (n == -ECONNREFUSED) {
            res->status = TC_R_REFUSED;
            return;
        }
        if (n < 0) {
            res->status = n == RTC_EMSG ? TC_R_MALFORMED : TC_R_CLOSED;
            return;
        }
        /* anything else on the wire (a late answer, data) is not ours */
        if (stn_msg_parse(&m, t->rx, (size_t)n) || memcmp(m.tid, tid, STN_TID_LEN) ||
            m.method != rq->method || (m.cls != STN_SUCCESS && m.cls != STN_ERROR))
            continue;
        read_answer(t, &m, rq->auth && t->have_key, res);
        return;
    }
}

void tc_turn_transact(tc_turn *t, const tc_req *rq, tc_result *res)
{
    transact_once(t, rq, res);
    /* 438 Stale Nonce: take the new nonce and try once more (RFC 8489 s.9.2.5) */
    if (rq->auth && t->have_key && res->status == TC_R_ERROR && res->code == 438 &&
        res->has_nonce && tc_turn_learn(t))
        transact_once(t, rq, res);
}

bool tc_turn_learn(tc_turn *t)
{
    if (!t->got_nonce_len)
        return false;
    memcpy(t->nonce, t->got_nonce, t->got_nonce_len);
    t->nonce_len = t->got_nonce_len;
    snprintf(t->realm, sizeof t->realm, "%s", t->got_realm);
    stn_auth_longterm_key(t->user, strlen(t->user), t->realm, strlen(t->realm), t->pass,
                          strlen(t->pass), t->key);
    t->have_key = true;
    return true;
}

int tc_turn_send_ind(tc_turn *t, const rtc_addr *peer, const void *data, size_t len)
{
    uint8_t tid[STN_TID_LEN], buf[2048];
    stn_builder b;
    size_t n;
    if (rtc_random(tid, sizeof tid))
        return -EIO;
    stn_build_init(&b, buf, sizeof buf, STN_SEND, STN_INDICATION, tid);
    stn_build_xor_addr(&b, STN_A_XOR_PEER_ADDRESS, peer);
    stn_build_attr(&b, STN_A_DATA, data, len);
    if (stn_build_finish(&b, &n))
        return RTC_ESPACE;
    return tc_conn_send(t->conn, buf, n);
}

int tc_turn_send_chan(tc_turn *t, uint16_t chan, bool stream, const void *data, size_t len)
{
    uint8_t buf[2048];
    /* over streams ChannelData is padded to 4 (RFC 8656 s.12.5) */
    size_t pad = stream ? (4 - (len & 3)) & 3 : 0;
    if (len > sizeof buf - STN_CHANDATA_HDR - 3)
        return RTC_ESPACE;
    stn_chandata_header(buf, chan, (uint16_t)len);
    memcpy(buf + STN_CHANDATA_HDR, data, len);
    memset(buf + STN_CHANDATA_HDR + len, 0, pad);
    return tc_conn_send(t->conn, buf, STN_CHANDATA_HDR + len + pad);
}

static int copy_payload(rtc_rd v, uint8_t *out, size_t cap, size_t *len)
{
    size_t n = rtc_rd_left(&v);
    if (n > cap || !rtc_rd_copy(&v, out, n))
        return RTC_ESPACE;
    *len = n;
    return 1;
}

int tc_turn_recv_data(tc_turn *t, uint64_t deadline_ms, rtc_addr *peer, uint16_t *chan,
                      uint8_t *out, size_t cap, size_t *len)
{
    for (;;) {
        long n = tc_conn_recv(t->conn, t->rx, sizeof t->rx, deadline_ms);
        stn_msg m;
        const stn_attr_ref *pa, *da;
        const uint8_t *d;
        size_t dl;
        if (n <= 0)
            return (int)n;
        *chan = 0;
        memset(peer, 0, sizeof *peer);
        if ((t->rx[0] & 0xC0) == 0x40) {
            rtc_rd v;
            if (stn_chandata_parse(t->rx, (size_t)n, chan, &d, &dl))
                continue;
            rtc_rd_init(&v, d, dl);
            return copy_payload(v, out, cap, len);
        }
        if (stn_msg_parse(&m, t->rx, (size_t)n) || m.method != STN_DATA ||
            m.cls != STN_INDICATION || !(pa = stn_msg_find(&m, STN_A_XOR_PEER_ADDRESS)) ||
            !(da = stn_msg_find(&m, STN_A_DATA)) || stn_attr_get_xor_addr(&m, pa, peer))
            continue;
        return copy_payload(stn_attr_rd(&m, da), out, cap, len);
    }
}
