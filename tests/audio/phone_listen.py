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
    states = L.wait_media(logs, procs, 30)
    ctl_ms = L.control(pa, wav)
    print("# call up: %s" % states, flush=True)
    for n, (s, path) in states.items():
        L.verdict(checks, "path " + n, path, path.startswith("relay"), "phone path %s relayed")
    cpu = {n: L.CpuMeter(p.pid) for n, p in procs.items()}
    for m in cpu.values():
        m.start()
    r = L.measure(pa, wav, "micA", "spkB", "B")
    cpu_pct = {n: m.stop() for n, m in cpu.items()}
    m2e = r["path_ms"]
    print("# speech A->B: corr %.4f, mouth-to-ear %.1f ms (the method with no phone: %.1f ms),"
          " next best peak %s, level %.1f dB" % (r["corr"], m2e, ctl_ms, r["second"],
                                                  r["deg_rms_db"]))
    L.print_segments(r)
    L.stop_phone(pa_, "A", logs["A"])
    L.stop_phone(pb, "B", logs["B"])
    ra, rb = L.read_report(rep["A"], "A"), L.read_report(rep["B"], "B")
    rr = L.ac.compare_files(wav, rec_b, min_lag_ms=0, max_lag_ms=120000)
    print("# B's --record: corr %.4f (at %.2f s into the call)" % (
        rr["corr"], rr["delay_ms"] / 1000.0))
    cb = rb["calls"][0] if rb["calls"] else {}
    jb = cb.get("jitter_buffer", {})
    print("# B's report: loss %.2f%% jitter %.1f ms rtt %.1f ms mos %.2f jb %s" % (
        cb.get("loss_pct", -1), cb.get("jitter_ms", -1), cb.get("rtt_ms", -1),
        cb.get("mos", -1), jb))
    print("# CPU over the speech (/proc): A %.2f%%, B %.2f%% of a core; reports (whole call):"
          " A %.2f%%, B %.2f%%" % (cpu_pct["A"], cpu_pct["B"], ra.get("cpu_in_call_pct", -1),
                                   rb.get("cpu_in_call_pct", -1)), flush=True)

    floor = L.FLOOR_CORR_LOSS5 if a.loss else L.FLOOR_CORR
    L.verdict(checks, "corr", r["corr"], r["corr"] >= floor,
              "envelope correlation A->B %.4f (floor " + "%.1f)" % floor)
    L.verdict(checks, "corr record", rr["corr"], rr["corr"] >= floor,
              "B's --record correlation %.4f (floor " + "%.1f)" % floor)
    # a match stands out: no other lag (100 ms away) scores close
    L.verdict(checks, "peak", r["second"], r["second"] is not None and r["second"] < r["corr"] - 0.2,
              "next best peak %s well below the match")
    if not a.loss:
        L.verdict(checks, "m2e", m2e, 0 < m2e < L.TARGET_M2E_MS,
                  "mouth-to-ear %.1f ms (target < " + "%d ms)" % L.TARGET_M2E_MS)
    else:
        print("# mouth-to-ear at %g%% loss: %.1f ms (asserted only without loss)" % (a.loss, m2e))
        lost = cb.get("lost", 0)
        L.verdict(checks, "loss", cb.get("loss_pct", 0),
                  0.4 * a.loss <= cb.get("loss_pct", 0) <= 2 * a.loss + 1,
                  "B reports %.2f%% loss (A dropped " + "%g%%)" % a.loss)
        L.verdict(checks, "fec/plc", jb.get("fec", 0) + jb.get("plc", 0),
                  jb.get("fec", 0) + jb.get("plc", 0) >= 0.3 * lost,
                  "B rebuilt or concealed %d frames (" + "%d lost)" % lost)
    for n in "AB":
        L.verdict(checks, "cpu " + n, cpu_pct[n], cpu_pct[n] < L.TARGET_CPU_PCT,
                  "phone " + n + " CPU %.2f%% of a core (target < " + "%g%%)" % L.TARGET_CPU_PCT)
    return m2e


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--phone", required=True)
    ap.add_argument("--relay-exe", required=True)
    ap.add_argument("--signal-exe", required=True)
    ap.add_argument("--loss", type=float, default=0)
    ap.add_argument("--phone-arg", action="append", default=[],
                    help="one more argument for both phones (experiments: --no-ns ...)")
    a = ap.parse_args()
    # bot_harness.Stack's server options: the real relay and signaling
    a.relay, a.signal, a.turn_transport = "tsunagu", "tsunagu", "udp"
    checks = []
    try:
        with Stack(a) as st, pulse.Pulse() as pa:
            try:
                run(a, st, pa, checks)
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
