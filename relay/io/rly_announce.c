/* rly_announce.c - the fleet registry heartbeat (see rly_announce.h). The
 * only relay file that includes hiredis. */
#include "rly_announce.h"

#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "rly_rtpq.h"
#include "rtc_clock.h"
#include "rtc_err.h"
#include "rtc_log.h"

typedef struct {
    char host[256], user[128], pass[256];
    int port, db;
} redis_url;

struct rly_announce {
    rly_announce_params p;
    redis_url url;
    char key[300];
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
    redisContext *rc;
    uint64_t beats, last_cpu_ticks, last_cpu_ms;
    bool last_draining, warned;
};

/* redis://[[USER]:PASSWORD@]HOST[:PORT][/DB], HOST may be [IPv6]. */
static int parse_url(const char *s, redis_url *u)
{
    const char *p, *at = NULL, *hostend, *slash, *colon;
    size_t n;
    memset(u, 0, sizeof *u);
    u->port = 6379;
    if (strncmp(s, "redis://", 8))
        return RTC_EMSG;
    p = s + 8;
    slash = strchr(p, '/');
    hostend = slash ? slash : p + strlen(p);
    for (const char *q = p; q < hostend; q++)
        if (*q == '@')
            at = q;
    if (at) {
        colon = memchr(p, ':', (size_t)(at - p));
        if (!colon || (size_t)(colon - p) >= sizeof u->user ||
            (size_t)(at - colon - 1) >= sizeof u->pass || at == colon + 1)
            return RTC_EMSG;
        memcpy(u->user, p, (size_t)(colon - p));
        memcpy(u->pass, colon + 1, (size_t)(at - colon - 1));
        p = at + 1;
    }
    if (*p == '[') {
        const char *rb = memchr(p, ']', (size_t)(hostend - p));
        if (!rb || rb == p + 1 || (size_t)(rb - p - 1) >= sizeof u->host)
            return RTC_EMSG;
        memcpy(u->host, p + 1, (size_t)(rb - p - 1));
        colon = rb + 1 < hostend && rb[1] == ':' ? rb + 1 : NULL;
        if (rb + 1 < hostend && !colon)
            return RTC_EMSG;
    } else {
        colon = memchr(p, ':', (size_t)(hostend - p));
        n = (size_t)((colon ? colon : hostend) - p);
        if (n == 0 || n >= sizeof u->host)
            return RTC_EMSG;
        memcpy(u->host, p, n);
    }
    if (colon) {
        char *end;
        long v = strtol(colon + 1, &end, 10);
        if (end != hostend || v < 1 || v > 65535)
            return RTC_EMSG;
        u->port = (int)v;
    }
    if (slash && slash[1]) {
        char *end;
        long v = strtol(slash + 1, &end, 10);
        if (*end || v < 0 || v > 1000000)
            return RTC_EMSG;
        u->db = (int)v;
    }
    return 0;
}

int rly_announce_check_url(const char *v, char *err, size_t errlen)
{
    redis_url u;
    int rc = parse_url(v, &u);
    memset(&u, 0, sizeof u); /* the password */
    if (rc)
        snprintf(err, errlen, "expected redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]");
    return rc;
}

int rly_announce_check_field(const char *v, char *err, size_t errlen)
{
    size_t n = strlen(v);
    if (n == 0 || n >= RLY_ANNOUNCE_FIELD_MAX) {
        snprintf(err, errlen, "must be 1-%d bytes", RLY_ANNOUNCE_FIELD_MAX - 1);
        return RTC_EMSG;
    }
    for (const char *q = v; *q; q++)
        if ((unsigned char)*q < 0x20 || *q == '"' || *q == '\\' || *q == 0x7f) {
            snprintf(err, errlen, "must not hold quotes, backslashes or control characters");
            return RTC_EMSG;
        }
    return 0;
}

