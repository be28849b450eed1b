/* test_sig_cluster.c - the cluster layer (sig_cluster.c, with sig_handover.c's
 * hooks registered) against a fake Redis adapter (sig_redis_ops): no Redis,
 * no socket. The fake answers every command at once, records what was sent,
 * and lets the test inject pub/sub messages as if other nodes had published
 * them. Checks: a signal published to a room channel by another node reaches
 * the lws side as an event (and wakes it); our own echo does not; an event
 * the cluster does not know goes to a registered hook; a hand-over request
 * reaches sig_handover's hook and comes out as its event; publishes go out
 * on the room's channel; junk is dropped and counted. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rtc_err.h"
#include "sig_cluster.h"
#include "sig_cluster_lua.h"
#include "sig_handover.h"
#include "sig_redis.h"
#include "tap.h"

/* ---- the fake Redis ---- */

#define QMAX 256

struct sig_redis_conn {
    pthread_mutex_t mu;
    sig_redis_reply *q[QMAX]; /* replies and pushed messages, in order */
    size_t head, n;
    int pipe[2]; /* readable when a message was injected */
};

typedef struct {
    pthread_mutex_t mu;
    sig_redis_conn *cmd, *sub;
    int dials;
    char sent[64][512]; /* "CMD arg1 ..." (truncated) of the command connection */
    size_t nsent;
} fake;

static fake F;

static void push(sig_redis_conn *c, sig_redis_reply *r)
{
    pthread_mutex_lock(&c->mu);
    if (r && c->n < QMAX)
        c->q[(c->head + c->n++) % QMAX] = r;
    else
        sig_redis_reply_free(r);
    pthread_mutex_unlock(&c->mu);
}

static sig_redis_reply *pop(sig_redis_conn *c)
{
    sig_redis_reply *r = NULL;
    pthread_mutex_lock(&c->mu);
    if (c->n) {
        r = c->q[c->head];
        c->head = (c->head + 1) % QMAX;
        c->n--;
    }
    pthread_mutex_unlock(&c->mu);
    return r;
}

static sig_redis_reply *str(const char *s) { return sig_redis_reply_str(SIG_RR_STRING, s, strlen(s)); }

static sig_redis_reply *triple(const char *kind, const char *ch, sig_redis_reply *third)
{
    sig_redis_reply *el[3] = {str(kind), str(ch), third};
    return sig_redis_reply_arr(el, 3);
}

static sig_redis_conn *f_dial(void *ud, const sig_redis_url *url, const char *where, int timeout_s,
                              char *err, size_t errlen)
{
    sig_redis_conn *c = calloc(1, sizeof *c);
    (void)ud, (void)url, (void)where, (void)timeout_s, (void)err, (void)errlen;
    pthread_mutex_init(&c->mu, NULL);
    if (pipe(c->pipe)) {
        free(c);
        return NULL;
    }
    pthread_mutex_lock(&F.mu);
    if (F.dials++ % 2 == 0) /* sig_cluster dials the command connection first */
        F.cmd = c;
    else
        F.sub = c;
    pthread_mutex_unlock(&F.mu);
    return c;
}

static void f_close(sig_redis_conn *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&F.mu);
    if (F.cmd == c)
        F.cmd = NULL;
    if (F.sub == c)
        F.sub = NULL;
    pthread_mutex_unlock(&F.mu);
    while (c->n)
        sig_redis_reply_free(pop(c));
    close(c->pipe[0]);
    close(c->pipe[1]);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

static int f_fd(sig_redis_conn *c) { return c->pipe[0]; }

/* Answer at once, as Redis would: scripts by which script they are. */
static int f_append(sig_redis_conn *c, int argc, const char **argv, const size_t *len)
{
    sig_redis_reply *r;
    (void)len;
    if (c == F.cmd) {
        pthread_mutex_lock(&F.mu);
        if (F.nsent < 64) {
            size_t o = 0;
            for (int i = 0; i < argc && o < 500; i++)
                o += (size_t)snprintf(F.sent[F.nsent] + o, sizeof F.sent[0] - o, "%s%s",
                                      i ? " " : "", argv[i][0] && strlen(argv[i]) > 200
                                                         ? "(script)"
                                                         : argv[i]);
            F.nsent++;
        }
        pthread_mutex_unlock(&F.mu);
    }
    if (!strcmp(argv[0], "SUBSCRIBE") || !strcmp(argv[0], "UNSUBSCRIBE")) {
        r = triple(!strcmp(argv[0], "SUBSCRIBE") ? "subscribe" : "unsubscribe", argv[1],
                   sig_redis_reply_int(1));
    } else if (!strcmp(argv[0], "EVAL") && argv[1] == SIG_LUA_REAP) {
        r = sig_redis_reply_arr(NULL, 0);
    } else if (!strcmp(argv[0], "EVAL") && argv[1] == SIG_LUA_JOIN) {
        sig_redis_reply *el[2] = {sig_redis_reply_int(1), sig_redis_reply_arr(NULL, 0)};
        r = sig_redis_reply_arr(el, 2);
    } else if (!strcmp(argv[0], "EVAL") || !strcmp(argv[0], "PUBLISH")) {
        r = sig_redis_reply_int(1);
    } else if (!strcmp(argv[0], "HGETALL")) {
        r = sig_redis_reply_arr(NULL, 0);
    } else {
        r = sig_redis_reply_str(SIG_RR_STATUS, "OK", 2);
    }
    push(c, r);
    return 0;
}

