#!/usr/bin/python3
"""relay_takeover_chain.py - 20 consecutive live takeovers (SIGUSR2) under
continuous UDP traffic, each new process taken over by the next.

Asserts: every message of 12 flows (4 channel pairs, 2 Send/Data flows to a
UDP peer) arrives once and in order across all 20 takeovers; every process
but the last exits; the last one's descriptor count and kinds equal the
first one's and its RSS stays near it (no growth from generation to
generation); each child inherits across exec no descriptor other than
stdin/stdout/stderr and its socketpair end (checked by a wrapper that lists
/proc/self/fd before it execs the relay); for each takeover the old process
itself tells $NOTIFY_SOCKET "MAINPID=<new pid>" (checked with SO_PASSCRED),
before it exits.

Usage: relay_takeover_chain.py PATH/TO/tsunagu-relay
"""
import os
import re
import shutil
import signal
import socket
import struct
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from relay_stun import *  # noqa: E402,F401,F403
from relay_takeover import (kill_relays, Traffic, wait_gone, pid_gone, log_text, wait_log, metric,  # noqa: E402
                            udp_mesh, stop_cleanly)
from relay_takeover_fail import fd_kinds, rss_kb, settle_fds  # noqa: E402

TM = TIMEOUT_MULT
N = 20


def main():
    exe = os.path.abspath(relay_exe())
    c = Checks()
    tmp = tempfile.mkdtemp(prefix="relay-takeover-chain-")
    conf = os.path.join(tmp, "relay.conf")
    with open(conf, "w") as f:
        f.write("threads = 2\nuser = alice:pa55\nallow-peer = 127.0.0.1/32\n"
                "drain-seconds = 5\n")
    fdlog = os.path.join(tmp, "fds")
    wrapper = os.path.join(tmp, "tsunagu-relay")
    with open(wrapper, "w") as f:
        # what this process inherited across exec, then the relay itself
        # under the wrapper's name (so every generation comes back here)
        f.write("#!/bin/bash\n"
                f"ls -l /proc/$$/fd > '{fdlog}'.$$\n"
                f"exec -a \"$0\" '{exe}' \"$@\"\n")
    os.chmod(wrapper, 0o755)
    notify_path = os.path.join(tmp, "notify")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(notify_path)
    notify.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    notify.settimeout(0.05)
    os.environ["NOTIFY_SOCKET"] = notify_path
    notes = []  # (sender pid, text)

    def read_notes():
        while True:
            try:
                msg, anc, _, _ = notify.recvmsg(4096, socket.CMSG_SPACE(12))
            except (socket.timeout, TimeoutError, BlockingIOError):
                return
            pid = None
            for lvl, typ, data in anc:
                if lvl == socket.SOL_SOCKET and typ == socket.SCM_CREDENTIALS:
                    pid = struct.unpack("iII", data[:12])[0]
            notes.append((pid, msg.decode()))

    relay = Relay(wrapper, config=conf)
    pids = [relay.proc.pid]
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind(("127.0.0.1", 0))
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    traffic = Traffic()
    t_start = time.monotonic()
    try:
        traffic.clients = udp_mesh(c, relay, traffic, peer)  # kept alive with the flows
        traffic.start_rx()
        time.sleep(0.2)
        fds0 = fd_kinds(pids[0])
        rss0 = rss_kb(pids[0])
        print(f"# generation 0 (pid {pids[0]}): {len(fds0)} descriptors, RSS {rss0} KiB",
              flush=True)
        tx = threading.Thread(target=traffic._tx, args=(600,), daemon=True)
        tx.start()
        paused = []
        for k in range(1, N + 1):
            old = pids[-1]
            mark = len(log_text(relay))
            os.kill(old, signal.SIGUSR2)
            m = wait_log(relay, r"pid (\d+) took over from pid (\d+)", 10, mark)
            if not c.ok(m is not None and int(m.group(2)) == old,
                        f"takeover {k}: a new process took over from pid {old}",
                        log_text(relay)[mark:][-1500:]):
                break
            new = int(m.group(1))
            pids.append(new)
            p = wait_log(relay, r"workers paused (\d+) ms", 5, mark)
            if p:
                paused.append(int(p.group(1)))
            c.ok(wait_gone(old, 10), f"takeover {k}: the old process exits")
            read_notes()
            c.ok((old, f"MAINPID={new}") in notes,
                 f"takeover {k}: the old process announced MAINPID={new} itself",
                 repr(notes[-4:]))
        time.sleep(0.3)
        traffic.stop_tx = True
        tx.join(10)
        time.sleep(0.5 * TM)
        traffic.check(c, f"UDP flows through {N} consecutive takeovers")
        last = pids[-1]
        c.ok(len(pids) == N + 1 and not pid_gone(last) and
             all(pid_gone(p) for p in pids[:-1]),
             f"only the last of {N + 1} generations runs")
        fdsN = settle_fds(last, fds0)
        rssN = rss_kb(last)
        print(f"# generation {len(pids) - 1} (pid {last}): {len(fdsN)} descriptors, "
              f"RSS {rssN} KiB; pauses {paused} ms", flush=True)
        c.ok(fdsN == fds0, f"the last process has the first one's {len(fds0)} descriptors",
             f"first {fds0} last {fdsN}")
        c.ok(rssN <= rss0 * 1.5 + 16384, f"RSS of the last process ({rssN} KiB) near the "
             f"first's ({rss0} KiB)")
        c.ok(metric(relay, 'tsunagu_relay_takeovers_total{result="ok"}') == N,
             f"tsunagu_relay_takeovers_total{{result=\"ok\"}} is {N}")
        c.ok(metric(relay, "tsunagu_relay_allocations") == 10, "10 allocations in the last one")
        # what every generation inherited across exec
        # (ls runs in a child of the wrapper's shell: it lists the shell's
        # descriptors, which has 255 open on the script)
        lines = []
        for name in os.listdir(tmp):
            if name.startswith("fds."):
                with open(os.path.join(tmp, name)) as f:
                    for ln in f.read().splitlines():
                        m = re.match(r"\S+ .* (\d+) -> (.*)$", ln)
                        if m:
                            lines.append((name[4:], m.group(1), m.group(2)))
        c.ok(len({p for p, _, _ in lines}) == N + 1, f"descriptor lists of {N + 1} generations")
        extra = []
        for pid, fd, target in lines:
            if int(fd) <= 2 or (int(fd) == 255 and target == wrapper):
                continue
            if target.startswith("socket:") and int(pid) in pids[1:]:
                continue  # counted below: exactly one
            extra.append((pid, fd, target))
        socks = {p: sum(1 for pid, fd, t in lines if int(pid) == p and int(fd) > 2 and
                        t.startswith("socket:")) for p in pids[1:]}
        c.ok(not extra and all(v == 1 for v in socks.values()),
             f"each of the {N} children inherited only stdio and its socketpair end",
             f"extra {extra} sockets {socks}")
        elapsed = time.monotonic() - t_start
        print(f"# {N} takeovers in {elapsed:.1f} s", flush=True)
        stop_cleanly(c, relay, last)
    finally:
        traffic.stop_tx = traffic.stop_rx = True
        kill_relays(relay, pids)
        peer.close()
        notify.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return c.done()


if __name__ == "__main__":
    sys.exit(main())
