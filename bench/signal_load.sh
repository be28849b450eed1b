#!/usr/bin/env bash
# signal_load.sh - tsunagu-signal under many members (issue 16 item 4): joins/s,
# forwarding latency p50/p99 of timestamped signals between pairs at a fixed rate
# with the other members idle, the server's idle CPU (/proc/PID/stat) and RSS per
# member, at each size; optionally two binaries back to back (before/after).
#
# Usage: bash bench/signal_load.sh [--sizes "1000 10000 50000"] [--reps 3]
#          [--rate 1000] [--seconds 10] [--idle-seconds 5] [--pairs 20]
#          [--build build] [--before PATH-to-old-tsunagu-signal] [--idle-timeout S]
#          [--keepalive-batch-ms MS (after only; the before binary may not know it)]
#          [--join-rate R (joins started per second; default unpaced)]
# Server on core 0, load generator (tsunagu-sigload) on core 1 (taskset), both
# on loopback, source addresses 127.0.0.1-4 (each has its own ~28k ephemeral
# ports). The per-address limits are lifted (every member comes from 4
# addresses) and the rate limit raised; everything else is the default.
# A size needs one descriptor per member in each process: sizes above the hard
# RLIMIT_NOFILE are refused, loudly, not shrunk.
set -euo pipefail

sizes="1000 10000 50000"
reps=3
rate=1000
seconds=10
idle_seconds=5
pairs=20
build=build
before=
idle_timeout=60
batch_ms=
join_rate=0
while [ $# -gt 0 ]; do
  case "$1" in
    --sizes) sizes=$2; shift 2 ;;
    --reps) reps=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --idle-seconds) idle_seconds=$2; shift 2 ;;
    --pairs) pairs=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    --before) before=$2; shift 2 ;;
    --idle-timeout) idle_timeout=$2; shift 2 ;;
    --keepalive-batch-ms) batch_ms=$2; shift 2 ;;
    --join-rate) join_rate=$2; shift 2 ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "signal_load.sh: unknown flag $1" >&2; exit 2 ;;
  esac
done

after=$build/signaling/tsunagu-signal
gen=$build/bench/tsunagu-sigload
for f in "$after" "$gen" ${before:+"$before"}; do
  [ -x "$f" ] || { echo "signal_load.sh: $f missing (ninja -C $build)" >&2; exit 1; }
done
command -v taskset >/dev/null || { echo "signal_load.sh: taskset missing (util-linux)" >&2; exit 1; }
ncpu=$(nproc)
[ "$ncpu" -ge 2 ] || { echo "signal_load.sh: needs 2 cores (server and client apart)" >&2; exit 1; }

