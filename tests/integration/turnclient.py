"""Small, stdlib-only STUN/TURN client library (RFC 8489, RFC 8656, RFC 6156).

Written from the RFCs as an outside client: it shares no code with the relay,
so a misreading in the relay's codec cannot hide behind the same misreading here.

What it offers: build and parse STUN messages, MESSAGE-INTEGRITY (HMAC-SHA1 with
the long-term key MD5(user:realm:pass)), MESSAGE-INTEGRITY-SHA256 (RFC 8489
section 14.6, optionally truncated) with the SHA-256 key, PASSWORD-ALGORITHM(S)
and the nonce cookie (section 9.2), FINGERPRINT (CRC32 ^ 0x5354554e),
XOR-address attributes for IPv4 and IPv6, ChannelData, RFC 8656 section 3.1 TCP
framing, and a Client that runs transactions (UDP retransmissions, 401/438
handling) and queues indications and ChannelData that arrive in between.
"""

import base64
import hashlib
import hmac
import os
import select
import socket
import struct
import time
import zlib

MAGIC = 0x2112A442

# methods
BINDING = 0x001
ALLOCATE = 0x003
REFRESH = 0x004
SEND = 0x006
DATA = 0x007
CREATE_PERMISSION = 0x008
CHANNEL_BIND = 0x009

# classes
REQUEST = 0x000
INDICATION = 0x010
SUCCESS = 0x100
ERROR = 0x110

# attributes
MAPPED_ADDRESS = 0x0001
USERNAME = 0x0006
MESSAGE_INTEGRITY = 0x0008
ERROR_CODE = 0x0009
UNKNOWN_ATTRIBUTES = 0x000A
CHANNEL_NUMBER = 0x000C
LIFETIME = 0x000D
XOR_PEER_ADDRESS = 0x0012
DATA_ATTR = 0x0013
REALM = 0x0014
NONCE = 0x0015
XOR_RELAYED_ADDRESS = 0x0016
REQUESTED_ADDRESS_FAMILY = 0x0017
EVEN_PORT = 0x0018
REQUESTED_TRANSPORT = 0x0019
DONT_FRAGMENT = 0x001A
MESSAGE_INTEGRITY_SHA256 = 0x001C
PASSWORD_ALGORITHM = 0x001D
XOR_MAPPED_ADDRESS = 0x0020
RESERVATION_TOKEN = 0x0022
ADDITIONAL_ADDRESS_FAMILY = 0x8000
ADDRESS_ERROR_CODE = 0x8001
PASSWORD_ALGORITHMS = 0x8002
SOFTWARE = 0x8022
FINGERPRINT = 0x8028

# RFC 8489 section 18.5 password algorithms, section 9.2 nonce cookie
PWALG_MD5 = 0x0001
PWALG_SHA256 = 0x0002
NONCE_COOKIE = "obMatJos2"
SEC_PASSWORD_ALGORITHMS = 0x000001   # bit 0, counted from the right (erratum 6290)

FAMILY_V4 = 0x01
FAMILY_V6 = 0x02
PROTO_UDP = 17
PROTO_TCP = 6

METHOD_NAMES = {BINDING: "Binding", ALLOCATE: "Allocate", REFRESH: "Refresh",
                SEND: "Send", DATA: "Data", CREATE_PERMISSION: "CreatePermission",
                CHANNEL_BIND: "ChannelBind"}


class StunError(Exception):
    """A malformed message, or a transaction that failed in transport."""


def msg_type(method, cls):
    """Interleave the 12 method bits and the 2 class bits (RFC 8489 section 5)."""
    m = method
    return ((m & 0x0F80) << 2) | ((m & 0x0070) << 1) | (m & 0x000F) | \
        ((cls & 0x100) << 0) | ((cls & 0x010) << 0)


def split_type(t):
    method = (t & 0x000F) | ((t & 0x00E0) >> 1) | ((t & 0x3E00) >> 2)
    cls = t & 0x0110
    return method, cls


def pad4(n):
    return (n + 3) & ~3


def long_term_key(user, realm, password):
    return hashlib.md5(("%s:%s:%s" % (user, realm, password)).encode()).digest()


