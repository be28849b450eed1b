/* rtc_notify.c - one datagram to $NOTIFY_SOCKET (see rtc_notify.h); the
 * logic the relay had in rly_main.c, moved so signaling can use it too. */
#include "rtc_notify.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "rtc_log.h"

int rtc_notify_to(const char *name, const char *msg)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t l;
    int fd, rc = 0;

    if (!name || !*name || (l = strlen(name)) >= sizeof sa.sun_path)
        return 0;
    memcpy(sa.sun_path, name, l);
    if (sa.sun_path[0] == '@')
        sa.sun_path[0] = '\0';
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    if (sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&sa,
               (socklen_t)(offsetof(struct sockaddr_un, sun_path) + l)) < 0) {
        rc = -errno;
        RTC_LOG(RTC_LOG_WARN, NULL, "NOTIFY_SOCKET: %s", strerror(errno));
    }
    close(fd);
    return rc;
}

int rtc_notify(const char *msg) { return rtc_notify_to(getenv("NOTIFY_SOCKET"), msg); }
