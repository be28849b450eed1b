#!/usr/bin/python3
"""phone_call.py - two tsunagu-phone processes call each other through
signaling and TURN on 127.0.0.1 (relay only), with sound through a private
PulseAudio daemon that this script starts (root is fine, runtime dir of its
own, only null sinks: nothing reaches the machine's sound card).

Phone A's microphone is the monitor of null sink micA, into which a test
tone is played (paplay; A runs with --no-ns: noise suppression removes a
steady tone by design, speech is what the listening tests use); phone B plays into null sink spkB and records what
it plays (--record). Checks, all asserted:
- both phones report a call with audio over a relayed path;
- B's recording holds A's tone: the 660 Hz component dominates its spectrum
  in the part where A was sending, well above the rest (Goertzel ratio);
- --list-devices names the null sinks and their monitors;
- with --loss PCT: A drops that share of its packets (--drop-percent) and B's
  jitter buffer must have rebuilt frames from FEC and concealed some, and
  its reported loss must be near PCT; the tone must still dominate;
- with --crash-relay-at S: the relay is killed (SIGKILL) S seconds after B
  started and restarted on the same port 0.5 s later; the calls restart ICE
  (the bot's code, in the call library) and the tone is back in the last
  2 s of B's recording;
- with --kill-signal-at S: the signaling server is killed for good; the
  calls go on (media does not need it) and both phones still exit 0;
- with --cut-signal-at S: A reaches signaling through a TCP proxy that is
  cut S seconds after B started; A resumes its place (the bot's resume
  code, in the call library), B never sees A leave, the tone goes on.
Exits 1 with FAIL: on the first failed check. Every process (PulseAudio,
servers, phones, paplay) is killed by PID at the end; the temp dir goes too.

usage: phone_call.py --phone PATH [--loss PCT] [--crash-relay-at S] [--kill-signal-at S]
                     [--cut-signal-at S]
                     [--relay ... --signal ...]"""
import argparse, json, math, os, signal, shutil, struct, subprocess, sys, time, wave

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bot_harness import Stack, fail, wait_tcp, TIMEOUT_MULT  # noqa: E402
from lb_proxy import FixedProxy  # noqa: E402

TONE_HZ = 660
RATE = 48000


def need(tool):
    path = shutil.which(tool)
    if not path:
        fail("%s not found: bash scripts/deps.sh test installs it" % tool)
    return path


def tone_wav(path, secs):
    """A 660 Hz tone at -12 dBFS, 48 kHz mono 16-bit."""
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        n = int(secs * RATE)
        amp = 0.25 * 32767
        w.writeframes(b"".join(struct.pack("<h", int(amp * math.sin(2 * math.pi * TONE_HZ * i / RATE)))
                               for i in range(n)))


