#!/usr/bin/python3
"""An office behind one NAT address (issue 14 item 9), against the real
tsunagu-relay with DEFAULT limits on loopback. Before the fix the relay
closed the 65th TCP/TLS connection of one address at accept
(--max-tcp-per-ip 64, authenticated or not) and refused a user's 65th
allocation (--max-allocations-per-user 64), so an office of more than 64
people behind one public address, who need TURN over TLS on 443 most, was
locked out. Now the per-address cap is on connections without an allocation
(--max-preauth-per-ip 64, handshakes in progress --max-tls-handshakes-per-ip
32), the total per address is high (--max-tcp-per-ip 4096), a static user
has no quota unless one is set, and a REST ID is bounded by
--max-allocations-per-rest-id (4096).

Tests (argv[2:] picks some; all when none):
- office_rest:   1,000 TLS connections from 127.0.0.1, each an Allocate with
                 REST credentials of ONE ID (tsunagu-signal's open mode gives
                 an office one ID), all open at once: 1,000 allocations.
                 Next to them the office address still gets exactly 64 idle
                 pre-auth TCP connections (the 65th closed at accept), and an
                 abusive address (127.0.0.3) opening idle TCP and TLS
                 connections in a loop is capped at 64 / 32 while another
                 (127.0.0.4) allocates over TLS at once.
- office_static: the same 1,000 over TLS with one static user for everyone.
- caps:          the caps that remain: --max-tcp-per-ip still bounds all
                 connections of an address, --max-allocations-per-rest-id
                 bounds one REST ID (486) and not another or a static user,
                 --max-allocations-per-user N caps a static user.

usage: relay_office.py PATH/TO/tsunagu-relay [TEST...]"""
import os
import resource
import shutil
import socket
import ssl
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from relay_stun import (ERROR, SUCCESS, TIMEOUT_MULT, Checks, Client, Relay,  # noqa: E402
                        free_port, relay_exe, rest_credentials)
from relay_ops import make_cert  # noqa: E402
from relay_stun import closed_by_server  # noqa: E402

OFFICE = 1000


def raise_fd_limit(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        if hard != resource.RLIM_INFINITY and hard < need:
            raise SystemExit(f"FAIL: need {need} file descriptors, the hard limit is {hard} "
                             "(scripts/test.sh raises it)")
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))


def big_relay(exe, *args):
    """A relay with enough relayed ports for the office (Relay's range holds
    200): the listeners and metrics as Relay makes them, default limits."""
    r = Relay(exe, *args, start=False)
    import random
    lo = random.randrange(20000, 30000)
    i = r.args.index("--relay-ports")
    r.args[i + 1] = f"{lo}-{lo + 2 * OFFICE}"
    r.lo, r.hi = lo, lo + 2 * OFFICE
    r.start()
    return r


