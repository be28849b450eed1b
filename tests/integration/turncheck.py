#!/usr/bin/python3
"""turncheck.py - tsunagu-turncheck (issue 10 item 3) against a real
tsunagu-relay on 127.0.0.1 and against Debian's coturn.

Passes: UDP, TCP and TLS URLs in one run, with a static user and with a
TURN REST secret (--realm checked), --expect-ip matching, --json, IPv6.
Fails, each with its exact line and exit status 1: a wrong password (401
with the realm), a wrong secret, a port with nothing listening (UDP and
TCP), a TLS certificate for another name (--ca), --expect-ip mismatch, a
peer the relay's policy refuses (no --peer-ip on loopback), an advertised
address the relay does not send from (--external-ip). Bad usage: 2.
coturn (turnserver) passes over UDP and TCP.

The relay denies loopback peers by default; like the other tests it is
started with --allow-peer 127.0.0.2/32 and turncheck binds its peer socket
there with --peer-ip 127.0.0.2 (docs/turncheck.md: the operator runs
turncheck from a host the relay may relay to).

Usage: turncheck.py PATH/TO/tsunagu-turncheck PATH/TO/tsunagu-relay
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from relay_stun import TIMEOUT_MULT, Checks, Relay, free_port  # noqa: E402

USER, PASS, SECRET = "alice", "pa55", "turncheck-secret"
PEER = ["--peer-ip", "127.0.0.2"]


def openssl(d, *args):
    r = subprocess.run(["openssl", *args], cwd=d, capture_output=True, text=True)
    if r.returncode:
        raise SystemExit("openssl %s: %s" % (" ".join(args[:2]), r.stderr[-500:]))


def make_pki(d):
    """ca.pem, good.pem/.key (IP:127.0.0.1), wrong.pem/.key (DNS:other.example)."""
    if not shutil.which("openssl"):
        raise SystemExit("openssl command missing: apt-get install openssl")
    openssl(d, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-days", "1", "-subj", "/CN=turncheck test CA", "-keyout", "ca.key", "-out", "ca.pem",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    for name, san in (("good", "IP:127.0.0.1"), ("wrong", "DNS:other.example")):
        openssl(d, "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-subj", "/CN=" + name, "-keyout", name + ".key", "-out", name + ".csr")
        with open(os.path.join(d, name + ".ext"), "w") as f:
            f.write("subjectAltName=%s\nextendedKeyUsage=serverAuth\n" % san)
        openssl(d, "x509", "-req", "-in", name + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-days", "1", "-extfile", name + ".ext", "-out", name + ".pem")


def run(tc, *args, timeout=30):
    p = subprocess.run([tc, *args], capture_output=True, text=True,
                       timeout=timeout * TIMEOUT_MULT)
    return p.returncode, p.stdout, p.stderr


def steps(out):
    """The verdict lines (not the '--- URL' headers)."""
    return [ln for ln in out.splitlines() if not ln.startswith("--- ")]


def all_ok(c, rc, out, name, n_urls):
    lines = steps(out)
    c.ok(rc == 0 and lines and all(ln.startswith("ok   ") for ln in lines)
         and sum(ln.startswith("ok   refresh: ") for ln in lines) == n_urls,
         name, f"(rc {rc})\n{out}")


def has_line(c, rc, out, line, name):
    c.ok(rc == 1 and line in out.splitlines() and steps(out)[-1] == line, name,
         f"(rc {rc}, want {line!r})\n{out}")


def test_relay(c, tc, relay_exe, pki):
    tport = free_port(socket.SOCK_STREAM)
    relay = Relay(relay_exe, "--user", f"{USER}:{PASS}", "--auth-secret", SECRET,
                  "--allow-peer", "127.0.0.2/32", "--allow-peer", "::1/128", "--tls-listen", f"127.0.0.1:{tport}",
                  "--cert", os.path.join(pki, "good.pem"), "--key", os.path.join(pki, "good.key"),
                  v6=True)
    wport = free_port(socket.SOCK_STREAM)
    wrong = Relay(relay_exe, "--user", f"{USER}:{PASS}", "--allow-peer", "127.0.0.2/32",
                  "--tls-listen", f"127.0.0.1:{wport}",
                  "--cert", os.path.join(pki, "wrong.pem"), "--key", os.path.join(pki, "wrong.key"))
    ca = ["--ca", os.path.join(pki, "ca.pem")]
    p = relay.port
    urls = [f"turn:127.0.0.1:{p}", f"turn:127.0.0.1:{p}?transport=tcp", f"turns:127.0.0.1:{tport}"]
    try:
        rc, out, _ = run(tc, *urls, "--user", f"{USER}:{PASS}", *PEER, *ca)
        print("# a passing run:\n# " + out.replace("\n", "\n# "))
        all_ok(c, rc, out, "static user: udp, tcp and tls pass", 3)
        c.ok("certificate valid for '127.0.0.1'" in out, "tls: the certificate was checked")

        rc, out, _ = run(tc, *urls, "--secret", SECRET, "--ttl", "300", "--realm", "tsunagu",
                         "--expect-ip", "127.0.0.1", *PEER, *ca)
        all_ok(c, rc, out, "REST secret, --realm, --expect-ip: udp, tcp and tls pass", 3)
        c.ok(':turncheck"' in out, "REST username is EXPIRY:turncheck", out)

        rc, out, _ = run(tc, f"turn:[::1]:{relay.port6}", f"turn:[::1]:{relay.port6}?transport=tcp",
                         "--user", f"{USER}:{PASS}")
        all_ok(c, rc, out, "IPv6: udp and tcp pass (an IPv6 peer gets an IPv6 allocation)", 2)
        c.ok("relayed [::1]:" in out, "IPv6: relayed on ::1", out)

        rc, out, _ = run(tc, urls[0], "--user", f"{USER}:{PASS}", *PEER, "--json")
        objs = [json.loads(ln) for ln in out.splitlines()]
        c.ok(rc == 0 and len(objs) == 11 and all(o["ok"] and o["url"] == urls[0] for o in objs)
             and [o["step"] for o in objs][:3] == ["resolve", "challenge", "allocate"],
             "--json: one object per step", out)

        rc, out, _ = run(tc, urls[0], "--user", f"{USER}:wrong", *PEER)
        print("# a failing run:\n# " + out.replace("\n", "\n# "))
        has_line(c, rc, out, 'FAIL allocate: 401 Unauthorized with realm "tsunagu": the server '
                 'refused user "alice" (wrong password or secret, or an expired REST username)',
                 "wrong password: 401 with the realm")
        rc, out, _ = run(tc, urls[1], "--secret", "not-the-secret", *PEER)
        c.ok(rc == 1 and 'FAIL allocate: 401 Unauthorized with realm "tsunagu": the server '
             'refused user "' in out, "wrong secret: 401 with the realm", out)
        rc, out, _ = run(tc, urls[0], "--user", f"{USER}:{PASS}", "--realm", "example.org", *PEER)
        has_line(c, rc, out, 'FAIL challenge: 401 with realm "tsunagu", expected "example.org"',
                 "--realm mismatch")

        rc, out, _ = run(tc, urls[0], "--user", f"{USER}:{PASS}", "--expect-ip", "127.0.0.9",
                         *PEER)
        has_line(c, rc, out, "FAIL relayed-address: relayed address 127.0.0.1 differs from "
                 "--expect-ip 127.0.0.9 (what the server should advertise: check its "
                 "--relay-ip / --external-ip)", "--expect-ip mismatch")

        rc, out, _ = run(tc, f"turns:127.0.0.1:{wport}", "--user", f"{USER}:{PASS}", *PEER, *ca)
        has_line(c, rc, out, "FAIL connect: TLS name mismatch: the certificate is not for "
                 "'127.0.0.1' (it names DNS:other.example)", "tls: name mismatch")
        rc, out, _ = run(tc, f"turns:127.0.0.1:{tport}", "--user", f"{USER}:{PASS}", *PEER)
        has_line(c, rc, out, "FAIL connect: TLS: certificate verify failed: unable to get local "
                 "issuer certificate", "tls: unknown CA without --ca")
        rc, out, _ = run(tc, f"turns:127.0.0.1:{wport}", "--user", f"{USER}:{PASS}", *PEER,
                         "--insecure")
        all_ok(c, rc, out, "tls: --insecure passes despite the name", 1)

        rc, out, _ = run(tc, urls[0], "--user", f"{USER}:{PASS}")
        c.ok(rc == 1 and steps(out)[-1].startswith(
             "FAIL permission: 403 Forbidden peer address: the relay's peer policy refuses "
             "127.0.0.1:"), "no --peer-ip on loopback: the peer policy's 403", out)
    finally:
        relay.stop()
        wrong.stop()


def test_nat(c, tc, relay_exe):
    """--external-ip naming an address the relay does not send from: what a
    client sees behind a NAT that rewrites the relay's source."""
    relay = Relay(relay_exe, "--user", f"{USER}:{PASS}", "--allow-peer", "127.0.0.2/32",
                  "--external-ip", "127.0.0.5/127.0.0.1", relay_ip=False)
    try:
        rc, out, _ = run(tc, f"turn:127.0.0.1:{relay.port}", "--user", f"{USER}:{PASS}", *PEER)
        last = steps(out)[-1]
        c.ok(rc == 1 and last.startswith("FAIL send-to-peer: the data reached the peer from "
                                          "127.0.0.1:") and
             last.endswith("(a NAT in front of the relay? set its --external-ip)") and
             "not from the relayed address 127.0.0.5:" in last,
             "advertised address the relay does not send from: the NAT line", out)
    finally:
        relay.stop()


