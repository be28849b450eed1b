#!/usr/bin/python3
"""tls_resume.py - the relay's CPU per TLS handshake for reconnecting
clients, full handshake vs session resumption (issue 16 item 2).

One relay (--threads 1) on 127.0.0.1 with a fresh certificate (ECDSA P-256,
or RSA 2048 with --rsa). Each round opens N connections one after another;
each does its handshake, one STUN Binding request (so TLS 1.3 tickets are
read) and closes. "full": no session offered; "resumed": every connection
offers the session of the previous one. The relay's CPU comes from
/proc/PID/schedstat (ns) around each round.

usage: tls_resume.py PATH/TO/tsunagu-relay [-n 300] [--rounds 3] [--rsa] [--tls12]
Kills the relay by PID on any exit; leaves no files behind."""
import argparse
import os
import shutil
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def cpu_ns(pid):
    total = 0
    for t in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{t}/schedstat") as f:
            total += int(f.read().split()[0])
    return total


def binding(s):
    s.sendall(struct.pack("!HHI12s", 0x0001, 0, 0x2112A442, os.urandom(12)))
    got = b""
    while len(got) < 20:
        chunk = s.recv(4096)
        if not chunk:
            raise ConnectionError("closed")
        got += chunk
    if got[:2] != b"\x01\x01":
        raise ValueError("no Binding success")


def connect(ctx, port, session):
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    s = ctx.wrap_socket(raw, session=session)
    binding(s)
    sess, reused = s.session, s.session_reused
    s.close()
    return sess, reused


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("relay")
    ap.add_argument("-n", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--rsa", action="store_true")
    ap.add_argument("--tls12", action="store_true")
    a = ap.parse_args()
    if not shutil.which("openssl"):
        sys.exit("tls_resume: openssl command missing (apt-get install openssl)")
    tmp = tempfile.mkdtemp(prefix="tls-resume-")
    proc = None
    try:
        cert, key = os.path.join(tmp, "c.pem"), os.path.join(tmp, "k.pem")
        kind = ["-newkey", "rsa:2048"] if a.rsa else ["-newkey", "ec", "-pkeyopt",
                                                     "ec_paramgen_curve:P-256"]
        subprocess.run(["openssl", "req", "-x509", *kind, "-nodes", "-days", "1", "-subj",
                        "/CN=127.0.0.1", "-keyout", key, "-out", cert], check=True,
                       capture_output=True)
        port, tport, mport = free_port(), free_port(), free_port()
        lo = 40000 + os.getpid() % 20000
        proc = subprocess.Popen([a.relay, "--listen", f"127.0.0.1:{port}", "--tls-listen",
                                 f"127.0.0.1:{tport}", "--cert", cert, "--key", key,
                                 "--relay-ip", "127.0.0.1", "--relay-ports", f"{lo}-{lo + 99}",
                                 "--metrics-listen", f"127.0.0.1:{mport}", "--user", "u:p",
                                 "--threads", "1", "--log-level", "warn",
                                 "--max-preauth-per-ip", "0", "--drain-seconds", "0"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", tport), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        if a.tls12:
            ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        res = {"full": [], "resumed": []}
        for r in range(a.rounds):
            for mode in ("full", "resumed"):
                sess, _ = connect(ctx, tport, None)
                reused_n = 0
                c0, t0 = cpu_ns(proc.pid), time.time()
                for _ in range(a.n):
                    got, reused = connect(ctx, tport, sess if mode == "resumed" else None)
                    reused_n += reused
                    if mode == "resumed":
                        sess = got
                time.sleep(0.2)  # the relay's last closes
                us = (cpu_ns(proc.pid) - c0) / 1000 / a.n
                res[mode].append(us)
                print(f"round {r + 1} {mode}: {us:.0f} us relay CPU per connection "
                      f"({reused_n}/{a.n} resumed, {time.time() - t0:.1f} s)", flush=True)
        med = {m: sorted(v)[len(v) // 2] for m, v in res.items()}
        print(f"summary ({'RSA 2048' if a.rsa else 'ECDSA P-256'}, "
              f"{'TLS 1.2' if a.tls12 else 'TLS 1.3'}): full {med['full']:.0f} us, resumed "
              f"{med['resumed']:.0f} us per connection (median of {a.rounds}); "
              f"resumed/full {med['resumed'] / med['full']:.2f}")
    finally:
        if proc:
            proc.kill()
            proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
