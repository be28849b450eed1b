#!/usr/bin/python3
"""Cluster mode (--redis) of tsunagu-signal: a real redis-server on a free
loopback port and two (or three) real tsunagu-signal nodes, driven by
python3-websockets clients. Every process is killed by PID at the end.

usage: signal_cluster.py PATH/TO/tsunagu-signal TESTNAME
tests: basic, nodedeath, outage, stall, resume, startup, and resume across nodes:
xresume, xresume_local, xresume_halfopen, xresume_drain, xresume_ownerdead, xresume_stalled,
xresume_garbage, xresume_forged_reply, xresume_forged_request, xresume_bad_reply,
xresume_forged_mac, xresume_joinleave"""
import asyncio
import hashlib
import hmac
import json
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from signal_lib import MULT, Client, Server, free_port, run  # noqa: E402

import websockets  # noqa: E402  (signal_lib names the package when it is missing)

TESTS = {}
TTL = 2  # --redis-node-ttl for the tests: death is noticed within TTL + 1 s (reap period)


def test(fn):
    TESTS[fn.__name__] = fn
    return fn


def redis_exe():
    exe = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not os.path.exists(exe):
        raise AssertionError("FAIL: redis-server is missing (apt-get install redis-server)")
    return exe


class Redis:
    """redis-server on 127.0.0.1, no persistence; restartable on its port."""

    def __init__(self, *extra):
        self.extra = list(extra)
        self.exe = redis_exe()
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="signal-redis-")
        self.proc = None

    @property
    def url(self):
        return "redis://127.0.0.1:%d/0" % self.port

    def start(self):
        log = open(os.path.join(self.dir, "redis.log"), "ab")
        self.proc = subprocess.Popen(
            [self.exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.dir, "--daemonize", "no"] + self.extra,
            stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.time() + 10 * MULT
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("redis-server exited at start-up: " + self.logtext())
            try:
                if self.cmd("PING") == "PONG":
                    return
            except (OSError, AssertionError):
                pass
            time.sleep(0.05)
        raise AssertionError("redis-server did not answer PING in time")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
        if exc[0] is not None:
            sys.stderr.write("---- redis log ----\n" + self.logtext()[-3000:])
        shutil.rmtree(self.dir, ignore_errors=True)
        return False

    def logtext(self):
        try:
            with open(os.path.join(self.dir, "redis.log"), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def cmd(self, *args, db=0):
        """One command over RESP (a tiny client: the tests need no redis-py)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
            f = s.makefile("rb")
            for cmd in ([("SELECT", str(db))] if db else []) + [args]:
                enc = [a.encode() if isinstance(a, str) else a for a in cmd]
                s.sendall(b"*%d\r\n" % len(enc) +
                          b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in enc))
                out = resp(f)
            return out


def resp(f):
    line = f.readline()
    t, rest = line[:1], line[1:-2]
    if t == b"+":
        return rest.decode()
    if t == b"-":
        raise AssertionError("redis error: " + rest.decode())
    if t == b":":
        return int(rest)
    if t == b"$":
        n = int(rest)
        return None if n < 0 else f.read(n + 2)[:-2].decode()
    if t == b"*":
        n = int(rest)
        return None if n < 0 else [resp(f) for _ in range(n)]
    raise AssertionError("bad RESP line %r" % line)


def node(exe, redis, *extra):
    return Server(exe, "--redis", redis.url, "--redis-node-ttl", str(TTL), "--rate-limit", "5000",
                  "--resume-seconds", "0", *extra)


async def until(pred, timeout, what):
    deadline = time.time() + timeout * MULT
    while time.time() < deadline:
        if pred():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("timed out waiting for " + what)


def room_members(redis, room):
    kv = redis.cmd("HGETALL", "tsu:room:" + room) or []
    return set(kv[0::2])


@test
async def basic(exe):
    with Redis() as r, node(exe, r, "--max-room-size", "3") as A, \
            node(exe, r, "--max-room-size", "3") as B:
        a = await Client.connect(A.url)
        ja = await a.join("room", "alice")
        assert ja["peers"] == [], ja
        b = await Client.connect(B.url)
        jb = await b.join("room", "bob")
        assert jb["peers"] == [{"id": ja["id"], "name": "alice"}], jb
        pj = await a.expect("peer-joined")
        assert pj["peer"] == {"id": jb["id"], "name": "bob"}, pj
        # the data model: one hash per room, members of both nodes
        assert room_members(r, "room") == {ja["id"], jb["id"]}

        # 200 numbered signals each way, complete and in order; any JSON payload
        n = 200
        t0 = time.time()
        for i in range(n):
            await a.send({"type": "signal", "to": jb["id"], "data": {"seq": i, "pad": "x" * (i % 50)}})
            await b.send({"type": "signal", "to": ja["id"], "data": {"seq": i}})
        for i in range(n):
            m = await b.expect("signal", **{"from": ja["id"]})
            assert m["data"] == {"seq": i, "pad": "x" * (i % 50)}, (i, m)
            m = await a.expect("signal", **{"from": jb["id"]})
            assert m["data"] == {"seq": i}, (i, m)
        dt = time.time() - t0
        await a.silent()
        await b.silent()
        print("cross-node: %d signals each way delivered in order in %.3fs (%.0f msgs/s)"
              % (n, dt, 2 * n / dt))

        # latency: ping-pong across nodes vs within a node
        async def pingpong(x, y, yid, xid, rounds=100):
            lat = []
            for i in range(rounds):
                t = time.perf_counter()
                await x.send({"type": "signal", "to": yid, "data": i})
                await y.expect("signal", data=i)
                await y.send({"type": "signal", "to": xid, "data": i})
                await x.expect("signal", data=i)
                lat.append((time.perf_counter() - t) / 2)
            return statistics.median(lat) * 1e3, sorted(lat)[int(rounds * 0.99) - 1] * 1e3
        cross = await pingpong(a, b, jb["id"], ja["id"])

        # a third member on A: its peers are alice (local) and bob (remote)
        c = await Client.connect(A.url)
        jc = await c.join("room", "carol")
        assert sorted(p["name"] for p in jc["peers"]) == ["alice", "bob"], jc
        for x in (a, b):
            m = await x.expect("peer-joined")
            assert m["peer"] == {"id": jc["id"], "name": "carol"}, m
        local = await pingpong(a, c, jc["id"], ja["id"])
        print("signal one-way latency (median, p99 ms): across nodes %.3f, %.3f; same node %.3f, %.3f"
              " (Python clients included)" % (cross + local))

        # room-full is enforced across nodes (3 = 2 on A + 1 on B)
        for srv in (A, B):
            d = await Client.connect(srv.url)
            await d.send({"type": "join", "room": "room", "name": "dave"})
            await d.error("room-full")
            await d.close()

        # broadcast from B reaches both members on A, not the sender
        await b.send({"type": "broadcast", "data": {"hi": "from B"}})
        for x in (a, c):
            m = await x.expect("broadcast", **{"from": jb["id"]})
            assert m["data"] == {"hi": "from B"}
        await b.silent()
        # and from A: the local member and the remote one, once each
        await c.send({"type": "broadcast", "data": [1, 2]})
        for x in (a, b):
            await x.expect("broadcast", data=[1, 2], **{"from": jc["id"]})
        await a.silent()
        await b.silent()

        # what other nodes publish is checked like client input: a forged but
        # well-formed event is delivered (Redis is trusted), junk is dropped
        ch = "tsu:0:ch:room"
        dropped0 = A.metrics()["tsunagu_signal_cluster_dropped_total"]
        for junk in ("not json", "[]", '{"n":"x","e":"sig","from":"f","to":"' + ja["id"] + '"}',
                     '{"n":"x","e":"join","id":"' + "i" * 65 + '"}', '{"n":"x","e":"nope"}',
                     '{"n":"x","e":"bc","from":"f","data":"' + "z" * (8 * 65536 + 5000) + '"}'):
            r.cmd("PUBLISH", ch, junk)
        r.cmd("PUBLISH", ch, '{"n":"forger","e":"sig","from":"f00","to":"%s","data":7}' % ja["id"])
        await a.expect("signal", data=7, **{"from": "f00"})
        await a.silent()
        await until(lambda: A.metrics()["tsunagu_signal_cluster_dropped_total"] - dropped0 == 6, 5,
                    "6 malformed or oversized channel messages counted as dropped")

        # ids of other rooms, on other nodes, are unknown
        e = await Client.connect(B.url)
        je = await e.join("other", "eve")
        await e.send({"type": "signal", "to": ja["id"], "data": 1})
        await e.error("unknown-peer")
        await a.silent()

        mA, mB = A.metrics(), B.metrics()
        assert mA["tsunagu_signal_redis_up"] == 1 and mB["tsunagu_signal_redis_up"] == 1
        assert mA["tsunagu_signal_remote_members"] == 1, mA  # bob
        assert mB["tsunagu_signal_remote_members"] == 2, mB  # alice, carol
        assert mA["tsunagu_signal_members"] == 2 and mB["tsunagu_signal_members"] == 2
        assert A.http("/healthz") == (200, "ok\n")

        # leave -> peer-left on both nodes, and the place is free again
        await b.send({"type": "leave"})
        for x in (a, c):
            await x.expect("peer-left", id=jb["id"])
        await until(lambda: room_members(r, "room") == {ja["id"], jc["id"]}, 5, "bob out of Redis")
        # a closed connection (resume off) leaves too
        await c.close()
        await a.expect("peer-left", id=jc["id"])
        await until(lambda: room_members(r, "room") == {ja["id"]}, 5, "carol out of Redis")
        jb2 = await b.join("room", "bob2")
        assert [p["id"] for p in jb2["peers"]] == [ja["id"]], jb2
        await a.expect("peer-joined")
        await b.send({"type": "signal", "to": ja["id"], "data": "again"})
        await a.expect("signal", data="again")
        await e.send({"type": "leave"})
        await e.close()
        await a.close()
        await b.close()
        await until(lambda: room_members(r, "room") == set() and room_members(r, "other") == set(),
                    5, "rooms empty in Redis")
        # SIGTERM: the node deregisters itself (no ttl wait for the others)
        A.signal(15)
        assert A.proc.wait(timeout=15 * MULT) == 0
        nodes = r.cmd("SMEMBERS", "tsu:nodes")
        assert len(nodes) == 1, nodes


@test
async def nodedeath(exe):
    with Redis() as r, node(exe, r) as A, node(exe, r) as B:
        a = await Client.connect(A.url)
        ja = await a.join("room", "alice")
        b = await Client.connect(B.url)
        jb = await b.join("room", "bob")
        b2 = await Client.connect(B.url)
        jb2 = await b2.join("room", "bob2")
        await a.expect("peer-joined")
        await a.expect("peer-joined")
        assert len(r.cmd("SMEMBERS", "tsu:nodes")) == 2
        B.proc.kill()   # kill -9: no goodbye
        B.proc.wait()
        t0 = time.time()
        gone = set()
        while len(gone) < 2:
            m = await a.expect("peer-left", timeout=TTL + 6)
            gone.add(m["id"])
        dt = time.time() - t0
        assert gone == {jb["id"], jb2["id"]}, gone
        bound = TTL + 1.5   # documented: node-ttl + one reap period (1 s) + delivery
        assert dt < bound * MULT, (dt, bound)
        print("kill -9 of a node: its 2 members' peer-left reached the other node after %.2fs "
              "(node-ttl %ds; bound %.1fs)" % (dt, TTL, bound))
        assert room_members(r, "room") == {ja["id"]}
        assert r.cmd("SMEMBERS", "tsu:nodes") != [] and len(r.cmd("SMEMBERS", "tsu:nodes")) == 1
        assert A.metrics()["tsunagu_signal_cluster_reaped_nodes_total"] == 1
        # the room has room again; a node started later joins the cluster
        with node(exe, r) as C:
            c = await Client.connect(C.url)
            jc = await c.join("room", "carol")
            assert [p["id"] for p in jc["peers"]] == [ja["id"]], jc
            await a.expect("peer-joined")
            await c.send({"type": "signal", "to": ja["id"], "data": "hello"})
            await a.expect("signal", data="hello")
            await c.close()
        await a.close()


@test
async def outage(exe):
    with Redis() as r, node(exe, r) as A, node(exe, r) as B:
        a1 = await Client.connect(A.url)
        j1 = await a1.join("room", "a1")
        a2 = await Client.connect(A.url)
        j2 = await a2.join("room", "a2")
        b = await Client.connect(B.url)
        jb = await b.join("room", "b")
        for _ in range(2):
            await a1.expect("peer-joined")
        await a2.expect("peer-joined")
        await b.silent()

        r.stop()
        t0 = time.time()
        await until(lambda: A.http("/healthz")[0] == 503, 5, "A's /healthz to report the outage")
        print("Redis stopped: A reported it on /healthz after %.2fs" % (time.time() - t0))
        st, body = A.http("/healthz")
        assert st == 503 and "redis" in body, (st, body)
        assert A.metrics()["tsunagu_signal_redis_up"] == 0
        # new joins: server-busy
        n = await Client.connect(A.url)
        await n.send({"type": "join", "room": "fresh"})
        m = await n.error("server-busy")
        assert "Redis" in m["message"], m
        # members on the same node keep working
        for i in range(20):
            await a1.send({"type": "signal", "to": j2["id"], "data": i})
        for i in range(20):
            await a2.expect("signal", data=i, **{"from": j1["id"]})
        await a1.send({"type": "ping"})
        await a1.expect("pong")
        # across nodes: refused, not silently lost
        await a1.send({"type": "signal", "to": jb["id"], "data": "lost?"})
        await a1.error("server-busy")
        # a2 leaves while Redis is away: B must learn it once Redis is back
        await a2.send({"type": "leave"})
        await a1.expect("peer-left", id=j2["id"])

        r.start()
        t1 = time.time()
        await until(lambda: A.http("/healthz")[0] == 200 and B.http("/healthz")[0] == 200, 15,
                    "both nodes to reconnect")
        print("Redis restarted: both nodes healthy again after %.2fs" % (time.time() - t1))
        assert A.metrics()["tsunagu_signal_redis_reconnects_total"] >= 1
        # Redis came back empty (no persistence): the nodes re-registered their members
        await until(lambda: room_members(r, "room") == {j1["id"], jb["id"]}, 10,
                    "members re-registered in Redis")
        # B learns that a2 left during the outage, once the nodes had time to come back
        # (docs/cluster.md: the room re-read waits 7 s after a reconnect), and nobody sees
        # a member that stayed flap (peer-left + peer-joined): that would end its calls
        jn = await n.join("fresh", "new")   # joins work again at once
        assert jn["peers"] == []
        m = await b.recv(timeout=12)
        assert m == {"type": "peer-left", "id": j2["id"]}, m
        print("a leave during the outage reached the other node %.1fs after Redis came back"
              % (time.time() - t1))
        await b.silent(0.5)
        # cross-node signals work again, both ways; a1 saw nothing about b meanwhile
        await a1.send({"type": "signal", "to": jb["id"], "data": "back"})
        await b.expect("signal", data="back", **{"from": j1["id"]})
        await b.send({"type": "signal", "to": j1["id"], "data": "hi"})
        await a1.expect("signal", data="hi", **{"from": jb["id"]})
        for x in (a1, a2, b, n):
            await x.close()


@test
async def stall(exe):
    """Redis stops answering (SIGSTOP: connections stay open, nothing comes
    back): WebSocket service on the node must not block, the bounded queue
    refuses instead of growing, and everything recovers on SIGCONT."""
    import signal as sg
    with Redis() as r, node(exe, r, "--redis-queue", "16") as A, node(exe, r) as B:
        a1 = await Client.connect(A.url)
        j1 = await a1.join("room", "a1")
        a2 = await Client.connect(A.url)
        j2 = await a2.join("room", "a2")
        b = await Client.connect(B.url)
        jb = await b.join("room", "b")
        for _ in range(2):
            await a1.expect("peer-joined")
        await a2.expect("peer-joined")
        os.kill(r.proc.pid, sg.SIGSTOP)
        try:
            t0 = time.time()
            n = await Client.connect(A.url)
            await n.send({"type": "join", "room": "fresh"})
            # cross-node signals pile up in the bounded queue, then are refused
            for i in range(40):
                await a1.send({"type": "signal", "to": jb["id"], "data": i})
            busy = 0
            worst = 0.0
            while time.time() - t0 < 4 * MULT:
                t = time.perf_counter()
                await a2.send({"type": "ping"})
                while True:
                    m = await a2.recv(timeout=2)
                    if m["type"] == "pong":
                        break
                worst = max(worst, time.perf_counter() - t)
                await a2.send({"type": "signal", "to": j1["id"], "data": "local"})
                while True:
                    m = await a1.recv(timeout=2)
                    if m["type"] == "error":
                        assert m["code"] == "server-busy", m
                        busy += 1
                        continue
                    assert m == {"type": "signal", "from": j2["id"], "data": "local"}, m
                    break
                await asyncio.sleep(0.05)
            assert worst < 0.25 * MULT, "WebSocket service blocked for %.3fs" % worst
            assert busy >= 1, "the 16-deep queue took 40 signals without refusing any"
            m = await n.error("server-busy", timeout=6)
            st, body = A.http("/healthz")
            assert st == 503 and "redis" in body, (st, body)
            print("Redis stopped (SIGSTOP): worst ping on the node %.1f ms, %d cross-node signals "
                  "refused with server-busy, pending join answered server-busy after %.1fs"
                  % (worst * 1e3, busy, time.time() - t0))
        finally:
            os.kill(r.proc.pid, sg.SIGCONT)
        await until(lambda: A.http("/healthz")[0] == 200 and B.http("/healthz")[0] == 200, 20,
                    "both nodes to recover")
        jn = await n.join("fresh", "new")
        assert jn["peers"] == []
        # Stopped longer than node-ttl, Redis expired both heartbeats; a node does not
        # reap others right after it reconnects (they get their backoff + ttl to come
        # back), so nobody sees members leave and rejoin (docs/cluster.md).
        await until(lambda: room_members(r, "room") == {j1["id"], j2["id"], jb["id"]}, 10,
                    "members registered")
        got = False
        for attempt in range(20):
            await a1.send({"type": "signal", "to": jb["id"], "data": "after"})
            try:
                while True:   # what Redis took before it stopped may arrive first
                    m = await b.recv(timeout=0.5)
                    if m.get("data") == "after":
                        got = True
                        break
                    assert m["type"] == "signal", m   # no peer-left/peer-joined flap
            except asyncio.TimeoutError:
                pass
            if got:
                break
        assert got, "no cross-node signal after recovery"
        for x in (a1, a2, b, n):
            await x.close()


@test
async def resume(exe):
    """Resume works on the member's node (messages from other nodes queue while it is
    detached); a wrong token on another node is unauthorized (xresume_* test the
    hand-over across nodes)."""
    with Redis() as r, node(exe, r, "--resume-seconds", "3") as A, \
            node(exe, r, "--resume-seconds", "3") as B:
        a = await Client.connect(A.url)
        ja = await a.join("room", "a")
        b = await Client.connect(B.url)
        jb = await b.join("room", "b")
        await a.expect("peer-joined")
        b.ws.transport.abort()   # b's network dies
        await asyncio.sleep(0.3)
        for i in range(50):
            await a.send({"type": "signal", "to": jb["id"], "data": i})
        await a.silent(0.5)      # no peer-left: b keeps its place, on every node
        other = await Client.connect(A.url)
        await other.send({"type": "resume", "token": "0" * 32})
        await other.error("unauthorized")
        b2 = await Client.connect(B.url)
        await b2.send({"type": "resume", "token": jb["resume"]})
        m = await b2.expect("resumed", id=jb["id"])
        assert m["peers"] == [{"id": ja["id"], "name": "a"}], m
        for i in range(50):
            await b2.expect("signal", data=i, **{"from": ja["id"]})
        await b2.send({"type": "signal", "to": ja["id"], "data": "back"})
        await a.expect("signal", data="back")
        # the window ends on B: peer-left reaches A through Redis
        b2.ws.transport.abort()
        t0 = time.time()
        await a.expect("peer-left", id=jb["id"], timeout=8)
        assert 2.5 < time.time() - t0 < 5 * MULT
        await until(lambda: room_members(r, "room") == {ja["id"]}, 5, "b out of Redis")
        for x in (a, other):
            await x.close()


@test
async def startup(exe):
    # an unreachable Redis stops start-up with a clear message
    dead = free_port()
    p = subprocess.run([exe, "--listen", "127.0.0.1:%d" % free_port(), "--redis",
                        "redis://:hunter2@127.0.0.1:%d/0" % dead],
                       capture_output=True, text=True, timeout=20 * MULT)
    assert p.returncode != 0, p
    assert "redis" in p.stderr and "cannot connect" in p.stderr, p.stderr
    assert "hunter2" not in p.stderr, p.stderr
    # bad URLs name the key and never echo the password
    for url in ("http://x", "redis://:hunter2@host:0", "redis://"):
        p = subprocess.run([exe, "--redis", url], capture_output=True, text=True, timeout=10)
        assert p.returncode == 2 and "redis" in p.stderr and "hunter2" not in p.stderr, (url, p.stderr)
    # a wrong password is refused by Redis and reported
    with Redis() as r:
        r.cmd("CONFIG", "SET", "requirepass", "right")
        p = subprocess.run([exe, "--listen", "127.0.0.1:%d" % free_port(), "--redis",
                            "redis://:wrong@127.0.0.1:%d" % r.port],
                           capture_output=True, text=True, timeout=20 * MULT)
        assert p.returncode != 0 and "AUTH failed" in p.stderr and ":wrong@" not in p.stderr, p.stderr
        with Server(exe, "--redis", "redis://:right@127.0.0.1:%d/2" % r.port) as s:
            c = await Client.connect(s.url)
            await c.join("r")
            assert ":right" not in s.logtext(), "password in the log"
            await c.close()
    # a unix socket, with a database number
    sock = os.path.join(tempfile.mkdtemp(prefix="signal-redis-sock-"), "r.sock")
    with Redis("--unixsocket", sock, "--unixsocketperm", "700") as r:
        with Server(exe, "--redis", "unix://%s?db=3" % sock) as s:
            c = await Client.connect(s.url)
            j = await c.join("sockroom", "u")
            assert r.cmd("HKEYS", "tsu:room:sockroom", db=3) == [j["id"]]
            assert r.cmd("EXISTS", "tsu:room:sockroom") == 0   # not in db 0
            assert "unix://%s?db=3" % sock in s.logtext()
            await c.close()
        assert j["peers"] == []
    shutil.rmtree(os.path.dirname(sock), ignore_errors=True)
    p = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=10)
    for flag in ("--redis", "--redis-node-ttl", "--redis-queue"):
        assert flag in p.stdout, flag


# ---- resume across nodes (docs/cluster.md "Resume across nodes") ----

RESUME_S = "20"


def xnode(exe, redis, *extra):
    return node(exe, redis, "--resume-seconds", RESUME_S, *extra)


async def collect(cl, count, what, timeout=10):
    """The next `count` messages of cl (any type)."""
    out = []
    for _ in range(count):
        try:
            out.append(await cl.recv(timeout))
        except asyncio.TimeoutError:
            raise AssertionError("%s: got %d of %d messages: last %r"
                                 % (what, len(out), count, out[-3:]))
    return out


def check_seq(msgs, sender, expect, what):
    """msgs are exactly signals/broadcasts data 0..expect-1 from sender, in order."""
    got = [m.get("data") for m in msgs if m.get("from") == sender]
    others = [m for m in msgs if m.get("from") != sender]
    assert not others, "%s: unexpected messages %r" % (what, others[:3])
    assert got == list(range(expect)), "%s: out of order, lost or doubled: %r" % (
        what, [g for i, g in enumerate(got) if g != i][:10])


def secrets_in_redis(redis, tokens):
    """Every key and value in Redis that contains one of the tokens in clear."""
    found = []
    for key in redis.cmd("KEYS", "*"):
        t = redis.cmd("TYPE", key)
        vals = []
        if t == "string":
            vals = [redis.cmd("GET", key)]
        elif t == "hash":
            vals = redis.cmd("HGETALL", key)
        elif t == "set":
            vals = redis.cmd("SMEMBERS", key)
        for tok in tokens:
            if tok in key or any(tok in (v or "") for v in vals):
                found.append(key)
    return found


async def run_xresume(exe, same_node):
    """A (and C) on one node, B on `same_node ? that node : the other`; B's socket is
    cut, A sends while B is away and goes on sending during the hand-over, C (on
    B's old node) too, and E, a member of the new node; B resumes on the other node:
    everything once, in order. The hand-over window is made wide on purpose: the owner is
    stopped for 300 ms right after the request (so what the new
    node's members send then is kept between request and reply: step 3), then the
    new node is stopped while the reply reaches it and the senders go on (so its
    members' messages cross the adoption: the tail and the hold, step 5). The new
    node's log must show a non-zero count for both."""
    n_away, n_during = 200, 200
    with Redis() as r, xnode(exe, r) as N1, xnode(exe, r) as N2:
        a = await Client.connect(N1.url)
        ja = await a.join("room", "a")
        home = N1 if same_node else N2
        away = N2 if same_node else N1
        b = await Client.connect(home.url)
        jb = await b.join("room", "b")
        await a.expect("peer-joined")
        c = await Client.connect(home.url)   # a member on B's node: its messages
        jc = await c.join("room", "c")       # to B never go through Redis there
        for x in (a, b):
            await x.expect("peer-joined")
        e = await Client.connect(away.url)   # a member on the new node
        je = await e.join("room", "e")
        for x in (a, b, c):
            await x.expect("peer-joined")
        # the token is stored hashed, never in clear
        th = hashlib.sha256(jb["resume"].encode()).hexdigest()
        assert r.cmd("EXISTS", "tsu:rt:" + th) == 1
        assert secrets_in_redis(r, [ja["resume"], jb["resume"], jc["resume"], je["resume"]]) == []

        b.ws.transport.abort()   # B's network dies
        await asyncio.sleep(0.3)
        for i in range(n_away):
            await a.send({"type": "signal", "to": jb["id"], "data": i})
            await c.send({"type": "signal", "to": jb["id"], "data": i})
        await a.send({"type": "broadcast", "data": "bc-away"})
        await c.expect("broadcast", data="bc-away")
        await e.expect("broadcast", data="bc-away")
        await asyncio.sleep(0.3)

        # A, C and E keep sending (about 1 s each) while B resumes on the other node
        async def stream(cl, start):
            for i in range(start, start + n_during):
                if cl is e and i == n_during // 2:   # a broadcast inside the window too
                    await cl.send({"type": "broadcast", "data": "bc-during"})
                await cl.send({"type": "signal", "to": jb["id"], "data": i})
                await asyncio.sleep(0.005)
        b2 = await Client.connect(away.url)
        senders = [asyncio.ensure_future(stream(a, n_away)), asyncio.ensure_future(stream(c, n_away)),
                   asyncio.ensure_future(stream(e, 0))]
        await asyncio.sleep(0.05)
        t0 = time.time()
        home.signal(19)   # SIGSTOP the owner: the request waits for it
        try:
            await b2.send({"type": "resume", "token": jb["resume"]})
            await asyncio.sleep(0.3)
            away.signal(19)   # the new node stops before the reply comes
            try:
                home.signal(18)
                await asyncio.sleep(0.1)   # the owner answers; the reply waits for the new node
            finally:
                away.signal(18)
        finally:
            home.signal(18)
        m = await b2.expect("resumed", id=jb["id"], timeout=5)
        dt = time.time() - t0
        assert sorted(p["id"] for p in m["peers"]) == sorted([ja["id"], jc["id"], je["id"]]), m
        await asyncio.gather(*senders)
        for x in (a, c):
            await x.expect("broadcast", data="bc-during")
        total = 2 * (n_away + n_during) + 2 + n_during
        msgs = await collect(b2, total, "B after resume")
        bc = [x for x in msgs if x.get("type") == "broadcast"]
        assert [x["data"] for x in bc] == ["bc-away", "bc-during"], bc
        from_e = [x.get("data") for x in msgs if x.get("from") == je["id"]]
        k = n_during // 2
        assert from_e[k - 1:k + 2] == [k - 1, "bc-during", k], from_e[k - 2:k + 3]
        msgs = [x for x in msgs if x.get("data") != "bc-during"]
        sigs = [x for x in msgs if x.get("type") == "signal"]
        assert {x["from"] for x in sigs} == {ja["id"], jc["id"], je["id"]}, sigs[:3]
        check_seq([x for x in sigs if x["from"] == je["id"]], je["id"], n_during,
                  "signals from E (on the new node)")
        check_seq([x for x in sigs if x["from"] == ja["id"]], ja["id"], n_away + n_during,
                  "signals from A")
        check_seq([x for x in sigs if x["from"] == jc["id"]], jc["id"], n_away + n_during,
                  "signals from C")
        await b2.silent(0.5)
        # the window was really exercised: kept between request and reply, and
        # the new node's own messages across the adoption (tail or hold)
        log = away.logtext()
        mk = re.search(r"handed over by node \w+ \((\d+) \+ (\d+) queued\)", log)
        mt_ = re.search(r"(\d+) of this node's earlier messages passed on through the tail, "
                        r"(\d+) held until the fence", log)
        assert mk and mt_, log[-2000:]
        queued, kept = int(mk.group(1)), int(mk.group(2))
        tail, held = int(mt_.group(1)), int(mt_.group(2))
        assert kept > 0, (queued, kept)
        assert tail + held > 0, (tail, held)
        # live both ways, through the new node
        await b2.send({"type": "signal", "to": ja["id"], "data": "b->a"})
        await a.expect("signal", data="b->a", **{"from": jb["id"]})
        await b2.send({"type": "signal", "to": jc["id"], "data": "b->c"})
        await c.expect("signal", data="b->c", **{"from": jb["id"]})
        await a.send({"type": "signal", "to": jb["id"], "data": "a->b"})
        await b2.expect("signal", data="a->b", **{"from": ja["id"]})
        await c.send({"type": "broadcast", "data": "c-all"})
        await b2.expect("broadcast", data="c-all")
        await a.expect("broadcast", data="c-all")
        await e.expect("broadcast", data="c-all")
        # nobody saw B leave or come back
        await a.silent(0.3)
        await c.silent(0.3)
        await e.silent(0.3)
        # B belongs to the new node in Redis
        def node_of(pid):
            return json.loads(r.cmd("HGET", "tsu:room:room", pid))["node"]
        v = json.loads(r.cmd("HGET", "tsu:room:room", jb["id"]))
        assert v == {"name": "b", "node": node_of(jc["id"] if same_node else ja["id"]) if not same_node
                     else v["node"]}, v
        # the new node is `away`: not C's (B's old node), and A's exactly when A is there
        assert v["node"] != node_of(jc["id"]), v
        assert (v["node"] == node_of(ja["id"])) == (not same_node), v
        assert r.cmd("HGET", "tsu:nm:" + v["node"], jb["id"]) == "room"
        assert r.cmd("HEXISTS", "tsu:nm:" + node_of(jc["id"]), jb["id"]) == 0
        assert json.loads(r.cmd("GET", "tsu:rt:" + th))["node"] == v["node"]
        assert secrets_in_redis(r, [jb["resume"]]) == []
        # a member joining later sees B once
        d = await Client.connect(N2.url)
        jd = await d.join("room", "d")
        ids = [p["id"] for p in jd["peers"]]
        assert sorted(ids) == sorted([ja["id"], jb["id"], jc["id"], je["id"]]), jd
        for x in (a, b2, c, e):
            pj = await x.expect("peer-joined")
            assert pj["peer"]["id"] == jd["id"], pj
        await d.send({"type": "signal", "to": jb["id"], "data": "d->b"})
        await b2.expect("signal", data="d->b")
        mt = away.metrics()
        assert mt['tsunagu_signal_cluster_handovers_total{result="ok"}'] == 1, mt
        assert home.metrics()['tsunagu_signal_cluster_handovers_total{result="given"}'] == 1
        print("resume across nodes (%s): resumed %.1f ms after the request (owner stopped 300 ms, "
              "new node 100 ms); %d messages queued on the old node + %d sent during the "
              "hand-over, all in order, none twice; handed over: %d queued + %d kept between "
              "request and reply; %d through the tail + %d held until the fence"
              % ("A, B, C on one node" if same_node else "A on node 1, B and C on node 2",
                 dt * 1e3, 2 * n_away + 1, 3 * n_during, queued, kept, tail, held))
        # the window ends on the new node: peer-left reaches everyone once
        for x in (a, c, d, e, b2):
            await x.close()


@test
async def xresume(exe):
    await run_xresume(exe, same_node=False)


@test
async def xresume_local(exe):
    await run_xresume(exe, same_node=True)


@test
async def xresume_halfopen(exe):
    """The old connection still looks open: it is closed with 4001 by its node."""
    with Redis() as r, xnode(exe, r) as N1, xnode(exe, r) as N2:
        a = await Client.connect(N1.url)
        ja = await a.join("room", "a")
        b = await Client.connect(N1.url)
        jb = await b.join("room", "b")
        await a.expect("peer-joined")
        for i in range(20):
            await a.send({"type": "signal", "to": jb["id"], "data": i})
        got = await collect(b, 20, "B before")
        check_seq(got, ja["id"], 20, "B before")
        b2 = await Client.connect(N2.url)
        await b2.send({"type": "resume", "token": jb["resume"]})
        await b2.expect("resumed", id=jb["id"])
        try:
            m = await asyncio.wait_for(b.ws.recv(), 5 * MULT)
            raise AssertionError("old connection still open: %r" % m)
        except websockets.ConnectionClosed as e:
            assert e.code == 4001, e.code
        for i in range(20, 40):
            await a.send({"type": "signal", "to": jb["id"], "data": i})
        got = await collect(b2, 20, "B after")
        assert [x["data"] for x in got] == list(range(20, 40)), got
        await a.silent(0.3)
        await b2.send({"type": "signal", "to": ja["id"], "data": "hi"})
        await a.expect("signal", data="hi")
        # and back again to the first node
        b2.ws.transport.abort()
        await asyncio.sleep(0.2)
        await a.send({"type": "signal", "to": jb["id"], "data": "x"})
        b3 = await Client.connect(N1.url)
        await b3.send({"type": "resume", "token": jb["resume"]})
        await b3.expect("resumed", id=jb["id"])
        await b3.expect("signal", data="x")
        await a.silent(0.3)
        for x in (a, b3):
            await x.close()


@test
async def xresume_drain(exe):
    """SIGTERM on node 1 while messages flow: its members resume on node 2, nothing
    lost; node 1 exits. Members still connected resume on node 2 before they let go
    of the old connection (it is closed with 4001 once the member moved: what it
    carried until then is read to the end); a member whose connection had already
    dropped is handed over from the draining node too."""
    with Redis() as r, xnode(exe, r, "--drain-seconds", "5") as N1, xnode(exe, r) as N2:
        a = await Client.connect(N2.url)
        ja = await a.join("room", "a")
        members = []
        for name in ("b", "c", "d"):
            cl = await Client.connect(N1.url)
            j = await cl.join("room", name)
            members.append((cl, j))
            await a.expect("peer-joined")
        for k, (cl, _) in enumerate(members):
            for _ in range(len(members) - 1 - k):
                await cl.expect("peer-joined")
        dropped_cl, dropped = members.pop()   # d's network dies before the drain
        dropped_cl.ws.transport.abort()
        await asyncio.sleep(0.2)
        n = 300

        async def flow():
            for i in range(n):
                for j in [m[1] for m in members] + [dropped]:
                    await a.send({"type": "signal", "to": j["id"], "data": i})
                if i % 10 == 0:
                    await asyncio.sleep(0.005)
        sender = asyncio.ensure_future(flow())
        await asyncio.sleep(0.1)
        t0 = time.time()
        N1.signal(15)
        resumed = []
        for cl, j in members:
            got = []
            while True:   # until the drain notice
                m = await cl.recv(5)
                if m.get("type") == "error":
                    assert m["code"] == "server-busy", m
                    assert m.get("drain") == "resume", m   # the drain notice, resume now
                    break
                got.append(m)
            cl2 = await Client.connect(N2.url)
            await cl2.send({"type": "resume", "token": j["resume"]})
            try:   # the old connection carries on until the member moved
                while True:
                    got.append(json.loads(await asyncio.wait_for(cl.ws.recv(), 5 * MULT)))
            except websockets.ConnectionClosed as e:
                assert e.code == 4001, e.code
            await cl2.expect("resumed", id=j["id"])
            resumed.append((cl2, j, got))
        d2 = await Client.connect(N2.url)
        await d2.send({"type": "resume", "token": dropped["resume"]})
        await d2.expect("resumed", id=dropped["id"])
        resumed.append((d2, dropped, []))
        t_all = time.time() - t0
        await sender
        for cl2, j, got in resumed:
            rest = await collect(cl2, n - len(got), "after drain resume")
            check_seq(got + rest, ja["id"], n, "member %s" % j["id"])
            await cl2.silent(0.3)
        assert N1.proc.wait(timeout=15 * MULT) == 0
        await a.silent(0.3)   # no peer-left / peer-joined
        for cl2, j, _ in resumed:
            await cl2.send({"type": "signal", "to": ja["id"], "data": j["id"]})
            await a.expect("signal", data=j["id"])
        assert len(r.cmd("SMEMBERS", "tsu:nodes")) == 1
        assert room_members(r, "room") == {ja["id"]} | {j["id"] for _, j, _ in resumed}
        print("drain of node 1: its 3 members (2 connected, 1 dropped) resumed on node 2 "
              "%.0f ms after SIGTERM (clients reconnect at once), %d signals each in order, "
              "none twice; node 1 exited with status 0" % (t_all * 1e3, n))
        for x in [a] + [x for x, _, _ in resumed]:
            await x.close()


@test
async def xresume_ownerdead(exe):
    """The owner is killed: resume elsewhere is unauthorized within a bound, the
    member is reaped as before."""
    with Redis() as r, xnode(exe, r) as N1, xnode(exe, r) as N2:
        a = await Client.connect(N2.url)
        ja = await a.join("room", "a")
        b = await Client.connect(N1.url)
        jb = await b.join("room", "b")
        await a.expect("peer-joined")
        b.ws.transport.abort()
        await asyncio.sleep(0.2)
        N1.proc.kill()   # SIGKILL: its queue dies with it
        N1.proc.wait()
        t0 = time.time()
        b2 = await Client.connect(N2.url)
        await b2.send({"type": "resume", "token": jb["resume"]})
        await b2.error("unauthorized", timeout=5)
        dt = time.time() - t0
        bound = 2.0 + 0.5   # the hand-over timeout (2 s) + delivery
        assert dt < bound * MULT, (dt, bound)
        left = await a.expect("peer-left", id=jb["id"], timeout=TTL + 6)
        dt2 = time.time() - t0
        assert dt2 < (TTL + 1.5) * MULT, dt2
        assert room_members(r, "room") == {ja["id"]}
        th = hashlib.sha256(jb["resume"].encode()).hexdigest()
        assert r.cmd("EXISTS", "tsu:rt:" + th) == 0
        # and the token is dead for good
        await b2.send({"type": "resume", "token": jb["resume"]})
        await b2.error("unauthorized", timeout=3)
        print("owner killed: resume on the other node answered unauthorized after %.2f s "
              "(bound %.1f s); the member was reaped after %.2f s" % (dt, bound, dt2))
        del left
        for x in (a, b2):
            await x.close()


@test
async def xresume_stalled(exe):
    """The owner is alive but does not answer in time (SIGSTOPped): unauthorized
    after the 2 s hand-over timeout; when it wakes up and hands the member over
    anyway, the member leaves (nobody kept its messages): peer-left once, Redis
    clean, token dead."""
    with Redis() as r, xnode(exe, r, "--redis-node-ttl", "8") as N1, \
            xnode(exe, r, "--redis-node-ttl", "8") as N2:
        # past the nodes' deferred start-up room sync (sig_cluster.c SYNC_DELAY_MS,
        # 7 s): the peer-left below must come from the late hand-over's leave
        # itself, not from that sync
        await asyncio.sleep(8)
        a = await Client.connect(N2.url)
        ja = await a.join("room", "a")
        b = await Client.connect(N1.url)
        jb = await b.join("room", "b")
        await a.expect("peer-joined")
        b.ws.transport.abort()
        await asyncio.sleep(0.3)
        N1.signal(19)   # SIGSTOP
        try:
            t0 = time.time()
            b2 = await Client.connect(N2.url)
            await b2.send({"type": "resume", "token": jb["resume"]})
            await b2.error("unauthorized", timeout=5)
            dt = time.time() - t0
            assert 1.9 < dt < 3.0 * MULT, dt
        finally:
            N1.signal(18)   # SIGCONT
        await a.expect("peer-left", id=jb["id"], timeout=5)
        await a.silent(0.5)
        await until(lambda: room_members(r, "room") == {ja["id"]}, 5, "b out of Redis")
        th = hashlib.sha256(jb["resume"].encode()).hexdigest()
        await until(lambda: r.cmd("EXISTS", "tsu:rt:" + th) == 0, 5, "token entry gone")
        await b2.send({"type": "resume", "token": jb["resume"]})
        await b2.error("unauthorized", timeout=4)
        m = N2.metrics()
        assert m['tsunagu_signal_cluster_handovers_total{result="timeout"}'] == 1, m
        print("owner stalled: unauthorized after %.2f s; its late hand-over made the member "
              "leave" % dt)
        for x in (a, b2):
            await x.close()


@test
async def xresume_garbage(exe):
    """Wrong and garbage tokens on another node: unauthorized, nobody disturbed; the
    resume of the real member afterwards still works."""
    with Redis() as r, xnode(exe, r) as N1, xnode(exe, r) as N2:
        a = await Client.connect(N1.url)
        ja = await a.join("room", "a")
        b = await Client.connect(N1.url)
        jb = await b.join("room", "b")
        await a.expect("peer-joined")
        x = await Client.connect(N2.url)
        rnd = random.Random(7)
        tokens = ["0" * 32, jb["resume"][:-1] + ("0" if jb["resume"][-1] != "0" else "1"),
                  ja["id"], jb["id"], hashlib.sha256(jb["resume"].encode()).hexdigest(),
                  jb["resume"].upper(), "x" * 32,
                  "".join(rnd.choice("0123456789abcdef") for _ in range(32))]
        for tok in tokens:
            await x.send({"type": "resume", "token": tok})
            await x.error("unauthorized", timeout=4)
        await x.send({"type": "resume", "token": 5})
        await x.error("bad-request")
        # a forged hand-over request on the room channel, to b's owner, with a
        # wrong hash and proof: the owner reads it and refuses it (its answer
        # goes to the forged node's channel)
        owner = json.loads(r.cmd("HGET", "tsu:room:room", jb["id"]))["node"]
        sub = Subscriber(r, "tsu:0:nd:" + "f" * 16)
        try:
            r.cmd("PUBLISH", "tsu:0:ch:room", json.dumps(
                {"n": "f" * 16, "e": "ho", "id": jb["id"], "to": owner, "h": "0" * 64,
                 "p": "0" * 64, "rq": 1}))
            await until(lambda: sub.msgs, 3, "the owner's answer to the forged request")
            assert sub.msgs[0].get("e") == "hr" and sub.msgs[0].get("ok") is False, sub.msgs
        finally:
            sub.stop()
        await a.silent(0.3)
        await b.silent(0.3)
        await b.send({"type": "signal", "to": ja["id"], "data": "still here"})
        await a.expect("signal", data="still here")
        await a.send({"type": "signal", "to": jb["id"], "data": "you too"})
        await b.expect("signal", data="you too")
        m = N2.metrics()
        assert m['tsunagu_signal_cluster_handovers_total{result="unknown"}'] == len(tokens), m
        assert room_members(r, "room") == {ja["id"], jb["id"]}
        for cl in (a, b, x):
            await cl.close()



@test
async def xresume_forged_reply(exe):
    """A hand-over reply nobody asked for (a bug, an old node, anyone who can
    PUBLISH) names a member of the room, on another node and on the node
    itself: nobody is removed, nobody is told anything."""
    with Redis() as r, xnode(exe, r) as N1, xnode(exe, r) as N2:
        a = await Client.connect(N1.url)
        ja = await a.join("room", "a")
        c = await Client.connect(N2.url)
        jc = await c.join("room", "c")
        await a.expect("peer-joined")
        n1 = json.loads(r.cmd("HGET", "tsu:room:room", ja["id"]))["node"]
        n2 = json.loads(r.cmd("HGET", "tsu:room:room", jc["id"]))["node"]
        for node_id, victim in ((n2, ja["id"]), (n1, ja["id"]), (n2, jc["id"]), (n1, jc["id"])):
            for rq in (999, 1):
                for ok in (True, False):
                    r.cmd("PUBLISH", "tsu:0:nd:" + node_id, json.dumps(
                        {"n": "f" * 16, "e": "hr", "rq": rq, "ok": ok, "room": "room",
                         "id": victim, "name": "", "q": []}))
        await a.silent(0.5)
        await c.silent(0.3)
        assert room_members(r, "room") == {ja["id"], jc["id"]}, room_members(r, "room")
        await a.send({"type": "signal", "to": jc["id"], "data": "still here"})
        await c.expect("signal", data="still here")
        await c.send({"type": "signal", "to": ja["id"], "data": "you too"})
        await a.expect("signal", data="you too")
        # a member joining now sees both
        d = await Client.connect(N2.url)
        jd = await d.join("room", "d")
        assert {p["id"] for p in jd["peers"]} == {ja["id"], jc["id"]}, jd
        print("16 forged hand-over replies: both members still registered and reachable")
        for cl in (a, c, d):
            await cl.close()



class Subscriber:
    """SUBSCRIBE to one channel on its own connection and thread; keeps the
    messages (parsed JSON) it reads until stop()."""

    def __init__(self, redis, channel):
        import threading
        self.msgs = []
        self.sock = socket.create_connection(("127.0.0.1", redis.port), timeout=5)
        self.sock.sendall(b"*2\r\n$9\r\nSUBSCRIBE\r\n$%d\r\n%s\r\n" % (len(channel), channel.encode()))
        self.f = self.sock.makefile("rb")
        resp(self.f)   # the confirmation
        self.sock.settimeout(None)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            while True:
                m = resp(self.f)
                if isinstance(m, list) and len(m) == 3 and m[0] == "message":
                    self.msgs.append(json.loads(m[2]))
        except Exception:  # noqa: BLE001 (closed by stop())
            pass

    def stop(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.thread.join(5)


@test
async def xresume_forged_request(exe):
    """The token's SHA-256 is in Redis (lookup key) and on the room's channel, so
    it must not be what authorizes a hand-over: a
    request from a fake node with the right hash but no proof made with the
    token is refused, and so is a replay of a real request after the member
    came back to its first node. The member stays where it is, connected."""
    with Redis() as r, xnode(exe, r) as N1, xnode(exe, r) as N2:
        a = await Client.connect(N1.url)
        ja = await a.join("room", "a")
        b = await Client.connect(N1.url)
        jb = await b.join("room", "b")
        await a.expect("peer-joined")
        n1 = json.loads(r.cmd("HGET", "tsu:room:room", jb["id"]))["node"]
        th = hashlib.sha256(jb["resume"].encode()).hexdigest()
        fake = "f" * 16
        r.cmd("SADD", "tsu:nodes", fake)
        r.cmd("SET", "tsu:node:" + fake, "1", "EX", "30")
        for extra in ({}, {"p": "0" * 64}, {"p": th}):
            req = {"n": fake, "e": "ho", "id": jb["id"], "to": n1, "h": th, "rq": 1}
            req.update(extra)
            r.cmd("PUBLISH", "tsu:0:ch:room", json.dumps(req))
        await b.silent(0.5)   # not closed with 4001
        assert json.loads(r.cmd("HGET", "tsu:room:room", jb["id"]))["node"] == n1
        r.cmd("SREM", "tsu:nodes", fake)
        r.cmd("DEL", "tsu:node:" + fake)
        m = N1.metrics()
        assert m['tsunagu_signal_cluster_handovers_total{result="given"}'] == 0, m
        # a real request, captured on the room's channel, replayed once b is back on N1
        sub = Subscriber(r, "tsu:0:ch:room")
        try:
            b.ws.transport.abort()
            b2 = await Client.connect(N2.url)
            await b2.send({"type": "resume", "token": jb["resume"]})
            await b2.expect("resumed", id=jb["id"])
            await until(lambda: any(x.get("e") == "ho" for x in sub.msgs), 5, "the request")
            captured = [x for x in sub.msgs if x.get("e") == "ho"][0]
            assert "p" in captured and captured["h"] == th, captured
            b2.ws.transport.abort()
            b3 = await Client.connect(N1.url)
            await b3.send({"type": "resume", "token": jb["resume"]})
            await b3.expect("resumed", id=jb["id"])
            await until(lambda: json.loads(r.cmd("HGET", "tsu:room:room", jb["id"]))["node"] == n1,
                        5, "b back on node 1")
            r.cmd("PUBLISH", "tsu:0:ch:room", json.dumps(captured))
            await b3.silent(0.5)
            assert json.loads(r.cmd("HGET", "tsu:room:room", jb["id"]))["node"] == n1
        finally:
            sub.stop()
        await b3.send({"type": "signal", "to": ja["id"], "data": "still here"})
        await a.expect("signal", data="still here")
        m = N1.metrics()
        assert m['tsunagu_signal_cluster_handovers_total{result="given"}'] == 1, m
        print("forged requests with the token's hash, and a replayed real request: refused; "
              "the member stayed, connected")
        for cl in (a, b3):
            await cl.close()



def reply_mac(token, rq, owner, room, mid, name, texts):
    """sig_ho_reply_mac (signaling/sig_room.h): what authenticates the owner's
    hand-over reply, under a key derived from the resume token."""
    key = hmac.new(token.encode(), b"tsunagu-hr-key", hashlib.sha256).digest()
    msg = b"tsunagu-hr|%d|" % rq + b"".join(
        b"%d:%s" % (len(f), f) for f in (x.encode() for x in [owner, room, mid, name] + texts))
    return hmac.new(key, msg, hashlib.sha256).hexdigest()


EVIL_ICE = [{"urls": "turn:203.0.113.66:3478", "username": "evil", "credential": "evil"}]


@test
async def xresume_bad_reply(exe):
    """A reply to a hand-over in flight (right serial, room and member, even
    authenticated: made with the token, as a buggy owner would) whose queue
    holds a `joined` (a queue never does): never
    passed to the client, the resume is refused (unauthorized); when the real
    owner's hand-over comes after all, the member leaves (peer-left), nobody
    keeps a ghost (findings 10, 1)."""
    with Redis() as r, xnode(exe, r) as N1, xnode(exe, r) as N2:
        a = await Client.connect(N1.url)
        ja = await a.join("room", "a")
        b = await Client.connect(N1.url)
        jb = await b.join("room", "b")
        await a.expect("peer-joined")
        n1 = json.loads(r.cmd("HGET", "tsu:room:room", ja["id"]))["node"]
        n2 = [n for n in r.cmd("SMEMBERS", "tsu:nodes") if n != n1][0]
        b.ws.transport.abort()
        await asyncio.sleep(0.3)
        sub = Subscriber(r, "tsu:0:ch:room")
        N1.signal(19)   # SIGSTOP: the owner answers late
        try:
            b2 = await Client.connect(N2.url)
            await b2.send({"type": "resume", "token": jb["resume"]})
            await until(lambda: any(x.get("e") == "ho" for x in sub.msgs), 2, "the request")
            rq = [x for x in sub.msgs if x.get("e") == "ho"][0]["rq"]
            q = ['{"type":"signal","from":"%s","data":1}' % ja["id"],
                 json.dumps({"type": "joined", "room": "room", "id": jb["id"], "peers": [],
                             "iceServers": EVIL_ICE, "resume": jb["resume"]})]
            r.cmd("PUBLISH", "tsu:0:nd:" + n2, json.dumps(
                {"n": n1, "e": "hr", "rq": rq, "ok": True, "room": "room", "id": jb["id"],
                 "name": "b", "a": reply_mac(jb["resume"], rq, n1, "room", jb["id"], "b", q),
                 "q": q, "m": []}))
            m = await b2.recv(1.5)
            assert m.get("type") == "error" and m.get("code") == "unauthorized", m
        finally:
            N1.signal(18)   # SIGCONT
            sub.stop()
        await a.expect("peer-left", id=jb["id"], timeout=5)
        await until(lambda: room_members(r, "room") == {ja["id"]}, 5, "b out of Redis")
        await b2.silent(0.5)
        print("an authenticated hand-over reply with a `joined` in its queue: refused, nothing "
              "passed on; the owner's late hand-over made the member leave")
        for cl in (a, b2):
            await cl.close()


@test
async def xresume_forged_mac(exe):
    """Whoever can PUBLISH to Redis sees the
    request (rq, room, member, token hash) and races the owner with replies
    that look right but are not authenticated by a holder of the token: one
    with a MAC made under a key derived from the token's hash (what Redis
    readers know) and a plausible queue, one with a `joined` carrying other
    iceServers. Both are ignored (not an answer: the owner's may still come);
    the owner's real reply, shortly after, gives the client `resumed` and its
    real queue, in order, and nothing of the forgeries."""
    n_away = 20
    with Redis() as r, xnode(exe, r) as N1, xnode(exe, r) as N2:
        a = await Client.connect(N1.url)
        ja = await a.join("room", "a")
        b = await Client.connect(N1.url)
        jb = await b.join("room", "b")
        await a.expect("peer-joined")
        n1 = json.loads(r.cmd("HGET", "tsu:room:room", ja["id"]))["node"]
        n2 = [n for n in r.cmd("SMEMBERS", "tsu:nodes") if n != n1][0]
        b.ws.transport.abort()
        await asyncio.sleep(0.3)
        for i in range(n_away):   # b's real queue on its owner
            await a.send({"type": "signal", "to": jb["id"], "data": i})
        await asyncio.sleep(0.3)
        th = hashlib.sha256(jb["resume"].encode()).hexdigest()
        sub = Subscriber(r, "tsu:0:ch:room")
        N1.signal(19)   # SIGSTOP: the forgeries surely come first
        try:
            b2 = await Client.connect(N2.url)
            await b2.send({"type": "resume", "token": jb["resume"]})
            await until(lambda: any(x.get("e") == "ho" for x in sub.msgs), 2, "the request")
            rq = [x for x in sub.msgs if x.get("e") == "ho"][0]["rq"]
            q1 = ['{"type":"signal","from":"%s","data":"forged"}' % ja["id"]]
            q2 = [json.dumps({"type": "joined", "room": "room", "id": jb["id"], "peers": [],
                              "iceServers": EVIL_ICE, "resume": jb["resume"]})]
            for q, mac in ((q1, reply_mac(th, rq, n1, "room", jb["id"], "b", q1)),
                           (q2, "0" * 64)):
                r.cmd("PUBLISH", "tsu:0:nd:" + n2, json.dumps(
                    {"n": n1, "e": "hr", "rq": rq, "ok": True, "room": "room", "id": jb["id"],
                     "name": "b", "a": mac, "q": q, "m": []}))
            await b2.silent(0.4)   # nothing yet: not acted upon
            await until(lambda: N2.logtext().count("not authenticated") >= 2, 2,
                        "both forged replies ignored (log)")
        finally:
            N1.signal(18)   # SIGCONT, within the 2 s hand-over timeout
            sub.stop()
        m = await b2.expect("resumed", id=jb["id"], timeout=5)
        assert [p["id"] for p in m["peers"]] == [ja["id"]], m
        msgs = await collect(b2, n_away, "the real queue")
        check_seq(msgs, ja["id"], n_away, "the real queue")
        await b2.silent(0.5)
        await a.send({"type": "signal", "to": jb["id"], "data": "live"})
        await b2.expect("signal", data="live")
        assert room_members(r, "room") == {ja["id"], jb["id"]}
        assert json.loads(r.cmd("HGET", "tsu:room:room", jb["id"]))["node"] == n2
        print("2 forged hand-over replies (MAC under the token's hash; a `joined` with other "
              "iceServers): ignored; the owner's reply gave the client its %d queued signals"
              % n_away)
        for cl in (a, b2):
            await cl.close()



@test
async def xresume_joinleave(exe):
    """Members joining and leaving between the hand-over request
    and the reply reach the resumed member as events, after the owner's queue. B
    (on O) drops; Z joins on N (queued for B on O: peer-joined Z); O is stopped; B
    resumes on N; Z leaves and Y joins meanwhile; O goes on. B's view (resumed.peers,
    then the events in order) ends as the room really is: Y, not Z."""
    with Redis() as r, xnode(exe, r) as O, xnode(exe, r) as N:
        b = await Client.connect(O.url)
        jb = await b.join("room", "b")
        b.ws.transport.abort()
        await asyncio.sleep(0.3)
        z = await Client.connect(N.url)
        jz = await z.join("room", "z")
        await asyncio.sleep(0.3)
        O.signal(19)   # SIGSTOP: the request waits in O's socket
        try:
            b2 = await Client.connect(N.url)
            await b2.send({"type": "resume", "token": jb["resume"]})
            await asyncio.sleep(0.3)
            await z.send({"type": "leave"})
            y = await Client.connect(N.url)
            jy = await y.join("room", "y")
            await asyncio.sleep(0.3)
        finally:
            O.signal(18)   # SIGCONT, well within the 2 s hand-over timeout
        m = await b2.expect("resumed", id=jb["id"], timeout=5)
        view = {p["id"] for p in m["peers"]}
        events = []
        while True:
            try:
                x = await b2.recv(1)
            except asyncio.TimeoutError:
                break
            events.append(x)
            if x["type"] == "peer-joined":
                view.add(x["peer"]["id"])
            elif x["type"] == "peer-left":
                view.discard(x["id"])
        kinds = [(x["type"], x.get("id") or x.get("peer", {}).get("id")) for x in events]
        assert ("peer-joined", jz["id"]) in kinds and ("peer-left", jz["id"]) in kinds, kinds
        assert kinds.index(("peer-left", jz["id"])) > kinds.index(("peer-joined", jz["id"])), kinds
        assert view == {jy["id"]}, (view, kinds)
        assert room_members(r, "room") == {jb["id"], jy["id"]}
        await y.send({"type": "signal", "to": jb["id"], "data": "y->b"})
        await b2.expect("signal", data="y->b")
        print("join/leave during the hand-over: B saw %r; its view ends as the room is" % kinds)
        for cl in (b2, y):
            await cl.close()


if __name__ == "__main__":
    run(TESTS, sys.argv)
