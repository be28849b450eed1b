/* rly_send.c - the data path: Send indications and ChannelData from the
 * client (RFC 8656 s.10.2, s.12.4), and datagrams from peers back as
 * ChannelData or Data indications (s.10.3, s.12.5).
 *
 * Runs per packet: no allocation, no logging; every drop bumps a counter. */
#include <string.h>

#include "rly_req.h"
#include "stn_attr.h"
#include "stn_frame.h"

/* Permissions are per IP (s.9), but on the relay's own IPs only the
 * relayed ports are peers: a permission for RELAY_IP:<relayed port> must not
 * reach RELAY_IP:6379. The policy is re-checked per packet for those peers
 * alone (a compare against at most 4 addresses for everyone else). */
static inline bool peer_ok(const rly_turn *t, const rly_alloc *a, const rtc_addr *peer,
                           uint64_t now_ms)
{
    return rly_alloc_permitted(a, peer, now_ms) && rtc_peer_policy_port_ok(t->cfg->policy, peer);
}

static void to_peer(rly_turn *t, rly_alloc *a, const rtc_addr *peer, const uint8_t *data,
                    size_t len, uint64_t now_ms)
{
    /* the socket of the peer's family: a dual allocation has two, and a
     * channel may outlive the half it was bound through (-1, dropped) */
    int fd = rly_alloc_fd_for(a, peer->family);

    if (fd < 0 || !peer_ok(t, a, peer, now_ms)) {
        t->stats.dropped[RLY_DROP_NO_PERMISSION]++;
        return;
    }
    if (!rly_alloc_bw_take(a, t->cfg->lim.bandwidth, len, now_ms)) {
        t->stats.dropped[RLY_DROP_BANDWIDTH]++;
        return;
    }
    if (t->io.send_peer(t->io.ctx, fd, peer, data, len)) {
        t->stats.dropped[RLY_DROP_SEND_ERROR]++;
        return;
    }
    t->stats.pkts_c2p++;
    t->stats.bytes_c2p += len;
    a->pkts[RLY_DIR_C2P]++;
    a->bytes[RLY_DIR_C2P] += len;
    rly_rtpq_see(&a->q[RLY_DIR_C2P], &t->qshard, RLY_DIR_C2P, data, len, t->now_us);
}

static rly_alloc *live_alloc(rly_turn *t, const rly_input *in)
{
    rly_alloc *a = rly_table_find(t->table, in->tuple);
    if (!a || rly_alloc_expired(a, in->now_ms)) {
        t->stats.dropped[RLY_DROP_NO_ALLOCATION]++;
        return NULL;
    }
    return a;
}

void rly_h_send(rly_turn *t, const rly_input *in, const stn_msg *m)
{
    const stn_attr_ref *pa = stn_msg_find(m, STN_A_XOR_PEER_ADDRESS);
    const stn_attr_ref *da = stn_msg_find(m, STN_A_DATA);
    rly_alloc *a;
    rtc_addr peer;

    if (!pa || !da || stn_attr_get_xor_addr(m, pa, &peer) || m->n_unknown) {
        t->stats.dropped[RLY_DROP_MALFORMED]++;
        return;
    }
    a = live_alloc(t, in);
    if (!a)
        return;
    to_peer(t, a, &peer, m->buf + da->off, da->len, in->now_ms); /* family checked there */
}

long rly_frame_len(const uint8_t *buf, size_t len)
{
    rtc_rd r;
    uint16_t first, flen;

    rtc_rd_init(&r, buf, len);
    if (len >= 1 && (buf[0] & 0xC0) == 0x40) {
        if (!rtc_rd_u16(&r, &first) || !rtc_rd_u16(&r, &flen))
            return 0;
        return (long)(STN_CHANDATA_HDR + ((flen + 3u) & ~3u)); /* padded on streams */
    }
    return stn_frame_len(buf, len);
}

