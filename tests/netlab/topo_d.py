#!/usr/bin/python3
"""topo_d.py - topology d (issue 10): the relay behind a 1:1 NAT, as on a cloud
VM (private address in its namespace, the public one DNATed to it).

    region 1: c1 198.18.1.2 -- r1 [symmetric NAT; out: only relay 1 + signaling]
    region 2: c2 198.18.2.2 -- r2 [symmetric NAT; out: only relay 2 + signaling]
    relay 1 (under test): vm 10.0.0.10 -- gw [1:1 NAT 203.0.113.30 <-> 10.0.0.10]
    relay 2 (correctly configured, public): pub 203.0.113.10, also tsunagu-signal
    all on br0 (203.0.113.0/24)

Signaling hands out turn:203.0.113.30:3478 (relay 1) and
turn:203.0.113.10:3478 (relay 2). Each member reaches only its own region's
relay, so the call has to go relay 1 <-> relay 2: relay 1 sends to the
address relay 2 advertised, relay 2 to the address relay 1 advertised.

Why two relays: when both members use the same relay, its relayed candidates
reach each other inside the relay host even on the private address (the
peer policy allows the relay's own IP on relayed ports), and when the far
side can be reached unasked, ICE recovers the public address as a
peer-reflexive candidate. A member that must reach the advertised address
from outside (another relay, a NAT that lets in only replies) is what a
wrong advertised address breaks; that is the case built here.

Legs:
- with_external_ip: relay 1 runs with --external-ip 203.0.113.30/10.0.0.10:
  the call connects relay/relay with audio both ways, and relay 1's own
  tsunagu_relay_packets_total rose by at least the packets c1 received.
- without_external_ip: relay 1 restarted without it: it advertises
  10.0.0.10, the call fails (asserted), and its --self-check (issue 10 item
  3) names the cause: a warn line "relayed address 10.0.0.10 is private ...
  set --external-ip PUBLIC/10.0.0.10", tsunagu_relay_self_check_warnings >= 1.
  With --external-ip the self-check passes (it sends to the public address,
  which the 1:1 NAT hairpins back) and reports the public relayed address.

usage: topo_d.py RELAY_EXE SIGNAL_EXE BOT_EXE [LEG...]"""
import os, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import netlab  # noqa: E402
from netlab import Lab, fail  # noqa: E402
import labcall  # noqa: E402

PUB1, PRIV1 = "203.0.113.30", "10.0.0.10"
PUB2 = "203.0.113.10"

# each member's router lets its LAN reach its own region's relay (any port,
# UDP and TCP) and signaling on TCP 8080, and nothing else
REGION_FILTER = """table inet region {
  chain forward_filter {
    type filter hook forward priority 0; policy accept;
    ct state established,related accept
    iifname "lan0" ip daddr %(relay)s accept
    iifname "lan0" ip daddr %(sig)s tcp dport 8080 accept
    iifname "lan0" drop
    iifname "wan0" drop
  }
}
"""


def relay_has_self_check(exe):
    """--self-check is part of tsunagu-relay (issue 10 item 3): its absence
    is a failure, not a reason to check less."""
    r = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=10)
    if "--self-check" not in (r.stdout + r.stderr):
        fail("tsunagu-relay has no --self-check")
    return True


def build(lab, exes):
    pub = lab.public_host("pub", PUB2 + "/24")
    gw = lab.router("gw", [PUB1 + "/24"], "10.0.0.1/24", nat="none")
    vm = lab.lan_host("vm", gw, PRIV1 + "/24")
    lab.one_to_one_nat(gw, PUB1, PRIV1)
    r1 = lab.router("r1", "203.0.113.21/24", "198.18.1.1/24", nat="symmetric")
    r1.nft(REGION_FILTER % {"relay": PUB1, "sig": PUB2})
    c1 = lab.lan_host("c1", r1, "198.18.1.2/24")
    r2 = lab.router("r2", "203.0.113.22/24", "198.18.2.1/24", nat="symmetric")
    r2.nft(REGION_FILTER % {"relay": PUB2, "sig": PUB2})
    c2 = lab.lan_host("c2", r2, "198.18.2.2/24")
    relay2 = labcall.start_relay(lab, pub, PUB2, exes["relay"], log="relay2.log")
    urls = ["turn:%s:%d" % (PUB1, labcall.TURN_PORT), "turn:%s:%d" % (PUB2, labcall.TURN_PORT)]
    ws = labcall.start_signal(lab, pub, PUB2, exes["signal"], urls=urls)
    return {"lab": lab, "exes": exes, "pub": pub, "vm": vm, "c1": c1, "c2": c2,
            "relay2": relay2, "ws": ws, "self_check": relay_has_self_check(exes["relay"])}


def start_relay1(t, external, log):
    extra = ["--external-ip", "%s/%s" % (PUB1, PRIV1)] if external else []
    extra.append("--self-check")
    return labcall.start_relay(t["lab"], t["vm"], PRIV1, t["exes"]["relay"], extra=extra, log=log)


