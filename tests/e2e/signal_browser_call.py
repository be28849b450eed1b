#!/usr/bin/python3
"""A real browser call through tsunagu-signal and a TURN server.

Headless Chromium (Debian's `chromium`, fake camera and microphone) opens the
demo page twice; both join one room through tsunagu-signal and call each other
with iceTransportPolicy 'relay' through a TURN server on 127.0.0.1. Asserts:
from getStats() on both sides, the selected pair is relay/relay and inbound
audio and video bytes keep growing; from the TURN server's own counters, that
it relayed them.

usage: signal_browser_call.py --signal EXE [--turn coturn|tsunagu-relay]
         [--relay-exe EXE] [--policy relay|all] [--expect-pair relay|host]

--turn coturn runs Debian's turnserver with --use-auth-secret; --turn
tsunagu-relay runs `EXE --listen 127.0.0.1:P --relay-ip 127.0.0.1 --realm R
--auth-secret S --metrics-listen 127.0.0.1:M`. --policy all with
--expect-pair host shows the relay check can fail (the pages then connect
host/host without the TURN server)."""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cdp  # noqa: E402

MULT = float(os.environ.get("TIMEOUT_MULT", "1"))
procs = []


def die(msg):
    print("FAIL: " + msg, flush=True)
    sys.exit(1)


def free_port(udp_too=False):
    # tests/integration/ports.py: random ports below the relay and ephemeral ranges
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
    import ports
    try:
        return ports.pick(tcp=True, udp=udp_too)
    except RuntimeError as e:
        die(str(e))


def start(argv, log, **kw):
    p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, **kw)
    procs.append(p)
    return p


def wait_port(port, proc, what, udp=False):
    deadline = time.time() + 10 * MULT
    while time.time() < deadline:
        if proc.poll() is not None:
            die("%s exited at start-up (status %s)" % (what, proc.returncode))
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    die("%s did not listen on %d" % (what, port))


class Turn:
    """The TURN server under test and a way to read how much it relayed."""

    def __init__(self, kind, relay_exe, secret, tmp):
        self.kind, self.secret, self.tmp = kind, secret, tmp
        self.port = free_port(udp_too=True)
        self.log = open(os.path.join(tmp, "turn.log"), "w")
        if kind == "coturn":
            exe = shutil.which("turnserver")
            if not exe:
                die("turnserver not found: apt-get install coturn")
            lo = 50000 + (os.getpid() % 45) * 200
            argv = ["stdbuf", "-oL", exe, "-n", "-v", "--listening-ip=127.0.0.1",
                    "--listening-port=%d" % self.port, "--relay-ip=127.0.0.1",
                    "--min-port=%d" % lo, "--max-port=%d" % (lo + 199), "--realm=tsunagu",
                    "--use-auth-secret", "--static-auth-secret=" + secret,
                    "--allow-loopback-peers", "--no-tls", "--no-dtls", "--no-cli",
                    "--no-rfc5780", "--no-software-attribute",
                    "--pidfile=" + os.path.join(tmp, "turn.pid"),
                    "--userdb=" + os.path.join(tmp, "turndb"),
                    "--log-file=stdout", "--simple-log"]
        else:
            if not relay_exe or not os.access(relay_exe, os.X_OK):
                die("--relay-exe must name the tsunagu-relay binary")
            self.mport = free_port()
            argv = [relay_exe, "--listen", "127.0.0.1:%d" % self.port, "--relay-ip", "127.0.0.1",
                    "--realm", "tsunagu", "--auth-secret", secret,
                    "--metrics-listen", "127.0.0.1:%d" % self.mport]
        self.proc = start(argv, self.log)
        wait_port(self.port, self.proc, kind)

    def relayed(self):
        """(packets, bytes) the server says it relayed, or None if unknown yet."""
        if self.kind == "coturn":
            # coturn -v reports per-session traffic when a session closes:
            # "... rp=N, rb=N, sp=N, sb=N" (received/sent packets and bytes)
            text = open(self.log.name, errors="replace").read()
            pk = by = 0
            for m in re.finditer(r"rp=(\d+), rb=(\d+), sp=(\d+), sb=(\d+)", text):
                pk += int(m.group(1)) + int(m.group(3))
                by += int(m.group(2)) + int(m.group(4))
            return (pk, by) if pk else None
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % self.mport, timeout=5) as r:
            text = r.read().decode()
        pk = sum(float(v) for v in re.findall(r"^tsunagu_relay_packets_total\{[^}]*\} (\S+)", text, re.M))
        by = sum(float(v) for v in re.findall(r"^tsunagu_relay_bytes_total\{[^}]*\} (\S+)", text, re.M))
        return (int(pk), int(by))


class Chromium(cdp.DevToolsPipe):
    """Headless Chromium for this test (see cdp.py)."""

    def __init__(self, tmp, log):
        exe = shutil.which("chromium")
        if not exe:
            die("chromium not found: apt-get install chromium")
        super().__init__(exe, os.path.join(tmp, "chrome"),
                         ["--disable-backgrounding-occluded-windows"],
                         lambda argv, **kw: start(argv, log, start_new_session=True, **kw),
                         die, MULT)

    def eval(self, session, expr):
        value, exc = self.evaluate(session, expr)
        if exc:
            die("page exception: %s" % json.dumps(exc)[:500])
        return value


