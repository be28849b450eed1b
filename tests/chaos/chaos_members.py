"""chaos_members.py - members (python3-websockets clients) that exchange
numbered signals across two tsunagu-signal nodes while the chaos suite
breaks things, and the ledger that says what became of every number.

Each pair is one room: member "<p>a" on node A, "<p>b" on node B, each
sending the other {"s": name, "n": N, "t": wall time} every interval. After
each signal the member sends a `ping`: a node handles a connection's
messages in order, so the `pong` says the node took (accepted) every signal
sent before it on that connection, and an `error` arriving before that pong
refused the oldest signal not yet answered. A signal is then, for its sender:
- confirmed: a pong came after it and no error: it must arrive, once, in order;
- refused: an error came for it: the sender saw it (it may not arrive);
- in doubt: the connection it went out on dropped before its pong (the
  sender saw the drop; it may or may not arrive, never twice or out of order).

A dropped connection is resumed (`resume` with the token from `joined`) on
the other node first, then the same one; a drain notice ("drain":"resume")
opens the new connection at once and keeps reading the old one until it
closes (docs/protocol.md). Everything runs on one asyncio loop on its own
thread; the suite reads the ledger when the members have stopped."""
import asyncio
import collections
import json
import threading
import time

import websockets


class Conn:
    """One WebSocket of a member, with the signals awaiting its pong."""

    def __init__(self, ws, port):
        self.ws = ws
        self.port = port
        self.outstanding = collections.deque()  # [n, refused_code or None]
        self.ready = False                      # joined/resumed on this connection
        self.old = False                        # a resume elsewhere is under way: seq not counted
        self.max_seq = 0                        # the highest seq read on it while old


