/* sig_fleet_src.c - the fleet's report sources (see sig_fleet_src.h). */
#include "sig_fleet_src.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rtc_clock.h"
#include "rtc_err.h"
#include "rtc_log.h"
#include "sig_conf.h"

#define CANARY_KEY "tsunagu:fleet:canary"
#define SCAN_TURNS 64   /* SCAN calls per read: 64 x COUNT 256 entries at most */
#define MAX_PENDING 32  /* queued share writes */

static bool field_ok(const char *s, size_t n, size_t cap)
{
    if (n == 0 || n >= cap)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= ' ' || s[i] == '"' || s[i] == '\\' || s[i] == 0x7f)
            return false;
    return true;
}

/* ---- the registry thread ---- */

struct sig_fleet_src {
    const sig_redis_ops *ops;
    sig_redis_url url;
    char where[300];
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
    /* queued writes (under mu): HSETNX for the initial ones */
    char pgen[MAX_PENDING][SIG_FLEET_NAME_MAX];
    unsigned ppct[MAX_PENDING];
    bool pnx[MAX_PENDING];
    uint64_t pseq[MAX_PENDING]; /* the put's number (0: an initial HSETNX) */
    size_t npending;
    /* this node's puts: the last one's number, the highest written; a
     * snapshot read before `queued` was written must not undo it */
    uint64_t queued, written;
    /* the snapshot (under mu) */
    sig_fleet_report *snap;
    size_t nsnap;
    char sgen[SIG_FLEET_MAX_CANARY][SIG_FLEET_NAME_MAX];
    unsigned spct[SIG_FLEET_MAX_CANARY];
    size_t nscanary;
    uint64_t snap_written; /* `written` when the snapshot's read began */
    bool fresh, up;
    /* the thread's own */
    sig_redis_conn *conn;
    bool warned;
};

static sig_redis_reply *cmd(sig_fleet_src *s, int argc, const char **argv)
{
    size_t len[8];
    sig_redis_reply *r = NULL;
    for (int i = 0; i < argc; i++)
        len[i] = strlen(argv[i]);
    if (s->ops->append(s->conn, argc, argv, len) || s->ops->get_reply(s->conn, &r)) {
        s->ops->close(s->conn);
        s->conn = NULL;
        return NULL;
    }
    return r;
}

/* Write the queued shares. false: the connection is lost. */
static bool flush_writes(sig_fleet_src *s)
{
    for (;;) {
        char g[SIG_FLEET_NAME_MAX], pct[8];
        bool nx;
        uint64_t seq;
        sig_redis_reply *r;
        pthread_mutex_lock(&s->mu);
        if (!s->npending) {
            pthread_mutex_unlock(&s->mu);
            return true;
        }
        memcpy(g, s->pgen[0], sizeof g);
        snprintf(pct, sizeof pct, "%u", s->ppct[0]);
        nx = s->pnx[0];
        seq = s->pseq[0];
        pthread_mutex_unlock(&s->mu);
        if (!(r = cmd(s, 4, (const char *[]){nx ? "HSETNX" : "HSET", CANARY_KEY, g, pct})))
            return false;
        sig_redis_reply_free(r);
        pthread_mutex_lock(&s->mu);
        memmove(&s->pgen[0], &s->pgen[1], (s->npending - 1) * sizeof s->pgen[0]);
        memmove(&s->ppct[0], &s->ppct[1], (s->npending - 1) * sizeof s->ppct[0]);
        memmove(&s->pnx[0], &s->pnx[1], (s->npending - 1) * sizeof s->pnx[0]);
        memmove(&s->pseq[0], &s->pseq[1], (s->npending - 1) * sizeof s->pseq[0]);
        s->npending--;
        if (seq > s->written)
            s->written = seq;
        pthread_mutex_unlock(&s->mu);
    }
}