hard=$(ulimit -Hn)
ulimit -n "$hard"
work=$(mktemp -d /tmp/signal_load.XXXXXX)
spid=
gpid=
cleanup() {
  [ -n "$gpid" ] && kill "$gpid" 2>/dev/null && wait "$gpid" 2>/dev/null
  [ -n "$spid" ] && kill "$spid" 2>/dev/null && wait "$spid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

flags=(--max-connections 200000 --max-connections-per-ip 0 --max-unjoined-per-ip 0
       --max-joins-per-ip-per-sec 0 --max-room-creates-per-ip-per-min 0 --max-rooms 1000000
       --max-held-per-ip 0 --rate-limit 100000 --idle-timeout "$idle_timeout" --log-level warn)

# one run: binary, label, members -> key=value lines in $work/<label>.<members>.<rep>
run_one() {
  local bin=$1 label=$2 n=$3 rep=$4 port out extra
  out=$work/$label.$n.$rep
  for try in 1 2 3 4 5; do
    port=$((20000 + RANDOM % 30000))
    extra=()
    [ "$label" = after ] && [ -n "$batch_ms" ] && extra=(--keepalive-batch-ms "$batch_ms")
    taskset -c 0 "$bin" --listen "127.0.0.1:$port" "${flags[@]}" "${extra[@]}" >"$work/server.log" 2>&1 &
    spid=$!
    for _ in $(seq 50); do
      (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
      sleep 0.1
    done
    kill -0 "$spid" 2>/dev/null && break
    wait "$spid" 2>/dev/null || true
    spid=
  done
  [ -n "$spid" ] || { echo "signal_load.sh: server did not start:" >&2; cat "$work/server.log" >&2; exit 1; }
  sleep 0.5
  # (in the background and waited for: an interrupt stops it at once)
  taskset -c 1 "$gen" --port "$port" --members "$n" --pairs "$pairs" --rate "$rate" \
      --seconds "$seconds" --idle-seconds "$idle_seconds" --server-pid "$spid" --sources 4 \
      --concurrency 256 --join-rate "$join_rate" >"$out" 2>"$out.err" &
  gpid=$!
  if ! wait "$gpid"; then
    echo "signal_load.sh: generator failed ($label, $n members):" >&2
    cat "$out.err" >&2
  fi
  gpid=
  kill "$spid"; wait "$spid" 2>/dev/null || true; spid=
  printf '%-7s %6d rep %d (load %s): %s\n' "$label" "$n" "$rep" "$(cut -d' ' -f1 /proc/loadavg)" \
    "$(grep -E '^(joins_per_s|server_cpu_us_per_join|server_cpu_us_per_signal|server_idle_cpu_pct|server_rss_bytes_per_member|latency_p50_ms|latency_p99_ms|signals_delivered|signals_sent|errors|unexpected_closes)=' "$out" | tr '\n' ' ')"
}

labels=(after)
[ -n "$before" ] && labels=(before after)
echo "# tsunagu-signal load: rate $rate signals/s over $pairs pairs, ${seconds}s; idle window ${idle_seconds}s; idle-timeout ${idle_timeout}s; keepalive-batch-ms ${batch_ms:-default}; RLIMIT_NOFILE $hard"
run_sizes=()
for n in $sizes; do
  if [ $((n + 2 * pairs + 64)) -gt "$hard" ]; then
    echo "# SIZE $n REFUSED: needs $((n + 2 * pairs + 64)) descriptors per process, hard RLIMIT_NOFILE is $hard (raise it: ulimit -Hn, LimitNOFILE=)" >&2
    continue
  fi
  run_sizes+=("$n")
done
for rep in $(seq "$reps"); do
  for n in "${run_sizes[@]}"; do
    for l in "${labels[@]}"; do
      bin=$after
      [ "$l" = before ] && bin=$before
      run_one "$bin" "$l" "$n" "$rep"
    done
  done
done

# medians over the repetitions, and after/before ratios
python3 - "$work" "$reps" "${run_sizes[*]}" "${labels[*]}" <<'EOF'
import statistics, sys
work, reps, sizes, labels = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(), sys.argv[4].split()
keys = [("joins_per_s", "joins/s", "%.0f"), ("latency_p50_ms", "p50 ms", "%.2f"),
        ("latency_p99_ms", "p99 ms", "%.2f"),
        ("server_cpu_us_per_join", "CPU us/join", "%.1f"),
        ("server_cpu_us_per_signal", "CPU us/signal", "%.1f"),
        ("server_idle_cpu_pct", "idle CPU %", "%.2f"),
        ("server_rss_bytes_per_member", "RSS B/member", "%.0f")]
def load(label, n, rep):
    d = {}
    try:
        for line in open("%s/%s.%s.%d" % (work, label, n, rep)):
            k, _, v = line.strip().partition("=")
            d[k] = float(v)
    except (OSError, ValueError):
        pass
    return d
print("\n# medians of %d repetitions" % reps)
print("| members | binary | " + " | ".join(k[1] for k in keys) + " | delivered | errors |")
print("|" + " --- |" * (len(keys) + 4))
med = {}
for n in sizes:
    for l in labels:
        runs = [load(l, n, r) for r in range(1, reps + 1)]
        row = []
        for k, _, f in keys:
            vals = [r[k] for r in runs if k in r]
            med[(n, l, k)] = statistics.median(vals) if vals else None
            row.append(f % med[(n, l, k)] if vals else "-")
        sent = sum(r.get("signals_sent", 0) for r in runs)
        got = sum(r.get("signals_delivered", 0) for r in runs)
        errs = sum(r.get("errors", 0) + r.get("unexpected_closes", 0) +
                   r.get("connect_failures", 0) + r.get("handshake_failures", 0) for r in runs)
        print("| %s | %s | %s | %d/%d | %d |" % (n, l, " | ".join(row), got, sent, errs))
if "before" in labels:
    print("\n# after / before (medians)")
    print("| members | " + " | ".join(k[1] for k in keys) + " |")
    print("|" + " --- |" * (len(keys) + 1))
    for n in sizes:
        cells = []
        for k, _, _ in keys:
            a, b = med.get((n, "after", k)), med.get((n, "before", k))
            cells.append("%.3gx" % (a / b) if a is not None and b else "-")
        print("| %s | %s |" % (n, " | ".join(cells)))
EOF
