#!/usr/bin/python3
"""Test of the conformance suite itself: every check must be able to fail.

A check that cannot fail proves nothing. This driver puts a small UDP+TCP proxy
between turn_conformance.py and a real TURN server and lets the proxy break the
server in one known way at a time (strip FINGERPRINT, corrupt MESSAGE-INTEGRITY,
turn error code X into Y, drop Data indications, unpad ChannelData on TCP, ...).
For each mutant it runs the checks that mutant must break and asserts that every
one of them reports FAIL. Checks that a mutant cannot reach (quota, policy,
deletion, junk) are shown to fail by coturn itself (see coturn_conformance.sh).

Usage: conformance_mutants.py --server HOST:PORT <the same server flags as turn_conformance.py>
"""

import argparse
import json
import os
import select
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import turnclient as t  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))

# mutant -> (checks it must make FAIL, extra suite flags)
MUTANTS = {
    "passthrough": (["binding_no_auth", "allocate_success_fields", "tcp_framing"], []),  # mapped address is the proxy's
    "strip-fingerprint": (["fingerprint_echoed"], []),
    "corrupt-integrity": (["integrity_everywhere", "allocate_success_fields", "rest_credentials"], []),
    "code:401:403": (["allocate_no_credentials_401", "allocate_wrong_password_401"], []),
    "code:438:401": (["forged_nonce_438"], []),
    "code:441:403": (["other_user_441"], []),
    "code:400:500": (["requested_transport_missing_400", "channel_bind_invalid_number",
                      "channel_bind_conflicts", "create_permission_malformed_400"], []),
    "code:443:403": (["peer_family_mismatch_443"], []),
    "odd-relayed-port": (["even_port"], []),
    "code:420:400": (["unknown_attribute_420"], []),
    "code:437:400": (["allocate_again_437"], []),
    "code:440:400": (["address_family_invalid_440"], []),
    "code:442:400": (["requested_transport_tcp_442"], []),
    "code:403:400": (["peer_policy_v4", "peer_policy_v6_spellings"], []),
    "code:486:508": (["quota_486"], []),
    "fail-success:Allocate": (["static_and_rest_together", "address_family_v6", "own_relayed_allowed"], []),
    "drop-retransmit": (["allocate_retransmit"], []),
    "drop-data-indication": (["send_data_indication", "no_permission_dropped"], []),
    "drop-channel-data": (["channel_roundtrip"], []),
    "reject-optional": (["unknown_optional_ignored"], []),
    "unpad-tcp-channel-data": (["tcp_channel_data"], []),
    "answer-junk": (["junk_ignored"], []),
    "passthrough-lifetime": (["lifetime_capped"], ["--max-lifetime", "60"]),
}


def rewrite_stun(raw, fn):
    """Parse, let fn edit the attribute list, re-encode byte-wise keeping attribute bytes."""
    m = t.parse(raw)
    attrs = fn(m)
    body = b""
    for at, v in attrs:
        body += struct.pack("!HH", at, len(v)) + v + b"\0" * (t.pad4(len(v)) - len(v))
    return raw[:2] + struct.pack("!H", len(body)) + raw[4:20] + body


