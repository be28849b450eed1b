#!/usr/bin/python3
"""tls_idle_rss.py - what idle, never-authenticating TLS connections cost
tsunagu-relay (issue 14 item 2): RSS before, with N such connections open,
and after they all closed, over several rounds (memory an allocator keeps
shows up as a ratchet from round to round).

Each connection completes the TLS handshake and then sends nothing (the
costly case: a handshake's state and buffers), or with --no-handshake only
connects TCP. Everything on 127.0.0.1; the relay is started with limits
that let one address open them all (--max-tcp-per-ip, --max-tls-handshakes*)
and an auth timeout longer than the run, so the client closes them.

usage: tls_idle_rss.py PATH/TO/tsunagu-relay [-n 3000] [--rounds 3] [--no-handshake]
       [--check]   (exit 1 unless RSS after the last round is within 10% of the
                    start plus 2 MB, and the per-connection cost is under 16 KB:
                    generous bounds for a noisy machine; the figures are printed)
Prints one line per phase and a summary; kills the relay by PID on any exit."""
import argparse
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time


def free_port(kind=socket.SOCK_STREAM):
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for pid %d" % pid)


def open_conns(port, n, ctx, handshake, deadline_s=120):
    """n connections to the TLS listener, handshaken (or not), kept open."""
    conns = []
    t_end = time.time() + deadline_s
    while len(conns) < n:
        assert time.time() < t_end, "only %d of %d connections in %ds" % (len(conns), n,
                                                                           deadline_s)
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        if handshake:
            s = ctx.wrap_socket(s, server_hostname="127.0.0.1")
        conns.append(s)
    return conns


def settle(pid, seconds=1.5):
    time.sleep(seconds)
    return rss_kb(pid)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("relay")
    ap.add_argument("-n", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-handshake", action="store_true")
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--tls12", action="store_true", help="clients stop at TLS 1.2")
    a = ap.parse_args()
    if not shutil.which("openssl"):
        sys.exit("FAIL: the openssl command is missing (apt-get install openssl)")
    tmp = tempfile.mkdtemp(prefix="tls-idle-")
    crt, key = os.path.join(tmp, "c.pem"), os.path.join(tmp, "k.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj",
                    "/CN=127.0.0.1", "-keyout", key, "-out", crt],
                   check=True, capture_output=True, timeout=30)
    tport, uport, mport = free_port(), free_port(socket.SOCK_DGRAM), free_port()
    lo = 40000 + (os.getpid() % 200) * 100
    argv = [a.relay, "--listen", "127.0.0.1:%d" % uport, "--tls-listen", "127.0.0.1:%d" % tport,
            "--cert", crt, "--key", key, "--relay-ip", "127.0.0.1",
            "--relay-ports", "%d-%d" % (lo, lo + 99), "--metrics-listen", "127.0.0.1:%d" % mport,
            "--threads", "1", "--user", "u:p", "--max-tcp-per-ip", "1000000",
            "--tcp-auth-timeout", "3600"]
    # the handshake and pre-auth caps are new flags: raise them when the binary has them
    helptext = subprocess.run([a.relay, "--help"], capture_output=True, text=True).stdout
    for flag in ("--max-tls-handshakes", "--max-tls-handshakes-per-ip", "--max-preauth-per-ip"):
        if flag + " " in helptext:
            argv += [flag, "1000000"]
    log = tempfile.TemporaryFile()
    p = subprocess.Popen(argv, stdout=log, stderr=log)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if a.tls12:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ok = True
    try:
        t0 = time.time()
        while True:
            try:
                socket.create_connection(("127.0.0.1", tport), timeout=0.2).close()
                break
            except OSError:
                assert p.poll() is None, "relay exited at start"
                assert time.time() - t0 < 10, "relay did not listen"
                time.sleep(0.05)
        start = settle(p.pid)
        kind = "TCP only" if a.no_handshake else \
            "TLS 1.2 handshake done" if a.tls12 else "TLS handshake done"
        print("idle pre-auth connections: %d per round, %s, %d rounds" % (a.n, kind, a.rounds))
        print("RSS at start: %d KB" % start)
        per_conn, after = [], start
        for r in range(a.rounds):
            before = settle(p.pid, 0.5)
            conns = open_conns(tport, a.n, ctx, not a.no_handshake)
            during = settle(p.pid)
            for s in conns:
                s.close()
            after = settle(p.pid, 2.5)
            kb = (during - before) / a.n
            per_conn.append(kb)
            print("round %d: before %d KB, with %d open %d KB (%.1f KB each), after close %d KB"
                  % (r + 1, before, a.n, during, kb, after))
        grow = 100.0 * (after - start) / start
        print("summary: %.1f KB per idle connection (max over rounds %.1f); RSS after the "
              "last close %d KB = start %+.1f%%" % (sum(per_conn) / len(per_conn),
                                                   max(per_conn), after, grow))
        if a.check:
            if max(per_conn) > 16:
                print("FAIL: more than 16 KB per idle connection")
                ok = False
            if after > start * 1.10 + 2048:
                print("FAIL: RSS after close not within 10%% (+2 MB) of the start")
                ok = False
        assert p.poll() is None, "relay died during the run"
    finally:
        p.kill()
        p.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
