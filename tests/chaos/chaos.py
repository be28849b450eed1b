#!/usr/bin/python3
"""chaos.py - the chaos suite (issue 14): every daemon of a small tsunagu
deployment on loopback, real calls and signals, and a random, seeded
schedule of faults; then what each fault cost.

Cast: tsunagu-relay; two tsunagu-signal nodes on one redis-server, each
behind its own balancer stand-in (lb_proxy.py: new connections go to the
first healthy node, node 1 first for one, node 2 first for the other);
--calls bot-to-bot calls (tsunagu-bot load mode, split over --bot-procs
processes, half through each balancer, relay only); one headless Chromium
call (the demo page, called by a member-mode bot that offers, so it drives
the ICE restart); --pairs rooms with a member on each node exchanging
numbered signals (chaos_members.py).

Faults (chaos_procs.py), each kind at least once, the rest random: relay
SIGUSR2 (live upgrade) and SIGHUP (reload); a signaling node SIGTERM (drain)
and restart, SIGKILL and restart; Redis SIGKILL and restart (empty), SIGSTOP
for up to 3 s then SIGCONT; relay SIGKILL and a restart within 1 s. Faults
follow each other 4-8 s apart, 8 s around a relay crash (an ICE restart
needs signaling; a crash while a node is also down is beyond the 5 s
promise).

Asserts:
- no RTP lost by any bot leg or the browser in the window of a relay
  upgrade, reload, signaling or Redis fault, nor outside any window (loss
  is allowed only in the window of a relay crash);
- every call back within 5 s of a relay crash: each leg's longest gap
  under 5 s, media (and, for the browser, 25 packets) again within 5 s;
  every leg ends with media, none failed;
- every numbered signal confirmed by the node arrives once and in order; a
  refused one was refused with an error its sender saw; none arrives twice
  or out of order, in doubt or not;
- RSS at the end at most 10% over its baseline (taken after warm-up, same
  load) for the relay and the two signaling nodes together (members move
  between them), descriptors within 10% (the relay, Redis, the two nodes);
- in Redis (what the nodes keep there, by Redis's count; its RSS only has a
  +50% runaway bound): keys without an expiry and the members of hashes and
  sets within 10% (+2) of the baseline, every member stream within its bound
  (2 x --send-queue-messages + 100), the longest room stream within 1.5x of
  the baseline's (the warm-up outlasts --stream-seconds, so the room streams
  are at their steady size at the baseline).
Prints the seed (CHAOS_SEED=N replays the schedule), a timeline of the
faults and what each cost.

--soak MINUTES (bench/soak.sh): the same cast at a steady load with no
faults (or --soak-faults), sampling every --sample seconds RSS, descriptors
and CPU of each daemon, the bots' loss/jitter/RTT/MOS and the signals'
latency into a TSV and a markdown table, and an SVG plot (soak_plot.py)."""
import argparse
import calendar
import json
import logging
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
sys.path.insert(0, HERE)
from bot_harness import free_port  # noqa: E402
from lb_proxy import HealthProxy  # noqa: E402
import cdp  # noqa: E402
import chaos_procs  # noqa: E402
from chaos_members import Members  # noqa: E402

KINDS = ["relay-usr2", "relay-hup", "signal-term", "signal-kill", "redis-restart",
         "redis-stop", "relay-crash"]
MEDIA_KINDS = ("relay-crash",)      # the only faults allowed to cost RTP
PKT_S = 50                          # the bot sends 50 packets/s per leg
T0 = time.time()
# the balancer stand-ins' connections still open at the end are dropped with
# their loop; asyncio would log each as "Task was destroyed but it is pending"
logging.getLogger("asyncio").setLevel(logging.CRITICAL)


def out(line):
    print(line, flush=True)


def fail(msg):
    raise AssertionError(msg)


class Browser:
    """Headless Chromium on the demo page; a thread samples its inbound audio
    once a second: (wall, packets, lost)."""

    def __init__(self, cast, exe, page):
        self.cast = cast
        prof = tempfile.mkdtemp(prefix="chrome-", dir=cast.dir)
        self.dev = cdp.DevToolsPipe(exe, prof, ["--enable-logging=stderr", "--v=0"],
                                    lambda argv, **kw: cast.spawn(argv, "chrome.log", **kw),
                                    self._fail, 1.0)
        self.session = self.dev.open(page)
        self.samples = []
        self.stopping = False
        self.thread = None
        self.error = None

    def _fail(self, msg):
        raise AssertionError("chromium: " + msg)

    def eval(self, expr):
        v, exc = self.dev.evaluate(self.session, expr)
        return None if exc else v

    def joined(self):
        return self.eval("!!(window.tsunaguState && window.tsunaguState.joined)")

    def audio(self):
        v = self.eval("window.tsunaguStats ? tsunaguStats().then(s => JSON.stringify(s)) : ''")
        best = None
        for p in (json.loads(v).get("peers", {}) if v else {}).values():
            a = (p.get("inbound") or {}).get("audio") or {}
            if a.get("packets") is not None and (best is None or a["packets"] > best[0]):
                best = (a["packets"], a.get("lost", 0) or 0)
        return best

    def start_sampling(self):
        def run():
            try:
                while not self.stopping:
                    a = self.audio()
                    if a:
                        self.samples.append((time.time(), a[0], a[1]))
                    time.sleep(0.5)
            except AssertionError as e:
                self.error = str(e)
        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def stop(self):
        self.stopping = True
        if self.thread:
            self.thread.join(20)


