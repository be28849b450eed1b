#!/usr/bin/python3
"""relay_hotpath: a regression guard for the relay's packet path that needs
no timing.

tsunagu-relay runs under valgrind's callgrind with instrumentation off while
two clients allocate and bind channels. Then instrumentation is switched on
(callgrind_control -i on), a fixed number of ChannelData messages is relayed
in lockstep (one in flight, so every packet is its own loop iteration: the
worst case, no batching to share the cost), instrumentation is switched off
and the profile dumped. The test asserts:

- every message arrived, intact, and the relay's packet counters grew by
  exactly the number of relayed packets;
- user-space instructions per relayed packet stay under BUDGET (about 2x
  what was measured when this test was written, see docs/performance.md,
  "Profile"): a linear scan, a per-packet log line or a per-packet parse of
  something big would blow it;
- no heap allocator function (malloc, calloc, realloc, free...) ran while
  packets were relayed (STYLE.md s.5: the hot path allocates nothing).

Two paths are measured: client -> relay -> the other client's relayed
address (handed over inside the relay), and client -> relay -> a UDP peer
-> relay -> client (through the kernel both ways).

Instruction counts do not depend on the machine's speed or load, only on the
code (and a little on how the kernel groups wakeups, which lockstep fixes).
"""
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from relay_stun import Checks, Client, Relay, TIMEOUT_MULT, chandata, relay_exe  # noqa: E402

N = 500  # messages per path
# user-space instructions per relayed packet; meson passes the budget of its build
# (-O2 measured ~944 with the RTP quality tracker, -O0 ~1400 before it; docs/performance.md)
BUDGET = int(sys.argv[2]) if len(sys.argv) > 2 else 1200
ALLOC_FUNCS = {"malloc", "calloc", "realloc", "free", "cfree", "posix_memalign",
               "aligned_alloc", "memalign", "_int_malloc", "_int_free"}


class CallgrindRelay(Relay):
    """The relay under callgrind, instrumentation off until asked."""

    def __init__(self, exe, outdir, *args, **kw):
        self.outdir = outdir
        super().__init__(exe, *args, **kw)

    def start(self):
        self.args = list(self.args)
        real_exe = self.exe
        self.exe = "valgrind"
        self.args = ["--tool=callgrind", "--instr-atstart=no", "--dump-line=no",
                     f"--callgrind-out-file={self.outdir}/cg.out", real_exe] + self.args
        try:
            super().start()
        finally:
            self.exe = real_exe

    def control(self, *args):
        r = subprocess.run(["callgrind_control", *args, str(self.proc.pid)],
                           capture_output=True, text=True, timeout=60 * TIMEOUT_MULT)
        if r.returncode != 0:
            raise AssertionError(f"callgrind_control {args}: {r.stdout} {r.stderr}")


def read_profile(path):
    """(total Ir, {function name: self Ir}) from a callgrind output file."""
    names, cost, total, cur, after_call = {}, {}, None, None, False

    def name_of(spec):
        m = re.match(r"^\((\d+)\)(?: (.*))?$", spec.strip())
        if not m:
            return spec.strip()
        if m.group(2):
            names[m.group(1)] = m.group(2).strip()
        return names.get(m.group(1), m.group(1))

    with open(path) as f:
        for line in f:
            if line.startswith(("summary:", "totals:")):
                total = int(line.split()[1])
            elif line.startswith("fn="):
                cur, after_call = name_of(line[3:]), False
            elif line.startswith("cfn="):
                name_of(line[4:])
            elif line.startswith("calls="):
                after_call = True  # the next cost line is a call's inclusive cost
            elif cur and line[:1] and (line[0].isdigit() or line[0] in "+-*"):
                parts = line.split()
                if after_call:
                    after_call = False
                elif len(parts) >= 2:
                    cost[cur] = cost.get(cur, 0) + int(parts[1])
    return total, cost


def metric_pkts(relay, name="tsunagu_relay_packets_total"):
    return (relay.metric(name + '{direction="client_to_peer"}') +
            relay.metric(name + '{direction="peer_to_client"}'))


SEQ = [0]


def rtp_payload(ssrc):
    """An RTP packet as SRTP leaves it (header in clear, 160 opaque bytes):
    the relay's quality tracker (rly_rtpq) follows it, so its cost per packet
    is in the count. Sequence numbers run on across the phases, the
    timestamp follows the clock at 48 kHz, so the tracker infers the rate
    and computes jitter for every packet (its most expensive path)."""
    SEQ[0] += 1
    ts = int(time.monotonic() * 48000) & 0xFFFFFFFF
    return struct.pack("!BBHII", 0x80, 111, SEQ[0] & 0xFFFF, ts, ssrc) + b"m" * 160


