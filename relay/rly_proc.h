/* rly_proc.h - the state of one relay process and the jobs of its main
 * thread, one file each:
 *
 *   rly_main.c       start-up and shutdown: settings, shared resources, then
 *                    either fresh workers or a takeover (adopt), then supervise
 *   rly_settings.c   the settings table and settings -> rly_cfg (no state)
 *   rly_pool.c       the workers and their threads, told as one; the admin
 *                    server on worker 0's loop, with the hooks that sum them
 *   rly_supervise.c  signals, reload (SIGHUP), drain (SIGTERM), the wait loop
 *   rly_handover.c   live takeover, parent side (SIGUSR2: fork+exec, hand over)
 *   rly_adopt.c      live takeover, child side (take the running relay's state)
 *   rly_control.c    the control socket (--control-socket): a new relay that
 *                    is not our child connects there instead of SIGUSR2's
 *                    socketpair, then the same handover runs; and its client
 *                    side (--takeover-from)
 *   rly_selfcheck.c  --self-check: turncheck's checks against this relay, on
 *                    a thread of its own once the workers serve
 *
 * Calls go one way only: main -> adopt, supervise, handover, pool, control;
 * supervise -> handover -> pool; supervise -> control; handover -> control;
 * adopt -> pool; all of them -> settings;
 * main (new, free), supervise (start) and pool (its gauges) -> selfcheck.
 * rly_proc is the main thread's alone; the workers see only what
 * rly_worker_params lends them (the shared quota, port pool and per-IP
 * table, the nonce key), and the admin server's hooks read the workers'
 * counters and the reload counters from worker 0's thread. */
#ifndef RLY_PROC_H
#define RLY_PROC_H

#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "rly_admin.h"
#include "rly_iplimit.h"
#include "rly_ports.h"
#include "rly_selfcheck.h"
#include "rly_settings.h"
#include "rly_takeover.h"
#include "rly_worker.h"

#define RLY_MAX_RETIRED 4096

/* SIGHUP reloads, counted by the main thread and shown on /metrics: a
 * refused reload leaves the old settings running, which only the log and
 * this counter tell an operator. */
typedef struct {
    _Atomic uint64_t ok, failed;
    /* live takeovers (SIGUSR2), carried from process to process */
    _Atomic uint64_t takeover_ok, takeover_failed;
} rly_reloads;

typedef struct {
    /* start-up (rly_main.c) */
    int argc;
    char **argv;
    rly_settings s; /* current: a reload replaces it */
    rly_cfg_base base;
    bool has_tls;
    rtc_addr *listen, *tls_listen, metrics;
    uint8_t nonce_key[32];
    rly_quota *quota;     /* shared by the workers */
    rly_iplimit *iplimit; /* shared by the workers */
    rly_ports *ports;     /* shared by the workers */
    rly_reloads reloads;  /* read by the admin server (worker 0's thread) */
    double start_time_s;  /* process_start_time_seconds */
    rly_selfcheck *selfcheck; /* --self-check, else NULL; its gauges are read by the
                               * admin server, so it exists before the workers */

    /* the workers and the admin server on worker 0's loop (rly_pool.c);
     * the admin's hooks read workers and reloads from worker 0's thread */
    rly_worker **workers;
    size_t n_workers;
    rly_admin *admin;
    pthread_t *threads; /* a takeover child starts them before its ACK */
    size_t n_started;
    bool stopping;

    /* configuration and signals (rly_supervise.c) */
    rly_cfg *cfg; /* current */
    rly_tls *tls; /* current */
    /* replaced by reloads: workers may still use them until they take the
     * new ones, so they are freed once every worker has */
    rly_cfg *old_cfg[RLY_MAX_RETIRED];
    rly_tls *old_tls[RLY_MAX_RETIRED];
    size_t n_old_cfg, n_old_tls;
    int sfd;
    sigset_t orig_mask; /* restored for a takeover child */
    bool draining;
    uint64_t drain_deadline_ms;

    /* takeover, parent side (rly_handover.c) */
    char exe[PATH_MAX]; /* this binary's path at start-up (an upgrade replaces it) */
    pid_t to_pid;       /* the child (or the control socket's peer; 0 = unknown) */
    int to_sock;        /* our end of the socketpair, -1 if none */
    bool to_child;      /* to_sock is SIGUSR2's socketpair, not a control connection */
    uint64_t to_deadline_ms; /* for the child's HELO */
    bool handed_over;
    pid_t reap_pid; /* a failed child to wait for */
    uint64_t reap_deadline_ms;

    /* takeover, child side (rly_adopt.c): the socketpair end from
     * RLY_TO_ENV or the connection to --takeover-from, -1 if none */
    int adopt_sock;
    pid_t adopt_pid; /* the relay we take over from (0 = in another PID namespace) */

    /* control socket (rly_control.c): the listener, -1 if none; the
     * socket file it made (so that only that one is ever unlinked) */
    int ctl_fd;
    dev_t ctl_dev;
    ino_t ctl_ino;
} rly_proc;

