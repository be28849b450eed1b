"""relay_stun.py - a small STUN/TURN client for the relay's integration tests.

Standard library only (run with /usr/bin/python3). Builds and parses STUN
messages (RFC 8489), TURN attributes (RFC 8656, RFC 6156), ChannelData, and
starts tsunagu-relay on free ports with its PID kept for the caller to kill.
"""
import base64
import binascii
import hashlib
import hmac
import os
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ports  # noqa: E402

MAGIC = 0x2112A442
BINDING, ALLOCATE, REFRESH, SEND, DATA, CREATE_PERMISSION, CHANNEL_BIND = 1, 3, 4, 6, 7, 8, 9
REQUEST, INDICATION, SUCCESS, ERROR = 0, 1, 2, 3

A_USERNAME = 0x0006
A_MI = 0x0008
A_ERROR_CODE = 0x0009
A_UNKNOWN = 0x000A
A_CHANNEL_NUMBER = 0x000C
A_LIFETIME = 0x000D
A_XOR_PEER = 0x0012
A_DATA = 0x0013
A_REALM = 0x0014
A_NONCE = 0x0015
A_XOR_RELAYED = 0x0016
A_REQ_FAMILY = 0x0017
A_EVEN_PORT = 0x0018
A_REQ_TRANSPORT = 0x0019
A_DONT_FRAGMENT = 0x001A
A_XOR_MAPPED = 0x0020
A_RESERVATION_TOKEN = 0x0022
A_SOFTWARE = 0x8022
A_FINGERPRINT = 0x8028

TIMEOUT_MULT = float(os.environ.get("TIMEOUT_MULT", "1") or 1)
BUILD_RELAY = os.environ.get("RELAY_EXE", "")


def msg_type(method, cls):
    return ((method & 0x000F) | ((method & 0x0070) << 1) | ((method & 0x0F80) << 2)
            | ((cls & 1) << 4) | ((cls & 2) << 7))


def split_type(t):
    method = (t & 0x000F) | ((t & 0x00E0) >> 1) | ((t & 0x3E00) >> 2)
    cls = ((t >> 4) & 1) | ((t >> 7) & 2)
    return method, cls


def pad4(b):
    return b + b"\0" * ((4 - len(b) % 4) % 4)


def attr(t, v):
    return struct.pack("!HH", t, len(v)) + pad4(v)


def xor_addr(host, port, tid):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    raw = socket.inet_pton(fam, host)
    key = struct.pack("!I", MAGIC) + tid
    x = bytes(a ^ b for a, b in zip(raw, key))
    return struct.pack("!BBH", 0, 2 if fam == socket.AF_INET6 else 1,
                       port ^ (MAGIC >> 16)) + x


def parse_xor_addr(v, tid):
    fam, xport = struct.unpack("!xBH", v[:4])
    key = struct.pack("!I", MAGIC) + tid
    raw = bytes(a ^ b for a, b in zip(v[4:], key))
    f = socket.AF_INET6 if fam == 2 else socket.AF_INET
    return socket.inet_ntop(f, raw), xport ^ (MAGIC >> 16)


def u32(v):
    return struct.pack("!I", v)


def long_term_key(user, realm, password):
    return hashlib.md5(f"{user}:{realm}:{password}".encode()).digest()


def rest_credentials(secret, expiry, ident="alice"):
    user = f"{expiry}:{ident}" if ident else str(expiry)
    pw = base64.b64encode(hmac.new(secret.encode(), user.encode(), hashlib.sha1).digest())
    return user, pw.decode()


class Msg:
    """A parsed STUN message."""

    def __init__(self, raw):
        if len(raw) < 20:
            raise ValueError("short")
        t, ln, magic = struct.unpack("!HHI", raw[:8])
        if magic != MAGIC or ln + 20 != len(raw):
            raise ValueError("not STUN")
        self.raw = raw
        self.method, self.cls = split_type(t)
        self.tid = raw[8:20]
        self.attrs = []
        off = 20
        while off + 4 <= len(raw):
            at, al = struct.unpack("!HH", raw[off:off + 4])
            self.attrs.append((at, raw[off + 4:off + 4 + al], off))
            off += 4 + al + (4 - al % 4) % 4

    def get(self, t):
        for at, v, _ in self.attrs:
            if at == t:
                return v
        return None

    def has(self, t):
        return self.get(t) is not None

    @property
    def error(self):
        v = self.get(A_ERROR_CODE)
        if v is None:
            return None
        return (v[2] & 7) * 100 + v[3]

    def xor(self, t):
        v = self.get(t)
        return parse_xor_addr(v, self.tid) if v is not None else None

    def lifetime(self):
        v = self.get(A_LIFETIME)
        return struct.unpack("!I", v)[0] if v is not None else None

    def check_mi(self, key):
        for at, v, off in self.attrs:
            if at == A_MI:
                head = bytearray(self.raw[:off])
                struct.pack_into("!H", head, 2, off + 24 - 20)
                return hmac.new(key, bytes(head), hashlib.sha1).digest() == v
        return False

    def check_fp(self):
        for at, v, off in self.attrs:
            if at == A_FINGERPRINT:
                crc = (binascii.crc32(self.raw[:off]) ^ 0x5354554E) & 0xFFFFFFFF
                return struct.pack("!I", crc) == v
        return False


