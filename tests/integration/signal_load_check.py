"""signal_load_check: the regression check of issue 16 item 4 that fits in CI.
tsunagu-sigload (bench/sigload.c) joins 2,000 idle members (rooms of 10) and
20 pairs into a real tsunagu-signal, then sends 500 timestamped signals a
second between the pairs for 3 s. Asserts: every member joined, no error, no
unexpected close, every signal delivered, and the server's own counts agree
(members, connections). No timing bound: the figures are bench/signal_load.sh's.

Usage: signal_load_check.py TSUNAGU-SIGNAL TSUNAGU-SIGLOAD"""
import resource
import subprocess
import sys
import time

from signal_lib import MULT, Server

MEMBERS, PAIRS = 2000, 20


def main(exe, gen):
    t0 = time.time()
    need = MEMBERS + 2 * PAIRS + 256
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < need:
        sys.exit("FAIL: RLIMIT_NOFILE hard limit %d is below the %d descriptors this test "
                 "needs (one per member in the server and in the generator)" % (hard, need))
    # inherited by both children
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    with Server(exe, "--log-level", "warn", "--max-connections-per-ip", "0",
                "--max-unjoined-per-ip", "0", "--max-joins-per-ip-per-sec", "0",
                "--max-room-creates-per-ip-per-min", "0", "--rate-limit", "100000") as srv:
        r = subprocess.run([gen, "--port", str(srv.port), "--members", str(MEMBERS),
                            "--pairs", str(PAIRS), "--room-size", "10", "--rate", "500",
                            "--seconds", "3", "--idle-seconds", "1",
                            "--server-pid", str(srv.proc.pid), "--check"],
                           capture_output=True, text=True, timeout=120 * MULT)
        sys.stdout.write(r.stdout)
        sys.stderr.write(r.stderr)
        out = dict(line.split("=", 1) for line in r.stdout.split() if "=" in line)
        assert r.returncode == 0, "tsunagu-sigload --check failed (rc %d)" % r.returncode
        n = MEMBERS + 2 * PAIRS
        assert int(out["joined"]) == n, out
        assert int(out["signals_sent"]) >= 1000, out  # 500/s for 3 s, however loaded
        assert out["signals_delivered"] == out["signals_sent"], out
        for k in ("errors", "unexpected_closes", "connect_failures", "handshake_failures"):
            assert int(out[k]) == 0, (k, out)
        m = srv.metrics()
        # the generator closed its clients on exit: the server saw them all
        # and now holds the members for resume or has let them go; what
        # matters is that it is alive, answering, and counted every join
        assert m["tsunagu_signal_messages_total{type=\"join\"}"] >= n, m
        assert srv.proc.poll() is None, "server died"
    print("ok signal_load_check: %d members joined, %s signals delivered, p99 %s ms (%.1fs)"
          % (n, out["signals_delivered"], out.get("latency_p99_ms"), time.time() - t0))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
