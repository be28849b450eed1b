/* rly_allocate.c - Allocate (RFC 8656 s.7.2, RFC 6156 s.4.2), including dual
 * allocations (ADDITIONAL-ADDRESS-FAMILY: one IPv4 and one IPv6 relayed
 * address), and Refresh (RFC 8656 s.8.2). Runs after the dispatcher
 * authenticated the request. */
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "rly_req.h"
#include "rtc_crypto.h"
#include "rtc_err.h"
#include "rtc_log.h"
#include "stn_attr.h"

#define PROTO_UDP 17

/* s.7.2: one XOR-RELAYED-ADDRESS, or two for a dual allocation, and an
 * ADDRESS-ERROR-CODE for the half of a dual request that failed. */
static void success_attrs(rly_req *r, const rly_alloc *a, uint32_t lifetime_s)
{
    stn_build_xor_addr(&r->b, STN_A_XOR_RELAYED_ADDRESS, &a->advertised);
    if (a->relay_fd2 >= 0)
        stn_build_xor_addr(&r->b, STN_A_XOR_RELAYED_ADDRESS, &a->advertised2);
    stn_build_u32(&r->b, STN_A_LIFETIME, lifetime_s);
    stn_build_xor_addr(&r->b, STN_A_XOR_MAPPED_ADDRESS, &r->in->tuple->client);
    if (a->addr_err_family)
        stn_build_address_error(&r->b, a->addr_err_family, a->addr_err_code,
                                a->addr_err_code == 440 ? "Address Family not Supported"
                                                        : "Insufficient Capacity");
}

typedef struct {
    int family; /* of the first (or only) relayed address */
    bool dual;  /* ADDITIONAL-ADDRESS-FAMILY: an IPv6 one as well */
    int missing_family; /* the half of a dual request not allocated, 0 = none */
    int missing_code;   /* its ADDRESS-ERROR-CODE: 440 or 508 */
    bool even, reserve;
    const stn_attr_ref *token;
    bool dont_fragment;
    int resv_fd; /* the socket the token named, taken before the quota */
    rtc_addr resv_bound;
} alloc_opts;

/* s.7.2 steps 6-9 on the address families: REQUESTED-ADDRESS-FAMILY picks
 * one (440 when the relay has no address of it), ADDITIONAL-ADDRESS-FAMILY
 * asks for IPv6 besides IPv4. The relay's --relay-ip list decides which
 * families exist; a dual request on a relay with one of them is met
 * partially, the other named in ADDRESS-ERROR-CODE 440 (step 9). */
static rly_result check_families(rly_req *r, alloc_opts *o, const stn_attr_ref *raf,
                                 const stn_attr_ref *aaf, bool reserve)
{
    const stn_msg *m = r->m;
    bool have4 = r->t->cfg->relay_ip[0].family != 0, have6 = r->t->cfg->relay_ip[1].family != 0;
    int extra;

    if (raf && aaf)
        return RLY_ERR(400, "Both REQUESTED- and ADDITIONAL-ADDRESS-FAMILY");
    o->family = r->t->cfg->default_family ? r->t->cfg->default_family
                                          : r->in->tuple->client.family;
    /* keep: a client of a family the relay cannot relay gets the other one */
    if (!r->t->cfg->default_family && !r->t->cfg->relay_ip[o->family == AF_INET6].family)
        o->family = o->family == AF_INET6 ? AF_INET : AF_INET6;
    if (raf && stn_attr_get_family(m, raf, &o->family))
        return RLY_ERR(440, "Address Family not Supported");
    if (!aaf) {
        if (!r->t->cfg->relay_ip[o->family == AF_INET6].family)
            return RLY_ERR(440, "Address Family not Supported");
        return RLY_OK;
    }
    /* step 8: a reserved even/odd pair is of one family only */
    if (reserve)
        return RLY_ERR(400, "EVEN-PORT R with ADDITIONAL-ADDRESS-FAMILY");
    /* step 9: IPv6 is the only valid additional family */
    if (stn_attr_get_family(m, aaf, &extra) || extra != AF_INET6)
        return RLY_ERR(400, "ADDITIONAL-ADDRESS-FAMILY must be IPv6");
    o->dual = have4 && have6;
    if (!have6) {
        o->missing_family = AF_INET6;
        o->missing_code = 440;
    } else if (!have4) {
        o->family = AF_INET6;
        o->missing_family = AF_INET;
        o->missing_code = 440;
    }
    return RLY_OK;
}

