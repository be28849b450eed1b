#!/usr/bin/python3
"""bot_quality.py - what the bot's report and exit status say about bad calls
(issue 12 items 3 and 4), with a real relay, signaling and bots on loopback.

--case outage: one relay-only bot-to-bot call; 6 s in the relay is killed
(SIGKILL) and started again 1 s later on the same port. The media stops (the
allocations died with the relay). Each leg's report must show the outage: a
media gap of several seconds, the packets it did not get counted lost (its
expected count near what its peer sent), a loss percentage and a MOS that
match (the E-model of docs/bot.md recomputed here from the leg's own RTT,
jitter and loss), not "held", a fail reason naming the gap; the table says so
and the bot exits 1. Before issue 12 each leg said lost 0, MOS 4.39, held,
and the bot exited 0.

--case gates: three runs of one call. --drop-every 20 (5% loss) with no gate:
exit 1 (not held, the default rule); --drop-every 20 with --max-loss 2 and
--min-mos 4.2: exit 1, each leg's reason names the loss gate and the MOS gate;
a clean run with --min-mos 4.0 --max-loss 0.5 --max-setup-ms 10000: exit 0,
every leg passes.

The outage case runs with --ice-restart 0: it checks what the report says
about an outage the bot does not repair (with ICE restart on, the call
recovers and the gap is shorter, see --case crash).

--case crash (issue 14 item 8): the same outage with ICE restart on (the
default, 2 s): the offerer notices the silence, restarts ICE (new
credentials, fresh allocations on the restarted relay), the answerer
answers, and media resumes in the same call. Each leg: at least one restart,
longest gap under 5 s (from the SIGKILL the gap starts), audio for several
seconds after it, loss no more than the gap explains; still not held (the
1 s gap rule stays), and the bot exits 1.
--relay-down S keeps the relay away S seconds (default 1), --max-gap-ms and
--min-restarts set what the legs must show then (defaults 5000 and 1).

usage: bot_quality.py --case outage|gates|crash --bot PATH [--relay ... --signal ...]"""
import argparse, json, os, re, signal, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bot_harness import Stack, add_server_args, fail, wait_tcp, TIMEOUT_MULT  # noqa: E402


def emodel_mos(rtt_ms, jitter_ms, loss_pct):
    """docs/bot.md's simplified G.107, written again independently."""
    jb = max(2 * jitter_ms, 20.0)
    d = (rtt_ms / 2 if rtt_ms > 0 else 0) + jb + 26.5
    idd = 0.024 * d + (0.11 * (d - 177.3) if d > 177.3 else 0)
    ppl = min(max(loss_pct, 0), 100)
    r = 93.2 - idd - 95 * ppl / (ppl + 25.1)
    if r <= 0:
        return 1.0
    if r >= 100:
        return 4.5
    return min(max(1 + 0.035 * r + 7e-6 * r * (r - 60) * (100 - r), 1), 4.5)


def run_bot(st, a, url, tag, extra, duration):
    report = os.path.join(st.dir, tag + ".json")
    argv = [a.bot, "--signal", url, "--room", "%s%d" % (tag, os.getpid()), "--calls", "1",
            "--duration", str(duration), "--relay-only", "--report", report,
            "--html", os.path.join(st.dir, tag + ".html"), "--log-level", "info"] + extra
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return p, report


def finish_bot(p, limit):
    try:
        out, err = p.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        fail("tsunagu-bot did not finish within %.0f s" % limit)
    return out, err


