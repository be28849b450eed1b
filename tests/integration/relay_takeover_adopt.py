#!/usr/bin/python3
"""relay_takeover_adopt.py - the child side of a live takeover against a
fake parent (this script) that speaks the socketpair protocol of
relay/io/rly_takeover.h with real sockets and a hand-built state blob.

  nogo   the child adopts the sockets, starts its worker threads and says
         ACK_; the parent never says GO__: the child must exit 2 without
         having read anything (a Binding request queued on the UDP listener
         is still there for the parent) - the old process serves on
  go     the same, then GO__: the child answers the Binding request that
         waited in the listener's queue, and serves /healthz on the
         adopted metrics listener
  lie    SIZE announces more descriptors than are sent: the child refuses
         naming the descriptors (NAK_ and its log) and exits 2

Usage: relay_takeover_adopt.py PATH/TO/tsunagu-relay
"""
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from relay_stun import *  # noqa: E402,F401,F403

TM = TIMEOUT_MULT


def addr(host, port):
    return bytes([socket.AF_INET]) + socket.inet_aton(host) + b"\0" * 12 + struct.pack("!H", port)


def blob(port, mport, n_fds_announced):
    """One worker, one listener, no TLS, the metrics listener, no allocation.
    Descriptor indexes: 0 UDP, 1 TCP, 2 metrics."""
    body = struct.pack("!IIII", 1, 1, 0, n_fds_announced)
    body += addr("127.0.0.1", port) + addr("127.0.0.1", mport) + struct.pack("!I", 2)
    body += os.urandom(32) + struct.pack("!QQ", 0, 0)
    body += struct.pack("!II", 0, 1) + struct.pack("!I", 0)
    return b"TSGT" + struct.pack("!HHI", 1, 0, len(body)) + body


def send(sp, tag, payload=b"", fds=()):
    anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack(f"{len(fds)}i", *fds))] if fds else []
    sp.sendmsg([tag + payload], anc)


def run_child(exe, relay, sp_child, extra_env=None):
    env = dict(os.environ, TSUNAGU_TAKEOVER_FD=str(sp_child.fileno()))
    return subprocess.Popen([exe] + relay.args, stdout=relay.log, stderr=relay.log,
                            pass_fds=[sp_child.fileno()], env=env)


def scenario(c, exe, conf, mode):
    relay = Relay(exe, config=conf, start=False)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", relay.port))
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind(("127.0.0.1", relay.port))
    tcp.listen(16)
    met = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    met.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    met.bind(("127.0.0.1", relay.mport))
    met.listen(16)
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.bind(("127.0.0.1", 0))
    client.settimeout(2 * TM)
    sp, sp_child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    sp.settimeout(10 * TM)
    proc = None
    try:
        proc = run_child(exe, relay, sp_child)
        sp_child.close()
        msg = sp.recv(64)
        c.ok(msg == b"HELO\x00\x01", f"{mode}: the child says HELO version 1", repr(msg))
        # a client request waits in the listener's queue meanwhile
        req, req_tid = build(BINDING, REQUEST)
        client.sendto(req, ("127.0.0.1", relay.port))
        fds = [udp.fileno(), tcp.fileno(), met.fileno()]
        b = blob(relay.port, relay.mport, 4 if mode == "lie" else 3)
        send(sp, b"SIZE", struct.pack("!II", len(b), 4 if mode == "lie" else 3))
        send(sp, b"FDS_", struct.pack("!I", 3), fds)
        send(sp, b"BLOB", b)
        if mode == "lie":
            # The child still waits for the fourth descriptor and reads BLOB
            # instead: it refuses on that message, so nothing more is sent
            # (a message sent after it would race with its close: EPIPE when
            # it has hung up, or, left unread, a reset that eats its NAK_).
            # Every message was read when it hangs up: the NAK_ arrives.
            try:
                ans = sp.recv(600)
            except OSError as e:
                ans = repr(e).encode()
            c.ok(ans.startswith(b"NAK_takeover: receiving descriptors"),
                 "lie: the child says NAK_, naming the descriptors", repr(ans))
            c.ok(proc.wait(10 * TM) == 2, "lie: the child exits 2")
            c.ok("takeover refused: takeover: receiving descriptors" in relay.logtext(),
                 "lie: the child refuses, naming the descriptors", relay.logtext())
            return
        ans = sp.recv(600)
        c.ok(ans == b"ACK_", f"{mode}: the child adopted the state and says ACK", repr(ans)
             + relay.logtext())
        if mode == "nogo":
            time.sleep(0.3 * TM)  # its threads run, parked
            sp.close()
            rc = proc.wait(10 * TM)
            c.ok(rc == 2, "nogo: without GO the child exits 2", f"rc={rc} " + relay.logtext())
            udp.setblocking(False)
            try:
                left, _ = udp.recvfrom(2048)
            except BlockingIOError:
                left = None
            c.ok(left == req, "nogo: the Binding request is still queued for the old process "
                 "(the child read nothing)", repr(left))
            client.settimeout(0.2)
            try:
                client.recv(2048)
                answered = True
            except (socket.timeout, TimeoutError):
                answered = False
            c.ok(not answered, "nogo: the child answered nothing")
            return
        send(sp, b"GO__")
        # the parent's copies are closed: only the child reads from now on
        udp.close()
        tcp.close()
        met.close()
        try:
            m = Msg(client.recv(2048))
        except (socket.timeout, TimeoutError):
            m = None
        c.ok(m is not None and m.cls == SUCCESS and m.tid == req_tid,
             "go: the Binding request that waited in the queue is answered by the child")
        with urllib.request.urlopen(f"http://127.0.0.1:{relay.mport}/healthz",
                                    timeout=3 * TM) as r:
            c.ok(r.status == 200, "go: the child serves /healthz on the adopted metrics listener")
        proc.terminate()
        time.sleep(0.1)
        if proc.poll() is None:
            proc.terminate()
        c.ok(proc.wait(10 * TM) == 0, "go: the child stops on SIGTERM, exit 0")
    finally:
        if proc and proc.poll() is None:
            proc.kill()
            proc.wait(5)
        text = relay.logtext()
        c.ok("Sanitizer" not in text and "runtime error" not in text,
             f"{mode}: no sanitizer report", text[-3000:] if "Sanitizer" in text else "")
        for s in (udp, tcp, met, client, sp):
            s.close()
        relay.log.close()


def main():
    exe = os.path.abspath(relay_exe())
    c = Checks()
    tmp = tempfile.mkdtemp(prefix="relay-takeover-adopt-")
    conf = os.path.join(tmp, "relay.conf")
    with open(conf, "w") as f:
        f.write("threads = 1\nuser = alice:pa55\nallow-peer = 127.0.0.1/32\n")
    try:
        for mode in ("nogo", "go", "lie"):
            scenario(c, exe, conf, mode)
    finally:
        os.unlink(conf)
        os.rmdir(tmp)
    return c.done()


if __name__ == "__main__":
    sys.exit(main())
