/* stn_msg.h - STUN message codec (RFC 8489 s.5, s.14; TURN attributes of
 * RFC 8656 s.18 and RFC 6156).
 *
 * Parsing fills a view (stn_msg) over the caller's buffer: header fields and
 * the offset of each attribute, computed once, so handlers never walk the
 * TLVs again. The parser allocates nothing, does no crypto, caps the number of
 * attributes, and stops honouring attributes after MESSAGE-INTEGRITY except
 * MESSAGE-INTEGRITY-SHA256 and FINGERPRINT (RFC 8489 s.14.5), and after
 * MESSAGE-INTEGRITY-SHA256 except FINGERPRINT (s.14.6); anything after
 * FINGERPRINT makes the message malformed. Building writes into an rtc_wr
 * with padding zero-filled; MESSAGE-INTEGRITY and FINGERPRINT are appended
 * last by stn_auth.h. Thread-safe: no state outside the structs passed in. */
#ifndef STN_MSG_H
#define STN_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rtc_rd.h"
#include "rtc_wr.h"

#define STN_MAGIC 0x2112A442u
#define STN_HDR_LEN 20
#define STN_TID_LEN 12
#define STN_TID3489_LEN 16 /* RFC 3489: no cookie, a 128-bit transaction ID */
#define STN_MAX_ATTRS 40   /* more than any honest TURN message carries */
#define STN_MAX_UNKNOWN 8  /* comprehension-required attributes reported in 420 */

/* Classes (RFC 8489 s.5): the C1/C0 bits. */
enum { STN_REQUEST = 0, STN_INDICATION = 1, STN_SUCCESS = 2, STN_ERROR = 3 };

/* Methods (RFC 8489 s.18.2, RFC 8656 s.17). */
enum {
    STN_BINDING = 0x001,
    STN_ALLOCATE = 0x003,
    STN_REFRESH = 0x004,
    STN_SEND = 0x006,
    STN_DATA = 0x007,
    STN_CREATE_PERMISSION = 0x008,
    STN_CHANNEL_BIND = 0x009
};

/* Attribute types. 0x0000-0x7FFF are comprehension-required. */
enum {
    STN_A_MAPPED_ADDRESS = 0x0001,
    STN_A_USERNAME = 0x0006,
    STN_A_MESSAGE_INTEGRITY = 0x0008,
    STN_A_ERROR_CODE = 0x0009,
    STN_A_UNKNOWN_ATTRIBUTES = 0x000A,
    STN_A_CHANNEL_NUMBER = 0x000C,
    STN_A_LIFETIME = 0x000D,
    STN_A_XOR_PEER_ADDRESS = 0x0012,
    STN_A_DATA = 0x0013,
    STN_A_REALM = 0x0014,
    STN_A_NONCE = 0x0015,
    STN_A_XOR_RELAYED_ADDRESS = 0x0016,
    STN_A_REQUESTED_ADDRESS_FAMILY = 0x0017,
    STN_A_EVEN_PORT = 0x0018,
    STN_A_REQUESTED_TRANSPORT = 0x0019,
    STN_A_DONT_FRAGMENT = 0x001A,
    STN_A_MESSAGE_INTEGRITY_SHA256 = 0x001C,
    STN_A_PASSWORD_ALGORITHM = 0x001D,
    STN_A_USERHASH = 0x001E,
    STN_A_XOR_MAPPED_ADDRESS = 0x0020,
    STN_A_RESERVATION_TOKEN = 0x0022,
    STN_A_PRIORITY = 0x0024,
    STN_A_USE_CANDIDATE = 0x0025,
    STN_A_PADDING = 0x0026,
    STN_A_RESPONSE_PORT = 0x0027,
    STN_A_CONNECTION_ID = 0x002A,
    STN_A_ADDITIONAL_ADDRESS_FAMILY = 0x8000,
    STN_A_ADDRESS_ERROR_CODE = 0x8001,
    STN_A_PASSWORD_ALGORITHMS = 0x8002,
    STN_A_ALTERNATE_DOMAIN = 0x8003,
    STN_A_ICMP = 0x8004,
    STN_A_SOFTWARE = 0x8022,
    STN_A_ALTERNATE_SERVER = 0x8023,
    STN_A_TRANSACTION_TRANSMIT_COUNTER = 0x8025,
    STN_A_CACHE_TIMEOUT = 0x8027,
    STN_A_FINGERPRINT = 0x8028,
    STN_A_ICE_CONTROLLED = 0x8029,
    STN_A_ICE_CONTROLLING = 0x802A,
    STN_A_RESPONSE_ORIGIN = 0x802B,
    STN_A_OTHER_ADDRESS = 0x802C
};

