"""ports.py N - print N loopback ports each free for both UDP and TCP, then a
100-port relay range LO HI outside Linux's ephemeral range (32768-60999), so
other programs' outgoing sockets cannot squat on relay ports. Used by the
shell test scripts: read -r P1 P2 LO HI < <(python3 ports.py 2)."""
import random
import socket
import sys


def free_both():
    for _ in range(200):
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.bind(("127.0.0.1", 0))
        p = u.getsockname()[1]
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind(("127.0.0.1", p))
            return p
        except OSError:
            pass
        finally:
            s.close()
            u.close()
    raise SystemExit("no free port")


if __name__ == '__main__':
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    lo = random.randrange(20000, 29800, 100)
    print(*[free_both() for _ in range(n)], lo, lo + 99)
