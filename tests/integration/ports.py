"""Ports for the servers a test starts (imported: pick()), and for the shell test scripts
(`ports.py N`: prints N ports each free for both UDP and TCP, then a 100-port relay range
LO HI in 20000-29899: read -r P1 P2 LO HI < <(python3 ports.py 2)).

Random ports in 3000-9999, checked free by binding them: below the relay port ranges the
tests give their relays (20000-32000; relay_uclient's 10000-19999) and below Linux's
ephemeral range (32768-60999), from which the kernel hands out the local port of every
outgoing connection. A port taken there (bind to port 0) and freed again for the server
can be taken by any connect() on the machine before the server binds it: CI saw
"Address already in use" that way (fleet_static's metrics port). Two tests running side
by side draw from 7,000 ports, so picking the same one in the same instant is rare."""
import random
import socket
import sys

LO, HI = 3000, 10000
# the defaults some tests and the README's run command bind on purpose
WELL_KNOWN = {3478, 3479, 3480, 5349, 5350, 6379, 7000, 8080, 8443, 9641, 9642, 9643}
_rng = random.SystemRandom()


def pick(tcp=True, udp=False, ip=None, family=socket.AF_INET):
    """A port free on `ip` (default the family's loopback address) for TCP and/or UDP
    at the moment of asking."""
    if ip is None:
        ip = "::1" if family == socket.AF_INET6 else "127.0.0.1"
    for _ in range(500):
        port = _rng.randrange(LO, HI)
        if port in WELL_KNOWN:
            continue
        socks = []
        try:
            for kind, want in ((socket.SOCK_STREAM, tcp), (socket.SOCK_DGRAM, udp)):
                if want:
                    s = socket.socket(family, kind)
                    socks.append(s)
                    s.bind((ip, port))
            return port
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free port in %d-%d on %s" % (LO, HI - 1, ip))


def free_both():
    """A loopback port free for both UDP and TCP (the scripts' older name)."""
    return pick(tcp=True, udp=True)


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    lo = _rng.randrange(20000, 29800, 100)
    print(*[pick(tcp=True, udp=True) for _ in range(n)], lo, lo + 99)
