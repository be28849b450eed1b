#!/usr/bin/python3
"""Integration tests for tsunagu-signal with real WebSocket clients
(python3-websockets, asyncio) against the real binary on 127.0.0.1.

usage: signal_test.py PATH/TO/tsunagu-signal TESTNAME"""
import asyncio
import base64
import hashlib
import hmac
import json
import os
import re
import resource
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from signal_lib import MULT, Client, Server, closed_within, run  # noqa: E402

import websockets  # noqa: E402

TESTS = {}


def test(fn):
    TESTS[fn.__name__] = fn
    return fn


async def ping_ok(c):
    await c.send({"type": "ping"})
    await c.expect("pong")


@test
async def protocol(exe):
    secret = "s3cret"
    with Server(exe, "--rate-limit", "1000", "--turn-url", "turn:127.0.0.1:3478?transport=udp",
                "--turn-url", "turn:127.0.0.1:3478?transport=tcp",
                "--turn-secret", secret, "--turn-ttl", "600") as srv:
        a = await Client.connect(srv.url)
        ja = await a.join("room-1", "alice")
        assert re.fullmatch(r"[0-9a-f]{16}", ja["id"]), ja
        assert ja["peers"] == [] and isinstance(ja["resume"], str) and len(ja["resume"]) >= 32
        ice = ja["iceServers"]
        assert len(ice) == 1 and ice[0]["urls"] == ["turn:127.0.0.1:3478?transport=udp",
                                                    "turn:127.0.0.1:3478?transport=tcp"], ice
        exp, ident = ice[0]["username"].split(":")
        # a stable identity (open mode: keyed hash of the client IP), never the member id,
        # so the relay's per-user quota holds across joins (turn_identity tests it)
        assert re.fullmatch(r"[A-Za-z0-9_-]{16}", ident) and ident != ja["id"], ice
        assert abs(int(exp) - (time.time() + 600)) < 5, ice
        want = base64.b64encode(hmac.new(secret.encode(), ice[0]["username"].encode(),
                                         hashlib.sha1).digest()).decode()
        assert ice[0]["credential"] == want, (ice, want)

        b = await Client.connect(srv.url)
        jb = await b.join("room-1", "bob")
        assert jb["peers"] == [{"id": ja["id"], "name": "alice"}], jb
        assert jb["id"] != ja["id"]
        pj = await a.expect("peer-joined")
        assert pj["peer"] == {"id": jb["id"], "name": "bob"}, pj

        # signal: only to `to`, in order, data opaque (any JSON value)
        payloads = [{"description": {"type": "offer", "sdp": "v=0\r\n" + "x" * i}} for i in range(50)]
        payloads += [None, 7, "str", [1, {"a": []}], {"candidate": None}]
        for p in payloads:
            await b.send({"type": "signal", "to": ja["id"], "data": p})
        for p in payloads:
            m = await a.expect("signal", **{"from": jb["id"]})
            assert m["data"] == p, (m, p)
        await b.silent()

        # broadcast: every other member, not the sender
        c = await Client.connect(srv.url)
        jc = await c.join("room-1", "carol")
        assert {p["id"] for p in jc["peers"]} == {ja["id"], jb["id"]}
        await a.expect("peer-joined")
        await b.expect("peer-joined")
        await c.send({"type": "broadcast", "data": {"hello": "all"}})
        for x in (a, b):
            m = await x.expect("broadcast", **{"from": jc["id"]})
            assert m["data"] == {"hello": "all"}
        await c.silent()

        # unknown fields are ignored
        await a.send({"type": "ping", "future": {"x": 1}})
        await a.expect("pong")
        await a.send({"type": "signal", "to": jb["id"], "data": 1, "extra": True})
        await b.expect("signal", data=1)

        # one room per connection
        await a.send({"type": "join", "room": "other"})
        await a.error("bad-request")

        # leave: peer-left to the others; the connection may join again, new id
        await c.send({"type": "leave"})
        for x in (a, b):
            await x.expect("peer-left", id=jc["id"])
        jc2 = await c.join("room-1", "carol")
        assert jc2["id"] != jc["id"]
        await a.expect("peer-joined")
        await b.expect("peer-joined")

        # a closed connection (resume off) leaves at once
        m = srv.metrics()
        assert m["tsunagu_signal_members"] == 3 and m["tsunagu_signal_rooms"] == 1, m
        assert m["tsunagu_signal_connections"] == 3, m
        assert m['tsunagu_signal_messages_total{type="signal"}'] == len(payloads) + 1, m
        assert m['tsunagu_signal_messages_total{type="broadcast"}'] == 1, m
        assert m['tsunagu_signal_messages_total{type="join"}'] == 5, m
        for x in (a, b, c):
            await x.close()