def case_outage(a):
    checks = 0
    with Stack(a) as st:
        turn = st.start_relay()
        url = st.start_signal(turn)
        dur = 10
        bot, report = run_bot(st, a, url, "outage", ["--ice-restart", "0"], dur)
        time.sleep(6)
        relay = st.procs[0]
        relay.send_signal(signal.SIGKILL)
        relay.wait(timeout=10)
        print("# relay killed (SIGKILL) at 6 s")
        time.sleep(1)
        again = st.spawn(relay.args, "relay2.log")
        wait_tcp(st.turn_port, 10, again, "restarted relay")
        print("# relay restarted at ~7 s on the same port")
        out, err = finish_bot(bot, (dur + 40) * TIMEOUT_MULT)
        print(out)
        if bot.returncode != 1:
            print(err[-3000:])
            fail("bot exit code %d after a relay outage, want 1" % bot.returncode)
        checks += 1
        r = json.load(open(report))
        legs = {c["label"]: c for c in r["calls"]}
        if len(legs) != 2:
            fail("%d legs reported, want 2" % len(legs))
        if r["pass"] or not r["verdict"].startswith("FAIL"):
            fail("run verdict %r (pass %s)" % (r["verdict"], r["pass"]))
        checks += 1
        for c in legs.values():
            peer = legs[c["label"][:-1] + ("b" if c["label"].endswith("a") else "a")]
            peer_sent = peer["sent"] + peer["dropped_on_purpose"]
            print("# %s: received %d expected %d (peer sent %d) lost %d (seq %d, sr %d, clock %d) "
                  "loss %.2f%% gap %.0f ms MOS %.2f held %s reason %r" % (
                      c["label"], c["received"], c["expected"], peer_sent, c["lost"],
                      c["lost_seq"], c["lost_sr"], c["lost_clock"], c["loss_pct"],
                      c["max_gap_ms"], c["mos"], c["held"], c["fail_reason"]))
            if not c["media"] or c["received"] < 150:
                fail("%s: media before the outage missing (%d received)" % (c["label"], c["received"]))
            # killed at 6 s into a ~10 s call: at least ~3 s without media
            if c["max_gap_ms"] < 2500:
                fail("%s: longest media gap %.0f ms, the outage was longer" % (c["label"], c["max_gap_ms"]))
            if c["received"] + c["lost"] != c["expected"]:
                fail("%s: received + lost != expected" % c["label"])
            # every packet the peer sent and this leg did not get is lost, give
            # or take the 200 ms the clock leaves for packets in flight
            if abs(c["expected"] - peer_sent) > 15:
                fail("%s: expected %d, its peer sent %d" % (c["label"], c["expected"], peer_sent))
            if c["lost"] < c["max_gap_ms"] / 20.0 * 0.8:
                fail("%s: %d lost does not cover a %.0f ms gap of 20 ms packets" % (
                    c["label"], c["lost"], c["max_gap_ms"]))
            want_pct = 100.0 * c["lost"] / c["expected"]
            if abs(c["loss_pct"] - want_pct) > 0.01 or c["loss_pct"] < 20:
                fail("%s: loss %.2f%% (lost/expected %.2f%%)" % (c["label"], c["loss_pct"], want_pct))
            want_mos = emodel_mos(c["rtt_ms"], c["jitter_ms"], c["loss_pct"])
            if abs(c["mos"] - want_mos) > 0.01 or c["mos"] > 3.0:
                fail("%s: MOS %.2f, the E-model with %.1f%% loss gives %.2f" % (
                    c["label"], c["mos"], c["loss_pct"], want_mos))
            if c["held"] or c["pass"] or "media gap" not in c["fail_reason"]:
                fail("%s: held %s pass %s reason %r" % (c["label"], c["held"], c["pass"], c["fail_reason"]))
            checks += 7
        if r["totals"]["held"] != 0 or r["totals"]["failed"] != 2:
            fail("totals: held %d failed %d" % (r["totals"]["held"], r["totals"]["failed"]))
        if not re.search(r"FAIL: media gap \d+\.\d s > 1 s", out) or "0 held" not in out:
            fail("the table does not show the gap failure")
        checks += 2
    print("PASS (%d checks)" % checks)


