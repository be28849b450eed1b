/* bot_ice.h - one ICE agent (RFC 8445) with one component, as WebRTC with
 * BUNDLE and rtcp-mux needs, on libnice. libnice is included only in
 * bot_ice.c. Candidates trickle (RFC 8838) out through a callback and in
 * through bot_ice_add_remote_candidate; TURN servers come from the
 * signaling server's `joined.iceServers`. Runs on the creating thread's
 * default GLib main context (its worker); used from that thread only. */
#ifndef BOT_ICE_H
#define BOT_ICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BOT_ICE_MAX_TURN 8

/* One TURN server from a `turn:`/`turns:` URL (RFC 7065) and its REST
 * credentials. */
typedef struct {
    char host[256];
    uint16_t port;
    bool tcp;            /* ?transport=tcp, and always for turns: */
    bool tls;            /* turns: (through bot_tlsfwd) */
    char user[256], pass[256];
} bot_turn;

/* Parse "turn:host[:port][?transport=udp|tcp]" (port default 3478) or
 * "turns:host[:port][?transport=tcp]" (port default 5349; TLS over TCP);
 * IPv6 in brackets. RTC_EUNSUP for stun:/stuns: URLs and turns: with
 * transport=udp (DTLS), RTC_EMSG when malformed. */
int bot_turn_parse_url(const char *url, bot_turn *out);

/* One STUN server from a `stun:` URL (RFC 7064): where server-reflexive
 * candidates are learnt. */
typedef struct {
    char host[256];
    uint16_t port;
} bot_stun;

/* Parse "stun:host[:port]" (port default 3478; IPv6 in brackets).
 * RTC_EUNSUP for stuns: (STUN over TLS), RTC_EMSG for anything else that
 * is not a well-formed stun: URL. */
int bot_stun_parse_url(const char *url, bot_stun *out);

typedef enum { BOT_ICE_GATHERING, BOT_ICE_CONNECTING, BOT_ICE_READY, BOT_ICE_FAILED } bot_ice_state;

typedef struct {
    /* A local candidate as "candidate:..." (no "a="), or NULL once gathering
     * is done. Borrowed for the call. */
    void (*candidate)(void *ud, const char *cand);
    void (*state)(void *ud, bot_ice_state st);
    /* One datagram from the peer; buffer borrowed and writable for the call. */
    void (*recv)(void *ud, uint8_t *buf, size_t len);
    /* A `turns:` server could not be reached over TLS (connect, handshake,
     * certificate); `msg` names it and the reason, borrowed. `all_failed`:
     * every TURN server was TLS and each has failed, and the agent is relay
     * only, so no candidate can come. May be NULL. */
    void (*turn_error)(void *ud, const char *msg, bool all_failed);
    void *ud;
} bot_ice_cbs;

typedef struct {
    bool controlling; /* the offerer controls (RFC 8445 s.6.1.1, JSEP) */
    bool relay_only;  /* only relayed candidates (libnice force-relay) */
    const bot_turn *turn;
    size_t n_turn;
    /* stun: servers in the order given: libnice takes one STUN server per
     * agent, so the first that resolves to an IPv4 address is used (none
     * when relay_only). */
    const bot_stun *stun;
    size_t n_stun;
    const struct bot_tls_ctx *tls; /* for turns: servers; NULL: they are skipped */
    /* turn: UDP servers are reached through a bot_turnfam shim asking this
     * family (BOT_TURNFAM_IPV4/IPV6); 0: directly, the server's default. */
    uint8_t turn_family;
} bot_ice_params;

typedef struct bot_ice bot_ice;

/* Creates the agent and starts gathering. NULL on failure. */
bot_ice *bot_ice_new(const bot_ice_params *p, const bot_ice_cbs *cbs);
/* Closes asynchronously (TURN allocations are released by libnice); no
 * callback fires after this. NULL is a no-op. */
void bot_ice_free(bot_ice *ice);

/* Our ufrag/pwd, owned by the agent. */
const char *bot_ice_ufrag(const bot_ice *ice);
const char *bot_ice_pwd(const bot_ice *ice);

int bot_ice_set_remote_credentials(bot_ice *ice, const char *ufrag, const char *pwd);
/* "candidate:..." with or without "a="; queued until the credentials are
 * known. 0, or RTC_EMSG if libnice cannot parse it (ignored by callers:
 * browsers send candidate types libnice does not know). */
int bot_ice_add_remote_candidate(bot_ice *ice, const char *cand);
void bot_ice_remote_gathering_done(bot_ice *ice);

/* Send one datagram on the selected pair. 0 or -EAGAIN/RTC_EMSG. */
int bot_ice_send(bot_ice *ice, const uint8_t *buf, size_t len);

/* "relay/udp" style description of the selected local candidate; relayed
 * candidates say how the TURN server was reached when every configured
 * server used the same transport: "relay/udp (TURN over TCP)",
 * "relay/udp (TURN over TLS)". */
const char *bot_ice_selected(const bot_ice *ice);
/* "ADDR:PORT (stun:HOST:PORT)" of the STUN server this agent uses, or "". */
const char *bot_ice_stun_server(const bot_ice *ice);
/* "udp", "tcp", "tls", "mixed" (several kinds configured: libnice does not
 * say which server a relayed candidate came from) or "" (no TURN). */
const char *bot_ice_relay_transport(const bot_ice *ice);
/* TLS connections to turns: servers that completed a verified (or, with
 * --turn-insecure, unverified) handshake, and their description. */
unsigned bot_ice_tls_sessions(const bot_ice *ice);
const char *bot_ice_tls_desc(const bot_ice *ice);

#endif
