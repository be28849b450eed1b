/* rly_handover.c - live takeover, parent side (SIGUSR2; docs/relay.md
 * "Live upgrade"; the messages and the blob are rly_takeover.h's).
 *
 * SIGUSR2 forks and executes the binary on disk with one end of a
 * socketpair; when the new process says HELO the workers are paused at a
 * loop boundary, their listening sockets and UDP allocations are sent, and
 * after the child's ACK and our GO this process keeps only its TCP/TLS
 * connections and drains them as on SIGTERM. Any failure before GO leaves
 * this process serving with everything it had. Main thread.
 *
 * The same exchange serves a relay that is not our child: rly_control.c
 * accepts its connection on --control-socket into p->to_sock (to_child
 * false), and everything from HELO on is this file's, unchanged. What
 * differs is only what a child has and a stranger has not: no process to
 * reap, no MAINPID or SIGHUP passed on (it is another service's process,
 * maybe in another PID namespace), and a connection that never says a
 * valid HELO is not a takeover (not counted). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rly_proc.h"
#include "rtc_clock.h"
#include "rtc_err.h"
#include "rtc_log.h"
#include "rtc_notify.h"

/* The environment of the child: ours, with RLY_TO_ENV naming its end. */
static char **child_env(int fd, char **mine_out)
{
    extern char **environ;
    size_t n = 0, k = 0, pl = strlen(RLY_TO_ENV "=");
    char **env;
    char *mine;

    while (environ[n])
        n++;
    env = calloc(n + 2, sizeof *env);
    mine = malloc(pl + 16);
    if (!env || !mine) {
        free(env);
        free(mine);
        return NULL;
    }
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], RLY_TO_ENV "=", pl))
            env[k++] = environ[i];
    snprintf(mine, pl + 16, RLY_TO_ENV "=%d", fd);
    env[k] = mine;
    *mine_out = mine;
    return env;
}

void rly_handover_start(rly_proc *p)
{
    int sv[2];
    char **env, *mine = NULL;
    pid_t pid;
    sigset_t child_mask;
    struct timeval tv = {.tv_sec = RLY_TO_STEP_MS / 1000};

    if (p->to_sock >= 0) {
        RTC_LOG(RTC_LOG_WARN, NULL, "SIGUSR2 ignored: a takeover (pid %d) is in progress",
                (int)p->to_pid);
        return;
    }
    if (p->handed_over || p->draining) {
        RTC_LOG(RTC_LOG_WARN, NULL, "SIGUSR2 ignored: this relay is draining%s",
                p->handed_over ? " after a takeover" : "");
        return;
    }
    if (!p->exe[0]) {
        RTC_LOG(RTC_LOG_ERROR, NULL, "takeover failed: the path of this binary is unknown "
                                     "(/proc/self/exe was not readable at start-up)");
        atomic_fetch_add(&p->reloads.takeover_failed, 1);
        return;
    }
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv)) {
        RTC_LOG(RTC_LOG_ERROR, NULL, "takeover failed: socketpair: %s", strerror(errno));
        atomic_fetch_add(&p->reloads.takeover_failed, 1);
        return;
    }
    /* everything the child needs is ready before fork: between fork and
     * exec only async-signal-safe calls are allowed in a threaded process */
    env = child_env(sv[1], &mine);
    /* SIGHUP and SIGUSR2 stay blocked across exec: until the new process
     * has its signalfd their default action would kill it (a logrotate
     * `pkill -HUP tsunagu-relay` during an upgrade fails the takeover);
     * blocked, they wait and the new process handles them. SIGTERM/SIGINT
     * stay deliverable so a stuck child can still be stopped. */
    child_mask = p->orig_mask;
    sigaddset(&child_mask, SIGHUP);
    sigaddset(&child_mask, SIGUSR2);
    pid = env ? fork() : -1;
    if (pid == 0) {
        /* the only descriptor the new program inherits on purpose */
        fcntl(sv[1], F_SETFD, 0);
        sigprocmask(SIG_SETMASK, &child_mask, NULL);
        execve(p->exe, p->argv, env);
        _exit(127);
    }
    free(mine);
    free(env);
    close(sv[1]);
    if (pid < 0) {
        RTC_LOG(RTC_LOG_ERROR, NULL, "takeover failed: fork: %s", strerror(errno));
        close(sv[0]);
        atomic_fetch_add(&p->reloads.takeover_failed, 1);
        return;
    }
    setsockopt(sv[0], SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    p->to_sock = sv[0];
    p->to_pid = pid;
    p->to_child = true;
    p->to_deadline_ms = rtc_clock_mono_ms() + RLY_TO_STEP_MS;
    RTC_LOG(RTC_LOG_INFO, NULL, "takeover: started %s as pid %d", p->exe, (int)pid);
}

