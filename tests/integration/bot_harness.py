"""bot_harness.py - shared pieces of the bot's integration, e2e and bench
scripts: free ports, a TURN server and a signaling server started as real
processes (Debian's coturn or tsunagu-relay; the Python stand-in or
tsunagu-signal), all killed by PID at the end, and the relay's packet count.

Every script takes --relay coturn|tsunagu [--relay-exe PATH] and
--signal stub|tsunagu [--signal-exe PATH], so switching to the real servers
is a matter of arguments (tests/*/meson.build does it when the executables
exist)."""
import os, re, shutil, signal, socket, subprocess, sys, tempfile, time, urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ports  # noqa: E402

SECRET = "bot-test-secret"
HERE = os.path.dirname(os.path.abspath(__file__))
TIMEOUT_MULT = float(os.environ.get("TIMEOUT_MULT", "1") or 1)


def fail(msg):
    print("FAIL: " + msg, flush=True)
    sys.exit(1)


def check_clean_leg(c):
    """A call leg on loopback: nothing lost, MOS above 4.0, no SRTP or decode
    error. Returns the number of checks made."""
    if c["lost"] != 0:
        fail("%s: %d packets lost on loopback" % (c["label"], c["lost"]))
    if c["mos"] <= 4.0:
        fail("%s: MOS %.2f not above 4.0" % (c["label"], c["mos"]))
    if c["srtp_errors"] or c["decode_errors"]:
        fail("%s: %d SRTP / %d decode errors" % (c["label"], c["srtp_errors"],
                                                 c["decode_errors"]))
    return 3


def free_port(kind=socket.SOCK_STREAM, also_udp=False):
    """A port free for TCP (and UDP when asked) on 127.0.0.1 right now (ports.py: why
    not port 0)."""
    try:
        return ports.pick(tcp=kind == socket.SOCK_STREAM,
                          udp=kind == socket.SOCK_DGRAM or also_udp)
    except RuntimeError as e:
        fail(str(e))


def wait_tcp(port, secs, proc=None, what="server"):
    end = time.time() + secs * TIMEOUT_MULT
    while time.time() < end:
        if proc is not None and proc.poll() is not None:
            fail("%s exited early (code %s)" % (what, proc.returncode))
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    fail("%s did not listen on %d within %.0f s" % (what, port, secs * TIMEOUT_MULT))