/* Checks of s.7.2 steps 2-6 that need no state. */
static rly_result check_request(rly_req *r, alloc_opts *o)
{
    const stn_msg *m = r->m;
    const stn_attr_ref *rt = stn_msg_find(m, STN_A_REQUESTED_TRANSPORT);
    const stn_attr_ref *ep = stn_msg_find(m, STN_A_EVEN_PORT);
    const stn_attr_ref *tok = stn_msg_find(m, STN_A_RESERVATION_TOKEN);
    const stn_attr_ref *raf = stn_msg_find(m, STN_A_REQUESTED_ADDRESS_FAMILY);
    const stn_attr_ref *aaf = stn_msg_find(m, STN_A_ADDITIONAL_ADDRESS_FAMILY);
    uint8_t proto;
    bool reserve = false;
    rly_result res;

    if (!rt || stn_attr_get_transport(m, rt, &proto))
        return RLY_ERR(400, "Missing or bad REQUESTED-TRANSPORT");
    if (proto != PROTO_UDP)
        return RLY_ERR(442, "Unsupported Transport Protocol");
    if (ep && stn_attr_get_even_port(m, ep, &reserve))
        return RLY_ERR(400, "Bad EVEN-PORT");
    if (tok && (ep || raf || aaf))
        return RLY_ERR(400, "RESERVATION-TOKEN with EVEN-PORT or address family");
    if (tok && tok->len != 8)
        return RLY_ERR(400, "Bad RESERVATION-TOKEN");
    res = check_families(r, o, raf, aaf, reserve);
    if (res.code)
        return res;
    o->dont_fragment = stn_msg_find(m, STN_A_DONT_FRAGMENT) != NULL;
    o->even = ep != NULL;
    o->reserve = reserve;
    o->token = tok;
    return RLY_OK;
}

/* EVEN-PORT with R (s.7.2 step 4): an even port whose odd neighbour is
 * free too; the neighbour is held under a fresh token for 30 s. The
 * reservation costs user (the quota key) one more quota unit while held,
 * and a user holds at most RLY_RESV_PER_USER, so the shared table cannot
 * be filled by one user. fd, -1, or RTC_ELIMIT (-> 486). */
static int open_pair(rly_req *r, const rtc_addr *ip, rtc_addr *bound, uint8_t token[8],
                     const char *user)
{
    rly_turn *t = r->t;
    const rly_limits *lim = &t->cfg->lim;
    int rc;

    if (rtc_random(token, 8))
        return -1;
    rc = rly_quota_take(t->quota, user, lim->max_allocs,
                        rly_quota_user_max(lim->max_allocs_per_user, lim->max_allocs_per_rest_id,
                                           r->rest));
    if (rc)
        return rc == RTC_ELIMIT ? RTC_ELIMIT : -1;
    for (int tries = 0; tries < 16; tries++) {
        rtc_addr odd;
        int fd = t->io.relay_open(t->io.ctx, ip, true, 0, bound), ofd;
        if (fd < 0)
            break;
        ofd = t->io.relay_open(t->io.ctx, ip, false, (uint16_t)(bound->port + 1), &odd);
        if (ofd >= 0) {
            if (!rly_quota_resv_put(t->quota, token, ofd, &odd, r->in->now_ms + RLY_RESV_MS,
                                    user))
                return fd;
            t->io.relay_close(t->io.ctx, ofd, &odd);
            t->io.relay_close(t->io.ctx, fd, bound);
            rly_quota_give(t->quota, user);
            return RTC_ELIMIT;
        }
        t->io.relay_close(t->io.ctx, fd, bound);
    }
    rly_quota_give(t->quota, user);
    return -1;
}

static void log_allocated(const rly_turn *t, const rly_alloc *a, uint32_t life)
{
    char ctx[32], cl[RTC_ADDR_STRLEN], rl[RTC_ADDR_STRLEN], rl2[RTC_ADDR_STRLEN] = "";
    if (!rtc_log_enabled(RTC_LOG_INFO))
        return;
    snprintf(ctx, sizeof ctx, "alloc=%u.%u", t->worker, a->serial);
    rtc_addr_format(&a->tuple.client, true, cl);
    rtc_addr_format(&a->relayed, true, rl);
    if (a->relay_fd2 >= 0)
        rtc_addr_format(&a->relayed2, true, rl2);
    RTC_LOG(RTC_LOG_INFO, ctx, "allocated client=%s proto=%s relayed=%s%s%s lifetime=%u user=%s",
            cl, a->tuple.proto == RLY_UDP ? "udp" : a->tuple.proto == RLY_TCP ? "tcp" : "tls", rl,
            rl2[0] ? "," : "", rl2, life, a->user);
}

/* The relayed socket: a reserved one (already taken), an even/odd pair, or
 * any port. fd, -1, or RTC_ELIMIT. */
