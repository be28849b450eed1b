#!/usr/bin/python3
"""startup_refuse.py - what cannot work stops start-up, what probably will not
is warned about (issue 10, item 2), and each program says which build it is.

  relay EXE   tsunagu-relay: exit 2 naming the flag for no credentials (no
              --user, no --auth-secret), --listen / --tls-listen / --relay-ip
              on an address this host does not have, a TLS key that does not
              match its certificate, an --external-ip PUBLIC/PRIVATE whose
              PRIVATE is not here or not the relay address; the warnings
              (--external-ip private or loopback, a public relay address with
              a private --external-ip, relay ports inside the kernel's
              ephemeral range); coturn's --external-ip 203.0.113.5/127.0.0.1
              accepted and advertised; the same refusals on SIGHUP keep the
              old settings; --version and tsunagu_build_info on /metrics.
  signal EXE  tsunagu-signal: --turn-url turn: without --turn-secret, --listen
              on an address this host does not have, a certificate and key
              that do not match (each exit 2 naming the flag; a stun: URL
              alone is fine); a refused SIGHUP keeps the old settings;
              --version and tsunagu_build_info on /metrics.
  bot EXE     tsunagu-bot --version.

--version prints "<program> <meson version> (<git describe>)", or "(unknown)"
for a build outside a git checkout. The public-relay-address warning needs a
public address on this host: the relay runs in a user and network namespace
(unshare -rn) with 198.51.100.7 on its loopback; where namespaces are not
allowed that check fails (never skipped). Every process is
stopped by its PID."""
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from relay_stun import Checks, Client, Relay, TIMEOUT_MULT, free_port  # noqa: E402

T = 10 * TIMEOUT_MULT


def run(argv, timeout=T):
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def not_here():
    """An IPv4 address this host does not have (the bind the programs do)."""
    for ip in ("198.51.100.254", "203.0.113.254", "192.0.2.254", "10.254.254.253"):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.bind((ip, 0))
        except OSError:
            return ip
        finally:
            s.close()
    raise SystemExit("no test address is missing from this host")


def make_certs(tmp):
    """Two self-signed pairs: (cert_a, key_a, key_b)."""
    out = []
    for n in ("a", "b"):
        crt, key = os.path.join(tmp, n + ".crt"), os.path.join(tmp, n + ".key")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-days", "1", "-subj", "/CN=" + n,
                        "-keyout", key, "-out", crt], check=True, capture_output=True, timeout=30)
        out.append((crt, key))
    return out[0][0], out[0][1], out[1][1]


def expected_version(prog):
    """The --version line this tree should print, as a regex."""
    ver = re.search(r"version\s*:\s*'([^']+)'", open(os.path.join(ROOT, "meson.build")).read())
    try:
        desc = subprocess.run(["git", "-C", ROOT, "describe", "--always", "--dirty", "--tags"],
                              capture_output=True, text=True, timeout=10)
        commit = desc.stdout.strip() if desc.returncode == 0 else "unknown"
    except OSError:
        commit = "unknown"
    # the tree may have become dirty (or clean) since the build
    base = re.escape(commit[:-len("-dirty")] if commit.endswith("-dirty") else commit)
    return re.compile(r"^%s %s \((%s(-dirty)?)\)\n$" % (re.escape(prog), re.escape(ver.group(1)),
                                                         base))


def check_version(c, exe, prog):
    rc, out, err = run([exe, "--version"])
    m = expected_version(prog).match(out)
    c.ok(rc == 0 and m is not None, f"{prog} --version prints '{prog} VERSION (DESCRIBE)'",
         f"rc={rc} out={out!r} err={err!r} want={expected_version(prog).pattern}")
    return m.group(1) if m else None


def check_build_info(c, text, commit, who):
    ver = re.search(r"version\s*:\s*'([^']+)'", open(os.path.join(ROOT, "meson.build")).read())
    want = 'tsunagu_build_info{version="%s",commit="%s"} 1' % (ver.group(1), commit)
    lines = [ln for ln in text.splitlines() if ln.startswith("tsunagu_build_info")]
    c.ok(lines == [want] and "# TYPE tsunagu_build_info gauge" in text,
         f"{who} /metrics has {want}", f"got {lines}")


