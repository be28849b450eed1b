/* echo.c - tsunagu-echo: the bare UDP echo, the physical reference.
 *
 * A relay does at least what an echo does per packet: one receive and one
 * send on a UDP socket. Measured under the same load generator and on the
 * same pinned core as the relays, the echo tells what this machine's kernel
 * allows, so a relay's figures can be read against it. Two shapes:
 * --batch 1 is one recvfrom + one sendto per packet (what a naive server
 * does), --batch N uses recvmmsg/sendmmsg with N messages (the best a
 * one-socket userspace server can hope for). It also serves as the UDP echo
 * peer of `tsunagu-turnload --mode echo`.
 *
 * It binds --listen (port 0 = any free port), prints "port N" on stdout once
 * bound, and runs until SIGTERM/SIGINT or --max-seconds. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "rtc_addr.h"
#include "rtc_conf.h"

#define ECHO_MAX_BATCH 64
#define ECHO_PKT 2048

typedef struct {
    char *listen;
    int64_t batch, max_seconds;
} echo_conf;

static const rtc_conf_spec specs[] = {
    {"listen", RTC_CONF_STR, offsetof(echo_conf, listen), 0, 0, "127.0.0.1:0", "ADDR:PORT",
     "UDP address to echo on (port 0: pick a free one)", rtc_conf_check_hostport, 0},
    {"batch", RTC_CONF_INT, offsetof(echo_conf, batch), 1, ECHO_MAX_BATCH, "1", "N",
     "1: recvfrom/sendto per packet; N>1: recvmmsg/sendmmsg of up to N", NULL, 0},
    {"max-seconds", RTC_CONF_INT, offsetof(echo_conf, max_seconds), 1, 86400, "600", "S",
     "exit after this long even if nobody stops it", NULL, 0},
    RTC_CONF_END};

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static void loop_single(int fd)
{
    static uint8_t buf[ECHO_PKT];
    while (!g_stop) {
        struct sockaddr_storage from;
        socklen_t fl = sizeof from;
        ssize_t n = recvfrom(fd, buf, sizeof buf, 0, (struct sockaddr *)&from, &fl);
        if (n < 0)
            continue; /* EINTR (stop or alarm) or a transient error */
        sendto(fd, buf, (size_t)n, MSG_DONTWAIT, (struct sockaddr *)&from, fl);
    }
}

static void loop_batch(int fd, unsigned batch)
{
    static uint8_t bufs[ECHO_MAX_BATCH][ECHO_PKT];
    struct sockaddr_storage from[ECHO_MAX_BATCH];
    struct iovec iov[ECHO_MAX_BATCH];
    struct mmsghdr mm[ECHO_MAX_BATCH];
    while (!g_stop) {
        for (unsigned i = 0; i < batch; i++) {
            iov[i] = (struct iovec){bufs[i], ECHO_PKT};
            memset(&mm[i], 0, sizeof mm[i]);
            mm[i].msg_hdr.msg_iov = &iov[i];
            mm[i].msg_hdr.msg_iovlen = 1;
            mm[i].msg_hdr.msg_name = &from[i];
            mm[i].msg_hdr.msg_namelen = sizeof from[i];
        }
        /* block for the first datagram, then take whatever else is queued */
        int n = recvmmsg(fd, mm, batch, MSG_WAITFORONE, NULL);
        if (n <= 0)
            continue;
        for (int i = 0; i < n; i++)
            iov[i].iov_len = mm[i].msg_len; /* send back exactly what came in */
        sendmmsg(fd, mm, (unsigned)n, MSG_DONTWAIT);
    }
}

int main(int argc, char **argv)
{
    echo_conf c = {0};
    char err[256];
    rtc_addr addr;
    struct sockaddr_storage ss;
    socklen_t sl;
    int fd, rc = 1, big = 4 << 20;

    rc = rtc_conf_load(specs, &c, argc, argv, err, sizeof err);
    if (rc == RTC_CONF_HELP) {
        printf("usage: tsunagu-echo [options]\n");
        rtc_conf_usage(specs, stdout);
        return 0;
    }
    if (rc) {
        fprintf(stderr, "tsunagu-echo: %s\n", err);
        return 2;
    }
    rc = 1;
    rtc_addr_parse_hostport(c.listen, &addr);
    sl = rtc_addr_to_sockaddr(&addr, &ss);
    fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        perror("tsunagu-echo: socket");
        goto out_conf;
    }
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof big))
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
    if (bind(fd, (struct sockaddr *)&ss, sl)) {
        perror("tsunagu-echo: bind");
        goto out_close;
    }
    sl = sizeof ss;
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    rtc_addr_from_sockaddr(&addr, (struct sockaddr *)&ss);
    printf("port %u\n", addr.port);
    fflush(stdout);

    /* no SA_RESTART: a signal must interrupt the blocking receive */
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGALRM, &sa, NULL);
    alarm((unsigned)c.max_seconds);

    if (c.batch == 1)
        loop_single(fd);
    else
        loop_batch(fd, (unsigned)c.batch);
    rc = 0;
out_close:
    close(fd);
out_conf:
    rtc_conf_dispose(specs, &c);
    return rc;
}
