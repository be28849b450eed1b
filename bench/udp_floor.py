#!/usr/bin/python3
"""udp_floor.py - tsunagu-relay's UDP fixed loads against the bare echo, per
kernel crossing (docs/performance.md, "UDP: the echo floor and peer mode").

A kernel crossing is one datagram the server receives from or sends to a
UDP socket (datagrams, not system calls), as in bench/relay_vs_coturn.sh's
"per kernel crossing" block. Per message:
  pair  2 (client A -> relay, handed over inside the relay, relay -> client B)
  peer  4 (client -> relay -> outside peer, peer -> relay -> client)
  echo  2 per echoed datagram (tsunagu-echo, the floor: receive, send back)
The echo runs at the same datagram rate as the relay level it is the floor of
(pair: N sockets x 50/s, peer: N sockets x 100/s), on the same core, in the
same run, interleaved with the relay runs. Printed: server CPU µs per
crossing, relay / echo (of the medians, and the median of each repetition's
ratio), and with --count the server's system calls per crossing (perf stat
on the syscall tracepoints, from 1 s into the phase to its end).

  bench/udp_floor.py [--build DIR] [--reps 3] [--ms 3000] [--levels pair,peer]
                     [--allocs 100,1000] [--sizes 170,1200] [--echo-batch 64]
                     [--relay A[,B]] [--count]

Server (relay or echo) pinned to core 0, generator and outside peer
(tsunagu-echo --batch 64) to core 1. Every process started is killed by PID in
a finally block.
"""
import argparse
import json
import os
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time


RELAY = ""


def free_port(kind=socket.SOCK_DGRAM):
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def start_echo(build, core, batch):
    p = subprocess.Popen(["taskset", "-c", str(core), build + "/bench/tsunagu-echo", "--batch",
                          str(batch), "--max-seconds", "300"], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True)
    line = p.stdout.readline()
    m = re.match(r"port (\d+)", line or "")
    if not m:
        p.kill()
        p.wait()
        raise RuntimeError("echo did not start")
    return p, int(m.group(1))


def start_relay(build, extra):
    last = None
    for _ in range(3):  # new ports on each try: another program may have taken them
        try:
            return launch_relay(build, extra)
        except RuntimeError as e:
            last = e
    raise last


