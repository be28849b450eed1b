/* rly_adopt.c - live takeover, child side: this process was started by a
 * running relay's SIGUSR2 (rly_handover.c) and takes its sockets and UDP
 * allocations over (docs/relay.md "Live upgrade"; the messages and the
 * blob are rly_takeover.h's, parsed as untrusted input).
 *
 * HELO; receive the descriptors and the blob; check that the running
 * relay's layout is ours; make the workers on its sockets and adopt the
 * allocations; start the threads parked; ACK; on GO, run. Anything that
 * fails before GO is told to the parent (NAK_), which keeps serving. Main
 * thread. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rly_proc.h"
#include "rtc_clock.h"
#include "rtc_err.h"
#include "rtc_log.h"

static uint32_t be32(const uint8_t *b)
{
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

/* A NAK_ from the running relay (untrusted text, n bytes in got): its
 * reason in err, printable bytes only. */
static void refused(const uint8_t *got, size_t n, char *err, size_t errlen)
{
    char why[256];
    size_t k = 0;

    for (size_t i = 0; i < n && k < sizeof why - 1; i++)
        why[k++] = got[i] >= 0x20 && got[i] < 0x7f ? (char)got[i] : '?';
    why[k] = '\0';
    snprintf(err, errlen, "takeover: the running relay refused: %s", why);
}

/* The running relay refused at once (busy, another uid, draining): it
 * queued NAK_ and closed, maybe before reading our HELO, so our send or
 * first receive fails with the reset and the NAK_ waits behind it. True
 * with its reason in err if there is one. */
static bool refused_early(int sock, char *err, size_t errlen)
{
    char tag[4];
    uint8_t msg[512];
    size_t nf;
    long n = -ECONNRESET;

    for (int i = 0; i < 2 && (n == -ECONNRESET || n == -EPIPE); i++)
        n = rly_to_msg_recv(sock, tag, msg, sizeof msg, NULL, 0, &nf,
                            rtc_clock_mono_ms() + 500);
    if (n < 0 || memcmp(tag, "NAK_", 4))
        return false;
    refused(msg, (size_t)n, err, errlen);
    return true;
}

/* Receive SIZE, the descriptors and the blob. 0 or RTC_EMSG with err; the
 * descriptors received are in *fds_out (n in *n_out) either way. */
static int recv_state(int sock, int **fds_out, uint32_t *n_out, uint8_t **blob_out,
                      size_t *blen_out, char *err, size_t errlen)
{
    char tag[4];
    uint8_t hdr[512]; /* SIZE, or the running relay's NAK_ */
    size_t nf;
    long n;
    uint32_t blen, nfds, got = 0;
    size_t off = 0;
    /* the parent pauses its workers before it answers: two steps */
    uint64_t deadline = rtc_clock_mono_ms() + 2 * RLY_TO_STEP_MS;

    *fds_out = NULL;
    *n_out = 0;
    *blob_out = NULL;
    n = rly_to_msg_recv(sock, tag, hdr, sizeof hdr, NULL, 0, &nf, deadline);
    if (n == -ECONNRESET && refused_early(sock, err, errlen))
        return RTC_EMSG;
    if (n >= 0 && !memcmp(tag, "NAK_", 4)) {
        /* the running relay refused before sending anything (busy, a HELO
         * version it does not write, draining) */
        refused(hdr, (size_t)n, err, errlen);
        return RTC_EMSG;
    }
    if (n != 8 || memcmp(tag, "SIZE", 4)) {
        snprintf(err, errlen, "takeover: no state from the running relay (%s)",
                 n < 0 ? strerror((int)-n) : "unexpected message");
        return RTC_EMSG;
    }
    blen = be32(hdr);
    nfds = be32(hdr + 4);
    if (blen > RLY_TO_MAX_BLOB || nfds > RLY_TO_MAX_FDS) {
        snprintf(err, errlen, "takeover: state of %u bytes, %u descriptors is out of range",
                 blen, nfds);
        return RTC_EMSG;
    }
    *fds_out = malloc((nfds + 1) * sizeof(int));
    *blob_out = malloc(blen + 1);
    *blen_out = *blob_out ? blen : 0; /* also on failure: the caller wipes it */
    if (!*fds_out || !*blob_out) {
        snprintf(err, errlen, "takeover: out of memory");
        return RTC_EMSG;
    }
    while (got < nfds) {
        uint8_t cnt[4];
        size_t want = nfds - got > RLY_TO_FDS_PER_MSG ? RLY_TO_FDS_PER_MSG : nfds - got;
        n = rly_to_msg_recv(sock, tag, cnt, sizeof cnt, *fds_out + got, want, &nf, deadline);
        if (n < 0) {
            snprintf(err, errlen, "takeover: receiving descriptors: %s", strerror((int)-n));
            return RTC_EMSG;
        }
        got += (uint32_t)nf;
        *n_out = got;
        if (n != 4 || memcmp(tag, "FDS_", 4) || be32(cnt) != nf || nf == 0) {
            snprintf(err, errlen, "takeover: bad descriptor message");
            return RTC_EMSG;
        }
    }
    while (off < blen) {
        size_t want = blen - off > RLY_TO_CHUNK ? RLY_TO_CHUNK : blen - off;
        n = rly_to_msg_recv(sock, tag, *blob_out + off, want, NULL, 0, &nf, deadline);
        if (n <= 0 || memcmp(tag, "BLOB", 4)) {
            snprintf(err, errlen, "takeover: receiving the state: %s",
                     n < 0 ? strerror((int)-n) : "unexpected message");
            return RTC_EMSG;
        }
        off += (size_t)n;
    }
    return 0;
}

