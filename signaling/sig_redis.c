/* sig_redis.c - the hiredis adapter of cluster mode (see sig_redis.h): the
 * only file that includes hiredis. Blocking connections with a timeout;
 * every reply is copied into a sig_redis_reply so that no hiredis type
 * leaves this file. */
#include "sig_redis.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "rtc_err.h"

struct sig_redis_conn {
    redisContext *ctx;
};

/* ---- replies ---- */

void sig_redis_reply_free(sig_redis_reply *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->elements; i++)
        sig_redis_reply_free(r->element[i]);
    free(r->element);
    free(r->str);
    free(r);
}

sig_redis_reply *sig_redis_reply_str(sig_rr_type type, const char *s, size_t len)
{
    sig_redis_reply *r = calloc(1, sizeof *r);
    if (!r || !(r->str = malloc(len + 1))) {
        free(r);
        return NULL;
    }
    r->type = type;
    memcpy(r->str, s, len);
    r->str[len] = '\0';
    r->len = len;
    return r;
}

sig_redis_reply *sig_redis_reply_int(long long v)
{
    sig_redis_reply *r = calloc(1, sizeof *r);
    if (r) {
        r->type = SIG_RR_INTEGER;
        r->integer = v;
    }
    return r;
}

sig_redis_reply *sig_redis_reply_arr(sig_redis_reply **el, size_t n)
{
    sig_redis_reply *r = calloc(1, sizeof *r);
    if (!r || !(r->element = calloc(n + 1, sizeof *r->element))) {
        for (size_t i = 0; i < n; i++)
            sig_redis_reply_free(el[i]);
        free(r);
        return NULL;
    }
    r->type = SIG_RR_ARRAY;
    for (size_t i = 0; i < n; i++)
        r->element[i] = el[i];
    r->elements = n;
    return r;
}

/* A hiredis reply as ours (NULL on ENOMEM). */
static sig_redis_reply *copy_reply(const redisReply *h)
{
    sig_redis_reply *r;
    switch (h->type) {
    case REDIS_REPLY_STRING:
        return sig_redis_reply_str(SIG_RR_STRING, h->str, h->len);
    case REDIS_REPLY_STATUS:
        return sig_redis_reply_str(SIG_RR_STATUS, h->str, h->len);
    case REDIS_REPLY_ERROR:
        return sig_redis_reply_str(SIG_RR_ERROR, h->str, h->len);
    case REDIS_REPLY_INTEGER:
        return sig_redis_reply_int(h->integer);
    case REDIS_REPLY_ARRAY:
        if (!(r = calloc(1, sizeof *r)) || !(r->element = calloc(h->elements + 1, sizeof *r->element))) {
            free(r);
            return NULL;
        }
        r->type = SIG_RR_ARRAY;
        for (size_t i = 0; i < h->elements; i++) {
            if (!(r->element[i] = copy_reply(h->element[i]))) {
                sig_redis_reply_free(r);
                return NULL;
            }
            r->elements++;
        }
        return r;
    case REDIS_REPLY_NIL:
        if ((r = calloc(1, sizeof *r)))
            r->type = SIG_RR_NIL;
        return r;
    default:
        if ((r = calloc(1, sizeof *r)))
            r->type = SIG_RR_OTHER;
        return r;
    }
}

static bool reply_ok(const redisReply *r) { return r && r->type != REDIS_REPLY_ERROR; }

/* ---- the ops ---- */

