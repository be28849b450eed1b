#!/usr/bin/python3
"""The admin API of tsunagu-signal (/admin/, issue 12 item 6) and
tsunagu-ctl against it: the real binary on a free 127.0.0.1 port, real
WebSocket clients (python3-websockets).

  refuse      no token configured: 404 (API off); token set: missing, wrong,
              not-Bearer -> 401 with WWW-Authenticate, counted in metrics
  list        rooms (name, members, created) and a room's members (id, name,
              address, node, connected since, messages), counts exact
  kick        the kicked member gets error kicked, then close 4002; its peer
              gets peer-left; it cannot resume; unknown ids 404
  close       every member of the room kicked; the room is gone
  token_file  --admin-token-file: mode 0644 refused at start (exit 2), 0600
              works, SIGHUP re-reads it (the old token stops working)
  cluster     two nodes on a real redis-server: each node lists its own
              member (node = its id) and the other's as remote; a kick on the
              owning node removes it for the other node's member too; a kick
              of a remote member is refused (404)
  status_health  /status.json's relays with --relay-healthz against a real
              tsunagu-relay (RELAY_EXE): ok; a closed port: unreachable; the
              relay draining: unhealthy 503 draining; stopped (SIGSTOP):
              timeout; a --turn-url without a check: not checked
  ctl         tsunagu-ctl: rooms/members/kick/close as table and -o json, a
              refused token, and the relay commands' 404 explained

usage: signal_admin.py PATH/TO/tsunagu-signal TEST   (CTL_EXE=tsunagu-ctl for ctl)"""
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from signal_lib import MULT, Client, Server, free_port, run  # noqa: E402

import websockets  # noqa: E402

TESTS = {}
TOKEN = "t0k3n-for-the-admin-api"


def test(fn):
    TESTS[fn.__name__] = fn
    return fn


def req(srv, method, path, token=None, auth=None):
    """(status, headers, body) of one request; token -> Bearer header."""
    r = urllib.request.Request("http://127.0.0.1:%d%s" % (srv.port, path), method=method)
    if token is not None:
        r.add_header("Authorization", "Bearer " + token)
    if auth is not None:
        r.add_header("Authorization", auth)
    try:
        with urllib.request.urlopen(r, timeout=5 * MULT) as resp:
            return resp.status, dict(resp.headers), resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


def api(srv, method, path, want=200):
    st, _, body = req(srv, method, path, token=TOKEN)
    assert st == want, (method, path, st, body)
    return json.loads(body) if st == 200 else body


async def closed_with(cl, code, timeout=5):
    """The next thing on cl is the close, with this code."""
    try:
        m = await asyncio.wait_for(cl.ws.recv(), timeout * MULT)
        raise AssertionError("expected the close, got %r" % m)
    except websockets.exceptions.ConnectionClosed as e:
        assert e.rcvd is not None and e.rcvd.code == code, (e.rcvd, code)


@test
async def refuse(exe):
    with Server(exe) as srv:  # no token: the API is off
        for method, path in [("GET", "/admin/rooms"), ("DELETE", "/admin/rooms/r"),
                             ("GET", "/admin/rooms/r/members")]:
            st, _, body = req(srv, method, path, token="anything")
            assert st == 404, (method, path, st, body)
        assert srv.metrics()['tsunagu_signal_admin_requests_total{code="404"}'] == 3
        st, _, _ = req(srv, "GET", "/status.json")  # no token: the status data is open
        assert st == 200, st
    with Server(exe, "--admin-token", TOKEN) as srv:
        cases = [dict(), dict(token=""), dict(token="wrong"), dict(token=TOKEN + "x"),
                 dict(token=TOKEN[:-1]), dict(auth="Basic " + TOKEN), dict(auth=TOKEN),
                 dict(auth="Bearer"), dict(auth="Bearer" + TOKEN)]
        for kw in cases:
            for method, path in [("GET", "/admin/rooms"), ("DELETE", "/admin/rooms/r"),
                                 ("GET", "/status.json")]:
                st, hdrs, body = req(srv, method, path, **kw)
                assert st == 401, (kw, method, path, st, body)
                www = {k.lower(): v for k, v in hdrs.items()}.get("www-authenticate", "")
                assert www.startswith("Bearer"), (kw, hdrs)
        m = srv.metrics()
        assert m['tsunagu_signal_admin_requests_total{code="401"}'] == 3 * len(cases), m
        st, _, body = req(srv, "GET", "/admin/rooms", token=TOKEN)
        assert st == 200 and json.loads(body) == {"rooms": []}, (st, body)
        # the scheme is case-insensitive (RFC 7235 s.2.1), as at the relay
        st, _, body = req(srv, "GET", "/admin/rooms", auth="bearer " + TOKEN)
        assert st == 200, (st, body)
        for method in ("DELETE", "POST"):  # (a POST once hung: lws held the answer)
            st, _, _ = req(srv, method, "/admin/rooms", token=TOKEN)
            assert st == 405, (method, st)
        st, _, _ = req(srv, "GET", "/admin/nothing", token=TOKEN)
        assert st == 404, st
        m = srv.metrics()
        assert m['tsunagu_signal_admin_requests_total{code="200"}'] == 2, m
        assert m['tsunagu_signal_admin_requests_total{code="405"}'] == 2, m