int rly_announce_json(const rly_announce_beat *b, char *out, size_t cap)
{
    size_t off = 0;
    int n = snprintf(out, cap, "{\"name\":\"%s\",\"generation\":\"%s\",\"urls\":[", b->name,
                     b->generation);
    if (n < 0 || (size_t)n >= cap)
        return -1;
    off = (size_t)n;
    for (size_t i = 0; i < b->n_urls; i++) {
        n = snprintf(out + off, cap - off, "%s\"%s\"", i ? "," : "", b->urls[i]);
        if (n < 0 || (size_t)n >= cap - off)
            return -1;
        off += (size_t)n;
    }
    n = snprintf(out + off, cap - off,
                 "],\"allocations\":%llu,\"cpu\":%.3f,\"draining\":%s,\"beat\":%llu,"
                 "\"loss_sum\":%.6f,\"loss_count\":%llu,\"jitter_sum\":%.6f,"
                 "\"jitter_count\":%llu}",
                 (unsigned long long)b->allocations, b->cpu, b->draining ? "true" : "false",
                 (unsigned long long)b->beat, b->loss_sum, (unsigned long long)b->loss_count,
                 b->jitter_sum, (unsigned long long)b->jitter_count);
    if (n < 0 || (size_t)n >= cap - off)
        return -1;
    return (int)(off + (size_t)n);
}

/* utime + stime of this process, in clock ticks (0 when unreadable). */
static uint64_t cpu_ticks(void)
{
    char buf[1024];
    unsigned long long ut = 0, st = 0;
    const char *p;
    FILE *f = fopen("/proc/self/stat", "r");
    size_t n;
    if (!f)
        return 0;
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* after the ")" closing comm (which may hold spaces): fields 3.. */
    if (!(p = strrchr(buf, ')')) ||
        sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return 0;
    return ut + st;
}

static bool any_draining(const rly_announce *a)
{
    for (size_t i = 0; i < a->p.n_workers; i++)
        if (rly_worker_draining(a->p.workers[i]))
            return true;
    return false;
}

static void fill_beat(rly_announce *a, rly_announce_beat *b)
{
    rly_rtpq_shard q;
    size_t resv = 0;
    uint64_t ticks = cpu_ticks(), now_ms = rtc_clock_mono_ms();
    long hz = sysconf(_SC_CLK_TCK);

    memset(b, 0, sizeof *b);
    b->name = a->p.name;
    b->generation = a->p.generation;
    b->urls = a->p.urls;
    b->n_urls = a->p.n_urls;
    b->beat = ++a->beats;
    b->draining = any_draining(a);
    if (a->p.n_workers)
        b->allocations = rly_worker_total_allocations(a->p.workers[0], &resv);
    if (a->last_cpu_ms && now_ms > a->last_cpu_ms && hz > 0 && ticks >= a->last_cpu_ticks)
        b->cpu = (double)(ticks - a->last_cpu_ticks) / (double)hz /
                 ((double)(now_ms - a->last_cpu_ms) / 1000.0);
    a->last_cpu_ticks = ticks;
    a->last_cpu_ms = now_ms;
    rly_rtpq_shard_init(&q);
    for (size_t i = 0; i < a->p.n_workers; i++)
        rly_rtpq_shard_add(&q, rly_worker_qshard(a->p.workers[i]));
    for (int d = 0; d < RLY_DIR_N; d++) {
        b->loss_sum += q.loss[d].sum;
        b->loss_count += q.loss[d].count;
        b->jitter_sum += q.jitter[d].sum;
        b->jitter_count += q.jitter[d].count;
    }
}

static void drop_conn(rly_announce *a, const char *why)
{
    if (!a->warned)
        RTC_LOG(RTC_LOG_WARN, "announce", "Redis %s:%d: %s (retrying every beat)",
                a->url.host, a->url.port, why);
    a->warned = true;
    if (a->rc)
        redisFree(a->rc);
    a->rc = NULL;
}

/* One command; false (connection dropped) when it failed. */
static bool command(rly_announce *a, int argc, const char **argv, const size_t *len)
{
    redisReply *r = redisCommandArgv(a->rc, argc, argv, len);
    bool ok = r && r->type != REDIS_REPLY_ERROR;
    if (!r)
        drop_conn(a, a->rc->errstr[0] ? a->rc->errstr : "connection lost");
    else if (!ok)
        drop_conn(a, r->str ? r->str : "error reply");
    if (r)
        freeReplyObject(r);
    return ok;
}

static bool connect_redis(rly_announce *a)
{
    struct timeval tv = {1, 0};
    char db[16];
    a->rc = redisConnectWithTimeout(a->url.host, a->url.port, tv);
    if (!a->rc || a->rc->err) {
        if (a->rc)
            drop_conn(a, a->rc->errstr);
        else
            drop_conn(a, "out of memory");
        return false;
    }
    redisSetTimeout(a->rc, tv);
    if (a->url.pass[0]) {
        const char *av[3] = {"AUTH", a->url.user, a->url.pass};
        if (a->url.user[0] ? !command(a, 3, av, NULL)
                           : !command(a, 2, (const char *[]){"AUTH", a->url.pass}, NULL))
            return false;
    }
    if (a->url.db) {
        snprintf(db, sizeof db, "%d", a->url.db);
        if (!command(a, 2, (const char *[]){"SELECT", db}, NULL))
            return false;
    }
    if (a->warned)
        RTC_LOG(RTC_LOG_INFO, "announce", "Redis %s:%d: connected again", a->url.host,
                a->url.port);
    a->warned = false;
    return true;
}

static void beat(rly_announce *a)
{
    rly_announce_beat b;
    char json[8192], ttl[24];
    int n;
    fill_beat(a, &b);
    a->last_draining = b.draining;
    if ((n = rly_announce_json(&b, json, sizeof json)) < 0)
        return; /* the settings check bounds every field: cannot happen */
    if (!a->rc && !connect_redis(a))
        return;
    snprintf(ttl, sizeof ttl, "%d", RLY_ANNOUNCE_PERIOD_MS * RLY_ANNOUNCE_BEATS);
    {
        const char *av[5] = {"SET", a->key, json, "PX", ttl};
        size_t len[5] = {3, strlen(a->key), (size_t)n, 2, strlen(ttl)};
        command(a, 5, av, len);
    }
}

static void *announce_main(void *arg)
{
    rly_announce *a = arg;
    uint64_t next = 0;
    pthread_mutex_lock(&a->mu);
    while (!a->stop) {
        uint64_t now = rtc_clock_mono_ms();
        struct timespec ts;
        if (now >= next || any_draining(a) != a->last_draining) {
            pthread_mutex_unlock(&a->mu);
            beat(a); /* blocking I/O outside the lock: stop waits at most a timeout */
            pthread_mutex_lock(&a->mu);
            next = now + RLY_ANNOUNCE_PERIOD_MS;
            continue;
        }
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += RLY_ANNOUNCE_POLL_MS * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&a->cv, &a->mu, &ts);
    }
    pthread_mutex_unlock(&a->mu);
    return NULL;
}

