/* sig_mq.c - members' message streams in Redis (see sig_mq.h).
 *
 * The entry id is `0-SEQ`: the member's own number, so a reader asks for
 * "after N" with an exclusive XRANGE (`(0-N`). Cost: one more pipelined
 * script per numbered message. */
#include "sig_mq.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rtc_err.h"

/* KEYS[1] the member's stream; ARGV: maxlen, seq, text, ttl, x (the
 * room-stream entry the message came from: field x, for a claim). No expiry
 * while the member is attached: the stream lives as long as its registration
 * (deleted by its leave or its node's reap; sig_handover_token_ttl sets a TTL
 * when it is detached, which each message then renews). The same
 * number again (a command sent twice): nothing. A lower one: the member
 * moved to another node, which numbers on after what the client said it
 * processed (resume "last"); what the old node numbered past that was never
 * processed, so the stream starts over there. */
static const char LUA_MQ_ADD[] =
    "local id = '0-' .. ARGV[2]\n"
    "local top = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)[1]\n"
    "if top and top[1] == id then return 0 end\n"
    "if top and tonumber(string.sub(top[1], 3)) >= tonumber(ARGV[2]) then\n"
    "  redis.call('DEL', KEYS[1])\n"
    "end\n"
    "if ARGV[5] ~= '' then\n"
    "  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], id, 'm', ARGV[3], 'x', ARGV[5])\n"
    "else\n"
    "  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], id, 'm', ARGV[3])\n"
    "end\n"
    "if redis.call('TTL', KEYS[1]) > 0 then redis.call('EXPIRE', KEYS[1], ARGV[4]) end\n"
    "return 1\n";

struct sig_mq {
    sig_cluster *c;
    sig_mq_params p;
    sig_cluster_hooks hooks;
    atomic_uint_fast64_t refused;
};

typedef struct {
    uint64_t seq;
    char *text;
    char x[48]; /* the room-stream entry it came from, or "" */
    char id[];
} add_op;

static int hook_append(void *ud, void *arg)
{
    sig_mq *q = ud;
    const add_op *k = arg;
    char key[128], maxlen[16], seq[24], ttl[16];
    const char *argv[] = {"EVAL", LUA_MQ_ADD, "1", key, maxlen, seq, k->text, ttl, k->x};
    snprintf(key, sizeof key, "%smq:%s", sig_cluster_key_prefix(q->c), k->id);
    snprintf(maxlen, sizeof maxlen, "%" PRIu32, q->p.maxlen);
    snprintf(seq, sizeof seq, "%" PRIu64, k->seq);
    snprintf(ttl, sizeof ttl, "%" PRIu32, q->p.ttl_s);
    return sig_cluster_append(q->c, (int)(sizeof argv / sizeof argv[0]), argv);
}

static int hook_replied(void *ud, void *arg, const sig_redis_reply *r)
{
    (void)ud;
    (void)arg;
    (void)r; /* an error reply (Redis refusing the write) is not retried */
    return 0;
}

static void hook_refused(void *ud, void *arg)
{
    sig_mq *q = ud;
    (void)arg;
    atomic_fetch_add(&q->refused, 1);
}

static void op_free(void *arg) { free(arg); }

sig_mq *sig_mq_new(sig_cluster *c, sig_hub *hub, const sig_mq_params *p)
{
    sig_mq *q = calloc(1, sizeof *q);
    if (!q)
        return NULL;
    q->c = c;
    q->p = *p;
    atomic_init(&q->refused, 0);
    q->hooks = (sig_cluster_hooks){.ud = q,
                                   .append = hook_append,
                                   .replied = hook_replied,
                                   .refused = hook_refused,
                                   .free_arg = op_free};
    if (sig_cluster_add_hooks(c, &q->hooks)) {
        free(q);
        return NULL;
    }
    sig_hub_set_queued(hub, sig_mq_queued, q);
    return q;
}

void sig_mq_free(sig_mq *q) { free(q); }

void sig_mq_queued(void *ud, const char *id, uint64_t seq, const char *text, const char *x)
{
    sig_mq *q = ud;
    size_t il = strlen(id), tl = strlen(text);
    add_op *k = malloc(sizeof *k + il + 1 + tl + 1);
    if (k)
        snprintf(k->x, sizeof k->x, "%s", x);
    if (!k) {
        atomic_fetch_add(&q->refused, 1);
        return;
    }
    k->seq = seq;
    memcpy(k->id, id, il + 1);
    k->text = k->id + il + 1;
    memcpy(k->text, text, tl + 1);
    if (sig_cluster_submit(q->c, &q->hooks, k, true, false))
        atomic_fetch_add(&q->refused, 1);
}

uint64_t sig_mq_refused(sig_mq *q) { return q ? atomic_load(&q->refused) : 0; }
