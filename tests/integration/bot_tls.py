#!/usr/bin/python3
"""bot_tls.py - tsunagu-bot calls through tsunagu-relay over TURN over TLS
(turns:), relay only, with a test CA made here by `openssl`.

Main run: tsunagu-relay with --tls-listen and a certificate for IP
127.0.0.1 signed by the test CA; tsunagu-signal hands out
turns:127.0.0.1:P?transport=tcp, where P is a small TCP proxy in this
script in front of the relay's TLS port that records the first bytes of
each connection in both directions. The bot runs with --turn-ca ca.pem.
Asserted: every leg decoded audio over a relayed path reported as TURN over
TLS with completed TLS sessions, zero loss, MOS above 4.0, the relay's
/metrics counted at least the packets the bots received, and every
connection on the wire began with a TLS ClientHello (16 03 ..) answered by a
TLS ServerHello, never a plain STUN Allocate (00 03 ..).

--turn-insecure against the untrusted relay must work, print a warning and
say so in the report. Controls (each must fail the call with the reason in
the report):
  - no --turn-ca: the system store does not trust the test CA
    ("certificate verify failed"), naming the server;
  - a relay whose certificate (same CA) is for another address: "IP address
    mismatch" with --turn-ca.

usage: bot_tls.py --bot PATH --relay-exe PATH --signal-exe PATH [--duration S]
                  [--calls N] [--threads N]"""
import argparse, json, os, re, shutil, socket, subprocess, sys, threading, time, urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bot_harness import (SECRET, Stack, check_clean_leg, fail, free_port, wait_tcp,  # noqa: E402
                         TIMEOUT_MULT)


def openssl(*args, cwd):
    r = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    if r.returncode:
        fail("openssl %s: %s" % (" ".join(args[:2]), r.stderr[-500:]))


def make_pki(d):
    """ca.pem/ca.key, good.pem/.key (IP:127.0.0.1), wrong.pem/.key
    (IP:127.0.0.2, DNS:other.example), all from the one test CA."""
    if not shutil.which("openssl"):
        fail("openssl command missing: apt-get install openssl")
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-days", "1", "-subj", "/CN=tsunagu test CA", "-keyout", "ca.key", "-out", "ca.pem",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    for name, san in (("good", "IP:127.0.0.1"), ("wrong", "IP:127.0.0.2,DNS:other.example")):
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-subj", "/CN=" + name, "-keyout", name + ".key", "-out", name + ".csr", cwd=d)
        with open(os.path.join(d, name + ".ext"), "w") as f:
            f.write("subjectAltName=%s\nextendedKeyUsage=serverAuth\n" % san)
        openssl("x509", "-req", "-in", name + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-days", "1", "-extfile", name + ".ext", "-out", name + ".pem",
                cwd=d)


class Sniffer:
    """TCP proxy 127.0.0.1:port -> 127.0.0.1:target that keeps the first
    bytes each way of every connection. Threads end when the sockets do."""

    def __init__(self, target):
        self.target = target
        self.ls = socket.socket()
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(16)
        self.ls.settimeout(0.2)
        self.port = self.ls.getsockname()[1]
        self.conns = []  # [client_first_bytes, server_first_bytes]
        self.stop = False
        self.lock = threading.Lock()
        threading.Thread(target=self.accept_loop, daemon=True).start()

    def accept_loop(self):
        while not self.stop:
            try:
                c, _ = self.ls.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                s = socket.create_connection(("127.0.0.1", self.target), timeout=5)
            except OSError:
                c.close()
                continue
            # media over TCP: the proxy must not add Nagle delays of its own
            for x in (c, s):
                x.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            rec = [b"", b""]
            with self.lock:
                self.conns.append(rec)
            for a, b, i in ((c, s, 0), (s, c, 1)):
                threading.Thread(target=self.pipe, args=(a, b, rec, i), daemon=True).start()

    def pipe(self, a, b, rec, i):
        a.settimeout(None)
        try:
            while True:
                data = a.recv(65536)
                if not data:
                    break
                if len(rec[i]) < 16:
                    with self.lock:
                        rec[i] = (rec[i] + data)[:16]
                b.sendall(data)
        except OSError:
            pass
        finally:
            for x in (a, b):
                try:
                    x.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        self.stop = True
        self.ls.close()

    def snapshot(self):
        with self.lock:
            return [list(r) for r in self.conns]


