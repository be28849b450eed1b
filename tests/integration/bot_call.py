#!/usr/bin/python3
"""bot_call.py - bot-to-bot calls through signaling and TURN on 127.0.0.1,
relay only, with real assertions on what the bot reports.

Default check: N calls (2N legs) in one bot process: every leg carried
decoded audio over a relayed path, zero loss, MOS above 4.0, and the TURN
server's own counters show at least the packets the bots received.

--sighup-every S (reload without a dropped packet): tsunagu-relay and
tsunagu-signal get SIGHUP every S seconds during the calls; each must log
every reload, and the calls must still have zero loss.

--stun: signaling also hands out stun: on the relay's own listener (which
answers Binding requests: checked here too). Each leg must report the relay as
its STUN server, except with --relay-only, where no STUN server is used and the
path must still be relayed; without --relay-only the path must not be relayed.

--drop-every K (measurement honesty): each sender skips every K-th RTP
packet on purpose (the bot's testing flag) and counts it; each receiver's
reported loss must match what its peer dropped (within the packet or two a
receiver cannot see: drops before its first packet or after its last).

usage: bot_call.py --bot PATH [--calls N] [--duration S] [--drop-every K] [--stun]
                   [--relay coturn|tsunagu --relay-exe P] [--signal stub|tsunagu --signal-exe P]"""
import argparse, json, os, signal, socket, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bot_harness import Stack, add_server_args, check_clean_leg, fail, TIMEOUT_MULT  # noqa: E402
import relay_stun as rs  # noqa: E402


