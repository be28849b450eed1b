"""labcall.py - the tsunagu pieces the lab topologies share: tsunagu-relay and
tsunagu-signal started on a lab host, a bot-to-bot call between two lab
namespaces (one tsunagu-bot per namespace, member mode), the relay's packet
counter read over HTTP from inside the lab, and the closing-note line
`netlab <topo>: pair=<local>/<remote> setup_ms=<n>`.

Stable API for the other topology files (only add to it):
    relay = start_relay(lab, ns, "203.0.113.10", exe, extra=[...])   # Relay
    ws    = start_signal(lab, ns, "203.0.113.10", exe, urls=[...])   # ws:// URL
    before = relay.packets()                                         # /metrics sum
    call  = bot_call(lab, bot_exe, c1, c2, ws, "room", duration=3)   # Call
    call.check_media(fail)      # both legs decoded audio both ways, loss bounded
    call.types()                # ("relay", "host") local candidate type per side
    print(call.line("a"))"""
import json, os, sys, time

import netlab
from netlab import LabError, TIMEOUT_MULT

SECRET = "netlab-secret"
TURN_PORT = 3478
METRICS_PORT = 9641
SIGNAL_PORT = 8080


class Relay:
    """A tsunagu-relay running on a lab host."""

    def __init__(self, lab, ns, ip, proc, log, metrics_ip):
        self.lab, self.ns, self.ip, self.proc, self.log_name = lab, ns, ip, proc, log
        self.metrics_ip = metrics_ip

    def metrics(self):
        return self.ns.http_get("http://%s:%d/metrics" % (self.metrics_ip, METRICS_PORT))

    def packets(self):
        """Packets the relay forwarded (tsunagu_relay_packets_total, all labels)."""
        return int(netlab.metric_sum(self.metrics(), "tsunagu_relay_packets_total"))

    def log(self):
        return self.lab.log(self.log_name)


def start_relay(lab, ns, listen_ip, exe, extra=(), log="relay.log", metrics_ip=None):
    """tsunagu-relay on listen_ip:3478 (UDP+TCP) in namespace ns, REST secret
    SECRET, /metrics on metrics_ip (default listen_ip):9641; waits until it
    listens. `extra`: more flags (--external-ip, --self-check, ...)."""
    if not exe or not os.access(exe, os.X_OK):
        netlab.fail("tsunagu-relay executable not given or not executable: %r" % exe)
    mip = metrics_ip or listen_ip
    argv = [exe, "--listen", "%s:%d" % (listen_ip, TURN_PORT), "--auth-secret", SECRET,
            "--realm", "tsunagu", "--metrics-listen", "%s:%d" % (mip, METRICS_PORT),
            "--threads", "1"] + list(extra)
    p = ns.spawn(argv, log)
    ns.wait_tcp(listen_ip, TURN_PORT, 10, proc=p, what="tsunagu-relay")
    return Relay(lab, ns, listen_ip, p, log, mip)


def start_signal(lab, ns, listen_ip, exe, urls=(), port=SIGNAL_PORT, log="signal.log"):
    """tsunagu-signal on listen_ip:port handing out `urls` (turn:, stun:,
    turns:) in joined.iceServers, credentials from SECRET; no URLs = no ICE
    servers at all. Returns the ws:// URL."""
    if not exe or not os.access(exe, os.X_OK):
        netlab.fail("tsunagu-signal executable not given or not executable: %r" % exe)
    argv = [exe, "--listen", "%s:%d" % (listen_ip, port), "--max-connections-per-ip", "0",
            "--max-unjoined-per-ip", "0", "--max-joins-per-ip-per-sec", "0"]
    for u in urls:
        argv += ["--turn-url", u]
    if any(not u.startswith("stun:") for u in urls):
        argv += ["--turn-secret", SECRET]
    p = ns.spawn(argv, log)
    ns.wait_tcp(listen_ip, port, 10, proc=p, what="tsunagu-signal")
    return "ws://%s:%d/ws" % (listen_ip, port)