rly_announce *rly_announce_start(const rly_announce_params *p, char *err, size_t errlen)
{
    rly_announce *a = calloc(1, sizeof *a);
    pthread_condattr_t ca;
    if (!a) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    a->p = *p;
    if (parse_url(p->redis, &a->url)) {
        snprintf(err, errlen, "announce: bad Redis URL");
        goto fail_free;
    }
    snprintf(a->key, sizeof a->key, "tsunagu:relay:%s", p->name);
    pthread_mutex_init(&a->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&a->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&a->thread, NULL, announce_main, a)) {
        snprintf(err, errlen, "announce: cannot start its thread");
        goto fail_sync;
    }
    RTC_LOG(RTC_LOG_INFO, "announce", "registry %s:%d as '%s' generation %s, %zu URL(s)",
            a->url.host, a->url.port, p->name, p->generation, p->n_urls);
    return a;
fail_sync:
    pthread_cond_destroy(&a->cv);
    pthread_mutex_destroy(&a->mu);
fail_free:
    memset(&a->url, 0, sizeof a->url);
    free(a);
    return NULL;
}

void rly_announce_stop(rly_announce *a)
{
    if (!a)
        return;
    pthread_mutex_lock(&a->mu);
    a->stop = true;
    pthread_cond_signal(&a->cv);
    pthread_mutex_unlock(&a->mu);
    pthread_join(a->thread, NULL);
    if (a->rc)
        redisFree(a->rc);
    pthread_cond_destroy(&a->cv);
    pthread_mutex_destroy(&a->mu);
    memset(&a->url, 0, sizeof a->url);
    free(a);
}
