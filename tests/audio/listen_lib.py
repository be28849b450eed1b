"""listen_lib.py - what the listening tests with tsunagu-phone share (issue 18
item 3, docs/phone-tests.md): starting a phone on the test's private
PulseAudio daemon, waiting for its call to carry audio, its CPU from
/proc/PID/stat, the loopback-only control (the virtual path's own delay),
and one speech measurement (correlation, delay, mouth-to-ear).

A measurement (measure()): speech is played into the near phone's microphone
sink while two recorders run together, one on that sink's monitor (what the
microphone got) and one on the far phone's speaker monitor (what it played);
their sample counts are read side by side, so the far lag minus the near lag
minus the recorders' offset is the delay from microphone to speaker:
mouth-to-ear, i.e. capture, encoding, the network (here a relay), the jitter
buffer, decoding and playback. How long the player took to start is in both
lags and cancels. control() runs the same measurement with nothing in the
path (both recorders on one sink): it must give the speech back with no
delay, and its figure is quoted as the method's own error."""
import json
import os
import re
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import audiocmp as ac  # noqa: E402
import pulse  # noqa: E402

TIMEOUT_MULT = pulse.TIMEOUT_MULT

# The targets (issue 18, "Targets"). The correlation floors are
# asserted with --strict; CI asserts the CI_FLOOR_* below. Latency and CPU are timing on a shared 2-core CI
# machine (load averages of 15-27 seen while other suites ran): the tests
# assert BOUND_* and print the target next to the figure; --strict (the
# bench, bench/phone_listen_targets.sh) asserts the targets themselves.
TARGET_M2E_MS = 150
FLOOR_CORR = 0.8
FLOOR_CORR_LOSS5 = 0.6
TARGET_CPU_PCT = 5.0
# CI floors for the correlation (docs/phone-tests.md "CI floors", run 9): under
# two busy loops at load 10-17 phone <-> phone scored 0.97-0.99 (0.97-0.98 at 5%
# loss), every run without a stall over 400 ms 0.74 or more, a phone stalled
# every second (SIGSTOP) 0.58-0.74; the NAT lab test once 0.48 in a real load
# spike (its own floor, phone_netlab_listen). --strict asserts the issue's
# FLOOR_* above (bench/phone_listen_targets.sh).
CI_FLOOR_CORR = 0.6
CI_FLOOR_CORR_LOSS5 = 0.5
# the best other lag this far under the match (--strict: 0.2)
CI_PEAK_MARGIN = 0.1
# mouth-to-ear: 296 ms seen with a phone stalled every second (the jitter
# buffer holds its target after such stalls), so the bound stays
BOUND_M2E_MS = 300
# CPU: 3.5-5.0% of a core per phone in every run since run 9, also at load 17
BOUND_CPU_PCT = 7.5
STRICT = False


def limits():
    """(mouth-to-ear ms, CPU %) to assert: the targets with --strict, else
    the CI bounds."""
    return (TARGET_M2E_MS, TARGET_CPU_PCT) if STRICT else (BOUND_M2E_MS, BOUND_CPU_PCT)


class Failed(Exception):
    pass


def fail(msg):
    raise Failed(msg)


def proc_cpu_s(pid):
    """utime + stime of a process, in seconds (/proc/PID/stat fields 14, 15)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU share of one core used by pid between start() and stop()."""

    def __init__(self, pid):
        self.pid = pid

    def start(self):
        self.c0, self.t0 = proc_cpu_s(self.pid), time.monotonic()

    def stop(self):
        c, t = proc_cpu_s(self.pid), time.monotonic()
        return 100.0 * (c - self.c0) / max(t - self.t0, 1e-3)


NICE = 0  # the phones' nice value (--phone-nice): see docs/phone-tests.md


def phone_argv(exe, url, room, name, mic, spk, extra=()):
    pre = ["nice", "-n", str(NICE)] if NICE else []
    return pre + [exe, "--signal", url, "--room", room, "--name", name, "--relay-only", "--no-ui",
            "--input", mic + ".monitor", "--output", spk, "--log-level", "info"] + list(extra)


STATUS = re.compile(r"^phone: t=(\d+) peer=\S+ state=(\S+) path=(\S+)", re.M)


def call_state(log_text):
    """(state, path) of the latest per-call status line, or (None, None)."""
    m = None
    for m in STATUS.finditer(log_text):
        pass
    return (m.group(2), m.group(3)) if m else (None, None)