@test
async def listing(exe):
    with Server(exe, "--admin-token", TOKEN) as srv:
        t0 = time.time()
        a, b, c = [await Client.connect(srv.url) for _ in range(3)]
        ja = await a.join("room one", name="alice")
        await b.join("room one", name="bob")
        await a.expect("peer-joined")
        await c.join("x/y", name="carol")
        for _ in range(3):
            await a.send({"type": "ping"})
            await a.expect("pong")
        rooms = api(srv, "GET", "/admin/rooms")["rooms"]
        byname = {r["name"]: r for r in rooms}
        assert set(byname) == {"room one", "x/y"}, rooms
        assert byname["room one"]["members"] == 2 and byname["x/y"]["members"] == 1, rooms
        for r in rooms:
            assert t0 - 2 <= r["created"] <= time.time() + 1, r
        mem = api(srv, "GET", "/admin/rooms/room%20one/members")["members"]
        assert [m["name"] for m in mem] == ["alice", "bob"], mem
        ma = mem[0]
        assert ma["id"] == ja["id"] and ma["state"] == "joined", ma
        assert ma["address"] == "127.0.0.1" and ma["node"] == "local", ma
        assert ma["messages"] == 4, ma  # join + 3 pings
        assert mem[1]["messages"] == 1, mem
        assert t0 - 2 <= ma["connected_since"] <= time.time() + 1, ma
        mem = api(srv, "GET", "/admin/rooms/x%2Fy/members")["members"]
        assert [m["name"] for m in mem] == ["carol"], mem
        api(srv, "GET", "/admin/rooms/nope/members", want=404)
        # a dropped member stays listed, detached, for its resume window
        await b.close()
        await asyncio.sleep(0.3)
        mem = api(srv, "GET", "/admin/rooms/room%20one/members")["members"]
        assert [m["state"] for m in mem] == ["joined", "detached"], mem
        assert mem[1]["address"] is None and mem[1]["detached_since"] > t0 - 2, mem
        for cl in (a, c):
            await cl.close()


@test
async def kick(exe):
    with Server(exe, "--admin-token", TOKEN) as srv:
        a = await Client.connect(srv.url)
        b = await Client.connect(srv.url)
        ja = await a.join("r", name="alice")
        jb = await b.join("r", name="bob")
        assert (await a.expect("peer-joined"))["peer"]["id"] == jb["id"]
        api(srv, "DELETE", "/admin/rooms/r/members/0000000000000000", want=404)
        api(srv, "DELETE", "/admin/rooms/other/members/" + jb["id"], want=404)
        out = api(srv, "DELETE", "/admin/rooms/r/members/" + jb["id"])
        assert out["kicked"] == jb["id"], out
        err = await b.error("kicked")
        assert "administrator" in err["message"], err
        await closed_with(b, 4002)
        assert (await a.expect("peer-left"))["id"] == jb["id"]
        mem = api(srv, "GET", "/admin/rooms/r/members")["members"]
        assert [m["id"] for m in mem] == [ja["id"]], mem
        # no way back in through resume
        c = await Client.connect(srv.url)
        await c.send({"type": "resume", "token": jb["resume"]})
        await c.error("unauthorized")
        m = srv.metrics()
        assert m['tsunagu_signal_errors_total{code="kicked"}'] == 1, m
        assert "removed by the admin API" in srv.logtext()
        # a detached member is removed at once (nobody to tell)
        await a.close()
        await asyncio.sleep(0.3)
        mem = api(srv, "GET", "/admin/rooms/r/members")["members"]
        assert mem and mem[0]["state"] == "detached", mem
        api(srv, "DELETE", "/admin/rooms/r/members/" + ja["id"])
        api(srv, "GET", "/admin/rooms/r/members", want=404)  # the room went with it
        await c.close()


