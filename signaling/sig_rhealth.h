/* sig_rhealth.h - the relays' /healthz as the status page shows it: for each
 * --relay-healthz URL (http://IP:PORT/PATH, a relay's metrics listener), a
 * GET every SIG_RHEALTH_PERIOD_US with a SIG_RHEALTH_TIMEOUT_US deadline,
 * and the last answer: "ok", "unhealthy: 503 draining", "unreachable: ...",
 * "timeout", or "not checked yet".
 *
 * Never blocks: non-blocking sockets stepped from the caller's tick (poll
 * with a zero timeout); literal IP addresses only, so no DNS lookup can
 * stall the loop. At most SIG_RHEALTH_MAX URLs. One thread: the lws service
 * thread. */
#ifndef SIG_RHEALTH_H
#define SIG_RHEALTH_H

#include <stddef.h>
#include <stdint.h>

#include "rtc_conf.h"

#define SIG_RHEALTH_MAX 32
#define SIG_RHEALTH_PERIOD_US 5000000
#define SIG_RHEALTH_TIMEOUT_US 2000000

typedef struct sig_rhealth sig_rhealth;

typedef struct {
    const char *url;   /* as configured */
    const char *host;  /* the address part, e.g. "198.51.100.7" or "2001:db8::7" */
    const char *state; /* see the header comment */
    uint64_t checked_wall_s; /* 0: not yet */
} sig_rhealth_info;

sig_rhealth *sig_rhealth_new(void);      /* NULL on ENOMEM */
/* The same with another period and deadline (the fleet's placement checks
 * every second: a dead relay must get no new room within 3 s). */
sig_rhealth *sig_rhealth_new_every(uint64_t period_us, uint64_t timeout_us);
void sig_rhealth_free(sig_rhealth *h);   /* NULL is a no-op; closes what is open */

/* The URLs to check (start, SIGHUP); a URL still listed keeps its state.
 * Invalid ones are left out (the conf check refused them already). */
void sig_rhealth_set(sig_rhealth *h, const rtc_strlist *urls);

/* Step every check; cheap when nothing is due. */
void sig_rhealth_tick(sig_rhealth *h, uint64_t now_us);

size_t sig_rhealth_count(const sig_rhealth *h);
void sig_rhealth_get(const sig_rhealth *h, size_t i, sig_rhealth_info *out);

#endif
