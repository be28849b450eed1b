#!/usr/bin/python3
"""bot_ice_order.py - what the bot signals, in what order, and which
candidates it gathers, seen by a Python WebSocket client playing its peer.

A peer that does not buffer candidates received before the description they
belong to drops them (browsers: "InvalidStateError: No remoteDescription"),
so the bot must send its offer or answer before any candidate (JSEP).

--case answer: the bot joins first; the Python peer joins and sends an offer
  (no candidates); the bot's first signal must be its answer, every
  candidate and the end-of-candidates after it.
--case offer: the Python peer joins first; the bot joins and offers; its
  first signal must be the offer.

Without --relay-only the bot gathers host candidates while its call object
is made, which is what went out first before the fix. --stun fake hands out a
stun: URL of a STUN server in this script: the bot must send it Binding
requests and name it in its log; with --relay-only the bot must send no
Binding request at all and signal only relay candidates. libnice 0.1.21 sends
its srflx Binding requests in RFC 3489 form, without the magic cookie; the
script answers them in that form (MAPPED-ADDRESS 192.0.2.1, TEST-NET-1, as a
NAT would). The bot must signal a srflx candidate 192.0.2.1 with raddr
127.0.0.1, with the turn: URL next to it (and then a relay candidate too:
before the bot handed libnice its TURN servers after the STUN discovery
item, libnice 0.1.21 dropped that answer, docs/bot.md) and with --no-turn
(only the stun: URL handed out).
--stun relay hands out stun: on the relay's own listener (on loopback the
srflx address equals the host address, and libnice drops it as redundant).
--stun relay-nat hands out stun: of a UDP forwarder in this script that
passes the bot's datagrams on to tsunagu-relay's listener from 127.0.0.2,
as a NAT would: tsunagu-relay answers libnice's RFC 3489 request with
MAPPED-ADDRESS 127.0.0.2:<port>, and the bot must signal that srflx
candidate (raddr 127.0.0.1) next to its relay candidate.

usage: bot_ice_order.py --bot PATH --case answer|offer [--relay-only]
                        [--stun none|fake|relay|relay-nat] [--threads N] [server args as bot_call.py]"""
import argparse, asyncio, json, os, socket, struct, sys, threading, time

import websockets

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bot_harness import Stack, add_server_args, fail, TIMEOUT_MULT  # noqa: E402
import relay_stun as rs  # noqa: E402

OFFER = "\r\n".join([
    "v=0", "o=- 4611731400430051336 2 IN IP4 127.0.0.1", "s=-", "t=0 0",
    "a=group:BUNDLE 0", "a=msid-semantic: WMS x",
    "m=audio 9 UDP/TLS/RTP/SAVPF 111", "c=IN IP4 0.0.0.0", "a=rtcp:9 IN IP4 0.0.0.0",
    "a=ice-ufrag:Yh3t", "a=ice-pwd:kP0b2dW3Xq9w5Ze7Rt1Yu8Io", "a=ice-options:trickle",
    "a=fingerprint:sha-256 5B:0A:7C:6F:30:4D:E9:2E:5B:1A:AC:13:57:AC:2F:9E:10:63:14:54:"
    "6F:4E:11:1E:55:C6:4C:77:58:A1:0D:BE",
    "a=setup:actpass", "a=mid:0", "a=sendrecv", "a=rtcp-mux",
    "a=rtpmap:111 opus/48000/2", "a=fmtp:111 minptime=10;useinbandfec=1", ""])

MAPPED = "192.0.2.1"