def wait_log(path, needle, proc, secs=T):
    deadline = time.time() + secs
    while time.time() < deadline:
        text = open(path, errors="replace").read()
        if needle in text or proc.poll() is not None:
            return text
        time.sleep(0.05)
    return open(path, errors="replace").read()


# ---- relay ----

def relay_base():
    return ["--listen", f"127.0.0.1:{free_port()}",
            "--metrics-listen", f"127.0.0.1:{free_port(socket.SOCK_STREAM)}",
            "--relay-ports", "20000-20099"]


def relay_refusals(c, exe, tmp):
    absent = not_here()
    crt, key, other_key = make_certs(tmp)
    tport = free_port(socket.SOCK_STREAM)
    cases = [
        ("no credentials", [], ["--user", "--auth-secret"]),
        ("listen elsewhere", ["--user", "a:a", "--listen", f"{absent}:3478"],
         ["listen", absent, "not an address of this host"]),
        ("tls-listen elsewhere", ["--user", "a:a", "--tls-listen", f"{absent}:5349", "--cert", crt,
                                  "--key", key], ["tls-listen", absent, "not an address of this host"]),
        ("relay-ip elsewhere", ["--user", "a:a", "--relay-ip", absent],
         ["relay-ip", absent, "not an address of this host"]),
        ("key not of the certificate", ["--auth-secret", "s", "--tls-listen",
                                        f"127.0.0.1:{tport}", "--cert", crt, "--key", other_key],
         ["key", "does not match the certificate"]),
        ("external-ip PRIVATE elsewhere", ["--user", "a:a", "--external-ip", f"203.0.113.5/{absent}"],
         ["external-ip", absent, "not an address of this host"]),
        ("external-ip PRIVATE not the relay address",
         ["--user", "a:a", "--relay-ip", "127.0.0.1", "--external-ip", "203.0.113.5/127.0.0.2"],
         ["external-ip", "not the relay address"]),
        ("external-ip families differ", ["--user", "a:a", "--external-ip", "203.0.113.5/::1"],
         ["external-ip", "one family"]),
    ]
    for name, args, words in cases:
        rc, _, err = run([exe] + relay_base() + args)
        c.ok(rc == 2 and all(w in err for w in words),
             f"relay: {name}: exit 2 naming {words[0]}", f"rc={rc} err={err!r}")
        print("# " + err.strip().replace("\n", "\n# "))


def start_logged(argv, tmp, name):
    log = os.path.join(tmp, name)
    with open(log, "w") as f:
        p = subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT)
    return p, log


def stop(p):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        time.sleep(0.1)
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
        try:
            p.wait(T)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)
    return p.returncode


WARNED = ("warn  tsunagu-relay external-ip:", "warn  tsunagu-relay relay-ports:")