static int f_flush(sig_redis_conn *c)
{
    (void)c;
    return 0;
}

static int f_get_reply(sig_redis_conn *c, sig_redis_reply **out)
{
    return (*out = pop(c)) ? 0 : RTC_EMSG;
}

static int f_read(sig_redis_conn *c)
{
    char b[64];
    ssize_t n = read(c->pipe[0], b, sizeof b);
    (void)n;
    return 0;
}

static int f_buffered(sig_redis_conn *c, sig_redis_reply **out)
{
    *out = pop(c);
    return 0;
}

static const sig_redis_ops fake_ops = {
    .dial = f_dial, .close = f_close, .fd = f_fd, .append = f_append, .flush = f_flush,
    .get_reply = f_get_reply, .read = f_read, .buffered = f_buffered};

/* Another node published payload on channel. */
static void inject(const char *channel, const char *payload)
{
    char one = 1;
    ssize_t n;
    pthread_mutex_lock(&F.mu);
    push(F.sub, triple("message", channel, str(payload)));
    n = write(F.sub->pipe[1], &one, 1);
    (void)n;
    pthread_mutex_unlock(&F.mu);
}

static bool sent_has(const char *what)
{
    bool found = false;
    pthread_mutex_lock(&F.mu);
    for (size_t i = 0; i < F.nsent && !found; i++)
        found = strstr(F.sent[i], what) != NULL;
    pthread_mutex_unlock(&F.mu);
    return found;
}

/* ---- the lws side and a test hook ---- */

static atomic_int wakes, hooked;

static void wake(void *ud)
{
    (void)ud;
    atomic_fetch_add(&wakes, 1);
}

static bool test_channel(void *ud, const char *room, const char *node, bool own, const char *ev,
                         json_t *o)
{
    (void)ud, (void)node, (void)own, (void)o;
    if (strcmp(ev, "xyz") || strcmp(room, "room"))
        return false;
    atomic_fetch_add(&hooked, 1);
    return true;
}

static void nap(void)
{
    struct timespec ts = {0, 10 * 1000 * 1000};
    nanosleep(&ts, NULL);
}

/* The next event within 2 s, or NULL. */
static sig_cev *next_event(sig_cluster *c)
{
    for (int i = 0; i < 200; i++) {
        sig_cev *e = sig_cluster_poll(c);
        if (e)
            return e;
        nap();
    }
    return NULL;
}

