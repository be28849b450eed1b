/* sig_conf.h - tsunagu-signal settings: the one rtc_conf table (DESIGN.md's
 * signaling flags plus operational ones) and the immutable struct it fills.
 * SIGHUP builds a fresh struct from the same argv and swaps it in. */
#ifndef SIG_CONF_H
#define SIG_CONF_H

#include <stdint.h>

#include "rtc_conf.h"

typedef struct {
    char *listen, *cert, *key, *turn_secret, *redis;
    char *log_level, *log_format;
    rtc_strlist turn_url;
    rtc_strlist token_secret; /* none: open rooms; several: rotation (sig_token.h) */
    int64_t turn_ttl, max_room_size, max_rooms, max_message_bytes, rate_limit;
    int64_t resume_seconds, drain_seconds, idle_timeout, abuse_seconds;
    int64_t send_queue_messages, send_queue_bytes, max_connections;
    rtc_strlist allowed_origin;     /* admission (sig_admit.h) */
    int64_t max_connections_per_ip;
} sig_conf;

extern const rtc_conf_spec sig_conf_specs[];

/* Load and cross-check (cert needs key, ...). 0, RTC_CONF_HELP or RTC_EMSG. */
int sig_conf_load(sig_conf *out, int argc, char *const argv[], char *err, size_t errlen);
void sig_conf_dispose(sig_conf *c);

/* Serve until SIGTERM's drain completes. Returns the exit status. argv is
 * kept for SIGHUP reloads. Takes ownership of *conf. */
int sig_ws_run(sig_conf *conf, int argc, char *const argv[]);

#endif
