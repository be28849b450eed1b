"""pulse.py - a private PulseAudio daemon for the listening tests, and the
speech they play (issue 18 item 3, docs/phone-tests.md).

`Pulse()` starts `pulseaudio` as a child of the test (never a daemonized
one: it is killed by its PID), with -n (no default configuration: only the
modules named here load), no exit on idle, its runtime dir, state and cookie
in a temp dir removed at the end, and anonymous auth on its socket so
clients in other network namespaces (the NAT lab) reach it through the
socket's path alone (PULSE_SERVER=unix:PATH). Root is fine: it warns and runs.

Null sinks are the virtual devices: a phone's microphone is a sink the test
plays into (`paplay -d micA`), the phone capturing its monitor
(`micA.monitor`); a phone's speaker is a sink it plays into, the test
recording its monitor (`Recorder`: `pacat --record -d spkB.monitor`, read by
a thread that counts samples; `listen_pair` reads two of them side by side).

`speech(dir, text)` makes a 48 kHz mono WAV of fixed text with espeak-ng and
sox. Nothing here skips: a missing tool raises, and the test fails."""
import os
import shutil
import threading
import signal
import subprocess
import tempfile
import time

TIMEOUT_MULT = float(os.environ.get("TIMEOUT_MULT", "1") or 1)
RATE = 48000

# Fixed texts: the tests compare against these, so they never change per run.
TEXT_A = ("Hello from tsunagu. The quick brown fox jumps over the lazy dog. "
          "Please call me back when you hear this message, and bring the blue notebook.")
TEXT_B = ("Seven ships sailed north in the winter of that year. "
          "Nobody expected them to return before the ice melted on the river.")


class ToolMissing(RuntimeError):
    pass


def need(*tools):
    """Raise naming the Debian package when a tool is not installed."""
    pkg = {"pulseaudio": "pulseaudio", "pactl": "pulseaudio-utils",
           "paplay": "pulseaudio-utils", "pacat": "pulseaudio-utils",
           "espeak-ng": "espeak-ng", "sox": "sox", "opusenc": "opus-tools",
           "opusdec": "opus-tools"}
    for t in tools:
        if not shutil.which(t):
            raise ToolMissing("%s not found: apt-get install %s (bash scripts/deps.sh test)"
                              % (t, pkg.get(t, t)))


def speech(directory, text, name):
    """WAV of text spoken by espeak-ng, 48 kHz mono 16-bit, with 300 ms of
    silence before and after (a recorder's start and a jitter buffer's
    fill must not eat the first syllable). Returns its path."""
    need("espeak-ng", "sox")
    raw = os.path.join(directory, name + "-22k.wav")
    out = os.path.join(directory, name + ".wav")
    subprocess.run(["espeak-ng", "-v", "en", "-s", "160", "-w", raw, text], check=True,
                   timeout=30, stdout=subprocess.DEVNULL)
    subprocess.run(["sox", raw, "-r", str(RATE), "-c", "1", "-b", "16", out,
                    "pad", "0.3", "0.3"], check=True, timeout=30)
    os.unlink(raw)
    return out


