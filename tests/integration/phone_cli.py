#!/usr/bin/python3
"""phone_cli.py - tsunagu-phone's command line without a call: --help names
every documented flag and the keys, --version prints "tsunagu-phone VERSION
(COMMIT)", bad or missing flags exit 2 saying why, and with no PulseAudio
server to reach --list-devices and a call both exit 1 saying so (never hang,
never autospawn a daemon).

usage: phone_cli.py --phone PATH"""
import argparse, os, re, subprocess, sys, tempfile, shutil


def fail(msg):
    print("FAIL: " + msg, flush=True)
    sys.exit(1)


def run(argv, env=None):
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=30, env=env)
    except subprocess.TimeoutExpired:
        fail("%s did not finish within 30 s" % " ".join(argv))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--phone", required=True)
    a = ap.parse_args()
    checks = 0
    r = run([a.phone, "--help"])
    if r.returncode != 0:
        fail("--help exit %d" % r.returncode)
    for flag in ("--signal", "--room", "--name", "--token", "--list-devices", "--input", "--output",
                 "--record", "--report", "--no-ui", "--duration", "--muted", "--aec-lib", "--no-aec",
                 "--drop-percent", "--drop-seed", "--relay-only", "--ice-restart", "--complexity"):
        if flag not in r.stdout:
            fail("--help does not mention %s" % flag)
    if "m = mute" not in r.stdout or "q = leave" not in r.stdout:
        fail("--help does not name the keys")
    checks += 1
    r = run([a.phone, "--version"])
    if r.returncode != 0 or not re.match(r"tsunagu-phone \S+ \(\S+\)", r.stdout):
        fail("--version: %d %r" % (r.returncode, r.stdout))
    checks += 1
    for argv, why in (([a.phone, "--room", "r"], "required"),
                      ([a.phone, "--signal", "http://x/ws", "--room", "r"], "ws://"),
                      ([a.phone, "--signal", "ws://x/ws", "--room", "r", "--aec-lib", "x"], "webrtc or speex"),
                      ([a.phone, "--signal", "ws://x/ws", "--room", "r", "--drop-percent", "101"], "0 to 100"),
                      ([a.phone, "--signal", "ws://x/ws", "--room", "r", "--complexity", "11"], "[0, 10]"),
                      ([a.phone, "--nonsense"], "nonsense")):
        r = run(argv)
        if r.returncode != 2 or why not in r.stderr:
            fail("%s: exit %d, stderr %r (want 2 and %r)" % (argv[1:], r.returncode, r.stderr, why))
        checks += 1
    # No sound server: an empty private runtime dir, no PULSE_SERVER.
    tmp = tempfile.mkdtemp(prefix="phcli-")
    try:
        env = dict(os.environ, XDG_RUNTIME_DIR=tmp, PULSE_RUNTIME_PATH=tmp, HOME=tmp)
        env.pop("PULSE_SERVER", None)
        r = run([a.phone, "--list-devices"], env)
        if r.returncode != 1 or "PulseAudio" not in r.stdout + r.stderr:
            fail("--list-devices without a server: exit %d, %r" % (r.returncode, r.stdout + r.stderr))
        checks += 1
        r = run([a.phone, "--signal", "ws://127.0.0.1:9/ws", "--room", "r", "--no-ui"], env)
        if r.returncode != 1 or "sound" not in r.stderr:
            fail("a call without a server: exit %d, %r" % (r.returncode, r.stderr[-500:]))
        checks += 1
        if os.listdir(tmp):
            fail("the phone left files in its runtime dir (autospawn?): %s" % os.listdir(tmp))
        checks += 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("ok: %d checks" % checks)


if __name__ == "__main__":
    main()
