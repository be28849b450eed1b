#!/usr/bin/python3
"""topo_a.py - topology a (issue 10): both members behind symmetric NATs.

    c1 198.18.1.2 -- r1 [masquerade fully-random] 203.0.113.21 --+
                                                                  br0 -- pub 203.0.113.10
    c2 198.18.2.2 -- r2 [masquerade fully-random] 203.0.113.22 --+       tsunagu-relay :3478
                                                                         tsunagu-signal :8080
Signaling hands out turn:203.0.113.10:3478 and stun:203.0.113.10:3478 (as
scripts/run.sh does); the bots are NOT told to relay only. A symmetric NAT
maps each destination to a new port, so the server-reflexive address a STUN
server sees is useless to the peer: only a relayed candidate can work.

Legs (one function each; LEGS lists them, a leg may be chosen by name):
- bot_bot: the call connects, the selected pair has a relay candidate on at
  least one side, audio both ways with bounded loss, and the relay's
  tsunagu_relay_packets_total rose by at least the packets the bots got.
- control_no_ice_servers: the same two bots through a second tsunagu-signal
  that hands out no ICE server: the call must fail (no media on either side,
  exit 1), so the first leg's success is the relay's doing.

usage: topo_a.py RELAY_EXE SIGNAL_EXE BOT_EXE [LEG...]"""
import os, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from netlab import Lab, fail  # noqa: E402
import labcall  # noqa: E402

PUB = "203.0.113.10"


def build(lab, exes):
    """The topology and its servers; returns the dict every leg gets."""
    pub = lab.public_host("pub", PUB + "/24")
    r1 = lab.router("r1", "203.0.113.21/24", "198.18.1.1/24", nat="symmetric")
    c1 = lab.lan_host("c1", r1, "198.18.1.2/24")
    r2 = lab.router("r2", "203.0.113.22/24", "198.18.2.1/24", nat="symmetric")
    c2 = lab.lan_host("c2", r2, "198.18.2.2/24")
    relay = labcall.start_relay(lab, pub, PUB, exes["relay"])
    urls = ["turn:%s:%d" % (PUB, labcall.TURN_PORT), "stun:%s:%d" % (PUB, labcall.TURN_PORT)]
    ws = labcall.start_signal(lab, pub, PUB, exes["signal"], urls=urls)
    return {"lab": lab, "exes": exes, "pub": pub, "c1": c1, "c2": c2, "r1": r1, "r2": r2,
            "relay": relay, "ws": ws, "urls": urls}


def leg_bot_bot(t):
    """bot in c1 <-> bot in c2 over the relay, not forced to it."""
    relay = t["relay"]
    before = relay.packets()
    call = labcall.bot_call(t["lab"], t["exes"]["bot"], t["c1"], t["c2"], t["ws"],
                            "a-bots-%d" % os.getpid(), duration=4, name="a-bot-bot")
    n = call.check_media(fail)
    types = call.types()
    if "relay" not in types:
        fail("a-bot-bot: selected pair %s/%s has no relay candidate behind two symmetric NATs"
             % types)
    for leg in call.legs:
        if not leg["stun_server"].startswith(PUB):
            fail("a-bot-bot: STUN server '%s', expected %s (not relay-only)" %
                 (leg["stun_server"], PUB))
    rcv = call.received()
    after = labcall.wait_counter(relay.packets, before + rcv)
    print("# relay packets %d -> %d (+%d); bots received %d" % (before, after, after - before,
                                                                rcv))
    if after - before < rcv:
        fail("a-bot-bot: relay counted %d packets, fewer than the %d the bots received"
             % (after - before, rcv))
    print(call.line("a"), flush=True)
    return n + 3


def leg_control_no_ice_servers(t):
    """The same bots with no ICE server handed out: the call must fail."""
    lab = t["lab"]
    ws0 = labcall.start_signal(lab, t["pub"], PUB, t["exes"]["signal"], urls=[], port=8081,
                               log="signal-noice.log")
    call = labcall.bot_call(lab, t["exes"]["bot"], t["c1"], t["c2"], ws0,
                            "a-ctl-%d" % os.getpid(), duration=3, setup_timeout=3,
                            name="a-control")
    for side, leg, rc in zip("ab", call.legs, call.rc):
        if leg is None:
            fail("a-control: bot %s made no call leg, so nothing was tried" % side)
        if leg["media"] or leg["received"]:
            fail("a-control: bot %s got media (%d packets, path %s) with no ICE server: the lab "
                 "lets traffic through the NATs" % (side, leg["received"], leg["path"]))
        if rc != 1:
            fail("a-control: bot %s exit %s, want 1 (failed call)" % (side, rc))
    if "0 TURN servers, 0 STUN" not in lab.log(call.logs[0]):
        fail("a-control: bot a was handed ICE servers: %s" % lab.log(call.logs[0])[-800:])
    print("# a-control: no ICE servers, call failed as it must: %s" % call.describe())
    return 4


LEGS = [("bot_bot", leg_bot_bot), ("control_no_ice_servers", leg_control_no_ice_servers)]


def main():
    if len(sys.argv) < 4:
        fail("usage: topo_a.py RELAY_EXE SIGNAL_EXE BOT_EXE [LEG...]")
    exes = {"relay": sys.argv[1], "signal": sys.argv[2], "bot": sys.argv[3]}
    pick = sys.argv[4:]
    unknown = set(pick) - {n for n, _ in LEGS}
    if unknown:
        fail("unknown leg(s) %s" % sorted(unknown))
    t0 = time.time()
    checks = 0
    with Lab("a") as lab:
        t = build(lab, exes)
        for name, fn in LEGS:
            if not pick or name in pick:
                checks += fn(t)
    print("PASS (%d checks, %.1f s)" % (checks, time.time() - t0))


if __name__ == "__main__":
    labcall.main_guard(main)
