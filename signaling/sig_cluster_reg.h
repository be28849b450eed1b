/* sig_cluster_reg.h - what this node registers in Redis, as commands on
 * the command connection: its heartbeat, the reaping of dead nodes, a
 * member's join (the room size checked across nodes) and leave, the whole
 * registration again after a reconnection (resync), and a room's members.
 * Each is one Lua script (sig_cluster_lua.c), so atomic across nodes; the
 * data model is at the top of sig_cluster.c.
 *
 * A layer under sig_cluster.c: it talks to Redis through sig_redis_ops and
 * calls nothing else; the cluster decides when (its Redis thread is the
 * only caller) and with what (a copy of its mirror, taken under its lock). */
#ifndef SIG_CLUSTER_REG_H
#define SIG_CLUSTER_REG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sig_cluster.h"
#include "sig_mirror.h"
#include "sig_redis.h"

/* Where to register: a value the cluster keeps (conn changes on reconnect). */
typedef struct {
    const sig_redis_ops *rops;
    sig_redis_conn *conn; /* the command connection */
    const char *node;     /* this node's id */
    const char *kp, *cp;  /* key prefix "tsu:", room channel prefix "tsu:DB:ch:" */
    uint32_t ttl_s;       /* heartbeat key lifetime */
} sig_reg;

/* One command and its reply: NULL when the connection failed. */
sig_redis_reply *sig_reg_command(const sig_reg *g, int argc, const char **argv);
/* Append one command to the pipeline: 0, or RTC_EMSG. */
int sig_reg_append(const sig_reg *g, int argc, const char **argv);

/* Refresh the heartbeat; *registered false: this node was presumed dead
 * (reaped) or Redis lost its data. 0, or RTC_EMSG (connection). */
int sig_reg_heartbeat(const sig_reg *g, bool *registered);
/* Clean up the nodes whose heartbeat expired (their members leave their
 * rooms); *reaped: how many. 0, or RTC_EMSG. */
int sig_reg_reap(const sig_reg *g, uint64_t *reaped);
/* Register this node and exactly the members of mc (the ids in mc->keep are
 * left alone: members on their way here). 0, RTC_EMSG, or -ENOMEM. */
int sig_reg_register(const sig_reg *g, const sig_mirror_copy *mc);
/* The room's members on other nodes into e->members. 0, or RTC_EMSG. */
int sig_reg_room_members(const sig_reg *g, const char *room, sig_cev *e);
/* The other nodes' members out of a room hash's HGETALL reply. 0 or < 0. */
int sig_reg_members_of(const sig_reg *g, const sig_redis_reply *r, sig_cev *e);

/* Join member id (name, token hash th) to room, at most max_room members
 * across nodes: *result SIG_OK (e->members filled), SIG_E_ROOM_FULL or
 * SIG_E_SERVER_BUSY. 0; 1 when it was registered but the member list in the
 * answer cannot be read (*result busy: the caller takes it back out); or
 * RTC_EMSG when the connection failed. */
int sig_reg_join(const sig_reg *g, const char *room, const char *id, const char *name,
                 const char *th, uint32_t max_room, sig_code *result, sig_cev *e);
/* Append a signal or broadcast (payload, a JSON object) of room to the
 * pipeline: into the room's stream (about len entries, ms long) and out on
 * its channel (SIG_LUA_PUB). 0, or RTC_EMSG. */
int sig_reg_append_pub(const sig_reg *g, const char *room, const char *channel,
                       const char *payload, uint32_t len, uint64_t ms);
/* Append the leave of member id from room to the pipeline. */
int sig_reg_append_leave(const sig_reg *g, const char *room, const char *id);
/* Clean exit: the heartbeat key goes, and the reap takes the rest. */
void sig_reg_deregister(const sig_reg *g);

#endif
