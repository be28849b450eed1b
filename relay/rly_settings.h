/* rly_settings.h - the relay's settings table and what it becomes.
 *
 * One rtc_conf_spec table holds every flag of DESIGN.md's relay table (each
 * also a config key) plus the extras documented in docs/relay.md; the same
 * table drives --help and the conf-sample test (test_rly_conf). Start-up
 * fails on any bad value with a message naming the key.
 *
 * The settings become an immutable rly_cfg that workers borrow; a reload
 * builds a new one from freshly loaded settings. Pure functions of the
 * settings (plus the interfaces of the host for a wildcard listener): no
 * state, used by the main thread only. */
#ifndef RLY_SETTINGS_H
#define RLY_SETTINGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rly_tls.h"
#include "rly_turn.h"
#include "rtc_addr.h"
#include "rtc_conf.h"

typedef struct {
    rtc_strlist listen, tls_listen, relay_ip, external_ip, user, allow_peer, deny_peer,
        auth_secret;
    char *cert, *key, *relay_ports, *realm, *metrics_listen, *log_level, *log_format;
    char *control_socket, *takeover_from; /* takeover between processes (rly_control.c) */
    char *default_family; /* allocation-default-address-family: ipv4, ipv6 or keep */
    char *admin_token; /* the admin API under /admin/ (rly_admin_api.h); NULL = off */
    bool legacy_channels, self_check;
    bool ktls; /* SSL_OP_ENABLE_KTLS on the TLS context (issue 16 item 2) */
    int64_t max_allocations, max_allocations_per_user, max_lifetime, default_lifetime,
        bandwidth, threads, drain_seconds, nonce_ttl, max_tcp_per_ip, tcp_auth_timeout;
    int64_t max_tls_handshakes, max_tls_handshakes_per_ip;
    int64_t max_allocations_per_rest_id, max_preauth_per_ip; /* issue 14 item 9 */
    char *announce, *announce_name, *generation; /* fleet registry (rly_announce.h) */
    rtc_strlist announce_url;
} rly_settings;

extern const rtc_conf_spec rly_conf_specs[];

/* control-socket / takeover-from: the longest path accepted, so that
 * PATH.<pid>.new fits a sockaddr_un */
#define RLY_CTL_PATH_MAX 90

/* What start-up fixes and a reload keeps: the relayed sockets are bound to
 * these addresses and ports. */
typedef struct {
    rtc_addr relay_ip[2]; /* [0] IPv4, [1] IPv6; family 0 = none */
    uint16_t port_lo, port_hi;
} rly_cfg_base;

/* The relay addresses and port range of s (start-up only): the relay-ip
 * settings, else the listen addresses, else (wildcard) an interface
 * address. 0, or RTC_EMSG with err. */
int rly_settings_base(const rly_settings *s, rly_cfg_base *b, char *err, size_t errlen);

/* What starts but probably does not work, logged at warn level (the
 * texts are in docs/relay.md, "Refused and warned"): an external-ip that is
 * private, link-local or loopback (said differently when the relay address
 * of its family is public: then the external-ip is the mistake), and, with
 * `ports` (start-up: the range is fixed after it), a relay-ports range that
 * overlaps the kernel's ephemeral port range. Returns how many it logged. */
size_t rly_settings_warn(const rly_settings *s, const rly_cfg_base *b, bool ports);

/* Settings -> immutable runtime configuration. NULL with err: also when
 * there is no credential at all (no user, no auth-secret), or when the
 * PRIVATE of an external-ip PUBLIC/PRIVATE is not b's relay address. */
rly_cfg *rly_cfg_build(const rly_settings *s, const rly_cfg_base *b, char *err, size_t errlen);
void rly_cfg_free(rly_cfg *c); /* NULL is a no-op */

/* The TLS server context of s: *tls NULL without tls-listen. 0, or RTC_EMSG
 * with err. */
int rly_settings_tls(const rly_settings *s, rly_tls **tls, char *err, size_t errlen);

/* Worker threads: --threads, 0 = the number of cores. */
size_t rly_settings_workers(const rly_settings *s);

/* A reload: the settings flagged RTC_CONF_RESTART (listeners, relay
 * addresses and ports, metrics-listen, threads) take their running values
 * back from `running` into `fresh` (the values swap, so disposing `running`
 * afterwards frees what fresh had). */
void rly_settings_keep_fixed(rly_settings *running, rly_settings *fresh);

/* Apply log-level / log-format. */
void rly_settings_log(const rly_settings *s);

#endif
