#!/usr/bin/python3
"""phone_browser_listen.py - tsunagu-phone and headless Chromium (the demo
page of tsunagu-signal) in one call through a loopback tsunagu-relay, relay
only, and the test listens to both directions (issue 18 item 3,
docs/phone-tests.md).

Chromium -> phone: Chromium's fake microphone plays the espeak-ng speech
WAV in a loop (--use-file-for-fake-audio-capture); the phone's speaker
(null sink spkB) is recorded for one loop and 2 s more and scored against
the speech looped three times (the recording starts anywhere in a loop), at
the best start within one loop: correlation, not delay (Chromium's file has
no start time we can see). Target 0.8 (--strict); CI asserts 0.4 and the
speech level. The page's getUserMedia asks for Chromium's echo
cancellation, noise suppression and gain control off (a script the test
adds before the page runs; asserted from the track's settings), so the
call and the phone are what is scored (--chromium-processing keeps them on).

phone -> Chromium: Chromium is a client of the test's PulseAudio daemon
too (PULSE_SERVER, PULSE_SINK=spkC), so the demo page's <audio> element plays
into null sink spkC. Speech is played into the phone's microphone (micB)
while micB.monitor and spkC.monitor are recorded side by side
(listen_lib.measure): correlation and mouth-to-ear, printed. That is
Chromium's playout (110 ms to 1.8 s seen under load), so CI does not assert
it; --strict (bench/phone_listen_targets.sh) asserts corr >= 0.8 and < 400
ms. See docs/phone-tests.md "CI floors".

Also asserted: the demo page's getStats() shows a relay/relay pair and
inbound audio; the phone's path is relayed; the phone's CPU (target 5% of a
core, CI bound 7.5%).

usage: phone_browser_listen.py --phone P --relay-exe R --signal-exe S [--chromium EXE]"""
import argparse
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import listen_lib as L  # noqa: E402
import pulse  # noqa: E402
from bot_harness import Stack  # noqa: E402
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
import cdp  # noqa: E402


def page_stats(ch, session):
    v, exc = ch.evaluate(session, "window.tsunaguStats ? tsunaguStats().then(s => "
                                  "JSON.stringify(s)) : ''")
    if exc or not v:
        return None
    for pid, p in json.loads(v).get("peers", {}).items():
        a = (p.get("inbound") or {}).get("audio") or {}
        if p.get("pair"):
            return {"inbound_packets": a.get("packets", 0),
                    "outbound_packets": ((p.get("outbound") or {}).get("audio") or {})
                    .get("packets", 0),
                    "local": p["pair"].get("local"), "remote": p["pair"].get("remote")}
    return None