/* The running relay's layout must be ours: the same sockets, and one
 * worker per SO_REUSEPORT socket so each client stays on its worker. */
static int check_layout(const rly_proc *p, const rly_to_state *st, char *err, size_t errlen)
{
    size_t nw = rly_settings_workers(&p->s);
    char a[RTC_ADDR_STRLEN], b[RTC_ADDR_STRLEN];

    if (st->n_workers != nw) {
        snprintf(err, errlen,
                 "threads: the running relay has %u worker(s), these settings make %zu",
                 st->n_workers, nw);
        return RTC_EMSG;
    }
    if (st->n_listen != p->s.listen.n || st->n_tls != p->s.tls_listen.n) {
        snprintf(err, errlen,
                 "listen/tls-listen: the running relay has %u/%u listener(s), these settings "
                 "%zu/%zu",
                 st->n_listen, st->n_tls, p->s.listen.n, p->s.tls_listen.n);
        return RTC_EMSG;
    }
    for (uint32_t i = 0; i < st->n_listen + st->n_tls; i++) {
        const rtc_addr *theirs = i < st->n_listen ? &st->listen[i] : &st->tls[i - st->n_listen];
        const rtc_addr *ours =
            i < st->n_listen ? &p->listen[i] : &p->tls_listen[i - st->n_listen];
        if (!rtc_addr_equal(theirs, ours)) {
            rtc_addr_format(theirs, true, a);
            rtc_addr_format(ours, true, b);
            snprintf(err, errlen, "%s: the running relay listens on %s, these settings on %s",
                     i < st->n_listen ? "listen" : "tls-listen", a, b);
            return RTC_EMSG;
        }
    }
    if (!rtc_addr_equal(&st->metrics, &p->metrics)) {
        rtc_addr_format(&st->metrics, true, a);
        rtc_addr_format(&p->metrics, true, b);
        snprintf(err, errlen, "metrics-listen: the running relay has %s, these settings %s", a,
                 b);
        return RTC_EMSG;
    }
    return 0;
}