class Member:
    def __init__(self, ledger, name, peer_name, room, ports, interval):
        self.L = ledger
        self.name, self.peer_name, self.room = name, peer_name, room
        self.ports = ports              # [home, other]
        self.interval = interval
        self.id = None
        self.token = None
        self.peer_id = None
        self.cur = None                 # the Conn we send on
        self.last_port = ports[0]       # the node of the last connection that got in
        self.where = []                 # (wall time, node port) at each join/resume
        self.conns = set()
        self.next_n = 1
        self.last = 0                   # the highest seq handled (docs/protocol.md)
        self.copies = 0                 # numbered messages dropped as copies
        self.moving = False             # a resume on a new connection is under way
        self.events = []                # (wall time, what) for the timeline

    def note(self, what):
        self.events.append((time.time(), what))

    # --- connections ---
    async def open(self, port, first):
        ws = await websockets.connect("ws://127.0.0.1:%d/ws" % port, open_timeout=3,
                                      close_timeout=1, max_size=2 ** 22)
        c = Conn(ws, port)
        self.conns.add(c)
        if first or not self.token:
            await ws.send(json.dumps({"type": "join", "room": self.room, "name": self.name,
                                      "seq": True}))
        else:
            # while the old connection is open (a drain, a homecoming) the old
            # node may still write numbered messages on it; the new node numbers
            # on after this `last`, so those must not move it (see handle)
            if self.cur is not None and self.cur is not c:
                self.cur.old = True
            await ws.send(json.dumps({"type": "resume", "token": self.token, "last": self.last}))
        asyncio.ensure_future(self.reader(c))
        return c

    async def move(self, prefer_other):
        """Resume on a new connection, the other node first (bounded: 40 s)."""
        if self.moving:
            return
        self.moving = True
        t0 = time.time()
        try:
            k = 0
            while time.time() - t0 < 40 and not self.L.stopping:
                last = self.last_port
                other = self.ports[1] if last == self.ports[0] else self.ports[0]
                order = [other, last] if prefer_other else [last, other]
                port = order[k % 2]
                k += 1
                try:
                    c = await self.open(port, first=False)
                except (OSError, asyncio.TimeoutError, websockets.exceptions.WebSocketException):
                    await asyncio.sleep(min(0.1 * k, 0.5))
                    continue
                # wait for resumed (or a refusal) on it: a claim after a node's
                # crash answers about 2 s after the resume (docs/cluster.md)
                for _ in range(120):
                    if c.ready or c not in self.conns:
                        break
                    await asyncio.sleep(0.05)
                if c.ready:
                    self.L.resumes += 1
                    self.note("%s resumed on :%d after %.2f s" % (self.name, port, time.time() - t0))
                    if port != self.ports[0]:
                        asyncio.ensure_future(self.go_home())
                    return
                self.unold()
                await c.ws.close()
                await asyncio.sleep(min(0.1 * k, 0.5))
            self.L.problems.append((time.time(), None, "%s could not resume within 40 s" % self.name))
        finally:
            self.moving = False

    async def go_home(self):
        """Back to the home node once it is up again (a resume on a new
        connection while the old one is open, as after a drain notice), so
        that the pair keeps talking across the two nodes."""
        for _ in range(20):
            await asyncio.sleep(3.0)
            if self.L.stopping or self.moving or self.cur is None or self.cur.port == self.ports[0]:
                return
            self.moving = True
            try:
                c = await self.open(self.ports[0], first=False)
                for _ in range(120):
                    if c.ready or c not in self.conns:
                        break
                    await asyncio.sleep(0.05)
                if c.ready:
                    self.L.homecomings += 1
                    self.note("%s went home to :%d" % (self.name, self.ports[0]))
                    return
                self.unold()
                await c.ws.close()
            except (OSError, asyncio.TimeoutError, websockets.exceptions.WebSocketException):
                pass
            finally:
                self.moving = False

    def unold(self):
        """A resume beside an open connection failed: that one counts again."""
        o = self.cur
        if o is not None and o.old:
            o.old = False
            self.last = max(self.last, o.max_seq)

    async def reader(self, c):
        try:
            async for raw in c.ws:
                self.handle(c, json.loads(raw))
        except (websockets.exceptions.WebSocketException, OSError, ValueError):
            pass
        self.conns.discard(c)
        moved = c.ws.close_code == 4001     # our place went to a newer connection
        # what went out on it and was never answered: the sender saw the drop
        for n, code in c.outstanding:
            self.L.sent[self.name][n] = ("refused:" + code) if code else "doubt"
        c.outstanding.clear()
        if c is self.cur and not moved:
            self.cur = None
            if not self.L.stopping:
                self.note("%s lost its connection to :%d" % (self.name, c.port))
                asyncio.ensure_future(self.move(prefer_other=True))

    def handle(self, c, m):
        t = m.get("type")
        q = m.get("seq")
        if isinstance(q, int) and not isinstance(q, bool):
            if c.old:
                c.max_seq = max(c.max_seq, q)
            elif q <= self.last:
                self.copies += 1        # a copy (replayed after a resume): dropped
                return
            else:
                self.last = q           # handled below, in this same step
        if t in ("joined", "resumed"):
            if t == "joined":
                self.id, self.token = m["id"], m["resume"]
                self.last = 0           # a new member: numbers start at 1
                self.L.joins += 1
            for p in m.get("peers", []):
                if p.get("name") == self.peer_name:
                    self.peer_id = p["id"]
            old, self.cur = self.cur, c
            self.last_port = c.port
            self.where.append((time.time(), c.port))
            c.ready = True
            if old is not None and old is not c:
                old.ready = False   # still read until it closes (4001)
        elif t == "peer-joined":
            p = m.get("peer") or {}
            if p.get("name") == self.peer_name:
                if self.peer_id and self.peer_id != p["id"]:
                    self.L.problems.append((time.time(), self.peer_name,
                                            "%s: peer %s joined again as a new member" % (
                                                self.name, self.peer_name)))
                self.peer_id = p["id"]
        elif t == "peer-left":
            if m.get("id") == self.peer_id:
                self.L.peer_left.append((time.time(), self.name, self.peer_name))
                self.note("%s saw %s leave" % (self.name, self.peer_name))
                self.peer_id = None
        elif t == "signal":
            d = m.get("data") or {}
            if isinstance(d, dict) and "n" in d and "s" in d:
                self.L.got[d["s"]].append((d["n"], time.time() - d["t"], time.time()))
        elif t == "pong":
            if c.outstanding:
                n, code = c.outstanding.popleft()
                self.L.sent[self.name][n] = ("refused:" + code) if code else "confirmed"
        elif t == "error":
            code = m.get("code", "?")
            if m.get("drain"):
                self.L.drains += 1
                self.note("%s got a drain notice on :%d" % (self.name, c.port))
                if c is self.cur:
                    asyncio.ensure_future(self.move(prefer_other=True))
                return
            if not c.ready:     # a refused resume or join on this connection
                self.L.refusals[code] += 1
                if code == "unauthorized" and self.token:
                    # docs/protocol.md: join again as a new member (the peer sees
                    # peer-left, then peer-joined with a new id)
                    self.L.problems.append((time.time(), self.name,
                                            "%s: resume refused (%s): joins again" % (
                                                self.name, m.get("message"))))
                    self.note("%s: resume refused, joins again" % self.name)
                    self.token = None
                asyncio.ensure_future(c.ws.close())
                return
            for item in c.outstanding:
                if item[1] is None:
                    item[1] = code
                    break
            self.L.errors[code] += 1

    # --- sending ---
    async def run(self):
        t0 = time.time()
        while self.cur is None:
            try:
                await self.open(self.ports[0], first=True)
            except (OSError, asyncio.TimeoutError, websockets.exceptions.WebSocketException):
                pass
            for _ in range(40):
                if self.cur is not None:
                    break
                await asyncio.sleep(0.05)
            if time.time() - t0 > 20:
                raise AssertionError("%s could not join" % self.name)
        while not self.L.stopping:
            await asyncio.sleep(self.interval)
            c = self.cur
            if self.L.paused or c is None or not c.ready or not self.peer_id or self.moving:
                continue
            n = self.next_n
            try:
                await c.ws.send(json.dumps({"type": "signal", "to": self.peer_id,
                                            "data": {"s": self.name, "n": n, "t": time.time()}}))
            except (websockets.exceptions.WebSocketException, OSError):
                continue        # nothing went out: the number is not used
            self.next_n += 1
            self.L.sent[self.name][n] = "sent"
            self.L.sent_t[self.name][n] = time.time()
            c.outstanding.append([n, None])
            try:
                await c.ws.send('{"type":"ping"}')
            except (websockets.exceptions.WebSocketException, OSError):
                pass            # the reader turns what is outstanding into "doubt"