@test
async def errors(exe):
    with Server(exe, "--max-room-size", "2", "--max-rooms", "2", "--max-message-bytes", "1024") as srv:
        a = await Client.connect(srv.url)
        # bad-request: malformed, not an object, missing/unknown type, wrong field types
        bad = ["{", "[]", "42", '"join"', "{}", '{"type":5}', '{"type":"nope"}',
               '{"type":"join"}', '{"type":"join","room":""}', '{"type":"join","room":7}',
               '{"type":"join","room":"r","name":5}', '{"type":"join","room":"r","token":[]}',
               '{"type":"join","room":"' + "r" * 129 + '"}',
               '{"type":"join","room":"a\\nb"}', '{"type":"join","room":"r","name":"' + "n" * 65 + '"}',
               '{"type":"signal","data":1}', '{"type":"signal","to":1,"data":1}',
               '{"type":"signal","to":"x"}', '{"type":"broadcast"}', '{"type":"resume"}',
               '{"type":"resume","token":1}', '{"type":"ping","type":"ping"}',
               '{"type":"join","room":"r\\u0000x"}']
        for raw in bad:
            await a.send(raw)
            m = await a.error("bad-request")
            assert m["message"], m
        await a.send(b"\x00binary")
        await a.error("bad-request")
        await ping_ok(a)

        # not-joined
        for msg in ({"type": "signal", "to": "0123456789abcdef", "data": 1},
                    {"type": "broadcast", "data": 1}, {"type": "leave"}):
            await a.send(msg)
            await a.error("not-joined")

        ja = await a.join("r1")
        # unknown-peer: nobody, and yourself
        for to in ("0123456789abcdef", ja["id"], "x"):
            await a.send({"type": "signal", "to": to, "data": 1})
            await a.error("unknown-peer")
        # room-full
        b = await Client.connect(srv.url)
        jb = await b.join("r1")
        await a.expect("peer-joined")
        c = await Client.connect(srv.url)
        await c.send({"type": "join", "room": "r1"})
        await c.error("room-full")
        # server-busy: max-rooms 2
        await c.join("r2")
        d = await Client.connect(srv.url)
        await d.send({"type": "join", "room": "r3"})
        await d.error("server-busy")
        # unknown peer from another room
        await c.send({"type": "signal", "to": jb["id"], "data": 1})
        await c.error("unknown-peer")
        # unauthorized: resume with a made-up token
        await d.send({"type": "resume", "token": "f" * 32})
        await d.error("unauthorized")
        # too-large: error, connection stays open; the third one closes it (1009)
        await a.send(json.dumps({"type": "broadcast", "data": "x" * 2000}))
        await a.error("too-large")
        await ping_ok(a)
        await b.silent()
        # exactly at the limit is fine
        body = {"type": "broadcast", "data": ""}
        body["data"] = "y" * (1024 - len(json.dumps(body)))
        assert len(json.dumps(body)) == 1024
        await a.send(json.dumps(body))
        await b.expect("broadcast")
        rss0 = srv.metrics()["process_resident_memory_bytes"]
        await a.send("q" * (8 << 20))   # one 8 MB frame: refused from its header, never buffered
        await a.error("too-large", timeout=20)
        rss1 = srv.metrics()["process_resident_memory_bytes"]
        assert rss1 - rss0 < 4e6, (rss0, rss1)
        await ping_ok(a)
        # a fragmented message over the limit is refused as well; being the
        # third oversized message, it also closes the connection
        await a.ws.send(["z" * 600, "z" * 600])
        await a.error("too-large")
        try:
            await asyncio.wait_for(a.ws.recv(), 5 * MULT)
            raise AssertionError("connection not closed after repeated oversize")
        except websockets.ConnectionClosed as e:
            assert e.code == 1009, e.code
        await b.expect("peer-left", id=ja["id"])

        # invalid UTF-8 in a text frame fails the connection (RFC 6455 s.8.1): 1007
        raw = RawWs(srv.port)
        raw.s.sendall(bytes([0x81, 0x80 | 4]) + b"\0\0\0\0" + b'"\xff"\n')
        raw.s.settimeout(5 * MULT)
        reply = raw.s.recv(64)
        assert reply[:1] == b"\x88" and reply[2:4] == (1007).to_bytes(2, "big"), reply

        m = srv.metrics()
        for code in ("bad-request", "not-joined", "unknown-peer", "room-full", "server-busy",
                     "unauthorized", "too-large"):
            assert m['tsunagu_signal_errors_total{code="%s"}' % code] >= 1, (code, m)
        assert m['tsunagu_signal_errors_total{code="bad-request"}'] == len(bad) + 1, m
        assert m['tsunagu_signal_messages_total{type="invalid"}'] >= len(bad) + 4, m
        for x in (b, c, d):
            await ping_ok(x)
            await x.close()


def mint(exe, secret, room, user, ttl, name=None):
    argv = [exe, "token", "--secret", secret, "--room", room, "--user", user, "--ttl", str(ttl)]
    if name:
        argv += ["--name", name]
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout.strip()


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