class FakeStun:
    """A STUN server on 127.0.0.1 that counts Binding requests and answers
    with the mapped address 192.0.2.1:<the client's port>: XOR-MAPPED-ADDRESS
    (and FINGERPRINT) in RFC 8489 form, MAPPED-ADDRESS in RFC 3489 form."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.requests = 0
        self.datagrams = 0
        self.classic = 0
        self.stop = False
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        while not self.stop:
            try:
                raw, src = self.sock.recvfrom(2048)
            except socket.timeout:
                continue
            self.datagrams += 1
            if len(raw) < 20 or struct.unpack("!H", raw[:2])[0] != 0x0001:
                continue
            self.requests += 1
            if raw[4:8] != struct.pack("!I", rs.MAGIC):
                # RFC 3489 form (no magic cookie, a 16-byte transaction ID):
                # what libnice 0.1.21 sends for srflx discovery. Answered as
                # RFC 8489 s.12.2 says: the ID copied, MAPPED-ADDRESS.
                self.classic += 1
                ma = struct.pack("!BBH", 0, 1, src[1]) + socket.inet_aton(MAPPED)
                self.sock.sendto(struct.pack("!HH", 0x0101, 4 + len(ma)) + raw[4:20] +
                                 struct.pack("!HH", 0x0001, len(ma)) + ma, src)
                continue
            m = rs.Msg(raw)
            out, _ = rs.build(1, 2, [(rs.A_XOR_MAPPED, rs.xor_addr(MAPPED, src[1], m.tid))],
                              tid=m.tid, fingerprint=True)
            self.sock.sendto(out, src)

    def close(self):
        self.stop = True
        self.t.join()
        self.sock.close()


class NatFwd:
    """UDP 127.0.0.1:port -> server, each client through its own socket on
    127.0.0.2 (the 'public' side of a cone NAT), answers back the same way."""

    def __init__(self, server):
        self.server = server
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.out = {}  # client address -> socket on 127.0.0.2
        self.back = 0
        self.stop = False
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        import select
        while not self.stop:
            socks = [self.sock] + list(self.out.values())
            r, _, _ = select.select(socks, [], [], 0.2)
            for s in r:
                raw, src = s.recvfrom(4096)
                if s is self.sock:
                    o = self.out.get(src)
                    if o is None and len(self.out) < 16:
                        o = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                        o.bind(("127.0.0.2", 0))
                        self.out[src] = o
                    if o is not None:
                        o.sendto(raw, self.server)
                else:
                    for cl, o in self.out.items():
                        if o is s:
                            self.back += 1
                            self.sock.sendto(raw, cl)

    def close(self):
        self.stop = True
        self.t.join()
        for o in self.out.values():
            o.close()
        self.sock.close()


def wait_log(st, name, text, secs, proc):
    end = time.time() + secs * TIMEOUT_MULT
    while text not in st.log(name):
        if proc.poll() is not None:
            fail("bot exited (%s): %s" % (proc.returncode, st.log(name)[-2000:]))
        if time.time() > end:
            fail("no '%s' in %s within %d s:\n%s" % (text, name, secs, st.log(name)[-2000:]))
        time.sleep(0.05)


async def collect(ws, bot_id, secs):
    """The bot's signal payloads, in arrival order, until end-of-candidates."""
    got = []
    end = time.time() + secs * TIMEOUT_MULT
    while time.time() < end:
        try:
            raw = await asyncio.wait_for(ws.recv(), max(0.05, end - time.time()))
        except asyncio.TimeoutError:
            break
        m = json.loads(raw)
        if m.get("type") != "signal" or (bot_id and m.get("from") != bot_id):
            continue
        got.append((m["from"], m["data"]))
        if "candidate" in m["data"] and m["data"]["candidate"] is None:
            break
    return got


def describe(d):
    if "description" in d:
        return d["description"]["type"]
    c = d.get("candidate")
    if c is None:
        return "end-of-candidates"
    parts = c["candidate"].split()
    return "candidate " + (parts[7] if len(parts) > 7 else "?")


async def peer(a, st, url, room, start_bot):
    async with websockets.connect(url, open_timeout=10 * TIMEOUT_MULT) as ws:
        bot_id = None
        if a.case == "offer":
            await ws.send(json.dumps({"type": "join", "room": room, "name": "py"}))
            j = json.loads(await ws.recv())
            if j.get("type") != "joined":
                fail("join: %r" % j)
            start_bot()
        else:
            await ws.send(json.dumps({"type": "join", "room": room, "name": "py"}))
            j = json.loads(await ws.recv())
            if j.get("type") != "joined" or len(j.get("peers", [])) != 1:
                fail("join: expected the bot in the room: %r" % j)
            bot_id = j["peers"][0]["id"]
            await ws.send(json.dumps({"type": "signal", "to": bot_id, "data": {
                "description": {"type": "offer", "sdp": OFFER}}}))
        return await collect(ws, bot_id, 15)


