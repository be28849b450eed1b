/* sig_redis.h - the Redis connection under cluster mode, as a small table of
 * functions (sig_redis_ops), so that the cluster logic (sig_cluster.c) never
 * sees a hiredis type and tests can hand it a fake Redis.
 *
 * sig_redis.c is the only file that includes hiredis: sig_redis_hiredis is
 * the real adapter, a thin one (blocking connections with a timeout, AUTH and
 * SELECT on connect, replies copied into sig_redis_reply). Decisions (what to
 * send, what a reply means) stay in sig_cluster.c and sig_handover.c.
 *
 * Threads: a connection is used by one thread at a time (the cluster's Redis
 * thread); the ops themselves keep no state of their own. */
#ifndef SIG_REDIS_H
#define SIG_REDIS_H

#include <stdbool.h>
#include <stddef.h>

#include "sig_conf.h"

typedef enum {
    SIG_RR_STRING = 0,
    SIG_RR_ARRAY,
    SIG_RR_INTEGER,
    SIG_RR_NIL,
    SIG_RR_STATUS,
    SIG_RR_ERROR,
    SIG_RR_OTHER /* (doubles, maps... of RESP3: never asked for) */
} sig_rr_type;

/* One reply, owned by whoever got it (sig_redis_reply_free). */
typedef struct sig_redis_reply {
    sig_rr_type type;
    long long integer;               /* INTEGER */
    char *str;                       /* STRING, STATUS, ERROR: NUL-terminated, len bytes */
    size_t len;
    struct sig_redis_reply **element; /* ARRAY */
    size_t elements;
} sig_redis_reply;

void sig_redis_reply_free(sig_redis_reply *r); /* NULL is a no-op */
/* Replies made by hand (fakes in tests): NULL on ENOMEM. _arr takes the
 * elements (freed with it, also on failure). */
sig_redis_reply *sig_redis_reply_str(sig_rr_type type, const char *s, size_t len);
sig_redis_reply *sig_redis_reply_int(long long v);
sig_redis_reply *sig_redis_reply_arr(sig_redis_reply **el, size_t n);

typedef struct sig_redis_conn sig_redis_conn; /* opaque: the adapter's */

typedef struct sig_redis_ops {
    /* Connect, authenticate (url user/pass) and SELECT url db; every later
     * call has the timeout_s bound. NULL with the reason in err, which never
     * names the password (`where` is the url without credentials). */
    sig_redis_conn *(*dial)(void *ud, const sig_redis_url *url, const char *where,
                            int timeout_s, char *err, size_t errlen);
    void (*close)(sig_redis_conn *c); /* NULL is a no-op */
    int (*fd)(sig_redis_conn *c);     /* for poll: readable = read() has something */
    /* Queue one command (argv-style, binary safe); nothing is sent yet.
     * 0, or RTC_EMSG. */
    int (*append)(sig_redis_conn *c, int argc, const char **argv, const size_t *len);
    /* Send what was appended (all of it). 0, or RTC_EMSG. */
    int (*flush)(sig_redis_conn *c);
    /* Send what was appended, then wait for the next reply. 0 with *out
     * (the caller's), or RTC_EMSG: the connection is lost. */
    int (*get_reply)(sig_redis_conn *c, sig_redis_reply **out);
    /* Take in what the socket has (poll said readable). 0, or RTC_EMSG. */
    int (*read)(sig_redis_conn *c);
    /* The next reply already read, without blocking: 0 with *out (NULL
     * when none is complete), or RTC_EMSG. */
    int (*buffered)(sig_redis_conn *c, sig_redis_reply **out);
    void *ud; /* passed to dial */
} sig_redis_ops;

/* The real thing: hiredis, blocking connections. */
extern const sig_redis_ops sig_redis_hiredis;

#endif
