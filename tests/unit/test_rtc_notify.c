/* test_rtc_notify.c - sd_notify without libsystemd: a datagram reaches a
 * socket named by path and one in the abstract namespace ('@'), through
 * $NOTIFY_SOCKET too; no socket named is a no-op; a missing one is -ENOENT.
 * Uses AF_UNIX sockets of its own only. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "rtc_log.h"
#include "rtc_notify.h"
#include "tap.h"

static int bind_dgram(const char *name, size_t len)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    memcpy(sa.sun_path, name, len);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa,
                       (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len))) {
        perror("bind");
        exit(1);
    }
    return fd;
}

static int got(int fd, const char *want)
{
    char buf[128];
    ssize_t n = recv(fd, buf, sizeof buf - 1, MSG_DONTWAIT);
    if (n < 0)
        return 0;
    buf[n] = '\0';
    return !strcmp(buf, want);
}

int main(void)
{
    char path[64], abs_name[64];
    int fd_path, fd_abs;

    rtc_log_setup(RTC_LOG_ERROR, RTC_LOG_TEXT, "test"); /* quiet the expected warning */
    snprintf(path, sizeof path, "/tmp/rtc-notify-%d.sock", (int)getpid());
    unlink(path);
    fd_path = bind_dgram(path, strlen(path));
    snprintf(abs_name, sizeof abs_name, "@rtc-notify-%d", (int)getpid());
    {
        char raw[64];
        memcpy(raw, abs_name, strlen(abs_name));
        raw[0] = '\0'; /* the abstract namespace: a leading NUL, no trailing one */
        fd_abs = bind_dgram(raw, strlen(abs_name));
    }

    is_int(rtc_notify_to(path, "READY=1"), 0, "sent to a path");
    ok(got(fd_path, "READY=1"), "path socket got READY=1");
    is_int(rtc_notify_to(abs_name, "MAINPID=42\nREADY=1"), 0, "sent to an abstract name");
    ok(got(fd_abs, "MAINPID=42\nREADY=1"), "abstract socket got both lines");

    setenv("NOTIFY_SOCKET", abs_name, 1);
    is_int(rtc_notify("RELOADING=1"), 0, "rtc_notify reads $NOTIFY_SOCKET");
    ok(got(fd_abs, "RELOADING=1"), "and the datagram arrived");
    unsetenv("NOTIFY_SOCKET");
    is_int(rtc_notify("READY=1"), 0, "no $NOTIFY_SOCKET: no-op");
    is_int(rtc_notify_to("", "READY=1"), 0, "empty name: no-op");
    is_int(rtc_notify_to(NULL, "READY=1"), 0, "NULL name: no-op");
    {
        char longname[200];
        memset(longname, 'x', sizeof longname - 1);
        longname[sizeof longname - 1] = '\0';
        is_int(rtc_notify_to(longname, "READY=1"), 0, "over-long name: no-op");
    }
    unlink(path);
    is_int(rtc_notify_to(path, "READY=1"), -ENOENT, "a vanished socket: -ENOENT");

    close(fd_path);
    close(fd_abs);
    return done_testing();
}
