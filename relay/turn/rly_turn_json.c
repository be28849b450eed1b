/* rly_turn_json.c - the engine's allocations as JSON for the admin API
 * (GET /admin/allocations), and releasing one by its public id.
 *
 * Runs on the worker thread that owns the engine, when the admin API asks
 * (rly_worker's query mailbox): never per packet. */
#include <stdio.h>

#include "rly_turn.h"

static const char *const dir_name[RLY_DIR_N] = {"client_to_peer", "peer_to_client"};

/* A JSON string: quotes, backslashes and every byte outside printable
 * ASCII escaped as \u00XX (user names are bytes the client chose). */
static void json_str(rtc_buf *b, const char *s)
{
    rtc_buf_append(b, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            rtc_buf_printf(b, "\\%c", c);
        else if (c < 0x20 || c >= 0x7F)
            rtc_buf_printf(b, "\\u%04x", c);
        else
            rtc_buf_append(b, s, 1);
    }
    rtc_buf_append(b, "\"", 1);
}

static void json_addr(rtc_buf *b, const rtc_addr *a)
{
    char s[RTC_ADDR_STRLEN];
    rtc_addr_format(a, true, s);
    json_str(b, s);
}

static void json_quality(rtc_buf *b, const rly_rtpq *q)
{
    rly_rtpq_sum s;
    rly_rtpq_summary(q, &s);
    rtc_buf_printf(b,
                   "{\"streams\":%u,\"expected\":%llu,\"lost\":%llu,\"loss\":%.4f,"
                   "\"duplicates\":%llu,\"reordered\":%llu,\"untracked_packets\":%u,"
                   "\"rtcp_packets\":%u,\"jitter_ms\":",
                   s.streams, (unsigned long long)s.expected, (unsigned long long)s.lost, s.loss,
                   (unsigned long long)s.dups, (unsigned long long)s.reordered, s.untracked,
                   s.rtcp);
    if (s.jitter_s >= 0)
        rtc_buf_printf(b, "%.3f}", s.jitter_s * 1000);
    else
        rtc_buf_printf(b, "null}");
}

static void json_alloc(const rly_turn *t, const rly_alloc *a, rtc_buf *b, uint64_t now_ms)
{
    static const char *const proto[] = {"udp", "tcp", "tls"};

    rtc_buf_printf(b, "{\"id\":\"%u.%u\",\"user\":", t->worker, a->serial);
    json_str(b, a->user);
    rtc_buf_printf(b, ",\"client\":");
    json_addr(b, &a->tuple.client);
    rtc_buf_printf(b, ",\"transport\":\"%s\",\"relayed\":[",
                   a->tuple.proto <= RLY_TLS ? proto[a->tuple.proto] : "?");
    json_addr(b, &a->relayed);
    if (a->relay_fd2 >= 0) {
        rtc_buf_append(b, ",", 1);
        json_addr(b, &a->relayed2);
    }
    rtc_buf_printf(b, "],\"age_s\":%.1f,\"expires_in_s\":%u,\"permissions\":%u,\"channels\":%u",
                   (double)(now_ms > a->created_ms ? now_ms - a->created_ms : 0) / 1000.0,
                   rly_alloc_remaining_s(a, now_ms), a->n_perms, a->n_chans);
    for (int d = 0; d < RLY_DIR_N; d++)
        rtc_buf_printf(b, ",\"packets_%s\":%llu,\"bytes_%s\":%llu", dir_name[d],
                       (unsigned long long)a->pkts[d], dir_name[d],
                       (unsigned long long)a->bytes[d]);
    rtc_buf_printf(b, ",\"quality\":{");
    for (int d = 0; d < RLY_DIR_N; d++) {
        rtc_buf_printf(b, "%s\"%s\":", d ? "," : "", dir_name[d]);
        json_quality(b, &a->q[d]);
    }
    rtc_buf_printf(b, "}}");
}

void rly_turn_list_json(const rly_turn *t, rtc_buf *b, uint64_t now_ms)
{
    uint32_t it = 0;
    const rly_alloc *a;
    bool first = true;

    while ((a = rly_table_next(t->table, &it))) {
        if (!first)
            rtc_buf_append(b, ",", 1);
        first = false;
        json_alloc(t, a, b, now_ms);
    }
}

bool rly_turn_release_serial(rly_turn *t, uint32_t serial, const char *why)
{
    uint32_t it = 0;
    rly_alloc *a;

    while ((a = rly_table_next(t->table, &it)))
        if (a->serial == serial) {
            rly_turn_release(t, a, why);
            return true;
        }
    return false;
}
