"""browser_leg.py - headless Chromium inside a lab namespace, on tsunagu-signal's
demo page, calling whoever else is in the room (a tsunagu-bot in the
topologies), and what its getStats() says about the call.

How it runs (checked on this machine kind, Debian 12, Chromium 156):
- `ip netns exec NS chromium ...` with the flags of tests/e2e/cdp.py, its own
  --user-data-dir, driven over --remote-debugging-pipe: `ip netns exec` execs
  Chromium, so fds 3 and 4 reach it unchanged.
- --allow-loopback-in-peer-connection is taken OUT of the flags: a lab
  namespace has a real interface, Chromium gathers host candidates on it, and
  leaving the flag out proves that the leg does not depend on it.
- The demo page comes from tsunagu-signal in another namespace over plain
  http (http://203.0.113.10:P/). On such an origin Chromium hides
  navigator.mediaDevices (not a secure context), so the origin is named in
  --unsafely-treat-insecure-origin-as-secure (it needs its own
  --user-data-dir, which we have).
- The page is opened WITHOUT relay=1: ICE policy 'all', nothing forced; what
  the selected pair is, is what ICE found.

The caller spawns (so its own bookkeeping tracks the PID and kills it) and
fails; see Leg below.
"""
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
import cdp  # noqa: E402

CHROMIUM = "/usr/bin/chromium"

# getStats of every peer of the page, flattened: the selected pair (types,
# addresses, protocol, relayProtocol of the local candidate) and RTP counters.
STATS_JS = """
(async () => {
  if (!window.tsunaguStats) return JSON.stringify({notready: true});
  const s = await tsunaguStats();
  const j = (s.log || []).find(l => / joined \S+ as /.test(l));
  return JSON.stringify({status: s.status, joined: s.joined, errors: s.errors,
                         iceServers: (s.iceServers || []).map(x => x.urls),
                         peers: s.peers, now: new Date().toISOString().slice(11, 23),
                         joinedAt: j ? j.slice(0, 12) : null});
})()
"""


class Leg:
    """One Chromium in namespace ns. spawn(argv, logname, **popen_kw) starts a
    process (argv already wrapped in `ip netns exec`) and returns its Popen;
    fail(msg) must not return. origin: http://HOST:PORT of tsunagu-signal."""

    def __init__(self, ns, origin, workdir, spawn, fail, mult=1.0, exe=CHROMIUM, extra_flags=()):
        if not os.access(exe, os.X_OK):
            fail("%s not found: apt-get install chromium (scripts/deps.sh test)" % exe)
        self.ns, self.origin, self.fail, self.mult = ns, origin, fail, mult
        self.log = os.path.join(workdir, "chrome-%s.log" % ns)
        profile = os.path.join(workdir, "chrome-profile-%s" % ns)
        os.makedirs(profile, exist_ok=True)
        logname = os.path.basename(self.log)

        def ns_spawn(argv, **kw):
            argv = [a for a in argv if a != "--allow-loopback-in-peer-connection"]
            return spawn(["ip", "netns", "exec", ns] + argv, logname, **kw)

        flags = ["--enable-logging=stderr", "--v=0",
                 "--unsafely-treat-insecure-origin-as-secure=" + origin] + list(extra_flags)
        self.cdp = cdp.DevToolsPipe(exe, profile, flags, ns_spawn, fail, mult)
        self.proc = self.cdp.proc
        self.session = None
        self.opened_at = None

    def open_demo(self, room, name="browser", relay_only=False):
        """The demo page joins room at once; ICE policy 'all' (no relay=1)
        unless relay_only."""
        url = "%s/?room=%s&name=%s&autojoin=1%s" % (self.origin, room, name,
                                                   "&relay=1" if relay_only else "")
        self.opened_at = time.time()
        self.session = self.cdp.open(url)

    def stats(self):
        v, exc = self.cdp.evaluate(self.session, STATS_JS)
        if exc:
            return None
        return json.loads(v) if v else None

    def wait_joined(self, timeout):
        deadline = time.time() + timeout * self.mult
        while time.time() < deadline:
            s = self.stats()
            if s and s.get("joined"):
                return s
            time.sleep(0.2)
        self.fail("chromium in %s never joined the room (page: %s)\n%s" % (
            self.ns, json.dumps(self.stats()), self.console_tail()))

    def wait_call(self, want_packets, timeout, since=None):
        """Poll getStats until one peer has a selected pair and >= want_packets
        inbound audio packets. Returns a summary dict (see summary()) with
        setup_ms: from the page's join (its own log line, page clock) to the
        first poll (100 ms apart) that saw inbound audio, as the bots count
        theirs from their join; open_ms and pair_ms: from `since` (default:
        page opened: load, getUserMedia, join included) to that poll and to
        the first that saw a selected pair."""
        since = since or self.opened_at
        deadline = time.time() + timeout * self.mult
        pair_at = media_at = media_page = None
        last = None
        while time.time() < deadline:
            s = self.stats()
            last = s
            for pid, p in ((s or {}).get("peers") or {}).items():
                pair = p.get("pair")
                if not pair:
                    continue
                if pair_at is None:
                    pair_at = time.time()
                inb = (p.get("inbound") or {}).get("audio") or {}
                if inb.get("packets", 0) > 0 and media_at is None:
                    media_at, media_page = time.time(), s.get("now")
                if inb.get("packets", 0) >= want_packets:
                    r = summary(pid, p, page_ms(s.get("joinedAt"), media_page))
                    r["open_ms"] = int((media_at - since) * 1000)
                    r["pair_ms"] = int((pair_at - since) * 1000)
                    return r
            time.sleep(0.1)
        self.fail("chromium in %s: no call with %d inbound audio packets within %.0f s; page: %s\n%s"
                  % (self.ns, want_packets, timeout * self.mult, json.dumps(last)[:3000],
                     self.console_tail()))

    def peer_stats(self, peer):
        s = self.stats() or {}
        p = (s.get("peers") or {}).get(peer)
        return summary(peer, p, None) if p and p.get("pair") else None

    def console_tail(self, n=3000):
        try:
            text = open(self.log, errors="replace").read()
        except OSError:
            return "(no chromium log)"
        lines = [line for line in text.splitlines() if "CONSOLE" in line or "ERROR" in line]
        return "\n".join(lines)[-n:]