/* ---- rly_pool.c ---- */
/* Open every worker's sockets and the admin server's (start-up errors are
 * reported before any thread runs); with st, take the running relay's
 * listening sockets from fds instead. 0 or RTC_EMSG with err. */
int rly_pool_create(rly_proc *p, const rly_to_state *st, int *fds, char *err, size_t errlen);
/* One thread per worker. 0, or -1 with those that started stopped and
 * joined (a worker told to stop while paused exits without reading). */
int rly_pool_start(rly_proc *p);
/* Wait for the started worker threads; 1 if one failed, else 0. */
int rly_pool_join(rly_proc *p);
void rly_pool_stop(rly_proc *p);   /* every worker: stop (sets p->stopping) */
void rly_pool_drain(rly_proc *p);  /* every worker: drain */
void rly_pool_pause(rly_proc *p);  /* every worker: park at the next loop boundary */
void rly_pool_resume(rly_proc *p); /* every worker: run again */
/* Count of workers whose loop has returned. */
size_t rly_pool_done(const rly_proc *p);
void rly_pool_free(rly_proc *p); /* the admin server first, then the workers */

/* ---- rly_supervise.c ---- */
/* Signals go to the main thread only: blocked before any thread starts, so
 * every worker inherits the mask, and read through a signalfd. */
int rly_supervise_signals(rly_proc *p, char *err, size_t errlen);
/* Run the workers (threads started unless a takeover did), handle signals
 * until they stop; the exit status. */
int rly_supervise_run(rly_proc *p);
/* Free the configurations and TLS contexts of p (current and retired). */
void rly_supervise_dispose(rly_proc *p);

/* ---- rly_handover.c ---- */
/* The path a takeover executes, fixed at start-up into p->exe. */
void rly_handover_init(rly_proc *p, const char *argv0);
void rly_handover_start(rly_proc *p); /* SIGUSR2 */
void rly_handover_serve(rly_proc *p); /* p->to_sock readable */
/* Every supervise turn: the child's start deadline, a failed child reaped. */
void rly_handover_tick(rly_proc *p);

/* ---- rly_adopt.c ---- */
/* The socketpair end a parent relay passed in RLY_TO_ENV, or -1. */
int rly_adopt_sock(void);
/* Take the running relay's sockets and UDP allocations over (we were
 * started by its SIGUSR2). 0, or RTC_EMSG with err (the parent is told why
 * and keeps serving). Closes p->adopt_sock. */
int rly_adopt(rly_proc *p, char *err, size_t errlen);

/* ---- rly_control.c ---- */
/* A control connection must say HELO within this; else it is closed. */
#define RLY_CTL_HELO_MS 3000
#define RLY_CTL_HELO_TEXT "3 s"
/* Listen on --control-socket (nothing without it): made under a temporary
 * name, mode 0600, and renamed over the path. A path that is not a socket
 * is refused; a socket there is replaced only if nothing answers on it, or
 * with `replace` (we just took over from the relay serving it). 0, or
 * RTC_EMSG with err. */
int rly_control_open(rly_proc *p, bool replace, char *err, size_t errlen);
/* The listener is readable: accept (a few per call), check the peer's
 * uid, and make the first one the takeover in progress (p->to_sock); the
 * others are told why not (NAK_) and closed. Supervisor thread only. */
void rly_control_accept(rly_proc *p);
/* Close the listener; with `unlink_ours`, remove the socket file if it is
 * still the one we made (after a takeover the new relay's is there). */
void rly_control_close(rly_proc *p, bool unlink_ours);
/* Tell the peer why not, without blocking (best effort): NAK_ reason. */
void rly_control_nak(int sock, const char *why);
/* --takeover-from: connect to the control socket at path, after checking
 * that it is a socket owned by us or root with no group/other access, and
 * that the process serving it runs as our uid or root. The connected
 * socket (the peer's pid in *peer), or -1 with err. */
int rly_control_connect(const char *path, pid_t *peer, char *err, size_t errlen);

#endif
