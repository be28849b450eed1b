/* sig_cluster_sub.c - the SUBSCRIBE connection of cluster mode (see
 * sig_cluster_sub.h). */
#include "sig_cluster_sub.h"

#include <string.h>

#include "rtc_clock.h"
#include "rtc_err.h"

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

void sig_sub_close(sig_sub *s)
{
    s->rops->close(s->conn);
    s->conn = NULL;
    sig_nameset_dispose(&s->keys);
    sig_nameset_init(&s->keys);
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
    if (drain(s))
        return RTC_EMSG;
    return key ? sig_nameset_add(&s->keys, key) : 0;
}

int sig_sub_unsubscribe(sig_sub *s, const char *key, const char *channel)
{
    sig_nameset_del(&s->keys, key);
    /* the confirmation is read (and ignored) with the channel traffic */
    if (send2(s, "UNSUBSCRIBE", channel))
        return RTC_EMSG;
    return s->rops->flush(s->conn);
}

bool sig_sub_has(const sig_sub *s, const char *key) { return sig_nameset_has(&s->keys, key); }