def wait_media(logs, procs, secs):
    """Wait until every phone's latest status line says state=media. logs:
    name -> callable returning the log text; procs: name -> Popen."""
    end = time.time() + secs * TIMEOUT_MULT
    while True:
        states = {n: call_state(logs[n]()) for n in logs}
        if all(s == "media" for s, _ in states.values()):
            return states
        for n, p in procs.items():
            if p.poll() is not None:
                fail("phone %s exited (code %s) before its call carried audio:\n%s" % (
                    n, p.returncode, logs[n]()[-2000:]))
        if time.time() > end:
            fail("no call with audio after %.0f s: %s\n%s" % (
                secs * TIMEOUT_MULT, states, "\n".join(logs[n]()[-1200:] for n in logs)))
        time.sleep(0.2)


def measure(pa, wav, mic_sink, spk_sink, label, max_lag_ms=1500):
    """Speech into mic_sink; mic_sink.monitor (what the near phone's
    microphone got) and spk_sink.monitor (what the far phone played) recorded
    together (pulse.listen_pair). Returns the far recording's comparison
    with the speech, plus 'path_ms': the delay from mic sink to speaker sink
    (the far lag minus the near lag minus the recorders' offset), and
    'near_corr' (the near recording must be the speech itself)."""
    near = os.path.join(pa.dir, "mic-%s.wav" % label)
    far = os.path.join(pa.dir, "heard-%s.wav" % label)
    off = pa.listen_pair(wav, mic_sink, mic_sink + ".monitor", spk_sink + ".monitor", near, far)
    rn = ac.compare_files(wav, near, min_lag_ms=0, max_lag_ms=5000)
    if rn["corr"] < 0.98:
        fail("the microphone sink's own recording does not match the speech: corr %.4f"
             % rn["corr"])
    lo = rn["delay_ms"] + int(off * 1000) - 100
    r = ac.compare_files(wav, far, min_lag_ms=lo, max_lag_ms=lo + 100 + max_lag_ms)
    r["path_ms"] = r["delay_ms"] - rn["delay_ms"] - off * 1000.0
    r["near_corr"] = rn["corr"]
    x, rx = ac.read_wav(wav)
    y, ry = ac.read_wav(far)
    # per 2 s: the delay in each piece (a drifting delay shows here) and its
    # own correlation; delays as mouth-to-ear
    shift = r["delay_ms"] - r["path_ms"]
    r["segments"] = [(t, c, d - shift) for t, c, d in
                     ac.segments(x, y, rx, ry, r["delay_ms"], slack_ms=300)]
    r["file"] = far
    return r


def control(pa, wav):
    """The method on a path with nothing in it: both recorders on the
    monitor of one null sink, speech played into it. Must give the speech
    back (corr >= 0.98) with no delay (|d| <= 15 ms). Returns d in ms."""
    if not getattr(pa, "_ctl", False):
        pa.null_sink("ctl")
        pa._ctl = True
    r = measure(pa, wav, "ctl", "ctl", "control")
    print("# control (no phone): corr %.4f, delay %.1f ms" % (r["corr"], r["path_ms"]), flush=True)
    if r["corr"] < 0.98 or abs(r["path_ms"]) > 15:
        fail("the measurement with no phone in the path gave corr %.4f, delay %.1f ms"
             % (r["corr"], r["path_ms"]))
    return r["path_ms"]


def read_report(path, name):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        fail("phone %s report %s: %s" % (name, path, e))


def stop_phone(p, name, log, secs=15):
    """SIGTERM: the phone leaves cleanly (report written, WAV closed) and exits 0."""
    if p.poll() is None:
        p.terminate()
    try:
        rc = p.wait(timeout=secs * TIMEOUT_MULT)
    except Exception:
        p.kill()
        p.wait()
        fail("phone %s did not leave within %d s of SIGTERM" % (name, secs))
    if rc != 0:
        fail("phone %s exited %d:\n%s" % (name, rc, log()[-2000:]))


def print_segments(r):
    print("# per 2 s of speech (start s: corr, mouth-to-ear ms): " + ", ".join(
        "%.0f: %.2f, %.0f" % (t / 1000, c, d) for t, c, d in r["segments"]), flush=True)


def verdict(checks, name, value, ok, fmt):
    """Print one figure with its target; a miss is kept in checks (as
    'MISS ...') and fails the test at finish(), after every figure printed."""
    print(("%s - " + fmt) % ("ok" if ok else "not ok", value), flush=True)
    checks.append(name if ok else "MISS " + fmt % value)


