/* bot_srtp.h - SRTP/SRTCP protect and unprotect for one call (RFC 3711,
 * RFC 7714 for AES-GCM), keyed from DTLS-SRTP (RFC 5764). The only file that
 * includes libsrtp2 is bot_srtp.c; the rest of the bot sees this header.
 * One session per call, used only on its call's thread. */
#ifndef BOT_SRTP_H
#define BOT_SRTP_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    BOT_SRTP_AES128_CM_SHA1_80 = 1, /* RFC 5764 s.4.1.2 profile 0x0001 */
    BOT_SRTP_AEAD_AES_128_GCM = 7   /* RFC 7714 s.14.2 profile 0x0007 */
} bot_srtp_profile;

#define BOT_SRTP_MAX_KEY 32   /* master key + salt: 16+14 (CM) or 16+12 (GCM) */
#define BOT_SRTP_OVERHEAD 148 /* room protect may add: tag + MKI, generous (SRTP_MAX_TRAILER_LEN) */

/* Keys as DTLS exported them, already split into this side's and the
 * peer's master key||salt (RFC 5764 s.4.2). Wiped by the session. */
typedef struct {
    bot_srtp_profile profile;
    uint8_t local[BOT_SRTP_MAX_KEY], remote[BOT_SRTP_MAX_KEY];
    size_t key_len; /* bytes used in local/remote */
} bot_srtp_keys;

typedef struct bot_srtp bot_srtp;

/* Process-wide library init; call once before any session. 0 or RTC_E*. */
int bot_srtp_global_init(void);
void bot_srtp_global_shutdown(void);

/* New session from exported keys (*keys is wiped either way). NULL on error. */
bot_srtp *bot_srtp_new(bot_srtp_keys *keys);
void bot_srtp_free(bot_srtp *s);

/* In place. *len is the packet length in and out; `cap` must leave
 * BOT_SRTP_OVERHEAD bytes of room after the packet for protect. 0 or RTC_EMSG
 * (auth failure, replay, malformed). */
int bot_srtp_protect(bot_srtp *s, uint8_t *pkt, size_t *len, size_t cap);
int bot_srtp_unprotect(bot_srtp *s, uint8_t *pkt, size_t *len);
int bot_srtp_protect_rtcp(bot_srtp *s, uint8_t *pkt, size_t *len, size_t cap);
int bot_srtp_unprotect_rtcp(bot_srtp *s, uint8_t *pkt, size_t *len);

#endif
