/* rly_main.c - tsunagu-relay: start-up and shutdown (see rly_proc.h for
 * the other jobs of the main thread, one file each).
 *
 * Load the settings (rly_settings.h), build the shared resources and the
 * first rly_cfg, then either open fresh workers or, when started by a
 * running relay's SIGUSR2, take its sockets and allocations over
 * (rly_adopt.c); then supervise until the workers stop. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rly_announce.h"
#include "rly_main.h"
#include "rly_proc.h"
#include "rtc_conf.h"
#include "rtc_crypto.h"
#include "rtc_err.h"
#include "rtc_log.h"
#include "rtc_version.h"

static rtc_addr *parse_addrs(const rtc_strlist *l)
{
    rtc_addr *v = calloc(l->n + 1, sizeof *v);
    for (size_t i = 0; v && i < l->n; i++)
        rtc_addr_parse_hostport(l->v[i], &v[i]);
    return v;
}

/* Settings -> everything the workers need. 0, or RTC_EMSG with err. */
static int prepare(rly_proc *p, char *err, size_t errlen)
{
    rly_settings_log(&p->s);
    p->has_tls = p->s.tls_listen.n > 0;
    if (p->s.announce && !p->s.announce_url.n) {
        snprintf(err, errlen, "announce: needs at least one announce-url to hand out");
        return RTC_EMSG;
    }
    if (!p->s.listen.n && !p->s.tls_listen.n) {
        snprintf(err, errlen, "listen: at least one listener is needed");
        return RTC_EMSG;
    }
    if (rly_settings_base(&p->s, &p->base, err, errlen) ||
        rly_settings_tls(&p->s, &p->tls, err, errlen) ||
        !(p->cfg = rly_cfg_build(&p->s, &p->base, err, errlen)))
        return RTC_EMSG;
    rly_settings_warn(&p->s, &p->base, true);
    p->listen = parse_addrs(&p->s.listen);
    p->tls_listen = parse_addrs(&p->s.tls_listen);
    rtc_addr_parse_hostport(p->s.metrics_listen, &p->metrics);
    p->quota = rly_quota_new();
    p->ports = rly_ports_new(p->base.port_lo, p->base.port_hi);
    p->iplimit = rly_iplimit_new();
    p->workers = calloc(rly_settings_workers(&p->s), sizeof *p->workers);
    if (!p->listen || !p->tls_listen || !p->quota || !p->ports || !p->iplimit || !p->workers ||
        rtc_random(p->nonce_key, sizeof p->nonce_key)) {
        snprintf(err, errlen, "out of memory");
        return RTC_EMSG;
    }
    if (p->s.self_check) {
        rly_selfcheck_params sp = {.s = &p->s, .cfg = p->cfg, .listen = p->listen,
                                   .tls_listen = p->tls_listen, .ports = p->ports};
        char why[300];
        /* a check that cannot be planned is logged, never fatal */
        if (!(p->selfcheck = rly_selfcheck_new(&sp, why, sizeof why)))
            RTC_LOG(RTC_LOG_ERROR, "self-check", "not run: %s", why);
    }
    return 0;
}

/* --announce: the registry heartbeat's thread, or NULL (off, or it could
 * not start: logged, the relay serves anyway). */
static rly_announce *announce(const rly_proc *p)
{
    rly_announce_params ap;
    rly_announce *a;
    char err[256];
    if (!p->s.announce) /* (then announce-url may be empty) */
        return NULL;
    ap = (rly_announce_params){.redis = p->s.announce,
                               .name = p->s.announce_name ? p->s.announce_name
                                                          : p->s.announce_url.v[0],
                               .generation = p->s.generation ? p->s.generation : rtc_version(),
                               .urls = p->s.announce_url.v, .n_urls = p->s.announce_url.n,
                               .workers = p->workers, .n_workers = p->n_workers};
    if (!(a = rly_announce_start(&ap, err, sizeof err)))
        RTC_LOG(RTC_LOG_ERROR, "announce", "not announcing: %s", err);
    return a;
}