@test
async def close(exe):
    with Server(exe, "--admin-token", TOKEN) as srv:
        cl = [await Client.connect(srv.url) for _ in range(3)]
        for i, c in enumerate(cl):
            await c.join("doomed", name="m%d" % i)
        other = await Client.connect(srv.url)
        await other.join("stays")
        api(srv, "DELETE", "/admin/rooms/nope", want=404)
        out = api(srv, "DELETE", "/admin/rooms/doomed")
        assert out["count"] == 3 and out["closed"] is True, out
        for c in cl:
            while True:  # peer-joined/peer-left may come first
                m = await c.recv()
                if m["type"] == "error":
                    assert m["code"] == "kicked", m
                    break
                assert m["type"] in ("peer-joined", "peer-left"), m
            try:
                while True:
                    m = await asyncio.wait_for(c.ws.recv(), 5 * MULT)
                    assert json.loads(m)["type"] == "peer-left", m
            except websockets.exceptions.ConnectionClosed as e:
                assert e.rcvd is not None and e.rcvd.code == 4002, e.rcvd
        await asyncio.sleep(0.3)
        names = [r["name"] for r in api(srv, "GET", "/admin/rooms")["rooms"]]
        assert names == ["stays"], names
        await other.send({"type": "ping"})
        await other.expect("pong")
        await other.close()


@test
async def token_file(exe):
    d = tempfile.mkdtemp(prefix="admin-token-")
    path = os.path.join(d, "token")
    with open(path, "w") as f:
        f.write("first-token\n")
    os.chmod(path, 0o644)
    p = subprocess.run([exe, "--listen", "127.0.0.1:1", "--admin-token-file", path],
                       capture_output=True, text=True, timeout=10 * MULT)
    assert p.returncode == 2 and "admin-token-file" in p.stderr and "600" in p.stderr, \
        (p.returncode, p.stderr)
    os.chmod(path, 0o600)
    p = subprocess.run([exe, "--listen", "127.0.0.1:1", "--admin-token-file", path,
                        "--admin-token", "x"], capture_output=True, text=True, timeout=10 * MULT)
    assert p.returncode == 2 and "not both" in p.stderr, (p.returncode, p.stderr)
    with Server(exe, "--admin-token-file", path) as srv:
        st, _, _ = req(srv, "GET", "/admin/rooms", token="first-token")
        assert st == 200, st
        assert "first-token" not in srv.logtext()
        with open(path, "w") as f:
            f.write("second-token\n")
        srv.signal(signal.SIGHUP)
        deadline = time.time() + 5 * MULT
        while time.time() < deadline:
            if req(srv, "GET", "/admin/rooms", token="second-token")[0] == 200:
                break
            await asyncio.sleep(0.1)
        assert req(srv, "GET", "/admin/rooms", token="second-token")[0] == 200
        assert req(srv, "GET", "/admin/rooms", token="first-token")[0] == 401
        os.chmod(path, 0o640)  # a reload that would expose it is refused, the old token stays
        srv.signal(signal.SIGHUP)
        await asyncio.sleep(0.5)
        assert "reload failed" in srv.logtext()
        assert req(srv, "GET", "/admin/rooms", token="second-token")[0] == 200
        assert "second-token" not in srv.logtext()
    os.unlink(path)
    os.rmdir(d)