class Pulse:
    """One private PulseAudio daemon; use as a context manager."""

    def __init__(self, keep=False):
        need("pulseaudio", "pactl", "paplay", "pacat")
        self.dir = tempfile.mkdtemp(prefix="tsu-audio-")
        os.chmod(self.dir, 0o755)   # lab namespaces run as root too; the socket is 0777
        self.keep = keep or bool(os.environ.get("AUDIO_KEEP_TMP"))
        self.proc = None
        self.children = []
        self.socket = os.path.join(self.dir, "pulse", "native")
        self.env = dict(os.environ)
        # every client (pactl, paplay, a phone, Chromium) of this test finds
        # this daemon and no other, and writes nothing outside self.dir
        self.env.update({
            "XDG_RUNTIME_DIR": self.dir,
            "PULSE_RUNTIME_PATH": os.path.join(self.dir, "pulse"),
            "PULSE_STATE_PATH": os.path.join(self.dir, "state"),
            "PULSE_SERVER": "unix:" + self.socket,
            "PULSE_COOKIE": os.path.join(self.dir, "cookie"),
            "HOME": self.dir,
        })

    def __enter__(self):
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def _start(self):
        log = open(os.path.join(self.dir, "pulseaudio.log"), "wb")
        argv = ["pulseaudio", "-n", "--daemonize=no", "--exit-idle-time=-1",
                "--use-pid-file=no", "--system=no", "--log-target=stderr",
                # as on a desktop (rtkit): the mixing thread keeps time when
                # the machine is busy (root may raise it; elsewhere a warning)
                "--high-priority=yes", "--realtime=yes",
                "--load=module-native-protocol-unix auth-anonymous=1 socket=" + self.socket]
        self.proc = subprocess.Popen(argv, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        end = time.time() + 15 * TIMEOUT_MULT
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("pulseaudio exited (code %s): %s" % (
                    self.proc.returncode, self.log()[-1500:]))
            if os.path.exists(self.socket) and self.pactl("info", check=False).returncode == 0:
                return
            if time.time() > end:
                raise RuntimeError("pulseaudio did not answer within 15 s: " + self.log()[-1500:])
            time.sleep(0.1)

    def log(self):
        try:
            with open(os.path.join(self.dir, "pulseaudio.log"), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def pactl(self, *args, check=True):
        return subprocess.run(["pactl"] + list(args), env=self.env, check=check, timeout=15,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def null_sink(self, name, channels=1):
        """A virtual device: a sink named name and its source name.monitor."""
        self.pactl("load-module", "module-null-sink", "sink_name=" + name,
                   "rate=%d" % RATE, "channels=%d" % channels, "format=s16le",
                   "sink_properties=device.description=" + name)
        # An idle null sink renders nothing, so its monitor delivers nothing:
        # a recorder would start at the first sound (no timing reference) and
        # a phone capturing it would see its microphone stall. A stream of
        # zeros keeps the sink running; mixing zeros in changes no sample.
        self.spawn(["pacat", "--playback", "-d", name, "--raw", "--format=s16le",
                    "--rate=%d" % RATE, "--channels=%d" % channels, "--latency-msec=20",
                    "/dev/zero"], log="keepalive-%s.log" % name)
        end = time.time() + 10 * TIMEOUT_MULT
        while True:
            rows = self.pactl("list", "short", "sinks").stdout.splitlines()
            if any(r.split("\t")[1:2] == [name] and r.rstrip().endswith("RUNNING") for r in rows):
                return name
            if time.time() > end:
                raise RuntimeError("null sink %s not RUNNING after 10 s: %s" % (name, rows))
            time.sleep(0.05)

    def spawn(self, argv, log=None, env_extra=None, log_stderr=None, **kw):
        """A client process of this daemon, killed by PID at close()."""
        env = dict(self.env)
        env.update(env_extra or {})
        if log_stderr:
            # stdout is the caller's (kw["stdout"]): only stderr goes to the log
            out = open(os.path.join(self.dir, log_stderr), "wb")
            p = subprocess.Popen(argv, env=env, stderr=out, **kw)
            out.close()
        else:
            out = open(os.path.join(self.dir, log), "wb") if log else subprocess.DEVNULL
            p = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, **kw)
            if log:
                out.close()
        self.children.append(p)
        return p

    def listen_pair(self, wav, sink, near, far, out_near, out_far, lead=0.5, tail=1.0,
                    max_secs=60):
        """Play wav into sink while recording two sources at once: near (the
        monitor of the sink played into: what a phone's microphone got) and
        far (a speaker's monitor: what came out at the other end). Both
        recorders' sample counts are read together every 20 ms; returns the
        mean of (far count - near count) in seconds. The delay from near to
        far is then far's lag - near's lag - that offset: the player's own
        start-up (tens of ms on a loaded machine) is in both lags and
        cancels, which timing a single recorder against the player cannot
        do."""
        rn = Recorder(self, near)
        rf = Recorder(self, far)
        offs = []
        try:
            rn.wait_flowing(10 * TIMEOUT_MULT)
            rf.wait_flowing(10 * TIMEOUT_MULT)
            time.sleep(lead)
            pl = self.play(sink, wav)
            end = time.time() + max_secs * TIMEOUT_MULT
            stop_at = None
            while stop_at is None or time.time() < stop_at:
                offs.append(rf.position() - rn.position())
                if stop_at is None and pl.poll() is not None:
                    if pl.returncode != 0:
                        raise RuntimeError("paplay exit code %d" % pl.returncode)
                    stop_at = time.time() + tail
                if time.time() > end:
                    raise RuntimeError("paplay did not finish within %.0f s" % max_secs)
                time.sleep(0.02)
        finally:
            xn, xf = rn.stop(), rf.stop()
        write_pcm16(out_near, xn)
        write_pcm16(out_far, xf)
        if len(offs) < 10:
            raise RuntimeError("only %d position samples" % len(offs))
        offs.sort()
        # the middle 80%: a recorder whose thread was late once skews a sample
        k = len(offs) // 10
        mid = offs[k: len(offs) - k]
        return sum(mid) / len(mid) / RATE

    def play(self, sink, wav):
        """paplay with its default buffer (2 s): a null sink takes data at the
        sample rate however much is queued, so a deep buffer adds no delay
        here, and a shallow one underran on a loaded 2-core machine (the
        speech came out with gaps: corr 0.54 with nothing but PulseAudio in
        the path)."""
        return self.spawn(["paplay", "-d", sink, wav], log=os.path.basename(wav) + ".play.log")

    def close(self):
        for p in reversed(self.children):
            if p.poll() is None:
                p.terminate()
        for p in reversed(self.children):
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.keep:
            print("# kept " + self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)


def write_pcm16(path, pcm, rate=RATE):
    """16-bit mono WAV from raw s16le bytes."""
    import wave
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm)


class Recorder:
    """pacat --record of one source into memory, read by a thread that counts
    samples as they arrive, so a test knows where in the recording an event
    happened. At most MAX_SECS seconds are kept."""
    MAX_SECS = 300

    def __init__(self, pa, source, latency_ms=20):
        self.p = pa.spawn(["pacat", "--record", "-d", source, "--raw", "--format=s16le",
                           "--rate=%d" % RATE, "--channels=1",
                           "--latency-msec=%d" % latency_ms], stdout=subprocess.PIPE,
                          log_stderr="rec-%s.log" % source)
        self.buf = bytearray()
        self.lock = threading.Lock()
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        cap = self.MAX_SECS * RATE * 2
        while True:
            b = self.p.stdout.read1(65536) if hasattr(self.p.stdout, "read1") else \
                self.p.stdout.read(4096)
            if not b:
                return
            with self.lock:
                if len(self.buf) < cap:
                    self.buf += b

    def position(self):
        """Samples received so far."""
        with self.lock:
            return len(self.buf) // 2

    def wait_flowing(self, secs):
        end = time.time() + secs
        while self.position() == 0:
            if self.p.poll() is not None:
                raise RuntimeError("pacat --record exited (code %s)" % self.p.returncode)
            if time.time() > end:
                raise RuntimeError("no sample recorded within %.0f s" % secs)
            time.sleep(0.01)

    def stop(self):
        """Stop recording; the raw s16le bytes."""
        if self.p.poll() is None:
            self.p.terminate()
        try:
            self.p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
        self.t.join(timeout=5)
        with self.lock:
            return bytes(self.buf[: len(self.buf) // 2 * 2])
