#!/usr/bin/python3
"""relay_selfcheck.py - tsunagu-relay --self-check (issue 10 item 3, the
relay's part): at start the relay runs tsunagu-turncheck's checks against
itself over each transport it listens on, logs one line per step and a
summary, and exports tsunagu_relay_self_check_* gauges. It never stops the
relay.

On 127.0.0.1:
- UDP, TCP and TLS with a static user (flag) pass: every step "ok", the
  relayed address named loopback and "fine for local testing", summary
  "3/3 transports passed", gauges ok 1 / transport_ok 1 / warnings 0;
- the config key `self-check = true` with a REST secret (username
  "EXPIRY:self-check") passes too;
- --external-ip 127.0.0.3, an address that does not lead back to the relay:
  "FAIL data-from-peer" naming --external-ip, summary "0/2", gauges 0, the
  relay still healthy and the failed checks' allocations released.
In a network namespace of its own (unshare -n; nothing outside it changes):
- a relay on a private address (10.1.2.3) and no --external-ip: a "warn"
  line naming the cause and the fix (--external-ip PUBLIC/10.1.2.3);
- a 1:1 NAT made with an nftables DNAT of 203.0.113.5 to 10.1.2.3 and
  --external-ip 203.0.113.5/10.1.2.3: passes, the relayed address checked
  to be the public one and the data sent to it arriving.

Usage: relay_selfcheck.py PATH/TO/tsunagu-relay
       relay_selfcheck.py --netns PATH/TO/tsunagu-relay  (inside unshare -n)
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

USER, PASS = "alice", "pa55"


def full_log(relay):
    relay.log.flush()
    fd = relay.log.fileno()
    return os.pread(fd, os.fstat(fd).st_size, 0).decode(errors="replace")


def sc_lines(relay):
    """The self-check's messages: what follows '[self-check] ', without the
    trailing ' (file:line)'."""
    out = []
    for ln in full_log(relay).splitlines():
        i = ln.find("[self-check] ")
        if i >= 0:
            out.append(ln[i + len("[self-check] "):].rsplit(" (", 1)[0])
    return out


def wait_summary(relay, timeout=30):
    deadline = time.time() + timeout * TIMEOUT_MULT
    while time.time() < deadline:
        for ln in sc_lines(relay):
            if ln.startswith("summary: "):
                return ln
        if relay.proc.poll() is not None:
            raise AssertionError("relay exited: " + full_log(relay)[-3000:])
        time.sleep(0.05)
    raise AssertionError("no self-check summary:\n" + full_log(relay)[-3000:])


def metrics(relay):
    _, text = relay.http("/metrics")
    return {ln.rpartition(" ")[0]: float(ln.rpartition(" ")[2])
            for ln in text.splitlines() if ln.startswith("tsunagu_relay_self_check")}


def make_cert(d):
    if not shutil.which("openssl"):
        raise SystemExit("openssl command missing: apt-get install openssl")
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-days", "1", "-subj", "/CN=relay",
                        "-addext", "subjectAltName=DNS:turn.example.org",
                        "-keyout", "key.pem", "-out", "cert.pem"],
                       cwd=d, capture_output=True, text=True)
    if r.returncode:
        raise SystemExit("openssl: " + r.stderr[-500:])
    return os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")


def test_pass(c, exe, d):
    cert, key = make_cert(d)
    tport = free_port(socket.SOCK_STREAM)
    relay = Relay(exe, "--user", f"{USER}:{PASS}", "--tls-listen", f"127.0.0.1:{tport}",
                  "--cert", cert, "--key", key, "--self-check")
    try:
        summary = wait_summary(relay)
        lines = sc_lines(relay)
        print("# " + "\n# ".join(lines))
        urls = [f"turn:127.0.0.1:{relay.port}?transport=udp",
                f"turn:127.0.0.1:{relay.port}?transport=tcp", f"turns:127.0.0.1:{tport}"]
        steps = [ln for ln in lines if not ln.startswith("summary: ")]
        c.ok(c.ok(summary == "summary: 3/3 transports passed (udp ok, tcp ok, tls ok), "
                  "0 warning(s)", "udp/tcp/tls: summary line", summary)
             and all(" ok   " in ln for ln in steps), "every step ok", "\n".join(steps))
        for u in urls:
            c.ok(any(ln.startswith(u + " ok   refresh: lifetime 0: allocation released")
                     for ln in lines) and
                 any(ln.startswith(u + " ok   data-from-peer: ") for ln in lines) and
                 any(ln.startswith(u + " ok   channel-from-peer: ") for ln in lines),
                 f"{u}: data both ways, released", "\n".join(lines))
        c.ok(any(ln == f"{urls[0]} ok   relayed-address: 127.0.0.1 is a loopback address: only "
                 "clients on this host can reach it (fine for local testing; others need "
                 "--relay-ip or --external-ip)" for ln in lines),
             "loopback relayed address: said so, not called broken")
        c.ok(any(ln.startswith(urls[2] + " ok   connect: 127.0.0.1:%d/tls, TLS" % tport)
                 and "certificate NOT checked (the relay does not know the name" in ln
                 for ln in lines), "tls: the connect line says the name is not checked here")
        m = metrics(relay)
        c.ok(m.get("tsunagu_relay_self_check_ok") == 1 and
             m.get("tsunagu_relay_self_check_done") == 1 and
             m.get("tsunagu_relay_self_check_warnings") == 0 and
             all(m.get('tsunagu_relay_self_check_transport_ok{transport="%s"}' % t) == 1
                 for t in ("udp", "tcp", "tls")), "gauges: ok 1 on every transport", m)
        c.ok(relay.metric("tsunagu_relay_allocations") == 0, "no allocation left behind")
    finally:
        relay.stop()


def test_config_rest(c, exe, d):
    conf = os.path.join(d, "relay.conf")
    with open(conf, "w") as f:
        f.write("auth-secret = sc-secret\nself-check = true\n")
    relay = Relay(exe, config=conf)
    try:
        summary = wait_summary(relay)
        lines = sc_lines(relay)
        c.ok(summary == "summary: 2/2 transports passed (udp ok, tcp ok), 0 warning(s)",
             "config key self-check = true: udp and tcp pass", "\n".join(lines))
        c.ok(any(':self-check")' in ln and " ok   allocate: " in ln for ln in lines),
             "REST secret: the username EXPIRY:self-check is minted", "\n".join(lines))
    finally:
        relay.stop()
    # and off by default
    relay = Relay(exe, "--user", f"{USER}:{PASS}")
    try:
        time.sleep(0.5)
        c.ok(not sc_lines(relay) and not metrics(relay), "without --self-check: no check, "
             "no gauge")
    finally:
        relay.stop()


def test_external_unreachable(c, exe):
    relay = Relay(exe, "--user", f"{USER}:{PASS}", "--external-ip", "127.0.0.3",
                  "--self-check")
    try:
        summary = wait_summary(relay)
        lines = sc_lines(relay)
        print("# " + "\n# ".join(lines))
        u = f"turn:127.0.0.1:{relay.port}?transport=udp"
        fails = [ln for ln in lines if " FAIL " in ln and not ln.startswith("summary: ")]
        c.ok(len(fails) == 2 and fails[0].startswith(
             f"{u} FAIL data-from-peer: nothing from the peer 127.0.0.1:") and
             "the relayed address 127.0.0.3:" in fails[0] and fails[0].endswith(
             "is unreachable from this host (--external-ip does not lead back to this relay: "
             "a wrong address, or a 1:1 NAT that does not hairpin; then check from outside "
             "with tsunagu-turncheck)"), "unreachable --external-ip: the cause named",
             "\n".join(lines))
        c.ok(any(ln.startswith(f"{u} ok   send-to-peer: 3/3 datagrams Send -> 127.0.0.1:")
                 for ln in lines),
             "send-to-peer: from the relay address --external-ip stands for", "\n".join(lines))
        c.ok(summary == "summary: 0/2 transports passed (udp FAIL at data-from-peer, tcp FAIL "
             "at data-from-peer), 0 warning(s): the lines above name the cause "
             "(docs/turncheck.md)", "summary: 0/2, the failing step named", summary)
        m = metrics(relay)
        c.ok(m.get("tsunagu_relay_self_check_ok") == 0 and
             m.get('tsunagu_relay_self_check_transport_ok{transport="udp"}') == 0 and
             m.get('tsunagu_relay_self_check_transport_ok{transport="tcp"}') == 0,
             "gauges: ok 0", m)
        c.ok(relay.http("/healthz")[0] == 200 and relay.proc.poll() is None,
             "a failed self-check does not stop the relay")
        deadline = time.time() + 5 * TIMEOUT_MULT
        while time.time() < deadline and relay.metric("tsunagu_relay_allocations"):
            time.sleep(0.05)
        c.ok(relay.metric("tsunagu_relay_allocations") == 0,
             "the failed checks' allocations are released")
    finally:
        relay.stop()


def sh(*args):
    r = subprocess.run(args, capture_output=True, text=True)
    if r.returncode:
        raise AssertionError(f"{' '.join(args)}: {r.stderr}")


def netns_inner(exe):
    """Runs inside `unshare -n`: a fresh network namespace nobody else sees.
    Prints one JSON object of results."""
    res = {}
    sh("ip", "link", "set", "lo", "up")
    sh("ip", "addr", "add", "10.1.2.3/32", "dev", "lo")
    relay = Relay(exe, "--user", f"{USER}:{PASS}", "--self-check", listen_ip="10.1.2.3",
                  relay_ip=False)
    try:
        res["private_summary"] = wait_summary(relay)
        res["private_lines"] = sc_lines(relay)
        res["private_metrics"] = metrics(relay)
    finally:
        relay.stop()
    # a 1:1 NAT: 203.0.113.5 (TEST-NET-3) DNATed to 10.1.2.3 for this host's
    # own packets (the output hook), routed to lo. The relay and the check's
    # peer share this namespace's conntrack table, which a router's NAT
    # would not: the relay's direct datagrams to the peer (10.1.2.3 to
    # 10.1.2.3) are left untracked, or their entry would clash with the
    # DNATed flow's reply tuple and the kernel would move its source port.
    sh("ip", "route", "add", "203.0.113.0/24", "dev", "lo")
    r = subprocess.run(["nft", "-f", "-"], input="table ip tsu_sc {\n chain raw {\n"
                       "  type filter hook output priority -300;\n"
                       "  ip daddr 10.1.2.3 notrack\n }\n chain out {\n"
                       "  type nat hook output priority -100;\n"
                       "  ip daddr 203.0.113.5 dnat to 10.1.2.3\n }\n}\n",
                       capture_output=True, text=True)
    if r.returncode:
        raise AssertionError("nft: " + r.stderr)
    relay = Relay(exe, "--user", f"{USER}:{PASS}", "--self-check", "--external-ip",
                  "203.0.113.5/10.1.2.3", listen_ip="10.1.2.3", relay_ip=False)
    try:
        res["nat_summary"] = wait_summary(relay)
        res["nat_lines"] = sc_lines(relay)
        res["nat_metrics"] = metrics(relay)
    finally:
        relay.stop()
    print(json.dumps(res))


def test_netns(c, exe):
    if not shutil.which("unshare") or not shutil.which("nft"):
        c.ok(False, "unshare and nft needed (util-linux, nftables: scripts/deps.sh test)")
        return
    r = subprocess.run(["unshare", "-n", sys.executable, os.path.abspath(__file__), "--netns",
                        exe], capture_output=True, text=True, timeout=120 * TIMEOUT_MULT)
    if r.returncode:
        c.ok(False, "network namespace run", r.stdout[-2000:] + r.stderr[-3000:])
        return
    res = json.loads(r.stdout.strip().splitlines()[-1])
    lines = res["private_lines"]
    print("# private:\n# " + "\n# ".join(lines))
    warn = [ln for ln in lines if " warn relayed-address: " in ln]
    c.ok(len(warn) == 2 and warn[0].endswith(
         "warn relayed-address: relayed address 10.1.2.3 is private: clients outside its "
         "network cannot reach it; behind a 1:1 NAT (a cloud VM) set --external-ip "
         "PUBLIC/10.1.2.3"), "private relayed address, no --external-ip: the cause and fix "
         "named", "\n".join(lines))
    c.ok(res["private_summary"] == "summary: 2/2 transports passed (udp ok, tcp ok), "
         "2 warning(s)", "private: the data path works here, 2 warnings",
         res["private_summary"])
    m = res["private_metrics"]
    c.ok(m.get("tsunagu_relay_self_check_warnings") == 2 and
         m.get("tsunagu_relay_self_check_ok") == 1, "private: gauges warnings 2, ok 1", m)
    lines = res["nat_lines"]
    print("# 1:1 NAT:\n# " + "\n# ".join(lines))
    c.ok(res["nat_summary"] == "summary: 2/2 transports passed (udp ok, tcp ok), 0 warning(s)",
         "1:1 NAT with --external-ip PUBLIC/PRIVATE: passes", "\n".join(lines))
    c.ok(any(" ok   relayed-address: 203.0.113.5 (public, --external-ip for 10.1.2.3:" in ln
             for ln in lines) and
         any(" ok   data-from-peer: 3/3 datagrams 10.1.2.3:" in ln and "-> 203.0.113.5:" in ln
             for ln in lines), "1:1 NAT: public relayed address, data through the DNAT",
         "\n".join(lines))
    c.ok(res["nat_metrics"].get("tsunagu_relay_self_check_ok") == 1, "1:1 NAT: gauge ok 1")


def main():
    if sys.argv[1] == "--netns":
        netns_inner(sys.argv[2])
        return
    exe = sys.argv[1]
    c = Checks()
    with tempfile.TemporaryDirectory() as d:
        test_pass(c, exe, d)
        test_config_rest(c, exe, d)
        test_external_unreachable(c, exe)
        test_netns(c, exe)
    print(f"1..{c.n}")
    if c.failed:
        print("# failed: " + ", ".join(c.failed))
        sys.exit(1)


if __name__ == "__main__":
    main()