def launch_relay(build, extra):
    port = free_port()
    log = tempfile.TemporaryFile()  # unnamed: nothing left behind
    lo = 10000 + random.randrange(0, 12000)
    p = subprocess.Popen(["taskset", "-c", "0", RELAY or build + "/relay/tsunagu-relay", "--listen",
                          "127.0.0.1:%d" % port, "--relay-ip", "127.0.0.1", "--relay-ports",
                          "%d-%d" % (lo, lo + 9999), "--realm", "bench", "--user", "u:p",
                          "--metrics-listen", "127.0.0.1:%d" % free_port(socket.SOCK_STREAM),
                          "--threads", "1", "--max-allocations", "100000",
                          "--max-allocations-per-user", "100000", "--allow-peer", "127.0.0.1/32",
                          "--log-level", "warn", "--drain-seconds", "0"] + extra,
                         stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.time() + 15
    while time.time() < deadline:  # bounded: 15 s
        if p.poll() is not None:
            log.seek(0)
            raise RuntimeError("relay exited: %r" % log.read()[-300:])
        out = subprocess.run(["ss", "-Huln", "sport = :%d" % port], capture_output=True,
                             text=True).stdout
        if out.strip():
            time.sleep(0.2)
            return p, port
        time.sleep(0.1)
    p.kill()
    p.wait()
    raise RuntimeError("relay did not start")


def stop(p):
    if p and p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


SYSCALLS = ["recvmmsg", "sendmmsg", "epoll_wait", "recvfrom", "sendto"]


def turnload(build, args, count_pid=0, count_s=0.0):
    """Run the generator; with count_pid, perf counts that process's
    syscalls for count_s seconds from 1 s into the run (after the setup)."""
    g = subprocess.Popen(["taskset", "-c", "1", "timeout", "300", build + "/bench/tsunagu-turnload"]
                         + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    counts = None
    if count_pid:
        time.sleep(1.0)
        ev = ",".join("syscalls:sys_enter_" + c for c in SYSCALLS)
        pr = subprocess.run(["perf", "stat", "-x", ",", "-e", ev, "-p", str(count_pid), "--",
                             "sleep", str(count_s)], capture_output=True, text=True)
        counts = {}
        for l in pr.stderr.splitlines():
            f = l.split(",")
            if len(f) > 2 and f[2].startswith("syscalls:sys_enter_"):
                counts[f[2][len("syscalls:sys_enter_"):]] = int(f[0]) if f[0].isdigit() else 0
        if not counts:
            raise RuntimeError("perf stat counted nothing: " + pr.stderr[-300:])
    out, err = g.communicate()
    r = subprocess.CompletedProcess(g.args, g.returncode, out, err)
    lines = [l for l in r.stdout.splitlines() if l.startswith("{")]
    if not lines:
        raise RuntimeError("turnload: no result: " + r.stderr[-500:])
    j = json.loads(lines[-1])
    if counts is not None:
        j["syscalls"] = counts
        j["count_s"] = count_s
    return j


def one(build, kind, n, size, ms, extra, echo_batch, count=False):
    """One fresh server, one phase; returns (µs per crossing, json). With
    count, j["per_crossing"] has the server's syscalls per crossing."""
    procs = []
    try:
        if kind.startswith("echo"):
            srv, port = start_echo(build, 0, echo_batch)
            procs.append(srv)
            rate = n * (100 if kind == "echo-peer" else 50)
            j = turnload(build, ["--mode", "direct", "--peer", "127.0.0.1:%d" % port,
                                 "--allocations", str(n), "--size", str(size), "--rate",
                                 str(rate), "--duration-ms", str(ms), "--server-pid",
                                 str(srv.pid)], srv.pid if count else 0, (ms - 1000) / 1000.0)
            crossings = 2 * j["received"]
            rate *= 2  # crossings/s: each datagram received is sent back
        else:
            srv, port = start_relay(build, extra)
            procs.append(srv)
            args = ["--server", "127.0.0.1:%d" % port, "--user", "u:p", "--allocations", str(n),
                    "--size", str(size), "--rate", str(n * 50), "--duration-ms", str(ms),
                    "--server-pid", str(srv.pid)]
            if kind == "peer":
                peer, pport = start_echo(build, 1, 64)
                procs.append(peer)
                args += ["--mode", "echo", "--peer", "127.0.0.1:%d" % pport]
            else:
                args += ["--mode", "pair"]
            j = turnload(build, args, srv.pid if count else 0, (ms - 1000) / 1000.0)
            crossings = j["received"] * (4 if kind == "peer" else 2)
            rate = 2 * n * (100 if kind == "peer" else 50)
        if count:  # crossings in the counted window: the offered datagram rate
            j["per_crossing"] = {k: round(v / (rate * j["count_s"]), 3)
                                 for k, v in j["syscalls"].items() if v}
        return j["server_cpu_ms"] * 1000.0 / max(crossings, 1), j
    finally:
        for p in procs:
            stop(p)


def med_dict(ds):
    keys = sorted({k for d in ds for k in d})
    return {k: round(statistics.median([d.get(k, 0) for d in ds]), 3) for k in keys}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(os.path.dirname(__file__), "..", "build"))
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--ms", type=int, default=3000)
    ap.add_argument("--levels", default="pair,peer")
    ap.add_argument("--allocs", default="100,1000")
    ap.add_argument("--sizes", default="170,1200")
    ap.add_argument("--echo-batch", type=int, default=64)
    ap.add_argument("--relay-args", default="", help="extra relay flags (space-separated)")
    ap.add_argument("--relay", default="", help="relay binary, or A,B: both, interleaved (default: BUILD/relay/tsunagu-relay)")
    ap.add_argument("--count", action="store_true",
                    help="count the server's syscalls per crossing (perf stat, tracepoints)")
    a = ap.parse_args()
    extra = a.relay_args.split()
    print("load average: %s" % open("/proc/loadavg").read().strip(), file=sys.stderr)
    relays = a.relay.split(",") if a.relay else [""]
    for lv in a.levels.split(","):
        for n in [int(x) for x in a.allocs.split(",")]:
            for size in [int(x) for x in a.sizes.split(",")]:
                rel = [[] for _ in relays]
                pc = [[] for _ in relays]
                epc = []
                ech, loss, p50, other = [], [], [], []
                for _ in range(a.reps):  # interleaved: relay(s), echo, relay(s), echo...
                    global RELAY
                    for k, r in enumerate(relays):
                        RELAY = r
                        u, j = one(a.build, lv, n, size, a.ms, extra, a.echo_batch, a.count)
                        rel[k].append(u)
                        pc[k].append(j.get("per_crossing", {}))
                        loss.append(j.get("loss", 0))
                        p50.append(j.get("lat_p50_us", 0))
                        other.append(j.get("other_cpu_ms", 0))
                    u, j = one(a.build, "echo-peer" if lv == "peer" else "echo", n, size, a.ms,
                               extra, a.echo_batch, a.count)
                    ech.append(u)
                    epc.append(j.get("per_crossing", {}))
                me = statistics.median(ech)
                out = {"level": lv, "allocs": n, "size": size,
                       "echo_us_per_crossing": round(me, 2), "echo_all": [round(x, 2) for x in ech]}
                for k, r in enumerate(relays):
                    mr = statistics.median(rel[k])
                    tag = "" if len(relays) == 1 else "_%d" % k
                    out["relay%s_us_per_crossing" % tag] = round(mr, 2)
                    out["relay%s_all" % tag] = [round(x, 2) for x in rel[k]]
                    out["ratio%s" % tag] = round(mr / me, 3)
                    # per repetition: relay / echo of the same repetition
                    if a.count:
                        out["relay%s_syscalls_per_crossing" % tag] = med_dict(pc[k])
                    out["ratio%s_per_rep_median" % tag] = round(statistics.median(
                        [x / y for x, y in zip(rel[k], ech)]), 3)
                if a.count:
                    out["echo_syscalls_per_crossing"] = med_dict(epc)
                out.update({"loss_max": max(loss), "p50_us": statistics.median(p50),
                            "other_cpu_ms": statistics.median(other)})
                print(json.dumps(out), flush=True)

if __name__ == "__main__":
    main()