def run(a, st, pa, checks):
    wav = pulse.speech(pa.dir, pulse.TEXT_A, "speech")
    for s in ("micB", "spkB", "spkC"):
        pa.null_sink(s)
    turn = st.start_relay()
    url = st.start_signal(turn)
    room = "lb%d" % os.getpid()
    page = "http://127.0.0.1:%d/?room=%s&name=browser&autojoin=1&relay=1" % (st.sig_port, room)

    def spawn_chrome(argv, **kw):
        # Chromium's audio output goes to this test's daemon, into spkC
        env = dict(pa.env)
        env["PULSE_SINK"] = "spkC"
        return st.spawn(argv, "chrome.log", env=env, **kw)

    def cfail(msg):
        raise L.Failed(msg)

    ch = cdp.DevToolsPipe(a.chromium, tempfile.mkdtemp(prefix="chrome-", dir=st.dir),
                          ["--enable-logging=stderr", "--v=0",
                           "--use-file-for-fake-audio-capture=" + wav],
                          spawn_chrome, cfail, L.TIMEOUT_MULT)
    # The demo page asks for {audio: true}: Chromium's echo cancellation, noise suppression
    # and gain control on its fake microphone (a file: no echo, no noise) reshaped the speech
    # before it left the browser (Chromium -> phone 0.61-0.82 here). The test turns them off
    # before the page runs, so what is scored is the call and the phone; the wrapper counts its
    # calls, asserted below.
    tid = ch.call("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = ch.call("Target.attachToTarget", {"targetId": tid, "flatten": True})["sessionId"]
    ch.call("Page.enable", session=session)
    if not a.chromium_processing:
        ch.call("Page.addScriptToEvaluateOnNewDocument", {"source": RAW_MIC_JS},
                session=session)
    ch.call("Page.navigate", {"url": page}, session=session)
    end = time.time() + 20 * L.TIMEOUT_MULT
    while not ch.evaluate(session, "!!(window.tsunaguState && window.tsunaguState.joined)")[0]:
        if time.time() > end:
            L.fail("the demo page never joined:\n" + st.log("chrome.log")[-2000:])
        time.sleep(0.3)
    rep = os.path.join(st.dir, "phoneB.json")
    pb = st.spawn(L.phone_argv(a.phone, url, room, "B", "micB", "spkB", ["--report", rep]),
                  "phoneB.log", env=pa.env)
    logs = {"B": lambda: st.log("phoneB.log")}
    states = L.wait_media(logs, {"B": pb}, 30)
    L.verdict(checks, "path", states["B"][1], states["B"][1].startswith("relay"),
              "phone path %s relayed")
    end = time.time() + 20 * L.TIMEOUT_MULT
    while True:
        s = page_stats(ch, session)
        if s and s["inbound_packets"] >= 50:
            break
        if time.time() > end:
            L.fail("the demo page reports no inbound audio: %s" % s)
        time.sleep(0.5)
    L.verdict(checks, "page pair", "%s/%s" % (s["local"], s["remote"]),
              s["local"] == "relay" and s["remote"] == "relay", "page's pair %s is relay/relay")
    raw, _ = ch.evaluate(session, "JSON.stringify(window.__tsuRawMic || null)")
    raw = json.loads(raw) if raw else None
    if not a.chromium_processing:
        L.verdict(checks, "raw mic", raw, bool(raw) and raw["calls"] >= 1 and raw["settings"] and
                  not any(raw["settings"].get(k) for k in ("echoCancellation", "noiseSuppression",
                                                           "autoGainControl")),
                  "Chromium's microphone without its own processing: %s")
    ctl_ms = L.control(pa, wav)
    cpu = L.CpuMeter(pb.pid)
    cpu.start()
    # Chromium -> phone: one loop of the speech and 2 s more, as heard by the phone
    heard = os.path.join(pa.dir, "heard-from-chromium.wav")
    rec = pulse.Recorder(pa, "spkB.monitor")
    rec.wait_flowing(10 * L.TIMEOUT_MULT)
    sp, rate = L.ac.read_wav(wav)
    time.sleep(len(sp) / rate + 2.0)
    pulse.write_pcm16(heard, rec.stop())
    # Chromium loops the file, and the recording starts anywhere in a loop: compared with one
    # loop, a recording that caught the loop's start after its first 2 s ran out before the
    # loop's end, and the analyser scored the missing tail as lost speech (0.61-0.82 here with
    # nothing lost). So the whole recording is scored against the speech looped three times,
    # at the best start within one loop (the lag: where in the loop the recording began).
    heard_pcm, heard_rate = L.ac.read_wav(heard)
    period_ms = int(len(sp) / rate * 1000)
    r1 = L.ac.compare(heard_pcm, L.ac.np.tile(sp, 3), heard_rate, rate, min_lag_ms=0,
                      max_lag_ms=period_ms - 1)
    r1["heard_rms_db"] = round(float(10 * L.ac.np.log10(
        L.ac.np.mean(L.ac.np.asarray(heard_pcm, dtype=float) ** 2) + 1e-20)), 1)
    print("# Chromium -> phone: corr %.4f (the recording began %d ms into the loop), next best"
          " peak %s, level %.1f dB" % (r1["corr"], r1["delay_ms"], r1["second"],
                                       r1["heard_rms_db"]), flush=True)
    r0 = L.ac.compare(sp, heard_pcm, rate, heard_rate, min_lag_ms=0, max_lag_ms=period_ms + 1000)
    print("# Chromium -> phone scored as before (one loop slid over the recording): corr %.4f"
          % r0["corr"], flush=True)
    segs = L.ac.segments(heard_pcm, L.ac.np.tile(sp, 3), heard_rate, rate, r1["delay_ms"])
    print("# Chromium -> phone per 2 s of the recording (start ms, corr, lag ms): %s" % segs,
          flush=True)
    # phone -> Chromium: speech into the phone's microphone, Chromium's speaker recorded
    r2 = L.measure(pa, wav, "micB", "spkC", "C", max_lag_ms=2000)
    cpu_pct = cpu.stop()
    print("# phone -> Chromium: corr %.4f, mouth-to-ear %.1f ms (the method with no phone: %.1f"
          " ms), next best peak %s, level %.1f dB" % (r2["corr"], r2["path_ms"], ctl_ms,
                                                      r2["second"], r2["deg_rms_db"]), flush=True)
    L.print_segments(r2)
    L.stop_phone(pb, "B", logs["B"])
    rb = L.read_report(rep, "B")
    cb = rb["calls"][0] if rb["calls"] else {}
    print("# phone's report: loss %.2f%% jitter %.1f ms mos %.2f jb %s cpu %.2f%%" % (
        cb.get("loss_pct", -1), cb.get("jitter_ms", -1), cb.get("mos", -1),
        cb.get("jitter_buffer"), rb.get("cpu_in_call_pct", -1)))
    # CI (docs/phone-tests.md "CI floors"): Chromium -> phone, scored against the looped speech,
    # 0.83-0.98 here, 0.53 once when Chromium's packets came in batches: CI asserts 0.4 and
    # that the speech reaches the phone's speaker at speech level, --strict 0.8. Phone -> Chromium
    # is Chromium's playout (110 ms to 1.8 s seen here under load, corr 0.39-0.96): printed
    # in CI, asserted only with --strict (bench/phone_listen_targets.sh: 0.8 and 400 ms).
    if L.STRICT:
        L.verdict(checks, "corr c->p", r1["corr"], r1["corr"] >= L.FLOOR_CORR,
                  "Chromium -> phone envelope correlation %.4f (floor " + "%.1f)" % L.FLOOR_CORR)
    else:
        L.verdict(checks, "corr c->p", r1["corr"], r1["corr"] >= CI_FLOOR_CORR_CP,
                  "Chromium -> phone envelope correlation %.4f (floor " + "%.1f, target %.1f)" % (
                      CI_FLOOR_CORR_CP, L.FLOOR_CORR))
        L.verdict(checks, "level c->p", r1["heard_rms_db"], r1["heard_rms_db"] > CI_LEVEL_CP_DB,
                  "Chromium's speech reaches the phone's speaker at %.1f dB (floor "
                  + "%d dB)" % CI_LEVEL_CP_DB)
    if L.STRICT:
        L.verdict(checks, "corr p->c", r2["corr"], r2["corr"] >= L.FLOOR_CORR,
                  "phone -> Chromium envelope correlation %.4f (floor " + "%.1f)" % L.FLOOR_CORR)
        L.verdict(checks, "m2e p->c", r2["path_ms"], 0 < r2["path_ms"] < 400,
                  "phone -> Chromium mouth-to-ear %.1f ms (bound 400 ms; Chromium's playout"
                  " included)")
    else:
        print("# phone -> Chromium: corr %.4f, mouth-to-ear %.1f ms: Chromium's playout, not"
              " asserted in CI (target 0.8, 400 ms; --strict asserts them)" % (
                  r2["corr"], r2["path_ms"]), flush=True)
    L.verdict(checks, "cpu", cpu_pct, cpu_pct < L.limits()[1],
              "phone CPU %.2f%% of a core " + "(target < %g%%%%, asserted < %g%%%%)" % (
                  L.TARGET_CPU_PCT, L.limits()[1]))


# getUserMedia with Chromium's own processing off (see run()); the track's settings are kept
# for the test to check.
RAW_MIC_JS = """(() => {
  const md = navigator.mediaDevices;
  if (!md || !md.getUserMedia) return;
  const orig = md.getUserMedia.bind(md);
  window.__tsuRawMic = {calls: 0, settings: null};
  md.getUserMedia = async (c) => {
    if (c && c.audio) {
      const a = typeof c.audio === "object" ? c.audio : {};
      c = Object.assign({}, c, {audio: Object.assign({}, a, {echoCancellation: false,
        noiseSuppression: false, autoGainControl: false})});
      window.__tsuRawMic.calls++;
    }
    const s = await orig(c);
    const t = s.getAudioTracks()[0];
    if (t) window.__tsuRawMic.settings = t.getSettings();
    return s;
  };
})();"""

# What holds in CI on the loaded 2-core machine (runs quoted in docs/phone-tests.md).
CI_LEVEL_CP_DB = -35
# Chromium -> phone, scored against the looped speech (run 9): 0.83-0.98, 0.53 once with
# Chromium's packets in batches at load 7 (the phone capped 12 frames, squeezed 41)
CI_FLOOR_CORR_CP = 0.4


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--phone", required=True)
    ap.add_argument("--relay-exe", required=True)
    ap.add_argument("--signal-exe", required=True)
    ap.add_argument("--phone-nice", type=int, default=0,
                    help="run the phones at this nice value (-10: as desktop audio threads)")
    ap.add_argument("--strict", action="store_true",
                    help="assert the issue's latency and CPU targets, not the CI bounds")
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    ap.add_argument("--chromium-processing", action="store_true",
                    help="experiments: leave Chromium's echo cancellation, noise suppression and"
                    " gain control on (the demo page's own request), not asserted off")
    a = ap.parse_args()
    a.relay, a.signal, a.turn_transport = "tsunagu", "tsunagu", "udp"
    L.STRICT = a.strict
    L.NICE = a.phone_nice
    checks = []
    try:
        if not os.access(a.chromium, os.X_OK):
            raise L.Failed("%s not found: apt-get install chromium" % a.chromium)
        with Stack(a) as st, pulse.Pulse() as pa:
            try:
                run(a, st, pa, checks)
                L.finish(checks)
            except L.Failed:
                print("--- phone log (tail) ---\n" + st.log("phoneB.log")[-1500:])
                print("--- chromium console ---\n" + "\n".join(
                    ln for ln in st.log("chrome.log").splitlines() if "CONSOLE" in ln)[-1500:])
                raise
    except (L.Failed, pulse.ToolMissing, RuntimeError, OSError, ValueError) as e:
        print("FAIL: %s" % e, flush=True)
        return 1
    print("PASS (%d checks)" % len(checks))
    return 0


if __name__ == "__main__":
    sys.exit(main())