def test_nothing_listening(c, tc):
    up, tp = free_port(), free_port(socket.SOCK_STREAM)
    rc, out, _ = run(tc, f"turn:127.0.0.1:{up}", "--user", "a:b", "--timeout-ms", "1000")
    has_line(c, rc, out, f"FAIL challenge: no answer on the port: 127.0.0.1:{up}/udp is "
             "unreachable (ICMP port unreachable: nothing listens there)", "udp: no answer")
    rc, out, _ = run(tc, f"turn:127.0.0.1:{tp}?transport=tcp", "--user", "a:b",
                     "--timeout-ms", "1000")
    has_line(c, rc, out, "FAIL connect: no answer on the port: connection refused (nothing "
             f"listens on 127.0.0.1:{tp}/tcp)", "tcp: no answer")


def test_usage(c, tc):
    for args in ([], ["turn:127.0.0.1"], ["http://x", "--user", "a:b"],
                 ["turn:127.0.0.1", "--user", "a:b", "--secret", "s"],
                 ["turn:127.0.0.1", "--user", "nocolon"],
                 ["turns:127.0.0.1?transport=udp", "--user", "a:b"],
                 ["turn:127.0.0.1", "--user", "a:b", "--expect-ip", "nope"],
                 ["turn:127.0.0.1", "--user", "a:b", "--ca", "x", "--insecure"]):
        rc, out, err = run(tc, *args)
        c.ok(rc == 2 and "usage:" in err and not out, f"usage error exits 2: {args}", err)