static int open_relayed(rly_req *r, const alloc_opts *o, rtc_addr *bound, uint8_t token[8],
                        const char *qkey)
{
    rly_turn *t = r->t;
    const rtc_addr *ip = &t->cfg->relay_ip[o->family == AF_INET6];
    if (o->token) {
        *bound = o->resv_bound;
        return o->resv_fd;
    }
    if (o->reserve)
        return open_pair(r, ip, bound, token, qkey);
    return t->io.relay_open(t->io.ctx, ip, o->even, 0, bound);
}

/* DF on a relayed socket (s.7.2 step 4). 0, or -1 when it cannot be set. */
static int set_df(rly_turn *t, int fd, int family)
{
    return t->io.relay_dont_fragment && !t->io.relay_dont_fragment(fd, family) ? 0 : -1;
}

/* The IPv6 half of a dual allocation (s.7.2 step 9): fd in *fd2, or -1 with
 * the reason noted in o for ADDRESS-ERROR-CODE. */
static void open_second(rly_req *r, alloc_opts *o, int *fd2, rtc_addr *bound2)
{
    rly_turn *t = r->t;
    *fd2 = -1;
    if (!o->dual)
        return;
    *fd2 = t->io.relay_open(t->io.ctx, &t->cfg->relay_ip[1], false, 0, bound2);
    if (*fd2 < 0) {
        o->missing_family = AF_INET6;
        o->missing_code = 508;
    }
}

static void close_pair(rly_turn *t, int fd, const rtc_addr *b, int fd2, const rtc_addr *b2)
{
    t->io.relay_close(t->io.ctx, fd, b);
    if (fd2 >= 0)
        t->io.relay_close(t->io.ctx, fd2, b2);
}

/* Make the allocation once every check passed and the quota is taken;
 * gives the quota back on failure. A dual allocation is one allocation
 * (one quota unit) with two relayed sockets. */
static rly_result install(rly_req *r, alloc_opts *o, const char *user, uint32_t life)
{
    rly_turn *t = r->t;
    uint8_t token[8];
    rtc_addr bound, bound2 = {0};
    rly_alloc *a;
    const char *qkey = rly_quota_key(user, r->rest);
    int fd = open_relayed(r, o, &bound, token, qkey), fd2;

    if (fd == RTC_ELIMIT) {
        rly_quota_give(t->quota, qkey);
        return RLY_ERR(486, "Allocation Quota Reached");
    }
    if (fd < 0 && o->dual) {
        /* step 9: the IPv4 half failed; the IPv6 one alone, and say why */
        o->dual = false;
        o->family = AF_INET6;
        o->missing_family = AF_INET;
        o->missing_code = 508;
        fd = open_relayed(r, o, &bound, token, qkey);
    }
    if (fd < 0) {
        rly_quota_give(t->quota, qkey);
        if (rtc_log_ratelimit_ok(&t->warn_rl, r->in->now_ms))
            RTC_LOG(RTC_LOG_WARN, NULL, "no relayed port could be opened (range full?): 508");
        return RLY_ERR(508, "Insufficient Capacity");
    }
    open_second(r, o, &fd2, &bound2);
    if (o->dont_fragment &&
        (set_df(t, fd, bound.family) || (fd2 >= 0 && set_df(t, fd2, bound2.family)))) {
        /* s.7.2: a DF the server cannot set is answered like an unknown
         * comprehension-required attribute (the dispatcher names it) */
        close_pair(t, fd, &bound, fd2, &bound2);
        rly_quota_give(t->quota, qkey);
        return RLY_ERR(420, "DONT-FRAGMENT not supported");
    }
    a = rly_table_add(t->table, r->in->tuple, user);
    if (!a || t->io.relay_attach(t->io.ctx, fd, a->id) ||
        (fd2 >= 0 && t->io.relay_attach(t->io.ctx, fd2, a->id))) {
        close_pair(t, fd, &bound, fd2, &bound2);
        rly_quota_give(t->quota, qkey);
        if (a)
            rly_table_remove(t->table, a);
        return RLY_ERR(508, "Insufficient Capacity");
    }
    a->relay_fd = fd;
    a->rest = r->rest;
    a->relayed = bound;
    a->conn = r->in->conn;
    a->advertised = t->cfg->advertise[bound.family == AF_INET6];
    a->advertised.port = a->relayed.port;
    if (fd2 >= 0) {
        a->relay_fd2 = fd2;
        a->relayed2 = bound2;
        a->advertised2 = t->cfg->advertise[bound2.family == AF_INET6];
        a->advertised2.port = bound2.port;
    }
    a->addr_err_family = (uint8_t)o->missing_family;
    a->addr_err_code = (uint16_t)o->missing_code;
    memcpy(a->alloc_tid, r->m->tid, sizeof a->alloc_tid);
    a->granted_s = life;
    a->bw_last_ms = r->in->now_ms;
    a->created_ms = r->in->now_ms;
    a->bw_tokens = t->cfg->lim.bandwidth;
    rly_alloc_refresh(a, life, r->in->now_ms);
    t->stats.allocations_total++;
    log_allocated(t, a, life);
    success_attrs(r, a, life);
    if (o->reserve)
        stn_build_attr(&r->b, STN_A_RESERVATION_TOKEN, token, 8);
    return RLY_OK;
}

