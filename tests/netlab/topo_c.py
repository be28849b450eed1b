#!/usr/bin/python3
"""Topology c: members behind corporate firewalls that let only TCP to port
443 out (UDP dropped, no NAT): the call succeeds over TURN over TLS on 443.

            203.0.113.0/24 (bridge "internet")
   srv .10: tsunagu-relay UDP/TCP :3478, TLS :443 (self-signed certificate
            for IP 203.0.113.10, made here with openssl)
   srv .11: tsunagu-signal :443 (plain http: the only port the firewall passes)
   f1 .21 (firewall443) -- c1 198.18.1.2: Chromium
   f2 .22 (firewall443) -- c2 198.18.2.2: tsunagu-bot

Signaling hands out what a real deployment does: stun: and turn: (UDP and
TCP) on 3478 and turns: on 443; nothing is forced (page policy 'all', bot
without --relay-only). Only the turns: server is reachable.

Certificates: Chromium does verify the TURN server's certificate (without a
flag its TURN TLS handshake fails with net_error -202,
ERR_CERT_AUTHORITY_INVALID, and the call fails); it is told to accept this
one key with --ignore-certificate-errors-spki-list=<base64 SHA-256 of the
certificate's SubjectPublicKeyInfo> (a pin, narrower than
--ignore-certificate-errors, which is not used). The bot trusts the
certificate itself with --turn-ca.

Asserts: Chromium's selected pair is relay/relay and its local candidate's
relayProtocol is "tls"; the bot's path is relayed, it completed a TLS session
with the relay, and decoded Chromium's audio; media both ways; the relay
logged both allocations as proto=tls from the two LAN addresses and counted
the packets both ways; the firewalls dropped UDP the members sent (counted by
an observing nftables chain on each firewall), so UDP was tried and refused.
Control: a second tsunagu-signal (also on 443, so it is reachable) hands out
only the 3478 servers (stun:, turn: UDP and TCP); a bot-to-bot call through
it must fail on both sides, so the success above is TURN over TLS on 443.
Prints `netlab c: pair=<local>/<remote> setup_ms=<n>` (Chromium's view) and
the bot's set-up time.
"""
import argparse
import base64
import hashlib
import json
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import netlab  # noqa: E402
import browser_leg  # noqa: E402
import labcall  # noqa: E402
from netlab import fail, metric_sum  # noqa: E402

SECRET = "netlab-c-secret"
WANT = 100
RELAY, SIG, SIG0 = "203.0.113.10", "203.0.113.11", "203.0.113.12"

# Counts, never decides: accept in this chain does not stop the firewall's own
# forward chain (every base chain on a hook sees the packet).
NFT_OBSERVE = """table inet observe {
  chain udp_out {
    type filter hook forward priority -10; policy accept;
    iifname "lan0" meta l4proto udp counter
  }
}
"""


def make_cert(d):
    """Self-signed certificate for IP RELAY; returns (cert, key, spki_b64)."""
    cert, key = os.path.join(d, "relay.pem"), os.path.join(d, "relay.key")
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-days", "1",
                        "-subj", "/CN=" + RELAY, "-addext", "subjectAltName=IP:" + RELAY,
                        "-keyout", key, "-out", cert], capture_output=True, text=True)
    if r.returncode:
        fail("openssl req: " + r.stderr[-500:])
    pub = subprocess.run(["openssl", "x509", "-in", cert, "-pubkey", "-noout"],
                         capture_output=True, check=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "der"], input=pub,
                         capture_output=True, check=True).stdout
    return cert, key, base64.b64encode(hashlib.sha256(der).digest()).decode()