/* Every registry entry's value appended to *v. false: connection lost. */
static bool read_relays(sig_fleet_src *s, sig_fleet_report **v, size_t *n)
{
    char cursor[32] = "0";
    for (int turn = 0; turn < SCAN_TURNS; turn++) {
        sig_redis_reply *r = cmd(s, 6, (const char *[]){"SCAN", cursor, "MATCH", "tsunagu:relay:*",
                                                        "COUNT", "256"});
        sig_redis_reply *keys, *vals = NULL;
        if (!r)
            return false;
        if (r->type != SIG_RR_ARRAY || r->elements != 2 || r->element[0]->type != SIG_RR_STRING ||
            r->element[1]->type != SIG_RR_ARRAY) {
            sig_redis_reply_free(r);
            return true;
        }
        snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
        keys = r->element[1];
        if (keys->elements) {
            const char **av = calloc(keys->elements + 1, sizeof *av);
            size_t *len = calloc(keys->elements + 1, sizeof *len);
            sig_fleet_report *nv = realloc(*v, (*n + keys->elements) * sizeof **v);
            if (nv)
                *v = nv;
            if (av && len && nv) {
                av[0] = "MGET";
                len[0] = 4;
                for (size_t i = 0; i < keys->elements; i++) {
                    av[i + 1] = keys->element[i]->str ? keys->element[i]->str : "";
                    len[i + 1] = keys->element[i]->len;
                }
                if (s->ops->append(s->conn, (int)keys->elements + 1, av, len) ||
                    s->ops->get_reply(s->conn, &vals)) {
                    s->ops->close(s->conn);
                    s->conn = NULL;
                }
            }
            free(av);
            free(len);
            for (size_t i = 0; vals && vals->type == SIG_RR_ARRAY && i < vals->elements; i++)
                if (vals->element[i]->type == SIG_RR_STRING &&
                    !sig_fleet_parse_beat(vals->element[i]->str, vals->element[i]->len, &(*v)[*n]))
                    (*n)++;
            sig_redis_reply_free(vals);
            if (!s->conn) {
                sig_redis_reply_free(r);
                return false;
            }
        }
        sig_redis_reply_free(r);
        if (!strcmp(cursor, "0"))
            break;
    }
    return true;
}

static void turn_once(sig_fleet_src *s)
{
    sig_fleet_report *v = NULL;
    size_t n = 0, nc = 0;
    char gens[SIG_FLEET_MAX_CANARY][SIG_FLEET_NAME_MAX];
    unsigned pcts[SIG_FLEET_MAX_CANARY];
    uint64_t written;
    sig_redis_reply *r;
    char err[256];

    if (!s->conn && !(s->conn = s->ops->dial(s->ops->ud, &s->url, s->where, 1, err, sizeof err))) {
        if (!s->warned)
            RTC_LOG(RTC_LOG_WARN, "fleet", "relay registry: %s (retrying)", err);
        s->warned = true;
        goto down;
    }
    if (s->warned)
        RTC_LOG(RTC_LOG_INFO, "fleet", "relay registry %s: connected", s->where);
    s->warned = false;
    if (!flush_writes(s))
        goto down;
    pthread_mutex_lock(&s->mu);
    written = s->written;
    pthread_mutex_unlock(&s->mu);
    if (!read_relays(s, &v, &n))
        goto down;
    if (!(r = cmd(s, 2, (const char *[]){"HGETALL", CANARY_KEY})))
        goto down;
    for (size_t i = 0; r->type == SIG_RR_ARRAY && i + 1 < r->elements && nc < SIG_FLEET_MAX_CANARY;
         i += 2) {
        const char *g = r->element[i]->str, *p = r->element[i + 1]->str;
        char *e;
        long pct = p ? strtol(p, &e, 10) : -1;
        if (!g || !p || *e || pct < 0 || pct > 100 || !field_ok(g, strlen(g), SIG_FLEET_NAME_MAX))
            continue;
        snprintf(gens[nc], sizeof gens[nc], "%s", g);
        pcts[nc++] = (unsigned)pct;
    }
    sig_redis_reply_free(r);
    pthread_mutex_lock(&s->mu);
    free(s->snap);
    s->snap = v;
    s->nsnap = n;
    memcpy(s->sgen, gens, sizeof gens);
    memcpy(s->spct, pcts, sizeof pcts);
    s->nscanary = nc;
    s->snap_written = written;
    s->fresh = true;
    s->up = true;
    pthread_mutex_unlock(&s->mu);
    return;
down:
    free(v);
    pthread_mutex_lock(&s->mu);
    /* Redis gone: the relays' beats cannot be read, which says nothing about
     * the relays; keep placing on what was last known */
    s->up = false;
    pthread_mutex_unlock(&s->mu);
}

