#!/usr/bin/python3
"""bot_load.py - the load run behind bench/bot_load.sh: N concurrent
bot-to-bot calls (2N legs, one bot process) through signaling and the relay
for a fixed time, relay only. Prints calls held (both legs with audio and
loss under 1%), loss, jitter, MOS, setup time, the relay's CPU and memory,
and the bot's own CPU and send-clock lag (whether the bot was the limit).

On a 2-core machine the relay and the bot compete for cores; --pin puts the
relay on CPU 0 and the bot on CPU 1 (taskset, util-linux) as notes/coturn.md
advises. Exit code 0 when at least --min-held calls were held."""
import argparse, json, os, shutil, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bot_harness import Stack, add_server_args, fail, TIMEOUT_MULT  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    add_server_args(ap)
    ap.add_argument("--calls", type=int, default=50)
    ap.add_argument("--duration", type=int, default=20)
    ap.add_argument("--ramp-ms", type=int, default=50)
    ap.add_argument("--pin", action="store_true")
    ap.add_argument("--decode-every", type=int, default=1)
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
        argv = [a.bot, "--signal", url, "--room", "load%d" % os.getpid(), "--calls", str(a.calls),
                "--duration", str(a.duration), "--ramp-ms", str(a.ramp_ms), "--relay-only",
                "--decode-every", str(a.decode_every),
                "--report", prefix + ".json", "--html", prefix + ".html"]
        if a.pin:
            argv = ["taskset", "-c", "1"] + argv
        cpu0, _ = st.relay_cpu_rss()
        t0 = time.time()
        limit = (a.duration + a.calls * a.ramp_ms / 1000 + 60) * TIMEOUT_MULT
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=limit)
        except subprocess.TimeoutExpired:
            fail("bot did not finish in %.0f s" % limit)
        wall = time.time() - t0
        cpu1, rss = st.relay_cpu_rss()
        try:
            with open("/proc/%d/status" % relay.pid) as f:
                hwm = [l for l in f if l.startswith("VmHWM")][0].split()[1]
        except (OSError, IndexError):
            hwm = "0"
        print(out.stdout[-6000:] if a.calls <= 20 else out.stdout[out.stdout.find("\ntotals"):])
        try:
            r = json.load(open(prefix + ".json"))
        except (OSError, ValueError):
            print(out.stderr[-3000:])
            fail("no report from the bot")
        legs = {c["label"]: c for c in r["calls"]}
        held = 0
        for i in range(a.calls):
            pa, pb = legs.get("call%d/a" % i), legs.get("call%d/b" % i)
            if pa and pb and pa["media"] and pb["media"] and pa["loss_pct"] < 1 and pb["loss_pct"] < 1:
                held += 1
        t, bot = r["totals"], r["bot"]
        print("== bot_load: %d calls requested for %d s through %s relay (%s signaling)" % (
            a.calls, a.duration, a.relay, a.signal))
        print("calls held (both legs audio, loss < 1%%): %d / %d" % (held, a.calls))
        print("legs with audio: %d / %d; packets sent %d received %d; loss %.3f%% (p95 per leg %.3f%%)" % (
            t["with_media"], t["legs"], t["sent"], t["received"], t["loss_pct"], t["loss_pct_p95"]))
        print("jitter ms p50 %.2f p95 %.2f | RTT ms p50 %.1f p95 %.1f | MOS p50 %.2f p5 %.2f min %.2f" % (
            t["jitter_ms"]["p50"], t["jitter_ms"]["p95"], t["rtt_ms"]["p50"], t["rtt_ms"]["p95"],
            t["mos"]["p50"], t["mos"]["p5"], t["mos"]["min"]))
        print("setup ms p50 %.1f p95 %.1f max %.1f" % (t["setup_ms"]["p50"], t["setup_ms"]["p95"],
                                                       t["setup_ms"]["max"]))
        print("relay: CPU %.1f s over %.1f s (%.0f%% of one core), RSS %.1f MB now, peak %.1f MB" % (
            cpu1 - cpu0, wall, 100 * (cpu1 - cpu0) / wall, rss / 1e6, int(hwm) * 1024 / 1e6))
        print("bot: CPU avg %.0f%% max %.0f%% of one core, send lag p99 %.1f ms max %.1f ms%s" % (
            bot["cpu_avg_pct"], bot["cpu_max_pct"], bot["send_lag_p99_ms"], bot["send_lag_max_ms"],
            " -> BOT WAS THE BOTTLENECK: " + bot["bottleneck_reason"] if bot["bottleneck"] else ""))
        if a.out:
            print("reports: %s.json %s.html" % (prefix, prefix))
        if held < a.min_held:
            fail("only %d calls held, wanted %d" % (held, a.min_held))


if __name__ == "__main__":
    main()