def plan(rng, extra, only=None):
    if only:
        seq = list(only)
    else:
        seq = KINDS[:] + [rng.choice(KINDS[:-1]) for _ in range(extra)]
        rng.shuffle(seq)
    faults, prev = [], None
    for k in seq:
        f = {"kind": k, "gap": rng.uniform(4, 8)}
        if k == "relay-crash" or prev == "relay-crash":
            f["gap"] = max(f["gap"], 8.0)
        if k.startswith("signal"):
            f["node"] = rng.randrange(2)
        f["down"] = {"relay-crash": rng.uniform(0.2, 0.9), "signal-kill": rng.uniform(0.1, 1.0),
                     "redis-restart": rng.uniform(0.2, 1.5),
                     "redis-stop": rng.uniform(0.5, 3.0)}.get(k, 0.0)
        faults.append(f)
        prev = k
    # A node's SIGKILL: its members (bots, the demo page, the signal members, all with
    # "seq":true) resume on the other node with `last` and keep their queued messages
    # (docs/cluster.md "A node's crash"), so it takes its place in the schedule like any
    # fault and hits either node. At most one (the extra draws may add more).
    kills = [i for i, f in enumerate(faults) if f["kind"] == "signal-kill"][:1]
    faults = [f for i, f in enumerate(faults) if f["kind"] != "signal-kill" or i in kills]
    for i in range(1, len(faults)):     # 8 s around a relay crash, whatever moved
        if "relay-crash" in (faults[i]["kind"], faults[i - 1]["kind"]):
            faults[i]["gap"] = max(faults[i]["gap"], 8.0)
    return faults


def do_fault(cast, f):
    k = f["kind"]
    if k == "relay-usr2":
        return cast.relay_usr2()
    if k == "relay-hup":
        return cast.relay_hup()
    if k == "relay-crash":
        return cast.relay_crash(f["down"])
    if k == "signal-term":
        return cast.node_term(f["node"])
    if k == "signal-kill":
        return cast.node_kill(f["node"], f["down"])
    if k == "redis-restart":
        return cast.redis_restart(f["down"])
    if k == "redis-stop":
        return cast.redis_stop(f["down"])
    raise AssertionError(k)


def window(f):
    """Wall-clock span during which fault f may show: from 1 s before it to
    3 s after it ended (6 s for a relay crash: 2 s to notice, the restart)."""
    return f["t0"] - 1.0, f["t1"] + (6.0 if f["kind"] == "relay-crash" else 3.0)


def leg_loss_seconds(leg, t0):
    """[(wall start, wall end, lost packets)] of a leg's timeline seconds with loss."""
    outl = []
    prev = 0.0
    for t_s, _j, loss_pct, _r in leg["timeline"]:
        if loss_pct > 0:
            outl.append((t0 + prev, t0 + t_s, loss_pct / 100.0 * PKT_S * (t_s - prev)))
        prev = t_s
    return outl


FIRST_AUDIO = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)Z \S+\s+tsunagu-bot \[(\S+)\] "
                         r"first audio decoded after ([0-9.]+) ms", re.M)


def leg_starts(log):
    """label -> wall time of the leg's t0 (the origin of its report's timeline): the
    bot logs, at info, when its first audio came and how long after t0."""
    res = {}
    for m in FIRST_AUDIO.finditer(log):
        t = calendar.timegm(time.strptime(m.group(1)[:19], "%Y-%m-%dT%H:%M:%S")) + \
            float("0" + m.group(1)[19:])
        res.setdefault(m.group(2), t - float(m.group(3)) / 1000.0)
    return res


def emodel_mos(rtt_ms, jitter_ms, loss_pct):
    """docs/bot.md's simplified G.107 (as tests/integration/bot_quality.py)."""
    jb = max(2 * jitter_ms, 20.0)
    d = (rtt_ms / 2 if rtt_ms > 0 else 0) + jb + 26.5
    idd = 0.024 * d + (0.11 * (d - 177.3) if d > 177.3 else 0)
    ppl = min(max(loss_pct, 0), 100)
    r = 93.2 - idd - 95 * ppl / (ppl + 25.1)
    if r <= 0:
        return 1.0
    return min(max(1 + 0.035 * r + 7e-6 * r * (r - 60) * (100 - r), 1), 4.5) if r < 100 else 4.5


PROGRESS = re.compile(r"\[\s*(\d+)s\] legs (\d+)/(\d+) with audio, (\d+) failed \| loss ([0-9.]+)% "
                      r"\| jitter ([0-9.]+) ms \| rtt ([0-9.]+) ms")


