#!/usr/bin/python3
"""relay_tls_tcp_batch.py - the stream clients' fast path (issue 16 item 2).

- burst: frames of mixed sizes sent in one go by a TLS (then TCP) client to
  another client of the same kind arrive whole and in order. The relay reads
  them with read-ahead (several records a recv), hands each to the other
  connection's queue and writes that queue once per loop turn (one record
  for many frames): nothing may be lost, split wrongly or reordered.
- relayed: a burst from a UDP client to a TLS client (the relayed path,
  written per turn too) arrives whole and in order.
- resumption: a reconnecting client resumes its session (TLS 1.3 ticket,
  TLS 1.2 ticket) and allocates over the resumed connection.
- fin: a frame and the client's FIN arriving together: the frame is relayed
  and the relay closes the connection at once (a short read must not end
  the turn before the FIN is seen: no later event would report it).
- reload: a handshake begun before a SIGHUP (the TLS context replaced and
  the old one let go) finishes after it and the connection allocates (the
  connection holds its context; under ASan a use after free would show).
- ktls: with --ktls the relay logs whether the kernel took the records; on
  a kernel without the tls module (CONFIG_TLS not set) it says "off" and the
  user-space path relays; without --ktls it says it was not asked for.

Usage: relay_tls_tcp_batch.py PATH/TO/tsunagu-relay
"""
import os
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from relay_stun import *  # noqa: E402,F401,F403


def make_cert(tmp):
    cert, key = os.path.join(tmp, "c.crt"), os.path.join(tmp, "c.key")
    if not shutil.which("openssl"):
        raise SystemExit("FAIL: openssl command missing: install Debian package 'openssl'")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-keyout", key, "-out", cert], check=True, capture_output=True)
    return cert, key


def tls_ctx(version=None):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if version:
        ctx.minimum_version = ctx.maximum_version = version
    return ctx


def tls_sock(ctx, port, session=None):
    raw = socket.create_connection(("127.0.0.1", port), timeout=5 * TIMEOUT_MULT)
    return ctx.wrap_socket(raw, session=session)


def stream_client(proto, port, ctx=None):
    if proto == "tls":
        return Client(("127.0.0.1", port), "tls", "a", "a", sock=tls_sock(ctx or tls_ctx(), port))
    return Client(("127.0.0.1", port), "tcp", "a", "a")


def reader(cl, n, chan, out):
    """Collect n ChannelData payloads on chan (in a thread: the sender's
    sendall must not wait on this side's socket filling up)."""
    deadline = time.time() + 30 * TIMEOUT_MULT
    while len(out) < n and time.time() < deadline:
        d = cl.recv_data(timeout=3 * TIMEOUT_MULT)
        if d is None:
            break
        if d[0] == "chan" and d[1] == chan:
            out.append(d[2])


def payload(i):
    # sizes 4..1203, some not a multiple of 4 (ChannelData padding over streams)
    size = 4 + (i * 37) % 1200
    return struct.pack("!I", i) + bytes([i & 0xFF]) * (size - 4)


def check_order(got, n):
    for i, p in enumerate(got):
        if p != payload(i):
            return f"frame {i} differs (len {len(p)} vs {len(payload(i))})"
    return "ok" if len(got) == n else f"{len(got)} of {n}"


def test_burst(exe, c, cert, key, proto):
    port = free_port(socket.SOCK_STREAM)
    args = ["--user", "a:a", "--threads", "1"]
    if proto == "tls":
        args += ["--tls-listen", f"127.0.0.1:{port}", "--cert", cert, "--key", key]
    relay = Relay(exe, *args)
    try:
        if proto == "tcp":
            port = relay.port
        a, b = stream_client(proto, port), stream_client(proto, port)
        c.success(a.allocate(), f"{proto} burst: sender allocates")
        c.success(b.allocate(), f"{proto} burst: receiver allocates")
        c.success(a.bind(0x4000, b.relayed), f"{proto} burst: sender binds a channel")
        c.success(b.bind(0x4001, a.relayed), f"{proto} burst: receiver binds one back")
        n = 3000
        blob = b"".join(chandata(0x4000, payload(i), pad=True) for i in range(n))
        dropped0 = relay.metric("tsunagu_relay_dropped_total")
        got = []
        t = threading.Thread(target=reader, args=(b, n, 0x4001, got))
        t0 = time.time()
        t.start()
        a.sock.sendall(blob)  # ~1.8 MB in one go
        t.join(40 * TIMEOUT_MULT)
        took = time.time() - t0
        res = check_order(got, n)
        c.ok(res == "ok", f"{proto} burst: {n} frames of 4..1203 B arrive whole and in order "
             f"({res}, {took:.2f} s)")
        c.ok(relay.metric("tsunagu_relay_dropped_total") == dropped0,
             f"{proto} burst: the relay dropped nothing")
        # both connections still work after the burst (no broken framing)
        c.success(a.refresh(), f"{proto} burst: the sender's connection still answers")
        c.success(b.refresh(), f"{proto} burst: the receiver's connection still answers")
        a.close()
        b.close()
    finally:
        relay.stop()


