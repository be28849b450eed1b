/* rly_alloc.h - TURN allocations, permissions and channel bindings
 * (RFC 8656 s.2.2, s.7-s.12), and the per-worker table that finds them.
 *
 * Pure state: nothing here touches a socket or reads the clock; callers pass
 * now_ms. An allocation is plain data (no pointers into other objects: the
 * relayed socket is an fd number, the TCP connection an index), so a later
 * process can take a worker's allocations over as they are.
 *
 * The table is owned by exactly one worker thread. Lookups are O(1): a keyed
 * hash from the client 5-tuple, and the allocation id (a slot index) for
 * packets arriving on a relayed socket (the worker stores it in the epoll
 * data). Permissions and channels live in small fixed arrays inside the
 * allocation, so the packet path never allocates. */
#ifndef RLY_ALLOC_H
#define RLY_ALLOC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "rly_rtpq.h"
#include "rtc_addr.h"

#define RLY_MAX_PERMS 32     /* per allocation (one per peer IP) */
#define RLY_MAX_CHANS 32     /* per allocation */
#define RLY_USER_MAX 128     /* longest username we keep */
#define RLY_PERM_MS 300000u  /* permission lifetime, RFC 8656 s.9 */
#define RLY_CHAN_MS 600000u  /* channel binding lifetime, s.12 */
#define RLY_CHAN_HOLD_MS 300000u /* an expired binding blocks rebinding for 5 min, s.12 */

enum { RLY_UDP = 0, RLY_TCP = 1, RLY_TLS = 2 };

/* The 5-tuple that names an allocation (s.2.2): client address, the server
 * address it reached (listener index stands in for it) and the transport. */
typedef struct {
    rtc_addr client;
    uint16_t listener; /* index of the listening socket */
    uint8_t proto;     /* RLY_UDP / RLY_TCP / RLY_TLS */
} rly_tuple;

typedef struct {
    rtc_addr peer; /* port ignored: permissions are per IP (s.9) */
    uint64_t expiry_ms;
} rly_perm;

typedef struct {
    rtc_addr peer; /* IP and port */
    uint16_t num;
    uint64_t expiry_ms; /* usable until then; held (not rebindable) for 5 more min */
} rly_chan;

typedef struct {
    uint32_t id; /* slot index in the table; stable for the allocation's life */
    rly_tuple tuple;
    int conn;             /* TCP/TLS connection index, -1 for UDP */
    int relay_fd;         /* relayed UDP socket, owned by the worker */
    rtc_addr relayed;     /* bound address of the relayed socket */
    rtc_addr advertised;  /* what XOR-RELAYED-ADDRESS says (external IP) */
    /* A dual allocation (RFC 8656 s.7.2, ADDITIONAL-ADDRESS-FAMILY) has a
     * second relayed socket of the other family: relay_fd2 < 0 when not.
     * Permissions, channels, lifetime and quota are the allocation's, shared
     * by both; the socket of the peer's family carries its data. */
    int relay_fd2;
    rtc_addr relayed2, advertised2;
    /* ADDRESS-ERROR-CODE of the Allocate success (family 0 = none): the
     * half of a dual allocation that could not be made, kept so that a
     * retransmitted Allocate gets the same answer */
    uint8_t addr_err_family;
    uint16_t addr_err_code;
    uint64_t expiry_ms;
    uint8_t alloc_tid[12]; /* the Allocate that created it (retransmissions) */
    uint32_t granted_s;    /* lifetime granted by that Allocate */
    char user[RLY_USER_MAX + 1];
    bool rest;       /* made with REST credentials (quota counts the ID) */
    uint8_t n_perms, n_chans;
    rly_perm perms[RLY_MAX_PERMS];
    rly_chan chans[RLY_MAX_CHANS];
    /* bandwidth token bucket (bytes), both directions together */
    uint64_t bw_tokens, bw_last_ms;
    uint32_t hnext; /* hash chain (slot index + 1; 0 = end) */
    /* The public id is "<worker>.<serial>" (rly_turn.worker): unique across
     * the process's workers and never reused in it; id is a slot index that
     * the next allocation may take. */
    uint32_t serial;
    uint64_t created_ms;
    /* what it relayed by direction (RLY_DIR_C2P / _P2C), and the RTP streams
     * in it (rly_rtpq.h); not carried by a takeover: they start at 0 there */
    uint64_t pkts[RLY_DIR_N], bytes[RLY_DIR_N];
    rly_rtpq q[RLY_DIR_N];
} rly_alloc;

typedef struct rly_table rly_table; /* opaque */

/* key: random per table so hash buckets cannot be aimed at. NULL on ENOMEM. */
rly_table *rly_table_new(uint64_t hash_key);
/* Frees the table and every allocation in it (callers close fds first). */
void rly_table_free(rly_table *t);