def lockstep(c, name, send, recv, n, ssrc=0x5EED):
    bad = 0
    for i in range(n):
        payload = rtp_payload(ssrc)
        send(payload)
        got = recv()
        if got != payload:
            bad += 1
            if bad > 3:
                break
    c.ok(bad == 0, f"{name}: {n} messages relayed intact in lockstep", f"({bad} bad)")


def main():
    exe = relay_exe()
    c = Checks()
    for tool, pkg in (("valgrind", "valgrind"), ("callgrind_control", "valgrind")):
        if not shutil.which(tool):
            print(f"Bail out! {tool} missing: apt-get install {pkg}")
            return 1
    outdir = tempfile.mkdtemp(prefix="relay_hotpath.")
    relay = None
    socks = []
    try:
        relay = CallgrindRelay(exe, outdir, "--user", "alice:pa55", "--user", "bob:w0rd",
                               "--allow-peer", "127.0.0.1/32", "--threads", "1",
                               "--log-level", "warn")
        a = Client(relay.addr, "udp", "alice", "pa55")
        b = Client(relay.addr, "udp", "bob", "w0rd")
        socks += [a, b]
        c.success(a.allocate(), "allocate a")
        c.success(b.allocate(), "allocate b")
        peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        peer.bind(("127.0.0.1", 0))
        peer.settimeout(5 * TIMEOUT_MULT)
        paddr = peer.getsockname()
        c.success(a.bind(0x4001, b.relayed), "a binds 0x4001 to b's relayed address")
        c.success(b.bind(0x4002, a.relayed), "b binds 0x4002 to a's relayed address")
        c.success(a.bind(0x4003, paddr), "a binds 0x4003 to a UDP peer")

        def a_to_b(p):
            a.send_raw(chandata(0x4001, p))

        def b_recv():
            got = b.recv_data(5 * TIMEOUT_MULT)
            return got[2] if got and got[0] == "chan" and got[1] == 0x4002 else None

        def via_peer(p):
            a.send_raw(chandata(0x4003, p))
            d, src = peer.recvfrom(70000)
            peer.sendto(d, tuple(a.relayed))

        def a_recv():
            got = a.recv_data(5 * TIMEOUT_MULT)
            return got[2] if got and got[0] == "chan" and got[1] == 0x4003 else None

        # warm-up: first touches of buffers and tables are not the steady state
        lockstep(c, "warm-up client to client", a_to_b, b_recv, 20)
        lockstep(c, "warm-up through a peer", via_peer, a_recv, 20)
        before = metric_pkts(relay)
        rtp_before = metric_pkts(relay, "tsunagu_relay_rtp_packets_total")
        relay.control("-i", "on")
        lockstep(c, "client to client (handed over inside the relay)", a_to_b, b_recv, N)
        lockstep(c, "through a UDP peer (kernel both ways)", via_peer, a_recv, N)
        relay.control("-i", "off")
        relay.control("-d")
        after = metric_pkts(relay)
        relayed = after - before
        c.ok(relayed == 4 * N, f"relay counted {4 * N} relayed packets", f"(got {relayed})")
        rtp = metric_pkts(relay, "tsunagu_relay_rtp_packets_total") - rtp_before
        c.ok(rtp == 4 * N, f"the quality tracker saw all {4 * N} as RTP (its cost is counted)",
             f"(got {rtp})")
        dumps = sorted(p for p in os.listdir(outdir) if p.startswith("cg.out"))
        c.ok(bool(dumps), "callgrind dumped a profile", f"({os.listdir(outdir)})")
        if dumps:
            # the newest dump holds the instrumented phase
            path = max((os.path.join(outdir, p) for p in dumps), key=os.path.getmtime)
            total, cost = read_profile(path)
            per = (total or 0) / max(relayed, 1)
            top = sorted(cost.items(), key=lambda kv: -kv[1])[:12]
            for name, ir in top:
                print(f"# {ir / max(relayed, 1):8.0f} Ir/pkt  {name}")
            print(f"# total {total} Ir over {relayed:.0f} relayed packets: {per:.0f} Ir/packet "
                  f"(budget {BUDGET})")
            c.ok(total is not None and per <= BUDGET,
                 f"user-space instructions per relayed packet {per:.0f} <= {BUDGET}")
            allocs = sorted(n for n in cost if n.split("'")[0] in ALLOC_FUNCS)
            c.ok(not allocs, "no heap allocation on the packet path", f"({allocs})")
    finally:
        for s in socks:
            s.close()
        if relay:
            relay.stop()
        shutil.rmtree(outdir, ignore_errors=True)
    return c.done()


if __name__ == "__main__":
    sys.exit(main())