def relay_warnings(c, exe, tmp):
    elo, ehi = (int(x) for x in open("/proc/sys/net/ipv4/ip_local_port_range").read().split())
    cases = [
        ("private external-ip", ["--external-ip", "10.0.0.5"],
         "external-ip: 10.0.0.5 is a private address: clients outside its network cannot reach "
         "the relayed addresses advertised with it"),
        ("loopback external-ip", ["--external-ip", "127.0.0.2"],
         "external-ip: 127.0.0.2 is a loopback address: clients outside this host cannot reach "
         "the relayed addresses advertised with it"),
        ("relay ports in the ephemeral range", ["--relay-ports", f"{elo}-{elo + 99}"],
         f"relay-ports: {elo}-{elo + 99} overlaps the kernel's ephemeral port range {elo}-{ehi} "
         "(net.ipv4.ip_local_port_range)"),
    ]
    for name, args, want in cases:
        argv = [exe] + relay_base() + ["--user", "a:a", "--drain-seconds", "0"] + args
        p, log = start_logged(argv, tmp, "warn.log")
        text = wait_log(log, "started:", p)
        rc = stop(p)
        c.ok("started:" in text and want in text and rc == 0,
             f"relay: {name}: starts with the warning", f"rc={rc} log={text!r}")
    # none of them for a plain configuration outside the ephemeral range
    quiet = f"{elo - 300}-{elo - 201}" if elo > 1400 else f"{ehi + 1}-{ehi + 100}"
    p, log = start_logged([exe] + relay_base()[:-2] + ["--relay-ports", quiet, "--user", "a:a",
                                                       "--drain-seconds", "0"], tmp, "quiet.log")
    text = wait_log(log, "started:", p)
    stop(p)
    c.ok("started:" in text and not any(w in text for w in WARNED),
         "relay: no warning for a sound configuration", text)
    # a public relay address with a private external-ip: in a namespace of our own
    pub = "198.51.100.7"
    mport = free_port(socket.SOCK_STREAM)
    script = ("ip link set lo up && ip addr add %s/32 dev lo && exec \"$0\" \"$@\"" % pub)
    argv = ["unshare", "-rn", "sh", "-c", script, exe, "--listen", f"{pub}:3478",
            "--relay-ip", pub, "--external-ip", "10.0.0.5", "--user", "a:a",
            "--relay-ports", "20000-20099", "--metrics-listen", f"127.0.0.1:{mport}",
            "--drain-seconds", "0"]
    probe = subprocess.run(["unshare", "-rn", "true"], capture_output=True)
    if probe.returncode != 0:
        # a missing tool fails loudly: this machine kind (and CI) runs as root
        c.ok(False, "relay: public relay-ip warning: unshare -rn is not allowed here "
             f"({probe.stderr.decode().strip()})")
        return
    p, log = start_logged(argv, tmp, "public.log")
    text = wait_log(log, "started:", p)
    rc = stop(p)
    want = (f"external-ip: 10.0.0.5 is private but relay-ip {pub} is public: clients get the "
            "private address instead of the public one the relay has")
    c.ok("started:" in text and want in text and rc == 0,
         "relay: public relay address with a private external-ip: starts with the warning",
         f"rc={rc} log={text!r}")


def relay_external_pair(c, exe):
    """coturn's PUBLIC/PRIVATE: accepted, PRIVATE is the relay address (the
    listener is a wildcard and no --relay-ip is given), PUBLIC is what
    clients get."""
    relay = Relay(exe, "--user", "a:a", "--external-ip", "203.0.113.5/127.0.0.1",
                  listen_ip="0.0.0.0", relay_ip=False)
    try:
        log = relay.logtext()
        c.ok("relay 127.0.0.1 /" in log, "relay: --external-ip 203.0.113.5/127.0.0.1 starts, "
             "relaying on PRIVATE", log)
        c.ok(not any(w in log for w in WARNED), "relay: no warning for a public external-ip", log)
        cl = Client(relay.addr, user="a", password="a")
        m = cl.allocate()
        c.success(m, "relay: --external-ip 203.0.113.5/127.0.0.1: Allocate succeeds")
        c.ok(cl.relayed is not None and cl.relayed[0] == "203.0.113.5",
             "relay: XOR-RELAYED-ADDRESS carries the PUBLIC address", f"got {cl.relayed}")
        cl.close()
    finally:
        relay.stop()


def relay_reload(c, exe, tmp):
    """A SIGHUP that would produce a refused configuration keeps the old one."""
    conf = os.path.join(tmp, "relay.conf")
    with open(conf, "w") as f:
        f.write("user = alice:one\n")
    relay = Relay(exe, config=conf)
    absent = not_here()
    try:
        steps = [("no credentials", "realm = tsunagu\n", "no credentials"),
                 ("relay-ip elsewhere", f"user = alice:one\nrelay-ip = {absent}\n",
                  "not an address of this host"),
                 ("external-ip PRIVATE not the relay address",
                  "user = alice:one\nexternal-ip = 203.0.113.5/127.0.0.2\n",
                  "not the relay address")]
        for i, (name, body, why) in enumerate(steps, 1):
            with open(conf, "w") as f:
                f.write(body)
            relay.signal(signal.SIGHUP)
            deadline = time.time() + T
            while time.time() < deadline and relay.metric(
                    'tsunagu_relay_config_reloads_total{result="failed"}') < i:
                time.sleep(0.05)
            log = relay.logtext()
            c.ok(relay.proc.poll() is None and f"reload failed, keeping the old settings" in log
                 and why in log.split("reload failed")[-1],
                 f"relay: SIGHUP with {name}: refused, still running", log)
            cl = Client(relay.addr, user="alice", password="one")
            c.success(cl.allocate(), f"relay: after the refused SIGHUP ({name}) the old user "
                      "still allocates")
            cl.close()
    finally:
        relay.stop()


