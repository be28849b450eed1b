"""The status page of tsunagu-signal (/status, issue 12 item 5) in headless
Chromium.

tsunagu-signal runs with an admin token and a turn: URL; three demo pages
join two rooms (the members and messages the status page should show). Then:

- /status without the token: the page shows its token form and says the
  token is required (/status.json answered 401);
- /status#token=...: the cards show 3 members, 2 rooms, 3 connections; the
  relays table lists the turn: URL as "not checked"; three inline SVG plots
  (members, rooms, messages/s), each with a polyline of >= 2 points once
  the second 10 s sample is taken; every resource the page loaded is from
  its own origin (no external scripts);
- the page refreshes by itself: a fourth member joins and the members card
  shows 4 within 5 s + slack, without a reload;
- a screenshot (Page.captureScreenshot) is written to OUT/status-page.png
  and its path printed.

usage: signal_status_page.py --signal EXE --out DIR"""
import argparse
import base64
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from signal_browser_call import (MULT, Chromium, cleanup, die, free_port,  # noqa: E402
                                 start, wait_port)

TOKEN = "status-" + os.urandom(6).hex()


def wait_for(browser, pg, expr, what, seconds):
    deadline = time.time() + seconds * MULT
    guarded = "(() => { try { return %s; } catch (e) { return false; } })()" % expr
    while True:
        v = browser.eval(pg, guarded)
        if v:
            return v
        if time.time() > deadline:
            die("%s: not within %ds; page: %s" % (what, seconds, browser.eval(
                pg, "document.body.innerText.slice(0, 600)")))
        time.sleep(0.2)


def check(ok, what, detail=""):
    print("%s - %s%s" % ("ok" if ok else "not ok", what, (": " + detail) if detail else ""))
    return ok


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--signal", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="tsunagu-e2e-status-")
    log = open(os.path.join(tmp, "processes.log"), "w")
    good = True
    try:
        sport = free_port()
        turn_url = "turn:127.0.0.1:%d?transport=udp" % free_port()
        sig = start([args.signal, "--listen", "127.0.0.1:%d" % sport, "--turn-url", turn_url,
                     "--turn-secret", os.urandom(8).hex(), "--admin-token", TOKEN], log)
        wait_port(sport, sig, "tsunagu-signal")
        t_start = time.time()
        browser = Chromium(tmp, log)
        base = "http://127.0.0.1:%d" % sport
        demo = base + "/?autojoin=1&relay=1&room=%s&name=%s"
        members = [browser.open(demo % (r, n)) for r, n in
                   (("alpha", "ann"), ("alpha", "ben"), ("beta", "cat"))]
        for pg in members:
            wait_for(browser, pg, "!!(window.tsunaguState && tsunaguState.joined)", "demo join", 20)

        # without the token: the form, and why
        pg = browser.open(base + "/status")
        wait_for(browser, pg, "document.getElementById('state').textContent.includes('token')",
                 "token prompt", 10)
        shown = browser.eval(pg, "getComputedStyle(document.getElementById('auth')).display")
        good &= check(shown == "block", "no token: the token form is shown", shown)
        good &= check(browser.eval(pg, "document.getElementById('members').textContent") == "-",
                      "no token: no data shown")

        # with the token in the fragment
        pg = browser.open(base + "/status#token=" + TOKEN)
        wait_for(browser, pg, "document.getElementById('members').textContent === '3'",
                 "members card", 10)
        cards = json.loads(browser.eval(pg, "JSON.stringify(['members','rooms','connections',"
                                            "'mps'].map(i => document.getElementById(i)"
                                            ".textContent))"))
        good &= check(cards[:3] == ["3", "2", "3"],
                      "cards: members, rooms, connections", str(cards))
        rows = json.loads(browser.eval(pg, "JSON.stringify([...document.querySelectorAll("
                                           "'#relays tbody tr')].map(r => [...r.cells]"
                                           ".map(c => c.textContent)))"))
        good &= check(rows == [[turn_url, "not checked"]], "relays table", str(rows))
        # the second 10 s sample makes each plot a line
        left = 11 - (time.time() - t_start)
        wait_for(browser, pg, "[...document.querySelectorAll('.plot svg')].every("
                              "s => +s.dataset.points >= 2)", "two samples in every plot",
                 max(left, 0) + 10)
        plots = json.loads(browser.eval(pg, "JSON.stringify([...document.querySelectorAll("
                                            "'.plot svg')].map(s => ({title: s.querySelector("
                                            "'text').textContent, n: +s.dataset.points, "
                                            "line: !!s.querySelector('polyline')})))"))
        good &= check(len(plots) == 3 and all(p["line"] and p["n"] >= 2 for p in plots) and
                      [p["title"].split(" (")[0] for p in plots] ==
                      ["members", "rooms", "messages/s"], "three SVG plots with lines", str(plots))
        hist = json.loads(browser.eval(pg, "fetch('/status.json', {headers: {Authorization: "
                                           "'Bearer %s'}}).then(r => r.text())" % TOKEN))
        good &= check(hist["history"]["members"][-1] == 3 and hist["history"]["step_s"] == 10,
                      "history's last sample", str(hist["history"]))
        foreign = browser.eval(pg, "JSON.stringify(performance.getEntriesByType('resource')"
                                   ".map(e => e.name).filter(n => !n.startsWith(location.origin)))")
        scripts = browser.eval(pg, "JSON.stringify([...document.scripts].map(s => s.src))")
        good &= check(foreign == "[]" and scripts == json.dumps([base + "/status.js"]),
                      "same-origin resources only", foreign + " " + scripts)

        # it refreshes on its own
        t0 = time.time()
        members.append(browser.open(demo % ("beta", "dan")))
        wait_for(browser, pg, "document.getElementById('members').textContent === '4'",
                 "refresh to 4 members", 12)
        good &= check(True, "refreshed without a reload after %.1f s" % (time.time() - t0))
        time.sleep(0.5)

        browser.call("Emulation.setDeviceMetricsOverride", {"width": 800, "height": 980,
                                                             "deviceScaleFactor": 1,
                                                             "mobile": False}, session=pg)
        time.sleep(0.3)
        shot = browser.call("Page.captureScreenshot", {"format": "png"}, session=pg)
        os.makedirs(args.out, exist_ok=True)
        path = os.path.join(os.path.abspath(args.out), "status-page.png")
        with open(path, "wb") as f:
            f.write(base64.b64decode(shot["data"]))
        size = os.path.getsize(path)
        good &= check(size > 5000, "screenshot written", "%s (%d bytes)" % (path, size))
        print("# screenshot: " + path)
    finally:
        cleanup(tmp)
    if not good:
        die("the status page did not show what it should")
    print("ok - the status page renders, asks for the token, refreshes")


if __name__ == "__main__":
    main()
