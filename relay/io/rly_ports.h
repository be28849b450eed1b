/* rly_ports.h - relayed-port pool (--relay-ports LO-HI), shared by the
 * workers.
 *
 * Opens a non-blocking UDP socket bound to a relay IP and a port of the
 * range. A bitmap remembers the ports the relay holds so a busy range is
 * searched quickly; the kernel's bind() stays the arbiter (other programs
 * may hold ports of the range, and two workers may race for one port: the
 * loser's bind fails and it tries the next). The bitmap is updated with
 * atomic bit operations, so workers share the pool without a lock and a
 * socket opened by one worker can be closed by another (a reserved port
 * taken over with its RESERVATION-TOKEN). */
#ifndef RLY_PORTS_H
#define RLY_PORTS_H

#include <stdbool.h>
#include <stdint.h>

#include "rtc_addr.h"

typedef struct rly_ports rly_ports; /* opaque */

rly_ports *rly_ports_new(uint16_t lo, uint16_t hi); /* NULL on ENOMEM */
void rly_ports_free(rly_ports *p);

/* fd of a socket bound to ip:port (even port when asked; random start so
 * ports are not predictable), *bound filled; -errno (-EADDRINUSE when the
 * range is exhausted). */
int rly_ports_open(rly_ports *p, const rtc_addr *ip, bool even, rtc_addr *bound);
/* The same for one given port (the odd half of an EVEN-PORT pair). */
int rly_ports_open_port(rly_ports *p, const rtc_addr *ip, uint16_t port, rtc_addr *bound);
/* Set DF on a relayed socket (TURN DONT-FRAGMENT): IP_PMTUDISC_DO for
 * IPv4, IPV6_DONTFRAG for IPv6. 0 or -errno. Fits rly_io. */
int rly_ports_dont_fragment(int fd, int family);
/* Mark bound's port held (a relayed socket taken over from another
 * process). */
void rly_ports_claim(rly_ports *p, const rtc_addr *bound);
/* Close fd and give its port back. */
void rly_ports_close(rly_ports *p, int fd, const rtc_addr *bound);

#endif
