#!/usr/bin/python3
"""relay_takeover_fail.py - every way a live takeover (SIGUSR2) can fail
leaves the running relay serving with nothing lost and nothing leaked.

The relay runs through a symbolic link, as installs that swing a link on
upgrade do (/usr/bin via alternatives, /opt/x/current -> 1.3). Each
scenario points the link at something else and sends SIGUSR2:
  missing     the link points at no file
  noexec      a file without the execute bit
  exit        a program that exits at once
  hangup2     a child that closes the takeover socket and lingers, twice in a
              row: both children must be killed and reaped (no zombie, no
              leftover process holding copies of the sockets)
  after_size  a fake child that says HELO, reads SIZE and exits
  no_ack      a fake child that reads the whole state (sockets included)
              and exits without ACK
  garbage     a fake child that answers the state with junk
  nak_early   a fake child that refuses (NAK_) with the state still unread: the
              parent logs its reason, not the socket reset
  exit x10    ten failed takeovers in a row (EMFILE over many upgrades)
Through all of them 12 UDP flows relay continuously: zero loss, in order.
After them the relay has exactly the descriptors it had before (count and
kinds), no child process, and counts every failure in
tsunagu_relay_takeovers_total{result="failed"}.
  link        the link swung to a real new binary: the takeover runs the link's
              new target (not /proc/self/exe's resolved old one)
  sighup      SIGHUP reaches the new process before it handles signals: the
              takeover still succeeds and the new process then reloads
  sigterm     last: a fake child reads the state; SIGTERM reaches the old
              process before the child's ACK: the old process must not hand
              over (no GO), and drains and exits 0.
  hup         (a second relay) SIGHUP reaches the old process during the
              exchange: the new process gets it after GO

Usage: relay_takeover_fail.py PATH/TO/tsunagu-relay
"""
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from relay_stun import *  # noqa: E402,F401,F403
from relay_takeover import (kill_relays, Traffic, wait_gone, pid_gone, log_text, wait_log, metric,  # noqa: E402
                            udp_mesh, no_sanitizer_report)

TM = TIMEOUT_MULT

FAKE_CHILD = r'''#!/usr/bin/python3
# fake takeover child: speaks the socketpair protocol up to MODE's failure
import os, socket, sys, time
MODE = "@MODE@"
REPORT = "@REPORT@"
fd = int(os.environ["TSUNAGU_TAKEOVER_FD"])
s = socket.socket(fileno=fd)
def note(t):
    with open(REPORT, "a") as f:
        f.write(t + "\n")
note(f"pid {os.getpid()} start")
s.sendmsg([b"HELO\x00\x01"])
msg, anc, fl, _ = s.recvmsg(65536 + 4, socket.CMSG_SPACE(253 * 4))
if msg[:4] != b"SIZE":
    note("no SIZE"); sys.exit(1)
if MODE == "after_size":
    sys.exit(1)
if MODE == "nak_early":
    # refuse with the parent's messages still unread: the close resets
    s.sendmsg([b"NAK_fake child refuses"])
    sys.exit(1)
blen = int.from_bytes(msg[4:8], "big"); nfds = int.from_bytes(msg[8:12], "big")
got_fds = got_b = 0
while got_fds < nfds or got_b < blen:
    msg, anc, fl, _ = s.recvmsg(65536 + 4, socket.CMSG_SPACE(253 * 4))
    for lvl, typ, data in anc:
        fds = [int.from_bytes(data[i:i + 4], sys.byteorder) for i in range(0, len(data) - 3, 4)]
        got_fds += len(fds)
        for x in fds:
            os.close(x)
    if msg[:4] == b"BLOB":
        got_b += len(msg) - 4
note(f"state {got_fds} fds {got_b} bytes")
if MODE == "no_ack":
    sys.exit(1)
if MODE == "garbage":
    s.sendmsg([b"JUNKjunk"])
    time.sleep(0.5)
    sys.exit(1)
if MODE == "sighup":
    import signal
    note("ready")
    time.sleep(float(os.environ.get("TIMEOUT_MULT", "1")) * 1.0)
    s.sendmsg([b"ACK_"])
    s.settimeout(5)
    m = s.recv(64)
    note("got " + m[:4].decode(errors="replace"))
    signal.signal(signal.SIGHUP, lambda *a: note("HUP"))
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGHUP})
    time.sleep(2)
    sys.exit(0)
if MODE == "sigterm":
    note("ready")
    time.sleep(float(os.environ.get("TIMEOUT_MULT", "1")) * 1.0)
    s.sendmsg([b"ACK_"])
    s.settimeout(5)
    try:
        m = s.recv(64)
    except OSError:
        m = b""
    note("got " + (m[:4].decode(errors="replace") if m else "EOF"))
    sys.exit(1)
'''


