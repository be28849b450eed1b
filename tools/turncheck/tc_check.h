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
 * cause, and what an operator does about it, is in docs/turncheck.md.
 *
 * Two programs run these checks: tsunagu-turncheck (tc_main.c) from outside,
 * and tsunagu-relay against itself (--self-check, relay/rly_selfcheck.c),
 * which takes the verdict lines through a hook instead of a FILE and tells
 * the check what only the relay knows (tc_check_self). */
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

/* How a step ended. TC_WARN: it passed, but what it saw probably does not
 * work for remote clients (only the relay's own check says so). */
typedef enum { TC_OK, TC_WARN, TC_FAIL } tc_verdict;
/* "ok  ", "warn" or "FAIL": the first column of a line */
const char *tc_verdict_name(tc_verdict v);

/* One verdict line: url as given, step, detail. false stops the check (the
 * remaining steps are not run; the URL counts as failed). */
typedef bool (*tc_line_fn)(void *arg, const char *url, tc_verdict v, const char *step,
                           const char *detail);

/* What the relay knows when it checks itself. */
typedef struct {
    int peer_fd; /* a bound non-blocking UDP socket to use as the peer (borrowed): the
                  * relay takes one of its relayed ports, which its peer policy lets in */
    /* Behind a 1:1 NAT (--external-ip PUBLIC[/PRIVATE]): the relay address the
     * advertised relayed address stands for. Datagrams the relay sends reach a
     * peer on this host from it, not from the public address. NULL: none. */
    const rtc_addr *relayed_local;
    const char *expect_what; /* names p->expect in the lines, e.g. "--external-ip" */
    const char *tls_note;    /* why the certificate is not checked */
} tc_check_self;

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
    FILE *out;                /* the lines go here unless line is set */
    tc_line_fn line;          /* NULL: print to out */
    void *line_arg;
    const tc_check_self *self; /* the relay's own check; NULL from outside */
} tc_check_params;

/* Run every step against one URL. true when all passed. */
bool tc_check_url(const tc_check_params *p, const tc_url *u);

#endif