def long_term_key_sha256(user, realm, password):
    """RFC 8489 section 9.2.2 with PASSWORD-ALGORITHM SHA-256: 32 bytes."""
    return hashlib.sha256(("%s:%s:%s" % (user, realm, password)).encode()).digest()


def nonce_features(nonce):
    """The STUN Security Feature bits of a nonce with the RFC 8489 cookie, or None."""
    if nonce is None or not nonce.startswith(NONCE_COOKIE) or len(nonce) < 13:
        return None
    try:
        b = base64.b64decode(nonce[9:13], validate=True)
    except ValueError:
        return None
    return (b[0] << 16) | (b[1] << 8) | b[2] if len(b) == 3 else None


def password_algorithms(value):
    """The algorithm numbers of a PASSWORD-ALGORITHMS value (section 14.11)."""
    algs, off = [], 0
    while value is not None and off + 4 <= len(value):
        alg, plen = struct.unpack("!HH", value[off:off + 4])
        algs.append(alg)
        off += 4 + pad4(plen)
    return algs


def rest_credentials(secret, expiry, ident="conform"):
    """TURN REST API credentials: username "EXPIRY:ID", password base64(HMAC-SHA1(secret, username))."""
    user = "%d:%s" % (expiry, ident) if ident else "%d" % expiry
    pw = base64.b64encode(hmac.new(secret.encode(), user.encode(), hashlib.sha1).digest()).decode()
    return user, pw


# ---------------------------------------------------------------- addresses

def _family_of(ip):
    return socket.AF_INET6 if ":" in ip else socket.AF_INET


def xor_addr_encode(ip, port, txid):
    fam = _family_of(ip)
    xport = port ^ (MAGIC >> 16)
    if fam == socket.AF_INET:
        raw = socket.inet_pton(fam, ip)
        x = struct.unpack("!I", raw)[0] ^ MAGIC
        return struct.pack("!BBHI", 0, FAMILY_V4, xport, x)
    raw = socket.inet_pton(fam, ip)
    key = struct.pack("!I", MAGIC) + txid
    return struct.pack("!BBH", 0, FAMILY_V6, xport) + bytes(a ^ b for a, b in zip(raw, key))


def xor_addr_decode(val, txid):
    if len(val) < 4:
        raise StunError("short address attribute")
    _, fam, xport = struct.unpack("!BBH", val[:4])
    port = xport ^ (MAGIC >> 16)
    if fam == FAMILY_V4:
        if len(val) != 8:
            raise StunError("IPv4 address attribute of length %d" % len(val))
        x = struct.unpack("!I", val[4:8])[0] ^ MAGIC
        return socket.inet_ntop(socket.AF_INET, struct.pack("!I", x)), port
    if fam == FAMILY_V6:
        if len(val) != 20:
            raise StunError("IPv6 address attribute of length %d" % len(val))
        key = struct.pack("!I", MAGIC) + txid
        return socket.inet_ntop(socket.AF_INET6, bytes(a ^ b for a, b in zip(val[4:20], key))), port
    raise StunError("unknown address family %d" % fam)


# ---------------------------------------------------------------- messages

