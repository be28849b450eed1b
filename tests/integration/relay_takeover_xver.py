#!/usr/bin/python3
"""relay_takeover_xver.py - a live upgrade (SIGUSR2) from one release to
another and back (a rollback), under UDP traffic.

The relay runs from a path in a temporary directory, started from the OLD
binary. An upgrade moves the NEW binary into that path (rename, as a
package manager does: the running file is never written) and sends
SIGUSR2; a rollback then moves OLD back and sends SIGUSR2 again. After
each:

  - a new process took over (its log line), and it runs the binary that
    was moved in (the inode of /proc/PID/exe), the old process exits;
  - every message of the flows (channel pairs, Send/Data with an IPv4 and
    an IPv6 peer, a dual allocation with two relayed sockets) arrived once
    and in order: traffic kept flowing on the same allocations;
  - the new process answers: /healthz and /metrics on the adopted metrics
    listener (all allocations counted, the takeover counted), requests on
    the moved allocations with the nonce the first process issued, a new
    Allocate over UDP and over TLS on the adopted listeners.

OLD is $TSUNAGU_OLD_RELAY when set (the previous release's binary), else
the binary under test itself: without it the test runs same-version, never
skips.

Usage: [TSUNAGU_OLD_RELAY=PATH/TO/old] relay_takeover_xver.py PATH/TO/tsunagu-relay
"""
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from relay_stun import *  # noqa: E402,F401,F403
from relay_takeover import (kill_relays, Traffic, check_moved, log_text, metric, no_sanitizer_report,  # noqa: E402
                            pid_gone, setup_udp, setup_v6, stop_cleanly, tls_allocate,
                            wait_gone, wait_log)

TM = TIMEOUT_MULT
N_ALLOCS = 8 * 2 + 4 + 2  # setup_udp's pairs and senders, setup_v6's two


def install(src, dst):
    """Put a copy of src at dst the way an upgrade does: a new file renamed
    over the old name. The inode of the new file."""
    tmp = dst + ".new"
    shutil.copy2(src, tmp)
    os.rename(tmp, dst)
    return os.stat(dst).st_ino


def upgrade(c, relay, traffic, pairs, senders, peer, tport, path, old_pid, src, what):
    """Move src into path, SIGUSR2 old_pid under traffic; the new pid."""
    ino = install(src, path)
    mark = len(log_text(relay))
    traffic.run(2.0, lambda: os.kill(old_pid, signal.SIGUSR2))
    m = wait_log(relay, r"pid (\d+) took over from pid (\d+)[^\n]*", 10, mark)
    if m:
        print(f"# {what}: {m.group(0)}", flush=True)
    if not c.ok(m is not None and int(m.group(2)) == old_pid,
                f"{what}: a new process took over from pid {old_pid}",
                log_text(relay)[mark:][-3000:]):
        return None
    new = int(m.group(1))
    try:
        ran = os.stat(f"/proc/{new}/exe").st_ino
    except OSError:
        ran = None
    c.ok(ran == ino, f"{what}: the new process runs the binary moved into place",
         f"inode {ran}, moved in {ino}")
    c.ok(wait_gone(old_pid, 10), f"{what}: the old process exits (nothing left to drain)")
    traffic.check(c, f"{what}: UDP flows on the same allocations")
    c.ok(relay.http("/healthz")[0] == 200, f"{what}: /healthz answers (adopted listener)")
    n = metric(relay, "tsunagu_relay_allocations")
    c.ok(n == N_ALLOCS, f"{what}: the new process holds the {N_ALLOCS} UDP allocations",
         str(n))
    with traffic.rx_lock:
        check_moved(c, relay, pairs, senders, peer, what)
    cl = Client(relay.addr, "udp", "alice", "pa55")
    c.success(cl.allocate(), f"{what}: a new UDP Allocate on the adopted listener")
    c.success(cl.refresh(0), f"{what}: ...released")
    cl.close()
    t = tls_allocate(tport)
    c.ok(t is not None, f"{what}: a new TLS allocation on the adopted TLS listener")
    if t:
        c.success(t.refresh(0), f"{what}: ...released")
        t.close()
    return new


def main():
    new_exe = os.path.abspath(relay_exe())
    old_exe = os.path.abspath(os.environ.get("TSUNAGU_OLD_RELAY") or new_exe)
    print(f"# old {old_exe}\n# new {new_exe}", flush=True)
    c = Checks()
    tmp = tempfile.mkdtemp(prefix="relay-takeover-xver-")
    conf = os.path.join(tmp, "relay.conf")
    with open(conf, "w") as f:
        f.write("threads = 2\nuser = alice:pa55\nallow-peer = 127.0.0.1/32\n"
                "allow-peer = ::1/128\ndrain-seconds = 60\n")
    if not shutil.which("openssl"):
        raise SystemExit("openssl command missing: install Debian package 'openssl'")
    cert, key = os.path.join(tmp, "relay.crt"), os.path.join(tmp, "relay.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=xver", "-keyout", key, "-out", cert],
                   check=True, capture_output=True)
    path = os.path.join(tmp, "tsunagu-relay")
    install(old_exe, path)
    tport = free_port(socket.SOCK_STREAM)
    relay = Relay(path, "--tls-listen", f"127.0.0.1:{tport}", "--cert", cert, "--key", key,
                  config=conf, v6=True)
    pids = [relay.proc.pid]
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind(("127.0.0.1", 0))
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    peer6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    peer6.bind(("::1", 0))
    traffic = Traffic()
    try:
        clients, pairs, senders = setup_udp(relay, c, traffic, peer)
        clients += setup_v6(relay, c, traffic, peer6)
        traffic.clients = clients  # kept alive with the flows
        traffic.start_rx()
        traffic.run(0.5)
        traffic.check(c, "before: UDP flows through the old binary")
        steps = [(new_exe, "upgrade old -> new"), (old_exe, "rollback new -> old")]
        for src, what in steps:
            new = upgrade(c, relay, traffic, pairs, senders, peer, tport, path, pids[-1], src,
                          what)
            if new is None:
                break
            pids.append(new)
        if len(pids) == len(steps) + 1:
            c.ok(metric(relay, 'tsunagu_relay_takeovers_total{result="ok"}') == len(steps),
                 f"tsunagu_relay_takeovers_total{{result=\"ok\"}} is {len(steps)}: the count "
                 "crossed both versions")
            c.ok(not re.search(r"takeover .*failed", log_text(relay)),
                 "no failed takeover in any process's log")
            stop_cleanly(c, relay, pids[-1])
        else:
            no_sanitizer_report(c, log_text(relay))
    finally:
        traffic.stop_tx = traffic.stop_rx = True
        kill_relays(relay, pids)
        peer.close()
        peer6.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return c.done()


if __name__ == "__main__":
    sys.exit(main())
