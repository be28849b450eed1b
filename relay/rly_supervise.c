/* rly_supervise.c - the main thread after start-up (see rly_proc.h): it
 * reads signals and waits for the workers.
 *
 * SIGHUP loads flags + --config again and swaps in a new rly_cfg (users,
 * secret, peer rules, limits, TLS certificate) without touching
 * allocations; SIGTERM/SIGINT drain (a second one stops at once); SIGUSR2
 * starts a live takeover (rly_handover.c). */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "rly_proc.h"
#include "rtc_clock.h"
#include "rtc_err.h"
#include "rtc_log.h"
#include "rtc_notify.h"

/* Free the configurations and TLS contexts replaced by reloads once every
 * worker has taken the newest: none of them can be in use any more. Called
 * on each reload and from the 100 ms supervise tick, so SIGHUP can be sent
 * any number of times. */
static void free_retired(rly_proc *p)
{
    if (!p->n_old_cfg && !p->n_old_tls)
        return;
    for (size_t i = 0; i < p->n_workers; i++)
        if (!rly_worker_cfg_taken(p->workers[i]))
            return;
    for (size_t i = 0; i < p->n_old_cfg; i++)
        rly_cfg_free(p->old_cfg[i]);
    for (size_t i = 0; i < p->n_old_tls; i++)
        rly_tls_free(p->old_tls[i]);
    p->n_old_cfg = p->n_old_tls = 0;
}

static void reload(rly_proc *p)
{
    rly_settings ns;
    char err[512];
    rly_cfg *nc;
    rly_tls *nt = NULL;
    const char *fixed[8];
    size_t n_fixed;

    free_retired(p);
    if (p->n_old_cfg >= RLY_MAX_RETIRED || p->n_old_tls >= RLY_MAX_RETIRED) {
        /* only when workers stopped taking new configurations */
        RTC_LOG(RTC_LOG_ERROR, NULL, "reload refused: %d replaced configurations still in use",
                RLY_MAX_RETIRED);
        atomic_fetch_add(&p->reloads.failed, 1);
        return;
    }
    memset(&ns, 0, sizeof ns);
    if (rtc_conf_load(rly_conf_specs, &ns, p->argc, p->argv, err, sizeof err)) {
        RTC_LOG(RTC_LOG_ERROR, NULL, "reload failed, keeping the old settings: %s", err);
        atomic_fetch_add(&p->reloads.failed, 1);
        return;
    }
    n_fixed = rtc_conf_restart_changed(rly_conf_specs, &p->s, &ns, fixed, 8);
    if (n_fixed) {
        /* the sockets and threads stay as they are: say so, and keep the
         * running values so the settings keep describing them (a takeover
         * exports the listeners by these) */
        char keys[256];
        size_t kl = 0;
        keys[0] = '\0';
        for (size_t i = 0; i < n_fixed && i < 8 && kl < sizeof keys; i++)
            kl += (size_t)snprintf(keys + kl, sizeof keys - kl, "%s%s", i ? ", " : "", fixed[i]);
        RTC_LOG(RTC_LOG_WARN, NULL, "SIGHUP: %s change%s need%s a restart; ignored", keys,
                n_fixed > 1 ? "s" : "", n_fixed > 1 ? "" : "s");
        rly_settings_keep_fixed(&p->s, &ns);
    }
    nc = rly_cfg_build(&ns, &p->base, err, sizeof err);
    if (!nc || (p->has_tls && rly_settings_tls(&ns, &nt, err, sizeof err))) {
        RTC_LOG(RTC_LOG_ERROR, NULL, "reload failed, keeping the old settings: %s", err);
        atomic_fetch_add(&p->reloads.failed, 1);
        rly_cfg_free(nc);
        rtc_conf_dispose(rly_conf_specs, &ns);
        return;
    }
    for (size_t i = 0; i < p->n_workers; i++)
        rly_worker_post_cfg(p->workers[i], nc, nt);
    p->old_cfg[p->n_old_cfg++] = p->cfg;
    p->cfg = nc;
    if (nt) {
        p->old_tls[p->n_old_tls++] = p->tls;
        p->tls = nt;
    }
    rly_settings_log(&ns);
    rly_settings_warn(&ns, &p->base, false);
    RTC_LOG(RTC_LOG_INFO, NULL,
            "reloaded: %zu static user(s), %zu REST secret(s), %zu allow / %zu deny rule(s)%s",
            ns.user.n, ns.auth_secret.n, ns.allow_peer.n, ns.deny_peer.n,
            nt ? ", TLS certificate" : "");
    rtc_conf_dispose(rly_conf_specs, &p->s);
    p->s = ns;
    atomic_fetch_add(&p->reloads.ok, 1);
}