class Message:
    """A STUN message: method, class, transaction id and an ordered attribute list."""

    def __init__(self, method, cls=REQUEST, txid=None, attrs=None):
        self.method = method
        self.cls = cls
        self.txid = txid if txid is not None else os.urandom(12)
        self.attrs = list(attrs or [])
        self.raw = None          # set by parse()
        self.offsets = {}        # attribute type -> offset of its header in raw (first occurrence)

    # -- building
    def add(self, atype, value):
        self.attrs.append((atype, bytes(value)))
        return self

    def add_str(self, atype, s):
        return self.add(atype, s.encode() if isinstance(s, str) else s)

    def add_u32(self, atype, v):
        return self.add(atype, struct.pack("!I", v))

    def add_xor(self, atype, ip, port):
        return self.add(atype, xor_addr_encode(ip, port, self.txid))

    def encode(self, key=None, fingerprint=False, key256=None, mi256_len=32):
        body = b""
        for t, v in self.attrs:
            body += struct.pack("!HH", t, len(v)) + v + b"\0" * (pad4(len(v)) - len(v))
        t = msg_type(self.method, self.cls)
        if key is not None:
            # RFC 8489 14.5: HMAC over the message up to MESSAGE-INTEGRITY, with the
            # header length already counting MESSAGE-INTEGRITY (but not FINGERPRINT).
            hdr = struct.pack("!HHI", t, len(body) + 24, MAGIC) + self.txid
            mac = hmac.new(key, hdr + body, hashlib.sha1).digest()
            body += struct.pack("!HH", MESSAGE_INTEGRITY, 20) + mac
        if key256 is not None:
            # RFC 8489 14.6: the same with HMAC-SHA256, truncated to mi256_len bytes
            # (16..32, a multiple of 4); the length counts the truncated attribute.
            hdr = struct.pack("!HHI", t, len(body) + 4 + mi256_len, MAGIC) + self.txid
            mac = hmac.new(key256, hdr + body, hashlib.sha256).digest()[:mi256_len]
            body += struct.pack("!HH", MESSAGE_INTEGRITY_SHA256, mi256_len) + mac
        if fingerprint:
            hdr = struct.pack("!HHI", t, len(body) + 8, MAGIC) + self.txid
            crc = (zlib.crc32(hdr + body) & 0xFFFFFFFF) ^ 0x5354554E
            body += struct.pack("!HHI", FINGERPRINT, 4, crc)
        return struct.pack("!HHI", t, len(body), MAGIC) + self.txid + body

    # -- reading
    def get(self, atype):
        for t, v in self.attrs:
            if t == atype:
                return v
        return None

    def has(self, atype):
        return self.get(atype) is not None

    def get_u32(self, atype):
        v = self.get(atype)
        return struct.unpack("!I", v[:4])[0] if v is not None and len(v) >= 4 else None

    def get_str(self, atype):
        v = self.get(atype)
        return v.decode("utf-8", "replace") if v is not None else None

    def get_xor(self, atype):
        v = self.get(atype)
        return xor_addr_decode(v, self.txid) if v is not None else None

    def get_all_xor(self, atype):
        return [xor_addr_decode(v, self.txid) for t, v in self.attrs if t == atype]

    def error_code(self):
        v = self.get(ERROR_CODE)
        if v is None or len(v) < 4:
            return None
        return (v[2] & 0x7) * 100 + v[3]

    def error_reason(self):
        v = self.get(ERROR_CODE)
        if v is None:
            return ""
        # printable only: some servers pad the reason phrase with NUL bytes
        return "".join(ch for ch in v[4:].decode("utf-8", "replace") if ch.isprintable()).strip()

    def unknown_attributes(self):
        v = self.get(UNKNOWN_ATTRIBUTES)
        if v is None:
            return None
        return [struct.unpack("!H", v[i:i + 2])[0] for i in range(0, len(v) - 1, 2)]

    def verify_integrity(self, key):
        """None: no MESSAGE-INTEGRITY; True/False: it (in)validates with key."""
        if self.raw is None or MESSAGE_INTEGRITY not in self.offsets:
            return None
        off = self.offsets[MESSAGE_INTEGRITY]
        hdr = bytearray(self.raw[:20])
        struct.pack_into("!H", hdr, 2, off - 20 + 24)
        mac = hmac.new(key, bytes(hdr) + self.raw[20:off], hashlib.sha1).digest()
        return hmac.compare_digest(mac, self.raw[off + 4:off + 24])

    def verify_integrity_sha256(self, key):
        """None: no MESSAGE-INTEGRITY-SHA256; True/False: it (in)validates with key."""
        if self.raw is None or MESSAGE_INTEGRITY_SHA256 not in self.offsets:
            return None
        off = self.offsets[MESSAGE_INTEGRITY_SHA256]
        n = struct.unpack("!H", self.raw[off + 2:off + 4])[0]
        if n < 16 or n > 32 or n % 4:
            return False
        hdr = bytearray(self.raw[:20])
        struct.pack_into("!H", hdr, 2, off - 20 + 4 + n)
        mac = hmac.new(key, bytes(hdr) + self.raw[20:off], hashlib.sha256).digest()[:n]
        return hmac.compare_digest(mac, self.raw[off + 4:off + 4 + n])

    def address_error(self):
        """ADDRESS-ERROR-CODE as (family byte, code), or None."""
        v = self.get(ADDRESS_ERROR_CODE)
        if v is None or len(v) < 4:
            return None
        return v[0], (v[2] & 0x7) * 100 + v[3]

    def verify_fingerprint(self):
        """None: no FINGERPRINT; True/False: valid and last, or not."""
        if self.raw is None or FINGERPRINT not in self.offsets:
            return None
        off = self.offsets[FINGERPRINT]
        if off + 8 != len(self.raw):
            return False
        crc = (zlib.crc32(self.raw[:off]) & 0xFFFFFFFF) ^ 0x5354554E
        return struct.unpack("!I", self.raw[off + 4:off + 8])[0] == crc

    def name(self):
        c = {REQUEST: "request", INDICATION: "indication", SUCCESS: "success", ERROR: "error"}[self.cls]
        n = "%s %s" % (METHOD_NAMES.get(self.method, "0x%03x" % self.method), c)
        if self.cls == ERROR:
            n += " %s" % self.error_code()
        return n

    def __repr__(self):
        return "<%s>" % self.name()


