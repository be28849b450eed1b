/* tc_turn.h - the TURN client half of tsunagu-turncheck: transactions with
 * long-term credentials (RFC 8489 s.9.2) over one tc_conn, and the data path
 * (Send/Data indications, ChannelData; RFC 8656 s.11, s.12).
 *
 * A transaction retransmits over UDP (RFC 8489 s.6.2.1: 500 ms, doubling)
 * until the deadline, matches the answer by transaction id, follows one 438
 * (stale nonce) by itself, and checks the answer's FINGERPRINT and, when the
 * request was authenticated, its MESSAGE-INTEGRITY with the key. Every byte
 * read goes through stn_msg_parse / stn_chandata_parse. Single-threaded. */
#ifndef TC_TURN_H
#define TC_TURN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rtc_addr.h"
#include "stn_msg.h"
#include "tc_conn.h"

typedef enum {
    TC_R_SUCCESS,   /* success response (MI verified when authenticated) */
    TC_R_ERROR,     /* error response: code, reason (realm/nonce when 401/438) */
    TC_R_TIMEOUT,   /* nothing matching before the deadline */
    TC_R_REFUSED,   /* UDP: ICMP port unreachable */
    TC_R_CLOSED,    /* stream closed by the server */
    TC_R_BADMI,     /* answer without a valid MESSAGE-INTEGRITY for our key */
    TC_R_MALFORMED, /* an answer we could not parse (bad FINGERPRINT, fields) */
    TC_R_IOERR      /* send failed */
} tc_status;

typedef struct {
    tc_status status;
    int code;          /* TC_R_ERROR */
    char reason[128];  /* TC_R_ERROR: the reason phrase, printable */
    char realm[128];   /* REALM of the answer, "" when absent */
    bool has_nonce;
    rtc_addr relayed, mapped; /* family 0 when absent */
    uint32_t lifetime;
    bool has_lifetime;
} tc_result;

typedef struct {
    tc_conn *conn;            /* borrowed */
    int timeout_ms;           /* per transaction */
    const char *user, *pass;  /* borrowed */
    char realm[128];          /* learnt from the 401 */
    uint8_t nonce[128];
    size_t nonce_len;
    uint8_t key[16];          /* MD5(user:realm:pass), valid when have_key */
    bool have_key;
    char got_realm[128];      /* REALM and NONCE of the last 401/438 */
    uint8_t got_nonce[128];
    size_t got_nonce_len;
    uint8_t rx[TC_FRAME_MAX];
} tc_turn;

/* What one request carries; zero fields are left out. */
typedef struct {
    uint16_t method;
    bool auth;               /* USERNAME/REALM/NONCE/MESSAGE-INTEGRITY */
    bool transport_udp;      /* REQUESTED-TRANSPORT UDP (Allocate) */
    bool family_v6;          /* REQUESTED-ADDRESS-FAMILY IPv6 (RFC 6156 s.4.1) */
    const rtc_addr *peer;    /* XOR-PEER-ADDRESS */
    uint16_t channel;        /* CHANNEL-NUMBER */
    bool has_lifetime;
    uint32_t lifetime;       /* LIFETIME */
} tc_req;

/* TURN REST credentials (the scheme tsunagu-signal mints and the relay's
 * --auth-secret checks): username "EXPIRY:ID" (EXPIRY in Unix seconds),
 * password base64(HMAC-SHA1(secret, username)). 0, or -1 when a buffer is
 * too small. Both turncheck (--secret) and the relay's self-check use it. */
int tc_rest_credentials(const char *secret, uint64_t expiry, const char *id, char *user,
                        size_t ulen, char *pass, size_t plen);

void tc_turn_init(tc_turn *t, tc_conn *c, const char *user, const char *pass, int timeout_ms);
void tc_turn_dispose(tc_turn *t); /* wipes the key */

/* Run one transaction; the outcome in *res (always filled). */
void tc_turn_transact(tc_turn *t, const tc_req *rq, tc_result *res);

/* Take realm and nonce from a 401/438 and derive the key. false when the
 * answer had none. */
bool tc_turn_learn(tc_turn *t);

/* Data path. 0 or negative (send errors). */
int tc_turn_send_ind(tc_turn *t, const rtc_addr *peer, const void *data, size_t len);
int tc_turn_send_chan(tc_turn *t, uint16_t chan, bool stream, const void *data, size_t len);

/* Wait for a Data indication or ChannelData: 1 with *peer (Data only),
 * *chan (ChannelData, else 0) and the payload copied into out (at most
 * cap bytes, *len its size); 0 on timeout; negative on error. Other frames
 * are skipped. */
int tc_turn_recv_data(tc_turn *t, uint64_t deadline_ms, rtc_addr *peer, uint16_t *chan,
                      uint8_t *out, size_t cap, size_t *len);

#endif