@test
async def cluster(exe):
    from signal_cluster import Redis, node, until  # noqa: E402 (cluster helpers)
    with Redis() as r, node(exe, r, "--admin-token", TOKEN) as A, \
            node(exe, r, "--admin-token", TOKEN) as B:
        a = await Client.connect(A.url)
        ja = await a.join("shared", name="alice")
        b = await Client.connect(B.url)
        jb = await b.join("shared", name="bob")
        assert (await a.expect("peer-joined"))["peer"]["id"] == jb["id"]
        ma = api(A, "GET", "/admin/rooms/shared/members")["members"]
        mb = api(B, "GET", "/admin/rooms/shared/members")["members"]
        byid_a = {m["id"]: m for m in ma}
        byid_b = {m["id"]: m for m in mb}
        assert set(byid_a) == set(byid_b) == {ja["id"], jb["id"]}, (ma, mb)
        assert byid_a[ja["id"]]["state"] == "joined" and byid_a[jb["id"]]["state"] == "remote"
        assert byid_b[jb["id"]]["state"] == "joined" and byid_b[ja["id"]]["state"] == "remote"
        node_a, node_b = byid_a[ja["id"]]["node"], byid_b[jb["id"]]["node"]
        assert len(node_a) == 16 and node_a != node_b, (node_a, node_b)
        assert byid_a[jb["id"]]["node"] == "remote" and byid_a[jb["id"]]["address"] is None
        rooms = api(A, "GET", "/admin/rooms")["rooms"]
        assert rooms[0]["members"] == 2 and rooms[0]["remote"] == 1, rooms
        # a remote member cannot be kicked here: only on its own node
        api(A, "DELETE", "/admin/rooms/shared/members/" + jb["id"], want=404)
        api(B, "DELETE", "/admin/rooms/shared/members/" + jb["id"])
        await b.error("kicked")
        await closed_with(b, 4002)
        assert (await a.expect("peer-left"))["id"] == jb["id"]
        await until(lambda: [m["id"] for m in api(A, "GET", "/admin/rooms/shared/members")
                             ["members"]] == [ja["id"]], 5, "the kicked member gone on A")
        await a.close()


@test
async def status_health(exe):
    from relay_stun import Relay  # noqa: E402
    import turnclient  # noqa: E402
    relay_exe = os.environ.get("RELAY_EXE")
    if not relay_exe:
        raise SystemExit("FAIL: RELAY_EXE (tsunagu-relay) not given")
    relay = Relay(relay_exe, "--user", "alice:one", "--drain-seconds", "60")
    closed = free_port()  # nothing listens there
    cl = None
    try:
        turn_ok = "turn:127.0.0.1:%d?transport=udp" % relay.port
        turn_dead = "turn:127.0.0.2:3478"
        turn_none = "stun:127.0.0.3:3478"
        with Server(exe, "--admin-token", TOKEN, "--turn-secret", "s", "--turn-url", turn_ok,
                    "--turn-url", turn_dead, "--turn-url", turn_none,
                    "--relay-healthz", "http://127.0.0.1:%d/healthz" % relay.mport,
                    "--relay-healthz", "http://127.0.0.2:%d/healthz" % closed) as srv:

            def health():
                return {r["url"]: r["health"] for r in api(srv, "GET", "/status.json")["relays"]}

            async def wait_health(url, pred, seconds, what):
                deadline = time.time() + seconds * MULT
                while time.time() < deadline:
                    h = health()
                    if pred(h[url]):
                        return h
                    await asyncio.sleep(0.2)
                raise AssertionError("%s: %r" % (what, health()))

            h = await wait_health(turn_ok, lambda v: v == "ok", 5, "relay healthy")
            h = await wait_health(turn_dead, lambda v: v.startswith("unreachable"), 5,
                                  "closed port unreachable")
            assert "refused" in h[turn_dead].lower() and h[turn_none] == "not checked", h
            checks = api(srv, "GET", "/status.json")["health_checks"]
            assert len(checks) == 2 and checks[0]["checked"] > 0, checks
            # draining (an allocation keeps it alive): its /healthz says 503 draining
            cl = turnclient.Client(relay.addr, "alice", "one")
            r = cl.allocate()
            assert r is not None and r.cls == turnclient.SUCCESS, r
            relay.signal(signal.SIGTERM)
            h = await wait_health(turn_ok, lambda v: v != "ok", 8, "relay draining")
            assert h[turn_ok] == "unhealthy: 503 draining", h
            # stopped: the kernel accepts, nobody answers
            relay.signal(signal.SIGSTOP)
            h = await wait_health(turn_ok, lambda v: v == "timeout", 10, "relay stopped")
            relay.signal(signal.SIGCONT)
    finally:
        if cl:
            cl.close()
        relay.proc.kill()
        relay.proc.wait()


