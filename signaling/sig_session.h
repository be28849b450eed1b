/* sig_session.h - the sessions of tsunagu-signal: what a client connection
 * does (join, resume, signal, leave...), the cluster's events, resume across
 * nodes (asking and owning side), drain and SIGHUP reload. No sockets here:
 * the transport (sig_ws.c, the only libwebsockets includer) owns the
 * connections, embeds one sig_client in each, and is reached back through
 * sig_server_ops. One thread: the lws service thread calls everything here.
 *
 * Protocol decisions stay in the pure modules this one calls: sig_proto
 * (messages), sig_room (the hub), sig_token, sig_turn, sig_admit, and the
 * resume state machine sig_resume. */
#ifndef SIG_SESSION_H
#define SIG_SESSION_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rtc_addr.h"
#include "rtc_metrics.h"
#include "sig_admit.h"
#include "sig_conf.h"
#include "sig_fleet_hook.h"
#include "sig_proto.h"
#include "sig_room.h"

/* WebSocket close codes we use (RFC 6455 s.7.4.1, 4000-4999 private). */
enum {
    SIG_CLOSE_GOING_AWAY = 1001, /* drain: the server is shutting down */
    SIG_CLOSE_POLICY = 1008,     /* rate-limit abuse, slow reader */
    SIG_CLOSE_TOO_BIG = 1009,    /* repeated oversized messages */
    SIG_CLOSE_RESUMED = 4001,    /* this member was resumed on another connection */
    SIG_CLOSE_KICKED = 4002      /* removed by an operator (admin API) */
};

typedef struct sig_server sig_server;
typedef struct sig_client sig_client;
struct sig_ho;

/* One client connection's session: embedded in the transport's connection
 * (sig_client_open fills it; the transport reads m, close_code and
 * close_reason). */
struct sig_client {
    sig_server *srv; /* NULL until open, and after closed */
    void *ud;        /* the transport's connection */
    sig_client *prev, *next;
    sig_member *m;
    sig_rate rate;
    uint64_t last_rl_error_us;
    int close_code; /* nonzero: close once the queue is out */
    const char *close_reason;
    bool keep;      /* on close, keep the member for resume */
    char peer[48];
    rtc_addr addr;  /* the client's address (TURN identity in open mode) */
    bool ip_counted; /* addr holds one count in the admission policy */
    bool ip_joined;  /* ... counted as joined (sig_admit_ip_joined) */
    /* cluster mode: a join waiting for Redis's answer (join_serial != 0) */
    uint64_t join_serial;
    sig_client *pprev, *pnext; /* the server's pending list */
    char *pj_room, *pj_name;
    char pj_id[SIG_ID_LEN + 1], pj_resume[33];
    json_t *pj_ice;
    struct sig_ho *ho; /* cluster mode: a resume waiting for another node */
    uint64_t opened_us; /* monotonic: when the connection opened (admin API) */
    uint64_t nmsgs;     /* client messages received on it (admin API) */
};

typedef struct {
    /* the member's queue has something (or overflowed: a slow reader) */
    void (*wake)(void *conn);
    /* close it once what is queued is out (close_code/close_reason set) */
    void (*close)(void *conn);
    /* cluster events are waiting: run sig_server_cluster_events soon (called
     * on the Redis thread: only poke the loop) */
    void (*poke)(void *ud);
    /* SIGHUP applied fresh settings: what the transport holds (TLS, idle) */
    void (*reloaded)(void *ud, const sig_conf *fresh);
    void *ud;
    size_t headroom; /* bytes the transport needs before each message */
} sig_server_ops;

/* Takes ownership of *conf (argv is kept for SIGHUP). NULL on failure. */
sig_server *sig_server_new(sig_conf *conf, int argc, char *const argv[],
                           const sig_server_ops *ops);
/* Cluster mode (conf->redis): connect; 0, or -1 (logged). Call once the
 * transport can be poked. */
int sig_server_start(sig_server *s);
/* Before the transport goes away: the cluster pokes nobody any more. */
void sig_server_mute(sig_server *s);
/* After every client closed. NULL is a no-op. */
void sig_server_free(sig_server *s);

const sig_conf *sig_server_conf(const sig_server *s);     /* current settings */
const sig_conf *sig_server_boot(const sig_server *s);     /* start-up settings */
sig_admit *sig_server_admission(sig_server *s);
uint64_t sig_server_connections(const sig_server *s);
bool sig_server_draining(const sig_server *s);
/* /healthz: NULL when healthy, else the reason (503). */
const char *sig_server_unhealthy(sig_server *s);
void sig_server_metrics(sig_server *s, rtc_buf *b); /* /metrics */
/* A message queued at queued_us went out at now_us (latency histogram). */
void sig_server_sent(sig_server *s, uint64_t queued_us, uint64_t now_us);

/* Timers and signals: run every tick; true when the server should stop. */
bool sig_server_tick(sig_server *s, uint64_t now_us);
void sig_server_reload(sig_server *s);                 /* SIGHUP */
void sig_server_terminate(sig_server *s, uint64_t now_us); /* SIGTERM */
/* Handle queued cluster events, a bounded number: true when more wait. */
bool sig_server_cluster_events(sig_server *s);

/* ---- for the admin API and status page (sig_admin.c) ---- */
sig_hub *sig_server_hub(sig_server *s);
/* the relay fleet (admin API /admin/canary); NULL when off */
sig_fleetd *sig_server_fleet(sig_server *s);
/* client messages received since start (every type, invalid ones included) */
uint64_t sig_server_messages_total(const sig_server *s);
/* cluster mode: this node's id; NULL without a cluster */
const char *sig_server_node(const sig_server *s);
/* Remove local member m (found with sig_hub_find_member): a live one gets
 * a `kicked` error with `message` and its connection closes (4002, no
 * resume); a detached one leaves its room now. */
void sig_server_kick(sig_server *s, sig_member *m, const char *message);

/* A connection opened: its session starts in the lobby. 0, or -1. */
int sig_client_open(sig_server *s, sig_client *c, void *conn, const char *peer,
                    const rtc_addr *addr, uint64_t now_us);
/* One complete text message from the client. */
void sig_client_message(sig_client *c, const char *buf, size_t len);
/* A message refused before parsing (binary, oversized): counted as invalid,
 * the client gets the error. */
void sig_client_refuse(sig_client *c, sig_code code, const char *message);
/* Close soon (at most once; keep: keep the member for resume). */
void sig_client_close(sig_client *c, int code, const char *reason, bool keep);
void sig_client_closed(sig_client *c, uint64_t now_us);

#endif