def is_stun(data):
    return len(data) >= 20 and data[0] < 0x40 and struct.unpack("!I", data[4:8])[0] == MAGIC


def parse(data):
    """Parse one STUN message (exact length); raises StunError when malformed."""
    if len(data) < 20:
        raise StunError("shorter than a STUN header")
    t, length, cookie = struct.unpack("!HHI", data[:8])
    if t & 0xC000 or cookie != MAGIC:
        raise StunError("not a STUN message")
    if length % 4 or 20 + length != len(data):
        raise StunError("length field %d does not match %d bytes" % (length, len(data)))
    method, cls = split_type(t)
    m = Message(method, cls, bytes(data[8:20]))
    m.raw = bytes(data)
    off = 20
    while off < len(data):
        if off + 4 > len(data):
            raise StunError("truncated attribute header")
        at, alen = struct.unpack("!HH", data[off:off + 4])
        if off + 4 + alen > len(data):
            raise StunError("attribute 0x%04x overruns the message" % at)
        m.offsets.setdefault(at, off)
        m.attrs.append((at, bytes(data[off + 4:off + 4 + alen])))
        off += 4 + pad4(alen)
    return m


def channel_data(channel, payload, pad=False):
    d = struct.pack("!HH", channel, len(payload)) + payload
    if pad:
        d += b"\0" * (pad4(len(d)) - len(d))
    return d


def parse_channel_data(data):
    if len(data) < 4:
        raise StunError("short ChannelData")
    ch, n = struct.unpack("!HH", data[:4])
    if 4 + n > len(data):
        raise StunError("ChannelData length %d exceeds %d bytes" % (n, len(data) - 4))
    return ch, bytes(data[4:4 + n])


# ---------------------------------------------------------------- transports

class UdpConn:
    reliable = False

    def __init__(self, server, bind_ip=None):
        self.server = server
        fam = _family_of(server[0])
        self.sock = socket.socket(fam, socket.SOCK_DGRAM)
        self.sock.bind((bind_ip or ("::" if fam == socket.AF_INET6 else "0.0.0.0"), 0))
        self.sock.connect(server)

    def local(self):
        return self.sock.getsockname()[:2]

    def send(self, data):
        self.sock.send(data)

    def recv(self, timeout):
        """Next datagram, or None on timeout."""
        r, _, _ = select.select([self.sock], [], [], max(0.0, timeout))
        if not r:
            return None
        try:
            return self.sock.recv(65536)
        except ConnectionRefusedError:
            return None

    def close(self):
        self.sock.close()