def judge_call(pa, wav, procs, logs, rep, rec_b, loss, checks, relay_both=True, ci_floor=None):
    """The phone tests' common part, once phones A and B were started (A's
    microphone micA, B's speaker spkB, B with --record rec_b, reports in
    rep[name]): wait for audio, the control, speech A -> B measured, both
    phones stopped, every figure printed, then each checked against the
    issue's targets (a miss fails the test after all are printed).
    relay_both: both paths must be relayed (forced relay); else one side at
    least (behind NATs, nothing forced). ci_floor: the CI correlation floor
    instead of CI_FLOOR_* (--strict ignores it). Returns mouth-to-ear in ms."""
    states = wait_media(logs, procs, 30)
    ctl_ms = control(pa, wav)
    print("# call up: %s" % states, flush=True)
    paths = [path for _, path in states.values()]
    if relay_both:
        for n, (s, path) in states.items():
            verdict(checks, "path " + n, path, path.startswith("relay"), "phone path %s relayed")
    else:
        verdict(checks, "path", paths, any(p.startswith("relay") for p in paths),
                "a relayed path on one side at least: %s")
    cpu = {n: CpuMeter(p.pid) for n, p in procs.items()}
    for m in cpu.values():
        m.start()
    r = measure(pa, wav, "micA", "spkB", "B")
    cpu_pct = {n: m.stop() for n, m in cpu.items()}
    m2e = r["path_ms"]
    print("# speech A->B: corr %.4f, mouth-to-ear %.1f ms (the method with no phone: %.1f ms),"
          " next best peak %s, level %.1f dB" % (r["corr"], m2e, ctl_ms, r["second"],
                                                  r["deg_rms_db"]))
    print_segments(r)
    stop_phone(procs["A"], "A", logs["A"])
    stop_phone(procs["B"], "B", logs["B"])
    ra, rb = read_report(rep["A"], "A"), read_report(rep["B"], "B")
    rr = ac.compare_files(wav, rec_b, min_lag_ms=0, max_lag_ms=120000)
    print("# B's --record: corr %.4f (at %.2f s into the call)" % (
        rr["corr"], rr["delay_ms"] / 1000.0))
    cb = rb["calls"][0] if rb["calls"] else {}
    jb = cb.get("jitter_buffer", {})
    print("# B's report: loss %.2f%% jitter %.1f ms rtt %.1f ms mos %.2f jb %s" % (
        cb.get("loss_pct", -1), cb.get("jitter_ms", -1), cb.get("rtt_ms", -1),
        cb.get("mos", -1), jb))
    print("# PulseAudio side: A capture overrun %s samples, B playback underruns %s" % (
        ra.get("capture_overrun_samples"), rb.get("playback_underruns")))
    print("# CPU over the speech (/proc): A %.2f%%, B %.2f%% of a core; reports (whole call):"
          " A %.2f%%, B %.2f%%" % (cpu_pct["A"], cpu_pct["B"], ra.get("cpu_in_call_pct", -1),
                                   rb.get("cpu_in_call_pct", -1)), flush=True)

    target = FLOOR_CORR_LOSS5 if loss else FLOOR_CORR
    floor = target if STRICT else (ci_floor if ci_floor is not None else
                                   CI_FLOOR_CORR_LOSS5 if loss else CI_FLOOR_CORR)
    verdict(checks, "corr", r["corr"], r["corr"] >= floor,
              "envelope correlation A->B %.4f (floor " + "%.2g, target %.1f)" % (floor, target))
    verdict(checks, "corr record", rr["corr"], rr["corr"] >= floor,
              "B's --record correlation %.4f (floor " + "%.2g, target %.1f)" % (floor, target))
    # a match stands out: no other lag (100 ms away) scores close
    margin = 0.2 if STRICT else CI_PEAK_MARGIN
    verdict(checks, "peak", r["second"], r["second"] is not None and r["second"] < r["corr"] - margin,
              "next best peak %s below the match by " + "%.1f" % margin)
    if not loss:
        verdict(checks, "m2e", m2e, 0 < m2e < limits()[0],
                  "mouth-to-ear %.1f ms " + "(target < %d ms, asserted < %d ms)" % (
                      TARGET_M2E_MS, limits()[0]))
    else:
        print("# mouth-to-ear at %g%% loss: %.1f ms (asserted only without loss)" % (loss, m2e))
        lost = cb.get("lost", 0)
        verdict(checks, "loss", cb.get("loss_pct", 0),
                  0.4 * loss <= cb.get("loss_pct", 0) <= 2 * loss + 1,
                  "B reports %.2f%% loss (A dropped " + "%g%%%%)" % loss)
        verdict(checks, "fec/plc", jb.get("fec", 0) + jb.get("plc", 0),
                  jb.get("fec", 0) + jb.get("plc", 0) >= 0.3 * lost,
                  "B rebuilt or concealed %d frames (" + "%d lost)" % lost)
    for n in "AB":
        verdict(checks, "cpu " + n, cpu_pct[n], cpu_pct[n] < limits()[1],
                  "phone " + n + " CPU %.2f%% of a core " + "(target < %g%%%%, asserted < %g%%%%)"
                  % (TARGET_CPU_PCT, limits()[1]))
    return m2e


def finish(checks):
    """Fail if any verdict missed."""
    bad = [c for c in checks if c.startswith("MISS ")]
    if bad:
        fail("%d of %d checks missed: %s" % (len(bad), len(checks), "; ".join(bad)))