def test_relayed(exe, c, cert, key):
    """UDP client -> TLS client: what reaches the TLS connection from the
    relayed path is queued and written per turn; paced in small bursts so
    the UDP side of the test itself does not overflow a socket buffer."""
    port = free_port(socket.SOCK_STREAM)
    relay = Relay(exe, "--user", "a:a", "--threads", "1", "--tls-listen", f"127.0.0.1:{port}",
                  "--cert", cert, "--key", key)
    try:
        a = stream_client("tls", port)
        u = Client(relay.addr, "udp", "a", "a")
        c.success(a.allocate(), "relayed: TLS allocation")
        c.success(u.allocate(), "relayed: UDP allocation")
        c.success(u.bind(0x4002, a.relayed), "relayed: UDP client binds to the TLS one")
        c.success(a.bind(0x4003, u.relayed), "relayed: TLS client binds back")
        n = 1000
        got = []
        t = threading.Thread(target=reader, args=(a, n, 0x4003, got))
        t.start()
        for i in range(0, n, 25):  # 25 frames at once, 40 bursts
            for j in range(i, i + 25):
                u.send_chan(0x4002, payload(j % 300))
            time.sleep(0.002)
        t.join(30 * TIMEOUT_MULT)
        bad = [k for k, p in enumerate(got) if p != payload(k % 300)]
        c.ok(len(got) == n and not bad,
             f"relayed: {n} frames UDP -> TLS client arrive whole and in order "
             f"({len(got)}, first bad {bad[:1]})")
        a.close()
        u.close()
    finally:
        relay.stop()


def test_resumption(exe, c, cert, key):
    port = free_port(socket.SOCK_STREAM)
    relay = Relay(exe, "--user", "a:a", "--tls-listen", f"127.0.0.1:{port}", "--cert", cert,
                  "--key", key)
    try:
        for ver, name in ((ssl.TLSVersion.TLSv1_3, "TLS 1.3"), (ssl.TLSVersion.TLSv1_2,
                                                                 "TLS 1.2")):
            ctx = tls_ctx(ver)
            first = Client(("127.0.0.1", port), "tls", "a", "a", sock=tls_sock(ctx, port))
            # a request answered: TLS 1.3 tickets come after the handshake
            c.success(first.allocate(), f"resumption {name}: first connection allocates")
            sess = first.sock.session
            first.refresh(0)
            first.close()
            c.ok(sess is not None and sess.has_ticket,
                 f"resumption {name}: the server issued a ticket")
            again = tls_sock(ctx, port, session=sess)
            c.ok(again.session_reused, f"resumption {name}: the reconnect resumes the session")
            cl = Client(("127.0.0.1", port), "tls", "a", "a", sock=again)
            c.success(cl.allocate(), f"resumption {name}: allocate over the resumed session")
            cl.refresh(0)
            cl.close()
    finally:
        relay.stop()


def test_fin(exe, c, cert, key):
    port = free_port(socket.SOCK_STREAM)
    relay = Relay(exe, "--user", "a:a", "--threads", "1", "--tls-listen", f"127.0.0.1:{port}",
                  "--cert", cert, "--key", key)
    try:
        for proto in ("tcp", "tls"):
            a = stream_client(proto, relay.port if proto == "tcp" else port)
            u = Client(relay.addr, "udp", "a", "a")
            c.success(a.allocate(), f"fin {proto}: allocation")
            u.allocate()
            c.success(a.bind(0x4005, u.relayed), f"fin {proto}: channel bind")
            u.permit(a.relayed)
            raw = a.sock
            raw.sendall(chandata(0x4005, b"last words", pad=True))
            # FIN right behind the frame (TLS: no close_notify, a bare FIN)
            socket.socket.shutdown(raw, socket.SHUT_WR)
            got = u.recv_data()
            c.ok(got is not None and got[-1] == b"last words", f"fin {proto}: the frame is relayed")
            c.ok(closed_by_server(raw, 3 * TIMEOUT_MULT),
                 f"fin {proto}: the relay closes the connection at once")
            a.close()
            u.close()
    finally:
        relay.stop()


