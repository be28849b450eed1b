#!/usr/bin/python3
"""Topology e: IPv6 client networks and a dual-stack relay, 2001:db8::/32,
routed, no NAT (NAT66 is rare; docs/netlab.md).

   internet bridge: 2001:db8:0:1::/64 and 203.0.113.0/24
   srv 2001:db8:0:1::10 + 203.0.113.10: tsunagu-relay (listens on both,
       --relay-ip of both families), tsunagu-signal on [2001:db8:0:1::10]:8080
   r1 2001:db8:0:1::21 -- c1 2001:db8:0:2::2 (IPv6 only): tsunagu-bot
   r2 2001:db8:0:1::22 -- c2 2001:db8:0:3::2 (IPv6 only): tsunagu-bot

Signaling hands out turn:[2001:db8:0:1::10]:3478 only. The bots run with
--relay-only: the two LANs are routed to each other, so without it ICE would
rightly take the direct IPv6 host pair, and this topology is about the relay.

1. bot <-> bot call with --turn-family ipv6: the bots' shim
   (bot/bot_turnfam.c) adds REQUESTED-ADDRESS-FAMILY IPv6 to libnice's
   Allocates; asserted: every allocation the relay logged for the two
   clients (IPv6 client addresses) has an IPv6 relayed address
   [2001:db8:0:1::10]:port, media both ways (>= 50 packets, 1 s of audio,
   sent and decoded per side: side a's media time is what is left of side
   b's 3 s after b's join), relay counters >= 100 each way.
2. The same call without the flag: relayed addresses IPv4 (asserted):
   libnice 0.1.21 never sends REQUESTED-ADDRESS-FAMILY, and without it RFC
   8656 s.7.2 / RFC 6156 s.4.2 make the relay allocate IPv4.
3. Chromium in c1 (IPv6 only, relay policy) calls a bot in c2: relay/relay,
   audio both ways, and Chromium's relayed address is IPv4 too (asserted).
4. A second relay with --allocation-default-address-family keep (and its
   own signaling server): Chromium and the bot, neither asking a family, get
   IPv6 relayed addresses (asserted).
"""
import argparse
import json
import os
import re
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import netlab  # noqa: E402
import labcall  # noqa: E402
import browser_leg  # noqa: E402
from netlab import fail, metric_sum  # noqa: E402

