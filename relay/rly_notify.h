/* rly_notify.h - systemd's sd_notify without libsystemd: one datagram to
 * $NOTIFY_SOCKET (a path, or '@' for the abstract namespace). No-op outside
 * systemd. Main thread. */
#ifndef RLY_NOTIFY_H
#define RLY_NOTIFY_H

void rly_notify(const char *msg);

#endif
