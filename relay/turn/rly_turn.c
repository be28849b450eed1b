/* rly_turn.c - the engine's lifecycle and housekeeping: init and dispose,
 * releasing allocations (whole, one family of a dual one, on a closed
 * stream), and the periodic sweep of expired state.
 *
 * Everything here runs on the worker thread that owns the engine, never per
 * packet. Request handling (rly_dispatch.c and the handlers) calls into this
 * file to release allocations; this file calls nothing back. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "rly_turn.h"
#include "rtc_crypto.h"
#include "rtc_log.h"

const char *const rly_drop_names[RLY_DROP_N] = {
    "malformed", "no_allocation", "no_permission", "no_channel",
    "bandwidth", "send_error",    "backpressure",
};

int rly_turn_init(rly_turn *t, const rly_cfg *cfg, const rly_io *io, rly_quota *quota,
                  const uint8_t nonce_key[32])
{
    uint64_t hk = 0;
    memset(t, 0, sizeof *t);
    t->cfg = cfg;
    t->io = *io;
    t->quota = quota;
    t->warn_rl.per_sec = 5;
    rly_rtpq_shard_init(&t->qshard);
    memcpy(t->nonce_key, nonce_key, sizeof t->nonce_key);
    if (rtc_random(&hk, sizeof hk))
        return -EIO;
    t->table = rly_table_new(hk);
    return t->table ? 0 : -ENOMEM;
}

/* Close the allocation's relayed sockets (both halves of a dual one). */
static void close_relayed(rly_turn *t, rly_alloc *a)
{
    if (a->relay_fd >= 0)
        t->io.relay_close(t->io.ctx, a->relay_fd, &a->relayed);
    if (a->relay_fd2 >= 0)
        t->io.relay_close(t->io.ctx, a->relay_fd2, &a->relayed2);
    a->relay_fd = a->relay_fd2 = -1;
}

/* " c2p=PKTS/BYTES loss=..% jitter=..ms streams=N" for one direction */
static void fmt_dir(char *out, size_t cap, const rly_alloc *a, int dir, const char *name)
{
    rly_rtpq_sum s;
    char jit[24] = "-";

    rly_rtpq_summary(&a->q[dir], &s);
    if (s.jitter_s >= 0)
        snprintf(jit, sizeof jit, "%.1fms", s.jitter_s * 1000);
    snprintf(out, cap, " %s=%llu/%llu streams=%u loss=%.2f%% jitter=%s", name,
             (unsigned long long)a->pkts[dir], (unsigned long long)a->bytes[dir], s.streams,
             s.loss * 100, jit);
}

void rly_turn_release(rly_turn *t, rly_alloc *a, const char *why)
{
    char ctx[32], cl[RTC_ADDR_STRLEN], rl[RTC_ADDR_STRLEN], rl2[RTC_ADDR_STRLEN] = "";
    char q[2][96];
    if (rtc_log_enabled(RTC_LOG_INFO)) {
        snprintf(ctx, sizeof ctx, "alloc=%u.%u", t->worker, a->serial);
        rtc_addr_format(&a->tuple.client, true, cl);
        rtc_addr_format(&a->relayed, true, rl);
        if (a->relay_fd2 >= 0)
            rtc_addr_format(&a->relayed2, true, rl2);
        fmt_dir(q[0], sizeof q[0], a, RLY_DIR_C2P, "c2p");
        fmt_dir(q[1], sizeof q[1], a, RLY_DIR_P2C, "p2c");
        RTC_LOG(RTC_LOG_INFO, ctx,
                "released (%s) client=%s relayed=%s%s%s user=%s duration=%.1fs%s%s", why, cl,
                rl, a->relay_fd2 >= 0 ? "," : "", a->relay_fd2 >= 0 ? rl2 : "", a->user,
                (double)(t->now_us / 1000 > a->created_ms ? t->now_us / 1000 - a->created_ms : 0) /
                    1000.0,
                q[0], q[1]);
    }
    rly_rtpq_finish(&a->q[RLY_DIR_C2P], &t->qshard, RLY_DIR_C2P);
    rly_rtpq_finish(&a->q[RLY_DIR_P2C], &t->qshard, RLY_DIR_P2C);
    close_relayed(t, a);
    rly_quota_give(t->quota, rly_quota_key(a->user, a->rest));
    rly_table_remove(t->table, a);
}

void rly_turn_release_family(rly_turn *t, rly_alloc *a, int family)
{
    char ctx[32], rl[RTC_ADDR_STRLEN];
    const rtc_addr *gone = rly_alloc_relayed_for(a, family);

    if (a->relay_fd2 < 0 || !gone)
        return; /* not dual: the caller releases the whole allocation */
    if (rtc_log_enabled(RTC_LOG_INFO)) {
        snprintf(ctx, sizeof ctx, "alloc=%u.%u", t->worker, a->serial);
        rtc_addr_format(gone, true, rl);
        RTC_LOG(RTC_LOG_INFO, ctx, "released relayed=%s (refresh lifetime 0 for its family)", rl);
    }
    if (gone == &a->relayed) {
        /* the other half becomes the primary one */
        t->io.relay_close(t->io.ctx, a->relay_fd, &a->relayed);
        a->relay_fd = a->relay_fd2;
        a->relayed = a->relayed2;
        a->advertised = a->advertised2;
    } else {
        t->io.relay_close(t->io.ctx, a->relay_fd2, &a->relayed2);
    }
    a->relay_fd2 = -1;
    memset(&a->relayed2, 0, sizeof a->relayed2);
    memset(&a->advertised2, 0, sizeof a->advertised2);
}

void rly_turn_dispose(rly_turn *t)
{
    uint32_t it = 0;
    rly_alloc *a;
    if (!t->table)
        return;
    while ((a = rly_table_next(t->table, &it))) {
        close_relayed(t, a);
        rly_quota_give(t->quota, rly_quota_key(a->user, a->rest));
    }
    rly_table_free(t->table);
    t->table = NULL;
}

void rly_turn_tuple_gone(rly_turn *t, const rly_tuple *tu)
{
    rly_alloc *a = rly_table_find(t->table, tu);
    if (a)
        rly_turn_release(t, a, "connection closed");
}

void rly_turn_sweep(rly_turn *t, uint64_t now_ms)
{
    uint32_t it = 0;
    rly_alloc *a;
    rtc_addr held;
    int fd;
    while ((fd = rly_quota_resv_expired(t->quota, now_ms, &held)) >= 0)
        t->io.relay_close(t->io.ctx, fd, &held);
    while ((a = rly_table_next(t->table, &it))) {
        if (rly_alloc_expired(a, now_ms))
            rly_turn_release(t, a, "expired");
        else
            rly_alloc_purge(a, now_ms);
    }
}