static sig_redis_conn *h_dial(void *ud, const sig_redis_url *url, const char *where, int timeout_s,
                              char *err, size_t errlen)
{
    struct timeval tv = {timeout_s, 0};
    redisContext *r = url->path[0] ? redisConnectUnixWithTimeout(url->path, tv)
                                   : redisConnectWithTimeout(url->host, url->port, tv);
    redisReply *rep = NULL;
    sig_redis_conn *c;
    char db[16];

    (void)ud;
    if (!r || r->err) {
        snprintf(err, errlen, "cannot connect to %s: %s", where, r ? r->errstr : "out of memory");
        goto fail;
    }
    if (redisSetTimeout(r, tv) != REDIS_OK || (!url->path[0] && redisEnableKeepAlive(r) != REDIS_OK)) {
        snprintf(err, errlen, "%s: cannot set socket options", where);
        goto fail;
    }
    if (url->pass[0]) {
        const char *a3[] = {"AUTH", url->user, url->pass};
        const char *a2[] = {"AUTH", url->pass};
        size_t l3[] = {4, strlen(url->user), strlen(url->pass)}, l2[] = {4, strlen(url->pass)};
        rep = url->user[0] ? redisCommandArgv(r, 3, a3, l3) : redisCommandArgv(r, 2, a2, l2);
        if (!reply_ok(rep)) {
            /* Redis's reply names no secret ("WRONGPASS invalid username-password pair") */
            snprintf(err, errlen, "%s: AUTH failed: %s", where, rep ? rep->str : r->errstr);
            goto fail;
        }
        freeReplyObject(rep);
        rep = NULL;
    }
    snprintf(db, sizeof db, "%d", url->db);
    {
        const char *a[] = {"SELECT", db};
        size_t l[] = {6, strlen(db)};
        rep = redisCommandArgv(r, 2, a, l);
        if (!reply_ok(rep)) {
            snprintf(err, errlen, "%s: SELECT %d failed: %s", where, url->db,
                     rep ? rep->str : r->errstr);
            goto fail;
        }
        freeReplyObject(rep);
        rep = NULL;
    }
    if (!(c = calloc(1, sizeof *c))) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    c->ctx = r;
    return c;
fail:
    if (rep)
        freeReplyObject(rep);
    if (r)
        redisFree(r);
    return NULL;
}

static void h_close(sig_redis_conn *c)
{
    if (!c)
        return;
    redisFree(c->ctx);
    free(c);
}

static int h_fd(sig_redis_conn *c) { return c->ctx->fd; }

static int h_append(sig_redis_conn *c, int argc, const char **argv, const size_t *len)
{
    return redisAppendCommandArgv(c->ctx, argc, argv, len) == REDIS_OK ? 0 : RTC_EMSG;
}

static int h_flush(sig_redis_conn *c)
{
    int done = 0;
    while (!done)
        if (redisBufferWrite(c->ctx, &done) != REDIS_OK)
            return RTC_EMSG;
    return 0;
}

/* A hiredis reply (or none) handed over as ours. */
static int take(void *h, sig_redis_reply **out)
{
    *out = NULL;
    if (!h)
        return 0;
    *out = copy_reply(h);
    freeReplyObject(h);
    return *out ? 0 : -ENOMEM;
}

static int h_get_reply(sig_redis_conn *c, sig_redis_reply **out)
{
    void *r = NULL;
    *out = NULL;
    if (redisGetReply(c->ctx, &r) != REDIS_OK || !r)
        return RTC_EMSG;
    return take(r, out) || !*out ? RTC_EMSG : 0;
}

static int h_read(sig_redis_conn *c)
{
    return redisBufferRead(c->ctx) == REDIS_OK ? 0 : RTC_EMSG;
}

static int h_buffered(sig_redis_conn *c, sig_redis_reply **out)
{
    void *r = NULL;
    *out = NULL;
    if (redisGetReplyFromReader(c->ctx, &r) != REDIS_OK)
        return RTC_EMSG;
    return take(r, out) ? RTC_EMSG : 0;
}

const sig_redis_ops sig_redis_hiredis = {
    .dial = h_dial,
    .close = h_close,
    .fd = h_fd,
    .append = h_append,
    .flush = h_flush,
    .get_reply = h_get_reply,
    .read = h_read,
    .buffered = h_buffered,
    .ud = NULL,
};
