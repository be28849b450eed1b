/* bot_turnfam.h - ask a TURN server for a relayed address of a given family
 * (REQUESTED-ADDRESS-FAMILY, RFC 8656 s.7.1 and s.18.10, RFC 6156) on behalf
 * of libnice, which cannot.
 *
 * libnice 0.1.21 never puts REQUESTED-ADDRESS-FAMILY in its Allocate
 * (stun_usage_turn_create has no parameter for it), and without it the
 * server must allocate IPv4 (RFC 8656 s.7.2), whatever transport the request
 * came over: a bot in an IPv6-only network gets an IPv4 relayed address (seen
 * in tests/netlab/topo_e.py). With --turn-family ipv6 the bot gives libnice a
 * local UDP port on 127.0.0.1 in place of each turn: UDP server; this shim
 * forwards every datagram both ways unchanged, except Allocate requests
 * without a family, which it copies with REQUESTED-ADDRESS-FAMILY added and
 * MESSAGE-INTEGRITY (long-term key from the request's own USERNAME and REALM
 * and the credential the bot gave libnice) and FINGERPRINT computed again.
 * Answers are not touched: libnice checks their integrity with the same key
 * and matches them by transaction ID, which stays. Datagrams over 8 KiB are
 * dropped (media, ICE and DTLS stay under the path MTU).
 *
 * One shim per turn: server per ICE agent, on the thread-default GLib context
 * of the thread that creates it (the call's worker), used from that thread
 * only: no locking. */
#ifndef BOT_TURNFAM_H
#define BOT_TURNFAM_H

#include <stddef.h>
#include <stdint.h>

/* REQUESTED-ADDRESS-FAMILY values (RFC 8656 s.18.10) */
#define BOT_TURNFAM_IPV4 0x01
#define BOT_TURNFAM_IPV6 0x02

/* The message part, kept apart so it is tested alone. `in` is one datagram
 * from libnice. 1: it is an Allocate request without REQUESTED- or
 * ADDITIONAL-ADDRESS-FAMILY and `out` holds the copy with `family` asked
 * (*outlen bytes); 0: forward `in` as it is (not an Allocate request, not
 * STUN, or a family already there); RTC_EUNSUP: an Allocate signed with
 * MESSAGE-INTEGRITY-SHA256 (libnice never does) or without USERNAME/REALM
 * next to its MESSAGE-INTEGRITY; RTC_ESPACE: cap too small. On an error the
 * caller forwards `in` unchanged (the server then allocates IPv4). */
int bot_turnfam_rewrite(const uint8_t *in, size_t n, uint8_t family, const char *pass,
                        uint8_t *out, size_t cap, size_t *outlen);

typedef struct bot_turnfam bot_turnfam;

/* A shim for the TURN server server_ip:port (numeric, IPv4 or IPv6) asking
 * for `family`, signing with `pass`. Listens on 127.0.0.1:0 (see
 * bot_turnfam_port). NULL on failure with a reason in err. */
bot_turnfam *bot_turnfam_new(const char *server_ip, uint16_t port, uint8_t family,
                             const char *pass, char *err, size_t errlen);
/* The local port libnice is to use as its TURN server, on 127.0.0.1. */
uint16_t bot_turnfam_port(const bot_turnfam *f);
/* Allocate requests sent with the family added. */
unsigned bot_turnfam_rewritten(const bot_turnfam *f);
/* Closes both sockets; NULL is a no-op. */
void bot_turnfam_free(bot_turnfam *f);

#endif
