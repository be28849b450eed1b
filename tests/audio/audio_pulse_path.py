#!/usr/bin/python3
"""audio_pulse_path.py - the listening tests' virtual path on its own, with
no phone in it: the loopback-only control (issue 18 item 3,
docs/phone-tests.md).

A private PulseAudio daemon (pulse.py) with two null sinks, micA and spkB.
Speech is played into micA while micA.monitor is recorded, three times: the
recording must match the speech (corr >= 0.98) and the path's own delay
(recording lag minus the time between starting recorder and player) must be
small (|delay| <= 40 ms, a loaded 2-core machine's process start-up); its
mean is what the phone tests subtract from theirs. Then the routing control:
speech into micA while spkB.monitor is recorded must give silence (corr <=
0.05), or a phone test could pass on audio that never went through a call.
usage: audio_pulse_path.py"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import audiocmp as ac  # noqa: E402
import pulse  # noqa: E402


def fail(msg):
    print("FAIL: " + msg, flush=True)
    sys.exit(1)


def path_delay(pa, wav, sink, source, name, lead=0.5):
    """(comparison, delay ms of the path sink -> source)."""
    out = os.path.join(pa.dir, name + ".wav")
    gap = pa.listen(wav, sink, source, out, lead=lead, tail=0.5)
    r = ac.compare_files(wav, out, min_lag_ms=0, max_lag_ms=3000)
    return r, r["delay_ms"] - gap * 1000.0


def main():
    checks = 0
    with pulse.Pulse() as pa:
        wav = pulse.speech(pa.dir, pulse.TEXT_A, "speech")
        pa.null_sink("micA")
        pa.null_sink("spkB")
        delays = []
        for i in range(3):
            r, d = path_delay(pa, wav, "micA", "micA.monitor", "loop%d" % i)
            print("# loopback-only run %d: corr %.4f, path delay %.1f ms (lag %d ms)" % (
                i, r["corr"], d, r["delay_ms"]), flush=True)
            if r["corr"] < 0.98:
                fail("the virtual path alone changed the speech: corr %.4f" % r["corr"])
            if abs(d) > 40:
                fail("the virtual path alone delays %.1f ms" % d)
            delays.append(d)
            checks += 2
        print("# virtual path delay: mean %.1f ms, spread %.1f ms over %d runs" % (
            sum(delays) / len(delays), max(delays) - min(delays), len(delays)))
        r, _ = path_delay(pa, wav, "micA", "spkB.monitor", "cross")
        print("# speech into micA, spkB.monitor recorded: corr %.4f, rms %.1f dB" % (
            r["corr"], r["deg_rms_db"]))
        if r["corr"] > 0.05 or r["deg_rms_db"] > -90:
            fail("sound leaked from micA into spkB.monitor")
        checks += 1
    print("PASS (%d checks)" % checks)


if __name__ == "__main__":
    try:
        main()
    except (pulse.ToolMissing, RuntimeError, subprocess.SubprocessError, OSError,
            ValueError) as e:
        fail(str(e))
