#!/usr/bin/python3
"""bot_canary.py - tsunagu-bot --canary against real signaling and TURN on
127.0.0.1, its /metrics scraped over HTTP as Prometheus would (issue 12 item 2).

1. --canary 2 --canary-call 3 (rounds overlap: the late ones are skipped): within ~20 s the relay's calls_succeeded_total
   reaches 3, every attempt so far succeeded, last_call_success 1, MOS > 4.0,
   loss 0, setup time and RTT present and sane, last success within the last
   15 s of wall time; the text parses as Prometheus exposition (HELP/TYPE
   before samples, each sample "name{labels} value"), /healthz says ok.
2. Memory stays flat: resident memory after call 3 and after call 9 (the
   process's own process_resident_memory_bytes) differ by under 3 MiB: calls,
   connections and timelines are freed after each probe.
3. The relay is killed (SIGKILL): within ~20 s a probe fails (--setup-timeout 5)
   (calls_attempted_total > calls_succeeded_total, last_call_success 0) and
   the last success timestamp stops moving.
4. SIGTERM: the bot exits 0 within 10 s.

usage: bot_canary.py --bot PATH [--relay ... --signal ...]"""
import argparse, os, re, signal, subprocess, sys, time, urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bot_harness import Stack, add_server_args, fail, free_port, TIMEOUT_MULT  # noqa: E402

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$')


def scrape(port):
    body = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5).read().decode()
    typed, out = set(), {}
    for line in body.splitlines():
        if line.startswith("# TYPE "):
            typed.add(line.split()[2])
            continue
        if line.startswith("#") or not line:
            continue
        m = SAMPLE.match(line)
        if not m:
            fail("not Prometheus text: %r" % line)
        if m.group(1) not in typed:
            fail("sample before its TYPE line: %r" % line)
        out[(m.group(1), m.group(2) or "")] = float(m.group(3))
    return out


def metric(ms, name, relay):
    return ms.get((name, '{relay="%s"}' % relay))


def wait_for(what, secs, fn):
    end = time.time() + secs * TIMEOUT_MULT
    while time.time() < end:
        v = fn()
        if v:
            return v
        time.sleep(0.5)
    fail("timed out waiting for " + what)


def main():
    ap = argparse.ArgumentParser()
    add_server_args(ap)
    a = ap.parse_args()
    checks = 0
    with Stack(a) as st:
        turn = st.start_relay()
        url = st.start_signal(turn)
        relay = turn  # the label is the turn: URL as signaling hands it out
        port = free_port()
        argv = [a.bot, "--signal", url, "--room", "canary%d" % os.getpid(), "--canary", "2",
                "--canary-call", "3", "--setup-timeout", "5", "--metrics-listen", "127.0.0.1:%d" % port,
                "--log-level", "info"]
        bot = st.spawn(argv, "bot.log")

        def ok_calls(n):
            def f():
                if bot.poll() is not None:
                    fail("canary bot exited (%s): %s" % (bot.returncode, st.log("bot.log")[-2000:]))
                try:
                    ms = scrape(port)
                except OSError:
                    return None
                v = metric(ms, "tsunagu_bot_canary_calls_succeeded_total", relay)
                return ms if v is not None and v >= n else None
            return f

        ms = wait_for("3 successful canary calls", 30, ok_calls(3))
        att = metric(ms, "tsunagu_bot_canary_calls_attempted_total", relay)
        okc = metric(ms, "tsunagu_bot_canary_calls_succeeded_total", relay)
        mos = metric(ms, "tsunagu_bot_canary_mos", relay)
        loss = metric(ms, "tsunagu_bot_canary_loss_ratio", relay)
        setup = metric(ms, "tsunagu_bot_canary_setup_seconds", relay)
        rtt = metric(ms, "tsunagu_bot_canary_rtt_seconds", relay)
        jit = metric(ms, "tsunagu_bot_canary_jitter_seconds", relay)
        last = metric(ms, "tsunagu_bot_canary_last_success_timestamp_seconds", relay)
        print("# after %d rounds: attempted %d succeeded %d, MOS %.2f, loss %.3f, setup %.3f s, "
              "RTT %s s, jitter %.4f s, last success %.1f s ago" % (
                  ms[("tsunagu_bot_canary_rounds_total", "")], att, okc, mos, loss, setup, rtt,
                  jit, time.time() - last))
        if att != okc:
            fail("%d attempted, %d succeeded on a healthy relay" % (att, okc))
        if metric(ms, "tsunagu_bot_canary_last_call_success", relay) != 1:
            fail("last_call_success is not 1")
        if not (mos > 4.0 and loss == 0 and 0 < setup < 5 and rtt is not None and 0 <= rtt < 0.5
                and 0 <= jit < 0.05):
            fail("canary figures out of range")
        if not (0 <= time.time() - last < 15):
            fail("last success timestamp %.1f s off" % (time.time() - last))
        if ("tsunagu_build_info" not in {k[0] for k in ms}):
            fail("no tsunagu_build_info")
        health = urllib.request.urlopen("http://127.0.0.1:%d/healthz" % port, timeout=5).read()
        if health != b"ok\n":
            fail("/healthz said %r" % health)
        checks += 7

        rss1 = ms[("process_resident_memory_bytes", "")]
        ms = wait_for("9 successful canary calls", 60, ok_calls(9))
        rss2 = ms[("process_resident_memory_bytes", "")]
        print("# resident memory %.1f MiB after %d calls, %.1f MiB after %d" % (
            rss1 / 2**20, okc, rss2 / 2**20,
            metric(ms, "tsunagu_bot_canary_calls_succeeded_total", relay)))
        if rss2 - rss1 > 3 * 2**20:
            fail("resident memory grew %.1f MiB over 6 canary calls" % ((rss2 - rss1) / 2**20))
        checks += 1

        st.procs[0].send_signal(signal.SIGKILL)
        st.procs[0].wait(timeout=10)
        print("# relay killed")

        def failed():
            ms = scrape(port)
            if metric(ms, "tsunagu_bot_canary_last_call_success", relay) == 0:
                return ms
            return None
        ms = wait_for("a failed canary call", 20, failed)
        att = metric(ms, "tsunagu_bot_canary_calls_attempted_total", relay)
        okc = metric(ms, "tsunagu_bot_canary_calls_succeeded_total", relay)
        last = metric(ms, "tsunagu_bot_canary_last_success_timestamp_seconds", relay)
        print("# relay down: attempted %d succeeded %d, last success %.1f s ago" % (
            att, okc, time.time() - last))
        if att <= okc:
            fail("no failed attempt counted")
        checks += 2
        for line in st.log("bot.log").splitlines():
            if "FAILED" in line:
                print("# " + line.strip())
                break
        bot.send_signal(signal.SIGTERM)
        try:
            code = bot.wait(timeout=10 * TIMEOUT_MULT)
        except subprocess.TimeoutExpired:
            fail("canary bot did not stop within 10 s of SIGTERM")
        if code != 0:
            fail("canary bot exit code %d" % code)
        checks += 1
    print("PASS (%d checks)" % checks)


if __name__ == "__main__":
    main()