def test_reload_mid_handshake(exe, c, cert, key):
    port = free_port(socket.SOCK_STREAM)
    relay = Relay(exe, "--user", "a:a", "--tls-listen", f"127.0.0.1:{port}", "--cert", cert,
                  "--key", key)
    try:
        inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
        obj = tls_ctx().wrap_bio(inc, out)
        try:
            obj.do_handshake()
        except ssl.SSLWantReadError:
            pass
        hello = out.read()
        raw = socket.create_connection(("127.0.0.1", port), timeout=5 * TIMEOUT_MULT)
        raw.sendall(hello[:len(hello) // 2])  # the relay makes its TLS state
        time.sleep(0.3 * TIMEOUT_MULT)
        relay.signal(signal.SIGHUP)
        time.sleep(0.6 * TIMEOUT_MULT)  # reload done, the old context let go
        raw.sendall(hello[len(hello) // 2:])
        done, deadline = False, time.time() + 5 * TIMEOUT_MULT
        while not done and time.time() < deadline:
            try:
                obj.do_handshake()
                done = True
            except ssl.SSLWantReadError:
                data = raw.recv(65536)
                if not data:
                    break
                inc.write(data)
            pending = out.read()
            if pending:
                raw.sendall(pending)
        c.ok(done, "reload: a handshake begun before SIGHUP finishes after it")

        class Wrapped:  # Client's socket calls, through the memory BIO
            def settimeout(self, t):
                raw.settimeout(t)

            def sendall(self, b):
                obj.write(b)
                raw.sendall(out.read())

            def recv(self, n):
                while True:
                    try:
                        return obj.read(n)
                    except ssl.SSLWantReadError:
                        data = raw.recv(65536)
                        if not data:
                            return b""
                        inc.write(data)

            def close(self):
                raw.close()
        if done:
            cl = Client(("127.0.0.1", port), "tls", "a", "a", sock=Wrapped())
            c.success(cl.allocate(), "reload: that connection allocates")
            cl.refresh(0)
            cl.close()
        else:
            raw.close()
    finally:
        relay.stop()


def tls_ulp_available():
    try:
        with open("/proc/sys/net/ipv4/tcp_available_ulp") as f:
            return "tls" in f.read().split()
    except OSError:
        return False


def test_ktls(exe, c, cert, key):
    for ktls in (True, False):
        port = free_port(socket.SOCK_STREAM)
        args = ["--user", "a:a", "--log-level", "info", "--tls-listen", f"127.0.0.1:{port}",
                "--cert", cert, "--key", key] + (["--ktls"] if ktls else [])
        relay = Relay(exe, *args)
        try:
            a = stream_client("tls", port)
            u = Client(relay.addr, "udp", "a", "a")
            c.success(a.allocate(), f"ktls={ktls}: TLS allocation")
            u.allocate()
            a.permit(u.relayed)
            u.permit(a.relayed)
            c.success(a.bind(0x4004, u.relayed), f"ktls={ktls}: channel bind")
            u.send_ind(a.relayed, b"through the records")
            got = a.recv_data()
            c.ok(got == ("chan", 0x4004, b"through the records"),
                 f"ktls={ktls}: data reaches the TLS client ({got})")
            a.send_chan(0x4004, b"and back")
            got = u.recv_data()
            c.ok(got is not None and got[-1] == b"and back",
                 f"ktls={ktls}: data from the TLS client relayed ({got})")
            a.close()
            u.close()
            time.sleep(0.1)
            log = relay.logtext()
            if not ktls:
                want = "kernel TLS off (send off, receive off; not asked for"
            elif tls_ulp_available():
                want = "kernel TLS active"
            else:
                want = "kernel TLS off (send off, receive off; asked for"
            c.ok(want in log, f"ktls={ktls}: the log says '{want}' (tls ulp "
                 f"{'present' if tls_ulp_available() else 'absent'})",
                 log[-600:])
        finally:
            relay.stop()


def main():
    exe = relay_exe()
    c = Checks()
    tmp = tempfile.mkdtemp(prefix="relay-tls-batch-")
    try:
        cert, key = make_cert(tmp)
        test_burst(exe, c, cert, key, "tls")
        test_burst(exe, c, cert, key, "tcp")
        test_relayed(exe, c, cert, key)
        test_resumption(exe, c, cert, key)
        test_fin(exe, c, cert, key)
        test_reload_mid_handshake(exe, c, cert, key)
        test_ktls(exe, c, cert, key)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return c.done()


if __name__ == "__main__":
    sys.exit(main())