def read_wav(path):
    with wave.open(path, "rb") as w:
        if w.getsampwidth() != 2 or w.getnchannels() != 1 or w.getframerate() != RATE:
            fail("%s: not 48 kHz mono 16-bit" % path)
        raw = w.readframes(w.getnframes())
    return struct.unpack("<%dh" % (len(raw) // 2), raw)


def goertzel_power(x, hz):
    k = 2 * math.cos(2 * math.pi * hz / RATE)
    s1 = s2 = 0.0
    for v in x:
        s0 = v + k * s1 - s2
        s2, s1 = s1, s0
    return s1 * s1 + s2 * s2 - k * s1 * s2


class Pulse:
    """A private PulseAudio daemon with null sinks; killed by PID."""

    def __init__(self, tmp, sinks):
        self.env = dict(os.environ)
        self.rt = os.path.join(tmp, "pulse-rt")
        os.mkdir(self.rt, 0o700)
        self.env["XDG_RUNTIME_DIR"] = self.rt
        self.env["PULSE_RUNTIME_PATH"] = self.rt
        self.env["HOME"] = tmp  # its cookie and state go in the temp dir
        self.env.pop("PULSE_SERVER", None)
        argv = [need("pulseaudio"), "--daemonize=no", "--exit-idle-time=-1", "-n",
                "--use-pid-file=no", "--disable-shm=yes", "--log-target=stderr",
                "--load=module-native-protocol-unix"]
        argv += ["--load=module-null-sink sink_name=%s" % s for s in sinks]
        self.log = open(os.path.join(tmp, "pulse.log"), "wb")
        self.p = subprocess.Popen(argv, env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        end = time.time() + 10 * TIMEOUT_MULT
        while True:
            r = subprocess.run([need("pactl"), "list", "short", "sinks"], env=self.env,
                               capture_output=True, text=True)
            if r.returncode == 0 and all(s in r.stdout for s in sinks):
                break
            if self.p.poll() is not None or time.time() > end:
                fail("pulseaudio did not start: see pulse.log")
            time.sleep(0.1)

    def close(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.log.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--phone", required=True)
    ap.add_argument("--relay", choices=["coturn", "tsunagu"], default="coturn")
    ap.add_argument("--relay-exe", default="")
    ap.add_argument("--signal", choices=["stub", "tsunagu"], default="stub")
    ap.add_argument("--signal-exe", default="")
    ap.add_argument("--loss", type=float, default=0)
    ap.add_argument("--secs", type=int, default=8)
    ap.add_argument("--crash-relay-at", type=float, default=0)
    ap.add_argument("--kill-signal-at", type=float, default=0)
    ap.add_argument("--cut-signal-at", type=float, default=0)
    a = ap.parse_args()
    a.turn_transport = "udp"
    checks = 0
    with Stack(a) as st:
        pulse = Pulse(st.dir, ["micA", "spkA", "micB", "spkB"])
        player = proxy = None
        try:
            r = subprocess.run([a.phone, "--list-devices"], env=pulse.env, capture_output=True,
                               text=True, timeout=20 * TIMEOUT_MULT)
            if r.returncode != 0 or "micA.monitor" not in r.stdout or "spkB" not in r.stdout:
                fail("--list-devices: rc %d, output %r" % (r.returncode, r.stdout[-500:]))
            checks += 1
            turn = st.start_relay()
            url = st.start_signal(turn)
            room = "ph%d" % os.getpid()
            tone = os.path.join(st.dir, "tone.wav")
            tone_wav(tone, a.secs + 10)
            heard = os.path.join(st.dir, "heard.wav")
            rep = {x: os.path.join(st.dir, "phone%s.json" % x) for x in "AB"}
            common = ["--room", room, "--relay-only", "--no-ui",
                      "--duration", str(a.secs), "--log-level", "info"]
            url_a = url
            if a.cut_signal_at:
                proxy = FixedProxy(st.sig_port).__enter__()
                url_a = "ws://127.0.0.1:%d/ws" % proxy.port
            pa = st.spawn([a.phone, "--signal", url_a] + common + ["--name", "A", "--input", "micA.monitor",
                          "--output", "spkA", "--report", rep["A"], "--no-ns",
                          "--drop-percent", str(a.loss)], "phoneA.log", env=pulse.env)
            player = subprocess.Popen([need("paplay"), "-d", "micA", tone], env=pulse.env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1)
            pb = st.spawn([a.phone, "--signal", url] + common + ["--name", "B", "--input", "micB.monitor",
                          "--output", "spkB", "--record", heard, "--report", rep["B"]],
                          "phoneB.log", env=pulse.env)
            relay, sig = st.procs[0], st.procs[1]
            if a.crash_relay_at:
                time.sleep(a.crash_relay_at)
                relay.send_signal(signal.SIGKILL)
                relay.wait(timeout=10)
                time.sleep(0.5)
                again = st.spawn(relay.args, "relay2.log")
                wait_tcp(st.turn_port, 10, again, "restarted relay")
                print("# relay killed at %.1f s and restarted on the same port" % a.crash_relay_at)
            if a.cut_signal_at:
                time.sleep(a.cut_signal_at)
                proxy.cut()
                print("# cut A's signaling connection at %.1f s" % a.cut_signal_at)
            if a.kill_signal_at:
                time.sleep(a.kill_signal_at)
                sig.send_signal(signal.SIGKILL)
                sig.wait(timeout=10)
                print("# signaling killed at %.1f s" % a.kill_signal_at)
            for p, name in ((pa, "A"), (pb, "B")):
                try:
                    rc = p.wait(timeout=(a.secs + 30) * TIMEOUT_MULT)
                except subprocess.TimeoutExpired:
                    fail("phone %s did not leave after --duration" % name)
                if rc != 0:
                    fail("phone %s exited %d: %s" % (name, rc, st.log("phone%s.log" % name)[-1500:]))
            checks += 1
            reps = {}
            for x in "AB":
                try:
                    reps[x] = json.load(open(rep[x]))
                except (OSError, ValueError) as e:
                    fail("phone %s report: %s" % (x, e))
                calls = reps[x]["calls"]
                if len(calls) != 1 or not calls[0]["media"]:
                    fail("phone %s: no call with audio: %s" % (x, json.dumps(calls)))
                if not calls[0]["path"].startswith("relay"):
                    fail("phone %s: path %r is not relayed" % (x, calls[0]["path"]))
                checks += 2
            b = reps["B"]["calls"][0]
            print("# B: loss %.2f%% jitter %.1f ms mos %.2f jb %s cpu A %.1f%% B %.1f%%" % (
                b["loss_pct"], b["jitter_ms"], b["mos"], json.dumps(b["jitter_buffer"]),
                reps["A"]["cpu_in_call_pct"], reps["B"]["cpu_in_call_pct"]))
            x = read_wav(heard)
            # what B played: its call time, less the stalls of a PulseAudio daemon
            # starved of CPU on a loaded machine (null sinks run on its timer)
            print("# B playback underruns %d, capture overruns %d samples" % (
                reps["B"]["playback_underruns"], reps["B"]["capture_overrun_samples"]))
            if len(x) < RATE * a.secs * 0.5:
                fail("recording has %.1f s, expected about %d" % (len(x) / RATE, a.secs))
            # the middle of the call, where A was surely sending the tone
            mid = x[len(x) // 2 - RATE: len(x) // 2 + RATE]
            rms = math.sqrt(sum(v * v for v in mid) / len(mid))
            p_tone = goertzel_power(mid, TONE_HZ)
            p_other = max(goertzel_power(mid, f) for f in (200, 440, 1000, 1500, 3000))
            ratio = 10 * math.log10((p_tone + 1) / (p_other + 1))
            print("# recording: %.1f s, middle RMS %.0f, tone %.1f dB above other bins" % (
                len(x) / RATE, rms, ratio))
            if rms < 300:
                fail("B played (almost) nothing in the middle of the call: RMS %.0f" % rms)
            if ratio < 20:
                fail("the tone is only %.1f dB above other frequencies in B's recording" % ratio)
            checks += 2
            if a.cut_signal_at:
                if "signaling resumed" not in st.log("phoneA.log"):
                    fail("A did not resume its place: %s" % st.log("phoneA.log")[-1500:])
                if "left" in "".join(l for l in st.log("phoneB.log").splitlines()
                                     if "[phone]" in l):
                    fail("B saw A leave: %s" % st.log("phoneB.log")[-1500:])
                checks += 2
            if a.crash_relay_at or a.kill_signal_at or a.cut_signal_at:
                end = x[-int(2.5 * RATE): -int(0.5 * RATE)]
                r_end = 10 * math.log10((goertzel_power(end, TONE_HZ) + 1) /
                                        (max(goertzel_power(end, f) for f in (200, 440, 1000)) + 1))
                rms_end = math.sqrt(sum(v * v for v in end) / len(end))
                print("# end of the call: RMS %.0f, tone %.1f dB above; restarts A %d B %d, "
                      "longest gap B %.0f ms" % (rms_end, r_end, reps["A"]["calls"][0]["ice_restarts"],
                                                b["ice_restarts"], b["max_gap_ms"]))
                if rms_end < 300 or r_end < 20:
                    fail("the tone is not back at the end of the call (RMS %.0f, %.1f dB)" % (rms_end, r_end))
                checks += 1
            if a.crash_relay_at:
                if reps["A"]["calls"][0]["ice_restarts"] + b["ice_restarts"] < 1:
                    fail("the relay crashed and no ICE restart was begun")
                if not 500 < b["max_gap_ms"] < 8000:
                    fail("B's longest media gap %.0f ms: want a real outage, recovered" % b["max_gap_ms"])
                checks += 2
            if a.loss:
                jb = b["jitter_buffer"]
                if not (0.4 * a.loss <= b["loss_pct"] <= 2.0 * a.loss + 1):
                    fail("B reports %.2f%% loss, A dropped %.1f%%" % (b["loss_pct"], a.loss))
                if jb["fec"] < 1 or jb["fec"] + jb["plc"] < 0.3 * b["lost"]:
                    fail("lost %d packets but FEC rebuilt %d and PLC %d frames" % (
                        b["lost"], jb["fec"], jb["plc"]))
                checks += 2
        finally:
            if proxy:
                proxy.stop()
            if player and player.poll() is None:
                player.kill()
                player.wait()
            pulse.close()
    print("ok: %d checks" % checks)


if __name__ == "__main__":
    main()
