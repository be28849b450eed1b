"""Shared helpers for the tsunagu-signal integration tests: start the real
binary on a free 127.0.0.1 port, talk to it with python3-websockets, and
always kill what we started (by PID)."""
import asyncio
import atexit
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ports  # noqa: E402

try:
    import websockets
except ImportError:  # no silent skips: name the package
    sys.exit("FAIL: python3-websockets is missing (apt-get install python3-websockets; "
             "run with /usr/bin/python3)")

MULT = float(os.environ.get("TIMEOUT_MULT", "1"))


def _unlink_quietly(path):
    try:
        os.unlink(path)
    except OSError:
        pass


def free_port():
    return ports.pick(tcp=True)  # (ports.py: why not port 0)


def closed_within(sock, seconds):
    """Read and discard from a raw socket; True once the server closed it
    (EOF or reset) within `seconds`."""
    sock.settimeout(0.2)
    t0 = time.time()
    while time.time() - t0 < seconds:
        try:
            if not sock.recv(65536):
                return True
        except socket.timeout:
            pass
        except ConnectionResetError:
            return True
    return False


class Server:
    def __init__(self, exe, *args, config=None, env=None):
        self.exe = exe
        self.env = env  # None: inherit
        self.port = free_port()
        self.args = ["--listen", "127.0.0.1:%d" % self.port, "--log-level", "debug"] + list(args)
        self.log = tempfile.NamedTemporaryFile(prefix="signal-", suffix=".log", delete=False)
        # read after the server stopped (logtext), so removed at exit, not in __exit__
        atexit.register(_unlink_quietly, self.log.name)
        self.proc = None
        self.config = config

    def __enter__(self):
        self.start()
        return self

    def start(self):
        argv = [self.exe] + self.args
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT, env=self.env)
        deadline = time.time() + 10 * MULT
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("server exited at start-up:\n" + self.logtext())
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("server did not listen in time")

    def __exit__(self, *exc):
        self.stop()
        if exc[0] is not None:
            sys.stderr.write("---- server log ----\n" + self.logtext()[-6000:])
        return False

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def signal(self, sig):
        os.kill(self.proc.pid, sig)

    def logtext(self):
        with open(self.log.name, errors="replace") as f:
            return f.read()

    @property
    def url(self):
        return "ws://127.0.0.1:%d/ws" % self.port

    def http(self, path):
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d%s" % (self.port, path),
                                        timeout=5 * MULT) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def metrics(self):
        status, text = self.http("/metrics")
        assert status == 200, status
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                k, v = line.rsplit(" ", 1)
                out[k] = float(v)
        return out


class Client:
    """One WebSocket client; recv() returns the next JSON message or fails
    the test after a timeout."""

    def __init__(self, ws):
        self.ws = ws

    @classmethod
    async def connect(cls, url, **kw):
        kw.setdefault("max_size", 2 ** 24)
        return cls(await websockets.connect(url, open_timeout=10 * MULT, **kw))

    async def send(self, obj):
        await self.ws.send(obj if isinstance(obj, (str, bytes)) else json.dumps(obj))

    async def recv(self, timeout=5):
        raw = await asyncio.wait_for(self.ws.recv(), timeout * MULT)
        return json.loads(raw)

    async def expect(self, typ, timeout=5, **fields):
        m = await self.recv(timeout)
        assert m.get("type") == typ, "expected %s %s, got %r" % (typ, fields, m)
        for k, v in fields.items():
            assert m.get(k) == v, "expected %s=%r in %r" % (k, v, m)
        return m

    async def error(self, code, timeout=5):
        return await self.expect("error", timeout, code=code)

    async def silent(self, timeout=0.3):
        try:
            m = await asyncio.wait_for(self.ws.recv(), timeout)
        except asyncio.TimeoutError:
            return
        raise AssertionError("unexpected message %r" % m)

    async def join(self, room, name="n", **extra):
        await self.send(dict(type="join", room=room, name=name, **extra))
        return await self.expect("joined", room=room)

    async def close(self):
        await self.ws.close()


def run(tests, argv):
    """Run the named test coroutine(s): argv[1] is the binary, argv[2] the test."""
    exe, name = argv[1], argv[2]
    fn = tests[name]
    t0 = time.time()
    asyncio.run(fn(exe))
    print("ok %s (%.1fs)" % (name, time.time() - t0))
