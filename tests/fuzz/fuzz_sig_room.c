/* fuzz_sig_room.c - libFuzzer target for the room logic (sig_room): the
 * input is a script of operations on up to 8 connections and 3 rooms in
 * virtual time (connect, join, signal, broadcast, leave, drop with or
 * without resume, resume with another member's token, clock steps, queue
 * drains, and cluster mode's members on other nodes: remote join, leave,
 * sync, delivery). After every step the hub's counters must agree with a model of
 * the members, and queues must stay within their bounds; ASan checks the
 * lifetimes (resume takeovers, expiry during pushes, overflow evictions). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sig_room.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NCONN 8

typedef struct {
    sig_member *m; /* NULL: no connection in this slot */
} fconn;

static fconn conns[NCONN];
static char tokens[64][24];
static unsigned ntokens;

static void wake(void *c, void *ud)
{
    (void)c;
    (void)ud;
}

static void detach(void *c, sig_member *lobby, void *ud)
{
    (void)ud;
    ((fconn *)c)->m = lobby;
}

static int remote(void *ud, const char *room, const char *to, const char *from, json_t *data)
{
    (void)ud;
    (void)room;
    (void)from;
    (void)data;
    return to && to[0] == 'f'; /* sometimes the cluster refuses */
}

static void left(void *ud, const char *room, const char *id, bool room_empty)
{
    (void)ud;
    (void)room;
    (void)id;
    (void)room_empty;
}

static void check(sig_hub *h, const sig_limits *lim)
{
    sig_hub_stats st;
    uint64_t joined = 0, lobby = 0;
    sig_hub_get_stats(h, &st);
    for (int i = 0; i < NCONN; i++) {
        if (!conns[i].m)
            continue;
        if (sig_member_conn(conns[i].m) != &conns[i])
            abort(); /* a connection's member must point back at it */
        if (sig_member_queued(conns[i].m) > lim->queue_msgs)
            abort();
        if (sig_member_get_state(conns[i].m) == SIG_MEMBER_JOINED)
            joined++;
        else if (sig_member_get_state(conns[i].m) == SIG_MEMBER_LOBBY)
            lobby++;
        else
            abort(); /* a live connection never holds a detached member */
    }
    if (st.lobby != lobby || st.members != joined + st.detached || st.rooms > st.members ||
        st.remote > st.rooms * lim->max_room_size)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sig_limits lim = {.max_room_size = 3, .max_rooms = 2, .queue_msgs = 6, .queue_bytes = 2048,
                      .resume_us = 2000000};
    sig_hub_ops ops = {.wake = wake, .detach = detach, .remote = remote, .left = left,
                       .ud = NULL, .headroom = 16};
    sig_hub *h = sig_hub_new(&lim, &ops);
    static const char *const rids[] = {"r0", "r1", "r2", "r3", "f4", "f5", "r6", "0"};
    json_t *payload = json_string("x");
    uint64_t now = 1000000;
    static const char *const rooms[] = {"a", "b", "c"};

    memset(conns, 0, sizeof conns);
    ntokens = 0;
    for (size_t i = 0; i + 1 < size; i += 2) {
        uint8_t op = data[i] % 10, arg = data[i + 1];
        fconn *c = &conns[arg % NCONN];
        fconn *o = &conns[(arg >> 3) % NCONN];
        switch (op) {
        case 0:
            if (!c->m)
                c->m = sig_hub_connect(h, c);
            break;
        case 1:
            if (c->m && ntokens < 64) {
                char id[SIG_ID_LEN + 1];
                sig_join_params p = {.room = rooms[(arg >> 3) % 3], .name = "n", .id = id,
                                     .resume = tokens[ntokens], .ice_servers = payload,
                                     .admitted = (arg & 0x40) != 0}; /* cluster-mode join */
                snprintf(id, sizeof id, "%016x", ntokens);
                snprintf(tokens[ntokens], sizeof tokens[0], "tok%u", ntokens);
                if (sig_hub_join(h, c->m, &p, now) == SIG_OK)
                    ntokens++;
            }
            break;
        case 2:
            if (c->m && o->m)
                sig_hub_signal(h, c->m, sig_member_id(o->m), payload, now);
            break;
        case 3:
            if (c->m)
                sig_hub_broadcast(h, c->m, payload, now);
            break;
        case 4:
            if (c->m)
                sig_hub_leave(h, c->m, now);
            break;
        case 5:
            if (c->m) {
                sig_hub_disconnect(h, c->m, arg & 0x80, now);
                c->m = NULL;
            }
            break;
        case 6:
            if (c->m && ntokens)
                sig_hub_resume(h, &c->m, tokens[(arg >> 3) % ntokens], now);
            break;
        case 7:
            now += (uint64_t)arg * 100000;
            sig_hub_tick(h, now);
            break;
        case 8:
            if (c->m)
                while (sig_member_peek(c->m))
                    sig_member_pop(c->m);
            break;
        default:
            /* the upper bits pick a cluster-mode event for a random room and remote id */
            switch (arg >> 6) {
            case 1:
                sig_hub_remote_join(h, rooms[arg % 3], rids[(arg >> 2) & 7], "n", now);
                break;
            case 2:
                sig_hub_remote_leave(h, rooms[arg % 3], rids[(arg >> 2) & 7], now);
                break;
            case 3: {
                sig_remote v[4];
                for (int k = 0; k < 4; k++)
                    v[k] = (sig_remote){.id = rids[(arg + k * 3) & 7], .name = ""};
                if (arg & 0x20)
                    sig_hub_remote_sync(h, rooms[arg % 3], v, (size_t)(arg >> 2) & 3, now);
                else
                    sig_hub_remote_deliver(h, rooms[arg % 3], arg & 0x10 ? NULL : "0000000000000001",
                                           rids[(arg >> 2) & 3], payload, now);
                break;
            }
            default:
                if (c->m)
                    sig_hub_send(h, c->m, "{\"type\":\"pong\"}", now);
                break;
            }
            break;
        }
        /* a connection whose member overflowed is dropped, as sig_ws does */
        for (int k = 0; k < NCONN; k++)
            if (conns[k].m && sig_member_overflowed(conns[k].m)) {
                sig_hub_disconnect(h, conns[k].m, false, now);
                conns[k].m = NULL;
            }
        check(h, &lim);
    }
    for (int k = 0; k < NCONN; k++)
        if (conns[k].m)
            sig_hub_disconnect(h, conns[k].m, k & 1, now);
    sig_hub_tick(h, now + 10000000);
    {
        sig_hub_stats st;
        sig_hub_get_stats(h, &st);
        if (st.members || st.rooms || st.lobby || st.detached || st.remote)
            abort(); /* everyone gone once every window passed */
    }
    sig_hub_free(h);
    json_decref(payload);
    return 0;
}
