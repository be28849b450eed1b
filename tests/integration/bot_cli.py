#!/usr/bin/python3
"""bot_cli.py - tsunagu-bot's command line: --help lists every DESIGN.md
flag, bad values stop start-up naming the flag (exit 2), and a signaling
server that cannot be reached ends a member-mode run with exit code 1
quickly instead of waiting for --duration.

usage: bot_cli.py --bot PATH"""
import argparse, os, socket, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bot_harness import fail, free_port, TIMEOUT_MULT  # noqa: E402


def run(argv, timeout=20):
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout * TIMEOUT_MULT)
    except subprocess.TimeoutExpired:
        fail("%s did not exit in time" % " ".join(argv))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bot", required=True)
    a = ap.parse_args()
    n = 0
    notpem = tempfile.NamedTemporaryFile(prefix="bot_cli_", suffix=".pem")
    notpem.write(b"not a certificate\n")
    notpem.flush()
    r = run([a.bot, "--help"])
    if r.returncode != 0:
        fail("--help exit code %d" % r.returncode)
    for flag in ["--signal", "--room", "--calls", "--duration", "--relay-only", "--report",
                 "--html", "--audio", "--log-level", "--turn-ca", "--turn-insecure", "--turn-family"]:
        if flag not in r.stdout:
            fail("--help does not list " + flag)
        n += 1
    for argv, key in [(["--signal", "http://x/", "--room", "r"], "signal"),
                      (["--signal", "ws://x/ws", "--room", "r", "--calls", "-1"], "calls"),
                      (["--signal", "ws://x/ws", "--room", "r", "--bogus", "1"], "bogus"),
                      (["--signal", "ws://x/ws"], "--room"),
                      (["--signal", "ws://x/ws", "--room", "r", "--log-level", "loud"], "log-level"),
                      (["--signal", "ws://x/ws", "--room", "r", "--audio", "/nonexistent.wav"], "nonexistent"),
                      (["--signal", "ws://x/ws", "--room", "r", "--turn-ca", "/nonexistent/ca.pem"],
                       "/nonexistent/ca.pem"),
                      (["--signal", "ws://x/ws", "--room", "r", "--turn-ca", notpem.name],
                       "turn-ca"),
                      (["--signal", "ws://x/ws", "--room", "r", "--turn-ca", notpem.name,
                        "--turn-insecure"], "exclude each other"),
                      (["--signal", "ws://x/ws", "--room", "r", "--turn-family", "ipv7"],
                       "turn-family")]:
        r = run([a.bot] + argv)
        if r.returncode != 2 or key not in r.stderr:
            fail("%s: exit %d, stderr %r (want 2 naming %s)" % (argv, r.returncode, r.stderr, key))
        n += 1
    # Nothing listens on this port: the member cannot join and must say so.
    port = free_port()
    t0 = time.time()
    r = run([a.bot, "--signal", "ws://127.0.0.1:%d/ws" % port, "--room", "r", "--duration", "60"])
    took = time.time() - t0
    if r.returncode != 1 or "could not join" not in r.stderr:
        fail("unreachable signaling: exit %d after %.1f s, stderr %r" % (r.returncode, took, r.stderr[-500:]))
    if took > 15 * TIMEOUT_MULT:
        fail("unreachable signaling took %.1f s to give up" % took)
    n += 1
    print("PASS (%d checks)" % n)


if __name__ == "__main__":
    main()
