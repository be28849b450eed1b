#!/usr/bin/python3
"""An office behind one NAT address (issue 14 item 9), against the real
tsunagu-signal with DEFAULT limits on 127.0.0.1 free ports. Before the fix
the 65th WebSocket of one address got HTTP 429 (--max-connections-per-ip 64),
so an office of more than 64 people behind one public address was locked
out. Now the tight per-address caps are on what has not joined a room
(--max-unjoined-per-ip) and on join attempts per second
(--max-joins-per-ip-per-sec); joined members go up to a high total.

- office_joins: 1,000 members join from 127.0.0.1 (100 rooms of 10, at
  ~90 joins a second, all connections open at the end): every one joined,
  nothing refused. Next to them, the same address still gets exactly 64
  connections that do not join (the 65th: 429 unjoined-per-ip), an abusive
  address (127.0.0.3) opening sockets in a loop gets 64 then 429, and a
  third address (127.0.0.4) joins at once.
- join_flood: one address (127.0.0.5) sends join attempts as fast as it can
  on 40 connections (join, leave, join, ...) for 3 s: at most the rate
  (100/s, burst 100) succeed, the rest are rate-limited, and another address
  (127.0.0.6) joins meanwhile without a refusal.

usage: signal_office.py PATH/TO/tsunagu-signal TESTNAME"""
import asyncio
import os
import resource
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from signal_lib import MULT, Client, Server, run  # noqa: E402

import websockets  # noqa: E402

TESTS = {}
OFFICE = 1000


def test(fn):
    TESTS[fn.__name__] = fn
    return fn


def raise_fd_limit(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        assert hard == resource.RLIM_INFINITY or hard >= need, \
            "FAIL: need %d file descriptors, the hard limit is %d" % (need, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))


async def status_of(url, ip):
    """101 (then closed) or the refusal's HTTP status."""
    try:
        ws = await websockets.connect(url, local_addr=(ip, 0), open_timeout=5 * MULT)
    except websockets.exceptions.InvalidStatusCode as e:
        return e.status_code, None
    return 101, ws


async def open_unjoined(url, ip, limit):
    """Open WebSockets from ip without joining until one is refused (or
    limit): (the open ones, the refusal status)."""
    held = []
    for _ in range(limit):
        st, ws = await status_of(url, ip)
        if st != 101:
            return held, st
        held.append(ws)
    return held, None


@test
async def office_joins(exe):
    raise_fd_limit(4 * OFFICE + 512)
    with Server(exe) as srv:   # default limits
        office, answers = [], {}
        t0 = time.time()
        sem = asyncio.Semaphore(30)

        async def one(i):
            # paced: member i starts at i/90 s (a busy morning, not one instant)
            await asyncio.sleep(i / 90.0)
            async with sem:
                c = Client(await websockets.connect(srv.url, open_timeout=10 * MULT))
                await c.send(dict(type="join", room="office-%d" % (i // 10), name="m%d" % i))
                while True:   # peer-joined of earlier members may not come first
                    m = await c.recv(10)
                    if m.get("type") in ("joined", "error"):
                        break
                key = m["type"] if m["type"] == "joined" else m.get("code")
                answers[key] = answers.get(key, 0) + 1
                office.append(c)

        await asyncio.gather(*(one(i) for i in range(OFFICE)))
        took = time.time() - t0
        print("office: %d joins from 127.0.0.1 in %.1fs: %s" % (OFFICE, took, answers))
        assert answers == {"joined": OFFICE}, answers
        m = srv.metrics()
        assert m["tsunagu_signal_connections"] == OFFICE, m["tsunagu_signal_connections"]
        for r in ("per-ip", "unjoined-per-ip"):
            assert m['tsunagu_signal_rejected_total{reason="%s"}' % r] == 0, m
        assert m['tsunagu_signal_address_limited_total{reason="joins"}'] == 0, m

        # next to the 1,000 joined: the same address's unjoined sockets are capped
        idle, st = await open_unjoined(srv.url, "127.0.0.1", 200)
        print("office address: %d unjoined accepted next to %d joined, then %s"
              % (len(idle), OFFICE, st))
        assert len(idle) == 64 and st == 429, (len(idle), st)
        # an abusive address opening sockets in a loop: 64, then 429 every time
        abuse, st = await open_unjoined(srv.url, "127.0.0.3", 200)
        assert len(abuse) == 64 and st == 429, (len(abuse), st)
        refused = 0
        for _ in range(50):
            s, _ws = await status_of(srv.url, "127.0.0.3")
            refused += s == 429
        assert refused == 50, refused
        # another address is not affected: it connects and joins at once
        c = Client(await websockets.connect(srv.url, local_addr=("127.0.0.4", 0),
                                            open_timeout=5 * MULT))
        await c.join("elsewhere")
        m = srv.metrics()
        assert m['tsunagu_signal_rejected_total{reason="unjoined-per-ip"}'] == 1 + 1 + 50, m
        assert "max-unjoined-per-ip (64)" in srv.logtext()
        # a socket of the office that joins frees an unjoined place
        await Client(idle[0]).join("office-late")
        s, ws = await status_of(srv.url, "127.0.0.1")
        assert s == 101, s
        await ws.close()
        for ws in idle + abuse:
            await ws.close()
        await c.close()
        await asyncio.gather(*(x.close() for x in office))


@test
async def join_flood(exe):
    with Server(exe, "--rate-limit", "100000") as srv:   # per-connection rate out of the way
        conns = [Client(await websockets.connect(srv.url, local_addr=("127.0.0.5", 0),
                                                 open_timeout=5 * MULT)) for _ in range(40)]
        counts = {"joined": 0, "rate-limited": 0}
        stop = time.time() + 3
        victim = {}

        async def flood(c, k):
            n = 0
            while time.time() < stop:
                await c.send(dict(type="join", room="flood-%d" % (k % 5), name="f"))
                while True:
                    m = await c.recv(5)
                    if m.get("type") in ("joined", "error"):
                        break
                if m["type"] == "joined":
                    counts["joined"] += 1
                    await c.send({"type": "leave"})
                else:
                    assert m.get("code") == "rate-limited", m
                    counts["rate-limited"] += 1
                n += 1

        async def other():
            await asyncio.sleep(1.5)   # in the middle of the flood
            c = Client(await websockets.connect(srv.url, local_addr=("127.0.0.6", 0),
                                                open_timeout=5 * MULT))
            await c.send(dict(type="join", room="flood-0", name="victim"))
            while True:
                m = await c.recv(5)
                if m.get("type") in ("joined", "error"):
                    break
            victim["m"] = m
            await c.close()

        t0 = time.time()
        await asyncio.gather(other(), *(flood(c, k) for k, c in enumerate(conns)))
        took = time.time() - t0
        print("flood from 127.0.0.5 for %.1fs: %s" % (took, counts))
        assert victim["m"].get("type") == "joined", victim
        # burst 100 plus 100 a second
        assert counts["joined"] <= 100 + 100 * took + 5, counts
        assert counts["joined"] >= 100, counts
        assert counts["rate-limited"] > counts["joined"], counts
        m = srv.metrics()
        # (a join that would re-create a room emptied by the leave may also
        # meet the room-creation rate)
        joins = m['tsunagu_signal_address_limited_total{reason="joins"}']
        assert joins > 0.9 * counts["rate-limited"], (joins, counts)
        assert joins + m['tsunagu_signal_address_limited_total{reason="room-creates"}'] == \
            counts["rate-limited"], m
        for c in conns:
            await c.close()


if __name__ == "__main__":
    run(TESTS, sys.argv)
