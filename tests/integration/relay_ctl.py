"""relay_ctl.py RELAY_EXE CTL_EXE [api|noapi] - tsunagu-ctl against the relay's admin API
(issue 12 item 6, relay half: /admin/allocations, DELETE /admin/allocations/ID,
POST /admin/drain on the metrics listener, behind --admin-token).

Two TURN allocations (UDP, long-term users) on a real tsunagu-relay; then:
  - a wrong token: exit 1, "refused the token (401)";
  - `allocations`: a table with both, their users and transport, and
    -o json the relay's own answer (ids of the form W.N);
  - `release ID`: that allocation is gone from the next listing, the other
    stays; releasing it again: exit 1 with the 404;
  - `drain`: the relay drains (/healthz 503 "draining").
Registered by meson only when the tree has the relay's admin API
(relay/io/rly_admin_api.c). `noapi`: a relay started without --admin-token
(or a version without the API): allocations, release and drain each exit 1
saying "this relay has no admin API", whatever the relay's 404 or 405."""
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from relay_stun import TIMEOUT_MULT, Checks, Relay  # noqa: E402
import turnclient  # noqa: E402

TOKEN = "relay-admin-" + os.urandom(6).hex()


def ctl(exe, relay, *args, token=TOKEN):
    argv = [exe, "--url", f"http://127.0.0.1:{relay.mport}", "--token", token] + list(args)
    p = subprocess.run(argv, capture_output=True, text=True, timeout=20 * TIMEOUT_MULT)
    print(f"$ tsunagu-ctl {' '.join(args)} -> {p.returncode}\n{p.stdout}{p.stderr}", end="")
    return p


def noapi(relay_exe, ctl_exe):
    c = Checks()
    relay = Relay(relay_exe, "--user", "alice:one")
    try:
        for args in (["allocations"], ["release", "1.1"], ["drain"]):
            p = ctl(ctl_exe, relay, *args)
            c.ok(p.returncode == 1 and "this relay has no admin API" in p.stderr,
                 f"{args[0]} against a relay without the API: said so, exit 1")
        c.ok(relay.http("/healthz")[0] == 200, "no drain happened")
    finally:
        relay.proc.kill()
        relay.proc.wait()
    sys.exit(c.done())


def main():
    relay_exe, ctl_exe = sys.argv[1:3]
    if len(sys.argv) > 3 and sys.argv[3] == "noapi":
        noapi(relay_exe, ctl_exe)
    c = Checks()
    relay = Relay(relay_exe, "--user", "alice:one", "--user", "bob:two", "--admin-token", TOKEN,
                  "--drain-seconds", "30")
    clients = []
    try:
        for user, pw in (("alice", "one"), ("bob", "two")):
            cl = turnclient.Client(relay.addr, user, pw)
            r = cl.allocate()
            c.ok(r is not None and r.cls == turnclient.SUCCESS, f"{user} allocates")
            clients.append(cl)
        p = ctl(ctl_exe, relay, "allocations", token="wrong")
        c.ok(p.returncode == 1 and "refused the token (401)" in p.stderr, "wrong token: 401")
        p = ctl(ctl_exe, relay, "allocations")
        rows = [ln.split() for ln in p.stdout.splitlines()]
        c.ok(p.returncode == 0 and rows and rows[0][:4] == ["ID", "USER", "CLIENT", "TRANSPORT"],
             "allocations: a table with ID USER CLIENT TRANSPORT first", str(rows[:1]))
        users = sorted(r[1] for r in rows[1:])
        c.ok(users == ["alice", "bob"] and all(r[3] == "udp" for r in rows[1:]),
             "allocations: both, udp", str(rows))
        p = ctl(ctl_exe, relay, "-o", "json", "allocations")
        allocs = json.loads(p.stdout)["allocations"] if p.returncode == 0 else []
        ids = {a["user"]: a["id"] for a in allocs}
        c.ok(sorted(ids) == ["alice", "bob"] and all("." in i for i in ids.values()),
             "-o json: the relay's answer, ids W.N", str(ids))
        if "alice" in ids:
            p = ctl(ctl_exe, relay, "release", ids["alice"])
            c.ok(p.returncode == 0 and "released allocation " + ids["alice"] in p.stdout,
                 "release alice's allocation")
            deadline = time.time() + 5 * TIMEOUT_MULT
            left = None
            while time.time() < deadline:
                p = ctl(ctl_exe, relay, "-o", "json", "allocations")
                left = sorted(a["user"] for a in json.loads(p.stdout)["allocations"])
                if left == ["bob"]:
                    break
                time.sleep(0.2)
            c.ok(left == ["bob"], "after release: only bob's left", str(left))
            p = ctl(ctl_exe, relay, "release", ids["alice"])
            c.ok(p.returncode == 1 and "404" in p.stderr, "release again: 404, exit 1")
        p = ctl(ctl_exe, relay, "drain")
        c.ok(p.returncode == 0 and "draining" in p.stdout, "drain accepted")
        deadline = time.time() + 5 * TIMEOUT_MULT
        st = None
        while time.time() < deadline:
            st = relay.http("/healthz")
            if st[0] == 503:
                break
            time.sleep(0.1)
        c.ok(st is not None and st[0] == 503 and "draining" in st[1], "the relay drains", str(st))
    finally:
        for cl in clients:
            cl.close()
        relay.proc.kill()
        relay.proc.wait()
    sys.exit(c.done())


if __name__ == "__main__":
    main()