@test
async def token(exe):
    secret = "jwt-secret"
    with Server(exe, "--token-secret", secret) as srv:
        a = await Client.connect(srv.url)
        await a.send({"type": "join", "room": "r"})
        m = await a.error("unauthorized")
        good = mint(exe, secret, "r", "alice", 60, name="Alice")
        # an independent check of the minted token's signature
        h, p, s = good.split(".")
        want = b64u(hmac.new(secret.encode(), (h + "." + p).encode(), hashlib.sha256).digest())
        assert s == want
        claims = json.loads(base64.urlsafe_b64decode(p + "=="))
        assert claims["room"] == "r" and claims["sub"] == "alice" and claims["name"] == "Alice"
        expired = mint(exe, secret, "r", "alice", -10)
        wrong_sig = mint(exe, "other-secret", "r", "alice", 60)
        other_room = mint(exe, secret, "r2", "alice", 60)
        none_tok = b64u(b'{"alg":"none","typ":"JWT"}') + "." + b64u(
            json.dumps({"room": "r", "sub": "x", "exp": int(time.time()) + 60}).encode()) + "."
        hs512 = b64u(b'{"alg":"HS512","typ":"JWT"}') + "." + p + "." + s
        tampered = h + "." + b64u(json.dumps({"room": "r", "sub": "alice", "exp": 9999999999}).encode()) + "." + s
        for t in (expired, wrong_sig, other_room, none_tok, hs512, tampered, "a.b", "x" * 300,
                  good + "x"):
            await a.send({"type": "join", "room": "r", "token": t})
            await a.error("unauthorized")
        j = await a.join("r", "ignored", token=good)
        b = await Client.connect(srv.url)
        await b.join("r", "bob", token=mint(exe, secret, "r", "bob", 60))
        pj = await a.expect("peer-joined")
        assert pj["peer"]["name"] == "bob"
        assert j["id"] and j["peers"] == []
        m = srv.metrics()
        assert m['tsunagu_signal_errors_total{code="unauthorized"}'] == 10, m
        await a.close()
        await b.close()
    # rotation: token-secret repeated; tokens signed with either are accepted, the
    # claims still checked (an expired token under the old secret says "expired")
    with Server(exe, "--token-secret", "new-secret", "--token-secret", secret) as srv:
        for sec, who in (("new-secret", "n"), (secret, "o")):
            c = await Client.connect(srv.url)
            await c.join("r", who, token=mint(exe, sec, "r", who, 60))
        c = await Client.connect(srv.url)
        await c.send({"type": "join", "room": "r", "token": mint(exe, "third", "r", "x", 60)})
        e = await c.error("unauthorized")
        assert "signature" in e["message"], e
        await c.send({"type": "join", "room": "r", "token": mint(exe, secret, "r", "x", -10)})
        e = await c.error("unauthorized")
        assert "expired" in e["message"], e
    args = []
    for i in range(5):
        args += ["--token-secret", "s%d" % i]
    p = subprocess.run([exe] + args, capture_output=True, text=True, timeout=10)
    assert p.returncode == 2 and "at most 4" in p.stderr and "s1" not in p.stderr, p.stderr


def turn_ident(joined):
    return joined["iceServers"][0]["username"].split(":", 1)[1]


@test
async def turn_identity(exe):
    """The ID in the TURN REST username is stable per user, so joins and
    re-joins share the relay's per-user quota: with --token-secret a keyed
    hash of the token's sub (the sub itself never shows), in open mode of
    the client IP. Then the real relay refuses the third allocation of one
    sub under --max-allocations-per-user 2, however many times it joins."""
    tsec, turn = "jwt-secret", "turn-secret"
    args = ("--turn-url", "turn:127.0.0.1:3478", "--turn-secret", turn, "--rate-limit", "1000")
    with Server(exe, "--token-secret", tsec, *args) as srv:
        a = await Client.connect(srv.url)
        b = await Client.connect(srv.url)
        ids = []
        for _ in range(3):  # join, leave, join again on one connection
            j = await a.join("r", "x", token=mint(exe, tsec, "r", "mallory", 60))
            ids.append((j["id"], turn_ident(j)))
            await a.send({"type": "leave"})
            await ping_ok(a)
        jb = await b.join("r2", "x", token=mint(exe, tsec, "r2", "mallory", 60))
        assert len({i[0] for i in ids}) == 3, ids  # fresh member ids...
        assert {i[1] for i in ids} == {turn_ident(jb)}, (ids, turn_ident(jb))  # ...one identity
        c = await Client.connect(srv.url)
        jc = await c.join("r", "x", token=mint(exe, tsec, "r", "alice", 60))
        assert turn_ident(jc) != ids[0][1], "different subs, different identities"
        for j in (jb, jc):
            u = j["iceServers"][0]["username"]
            assert "mallory" not in u and "alice" not in u, u
        for x in (a, b, c):
            await x.close()
    with Server(exe, *args) as srv:  # open mode: per client IP, not per sub
        a = await Client.connect(srv.url)
        b = await Client.connect(srv.url)
        ja, jb = await a.join("r", "a"), await b.join("r", "b")
        assert ja["id"] != jb["id"] and turn_ident(ja) == turn_ident(jb), (ja, jb)
        assert turn_ident(ja) not in (ids[0][1], turn_ident(jc)), "ip and sub identities differ"
        # the formula docs/protocol.md gives (issue 14 item 6: it said "your peer id")
        import base64, hashlib, hmac  # noqa: E401
        want = base64.urlsafe_b64encode(hmac.new(turn.encode(), b"ip\0" + bytes([4, 127, 0, 0, 1]),
                                                 hashlib.sha256).digest()).decode()[:16]
        assert turn_ident(ja) == want, (turn_ident(ja), want)
        want = base64.urlsafe_b64encode(hmac.new(turn.encode(), b"sub\0mallory",
                                                 hashlib.sha256).digest()).decode()[:16]
        assert ids[0][1] == want, (ids[0][1], want)
        for x in (a, b):
            await x.close()
    relay_exe = os.environ.get("RELAY_EXE", "")
    assert relay_exe, "RELAY_EXE must name the tsunagu-relay binary (meson sets it)"
    # end to end with tsunagu-relay: three joins of one sub, one allocation per credential
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from relay_stun import Client as TurnClient, Relay, ERROR, SUCCESS  # noqa: E402
    relay = Relay(relay_exe, "--auth-secret", turn, "--max-allocations-per-user", "2")
    try:
        with Server(exe, "--token-secret", tsec, *args) as srv:
            results = []
            for i in range(3):
                cl = await Client.connect(srv.url)
                j = await cl.join("r", "x", token=mint(exe, tsec, "r", "mallory", 60))
                u, pw = j["iceServers"][0]["username"], j["iceServers"][0]["credential"]
                tc = TurnClient(relay.addr, "udp", u, pw)
                m = tc.allocate()
                results.append("ok" if m.cls == SUCCESS else m.error)
                await cl.close()
            assert results == ["ok", "ok", 486], results
    finally:
        relay.stop()