rly_alloc *rly_table_find(const rly_table *t, const rly_tuple *tu);
rly_alloc *rly_table_get(const rly_table *t, uint32_t id); /* NULL if not live */
/* A fresh zeroed allocation for tu, owned by user (kept in a->user),
 * inserted in the hash. NULL on ENOMEM. The table counts no quota: the
 * caller takes the allocation's unit from rly_quota first and gives it back
 * when it removes the allocation. */
rly_alloc *rly_table_add(rly_table *t, const rly_tuple *tu, const char *user);
/* Remove and free. */
void rly_table_remove(rly_table *t, rly_alloc *a);
size_t rly_table_count(const rly_table *t);
/* Iterate: start with *it = 0; returns NULL at the end. Removing the
 * returned allocation during the walk is allowed. */
rly_alloc *rly_table_next(const rly_table *t, uint32_t *it);

/* The "desired lifetime" of s.7.2 / s.8: 0 stays 0 (delete), otherwise
 * min(requested, max), but not below the default. */
uint32_t rly_lifetime(bool present, uint32_t requested, uint32_t def_s, uint32_t max_s);

/* The relayed socket for peers of family (AF_INET / AF_INET6), or -1 when
 * the allocation has no relayed address of that family. */
static inline int rly_alloc_fd_for(const rly_alloc *a, int family)
{
    if (family == a->relayed.family)
        return a->relay_fd;
    return a->relay_fd2 >= 0 && family == a->relayed2.family ? a->relay_fd2 : -1;
}
/* Its relayed address of family, or NULL. */
static inline const rtc_addr *rly_alloc_relayed_for(const rly_alloc *a, int family)
{
    if (family == a->relayed.family)
        return &a->relayed;
    return a->relay_fd2 >= 0 && family == a->relayed2.family ? &a->relayed2 : NULL;
}
static inline bool rly_alloc_has_family(const rly_alloc *a, int family)
{
    return rly_alloc_relayed_for(a, family) != NULL;
}

static inline bool rly_alloc_expired(const rly_alloc *a, uint64_t now_ms)
{
    return now_ms >= a->expiry_ms;
}
void rly_alloc_refresh(rly_alloc *a, uint32_t lifetime_s, uint64_t now_ms);
/* Seconds left (for the LIFETIME of a retransmitted Allocate response). */
uint32_t rly_alloc_remaining_s(const rly_alloc *a, uint64_t now_ms);

/* Install or refresh the permission for peer's IP. 0 or RTC_ELIMIT. */
int rly_alloc_permit(rly_alloc *a, const rtc_addr *peer, uint64_t now_ms);
bool rly_alloc_permitted(const rly_alloc *a, const rtc_addr *peer, uint64_t now_ms);

/* ChannelBind (s.11.2): binds chan to peer or refreshes that binding, and
 * installs/refreshes the permission for peer's IP. RTC_EEXIST when chan is
 * bound (or held after expiry) to another peer, or peer to another channel
 * (-> 400); RTC_ELIMIT when full. */
int rly_alloc_bind(rly_alloc *a, uint16_t chan, const rtc_addr *peer, uint64_t now_ms);
/* Live binding by number / by peer address, or NULL. */
const rly_chan *rly_alloc_chan_by_num(const rly_alloc *a, uint16_t chan, uint64_t now_ms);
const rly_chan *rly_alloc_chan_by_peer(const rly_alloc *a, const rtc_addr *peer,
                                       uint64_t now_ms);
/* Drop expired permissions and channels past their hold time. */
void rly_alloc_purge(rly_alloc *a, uint64_t now_ms);

/* The name the per-user quota counts: for REST usernames "EXPIRY:ID" the
 * ":ID" part, so fresh credentials of one member share its quota (static
 * user names hold no ':', so the two kinds never collide); otherwise the
 * username itself. */
static inline const char *rly_quota_key(const char *user, bool rest)
{
    const char *colon = rest ? strchr(user, ':') : NULL;
    return colon ? colon : user;
}

/* Token bucket (rtc_tbucket) over bw_tokens/bw_last_ms: true when len
 * bytes may pass now; rate 0 = unlimited, decided inline so the packet
 * path makes no call when no limit is configured. The burst is one
 * second's worth of rate. */
bool rly_alloc_bw_take_limited(rly_alloc *a, uint64_t rate, size_t len, uint64_t now_ms);
static inline bool rly_alloc_bw_take(rly_alloc *a, uint64_t rate, size_t len, uint64_t now_ms)
{
    return rate == 0 || rly_alloc_bw_take_limited(a, rate, len, now_ms);
}

#endif
