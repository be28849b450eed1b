#!/usr/bin/python3
"""relay_takeover.py - live takeover of a running tsunagu-relay (SIGUSR2,
docs/relay.md "Live upgrade"): a new process adopts the sockets and the UDP
allocations while calls keep relaying.

1. 22 UDP allocations (8 pairs talking over channels, 4 talking to a UDP peer
   with Send/Data indications, one dual-stack allocation talking to an IPv6
   peer through its IPv6 relayed socket, one IPv6 client on the second
   listener) and one TCP allocation relay ~1500 messages/s
   with sequence numbers; SIGUSR2; a new PID answers /healthz and /metrics,
   every message of every flow arrives, in order; Refresh, CreatePermission
   and ChannelBind on moved allocations succeed without a new nonce; a new
   Allocate works; /metrics counts the allocations.
2. The TCP allocation stays with the old process and keeps relaying until it
   is released; then the old process exits 0. A new TCP client is served by
   the new process, and so is a new TLS client.
3. A takeover by a child with an incompatible config (threads changed in the
   --config file) fails, and so does one whose config has a bad value: the
   running process keeps serving with no loss and counts
   tsunagu_relay_takeovers_total{result="failed"} 2.
The relay runs from a copy of the binary that is replaced on disk before the
first SIGUSR2 (by a script that records its PID and execs the real binary):
the takeover must run what is on disk now, as an upgrade needs; the script
waits for a gate file first (the takeover is then in progress for as long as
the test needs), and a second SIGUSR2 in that time must be ignored.
4. A second takeover works (the state survives twice).

Usage: relay_takeover.py PATH/TO/tsunagu-relay
"""
import os
import re
import shutil
import select
import selectors
import signal
import socket
import ssl
import subprocess
import struct
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from relay_stun import *  # noqa: E402,F401,F403

TM = TIMEOUT_MULT
TICK = 0.02  # one message per flow per tick: 30 flows -> ~1500 messages/s
PAYLOAD = 100


