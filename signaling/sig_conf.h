/* sig_conf.h - tsunagu-signal settings: the one rtc_conf table (DESIGN.md's
 * signaling flags plus operational ones) and the immutable struct it fills.
 * SIGHUP builds a fresh struct from the same argv and swaps it in. */
#ifndef SIG_CONF_H
#define SIG_CONF_H

#include <stddef.h>
#include <stdint.h>

#include "rtc_addr.h"
#include "rtc_conf.h"

typedef struct {
    char *listen, *cert, *key, *turn_secret, *redis;
    char *log_level, *log_format;
    rtc_strlist turn_url;
    rtc_strlist token_secret; /* none: open rooms; several: rotation (sig_token.h) */
    int64_t turn_ttl, max_room_size, max_rooms, max_message_bytes, rate_limit;
    int64_t resume_seconds, drain_seconds, idle_timeout, abuse_seconds;
    int64_t send_queue_messages, send_queue_bytes, max_connections;
    int64_t redis_node_ttl, redis_queue;
    rtc_strlist allowed_origin;     /* admission (sig_admit.h) */
    int64_t max_connections_per_ip;
    int64_t max_held_per_ip, max_room_creates_per_ip_per_min; /* sig_addrlim.h */
    /* admin API and status page (sig_admin.h): the bearer token, given
     * directly or read from admin_token_file at load (start and SIGHUP) */
    char *admin_token, *admin_token_file;
    rtc_strlist relay_healthz; /* status page: relays' /healthz (sig_rhealth.h) */
    int64_t max_unjoined_per_ip, max_joins_per_ip_per_sec;    /* issue 14 item 9 */
    /* cluster: room streams (sig_cluster_st.h), hops between nodes (issue 14 item 7) */
    int64_t redis_stream_len, redis_stream_seconds, max_resumes_per_member_per_min;
    /* the relay fleet (sig_fleet_hook.h, docs/fleet.md) */
    rtc_strlist relay, canary;
    char *relay_registry, *canary_max_loss_delta, *canary_max_jitter_delta;
    int64_t relay_max_load, canary_min_sample, canary_window, canary_hold;
    int64_t keepalive_batch_ms; /* keepalive pings in rounds (issue 16 item 4) */
} sig_conf;

/* --redis URL, parsed: redis://[[USER]:PASSWORD@]HOST[:PORT][/DB] (HOST may
 * be [IPv6]) or unix:///PATH[?db=DB]. No percent-decoding. The password is
 * never logged; sig_redis_url_describe prints the rest. */
typedef struct {
    char host[256];  /* TCP host, "" for a unix socket */
    int port;        /* 6379 by default */
    char path[108];  /* unix socket path, "" for TCP */
    int db;          /* SELECT, 0 by default */
    char user[128];  /* ACL user, "" for none (AUTH PASSWORD) */
    char pass[256];  /* "" for none */
} sig_redis_url;

/* 0, or RTC_EMSG with the reason in err (never echoing the password). */
int sig_redis_url_parse(const char *s, sig_redis_url *u, char *err, size_t errlen);
/* "redis://HOST:PORT/DB" or "unix://PATH?db=DB", without credentials. */
void sig_redis_url_describe(const sig_redis_url *u, char *out, size_t outlen);

/* --relay-healthz URL: "http://IP:PORT[/PATH]" (literal address: the status
 * page's checks never wait for DNS) -> the address and the path
 * ("/healthz" when none). 0, or RTC_EMSG with the reason. */
#define SIG_RHEALTH_URL_MAX 256
int sig_rhealth_url_parse(const char *v, rtc_addr *addr, char *path, char *err, size_t errlen);

extern const rtc_conf_spec sig_conf_specs[];

/* Load and cross-check: cert needs key and must match it (both files are
 * loaded), a turn: or turns: URL needs turn-secret, listen must be an address
 * of this host. 0, RTC_CONF_HELP, RTC_CONF_VERSION or RTC_EMSG. Used at
 * start-up and by every reload (a failing one keeps the old settings). */
int sig_conf_load(sig_conf *out, int argc, char *const argv[], char *err, size_t errlen);
void sig_conf_dispose(sig_conf *c);

/* Serve until SIGTERM's drain completes. Returns the exit status. argv is
 * kept for SIGHUP reloads. Takes ownership of *conf. */
int sig_ws_run(sig_conf *conf, int argc, char *const argv[]);

#endif
