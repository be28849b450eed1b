/* sig_cluster_sub.c - the SUBSCRIBE connection of cluster mode (see
 * sig_cluster_sub.h). */
#include "sig_cluster_sub.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rtc_clock.h"
#include "rtc_err.h"
#include "rtc_log.h"
#include "sig_proto.h"

/* Stream entries read per XRANGE, and at most how many rounds: the stream
 * holds about --redis-stream-len entries (MAXLEN ~ may keep a little more). */
#define CATCHUP_COUNT 256
#define CATCHUP_ROUNDS 1024

void sig_sub_init(sig_sub *s, const sig_redis_ops *rops, int timeout_s,
                  void (*on_message)(void *ud, const sig_redis_reply *ch,
                                     const sig_redis_reply *pl),
                  void *ud)
{
    memset(s, 0, sizeof *s);
    s->rops = rops;
    s->timeout_s = timeout_s;
    s->on_message = on_message;
    s->ud = ud;
    sig_nameset_init(&s->keys);
}

void sig_sub_streams(sig_sub *s, const char *kp, sig_redis_conn *const *cmd)
{
    s->kp = kp;
    s->cmd = cmd;
}

void sig_sub_close(sig_sub *s)
{
    s->rops->close(s->conn);
    s->conn = NULL;
    sig_nameset_dispose(&s->keys);
    sig_nameset_init(&s->keys);
    if (s->pos)
        sig_stpos_new_conn(s->pos);
}

void sig_sub_dispose(sig_sub *s)
{
    sig_sub_close(s);
    sig_nameset_dispose(&s->keys);
    sig_stpos_free(s->pos);
    s->pos = NULL;
}

bool sig_sub_take(sig_sub *s, const char *room, const char *origin, json_t *o)
{
    return !s->pos || sig_stpos_take(s->pos, room, origin, o);
}

static bool subscribed(void *ud, const char *room)
{
    return sig_nameset_has(&((sig_sub *)ud)->keys, room);
}

void sig_sub_prune(sig_sub *s)
{
    if (s->pos)
        sig_stpos_prune(s->pos, subscribed, s);
}

int sig_sub_fd(const sig_sub *s) { return s->rops->fd(s->conn); }

/* A reply read on the connection. Sets *confirmed when it is the subscribe
 * confirmation of `want`. */
static void on_reply(sig_sub *s, sig_redis_reply *r, const char *want, bool *confirmed)
{
    if (r->type == SIG_RR_ARRAY && r->elements == 3 && r->element[0]->type == SIG_RR_STRING) {
        const char *kind = r->element[0]->str;
        if (!strcmp(kind, "message"))
            s->on_message(s->ud, r->element[1], r->element[2]);
        else if (!strcmp(kind, "subscribe") && want && r->element[1]->type == SIG_RR_STRING &&
                 !strcmp(r->element[1]->str, want))
            *confirmed = true;
    }
    sig_redis_reply_free(r);
}

/* Dispatch the replies already read (poll cannot see those). */
static int drain(sig_sub *s)
{
    sig_redis_reply *r;
    bool dummy = false;
    for (;;) {
        if (s->rops->buffered(s->conn, &r))
            return RTC_EMSG;
        if (!r)
            return 0;
        on_reply(s, r, NULL, &dummy);
    }
}

int sig_sub_read(sig_sub *s)
{
    if (s->rops->read(s->conn))
        return RTC_EMSG;
    return drain(s);
}

static int send2(sig_sub *s, const char *cmd, const char *channel)
{
    const char *argv[2] = {cmd, channel};
    size_t len[2] = {strlen(cmd), strlen(channel)};
    return s->rops->append(s->conn, 2, argv, len);
}

/* One command on the command connection: its reply, or NULL (lost). */
static sig_redis_reply *command(sig_sub *s, int argc, const char **argv)
{
    size_t len[8];
    sig_redis_reply *r = NULL;
    for (int i = 0; i < argc; i++)
        len[i] = strlen(argv[i]);
    if (!*s->cmd || s->rops->append(*s->cmd, argc, argv, len) || s->rops->get_reply(*s->cmd, &r))
        return NULL;
    return r;
}

/* One stream entry [id, [field, value, ...]] to on_message as the channel
 * copy it was published as: {"x":ID, + the message without its "{". false:
 * malformed (skipped), or out of memory. *id is its id when parsed. */