@test
async def connect_oom(exe):
    """A WebSocket whose member cannot be made (out of memory at upgrade) is
    closed without upsetting the connection count: no wrap-around of
    tsunagu_signal_connections, and later upgrades are still accepted. The
    LD_PRELOAD shim failcalloc.so fails the first 3 calloc()s made by
    sig_hub_connect."""
    shim = os.environ.get("FAILCALLOC_LIB", "")
    assert shim and os.path.exists(shim), "FAILCALLOC_LIB must name failcalloc.so (meson sets it)"
    if not shutil.which("nm"):
        raise AssertionError("nm missing: install Debian package 'binutils'")
    out = subprocess.run(["nm", "-S", "--defined-only", exe], capture_output=True, text=True,
                         check=True).stdout
    sym = [ln.split() for ln in out.splitlines() if ln.endswith(" sig_hub_connect")]
    assert len(sym) == 1 and len(sym[0]) == 4, f"sig_hub_connect not found by nm in {exe}"
    env = dict(os.environ, LD_PRELOAD=shim, FAILCALLOC_FN_OFF=sym[0][0],
               FAILCALLOC_FN_SIZE=sym[0][1], FAILCALLOC_COUNT="3")
    # an ASan build wants its runtime first; the shim forwards to it anyway
    env["ASAN_OPTIONS"] = (env.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0").lstrip(":")
    with Server(exe, "--max-connections", "5", env=env) as srv:
        for _ in range(3):
            try:
                ws = await websockets.connect(srv.url, open_timeout=3 * MULT)
                try:
                    await asyncio.wait_for(ws.recv(), 3 * MULT)
                except (websockets.ConnectionClosed, asyncio.TimeoutError):
                    pass
                await ws.close()
            except (websockets.InvalidHandshake, OSError, asyncio.TimeoutError):
                pass
        await asyncio.sleep(0.3)
        m = srv.metrics()
        assert m["tsunagu_signal_connections"] == 0, m["tsunagu_signal_connections"]
        cl = [await Client.connect(srv.url) for _ in range(5)]
        for c in cl:
            await ping_ok(c)
        assert srv.metrics()["tsunagu_signal_connections"] == 5
        for c in cl:
            await c.close()


@test
async def http(exe):
    with Server(exe) as srv:
        st, body = srv.http("/healthz")
        assert st == 200 and body.strip() == "ok", (st, body)
        st, body = srv.http("/")
        assert st == 200 and "<html" in body.lower() and "app.js" in body, body[:200]
        st, body = srv.http("/app.js")
        assert st == 200 and "RTCPeerConnection" in body
        st, body = srv.http("/nope")
        assert st == 404
        st, body = srv.http("/metrics")
        assert st == 200
        for name in ("tsunagu_signal_connections", "tsunagu_signal_rooms", "tsunagu_signal_members",
                     "tsunagu_signal_messages_total", "tsunagu_signal_errors_total",
                     "tsunagu_signal_message_latency_seconds_bucket",
                     "tsunagu_signal_message_latency_seconds_count",
                     "process_start_time_seconds", "process_resident_memory_bytes"):
            assert re.search("^" + name, body, re.M), name
        # WebSocket only on /ws
        try:
            await websockets.connect("ws://127.0.0.1:%d/" % srv.port)
            raise AssertionError("WebSocket accepted on /")
        except websockets.InvalidHandshake:
            pass
        a = await Client.connect(srv.url)
        await a.join("r")
        await a.send({"type": "broadcast", "data": 1})
        m = srv.metrics()
        assert m["tsunagu_signal_message_latency_seconds_count"] >= 1, m
        assert m["process_resident_memory_bytes"] > 1e6, m
        assert abs(m["process_start_time_seconds"] - time.time()) < 60, m
        await a.close()
    # IPv6 listener
    port = free_port6()
    p = subprocess.Popen([exe, "--listen", "[::1]:%d" % port], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 10 * MULT
        while True:
            try:
                c = Client(await websockets.connect("ws://[::1]:%d/ws" % port, open_timeout=2))
                break
            except OSError:
                assert time.time() < deadline, "no IPv6 listener"
                await asyncio.sleep(0.1)
        await c.join("v6")
        await ping_ok(c)
        await c.close()
    finally:
        p.kill()
        p.wait()


def free_port6():
    s = socket.socket(socket.AF_INET6)
    s.bind(("::1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@test
async def flood(exe):
    with Server(exe, "--rate-limit", "20", "--abuse-seconds", "2") as srv:
        a = await Client.connect(srv.url)
        b = await Client.connect(srv.url)
        ja = await a.join("r")
        await b.join("r")
        await a.expect("peer-joined")
        # a burst over the limit: the first 20-ish pass, then rate-limited
        for i in range(40):
            await a.send({"type": "broadcast", "data": i})
        await a.error("rate-limited")
        got = 0
        while True:
            try:
                await b.expect("broadcast", timeout=0.5)
                got += 1
            except asyncio.TimeoutError:
                break
        assert 15 <= got <= 25, got
        # back under the limit after a pause: works again
        await asyncio.sleep(1.5)
        await ping_ok(a)
        # sustained abuse closes the connection with 1008
        t0 = time.time()
        try:
            while time.time() - t0 < 10 * MULT:
                await a.send({"type": "ping"})
                await asyncio.sleep(0.001)
            raise AssertionError("flooder not closed")
        except websockets.ConnectionClosed as e:
            # 1008, or 1006 when the server's close made the kernel reset the
            # connection (unread flood in its buffer) before our close frame
            assert e.code in (1008, 1006), e.code
        dt = time.time() - t0
        assert 1.5 < dt < 6 * MULT, dt
        await b.expect("peer-left", id=ja["id"], timeout=5)
        m = srv.metrics()
        assert m['tsunagu_signal_errors_total{code="rate-limited"}'] >= 20, m
        await b.close()
        print("flooder closed after %.1fs" % dt)


class RawWs:
    """A WebSocket client with no background reader: it reads only when told
    to, and never answers pings (slow readers, idle timeout)."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port))
        self.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        key = base64.b64encode(os.urandom(16)).decode()
        self.s.sendall(("GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                        "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                        "Sec-WebSocket-Version: 13\r\n\r\n" % key).encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = self.s.recv(1)
            assert chunk, "handshake failed"
            buf += chunk
        assert b" 101 " in buf.split(b"\r\n")[0], buf

    def send(self, obj):
        data = json.dumps(obj).encode()
        mask = os.urandom(4)
        hdr = bytes([0x81])
        if len(data) < 126:
            hdr += bytes([0x80 | len(data)])
        else:
            hdr += bytes([0x80 | 126]) + struct.pack("!H", len(data))
        self.s.sendall(hdr + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def closed_within(self, seconds):
        """Drain without answering anything; True when the server closed."""
        return closed_within(self.s, seconds)


@test
async def slowreader(exe):
    with Server(exe, "--rate-limit", "100000", "--send-queue-messages", "64",
                "--send-queue-bytes", "262144") as srv:
        slow = RawWs(srv.port)
        slow.send({"type": "join", "room": "r", "name": "slow"})
        a = await Client.connect(srv.url)
        await a.join("r", "fast")
        rss0 = srv.metrics()["process_resident_memory_bytes"]
        # ~20 MB of broadcasts at a reader that never reads: the server must
        # drop it once its bounded queue is full, not buffer it all.
        big = "x" * 16000
        left = None
        for i in range(1300):
            await a.send({"type": "broadcast", "data": big})
            if i % 50 == 0:
                try:
                    m = await a.recv(timeout=0.01)
                    if m["type"] == "peer-left":
                        left = m
                        break
                except asyncio.TimeoutError:
                    pass
        if not left:
            left = await a.expect("peer-left", timeout=5)
        sent = i + 1
        rss1 = srv.metrics()["process_resident_memory_bytes"]
        # dropped long before 20 MB were sent: the queue bound, not the sender, ended it
        assert sent < 1000, sent
        # ASan keeps freed memory in quarantine, so RSS says nothing there
        with open("/proc/%d/maps" % srv.proc.pid) as f:
            asan = "libasan" in f.read()
        if not asan:
            assert rss1 - rss0 < 16e6, (rss0, rss1)
        assert slow.closed_within(5 * MULT), "slow reader not disconnected"
        await ping_ok(a)
        m = srv.metrics()
        assert m["tsunagu_signal_connections"] == 1 and m["tsunagu_signal_members"] == 1, m
        assert "send queue full" in srv.logtext()
        print("slow reader dropped after %d broadcasts of 16 kB; RSS %.1f -> %.1f MB"
              % (sent, rss0 / 1e6, rss1 / 1e6))
        await a.close()


@test
async def idle(exe):
    with Server(exe, "--idle-timeout", "2", "--resume-seconds", "30") as srv:
        quiet = RawWs(srv.port)
        quiet.send({"type": "join", "room": "r", "name": "quiet"})
        a = await Client.connect(srv.url)   # answers pings: stays
        ja = await a.join("r")
        t0 = time.time()
        assert quiet.closed_within(8 * MULT), "idle connection not closed"
        dt = time.time() - t0
        assert dt >= 1, dt
        await asyncio.sleep(3)
        await ping_ok(a)   # the live client survived several ping rounds
        m = srv.metrics()
        assert m["tsunagu_signal_connections"] == 1 and m["tsunagu_signal_members"] == 2, m
        print("idle connection closed after %.1fs; kept for resume" % dt)
        assert ja
        await a.close()
    # idle-timeout is reloadable: 3600 s at start, 2 s after SIGHUP
    with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as f:
        f.write("idle-timeout = 3600\n")
    with Server(exe, "--config", f.name) as srv:
        with open(f.name, "w") as g:
            g.write("idle-timeout = 2\n")
        srv.signal(signal.SIGHUP)
        await asyncio.sleep(0.5)
        quiet = RawWs(srv.port)
        assert quiet.closed_within(8 * MULT), "reloaded idle-timeout not applied"
    os.unlink(f.name)


@test
async def idle_batch(exe):
    # --keepalive-batch-ms (issue 16 item 4): pings in rounds, up to 400 ms
    # early. Live clients still survive round after round; a silent one is
    # still closed, not before idle-timeout minus the batch after it joined.
    with Server(exe, "--idle-timeout", "2", "--keepalive-batch-ms", "400",
                "--resume-seconds", "30") as srv:
        quiet = RawWs(srv.port)
        quiet.send({"type": "join", "room": "r", "name": "quiet"})
        t0 = time.time()
        live = []
        for i in range(5):
            c = await Client.connect(srv.url)
            await c.join("r", "c%d" % i)
            live.append(c)
        # (in a thread: the live clients answer pings only while the event
        # loop runs, and early pings leave them less time than in `idle`)
        closed = await asyncio.get_running_loop().run_in_executor(
            None, quiet.closed_within, 8 * MULT)
        assert closed, "idle connection not closed"
        dt = time.time() - t0
        assert dt >= 1.5, dt
        await asyncio.sleep(4)   # two more ping rounds at least
        for c in live:           # alive: answers our ping (after peer-joined/left)
            await c.send({"type": "ping"})
            for _ in range(20):
                if (await c.recv()).get("type") == "pong":
                    break
            else:
                assert False, "no pong"
        m = srv.metrics()
        assert m["tsunagu_signal_connections"] == 5 and m["tsunagu_signal_members"] == 6, m
        print("batched keepalive: idle connection closed after %.1fs; 5 live ones kept" % dt)
        for c in live:
            await c.close()


@test
async def resume(exe):
    with Server(exe, "--resume-seconds", "3", "--rate-limit", "1000") as srv:
        a = await Client.connect(srv.url)
        b = await Client.connect(srv.url)
        ja = await a.join("r", "a")
        jb = await b.join("r", "b")
        await a.expect("peer-joined")
        await a.send({"type": "signal", "to": jb["id"], "data": "before"})
        await b.expect("signal", data="before")
        # B's network dies: no close frame
        b.ws.transport.abort()
        await asyncio.sleep(0.3)
        for i in range(100):
            await a.send({"type": "signal", "to": jb["id"], "data": {"seq": i}})
        await a.send({"type": "broadcast", "data": "bc"})
        await a.silent(0.5)   # no peer-left: B keeps its place
        await ping_ok(a)
        b2 = await Client.connect(srv.url)
        await b2.send({"type": "resume", "token": jb["resume"]})
        r = await b2.expect("resumed", id=jb["id"])
        assert r["peers"] == [{"id": ja["id"], "name": "a"}], r
        for i in range(100):
            await b2.expect("signal", data={"seq": i})
        await b2.expect("broadcast", data="bc")
        await b2.silent(0.5)  # none twice
        # B can talk again under its old id
        await b2.send({"type": "signal", "to": ja["id"], "data": "back"})
        await a.expect("signal", data="back", **{"from": jb["id"]})
        # the token is no use to a third party while B is connected? it takes over:
        # resume on a new connection moves the member, the old one is closed (4001)
        b3 = await Client.connect(srv.url)
        await b3.send({"type": "resume", "token": jb["resume"]})
        await b3.expect("resumed", id=jb["id"])
        try:
            await asyncio.wait_for(b2.ws.recv(), 5 * MULT)
            raise AssertionError("old connection still open")
        except websockets.ConnectionClosed as e:
            assert e.code == 4001, e.code
        await a.silent(0.3)
        # after the window a dropped member leaves: peer-left, token dead
        b3.ws.transport.abort()
        t0 = time.time()
        await a.expect("peer-left", id=jb["id"], timeout=8)
        dt = time.time() - t0
        assert 2.5 < dt < 5 * MULT, dt
        b4 = await Client.connect(srv.url)
        await b4.send({"type": "resume", "token": jb["resume"]})
        await b4.error("unauthorized")
        # a member that leaves cannot be resumed
        c = await Client.connect(srv.url)
        jc = await c.join("r", "c")
        await c.send({"type": "leave"})
        await a.expect("peer-joined")
        await a.expect("peer-left", id=jc["id"])
        await b4.send({"type": "resume", "token": jc["resume"]})
        await b4.error("unauthorized")
        # a later drop, with nobody detached for a while, still expires on time
        await asyncio.sleep(0.5)
        d = await Client.connect(srv.url)
        jd = await d.join("r", "d")
        await a.expect("peer-joined")
        d.ws.transport.abort()
        t0 = time.time()
        await a.expect("peer-left", id=jd["id"], timeout=8)
        assert 2.5 < time.time() - t0 < 5 * MULT
        await a.close()


@test
async def sighup(exe):
    with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as f:
        f.write("max-room-size = 2\n")
        path = f.name
    with Server(exe, "--config", path) as srv:
        cl = [await Client.connect(srv.url) for _ in range(4)]
        await cl[0].join("r")
        await cl[1].join("r")
        await cl[2].send({"type": "join", "room": "r"})
        await cl[2].error("room-full")
        with open(path, "w") as f:
            f.write("max-room-size = 3\ntoken-secret = hup\n")
        srv.signal(signal.SIGHUP)
        await asyncio.sleep(0.5)
        await cl[2].send({"type": "join", "room": "r"})
        await cl[2].error("unauthorized")   # now tokens are required
        await cl[2].join("r", token=mint(exe, "hup", "r", "u", 60))
        # a broken config is refused and the old settings stay
        with open(path, "w") as f:
            f.write("max-room-size = banana\n")
        srv.signal(signal.SIGHUP)
        await asyncio.sleep(0.5)
        assert srv.proc.poll() is None
        assert "reload failed" in srv.logtext()
        await cl[3].send({"type": "join", "room": "r", "token": mint(exe, "hup", "r", "v", 60)})
        await cl[3].error("room-full")
        await ping_ok(cl[2])   # nobody was dropped
        m = srv.metrics()
        assert m["tsunagu_signal_connections"] == 4
        assert m['tsunagu_signal_config_reloads_total{result="ok"}'] == 1, m
        assert m['tsunagu_signal_config_reloads_total{result="failed"}'] == 1, m
        for c in cl:
            await c.close()
    os.unlink(path)


@test
async def drain(exe):
    with Server(exe, "--drain-seconds", "2") as srv:
        a = await Client.connect(srv.url)
        await a.join("r")
        srv.signal(signal.SIGTERM)
        t0 = time.time()
        m = await a.error("server-busy")
        assert "shutting down" in m["message"]
        assert m.get("drain") == "reconnect", m   # alone: nowhere else to resume
        await ping_ok(a)   # still served while draining
        st, _ = srv.http("/healthz")
        assert st == 503, st
        try:
            await websockets.connect(srv.url, open_timeout=3)
            raise AssertionError("new connection accepted while draining")
        except (websockets.InvalidStatusCode, websockets.InvalidHandshake, OSError):
            pass
        try:
            await asyncio.wait_for(a.ws.recv(), 6 * MULT)
            raise AssertionError("not closed")
        except websockets.ConnectionClosed as e:
            assert e.code == 1001, e.code
        dt = time.time() - t0
        assert 1.5 < dt < 5 * MULT, dt
        rc = srv.proc.wait(timeout=5 * MULT)
        assert rc == 0, rc
        print("drained and exited %.1fs after SIGTERM" % (time.time() - t0))


@test
async def tls(exe):
    import ssl
    import urllib.request
    tmp = tempfile.mkdtemp(prefix="signal-tls-")
    crt, key = os.path.join(tmp, "c.pem"), os.path.join(tmp, "k.pem")
    try:
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", "/CN=127.0.0.1", "-keyout", key, "-out", crt],
                       check=True, capture_output=True, timeout=30)
    except FileNotFoundError:
        raise AssertionError("openssl command missing: apt-get install openssl")
    ctx = ssl.create_default_context(cafile=crt)
    ctx.check_hostname = False
    with Server(exe, "--cert", crt, "--key", key) as srv:
        url = "wss://127.0.0.1:%d/ws" % srv.port
        a = Client(await websockets.connect(url, ssl=ctx))
        b = Client(await websockets.connect(url, ssl=ctx))
        ja = await a.join("secure")
        await b.join("secure")
        await a.expect("peer-joined")
        await b.send({"type": "signal", "to": ja["id"], "data": "over tls"})
        await a.expect("signal", data="over tls")
        with urllib.request.urlopen("https://127.0.0.1:%d/healthz" % srv.port, context=ctx,
                                    timeout=5) as r:
            assert r.status == 200 and r.read() == b"ok\n"
        with urllib.request.urlopen("https://127.0.0.1:%d/" % srv.port, context=ctx, timeout=5) as r:
            assert b"app.js" in r.read()
        # plain ws:// to a TLS port fails
        try:
            await websockets.connect("ws://127.0.0.1:%d/ws" % srv.port, open_timeout=3)
            raise AssertionError("plain WebSocket accepted on the TLS port")
        except (websockets.InvalidHandshake, OSError, asyncio.TimeoutError):
            pass
        # SIGHUP picks up a renewed certificate written over the same files
        def peer_cert():
            import ssl as s_
            raw = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
            c = s_.SSLContext(s_.PROTOCOL_TLS_CLIENT)
            c.check_hostname = False
            c.verify_mode = s_.CERT_NONE
            with c.wrap_socket(raw) as t:
                return t.getpeercert(binary_form=True)
        before = peer_cert()
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-subj", "/CN=renewed", "-keyout", key, "-out", crt],
                       check=True, capture_output=True, timeout=30)
        srv.signal(signal.SIGHUP)
        await asyncio.sleep(0.5)
        after = peer_cert()
        assert before != after, "certificate not reloaded on SIGHUP"
        assert "reloaded TLS certificate" in srv.logtext()
        await ping_ok(a)   # the open session survived
        await a.close()
        await b.close()
    # a key that does not exist stops start-up
    p = subprocess.run([exe, "--listen", "127.0.0.1:%d" % srv.port, "--cert", crt, "--key",
                        os.path.join(tmp, "missing.pem")], capture_output=True, text=True, timeout=10)
    assert p.returncode != 0, p
    shutil.rmtree(tmp)


@test
async def maxconn(exe):
    with Server(exe, "--max-connections", "3") as srv:
        cl = [await Client.connect(srv.url) for _ in range(3)]
        try:
            await websockets.connect(srv.url, open_timeout=3)
            raise AssertionError("a 4th connection was accepted")
        except (websockets.InvalidHandshake, OSError, asyncio.TimeoutError):
            pass
        st, _ = srv.http("/healthz")   # plain HTTP still served
        assert st == 200
        await cl[0].close()
        await asyncio.sleep(0.3)
        c = await Client.connect(srv.url)   # room again after one left
        await ping_ok(c)
        for x in cl[1:] + [c]:
            await x.close()


@test
async def startup(exe):
    # bad flags stop start-up with a message naming the key
    for args, word in ((["--max-room-size", "0"], "max-room-size"),
                       (["--listen", "nonsense"], "listen"),
                       (["--redis", "http://127.0.0.1"], "redis"),
                       (["--cert", "/nonexistent"], "key"),
                       (["--bogus"], "bogus")):
        p = subprocess.run([exe] + args, capture_output=True, text=True, timeout=10)
        assert p.returncode != 0 and word in p.stderr, (args, p.returncode, p.stderr)
    # the shipped sample file starts the server as it is (with a free port)
    sample = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "conf",
                          "signaling.conf.sample")
    with Server(exe, "--config", sample) as srv:
        st, body = srv.http("/healthz")
        assert st == 200, st
    # a bad config file names the file, line and key
    with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as f:
        f.write("# ok\nrate-limit = lots\n")
    p = subprocess.run([exe, "--config", f.name], capture_output=True, text=True, timeout=10)
    assert p.returncode == 2 and f.name + ":2" in p.stderr and "rate-limit" in p.stderr, p.stderr
    os.unlink(f.name)
    p = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=10)
    for flag in ("--listen", "--cert", "--key", "--token-secret", "--turn-url", "--turn-secret",
                 "--turn-ttl", "--max-room-size", "--max-rooms", "--max-message-bytes",
                 "--rate-limit", "--resume-seconds", "--redis"):
        assert flag in p.stdout, flag


@test
async def scale(exe):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, 8192)
    assert want >= 2200, "need ulimit -n >= 2200 (hard limit is %d)" % hard
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    rooms, per_room, n_sig, n_bc = 100, 10, 20, 5
    # every client is 127.0.0.1: no per-address cap here
    with Server(exe, "--rate-limit", "1000", "--log-level", "info",
                "--max-connections-per-ip", "0", "--max-unjoined-per-ip", "0",
                "--max-joins-per-ip-per-sec", "0") as srv:
        t0 = time.time()
        sem = asyncio.Semaphore(100)

        async def conn():
            async with sem:
                return await Client.connect(srv.url, max_queue=None)
        clients = await asyncio.gather(*[conn() for _ in range(rooms * per_room)])
        ids = {}
        for i, c in enumerate(clients):
            j = await c.join("room-%d" % (i // per_room), "m%d" % i)
            ids[i] = j["id"]
        t_conn = time.time() - t0
        m = srv.metrics()
        held = m["tsunagu_signal_connections"]
        assert held == rooms * per_room, m
        assert m["tsunagu_signal_rooms"] == rooms and m["tsunagu_signal_members"] == rooms * per_room, m

        # everything each client must receive: peer-joined of later members,
        # n_sig signals from its ring predecessor, n_bc broadcasts from each other member
        expected = {}
        for i in range(len(clients)):
            r0 = (i // per_room) * per_room
            later = per_room - 1 - (i - r0)
            expected[i] = later + n_sig + n_bc * (per_room - 1)
        total = sum(expected.values())

        async def reader(i, c):
            got = {"peer-joined": 0, "signal": [], "broadcast": {}}
            for _ in range(expected[i]):
                msg = await c.recv(timeout=30)
                if msg["type"] == "peer-joined":
                    got["peer-joined"] += 1
                elif msg["type"] == "signal":
                    got["signal"].append(msg["data"])
                elif msg["type"] == "broadcast":
                    got["broadcast"].setdefault(msg["from"], []).append(msg["data"])
                else:
                    raise AssertionError("unexpected %r" % msg)
            return got

        async def writer(i, c):
            r0 = (i // per_room) * per_room
            nxt = r0 + (i - r0 + 1) % per_room
            for k in range(max(n_sig, n_bc)):
                if k < n_sig:
                    await c.send({"type": "signal", "to": ids[nxt], "data": {"seq": k, "src": i}})
                if k < n_bc:
                    await c.send({"type": "broadcast", "data": {"seq": k}})

        def cpu_s():
            with open("/proc/%d/stat" % srv.proc.pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

        cpu0 = cpu_s()
        t1 = time.time()
        readers = [asyncio.ensure_future(reader(i, c)) for i, c in enumerate(clients)]
        await asyncio.gather(*[writer(i, c) for i, c in enumerate(clients)])
        results = await asyncio.gather(*readers)
        dt = time.time() - t1
        cpu = cpu_s() - cpu0
        for i, got in enumerate(results):
            r0 = (i // per_room) * per_room
            prv = r0 + (i - r0 - 1) % per_room
            assert got["signal"] == [{"seq": k, "src": prv} for k in range(n_sig)], (i, got["signal"])
            assert len(got["broadcast"]) == per_room - 1
            for frm, seqs in got["broadcast"].items():
                assert seqs == [{"seq": k} for k in range(n_bc)], (i, frm, seqs)
        for c in clients:
            await c.silent(0.001)
        m = srv.metrics()
        sent = m['tsunagu_signal_messages_total{type="signal"}'] + m['tsunagu_signal_messages_total{type="broadcast"}']
        assert sent == len(clients) * (n_sig + n_bc), m
        assert sum(v for k, v in m.items() if k.startswith("tsunagu_signal_errors_total")) == 0, m
        print("connections held: %d in %d rooms (connected+joined in %.1fs)" % (held, rooms, t_conn))
        print("messages: %d sent, %d delivered in %.2fs: %.0f delivered/s, all accounted for, in order"
              % (sent, total, dt, total / dt))
        print("server RSS %.1f MB; server CPU %.2fs for the exchange = %.1f us per delivered message"
              " (the Python clients are the bottleneck)"
              % (m["process_resident_memory_bytes"] / 1e6, cpu, cpu / total * 1e6))
        await asyncio.gather(*[c.close() for c in clients])


if __name__ == "__main__":
    run(TESTS, sys.argv)