def ctl(srv_url, *args, token=TOKEN, url=None):
    exe = os.environ.get("CTL_EXE")
    if not exe:
        raise SystemExit("FAIL: CTL_EXE (tsunagu-ctl) not given")
    argv = [exe, "--url", url or srv_url] + (["--token", token] if token else []) + list(args)
    env = dict(os.environ)
    env.pop("TSUNAGU_ADMIN_TOKEN", None)
    p = subprocess.run(argv, capture_output=True, text=True, timeout=20 * MULT, env=env)
    print("$ tsunagu-ctl %s -> %d\n%s%s" % (" ".join(args), p.returncode, p.stdout, p.stderr))
    return p


@test
async def ctl_test(exe):
    with Server(exe, "--admin-token", TOKEN) as srv:
        base = "http://127.0.0.1:%d" % srv.port
        a = await Client.connect(srv.url)
        b = await Client.connect(srv.url)
        ja = await a.join("team/42", name="alice")
        jb = await b.join("team/42", name="bob")
        await a.expect("peer-joined")
        p = ctl(base, "rooms")
        assert p.returncode == 0, p
        lines = p.stdout.splitlines()
        assert lines[0].split()[:3] == ["NAME", "MEMBERS", "REMOTE"], lines
        assert lines[1].split()[:2] == ["team/42", "2"], lines
        p = ctl(base, "-o", "json", "rooms")
        assert p.returncode == 0 and json.loads(p.stdout)["rooms"][0]["name"] == "team/42", p
        p = ctl(base, "members", "team/42")
        assert p.returncode == 0, p
        rows = [ln.split() for ln in p.stdout.splitlines()]
        assert rows[0][:5] == ["ID", "NAME", "STATE", "NODE", "ADDRESS"], rows
        assert [r[0] for r in rows[1:]] == [ja["id"], jb["id"]], rows
        assert rows[1][1:5] == ["alice", "joined", "local", "127.0.0.1"], rows
        p = ctl(base, "-o", "json", "members", "team/42")
        assert [m["name"] for m in json.loads(p.stdout)["members"]] == ["alice", "bob"], p
        p = ctl(base, "kick", "team/42", jb["id"])
        assert p.returncode == 0 and "kicked " + jb["id"] in p.stdout, p
        await b.error("kicked")
        await closed_with(b, 4002)
        await a.expect("peer-left")
        p = ctl(base, "kick", "team/42", jb["id"])
        assert p.returncode == 1 and "404" in p.stderr, p
        p = ctl(base, "rooms", token="wrong")
        assert p.returncode == 1 and "refused the token (401)" in p.stderr, p
        p = ctl(base, "rooms", token=None)
        assert p.returncode == 1 and "none given" in p.stderr, p
        # the token from a file; one others can read is refused
        d = tempfile.mkdtemp(prefix="ctl-token-")
        tf = os.path.join(d, "t")
        with open(tf, "w") as f:
            f.write(TOKEN + "\n")
        os.chmod(tf, 0o644)
        p = ctl(base, "--token-file", tf, "rooms", token=None)
        assert p.returncode == 2 and "chmod 600" in p.stderr, p
        os.chmod(tf, 0o600)
        p = ctl(base, "--token-file", tf, "rooms", token=None)
        assert p.returncode == 0 and "team/42" in p.stdout, p
        os.unlink(tf)
        os.rmdir(d)
        p = ctl(base, "close", "team/42")
        assert p.returncode == 0 and "1 members removed" in p.stdout, p
        await a.error("kicked")
        await closed_with(a, 4002)
        p = ctl(base, "rooms")
        assert p.returncode == 0 and p.stdout.strip() == "(none)", p
        # relay commands against a server without that API: a 404 said plainly
        p = ctl(base, "allocations")
        assert p.returncode == 1 and "no admin API" in p.stderr, p
        p = ctl(base, "drain")
        assert p.returncode == 1 and "no admin API" in p.stderr, p
        p = ctl(base, "bogus")
        assert p.returncode == 2 and "usage" in p.stderr, p
    # the API off: said so
    with Server(exe) as srv:
        p = ctl("http://127.0.0.1:%d" % srv.port, "rooms")
        assert p.returncode == 1 and "admin API is off" in p.stderr, p


TESTS["ctl"] = TESTS.pop("ctl_test")
TESTS["list"] = TESTS.pop("listing")

if __name__ == "__main__":
    run(TESTS, sys.argv)