def case_crash(a):
    checks = 0
    with Stack(a) as st:
        turn = st.start_relay()
        url = st.start_signal(turn)
        dur = 16
        bot, report = run_bot(st, a, url, "crash", [], dur)
        time.sleep(6)
        relay = st.procs[0]
        relay.send_signal(signal.SIGKILL)
        t_kill = time.monotonic()
        relay.wait(timeout=10)
        print("# relay killed (SIGKILL) at 6 s")
        time.sleep(a.relay_down)
        again = st.spawn(relay.args, "relay2.log")
        wait_tcp(st.turn_port, 10, again, "restarted relay")
        print("# relay restarted %.2f s after the kill on the same port" % (time.monotonic() - t_kill))
        out, err = finish_bot(bot, (dur + 40) * TIMEOUT_MULT)
        print(out)
        for line in err.splitlines():
            if "ICE restart" in line or "ICE path" in line or "waiting for the offerer" in line:
                print("# log: " + line)
        if bot.returncode != 1:
            print(err[-3000:])
            fail("bot exit code %d: the gap must still fail the legs (1 s rule), want 1" % bot.returncode)
        checks += 1
        r = json.load(open(report))
        legs = {c["label"]: c for c in r["calls"]}
        if len(legs) != 2:
            fail("%d legs reported, want 2" % len(legs))
        for c in legs.values():
            print("# %s: restarts %d restart_ms %.0f received %d expected %d lost %d loss %.2f%% "
                  "gap %.0f ms held %s reason %r" % (
                      c["label"], c["ice_restarts"], c["ice_restart_ms"], c["received"],
                      c["expected"], c["lost"], c["loss_pct"], c["max_gap_ms"], c["held"],
                      c["fail_reason"]))
            if c["failed"] or c["ice_restarts"] < a.min_restarts or c["ice_restart_ms"] < 0:
                fail("%s: failed %s, %d restarts, restart_ms %.0f" % (
                    c["label"], c["failed"], c["ice_restarts"], c["ice_restart_ms"]))
            # the gap starts at the SIGKILL (media flowed up to it) and ends when
            # audio is back: the recovery time
            if not 1000 < c["max_gap_ms"] < a.max_gap_ms:
                fail("%s: longest gap %.0f ms, want a real outage recovered in < %d ms" % (
                    c["label"], c["max_gap_ms"], a.max_gap_ms))
            # 6 s before the kill, < 5 s gap, 16 s call: > 4 s of audio after it
            if c["received"] < 50 * 10 - 10:
                fail("%s: %d received: media did not come back for long" % (c["label"], c["received"]))
            if c["received"] + c["lost"] != c["expected"]:
                fail("%s: received + lost != expected" % c["label"])
            if c["lost"] > c["max_gap_ms"] / 20.0 * 1.3 + 25 or c["lost"] < c["max_gap_ms"] / 20.0 * 0.8:
                fail("%s: %d lost, a %.0f ms gap explains about %.0f" % (
                    c["label"], c["lost"], c["max_gap_ms"], c["max_gap_ms"] / 20.0))
            if c["held"] or c["pass"] or "media gap" not in c["fail_reason"]:
                fail("%s: held %s pass %s reason %r" % (c["label"], c["held"], c["pass"], c["fail_reason"]))
            checks += 6
        print("# SIGKILL to audio again: %s ms (longest gap per leg)" % ", ".join(
            "%.0f" % c["max_gap_ms"] for c in legs.values()))
    print("PASS (%d checks)" % checks)


def case_gates(a):
    checks = 0
    with Stack(a) as st:
        turn = st.start_relay()
        url = st.start_signal(turn)
        runs = [("lossy_default", ["--drop-every", "20"], 1),
                ("lossy_gated", ["--drop-every", "20", "--max-loss", "2", "--min-mos", "4.2"], 1),
                ("clean_gated", ["--min-mos", "4.0", "--max-loss", "0.5", "--max-setup-ms", "10000"], 0)]
        for tag, extra, want in runs:
            bot, report = run_bot(st, a, url, tag, extra, 4)
            out, err = finish_bot(bot, 60 * TIMEOUT_MULT)
            print(out)
            if bot.returncode != want:
                print(err[-3000:])
                fail("%s: exit %d, want %d" % (tag, bot.returncode, want))
            r = json.load(open(report))
            if len(r["calls"]) != 2:
                fail("%s: %d legs" % (tag, len(r["calls"])))
            for c in r["calls"]:
                reason = c["fail_reason"]
                print("# %s %s: loss %.2f%% MOS %.2f setup %.0f ms pass %s %r" % (
                    tag, c["label"], c["loss_pct"], c["mos"], c["setup_ms"], c["pass"], reason))
                if tag == "lossy_default":
                    ok = (not c["pass"] and not c["held"] and "not held" in reason
                          and abs(c["loss_pct"] - 5.0) < 1.0)
                elif tag == "lossy_gated":
                    ok = (not c["pass"] and "> --max-loss 2.00%" in reason
                          and "< --min-mos 4.20" in reason)
                else:
                    ok = c["pass"] and c["held"] and reason == "" and c["lost"] == 0
                if not ok:
                    fail("%s %s: pass %s held %s reason %r" % (tag, c["label"], c["pass"], c["held"], reason))
                checks += 1
            if r["pass"] != (want == 0) or ("FAIL" in out) == (want == 0):
                fail("%s: report pass %s, table %s" % (tag, r["pass"], "FAIL" in out))
            checks += 2
    print("PASS (%d checks)" % checks)


def main():
    ap = argparse.ArgumentParser()
    add_server_args(ap)
    ap.add_argument("--case", choices=["outage", "gates", "crash"], required=True)
    # crash: how long the relay stays down, and what the legs must show then
    ap.add_argument("--relay-down", type=float, default=1.0)
    ap.add_argument("--max-gap-ms", type=int, default=5000)
    ap.add_argument("--min-restarts", type=int, default=1)
    a = ap.parse_args()
    if a.case == "outage":
        case_outage(a)
    elif a.case == "crash":
        case_crash(a)
    else:
        case_gates(a)


if __name__ == "__main__":
    main()