def self_check_result(relay, secs=15):
    """Wait for relay's --self-check to finish (tsunagu_relay_self_check_done
    1); return (its log lines, ok gauge, warnings gauge)."""
    end = time.time() + secs * labcall.TIMEOUT_MULT
    while True:
        body = relay.metrics()
        if netlab.metric_sum(body, "tsunagu_relay_self_check_done") >= 1:
            break
        if time.time() > end:
            fail("relay self-check not done within %d s" % secs)
        time.sleep(0.3)
    lines = [l.split("[self-check] ", 1)[1] for l in relay.log().splitlines()
             if "[self-check] " in l]
    return (lines, netlab.metric_sum(body, "tsunagu_relay_self_check_ok"),
            netlab.metric_sum(body, "tsunagu_relay_self_check_warnings"))


def leg_with_external_ip(t):
    lab = t["lab"]
    relay1 = start_relay1(t, True, "relay1-ext.log")
    before = relay1.packets()
    call = labcall.bot_call(lab, t["exes"]["bot"], t["c1"], t["c2"], t["ws"],
                            "d-ext-%d" % os.getpid(), duration=3, name="d-external-ip")
    print(call.line("d"), flush=True)
    n = call.check_media(fail)
    if call.types() != ("relay", "relay"):
        fail("d-external-ip: pair %s/%s, want relay/relay (each member reaches only its "
             "region's relay)" % call.types())
    rcv = call.legs[0]["received"]
    after = labcall.wait_counter(relay1.packets, before + rcv)
    print("# relay 1 packets %d -> %d (+%d); c1 received %d" % (before, after, after - before,
                                                                 rcv))
    if after - before < rcv:
        fail("d-external-ip: relay 1 counted %d packets, fewer than the %d c1 received"
             % (after - before, rcv))
    lines, ok, warns = self_check_result(relay1)
    shown = [l for l in lines if "relayed-address" in l or "summary" in l]
    print("# relay 1 self-check with --external-ip (ok=%d, warnings=%d): %s"
          % (ok, warns, " | ".join(shown)))
    if ok != 1 or not any(l.startswith("summary:") for l in lines):
        fail("d-external-ip: relay 1's self-check did not pass behind the 1:1 NAT: %s"
             % " | ".join(lines))
    if not any("relayed-address" in l and PUB1 in l and "public" in l for l in lines):
        fail("d-external-ip: the self-check does not report the public relayed address %s: %s"
             % (PUB1, " | ".join(lines)))
    lab.stop(relay1.proc)
    return n + 4


def leg_without_external_ip(t):
    lab = t["lab"]
    relay1 = start_relay1(t, False, "relay1-noext.log")
    call = labcall.bot_call(lab, t["exes"]["bot"], t["c1"], t["c2"], t["ws"],
                            "d-noext-%d" % os.getpid(), duration=3, setup_timeout=4,
                            name="d-no-external-ip")
    n = 0
    for side, leg, rc in zip("ab", call.legs, call.rc):
        if leg is None:
            fail("d-no-external-ip: bot %s made no call leg, nothing was tried" % side)
        if leg["media"] or leg["received"] or rc != 1:
            fail("d-no-external-ip: bot %s exit %s, %d packets over %s: the call must fail "
                 "when relay 1 advertises its private address" % (side, rc, leg["received"],
                                                                  leg["path"]))
        n += 2
    print("# d-no-external-ip: call failed as it must: %s" % call.describe())
    lines, ok, warns = self_check_result(relay1)
    cause = [l for l in lines if "relayed-address" in l]
    print("# relay 1 self-check without --external-ip (ok=%d, warnings=%d): %s"
          % (ok, warns, " | ".join(cause)))
    if not any(l.startswith("turn:") and " warn relayed-address: relayed address %s is private"
               % PRIV1 in l and "--external-ip PUBLIC/%s" % PRIV1 in l for l in cause):
        fail("d-no-external-ip: relay 1's --self-check does not name the cause (relayed "
             "address %s is private, set --external-ip): %s" % (PRIV1, " | ".join(lines)))
    if warns < 1:
        fail("d-no-external-ip: tsunagu_relay_self_check_warnings is %d" % warns)
    n += 2
    lab.stop(relay1.proc)
    return n


LEGS = [("with_external_ip", leg_with_external_ip),
        ("without_external_ip", leg_without_external_ip)]


def main():
    if len(sys.argv) < 4:
        fail("usage: topo_d.py RELAY_EXE SIGNAL_EXE BOT_EXE [LEG...]")
    exes = {"relay": sys.argv[1], "signal": sys.argv[2], "bot": sys.argv[3]}
    pick = sys.argv[4:]
    if set(pick) - {n for n, _ in LEGS}:
        fail("unknown leg(s) %s" % sorted(set(pick) - {n for n, _ in LEGS}))
    t0 = time.time()
    checks = 0
    with Lab("d") as lab:
        t = build(lab, exes)
        for name, fn in LEGS:
            if not pick or name in pick:
                checks += fn(t)
    print("PASS (%d checks, %.1f s)" % (checks, time.time() - t0))


if __name__ == "__main__":
    labcall.main_guard(main)