def pid_gone(pid):
    """True once pid has exited (gone, or a zombie nobody reaped yet)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


def kill_relays(relay, pids):
    """Cleanup on any exit: SIGKILL every relay process of the test still
    running (by PID: the first one and every takeover's child), then reap
    the one this script started."""
    for pid in pids:
        if not pid_gone(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    if relay.proc.poll() is None:
        relay.proc.kill()
    relay.proc.wait(5)


def wait_gone(pid, secs):
    deadline = time.time() + secs * TM
    while time.time() < deadline:
        if pid_gone(pid):
            return True
        time.sleep(0.05)
    return pid_gone(pid)


def log_text(relay):
    """The whole log so far, read with pread: the relay processes write to
    the same open file (their stdout/stderr, no O_APPEND), whose offset a
    seek(0) + read() here would move under them, and a line written in
    between lands over the start of the log (where a search past a mark
    never finds it). Relay.logtext() reads the same way, the last 4000
    characters only."""
    fd = relay.log.fileno()
    return os.pread(fd, os.fstat(fd).st_size, 0).decode(errors="replace")


def no_sanitizer_report(c, text, what="no sanitizer report in any process's log"):
    c.ok("Sanitizer" not in text and "runtime error" not in text, what,
         text[max(0, text.find("Sanitizer") - 200):][:3000] if "Sanitizer" in text else "")


def stop_cleanly(c, relay, pid):
    """SIGTERM twice (the second ends the drain at once) and wait, so the
    sanitizer's exit checks run; then no report in the log."""
    os.kill(pid, signal.SIGTERM)
    time.sleep(0.1)
    os.kill(pid, signal.SIGTERM)
    c.ok(wait_gone(pid, 10), "the last process stops on SIGTERM")
    no_sanitizer_report(c, log_text(relay))


def udp_mesh(c, relay, traffic, peer, pairs=4, senders=2):
    """`pairs` pairs of UDP allocations relaying to each other over channels
    and `senders` allocations with Send indications to `peer` (both ways),
    each a flow of `traffic`, every socket watched. Returns the clients."""
    clients = []
    for i in range(pairs):
        a = Client(relay.addr, "udp", "alice", "pa55")
        b = Client(relay.addr, "udp", "alice", "pa55")
        ok = a.allocate().cls == SUCCESS and b.allocate().cls == SUCCESS
        ok = ok and a.bind(0x4000 + i, b.relayed).cls == SUCCESS
        ok = ok and b.bind(0x4100 + i, a.relayed).cls == SUCCESS
        c.ok(ok, f"pair {i}: two UDP allocations bound to each other")
        traffic.flow(lambda p, a=a, i=i: a.send_chan(0x4000 + i, p))
        traffic.flow(lambda p, b=b, i=i: b.send_chan(0x4100 + i, p))
        clients += [a, b]
    for j in range(senders):
        s = Client(relay.addr, "udp", "alice", "pa55")
        c.ok(s.allocate().cls == SUCCESS and s.permit(peer.getsockname()).cls == SUCCESS,
             f"sender {j}: allocation + permission")
        traffic.flow(lambda p, s=s: s.send_ind(peer.getsockname(), p))
        traffic.flow(lambda p, s=s: peer.sendto(p, s.relayed))
        clients.append(s)
    for cl in clients:
        traffic.watch(cl.sock, "udp")
    traffic.watch(peer, "udp")
    return clients


def wait_log(relay, pattern, secs, after=0):
    """First match of pattern in the log past offset `after`, or None."""
    deadline = time.time() + secs * TM
    while time.time() < deadline:
        m = re.compile(pattern).search(log_text(relay), after)
        if m:
            return m
        time.sleep(0.05)
    return None


def metric(relay, name):
    try:
        return relay.metric(name)
    except (AssertionError, OSError):
        return None


class Traffic:
    """Flows with sequence numbers: every message of every flow must arrive
    once and in order. A flow is (sender function, receiving socket kind)."""

    def __init__(self):
        self.senders = []  # (flow id, fn(payload))
        self.sent = {}
        self.got = {}
        self.sel = selectors.DefaultSelector()
        self.tcp_buf = {}
        self.stop_rx = False
        self.stop_tx = False
        self.lock = threading.Lock()
        # held by the receiver around each select; the main thread takes it
        # to use a client's socket itself (requests read their answers)
        self.rx_lock = threading.Lock()

    def flow(self, fn):
        fid = len(self.senders)
        self.senders.append((fid, fn))
        self.sent[fid] = 0
        self.got[fid] = []
        return fid

    def watch(self, sock, kind):
        self.sel.register(sock, selectors.EVENT_READ, kind)

    def _record(self, data):
        # ChannelData, Data indication or a raw peer datagram: find the tag
        i = data.find(b"TKOV")
        if i < 0 or len(data) < i + 10:
            return
        fid, seq = struct.unpack("!HI", data[i + 4:i + 10])
        with self.lock:
            if fid in self.got:
                self.got[fid].append(seq)

    def _rx(self):
        while not self.stop_rx:
            with self.rx_lock:
                self._rx_once()
            time.sleep(0)

    def _rx_once(self):
        if True:
            for key, _ in self.sel.select(0.05):
                s = key.fileobj
                try:
                    if key.data == "tcp":
                        chunk = s.recv(65536)
                        if not chunk:
                            self.sel.unregister(s)
                            continue
                        buf = self.tcp_buf.get(s, b"") + chunk
                        while True:
                            fl = frame_len(buf)
                            if not fl or len(buf) < fl:
                                break
                            self._record(buf[:fl])
                            buf = buf[fl:]
                        self.tcp_buf[s] = buf
                    else:
                        # one datagram per readiness: these sockets have a
                        # timeout, and Python would wait on an empty one
                        for _ in range(64):
                            self._record(s.recv(65536))
                            if not select.select([s], [], [], 0)[0]:
                                break
                except (BlockingIOError, InterruptedError):
                    pass
                except OSError:
                    self.sel.unregister(s)

    def _tx(self, secs):
        end = time.monotonic() + secs
        nxt = time.monotonic()
        while time.monotonic() < end and not self.stop_tx:
            for fid, fn in self.senders:
                seq = self.sent[fid]
                p = b"TKOV" + struct.pack("!HI", fid, seq)
                fn(p + b"x" * (PAYLOAD - len(p)))
                self.sent[fid] = seq + 1
            nxt += TICK
            d = nxt - time.monotonic()
            if d > 0:
                time.sleep(d)

    def start_rx(self):
        self.rx = threading.Thread(target=self._rx, daemon=True)
        self.rx.start()

    def run(self, secs, action=None, action_at=0.7):
        """Send for secs; call action() from this thread at action_at s.
        Returns what action returned."""
        tx = threading.Thread(target=self._tx, args=(secs,), daemon=True)
        tx.start()
        res = None
        if action:
            time.sleep(action_at)
            res = action()
        tx.join(secs * 3 + 30)
        time.sleep(0.5 * TM)  # in flight
        return res

    def check(self, c, what, fids=None):
        """Zero loss, in order, per flow since the last check; then reset."""
        bad = []
        total_sent = total_got = 0
        with self.lock:
            for fid in (fids if fids is not None else self.sent):
                want = list(range(self.base.get(fid, 0), self.sent[fid]))
                total_sent += len(want)
                total_got += len(self.got[fid])
                if self.got[fid] != want:
                    miss = len(set(want) - set(self.got[fid]))
                    bad.append(f"flow {fid}: {len(self.got[fid])}/{len(want)} "
                               f"({miss} missing)")
                self.got[fid] = []
                self.base[fid] = self.sent[fid]
        c.ok(not bad and total_sent > 0,
             f"{what}: {total_got}/{total_sent} messages arrived, in order, in every flow",
             "; ".join(bad[:5]))
        print(f"# {what}: sent {total_sent}, received {total_got}", flush=True)
        return total_sent, total_got

    base = {}


def setup_udp(relay, c, traffic, peer):
    """8 pairs over channels + 4 with Send indications to peer."""
    clients = []
    pairs = []
    for i in range(8):
        a = Client(relay.addr, "udp", "alice", "pa55")
        b = Client(relay.addr, "udp", "alice", "pa55")
        ok = a.allocate().cls == SUCCESS and b.allocate().cls == SUCCESS
        ok = ok and a.bind(0x4000 + i, b.relayed).cls == SUCCESS
        ok = ok and b.bind(0x4100 + i, a.relayed).cls == SUCCESS
        c.ok(ok, f"pair {i}: two UDP allocations bound to each other by channels")
        pairs.append((a, b))
        clients += [a, b]
        traffic.flow(lambda p, a=a, i=i: a.send_chan(0x4000 + i, p))
        traffic.flow(lambda p, b=b, i=i: b.send_chan(0x4100 + i, p))
    senders = []
    for j in range(4):
        s = Client(relay.addr, "udp", "alice", "pa55")
        ok = s.allocate().cls == SUCCESS and s.permit(peer.getsockname()).cls == SUCCESS
        c.ok(ok, f"send client {j}: allocation with a permission for the UDP peer")
        senders.append(s)
        clients.append(s)
        traffic.flow(lambda p, s=s: s.send_ind(peer.getsockname(), p))
        traffic.flow(lambda p, s=s: peer.sendto(p, s.relayed))
    for cl in clients:
        traffic.watch(cl.sock, "udp")
    traffic.watch(peer, "udp")
    return clients, pairs, senders


A_ADD_FAMILY = 0x8000  # ADDITIONAL-ADDRESS-FAMILY (RFC 8656 s.18.11)


def setup_v6(relay, c, traffic, peer6):
    """A dual allocation (two relayed sockets) and an IPv6 client on the
    second listener, both talking to peer6 with Send/Data indications."""
    d = Client(relay.addr, "udp", "alice", "pa55")
    m = d.allocate([(A_ADD_FAMILY, bytes([2, 0, 0, 0]))])
    rel = [parse_xor_addr(v, m.tid) for at, v, _ in m.attrs if at == A_XOR_RELAYED] \
        if m.cls == SUCCESS else []
    c.ok(m.cls == SUCCESS and [":" in h for h, _ in rel] == [False, True],
         "dual allocation: IPv4 and IPv6 relayed addresses", repr(rel))
    c.success(d.permit(peer6.getsockname()[:2]), "dual allocation: permission for an IPv6 peer")
    v6 = Client(("::1", relay.port6), "udp", "alice", "pa55", family=socket.AF_INET6)
    c.success(v6.allocate([(A_REQ_FAMILY, bytes([2, 0, 0, 0]))]),
              "IPv6 client on the second listener: IPv6 allocation")
    c.success(v6.permit(peer6.getsockname()[:2]), "IPv6 allocation: permission")
    p6 = peer6.getsockname()[:2]
    traffic.flow(lambda p: d.send_ind(p6, p))
    traffic.flow(lambda p: peer6.sendto(p, rel[1]))
    traffic.flow(lambda p: v6.send_ind(p6, p))
    traffic.flow(lambda p: peer6.sendto(p, v6.relayed))
    for cl in (d, v6):
        traffic.watch(cl.sock, "udp")
    traffic.watch(peer6, "udp")
    return [d, v6]


def check_moved(c, relay, pairs, senders, peer, what):
    """Requests on moved allocations, on the nonce the old process issued."""
    a, b = pairs[0]
    nonce = a.nonce
    c.success(a.refresh(600), f"{what}: Refresh of a moved allocation")
    c.ok(a.nonce == nonce, f"{what}: the old nonce is still accepted (no 438)")
    s = senders[0]
    c.success(s.permit(peer.getsockname()), f"{what}: CreatePermission on a moved allocation")
    c.success(a.bind(0x4000, b.relayed), f"{what}: ChannelBind refresh on a moved allocation")
    c.success(b.bind(0x4200, s.relayed), f"{what}: new ChannelBind on a moved allocation")
    # and data still flows both ways on a moved allocation after that
    peer.sendto(b"TKOV-late", s.relayed)
    got = s.recv_data(2 * TM)
    c.ok(got is not None and got[0] == "data" and got[2] == b"TKOV-late",
         f"{what}: a peer reaches a moved allocation", repr(got))


def tls_allocate(port):
    """A new TURN-over-TLS client that allocates; the Client or None."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    raw = socket.create_connection(("127.0.0.1", port), timeout=5 * TM)
    cl = Client(("127.0.0.1", port), "tls", "alice", "pa55", sock=ctx.wrap_socket(raw))
    return cl if cl.allocate().cls == SUCCESS else None


def main():
    exe = relay_exe()
    c = Checks()
    tmp = tempfile.mkdtemp(prefix="relay-takeover-")
    conf = os.path.join(tmp, "relay.conf")
    with open(conf, "w") as f:
        f.write("threads = 2\nuser = alice:pa55\nallow-peer = 127.0.0.1/32\nallow-peer = ::1/128\n"
                "drain-seconds = 60\nmax-allocations-per-user = 25\n")
    # systemd's notify socket, as Type=notify would give it
    notify_path = os.path.join(tmp, "notify")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(notify_path)
    notify.settimeout(0.2)
    os.environ["NOTIFY_SOCKET"] = notify_path
    # run from a copy that an "upgrade" replaces on disk
    real_exe = os.path.abspath(exe)
    exe_copy = os.path.join(tmp, "tsunagu-relay")
    shutil.copy2(real_exe, exe_copy)
    marker = os.path.join(tmp, "upgraded.pid")
    gate = os.path.join(tmp, "gate")
    if not shutil.which("openssl"):
        raise SystemExit("openssl command missing: install Debian package 'openssl'")
    cert, key = os.path.join(tmp, "relay.crt"), os.path.join(tmp, "relay.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=takeover", "-keyout", key, "-out", cert],
                   check=True, capture_output=True)
    tport = free_port(socket.SOCK_STREAM)
    relay = Relay(exe_copy, "--tls-listen", f"127.0.0.1:{tport}", "--cert", cert, "--key", key,
                  config=conf, v6=True)
    pids = {relay.proc.pid}
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind(("127.0.0.1", 0))
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    peer6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    peer6.bind(("::1", 0))
    tpeer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tpeer.bind(("127.0.0.1", 0))
    traffic = Traffic()
    extra = []
    try:
        clients, pairs, senders = setup_udp(relay, c, traffic, peer)
        clients += setup_v6(relay, c, traffic, peer6)
        # a TCP allocation talking to tpeer over a channel, both ways
        t = Client(relay.addr, "tcp", "alice", "pa55")
        c.success(t.allocate(), "TCP allocation before the takeover")
        c.success(t.bind(0x4300, tpeer.getsockname()), "TCP allocation: channel to a UDP peer")
        tcp_flows = [traffic.flow(lambda p: t.send_chan(0x4300, p)),
                     traffic.flow(lambda p: tpeer.sendto(p, t.relayed))]
        traffic.watch(t.sock, "tcp")
        traffic.watch(tpeer, "udp")
        traffic.start_rx()
        c.ok(metric(relay, "tsunagu_relay_allocations") == 23, "23 allocations before",
             str(metric(relay, "tsunagu_relay_allocations")))

        # ---- 1. takeover under traffic, after an "upgrade" of the binary on disk
        os.unlink(exe_copy)
        with open(exe_copy, "w") as f:
            # the gate holds the takeover open until the second SIGUSR2 was
            # handled (not a fixed sleep: on a loaded machine the test's own
            # threads can take longer than any sleep to send it); bounded at
            # 5 s, within the parent's 10 s wait for the HELO
            f.write(f"#!/bin/sh\necho $$ > '{marker}'\ni=0\n"
                    f"while [ ! -e '{gate}' ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done\n"
                    f"exec '{real_exe}' \"$@\"\n")
        os.chmod(exe_copy, 0o755)
        old = relay.proc.pid
        mark = len(log_text(relay))
        def twice():
            os.kill(old, signal.SIGUSR2)
            if wait_log(relay, r"takeover: started", 2, mark):
                os.kill(old, signal.SIGUSR2)  # while the first is in progress
                wait_log(relay, r"SIGUSR2 ignored", 2, mark)
            with open(gate, "w"):
                pass  # the new binary may run now
        traffic.run(2.0, twice)
        m = wait_log(relay, r"pid (\d+) took over from pid (\d+)", 10, mark)
        c.ok(m is not None and int(m.group(2)) == old, "a new process took over", log_text(relay)[-2000:])
        if m is None:
            return c.done()
        new1 = int(m.group(1))
        pids.add(new1)
        c.ok(re.search(r"SIGUSR2 ignored: a takeover \(pid \d+\) is in progress",
                       log_text(relay)[mark:]) is not None and
             len(re.findall(r"takeover: started", log_text(relay)[mark:])) == 1,
             "a second SIGUSR2 during the takeover is ignored with a log line",
             "\n".join(l for l in log_text(relay)[mark:].splitlines()
                       if "SIGUSR2" in l or "takeover" in l))
        p = wait_log(relay, r"workers paused (\d+) ms", 5, mark)
        print(f"# first takeover: workers paused {p.group(1) if p else '?'} ms", flush=True)
        c.ok(new1 != old and not pid_gone(new1), "the new PID runs")
        try:
            with open(marker) as f:
                ran = f.read().strip()
        except OSError:
            ran = None
        c.ok(ran == str(new1), "the takeover ran the binary now on disk (replaced after start)",
             f"marker={ran!r}")
        notes = []
        try:
            while True:
                notes.append(notify.recv(4096).decode())
        except (socket.timeout, TimeoutError):
            pass
        c.ok(notes[:1] == [f"MAINPID={old}\nREADY=1"] and
             f"MAINPID={new1}\nREADY=1" in notes[1:],
             "systemd notify: READY=1 at start, then MAINPID=<new pid> from the new process",
             repr(notes))
        c.ok(relay.http("/healthz")[0] == 200, "/healthz answers after the takeover")
        c.ok(metric(relay, 'tsunagu_relay_takeovers_total{result="ok"}') == 1,
             "/metrics is the new process's: takeovers ok 1")
        c.ok(relay.proc.poll() is None, "the old process stays while its TCP allocation lives")
        traffic.check(c, "first takeover")
        c.ok(metric(relay, "tsunagu_relay_allocations") == 22,
             "the new process holds the 22 UDP allocations",
             str(metric(relay, "tsunagu_relay_allocations")))
        with traffic.rx_lock:
            check_moved(c, relay, pairs, senders, peer, "first takeover")
        n = Client(relay.addr, "udp", "alice", "pa55")
        extra.append(n)
        c.success(n.allocate(), "a new UDP Allocate after the takeover")
        nt = Client(relay.addr, "tcp", "alice", "pa55")
        extra.append(nt)
        c.success(nt.allocate(), "a new TCP connection is served by the new process")
        ntls = tls_allocate(tport)
        if ntls:
            extra.append(ntls)
        c.ok(ntls is not None, "a new TLS connection is served by the new process")
        c.ok(metric(relay, "tsunagu_relay_allocations") == 25,
             "/metrics counts 25 allocations (22 moved + UDP, TCP, TLS new)",
             str(metric(relay, "tsunagu_relay_allocations")))
        q = Client(relay.addr, "udp", "alice", "pa55")
        c.error(q.allocate(), 486,
                "per-user quota recounted from the moved allocations: the 26th gets 486")
        q.close()

        # ---- 2. the TCP allocation relays on in the old process until released
        traffic.run(1.0)
        traffic.check(c, "TCP allocation in the old process after the takeover", tcp_flows)
        c.ok(relay.proc.poll() is None, "old process still draining its TCP allocation")
        traffic.senders = [s for s in traffic.senders if s[0] not in tcp_flows]
        with traffic.rx_lock:
            traffic.sel.unregister(t.sock)
            traffic.sel.unregister(tpeer)
            c.success(t.refresh(0), "TCP allocation released (Refresh 0)")
        t.close()
        try:
            rc = relay.proc.wait(10 * TM)
        except Exception:
            rc = None
        c.ok(rc == 0, "the old process exits 0 once its TCP allocation is gone", f"rc={rc}")
        nt.close()
        ntls.close() if ntls else None
        traffic.check(c, "UDP flows while the old process drained")

        # ---- 3. a failing takeover: threads changed in the config file
        with open(conf, "w") as f:
            f.write("threads = 3\nuser = alice:pa55\nallow-peer = 127.0.0.1/32\nallow-peer = ::1/128\n"
                    "drain-seconds = 60\nmax-allocations-per-user = 25\n")
        mark = len(log_text(relay))
        traffic.run(2.0, lambda: os.kill(new1, signal.SIGUSR2))
        m = wait_log(relay, r"takeover: started .* as pid (\d+)", 5, mark)
        if m:
            pids.add(int(m.group(1)))
        f = wait_log(relay, r"takeover by pid (\d+) failed, this process keeps serving: (.*)",
                     10, mark)
        c.ok(f is not None and "threads" in f.group(2), "the failed takeover is logged naming threads",
             log_text(relay)[mark:][-2000:])
        c.ok(m is not None and wait_gone(int(m.group(1)), 10), "the refused child exited")
        c.ok(not pid_gone(new1), "the running process keeps serving")
        c.ok(metric(relay, 'tsunagu_relay_takeovers_total{result="failed"}') == 1,
             'tsunagu_relay_takeovers_total{result="failed"} is 1')
        traffic.check(c, "failed takeover")

        # ---- 3b. a child that cannot even start (bad config value)
        with open(conf, "w") as f:
            f.write("threads = 2\nuser = alice:pa55\nallow-peer = 127.0.0.1/32\nallow-peer = ::1/128\n"
                    "drain-seconds = 60\nmax-allocations-per-user = 25\nmax-lifetime = forever\n")
        mark = len(log_text(relay))
        traffic.run(1.5, lambda: os.kill(new1, signal.SIGUSR2))
        m = wait_log(relay, r"takeover: started .* as pid (\d+)", 5, mark)
        if m:
            pids.add(int(m.group(1)))
        f = wait_log(relay, r"takeover by pid (\d+) failed, this process keeps serving: (.*)",
                     10, mark)
        c.ok(f is not None and "max-lifetime" in f.group(2),
             "a child with a bad config value: failure logged naming the key",
             log_text(relay)[mark:][-2000:])
        c.ok(metric(relay, 'tsunagu_relay_takeovers_total{result="failed"}') == 2,
             'tsunagu_relay_takeovers_total{result="failed"} is 2')
        traffic.check(c, "takeover refused by a child that cannot start")

        # ---- 4. a second takeover (config fixed): the state moves again
        with open(conf, "w") as f:
            f.write("threads = 2\nuser = alice:pa55\nallow-peer = 127.0.0.1/32\nallow-peer = ::1/128\n"
                    "drain-seconds = 60\nmax-allocations-per-user = 25\n")
        mark = len(log_text(relay))
        traffic.run(2.0, lambda: os.kill(new1, signal.SIGUSR2))
        m = wait_log(relay, r"pid (\d+) took over from pid (\d+)", 10, mark)
        c.ok(m is not None and int(m.group(2)) == new1, "a second takeover",
             log_text(relay)[mark:][-2000:])
        if m is None:
            return c.done()
        new2 = int(m.group(1))
        pids.add(new2)
        p = wait_log(relay, r"workers paused (\d+) ms", 5, mark)
        print(f"# second takeover: workers paused {p.group(1) if p else '?'} ms", flush=True)
        c.ok(wait_gone(new1, 10), "the first new process exits (nothing left to drain)")
        c.ok(not pid_gone(new2), "the second new process runs")
        traffic.check(c, "second takeover")
        c.ok(metric(relay, 'tsunagu_relay_takeovers_total{result="ok"}') == 2 and
             metric(relay, 'tsunagu_relay_takeovers_total{result="failed"}') == 2,
             "takeover counters carried: ok 2, failed 2")
        c.ok(metric(relay, "tsunagu_relay_allocations") == 23,
             "the second new process holds the 23 UDP allocations",
             str(metric(relay, "tsunagu_relay_allocations")))
        with traffic.rx_lock:
            check_moved(c, relay, pairs, senders, peer, "second takeover")
        n2 = Client(relay.addr, "udp", "alice", "pa55")
        extra.append(n2)
        c.success(n2.allocate(), "a new Allocate after the second takeover")
        t2 = tls_allocate(tport)
        if t2:
            extra.append(t2)
        c.ok(t2 is not None, "a new TLS connection after the second takeover")

        # clean stop of the last one, so sanitizer exit checks run
        stop_cleanly(c, relay, new2)
    finally:
        traffic.stop_tx = traffic.stop_rx = True
        for cl in extra:
            cl.close()
        kill_relays(relay, pids)
        peer.close()
        peer6.close()
        tpeer.close()
        notify.close()
        try:
            shutil.rmtree(tmp)
        except OSError:
            pass
    return c.done()


if __name__ == "__main__":
    sys.exit(main())
