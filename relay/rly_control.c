/* rly_control.c - the control socket: takeover between relays that are not
 * parent and child (docs/relay.md "Takeover between processes").
 *
 * SIGUSR2 gives the new process one end of a socketpair; here the new
 * process (another container sharing this directory and the host network,
 * say) connects to --control-socket PATH with --takeover-from PATH instead.
 * Both are AF_UNIX SOCK_SEQPACKET, so the accepted connection becomes
 * p->to_sock and rly_handover.c runs the very same exchange on it (HELO,
 * SIZE, FDS_, BLOB, ACK_/NAK_, GO__): there is one protocol, two ways to
 * get the socket.
 *
 * Who may connect: the socket file is mode 0600 (owner only), and the
 * peer's uid (SO_PEERCRED) must be our euid or root. One takeover at a time:
 * while one is in progress (or this relay drains) a further connection is
 * told why (NAK_) and closed. A connection that does not say HELO within
 * RLY_CTL_HELO_MS is closed (rly_handover_tick); one that says something
 * else is closed at once; neither pauses a worker or counts as a takeover.
 *
 * The listener is served by the supervisor's poll loop (main thread),
 * never by a packet worker. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "rly_proc.h"
#include "rtc_clock.h"
#include "rtc_err.h"
#include "rtc_log.h"

#define ACCEPTS_PER_TURN 8

/* path into a sockaddr_un; false when it does not fit */
static bool sun_of(const char *path, struct sockaddr_un *sa)
{
    memset(sa, 0, sizeof *sa);
    sa->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof sa->sun_path)
        return false;
    memcpy(sa->sun_path, path, strlen(path) + 1);
    return true;
}

/* Does a process answer on the socket at path? 0 no (refused: a stale
 * file), 1 yes, -errno when we cannot tell. */
static int answers(const char *path)
{
    struct sockaddr_un sa;
    int fd, rc;

    if (!sun_of(path, &sa))
        return -ENAMETOOLONG;
    fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -errno;
    rc = connect(fd, (struct sockaddr *)&sa, sizeof sa);
    /* EAGAIN: its backlog is full, so someone listens */
    rc = rc == 0 || errno == EAGAIN ? 1 : errno == ECONNREFUSED ? 0 : -errno;
    close(fd);
    return rc;
}

int rly_control_open(rly_proc *p, bool replace, char *err, size_t errlen)
{
    const char *path = p->s.control_socket;
    char tmp[sizeof((struct sockaddr_un *)0)->sun_path];
    struct sockaddr_un sa;
    struct stat st;
    mode_t um;
    int fd, rc;

    if (!path)
        return 0;
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            snprintf(err, errlen, "control-socket: %s exists and is not a socket; not replaced",
                     path);
            return RTC_EMSG;
        }
        if (!replace && (rc = answers(path)) != 0) {
            if (rc > 0)
                snprintf(err, errlen,
                         "control-socket: a relay serves %s; to replace it start this one with "
                         "--takeover-from %s",
                         path, path);
            else
                snprintf(err, errlen, "control-socket: %s: %s", path, strerror(-rc));
            return RTC_EMSG;
        }
    } else if (errno != ENOENT) {
        snprintf(err, errlen, "control-socket: %s: %s", path, strerror(errno));
        return RTC_EMSG;
    }
    /* bound under a name nobody uses, made owner-only, then renamed over
     * path in one step: the path always names a socket that answers (the
     * old relay's until this rename), never a missing or open one */
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.%d.new", path, (int)getpid()) >= sizeof tmp ||
        !sun_of(tmp, &sa)) {
        snprintf(err, errlen, "control-socket: %s: path too long", path);
        return RTC_EMSG;
    }
    fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        snprintf(err, errlen, "control-socket: socket: %s", strerror(errno));
        return RTC_EMSG;
    }
    unlink(tmp); /* ours: a leftover of an earlier process with our pid */
    /* the workers create no file, so the process-wide umask is ours
     * for the bind */
    um = umask(0177);
    rc = bind(fd, (struct sockaddr *)&sa, sizeof sa);
    umask(um);
    if (rc || chmod(tmp, 0600) || listen(fd, 8) || rename(tmp, path) ||
        lstat(path, &st)) {
        snprintf(err, errlen, "control-socket: %s: %s", path, strerror(errno));
        unlink(tmp);
        close(fd);
        return RTC_EMSG;
    }
    p->ctl_fd = fd;
    p->ctl_dev = st.st_dev;
    p->ctl_ino = st.st_ino;
    RTC_LOG(RTC_LOG_INFO, NULL, "control socket %s: a relay started with --takeover-from %s "
            "takes over from this one", path, path);
    return 0;
}

