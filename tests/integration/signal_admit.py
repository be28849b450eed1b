#!/usr/bin/python3
"""Admission control of tsunagu-signal at the WebSocket handshake, against
the real binary on 127.0.0.1 / ::1 free ports: the Origin allow-list
(--allowed-origin) and open WebSockets per client address
(--max-connections-per-ip), their HTTP answers (403, 429), metrics, log
lines, SIGHUP reload, and exact counts across every way a connection ends.

usage: signal_admit.py PATH/TO/tsunagu-signal TESTNAME"""
import asyncio
import base64
import json
import os
import re
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
from websockets.exceptions import InvalidStatusCode  # noqa: E402

TESTS = {}
APP = "https://app.example.com"


def test(fn):
    TESTS[fn.__name__] = fn
    return fn


class Raw:
    """One hand-written upgrade request: exact control over the Origin
    header(s) and the source address; the socket stays open when the
    server says 101 (a client that never reads nor answers pings)."""

    def __init__(self, port, origins=(), host="127.0.0.1", src=None, extra=b""):
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.s = socket.socket(fam)
        self.s.settimeout(5 * MULT)
        if src:
            self.s.bind((src, 0))
        self.s.connect((host, port))
        key = base64.b64encode(os.urandom(16))
        req = (b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
               b"Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
               % (port, key))
        for o in origins:
            req += b"Origin: " + (o if isinstance(o, bytes) else o.encode()) + b"\r\n"
        self.s.sendall(req + extra + b"\r\n")
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = self.s.recv(4096)
            assert chunk, "connection closed before an HTTP answer: %r" % buf
            buf += chunk
        self.head, _, self.rest = buf.partition(b"\r\n\r\n")
        m = re.match(rb"HTTP/1\.1 (\d{3}) ", self.head)
        assert m, self.head
        self.status = int(m.group(1))

    def body_and_eof(self):
        """For a refusal: the rest of the answer, and that the server then
        closed the connection (nothing of ours is kept)."""
        data = self.rest
        deadline = time.time() + 5 * MULT
        while time.time() < deadline:
            try:
                chunk = self.s.recv(4096)
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
        else:
            raise AssertionError("server kept a refused connection open")
        self.s.close()
        return data

    def send(self, obj):
        data = json.dumps(obj).encode()
        mask = os.urandom(4)
        hdr = bytes([0x81])
        if len(data) < 126:
            hdr += bytes([0x80 | len(data)])
        else:
            hdr += bytes([0x80 | 126]) + struct.pack("!H", len(data))
        self.s.sendall(hdr + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def reset(self):
        """Vanish with a TCP RST, no close frame."""
        self.s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.s.close()

    def closed_within(self, seconds):
        """Drain without answering anything; True when the server closed."""
        return closed_within(self.s, seconds)


def status_of(port, *origins, **kw):
    r = Raw(port, origins, **kw)
    if r.status != 101:
        r.body_and_eof()
    else:
        r.s.close()
    return r.status


async def refused(url, code, **kw):
    try:
        ws = await websockets.connect(url, open_timeout=5 * MULT, **kw)
    except InvalidStatusCode as e:
        assert e.status_code == code, e.status_code
        return
    await ws.close()
    raise AssertionError("upgrade accepted, expected HTTP %d" % code)


async def until(fn, what, timeout=8):
    deadline = time.time() + timeout * MULT
    while True:
        v = fn()
        if v:
            return v
        if time.time() > deadline:
            raise AssertionError("timed out waiting for " + what)
        await asyncio.sleep(0.05)


def gauge(srv, name):
    return srv.metrics().get(name)


async def settled(srv, conns=0, addrs=0):
    """Wait until the server has counted every close."""
    await until(lambda: gauge(srv, "tsunagu_signal_connections") == conns and
                gauge(srv, "tsunagu_signal_client_addresses") == addrs,
                "connections %d / client addresses %d (now %s / %s)" % (
                    conns, addrs, gauge(srv, "tsunagu_signal_connections"),
                    gauge(srv, "tsunagu_signal_client_addresses")))


def rejected(srv, reason):
    return srv.metrics()['tsunagu_signal_rejected_total{reason="%s"}' % reason]


@test
async def origin(exe):
    # No list: any Origin, or none, is accepted (development default), and
    # start-up says that production should set one.
    with Server(exe) as srv:
        assert status_of(srv.port) == 101
        assert status_of(srv.port, "https://evil.example") == 101
        assert status_of(srv.port, b"\xff junk") == 101
        assert rejected(srv, "origin") == 0
        assert "allowed-origin not set" in srv.logtext()

    srv = Server(exe, "--allowed-origin", APP, "--allowed-origin", "http://localhost:8080/")
    own = "http://127.0.0.1:%d" % srv.port
    with srv:
        n = 0
        for o, want in ((APP, 101), ("https://APP.Example.com", 101), (APP + ":443", 101),
                        ("http://LOCALHOST:8080", 101),
                        ("https://evil.example", 403), (APP + "/", 403), ("http://app.example.com", 403),
                        (APP + ":8443", 403), (APP + ".evil.example", 403), ("null", 403),
                        (own, 403)):   # the server's own origin is not implied (see docs)
            got = status_of(srv.port, o)
            assert got == want, (o, got, want)
            n += want == 403
        # no Origin at all: refused (non-browser clients must send a listed one)
        r = Raw(srv.port)
        assert r.status == 403, r.status
        body = r.body_and_eof()
        assert body == b"origin not allowed\n", body
        assert b"Content-Type: text/plain" in r.head and b"Connection: close" in r.head, r.head
        n += 1
        # two Origin headers, over-long: refused
        assert status_of(srv.port, APP, APP) == 403
        assert status_of(srv.port, "https://" + "a" * 2000 + ".example") == 403
        await refused(srv.url, 403, origin="https://evil.example")
        n += 3
        # that burst was over the 10 lines a second logged; in a new second,
        # control and high bytes are refused and logged sanitized, cut short,
        # with a note of the lines left out
        await asyncio.sleep(1.1)
        evil = b"https://x\x1b[31m\"\\\xfe.example"
        assert status_of(srv.port, evil) == 403
        assert status_of(srv.port, "https://" + "b" * 280) == 403
        n += 2
        # the right Origin: the whole protocol works
        a = Client(await websockets.connect(srv.url, origin=APP, open_timeout=5 * MULT))
        b = Client(await websockets.connect(srv.url, origin="http://localhost:8080",
                                            open_timeout=5 * MULT))
        ja = await a.join("r")
        await b.join("r")
        await a.expect("peer-joined")
        await b.send({"type": "signal", "to": ja["id"], "data": "hi"})
        await a.expect("signal", data="hi")
        # plain HTTP is not subject to the Origin check: the demo page loads
        st, body = srv.http("/")
        assert st == 200 and "app.js" in body, st
        m = srv.metrics()
        assert m['tsunagu_signal_rejected_total{reason="origin"}'] == n, (m, n)
        assert m['tsunagu_signal_rejected_total{reason="per-ip"}'] == 0, m
        assert m["tsunagu_signal_connections"] == 2, m
        log = srv.logtext()
        lines = [ln for ln in log.splitlines() if "WebSocket refused (403)" in ln]
        assert len(lines) == 12, (len(lines), n)
        assert all("127.0.0.1" in ln for ln in lines), lines[:3]
        assert any("https://evil.example" in ln for ln in lines), lines
        assert any("(none)" in ln for ln in lines), lines
        evil_line = [ln for ln in lines if "https://x" in ln]
        assert "\x1b" not in log and len(evil_line) == 1, lines
        assert "https://x?[31m???.example not allowed (%d refusals before not logged)" % (
            n - 2 - 10) in evil_line[0], evil_line
        assert any("bytes, over the limit" in ln for ln in lines), lines
        assert not any(len(ln) > 400 for ln in lines), "a refusal line is not cut short"
        assert "b" * 100 not in log
        await a.close()
        await b.close()
        await settled(srv)


@test
async def perip(exe):
    with Server(exe, "--max-connections-per-ip", "3") as srv:
        assert "max-connections-per-ip 3" in srv.logtext()
        cl = [await Client.connect(srv.url) for _ in range(3)]
        for c in cl:
            await c.send({"type": "ping"})
            await c.expect("pong")
        r = Raw(srv.port)
        assert r.status == 429, r.status
        assert r.body_and_eof() == b"too many connections from your address\n"
        await refused(srv.url, 429)
        # another client address is counted apart (all of 127/8 is loopback)
        other = Client(await websockets.connect(srv.url, local_addr=("127.0.0.2", 0),
                                                open_timeout=5 * MULT))
        await other.send({"type": "ping"})
        await other.expect("pong")
        # at the cap, plain HTTP is still served
        st, _ = srv.http("/healthz")
        assert st == 200
        m = srv.metrics()
        assert m['tsunagu_signal_rejected_total{reason="per-ip"}'] == 2, m
        assert m["tsunagu_signal_client_addresses"] == 2, m
        assert m["tsunagu_signal_connections"] == 4, m
        assert "WebSocket refused (429)" in srv.logtext()
        # one closes: exactly one more fits
        await cl[0].close()
        await settled(srv, 3, 2)
        cl[0] = await Client.connect(srv.url)
        assert status_of(srv.port) == 429
        for c in cl + [other]:
            await c.close()
        await settled(srv)
        # after all N closed, N new ones are accepted again (and not N+1)
        cl = [await Client.connect(srv.url) for _ in range(3)]
        assert status_of(srv.port) == 429
        assert rejected(srv, "per-ip") == 4
        for c in cl:
            await c.close()
        await settled(srv)
    # 0: no cap
    with Server(exe, "--max-connections-per-ip", "0", "--max-unjoined-per-ip", "0",
                "--max-connections", "100") as srv:
        cl = [await Client.connect(srv.url) for _ in range(70)]
        assert gauge(srv, "tsunagu_signal_connections") == 70
        for c in cl:
            await c.close()
        await settled(srv)


CAP = 2


async def cap_exact(srv, what):
    """After the connections of one ending path are gone: nothing is left
    counted, exactly CAP new connections fit and one more is refused."""
    await settled(srv)
    cl = [await Client.connect(srv.url) for _ in range(CAP)]
    st = status_of(srv.port)
    assert st == 429, "%s: connection %d got %d" % (what, CAP + 1, st)
    for c in cl:
        await c.close()
    await settled(srv)
    print("%s: counts exact" % what)


@test
async def perip_paths(exe):
    base = ["--max-connections-per-ip", str(CAP)]
    # client close, TCP reset, idle timeout (a client that never answers pings)
    with Server(exe, *base, "--idle-timeout", "2", "--resume-seconds", "30") as srv:
        cl = [await Client.connect(srv.url) for _ in range(CAP)]
        await cl[0].join("r")
        for c in cl:
            await c.close()
        await cap_exact(srv, "close")
        raws = [Raw(srv.port) for _ in range(CAP)]
        raws[0].send({"type": "join", "room": "r"})
        for r in raws:
            r.reset()
        await cap_exact(srv, "reset")
        raws = [Raw(srv.port) for _ in range(CAP)]
        raws[1].send({"type": "join", "room": "r"})
        t0 = time.time()
        for r in raws:
            assert r.closed_within(8 * MULT), "idle connection not closed"
        await cap_exact(srv, "idle timeout (%.1fs)" % (time.time() - t0))
    # rate-limit abuse (1008), repeated oversized messages (1009), a member
    # resumed on another connection (4001)
    with Server(exe, *base, "--rate-limit", "5", "--abuse-seconds", "1",
                "--max-message-bytes", "256") as srv:
        for _ in range(CAP):
            c = await Client.connect(srv.url)
            t0 = time.time()
            try:
                while time.time() - t0 < 10 * MULT:
                    await c.send({"type": "ping"})
                    await asyncio.sleep(0.01)
                raise AssertionError("flooder not closed")
            except websockets.ConnectionClosed as e:
                assert e.code in (1008, 1006), e.code
        await cap_exact(srv, "abuse close")
        for _ in range(CAP):
            c = await Client.connect(srv.url)
            try:
                for _ in range(3):
                    await c.send("x" * 1000)
                await until(lambda: c.ws.closed, "oversize close", 5)
            except websockets.ConnectionClosed:
                pass
            assert c.ws.close_code in (1009, 1006), c.ws.close_code
        await cap_exact(srv, "oversize close")
        a = await Client.connect(srv.url)
        ja = await a.join("r")
        b = await Client.connect(srv.url)
        await b.send({"type": "resume", "token": ja["resume"]})
        await b.expect("resumed")
        try:
            while True:   # whatever was queued first, then the close
                await asyncio.wait_for(a.ws.recv(), 5 * MULT)
        except websockets.ConnectionClosed as e:
            assert e.code == 4001, e.code
        await b.close()
        await cap_exact(srv, "resumed elsewhere")
    # a reader so slow its send queue fills: dropped by the server
    with Server(exe, *base, "--rate-limit", "100000", "--send-queue-messages", "64",
                "--send-queue-bytes", "262144") as srv:
        slow = Raw(srv.port)
        slow.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.send({"type": "join", "room": "r", "name": "slow"})
        a = await Client.connect(srv.url)
        await a.join("r", "fast")
        big = "x" * 16000
        for i in range(1300):
            await a.send({"type": "broadcast", "data": big})
            if i % 50 == 0 and gauge(srv, "tsunagu_signal_connections") == 1:
                break
        assert slow.closed_within(5 * MULT), "slow reader not disconnected"
        await a.close()
        await cap_exact(srv, "slow reader dropped")
    # drain: every connection is closed by the server, and nothing is left
    # counted when the process ends (it logs a bug line otherwise)
    with Server(exe, *base, "--drain-seconds", "1") as srv:
        cl = [await Client.connect(srv.url) for _ in range(CAP)]
        srv.signal(signal.SIGTERM)
        for c in cl:
            try:
                await asyncio.wait_for(c.ws.wait_closed(), 8 * MULT)
            except asyncio.TimeoutError:
                raise AssertionError("not closed by the drain")
        assert srv.proc.wait(timeout=8 * MULT) == 0
        log = srv.logtext()
        assert "stopped" in log and "still counted" not in log, log[-2000:]
        print("drain: nothing left counted at exit")


@test
async def admit_sighup(exe):
    with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as f:
        f.write("max-connections-per-ip = 1\nallowed-origin = https://a.example\n")
        path = f.name
    try:
        with Server(exe, "--config", path) as srv:
            a = Client(await websockets.connect(srv.url, origin="https://a.example"))
            assert status_of(srv.port, "https://a.example") == 429
            assert status_of(srv.port, "https://b.example") == 403
            with open(path, "w") as f:
                f.write("max-connections-per-ip = 2\nallowed-origin = https://b.example\n"
                        "allowed-origin = https://c.example:8443\n")
            srv.signal(signal.SIGHUP)
            await until(lambda: "SIGHUP: admission" in srv.logtext(), "reload")
            # the open connection stayed, still counted; the new cap and list apply
            await a.send({"type": "ping"})
            await a.expect("pong")
            assert status_of(srv.port, "https://a.example") == 403
            b = Client(await websockets.connect(srv.url, origin="https://c.example:8443"))
            assert status_of(srv.port, "https://b.example") == 429
            # a bad value is refused as a whole: the old policy stays
            with open(path, "w") as f:
                f.write("max-connections-per-ip = 5\nallowed-origin = b.example\n")
            srv.signal(signal.SIGHUP)
            await until(lambda: "reload failed" in srv.logtext(), "refused reload")
            assert "allowed-origin" in srv.logtext().split("reload failed", 1)[1]
            assert status_of(srv.port, "https://b.example") == 429
            assert status_of(srv.port, "https://a.example") == 403
            # the list can be removed again: any origin, no origin
            with open(path, "w") as f:
                f.write("max-connections-per-ip = 3\n")
            srv.signal(signal.SIGHUP)
            await until(lambda: srv.logtext().count("SIGHUP: admission") == 2, "reload")
            c = Client(await websockets.connect(srv.url))
            assert status_of(srv.port, "https://z.example") == 429
            m = srv.metrics()
            assert m['tsunagu_signal_rejected_total{reason="origin"}'] == 3, m
            assert m['tsunagu_signal_rejected_total{reason="per-ip"}'] == 4, m
            for x in (a, b, c):
                await x.close()
            await settled(srv)
    finally:
        os.unlink(path)


@test
async def admit_startup(exe):
    for args, word in ((["--allowed-origin", "app.example.com"], "allowed-origin"),
                       (["--allowed-origin", "https://app.example.com/path"], "allowed-origin"),
                       (["--allowed-origin", ""], "allowed-origin"),
                       (["--max-connections-per-ip", "-1"], "max-connections-per-ip"),
                       (["--max-connections-per-ip", "lots"], "max-connections-per-ip")):
        p = subprocess.run([exe] + args, capture_output=True, text=True, timeout=10)
        assert p.returncode == 2 and word in p.stderr, (args, p.returncode, p.stderr)
    p = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=10)
    for flag in ("--allowed-origin ORIGIN", "--max-connections-per-ip N", "(repeatable)"):
        assert flag in p.stdout, flag
    # issue 14 item 9: a high cap on all, the tight one on connections not in a room
    assert re.search(r"--max-connections-per-ip N .*\[default: 2048\]", p.stdout), p.stdout
    assert re.search(r"--max-unjoined-per-ip N .*\[default: 64\]", p.stdout), p.stdout
    assert re.search(r"--max-joins-per-ip-per-sec N .*\[default: 100\]", p.stdout), p.stdout


