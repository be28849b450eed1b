/* stn_frame.h - ChannelData messages and stream framing (RFC 8656 s.12.4,
 * s.3.1 / s.12.5).
 *
 * A TURN stream (TCP, TLS) carries STUN messages and ChannelData messages
 * back to back; the first two bits tell them apart (00 = STUN, 01 =
 * ChannelData, channel numbers 0x4000-0x4FFF). Over streams ChannelData is
 * padded to a multiple of 4; over UDP padding is optional. */
#ifndef STN_FRAME_H
#define STN_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STN_CHAN_MIN 0x4000
#define STN_CHAN_MAX 0x4FFF
#define STN_CHANDATA_HDR 4

static inline bool stn_is_channel(uint16_t c) { return c >= STN_CHAN_MIN && c <= STN_CHAN_MAX; }

/* Parse one ChannelData message from a datagram of len bytes: the length
 * field must fit (trailing padding up to the datagram's end is allowed).
 * 0 with *chan and the payload view, or RTC_EMSG. */
int stn_chandata_parse(const uint8_t *buf, size_t len, uint16_t *chan, const uint8_t **data,
                       size_t *dlen);

/* Header for a ChannelData message (4 bytes) into out. */
void stn_chandata_header(uint8_t out[STN_CHANDATA_HDR], uint16_t chan, uint16_t dlen);

/* Stream framing: how many bytes the next frame at buf occupies (including
 * ChannelData padding to 4 on streams). Returns >0 when the whole frame is
 * known (it may still need more bytes than len to arrive: compare), 0 when
 * more bytes are needed to know, RTC_EMSG when the bytes cannot start a
 * STUN or ChannelData frame (the connection should be closed). A STUN
 * header without the magic cookie frames only as an RFC 3489 Binding
 * request (stn_msg_parse_rfc3489_binding). */
long stn_frame_len(const uint8_t *buf, size_t len);

#endif
