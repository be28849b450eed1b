/* rly_chandata.h - the ChannelData parser the relay runs on every channel
 * packet from a client (RFC 8656 s.12.4, s.12.5).
 *
 * Not common's stn_chandata_parse: the relay frames and parses channel
 * numbers 0x4000-0x7FFF (RFC 5766's range, see rly_is_channel), so a
 * client bound with --legacy-channels is parsed here and dropped as unbound
 * (not as malformed) when the binding is missing. Inside 0x4000-0x4FFF the
 * two parsers agree exactly; tests/fuzz/fuzz_chandata.c checks that.
 *
 * Static inline in a header so the packet path keeps the call-free code it
 * had as a static function in rly_send.c, and the fuzz target reaches the
 * very same code. Pure: no state, no allocation. */
#ifndef RLY_CHANDATA_H
#define RLY_CHANDATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rtc_rd.h"

/* Channel numbers: RFC 8656 s.12 allows 0x4000-0x4FFF, and ChannelBind
 * outside it gets 400. RFC 5766 clients (coturn's turnutils_uclient among
 * them) pick numbers up to 0x7FFF; --legacy-channels lets ChannelBind accept
 * those. Framing always takes 0x4000-0x7FFF (first two bits 01): a frame on
 * a number that is not bound is dropped like any unbound channel. */
#define RLY_CHAN_MIN 0x4000
#define RLY_CHAN_MAX 0x7FFF
static inline bool rly_is_channel(uint16_t c) { return c >= RLY_CHAN_MIN && c <= RLY_CHAN_MAX; }

/* One ChannelData message in buf[0..len): a datagram, or one frame that
 * rly_frame_len delimited on a stream (padded to 4 there). The length field
 * must fit, and at most 3 bytes of padding may follow the data (s.12.5:
 * optional over UDP, required over streams). 0 with *chan and the payload
 * in *data (a view into buf), or -1. */
static inline int rly_chandata_parse(const uint8_t *buf, size_t len, uint16_t *chan,
                                     rtc_rd *data)
{
    rtc_rd r;
    uint16_t l;
    rtc_rd_init(&r, buf, len);
    if (!rtc_rd_u16(&r, chan) || !rtc_rd_u16(&r, &l) || !rly_is_channel(*chan) ||
        !rtc_rd_sub(&r, l, data) || rtc_rd_left(&r) > 3)
        return -1;
    return 0;
}

#endif