def relay_answers_binding(port):
    """A STUN Binding request to the relay's listener gets a success
    response carrying our own address (XOR-MAPPED-ADDRESS)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(2 * TIMEOUT_MULT)
    s.bind(("127.0.0.1", 0))
    try:
        req, tid = rs.build(1, 0, fingerprint=True)
        s.sendto(req, ("127.0.0.1", port))
        m = rs.Msg(s.recvfrom(2048)[0])
        return m.tid == tid and m.cls == 2 and m.xor(rs.A_XOR_MAPPED) == s.getsockname()
    except (OSError, ValueError):
        return False
    finally:
        s.close()


def main():
    ap = argparse.ArgumentParser()
    add_server_args(ap)
    ap.add_argument("--calls", type=int, default=2)
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--drop-every", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--expect-path", choices=["relay", "host"], default="relay",
                    help="host: run without --relay-only and expect a direct path, which "
                         "shows the relay-path check can fail")
    ap.add_argument("--stun", action="store_true",
                    help="signaling hands out stun: on the relay's listener next to turn:")
    ap.add_argument("--kill-signal-after", type=float, default=0,
                    help="stop the signaling server this many seconds in: calls must go on")
    ap.add_argument("--sighup-every", type=float, default=0,
                    help="reload relay and signaling (SIGHUP) this often during the calls")
    a = ap.parse_args()
    if a.sighup_every and (a.relay != "tsunagu" or a.signal != "tsunagu"):
        fail("--sighup-every needs --relay tsunagu and --signal tsunagu")
    checks = 0
    with Stack(a) as st:
        turn = st.start_relay()
        stun = "stun:127.0.0.1:%d" % st.turn_port
        url = st.start_signal(turn, extra_urls=[stun] if a.stun else [])
        if a.stun:
            if not relay_answers_binding(st.turn_port):
                fail("the relay does not answer a STUN Binding request on its listener")
            checks += 1
        report = os.path.join(st.dir, "report.json")
        html = os.path.join(st.dir, "report.html")
        argv = [a.bot, "--signal", url, "--room", "it%d" % os.getpid(), "--calls", str(a.calls),
                "--duration", str(a.duration), "--report", report, "--html", html,
                "--log-level", "info"]
        if a.expect_path == "relay":
            argv.append("--relay-only")
        if a.drop_every:
            # The impairment is the point here: declare the loss this run may
            # have (the default rule fails a leg at 1% loss, docs/bot.md).
            argv += ["--drop-every", str(a.drop_every),
                     "--max-loss", "%.1f" % (100.0 / a.drop_every + 2)]
        if a.threads > 1:
            argv += ["--threads", str(a.threads)]
        limit = (a.duration + 40) * TIMEOUT_MULT
        bot = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if a.kill_signal_after:
            time.sleep(a.kill_signal_after)
            sig = st.procs[1]
            sig.terminate()
            sig.wait(timeout=10)
            print("# signaling server stopped at %.1f s" % a.kill_signal_after)
        hups = 0
        if a.sighup_every:
            end = time.time() + a.duration
            time.sleep(a.sighup_every)
            while time.time() < end and bot.poll() is None:
                st.procs[0].send_signal(signal.SIGHUP)
                st.procs[1].send_signal(signal.SIGHUP)
                hups += 1
                time.sleep(a.sighup_every)
            print("# sent %d SIGHUPs to relay and signaling" % hups)
        try:
            stdout, stderr = bot.communicate(timeout=limit)
        except subprocess.TimeoutExpired:
            bot.kill()
            bot.communicate()
            fail("tsunagu-bot did not finish within %.0f s" % limit)
        out = subprocess.CompletedProcess(argv, bot.returncode, stdout, stderr)
        print(out.stdout)
        if out.returncode != 0:
            print(out.stderr[-4000:])
            fail("tsunagu-bot exit code %d" % out.returncode)
        r = json.load(open(report))
        legs = r["calls"]
        if len(legs) != 2 * a.calls:
            fail("%d call legs reported, want %d" % (len(legs), 2 * a.calls))
        by_label = {c["label"]: c for c in legs}
        for c in legs:
            if not c["media"] or c["decoded"] < 10 * a.duration:
                fail("%s: no audio decoded (%s)" % (c["label"], c["end_reason"]))
            if not c["path"].startswith(a.expect_path + "/"):
                fail("%s: path %s, expected %s" % (c["label"], c["path"], a.expect_path))
            checks += 2
            if a.stun:
                want = "" if a.expect_path == "relay" else "127.0.0.1:%d (%s)" % (st.turn_port, stun)
                if c["stun_server"] != want:
                    fail("%s: STUN server '%s', expected '%s'" % (c["label"], c["stun_server"], want))
                checks += 1
            if a.kill_signal_after and c["sent"] < 50 * a.duration * 0.9:
                fail("%s sent only %d packets: media stopped with signaling" % (c["label"], c["sent"]))
            if a.turn_transport == "tcp":
                if "TURN over TCP" not in c["path"]:
                    fail("%s: path %s is not TURN over TCP" % (c["label"], c["path"]))
                checks += 1
            if a.drop_every:
                peer = c["label"][:-1] + ("b" if c["label"].endswith("a") else "a")
                dropped = by_label[peer]["dropped_on_purpose"]
                want = by_label[peer]["sent"] + dropped
                print("# %s: lost %d, peer dropped %d of %d (%.2f%% vs %.2f%%)" % (
                    c["label"], c["lost"], dropped, want, c["loss_pct"], 100.0 * dropped / want))
                if dropped < 5:
                    fail("%s: peer dropped only %d packets; test too short" % (peer, dropped))
                if abs(c["lost"] - dropped) > 2:
                    fail("%s reports %d lost, its peer dropped %d" % (c["label"], c["lost"], dropped))
                if abs(c["loss_pct"] - 100.0 / a.drop_every) > 1.0:
                    fail("%s: loss %.2f%%, expected %.2f%%" % (c["label"], c["loss_pct"],
                                                               100.0 / a.drop_every))
                checks += 3
            else:
                checks += check_clean_leg(c)
        if a.sighup_every:
            rl = st.log("relay.log").count("reloaded:")
            sl = st.log("signal.log").count("SIGHUP: reloaded")
            print("# reloads logged: relay %d, signaling %d" % (rl, sl))
            if hups < 3 or rl != hups or sl != hups:
                fail("sent %d SIGHUPs; relay logged %d reloads, signaling %d" % (hups, rl, sl))
            checks += 1
        if not os.path.getsize(html) or b"<svg" not in open(html, "rb").read():
            fail("HTML report missing or without plots")
        checks += 1
        received = r["totals"]["received"]
        if a.expect_path == "host":
            print("PASS (%d checks; direct path, relay not involved)" % checks)
            return
        # The relay's counters lag (coturn logs session figures 1-5 s after close).
        deadline = time.time() + 10 * TIMEOUT_MULT
        relayed = st.relay_packets()
        while relayed < received and time.time() < deadline:
            time.sleep(0.5)
            relayed = st.relay_packets()
        print("# relay forwarded %d packets; bots received %d" % (relayed, received))
        if relayed < received:
            fail("relay counted %d packets, fewer than the %d the bots received: "
                 "media did not go through it" % (relayed, received))
        checks += 1
        t = r["totals"]
        print("# %d legs, setup p50 %.1f ms p95 %.1f ms, MOS p50 %.2f, loss %.3f%%" % (
            t["legs"], t["setup_ms"]["p50"], t["setup_ms"]["p95"], t["mos"]["p50"], t["loss_pct"]))
    print("PASS (%d checks)" % checks)


if __name__ == "__main__":
    main()
