/* sig_cluster_lua.c - the scripts sig_cluster.c runs (see sig_cluster_lua.h). */
#include "sig_cluster_lua.h"

/* KEYS: room hash, nm, nt, rt:HASH. ARGV: id, value, max, channel, event,
 * room, token hash, rt value. */
const char SIG_LUA_JOIN[] =
    "if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then\n"
    "  if redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[3]) then return {0} end\n"
    "  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])\n"
    "  redis.call('PUBLISH', ARGV[4], ARGV[5])\n"
    "end\n"
    "redis.call('HSET', KEYS[2], ARGV[1], ARGV[6])\n"
    "redis.call('HSET', KEYS[3], ARGV[1], ARGV[7])\n"
    "redis.call('SET', KEYS[4], ARGV[8])\n"
    "return {1, redis.call('HGETALL', KEYS[1])}\n";

/* KEYS: room hash, nm, nt. ARGV: id, channel, event, key prefix, room.
 * Only a member this node holds (nm says so) is taken out: a leave from
 * here never removes another node's member. */
const char SIG_LUA_LEAVE[] =
    "if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[5] then return 0 end\n"
    "if redis.call('HDEL', KEYS[1], ARGV[1]) == 1 then\n"
    "  redis.call('PUBLISH', ARGV[2], ARGV[3])\n"
    "end\n"
    "redis.call('HDEL', KEYS[2], ARGV[1])\n"
    "redis.call('DEL', ARGV[4] .. 'mq:' .. ARGV[1])\n"
    "local th = redis.call('HGET', KEYS[3], ARGV[1])\n"
    "if th then\n"
    "  redis.call('DEL', ARGV[4] .. 'rt:' .. th)\n"
    "  redis.call('HDEL', KEYS[3], ARGV[1])\n"
    "end\n"
    "return 1\n";

const char SIG_LUA_HEARTBEAT[] =
    "if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 then return 0 end\n"
    "redis.call('SET', KEYS[2], '1', 'EX', tonumber(ARGV[2]))\n"
    "return 1\n";

/* Clean up every registered node whose heartbeat key expired: its members
 * leave their rooms (announced with the dead node as origin). Atomic, so
 * two survivors never both announce one departure. */
const char SIG_LUA_REAP[] =
    "local reaped = {}\n"
    "for _, n in ipairs(redis.call('SMEMBERS', KEYS[1])) do\n"
    "  if redis.call('EXISTS', ARGV[1] .. 'node:' .. n) == 0 then\n"
    "    local nm = ARGV[1] .. 'nm:' .. n\n"
    "    local all = redis.call('HGETALL', nm)\n"
    "    for i = 1, #all, 2 do\n"
    "      redis.call('DEL', ARGV[1] .. 'mq:' .. all[i])\n"
    "      if redis.call('HDEL', ARGV[1] .. 'room:' .. all[i + 1], all[i]) == 1 then\n"
    "        redis.call('PUBLISH', ARGV[2] .. all[i + 1],\n"
    "                   cjson.encode({n = n, e = 'left', id = all[i]}))\n"
    "      end\n"
    "    end\n"
    "    redis.call('DEL', nm)\n"
    "    local nt = ARGV[1] .. 'nt:' .. n\n"
    "    for _, th in ipairs(redis.call('HVALS', nt)) do\n"
    "      redis.call('DEL', ARGV[1] .. 'rt:' .. th)\n"
    "    end\n"
    "    redis.call('DEL', nt)\n"
    "    redis.call('SREM', KEYS[1], n)\n"
    "    reaped[#reaped + 1] = n\n"
    "  end\n"
    "end\n"
    "return reaped\n";

/* Make Redis agree with this node's members (ARGV[5] = k, ARGV[6..5+k]:
 * ids to leave alone, then id, room, value, token hash quadruples):
 * register the node, drop registrations no longer true (left announced),
 * add missing ones (join announced). No room-size check: these members were
 * admitted before. KEYS[4]: nt. The ids left alone are those of hand-overs
 * this node asked for and has no answer to yet: the owner's XFER may have
 * registered one here already, its reply not read yet, and taking it out
 * would make it leave while it is on its way here. */
const char SIG_LUA_RESYNC[] =
    "redis.call('SADD', KEYS[1], ARGV[1])\n"
    "redis.call('SET', KEYS[2], '1', 'EX', tonumber(ARGV[2]))\n"
    "local nk = tonumber(ARGV[5])\n"
    "local keep = {}\n"
    "for i = 6, 5 + nk do keep[ARGV[i]] = true end\n"
    "local first = 6 + nk\n"
    "local want = {}\n"
    "for i = first, #ARGV, 4 do want[ARGV[i]] = ARGV[i + 1] end\n"
    "local old = redis.call('HGETALL', KEYS[3])\n"
    "for i = 1, #old, 2 do\n"
    "  local id, room = old[i], old[i + 1]\n"
    "  if want[id] ~= room and not keep[id] then\n"
    "    redis.call('HDEL', KEYS[3], id)\n"
    "    if not want[id] then redis.call('DEL', ARGV[3] .. 'mq:' .. id) end\n"
    "    local th = redis.call('HGET', KEYS[4], id)\n"
    "    if th then\n"
    "      redis.call('DEL', ARGV[3] .. 'rt:' .. th)\n"
    "      redis.call('HDEL', KEYS[4], id)\n"
    "    end\n"
    "    if redis.call('HDEL', ARGV[3] .. 'room:' .. room, id) == 1 then\n"
    "      redis.call('PUBLISH', ARGV[4] .. room, cjson.encode({n = ARGV[1], e = 'left', id = id}))\n"
    "    end\n"
    "  end\n"
    "end\n"
    "for i = first, #ARGV, 4 do\n"
    "  local id, room, v, th = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]\n"
    "  redis.call('HSET', KEYS[3], id, room)\n"
    "  redis.call('HSET', KEYS[4], id, th)\n"
    "  redis.call('SET', ARGV[3] .. 'rt:' .. th,\n"
    "             cjson.encode({id = id, room = room, node = ARGV[1]}), 'KEEPTTL')\n"
    "  if redis.call('HSET', ARGV[3] .. 'room:' .. room, id, v) == 1 then\n"
    "    redis.call('PUBLISH', ARGV[4] .. room,\n"
    "               cjson.encode({n = ARGV[1], e = 'join', id = id, name = cjson.decode(v).name}))\n"
    "  end\n"
    "end\n"
    "return 1\n";

