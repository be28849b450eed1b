#!/usr/bin/python3
"""fleet_lab.py - the relay fleet (issue 13, docs/fleet.md) in the network lab:
every relay on its own lab address, loss injected by nftables on the v2
relay's link (this kernel has no netem).

Lab: one "internet" bridge; "ctl" 203.0.113.5 runs redis-server and two
tsunagu-signal nodes (:8080, :8081, cluster mode on that Redis, reading the
relay registry, --canary v2=20); relays r1 203.0.113.11 and r2 203.0.113.12
(generation v1) and r3 203.0.113.13 (v2) announce themselves into Redis;
clients c1 203.0.113.21 and c2 203.0.113.22 run the light WebSocket joins and
the bots (relay only).

phases (one per run):
  share  200 rooms, each joined through both nodes from c1: v2 gets 20% +- 6%,
         both members of every room get the same relay.
  drain  a bot call on r1; SIGTERM to r1: no new room on r1 later than 3 s
         after; the call runs to its end without loss.
  loss   nftables drops 8% of the UDP arriving on r3's link at random
         (numgen random mod 100 < 8); bot calls on v2 rooms and on v1 rooms:
         the canary is rolled back within the window, v1 calls lose nothing.
  kill   a bot call (--ice-restart 2) on a v1 relay, SIGKILL to it: both bots
         get relays-changed and the call is back by ICE restart (time quoted).

usage: fleet_lab.py RELAY_EXE SIGNAL_EXE BOT_EXE PHASE
       fleet_lab.py --inner ...   (the clients' side, run inside a namespace)"""
import asyncio, calendar, json, os, re, shutil, signal, sys, time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

SECRET = "netlab-secret"
ADMIN = "lab-admin-token"
WINDOW = 30
CTL_IP = "203.0.113.5"
RELAYS = {"r1": ("203.0.113.11", "v1"), "r2": ("203.0.113.12", "v1"),
          "r3": ("203.0.113.13", "v2")}


# ---- the clients' side (inside c1): light WebSocket joins, admin requests ----

async def _join(ws_url, room):
    import websockets
    ws = await websockets.connect(ws_url, open_timeout=10)
    await ws.send(json.dumps({"type": "join", "room": room, "name": "lab"}))
    deadline = time.time() + 10
    while time.time() < deadline:
        m = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if m.get("type") == "joined":
            return ws, m["iceServers"][0]["urls"][0]
        if m.get("type") == "error":
            raise SystemExit("join %s: %r" % (room, m))
    raise SystemExit("join %s: no joined" % room)


async def _pairs(ws1, ws2, prefix, n):
    """Rooms prefix-0..n-1: member a through ws1 (odd: ws2), b through the
    other; {room: [url_a, url_b]}."""
    out = {}

    async def one(i):
        room = "%s-%03d" % (prefix, i)
        first, second = (ws1, ws2) if i % 2 == 0 else (ws2, ws1)
        a, ua = await _join(first, room)
        b, ub = await _join(second, room)
        out[room] = [ua, ub]
        await a.close()
        await b.close()
    for base in range(0, n, 20):
        await asyncio.gather(*(one(i) for i in range(base, min(n, base + 20))))
    return out


async def _singles(ws1, ws2, prefix, n, gap):
    """Fresh rooms, one member each, alternating nodes, `gap` s apart:
    [[wall time of the joined, room, url]] (the lab shares the host's clock)."""
    out = []
    for i in range(n):
        room = "%s-%d" % (prefix, i)
        ws, url = await _join(ws1 if i % 2 == 0 else ws2, room)
        out.append([time.time(), room, url])
        await ws.close()
        await asyncio.sleep(gap)
    return out


def _admin(url, method="GET"):
    import urllib.request
    req = urllib.request.Request(url, method=method, headers={"Authorization": "Bearer " + ADMIN})
    with urllib.request.urlopen(req, timeout=5) as r:
        return r.read().decode()


def inner(argv):
    what = argv[0]
    if what == "pairs":
        print(json.dumps(asyncio.run(_pairs(argv[1], argv[2], argv[3], int(argv[4])))))
    elif what == "singles":
        print(json.dumps(asyncio.run(_singles(argv[1], argv[2], argv[3], int(argv[4]),
                                              float(argv[5])))))
    elif what == "admin":
        print(_admin(argv[1], *(argv[2:3])))
    else:
        raise SystemExit("unknown inner command " + what)


# ---- the lab ----