class TcpConn:
    """RFC 8656 section 3.1 framing: STUN messages back to back, ChannelData padded to 4."""
    reliable = True

    def __init__(self, server, timeout=2.0):
        fam = _family_of(server[0])
        self.sock = socket.socket(fam, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(server)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.closed = False

    def local(self):
        return self.sock.getsockname()[:2]

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self, deadline):
        t = deadline - time.monotonic()
        if t <= 0:
            return False
        r, _, _ = select.select([self.sock], [], [], t)
        if not r:
            return False
        chunk = self.sock.recv(65536)
        if not chunk:
            self.closed = True
            return False
        self.buf += chunk
        return True

    def recv_exact(self, n, timeout):
        deadline = time.monotonic() + timeout
        while len(self.buf) < n:
            if not self._fill(deadline):
                return None
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv(self, timeout):
        """Next framed message (STUN, or ChannelData with its padding consumed), or None."""
        deadline = time.monotonic() + timeout
        while True:
            if len(self.buf) >= 4:
                first = self.buf[0]
                n = struct.unpack("!H", self.buf[2:4])[0]
                if first < 0x40:
                    need = 20 + n
                    take = need
                elif 0x40 <= first < 0x80:
                    need = pad4(4 + n)
                    take = 4 + n
                else:
                    raise StunError("stream out of sync: byte 0x%02x" % first)
                if len(self.buf) >= need:
                    out = self.buf[:take]
                    self.buf = self.buf[need:]
                    return out
            if not self._fill(deadline):
                return None

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


# ---------------------------------------------------------------- client