void rly_control_close(rly_proc *p, bool unlink_ours)
{
    struct stat st;

    if (p->ctl_fd < 0)
        return;
    close(p->ctl_fd);
    p->ctl_fd = -1;
    if (unlink_ours && p->s.control_socket && lstat(p->s.control_socket, &st) == 0 &&
        st.st_dev == p->ctl_dev && st.st_ino == p->ctl_ino)
        unlink(p->s.control_socket);
}

void rly_control_nak(int sock, const char *why)
{
    char msg[512];
    size_t n = strlen(why);

    if (n > sizeof msg - 4)
        n = sizeof msg - 4;
    memcpy(msg, "NAK_", 4);
    memcpy(msg + 4, why, n);
    (void)!send(sock, msg, 4 + n, MSG_DONTWAIT | MSG_NOSIGNAL);
}

/* Why this relay cannot take a takeover now, or NULL. */
static const char *busy(const rly_proc *p)
{
    if (p->to_sock >= 0)
        return "another takeover is in progress; try again";
    if (p->handed_over)
        return "this relay has handed over already and is draining";
    if (p->draining)
        return "this relay is draining";
    return NULL;
}

void rly_control_accept(rly_proc *p)
{
    for (int i = 0; i < ACCEPTS_PER_TURN && p->ctl_fd >= 0; i++) {
        /* blocking, as SIGUSR2's socketpair: the exchange bounds each
         * send with SO_SNDTIMEO and each receive with poll */
        int fd = accept4(p->ctl_fd, NULL, NULL, SOCK_CLOEXEC);
        struct timeval tv = {.tv_sec = RLY_TO_STEP_MS / 1000};
        struct ucred cr;
        socklen_t cl = sizeof cr;
        const char *no;

        if (fd < 0)
            return; /* EAGAIN, or one that went away */
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl)) {
            close(fd);
            continue;
        }
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        if (cr.uid != geteuid() && cr.uid != 0) {
            RTC_LOG(RTC_LOG_WARN, NULL,
                    "control socket: connection from pid %d uid %u refused: not uid %u or root",
                    (int)cr.pid, (unsigned)cr.uid, (unsigned)geteuid());
            rly_control_nak(fd, "permission denied: not the relay's uid or root");
            close(fd);
            continue;
        }
        if ((no = busy(p))) {
            RTC_LOG(RTC_LOG_WARN, NULL, "control socket: connection from pid %d refused: %s",
                    (int)cr.pid, no);
            rly_control_nak(fd, no);
            close(fd);
            continue;
        }
        p->to_sock = fd;
        p->to_pid = cr.pid;
        p->to_child = false;
        p->to_deadline_ms = rtc_clock_mono_ms() + RLY_CTL_HELO_MS;
        RTC_LOG(RTC_LOG_INFO, NULL, "control socket: connection from pid %d uid %u",
                (int)cr.pid, (unsigned)cr.uid);
    }
}

int rly_control_connect(const char *path, pid_t *peer, char *err, size_t errlen)
{
    struct sockaddr_un sa;
    struct stat st;
    struct ucred cr = {.uid = (uid_t)-1};
    socklen_t cl = sizeof cr;
    uid_t me = geteuid();
    int fd;

    *peer = 0;
    if (!sun_of(path, &sa)) {
        snprintf(err, errlen, "takeover-from %s: path too long", path);
        return -1;
    }
    if (lstat(path, &st)) {
        snprintf(err, errlen, "takeover-from %s: %s: no relay serves a control socket there",
                 path, strerror(errno));
        return -1;
    }
    if (!S_ISSOCK(st.st_mode)) {
        snprintf(err, errlen, "takeover-from %s: not a socket", path);
        return -1;
    }
    /* the running relay made it owner-only: anything else was made or
     * changed by someone else, and would hand our calls to them */
    if ((st.st_uid != me && st.st_uid != 0) || (st.st_mode & 077)) {
        snprintf(err, errlen,
                 "takeover-from %s: owned by uid %u with mode %03o; a relay's control socket "
                 "is owned by uid %u (or root) with mode 0600",
                 path, (unsigned)st.st_uid, (unsigned)(st.st_mode & 0777), (unsigned)me);
        return -1;
    }
    fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "takeover-from: socket: %s", strerror(errno));
        return -1;
    }
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa)) {
        snprintf(err, errlen, "takeover-from %s: %s: no relay serves a control socket there",
                 path, strerror(errno));
        close(fd);
        return -1;
    }
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) || (cr.uid != me && cr.uid != 0)) {
        snprintf(err, errlen, "takeover-from %s: served by uid %u, not uid %u or root", path,
                 (unsigned)cr.uid, (unsigned)me);
        close(fd);
        return -1;
    }
    {
        struct timeval tv = {.tv_sec = RLY_TO_STEP_MS / 1000};
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    }
    *peer = cr.pid;
    return fd;
}