def stats(browser, session):
    v = browser.eval(session, "window.tsunaguStats ? tsunaguStats().then(s => JSON.stringify(s))"
                              " : JSON.stringify({peers: {}})")
    return json.loads(v)


def connected_peers(st):
    """Peers whose call is up: connected, a selected pair, video arriving."""
    return {pid: p for pid, p in st["peers"].items()
            if p.get("connection") == "connected" and p.get("pair") and p["inbound"].get("video")}


def cleanup(tmp):
    """Kill every process start() made (Chromium by its process group), newest
    first, and remove tmp unless KEEP_E2E is set."""
    for p in reversed(procs):
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL) if any(str(a).endswith("chromium") for a in p.args[:3]) else p.kill()
            except (ProcessLookupError, PermissionError):
                p.kill()
            p.wait()
    shutil.rmtree(tmp, ignore_errors=True) if os.environ.get("KEEP_E2E") is None else print("kept " + tmp)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--signal", required=True)
    ap.add_argument("--turn", default="coturn", choices=["coturn", "tsunagu-relay"])
    ap.add_argument("--relay-exe")
    ap.add_argument("--policy", default="relay", choices=["relay", "all"])
    ap.add_argument("--expect-pair", default="relay", choices=["relay", "host"])
    ap.add_argument("--media-seconds", type=float, default=3)
    ap.add_argument("--restart-signal", action="store_true",
                    help="also kill and restart tsunagu-signal mid-call")
    ap.add_argument("--allowed-origin-self", action="store_true",
                    help="run tsunagu-signal with --allowed-origin set to the demo page's own "
                         "origin (and one other): the page must still join")
    ap.add_argument("--members", type=int, default=2, choices=range(2, 7),
                    help="pages in the room (a mesh: each calls every other)")
    args = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="tsunagu-e2e-")
    secret = os.urandom(12).hex()
    log = open(os.path.join(tmp, "processes.log"), "w")
    t0 = time.time()
    try:
        turn = Turn(args.turn, args.relay_exe, secret, tmp)
        sport = free_port()
        sig_argv = [args.signal, "--listen", "127.0.0.1:%d" % sport,
                    "--turn-url", "turn:127.0.0.1:%d?transport=udp" % turn.port,
                    "--turn-secret", secret, "--log-level", "debug"]
        if args.allowed_origin_self:
            sig_argv += ["--allowed-origin", "https://app.example.com",
                         "--allowed-origin", "http://127.0.0.1:%d" % sport]
        sig = start(sig_argv, log)
        wait_port(sport, sig, "tsunagu-signal")
        browser = Chromium(tmp, log)
        browser.call("Target.setDiscoverTargets", {"discover": False})
        room = "e2e-" + os.urandom(4).hex()
        relay = "1" if args.policy == "relay" else "0"
        url = "http://127.0.0.1:%d/?room=%s&autojoin=1&relay=%s&name=" % (sport, room, relay)
        names = ["alice", "bob", "carol", "dave", "erin", "frank"][:args.members]
        pages = {}
        for name in names:
            # one after the other: each later joiner calls everyone already there
            pages[name] = browser.open(url + name)
            deadline = time.time() + 20 * MULT
            while not browser.eval(pages[name], "!!(window.tsunaguState && tsunaguState.joined)"):
                if time.time() > deadline:
                    die("%s did not join: %s" % (name, browser.eval(pages[name], "JSON.stringify(window.tsunaguState)")))
                time.sleep(0.2)

        def sample():
            return {n: connected_peers(stats(browser, pg)) for n, pg in pages.items()}

        deadline = time.time() + 30 * MULT
        while True:
            smp = sample()
            if all(len(v) == args.members - 1 for v in smp.values()):
                break
            if time.time() > deadline:
                die("calls did not connect in time: %s" % {n: {pid: (p["connection"], p["pair"])
                                                               for pid, p in stats(browser, pg)["peers"].items()}
                                                           for n, pg in pages.items()})
            time.sleep(0.5)
        t_up = time.time() - t0

        # "connected" can come before the first RTP of a kind (video waits for
        # its first frame): the growth window starts once every peer has
        # received bytes of both kinds (bounded), not at the connect itself
        def media_started(smp):
            return all(peer["inbound"].get(kind, {}).get("bytes", 0) > 0
                       for v in smp.values() for peer in v.values() for kind in ("audio", "video"))
        deadline = time.time() + 10 * MULT
        while not media_started(smp):
            if time.time() > deadline:
                die("no inbound media of some kind 10 s after connecting: %s" % {
                    n: {p["name"]: {k: p["inbound"].get(k, {}).get("bytes", 0) for k in ("audio", "video")}
                        for p in v.values()} for n, v in smp.items()})
            time.sleep(0.2)
            smp = sample()
        # three samples over --media-seconds: bytes must grow in each interval
        samples = [smp]
        for _ in range(2):
            time.sleep(args.media_seconds / 2)
            samples.append(sample())
        second = samples[-1]

        for side in names:
            for pid, peer in second[side].items():
                pair = peer["pair"]
                who = "%s<-%s" % (side, peer["name"])
                print("%s: selected pair %s/%s (%s %s:%s -> %s:%s), rtt %s" % (
                    who, pair["local"], pair["remote"], pair.get("relayProtocol") or pair.get("protocol"),
                    pair.get("localAddress"), pair.get("localPort"), pair.get("remoteAddress"),
                    pair.get("remotePort"), pair.get("rtt")))
                for smp in samples:
                    p = smp[side][pid]["pair"]
                    if p["local"] != args.expect_pair or p["remote"] != args.expect_pair:
                        die("%s: selected pair is %s/%s, expected %s/%s" % (
                            who, p["local"], p["remote"], args.expect_pair, args.expect_pair))
                for kind in ("audio", "video"):
                    series = [smp[side][pid]["inbound"].get(kind, {}).get("bytes", 0) for smp in samples]
                    pk = peer["inbound"].get(kind, {}).get("packets", 0)
                    print("%s: inbound %s bytes %s (%d packets)" % (who, kind, " -> ".join(map(str, series)), pk))
                    if not (0 < series[0] < series[1] < series[2]):
                        die("%s: inbound %s bytes did not keep growing: %s" % (who, kind, series))

        # a signaling drop (no leave) must not end the calls: the first page
        # resumes under its id and media keeps flowing
        a, b = pages[names[0]], pages[names[1]]
        browser.eval(a, "tsunaguDropSignaling(), 1")
        deadline = time.time() + 10 * MULT
        while not browser.eval(a, "tsunaguState.resumes >= 1 && tsunaguState.status.startsWith('in ')"):
            if time.time() > deadline:
                die("page did not resume signaling: %s" % browser.eval(a, "JSON.stringify(tsunaguState.log.slice(-5))"))
            time.sleep(0.2)
        before = sum(p["inbound"]["video"]["bytes"] for p in connected_peers(stats(browser, b)).values())
        time.sleep(1)
        second = sample()
        after = sum(p["inbound"]["video"]["bytes"] for p in second[names[1]].values())
        if not (len(second[names[1]]) == args.members - 1 and after > before):
            die("media stopped after the signaling drop")
        print("signaling dropped and resumed; the calls kept going (%s video %d -> %d bytes)"
              % (names[1], before, after))

        if args.restart_signal:
            # media never passes through signaling: with tsunagu-signal gone the
            # calls keep flowing; when it is back the pages join again
            sig.kill()
            sig.wait()
            before = sample()
            time.sleep(2)
            during = sample()
            for side in names:
                got = sum(p["inbound"]["video"]["bytes"] for p in during[side].values())
                had = sum(p["inbound"]["video"]["bytes"] for p in before[side].values())
                if not got > had:
                    die("%s: media stopped while signaling was down (%d -> %d)" % (side, had, got))
            print("signaling down 2 s: media kept flowing on every page")
            sig = start(sig.args, log)
            wait_port(sport, sig, "restarted tsunagu-signal")
            deadline = time.time() + 40 * MULT
            while True:
                smp = sample()
                rejoined = all(browser.eval(pg, "tsunaguState.log.some(l => l.includes('joining again'))")
                               for pg in pages.values())
                if rejoined and all(len(v) == args.members - 1 for v in smp.values()):
                    break
                if time.time() > deadline:
                    die("calls not re-established after the signaling restart: %s"
                        % {n: browser.eval(pg, "JSON.stringify(tsunaguState.log.slice(-6))") for n, pg in pages.items()})
                time.sleep(0.5)
            print("signaling restarted: every page joined again and its calls reconnected")
            second = sample()

        # the TURN server's own account of the call
        if args.turn == "coturn":
            # coturn reports a session's traffic when it closes: end the call
            for pg in pages.values():
                browser.eval(pg, "document.getElementById('leave').click(), 1")
        inbound_total = sum(p["inbound"][k]["bytes"] for side in second.values()
                            for p in side.values() for k in ("audio", "video"))
        # sessions report as they close, one by one: wait until the account covers the call
        deadline = time.time() + (15 if args.expect_pair == "relay" else 3) * MULT
        relayed = None
        while time.time() < deadline:
            relayed = turn.relayed()
            if relayed and relayed[1] >= inbound_total:
                break
            time.sleep(0.5)
        if args.expect_pair == "relay":
            if not relayed or relayed[1] < inbound_total:
                die("the TURN server relayed %s, less than the %d media bytes the pages received"
                    % (relayed, inbound_total))
            print("TURN server (%s) relayed %d packets, %d bytes; pages received %d media bytes"
                  % (args.turn, relayed[0], relayed[1], inbound_total))
        else:
            print("TURN server relayed %s (policy all: host pair, relay not needed)" % (relayed,))
        print("ok: %d-member browser call up %.1fs after start, total %.1fs" % (args.members, t_up, time.time() - t0))
    finally:
        cleanup(tmp)


if __name__ == "__main__":
    main()