static bool replay(sig_sub *s, const sig_redis_reply *ch, const sig_redis_reply *en, sig_stid *id)
{
    const sig_redis_reply *f;
    sig_redis_reply *pl;
    char *text;
    size_t n;
    if (en->type != SIG_RR_ARRAY || en->elements != 2 || en->element[0]->type != SIG_RR_STRING ||
        !sig_stid_parse(en->element[0]->str, en->element[0]->len, id) ||
        (f = en->element[1])->type != SIG_RR_ARRAY || f->elements != 2 ||
        f->element[1]->type != SIG_RR_STRING || f->element[1]->len < 2 ||
        f->element[1]->str[0] != '{')
        return false;
    n = en->element[0]->len + f->element[1]->len + 16;
    if (!(text = malloc(n)))
        return false;
    snprintf(text, n, "{\"x\":\"%s\",%s", en->element[0]->str, f->element[1]->str + 1);
    pl = sig_redis_reply_str(SIG_RR_STRING, text, strlen(text));
    free(text);
    if (!pl)
        return false;
    s->on_message(s->ud, ch, pl);
    sig_redis_reply_free(pl);
    return true;
}

/* Just subscribed to room's channel (confirmed, nothing of it dispatched
 * yet): a room followed before gets what its stream took since (the node
 * was away), a new one notes where the stream is. 0, or RTC_EMSG. */
static int catch_up(sig_sub *s, const char *room, const char *channel)
{
    char key[SIG_ROOM_MAX + 64], from[SIG_STID_LEN + 1], count[16];
    sig_redis_reply *r, *ch;
    sig_stid last, id;
    uint64_t n = 0;
    size_t got = CATCHUP_COUNT;

    if (!s->kp)
        return 0; /* (no streams: the node channel) */
    if (!s->pos && !(s->pos = sig_stpos_new()))
        return -ENOMEM;
    snprintf(key, sizeof key, "%sst:%s", s->kp, room);
    if (!sig_stpos_last(s->pos, room, &last)) {
        const char *argv[] = {"XREVRANGE", key, "+", "-", "COUNT", "1"};
        sig_stid base = {0, 0};
        if (!(r = command(s, 6, argv)))
            return RTC_EMSG;
        if (r->type == SIG_RR_ARRAY && r->elements == 1 &&
            r->element[0]->type == SIG_RR_ARRAY && r->element[0]->elements >= 1 &&
            r->element[0]->element[0]->type == SIG_RR_STRING &&
            !sig_stid_parse(r->element[0]->element[0]->str, r->element[0]->element[0]->len, &base))
            base = (sig_stid){0, 0};
        sig_redis_reply_free(r);
        return sig_stpos_follow(s->pos, room, base) ? RTC_EMSG : 0;
    }
    if (!(ch = sig_redis_reply_str(SIG_RR_STRING, channel, strlen(channel))))
        return RTC_EMSG;
    snprintf(count, sizeof count, "%d", CATCHUP_COUNT);
    for (int round = 0; round < CATCHUP_ROUNDS && got == CATCHUP_COUNT; round++) {
        const char *argv[] = {"XRANGE", key, from, "+", "COUNT", count};
        from[0] = '(';
        sig_stid_fmt(last, from + 1);
        if (!(r = command(s, 6, argv))) {
            sig_redis_reply_free(ch);
            return RTC_EMSG;
        }
        got = r->type == SIG_RR_ARRAY ? r->elements : 0;
        for (size_t i = 0; i < got; i++) {
            id = last; /* (stays so when the entry's id is malformed) */
            n += replay(s, ch, r->element[i], &id);
            if (sig_stid_cmp(id, last) > 0)
                last = id; /* (also past an entry that could not be used) */
        }
        sig_redis_reply_free(r);
    }
    sig_redis_reply_free(ch);
    if (n) {
        sig_stpos_caught_up(s->pos, room, last);
        atomic_fetch_add(&s->replayed, n);
        RTC_LOG(RTC_LOG_INFO, room, "cluster: %llu messages read from the room's stream "
                "after the reconnection", (unsigned long long)n);
    }
    return 0;
}

int sig_sub_subscribe(sig_sub *s, const char *key, const char *channel)
{
    bool confirmed = false;
    uint64_t deadline = rtc_clock_mono_ms() + (uint64_t)s->timeout_s * 1000u;
    if (key && sig_nameset_has(&s->keys, key))
        return 0;
    if (send2(s, "SUBSCRIBE", channel))
        return RTC_EMSG;
    while (!confirmed) {
        sig_redis_reply *r;
        if (rtc_clock_mono_ms() > deadline || s->rops->get_reply(s->conn, &r))
            return RTC_EMSG;
        on_reply(s, r, channel, &confirmed);
    }
    if (key && catch_up(s, key, channel))
        return RTC_EMSG;
    if (drain(s))
        return RTC_EMSG;
    return key ? sig_nameset_add(&s->keys, key) : 0;
}

int sig_sub_unsubscribe(sig_sub *s, const char *key, const char *channel)
{
    sig_nameset_del(&s->keys, key);
    if (s->pos)
        sig_stpos_forget(s->pos, key);
    /* the confirmation is read (and ignored) with the channel traffic */
    if (send2(s, "UNSUBSCRIBE", channel))
        return RTC_EMSG;
    return s->rops->flush(s->conn);
}

bool sig_sub_has(const sig_sub *s, const char *key) { return sig_nameset_has(&s->keys, key); }
