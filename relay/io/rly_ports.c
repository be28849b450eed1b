/* rly_ports.c - relayed UDP sockets from a port range. */
#include "rly_ports.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rtc_crypto.h"

struct rly_ports {
    uint16_t lo, hi;
    _Atomic uint8_t used[2][8192]; /* [v4|v6] bit per port held */
};

rly_ports *rly_ports_new(uint16_t lo, uint16_t hi)
{
    rly_ports *p = calloc(1, sizeof *p);
    if (p) {
        p->lo = lo;
        p->hi = hi;
    }
    return p;
}

void rly_ports_free(rly_ports *p) { free(p); }

static bool bit(_Atomic uint8_t *m, uint16_t port)
{
    return atomic_load_explicit(&m[port >> 3], memory_order_relaxed) & (1u << (port & 7));
}

static void set_bit(_Atomic uint8_t *m, uint16_t port)
{
    atomic_fetch_or_explicit(&m[port >> 3], (uint8_t)(1u << (port & 7)), memory_order_relaxed);
}

static void clear_bit(_Atomic uint8_t *m, uint16_t port)
{
    atomic_fetch_and_explicit(&m[port >> 3], (uint8_t)~(1u << (port & 7)), memory_order_relaxed);
}

/* A relayed socket's receive buffer. The kernel default (rmem_default,
 * ~208 KiB) holds ~270 small datagrams: a video key frame of 100+ packets
 * arriving while the worker is busy with others, or a burst relayed from a
 * client on another worker, overflows it silently. The request is capped at
 * net.core.rmem_max and only memory in use is charged (net.ipv4.udp_mem
 * bounds all sockets together). */
#define RELAYED_RCVBUF (1 << 20)

static int relayed_socket(int family)
{
    int one = 1, rcv = RELAYED_RCVBUF;
    int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv);
    return fd;
}

int rly_ports_open(rly_ports *p, const rtc_addr *ip, bool even, rtc_addr *bound)
{
    uint32_t span = (uint32_t)p->hi - p->lo + 1, start = 0, tries = 0;
    _Atomic uint8_t *used = p->used[ip->family == AF_INET6];
    int fd;

    fd = relayed_socket(ip->family);
    if (fd < 0)
        return fd;
    rtc_random(&start, sizeof start);
    for (uint32_t i = 0; i < span && tries < 256; i++) {
        uint16_t port = (uint16_t)(p->lo + (start + i) % span);
        struct sockaddr_storage ss;
        rtc_addr a = *ip;
        socklen_t sl;

        if ((even && (port & 1)) || bit(used, port))
            continue;
        tries++; /* bounded: a range full of other programs' ports fails fast */
        a.port = port;
        sl = rtc_addr_to_sockaddr(&a, &ss);
        if (bind(fd, (struct sockaddr *)&ss, sl) == 0) {
            set_bit(used, port);
            *bound = a;
            return fd;
        }
        if (errno != EADDRINUSE && errno != EACCES) {
            int e = -errno;
            close(fd);
            return e;
        }
    }
    close(fd);
    return -EADDRINUSE;
}

int rly_ports_open_port(rly_ports *p, const rtc_addr *ip, uint16_t port, rtc_addr *bound)
{
    _Atomic uint8_t *used = p->used[ip->family == AF_INET6];
    struct sockaddr_storage ss;
    rtc_addr a = *ip;
    socklen_t sl;
    int fd;

    if (port < p->lo || port > p->hi || bit(used, port))
        return -EADDRINUSE;
    fd = relayed_socket(ip->family);
    if (fd < 0)
        return fd;
    a.port = port;
    sl = rtc_addr_to_sockaddr(&a, &ss);
    if (bind(fd, (struct sockaddr *)&ss, sl)) {
        int e = -errno;
        close(fd);
        return e;
    }
    set_bit(used, port);
    *bound = a;
    return fd;
}

int rly_ports_dont_fragment(int fd, int family)
{
    int v4 = IP_PMTUDISC_DO, one = 1;
    int rc = family == AF_INET6
                 ? setsockopt(fd, IPPROTO_IPV6, IPV6_DONTFRAG, &one, sizeof one)
                 : setsockopt(fd, IPPROTO_IP, IP_MTU_DISCOVER, &v4, sizeof v4);
    return rc ? -errno : 0;
}

void rly_ports_claim(rly_ports *p, const rtc_addr *bound)
{
    set_bit(p->used[bound->family == AF_INET6], bound->port);
}

void rly_ports_close(rly_ports *p, int fd, const rtc_addr *bound)
{
    clear_bit(p->used[bound->family == AF_INET6], bound->port);
    close(fd);
}