def build(method, cls, attrs=(), tid=None, key=None, fingerprint=False):
    tid = tid or os.urandom(12)
    body = b"".join(attr(t, v) for t, v in attrs)
    if key is not None:
        head = struct.pack("!HHI", msg_type(method, cls), len(body) + 24, MAGIC) + tid
        mac = hmac.new(key, head + body, hashlib.sha1).digest()
        body += attr(A_MI, mac)
    if fingerprint:
        head = struct.pack("!HHI", msg_type(method, cls), len(body) + 8, MAGIC) + tid
        crc = (binascii.crc32(head + body) ^ 0x5354554E) & 0xFFFFFFFF
        body += attr(A_FINGERPRINT, u32(crc))
    return struct.pack("!HHI", msg_type(method, cls), len(body), MAGIC) + tid + body, tid


def chandata(chan, data, pad=False):
    b = struct.pack("!HH", chan, len(data)) + data
    return pad4(b) if pad else b


class Client:
    """A TURN client over UDP or TCP (framed, RFC 8656 s.3.1) or TLS."""

    def __init__(self, server, proto="udp", user=None, password=None, realm="tsunagu",
                 family=socket.AF_INET, sock=None):
        self.server = server
        self.proto = proto
        self.user, self.password, self.realm = user, password, realm
        self.nonce = None
        self.key = long_term_key(user, realm, password) if user else None
        self.rbuf = b""
        self.relayed = None
        if sock is not None:
            self.sock = sock
        elif proto == "udp":
            self.sock = socket.socket(family, socket.SOCK_DGRAM)
            self.sock.bind(("::1" if family == socket.AF_INET6 else "127.0.0.1", 0))
        else:
            self.sock = socket.create_connection(server, timeout=5 * TIMEOUT_MULT)
        self.sock.settimeout(2 * TIMEOUT_MULT)

    def close(self):
        self.sock.close()

    @property
    def addr(self):
        return self.sock.getsockname()[:2]

    def send_raw(self, b):
        if self.proto == "udp":
            self.sock.sendto(b, self.server)
        else:
            self.sock.sendall(b)

    def recv_raw(self, timeout=None):
        """One datagram, or one frame from the stream; None on timeout."""
        self.sock.settimeout(timeout if timeout is not None else 2 * TIMEOUT_MULT)
        try:
            if self.proto == "udp":
                return self.sock.recvfrom(70000)[0]
            while True:
                fl = frame_len(self.rbuf)
                if fl and len(self.rbuf) >= fl:
                    f, self.rbuf = self.rbuf[:fl], self.rbuf[fl:]
                    return f
                chunk = self.sock.recv(70000)
                if not chunk:
                    raise ConnectionError("closed by server")
                self.rbuf += chunk
        except (socket.timeout, TimeoutError):
            return None

    def recv_msg(self, tid=None, timeout=None):
        """Next STUN message (skipping others unless tid is None)."""
        deadline = time.time() + (timeout if timeout is not None else 2 * TIMEOUT_MULT)
        while time.time() < deadline:
            raw = self.recv_raw(max(0.01, deadline - time.time()))
            if raw is None:
                return None
            if raw[0] & 0xC0:
                continue
            m = Msg(raw)
            if tid is None or m.tid == tid:
                return m
        return None

    def request(self, method, attrs=(), auth=True, tid=None, fingerprint=False, key=None):
        """Send a request (with long-term credentials when auth) and return
        the response. Learns REALM/NONCE from a 401/438 and retries once."""
        for _ in range(3):
            a = list(attrs)
            k = None
            if auth and self.nonce is not None:
                a += [(A_USERNAME, self.user.encode()), (A_REALM, self.realm.encode()),
                      (A_NONCE, self.nonce)]
                k = key or self.key
            raw, t = build(method, REQUEST, a, tid=tid, key=k, fingerprint=fingerprint)
            self.send_raw(raw)
            m = self.recv_msg(t)
            if m is None:
                raise AssertionError(f"no response to method {method}")
            if auth and m.cls == ERROR and m.error in (401, 438) and m.has(A_NONCE) and (
                    self.nonce is None or m.error == 438):
                self.nonce = m.get(A_NONCE)
                if m.has(A_REALM):
                    self.realm = m.get(A_REALM).decode()
                    self.key = long_term_key(self.user, self.realm, self.password)
                continue
            return m
        return m

    def learn_nonce(self):
        """REALM and NONCE from the 401 to an unauthenticated Allocate."""
        raw, tid = build(ALLOCATE, REQUEST, [(A_REQ_TRANSPORT, bytes([17, 0, 0, 0]))])
        self.send_raw(raw)
        m = self.recv_msg(tid)
        assert m is not None and m.error == 401, "no 401 to learn the nonce from"
        self.nonce = m.get(A_NONCE)
        self.realm = m.get(A_REALM).decode()
        self.key = long_term_key(self.user, self.realm, self.password)

    def allocate(self, extra=(), **kw):
        m = self.request(ALLOCATE, [(A_REQ_TRANSPORT, bytes([17, 0, 0, 0]))] + list(extra), **kw)
        if m.cls == SUCCESS:
            self.relayed = m.xor(A_XOR_RELAYED)
        return m

    def refresh(self, lifetime=None):
        return self.request(REFRESH, [] if lifetime is None else [(A_LIFETIME, u32(lifetime))])

    def permit(self, *peers):
        tid = os.urandom(12)
        return self.request(CREATE_PERMISSION,
                            [(A_XOR_PEER, xor_addr(h, p, tid)) for h, p in peers], tid=tid)

    def bind(self, chan, peer):
        tid = os.urandom(12)
        return self.request(CHANNEL_BIND, [(A_CHANNEL_NUMBER, struct.pack("!HH", chan, 0)),
                                           (A_XOR_PEER, xor_addr(peer[0], peer[1], tid))], tid=tid)

    def send_ind(self, peer, data):
        tid = os.urandom(12)
        raw, _ = build(SEND, INDICATION, [(A_XOR_PEER, xor_addr(peer[0], peer[1], tid)),
                                          (A_DATA, data)], tid=tid)
        self.send_raw(raw)

    def send_chan(self, chan, data):
        self.send_raw(chandata(chan, data, pad=self.proto != "udp"))

    def recv_data(self, timeout=None):
        """Next relayed payload: ('data', peer, bytes) or ('chan', num, bytes)."""
        deadline = time.time() + (timeout if timeout is not None else 2 * TIMEOUT_MULT)
        while time.time() < deadline:
            raw = self.recv_raw(max(0.01, deadline - time.time()))
            if raw is None:
                return None
            if raw[0] & 0xC0 == 0x40:
                ch, ln = struct.unpack("!HH", raw[:4])
                return ("chan", ch, raw[4:4 + ln])
            m = Msg(raw)
            if m.cls == INDICATION and m.method == DATA:
                return ("data", m.xor(A_XOR_PEER), m.get(A_DATA))
        return None