def relay_build(c, exe):
    commit = check_version(c, exe, "tsunagu-relay")
    relay = Relay(exe, "--user", "a:a")
    try:
        _, text = relay.http("/metrics")
        check_build_info(c, text, commit, "relay")
    finally:
        relay.stop()


# ---- signaling ----

def signal_refusals(c, exe, tmp):
    absent = not_here()
    crt, key, other_key = make_certs(tmp)

    def base():
        return ["--listen", f"127.0.0.1:{free_port(socket.SOCK_STREAM)}"]
    cases = [
        ("turn-url without turn-secret", ["--turn-url", "turn:127.0.0.1:3478"],
         ["turn-url", "--turn-secret", "turn:127.0.0.1:3478"]),
        ("turns-url without turn-secret", ["--turn-url", "stun:127.0.0.1:3478", "--turn-url",
                                           "turns:relay.example.com:5349?transport=tcp"],
         ["turn-url", "--turn-secret", "turns:relay.example.com"]),
        ("listen elsewhere", ["--listen", f"{absent}:8080"],
         ["listen", absent, "not an address of this host"]),
        ("key not of the certificate", ["--cert", crt, "--key", other_key],
         ["key", "does not match the certificate"]),
    ]
    for name, args, words in cases:
        rc, _, err = run([exe] + base() + args)
        c.ok(rc == 2 and all(w in err for w in words),
             f"signal: {name}: exit 2 naming {words[0]}", f"rc={rc} err={err!r}")
        print("# " + err.strip().replace("\n", "\n# "))
    # a STUN server needs no credentials: not refused
    port = free_port(socket.SOCK_STREAM)
    p, log = start_logged([exe, "--listen", f"127.0.0.1:{port}", "--turn-url",
                           "stun:stun.example.com:3478"], tmp, "stun.log")
    text = wait_log(log, "listening on", p)
    stop(p)
    c.ok("listening on" in text, "signal: a stun: URL alone starts", text)


def signal_reload_and_build(c, exe, tmp):
    from signal_lib import Server
    commit = check_version(c, exe, "tsunagu-signal")
    conf = os.path.join(tmp, "signal.conf")
    with open(conf, "w") as f:
        f.write("turn-url = turn:127.0.0.1:3478\nturn-secret = s3cret\n")
    with Server(exe, "--config", conf) as srv:
        check_build_info(c, srv.http("/metrics")[1], commit, "signal")
        absent = not_here()
        steps = [("turn-url without turn-secret", "turn-url = turn:127.0.0.1:3478\n",
                  "needs --turn-secret"),
                 ("listen elsewhere", "turn-url = turn:127.0.0.1:3478\nturn-secret = s3cret\n"
                  f"listen = {absent}:8080\n", "not an address of this host")]
        for i, (name, body, why) in enumerate(steps, 1):
            with open(conf, "w") as f:
                f.write(body)
            srv.signal(signal.SIGHUP)
            deadline = time.time() + T
            key = 'tsunagu_signal_config_reloads_total{result="failed"}'
            while time.time() < deadline and srv.metrics().get(key, 0) < i:
                time.sleep(0.05)
            log = srv.logtext()
            st, _ = srv.http("/healthz")
            c.ok(srv.proc.poll() is None and st == 200 and "reload failed" in log
                 and why in log.split("reload failed")[-1],
                 f"signal: SIGHUP with {name}: refused, still serving", log[-2000:])


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("relay", "signal", "bot"):
        raise SystemExit("usage: startup_refuse.py relay|signal|bot EXE")
    what, exe = sys.argv[1], os.path.abspath(sys.argv[2])
    c = Checks()
    tmp = tempfile.mkdtemp(prefix="refuse-")
    try:
        if what == "relay":
            relay_refusals(c, exe, tmp)
            relay_warnings(c, exe, tmp)
            relay_external_pair(c, exe)
            relay_reload(c, exe, tmp)
            relay_build(c, exe)
        elif what == "signal":
            signal_refusals(c, exe, tmp)
            signal_reload_and_build(c, exe, tmp)
        else:
            check_version(c, exe, "tsunagu-bot")
    finally:
        subprocess.run(["rm", "-rf", tmp])
    return c.done()


if __name__ == "__main__":
    sys.exit(main())