def median_stats(cast, n=3, gap=0.7):
    runs = []
    for i in range(n):
        runs.append(cast.stats())
        if i + 1 < n:
            time.sleep(gap)
    res = {}
    for k in runs[0]:
        vals = [r[k] for r in runs if r.get(k)]
        if not vals:
            res[k] = None
            continue
        res[k] = tuple(sorted(v[i] for v in vals)[len(vals) // 2] for i in range(3))
    return res


class Run:
    def __init__(self, a):
        self.a = a
        self.dir = tempfile.mkdtemp(prefix="chaos-")
        self.cast = chaos_procs.Cast(a, self.dir, out)
        self.bots = []          # (Popen, report path, t_start, calls)
        self.brbot = None
        self.browser = None
        self.members = None
        self.lbs = []
        self.faults = []
        self.problems = []

    def close(self):
        if self.members:
            self.members.stop()
        if self.browser:
            self.browser.stop()
        for lb in self.lbs:
            lb.__exit__(None, None, None)
        self.cast.close()
        if os.environ.get("CHAOS_KEEP_TMP"):
            out("# kept " + self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    # --- set-up ---
    def start(self, tag):
        a, c = self.a, self.cast
        c.start()
        for order in (c.node_ports, c.node_ports[::-1]):
            lb = HealthProxy(order)
            lb.__enter__()
            self.lbs.append(lb)
        urls = ["ws://127.0.0.1:%d/ws" % lb.port for lb in self.lbs]
        per = [a.calls // a.bot_procs + (1 if i < a.calls % a.bot_procs else 0)
               for i in range(a.bot_procs)]
        for i, n in enumerate(per):
            if not n:
                continue
            rep = os.path.join(self.dir, "bot%d.json" % i)
            p = c.spawn([a.bot, "--signal", urls[0], "--room", "%s-b%d" % (tag, i),
                         "--calls", str(n), "--duration", "3600", "--relay-only",
                         "--ramp-ms", str(a.ramp_ms), "--report", rep, "--log-level", "info"],
                        "bot%d.log" % i)
            self.bots.append((p, rep, time.time(), n))
        if a.chromium:
            room = "%s-br" % tag
            port = self.lbs[1].port
            page = "http://127.0.0.1:%d/?room=%s&name=browser&autojoin=1&relay=1" % (port, room)
            self.browser = Browser(c, a.chromium, page)
            end = time.time() + 30
            while not self.browser.joined():
                if time.time() > end:
                    fail("the demo page never joined:\n" + c.logtext("chrome.log")[-2000:])
                time.sleep(0.3)
            rep = os.path.join(self.dir, "brbot.json")
            p = c.spawn([a.bot, "--signal", urls[1], "--room", room, "--duration", "3600",
                         "--relay-only", "--report", rep, "--log-level", "info"], "brbot.log")
            self.brbot = (p, rep)
        self.members = Members(c.node_ports, a.pairs, a.signal_interval, tag)
        self.members.start()
        # every call carries audio
        end = time.time() + 60
        while True:
            legs = self.bot_progress()
            if all(l and l[1] == l[2] == 2 * n for l, (_p, _r, _t, n) in zip(legs, self.bots)):
                if not self.browser or (self.browser.audio() or (0,))[0] >= 50:
                    break
            if time.time() > end:
                fail("calls not all up after 60 s: %r, browser %r" % (
                    legs, self.browser and self.browser.audio()))
            for p, _r, _t, _n in self.bots:
                if p.poll() is not None:
                    fail("a bot exited early (%d):\n%s" % (p.returncode, c.logtext("bot0.log")[-2000:]))
            time.sleep(0.5)
        if self.browser:
            self.browser.start_sampling()

    def bot_progress(self):
        """Each load bot's last progress line: (secs, with audio, legs, failed,
        loss %, jitter ms, rtt ms) or None."""
        res = []
        for i in range(len(self.bots)):
            m = None
            for m in PROGRESS.finditer(self.cast.logtext("bot%d.log" % i)[-4000:]):
                pass
            res.append(tuple(float(x) for x in m.groups()) if m else None)
        return res

    def stop_bots(self):
        procs = [b[0] for b in self.bots] + ([self.brbot[0]] if self.brbot else [])
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                fail("a bot did not stop within 30 s of SIGTERM")


def chaos(a):
    seed = a.seed
    rng = random.Random(seed)
    faults = plan(rng, a.extra_faults, a.faults.split(",") if a.faults else None)
    out("# chaos seed %d (replay: CHAOS_SEED=%d); %d faults planned: %s" % (
        seed, seed, len(faults), " ".join(f["kind"] for f in faults)))
    run = Run(a)
    checks = 0
    try:
        run.start("chaos%d" % os.getpid())
        out("# %d calls up in %d bot process(es), browser call %s, %d signal pairs; %.1f s" % (
            a.calls, len(run.bots), "up" if run.browser else "off", a.pairs, time.time() - T0))
        time.sleep(a.warmup)
        base = median_stats(run.cast)
        base["redis-data"] = redis_data(run.cast)
        out("# baseline after warm-up: " + fmt_stats(base))
        t_faults = time.time()
        last_end = t_faults
        for f in faults:
            while time.time() < last_end + f["gap"]:
                time.sleep(0.05)
            f["t0"] = time.time()
            f["what"] = do_fault(run.cast, f)
            f["t1"] = time.time()
            last_end = f["t1"]
            out("# %6.1f s  %-13s %s" % (f["t0"] - t_faults, f["kind"] + (
                " %d" % (f["node"] + 1) if "node" in f else ""), f["what"]))
        time.sleep(a.settle)
        run.members.quiesce(3.0)
        end = median_stats(run.cast)
        end["redis-data"] = redis_data(run.cast)
        out("# at the end: " + fmt_stats(end))
        t_end = time.time()
        if run.browser:
            run.browser.stop()
            if run.browser.error:
                fail(run.browser.error)
        run.members.stop()
        run.stop_bots()
        out("# faults phase %.1f s, whole run %.1f s" % (t_end - t_faults, time.time() - T0))
        checks += judge(run, faults, base, end, t_faults, t_end)
    finally:
        run.close()
    out("PASS (%d checks, seed %d, %.1f s)" % (checks, seed, time.time() - T0))


def redis_data(cast):
    """What the nodes keep in Redis (docs/cluster.md "Data model"), by Redis's own count:
    used_memory and its dataset part, the keys, the keys without an expiry, the members of
    every hash and set (rooms, the nodes' member lists), and the longest member stream
    (tsu:mq:*) and room stream (tsu:st:*). None if Redis does not answer."""
    r = cast.redis.cmd
    try:
        info = r("INFO", "memory")
        got = dict(l.split(":", 1) for l in info.splitlines() if ":" in l)
        d = {"used": int(got["used_memory"]), "dataset": int(got["used_memory_dataset"]),
             "keys": 0, "persist": 0, "elems": 0, "mq": 0, "st": 0}
        for k in r("KEYS", "*"):  # a test Redis: ~150 keys
            d["keys"] += 1
            if r("TTL", k) == -1:
                d["persist"] += 1
            ty = r("TYPE", k)
            if ty in ("hash", "set"):
                d["elems"] += r("HLEN" if ty == "hash" else "SCARD", k)
            elif ty == "stream":
                kind = "mq" if k.startswith("tsu:mq:") else "st" if k.startswith("tsu:st:") else None
                if kind:
                    d[kind] = max(d[kind], r("XLEN", k))
        return d
    except (OSError, AssertionError, KeyError, ValueError, AttributeError, TypeError):
        return None


def fmt_stats(st):
    def one(k, v):
        if v is None:
            return "gone"
        if k == "redis-data":
            return "used_memory %.2f MiB (dataset %.2f MiB), %d keys" % (
                v["used"] / 1048576, v["dataset"] / 1048576, v["keys"])
        return "%.1f MiB %d fds" % (v[0] / 1024, v[1])
    return ", ".join("%s %s" % (k, one(k, v)) for k, v in st.items())


def judge(run, faults, base, end, t_faults, t_end):
    """Every assertion of the suite; prints the cost table first so a
    failure still shows what happened."""
    checks = 0
    errs = []
    for f in faults:
        f["rtp"] = 0.0
        f["br"] = 0
        f["sig"] = {"refused": 0, "doubt": 0, "lost": 0}
    nofault = 0.0
    legs = []
    for i, (p, rep, t_start, n) in enumerate(run.bots):
        r = json.load(open(rep))
        t0s = leg_starts(run.cast.logtext("bot%d.log" % i))
        for c in r["calls"]:
            if c["label"] not in t0s:
                errs.append("%s: no 'first audio decoded' line in bot%d.log" % (c["label"], i))
                continue
            legs.append((c, t0s[c["label"]]))
    if len(legs) != 2 * run.a.calls:
        errs.append("%d bot legs reported, want %d" % (len(legs), 2 * run.a.calls))
    crashes = [f for f in faults if f["kind"] == "relay-crash"]
    stalls, stall_at = 0, {}
    for c, t0 in legs:
        # A second's loss in the timeline is what the clock expected less what was read:
        # a loop (bot or relay) stalled for a few hundred ms reads as loss in one second and
        # the packets are read in the next, where the figure is clamped at 0 (docs/bot.md).
        # The leg's total `lost` (sequence gaps, SRs, the clock at the end) has no such
        # artefact: loss outside crash windows counts as real when the total shows it.
        secs, crash_tl = [], 0.0
        for s0, s1, lost in leg_loss_seconds(c, t0):
            hit = [f for f in faults if window(f)[0] - 0.3 < s1 and s0 < window(f)[1] + 0.3]
            hit.sort(key=lambda f: f["kind"] not in MEDIA_KINDS)
            if hit and hit[0]["kind"] in MEDIA_KINDS:
                hit[0]["rtp"] += lost
                crash_tl += lost
            else:
                secs.append((s0, s1, lost, hit[0] if hit else None))
        # Sequence gaps (lost_seq) are real loss only: packets that never came while later
        # ones did. A relay crash's outage is one gap of about max_gap / 20 ms (the sender
        # goes on numbering; SRTP survives the ICE restart); more than that is loss elsewhere.
        crash_est = c["max_gap_ms"] / 20.0 if crashes else 0.0
        extra = c["lost_seq"] - crash_est
        real = extra > 3
        if real and not secs:
            errs.append("%s: %d packets missing by sequence, the relay crash's gap (%.0f ms) "
                        "explains %.0f" % (c["label"], c["lost_seq"], c["max_gap_ms"], crash_est))
        for s0, s1, lost, f in secs:
            where = "%s %.1f-%.1f s: %.0f" % (c["label"], s0 - t_faults, s1 - t_faults, lost)
            if not real:
                stalls += lost
                k = int(s1 - t_faults)
                stall_at[k] = stall_at.get(k, 0) + lost
            elif s1 < t_faults - 2:
                errs.append("%s: %.0f packets lost during warm-up" % (c["label"], lost))
            elif f:
                f["rtp"] += lost
                f.setdefault("legs", []).append(where)
            else:
                nofault += lost
                errs.append("%s lost %.0f packets at %.1f-%.1f s, in no fault's window "
                            "(%d missing by sequence, %.0f explained by a relay crash)" % (
                                c["label"], lost, s0 - t_faults, s1 - t_faults, c["lost_seq"],
                                crash_est))
        why = []
        if not c["media"] or c["failed"]:
            why.append("media %s failed %s (%s)" % (c["media"], c["failed"], c["end_reason"]))
        if c["max_gap_ms"] >= (5000 if crashes else 1000):
            why.append("longest gap %.0f ms" % c["max_gap_ms"])
        if crashes and c["ice_restarts"] < 1:
            why.append("no ICE restart after the relay crash")
        tail = [x[2] for x in c["timeline"][-3:]]
        if any(x > 0 for x in tail):
            why.append("loss in its last seconds %r" % tail)
        if c["srtp_errors"] or c["decode_errors"]:
            why.append("%d SRTP / %d decode errors" % (c["srtp_errors"], c["decode_errors"]))
        if why:
            errs.append("%s: %s" % (c["label"], "; ".join(why)))
    checks += len(legs)
    gaps = sorted(c["max_gap_ms"] for c, _ in legs)
    # the browser call
    br_back = []
    if run.browser:
        s = run.browser.samples
        for f in faults:
            w0, w1 = window(f)
            inside = [x for x in s if w0 <= x[0] <= w1]
            before = [x for x in s if x[0] < w0]
            if before and inside:
                f["br"] = max(x[2] for x in inside) - before[-1][2]
            if f["kind"] == "relay-crash":
                # the count is read every 0.5 s: the first reading 0.5-1.2 s after the kill
                # holds what arrived before it (the relay is dead by then); back = 25 more
                at = [x for x in s if f["t0"] + 0.5 <= x[0] <= f["t0"] + 1.2]
                back = [x for x in s if at and x[0] > at[0][0] and x[1] >= at[0][1] + 25]
                t = back[0][0] - f["t0"] if back else None
                br_back.append(t)
                if t is None or t > 5.5:
                    errs.append("browser: audio not back within 5 s of the relay crash at %.1f s "
                                "(%s)" % (f["t0"] - t_faults, t))
        lost_total = s[-1][2] - s[0][2] if s else 0
        in_crash = sum(f["br"] for f in faults if f["kind"] in MEDIA_KINDS)
        if lost_total > in_crash:
            errs.append("browser: %d packets lost outside relay crashes" % (lost_total - in_crash))
        if not s or s[-1][1] - s[0][1] < PKT_S * (s[-1][0] - s[0][0]) * 0.8:
            errs.append("browser: inbound audio short of 50/s over the run")
        checks += 3
        br = json.load(open(run.brbot[1]))
        for c in br["calls"]:
            if not c["media"] or c["failed"] or c["max_gap_ms"] >= (5000 if crashes else 1000):
                errs.append("browser call, bot leg: media %s failed %s gap %.0f ms" % (
                    c["media"], c["failed"], c["max_gap_ms"]))
            checks += 1
    # signals
    rows, bad = run.members.verdict()
    L = run.members.L
    M = run.members
    kills = [f for f in faults if f["kind"] == "signal-kill"]
    for f in kills:
        f["victims"] = M.on_node(run.cast.node_ports[f["node"]], f["t0"])

    def gap_kill(name, t, after=12.0):
        """The node-crash fault that explains trouble of member `name` at t."""
        for f in kills:
            if run.a.strict:
                break
            if f["t0"] - 2 <= t <= f["t1"] + after and name in f["victims"]:
                return f
        return None
    gap = {"lost": 0, "problems": 0}
    for r in rows:
        keep = []
        for n in r["lost"]:
            ts = L.sent_t[r["sender"]].get(n, 0)
            cand = [f for f in faults if f["t0"] - 1 <= ts] or faults[:1]
            cand[-1]["sig"]["lost"] += 1
            if gap_kill(r["sender"], ts) or gap_kill(M.peer_of(r["sender"]), ts):
                gap["lost"] += 1
            else:
                keep.append(n)
        r["lost"] = keep
        if r["sender"] in bad and not (keep or r["dup"] or r["disorder"] or
                                       r["refused_delivered"] or r["unknown"]):
            bad.remove(r["sender"])
    for sender, st in L.sent.items():
        for n, v in st.items():
            ts = L.sent_t[sender].get(n, 0)
            cand = [f for f in faults if f["t0"] - 1 <= ts]
            if cand and (v.startswith("refused") or v in ("doubt", "sent")):
                cand[-1]["sig"]["refused" if v.startswith("refused") else "doubt"] += 1
    # the timeline
    out("\n# fault timeline (s from the first fault; RTP lost = bot legs, br = browser, "
        "signals refused/in doubt/LOST)")
    out("# %7s %-15s %7s %9s %5s %14s  %s" % ("at", "fault", "took", "RTP lost", "br",
                                              "sig r/d/LOST", "what"))
    for f in faults:
        out("# %7.1f %-15s %6.2fs %9.0f %5d %14s  %s" % (
            f["t0"] - t_faults, f["kind"] + (" %d" % (f["node"] + 1) if "node" in f else ""),
            f["t1"] - f["t0"], f["rtp"], f["br"],
            "%d/%d/%d" % (f["sig"]["refused"], f["sig"]["doubt"], f["sig"]["lost"]), f["what"]))
    out("# RTP lost outside every fault window: %.0f; seconds that read as loss and caught up "
        "the next second (a stall, not loss: the legs' sequence numbers say so): %.0f packets%s" % (
            nofault, stalls, (" (s: packets " + ", ".join(
                "%d: %.0f" % kv for kv in sorted(stall_at.items())) + ")") if stall_at else ""))
    out("# bot legs: %d, longest gap per leg p50 %.0f ms max %.0f ms; browser back after "
        "relay crash: %s" % (len(legs), gaps[len(gaps) // 2] if gaps else 0, gaps[-1] if gaps else 0,
                             ", ".join("%.2f s" % t if t else "never" for t in br_back) or "-"))
    tot = {k: sum(r[k] for r in rows) for k in ("sent", "confirmed", "refused", "doubt",
                                                "doubt_delivered", "delivered", "dup", "disorder")}
    out("# signals: %(sent)d sent, %(confirmed)d confirmed, %(refused)d refused (sender saw the "
        "error), %(doubt)d in doubt (connection dropped; %(doubt_delivered)d of them arrived), "
        "%(delivered)d delivered, %(dup)d duplicates, %(disorder)d out of order" % tot)
    out("# signals LOST (confirmed, never delivered): %d; errors seen %s; joins %d, resumes %d, "
        "drain notices %d, went home %d, peer-left seen %d" % (
            sum(len(r["lost"]) for r in rows), dict(L.errors), L.joins, L.resumes, L.drains, L.homecomings,
            len(L.peer_left)))
    lat = sorted(r["lat_p50"] for r in rows)
    out("# signal latency p50 (median over senders) %.1f ms, max %.0f ms" % (
        lat[len(lat) // 2] * 1e3 if lat else 0, max((r["lat_max"] for r in rows), default=0) * 1e3))
    for t, what in run.members.events():
        if t >= t_faults - 1:
            out("#   %7.1f %s" % (t - t_faults, what))
    # RTP checks
    for f in faults:
        if f["kind"] not in MEDIA_KINDS and (f["rtp"] > 0 or f["br"] > 0):
            errs.append("%s at %.1f s cost %.0f bot / %d browser RTP packets (want 0): %s" % (
                f["kind"], f["t0"] - t_faults, f["rtp"], f["br"], "; ".join(f.get("legs", [])[:8])))
    if nofault > 0:
        errs.append("%.0f RTP packets lost outside every fault window" % nofault)
    checks += len(faults) + 1
    # signal checks
    for r in rows:
        if r["sender"] in bad:
            errs.append("signals from %s: LOST %r, %d duplicates, %d out of order, delivered "
                        "though refused %r, unknown %r" % (
                            r["sender"], r["lost"][:10], r["dup"], r["disorder"],
                            r["refused_delivered"][:10], r["unknown"][:10]))
        if r["confirmed"] < 10:
            errs.append("signals from %s: only %d confirmed" % (r["sender"], r["confirmed"]))
    seen = {}
    for t, who, prob in L.problems:
        if who and gap_kill(who, t, 20.0):
            gap["problems"] += 1
            continue
        seen[prob] = seen.get(prob, 0) + 1
    errs += ["%s%s" % (k, " (x%d)" % v if v > 1 else "") for k, v in seen.items()]
    left = [x for x in L.peer_left if not gap_kill(x[2], x[0], 20.0)]
    gap["problems"] += len(L.peer_left) - len(left)
    if left:
        errs.append("members saw their peer leave %d times: %r" % (len(left), left[:4]))
    if kills and not run.a.strict:
        out("# KNOWN GAP (docs/cluster.md \"A node's crash\"; test chaos_node_crash): after the "
            "SIGKILL of signal-%d its %d members' resume was refused: %d confirmed signals to or "
            "from them lost, %d refused resumes / re-joins / peer-left; the node fds check is off" % (
                kills[0]["node"] + 1, len(kills[0]["victims"]), gap["lost"], gap["problems"]))
    checks += len(rows) + 2
    # RSS and descriptors
    for k in base:
        if k == "redis-data":
            continue
        b, e = base[k], end[k]
        if not b or not e:
            errs.append("%s: no reading (%r / %r)" % (k, b, e))
            continue
        out("# %-9s RSS %.1f -> %.1f MiB (%+.1f%%), fds %d -> %d" % (
            k, b[0] / 1024, e[0] / 1024, 100.0 * (e[0] - b[0]) / b[0], b[1], e[1]))
        # (Redis: a bound for a runaway only; what the nodes keep there is judged below)
        lim = 1.50 if k == "redis" else 1.10
        if e[0] > b[0] * lim and not k.startswith("signal"):
            errs.append("%s: RSS %.1f MiB at the end, baseline %.1f MiB (> +%d%%)" % (
                k, e[0] / 1024, b[0] / 1024, round((lim - 1) * 100)))
        if not k.startswith("signal") and abs(e[1] - b[1]) > max(0.10 * b[1], 2):
            errs.append("%s: %d descriptors at the end, baseline %d" % (k, e[1], b[1]))
    # What the nodes keep in Redis. Redis's RSS is not the measure: the members' streams
    # (about 2 x --send-queue-messages entries each) are still filling during the run, by
    # design, and Redis's allocator keeps what it freed (a restart reloads the AOF into a new
    # one). What would pile up in production is judged instead: keys that never expire,
    # members of the rooms' and nodes' hashes, and streams past their bounds.
    rb_, re_d = base.get("redis-data"), end.get("redis-data")
    if not rb_ or not re_d:
        errs.append("redis: no INFO/KEYS reading (%r / %r)" % (rb_, re_d))
    else:
        out("# redis     used_memory %.2f -> %.2f MiB (dataset %.2f -> %.2f MiB); keys %d -> %d, "
            "without expiry %d -> %d; hash/set members %d -> %d; longest member stream %d -> %d, "
            "room stream %d -> %d" % (
                rb_["used"] / 1048576, re_d["used"] / 1048576, rb_["dataset"] / 1048576,
                re_d["dataset"] / 1048576, rb_["keys"], re_d["keys"], rb_["persist"],
                re_d["persist"], rb_["elems"], re_d["elems"], rb_["mq"], re_d["mq"], rb_["st"],
                re_d["st"]))
        for what, key in (("keys without expiry", "persist"), ("hash/set members", "elems")):
            if re_d[key] > rb_[key] * 1.10 + 2:
                errs.append("redis: %d %s at the end, baseline %d (> +10%% +2)" % (
                    re_d[key], what, rb_[key]))
        # MAXLEN ~ trims whole stream nodes: up to 100 entries (stream-node-max-entries) over
        mq_cap = 2 * 1024 + 100
        if re_d["mq"] > mq_cap:
            errs.append("redis: a member stream holds %d entries (bound 2 x 1024 + 100)" % re_d["mq"])
        # (the room streams keep --stream-seconds of signals: at their steady size at the
        # baseline when the warm-up is longer, as by default; chaos_node_crash's is not)
        if run.a.warmup >= run.a.stream_seconds + 1 and \
                re_d["st"] > max(1.5 * rb_["st"], rb_["st"] + 100):
            errs.append("redis: a room stream holds %d entries, %d at the baseline (it keeps "
                        "--stream-seconds %d s)" % (re_d["st"], rb_["st"], run.a.stream_seconds))
    checks += 4
    # clients move between the nodes (drains, the crash): the two together carry the load
    rb = base["signal-1"][0] + base["signal-2"][0]
    re_ = end["signal-1"][0] + end["signal-2"][0]
    out("# signaling nodes together: RSS %.1f -> %.1f MiB (%+.1f%%)" % (
        rb / 1024, re_ / 1024, 100.0 * (re_ - rb) / rb))
    if re_ > rb * 1.10:
        errs.append("signaling nodes: RSS %.1f MiB together at the end, baseline %.1f MiB (> +10%%)"
                    % (re_ / 1024, rb / 1024))
    sb = base["signal-1"][1] + base["signal-2"][1]
    se = end["signal-1"][1] + end["signal-2"][1]
    if abs(se - sb) > max(0.10 * sb, 2) and (run.a.strict or not kills):
        errs.append("signaling nodes: %d descriptors together at the end, baseline %d" % (se, sb))
    checks += len(base) * 2 + 1
    if errs:
        for e in errs:
            out("FAIL: " + e)
        fail("%d check(s) failed (seed %d)" % (len(errs), run.a.seed))
    return checks


def soak(a):
    """Steady load for a.soak minutes; a sample every a.sample seconds."""
    rows = []
    run = Run(a)
    os.makedirs(a.out, exist_ok=True)
    try:
        run.start("soak%d" % os.getpid())
        t0 = time.time()
        prev_cpu = {}
        seen = 0
        rng = random.Random(a.seed)
        next_fault = t0 + 30 if a.soak_faults else None
        while time.time() - t0 < a.soak * 60:
            time.sleep(a.sample)
            now = time.time()
            st = run.cast.stats()
            row = {"t_s": round(now - t0, 1)}
            for k, v in st.items():
                if v is None:
                    continue
                pc = prev_cpu.get(k)
                row[k + "_rss_mib"] = round(v[0] / 1024, 2)
                row[k + "_fds"] = v[1]
                row[k + "_cpu_pct"] = round(100.0 * (v[2] - pc[0]) / (now - pc[1]), 1) if pc else 0.0
                prev_cpu[k] = (v[2], now)
            prog = [p for p in run.bot_progress() if p]
            if prog:
                row["legs_audio"] = int(sum(p[1] for p in prog))
                row["loss_pct"] = round(max(p[4] for p in prog), 3)
                row["jitter_ms"] = round(sum(p[5] for p in prog) / len(prog), 2)
                row["rtt_ms"] = round(sum(p[6] for p in prog) / len(prog), 2)
                row["mos"] = round(emodel_mos(row["rtt_ms"], row["jitter_ms"], row["loss_pct"]), 2)
            lats = []
            for s, got in list(run.members.L.got.items()):
                lats += [g[1] for g in got if g[2] > now - a.sample]
            lats.sort()
            seen += len(lats)
            row["signals"] = len(lats)
            row["sig_p50_ms"] = round(lats[len(lats) // 2] * 1e3, 2) if lats else 0
            row["sig_p95_ms"] = round(lats[int(len(lats) * 0.95)] * 1e3, 2) if lats else 0
            if run.browser and run.browser.samples:
                row["browser_pkts"] = run.browser.samples[-1][1]
                row["browser_lost"] = run.browser.samples[-1][2]
            rows.append(row)
            out("# " + " ".join("%s=%s" % kv for kv in row.items()))
            if next_fault and now >= next_fault:
                f = {"kind": rng.choice(KINDS[:-1]), "node": rng.randrange(2),
                     "down": rng.uniform(0.2, 1.0)}
                out("# fault %s: %s" % (f["kind"], do_fault(run.cast, f)))
                next_fault = now + 60
        run.members.stop()
        run.stop_bots()
        write_tables(a.out, rows)
    finally:
        run.close()


def write_tables(outdir, rows):
    cols = []
    for r in rows:
        for k in r:
            if k not in cols:
                cols.append(k)
    with open(os.path.join(outdir, "soak.tsv"), "w") as f:
        f.write("\t".join(cols) + "\n")
        for r in rows:
            f.write("\t".join(str(r.get(c, "")) for c in cols) + "\n")
    keep = ["t_s"] + [c for c in cols if c.endswith(("_rss_mib", "_fds"))] + \
           [c for c in ("loss_pct", "jitter_ms", "mos", "sig_p50_ms", "sig_p95_ms") if c in cols]
    with open(os.path.join(outdir, "soak.md"), "w") as f:
        f.write("| " + " | ".join(keep) + " |\n|" + "---|" * len(keep) + "\n")
        for r in rows:
            f.write("| " + " | ".join(str(r.get(c, "")) for c in keep) + " |\n")
    subprocess.run([sys.executable, os.path.join(HERE, "soak_plot.py"),
                    os.path.join(outdir, "soak.tsv"), os.path.join(outdir, "soak.svg")], check=True)
    out("# wrote %s/soak.tsv, soak.md, soak.svg (%d samples)" % (outdir, len(rows)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bot", required=True)
    ap.add_argument("--relay-exe", required=True)
    ap.add_argument("--signal-exe", required=True)
    ap.add_argument("--chromium", default="/usr/bin/chromium", help="'' = no browser call")
    ap.add_argument("--calls", type=int, default=20)
    ap.add_argument("--bot-procs", type=int, default=2)
    ap.add_argument("--ramp-ms", type=int, default=50)
    ap.add_argument("--pairs", type=int, default=4)
    ap.add_argument("--signal-interval", type=float, default=0.1)
    ap.add_argument("--stream-seconds", type=int, default=10,
                    help="the nodes' --redis-stream-seconds (longer than any outage here)")
    ap.add_argument("--warmup", type=float, default=None,
                    help="seconds before the baseline; at least --stream-seconds + 1, so the "
                         "room streams in Redis are at their steady size when it is read")
    ap.add_argument("--settle", type=float, default=6.0)
    ap.add_argument("--extra-faults", type=int, default=4)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--faults", default="", help="these kinds in this order (comma list), "
                    "instead of every kind once and --extra-faults random ones")
    ap.add_argument("--strict", action="store_true", default=True,
                    help="no allowance for a node's SIGKILL (the default since a crashed node's "
                         "members resume with their queues; kept for old command lines)")
    ap.add_argument("--crash-allowance", dest="strict", action="store_false",
                    help="the old known-gap allowance: trouble of a SIGKILLed node's members "
                         "from 2 s before to 12 s after it is reported, not failed")
    ap.add_argument("--redis-arg", dest="redis_args", action="append", default=[])
    ap.add_argument("--soak", type=float, default=0, help="minutes of steady load (bench)")
    ap.add_argument("--soak-faults", action="store_true")
    ap.add_argument("--sample", type=float, default=10)
    ap.add_argument("--out", default=".")
    a = ap.parse_args()
    if a.warmup is None:
        a.warmup = max(6.0, a.stream_seconds + 1.0)
    for exe in (a.bot, a.relay_exe, a.signal_exe):
        if not os.access(exe, os.X_OK):
            sys.exit("FAIL: %s is not an executable" % exe)
    if a.chromium and not os.access(a.chromium, os.X_OK):
        sys.exit("FAIL: %s not found: apt-get install chromium" % a.chromium)
    if a.seed is None:
        env = os.environ.get("CHAOS_SEED", "")
        a.seed = int(env) if env else random.SystemRandom().randrange(1, 1 << 31)
    try:
        if a.soak:
            soak(a)
        else:
            chaos(a)
    except AssertionError as e:
        out("FAIL: %s (seed %d: CHAOS_SEED=%d replays this schedule)" % (e, a.seed, a.seed))
        sys.exit(1)


if __name__ == "__main__":
    main()
