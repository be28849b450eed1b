/* rly_ports.h - relayed-port pool of one worker (--relay-ports LO-HI).
 *
 * Opens a non-blocking UDP socket bound to a relay IP and a port of the
 * range. A bitmap remembers the ports this worker holds so a busy range is
 * searched quickly; the kernel's bind() stays the arbiter (other workers and
 * other programs may hold ports of the range: their bind fails and the next
 * candidate is tried). Owned by one worker thread. */
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
/* Close fd and give its port back. */
void rly_ports_close(rly_ports *p, int fd, const rtc_addr *bound);

#endif