class Mutator:
    def __init__(self, name):
        self.name = name
        self.seen_tx = set()
        self.lock = threading.Lock()

    def c2s(self, data):
        """Client to server: returns (bytes to forward or None, bytes to answer the client or None)."""
        if t.is_stun(data):
            try:
                m = t.parse(data)
            except t.StunError:
                return data, None
            if self.name == "drop-retransmit" and m.cls == t.REQUEST:
                with self.lock:
                    if m.txid in self.seen_tx:
                        return None, None
                    self.seen_tx.add(m.txid)
            if self.name == "reject-optional" and m.cls == t.REQUEST and \
                    any(a >= 0x8000 and a not in (t.SOFTWARE, t.FINGERPRINT) for a, _ in m.attrs):
                r = t.Message(m.method, t.ERROR, m.txid)
                r.add(t.ERROR_CODE, bytes([0, 0, 4, 20]) + b"Unknown Attribute")
                return None, r.encode()
        elif self.name == "answer-junk" and data[:1] == b"\xff":
            return None, b"\xff" * 8
        return data, None

    def s2c(self, data, tcp=False):
        """Server to client: returns the bytes to deliver (or None to drop)."""
        if not t.is_stun(data):
            if self.name == "drop-channel-data":
                return None
            if self.name == "unpad-tcp-channel-data" and tcp:
                n = struct.unpack("!H", data[2:4])[0]
                return data[:4 + n]
            return data
        m = t.parse(data)
        if self.name == "strip-fingerprint":
            return rewrite_stun(data, lambda m: [(a, v) for a, v in m.attrs if a != t.FINGERPRINT])
        if self.name == "corrupt-integrity" and m.cls == t.SUCCESS and m.has(t.MESSAGE_INTEGRITY):
            off = m.offsets[t.MESSAGE_INTEGRITY] + 4 + 19
            return data[:off] + bytes([data[off] ^ 1]) + data[off + 1:]
        if self.name.startswith("code:") and m.cls == t.ERROR:
            _, frm, to = self.name.split(":")
            if m.error_code() == int(frm):
                to = int(to)

                def edit(m):
                    return [(a, bytes([0, 0, to // 100, to % 100]) + v[4:] if a == t.ERROR_CODE else v)
                            for a, v in m.attrs]
                return rewrite_stun(data, edit)
        if self.name == "fail-success:Allocate" and m.cls == t.SUCCESS and m.method == t.ALLOCATE:
            r = t.Message(t.ALLOCATE, t.ERROR, m.txid)
            r.add(t.ERROR_CODE, bytes([0, 0, 5, 8]) + b"Mutant")
            return r.encode()
        if self.name == "odd-relayed-port" and m.cls == t.SUCCESS and m.method == t.ALLOCATE and \
                t.XOR_RELAYED_ADDRESS in m.offsets:
            off = m.offsets[t.XOR_RELAYED_ADDRESS] + 4 + 3     # low byte of the X-Port
            return data[:off] + bytes([data[off] ^ 1]) + data[off + 1:]
        if self.name == "drop-data-indication" and m.method == t.DATA and m.cls == t.INDICATION:
            return None
        return data


class Proxy:
    """UDP and TCP on one 127.0.0.1 port, one upstream 5-tuple per client 5-tuple."""

    def __init__(self, server, mut):
        self.server, self.mut = server, mut
        self.stop = threading.Event()
        for _ in range(100):      # a port free for UDP and for TCP
            self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.udp.bind(("127.0.0.1", 0))
            self.port = self.udp.getsockname()[1]
            self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                self.tcp.bind(("127.0.0.1", self.port))
                break
            except OSError:
                self.tcp.close()
                self.udp.close()
        else:
            raise OSError("no port free for both UDP and TCP")
        self.tcp.listen(16)
        self.up = {}             # client addr -> upstream UDP socket
        self.down = {}           # upstream UDP socket -> client addr
        self.socks = [self.udp, self.tcp]
        self.threads = [threading.Thread(target=self.udp_loop, daemon=True),
                        threading.Thread(target=self.accept_loop, daemon=True)]
        for th in self.threads:
            th.start()

    def udp_loop(self):
        while not self.stop.is_set():
            rl = [self.udp] + list(self.up.values())
            r, _, _ = select.select(rl, [], [], 0.1)
            for s in r:
                try:
                    if s is self.udp:
                        data, addr = self.udp.recvfrom(65536)
                        if addr not in self.up:
                            u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                            u.bind(("127.0.0.1", 0))
                            u.connect(self.server)
                            self.down[u] = addr
                            self.up[addr] = u
                            self.socks.append(u)
                        fwd, answer = self.mut.c2s(data)
                        if fwd is not None:
                            self.up[addr].send(fwd)
                        if answer is not None:
                            self.udp.sendto(answer, addr)
                    else:
                        data = s.recv(65536)
                        out = self.mut.s2c(data)
                        if out is not None:
                            self.udp.sendto(out, self.down[s])
                except (OSError, t.StunError):
                    pass

    def accept_loop(self):
        while not self.stop.is_set():
            r, _, _ = select.select([self.tcp], [], [], 0.1)
            if not r:
                continue
            try:
                c, _ = self.tcp.accept()
                u = socket.create_connection(self.server, timeout=2)
            except OSError:
                continue
            self.socks += [c, u]
            for a, b, d in ((c, u, "c2s"), (u, c, "s2c")):
                th = threading.Thread(target=self.tcp_pump, args=(a, b, d), daemon=True)
                th.start()

    def tcp_pump(self, src, dst, direction):
        buf = b""
        try:
            while not self.stop.is_set():
                r, _, _ = select.select([src], [], [], 0.1)
                if not r:
                    continue
                chunk = src.recv(65536)
                if not chunk:
                    break
                buf += chunk
                while len(buf) >= 4:
                    n = struct.unpack("!H", buf[2:4])[0]
                    if buf[0] < 0x40:
                        need = 20 + n
                    elif buf[0] < 0x80:
                        need = t.pad4(4 + n)
                    else:      # junk: pass it on unframed
                        need = len(buf)
                    if len(buf) < need:
                        break
                    msg, buf = buf[:need], buf[need:]
                    if direction == "c2s":
                        fwd, answer = self.mut.c2s(msg)
                        if fwd is not None:
                            dst.sendall(fwd)
                        if answer is not None:
                            src.sendall(answer)
                    else:
                        out = self.mut.s2c(msg, tcp=True)
                        if out is not None:
                            dst.sendall(out)
        except (OSError, t.StunError):
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self):
        self.stop.set()
        for th in self.threads:
            th.join(1)
        for s in self.socks:
            if s in self.down:       # upstream 5-tuples stay bound (see RETIRED)
                RETIRED.append(s)
                continue
            try:
                s.close()
            except OSError:
                pass


# Upstream UDP sockets of finished proxies stay open until the driver exits, so no later
# proxy gets the port of a 5-tuple the server may still hold (coturn deletes ~1 s late).
RETIRED = []


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--server", required=True)
    ap.add_argument("--only", action="append", help="run only this mutant")
    ap.add_argument("--server-fails", default="", help="checks the server fails even without a proxy")
    ap.add_argument("suite_args", nargs=argparse.REMAINDER,
                    help="after --: flags passed to turn_conformance.py (credentials, realm, quota, ...)")
    a = ap.parse_args()
    extra = [x for x in a.suite_args if x != "--"]
    host, _, port = a.server.rpartition(":")
    server = (host, int(port))
    bad = 0
    tmp = tempfile.mkdtemp(prefix="mutants.")

    def run_suite(mut, checks, flags):
        proxy = Proxy(server, Mutator(mut))
        out = os.path.join(tmp, "r.json")
        cmd = ["/usr/bin/python3", os.path.join(HERE, "turn_conformance.py"),
               "--server", "127.0.0.1:%d" % proxy.port, "--json", out] + extra + flags
        for c in checks:
            cmd += ["--only", c]
        try:
            subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
            res = {r["name"]: r for r in json.load(open(out))["results"]}
            os.unlink(out)
            return res
        finally:
            proxy.close()

    # Control: through the unmutated proxy every check passes except those that compare
    # the mapped address (the proxy's, by construction) and those the server itself
    # fails without a proxy (given with --server-fails). So a mutant's FAILs come from
    # its mutation, not from the proxy.
    time.sleep(1.5)   # let the server finish deleting the allocations of a run just before
    ctl = run_suite("passthrough", [], [])
    skip = set(MUTANTS["passthrough"][0]) | set(a.server_fails.split())
    ctl_bad = sorted(n for n, r in ctl.items() if not r["ok"] and n not in skip)
    if ctl_bad or not ctl:
        print("FAIL control: through the plain proxy these also fail: %s" % (ctl_bad or "nothing ran"))
        return 1
    print("PASS control: %d checks pass through the plain proxy" % sum(r["ok"] for r in ctl.values()))
    for name, (must_fail, flags) in MUTANTS.items():
        if a.only and name not in a.only:
            continue
        res = run_suite(name, must_fail, flags)
        missing = [c for c in must_fail if c not in res]
        passed = [c for c in must_fail if c in res and res[c]["ok"]]
        if missing or passed:
            bad += 1
            print("FAIL mutant %s: %s" % (name, "; ".join(
                ["%s did not run" % c for c in missing] + ["%s still passes" % c for c in passed])))
        else:
            print("PASS mutant %s: %s fail (%s)" % (name, ", ".join(must_fail),
                                                    res[must_fail[0]]["why"][:90]))
    os.rmdir(tmp)
    covered = set(c for m, _ in MUTANTS.values() for c in m)
    print("%d mutants, %d checks shown able to fail, %d mutant(s) not caught" % (
        len(MUTANTS) if not a.only else len(a.only), len(covered), bad))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