static void app_dispose(rly_proc *p)
{
    rtc_addr held;
    int fd;

    rly_pool_free(p);
    /* after the admin server (it reads its gauges), before the port pool
     * (its peer socket holds a port) */
    rly_selfcheck_free(p->selfcheck);
    p->selfcheck = NULL;
    /* reserved ports nobody claimed */
    while (p->quota && (fd = rly_quota_resv_expired(p->quota, UINT64_MAX, &held)) >= 0)
        rly_ports_close(p->ports, fd, &held);
    rly_quota_free(p->quota);
    rly_ports_free(p->ports);
    rly_iplimit_free(p->iplimit);
    if (p->sfd >= 0)
        close(p->sfd);
    if (p->to_sock >= 0)
        close(p->to_sock);
    if (p->adopt_sock >= 0)
        close(p->adopt_sock);
    /* after a takeover the path is the new relay's */
    rly_control_close(p, !p->handed_over);
    free(p->listen);
    free(p->tls_listen);
    rly_supervise_dispose(p);
    rtc_conf_dispose(rly_conf_specs, &p->s);
}

int rly_main(int argc, char **argv)
{
    rly_proc p;
    char err[512];
    int rc, status;
    bool adopting;

    memset(&p, 0, sizeof p);
    p.argc = argc;
    p.argv = argv;
    p.sfd = -1;
    p.to_sock = -1;
    p.ctl_fd = -1;
    p.adopt_sock = rly_adopt_sock();
    rly_handover_init(&p, argc > 0 ? argv[0] : NULL);
    rc = rtc_conf_load(rly_conf_specs, &p.s, argc, argv, err, sizeof err);
    if (rc == RTC_CONF_HELP) {
        printf("usage: tsunagu-relay [--config FILE] [flags]\n"
               "TURN relay (RFC 8656, RFC 8489, RFC 6156). Every flag is also a config key.\n");
        rtc_conf_usage(rly_conf_specs, stdout);
        return 0;
    }
    if (rc == RTC_CONF_VERSION) {
        rtc_version_print(stdout, "tsunagu-relay");
        return 0;
    }
    if (rc) {
        fprintf(stderr, "tsunagu-relay: %s\n", err);
        if (p.adopt_sock >= 0) {
            rly_to_msg_send(p.adopt_sock, "NAK_", err, strlen(err), NULL, 0);
            close(p.adopt_sock);
        }
        return 2;
    }
    /* started by SIGUSR2 (the socketpair wins: a relay started with
     * --takeover-from re-executes itself with the same flags), or by hand
     * with --takeover-from; rly_adopt closes the socket */
    adopting = p.adopt_sock >= 0 || p.s.takeover_from;
    if (p.adopt_sock >= 0)
        p.adopt_pid = getppid();
    if (prepare(&p, err, sizeof err) || rly_supervise_signals(&p, err, sizeof err)) {
        fprintf(stderr, "tsunagu-relay: %s%s\n", adopting ? "takeover refused: " : "", err);
        if (p.adopt_sock >= 0)
            rly_to_msg_send(p.adopt_sock, "NAK_", err, strlen(err), NULL, 0);
        status = 2;
    } else if (adopting && p.adopt_sock < 0 &&
               (p.adopt_sock = rly_control_connect(p.s.takeover_from, &p.adopt_pid, err,
                                                   sizeof err)) < 0) {
        fprintf(stderr, "tsunagu-relay: %s\n", err);
        status = 2;
    } else if (adopting ? rly_adopt(&p, err, sizeof err)
                        : rly_control_open(&p, false, err, sizeof err) ||
                              rly_pool_create(&p, NULL, NULL, err, sizeof err)) {
        fprintf(stderr, "tsunagu-relay: %s%s\n", adopting ? "takeover refused: " : "", err);
        if (p.adopt_sock >= 0)
            rly_to_msg_send(p.adopt_sock, "NAK_", err, strlen(err), NULL, 0);
        status = 2;
    } else {
        /* after GO the takeover cannot be undone: without a control socket
         * this relay still serves (SIGUSR2 works), so say it loudly */
        if (adopting && rly_control_open(&p, true, err, sizeof err))
            RTC_LOG(RTC_LOG_ERROR, NULL, "no control socket after the takeover: %s", err);
        rly_announce *ann = announce(&p);
        status = rly_supervise_run(&p);
        rly_announce_stop(ann); /* before the workers it reads are freed */
    }
    app_dispose(&p);
    return status;
}
