/* bot_rtp.h - RTP header and RTCP SR/RR/SDES (RFC 3550) for one audio
 * stream, plus the RFC 5761 / RFC 7983 demultiplexing rules for a
 * rtcp-muxed, DTLS-sharing component. Pure codec: no I/O, no clock (callers
 * pass NTP time), any thread. */
#ifndef BOT_RTP_H
#define BOT_RTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BOT_RTP_HDR 12

typedef enum { BOT_PKT_OTHER, BOT_PKT_STUN, BOT_PKT_DTLS, BOT_PKT_RTP, BOT_PKT_RTCP } bot_pkt_kind;

/* RFC 7983 s.7 by first byte, then RFC 5761 s.4 by payload type 64..95
 * (RTCP 192..223 with the marker bit folded in). */
bot_pkt_kind bot_pkt_classify(const uint8_t *buf, size_t len);

typedef struct {
    uint8_t pt;
    bool marker;
    uint16_t seq;
    uint32_t ts, ssrc;
    size_t payload_off, payload_len; /* into the parsed buffer */
} bot_rtp_hdr;

/* Writes a 12-byte header (no CSRC, no extension). RTC_ESPACE if cap < 12. */
int bot_rtp_write(uint8_t *out, size_t cap, const bot_rtp_hdr *h);
/* Parses version 2 RTP with CSRCs, header extension and padding. RTC_EMSG. */
int bot_rtp_parse(const uint8_t *buf, size_t len, bot_rtp_hdr *h);

/* One RFC 3550 s.6.4.1 report block. */
typedef struct {
    uint32_t ssrc;      /* the source reported on */
    uint8_t fraction;   /* lost since the last report, /256 */
    int32_t cum_lost;   /* 24-bit signed */
    uint32_t ext_max_seq, jitter, lsr, dlsr;
} bot_rtcp_rb;

typedef struct {
    uint32_t ssrc;
    bool is_sr;                /* SR if we sent media since the last report */
    uint64_t ntp;              /* SR: NTP timestamp, 32.32 */
    uint32_t rtp_ts, pkt_count, octet_count;
    bool has_rb;
    bot_rtcp_rb rb;
    const char *cname;         /* SDES CNAME, required in a compound packet */
    bool bye;                  /* append a BYE for ssrc (s.6.6): we stop sending */
} bot_rtcp_out;

/* Compound SR-or-RR + SDES (+ BYE). Returns length or RTC_ESPACE. */
int bot_rtcp_write(uint8_t *out, size_t cap, const bot_rtcp_out *o);

/* What a received compound packet said about `our_ssrc`. */
typedef struct {
    bool got_sr;
    uint32_t sr_ssrc;
    uint64_t sr_ntp;    /* to answer with LSR (middle 32 bits) */
    uint32_t sr_pkt_count; /* sender's packet count (s.6.4.1) */
    bool got_rb;        /* a report block about our_ssrc */
    bot_rtcp_rb rb;
    bool got_bye;       /* a BYE; bye_ssrc is its first source */
    uint32_t bye_ssrc;
} bot_rtcp_in;

/* Walks every packet of a compound RTCP datagram; unknown types skipped.
 * RTC_EMSG if a length field points past the end. */
int bot_rtcp_parse(const uint8_t *buf, size_t len, uint32_t our_ssrc, bot_rtcp_in *in);

/* RTT in ms from a report block (RFC 3550 s.6.4.1): now_ntp32 - LSR - DLSR,
 * all in 1/65536 s. -1 when the block carries no LSR yet. */
double bot_rtcp_rtt_ms(const bot_rtcp_rb *rb, uint32_t now_ntp32);

/* Middle 32 bits of a 32.32 NTP time. */
static inline uint32_t bot_ntp_mid(uint64_t ntp) { return (uint32_t)(ntp >> 16); }

#endif