typedef struct {
    uint16_t type;
    uint16_t len; /* value length, unpadded */
    uint32_t off; /* value offset from the start of the message; a message
                   * can be 20 + 0xFFFC bytes, so offsets pass 65535 */
} stn_attr_ref;

typedef struct {
    const uint8_t *buf; /* borrowed: the whole message, valid while the view is */
    size_t len;         /* 20 + body length */
    uint16_t method;
    uint8_t cls;
    uint8_t tid[STN_TID_LEN];
    uint8_t n_attrs;
    stn_attr_ref attrs[STN_MAX_ATTRS]; /* in wire order, up to MI (+FP) */
    int16_t mi;      /* index in attrs of MESSAGE-INTEGRITY, -1 if none */
    int16_t fp;      /* index of FINGERPRINT, -1 if none */
    int16_t mi256;   /* index of MESSAGE-INTEGRITY-SHA256 (16..32 bytes, a
                      * multiple of 4, s.14.6), -1 if none */
    uint8_t n_unknown; /* comprehension-required types we do not understand */
    uint16_t unknown[STN_MAX_UNKNOWN];
} stn_msg;

/* Cheap test whether a datagram/stream chunk can be a STUN message: top two
 * bits 0 and the magic cookie in place (RFC 8489 s.5). */
bool stn_is_stun(const uint8_t *buf, size_t len);

/* Parse exactly one message of exactly len bytes. 0 or RTC_EMSG. */
int stn_msg_parse(stn_msg *m, const uint8_t *buf, size_t len);

/* RFC 8489 s.12 (backwards compatibility with RFC 3489): parse a Binding
 * request that has no magic cookie; its transaction ID is the 16 bytes at
 * buf + 4 (m->tid holds only the last 12). Anything else, and anything with
 * the cookie (stn_msg_parse's), is RTC_EMSG. Attributes are walked as
 * stn_msg_parse does; every comprehension-required one is unknown (an RFC
 * 3489 server understands none a request may carry: RESPONSE-ADDRESS,
 * CHANGE-REQUEST, its USERNAME and MESSAGE-INTEGRITY). Only for a server's
 * listener, where such a request is answered with MAPPED-ADDRESS; RFC 7983
 * demultiplexing (ICE, DTLS, media) must keep using stn_is_stun. */
int stn_msg_parse_rfc3489_binding(stn_msg *m, const uint8_t *buf, size_t len);

/* First attribute of a type (RFC 8489 s.14: later duplicates are ignored). */
const stn_attr_ref *stn_msg_find(const stn_msg *m, uint16_t type);
/* A reader over an attribute's value. */
static inline rtc_rd stn_attr_rd(const stn_msg *m, const stn_attr_ref *a)
{
    rtc_rd r;
    rtc_rd_init(&r, m->buf + a->off, a->len);
    return r;
}

/* Message type field from method and class (RFC 8489 s.5 figure 3). */
uint16_t stn_msg_type(uint16_t method, uint8_t cls);

/* Building. The builder writes the 20-byte header at once and back-patches
 * the length after each attribute, so the buffer is a valid message at every
 * step (MESSAGE-INTEGRITY relies on that). */
typedef struct {
    rtc_wr w;
} stn_builder;

void stn_build_init(stn_builder *b, void *buf, size_t cap, uint16_t method, uint8_t cls,
                    const uint8_t tid[STN_TID_LEN]);
/* The same for an answer to an RFC 3489 request: the 16-byte ID copied in
 * place of cookie + ID (RFC 8489 s.12); add MAPPED-ADDRESS, never XOR-ed
 * attributes, MESSAGE-INTEGRITY or FINGERPRINT (they use the cookie). */
void stn_build_init_rfc3489(stn_builder *b, void *buf, size_t cap, uint16_t method,
                            uint8_t cls, const uint8_t id[STN_TID3489_LEN]);
void stn_build_attr(stn_builder *b, uint16_t type, const void *val, size_t len);
void stn_build_u32(stn_builder *b, uint16_t type, uint32_t v);
/* Finish: 0 and *len, or RTC_ESPACE when anything overflowed. */
int stn_build_finish(stn_builder *b, size_t *len);

#endif