class Call:
    """The outcome of one bot-to-bot call: each side's exit code, JSON report
    and single call leg (None when it has none)."""

    def __init__(self, name, rc_a, rc_b, rep_a, rep_b, log_a, log_b):
        self.name = name
        self.rc = (rc_a, rc_b)
        self.reports = (rep_a, rep_b)
        self.logs = (log_a, log_b)
        self.legs = tuple((r or {}).get("calls", [None])[0] if (r or {}).get("calls") else None
                          for r in (rep_a, rep_b))

    def types(self):
        """Local candidate type of each side's selected pair ("relay",
        "host", "srflx", "prflx"; "-" when ICE never completed). Side b's
        local candidate is side a's remote one and vice versa."""
        return tuple((leg or {}).get("path", "-").split("/")[0] or "-" for leg in self.legs)

    def setup_ms(self):
        """Call set-up time: the offerer's (side b, which joins second and
        offers) from its join to its first decoded packet."""
        leg = self.legs[1]
        return int(round(leg["setup_ms"])) if leg and leg.get("media") else -1

    def line(self, topo):
        a, b = self.types()
        return "netlab %s: pair=%s/%s setup_ms=%d" % (topo, a, b, self.setup_ms())

    def describe(self):
        out = []
        for side, leg, rc in zip("ab", self.legs, self.rc):
            if not leg:
                out.append("%s: exit %s, no call leg" % (side, rc))
                continue
            out.append("%s: exit %s, path %s, media %s, sent %d recv %d lost %d (%.2f%%), "
                       "setup %.0f ms, end '%s'" % (side, rc, leg["path"], leg["media"],
                                                   leg["sent"], leg["received"], leg["lost"],
                                                   leg["loss_pct"], leg["setup_ms"],
                                                   leg["end_reason"]))
        return "; ".join(out)

    def check_media(self, fail, max_loss_pct=2.0):
        """Both sides exit 0, each has exactly one leg that decoded audio and
        received at least half of what 50 packets/s over side b's media time
        (its run minus its set-up) would give (10 at least), with loss under
        max_loss_pct and no SRTP or decode error. Returns the checks made."""
        n = 0
        for side, leg, rc, rep in zip("ab", self.legs, self.rc, self.reports):
            if rep is None:
                fail("%s: bot %s wrote no report (exit %s)" % (self.name, side, rc))
            if len(rep["calls"]) != 1:
                fail("%s: bot %s reports %d call legs, want 1" % (self.name, side,
                                                                   len(rep["calls"])))
            if rc != 0 or not leg["media"]:
                fail("%s: bot %s exit %s, media %s (%s)" % (self.name, side, rc, leg["media"],
                                                           leg["end_reason"]))
        media_s = self.reports[1]["duration_s"] - self.legs[1]["setup_ms"] / 1000.0
        want = max(10, int(25 * media_s))
        for side, leg in zip("ab", self.legs):
            if leg["received"] < want or leg["decoded"] < want:
                fail("%s: bot %s received %d, decoded %d packets, want >= %d (%.1f s of media)"
                     % (self.name, side, leg["received"], leg["decoded"], want, media_s))
            if leg["loss_pct"] > max_loss_pct:
                fail("%s: bot %s lost %.2f%% (%d packets)" % (self.name, side, leg["loss_pct"],
                                                           leg["lost"]))
            if leg["srtp_errors"] or leg["decode_errors"]:
                fail("%s: bot %s: %d SRTP / %d decode errors" % (self.name, side,
                                                                  leg["srtp_errors"],
                                                                  leg["decode_errors"]))
            n += 5
        return n

    def received(self):
        return sum((leg or {}).get("received", 0) for leg in self.legs)


def _wait_log(lab, log, needle, proc, secs):
    end = time.time() + secs * TIMEOUT_MULT
    while time.time() < end:
        if needle in lab.log(log):
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.05)
    return False


def bot_call(lab, bot_exe, ns_a, ns_b, ws_url, room, duration=3, extra=(), setup_timeout=8,
             name="call"):
    """One call between a tsunagu-bot in ns_a and one in ns_b (member mode,
    room `room`): a joins first and waits, b joins and offers once a is in;
    b calls for `duration` s, then a is stopped (SIGTERM) and both reports
    are read. Every wait is bounded; both bots are killed by the lab at
    the latest. Returns a Call."""
    if not bot_exe or not os.access(bot_exe, os.X_OK):
        netlab.fail("tsunagu-bot executable not given or not executable: %r" % bot_exe)
    files = {}
    procs = []
    for side, ns, dur in (("a", ns_a, duration + 20), ("b", ns_b, duration)):
        rep = lab.path("%s-%s.json" % (name, side))
        log = "%s-bot-%s.log" % (name, side)
        files[side] = (rep, log)
        argv = [bot_exe, "--signal", ws_url, "--room", room, "--duration", str(dur),
                "--setup-timeout", str(setup_timeout), "--report", rep, "--log-level", "info",
                "--name", "%s-%s" % (name, side)] + list(extra)
        p = ns.spawn(argv, log)
        procs.append(p)
        if side == "a" and not _wait_log(lab, log, "joined as", p, 10):
            raise LabError("%s: bot a did not join within 10 s: %s" % (name, lab.log(log)[-1500:]))
    pa, pb = procs
    try:
        pb.wait(timeout=(duration + setup_timeout + 20) * TIMEOUT_MULT)
    except Exception:
        lab.stop(pb, wait=5)
        raise LabError("%s: bot b did not finish in time" % name)
    rc_a = lab.stop(pa, wait=10)
    rc_b = pb.returncode

    def load(path):
        try:
            with open(path) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None
    c = Call(name, rc_a, rc_b, load(files["a"][0]), load(files["b"][0]),
             files["a"][1], files["b"][1])
    print("# %s: %s" % (name, c.describe()), flush=True)
    return c


def wait_counter(read, at_least, secs=5):
    """Poll read() until it returns >= at_least or secs pass; last value."""
    end = time.time() + secs * TIMEOUT_MULT
    v = read()
    while v < at_least and time.time() < end:
        time.sleep(0.3)
        v = read()
    return v


def main_guard(fn):
    """Run a topology's main: a LabError (a lab step failed) becomes a
    FAIL line and exit 1, never a pass."""
    try:
        fn()
    except LabError as e:
        print("FAIL: lab: %s" % e, flush=True)
        sys.exit(1)
