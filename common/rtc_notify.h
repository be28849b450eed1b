/* rtc_notify.h - systemd's sd_notify(3) without libsystemd.
 *
 * A service of Type=notify tells systemd it is ready ("READY=1"), which
 * process is now its main one ("MAINPID=n", after a live takeover), or that
 * it is reloading, by sending one datagram of newline-separated KEY=VALUE
 * lines to the AF_UNIX socket named in $NOTIFY_SOCKET. The protocol is that
 * one datagram (sd_notify(3), "Notes"); linking libsystemd for it would add a
 * dependency to every build. A name that starts with '@' is in the abstract
 * namespace: the '@' becomes a NUL byte and the address length covers
 * exactly the name (no trailing NUL), as systemd does.
 *
 * Outside systemd (no $NOTIFY_SOCKET) every call is a no-op. Thread-safe:
 * each call opens and closes its own socket. */
#ifndef RTC_NOTIFY_H
#define RTC_NOTIFY_H

/* Send msg to the socket named by $NOTIFY_SOCKET. 0 when sent or when there
 * is nothing to notify (unset, empty or over-long name, socket() failing);
 * -errno when sendto failed, which is also logged as a warning
 * "NOTIFY_SOCKET: <reason>" (the relay's line). */
int rtc_notify(const char *msg);

/* The same with the socket name given (tests; callers with their own
 * environment). name may be NULL (no-op). */
int rtc_notify_to(const char *name, const char *msg);

#endif