def main():
    import netlab
    from netlab import Lab, LabError, TIMEOUT_MULT

    relay_exe, signal_exe, bot_exe, phase = sys.argv[1:5]
    for exe in (relay_exe, signal_exe, bot_exe):
        if not os.access(exe, os.X_OK):
            netlab.fail("not executable: %s" % exe)
    redis_exe = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not os.access(redis_exe, os.X_OK):
        netlab.fail("redis-server is missing (apt-get install redis-server)")
    t_start = time.time()
    with Lab("fleet") as lab:
        ctl = lab.public_host("ctl", CTL_IP + "/24")
        rns = {n: lab.public_host(n, ip + "/24") for n, (ip, _) in RELAYS.items()}
        c1 = lab.public_host("c1", "203.0.113.21/24")
        c2 = lab.public_host("c2", "203.0.113.22/24")
        # a password: Redis refuses other hosts without one (protected mode), and the
        # relays' and nodes' AUTH is exercised
        redis_url = "redis://:lab-redis-pw@%s:6379/0" % CTL_IP
        rp = ctl.spawn([redis_exe, "--bind", CTL_IP, "--port", "6379", "--save", "",
                        "--requirepass", "lab-redis-pw",
                        "--appendonly", "no", "--dir", lab.dir, "--daemonize", "no"], "redis.log")
        ctl.wait_tcp(CTL_IP, 6379, 10, proc=rp, what="redis-server")
        relays = {}
        for n, (ip, gen) in RELAYS.items():
            argv = [relay_exe, "--listen", "%s:3478" % ip, "--auth-secret", SECRET, "--realm",
                    "tsunagu", "--metrics-listen", "%s:9641" % ip, "--threads", "1",
                    "--relay-ports", "20000-20999",
                    "--drain-seconds", "60", "--announce", redis_url, "--announce-url",
                    "turn:%s:3478" % ip, "--announce-name", n, "--generation", gen]
            p = rns[n].spawn(argv, "relay-%s.log" % n)
            rns[n].wait_tcp(ip, 3478, 10, proc=p, what="relay " + n)
            relays[n] = p
        ws = []
        for port in (8080, 8081):
            argv = [signal_exe, "--listen", "%s:%d" % (CTL_IP, port), "--redis", redis_url,
                    "--relay-registry", redis_url, "--turn-secret", SECRET, "--admin-token",
                    ADMIN, "--canary", "v2=20", "--canary-window", str(WINDOW),
                    "--canary-hold", "2", "--canary-min-sample", "4",
                    "--canary-max-loss-delta", "3", "--max-connections-per-ip", "0",
                    "--max-unjoined-per-ip", "0", "--max-joins-per-ip-per-sec", "0",
                    "--max-room-creates-per-ip-per-min", "0", "--rate-limit", "5000",
                    "--resume-seconds", "0", "--redis-node-ttl", "3"]
            p = ctl.spawn(argv, "signal-%d.log" % port)
            ctl.wait_tcp(CTL_IP, port, 10, proc=p, what="tsunagu-signal :%d" % port)
            ws.append("ws://%s:%d/ws" % (CTL_IP, port))
        url_of = {"turn:%s:3478" % ip: n for n, (ip, _) in RELAYS.items()}

        def run_inner(*args, timeout=90):
            r = c1.run([sys.executable, os.path.abspath(__file__), "--inner"] + list(args),
                       timeout=timeout * TIMEOUT_MULT, check=False)
            if r.returncode != 0:
                raise LabError("inner %s: %s" % (args[0], (r.stderr or r.stdout)[-800:]))
            return json.loads(r.stdout)

        def admin(port=8080, method="GET", path="/admin/canary"):
            return run_inner("admin", "http://%s:%d%s" % (CTL_IP, port, path), method)

        def states():
            return [{r["name"]: r["state"] for r in admin(p)["relays"]} for p in (8080, 8081)]

        def wait_states(pred, what, secs=10):
            end = time.time() + secs * TIMEOUT_MULT
            while time.time() < end:
                st = states()
                if all(pred(s) for s in st):
                    return time.time()
                time.sleep(0.2)
            raise LabError("%s within %d s: %r" % (what, secs, states()))

        def rooms_on(want, n, prefix, with_relay=False):
            got = [(room, url_of[url]) if with_relay else room
                   for _, room, url in run_inner("singles", ws[0], ws[0], prefix, "60", "0")
                   if url_of[url] in want][:n]
            if len(got) < n:
                raise LabError("not %d rooms on %s among 60" % (n, want))
            time.sleep(0.3)
            return got

        def bot(ns, room, side, duration, extra=()):
            rep = lab.path("%s-%s.json" % (room, side))
            argv = [bot_exe, "--signal", ws[0 if side == "a" else 1], "--room", room,
                    "--relay-only", "--duration", str(duration), "--report", rep, "--name", side,
                    "--log-level", "info"] + list(extra)
            return ns.spawn(argv, "bot-%s-%s.log" % (room, side)), rep

        def call(room, duration, extra=()):
            a = bot(c1, room, "a", duration + 2, extra)
            time.sleep(1.0)
            return [a, bot(c2, room, "b", duration, extra)]

        def finish(bots, what):
            """Reports; exit 1 (the bot's own gates: a gap > 1 s, say) is judged
            by the caller from the report."""
            out = []
            for p, rep in bots:
                try:
                    rc = p.wait(timeout=90 * TIMEOUT_MULT)
                except Exception:
                    raise LabError("%s: a bot did not finish" % what)
                if rc not in (0, 1) or not os.path.exists(rep):
                    raise LabError("%s: bot exit %s, no report\n%s" % (what, rc, lab.log(
                        "bot-%s.log" % os.path.basename(rep)[:-5])[-1500:]))
                out.append(json.load(open(rep)))
            return out

        def legs(reports):
            return ", ".join("%s loss %.2f%% gap %.0f ms restarts %d" % (
                c["label"], c["loss_pct"], c["max_gap_ms"], c.get("ice_restarts", 0))
                for r in reports for c in r["calls"])

        def allocs(n):
            body = rns[n].http_get("http://%s:9641/metrics" % RELAYS[n][0])
            return int(float(re.search(r"^tsunagu_relay_allocations (\S+)$", body, re.M).group(1)))

        wait_states(lambda s: all(s.get(n) == "up" for n in RELAYS), "every relay up")
        print("# lab up: redis, 3 relays on 203.0.113.11-13, 2 signaling nodes (%.1f s)" % (
            time.time() - t_start), flush=True)

        if phase == "share":
            pairs = run_inner("pairs", ws[0], ws[1], "share", "200")
            bad = [r for r, (a, b) in pairs.items() if a != b]
            n = {k: 0 for k in RELAYS}
            for a, _ in pairs.values():
                n[url_of[a]] += 1
            print("# 200 rooms through both nodes: r1 %d, r2 %d, r3 (v2) %d -> v2 %.1f%%; "
                  "members sharing a relay: %d/200" % (n["r1"], n["r2"], n["r3"], n["r3"] / 2.0,
                                                       200 - len(bad)))
            if len(pairs) != 200 or bad:
                netlab.fail("rooms whose members got different relays: %r" % bad[:3])
            if not 28 <= n["r3"] <= 52:
                netlab.fail("v2 got %d of 200 rooms, not 20%% +- 6%%" % n["r3"])

        elif phase == "drain":
            room = rooms_on(("r1",), 1, "drain-call")[0]
            bots = call(room, 12)
            end = time.time() + 20 * TIMEOUT_MULT
            while allocs("r1") < 2:
                if time.time() > end:
                    raise LabError("the call did not allocate on r1")
                time.sleep(0.3)
            time.sleep(2)
            t0 = time.time()
            os.kill(relays["r1"].pid, signal.SIGTERM)  # (ip netns exec replaced itself)
            seen = [[t - t0, r, u] for t, r, u in
                    run_inner("singles", ws[0], ws[1], "drain-new", "100", "0.05")]
            on_r1 = [t for t, _, url in seen if url_of[url] == "r1"]
            after3 = [t for t, _, _ in seen if t > 3]
            print("# drain: %d new rooms in %.1f s after SIGTERM; on r1: %s; %d after 3 s" % (
                len(seen), seen[-1][0], ["%.2f s" % t for t in on_r1] or "none", len(after3)))
            if any(t > 3 for t in on_r1):
                netlab.fail("r1 got new rooms more than 3 s after it began draining")
            if len(after3) < 10:
                netlab.fail("only %d joins after 3 s" % len(after3))
            reps = finish(bots, "drain call")
            print("# the call on r1 ran to its end: " + legs(reps))
            for r in reps:
                for c in r["calls"]:
                    if c["failed"] or c["loss_pct"] >= 1.0 or c["received"] < 250:
                        netlab.fail("the call on the draining relay suffered: %r" % c)

        elif phase == "loss":
            v2 = rooms_on(("r3",), 2, "canary-call")
            v1 = rooms_on(("r1", "r2"), 2, "base-call")
            rns["r3"].nft("table inet tsuloss {\n"
                          "  chain in {\n"
                          "    type filter hook input priority 0;\n"
                          "    iifname \"eth0\" meta l4proto udp numgen random mod 100 < 8 drop\n"
                          "  }\n"
                          "}\n")
            print("# nftables on r3's link: 8% of arriving UDP dropped at random", flush=True)
            bots = [call(r, 8, ["--max-loss", "40"]) for r in v2] + [call(r, 8) for r in v1]
            v2r = [finish(b, "v2 call") for b in bots[:2]]
            v1r = [finish(b, "v1 call") for b in bots[2:]]
            t_end = time.time()
            print("# v2 calls: " + "; ".join(map(legs, v2r)))
            print("# v1 calls: " + "; ".join(map(legs, v1r)))
            for rs in v1r:
                for r in rs:
                    for c in r["calls"]:
                        if c["failed"] or c["loss_pct"] >= 1.0:
                            netlab.fail("a v1 call was affected: %r" % c)
            if not any(c["loss_pct"] > 4 for rs in v2r for r in rs for c in r["calls"]):
                netlab.fail("the nftables loss did not show on the v2 calls")
            while True:
                sh = [admin(p)["shares"].get("v2") for p in (8080, 8081)]
                if sh == [0, 0]:
                    break
                if time.time() - t_end > WINDOW * TIMEOUT_MULT:
                    netlab.fail("v2 not rolled back within %d s of the calls: %r" % (WINDOW, sh))
                time.sleep(0.3)
            why = re.search(r"canary rollback: generation v2 share set to 0: (.*?)(?: \(sig_\S+\))?$",
                            lab.log("signal-8080.log") + lab.log("signal-8081.log"), re.M)
            if not why:
                netlab.fail("no rollback log line")
            print("# rolled back %.1f s after the calls ended (window %d s): %s" % (
                time.time() - t_end, WINDOW, why.group(1)))

        elif phase == "kill":
            room, victim = rooms_on(("r1", "r2"), 1, "kill-call", with_relay=True)[0]
            bots = call(room, 20, ["--ice-restart", "2"])
            end = time.time() + 20 * TIMEOUT_MULT
            while allocs(victim) < 2:
                if time.time() > end:
                    raise LabError("the call did not allocate on " + victim)
                time.sleep(0.3)
            time.sleep(3)
            t0 = time.time()
            os.kill(relays[victim].pid, signal.SIGKILL)
            seen = [[t - t0, r, u] for t, r, u in
                    run_inner("singles", ws[0], ws[1], "kill-new", "80", "0.05")]
            on_v = [t for t, _, url in seen if url_of[url] == victim]
            print("# new rooms after the SIGKILL: %d in %.1f s, the last on %s at %s, %d after 3 s"
                  % (len(seen), seen[-1][0], victim, "%.2f s" % on_v[-1] if on_v else "never",
                     sum(t > 3 for t, _, _ in seen)))
            if any(t > 3 for t in on_v):
                netlab.fail("%s got new rooms more than 3 s after its death" % victim)
            wait_states(lambda s: s.get(victim) == "dead", victim + " dead")

            def logged(needle):
                out = []
                for port in (8080, 8081):
                    m = re.search(r"^(\S+)Z \S+ +tsunagu-signal .*%s" % re.escape(needle),
                                  lab.log("signal-%d.log" % port), re.M)
                    out.append("%.2f s" % (calendar.timegm(time.strptime(
                        m.group(1)[:19], "%Y-%m-%dT%H:%M:%S")) + float("0" + m.group(1)[19:]) - t0)
                        if m else "-")
                return "/".join(out)
            print("# %s after the kill: stale (no new rooms) at %s, dead (rooms moved, "
                  "relays-changed) at %s" % (victim, logged("relay %s (v1): stale" % victim),
                                            logged("relay %s (v1) is dead" % victim)))
            reps = finish(bots, "call on the killed relay")
            logs = [lab.log("bot-%s-%s.log" % (room, s)) for s in "ab"]
            if sum("relays-changed" in t for t in logs) < 2:
                netlab.fail("not both bots got relays-changed")
            for r in reps:
                for c in r["calls"]:
                    tail = c.get("timeline", [])[-3:]
                    back = len(tail) == 3 and all(x[2] < 20 for x in tail)
                    if c["failed"] or c["received"] < 250 or c["max_gap_ms"] < 1000 or not back:
                        netlab.fail("the call did not recover: %r" % c)
            print("# recovered by ICE restart after relays-changed: " + legs(reps))
            print("# time to recover (longest media gap): %.0f ms" % max(
                c["max_gap_ms"] for r in reps for c in r["calls"]))
        else:
            netlab.fail("unknown phase " + phase)
    print("ok netlab fleet %s (%.1f s)" % (phase, time.time() - t_start))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--inner":
        inner(sys.argv[2:])
    else:
        from labcall import main_guard
        main_guard(main)
