/* rly_perm.c - CreatePermission (RFC 8656 s.9.2) and ChannelBind (s.11.2).
 * Both check every peer against the family of the allocation (443) and the
 * peer policy (403, counted) before changing any state, so a request is
 * applied entirely or not at all. */
#include "rly_req.h"
#include "rtc_err.h"
#include "stn_attr.h"
#include "stn_frame.h"

/* One XOR-PEER-ADDRESS: well-formed (400), allowed by the peer policy (403,
 * counted) and of a family the allocation has (443). */
static rly_result check_peer(rly_req *r, const stn_attr_ref *ref, rtc_addr *peer)
{
    if (stn_attr_get_xor_addr(r->m, ref, peer))
        return RLY_ERR(400, "Bad XOR-PEER-ADDRESS");
    /* policy first: a forbidden address (e.g. ::ffff:127.0.0.1 sent to an
     * IPv4 allocation) is reported as forbidden whatever its family */
    if (!rtc_peer_policy_allows(r->t->cfg->policy, peer)) {
        r->t->stats.permission_denied++;
        return RLY_ERR(403, "Forbidden peer address");
    }
    /* a dual allocation takes peers of both families */
    if (!rly_alloc_has_family(r->a, peer->family))
        return RLY_ERR(443, "Peer Address Family Mismatch");
    return RLY_OK;
}

/* Distinct IPs among peers[0..n) that hold no permission yet. */
static size_t new_ips(const rly_alloc *a, const rtc_addr *peers, size_t n)
{
    size_t fresh = 0;
    for (size_t i = 0; i < n; i++) {
        bool seen = false;
        for (unsigned j = 0; j < a->n_perms && !seen; j++)
            seen = rtc_addr_ip_equal(&a->perms[j].peer, &peers[i]);
        for (size_t j = 0; j < i && !seen; j++)
            seen = rtc_addr_ip_equal(&peers[j], &peers[i]);
        fresh += !seen;
    }
    return fresh;
}

rly_result rly_h_create_permission(rly_req *r)
{
    rtc_addr peers[STN_MAX_ATTRS];
    size_t n = 0;
    rly_result res;

    for (unsigned i = 0; i < r->m->n_attrs; i++) {
        if (r->m->attrs[i].type != STN_A_XOR_PEER_ADDRESS)
            continue;
        res = check_peer(r, &r->m->attrs[i], &peers[n]);
        if (res.code)
            return res;
        n++;
    }
    if (n == 0)
        return RLY_ERR(400, "Missing XOR-PEER-ADDRESS");
    /* s.9.2 is all or nothing: make sure every new IP fits before
     * installing any, so a 508 leaves the permissions as they were */
    rly_alloc_purge(r->a, r->in->now_ms);
    if (r->a->n_perms + new_ips(r->a, peers, n) > RLY_MAX_PERMS)
        return RLY_ERR(508, "Too many permissions");
    for (size_t i = 0; i < n; i++)
        if (rly_alloc_permit(r->a, &peers[i], r->in->now_ms))
            return RLY_ERR(508, "Too many permissions"); /* cannot happen: counted above */
    return RLY_OK;
}

rly_result rly_h_channel_bind(rly_req *r)
{
    const stn_attr_ref *cn = stn_msg_find(r->m, STN_A_CHANNEL_NUMBER);
    const stn_attr_ref *pa = stn_msg_find(r->m, STN_A_XOR_PEER_ADDRESS);
    uint16_t chan;
    rtc_addr peer;
    rly_result res;
    int rc;

    if (!cn || stn_attr_get_channel(r->m, cn, &chan))
        return RLY_ERR(400, "Missing or bad CHANNEL-NUMBER");
    if (!stn_is_channel(chan) && !(r->t->cfg->lim.legacy_channels && rly_is_channel(chan)))
        return RLY_ERR(400, "CHANNEL-NUMBER out of range");
    if (!pa)
        return RLY_ERR(400, "Missing XOR-PEER-ADDRESS");
    res = check_peer(r, pa, &peer);
    if (res.code)
        return res;
    rc = rly_alloc_bind(r->a, chan, &peer, r->in->now_ms);
    if (rc == RTC_EEXIST)
        return RLY_ERR(400, "Channel or peer bound otherwise");
    if (rc)
        return RLY_ERR(508, "Too many channels");
    return RLY_OK;
}