static void on_signal(rly_proc *p, int signo)
{
    switch (signo) {
    case SIGUSR2:
        rly_handover_start(p);
        break;
    case SIGHUP:
        reload(p);
        break;
    case SIGTERM:
    case SIGINT:
        if (p->draining) {
            RTC_LOG(RTC_LOG_INFO, NULL, "second stop signal: exiting now");
            rly_pool_stop(p);
        } else {
            size_t live = rly_quota_total(p->quota);
            RTC_LOG(RTC_LOG_INFO, NULL,
                    "draining: new allocations refused, %zu live, up to %lld s", live,
                    (long long)p->s.drain_seconds);
            p->draining = true;
            p->drain_deadline_ms = rtc_clock_mono_ms() + (uint64_t)p->s.drain_seconds * 1000u;
            rly_pool_drain(p);
        }
        break;
    default:
        break;
    }
}

/* The main thread only reads signals and waits for the workers. */
static int supervise(rly_proc *p, int sfd)
{
    for (;;) {
        /* signals; the takeover in progress; the control socket's
         * listener (here, on the main thread: never on a packet worker) */
        struct pollfd pfd[3] = {{.fd = sfd, .events = POLLIN},
                                {.fd = p->to_sock, .events = POLLIN},
                                {.fd = p->ctl_fd, .events = POLLIN}};
        struct signalfd_siginfo si;
        size_t done;

        /* a negative fd is skipped by poll */
        if (poll(pfd, 3, 100) > 0) {
            if (pfd[0].revents)
                while (read(sfd, &si, sizeof si) == (ssize_t)sizeof si)
                    on_signal(p, (int)si.ssi_signo);
            /* the HELO (or the end of a child that failed early) */
            if (p->to_sock >= 0 && pfd[1].revents && pfd[1].fd == p->to_sock)
                rly_handover_serve(p);
            /* after the takeover's turn: a connection accepted now waits
             * for its HELO in the next one */
            if (p->ctl_fd >= 0 && pfd[2].revents && pfd[2].fd == p->ctl_fd)
                rly_control_accept(p);
        }
        rly_handover_tick(p);
        done = rly_pool_done(p);
        if (!done)
            free_retired(p);
        if (done == p->n_workers)
            return 0;
        if (done && !p->stopping) {
            /* a worker failed on its own: stop the others, exit non-zero */
            rly_pool_stop(p);
            return 1;
        }
        if (p->draining && !p->stopping) {
            /* the shared quota counts an allocation before its success
             * response leaves, so a drain never ends under a fresh one */
            size_t left = rly_quota_total(p->quota);
            if (left == 0 || rtc_clock_mono_ms() >= p->drain_deadline_ms) {
                RTC_LOG(RTC_LOG_INFO, NULL, "drain finished with %zu allocation(s) left", left);
                rly_pool_stop(p);
            }
        }
    }
}

int rly_supervise_signals(rly_proc *p, char *err, size_t errlen)
{
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGHUP);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGUSR2);
    sigprocmask(SIG_BLOCK, &mask, &p->orig_mask);
    signal(SIGPIPE, SIG_IGN);
    p->sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (p->sfd < 0) {
        snprintf(err, errlen, "signalfd: %s", strerror(errno));
        return RTC_EMSG;
    }
    return 0;
}

int rly_supervise_run(rly_proc *p)
{
    char note[64];
    int status;

    if (!p->threads && rly_pool_start(p))
        return 1;
    /* the listeners serve from here on (sockets bound before the threads) */
    if (p->selfcheck && rly_selfcheck_start(p->selfcheck))
        RTC_LOG(RTC_LOG_ERROR, "self-check", "not run: cannot start its thread");
    /* under systemd (Type=notify): ready, and after a takeover the main
     * process of the unit from now on */
    snprintf(note, sizeof note, "MAINPID=%d\nREADY=1", (int)getpid());
    rtc_notify(note);
    status = supervise(p, p->sfd);
    if (rly_pool_join(p))
        status = 1;
    RTC_LOG(RTC_LOG_INFO, NULL, "stopped");
    return status;
}


void rly_supervise_dispose(rly_proc *p)
{
    rly_cfg_free(p->cfg);
    rly_tls_free(p->tls);
    for (size_t i = 0; i < p->n_old_cfg; i++)
        rly_cfg_free(p->old_cfg[i]);
    for (size_t i = 0; i < p->n_old_tls; i++)
        rly_tls_free(p->old_tls[i]);
    p->cfg = NULL;
    p->tls = NULL;
    p->n_old_cfg = p->n_old_tls = 0;
}