int rly_adopt(rly_proc *p, char *err, size_t errlen)
{
    uint8_t ver[2] = {RLY_TO_VERSION >> 8, RLY_TO_VERSION & 0xff};
    int *fds = NULL, rc = RTC_EMSG;
    uint32_t n_fds = 0;
    uint8_t *blob = NULL;
    size_t blen = 0, moved = 0, nf;
    rly_to_state st;
    bool parsed = false;
    char tag[4], dummy[512];
    long n;
    uint64_t t0 = rtc_clock_mono_ms();

    if ((rc = rly_to_msg_send(p->adopt_sock, "HELO", ver, 2, NULL, 0))) {
        if (refused_early(p->adopt_sock, err, errlen)) {
            rc = RTC_EMSG;
            goto out;
        }
        snprintf(err, errlen, "takeover: cannot reach the running relay: %s", strerror(-rc));
        rc = RTC_EMSG;
        goto out;
    }
    rc = RTC_EMSG;
    if (recv_state(p->adopt_sock, &fds, &n_fds, &blob, &blen, err, errlen) ||
        rly_to_parse(blob, blen, n_fds, rtc_clock_mono_ms(), &st, err, errlen))
        goto out;
    parsed = true;
    if (check_layout(p, &st, err, errlen))
        goto out;
    memcpy(p->nonce_key, st.nonce_key, sizeof p->nonce_key);
    atomic_store(&p->reloads.takeover_ok, st.takeovers_ok + 1);
    atomic_store(&p->reloads.takeover_failed, st.takeovers_failed);
    if (rly_pool_create(p, &st, fds, err, errlen))
        goto out;
    for (size_t i = 0; i < p->n_workers; i++) {
        if (rly_worker_adopt(p->workers[i], &st.w[i], fds, rtc_clock_mono_ms(), err, errlen))
            goto out;
        moved += st.w[i].n_allocs;
        /* the worker's table has them now: do not hold two copies */
        free(st.w[i].allocs);
        st.w[i].allocs = NULL;
    }
    /* The threads start now, parked before their first read: a thread
     * that cannot start (TasksMax, memory) must fail the takeover while
     * the old process still serves, not after GO with every call moved. */
    rly_pool_pause(p);
    if (rly_pool_start(p)) {
        snprintf(err, errlen, "takeover: cannot start the worker threads");
        goto out;
    }
    if ((rc = rly_to_msg_send(p->adopt_sock, "ACK_", NULL, 0, NULL, 0))) {
        snprintf(err, errlen, "takeover: ACK: %s", strerror(-rc));
        rc = RTC_EMSG;
        goto out;
    }
    rc = RTC_EMSG;
    n = rly_to_msg_recv(p->adopt_sock, tag, dummy, sizeof dummy, NULL, 0, &nf,
                        rtc_clock_mono_ms() + RLY_TO_STEP_MS);
    if (n > 0 && n < (long)sizeof dummy && !memcmp(tag, "NAK_", 4)) {
        refused((const uint8_t *)dummy, (size_t)n, err, errlen);
        goto out;
    }
    if (n != 0 || memcmp(tag, "GO__", 4)) {
        /* the parent gave up (timeout): it serves on; we must not */
        snprintf(err, errlen, "takeover: the running relay did not confirm (%s)",
                 n < 0 ? strerror((int)-n) : "unexpected message");
        goto out;
    }
    rly_pool_resume(p); /* GO: ours from now on */
    RTC_LOG(RTC_LOG_INFO, NULL,
            "pid %d took over from pid %d: %zu UDP allocation(s), %u socket(s), %zu byte(s) of state "
            "in %llu ms",
            (int)getpid(), (int)p->adopt_pid, moved, n_fds, blen,
            (unsigned long long)(rtc_clock_mono_ms() - t0));
    rc = 0;
out:
    if (rc) {
        /* tell the parent why, so its log says it; it resumes */
        rly_to_msg_send(p->adopt_sock, "NAK_", err, strlen(err), NULL, 0);
        if (p->threads) { /* parked: stopped before they read anything */
            rly_pool_stop(p);
            rly_pool_resume(p);
            rly_pool_join(p);
        }
    }
    for (uint32_t i = 0; fds && i < n_fds; i++)
        if (fds[i] >= 0)
            close(fds[i]); /* not adopted (or failure): our copies only */
    free(fds);
    if (blob) /* it holds the nonce key */
        explicit_bzero(blob, blen);
    free(blob);
    if (parsed)
        rly_to_state_dispose(&st);
    close(p->adopt_sock);
    p->adopt_sock = -1;
    return rc;
}

/* The socketpair end a parent relay passed in RLY_TO_ENV, or -1. The
 * variable is removed so it does not reach a later child by mistake. */
int rly_adopt_sock(void)
{
    const char *v = getenv(RLY_TO_ENV);
    struct stat sb;
    char *end;
    long fd;

    if (!v)
        return -1;
    fd = strtol(v, &end, 10);
    unsetenv(RLY_TO_ENV);
    if (*end || fd < 3 || fd > INT_MAX || fstat((int)fd, &sb) || !S_ISSOCK(sb.st_mode)) {
        fprintf(stderr, "tsunagu-relay: %s does not name a socket: ignored\n", RLY_TO_ENV);
        return -1;
    }
    /* only the socketpair our parent relay made for us: a stray variable
     * must not make us talk the protocol on some other inherited socket
     * (a socket-activation descriptor, say) */
    {
        struct ucred cr;
        socklen_t cl = sizeof cr;
        int type = 0;
        socklen_t tl = sizeof type;
        if (getsockopt((int)fd, SOL_SOCKET, SO_TYPE, &type, &tl) || type != SOCK_SEQPACKET ||
            getsockopt((int)fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) || cr.pid != getppid()) {
            fprintf(stderr,
                    "tsunagu-relay: %s is not a takeover socket from the parent process: "
                    "ignored\n",
                    RLY_TO_ENV);
            return -1;
        }
    }
    fcntl((int)fd, F_SETFD, FD_CLOEXEC);
    return (int)fd;
}

