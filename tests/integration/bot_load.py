#!/usr/bin/python3
"""bot_load.py - the load run behind bench/bot_load.sh: N concurrent
bot-to-bot calls (2N legs) through signaling and the relay for a fixed time,
relay only, from one bot process (or --procs P processes sharing the N calls).
Prints calls held (both legs held: audio, loss under 1%, no media gap over
1 s), loss, jitter,
MOS, setup time, the relay's CPU and memory, and each bot process's own CPU
and send-clock lag (whether the bot was the limit, or the machine).

On a 2-core machine the relay and the bot compete for cores; --pin puts the
relay on CPU 0 and the bot(s) on CPU 1 (taskset, util-linux) as
notes/coturn.md advises. Exit code 0 when at least --min-held calls held."""
import argparse, json, os, shutil, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bot_harness import Stack, add_server_args, fail, TIMEOUT_MULT  # noqa: E402


def pct(v, p):
    """Linear interpolation between closest ranks (as the bot computes it)."""
    if not v:
        return 0.0
    v = sorted(v)
    r = p / 100.0 * (len(v) - 1)
    lo = int(r)
    return v[lo] + (r - lo) * (v[lo + 1] - v[lo]) if lo + 1 < len(v) else v[lo]


def main():
    ap = argparse.ArgumentParser()
    add_server_args(ap)
    ap.add_argument("--calls", type=int, default=50)
    ap.add_argument("--duration", type=int, default=20)
    ap.add_argument("--ramp-ms", type=int, default=50)
    ap.add_argument("--procs", type=int, default=1, help="bot processes sharing the calls")
    ap.add_argument("--pin", action="store_true")
    ap.add_argument("--decode-every", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1, help="worker threads per bot process")
    ap.add_argument("--min-held", type=int, default=0)
    ap.add_argument("--out", default="", help="keep the JSON and HTML reports with this prefix")
    a = ap.parse_args()
    if a.pin and not shutil.which("taskset"):
        fail("taskset not found: apt-get install util-linux")
    with Stack(a) as st:
        turn = st.start_relay()
        relay = st.procs[0]
        url = st.start_signal(turn)
        if a.pin:
            subprocess.run(["taskset", "-pc", "0", str(relay.pid)], capture_output=True)
        prefix = a.out or os.path.join(st.dir, "load")
        cpu0, _ = st.relay_cpu_rss()
        t0 = time.time()
        bots = []
        for p in range(a.procs):
            n = a.calls // a.procs + (1 if p < a.calls % a.procs else 0)
            pre = prefix if a.procs == 1 else "%s-%d" % (prefix, p)
            argv = [a.bot, "--signal", url, "--room", "load%d-%d" % (os.getpid(), p),
                    "--calls", str(n), "--duration", str(a.duration), "--ramp-ms",
                    str(a.ramp_ms * a.procs), "--relay-only", "--decode-every",
                    str(a.decode_every), "--threads", str(a.threads),
                    "--report", pre + ".json", "--html", pre + ".html"]
            if a.pin:
                argv = ["taskset", "-c", "1"] + argv
            bots.append((subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                          text=True), pre, n))
        limit = (a.duration + a.calls * a.ramp_ms / 1000 + 60) * TIMEOUT_MULT
        legs, held, bot_lines = [], 0, []
        for proc, pre, n in bots:
            try:
                out, err = proc.communicate(timeout=max(1, limit - (time.time() - t0)))
            except subprocess.TimeoutExpired:
                fail("bot did not finish in %.0f s" % limit)
            if a.procs == 1:
                print(out[-6000:] if a.calls <= 20 else out[out.find("\ntotals"):])
            try:
                r = json.load(open(pre + ".json"))
            except (OSError, ValueError):
                print(err[-3000:])
                fail("no report from the bot (%s)" % pre)
            by = {c["label"]: c for c in r["calls"]}
            for i in range(n):
                pa, pb = by.get("call%d/a" % i), by.get("call%d/b" % i)
                # the bot's own verdict: audio, loss < 1%, no media gap over 1 s
                if pa and pb and pa["held"] and pb["held"]:
                    held += 1
            legs += r["calls"]
            b = r["bot"]
            bot_lines.append("bot %s: %d loop thread(s), process CPU %.0f%%, busiest loop CPU avg %.0f%% max %.0f%%"
                             " of one core, send lag p99 %.1f ms max %.1f ms, %d ticks skipped%s" % (
                                 os.path.basename(pre), b["threads"], b["process_cpu_avg_pct"],
                                 b["cpu_avg_pct"], b["cpu_max_pct"],
                                 b["send_lag_p99_ms"], b["send_lag_max_ms"], b["send_ticks_skipped"],
                                 " -> BOT WAS THE BOTTLENECK: " + b["bottleneck_reason"] if b["bottleneck"] else ""))
            if b.get("machine_saturated"):
                bot_lines.append("  note: other processes kept the machine's CPUs busy (%.0f%% of a core)"
                                 % b["other_processes_cpu_pct"])
        wall = time.time() - t0
        cpu1, rss = st.relay_cpu_rss()
        try:
            with open("/proc/%d/status" % relay.pid) as f:
                hwm = int([l for l in f if l.startswith("VmHWM")][0].split()[1]) * 1024
        except (OSError, IndexError, ValueError):
            hwm = 0
        media = [c for c in legs if c["media"]]
        sent = sum(c["sent"] for c in legs)
        received = sum(c["received"] for c in legs)
        lost = sum(c["lost"] for c in legs)
        expected = sum(c["expected"] for c in legs)
        mos = [c["mos"] for c in legs]
        rtt = [c["rtt_ms"] for c in media if c["rtt_ms"] >= 0]
        print("== bot_load: %d calls for %d s, %d bot process(es), through %s relay (%s signaling)" % (
            a.calls, a.duration, a.procs, a.relay, a.signal))
        print("calls held (both legs audio, loss < 1%%, no gap > 1 s): %d / %d" % (held, a.calls))
        print("legs with audio: %d / %d; packets sent %d received %d; loss %.3f%% (p95 per leg %.3f%%)" % (
            len(media), 2 * a.calls, sent, received, 100.0 * lost / expected if expected else 0,
            pct([c["loss_pct"] for c in media], 95)))
        print("jitter ms p50 %.2f p95 %.2f | RTT ms p50 %.1f p95 %.1f | MOS p50 %.2f p5 %.2f min %.2f" % (
            pct([c["jitter_ms"] for c in media], 50), pct([c["jitter_ms"] for c in media], 95),
            pct(rtt, 50), pct(rtt, 95), pct(mos, 50), pct(mos, 5), pct(mos, 0)))
        setup = [c["setup_ms"] for c in media]
        print("setup ms p50 %.1f p95 %.1f max %.1f" % (pct(setup, 50), pct(setup, 95), pct(setup, 100)))
        print("relay: CPU %.1f s over %.1f s (%.0f%% of one core), RSS %.1f MB now, peak %.1f MB" % (
            cpu1 - cpu0, wall, 100 * (cpu1 - cpu0) / wall, rss / 1e6, hwm / 1e6))
        for l in bot_lines:
            print(l)
        if a.out:
            print("reports: %s*.json %s*.html" % (prefix, prefix))
        if held < a.min_held:
            fail("only %d calls held, wanted %d" % (held, a.min_held))


if __name__ == "__main__":
    main()
