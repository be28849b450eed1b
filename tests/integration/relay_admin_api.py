#!/usr/bin/python3
"""relay_admin_api: the relay's admin API under /admin/ on the metrics
listener (relay/io/rly_admin_api.c, issue 12 item 6, relay half).

With --admin-token and two worker threads, 6 UDP clients allocate (spread
over both workers by SO_REUSEPORT), two of them relay 100 RTP-shaped
messages each way through channels (5 of one direction's left out). Checks:
- no Authorization, another scheme, a wrong token, the token with a byte
  more or less: 401, nothing listed; a wrong method 405; an unknown path 404;
- GET /admin/allocations (application/json): all 6, ids W.N unique across
  the workers, user, client address and transport, relayed address as the
  client learnt it, age, expiry, packets and bytes each way, quality: the
  stream with 5 left out shows expected 100, lost 5, the other lost 0;
- DELETE /admin/allocations/ID: 200, gone from the list, the client's
  Refresh gets 437, the log says 'released (admin API)'; again: 404; an id
  of no worker, or malformed: 404;
- POST /admin/drain: 202, /healthz turns 503 draining, the relay exits 0
  within --drain-seconds (one allocation left to hold the drain open);
- a relay without --admin-token: every /admin/ path is 404, even with a
  token.

usage: relay_admin_api.py RELAY_EXE"""
import json
import os
import socket
import struct
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from relay_stun import Checks, Client, Relay, TIMEOUT_MULT, relay_exe  # noqa: E402

TOKEN = "s3cret-admin-token-for-tests"


def req(relay, method, path, token=None, auth=None):
    """(status, content type, body) of one request to the admin listener."""
    r = urllib.request.Request(f"http://127.0.0.1:{relay.mport}{path}", method=method)
    if auth is not None:
        r.add_header("Authorization", auth)
    elif token is not None:
        r.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(r, timeout=5 * TIMEOUT_MULT) as f:
            return f.status, f.headers.get("Content-Type"), f.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), e.read().decode()


def listing(relay):
    st, ct, body = req(relay, "GET", "/admin/allocations", TOKEN)
    if st != 200:
        raise AssertionError(f"GET /admin/allocations: {st} {body}")
    return ct, json.loads(body)["allocations"]


def rtp(seq, ssrc):
    ts = int(time.monotonic() * 48000) & 0xFFFFFFFF
    return struct.pack("!BBHII", 0x80, 111, seq & 0xFFFF, ts, ssrc) + b"x" * 60