class Client:
    """One 5-tuple to the server with long-term credentials.

    request() runs a transaction: on UDP it retransmits (RTO 250 ms, doubling) until
    `timeout` passes; messages that are not the answer (Data indications,
    ChannelData) are queued for recv_data(). With auth=True it adds USERNAME,
    REALM, NONCE and MESSAGE-INTEGRITY, learning realm and nonce from a 401 or 438
    and retrying once, as a browser does.
    """

    def __init__(self, server, user=None, password=None, tcp=False, timeout=2.0, log=None,
                 pwalg=None, mi256_len=32):
        self.server = server
        self.conn = TcpConn(server, timeout) if tcp else UdpConn(server)
        self.user, self.password = user, password
        self.realm = None
        self.nonce = None
        # RFC 8489 9.2: pwalg=PWALG_SHA256 (or PWALG_MD5) makes the client, once a
        # 401/438 offered PASSWORD-ALGORITHMS under a nonce cookie, send
        # PASSWORD-ALGORITHM and the echoed list and sign with MESSAGE-INTEGRITY-SHA256
        # (mi256_len bytes); pwalg=None is an RFC 5389 client (MD5 key, MI).
        self.pwalg = pwalg
        self.mi256_len = mi256_len
        self.pwalgs = None       # PASSWORD-ALGORITHMS value of the last 401/438
        self.timeout = timeout
        self.queue = []
        self.log = log           # callable(kind, request Message, response Message, key)
        self.relayed = None
        self.relayed_all = []
        self.mapped = None

    def negotiated(self):
        """True once requests carry PASSWORD-ALGORITHM (the server offered it)."""
        return self.pwalg is not None and self.pwalgs is not None and \
            self.pwalg in password_algorithms(self.pwalgs)

    def key(self):
        if self.negotiated() and self.pwalg == PWALG_SHA256:
            return long_term_key_sha256(self.user, self.realm or "", self.password)
        return long_term_key(self.user, self.realm or "", self.password)

    def close(self):
        self.conn.close()

    def local(self):
        return self.conn.local()

    def raw_exchange(self, data, txid, timeout=None):
        """Send bytes, wait for the STUN response with this transaction id."""
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        rto = 0.25
        self.conn.send(data)
        next_tx = time.monotonic() + rto
        while True:
            now = time.monotonic()
            if now >= deadline:
                return None
            wait = min(deadline, next_tx) - now if not self.conn.reliable else deadline - now
            pkt = self.conn.recv(wait)
            if pkt is None:
                if self.conn.reliable:
                    if getattr(self.conn, "closed", False):
                        return None
                    continue
                if time.monotonic() >= next_tx and time.monotonic() < deadline:
                    self.conn.send(data)
                    rto *= 2
                    next_tx = time.monotonic() + rto
                continue
            if is_stun(pkt):
                try:
                    m = parse(pkt)
                except StunError:
                    continue
                if m.txid == txid and m.cls in (SUCCESS, ERROR):
                    return m
                self.queue.append(pkt)
            else:
                self.queue.append(pkt)

    def request(self, msg, auth=True, fingerprint=False, timeout=None, retry_auth=True):
        """Send msg (adding credentials when auth) and return the response Message or None."""
        base_attrs = list(msg.attrs)
        for attempt in range(3):
            msg.attrs = list(base_attrs)
            key = None
            sha = False
            if auth and self.nonce is not None:
                msg.add_str(USERNAME, self.user).add_str(REALM, self.realm).add_str(NONCE, self.nonce)
                key = self.key()
                if self.negotiated():
                    msg.add(PASSWORD_ALGORITHM, struct.pack("!HH", self.pwalg, 0))
                    msg.add(PASSWORD_ALGORITHMS, self.pwalgs)
                    sha = True
            if sha:
                data = msg.encode(key256=key, mi256_len=self.mi256_len, fingerprint=fingerprint)
            else:
                data = msg.encode(key=key, fingerprint=fingerprint)
            resp = self.raw_exchange(data, msg.txid, timeout)
            if resp is None:
                return None
            if self.log:
                self.log(msg, resp, key)
            code = resp.error_code() if resp.cls == ERROR else None
            if auth and retry_auth and code in (401, 438) and resp.has(NONCE) and \
                    (code == 438 or key is None):
                if resp.has(REALM):
                    self.realm = resp.get_str(REALM)
                self.nonce = resp.get_str(NONCE)
                feats = nonce_features(self.nonce)
                self.pwalgs = resp.get(PASSWORD_ALGORITHMS) \
                    if feats is not None and feats & SEC_PASSWORD_ALGORITHMS else None
                msg.txid = os.urandom(12)
                continue
            return resp
        return resp

    # -- TURN operations
    def allocate(self, lifetime=None, family=None, transport=PROTO_UDP, extra=(), fingerprint=False,
                 txid=None):
        m = Message(ALLOCATE, txid=txid)
        if transport is not None:
            m.add(REQUESTED_TRANSPORT, bytes([transport, 0, 0, 0]))
        if lifetime is not None:
            m.add_u32(LIFETIME, lifetime)
        if family is not None:
            m.add(REQUESTED_ADDRESS_FAMILY, bytes([family, 0, 0, 0]))
        for t, v in extra:
            m.add(t, v)
        r = self.request(m, fingerprint=fingerprint)
        if r is not None and r.cls == SUCCESS:
            rel = r.get_all_xor(XOR_RELAYED_ADDRESS)
            self.relayed = rel[0] if rel else None
            self.relayed_all = rel
            self.mapped = r.get_xor(XOR_MAPPED_ADDRESS)
        return r

    def refresh(self, lifetime=None):
        m = Message(REFRESH)
        if lifetime is not None:
            m.add_u32(LIFETIME, lifetime)
        return self.request(m)

    def create_permission(self, *peers):
        m = Message(CREATE_PERMISSION)
        for ip, port in peers:
            m.add_xor(XOR_PEER_ADDRESS, ip, port)
        return self.request(m)

    def channel_bind(self, channel, peer):
        m = Message(CHANNEL_BIND)
        m.add(CHANNEL_NUMBER, struct.pack("!HH", channel, 0))
        m.add_xor(XOR_PEER_ADDRESS, peer[0], peer[1])
        return self.request(m)

    def send_indication(self, peer, payload, fingerprint=False):
        m = Message(SEND, INDICATION)
        m.add_xor(XOR_PEER_ADDRESS, peer[0], peer[1]).add(DATA_ATTR, payload)
        self.conn.send(m.encode(fingerprint=fingerprint))

    def send_channel(self, channel, payload):
        self.conn.send(channel_data(channel, payload, pad=self.conn.reliable))

    def recv_data(self, timeout=1.0):
        """Next relayed datum: ('data', (ip, port), payload) for a Data indication,
        ('channel', number, payload) for ChannelData, or None."""
        deadline = time.monotonic() + timeout
        while True:
            if self.queue:
                pkt = self.queue.pop(0)
            else:
                pkt = self.conn.recv(deadline - time.monotonic())
                if pkt is None:
                    return None
            if is_stun(pkt):
                try:
                    m = parse(pkt)
                except StunError:
                    continue
                if m.method == DATA and m.cls == INDICATION:
                    peer = m.get_xor(XOR_PEER_ADDRESS)
                    return ("data", peer, m.get(DATA_ATTR))
                continue
            if len(pkt) >= 4 and 0x40 <= pkt[0] < 0x80:
                ch, payload = parse_channel_data(pkt)
                return ("channel", ch, payload)
            if time.monotonic() >= deadline:
                return None