def start_relay(st, a, cert, key):
    udp = free_port(also_udp=True)
    tls = free_port()
    st.metrics_port = free_port()
    p = st.spawn([a.relay_exe, "--listen", "127.0.0.1:%d" % udp, "--tls-listen",
                  "127.0.0.1:%d" % tls, "--cert", cert, "--key", key, "--auth-secret", SECRET,
                  "--realm", "tsunagu", "--metrics-listen", "127.0.0.1:%d" % st.metrics_port],
                 "relay-%d.log" % tls)
    wait_tcp(tls, 10, p, "tsunagu-relay TLS listener")
    return tls


def relay_gauge(st, name):
    body = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % st.metrics_port,
                                  timeout=5).read().decode()
    m = re.search(r"^%s\s+([0-9.e+]+)" % re.escape(name), body, re.M)
    if not m:
        fail("relay /metrics has no %s" % name)
    return int(float(m.group(1)))


def run_bot(st, a, url, tag, extra, duration, calls=1):
    report = os.path.join(st.dir, "report-%s.json" % tag)
    argv = [a.bot, "--signal", url, "--room", "tls%s%d" % (tag, os.getpid()), "--calls", str(calls),
            "--duration", str(duration), "--relay-only", "--report", report,
            "--setup-timeout", "15", "--log-level", "info"] + extra
    limit = (duration + 40) * TIMEOUT_MULT
    t0 = time.time()
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=limit)
    except subprocess.TimeoutExpired:
        fail("%s: tsunagu-bot did not finish within %.0f s" % (tag, limit))
    print("# %s: bot exit %d after %.1f s" % (tag, r.returncode, time.time() - t0))
    print(r.stdout)
    # sanitizer builds: failing calls must not leak or misbehave either
    for bad in ("AddressSanitizer", "LeakSanitizer", "runtime error:"):
        if bad in r.stderr:
            print(r.stderr[-6000:])
            fail("%s: %s report in the bot's stderr" % (tag, bad))
    if r.returncode not in (0, 1):
        print(r.stderr[-3000:])
        fail("%s: bot exit code %d" % (tag, r.returncode))
    try:
        rep = json.load(open(report))
    except (OSError, ValueError) as e:
        print(r.stderr[-3000:])
        fail("%s: no JSON report (%s)" % (tag, e))
    return r, rep


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bot", required=True)
    ap.add_argument("--relay-exe", required=True)
    ap.add_argument("--signal-exe", required=True)
    ap.add_argument("--duration", type=int, default=4)
    ap.add_argument("--calls", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2,
                    help="worker threads for the TLS call: each has its own forwarders")
    a = ap.parse_args()
    a.relay, a.signal = "tsunagu", "tsunagu"
    checks = 0
    with Stack(a) as st:
        make_pki(st.dir)
        pem = lambda n: os.path.join(st.dir, n)  # noqa: E731
        tls_port = start_relay(st, a, pem("good.pem"), pem("good.key"))
        sniff = Sniffer(tls_port)
        try:
            url = st.start_signal("turns:127.0.0.1:%d?transport=tcp" % sniff.port)

            # --- the TLS call ---
            r, rep = run_bot(st, a, url, "ok", ["--turn-ca", pem("ca.pem"), "--threads",
                                                str(a.threads)], a.duration, a.calls)
            if r.returncode != 0:
                print(r.stderr[-4000:])
                fail("tsunagu-bot exit code %d over TURN/TLS" % r.returncode)
            legs = rep["calls"]
            if len(legs) != 2 * a.calls:
                fail("%d legs reported, want %d" % (len(legs), 2 * a.calls))
            if rep.get("turn_tls_verify") != pem("ca.pem"):
                fail("report says certificates were checked with %r" % rep.get("turn_tls_verify"))
            for c in legs:
                if not c["media"] or c["decoded"] < 10 * a.duration:
                    fail("%s: no audio decoded (%s)" % (c["label"], c["end_reason"]))
                if not c["path"].startswith("relay/") or "TURN over TLS" not in c["path"]:
                    fail("%s: path %r is not relayed over TLS" % (c["label"], c["path"]))
                if c["relay_transport"] != "tls" or c["tls_sessions"] < 1 or "TLS" not in c["tls"]:
                    fail("%s: relay_transport %r, tls_sessions %r, tls %r" % (
                        c["label"], c["relay_transport"], c["tls_sessions"], c["tls"]))
                check_clean_leg(c)
                print("# %s: path %s, %s, setup %.1f ms, loss %.3f%%, MOS %.2f, rtt %.1f ms" % (
                    c["label"], c["path"], c["tls"], c["setup_ms"], c["loss_pct"], c["mos"],
                    c["rtt_ms"]))
                checks += 6
            received = rep["totals"]["received"]
            deadline = time.time() + 10 * TIMEOUT_MULT
            relayed = st.relay_packets()
            while relayed < received and time.time() < deadline:
                time.sleep(0.5)
                relayed = st.relay_packets()
            print("# relay forwarded %d packets; bots received %d" % (relayed, received))
            if relayed < received:
                fail("relay counted %d packets < %d received by the bots" % (relayed, received))
            checks += 1
            # The forwarder closes its TLS connections when a call ends; for a
            # TURN-over-TCP/TLS allocation that is its end (RFC 8656 s.3.1).
            deadline = time.time() + 10 * TIMEOUT_MULT
            live = relay_gauge(st, "tsunagu_relay_allocations")
            while live and time.time() < deadline:
                time.sleep(0.3)
                live = relay_gauge(st, "tsunagu_relay_allocations")
            if live:
                fail("%d allocations still live on the relay after the bot exited" % live)
            checks += 1
            conns = sniff.snapshot()
            print("# %d TCP connections through the sniffer: %s" % (
                len(conns), ["%s/%s" % (c[0][:3].hex(), c[1][:3].hex()) for c in conns]))
            if len(conns) < 2 * a.calls:
                fail("only %d connections to the TLS port; want one per leg" % len(conns))
            for cli, srv in conns:
                if cli[:1] == b"\x00":
                    fail("a connection began with plain STUN %s: not TLS" % cli.hex())
                # ClientHello record: type 22, version 3.x, then handshake type 1
                if len(cli) < 6 or cli[0] != 0x16 or cli[1] != 0x03 or cli[5] != 0x01:
                    fail("first client bytes %s are not a TLS ClientHello" % cli.hex())
                if len(srv) < 6 or srv[0] != 0x16 or srv[1] != 0x03 or srv[5] != 0x02:
                    fail("first server bytes %s are not a TLS ServerHello" % srv.hex())
            checks += 2
            print("# TLS call: setup p50 %.1f ms max %.1f ms, MOS p50 %.2f, loss %.3f%%" % (
                rep["totals"]["setup_ms"]["p50"], rep["totals"]["setup_ms"]["max"],
                rep["totals"]["mos"]["p50"], rep["totals"]["loss_pct"]))

            # --- control: the system store does not know the test CA ---
            before = len(sniff.snapshot())
            t0 = time.time()
            r, rep = run_bot(st, a, url, "noca", [], 2)
            took = time.time() - t0
            if r.returncode == 0:
                fail("call without --turn-ca succeeded: the certificate was not checked")
            where = "127.0.0.1:%d" % sniff.port
            for c in rep["calls"]:
                if c["media"]:
                    fail("%s carried audio with an untrusted certificate" % c["label"])
                for field in ("end_reason", "turn_error"):
                    if "certificate verify failed" not in c[field] or where not in c[field]:
                        fail("%s: %s %r does not name the server and the certificate error" % (
                            c["label"], field, c[field]))
                checks += 2
            if len(sniff.snapshot()) <= before:
                fail("control made no TLS connection: it failed for another reason")
            if took > 12 * TIMEOUT_MULT:
                fail("certificate failure took %.1f s: not reported at once" % took)
            print("# control without --turn-ca: %r in %.1f s" % (rep["calls"][0]["end_reason"], took))
            checks += 2

            # --- --turn-insecure: the same untrusted relay works, loudly ---
            r, rep = run_bot(st, a, url, "insecure", ["--turn-insecure"], 2)
            if r.returncode != 0 or not all(c["media"] for c in rep["calls"]):
                print(r.stderr[-3000:])
                fail("--turn-insecure call failed (exit %d)" % r.returncode)
            if "WARNING" not in r.stderr or "NOT verified" not in r.stderr:
                fail("--turn-insecure printed no warning: %r" % r.stderr[:500])
            if rep.get("turn_tls_verify") != "off (--turn-insecure)":
                fail("report hides --turn-insecure: %r" % rep.get("turn_tls_verify"))
            checks += 3
        finally:
            sniff.close()

        # --- control: certificate from the trusted CA, for another address ---
        tls2 = start_relay(st, a, pem("wrong.pem"), pem("wrong.key"))
        url2 = st.start_signal("turns:127.0.0.1:%d?transport=tcp" % tls2)
        r, rep = run_bot(st, a, url2, "wrongname", ["--turn-ca", pem("ca.pem")], 2)
        if r.returncode == 0:
            fail("call to a relay with another address's certificate succeeded")
        for c in rep["calls"]:
            if c["media"] or "IP address mismatch" not in c["end_reason"]:
                fail("%s: end_reason %r, want the IP address mismatch" % (c["label"],
                                                                        c["end_reason"]))
            checks += 1
        print("# control wrong address: %r" % rep["calls"][0]["end_reason"])
    print("PASS (%d checks)" % checks)


if __name__ == "__main__":
    main()
