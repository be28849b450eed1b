#!/usr/bin/python3
"""relay_udp_burst.py - bursts through the relay's batched UDP path arrive
whole and in order per flow (docs/performance.md, "UDP: the echo floor and
peer mode").

Eight UDP clients, each with a channel to its own outside UDP peer, one
worker thread. Two bursts, interleaved over the flows so that one loop turn
of the relay holds datagrams of many flows:

1. peer -> relayed address -> client: a relayed socket is read one datagram
   at a time while it looks idle and in batches once a read left some
   behind (rx_relayed_vlen in rly_udp_path.h); the listener's send queue
   carries all eight clients in one sendmmsg;
2. client -> listener -> relayed socket -> peer: one recvmmsg of the
   listener fills the send queue with datagrams for eight relayed sockets,
   which the flush groups per socket in one pass (rly_udp_flush) and must
   send in the order they came.

Every message must arrive exactly once, intact and in order in its flow, and
the relay must count no drop. Bursts are paced in rounds (a relay preempted
on a loaded machine must not overflow socket buffers of the kernel's default
size, which is not what is tested).

Usage: relay_udp_burst.py PATH/TO/tsunagu-relay
"""
import os
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from relay_stun import *  # noqa: E402,F401,F403

FLOWS = 8
PER_FLOW = 400  # messages per flow and direction
ROUND = 16      # messages per flow per round


def big_rcvbuf(s):
    try:  # root may go past net.core.rmem_max (SO_RCVBUFFORCE is 33 on Linux)
        s.setsockopt(socket.SOL_SOCKET, getattr(socket, "SO_RCVBUFFORCE", 33), 4 << 20)
    except OSError:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)


def payload(flow, seq):
    return struct.pack("!HI", flow, seq) + bytes([(flow * 31 + seq) & 0xFF]) * 150


def drain(socks, parse, got, bad, deadline):
    """Read every socket until each flow has PER_FLOW or the deadline passes;
    got[i] counts in-order messages of flow i, bad lists what was wrong."""
    while time.time() < deadline and min(got) < PER_FLOW:
        idle = True
        for i, s in enumerate(socks):
            s.settimeout(0.01)
            for _ in range(256):  # bounded per pass
                try:
                    raw = s.recv(2048)
                except (socket.timeout, BlockingIOError):
                    break
                idle = False
                data = parse(i, raw)
                if data is None:
                    continue
                flow, seq = struct.unpack("!HI", data[:6])
                if flow != i or seq != got[i] or data != payload(flow, seq):
                    bad.append((i, flow, seq, got[i]))
                    continue
                got[i] += 1
        if idle:
            time.sleep(0.005)


def main():
    exe = relay_exe()
    c = Checks()
    relay = Relay(exe, "--user", "a:a", "--threads", "1", "--allow-peer", "127.0.0.1/32")
    clients, peers = [], []
    try:
        for i in range(FLOWS):
            cl = Client(relay.addr, "udp", "a", "a")
            big_rcvbuf(cl.sock)
            p = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            p.bind(("127.0.0.1", 0))
            big_rcvbuf(p)
            clients.append(cl)
            peers.append(p)
            c.success(cl.allocate(), f"flow {i}: allocate")
            c.success(cl.bind(0x4000 + i, p.getsockname()[:2]), f"flow {i}: channel to its peer")
        dropped0 = relay.metric("tsunagu_relay_dropped_total")
        t0 = time.time()

        # 1. peers -> clients (the peer learns nothing from the relay: it sends
        # to the relayed address, which the channel's permission lets in)
        for r in range(0, PER_FLOW, ROUND):
            for k in range(r, min(r + ROUND, PER_FLOW)):
                for i in range(FLOWS):
                    peers[i].sendto(payload(i, k), clients[i].relayed)
            time.sleep(0.002)

        def from_relay(i, raw):
            if raw[0] & 0xC0 != 0x40:
                return None
            ch, ln = struct.unpack("!HH", raw[:4])
            return raw[4:4 + ln] if ch == 0x4000 + i else b"\xff" * 6
        got, bad = [0] * FLOWS, []
        drain([cl.sock for cl in clients], from_relay, got, bad, time.time() + 10 * TIMEOUT_MULT)
        c.ok(got == [PER_FLOW] * FLOWS and not bad,
             f"peer -> client: {FLOWS} x {PER_FLOW} messages arrive whole and in order per "
             f"flow (got {got}, wrong {bad[:3]})")

        # 2. clients -> peers
        for r in range(0, PER_FLOW, ROUND):
            for k in range(r, min(r + ROUND, PER_FLOW)):
                for i in range(FLOWS):
                    clients[i].send_chan(0x4000 + i, payload(i, k))
            time.sleep(0.002)
        got, bad = [0] * FLOWS, []
        drain(peers, lambda i, raw: raw, got, bad, time.time() + 10 * TIMEOUT_MULT)
        c.ok(got == [PER_FLOW] * FLOWS and not bad,
             f"client -> peer: {FLOWS} x {PER_FLOW} messages arrive whole and in order per "
             f"flow (got {got}, wrong {bad[:3]})")
        c.ok(relay.metric("tsunagu_relay_dropped_total") == dropped0,
             "the relay dropped nothing")
        print(f"# bursts took {time.time() - t0:.1f} s")
    finally:
        for s in peers:
            s.close()
        for cl in clients:
            cl.close()
        relay.stop()
    return c.done()


if __name__ == "__main__":
    sys.exit(main())
