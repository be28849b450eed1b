#!/usr/bin/python3
"""relay_stun3489: tsunagu-relay answers RFC 3489 Binding requests (RFC 8489
s.12, backwards compatibility), over UDP, TCP and TLS.

An RFC 3489 request has no magic cookie: bytes 4-19 are a 128-bit
transaction ID. libnice 0.1.21 (tsunagu-bot) sends its server-reflexive
discovery that way, so without an answer the bot gets no srflx candidate
from a relay handed out as its stun: server. The answer copies the 16-byte
ID and carries MAPPED-ADDRESS (not XOR, no FINGERPRINT).

Checks, on each transport: a cookie-less Binding gets 0x0101 with the ID
echoed and MAPPED-ADDRESS = the client's address as the relay sees it;
one with CHANGE-REQUEST (comprehension-required, RFC 3489 only) gets 420
with UNKNOWN-ATTRIBUTES 0x0003; an RFC 8489 Binding on the same socket or
connection still gets XOR-MAPPED-ADDRESS (the stream stays in frame). A
cookie-less Allocate is ignored on UDP and closes a TCP connection (not
TURN framing), as before; so does a cookie-less Binding whose length field
does not match the datagram.

usage: relay_stun3489.py RELAY_EXE"""
import os
import shutil
import socket
import ssl
import struct
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from relay_stun import (Checks, Client, Relay, TIMEOUT_MULT, build, free_port,  # noqa: E402
                        parse_xor_addr, relay_exe)

A_MAPPED, A_CHANGE_REQUEST, A_ERROR, A_UNKNOWN, A_XOR_MAPPED, A_FP = (
    0x0001, 0x0003, 0x0009, 0x000A, 0x0020, 0x8028)


def classic(mtype, tid, attrs=b""):
    return struct.pack("!HH", mtype, len(attrs)) + tid + attrs


def parse_classic(raw):
    """(type, id, {attr: value}) of an answer in RFC 3489 form."""
    if raw is None or len(raw) < 20:
        return None
    mtype, mlen = struct.unpack("!HH", raw[:4])
    if mlen != len(raw) - 20:
        return None
    attrs, off = {}, 20
    while off + 4 <= len(raw):
        t, ln = struct.unpack("!HH", raw[off:off + 4])
        attrs.setdefault(t, raw[off + 4:off + 4 + ln])
        off += 4 + ((ln + 3) & ~3)
    return mtype, raw[4:20], attrs


def mapped(v):
    if v is None or len(v) != 8 or v[1] != 1:
        return None
    return socket.inet_ntoa(v[4:8]), struct.unpack("!H", v[2:4])[0]


def run_checks(c, cl, name, seen_as):
    tid = bytes(range(0x10, 0x20))  # the first 4 bytes are not the cookie
    cl.send_raw(classic(0x0001, tid))
    got = parse_classic(cl.recv_raw())
    c.ok(got is not None and got[0] == 0x0101, f"{name}: RFC 3489 Binding answered (0x0101)",
         f"(got {got})")
    if got:
        c.ok(got[1] == tid, f"{name}: the 16-byte transaction ID is echoed", f"(got {got[1]})")
        c.ok(mapped(got[2].get(A_MAPPED)) == seen_as,
             f"{name}: MAPPED-ADDRESS is the client's address {seen_as}",
             f"(got {mapped(got[2].get(A_MAPPED))})")
        c.ok(A_XOR_MAPPED not in got[2] and A_FP not in got[2],
             f"{name}: no XOR-MAPPED-ADDRESS, no FINGERPRINT (they need the cookie)")

    tid2 = bytes(range(0x30, 0x40))
    cl.send_raw(classic(0x0001, tid2, struct.pack("!HHI", A_CHANGE_REQUEST, 4, 6)))
    got = parse_classic(cl.recv_raw())
    ok = got is not None and got[0] == 0x0111 and got[1] == tid2
    code = got[2].get(A_ERROR) if got else None
    c.ok(ok and code is not None and code[2] * 100 + code[3] == 420,
         f"{name}: CHANGE-REQUEST gets 420", f"(got {got})")
    c.ok(ok and got[2].get(A_UNKNOWN, b"")[:2] == struct.pack("!H", A_CHANGE_REQUEST),
         f"{name}: UNKNOWN-ATTRIBUTES names CHANGE-REQUEST")

    # an RFC 8489 Binding right after: the stream is still in frame
    out, t3 = build(1, 0, tid=None)
    cl.send_raw(out)
    m = cl.recv_msg(t3)
    xm = m.get(A_XOR_MAPPED) if m else None
    c.ok(m is not None and m.cls == 2 and xm is not None and
         parse_xor_addr(xm, t3)[:2] == seen_as,
         f"{name}: an RFC 8489 Binding after it still gets XOR-MAPPED-ADDRESS")


def make_cert(tmp):
    cert, key = os.path.join(tmp, "r.crt"), os.path.join(tmp, "r.key")
    if not shutil.which("openssl"):
        raise SystemExit("openssl command missing: install Debian package 'openssl'")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=relay", "-keyout", key, "-out", cert],
                   check=True, capture_output=True)
    return cert, key


def tls_sock(port):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    raw = socket.create_connection(("127.0.0.1", port), timeout=5 * TIMEOUT_MULT)
    return ctx.wrap_socket(raw)


def closed_after(cl, data):
    """Whether the relay closes the connection after these bytes."""
    cl.send_raw(data)
    cl.sock.settimeout(3 * TIMEOUT_MULT)
    try:
        return cl.sock.recv(100) == b""
    except (ConnectionError, OSError):
        return True


def main():
    exe = relay_exe()
    c = Checks()
    tmp = tempfile.mkdtemp(prefix="stun3489-")
    relay = None
    clients = []
    try:
        cert, key = make_cert(tmp)
        tport = free_port(socket.SOCK_STREAM)
        relay = Relay(exe, "--user", "a:a", "--tls-listen", f"127.0.0.1:{tport}",
                      "--cert", cert, "--key", key)
        dropped0 = relay.metric("tsunagu_relay_dropped_total")

        u = Client(relay.addr, "udp")
        clients.append(u)
        run_checks(c, u, "udp", u.addr)
        u.send_raw(classic(0x0003, bytes(16)))
        c.ok(u.recv_raw(0.5) is None, "udp: a cookie-less Allocate is ignored")
        u.send_raw(classic(0x0001, bytes(16))[:2] + struct.pack("!H", 4) + bytes(16))
        c.ok(u.recv_raw(0.5) is None, "udp: a cookie-less Binding with a wrong length is ignored")
        c.ok(relay.metric("tsunagu_relay_dropped_total") >= dropped0 + 2,
             "udp: both counted as dropped")

        t = Client(relay.addr, "tcp")
        clients.append(t)
        run_checks(c, t, "tcp", t.addr)
        c.ok(closed_after(t, classic(0x0003, bytes(16))),
             "tcp: a cookie-less Allocate closes the connection (not TURN framing)")

        s = tls_sock(tport)
        tl = Client(("127.0.0.1", tport), "tls", sock=s)
        clients.append(tl)
        run_checks(c, tl, "tls", s.getsockname()[:2])
    finally:
        for cl in clients:
            cl.close()
        if relay:
            relay.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    sys.exit(c.done())


if __name__ == "__main__":
    main()