def udp_dropped(fw):
    out = fw.run([netlab.NFT, "list", "table", "inet", "observe"]).stdout
    m = re.search(r"counter packets (\d+)", out)
    return int(m.group(1)) if m else -1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--relay", required=True)
    ap.add_argument("--signal", required=True)
    ap.add_argument("--bot", required=True)
    a = ap.parse_args()
    for exe in (a.relay, a.signal, a.bot, "/usr/bin/openssl"):
        if not os.access(exe, os.X_OK):
            fail("%s is not an executable (openssl: apt-get install openssl)" % exe)
    mult = netlab.TIMEOUT_MULT
    checks = 0

    def check(cond, what):
        nonlocal checks
        if not cond:
            fail(what)
        print("ok - " + what, flush=True)
        checks += 1

    with netlab.Lab("c") as lab:
        srv = lab.public_host("srv", RELAY + "/24", SIG + "/24", SIG0 + "/24")
        f1 = lab.router("f1", "203.0.113.21/24", "198.18.1.1/24", nat="firewall443")
        c1 = lab.lan_host("c1", f1, "198.18.1.2/24")
        f2 = lab.router("f2", "203.0.113.22/24", "198.18.2.1/24", nat="firewall443")
        c2 = lab.lan_host("c2", f2, "198.18.2.2/24")
        # no NAT: the servers route the LANs back through their firewalls
        srv.route("198.18.1.0/24", "203.0.113.21")
        srv.route("198.18.2.0/24", "203.0.113.22")
        for fw in (f1, f2):
            fw.nft(NFT_OBSERVE)
        cert, key, spki = make_cert(lab.dir)

        relay = srv.spawn([a.relay, "--listen", RELAY + ":3478", "--tls-listen", RELAY + ":443",
                           "--cert", cert, "--key", key, "--relay-ip", RELAY, "--realm", "tsunagu",
                           "--auth-secret", SECRET, "--metrics-listen", RELAY + ":9641"],
                          "relay.log")
        sig = srv.spawn([a.signal, "--listen", SIG + ":443",
                         "--turn-url", "stun:%s:3478" % RELAY,
                         "--turn-url", "turn:%s:3478?transport=udp" % RELAY,
                         "--turn-url", "turn:%s:3478?transport=tcp" % RELAY,
                         "--turn-url", "turns:%s:443?transport=tcp" % RELAY,
                         "--turn-secret", SECRET], "signal.log")
        srv.wait_tcp(RELAY, 443, 10, relay, "tsunagu-relay (TLS)")
        srv.wait_tcp(SIG, 443, 10, sig, "tsunagu-signal")
        before = srv.http_get("http://%s:9641/metrics" % RELAY)

        room = "c-%d" % os.getpid()
        report = lab.path("bot.json")
        bot = c2.spawn([a.bot, "--signal", "ws://%s:443/ws" % SIG, "--room", room,
                        "--duration", str(int(25 * mult)), "--report", report,
                        "--turn-ca", cert, "--log-level", "info"], "bot.log")
        time.sleep(0.5)
        leg = browser_leg.for_lab(lab, c1, "http://%s:443" % SIG,
                                  extra_flags=["--ignore-certificate-errors-spki-list=" + spki])
        leg.open_demo(room)
        res = leg.wait_call(WANT, 30)
        print("# chromium: " + json.dumps(res), flush=True)
        after = srv.http_get("http://%s:9641/metrics" % RELAY)

        lt, rt = res["local_type"], res["remote_type"]
        check(lt == "relay" and rt == "relay", "chromium pair is relay/relay (%s/%s)" % (lt, rt))
        check(res["relay_protocol"] == "tls",
              "chromium reaches the relay over TLS (relayProtocol %s)" % res["relay_protocol"])
        check(res["local_address"] == RELAY and res["remote_address"] == RELAY,
              "both candidates are the relay's address (%s, %s)" % (
                  res["local_address"], res["remote_address"]))
        check(res["in_audio_packets"] >= WANT and res["out_audio_packets"] > 0,
              "chromium received %d and sent %d audio packets" % (
                  res["in_audio_packets"], res["out_audio_packets"]))
        d = {k: metric_sum(after, 'tsunagu_relay_packets_total{direction="%s"}' % k) -
             metric_sum(before, 'tsunagu_relay_packets_total{direction="%s"}' % k)
             for k in ("client_to_peer", "peer_to_client")}
        check(min(d.values()) >= WANT, "relay counted %d client_to_peer and %d peer_to_client "
              "packets" % (d["client_to_peer"], d["peer_to_client"]))
        rlog = lab.log("relay.log")
        for who, ip in (("chromium", "198.18.1.2"), ("bot", "198.18.2.2")):
            check(re.search(r"allocated client=%s:\d+ proto=tls " % re.escape(ip), rlog),
                  "relay log: the %s's allocation came over TLS from %s" % (who, ip))
            check(not re.search(r"allocated client=%s:\d+ proto=(udp|tcp) " % re.escape(ip), rlog),
                  "relay log: no UDP or plain TCP allocation from %s" % ip)
        for name, fw in (("f1", f1), ("f2", f2)):
            n = udp_dropped(fw)
            check(n > 0, "firewall %s dropped %d UDP packets from its LAN (UDP was tried)"
                  % (name, n))

        if lab.stop(bot, wait=15) != 0:
            fail("bot exit code %s\n%s" % (bot.returncode, lab.log("bot.log")[-3000:]))
        c = browser_leg.check_bot_report(report, fail, want_path_prefix="relay/",
                                         min_decoded=WANT // 2)
        check(c.get("tls_sessions", 0) >= 1 and c.get("tls", "").startswith("TLS"),
              "bot completed %s TLS session(s) with the relay (%s)" % (
                  c.get("tls_sessions"), c.get("tls")))
        check(c["decoded"] >= WANT // 2, "bot decoded %d packets from chromium, path %s" % (
            c["decoded"], c["path"]))
        print("# bot: path=%s relay_transport=%s setup_ms=%s" % (
            c["path"], c.get("relay_transport"), c.get("setup_ms")))

        # Control: the same firewalls, a signaling server (also on 443) that
        # hands out only the 3478 servers: two bots must fail to connect.
        sig0 = srv.spawn([a.signal, "--listen", SIG0 + ":443",
                          "--turn-url", "stun:%s:3478" % RELAY,
                          "--turn-url", "turn:%s:3478?transport=udp" % RELAY,
                          "--turn-url", "turn:%s:3478?transport=tcp" % RELAY,
                          "--turn-secret", SECRET], "signal-no443.log")
        srv.wait_tcp(SIG0, 443, 10, sig0, "tsunagu-signal (control)")
        udp0 = udp_dropped(f1) + udp_dropped(f2)
        call = labcall.bot_call(lab, a.bot, c1, c2, "ws://%s:443/ws" % SIG0,
                                "c-ctl-%d" % os.getpid(), duration=3, setup_timeout=3,
                                name="c-control")
        for side, leg, rc in zip("ab", call.legs, call.rc):
            check(leg is not None and not leg["media"] and not leg["received"] and rc == 1,
                  "control without turns: on 443: bot %s made no call (exit %s, %s)" % (
                      side, rc, "no leg" if leg is None else "path %s, %d packets" % (
                          leg["path"], leg["received"])))
            check(", 2 TURN servers, 1 STUN" in lab.log(call.logs["ab".index(side)]),
                  "control: bot %s was handed the two 3478 TURN servers and the STUN one" % side)
        udp1 = udp_dropped(f1) + udp_dropped(f2)
        check(udp1 > udp0, "control: the firewalls dropped %d more UDP packets" % (udp1 - udp0))
        print("netlab c: pair=%s/%s setup_ms=%d (chromium, the offerer: its join -> first "
              "audio from the bot; page opened -> first audio %d ms, -> selected pair %d ms)"
              % (lt, rt, res["setup_ms"], res["open_ms"], res["pair_ms"]), flush=True)
    print("PASS (%d checks)" % checks)


if __name__ == "__main__":
    labcall.main_guard(main)
