#!/usr/bin/python3
"""bot_drain.py - a rolling restart is lossless for bots in a call: two
tsunagu-signal nodes in cluster mode (a real redis-server) behind a
load-balancer stand-in (lb_proxy.py: each new connection to the first node
whose /healthz answers 200) and a real tsunagu-relay. Both bots join through
the balancer (so both land on node 1) and call each other, relay only; node 1
gets SIGTERM mid-call. Its drain notice says "drain":"resume": both bots open
a new connection at once (the balancer sends it to node 2, node 1 answers
503), resume there and treat the 4001 close of the old connection as
expected. Checked: both log `resumed` and no second join, nobody saw a
peer-left, no renegotiation, the call's audio runs to the end with 0 packets
lost, node 1 exits with status 0 (well before --drain-seconds), both members
are registered on node 2 in Redis.

usage: bot_drain.py --bot PATH --relay tsunagu --relay-exe PATH --signal tsunagu
                    --signal-exe PATH [--duration S]"""
import argparse, json, os, re, signal, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bot_harness import SECRET, Stack, add_server_args, fail, free_port, wait_tcp, TIMEOUT_MULT  # noqa: E402
from lb_proxy import HealthProxy  # noqa: E402
import signal_cluster  # noqa: E402  (Redis: a real redis-server on a free port)

DRAIN_S = 10


def main():
    ap = argparse.ArgumentParser()
    add_server_args(ap)
    ap.add_argument("--duration", type=int, default=8)
    a = ap.parse_args()
    if a.signal != "tsunagu" or a.relay != "tsunagu":
        fail("needs the real servers: --signal tsunagu --relay tsunagu")
    checks = 0
    try:
        redis = signal_cluster.Redis()
    except AssertionError as e:
        fail(str(e))
    with redis as r, Stack(a) as st:
        turn = st.start_relay()
        nodes, ports = [], []
        for i in (1, 2):
            port = free_port()
            p = st.spawn([a.signal_exe, "--listen", "127.0.0.1:%d" % port, "--turn-url", turn,
                          "--turn-secret", SECRET, "--max-connections-per-ip", "0",
                          "--max-unjoined-per-ip", "0", "--max-joins-per-ip-per-sec", "0",
                          "--redis", r.url, "--redis-node-ttl", "2", "--drain-seconds",
                          str(DRAIN_S), "--log-level", "debug"], "node%d.log" % i)
            wait_tcp(port, 10, p, "tsunagu-signal node %d" % i)
            nodes.append(p)
            ports.append(port)
        with HealthProxy(ports) as lb:
            url = "ws://127.0.0.1:%d/ws" % lb.port
            room = "drain%d" % os.getpid()
            reps = [os.path.join(st.dir, x + ".json") for x in ("a", "b")]
            common = ["--signal", url, "--room", room, "--relay-only", "--log-level", "info",
                      "--duration", str(a.duration)]
            bot_a = st.spawn([a.bot, "--report", reps[0]] + common, "a.log")
            time.sleep(1.0)
            bot_b = st.spawn([a.bot, "--report", reps[1]] + common, "b.log")
            # wait until the call carries audio (both logs say so), then drain node 1
            end = time.time() + 15 * TIMEOUT_MULT
            while not all("joined as" in st.log(x) for x in ("a.log", "b.log")):
                if time.time() > end:
                    fail("bots did not join: " + st.log("a.log")[-1500:] + st.log("b.log")[-1500:])
                time.sleep(0.1)
            if lb.routed[:2] != [ports[0], ports[0]]:
                fail("the balancer did not send both bots to node 1: %r" % lb.routed)
            time.sleep(2.5)
            t0 = time.time()
            nodes[0].send_signal(signal.SIGTERM)
            print("# SIGTERM to node 1 at ~3.5 s of the call")
            # node 1 exits once both members moved, long before --drain-seconds
            try:
                code = nodes[0].wait(timeout=(DRAIN_S + 5) * TIMEOUT_MULT)
            except subprocess.TimeoutExpired:
                fail("node 1 did not exit")
            t_exit = time.time() - t0
            if code != 0:
                fail("node 1 exit status %d" % code)
            print("ok - node 1 exited with status 0 %.0f ms after SIGTERM (drain-seconds %d)"
                  % (t_exit * 1e3, DRAIN_S))
            checks += 1
            if t_exit >= DRAIN_S:
                fail("node 1 waited for the whole drain: the members did not move")
            for b, name in ((bot_a, "A"), (bot_b, "B")):
                try:
                    b.wait(timeout=(a.duration + 20) * TIMEOUT_MULT)
                except subprocess.TimeoutExpired:
                    fail("bot %s did not finish" % name)
            routed = list(lb.routed)
        n1 = st.log("node1.log")
        handed = len(re.findall(r"handed over to node", n1))
        if handed != 2:
            print(n1[-3000:])
            fail("node 1 handed over %d members, want 2" % handed)
        print("ok - node 1 handed both members over; balancer routes: %r" % routed)
        checks += 1
        for log, name in (("a.log", "A"), ("b.log", "B")):
            t = st.log(log)
            why = None
            if "resumed our place" not in t:
                why = "never resumed"
            elif t.count("joined as") != 1:
                why = "joined %d times" % t.count("joined as")
            elif re.search(r"peer \S+ left", t):
                why = "saw its peer leave"
            elif "renegotiation" in t or "resume refused" in t or "signaling closed" in t:
                why = "renegotiated, was refused or lost signaling"
            elif "old connection closed (4001)" not in t:
                why = "its old connection was not closed with 4001"
            if why:
                print(t[-3000:])
                fail("bot %s %s" % (name, why))
            print("ok - bot %s resumed on node 2 at the drain notice (no second join, no "
                  "peer-left, no renegotiation; old connection closed with 4001)" % name)
            checks += 1
        for rep, name, code in ((reps[0], "A", bot_a.returncode), (reps[1], "B", bot_b.returncode)):
            if code != 0:
                fail("bot %s exit code %d" % (name, code))
            rj = json.load(open(rep))
            legs = [c for c in rj["calls"] if c["media"]]
            if len(legs) != 1 or len(rj["calls"]) != 1:
                fail("bot %s: %d calls, %d with audio; want 1" % (name, len(rj["calls"]), len(legs)))
            c = legs[0]
            if c["sent"] < 50 * (a.duration - 3) or c["lost"] != 0:
                fail("bot %s: sent %d lost %d: the call did not go on" % (name, c["sent"], c["lost"]))
            print("ok - bot %s: %d packets sent, %d received, %d lost" % (
                name, c["sent"], c["received"], c["lost"]))
            checks += 1
        # Redis: node 1 is gone from the cluster, the room's 2 members live on node 2
        live = r.cmd("SMEMBERS", "tsu:nodes") or []
        if len(live) != 1:
            fail("nodes registered after the drain: %r" % live)
        print("ok - one node left in Redis")
        checks += 1
    print("PASS (%d checks)" % checks)


if __name__ == "__main__":
    main()