rly_result rly_h_allocate(rly_req *r)
{
    rly_turn *t = r->t;
    const rly_limits *lim = &t->cfg->lim;
    const stn_attr_ref *lt = stn_msg_find(r->m, STN_A_LIFETIME);
    char user[RLY_USER_MAX + 1];
    uint32_t req_life = 0, life;
    rly_result res;
    alloc_opts o = {.family = AF_INET, .resv_fd = -1};
    int rc;

    if (r->a) {
        /* s.7.2 step 1: a retransmission of the Allocate that made the
         * allocation gets the same success; anything else is a mismatch */
        if (!memcmp(r->a->alloc_tid, r->m->tid, sizeof r->a->alloc_tid)) {
            success_attrs(r, r->a, rly_alloc_remaining_s(r->a, r->in->now_ms));
            return RLY_OK;
        }
        return RLY_ERR(437, "Allocation Mismatch");
    }
    if (t->draining)
        return RLY_ERR(403, "Server is draining");
    res = check_request(r, &o);
    if (res.code)
        return res;
    if (lt && stn_attr_get_u32(r->m, lt, &req_life))
        return RLY_ERR(400, "Bad LIFETIME");
    if (r->ulen > RLY_USER_MAX)
        return RLY_ERR(400, "USERNAME too long");
    memcpy(user, r->user, r->ulen);
    user[r->ulen] = '\0';
    if (o.token) {
        /* taken first: the reservation gives back the quota unit it held,
         * so a user at its limit can still claim its own odd port */
        o.resv_fd = rly_quota_resv_take(t->quota, r->m->buf + o.token->off, r->in->now_ms,
                                        &o.resv_bound);
        if (o.resv_fd < 0)
            return RLY_ERR(508, "Insufficient Capacity");
    }
    rc = rly_quota_take(t->quota, rly_quota_key(user, r->rest), lim->max_allocs,
                        rly_quota_user_max(lim->max_allocs_per_user, lim->max_allocs_per_rest_id,
                                           r->rest));
    if (rc && o.resv_fd >= 0)
        t->io.relay_close(t->io.ctx, o.resv_fd, &o.resv_bound);
    if (rc == RTC_ELIMIT)
        return RLY_ERR(486, "Allocation Quota Reached");
    if (rc)
        return RLY_ERR(508, "Insufficient Capacity");
    life = rly_lifetime(lt != NULL, req_life, lim->default_lifetime_s, lim->max_lifetime_s);
    if (life == 0) /* LIFETIME 0 on Allocate means nothing: use the default */
        life = rly_lifetime(false, 0, lim->default_lifetime_s, lim->max_lifetime_s);
    return install(r, &o, user, life);
}

rly_result rly_h_refresh(rly_req *r)
{
    const rly_limits *lim = &r->t->cfg->lim;
    const stn_attr_ref *lt = stn_msg_find(r->m, STN_A_LIFETIME);
    const stn_attr_ref *raf = stn_msg_find(r->m, STN_A_REQUESTED_ADDRESS_FAMILY);
    uint32_t req_life = 0, life;
    int family = 0;

    if (raf && (stn_attr_get_family(r->m, raf, &family) || !rly_alloc_has_family(r->a, family)))
        return RLY_ERR(443, "Peer Address Family Mismatch");
    if (lt && stn_attr_get_u32(r->m, lt, &req_life))
        return RLY_ERR(400, "Bad LIFETIME");
    life = rly_lifetime(lt != NULL, req_life, lim->default_lifetime_s, lim->max_lifetime_s);
    if (life == 0 && raf && r->a->relay_fd2 >= 0) {
        /* s.8.1: on a dual allocation REQUESTED-ADDRESS-FAMILY names the
         * half the request is for; LIFETIME 0 deletes that relayed address
         * and the allocation goes on with the other one */
        rly_turn_release_family(r->t, r->a, family);
    } else if (life == 0) {
        /* s.8.2: delete at once; the quota is free for the next Allocate */
        rly_turn_release(r->t, r->a, "refresh lifetime 0");
        r->a = NULL;
    } else {
        rly_alloc_refresh(r->a, life, r->in->now_ms);
    }
    stn_build_u32(&r->b, STN_A_LIFETIME, life);
    return RLY_OK;
}