def main():
    exe = relay_exe()
    c = Checks()
    relay = off = None
    clients = []
    try:
        relay = Relay(exe, "--user", "alice:pa55", "--user", "bob:w0rd", "--threads", "2",
                      "--admin-token", TOKEN, "--drain-seconds", "3", "--log-level", "info")
        for i in range(6):
            cl = Client(relay.addr, "udp", *(("alice", "pa55") if i % 2 == 0 else ("bob", "w0rd")))
            c.success(cl.allocate(), f"client {i} allocates")
            clients.append(cl)
        a, b = clients[0], clients[1]
        c.success(a.bind(0x4001, b.relayed), "a binds to b's relayed address")
        c.success(b.bind(0x4002, a.relayed), "b binds to a's relayed address")
        got_b = got_a = 0
        for i in range(100):
            if i % 20 != 7:  # a leaves out 5 of its 100
                a.send_chan(0x4001, rtp(1000 + i, 0xA))
                got_b += b.recv_data() is not None
            b.send_chan(0x4002, rtp(5000 + i, 0xB))
            got_a += a.recv_data() is not None
            time.sleep(0.005)
        c.ok(got_b == 95 and got_a == 100, "RTP relayed both ways", f"({got_b}, {got_a})")

        # ---- authorization ----
        for what, kw in (("no Authorization", {}), ("Basic scheme", {"auth": "Basic " + TOKEN}),
                         ("wrong token", {"token": "nope"}), ("token + 1 byte", {"token": TOKEN + "x"}),
                         ("token - 1 byte", {"token": TOKEN[:-1]}), ("empty bearer", {"auth": "Bearer "})):
            st, _, body = req(relay, "GET", "/admin/allocations", **kw)
            c.ok(st == 401 and "alice" not in body, f"{what}: 401, nothing listed", f"({st} {body})")
        st, _, _ = req(relay, "POST", "/admin/drain", "nope")
        c.ok(st == 401 and relay.http("/healthz")[0] == 200, "drain with a wrong token: 401, no drain")
        st, _, _ = req(relay, "POST", "/admin/allocations", TOKEN)
        c.ok(st == 405, "POST /admin/allocations: 405", f"({st})")
        st, _, _ = req(relay, "GET", "/admin/nothing", TOKEN)
        c.ok(st == 404, "unknown /admin/ path: 404", f"({st})")
        st, _, _ = req(relay, "GET", "/metrics")
        c.ok(st == 200, "/metrics needs no token")

        # ---- list ----
        # SO_REUSEPORT spreads clients over the workers by a hash of their
        # address: add clients until both workers hold some (bounded)
        ct, allocs = listing(relay)
        while len({x["id"].split(".")[0] for x in allocs}) < 2 and len(clients) < 30:
            i = len(clients)
            cl = Client(relay.addr, "udp", *(("alice", "pa55") if i % 2 == 0 else ("bob", "w0rd")))
            c.success(cl.allocate(), f"client {i} allocates")
            clients.append(cl)
            ct, allocs = listing(relay)
        n = len(clients)
        c.ok(ct and ct.startswith("application/json"), "JSON content type", f"({ct})")
        c.ok(len(allocs) == n, f"{n} allocations listed", f"({len(allocs)})")
        ids = [x["id"] for x in allocs]
        c.ok(len(set(ids)) == n, "ids unique", f"({ids})")
        c.ok({i.split(".")[0] for i in ids} == {"0", "1"},
             "allocations on both workers, ids W.N", f"({ids})")
        by_client = {tuple(x["client"].rsplit(":", 1)): x for x in allocs}
        ok_fields = True
        for i, cl in enumerate(clients):
            h, p = cl.sock.getsockname()
            x = by_client.get((h, str(p)))
            want_user = "alice" if i % 2 == 0 else "bob"
            if (not x or x["user"] != want_user or x["transport"] != "udp" or
                    x["relayed"] != ["%s:%d" % tuple(cl.relayed)] or
                    not 0 <= x["age_s"] < 60 or not 500 < x["expires_in_s"] <= 600):
                ok_fields = False
                print(f"# client {i}: {x}")
        c.ok(ok_fields, "user, client, transport, relayed address, age and expiry of each")
        xa = by_client[tuple(map(str, a.sock.getsockname()))]
        xb = by_client[tuple(map(str, b.sock.getsockname()))]
        qa, qb = xa["quality"]["client_to_peer"], xb["quality"]["peer_to_client"]
        print(f"# a: {json.dumps(xa)}")
        c.ok(xa["packets_client_to_peer"] == 95 and xa["packets_peer_to_client"] == 100 and
             xa["bytes_client_to_peer"] == 95 * 72, "a's packets and bytes each way")
        c.ok(qa["streams"] == 1 and qa["expected"] == 100 and qa["lost"] == 5 and
             abs(qa["loss"] - 0.05) < 1e-3, "a's outgoing stream: 100 expected, 5 lost",
             f"({qa})")
        c.ok(qb["expected"] == 100 and qb["lost"] == 5,
             "the same stream as b received it: 5 lost", f"({qb})")
        c.ok(xa["quality"]["peer_to_client"]["lost"] == 0 and
             xa["quality"]["peer_to_client"]["expected"] == 100, "b's stream: nothing lost")
        c.ok(xa["quality"]["client_to_peer"]["jitter_ms"] is not None,
             "jitter known (clock rate inferred)")

        # ---- delete ----
        victim = by_client[tuple(map(str, clients[5].sock.getsockname()))]["id"]
        st, _, body = req(relay, "DELETE", f"/admin/allocations/{victim}", TOKEN)
        c.ok(st == 200 and json.loads(body) == {"released": victim}, f"DELETE {victim}: 200",
             f"({st} {body})")
        _, allocs = listing(relay)
        c.ok(len(allocs) == n - 1 and victim not in [x["id"] for x in allocs], "gone from the list")
        c.error(clients[5].refresh(), 437, "its client's Refresh: 437")
        st, _, _ = req(relay, "DELETE", f"/admin/allocations/{victim}", TOKEN)
        c.ok(st == 404, "DELETE it again: 404", f"({st})")
        for bad in ("7.1", "0.0", "x", "0.1.2", "0.99999999999", "1.", ".1"):
            st, _, _ = req(relay, "DELETE", f"/admin/allocations/{bad}", TOKEN)
            c.ok(st == 404, f"DELETE {bad}: 404", f"({st})")
        time.sleep(0.2)
        c.ok("released (admin API)" in relay.logtext(), "log says released (admin API)")

        # ---- drain ----
        # one allocation stays, so the drain lasts its --drain-seconds
        for cl in clients[1:5] + clients[6:]:
            c.success(cl.refresh(0), "release by Refresh 0")
        st, _, body = req(relay, "POST", "/admin/drain", TOKEN)
        c.ok(st == 202, "POST /admin/drain: 202", f"({st} {body})")
        time.sleep(0.3)
        c.ok(relay.http("/healthz") == (503, "draining\n"), "healthz says draining")
        try:
            rc = relay.proc.wait(10 * TIMEOUT_MULT)
        except Exception:  # noqa: BLE001
            rc = "still running"
        c.ok(rc == 0, "the relay drained and exited 0", f"({rc})")

        # ---- no token: off ----
        off = Relay(exe, "--user", "alice:pa55", "--threads", "1")
        for m, p in (("GET", "/admin/allocations"), ("DELETE", "/admin/allocations/0.1"),
                     ("POST", "/admin/drain")):
            st, _, _ = req(off, m, p, TOKEN)
            c.ok(st == 404, f"no --admin-token: {m} {p} 404", f"({st})")
        c.ok(off.http("/healthz")[0] == 200, "and no drain")
    finally:
        for cl in clients:
            cl.close()
        if relay:
            relay.stop()
        if off:
            off.stop()
    return c.done()


if __name__ == "__main__":
    sys.exit(main())
