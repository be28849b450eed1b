#!/usr/bin/python3
"""What breaks a call shows in the demo page's status line, with its reason
(issue 10 item 3, the page's part).

Headless Chromium opens tsunagu-signal's demo page twice in one room,
relay only, with a configuration that cannot work, and each page's status
line (#status, and tsunaguState.problem) must say why, not just
"connecting…" with the cause only in the small log:

- `ice`: the only ICE server is a turn: URL on a UDP port where nothing
  listens. Both pages join; the call cannot gather a relay candidate and
  the line reads "in ROOM — 0/1 call(s) connected (relay only) — call with
  PEER failed: no ICE candidates gathered; ICE server errors: turn:... 701
  ..." (701: Chromium got no answer from the TURN server);
- `auth` (with --relay-exe): tsunagu-relay answers, but its --auth-secret
  is not signaling's --turn-secret: "... ICE server errors: turn:... 401
  ..." (the relay's 401 as the browser reported it);
- `construct`: signaling hands out a turn: URL the browser refuses to parse
  (tsunagu-signal only checks the scheme), so building the
  RTCPeerConnection throws SyntaxError; the line names the error, the URL
  and tsunagu-signal's --turn-url. The page called (alice) never gets an
  offer: its line stays "in ROOM — 0/0 call(s) connected (relay only)".
Also asserted: the status is shown as a failure (class "bad") and the page
stays in the room (joined, Leave enabled), so fixing the server and joining
again is possible.

usage: signal_browser_failure.py --signal EXE [--relay-exe EXE] [--cases ice,auth,construct]"""
import argparse
import json
import os
import socket
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from signal_browser_call import (MULT, Chromium, cleanup, die, free_port,  # noqa: E402
                                 start, wait_port)


def closed_port():
    """A TCP port on 127.0.0.1 nothing listens on (connections are refused)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def page_state(browser, pg):
    return json.loads(browser.eval(pg, "JSON.stringify({status: tsunaguState.status, "
                                       "problem: tsunaguState.problem, joined: tsunaguState.joined,"
                                       " cls: document.getElementById('status').className,"
                                       " shown: document.getElementById('status').textContent,"
                                       " leave: !document.getElementById('leave').disabled,"
                                       " log: tsunaguState.log.slice(-6)})"))


def run_case(case, args, tmp, log):
    secret = os.urandom(8).hex()
    tport = closed_port()
    if case == "ice":
        turn_url = "turn:127.0.0.1:%d?transport=tcp" % tport
    elif case == "auth":
        if not args.relay_exe or not os.access(args.relay_exe, os.X_OK):
            die("auth: --relay-exe must name the tsunagu-relay binary")
        tport = free_port(udp_too=True)
        relay = start([args.relay_exe, "--listen", "127.0.0.1:%d" % tport, "--relay-ip",
                       "127.0.0.1", "--auth-secret", "not-" + secret,
                       "--metrics-listen", "127.0.0.1:%d" % free_port()], log)
        wait_port(tport, relay, "tsunagu-relay")
        turn_url = "turn:127.0.0.1:%d?transport=udp" % tport
    else:
        turn_url = "turn:127.0.0.1:%d?transport=bogus" % tport
    sport = free_port()
    sig = start([args.signal, "--listen", "127.0.0.1:%d" % sport, "--turn-url", turn_url,
                 "--turn-secret", secret], log)
    wait_port(sport, sig, "tsunagu-signal")
    os.makedirs(os.path.join(tmp, case))
    browser = Chromium(os.path.join(tmp, case), log)
    room = "fail-" + os.urandom(4).hex()
    url = "http://127.0.0.1:%d/?room=%s&autojoin=1&relay=1&name=" % (sport, room)
    pages = {}
    for name in ("alice", "bob"):
        pages[name] = browser.open(url + name)
        deadline = time.time() + 20 * MULT
        while not browser.eval(pages[name], "!!(window.tsunaguState && tsunaguState.joined)"):
            if time.time() > deadline:
                die("%s: %s did not join: %s" % (case, name, browser.eval(
                    pages[name], "JSON.stringify(window.tsunaguState)")))
            time.sleep(0.2)
    # bob joined last: he calls alice; both sides' calls must fail with a reason
    deadline = time.time() + 40 * MULT
    while True:
        st = {n: page_state(browser, pg) for n, pg in pages.items()}
        if all(s["problem"] for n, s in st.items() if case != "construct" or n == "bob"):
            break
        if time.time() > deadline:
            die("%s: no failure shown in time: %s" % (case, st))
        time.sleep(0.3)
    t = time.time()
    ok = True
    if case == "construct":  # only the caller builds an RTCPeerConnection
        s = st["alice"]
        good = s["status"] == "in %s — 0/1 call(s) connected (relay only)" % room and \
            s["cls"] == "ok" and not s["problem"]
        print("%s %s - alice (no offer came): status line %r" % ("ok" if good else "not ok",
                                                                 case, s["status"]))
        ok &= good
        del st["alice"]
    for n, s in st.items():
        peer = "bob" if n == "alice" else "alice"
        # the member is listed even when no RTCPeerConnection could be made (construct)
        base = "in %s — 0/1 call(s) connected (relay only) — call with %s failed: " % (room, peer)
        if case == "ice":
            want = base + "no ICE candidates gathered; ICE server errors: " + turn_url + " 701"
            good = s["status"].startswith(want) and "tsunagu-turncheck" in s["status"]
        elif case == "auth":
            want = base + "no ICE candidates gathered; ICE server errors: "
            good = s["status"].startswith(want) and turn_url + " 401 " in s["status"]
        else:
            want = (base + "the browser refused the ICE servers from signaling (" + turn_url +
                    "): SyntaxError: ")
            good = (s["status"].startswith(want) and "ICE server parsing failed" in s["status"]
                    and s["status"].endswith("check tsunagu-signal's --turn-url and --turn-secret"))
        good = good and s["shown"] == s["status"] and s["cls"] == "bad" and s["joined"] and \
            s["leave"] and s["status"].endswith(s["problem"])
        print("%s %s - %s: status line %r" % ("ok" if good else "not ok", case, n, s["status"]))
        if not good:
            print("#   want it to start with %r; state %s" % (want, s))
            ok = False
    return ok, t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--signal", required=True)
    ap.add_argument("--relay-exe")
    ap.add_argument("--cases", default="ice,construct")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="tsunagu-e2e-fail-")
    log = open(os.path.join(tmp, "processes.log"), "w")
    ok = True
    try:
        t0 = time.time()
        for case in args.cases.split(","):
            good, t = run_case(case, args, tmp, log)
            print("# %s: failure shown %.1f s after start" % (case, t - t0))
            ok &= good
            t0 = time.time()
    finally:
        cleanup(tmp)
    if not ok:
        die("a status line did not show the failure and its reason")
    print("ok - every failure shown in the status line with its reason")


if __name__ == "__main__":
    main()
