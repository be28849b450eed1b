/* rly_main.h - the relay's settings table (shared with the conf-sample
 * test) and its entry point. */
#ifndef RLY_MAIN_H
#define RLY_MAIN_H

#include <stdint.h>

#include "rtc_conf.h"

typedef struct {
    rtc_strlist listen, tls_listen, relay_ip, external_ip, user, allow_peer, deny_peer,
        auth_secret;
    char *cert, *key, *relay_ports, *realm, *metrics_listen, *log_level, *log_format;
    bool legacy_channels;
    int64_t max_allocations, max_allocations_per_user, max_lifetime, default_lifetime,
        bandwidth, threads, drain_seconds, nonce_ttl, max_tcp_per_ip, tcp_auth_timeout;
} rly_settings;

extern const rtc_conf_spec rly_conf_specs[];

/* The whole program; returns the exit status (0 clean stop or drained,
 * 1 runtime failure, 2 bad settings). */
int rly_main(int argc, char **argv);

#endif