def test_coturn(c, tc):
    ts = shutil.which("turnserver")
    if not ts:
        c.ok(False, "coturn: turnserver not found (install Debian package 'coturn')")
        return
    port = free_port()
    for _ in range(50):  # free for TCP as well (coturn listens on both)
        try:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", port))
            s.close()
            break
        except OSError:
            s.close()
            port = free_port()
    lo = 21000 + (os.getpid() % 80) * 100
    d = tempfile.mkdtemp(prefix="turncheck-coturn.")
    # coturn as coturn_conformance.sh runs it: relaying from 127.0.0.3, loopback peers
    # allowed only for 127.0.0.2, the peer socket of turncheck
    proc = subprocess.Popen(
        [ts, "-n", "--listening-ip=127.0.0.1", f"--listening-port={port}",
         "--relay-ip=127.0.0.3", f"--min-port={lo}", f"--max-port={lo + 99}",
         "--realm=coturn.example", "--lt-cred-mech", "--user=alice:alicepw",
         "--allow-loopback-peers", "--denied-peer-ip=127.0.0.0-127.255.255.255",
         "--allowed-peer-ip=127.0.0.2", "--no-tls", "--no-dtls", "--no-cli", "--no-rfc5780",
         f"--pidfile={d}/pid", f"--userdb={d}/db", "--log-file=stdout", "--simple-log"],
        stdout=open(os.path.join(d, "log"), "w"), stderr=subprocess.STDOUT)
    try:
        url = f"turn:127.0.0.1:{port}"
        out, rc = "", None
        deadline = time.time() + 10 * TIMEOUT_MULT
        while time.time() < deadline:  # until coturn answers (it starts in ~0.2 s)
            rc, out, _ = run(tc, url, "turn:127.0.0.1:%d?transport=tcp" % port,
                             "--user", "alice:alicepw", "--realm", "coturn.example", *PEER,
                             "--timeout-ms", "1000")
            if rc == 0 or "no answer on the port" not in out or proc.poll() is not None:
                break
            time.sleep(0.2)
        all_ok(c, rc, out, "coturn: udp and tcp pass", 2)
        c.ok("relayed 127.0.0.3:" in out, "coturn: relayed from its --relay-ip", out)
        rc, out, _ = run(tc, url, "--user", "alice:nope", *PEER)
        c.ok(rc == 1 and 'FAIL allocate: 401 Unauthorized with realm "coturn.example"' in out,
             "coturn: wrong password: 401 with its realm", out)
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(d, ignore_errors=True)


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__.strip().splitlines()[-1])
    tc, relay_exe = sys.argv[1], sys.argv[2]
    c = Checks()
    with tempfile.TemporaryDirectory(prefix="turncheck-pki.") as pki:
        make_pki(pki)
        test_usage(c, tc)
        test_nothing_listening(c, tc)
        test_relay(c, tc, relay_exe, pki)
        test_nat(c, tc, relay_exe)
        test_coturn(c, tc)
    return c.done()


if __name__ == "__main__":
    sys.exit(main())
