#!/usr/bin/python3
"""Topology a, the Chromium leg: headless Chromium behind one symmetric NAT
calls tsunagu-bot behind another, through tsunagu-signal and tsunagu-relay
on a public host, with NOTHING forced: the page runs with ICE policy 'all'
(no relay=1), the bot without --relay-only, and signaling hands out a
stun: URL next to the turn: one, so both ends have host, srflx and relay
candidates and ICE picks.

            203.0.113.0/24 (bridge "internet")
   srv .10: tsunagu-relay :3478, tsunagu-signal :8080
   r1 .21 (masquerade fully-random) -- c1 198.18.1.2: Chromium
   r2 .22 (masquerade fully-random) -- c2 198.18.2.2: tsunagu-bot

Behind two symmetric NATs no direct path exists (each NAT maps a new random
port per destination, so neither srflx address is reachable by the other),
so the call can only work through the relay. Asserts:
- Chromium's selected pair has a relay candidate on at least one side and no
  host candidate (the LANs are not reachable from each other); each address
  is the relay's (relay candidate) or the member's NAT's outside address
  (srflx/prflx: seen here, prflx/relay: Chromium's checks reach the bot's
  relayed address from r1's mapping; the relay's permissions are per IP);
- media both ways: Chromium received >= WANT audio packets from the bot and
  sent audio; the bot decoded packets from Chromium (its report);
- the relay's packet counters grew in both directions by at least what the
  browser says it received.
Prints `netlab a-browser: pair=<local>/<remote> setup_ms=<n>`.
The no-ICE-server control call is bot-to-bot in topology a's own test.
"""
import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import netlab  # noqa: E402
import labcall  # noqa: E402
import browser_leg  # noqa: E402
from netlab import fail, metric_sum  # noqa: E402

SECRET = "netlab-a-secret"
WANT = 100          # audio packets (2 s of Opus at 20 ms)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--relay", required=True)
    ap.add_argument("--signal", required=True)
    ap.add_argument("--bot", required=True)
    ap.add_argument("--chromium", default=browser_leg.CHROMIUM)
    a = ap.parse_args()
    for exe in (a.relay, a.signal, a.bot):
        if not os.access(exe, os.X_OK):
            fail("%s is not an executable" % exe)
    mult = netlab.TIMEOUT_MULT
    checks = 0
    with netlab.Lab("a-browser") as lab:
        srv = lab.public_host("srv", "203.0.113.10/24")
        r1 = lab.router("r1", "203.0.113.21/24", "198.18.1.1/24", nat="symmetric")
        c1 = lab.lan_host("c1", r1, "198.18.1.2/24")
        r2 = lab.router("r2", "203.0.113.22/24", "198.18.2.1/24", nat="symmetric")
        c2 = lab.lan_host("c2", r2, "198.18.2.2/24")

        relay = srv.spawn([a.relay, "--listen", "203.0.113.10:3478", "--realm", "tsunagu",
                           "--auth-secret", SECRET, "--metrics-listen", "203.0.113.10:9641"],
                          "relay.log")
        sig = srv.spawn([a.signal, "--listen", "203.0.113.10:8080",
                         "--turn-url", "stun:203.0.113.10:3478",
                         "--turn-url", "turn:203.0.113.10:3478?transport=udp",
                         "--turn-secret", SECRET], "signal.log")
        srv.wait_tcp("203.0.113.10", 3478, 10, relay, "tsunagu-relay")
        srv.wait_tcp("203.0.113.10", 8080, 10, sig, "tsunagu-signal")
        before = srv.http_get("http://203.0.113.10:9641/metrics")

        room = "a-browser-%d" % os.getpid()
        report = lab.path("bot.json")
        bot = c2.spawn([a.bot, "--signal", "ws://203.0.113.10:8080/ws", "--room", room,
                        "--duration", str(int(25 * mult)), "--report", report,
                        "--log-level", "info"], "bot.log")
        time.sleep(0.5)
        leg = browser_leg.for_lab(lab, c1, "http://203.0.113.10:8080")
        leg.open_demo(room)
        res = leg.wait_call(WANT, 25)
        print("# chromium: " + json.dumps(res), flush=True)
        after = srv.http_get("http://203.0.113.10:9641/metrics")

        lt, rt = res["local_type"], res["remote_type"]
        c2p = metric_sum(after, 'tsunagu_relay_packets_total{direction="client_to_peer"}') - \
            metric_sum(before, 'tsunagu_relay_packets_total{direction="client_to_peer"}')
        p2c = metric_sum(after, 'tsunagu_relay_packets_total{direction="peer_to_client"}') - \
            metric_sum(before, 'tsunagu_relay_packets_total{direction="peer_to_client"}')
        cl = [
            ("relay" in (lt, rt), "chromium pair goes through the relay (%s/%s)" % (lt, rt)),
            ("host" not in (lt, rt), "no host candidate in the pair across two NATs"),
            (res["local_address"] == ("203.0.113.10" if lt == "relay" else "203.0.113.21"),
             "chromium's local address %s is the %s" % (
                 res["local_address"], "relay's" if lt == "relay" else "mapping of its NAT r1")),
            (res["remote_address"] == ("203.0.113.10" if rt == "relay" else "203.0.113.22"),
             "the bot's address %s is the %s" % (
                 res["remote_address"], "relay's" if rt == "relay" else "mapping of its NAT r2")),
            (res["in_audio_packets"] >= WANT, "chromium received %d audio packets from the bot"
             % res["in_audio_packets"]),
            (res["out_audio_packets"] > 0, "chromium sent %d audio packets"
             % res["out_audio_packets"]),
            (c2p >= WANT and p2c >= WANT, "relay counted %d client_to_peer and %d peer_to_client "
             "packets" % (c2p, p2c)),
        ]
        for cond, what in cl:
            if not cond:
                fail(what)
            print("ok - " + what)
            checks += 1

        if lab.stop(bot, wait=15) != 0:
            fail("bot exit code %s\n%s" % (bot.returncode, lab.log("bot.log")[-3000:]))
        # The bot's local candidate: its relayed address or its NAT's mapping
        # (srflx/prflx), never host. It need not be the far end of
        # Chromium's pair: the bot (controlled) reports the first pair libnice
        # selected, and two pairs work here (seen: Chromium prflx -> bot relay
        # nominated, the bot reporting its prflx -> Chromium's relayed address).
        c = browser_leg.check_bot_report(report, fail, want_path_prefix="", min_decoded=WANT // 2)
        bot_local = c["path"].split("/")[0]
        for cond, what in [
            (bot_local in ("relay", "srflx", "prflx"), "bot path %s is not host" % c["path"]),
            (c["decoded"] >= WANT // 2, "bot decoded %d packets from chromium" % c["decoded"]),
        ]:
            if not cond:
                fail(what)
            print("ok - " + what)
            checks += 1
        print("netlab a-browser: pair=%s/%s setup_ms=%d (chromium, the offerer: its join -> first "
              "audio from the bot; page opened -> first audio %d ms, -> selected pair %d ms)"
              % (lt, rt, res["setup_ms"], res["open_ms"], res["pair_ms"]), flush=True)
    print("PASS (%d checks)" % checks)


if __name__ == "__main__":
    labcall.main_guard(main)
