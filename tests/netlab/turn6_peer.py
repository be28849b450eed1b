#!/usr/bin/python3
"""turn6_peer.py - one end of a relayed exchange through IPv6 relayed
addresses, run inside a lab namespace by topo_e.py (one per client network).

It does what a WebRTC client would do if it asked for IPv6 (RFC 8656 s.7.1,
RFC 6156): Allocate with REQUESTED-ADDRESS-FAMILY IPv6 (tests/integration/
turnclient.py, written from the RFCs), publish its relayed address in a file
of the run directory, read the other end's, CreatePermission + ChannelBind to
it, then send COUNT numbered datagrams 20 ms apart through the relay while
receiving the other end's. Writes a JSON result: relayed and mapped
addresses, sent, received (distinct sequence numbers from the peer's relayed
address). Every wait is bounded; exit 1 with a message on any failure.

usage: turn6_peer.py --server [IP]:PORT --secret S --me NAME --peer NAME
                     --dir DIR [--count N] [--timeout S]
"""
import argparse
import json
import os
import struct
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import turnclient as tc  # noqa: E402

FAMILY_IPV6 = 0x02
CHANNEL = 0x4001


def die(msg):
    print("turn6_peer: " + msg, flush=True)
    sys.exit(1)


def wait_file(path, deadline):
    while time.time() < deadline:
        if os.path.exists(path):
            with open(path) as f:
                try:
                    return json.load(f)
                except ValueError:
                    pass       # being written
        time.sleep(0.05)
    die("gave up waiting for " + path)


def write_json(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f)
    os.rename(tmp, path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True)
    ap.add_argument("--secret", required=True)
    ap.add_argument("--me", required=True)
    ap.add_argument("--peer", required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--count", type=int, default=100)
    ap.add_argument("--timeout", type=float, default=20)
    a = ap.parse_args()
    host, _, port = a.server.rpartition(":")
    server = (host.strip("[]"), int(port))
    deadline = time.time() + a.timeout
    user, pw = tc.rest_credentials(a.secret, int(time.time()) + 600, "netlab-" + a.me)
    c = tc.Client(server, user, pw)
    r = c.allocate(family=FAMILY_IPV6)
    if r is None or r.cls != tc.SUCCESS:
        die("Allocate IPv6: %s" % (r.error_code() if r is not None else "no answer"))
    relayed, mapped = c.relayed, c.mapped
    if ":" not in relayed[0]:
        die("asked for IPv6, got relayed address %s" % (relayed,))
    write_json(os.path.join(a.dir, a.me + ".addr"), {"relayed": relayed, "mapped": mapped})
    peer = tuple(wait_file(os.path.join(a.dir, a.peer + ".addr"), deadline)["relayed"])
    r = c.create_permission(peer)
    if r is None or r.cls != tc.SUCCESS:
        die("CreatePermission %s: %s" % (peer, r.error_code() if r is not None else "no answer"))
    r = c.channel_bind(CHANNEL, peer)
    if r is None or r.cls != tc.SUCCESS:
        die("ChannelBind %s: %s" % (peer, r.error_code() if r is not None else "no answer"))
    write_json(os.path.join(a.dir, a.me + ".ready"), {})
    wait_file(os.path.join(a.dir, a.peer + ".ready"), deadline)

    got = set()
    sent = 0
    next_send = time.time()
    # send COUNT, then listen a little longer for the peer's tail
    end_by = None
    while time.time() < deadline:
        now = time.time()
        if sent < a.count and now >= next_send:
            c.send_channel(CHANNEL, struct.pack("!4sI", b"NL6\0", sent) + b"x" * 92)
            sent += 1
            next_send += 0.02
            if sent == a.count:
                end_by = now + 1.0
        if end_by is not None and (now >= end_by or len(got) >= a.count):
            break
        d = c.recv_data(timeout=0.01)
        if d is None:
            continue
        payload = d[2]
        from_peer = (d[0] == "channel" and d[1] == CHANNEL) or (d[0] == "data" and
                                                                 tuple(d[1]) == peer)
        if from_peer and len(payload) >= 8 and payload[:4] == b"NL6\0":
            got.add(struct.unpack("!I", payload[4:8])[0])
    c.refresh(0)
    c.close()
    write_json(os.path.join(a.dir, a.me + ".result"),
               {"relayed": relayed, "mapped": mapped, "peer": peer, "sent": sent,
                "received": len(got)})
    print("turn6_peer %s: relayed=[%s]:%d sent=%d received=%d" % (
        a.me, relayed[0], relayed[1], sent, len(got)), flush=True)


if __name__ == "__main__":
    main()
