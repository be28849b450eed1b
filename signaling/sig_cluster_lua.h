/* sig_cluster_lua.h - the Lua scripts of cluster mode's Redis side (data
 * model at the top of sig_cluster.c): each change of a room hash and its
 * announcement runs as one script, so it is atomic across nodes. Keys are
 * built inside the scripts: a standalone Redis, not Redis Cluster. */
#ifndef SIG_CLUSTER_LUA_H
#define SIG_CLUSTER_LUA_H

extern const char SIG_LUA_JOIN[], SIG_LUA_LEAVE[], SIG_LUA_HEARTBEAT[], SIG_LUA_REAP[],
    SIG_LUA_RESYNC[];
/* resume across nodes (sig_handover.c): who holds a token's member; the
 * owner's move of a member to the asking node with its reply */
extern const char SIG_LUA_LOOKUP[], SIG_LUA_XFER[];
/* a signal or broadcast: into the room's stream, then out on its channel
 * with the entry's id (sig_cluster_st.h) */
extern const char SIG_LUA_PUB[];

#endif