SECRET = "netlab-e-secret"
SRV6, SRV4 = "2001:db8:0:1::10", "203.0.113.10"
C1, C2 = "2001:db8:0:2::2", "2001:db8:0:3::2"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--relay", required=True)
    ap.add_argument("--signal", required=True)
    ap.add_argument("--bot", required=True)
    ap.add_argument("--transport", choices=["udp", "tcp"], default="udp")
    a = ap.parse_args()
    for exe in (a.relay, a.signal, a.bot):
        if not os.access(exe, os.X_OK):
            fail("%s is not an executable" % exe)
    mult = netlab.TIMEOUT_MULT
    checks = 0

    def check(cond, what):
        nonlocal checks
        if not cond:
            fail(what)
        print("ok - " + what, flush=True)
        checks += 1

    with netlab.Lab("e") as lab:
        srv = lab.public_host("srv", SRV6 + "/64", SRV4 + "/24")
        r1 = lab.router("r1", "2001:db8:0:1::21/64", "2001:db8:0:2::1/64")
        c1 = lab.lan_host("c1", r1, C1 + "/64")
        r2 = lab.router("r2", "2001:db8:0:1::22/64", "2001:db8:0:3::1/64")
        c2 = lab.lan_host("c2", r2, C2 + "/64")
        srv.route("2001:db8:0:2::/64", "2001:db8:0:1::21")
        srv.route("2001:db8:0:3::/64", "2001:db8:0:1::22")

        relay = srv.spawn([a.relay, "--listen", "[%s]:3478" % SRV6, "--listen", SRV4 + ":3478",
                           "--relay-ip", SRV4, "--relay-ip", SRV6, "--realm", "tsunagu",
                           "--auth-secret", SECRET, "--metrics-listen", SRV4 + ":9641",
                           "--log-level", "info"], "relay.log")
        sig = srv.spawn([a.signal, "--listen", "[%s]:8080" % SRV6,
                         "--turn-url", "turn:[%s]:3478?transport=%s" % (SRV6, a.transport),
                         "--turn-secret", SECRET], "signal.log")
        srv.wait_tcp(SRV6, 3478, 10, relay, "tsunagu-relay")
        srv.wait_tcp(SRV6, 8080, 10, sig, "tsunagu-signal")
        ws = "ws://[%s]:8080/ws" % SRV6

        def bot_call(name, family):
            """A bot-to-bot call c1 <-> c2, relay only, --turn-family family
            (None: the flag left out); checks media both ways and the relay's
            counters; returns (call, the relayed addresses the relay logged for
            c1's and c2's allocations made during the call)."""
            mark = len(lab.log("relay.log"))
            before = srv.http_get("http://%s:9641/metrics" % SRV4)
            extra = ["--relay-only"] + (["--turn-family", family] if family else [])
            call = labcall.bot_call(lab, a.bot, c1, c2, ws, "%s-%d" % (name, os.getpid()),
                                    duration=3, extra=extra, name=name)
            for n, (leg, rc) in enumerate(zip(call.legs, call.rc)):
                side = "ab"[n]
                if leg is None or rc != 0:
                    fail("%s: bot %s exit %s, leg %s\n%s" % (name, side, rc, leg,
                                                             lab.log(call.logs[n])[-3000:]))
                check(leg["media"] and leg["path"].startswith("relay/") and
                      leg["decoded"] >= 50 and leg["sent"] >= 50,
                      "%s: bot %s sent %d and decoded %d packets over %s" % (
                          name, side, leg["sent"], leg["decoded"], leg["path"]))
            after = srv.http_get("http://%s:9641/metrics" % SRV4)
            pk = {k: metric_sum(after, 'tsunagu_relay_packets_total{direction="%s"}' % k) -
                  metric_sum(before, 'tsunagu_relay_packets_total{direction="%s"}' % k)
                  for k in ("client_to_peer", "peer_to_client")}
            check(min(pk.values()) >= 100, "%s: relay counted %d client_to_peer and %d "
                  "peer_to_client packets" % (name, pk["client_to_peer"], pk["peer_to_client"]))
            rlog = lab.log("relay.log")[mark:]
            relayed = []
            for side, ip in zip("ab", (C1, C2)):
                got = re.findall(r"allocated client=\[%s\]:\d+ proto=%s relayed=(\S+) " % (
                    re.escape(ip), a.transport), rlog)
                check(got, "%s: relay log: bot %s allocated from its IPv6 address %s" % (
                    name, side, ip))
                relayed.append(got)
            return call, relayed

        # 1. --turn-family ipv6: the bot's shim (bot/bot_turnfam.c) adds
        # REQUESTED-ADDRESS-FAMILY IPv6 to libnice's Allocates.
        call, relayed = bot_call("e", "ipv6")
        for side, got in zip("ab", relayed):
            check(all(x.startswith("[%s]:" % SRV6) for x in got),
                  "e: bot %s's relayed address is IPv6: %s" % (side, ", ".join(got)))
        for n, side in enumerate("ab"):
            check("asking for an IPv6 relayed address" in lab.log(call.logs[n]),
                  "e: bot %s logged its shim" % side)
        # libnice's closing Refresh (LIFETIME 0) goes through the shim too:
        # the bot frees it only once the agent has closed
        for side, ip in zip("ab", (C1, C2)):
            check(re.search(r"released \(refresh lifetime 0\) client=\[%s\]:\d+ relayed=\[%s\]"
                            % (re.escape(ip), re.escape(SRV6)), lab.log("relay.log")),
                  "e: bot %s's IPv6 allocation was released by its Refresh 0" % side)
        print(call.line("e") + " (IPv6 relayed addresses)", flush=True)

        # 2. The same without the flag: libnice asks no family, and the relay
        # gives the RFC 8656 s.7.2 default, IPv4, though the bots reach it
        # over IPv6 (the shim is what makes 1 IPv6).
        call, relayed = bot_call("e-default", None)
        for side, got in zip("ab", relayed):
            check(all(not x.startswith("[") for x in got),
                  "e-default: bot %s's relayed address is IPv4: %s" % (side, ", ".join(got)))
        print(call.line("e-default") + " (no --turn-family: IPv4 relayed)", flush=True)

        def chromium_leg(name, port, want, why):
            """Chromium from the IPv6-only network, relay policy (relay=1: the
            LANs are routed to each other), calling a bot in the other one
            through the signaling server on port; want: the relayed address
            Chromium's pair must use (SRV4 or SRV6)."""
            room = "%s-%d" % (name, os.getpid())
            report = lab.path("bot-%s.json" % name)
            bot = c2.spawn([a.bot, "--signal", "ws://[%s]:%d/ws" % (SRV6, port), "--room", room,
                            "--duration", str(int(20 * mult)), "--relay-only", "--report",
                            report, "--log-level", "info"], "bot-%s.log" % name)
            time.sleep(0.5)
            leg = browser_leg.for_lab(lab, c1, "http://[%s]:%d" % (SRV6, port))
            leg.open_demo(room, relay_only=True)
            res = leg.wait_call(50, 20)
            print("# %s: %s" % (name, json.dumps(res)), flush=True)
            check(res["local_type"] == "relay" and res["remote_type"] == "relay",
                  "%s: chromium (IPv6 only) pair relay/relay" % name)
            check(res["local_address"] == want and res["in_audio_packets"] >= 50 and
                  res["out_audio_packets"] > 0,
                  "%s: chromium's relayed address is %s (%s), %d audio packets in, %d out" % (
                      name, res["local_address"], why, res["in_audio_packets"],
                      res["out_audio_packets"]))
            relayed = re.escape("[%s]" % want if ":" in want else want)
            check(re.search(r"allocated client=\[%s\]:\d+ proto=udp relayed=%s:" % (
                re.escape(C1), relayed), lab.log("relay.log" if port == 8080 else "relay-keep.log")),
                "%s: relay log: chromium allocated over IPv6 from %s, relayed %s" % (name, C1, want))
            if lab.stop(bot, wait=15) != 0:
                fail("bot (%s) exit %s" % (name, bot.returncode))
            browser_leg.check_bot_report(report, fail, want_path_prefix="relay/", min_decoded=25)
            lab.stop(leg.proc)  # the next leg's Chromium takes the same profile
            print("netlab %s: pair=%s/%s setup_ms=%d (IPv6 to the relay, %s relayed)" % (
                name, res["local_type"], res["remote_type"], res["setup_ms"],
                "IPv6" if ":" in want else "IPv4"), flush=True)

        # 3. Chromium asks no family either: with the RFC default its relayed
        # address is IPv4.
        chromium_leg("e-chromium", 8080, SRV4, "it asks no family either")

        check(C1 in lab.log("signal.log") and "2001:db8::2:0:0:0:2" not in lab.log("signal.log"),
              "signaling logs the IPv6 client as %s (RFC 5952 text)" % C1)

        # 4. A relay with allocation-default-address-family keep (coturn's
        # option of the same name) gives every client that asks no family the
        # family it came over: Chromium and the bot (no --turn-family) both
        # get IPv6 relayed addresses.
        relay2 = srv.spawn([a.relay, "--listen", "[%s]:3479" % SRV6, "--listen", SRV4 + ":3479",
                            "--relay-ip", SRV4, "--relay-ip", SRV6, "--realm", "tsunagu",
                            "--auth-secret", SECRET, "--metrics-listen", SRV4 + ":9642",
                            "--allocation-default-address-family", "keep",
                            "--relay-ports", "40000-40999", "--log-level", "info"],
                           "relay-keep.log")
        sig2 = srv.spawn([a.signal, "--listen", "[%s]:8081" % SRV6,
                          "--turn-url", "turn:[%s]:3479?transport=%s" % (SRV6, a.transport),
                          "--turn-secret", SECRET], "signal-keep.log")
        srv.wait_tcp(SRV6, 3479, 10, relay2, "tsunagu-relay (keep)")
        srv.wait_tcp(SRV6, 8081, 10, sig2, "tsunagu-signal (keep)")
        chromium_leg("e-keep", 8081, SRV6, "allocation-default-address-family keep")
        check(re.search(r"allocated client=\[%s\]:\d+ proto=udp relayed=\[%s\]:" % (
            re.escape(C2), re.escape(SRV6)), lab.log("relay-keep.log")),
            "e-keep: the bot (no --turn-family) got an IPv6 relayed address too")
    print("PASS (%d checks)" % checks)


if __name__ == "__main__":
    labcall.main_guard(main)
