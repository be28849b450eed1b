#!/usr/bin/python3
"""Rolling restart with real browsers: two demo pages in a call stay in it
when their signaling node drains.

Two tsunagu-signal nodes in cluster mode (a real redis-server) behind a
load-balancer stand-in (tests/integration/lb_proxy.py: each new connection to
the first node whose /healthz answers 200), a TURN server (tsunagu-relay, or
Debian's coturn) and headless Chromium opening the demo page twice through the
balancer (so both pages and both WebSockets are on node 1), relay only. Node 1
gets SIGTERM mid-call. Asserted from each page's window.tsunaguState: the
drain notice came ("drain":"resume"), the page resumed once on a new
connection, never joined again, showed no error, its old connection closed
with 4001, no new offer or answer was made (no renegotiation), and the call
stayed connected with audio and video bytes growing; node 1 exits with status
0 long before --drain-seconds.

usage: signal_browser_drain.py --signal EXE [--turn coturn|tsunagu-relay] [--relay-exe EXE]"""
import argparse
import json
import os
import re
import signal
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import signal_browser_call as sbc  # noqa: E402  (Turn, Chromium, stats, ...)
from lb_proxy import HealthProxy  # noqa: E402
import signal_cluster  # noqa: E402  (Redis)

MULT = sbc.MULT
DRAIN_S = 15
die = sbc.die