def refused_answer(port, path=b"/ws"):
    """An upgrade on path: (status, head, body) once the server closed; fails
    if the connection is closed without an HTTP answer (issue 14 item 4)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5 * MULT)
    try:
        key = base64.b64encode(os.urandom(16))
        s.sendall(b"GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
                  b"Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                  b"Sec-WebSocket-Version: 13\r\n\r\n" % (path, port, key))
        data = b""
        deadline = time.time() + 5 * MULT
        while time.time() < deadline:
            try:
                chunk = s.recv(4096)
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
        else:
            raise AssertionError("server kept a refused connection open: %r" % data)
    finally:
        s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    m = re.match(rb"HTTP/1\.1 (\d{3}) ", head)
    assert m, "no HTTP status before the close: %r" % data
    return int(m.group(1)), head.decode(errors="replace"), body


@test
async def refusals(exe):
    """Wrong path (404), max-connections (503 + Retry-After), draining (503 +
    Retry-After): an HTTP answer, never a bare close, each counted in
    tsunagu_signal_rejected_total{reason}."""
    with Server(exe, "--max-connections", "1", "--drain-seconds", "3") as srv:
        for path in (b"/", b"/wss", b"/ws/x", b"/metrics"):
            st, head, body = refused_answer(srv.port, path)
            assert st == 404, (path, head)
            assert b"/ws" in body, body
        assert rejected(srv, "path") == 4, rejected(srv, "path")
        a = Client(await websockets.connect(srv.url, open_timeout=5 * MULT))
        await a.send({"type": "ping"})
        await a.expect("pong")
        st, head, _ = refused_answer(srv.port)
        assert st == 503 and re.search(r"(?im)^Retry-After: \d+\r?$", head), head
        assert rejected(srv, "max-connections") == 1
        await refused(srv.url, 503)   # a real client sees the status too
        assert rejected(srv, "max-connections") == 2
        assert rejected(srv, "path") == 4 and rejected(srv, "per-ip") == 0
        await a.close()
    with Server(exe, "--drain-seconds", "3") as srv:
        a = Client(await websockets.connect(srv.url, open_timeout=5 * MULT))
        await a.join("r")
        srv.signal(signal.SIGTERM)
        await a.error("server-busy")  # the drain has begun; a stays till its end
        st, head, _ = refused_answer(srv.port)
        assert st == 503 and re.search(r"(?im)^Retry-After: \d+\r?$", head), head
        assert "Service Unavailable" in head, head
        st, _, _ = refused_answer(srv.port)
        assert st == 503
        assert rejected(srv, "draining") == 2, rejected(srv, "draining")
        assert rejected(srv, "max-connections") == 0 and rejected(srv, "path") == 0
        await a.close()


def free_port6():
    s = socket.socket(socket.AF_INET6)
    s.bind(("::1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@test
async def admit_v6_tls(exe):
    # IPv6 listener: ::1 counted like any address
    port = free_port6()
    p = subprocess.Popen([exe, "--listen", "[::1]:%d" % port, "--max-connections-per-ip", "1",
                          "--allowed-origin", APP], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    try:
        url = "ws://[::1]:%d/ws" % port
        deadline = time.time() + 10 * MULT
        while True:
            try:
                a = Client(await websockets.connect(url, origin=APP, open_timeout=2))
                break
            except OSError:
                assert time.time() < deadline, "no IPv6 listener"
                await asyncio.sleep(0.1)
        assert status_of(port, APP, host="::1") == 429
        assert status_of(port, "https://evil.example", host="::1") == 403
        await a.close()
        await until(lambda: status_of(port, APP, host="::1") == 101, "v6 slot freed")
    finally:
        p.kill()
        p.wait()
    # over TLS the refusal is an HTTP answer inside the TLS session too
    import ssl
    if not shutil.which("openssl"):
        raise AssertionError("openssl command missing: apt-get install openssl")
    tmp = tempfile.mkdtemp(prefix="signal-admit-")
    crt, key = os.path.join(tmp, "c.pem"), os.path.join(tmp, "k.pem")
    try:
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", "/CN=127.0.0.1", "-keyout", key, "-out", crt],
                       check=True, capture_output=True, timeout=30)
        ctx = ssl.create_default_context(cafile=crt)
        ctx.check_hostname = False
        with Server(exe, "--cert", crt, "--key", key, "--allowed-origin", APP,
                    "--max-connections-per-ip", "1") as srv:
            url = "wss://127.0.0.1:%d/ws" % srv.port
            await refused(url, 403, ssl=ctx, origin="https://evil.example")
            a = Client(await websockets.connect(url, ssl=ctx, origin=APP))
            await a.send({"type": "ping"})
            await a.expect("pong")
            await refused(url, 429, ssl=ctx, origin=APP)
            await a.close()
            # the slot is free again once the server has seen the close
            deadline = time.time() + 5 * MULT
            while True:
                try:
                    b = await websockets.connect(url, ssl=ctx, origin=APP)
                    break
                except InvalidStatusCode as e:
                    assert e.status_code == 429 and time.time() < deadline, e.status_code
                    await asyncio.sleep(0.05)
            await b.close()
    finally:
        shutil.rmtree(tmp)


@test
async def admit_bot(exe):
    """tsunagu-bot (lws client) sends "Origin: http://HOST" for a --signal
    URL ws://HOST:PORT/...: listing that origin lets it in, and only that."""
    bot = os.environ.get("BOT_EXE", "")
    assert bot and os.access(bot, os.X_OK), "BOT_EXE must name tsunagu-bot (meson sets it)"
    for allowed, ok in (("http://127.0.0.1", True), ("https://app.example.com", False)):
        with Server(exe, "--allowed-origin", allowed) as srv:
            p = subprocess.run([bot, "--signal", srv.url, "--room", "r", "--duration", "1"],
                               capture_output=True, text=True, timeout=30 * MULT)
            log = srv.logtext()
            if ok:
                assert p.returncode == 0 and "joined room 'r'" in log, (p.returncode, log[-2000:])
            else:
                assert p.returncode != 0, p.returncode
                assert "Origin http://127.0.0.1 not allowed" in log, log[-2000:]


if __name__ == "__main__":
    run(TESTS, sys.argv)
