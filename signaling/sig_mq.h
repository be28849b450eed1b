/* sig_mq.h - members' message streams in Redis (cluster mode): every
 * numbered message a member gets (sig_room.h "seq") is also appended to
 * `tsu:mq:ID`, so a member whose node crashed can resume elsewhere and get
 * what it had not processed (docs/cluster.md "A node's crash"). */
#ifndef SIG_MQ_H
#define SIG_MQ_H

#include <stdint.h>

#include "sig_cluster.h"
#include "sig_room.h"

typedef struct sig_mq sig_mq;

typedef struct {
    uint32_t maxlen; /* entries kept per member (about: MAXLEN ~) */
    uint32_t ttl_s;  /* the key expires this long after its last entry */
} sig_mq_params;

/* Before sig_cluster_start (registers a hook table), and turns numbering on
 * in hub. NULL on ENOMEM / no hook slot. */
sig_mq *sig_mq_new(sig_cluster *c, sig_hub *hub, const sig_mq_params *p);
void sig_mq_free(sig_mq *q); /* after sig_cluster_free */
/* The hub's hook (sig_hub_queued_fn, ud = the sig_mq): queue the XADD,
 * pipelined; never blocks. Refused (Redis down, queue full): counted. */
void sig_mq_queued(void *ud, const char *id, uint64_t seq, const char *text, const char *x);
uint64_t sig_mq_refused(sig_mq *q); /* appends that never reached Redis */

#endif