class Stack:
    """The processes of one test run. Use as a context manager: every
    process is killed by PID on exit, also on failure."""

    def __init__(self, args):
        self.args = args
        self.procs = []
        self.dir = tempfile.mkdtemp(prefix="botit-")
        self.turn_port = None
        self.metrics_port = None
        self.sig_port = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in reversed(self.procs):
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if os.environ.get("BOT_KEEP_TMP"):
            print("# kept " + self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)
        return False

    def spawn(self, argv, log, **kw):
        f = open(os.path.join(self.dir, log), "wb")
        p = subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT, **kw)
        self.procs.append(p)
        return p

    def log(self, name):
        try:
            with open(os.path.join(self.dir, name), "r", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    # --- TURN ---
    def start_relay(self):
        a = self.args
        self.turn_port = free_port(also_udp=True)
        if a.relay == "coturn":
            exe = a.relay_exe or shutil.which("turnserver")
            if not exe:
                fail("turnserver not found: apt-get install coturn")
            # One relayed port per call leg: 2000 ports allow 1000 calls. The
            # window moves with the listening port so parallel runs overlap less.
            lo = 20000 + (self.turn_port % 10) * 2000
            argv = ["stdbuf", "-oL", exe, "-n", "-v", "--listening-ip=127.0.0.1",
                    "--listening-port=%d" % self.turn_port, "--relay-ip=127.0.0.1",
                    "--min-port=%d" % lo, "--max-port=%d" % (lo + 1999), "--realm=tsunagu",
                    "--use-auth-secret", "--static-auth-secret=" + SECRET,
                    "--allow-loopback-peers", "--no-tls", "--no-dtls", "--no-cli",
                    "--no-rfc5780", "--no-software-attribute",
                    "--pidfile=" + os.path.join(self.dir, "turn.pid"),
                    "--userdb=" + os.path.join(self.dir, "turndb"),
                    "--log-file=stdout", "--simple-log"]
            p = self.spawn(argv, "relay.log")
        else:
            exe = a.relay_exe
            if not exe or not os.access(exe, os.X_OK):
                fail("tsunagu-relay executable not given (--relay-exe)")
            self.metrics_port = free_port()
            argv = [exe, "--listen", "127.0.0.1:%d" % self.turn_port,
                    "--auth-secret", SECRET, "--realm", "tsunagu",
                    "--metrics-listen", "127.0.0.1:%d" % self.metrics_port]
            p = self.spawn(argv, "relay.log")
        wait_tcp(self.turn_port, 10, p, "relay")
        url = "turn:127.0.0.1:%d" % self.turn_port
        if getattr(a, "turn_transport", "udp") == "tcp":
            url += "?transport=tcp"
        return url

    def relay_packets(self):
        """Packets the relay forwarded between peers (0 if unknown)."""
        if self.args.relay == "coturn":
            # coturn prints "peer usage: ... rp=N" per session, periodically
            # and at close (1-5 s after); take the last figure per session.
            best = {}
            for m in re.finditer(r"session (\d+): peer usage: .*?rp=(\d+)", self.log("relay.log")):
                best[m.group(1)] = int(m.group(2))
            return sum(best.values())
        try:
            body = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % self.metrics_port,
                                          timeout=5).read().decode()
        except OSError as e:
            fail("relay /metrics: %s" % e)
        total = 0
        for m in re.finditer(r'^tsunagu_relay_packets_total\{[^}]*\}\s+([0-9.e+]+)', body, re.M):
            total += float(m.group(1))
        return int(total)

    def relay_cpu_rss(self):
        """(cpu seconds, rss bytes) of the relay process."""
        p = self.procs[0]
        try:
            with open("/proc/%d/stat" % p.pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            tck = os.sysconf("SC_CLK_TCK")
            cpu = (int(fields[11]) + int(fields[12])) / tck
            with open("/proc/%d/status" % p.pid) as f:
                rss = int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1)) * 1024
            return cpu, rss
        except (OSError, AttributeError, IndexError):
            return 0.0, 0

    # --- signaling ---
    def start_signal(self, turn_url, www=None, extra_urls=()):
        """Start signaling handing out turn_url and extra_urls (stun: URLs,
        say) in joined.iceServers; returns its ws:// URL."""
        a = self.args
        more = []
        for u in extra_urls:
            more += ["--turn-url", u]
        if a.signal == "stub":
            pf = os.path.join(self.dir, "sig.port")
            argv = ["/usr/bin/python3", os.path.join(HERE, "bot_sigstub.py"), "--listen",
                    "127.0.0.1:0", "--port-file", pf, "--turn-url", turn_url,
                    "--turn-secret", SECRET] + more
            if www:
                argv += ["--www", www]
            p = self.spawn(argv, "signal.log")
            end = time.time() + 10 * TIMEOUT_MULT
            while not os.path.exists(pf):
                if p.poll() is not None:
                    fail("signaling stand-in exited: " + self.log("signal.log")[-500:])
                if time.time() > end:
                    fail("signaling stand-in did not start (python3-websockets installed?)")
                time.sleep(0.05)
            self.sig_port = int(open(pf).read())
        else:
            exe = a.signal_exe
            if not exe or not os.access(exe, os.X_OK):
                fail("tsunagu-signal executable not given (--signal-exe)")
            self.sig_port = free_port()
            # every bot connects from 127.0.0.1: load runs (2 connections a call)
            # would pass the per-address cap of 64
            argv = [exe, "--listen", "127.0.0.1:%d" % self.sig_port, "--turn-url", turn_url,
                    "--turn-secret", SECRET, "--max-connections-per-ip", "0",
                    "--max-unjoined-per-ip", "0", "--max-joins-per-ip-per-sec", "0"] + more
            p = self.spawn(argv, "signal.log")
            wait_tcp(self.sig_port, 10, p, "tsunagu-signal")
        return "ws://127.0.0.1:%d/ws" % self.sig_port


def add_server_args(ap):
    ap.add_argument("--relay", choices=["coturn", "tsunagu"], default="coturn")
    ap.add_argument("--relay-exe", default="")
    ap.add_argument("--signal", choices=["stub", "tsunagu"], default="stub")
    ap.add_argument("--signal-exe", default="")
    ap.add_argument("--bot", required=True, help="tsunagu-bot executable")
    ap.add_argument("--turn-transport", choices=["udp", "tcp"], default="udp",
                    help="transport in the turn: URL handed out by signaling")