/* The takeover did not happen: the workers run on with everything they
 * had; the child is waited for (and killed if it lingers). */
static void takeover_failed(rly_proc *p, const char *why)
{
    RTC_LOG(RTC_LOG_ERROR, NULL, "takeover by pid %d failed, this process keeps serving: %s",
            (int)p->to_pid, why);
    atomic_fetch_add(&p->reloads.takeover_failed, 1);
    /* the new process learns why from us when it did not say it itself
     * (a stranger has no other way to know; a child that NAK'd ignores it) */
    rly_control_nak(p->to_sock, why);
    close(p->to_sock);
    p->to_sock = -1;
    if (!p->to_child) {
        p->to_pid = 0;
        return;
    }
    if (p->reap_pid) {
        /* an earlier failed child still lingers: one slot to wait on, so
         * finish it now rather than leave it running and unreaped */
        int st;
        kill(p->reap_pid, SIGKILL);
        waitpid(p->reap_pid, &st, 0);
    }
    p->reap_pid = p->to_pid;
    p->reap_deadline_ms = rtc_clock_mono_ms() + 3000;
    p->to_pid = 0;
}

/* Wait for a failed child without blocking the loop; SIGKILL after 3 s. */
static void reap_child(rly_proc *p)
{
    int st;
    if (!p->reap_pid)
        return;
    if (waitpid(p->reap_pid, &st, WNOHANG) == 0) {
        if (rtc_clock_mono_ms() < p->reap_deadline_ms)
            return;
        kill(p->reap_pid, SIGKILL);
        waitpid(p->reap_pid, &st, 0);
    }
    p->reap_pid = 0;
}

/* Is signo pending (blocked, not yet read from the signalfd)? */
static bool pending(int signo)
{
    sigset_t p;
    return !sigpending(&p) && sigismember(&p, signo) == 1;
}

static bool stop_pending(void) { return pending(SIGTERM) || pending(SIGINT); }

/* Everything the child adopts, workers paused: the blob and descriptors. */
static int export_state(rly_proc *p, rly_to_fds *fds, uint8_t **blob, size_t *blen)
{
    rly_to_state st;
    int rc;

    if (rly_to_state_init(&st, (uint32_t)p->n_workers, (uint32_t)p->s.listen.n,
                          (uint32_t)p->s.tls_listen.n))
        return -ENOMEM;
    for (size_t i = 0; i < p->s.listen.n; i++)
        st.listen[i] = p->listen[i];
    for (size_t i = 0; i < p->s.tls_listen.n; i++)
        st.tls[i] = p->tls_listen[i];
    st.metrics = p->metrics;
    memcpy(st.nonce_key, p->nonce_key, sizeof st.nonce_key);
    st.takeovers_ok = atomic_load(&p->reloads.takeover_ok);
    st.takeovers_failed = atomic_load(&p->reloads.takeover_failed);
    for (size_t i = 0; i < p->n_workers; i++) {
        if ((rc = rly_worker_export(p->workers[i], &st.w[i], fds)))
            goto out;
    }
    if (p->admin) {
        if ((rc = rly_to_fds_push(fds, rly_admin_listen_fd(p->admin))) < 0)
            goto out;
        st.metrics_fd = (uint32_t)rc;
        rc = 0;
    }
    if (st.metrics_fd == RLY_TO_NONE)
        memset(&st.metrics, 0, sizeof st.metrics);
    st.n_fds = fds->n;
    rc = rly_to_write(&st, rtc_clock_mono_ms(), blob, blen);
out:
    rly_to_state_dispose(&st);
    return rc;
}

/* Bound the next send by what is left until deadline_ms: SO_SNDTIMEO alone
 * restarts for every message, and a child reading slowly would keep the
 * workers paused for 10 s per message. 0 or -ETIMEDOUT. */
