#!/usr/bin/python3
"""phone_listen.py - two tsunagu-phones call through a loopback tsunagu-relay
(relay only) and tsunagu-signal, and the test listens (issue 18 item 3,
docs/phone-tests.md).

A private PulseAudio daemon (pulse.py) gives each phone a virtual microphone
and speaker (null sinks micA/spkA, micB/spkB). Once the call carries audio,
espeak-ng speech is played into micA while spkB.monitor is recorded; the
recording and phone B's own --record are compared with the speech
(audiocmp.py: dB envelope correlation at the best lag, and the lag), and
micA.monitor, recorded side by side, dates the speech's entry: mouth-to-ear
(listen_lib.measure). The same measurement with no phone in the path (the
control) must give 0 ms; its figure is quoted. CPU of phone A (the sender) and phone B (the
receiver) from /proc/PID/stat over the speech.

Asserted (the issue's targets): envelope correlation >= 0.8 without loss,
>= 0.6 with --loss 5 (phone A's --drop-percent: A does not send 5% of its
packets; B rebuilds from Opus FEC or conceals); mouth-to-ear < 150 ms
(jitter buffer included) without loss; each phone under 5% of a core; the
path relay/relay; with loss, B's report shows the loss and its FEC/PLC.
Prints every figure.

usage: phone_listen.py --phone P --relay-exe R --signal-exe S [--loss PCT]"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import listen_lib as L  # noqa: E402
import pulse  # noqa: E402
from bot_harness import Stack  # noqa: E402


def run(a, st, pa, checks):
    wav = pulse.speech(pa.dir, pulse.TEXT_A, "speech")
    for s in ("micA", "spkA", "micB", "spkB"):
        pa.null_sink(s)
    turn = st.start_relay()
    url = st.start_signal(turn)
    room = "listen%d" % os.getpid()
    rep = {n: os.path.join(st.dir, "phone%s.json" % n) for n in "AB"}
    rec_b = os.path.join(pa.dir, "recordB.wav")
    extra_a = ["--report", rep["A"]] + a.phone_arg
    if a.loss:
        extra_a += ["--drop-percent", str(a.loss), "--drop-seed", "7"]
    pa_ = st.spawn(L.phone_argv(a.phone, url, room, "A", "micA", "spkA", extra_a),
                   "phoneA.log", env=pa.env)
    pb = st.spawn(L.phone_argv(a.phone, url, room, "B", "micB", "spkB",
                               ["--report", rep["B"], "--record", rec_b] + a.phone_arg),
                  "phoneB.log", env=pa.env)
    procs = {"A": pa_, "B": pb}
    logs = {n: (lambda n=n: st.log("phone%s.log" % n)) for n in "AB"}
    return L.judge_call(pa, wav, procs, logs, rep, rec_b, a.loss, checks)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--phone", required=True)
    ap.add_argument("--relay-exe", required=True)
    ap.add_argument("--signal-exe", required=True)
    ap.add_argument("--phone-nice", type=int, default=0,
                    help="run the phones at this nice value (-10: as desktop audio threads)")
    ap.add_argument("--strict", action="store_true",
                    help="assert the issue's latency and CPU targets, not the CI bounds")
    ap.add_argument("--loss", type=float, default=0)
    ap.add_argument("--phone-arg", action="append", default=[],
                    help="one more argument for both phones (experiments: --no-ns ...)")
    a = ap.parse_args()
    # bot_harness.Stack's server options: the real relay and signaling
    a.relay, a.signal, a.turn_transport = "tsunagu", "tsunagu", "udp"
    L.STRICT = a.strict
    L.NICE = a.phone_nice
    checks = []
    try:
        with Stack(a) as st, pulse.Pulse() as pa:
            try:
                run(a, st, pa, checks)
                L.finish(checks)
            except L.Failed:
                for n in "AB":
                    print("--- phone %s log (tail) ---\n%s" % (n, st.log("phone%s.log" % n)[-1500:]))
                raise
    except (L.Failed, pulse.ToolMissing, RuntimeError, OSError, ValueError) as e:
        print("FAIL: %s" % e, flush=True)
        return 1
    print("PASS (%d checks)" % len(checks))
    return 0


if __name__ == "__main__":
    sys.exit(main())
