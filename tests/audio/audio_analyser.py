#!/usr/bin/python3
"""audio_analyser.py - the analyser (audiocmp.py) on controls whose answer is
known, before it judges a call (issue 18 item 3, docs/phone-tests.md).

espeak-ng says two fixed texts (A and B, 48 kHz); then:
  A vs A                       corr 1, delay 0
  A vs A delayed 100 ms        corr 1, delay 100 ms (the lag is the delay)
  A vs A at -20 dB, +250 ms    corr 1, delay 250 ms (level does not matter)
  A vs B                       low corr (another sentence is not a match)
  A vs silence                 corr 0
  A vs A, 5% of 20 ms frames zeroed (fixed seed)   high but below 1
  A vs A, 30% zeroed           lower than at 5%: the score follows the damage
  A vs A cut off halfway       low: a recording that stops early fails
  A vs Opus(A) 32 kbit/s       (opusenc/opusdec) high, delay ~0
  A vs Opus(A) 5% packet loss  (opusdec --packet-loss 5: the decoder's PLC) high
Prints one line per control with the figure, fails on the first miss.
usage: audio_analyser.py"""
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import audiocmp as ac  # noqa: E402
import pulse  # noqa: E402

checks = 0


def fail(msg):
    print("FAIL: " + msg, flush=True)
    sys.exit(1)


def expect(name, r, lo=None, hi=None, delay=None, tol=2):
    global checks
    print("# %-34s corr %.4f delay %5d ms (next best peak %s)" % (
        name, r["corr"], r["delay_ms"], r["second"]), flush=True)
    if lo is not None and r["corr"] < lo:
        fail("%s: corr %.4f below %.2f" % (name, r["corr"], lo))
    if hi is not None and r["corr"] > hi:
        fail("%s: corr %.4f above %.2f" % (name, r["corr"], hi))
    if delay is not None and abs(r["delay_ms"] - delay) > tol:
        fail("%s: delay %d ms, want %d +- %d" % (name, r["delay_ms"], delay, tol))
    checks += 1


def zero_frames(x, rate, frac, seed):
    """x with a fraction frac of its 20 ms frames set to zero (packet loss
    with no concealment at all)."""
    y = x.copy()
    fr = rate // 50
    rng = np.random.default_rng(seed)
    n = len(x) // fr
    idx = rng.choice(n, size=int(round(n * frac)), replace=False)
    for i in idx:
        y[i * fr:(i + 1) * fr] = 0.0
    return y


def opus_round_trip(d, wav, loss_pct):
    pulse.need("opusenc", "opusdec")
    enc = os.path.join(d, "x.opus")
    out = os.path.join(d, "x-dec.wav")
    subprocess.run(["opusenc", "--quiet", "--bitrate", "32", "--framesize", "20", wav, enc],
                   check=True, timeout=60)
    argv = ["opusdec", "--quiet", "--rate", str(pulse.RATE)]
    if loss_pct:
        argv += ["--packet-loss", str(loss_pct)]
    subprocess.run(argv + [enc, out], check=True, timeout=60)
    return ac.read_wav(out)


def main():
    d = tempfile.mkdtemp(prefix="tsu-audiocmp-")
    try:
        run(d)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    print("PASS (%d checks)" % checks)


def run(d):
    wa = pulse.speech(d, pulse.TEXT_A, "a")
    wb = pulse.speech(d, pulse.TEXT_B, "b")
    a, r = ac.read_wav(wa)
    b, rb = ac.read_wav(wb)
    if r != pulse.RATE or rb != pulse.RATE or len(a) < 5 * r:
        fail("espeak-ng + sox gave %d Hz, %.1f s" % (r, len(a) / r))

    def cmp(deg, rate=r, **kw):
        return ac.compare(a, deg, r, rate, **kw)

    expect("A vs A", cmp(a), lo=0.999, delay=0, tol=0)
    expect("A vs A delayed 100 ms", cmp(np.concatenate((np.zeros(r // 10), a))),
           lo=0.999, delay=100, tol=1)
    quiet = np.concatenate((np.zeros(r // 4), 0.1 * a))
    expect("A vs A at -20 dB, +250 ms", cmp(quiet), lo=0.99, delay=250, tol=1)
    # written and read back as 16-bit: what a recorder hands over
    p = os.path.join(d, "roundtrip.wav")
    ac.write_wav(p, quiet, r)
    expect("  same through a 16-bit WAV", ac.compare_files(wa, p), lo=0.98, delay=250, tol=1)
    other = cmp(b)
    expect("A vs B (another sentence)", other, hi=0.4)
    expect("A vs silence", cmp(np.zeros(len(a))), hi=0.01)
    z5 = cmp(zero_frames(a, r, 0.05, 1))
    expect("A vs A, 5% of 20 ms frames zeroed", z5, lo=0.85, hi=0.99, delay=0, tol=1)
    z30 = cmp(zero_frames(a, r, 0.30, 1))
    expect("A vs A, 30% zeroed", z30, hi=z5["corr"] - 0.05)
    expect("A vs A cut off halfway", cmp(a[: len(a) // 2]), hi=0.7)
    o, ro = opus_round_trip(d, wa, 0)
    oc = ac.compare(a, o, r, ro)
    expect("A vs Opus(A) 32 kbit/s", oc, lo=0.97, delay=0, tol=3)
    ol, rl = opus_round_trip(d, wa, 5)
    expect("A vs Opus(A), 5% loss + PLC", ac.compare(a, ol, r, rl), lo=0.9, hi=oc["corr"],
           delay=0, tol=3)
    # the lag search is bounded: a delay beyond it is not found
    far = cmp(np.concatenate((np.zeros(2 * r), a)), max_lag_ms=1000)
    expect("A delayed 2 s, lags searched to 1 s", far, hi=0.5)
    # separation: the true match stands far above any other lag
    if other["corr"] > oc["corr"] - 0.5:
        fail("another sentence (%.3f) too close to the Opus copy (%.3f)" % (
            other["corr"], oc["corr"]))


if __name__ == "__main__":
    try:
        main()
    except (pulse.ToolMissing, subprocess.SubprocessError, OSError, ValueError) as e:
        fail(str(e))