class Ledger:
    def __init__(self):
        self.sent = collections.defaultdict(dict)   # sender -> n -> status
        self.sent_t = collections.defaultdict(dict)  # sender -> n -> wall time sent
        self.got = collections.defaultdict(list)    # sender -> [(n, latency s, wall)]
        self.errors = collections.Counter()
        self.refusals = collections.Counter()
        self.problems = []      # (wall time, member it is about or None, text)
        self.peer_left = []
        self.joins = self.resumes = self.drains = self.homecomings = 0
        self.stopping = False
        self.paused = False


class Members:
    """pairs rooms, each with a member on node A and one on node B; runs on
    its own thread. start() returns once every member joined."""

    def __init__(self, ports, pairs, interval, tag):
        self.L = Ledger()
        self.members = []
        for i in range(pairs):
            room = "%s-sig%d" % (tag, i)
            a, b = "m%da" % i, "m%db" % i
            self.members.append(Member(self.L, a, b, room, [ports[0], ports[1]], interval))
            self.members.append(Member(self.L, b, a, room, [ports[1], ports[0]], interval))
        self.loop = asyncio.new_event_loop()
        self.thread = None
        self.error = None

    def start(self):
        ready = threading.Event()

        def main():
            asyncio.set_event_loop(self.loop)

            async def go():
                tasks = []
                for m in self.members:
                    tasks.append(asyncio.ensure_future(m.run()))
                    await asyncio.sleep(0.05)
                while not all(m.cur and m.peer_id for m in self.members):
                    if any(t.done() and t.exception() for t in tasks):
                        break
                    await asyncio.sleep(0.05)
                ready.set()
                for t in tasks:
                    try:
                        await t
                    except AssertionError as e:
                        self.error = str(e)
                # the end: close every connection
                for m in self.members:
                    for c in list(m.conns):
                        await c.ws.close()
            try:
                self.loop.run_until_complete(go())
            except Exception as e:  # reported by the suite, never swallowed
                self.error = "members: %r" % e
            ready.set()
        self.thread = threading.Thread(target=main, daemon=True)
        self.thread.start()
        if not ready.wait(30) or self.error:
            raise AssertionError("members did not all join: %s" % self.error)

    def outstanding(self):
        return sum(len(c.outstanding) for m in self.members for c in list(m.conns))

    def quiesce(self, secs):
        """Stop sending; wait until every pong came (or the connection went)
        and then `secs` more for signals in flight."""
        self.L.paused = True
        end = time.time() + 15
        while self.outstanding() and time.time() < end:
            time.sleep(0.1)
        time.sleep(secs)

    def stop(self):
        self.L.stopping = True
        if self.thread:
            self.thread.join(20)

    def on_node(self, port, t):
        """Names of the members whose connection was on node `port` at time t."""
        res = set()
        for m in self.members:
            at = [p for w, p in m.where if w <= t]
            if at and at[-1] == port:
                res.add(m.name)
        return res

    def peer_of(self, name):
        return name[:-1] + ("b" if name.endswith("a") else "a")

    def events(self):
        return sorted(e for m in self.members for e in m.events)

    def verdict(self):
        """Per sender: counts and what went wrong. Returns (rows, lost list, faults list)."""
        rows, bad = [], []
        for m in self.members:
            s = m.name
            sent = self.L.sent[s]
            got = self.L.got[s]
            ns = [g[0] for g in got]
            dup = len(ns) - len(set(ns))
            disorder = sum(1 for i in range(1, len(ns)) if ns[i] <= ns[i - 1])
            have = set(ns)
            conf = [n for n, st in sent.items() if st == "confirmed"]
            lost = sorted(n for n in conf if n not in have)
            refused = [n for n, st in sent.items() if st.startswith("refused")]
            doubt = [n for n, st in sent.items() if st in ("doubt", "sent")]
            ref_deliv = [n for n in refused if n in have]
            unknown = sorted(n for n in have if n not in sent)
            lat = sorted(g[1] for g in got)
            rows.append(dict(sender=s, sent=len(sent), confirmed=len(conf), refused=len(refused),
                             doubt=len(doubt), doubt_delivered=sum(1 for n in doubt if n in have),
                             delivered=len(have), dup=dup, disorder=disorder, lost=lost,
                             refused_delivered=ref_deliv, unknown=unknown,
                             lat_p50=lat[len(lat) // 2] if lat else 0,
                             lat_max=lat[-1] if lat else 0))
            if dup or disorder or lost or ref_deliv or unknown:
                bad.append(s)
        return rows, bad