/* A signal or broadcast (ARGV[2], a JSON object) of a room: appended to the
 * room's stream KEYS[1] (trimmed to about ARGV[3] entries and about ARGV[4]
 * ms of age, by whole macro nodes: "~"; the key expires ARGV[4] ms after the
 * last one) and published on the room's channel ARGV[1] with the entry's id
 * as "x", in one step: a node reading the channel knows how far it got, and
 * one that was away reads the stream from there (sig_cluster_st.h).
 * Returns the id. */
const char SIG_LUA_PUB[] =
    "local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*', 'm', ARGV[2])\n"
    "local ms = tonumber(string.match(id, '^(%d+)'))\n"
    "local age = tonumber(ARGV[4])\n"
    "if ms and age and ms > age then\n"
    "  redis.call('XTRIM', KEYS[1], 'MINID', '~', tostring(ms - age))\n"
    "end\n"
    "redis.call('PEXPIRE', KEYS[1], ARGV[4])\n"
    "redis.call('PUBLISH', ARGV[1], '{\"x\":\"' .. id .. '\",' .. string.sub(ARGV[2], 2))\n"
    "return id\n";

/* ---- resume across nodes (sig_handover.c) ---- */

/* Who holds the member of a resume token (KEYS[1] = rt:HASH; ARGV[1] = key
 * prefix, ARGV[2] = hops allowed per minute, 0 = any): 0 unknown, 1 its
 * node is dead (its heartbeat expired: the queue died with it), 2 the
 * member was taken to another node ARGV[2] times in this minute already
 * (tsu:hops:ID counts them, for 60 s from the first), else the rt value. */
const char SIG_LUA_LOOKUP[] =
    "local v = redis.call('GET', KEYS[1])\n"
    "if not v then return 0 end\n"
    "local ok, o = pcall(cjson.decode, v)\n"
    "if not ok or type(o) ~= 'table' or type(o.node) ~= 'string' then return 0 end\n"
    "if redis.call('EXISTS', ARGV[1] .. 'node:' .. o.node) == 0 then return 1 end\n"
    "local lim = tonumber(ARGV[2]) or 0\n"
    "if lim > 0 and type(o.id) == 'string' then\n"
    "  local hk = ARGV[1] .. 'hops:' .. o.id\n"
    "  local n = redis.call('INCR', hk)\n"
    "  if n == 1 then redis.call('EXPIRE', hk, 60) end\n"
    "  if n > lim then return 2 end\n"
    "end\n"
    "return v\n";

/* The owner gives member ARGV[1] of room ARGV[2] to node ARGV[10], and the
 * reply (ARGV[7], its queue) goes to that node's channel ARGV[6], atomically.
 * KEYS: nm, nt (owner), room hash, nm, nt (new owner), rt:HASH, the new
 * owner's heartbeat key. ARGV: id, room, room-hash value, token hash, rt
 * value, channel, reply, left event, room channel, new owner.
 * The reply (ARGV[7], without its closing brace) gets the room hash as it is
 * at this instant ("m"): the new owner's member list, atomic with the move,
 * so that joins and leaves after it reach the member as events and none
 * falls between the list and the events.
 * Not ours any more (a resync took it out): nothing, the asking node times
 * out. The new owner died meanwhile: the member leaves, as its node did. */
const char SIG_LUA_XFER[] =
    "if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end\n"
    "redis.call('HDEL', KEYS[1], ARGV[1])\n"
    "redis.call('HDEL', KEYS[2], ARGV[1])\n"
    "if redis.call('EXISTS', KEYS[7]) == 0 then\n"
    "  redis.call('DEL', KEYS[6])\n"
    "  if redis.call('HDEL', KEYS[3], ARGV[1]) == 1 then\n"
    "    redis.call('PUBLISH', ARGV[9], ARGV[8])\n"
    "  end\n"
    "  return 0\n"
    "end\n"
    "redis.call('HSET', KEYS[4], ARGV[1], ARGV[2])\n"
    "redis.call('HSET', KEYS[5], ARGV[1], ARGV[4])\n"
    "redis.call('HSET', KEYS[3], ARGV[1], ARGV[3])\n"
    "redis.call('SET', KEYS[6], ARGV[5])\n"
    "local all = redis.call('HGETALL', KEYS[3])\n"
    "local m = '[]'\n"
    "if #all > 0 then m = cjson.encode(all) end\n"
    "redis.call('PUBLISH', ARGV[6], ARGV[7] .. ',\"m\":' .. m .. '}')\n"
    "return 1\n";