def tls_alloc(tport, user, password, src="127.0.0.1"):
    """A TLS connection from src with an allocation on it: (Client, the
    Allocate's answer). The Client's socket stays open."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    raw = socket.create_connection(("127.0.0.1", tport), timeout=10 * TIMEOUT_MULT,
                                   source_address=(src, 0))
    s = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
    c = Client(("127.0.0.1", tport), proto="tls", user=user, password=password, sock=s)
    return c, c.allocate()


def office(exe, c, tmp, kind):
    tport = free_port(socket.SOCK_STREAM)
    cert, key = make_cert(tmp, "office")
    if kind == "rest":
        secret = "office-secret"
        user, password = rest_credentials(secret, int(time.time()) + 3600, ident="officeid")
        args = ["--auth-secret", secret]
    else:
        user, password = "everyone", "pw"
        args = ["--user", "everyone:pw"]
    relay = big_relay(exe, *args, "--tls-listen", f"127.0.0.1:{tport}", "--cert", cert,
                      "--key", key, "--threads", "2")
    clients, answers, lock = [], {}, threading.Lock()
    idle = []

    def one(_):
        try:
            cl, m = tls_alloc(tport, user, password)
        except (OSError, ssl.SSLError, AssertionError, ConnectionError) as e:
            key_ = type(e).__name__
            cl = None
        else:
            key_ = "ok" if m.cls == SUCCESS else f"error {m.error}"
        with lock:
            answers[key_] = answers.get(key_, 0) + 1
            if cl:
                clients.append(cl)

    try:
        t0 = time.time()
        with ThreadPoolExecutor(8) as ex:
            list(ex.map(one, range(OFFICE)))
        took = time.time() - t0
        print(f"# {kind}: {OFFICE} TLS allocations from 127.0.0.1 in {took:.1f}s: {answers}",
              flush=True)
        c.ok(answers == {"ok": OFFICE},
             f"{kind}: {OFFICE} TLS connections from one address, one "
             f"{'REST ID' if kind == 'rest' else 'static user'}: all allocate "
             f"(default flags)", str(answers))
        c.ok(relay.metric("tsunagu_relay_allocations") == OFFICE,
             f"{kind}: tsunagu_relay_allocations is {OFFICE}")
        if kind == "static":
            return
        # next to the 1,000: what is not authenticated is still capped per address.
        # (Two workers accept in any order, so which connection is refused varies:
        # open them all, let the relay accept, then count the closed ones.)
        def survivors(port, src, n):
            socks = [socket.create_connection(("127.0.0.1", port), timeout=2,
                                              source_address=(src, 0)) for _ in range(n)]
            time.sleep(1.0 * TIMEOUT_MULT)
            alive = [x for x in socks if not closed_by_server(x, 0.01)]
            for x in socks:
                if x not in alive:
                    x.close()
            return alive

        alive = survivors(relay.port, "127.0.0.1", 65)
        idle += alive
        c.ok(len(alive) == 64,
             "rest: next to 1,000 authenticated, the office address's 65th idle pre-auth "
             "connection is closed at accept (--max-preauth-per-ip 64), 64 stay",
             f"{len(alive)} stayed")
        # an abusive address opening idle connections in a loop
        kept = survivors(relay.port, "127.0.0.3", 200)
        idle += kept
        c.ok(len(kept) == 64,
             f"rest: an address looping idle TCP connections keeps 64, the other "
             f"{200 - len(kept)} are closed", f"kept {len(kept)}")
        kept_tls = survivors(tport, "127.0.0.5", 100)
        idle += kept_tls
        c.ok(len(kept_tls) == 32,
             f"rest: an address looping idle TLS connections keeps 32 handshakes "
             f"(--max-tls-handshakes-per-ip), {100 - len(kept_tls)} closed",
             f"kept {len(kept_tls)}")
        other, m = tls_alloc(tport, *rest_credentials(secret, int(time.time()) + 3600,
                                                      ident="other"), src="127.0.0.4")
        c.ok(m.cls == SUCCESS, "rest: meanwhile another address allocates over TLS at once")
        other.close()
        c.ok("max-preauth-per-ip (64)" in relay.logtext(),
             "rest: the refusal names max-preauth-per-ip")
    finally:
        for s in idle:
            s.close()
        for cl in clients:
            cl.close()
        relay.stop()


def caps(exe, c, tmp):
    secret = "cap-secret"
    relay = Relay(exe, "--auth-secret", secret, "--user", "solo:pw", "--user", "capped:pw",
                  "--max-tcp-per-ip", "10", "--max-allocations-per-rest-id", "5",
                  "--threads", "1")
    held = []
    try:
        exp = int(time.time()) + 3600
        # --max-tcp-per-ip: all connections of an address, authenticated or not
        refused = 0
        for i in range(12):
            try:
                cl = Client(relay.addr, proto="tcp", user="solo", password="pw")
                m = cl.allocate()
                if m.cls == SUCCESS:
                    held.append(cl)
                else:
                    refused += 1
                    cl.close()
            except (OSError, ConnectionError, AssertionError):
                refused += 1
        c.ok(len(held) == 10 and refused == 2,
             f"caps: --max-tcp-per-ip 10 still bounds authenticated connections "
             f"({len(held)} allocated, {refused} closed)")
        for cl in held:
            cl.close()
        held = []
        time.sleep(0.3)
        # --max-allocations-per-rest-id 5: one REST ID (over UDP)
        u, p = rest_credentials(secret, exp, ident="one")
        answers = []
        for _ in range(6):
            cl = Client(relay.addr, user=u, password=p)
            m = cl.allocate()
            answers.append(None if m.cls == SUCCESS else m.error)
            held.append(cl)
        ok5 = [a for a in answers[:5] if a is None]
        c.ok(len(ok5) == 5 and answers[5] == 486,
             "caps: --max-allocations-per-rest-id 5: the 6th allocation of one ID gets 486",
             str(answers))
        u2, p2 = rest_credentials(secret, exp, ident="two")
        cl = Client(relay.addr, user=u2, password=p2)
        c.ok(cl.allocate().cls == SUCCESS, "caps: another REST ID has its own quota")
        held.append(cl)
        n = 0
        for _ in range(70):
            cl = Client(relay.addr, user="solo", password="pw")
            n += cl.allocate().cls == SUCCESS
            held.append(cl)
        c.ok(n == 70, f"caps: a static user has no quota by default ({n} of 70)")
    finally:
        for cl in held:
            cl.close()
        relay.stop()
    relay = Relay(exe, "--user", "capped:pw", "--max-allocations-per-user", "3", "--threads", "1")
    held = []
    try:
        got = []
        for _ in range(4):
            cl = Client(relay.addr, user="capped", password="pw")
            m = cl.allocate()
            got.append(m.cls == SUCCESS or m.error)
            held.append(cl)
        c.ok(got == [True, True, True, 486],
             "caps: --max-allocations-per-user 3 caps a static user (486)", str(got))
    finally:
        for cl in held:
            cl.close()
        relay.stop()


def main():
    exe = relay_exe()
    raise_fd_limit(6 * OFFICE + 1024)
    c = Checks()
    tmp = tempfile.mkdtemp(prefix="relay-office-")
    only = sys.argv[2:]
    tests = [("office_rest", lambda: office(exe, c, tmp, "rest")),
             ("office_static", lambda: office(exe, c, tmp, "static")),
             ("caps", lambda: caps(exe, c, tmp))]
    try:
        for name, fn in tests:
            if not only or name in only:
                fn()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return c.done()


if __name__ == "__main__":
    sys.exit(main())
