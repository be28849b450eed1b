#!/usr/bin/python3
"""relay_quality.py - the relay's call quality without decrypting (issue 12
item 1, relay/turn/rly_rtpq.c) against known impairments, with real
tsunagu-bot calls through tsunagu-relay and tsunagu-signal on 127.0.0.1.

Two bot processes in member mode share a room, relay only: one sends with an
impairment, the other without. Each call leg's SRTP stream crosses the relay
twice (client_to_peer on the sender's allocation, peer_to_client on the
receiver's), so each direction of the relay's histograms gets one impaired
and one clean stream per call. Streams are observed when their allocation is
released (the bots' Refresh 0 at exit).

1. loss: --drop-every 20 (every 20th RTP packet not sent): per direction,
   one stream in the loss bucket around 5% (0.04, 0.06] and one at <= 0.001;
   the sum of ratios is 0.05 +- 0.01; the 'released' log lines say loss=5.xx%
   for the impaired side; the bot's own count agrees.
2. jitter: --jitter-ms 80 (each RTP packet held a random 0..80 ms, order
   kept): per direction one more stream above 10 ms of jitter than after
   phase 1, the jitter sum grown by more than 10 ms; in the released lines
   the delayed stream's jitter >= 10 ms and >= the clean one's + 5 ms (the
   clean ones stay low on a quiet machine, but a loaded one adds its own
   jitter to every stream, so they are compared, not bounded).

usage: relay_quality.py --bot PATH --relay-exe PATH --signal-exe PATH"""
import argparse, json, os, re, subprocess, sys, time, urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bot_harness import Stack, fail, free_port, wait_tcp, SECRET, TIMEOUT_MULT  # noqa: E402

DIRS = ("client_to_peer", "peer_to_client")
DURATION = 6
JITTER_MS = 80  # uniform 0..80 ms, order kept: ~20 ms of A.8 jitter


def scrape(port):
    try:
        return urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port,
                                      timeout=5).read().decode()
    except OSError as e:
        fail("relay /metrics: %s" % e)


def hist(body, name, direction):
    """{le: cumulative count}, sum, count of one direction's histogram."""
    b = {}
    for m in re.finditer(r'^%s_bucket\{direction="%s",le="([^"]+)"\} (\d+)$' % (name, direction),
                         body, re.M):
        b[m.group(1)] = int(m.group(2))
    s = re.search(r'^%s_sum\{direction="%s"\} (\S+)$' % (name, direction), body, re.M)
    c = re.search(r'^%s_count\{direction="%s"\} (\d+)$' % (name, direction), body, re.M)
    if not b or not s or not c:
        fail("%s{direction=%s} missing from /metrics" % (name, direction))
    return b, float(s.group(1)), int(c.group(1))


def start_relay(st):
    st.turn_port = free_port(also_udp=True)
    st.metrics_port = free_port()
    argv = [st.args.relay_exe, "--listen", "127.0.0.1:%d" % st.turn_port,
            "--auth-secret", SECRET, "--realm", "tsunagu",
            "--metrics-listen", "127.0.0.1:%d" % st.metrics_port, "--log-level", "info"]
    p = st.spawn(argv, "relay.log")
    wait_tcp(st.turn_port, 10, p, "relay")
    return "turn:127.0.0.1:%d" % st.turn_port


def call_pair(st, url, room, impair, gate=()):
    """Bot 'a' (impaired) joins, then bot 'b' (clean) joins and calls it.
    Both run DURATION s of media; returns their JSON reports. gate: flags
    for both bots (--max-loss: the loss injected on purpose is not a failed
    leg; by default a bot fails a leg at 1% loss)."""
    bots = []
    for name, extra, dur in (("a", list(impair) + list(gate), DURATION + 2),
                             ("b", list(gate), DURATION)):
        report = os.path.join(st.dir, "%s-%s.json" % (room, name))
        argv = [st.args.bot, "--signal", url, "--room", room, "--relay-only",
                "--duration", str(dur), "--report", report, "--name", name] + extra
        bots.append((st.spawn(argv, "%s-%s.log" % (room, name)), report, name))
        time.sleep(1.0)  # a is in the room before b joins and offers
    for p, report, name in bots:
        try:
            rc = p.wait(timeout=(DURATION + 40) * TIMEOUT_MULT)
        except subprocess.TimeoutExpired:
            fail("bot %s of %s did not finish" % (name, room))
        if rc != 0:
            print(st.log("%s-%s.log" % (room, name))[-3000:])
            fail("bot %s of %s exited %d" % (name, room, rc))
    return [json.load(open(r)) for _, r, _ in bots]


def released(st):
    """The 'released' lines of allocations that carried media both ways, as
    dicts, in log order."""
    out = []
    for r in re.findall(r"released \(.*?\) client=.*? user=.*? duration=([0-9.]+)s "
                        r"c2p=(\d+)/(\d+) streams=(\d+) loss=([0-9.]+)% jitter=(\S+) "
                        r"p2c=(\d+)/(\d+) streams=(\d+) loss=([0-9.]+)% jitter=(\S+)",
                        st.log("relay.log")):
        if int(r[1]) > 100 and int(r[6]) > 100:
            ms = lambda j: float(j[:-2]) if j.endswith("ms") else -1.0  # noqa: E731
            out.append({"duration": float(r[0]), "c2p": int(r[1]), "p2c": int(r[6]),
                        "loss_c2p": float(r[4]), "loss_p2c": float(r[9]),
                        "jit_c2p": ms(r[5]), "jit_p2c": ms(r[10])})
    return out


