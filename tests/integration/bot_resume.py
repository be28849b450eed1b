#!/usr/bin/python3
"""bot_resume.py - the desktop-client bot keeps its place when its signaling
connection drops: bot A reaches signaling through a TCP proxy that the test
cuts mid-call; A reconnects, sends `resume` with the token from `joined`
(DESIGN.md), and the call with bot B (connected directly) goes on: B never
sees peer-left, both legs carry audio to the end with no loss.

usage: bot_resume.py --bot PATH [--relay ... --signal ...]"""
import argparse, json, os, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bot_harness import Stack, add_server_args, fail, TIMEOUT_MULT  # noqa: E402
from lb_proxy import FixedProxy  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    add_server_args(ap)
    ap.add_argument("--duration", type=int, default=10)
    a = ap.parse_args()
    checks = 0
    with Stack(a) as st:
        turn = st.start_relay()
        url = st.start_signal(turn)
        proxy = FixedProxy(st.sig_port).__enter__()
        try:
            room = "resume%d" % os.getpid()
            rep_a, rep_b = os.path.join(st.dir, "a.json"), os.path.join(st.dir, "b.json")
            common = ["--room", room, "--relay-only", "--log-level", "info", "--duration",
                      str(a.duration)]
            bot_a = st.spawn([a.bot, "--signal", "ws://127.0.0.1:%d/ws" % proxy.port,
                              "--report", rep_a] + common, "a.log")
            time.sleep(1.0)
            bot_b = st.spawn([a.bot, "--signal", url, "--report", rep_b] + common, "b.log")
            time.sleep(3.0)
            proxy.cut()
            print("# cut bot A's signaling connection at ~4 s")
            for b, name in ((bot_a, "A"), (bot_b, "B")):
                try:
                    b.wait(timeout=(a.duration + 20) * TIMEOUT_MULT)
                except subprocess.TimeoutExpired:
                    fail("bot %s did not finish" % name)
        finally:
            proxy.stop()
        la, lb = st.log("a.log"), st.log("b.log")
        if "resumed" not in la:
            print(la[-3000:])
            fail("bot A never resumed its place")
        print("ok - bot A resumed its place after the cut")
        checks += 1
        if "left" in lb:
            print(lb[-2000:])
            fail("bot B saw bot A leave")
        print("ok - bot B saw no peer-left")
        checks += 1
        for rep, name, code in ((rep_a, "A", bot_a.returncode), (rep_b, "B", bot_b.returncode)):
            if code != 0:
                fail("bot %s exit code %d" % (name, code))
            r = json.load(open(rep))
            legs = [c for c in r["calls"] if c["media"]]
            if len(legs) != 1:
                fail("bot %s: %d calls with audio, want 1" % (name, len(legs)))
            c = legs[0]
            # B joined 1 s after A: about duration-1 s of audio, 50 packets/s.
            if c["sent"] < 50 * (a.duration - 3) or c["lost"] != 0:
                fail("bot %s: sent %d lost %d: the call did not go on" % (name, c["sent"], c["lost"]))
            print("ok - bot %s: %d packets sent, %d received, none lost, end: %s" % (
                name, c["sent"], c["received"], c["end_reason"]))
            checks += 1
    print("PASS (%d checks)" % checks)


if __name__ == "__main__":
    main()