def main():
    ap = argparse.ArgumentParser()
    add_server_args(ap)
    ap.add_argument("--case", choices=["answer", "offer"], required=True)
    ap.add_argument("--relay-only", action="store_true")
    ap.add_argument("--stun", choices=["none", "fake", "relay", "relay-nat"], default="none")
    ap.add_argument("--no-turn", action="store_true",
                    help="signaling hands out only the stun: URL: the srflx candidate must come")
    ap.add_argument("--threads", default="1",
                    help="the bot's --threads: with 2 its call runs on a worker thread's context")
    a = ap.parse_args()
    checks = 0
    fake = FakeStun() if a.stun == "fake" else None
    nat = None
    try:
        with Stack(a) as st:
            turn = st.start_relay()
            extra = []
            if fake:
                extra = ["stun:127.0.0.1:%d" % fake.port]
            elif a.stun == "relay":
                extra = ["stun:127.0.0.1:%d" % st.turn_port]
            elif a.stun == "relay-nat":
                nat = NatFwd(("127.0.0.1", st.turn_port))
                extra = ["stun:127.0.0.1:%d" % nat.port]
            if a.no_turn:
                url = st.start_signal(extra[0])
            else:
                url = st.start_signal(turn, extra_urls=extra)
            room = "order%d" % os.getpid()
            argv = [a.bot, "--signal", url, "--room", room, "--duration", "20",
                    "--setup-timeout", "20", "--log-level", "info", "--threads", a.threads]
            if a.relay_only:
                argv.append("--relay-only")
            procs = []

            def start_bot():
                procs.append(st.spawn(argv, "bot.log"))

            if a.case == "answer":
                start_bot()
                wait_log(st, "bot.log", "joined as", 15, procs[0])
            got = asyncio.run(peer(a, st, url, room, start_bot))
            order = [describe(d) for _, d in got]
            print("# bot signalled, in order: " + ", ".join(order))
            log = st.log("bot.log")
            want = "answer" if a.case == "answer" else "offer"
            if not order:
                fail("the bot signalled nothing:\n" + log[-3000:])
            if order[0] != want:
                fail("first signal is '%s', not the %s: a peer without a remote description "
                     "drops it (InvalidStateError)" % (order[0], want))
            checks += 1
            cands = [o for o in order if o.startswith("candidate ")]
            if not cands or order[-1] != "end-of-candidates":
                fail("no candidates or no end-of-candidates after the %s" % want)
            checks += 1
            kinds = set(c.split()[1] for c in cands)
            if a.no_turn and not a.relay_only:
                pass
            elif a.relay_only and kinds != {"relay"}:
                fail("relay only, but candidates of kinds %s" % sorted(kinds))
            if not a.relay_only and "host" not in kinds:
                fail("no host candidate without --relay-only: %s" % sorted(kinds))
            checks += 1
            if fake:
                srflx = [d["candidate"]["candidate"] for _, d in got
                         if describe(d) == "candidate srflx"]
                print("# fake STUN server got %d datagrams, %d Binding requests (%d in RFC 3489 "
                      "form); srflx: %s" % (fake.datagrams, fake.requests, fake.classic, srflx))
                if a.relay_only:
                    if fake.requests or srflx:
                        fail("relay only, yet %d Binding requests and %d srflx candidates"
                             % (fake.requests, len(srflx)))
                    if "no STUN server used (relay only)" not in log:
                        fail("relay only: the log does not say the STUN server is unused")
                else:
                    if not fake.requests:
                        fail("the bot sent no Binding request to its stun: server")
                    if "STUN server 127.0.0.1:%d" % fake.port not in log:
                        fail("the log does not name the STUN server in use")
                    has = any(" %s " % MAPPED in s and "raddr 127.0.0.1" in s for s in srflx)
                    if not has:
                        fail("no srflx candidate with the mapped address %s%s" %
                             (MAPPED, "" if a.no_turn else " (stun: next to turn:)"))
                    if not a.no_turn and "relay" not in kinds:
                        fail("stun: next to turn:, but no relay candidate: %s" % sorted(kinds))
                checks += 2
            if a.stun == "relay" and not a.relay_only:
                if "STUN server 127.0.0.1:%d" % st.turn_port not in log:
                    fail("the log does not name the relay as STUN server")
                checks += 1
            if nat:
                srflx = [d["candidate"]["candidate"] for _, d in got
                         if describe(d) == "candidate srflx"]
                print("# %d answers came back through the forwarder; srflx: %s" % (nat.back, srflx))
                if not any(" 127.0.0.2 " in s and "raddr 127.0.0.1" in s for s in srflx):
                    fail("no srflx candidate 127.0.0.2 from tsunagu-relay's answer (stun: and turn: "
                         "both of tsunagu-relay)")
                if not a.relay_only and "relay" not in kinds:
                    fail("no relay candidate next to the srflx one: %s" % sorted(kinds))
                checks += 2
    finally:
        if fake:
            fake.close()
        if nat:
            nat.close()
    print("PASS (%d checks)" % checks)


if __name__ == "__main__":
    main()
