#!/usr/bin/python3
"""bot_browser.py - the bot and headless Chromium in one room, both relay
only, through signaling and TURN on 127.0.0.1.

--order bot-first: the bot waits in the room; Chromium joins later and
offers audio AND video (fake camera and microphone); the bot must answer
the audio and decline the video (port 0), and audio must flow both ways.
--order browser-first: Chromium waits; the bot joins later and offers.

Asserts: the browser's getStats() shows inbound Opus audio packets from the
bot with non-zero audio energy over a relay/relay candidate pair; the bot's
JSON report shows packets from the browser decrypted and decoded, over a
relayed path, and (bot-first) the browser saw the video m-line declined.

Chromium is started as notes/browser-calls.md says; its console output
(--enable-logging=stderr) carries the page's "RESULT {json}" line."""
import argparse, json, os, re, shutil, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from bot_harness import Stack, add_server_args, fail, free_port, wait_tcp, TIMEOUT_MULT  # noqa

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    ap = argparse.ArgumentParser()
    add_server_args(ap)
    ap.add_argument("--order", choices=["bot-first", "browser-first"], default="bot-first")
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    a = ap.parse_args()
    if not os.access(a.chromium, os.X_OK):
        fail("%s not found: apt-get install chromium" % a.chromium)
    checks = 0
    with Stack(a) as st:
        turn = st.start_relay()
        url = st.start_signal(turn)
        # The page is served by a plain HTTP server of its own, so the same
        # test works with the stand-in and with tsunagu-signal.
        www_port = free_port()
        st.spawn(["/usr/bin/python3", "-m", "http.server", "--bind", "127.0.0.1", str(www_port),
                  "--directory", HERE], "www.log")
        wait_tcp(www_port, 10, what="page server")
        room = "e2e%d" % os.getpid()
        report = os.path.join(st.dir, "bot.json")
        bot_secs = int(25 * TIMEOUT_MULT)
        bot_argv = [a.bot, "--signal", url, "--room", room, "--duration", str(bot_secs),
                    "--relay-only", "--report", report, "--log-level", "info"]
        page = "http://127.0.0.1:%d/bot_browser_page.html?ws=%s&room=%s&want=150" % (
            www_port, url, room)
        profile = tempfile.mkdtemp(prefix="botchrome-", dir=st.dir)
        chrome_argv = [a.chromium, "--headless=new", "--no-sandbox", "--disable-gpu",
                       "--disable-quic", "--no-first-run", "--no-default-browser-check",
                       "--disable-background-networking", "--disable-component-update",
                       "--disable-sync", "--disable-dev-shm-usage", "--user-data-dir=" + profile,
                       "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
                       "--allow-loopback-in-peer-connection", "--autoplay-policy=no-user-gesture-required",
                       "--enable-logging=stderr", "--v=0",
                       "--remote-debugging-port=0", page]

        def start_bot():
            return st.spawn(bot_argv, "bot.log")

        def start_chrome():
            return st.spawn(chrome_argv, "chrome.log")

        if a.order == "bot-first":
            bot = start_bot()
            time.sleep(1.0)
            chrome = start_chrome()
        else:
            chrome = start_chrome()
            deadline = time.time() + 20 * TIMEOUT_MULT
            while "PAGE joined" not in st.log("chrome.log"):
                if time.time() > deadline or chrome.poll() is not None:
                    fail("page never joined the room:\n" + st.log("chrome.log")[-3000:])
                time.sleep(0.2)
            bot = start_bot()

        result = None
        deadline = time.time() + bot_secs + 5
        while time.time() < deadline:
            m = re.search(r'RESULT (\{.*?\})", source', st.log("chrome.log"))
            if m:
                result = json.loads(m.group(1))
                break
            if bot.poll() is not None:
                break
            time.sleep(0.5)
        if result is None:
            print(st.log("bot.log")[-3000:])
            print("\n".join(l for l in st.log("chrome.log").splitlines() if "PAGE" in l)[-3000:])
            fail("the browser never reported inbound audio from the bot")
        print("# browser: " + json.dumps(result))
        if "error" in result:
            fail(result["error"])
        checks_list = [
            (result["inbound_packets"] >= 150, "browser received >= 150 audio packets"),
            (result["codec"].lower() == "audio/opus", "browser decoded Opus (%s)" % result["codec"]),
            (result["total_audio_energy"] > 0, "browser heard non-silent audio"),
            (result["local_type"] == "relay" and result["remote_type"] == "relay",
             "browser pair is relay/relay (%s/%s)" % (result["local_type"], result["remote_type"])),
            (result["outbound_packets"] > 0, "browser sent audio"),
        ]
        if a.order == "bot-first":
            checks_list.append((result["local_has_video"] and result["video_declined"],
                                "browser offered video and the bot declined it with port 0"))
        for cond, what in checks_list:
            if not cond:
                fail(what)
            print("ok - " + what)
            checks += 1
        # Let the bot finish its --duration early: SIGTERM ends the run cleanly.
        bot.send_signal(15)
        try:
            bot.wait(timeout=15 * TIMEOUT_MULT)
        except subprocess.TimeoutExpired:
            fail("bot did not exit on SIGTERM")
        print(st.log("bot.log")[-2500:])
        if bot.returncode != 0:
            fail("bot exit code %d (sanitizer report or failed call)" % bot.returncode)
        if not os.path.exists(report):
            fail("bot wrote no report")
        r = json.load(open(report))
        legs = [c for c in r["calls"] if c["media"]]
        if len(legs) != 1:
            fail("bot reports %d calls with audio, want 1" % len(legs))
        c = legs[0]
        for cond, what in [
            (c["decoded"] >= 100, "bot decoded %d packets from the browser" % c["decoded"]),
            (c["path"].startswith("relay/"), "bot path is relayed (%s)" % c["path"]),
            (c["role"] == ("answerer" if a.order == "bot-first" else "offerer"),
             "bot role %s" % c["role"]),
            (c["sent"] >= 150, "bot sent %d packets" % c["sent"]),
        ]:
            if not cond:
                fail(what)
            print("ok - " + what)
            checks += 1
        chrome.terminate()
    print("PASS (%d checks)" % checks)


if __name__ == "__main__":
    main()