int main(void)
{
    sig_cluster_params p = {.url = "redis://127.0.0.1:6379/0", .max_room_size = 8,
                            .node_ttl_s = 5, .queue = 64, .max_payload = 4096,
                            .wake = wake, .redis = &fake_ops};
    sig_cluster_hooks th = {.channel = test_channel};
    sig_handover_params hp = {.queue_msgs = 64, .queue_bytes = 65536};
    sig_cluster *c;
    sig_handover *ho;
    sig_cluster_stats st;
    sig_cev *e;
    char err[256], ch[256], msg[512];
    const char *me;
    uint64_t dropped;
    json_t *data;

    pthread_mutex_init(&F.mu, NULL);
    ok(!sig_cluster_new(&p, &c, err, sizeof err), "cluster made");
    ok(!sig_cluster_add_hooks(c, &th), "test hook registered");
    ok((ho = sig_handover_new(c, &hp)) != NULL, "hand-over registers its hooks");
    ok(!sig_cluster_start(c, err, sizeof err), "started against the fake");
    ok(sig_cluster_up(c), "up");
    ok(sent_has("EVAL (script) 4 tsu:nodes"), "registered with the resync script");
    me = sig_cluster_node(c);

    /* a join: Redis's answer comes back as JOINED */
    ok(!sig_cluster_join(c, 1, "room", "id1", "alice", "tok1"), "join queued");
    e = next_event(c);
    ok(e && e->kind == SIG_CEV_JOINED && e->serial == 1 && e->result == SIG_OK, "joined");
    sig_cev_free(e);

    /* a signal another node published to the room's channel */
    sig_cluster_channel(c, "room", ch, sizeof ch);
    ok(!strcmp(ch, "tsu:0:ch:room"), "the room's channel carries the database");
    atomic_store(&wakes, 0);
    inject(ch, "{\"n\":\"00000000000000aa\",\"e\":\"sig\",\"from\":\"peer1\",\"to\":\"id1\","
               "\"data\":{\"x\":1}}");
    e = next_event(c);
    ok(e && e->kind == SIG_CEV_SIGNAL, "the signal reaches the lws side");
    ok(e && !strcmp(e->id, "peer1") && !strcmp(e->to, "id1") && !strcmp(e->room, "room") &&
           !strcmp(e->node, "00000000000000aa") && !e->own,
       "from, to, room and node as published");
    ok(e && json_integer_value(json_object_get(e->data, "x")) == 1, "with its data");
    ok(atomic_load(&wakes) > 0, "and the lws side was woken");
    sig_cev_free(e);

    /* our own echo is not delivered twice (no hand-over waits in the room) */
    snprintf(msg, sizeof msg,
             "{\"n\":\"%s\",\"e\":\"bc\",\"from\":\"id1\",\"data\":{}}", me);
    inject(ch, msg);
    inject(ch, "{\"n\":\"00000000000000aa\",\"e\":\"bc\",\"from\":\"peer1\",\"data\":{}}");
    e = next_event(c);
    ok(e && e->kind == SIG_CEV_BROADCAST && !strcmp(e->id, "peer1"),
       "our own broadcast dropped, the other node's delivered");
    sig_cev_free(e);

    /* an event the cluster does not know goes to the hooks */
    inject(ch, "{\"n\":\"00000000000000aa\",\"e\":\"xyz\"}");
    for (int i = 0; i < 200 && !atomic_load(&hooked); i++)
        nap();
    is_int(atomic_load(&hooked), 1, "the registered channel hook got it");

    /* a hand-over request for our member: sig_handover's hook answers it
     * with its event */
    snprintf(msg, sizeof msg,
             "{\"n\":\"00000000000000aa\",\"e\":\"ho\",\"id\":\"id1\",\"to\":\"%s\",\"h\":\"%064d\","
             "\"p\":\"%064d\",\"rq\":5}",
             me, 0, 0);
    inject(ch, msg);
    e = next_event(c);
    ok(e && e->kind == SIG_CEV_HO_REQUEST && e->serial == 5 && !strcmp(e->id, "id1") &&
           !strcmp(e->node, "00000000000000aa"),
       "the hand-over hook turned the request into its event");
    sig_cev_free(e);

    /* junk is dropped and counted, never delivered */
    sig_cluster_get_stats(c, &st);
    dropped = st.dropped;
    inject(ch, "not json");
    inject(ch, "{\"n\":\"00000000000000aa\",\"e\":\"nope\"}");
    inject(ch, "{\"n\":\"00000000000000aa\",\"e\":\"sig\",\"from\":\"p\"}");
    for (int i = 0; i < 200 && st.dropped < dropped + 3; i++) {
        nap();
        sig_cluster_get_stats(c, &st);
    }
    is_int(st.dropped, dropped + 3, "three junk messages counted");
    ok(sig_cluster_poll(c) == NULL, "and none delivered");

    /* a signal for a member on another node goes out on the room's channel */
    data = json_pack("{s:i}", "y", 2);
    ok(!sig_cluster_publish(c, "room", "peer1", "id1", data), "publish queued");
    json_decref(data);
    for (int i = 0; i < 200 && !sent_has("1 tsu:st:room tsu:0:ch:room"); i++)
        nap();
    ok(sent_has("EVAL (script) 1 tsu:st:room tsu:0:ch:room {\"n\":"),
       "into the room's stream and out on its channel (one script)");
    ok(sent_has("\"q\":1,"), "numbered");
    ok(sent_has("\"e\":\"sig\""), "as a signal");

    sig_cluster_leave(c, "room", "id1");
    sig_cluster_free(c);
    sig_handover_free(ho);
    ok(F.cmd == NULL && F.sub == NULL, "both connections closed");
    pthread_mutex_destroy(&F.mu);
    return done_testing();
}