def fd_kinds(pid):
    """Sorted list of what each descriptor of pid is (socket:[..] -> socket)."""
    out = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            t = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        out.append(re.sub(r"\[\d+\]", "", t))
    return sorted(out)


def children(pid):
    kids = []
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{t}/children") as f:
                kids += [int(x) for x in f.read().split()]
        except OSError:
            pass
    return kids


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def settle_fds(pid, want, secs=2.0):
    """fd_kinds(pid) once it equals want (admin connections close a little
    after their answer), or the last one seen."""
    deadline = time.time() + secs * TM
    cur = fd_kinds(pid)
    while cur != want and time.time() < deadline:
        time.sleep(0.05)
        cur = fd_kinds(pid)
    return cur


def main():
    exe = os.path.abspath(relay_exe())
    c = Checks()
    tmp = tempfile.mkdtemp(prefix="relay-takeover-fail-")
    conf = os.path.join(tmp, "relay.conf")
    with open(conf, "w") as f:
        f.write("threads = 2\nuser = alice:pa55\nallow-peer = 127.0.0.1/32\n"
                "drain-seconds = 5\n")
    v1 = os.path.join(tmp, "v1-tsunagu-relay")
    shutil.copy2(exe, v1)
    link = os.path.join(tmp, "tsunagu-relay")
    os.symlink(v1, link)
    report = os.path.join(tmp, "report")

    def point(target):
        tmpl = link + ".new"
        os.symlink(target, tmpl)
        os.replace(tmpl, link)

    def script(name, body, mode=0o755):
        p = os.path.join(tmp, name)
        with open(p, "w") as f:
            f.write(body)
        os.chmod(p, mode)
        return p

    def fake(mode):
        return script(f"fake-{mode}", FAKE_CHILD.replace("@MODE@", mode).replace("@REPORT@", report))

    # a stray TSUNAGU_TAKEOVER_FD naming some other inherited socket: the
    # relay starts as usual instead of talking the protocol on it
    stray = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    r0 = Relay(link, config=conf, start=False)
    r0.proc = subprocess.Popen([link] + r0.args, stdout=r0.log, stderr=r0.log,
                               pass_fds=[stray.fileno()],
                               env=dict(os.environ, TSUNAGU_TAKEOVER_FD=str(stray.fileno())))
    up = False
    deadline = time.time() + 5 * TM
    while time.time() < deadline and r0.proc.poll() is None and not up:
        try:
            up = r0.http("/healthz")[0] == 200
        except OSError:
            time.sleep(0.05)
    c.ok(up and "not a takeover socket" in log_text(r0),
         "a stray TSUNAGU_TAKEOVER_FD is ignored with a log line; the relay starts",
         log_text(r0)[-4000:])
    r0.stop()
    stray.close()

    relay = Relay(link, config=conf)
    pid = relay.proc.pid
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind(("127.0.0.1", 0))
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    traffic = Traffic()
    seen = set()
    tx = None
    try:
        traffic.clients = udp_mesh(c, relay, traffic, peer)  # kept alive with the flows
        traffic.start_rx()
        time.sleep(0.2)
        before = fd_kinds(pid)
        rss0 = rss_kb(pid)
        print(f"# relay pid {pid}: {len(before)} descriptors, RSS {rss0} KiB", flush=True)
        tx = threading.Thread(target=traffic._tx, args=(600,), daemon=True)
        tx.start()

        def attempt(what, target, expect=None):
            point(target)
            mark = len(log_text(relay))
            os.kill(pid, signal.SIGUSR2)
            m = wait_log(relay, r"takeover by pid (\d+) failed, this process keeps serving: (.*)",
                         15, mark)
            c.ok(m is not None and (expect is None or re.search(expect, m.group(2))),
                 f"{what}: the takeover fails and the relay keeps serving",
                 log_text(relay)[mark:][-1500:])
            if m:
                seen.add(int(m.group(1)))
            return m

        n_fail = 0
        for what, target, expect in [
                ("missing binary", os.path.join(tmp, "no-such-file"), r"HELO"),
                ("binary not executable", script("noexec", "#!/bin/sh\nexit 0\n", 0o644), r"HELO"),
                ("child exits at once", script("exit1", "#!/bin/sh\nexit 1\n"), r"HELO"),
                ("child exits after SIZE", fake("after_size"), r"ACK|sending"),
                ("child reads the state, no ACK", fake("no_ack"), r"ACK"),
                ("child answers junk", fake("garbage"), r"unexpected"),
                ("child refuses mid-transfer", fake("nak_early"),
                 r"the new process refused: fake child refuses")]:
            attempt(what, target, expect)
            n_fail += 1
        # a child that hangs up and lingers, twice in a row
        linger = script("linger", "#!/bin/bash\neval \"exec ${TSUNAGU_TAKEOVER_FD}>&-\"\n"
                        "exec -a \"$0-linger\" sleep 30\n")
        mark = len(log_text(relay))
        attempt("lingering child 1", linger, r"HELO")
        attempt("lingering child 2", linger, r"HELO")
        n_fail += 2
        lingering = [int(x) for x in re.findall(r"takeover: started .* as pid (\d+)",
                                                 log_text(relay)[mark:])]
        c.ok(len(lingering) == 2 and all(wait_gone(p, 6) for p in lingering),
             "two lingering children in a row: both killed and reaped", repr(lingering))
        # many failed takeovers in a row
        exit1 = os.path.join(tmp, "exit1")
        for k in range(10):
            attempt(f"failed takeover {k + 1}/10", exit1, r"HELO")
            n_fail += 1
        time.sleep(0.3)
        deadline = time.time() + 5 * TM
        while children(pid) and time.time() < deadline:
            time.sleep(0.05)
        c.ok(children(pid) == [], "no child process left (all reaped)", repr(children(pid)))
        after = settle_fds(pid, before)
        c.ok(after == before, f"the same {len(before)} descriptors after {n_fail} failed takeovers",
             f"before {before} after {after}")
        rss1 = rss_kb(pid)
        print(f"# after {n_fail} failed takeovers: {len(after)} descriptors, RSS {rss1} KiB "
              f"(was {rss0})", flush=True)
        c.ok(rss1 <= rss0 * 1.5 + 16384, "RSS bounded across failed takeovers")
        c.ok(metric(relay, 'tsunagu_relay_takeovers_total{result="failed"}') == n_fail,
             f"tsunagu_relay_takeovers_total{{result=\"failed\"}} is {n_fail}")
        traffic.stop_tx = True
        tx.join(10)
        time.sleep(0.5 * TM)
        traffic.check(c, f"UDP flows through {n_fail} failed takeovers")
        c.ok(not pid_gone(pid), "the original process still serves")

        # the link swung to a new build: the takeover runs the link's target
        marker = os.path.join(tmp, "upgraded.pid")
        v2 = script("v2-tsunagu-relay", f"#!/bin/bash\necho $$ > '{marker}'\n"
                    f"exec -a \"$0\" '{exe}' \"$@\"\n")
        point(v2)
        mark = len(log_text(relay))
        traffic.stop_tx = False
        tx = threading.Thread(target=traffic._tx, args=(600,), daemon=True)
        tx.start()
        time.sleep(0.3)
        os.kill(pid, signal.SIGUSR2)
        m = wait_log(relay, r"pid (\d+) took over from pid (\d+)", 10, mark)
        c.ok(m is not None, "a takeover through the swung link", log_text(relay)[mark:][-1500:])
        new = int(m.group(1)) if m else None
        if new:
            seen.add(new)
        try:
            with open(marker) as f:
                ran = int(f.read().strip())
        except (OSError, ValueError):
            ran = None
        c.ok(new is not None and ran == new,
             "the takeover ran the link's new target, not the resolved old binary",
             f"ran={ran} new={new}")
        c.ok(wait_gone(pid, 10), "the old process exits (nothing to drain)")
        time.sleep(0.5)
        traffic.stop_tx = True
        tx.join(10)
        time.sleep(0.5 * TM)
        traffic.check(c, "UDP flows through the takeover by the new binary")
        if not new:
            return c.done()

        # SIGHUP (say logrotate's pkill -HUP) reaches the child before it
        # has its signal handling: the takeover must still succeed
        slow = script("v3-tsunagu-relay", f"#!/bin/bash\nsleep {0.6 * TM}\n"
                      f"exec -a \"$0\" '{exe}' \"$@\"\n")
        point(slow)
        mark = len(log_text(relay))
        os.kill(new, signal.SIGUSR2)
        m = wait_log(relay, r"takeover: started .* as pid (\d+)", 5, mark)
        child = int(m.group(1)) if m else None
        if child:
            seen.add(child)
            os.kill(child, signal.SIGHUP)
        m = wait_log(relay, r"pid (\d+) took over from pid (\d+)", 10, mark)
        c.ok(child is not None and m is not None and int(m.group(1)) == child,
             "SIGHUP to the starting child: the takeover still succeeds",
             log_text(relay)[mark:][-1500:])
        c.ok(wait_log(relay, r"reload", 5, mark) is not None,
             "and the new process handles that SIGHUP (reload)", log_text(relay)[mark:][-1500:])
        if not m:
            return c.done()
        c.ok(wait_gone(new, 10), "the previous process exits")
        new = child

        # last: SIGTERM to the old process while its child holds the state
        point(fake("sigterm"))
        open(report, "w").close()
        mark = len(log_text(relay))
        os.kill(new, signal.SIGUSR2)
        deadline = time.time() + 10 * TM
        while time.time() < deadline:
            with open(report) as f:
                if "ready" in f.read():
                    break
            time.sleep(0.02)
        os.kill(new, signal.SIGTERM)
        m = wait_log(relay, r"takeover by pid (\d+) failed, this process keeps serving: (.*)",
                     10, mark)
        c.ok(m is not None and "stop signal" in m.group(2),
             "SIGTERM during a takeover: the old process does not hand over",
             log_text(relay)[mark:][-1500:])
        if m:
            seen.add(int(m.group(1)))
        time.sleep(1.5 * TM)
        with open(report) as f:
            rep = f.read()
        c.ok("got GO__" not in rep and "got " in rep, "the child never got GO", rep)
        c.ok(wait_gone(new, 10), "then the old process drains and exits")

        # SIGHUP (systemctl reload) reaches the old process during the
        # exchange: after GO it is passed on to the new process
        point(v1)
        relay2 = Relay(link, config=conf)
        seen.add(relay2.proc.pid)
        point(fake("sighup"))
        open(report, "w").close()
        os.kill(relay2.proc.pid, signal.SIGUSR2)
        deadline = time.time() + 10 * TM
        while time.time() < deadline:
            with open(report) as f:
                if "ready" in f.read():
                    break
            time.sleep(0.02)
        os.kill(relay2.proc.pid, signal.SIGHUP)
        deadline = time.time() + 8 * TM
        rep = ""
        while time.time() < deadline and "HUP" not in rep:
            time.sleep(0.05)
            with open(report) as f:
                rep = f.read()
        c.ok("got GO__" in rep and "HUP" in rep,
             "SIGHUP during the exchange is passed on to the new process after GO",
             rep + log_text(relay2)[-1500:])
        relay2.proc.wait(10 * TM)
        relay2.log.close()
        no_sanitizer_report(c, log_text(relay), "no sanitizer report")
    finally:
        traffic.stop_tx = traffic.stop_rx = True
        kill_relays(relay, seen | {pid})
        # lingering children of a broken relay, found by their script
        for p in os.listdir("/proc"):
            if p.isdigit():
                try:
                    with open(f"/proc/{p}/cmdline", "rb") as f:
                        if tmp.encode() in f.read():
                            os.kill(int(p), signal.SIGKILL)
                except OSError:
                    pass
        peer.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return c.done()


if __name__ == "__main__":
    sys.exit(main())
