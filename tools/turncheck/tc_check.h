/* tc_check.h - the checks tsunagu-turncheck runs against one TURN URL, and
 * their verdicts, one line per step:
 *
 *   resolve  connect (tcp/tls)  challenge (401 + realm + nonce)  allocate
 *   relayed-address  permission  peer-to-client  client-to-peer  channel
 *   refresh
 *
 * Each step prints "ok   <step>: detail" or "FAIL <step>: cause" (or a JSON
 * object per line with --json); the first failure ends the URL's checks,
 * since every later step needs what it would have set up. The wording of each
 * cause, and what an operator does about it, is in docs/turncheck.md. */
#ifndef TC_CHECK_H
#define TC_CHECK_H

#include <stdbool.h>
#include <stdio.h>

#include "rtc_addr.h"
#include "rtc_tls.h"
#include "tc_conn.h"

/* A parsed turn:/turns: URL (RFC 7065). */
typedef struct {
    const char *text; /* as given */
    char host[256];   /* without brackets */
    uint16_t port;
    tc_proto proto;
} tc_url;

/* 0, or RTC_EMSG with the reason in why. */
int tc_url_parse(const char *s, tc_url *u, char *why, size_t whylen);

typedef struct {
    const char *user, *pass;  /* long-term credentials (static or minted) */
    const char *realm;        /* expected realm, NULL = any */
    const rtc_addr *expect;   /* expected relayed IP, NULL = no check */
    const rtc_addr *peer_ip;  /* where to bind the peer socket; NULL = this host's
                               * address towards the server */
    SSL_CTX *tls;             /* client context for turns: URLs; borrowed */
    bool tls_verify;          /* the context checks certificates (no --insecure) */
    int timeout_ms;
    bool json;
    FILE *out;
} tc_check_params;

/* Run every step against one URL. true when all passed. */
bool tc_check_url(const tc_check_params *p, const tc_url *u);

#endif