def wait_observed(st, name, want):
    """Histogram counts per direction reach want (allocations released)."""
    deadline = time.time() + 15 * TIMEOUT_MULT
    while True:
        body = scrape(st.metrics_port)
        counts = [hist(body, name, d)[2] for d in DIRS]
        if all(c >= want for c in counts) or time.time() > deadline:
            return body, counts
        time.sleep(0.5)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bot", required=True)
    ap.add_argument("--relay-exe", required=True)
    ap.add_argument("--signal-exe", required=True)
    a = ap.parse_args()
    a.relay, a.signal = "tsunagu", "tsunagu"
    checks = 0
    with Stack(a) as st:
        url = st.start_signal(start_relay(st))

        # ---- 1. loss ----
        ra, rb = call_pair(st, url, "q-loss-%d" % os.getpid(), ["--drop-every", "20"],
                          gate=["--max-loss", "10"])
        dropped = sum(c["dropped_on_purpose"] for c in ra["calls"])
        sent = sum(c["sent"] for c in ra["calls"])
        print("# bot a dropped %d of %d RTP packets on purpose" % (dropped, sent + dropped))
        if dropped < 10:
            fail("bot a dropped only %d packets: the call was too short" % dropped)
        body, counts = wait_observed(st, "tsunagu_relay_stream_loss_ratio", 2)
        if counts != [2, 2]:
            print(st.log("relay.log")[-3000:])
            fail("loss histogram observed %s streams per direction, want 2 each" % counts)
        checks += 1
        for d in DIRS:
            b, s, c = hist(body, "tsunagu_relay_stream_loss_ratio", d)
            print("# loss %s: buckets %s, sum %.4f, count %d" % (d, b, s, c))
            if b["0.001"] != 1:
                fail("%s: %d streams without loss, want 1 (the clean bot's)" % (d, b["0.001"]))
            if b["0.06"] - b["0.04"] != 1:
                fail("%s: no stream in the loss bucket (0.04, 0.06]" % d)
            if abs(s - 0.05) > 0.01:
                fail("%s: loss ratios sum to %.4f, want 0.05 +- 0.01" % (d, s))
            checks += 3
        media = released(st)
        print("# released lines with media: %s" % media)
        if len(media) != 2:
            fail("%d 'released' lines with media both ways, want 2" % len(media))
        # bot a sends 2 s longer: its allocation carried more out
        ma, mb = sorted(media, key=lambda m: -m["c2p"])
        if not (abs(ma["loss_c2p"] - 5) < 1 and ma["loss_p2c"] < 0.1 and
                mb["loss_c2p"] < 0.1 and abs(mb["loss_p2c"] - 5) < 1):
            fail("released lines' loss: a's %s, b's %s; want a 5%% out, b 5%% in" % (ma, mb))
        if ma["duration"] < DURATION or mb["duration"] < DURATION - 1:
            fail("released lines' durations shorter than the calls: %s" % media)
        checks += 3
        j1 = [hist(body, "tsunagu_relay_stream_jitter_seconds", d) for d in DIRS]
        # every stream got a clock rate, so a jitter; no bound on its value here: a
        # loaded machine delays the bots' sends (measured up to 15 ms on a busy run)
        if any(c != 2 for _, _, c in j1):
            fail("phase 1: jitter observed for %s streams, want 2 per direction"
                 % [c for _, _, c in j1])
        checks += 1

        # ---- 2. jitter ----
        call_pair(st, url, "q-jit-%d" % os.getpid(), ["--jitter-ms", str(JITTER_MS)])
        body, counts = wait_observed(st, "tsunagu_relay_stream_jitter_seconds", 4)
        if counts != [4, 4]:
            fail("jitter histogram observed %s streams per direction, want 4 each" % counts)
        for d, (b1, s1, _) in zip(DIRS, j1):
            b, s, c = hist(body, "tsunagu_relay_stream_jitter_seconds", d)
            print("# jitter %s: buckets %s, sum %.4f (phase 1: %.4f), count %d" % (
                d, b, s, s1, c))
            above1, above = 2 - b1["0.01"], 4 - b["0.01"]
            if above - above1 < 1:
                fail("%s: no new stream above 10 ms of jitter (%d before, %d now)"
                     % (d, above1, above))
            if s - s1 < 0.01:
                fail("%s: the jitter sum grew by %.4f s only" % (d, s - s1))
            checks += 2
        media = released(st)[2:]
        print("# phase 2 released lines: %s" % media)
        if len(media) != 2:
            fail("%d phase-2 'released' lines with media both ways, want 2" % len(media))
        ma, mb = sorted(media, key=lambda m: -m["c2p"])
        # a's stream (delayed) leaves through a's allocation and enters b's
        if not (ma["jit_c2p"] >= 10 and ma["jit_c2p"] >= mb["jit_c2p"] + 5 and
                mb["jit_p2c"] >= 10 and mb["jit_p2c"] >= ma["jit_p2c"] + 5):
            fail("delayed stream's jitter not above the clean one's: a %s, b %s" % (ma, mb))
        checks += 1
        body = scrape(st.metrics_port)
        for d in DIRS:
            m = re.search(r'^tsunagu_relay_streams_total\{direction="%s"\} (\d+)$' % d, body, re.M)
            if not m or int(m.group(1)) < 4:
                fail("tsunagu_relay_streams_total{direction=%s} below 4" % d)
            checks += 1
    print("PASS (%d checks)" % checks)


if __name__ == "__main__":
    main()
