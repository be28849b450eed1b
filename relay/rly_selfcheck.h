/* rly_selfcheck.h - tsunagu-relay --self-check: at start, the relay runs
 * tsunagu-turncheck's checks (tools/turncheck/tc_check.h, the same code and
 * wording) against itself, once per transport it listens on: UDP and TCP on
 * the first --listen, TLS on the first --tls-listen.
 *
 * What only the relay knows goes into the check: its own credentials (the
 * first --auth-secret mints a REST username "EXPIRY:self-check", else the
 * first --user), what it advertises (--external-ip, else its relay address)
 * as the expected relayed address, and the relay address a public
 * --external-ip stands for. The check's peer is a UDP socket on one of the
 * relay's own relayed ports (taken from the shared port pool), which the
 * peer policy lets in whatever it says about private or loopback peers.
 *
 * The check runs on a thread of its own and only talks to the relay over
 * its sockets, as any client does: the workers do no extra work, and a
 * failed check never stops the relay. Each verdict is one log line with
 * ctx "self-check" ("<url> <ok  |warn|FAIL> <step>: <detail>"), then a
 * summary line; the results are gauges on /metrics.
 *
 * Threads: new/start/free on the main thread; render on worker 0's thread
 * (the admin server), reading atomics the check's thread writes. */
#ifndef RLY_SELFCHECK_H
#define RLY_SELFCHECK_H

#include <stddef.h>

#include "rly_ports.h"
#include "rly_settings.h"
#include "rtc_addr.h"
#include "rtc_metrics.h"

typedef struct rly_selfcheck rly_selfcheck; /* opaque */

typedef struct {
    const rly_settings *s;    /* listeners and credentials: copied */
    const rly_cfg *cfg;       /* relay and advertised addresses: copied */
    const rtc_addr *listen;   /* s->listen parsed, s->listen.n of them: copied */
    const rtc_addr *tls_listen;
    rly_ports *ports;         /* the shared pool; must outlive the check */
} rly_selfcheck_params;

/* The plan of the check (nothing runs yet). NULL with err when it cannot be
 * made (no listener address to reach, no credential, out of memory). */
rly_selfcheck *rly_selfcheck_new(const rly_selfcheck_params *p, char *err, size_t errlen);
/* Start the check's thread: call once the workers serve. 0 or -errno. */
int rly_selfcheck_start(rly_selfcheck *sc);
/* The tsunagu_relay_self_check_* gauges (docs/relay.md). NULL is a no-op. */
void rly_selfcheck_render(const rly_selfcheck *sc, rtc_buf *b);
/* Stop the check at its next step (it may be waiting up to its timeout),
 * join the thread, wipe the credentials. NULL is a no-op. */
void rly_selfcheck_free(rly_selfcheck *sc);

#endif