static void *src_main(void *arg)
{
    sig_fleet_src *s = arg;
    pthread_mutex_lock(&s->mu);
    while (!s->stop) {
        struct timespec ts;
        pthread_mutex_unlock(&s->mu);
        turn_once(s);
        pthread_mutex_lock(&s->mu);
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += (long)SIG_FLEET_SRC_PERIOD_US * 1000;
        while (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        if (!s->stop && !s->npending)
            pthread_cond_timedwait(&s->cv, &s->mu, &ts);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

static void queue_put(sig_fleet_src *s, const char *gen, unsigned pct, bool nx)
{
    size_t i;
    for (i = 0; i < s->npending; i++) /* the newest value of a generation wins */
        if (!strcmp(s->pgen[i], gen) && s->pnx[i] == nx)
            break;
    if (i == MAX_PENDING)
        return; /* (a share changed 32 times within half a second) */
    if (i == s->npending)
        s->npending++;
    snprintf(s->pgen[i], sizeof s->pgen[i], "%s", gen);
    s->ppct[i] = pct;
    s->pnx[i] = nx;
    s->pseq[i] = nx ? 0 : ++s->queued;
}

sig_fleet_src *sig_fleet_src_start(const sig_redis_ops *ops, const char *url,
                                   char (*initial_gen)[SIG_FLEET_NAME_MAX],
                                   const unsigned *initial_pct, size_t ninitial, char *err,
                                   size_t errlen)
{
    sig_fleet_src *s = calloc(1, sizeof *s);
    pthread_condattr_t ca;
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->ops = ops;
    if (sig_redis_url_parse(url, &s->url, err, errlen)) {
        free(s);
        return NULL;
    }
    sig_redis_url_describe(&s->url, s->where, sizeof s->where);
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cv, &ca);
    pthread_condattr_destroy(&ca);
    /* (number 0: the initial HSETNX hold back no snapshot) */
    for (size_t i = 0; i < ninitial; i++)
        queue_put(s, initial_gen[i], initial_pct[i], true);
    if (pthread_create(&s->thread, NULL, src_main, s)) {
        snprintf(err, errlen, "cannot start the relay registry thread");
        pthread_cond_destroy(&s->cv);
        pthread_mutex_destroy(&s->mu);
        memset(&s->url, 0, sizeof s->url);
        free(s);
        return NULL;
    }
    return s;
}

void sig_fleet_src_stop(sig_fleet_src *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    s->stop = true;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    if (s->conn)
        s->ops->close(s->conn);
    free(s->snap);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    memset(&s->url, 0, sizeof s->url);
    free(s);
}

void sig_fleet_src_put_canary(sig_fleet_src *s, const char *gen, unsigned percent)
{
    pthread_mutex_lock(&s->mu);
    queue_put(s, gen, percent, false);
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

bool sig_fleet_src_take(sig_fleet_src *s, sig_fleet_report **v, size_t *n,
                        char (*gens)[SIG_FLEET_NAME_MAX], unsigned *pcts, size_t *ncanary,
                        bool *canary_ok, bool *up)
{
    bool fresh;
    pthread_mutex_lock(&s->mu);
    fresh = s->fresh;
    *up = s->up;
    if (fresh) {
        *v = s->snap;
        *n = s->nsnap;
        s->snap = NULL;
        s->nsnap = 0;
        s->fresh = false;
        *canary_ok = s->snap_written >= s->queued;
        memcpy(gens, s->sgen, sizeof s->sgen);
        memcpy(pcts, s->spct, sizeof s->spct);
        *ncanary = s->nscanary;
    }
    pthread_mutex_unlock(&s->mu);
    return fresh;
}