def page_ms(t0, t1):
    """ms from t0 to t1, both "HH:MM:SS.mmm" of the page's clock; -1 if
    either is missing (a run across midnight adds a day)."""
    def ms(t):
        h, m, sec = t.split(":")
        return int((int(h) * 3600 + int(m) * 60 + float(sec)) * 1000)
    if not t0 or not t1:
        return -1
    d = ms(t1) - ms(t0)
    return d + 86400000 if d < 0 else d


def lab_spawner(lab):
    """A spawn for Leg on a netlab.Lab: the process is tracked in lab.procs
    (killed at teardown, also on failure) and logs into the lab's directory.
    Lab.spawn has no preexec_fn/close_fds, which the DevTools pipe needs."""
    def spawn(argv, logname, **kw):
        with open(lab.path(logname), "ab") as f:
            p = subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, **kw)
        p.log = lab.path(logname)
        lab.procs.append(p)
        return p
    return spawn


def for_lab(lab, netns, origin, extra_flags=()):
    """A Leg in netns (a netlab.Netns) of lab, failing through netlab.fail."""
    import netlab
    return Leg(netns.name, origin, lab.dir, lab_spawner(lab), netlab.fail,
               netlab.TIMEOUT_MULT, extra_flags=extra_flags)


def summary(pid, p, setup_ms):
    pair = p["pair"]
    inb, out = p.get("inbound") or {}, p.get("outbound") or {}
    return {
        "peer": pid, "setup_ms": setup_ms,
        "local_type": pair.get("local"), "remote_type": pair.get("remote"),
        "local_address": pair.get("localAddress"), "remote_address": pair.get("remoteAddress"),
        "protocol": pair.get("protocol"), "relay_protocol": pair.get("relayProtocol"),
        "pair_bytes_sent": pair.get("bytesSent") or 0,
        "pair_bytes_received": pair.get("bytesReceived") or 0,
        "in_audio_packets": (inb.get("audio") or {}).get("packets", 0),
        "in_audio_lost": (inb.get("audio") or {}).get("lost", 0),
        "out_audio_packets": (out.get("audio") or {}).get("packets", 0),
    }


def check_bot_report(path, fail, want_path_prefix="relay/", min_decoded=50):
    """The bot's --report JSON after it exited: exactly one call with media,
    decoded >= min_decoded packets from the browser, sent some, over a path
    starting with want_path_prefix. Returns that call's dict."""
    if not os.path.exists(path):
        fail("bot wrote no report at %s" % path)
    r = json.load(open(path))
    legs = [c for c in r.get("calls", []) if c.get("media")]
    if len(legs) != 1:
        fail("bot reports %d calls with audio, want 1: %s" % (len(legs), json.dumps(r)[:2000]))
    c = legs[0]
    if c.get("decoded", 0) < min_decoded:
        fail("bot decoded only %d packets from the browser (want >= %d)" % (
            c.get("decoded", 0), min_decoded))
    if c.get("sent", 0) < min_decoded:
        fail("bot sent only %d packets" % c.get("sent", 0))
    if not str(c.get("path", "")).startswith(want_path_prefix):
        fail("bot path %r, want %s..." % (c.get("path"), want_path_prefix))
    return c
