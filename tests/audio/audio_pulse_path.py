#!/usr/bin/python3
"""audio_pulse_path.py - the listening tests' virtual path and delay method
on their own, with no phone in them (issue 18 item 3, docs/phone-tests.md).

A private PulseAudio daemon (pulse.py), null sinks micA and spkB, espeak-ng
speech played into micA; the mouth-to-ear method of the phone tests
(listen_lib.measure: micA.monitor and the far monitor recorded side by
side, their sample counts read together) must read:
  - nothing in the path (both recorders on micA.monitor): corr >= 0.98 and
    0 ms (|d| <= 15 ms);
  - PulseAudio's module-loopback from micA.monitor to spkB with
    latency_msec=100: the speech (corr >= 0.95) 100 ms later (+-25 ms): the
    method measures a delay it did not make itself;
  - no route at all (loopback unloaded): spkB.monitor stays silent, so a
    phone test cannot pass on sound that never went through a call.
usage: audio_pulse_path.py"""
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import listen_lib as L  # noqa: E402
import pulse  # noqa: E402


def main():
    checks = []
    try:
        with pulse.Pulse() as pa:
            wav = pulse.speech(pa.dir, pulse.TEXT_A, "speech")
            pa.null_sink("micA")
            pa.null_sink("spkB")
            r = L.measure(pa, wav, "micA", "micA", "nothing")
            L.verdict(checks, "zero", r["path_ms"], r["corr"] >= 0.98 and abs(r["path_ms"]) <= 15,
                      "nothing in the path: %.1f ms (corr " + "%.4f)" % r["corr"])
            mod = pa.pactl("load-module", "module-loopback", "source=micA.monitor", "sink=spkB",
                           "latency_msec=100", "source_dont_move=true",
                           "sink_dont_move=true").stdout.strip()
            time.sleep(1.0)  # the loopback settles on its latency
            r = L.measure(pa, wav, "micA", "spkB", "loop100")
            L.verdict(checks, "loopback", r["path_ms"],
                      r["corr"] >= 0.95 and abs(r["path_ms"] - 100) <= 25,
                      "module-loopback latency_msec=100: %.1f ms (corr " + "%.4f)" % r["corr"])
            pa.pactl("unload-module", mod)
            r = L.measure(pa, wav, "micA", "spkB", "cut")
            L.verdict(checks, "no route", r["deg_rms_db"], r["deg_rms_db"] < -90 and r["corr"] < 0.05,
                      "no route micA -> spkB: spkB.monitor at %.1f dB")
    except (L.Failed, pulse.ToolMissing, RuntimeError, subprocess.SubprocessError, OSError,
            ValueError) as e:
        print("FAIL: %s" % e, flush=True)
        return 1
    print("PASS (%d checks)" % len(checks))
    return 0


if __name__ == "__main__":
    sys.exit(main())