static int send_budget(int sock, uint64_t deadline_ms)
{
    uint64_t now = rtc_clock_mono_ms(), left;
    struct timeval tv;

    if (now >= deadline_ms)
        return -ETIMEDOUT;
    left = deadline_ms - now;
    tv.tv_sec = (time_t)(left / 1000);
    tv.tv_usec = (suseconds_t)(left % 1000) * 1000;
    setsockopt(sock, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    return 0;
}

/* SIZE, the descriptors in batches of at most SCM_MAX_FD, the blob in
 * chunks, all before deadline_ms. 0 or -errno. */
static int send_state(int sock, const rly_to_fds *fds, const uint8_t *blob, size_t blen,
                      uint64_t deadline_ms)
{
    uint8_t size[8];
    int rc;

    for (int i = 0; i < 4; i++) {
        size[i] = (uint8_t)(blen >> (24 - 8 * i));
        size[4 + i] = (uint8_t)(fds->n >> (24 - 8 * i));
    }
    if ((rc = send_budget(sock, deadline_ms)) ||
        (rc = rly_to_msg_send(sock, "SIZE", size, sizeof size, NULL, 0)))
        return rc;
    for (uint32_t off = 0; off < fds->n;) {
        uint32_t k = fds->n - off > RLY_TO_FDS_PER_MSG ? RLY_TO_FDS_PER_MSG : fds->n - off;
        uint8_t cnt[4] = {(uint8_t)(k >> 24), (uint8_t)(k >> 16), (uint8_t)(k >> 8), (uint8_t)k};
        if ((rc = send_budget(sock, deadline_ms)) ||
            (rc = rly_to_msg_send(sock, "FDS_", cnt, 4, fds->v + off, k)))
            return rc;
        off += k;
    }
    for (size_t off = 0; off < blen;) {
        size_t k = blen - off > RLY_TO_CHUNK ? RLY_TO_CHUNK : blen - off;
        if ((rc = send_budget(sock, deadline_ms)) ||
            (rc = rly_to_msg_send(sock, "BLOB", blob + off, k, NULL, 0)))
            return rc;
        off += k;
    }
    return 0;
}

/* A NAK_'s reason (n bytes, msg has room for one more) made a C string
 * fit for the log: the peer is untrusted (a control connection's text
 * must not forge log lines). */
static void printable(uint8_t *msg, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (msg[i] < 0x20 || msg[i] >= 0x7f)
            msg[i] = '?';
    msg[n] = '\0';
}

/* A child that refuses while the state is still coming says why (NAK_) and
 * hangs up with our messages unread: the kernel then resets the socket and
 * our send or receive fails first, but the NAK_ is still queued behind the
 * error. True with the reason in why if there is one. */
static bool child_refused(rly_proc *p, char *why, size_t cap)
{
    char tag[4];
    uint8_t msg[512];
    size_t nf;
    long n = -ECONNRESET;

    for (int i = 0; i < 2 && n == -ECONNRESET; i++)
        n = rly_to_msg_recv(p->to_sock, tag, msg, sizeof msg - 1, NULL, 0, &nf,
                            rtc_clock_mono_ms() + 100);
    if (n < 0 || memcmp(tag, "NAK_", 4))
        return false;
    printable(msg, (size_t)n);
    snprintf(why, cap, "the new process refused: %s", (char *)msg);
    return true;
}

/* No valid HELO: for a child, a failed takeover; a control connection
 * that never spoke the protocol is just closed (not counted as a
 * takeover: nothing was tried, nothing paused). */
static void hello_failed(rly_proc *p, const char *why)
{
    if (p->to_child) {
        takeover_failed(p, why);
        return;
    }
    RTC_LOG(RTC_LOG_WARN, NULL, "control socket: connection from pid %d closed: %s",
            (int)p->to_pid, why);
    rly_control_nak(p->to_sock, why);
    close(p->to_sock);
    p->to_sock = -1;
    p->to_pid = 0;
}

/* The child's first message: HELO of our version, else the takeover
 * fails (a NAK_ says why). false when it failed. */
static bool child_hello(rly_proc *p)
{
    char tag[4], why[600];
    uint8_t msg[512];
    size_t nf;
    long n;

    n = rly_to_msg_recv(p->to_sock, tag, msg, sizeof msg - 1, NULL, 0, &nf,
                        rtc_clock_mono_ms() + RLY_TO_STEP_MS);
    if (n >= 0 && !memcmp(tag, "NAK_", 4)) {
        printable(msg, (size_t)n);
        snprintf(why, sizeof why, "the new process refused: %s", (char *)msg);
        hello_failed(p, why); /* a child that refused counts */
        return false;
    }
    if (n == 2 && !memcmp(tag, "HELO", 4) && (msg[0] << 8 | msg[1]) != RLY_TO_VERSION) {
        /* docs/relay.md "Protocol versions": the newcomer asks for the
         * blob version it reads; this binary writes RLY_TO_VERSION only */
        snprintf(why, sizeof why,
                 "no valid HELO from the new process (it reads takeover version %u, this relay "
                 "writes version %u)",
                 (unsigned)(msg[0] << 8 | msg[1]), (unsigned)RLY_TO_VERSION);
        hello_failed(p, why);
        return false;
    }
    if (n != 2 || memcmp(tag, "HELO", 4)) {
        snprintf(why, sizeof why, "no valid HELO from the new process (%s)",
                 n < 0 ? strerror((int)-n) : "unexpected message or version");
        hello_failed(p, why);
        return false;
    }
    if (p->draining) { /* SIGTERM came while the child started: stopping wins */
        takeover_failed(p, "this relay started draining");
        return false;
    }
    return true;
}

/* Workers paused from t0 on: export, send, wait for ACK, send GO, all
 * within one step's budget. 0 once GO is out (the child reads the sockets
 * from then on), or -1 with the reason in why (the child got no GO). */
static int exchange(rly_proc *p, uint64_t t0, rly_to_fds *fds, uint8_t **blob, size_t *blen,
                    char *why, size_t cap)
{
    char tag[4];
    uint8_t msg[512];
    size_t nf;
    long n;
    int rc;

    for (size_t i = 0; i < p->n_workers; i++)
        if (!rly_worker_wait_paused(p->workers[i], t0 + RLY_TO_STEP_MS)) {
            snprintf(why, cap, "worker %zu did not pause", i);
            return -1;
        }
    if ((rc = export_state(p, fds, blob, blen))) {
        snprintf(why, cap, "cannot serialize the state (%d)", rc);
        return -1;
    }
    /* one budget for the whole pause, not one per step: every ms of it
     * fills the socket buffers of every call */
    if ((rc = send_state(p->to_sock, fds, *blob, *blen, t0 + RLY_TO_STEP_MS))) {
        if (!child_refused(p, why, cap))
            snprintf(why, cap, "sending the state: %s", strerror(-rc));
        return -1;
    }
    n = rly_to_msg_recv(p->to_sock, tag, msg, sizeof msg - 1, NULL, 0, &nf,
                        t0 + RLY_TO_STEP_MS);
    if (n < 0 || memcmp(tag, "ACK_", 4)) {
        if (n >= 0 && !memcmp(tag, "NAK_", 4)) {
            printable(msg, (size_t)n);
            snprintf(why, cap, "the new process refused: %s", (char *)msg);
        } else if (n == -ECONNRESET && child_refused(p, why, cap)) {
            /* why says it */
        } else {
            snprintf(why, cap, "no ACK from the new process (%s)",
                     n < 0 ? strerror((int)-n) : "unexpected message");
        }
        return -1;
    }
    /* A SIGTERM/SIGINT that came during the exchange waits in the signalfd:
     * the operator asked this relay to stop, so it must not hand its calls
     * to a process that would then run on unasked. */
    if (stop_pending()) {
        snprintf(why, cap, "a stop signal arrived during the takeover");
        return -1;
    }
    /* the point of no return: once GO is out the child reads the sockets */
    if ((rc = send_budget(p->to_sock, t0 + RLY_TO_STEP_MS)) ||
        (rc = rly_to_msg_send(p->to_sock, "GO__", NULL, 0, NULL, 0))) {
        snprintf(why, cap, "sending GO: %s", strerror(-rc));
        return -1;
    }
    return 0;
}

/* GO is out: the child serves the UDP allocations and listeners; this
 * process forgets them, keeps its TCP/TLS connections and drains them as
 * on SIGTERM. Workers still paused. */
static void handed_over(rly_proc *p, uint64_t t0, uint32_t n_fds, size_t blen)
{
    size_t moved = 0;

    /* Name the new main process to systemd from the current one, before
     * this process can exit: the child says it too, but if this process
     * (with nothing left to drain) exited first, systemd would see its main
     * process gone and stop the unit, new process included. */
    if (p->to_child) {
        char note[40];
        snprintf(note, sizeof note, "MAINPID=%d", (int)p->to_pid);
        rtc_notify(note);
    }
    /* A SIGHUP that came during the exchange (systemctl reload: kill -HUP
     * $MAINPID, still this process) is meant for whoever serves: the new
     * process may have read the config before the edit it announces. Not
     * to a stranger: it belongs to another service (whose reload is its
     * own), and its pid may be 0 here (another PID namespace). */
    if (p->to_child && pending(SIGHUP))
        kill(p->to_pid, SIGHUP);
    /* the new relay serves the control socket from now on (it renames its
     * own over the path); ours would only refuse */
    rly_control_close(p, false);
    for (size_t i = 0; i < p->n_workers; i++)
        moved += rly_worker_handed_over(p->workers[i]);
    /* the new process serves /metrics now (worker 0 is parked: its loop
     * may be changed from here) */
    rly_admin_free(p->admin);
    p->admin = NULL;
    rly_pool_resume(p);
    atomic_fetch_add(&p->reloads.takeover_ok, 1);
    p->handed_over = p->draining = true;
    p->drain_deadline_ms = rtc_clock_mono_ms() + (uint64_t)p->s.drain_seconds * 1000u;
    RTC_LOG(RTC_LOG_INFO, NULL,
            "takeover: pid %d took %zu UDP allocation(s) and %u socket(s), %zu byte(s) of "
            "state, workers paused %llu ms; draining %zu TCP/TLS allocation(s) for up to %lld s",
            (int)p->to_pid, moved, n_fds, blen,
            (unsigned long long)(rtc_clock_mono_ms() - t0), rly_quota_total(p->quota),
            (long long)p->s.drain_seconds);
    close(p->to_sock);
    p->to_sock = -1;
    p->to_pid = 0;
}

/* The child said HELO: pause, send, wait for its ACK, then let it run and
 * keep only the TCP/TLS connections, drained as on SIGTERM. */
void rly_handover_serve(rly_proc *p)
{
    char why[600];
    uint64_t t0;
    rly_to_fds fds = {0};
    uint8_t *blob = NULL;
    size_t blen = 0;

    if (!child_hello(p))
        return;
    t0 = rtc_clock_mono_ms();
    rly_pool_pause(p);
    if (exchange(p, t0, &fds, &blob, &blen, why, sizeof why) == 0) {
        handed_over(p, t0, fds.n, blen);
    } else {
        rly_pool_resume(p);
        takeover_failed(p, why);
    }
    free(fds.v);
    if (blob)
        explicit_bzero(blob, blen); /* it holds the nonce key */
    free(blob);
}


void rly_handover_tick(rly_proc *p)
{
    if (p->to_sock >= 0 && rtc_clock_mono_ms() >= p->to_deadline_ms) {
        if (p->to_child)
            takeover_failed(p, "the new process did not start in time");
        else
            hello_failed(p, "no HELO within " RLY_CTL_HELO_TEXT);
    }
    reap_child(p);
}

/* The path a takeover executes: the one this binary was started by, made
 * absolute now (the working directory may be gone later) but with its
 * symbolic links kept. An upgrade usually swings a link (/usr/bin via
 * alternatives, /opt/tsunagu/current -> 1.3); /proc/self/exe has resolved
 * it already and would run the old version again. A bare name was found in
 * PATH, so it is looked up there; /proc/self/exe is the last resort. */
static void own_path(const char *argv0, char *out, size_t cap)
{
    ssize_t l;

    out[0] = '\0';
    if (argv0 && strchr(argv0, '/')) {
        char cwd[PATH_MAX];
        if (argv0[0] == '/')
            snprintf(out, cap, "%s", argv0);
        else if (getcwd(cwd, sizeof cwd) && strlen(cwd) + strlen(argv0) + 2 <= cap) {
            size_t cl = strlen(cwd);
            memcpy(out, cwd, cl);
            out[cl] = '/';
            memcpy(out + cl + 1, argv0, strlen(argv0) + 1);
        }
    } else if (argv0 && *argv0) {
        const char *path = getenv("PATH");
        while (path && *path) {
            const char *e = strchrnul(path, ':');
            if (e > path && (size_t)(e - path) + strlen(argv0) + 2 <= cap) {
                snprintf(out, cap, "%.*s/%s", (int)(e - path), path, argv0);
                if (out[0] == '/' && access(out, X_OK) == 0)
                    break;
            }
            out[0] = '\0';
            path = *e ? e + 1 : e;
        }
    }
    if (out[0] && access(out, X_OK) == 0)
        return;
    l = readlink("/proc/self/exe", out, cap - 1);
    out[l > 0 ? l : 0] = '\0';
}

void rly_handover_init(rly_proc *p, const char *argv0)
{
    own_path(argv0, p->exe, sizeof p->exe);
}