def media(st):
    """(audio+video inbound bytes, packets lost) over the page's calls."""
    by = lost = 0
    for p in st["peers"].values():
        for k in ("audio", "video"):
            s = p["inbound"].get(k, {})
            by += s.get("bytes", 0)
            lost += s.get("lost", 0)
    return by, lost


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--signal", required=True)
    ap.add_argument("--turn", default="coturn", choices=["coturn", "tsunagu-relay"])
    ap.add_argument("--relay-exe")
    args = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="tsunagu-e2e-drain-")
    secret = os.urandom(12).hex()
    log = open(os.path.join(tmp, "processes.log"), "w")
    try:
        redis = signal_cluster.Redis()
    except AssertionError as e:
        die(str(e))
    lb = None
    try:
        with redis as r:
            turn = sbc.Turn(args.turn, args.relay_exe, secret, tmp)
            nodes, ports = [], []
            for i in (1, 2):
                port = sbc.free_port()
                nlog = open(os.path.join(tmp, "node%d.log" % i), "w")
                p = sbc.start([args.signal, "--listen", "127.0.0.1:%d" % port,
                               "--turn-url", "turn:127.0.0.1:%d?transport=udp" % turn.port,
                               "--turn-secret", secret, "--log-level", "debug", "--redis", r.url,
                               "--redis-node-ttl", "2", "--drain-seconds", str(DRAIN_S)], nlog)
                sbc.wait_port(port, p, "tsunagu-signal node %d" % i)
                nodes.append(p)
                ports.append(port)
            lb = HealthProxy(ports).__enter__()
            browser = sbc.Chromium(tmp, log)
            browser.call("Target.setDiscoverTargets", {"discover": False})
            room = "drain-" + os.urandom(4).hex()
            url = "http://127.0.0.1:%d/?room=%s&autojoin=1&relay=1&name=" % (lb.port, room)
            names = ["alice", "bob"]
            pages = {}
            for name in names:
                pages[name] = browser.open(url + name)
                deadline = time.time() + 20 * MULT
                while not browser.eval(pages[name], "!!(window.tsunaguState && tsunaguState.joined)"):
                    if time.time() > deadline:
                        die("%s did not join: %s" % (name, browser.eval(
                            pages[name], "JSON.stringify(window.tsunaguState && tsunaguState.log)")))
                    time.sleep(0.2)

            def sample():
                return {n: sbc.stats(browser, pg) for n, pg in pages.items()}

            def up(smp):
                return all(len(sbc.connected_peers(v)) == 1 for v in smp.values())

            deadline = time.time() + 30 * MULT
            while not up(sample()):
                if time.time() > deadline:
                    die("calls did not connect in time")
                time.sleep(0.5)
            time.sleep(1)
            before = sample()
            if not all(rt == ports[0] for rt in lb.routed if rt is not None):
                die("pages did not all land on node 1: %r" % lb.routed)
            offers0 = {n: browser.eval(pg, "tsunaguState.log.filter(l => /offer sent|answered/.test(l)).length")
                       for n, pg in pages.items()}

            t0 = time.time()
            nodes[0].send_signal(signal.SIGTERM)
            resumed_at = {}
            deadline = time.time() + 10 * MULT
            while len(resumed_at) < len(pages):
                for n, pg in pages.items():
                    if n not in resumed_at and browser.eval(pg, "tsunaguState.resumes >= 1"):
                        resumed_at[n] = time.time() - t0
                if time.time() > deadline:
                    die("pages did not resume after the SIGTERM: %s" % {
                        n: browser.eval(pg, "JSON.stringify(tsunaguState.log.slice(-8))")
                        for n, pg in pages.items()})
                time.sleep(0.05)
            try:
                code = nodes[0].wait(timeout=(DRAIN_S + 5) * MULT)
            except Exception:  # noqa: BLE001
                die("node 1 did not exit")
            t_exit = time.time() - t0
            if code != 0:
                die("node 1 exited with status %d" % code)
            if t_exit >= DRAIN_S:
                die("node 1 waited for the whole drain (%.1f s): the members did not move" % t_exit)
            print("SIGTERM to node 1: pages resumed after %s; node 1 exited 0 after %.0f ms"
                  % (", ".join("%s %.0f ms" % (n, t * 1e3) for n, t in sorted(resumed_at.items())),
                     t_exit * 1e3))

            # the call's media, sampled for 3 s after the move: connected throughout, growing
            samples = [before]
            for _ in range(3):
                time.sleep(1)
                smp = sample()
                if not up(smp):
                    die("call not connected after the drain: %s; logs %s" % (
                        {n: {pid: p["connection"] for pid, p in v["peers"].items()} for n, v in smp.items()},
                        {n: browser.eval(pg, "JSON.stringify(tsunaguState.log.slice(-12))")
                         for n, pg in pages.items()}))
                samples.append(smp)
            for n in names:
                series = [media(s[n])[0] for s in samples]
                if not all(x < y for x, y in zip(series, series[1:])):
                    die("%s: inbound media bytes did not keep growing: %s" % (n, series))
                lost = [media(s[n])[1] for s in samples]
                print("%s: inbound audio+video bytes %s; packets lost %d before the drain, %d after"
                      % (n, " -> ".join(map(str, series)), lost[0], lost[-1]))
            for n, pg in pages.items():
                st = json.loads(browser.eval(pg, "JSON.stringify(tsunaguState)"))
                offers = browser.eval(pg, "tsunaguState.log.filter(l => /offer sent|answered/.test(l)).length")
                why = None
                if st["drains"] != 1 or st["drainResumes"] != 1:
                    why = "drain notices %d, drain resumes %d (want 1, 1)" % (st["drains"], st["drainResumes"])
                elif st["resumes"] != 1 or st["joins"] != 1:
                    why = "resumes %d, joins %d (want 1, 1)" % (st["resumes"], st["joins"])
                elif st["errors"]:
                    why = "errors shown: %r" % st["errors"]
                elif [re.search(r"old connection closed \((\d+)\)", l).group(1) for l in st["log"]
                      if "old connection closed (" in l] != ["4001"]:
                    # tsunagu.js says how the draining node's connection ended in its log
                    # (the demo page shows the library's log lines)
                    why = "old connection closes %r (want one, 4001)" % [
                        l for l in st["log"] if "old connection closed" in l]
                elif offers != offers0[n]:
                    why = "renegotiated (%d offers/answers, %d before)" % (offers, offers0[n])
                if why:
                    die("%s: %s; log: %s" % (n, why, st["log"][-10:]))
                print("ok - %s: resumed once on node 2 at the drain notice, no re-join, no error, "
                      "old connection closed 4001, no renegotiation" % n)
            routed = list(lb.routed)
            if ports[1] not in routed:
                die("no connection went to node 2: %r" % routed)
            print("ok: balancer routes %r; rolling restart lossless for the pages" % routed)
    finally:
        if lb:
            lb.stop()
        sbc.cleanup(tmp)


if __name__ == "__main__":
    main()
