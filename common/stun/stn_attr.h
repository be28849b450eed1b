/* stn_attr.h - typed STUN/TURN attribute values (RFC 8489 s.14, RFC 8656
 * s.18, RFC 6156 s.4). Decoders take an attribute of a parsed view and
 * return 0 or RTC_EMSG; they validate lengths and reserved fields exactly as
 * the RFCs draw them. Encoders append to a builder. */
#ifndef STN_ATTR_H
#define STN_ATTR_H

#include <stdint.h>

#include "rtc_addr.h"
#include "stn_msg.h"

/* XOR-MAPPED-ADDRESS, XOR-PEER-ADDRESS, XOR-RELAYED-ADDRESS (s.14.2). */
int stn_attr_get_xor_addr(const stn_msg *m, const stn_attr_ref *a, rtc_addr *out);
void stn_build_xor_addr(stn_builder *b, uint16_t type, const rtc_addr *addr);
/* MAPPED-ADDRESS and other non-XOR addresses (s.14.1). */
int stn_attr_get_addr(const stn_msg *m, const stn_attr_ref *a, rtc_addr *out);
void stn_build_addr(stn_builder *b, uint16_t type, const rtc_addr *addr);

/* ERROR-CODE (s.14.8): code 300..699; reason is a view into the message. */
int stn_attr_get_error(const stn_msg *m, const stn_attr_ref *a, int *code, rtc_rd *reason);
void stn_build_error(stn_builder *b, int code, const char *reason);

/* UNKNOWN-ATTRIBUTES (s.14.9). */
void stn_build_unknown(stn_builder *b, const uint16_t *types, size_t n);

/* 32-bit values: LIFETIME, PRIORITY... */
int stn_attr_get_u32(const stn_msg *m, const stn_attr_ref *a, uint32_t *out);

/* CHANNEL-NUMBER (RFC 8656 s.18.1): number + RFFU. Range is checked by the
 * caller (0x4000-0x4FFF), so a bad number can get a 400 with a reason. */
int stn_attr_get_channel(const stn_msg *m, const stn_attr_ref *a, uint16_t *chan);
void stn_build_channel(stn_builder *b, uint16_t chan);

/* REQUESTED-TRANSPORT (s.18.6): IANA protocol number (17 = UDP). */
int stn_attr_get_transport(const stn_msg *m, const stn_attr_ref *a, uint8_t *proto);
/* REQUESTED-ADDRESS-FAMILY / ADDITIONAL-ADDRESS-FAMILY (RFC 8656 s.18.10):
 * 0x01 -> AF_INET, 0x02 -> AF_INET6; anything else RTC_EMSG. */
int stn_attr_get_family(const stn_msg *m, const stn_attr_ref *a, int *family);
/* EVEN-PORT (s.18.7): R bit. */
int stn_attr_get_even_port(const stn_msg *m, const stn_attr_ref *a, bool *reserve);

/* ADDRESS-ERROR-CODE (RFC 8656 s.18.12): the family (AF_INET/AF_INET6)
 * whose relayed address could not be allocated in a dual allocation, and
 * why (440, 508...). reason is a view into the message. */
int stn_attr_get_address_error(const stn_msg *m, const stn_attr_ref *a, int *family, int *code,
                               rtc_rd *reason);
void stn_build_address_error(stn_builder *b, int family, int code, const char *reason);

/* PASSWORD-ALGORITHM (RFC 8489 s.14.12): algorithm number, 2-byte
 * parameter length, parameters padded to 4; the value must end there. */
int stn_attr_get_password_algorithm(const stn_msg *m, const stn_attr_ref *a, uint16_t *alg);
void stn_build_password_algorithm(stn_builder *b, uint16_t alg);
/* PASSWORD-ALGORITHMS (s.14.11): a list of the same entries; here each
 * without parameters (MD5 and SHA-256 take none). */
void stn_build_password_algorithms(stn_builder *b, const uint16_t *algs, size_t n);

#endif
