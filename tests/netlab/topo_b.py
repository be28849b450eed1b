#!/usr/bin/python3
"""topo_b.py - topology b (issue 10): both members behind port-restricted cone
NATs, the kind most home routers are.

    c1 198.18.1.2 -- r1 [masquerade, inbound only as replies] 203.0.113.21 --+
                                                                             br0 -- pub 203.0.113.10
    c2 198.18.2.2 -- r2 [masquerade, inbound only as replies] 203.0.113.22 --+  relay :3478, signal :8080

Signaling hands out turn: and stun: of the relay (as scripts/run.sh does);
no relay-only forcing. A cone NAT keeps one mapping per inside socket for
every destination, so the server-reflexive address a STUN (or TURN) server
reports is the one the peer can reach once both sides have sent to each
other: ICE must take a srflx pair and leave the relay alone, since relaying
a call that needs no relay costs the operator its bandwidth.

Asserted (leg srflx_direct): the call connects with audio both ways, each
side's selected local candidate is server-reflexive (so each side's remote
candidate, the other's local one, is too: the pair is srflx/srflx), and the
relay forwarded (almost) none of the media.

Leg stun_only: signaling hands out only the stun: URL (no TURN), so the srflx
candidates must come from the STUN server (tsunagu-relay's listener) itself:
srflx/srflx with audio. Before the `stun` branch (tsunagu-relay answering
RFC 3489 Bindings, the bot giving libnice its TURN servers after the STUN
discovery item) this leg failed: no srflx candidate, no call. The first leg
passed even then: libnice also takes a srflx candidate from the TURN
Allocate's XOR-MAPPED-ADDRESS.

usage: topo_b.py RELAY_EXE SIGNAL_EXE BOT_EXE [LEG...]"""
import os, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from netlab import Lab, fail  # noqa: E402
import labcall  # noqa: E402

PUB = "203.0.113.10"


def build(lab, exes):
    pub = lab.public_host("pub", PUB + "/24")
    r1 = lab.router("r1", "203.0.113.21/24", "198.18.1.1/24", nat="cone")
    c1 = lab.lan_host("c1", r1, "198.18.1.2/24")
    r2 = lab.router("r2", "203.0.113.22/24", "198.18.2.1/24", nat="cone")
    c2 = lab.lan_host("c2", r2, "198.18.2.2/24")
    relay = labcall.start_relay(lab, pub, PUB, exes["relay"])
    urls = ["turn:%s:%d" % (PUB, labcall.TURN_PORT), "stun:%s:%d" % (PUB, labcall.TURN_PORT)]
    ws = labcall.start_signal(lab, pub, PUB, exes["signal"], urls=urls)
    return {"lab": lab, "exes": exes, "pub": pub, "c1": c1, "c2": c2, "relay": relay, "ws": ws}


def leg_srflx_direct(t):
    relay = t["relay"]
    before = relay.packets()
    call = labcall.bot_call(t["lab"], t["exes"]["bot"], t["c1"], t["c2"], t["ws"],
                            "b-bots-%d" % os.getpid(), duration=4, name="b-srflx")
    print(call.line("b"), flush=True)
    n = call.check_media(fail)
    for side, leg in zip("ab", call.legs):
        if not leg["stun_server"].startswith(PUB):
            fail("b-srflx: bot %s STUN server '%s', expected %s" % (side, leg["stun_server"], PUB))
    types = call.types()
    if types != ("srflx", "srflx"):
        fail("b-srflx: selected pair %s/%s, want srflx/srflx behind two port-restricted cone "
             "NATs (a relay candidate here means the call was relayed although a direct path "
             "existed)" % types)
    after = relay.packets()
    rcv = call.received()
    print("# relay packets %d -> %d (+%d); bots received %d" % (before, after, after - before,
                                                                rcv))
    if after - before > rcv // 10:
        fail("b-srflx: the relay forwarded %d packets of a call whose bots got %d over srflx"
             % (after - before, rcv))
    return n + 4


def leg_stun_only(t):
    """Only a stun: URL handed out (no TURN): the srflx candidates must come
    from the STUN server itself, and the call must still go direct."""
    lab = t["lab"]
    ws1 = labcall.start_signal(lab, t["pub"], PUB, t["exes"]["signal"],
                               urls=["stun:%s:%d" % (PUB, labcall.TURN_PORT)], port=8081,
                               log="signal-stun-only.log")
    call = labcall.bot_call(lab, t["exes"]["bot"], t["c1"], t["c2"], ws1,
                            "b-stun-%d" % os.getpid(), duration=3, setup_timeout=4,
                            name="b-stun-only")
    print(call.line("b-stun-only"), flush=True)
    n = call.check_media(fail)
    types = call.types()
    if types != ("srflx", "srflx"):
        fail("b-stun-only: selected pair %s/%s, want srflx/srflx from the stun: server" % types)
    return n + 1


LEGS = [("srflx_direct", leg_srflx_direct), ("stun_only", leg_stun_only)]


def main():
    if len(sys.argv) < 4:
        fail("usage: topo_b.py RELAY_EXE SIGNAL_EXE BOT_EXE [LEG...]")
    exes = {"relay": sys.argv[1], "signal": sys.argv[2], "bot": sys.argv[3]}
    pick = sys.argv[4:]
    if set(pick) - {n for n, _ in LEGS}:
        fail("unknown leg(s) %s" % sorted(set(pick) - {n for n, _ in LEGS}))
    t0 = time.time()
    checks = 0
    with Lab("b") as lab:
        t = build(lab, exes)
        for name, fn in LEGS:
            if not pick or name in pick:
                checks += fn(t)
    print("PASS (%d checks, %.1f s)" % (checks, time.time() - t0))


if __name__ == "__main__":
    labcall.main_guard(main)