void rly_chandata_from_client(rly_turn *t, const rly_input *in)
{
    uint16_t chan;
    rtc_rd data;
    const rly_chan *c;
    rly_alloc *a;

    if (rly_chandata_parse(in->buf, in->len, &chan, &data)) {
        t->stats.dropped[RLY_DROP_MALFORMED]++;
        return;
    }
    a = live_alloc(t, in);
    if (!a)
        return;
    c = rly_alloc_chan_by_num(a, chan, in->now_ms);
    if (!c) {
        t->stats.dropped[RLY_DROP_NO_CHANNEL]++;
        return;
    }
    to_peer(t, a, &c->peer, data.p, rtc_rd_left(&data), in->now_ms);
}

const uint8_t *rly_turn_from_peer(rly_turn *t, rly_alloc *a, const rtc_addr *peer,
                                  uint8_t *buf, size_t len, uint64_t now_ms, size_t *out_len)
{
    uint8_t *data = buf + RLY_HEADROOM, *start;
    const rly_chan *c;
    size_t pad = (4 - (len & 3)) & 3, plen = len;

    if (rly_alloc_expired(a, now_ms)) {
        t->stats.dropped[RLY_DROP_NO_ALLOCATION]++;
        return NULL;
    }
    if (!peer_ok(t, a, peer, now_ms)) {
        t->stats.dropped[RLY_DROP_NO_PERMISSION]++;
        return NULL;
    }
    if (len > 0xFFFF - 64 || !rly_alloc_bw_take(a, t->cfg->lim.bandwidth, len, now_ms)) {
        t->stats.dropped[RLY_DROP_BANDWIDTH]++;
        return NULL;
    }
    c = rly_alloc_chan_by_peer(a, peer, now_ms);
    if (c) {
        start = data - STN_CHANDATA_HDR;
        stn_chandata_header(start, c->num, (uint16_t)len);
        /* s.12.5: over TCP/TLS ChannelData is padded to a multiple of 4 */
        if (a->tuple.proto != RLY_UDP && pad) {
            memset(data + len, 0, pad);
            len += pad;
        }
        *out_len = STN_CHANDATA_HDR + len;
    } else {
        /* Data indication: header + XOR-PEER-ADDRESS, then the DATA TLV
         * header written by hand so the payload is never copied */
        uint8_t hdr[RLY_HEADROOM], tid[STN_TID_LEN] = {0};
        stn_builder b;
        size_t hl;
        uint32_t seq = ++t->ind_seq;
        memcpy(tid, &a->id, sizeof a->id);
        memcpy(tid + 4, &seq, sizeof seq);
        stn_build_init(&b, hdr, sizeof hdr, STN_DATA, STN_INDICATION, tid);
        stn_build_xor_addr(&b, STN_A_XOR_PEER_ADDRESS, peer);
        if (stn_build_finish(&b, &hl) || hl + 4 > RLY_HEADROOM) {
            t->stats.dropped[RLY_DROP_MALFORMED]++;
            return NULL;
        }
        hdr[hl] = (uint8_t)(STN_A_DATA >> 8);
        hdr[hl + 1] = (uint8_t)STN_A_DATA;
        hdr[hl + 2] = (uint8_t)(len >> 8);
        hdr[hl + 3] = (uint8_t)len;
        hl += 4;
        memset(data + len, 0, pad);
        /* message length: everything after the 20-byte header */
        hdr[2] = (uint8_t)((hl - STN_HDR_LEN + len + pad) >> 8);
        hdr[3] = (uint8_t)(hl - STN_HDR_LEN + len + pad);
        start = data - hl;
        memcpy(start, hdr, hl);
        *out_len = hl + len + pad;
    }
    t->stats.pkts_p2c++;
    t->stats.bytes_p2c += len;
    a->pkts[RLY_DIR_P2C]++;
    a->bytes[RLY_DIR_P2C] += plen;
    rly_rtpq_see(&a->q[RLY_DIR_P2C], &t->qshard, RLY_DIR_P2C, data, plen, t->now_us);
    return start;
}