def frame_len(b):
    if len(b) < 4:
        return 0
    first, ln = struct.unpack("!HH", b[:4])
    if first >> 14 == 1:
        return 4 + ((ln + 3) & ~3)
    return 20 + ln


def free_port(kind=socket.SOCK_DGRAM, family=socket.AF_INET, ip=None):
    """A port free for both UDP and TCP at the moment of asking, on `ip` (default
    the loopback address of the family; "0.0.0.0" also checks that no socket on
    any address of the host holds it)."""
    return ports.pick(tcp=True, udp=True, ip=ip, family=family)  # (ports.py: why not port 0)


def closed_by_server(sock, within):
    """True when the server closes (EOF, reset, or a TLS error on the way down) the
    stream within `within` seconds."""
    sock.settimeout(within)
    try:
        while True:
            if not sock.recv(4096):
                return True
    except (ConnectionResetError, BrokenPipeError, ssl.SSLError):
        return True
    except (socket.timeout, TimeoutError):
        return False


def free_range(n=200):
    """A relay port range unlikely to collide with other tests' ranges."""
    import random
    lo = random.randrange(20000, 32000 - n)
    return lo, lo + n - 1


class Relay:
    """tsunagu-relay on 127.0.0.1 with free ports; kill by PID (stop())."""

    def __init__(self, exe, *args, config=None, v6=False, start=True, listen_ip="127.0.0.1",
                 relay_ip=True):
        self.exe = exe
        self.proc = None
        self.log = tempfile.TemporaryFile("w+")
        # The ports are free when picked, but another test running beside this one
        # can take one before the relay binds it: a start that fails on "Address
        # already in use" picks new ports and tries again (3 tries).
        for attempt in range(3):
            self._pick(args, config, v6, listen_ip, relay_ip)
            if not start:
                return
            try:
                self.start()
                return
            except AssertionError as e:
                if "Address already in use" not in str(e) or attempt == 2:
                    raise
                self.log.seek(0)
                self.log.truncate()

    def _pick(self, args, config, v6, listen_ip, relay_ip):
        self.port = free_port(ip="0.0.0.0" if listen_ip == "0.0.0.0" else None)
        self.mport = free_port(socket.SOCK_STREAM)
        self.lo, self.hi = free_range()
        self.args = ["--listen", f"{listen_ip}:{self.port}"]
        if relay_ip:
            self.args += ["--relay-ip", "127.0.0.1"]
        self.args += [
                     "--relay-ports", f"{self.lo}-{self.hi}",
                     "--metrics-listen", f"127.0.0.1:{self.mport}"]
        if v6:
            self.port6 = free_port(family=socket.AF_INET6)
            self.args += ["--listen", f"[::1]:{self.port6}", "--relay-ip", "::1"]
        self.args += list(args)
        if config:
            self.args += ["--config", config]

    def start(self):
        self.proc = subprocess.Popen([self.exe] + self.args, stdout=self.log, stderr=self.log)
        deadline = time.time() + 10 * TIMEOUT_MULT
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"relay exited at start: {self.logtext()}")
            try:
                if self.http("/healthz")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError("relay did not come up")

    @property
    def addr(self):
        return ("127.0.0.1", self.port)

    def http(self, path):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.mport}{path}",
                                        timeout=3 * TIMEOUT_MULT) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def metric(self, name):
        """A sample by exact name{labels}, or the sum of a family's samples."""
        _, text = self.http("/metrics")
        total, found = 0.0, False
        for line in text.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            key, _, val = line.rpartition(" ")
            if key == name or ("{" not in name and key.split("{")[0] == name):
                total += float(val)
                found = True
        if not found:
            raise AssertionError(f"metric {name} missing")
        return total

    def signal(self, sig):
        self.proc.send_signal(sig)

    def logtext(self):
        """The log's last 4000 characters, read with pread: the relay writes
        to the same open file (its stdout/stderr, no O_APPEND), whose offset a
        seek + read here would move under it while it runs."""
        self.log.flush()
        fd = self.log.fileno()
        return os.pread(fd, os.fstat(fd).st_size, 0).decode(errors="replace")[-4000:]

    def stop(self):
        """Stop by PID: SIGTERM twice (drain, then exit at once) so sanitizer
        builds run their exit checks; SIGKILL if that hangs. Raises when the
        log shows a sanitizer report or the exit was not clean."""
        rc = None
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            time.sleep(0.1)
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(10 * TIMEOUT_MULT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                rc = "hung"
        elif self.proc:
            rc = self.proc.returncode
        text = self.logtext()
        self.log.close()
        if "runtime error" in text or "Sanitizer" in text:
            raise AssertionError(f"sanitizer report in relay log:\n{text}")
        if rc not in (0, None) and rc != -signal.SIGKILL:
            raise AssertionError(f"relay exit status {rc}:\n{text}")


class Checks:
    """Named assertions that keep going and report all failures at the end."""

    def __init__(self):
        self.n = 0
        self.failed = []

    def ok(self, cond, name, detail=""):
        self.n += 1
        if cond:
            print(f"ok {self.n} - {name}", flush=True)
        else:
            self.failed.append(name)
            print(f"not ok {self.n} - {name} {detail}", flush=True)
        return cond

    def skip(self, name, why):
        """A check that cannot mean anything in this build, said so in TAP
        (never counted as a pass of what it would have checked)."""
        self.n += 1
        print(f"ok {self.n} - {name} # SKIP {why}", flush=True)

    def error(self, m, code, name):
        got = None if m is None else (m.error if m.cls == ERROR else "success")
        return self.ok(got == code, name, f"(got {got})")

    def success(self, m, name):
        got = None if m is None else (m.error if m.cls == ERROR else "success")
        return self.ok(got == "success", name, f"(got {got})")

    def done(self):
        print(f"1..{self.n}")
        if self.failed:
            print(f"# {len(self.failed)} failed: {', '.join(self.failed)}")
            return 1
        return 0


def relay_exe():
    exe = BUILD_RELAY or (sys.argv[1] if len(sys.argv) > 1 else "")
    if not exe or not os.access(exe, os.X_OK):
        raise SystemExit(f"tsunagu-relay binary not found: '{exe}' (pass it as argv[1])")
    return exe
