#!/bin/bash
# relay_vs_coturn.sh - tsunagu-relay and Debian's coturn side by side, same load.
#
# For each level it starts a fresh server pinned to core 0 (taskset), runs
# tsunagu-turnload pinned to core 1, and records the generator's JSON line,
# which carries the server's CPU (per-thread schedstat, ns) and memory sampled
# around the measured phase only. Runs are interleaved (relay, coturn, relay,
# coturn...) so a burst of noise from other processes hits both. At the end
# bench/report.py prints medians, min-max and the tsunagu/coturn ratios.
#
#   bench/relay_vs_coturn.sh --quick          # ~3 minutes, 1 repetition
#   bench/relay_vs_coturn.sh                  # full: 3 repetitions, every level (17-23 min)
#   options: --reps N  --build DIR  --out DIR  --servers "relay coturn"  --uclient
#            --levels "fixed peer lossless latency flood tcp tls alloc" (a subset)
#            --latency-rate MSGS/S
# "fixed" and "peer" also run the echo floor at the same datagram rates; the
# table ends with the issue 16 targets block (docs/performance.md).
#
# Loopback only; ports are picked free at run time; every process started is
# killed by PID on exit (trap), also on failure or Ctrl-C.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
BUILD=$ROOT/build
MODE=full
REPS=
OUT=
SERVERS="relay coturn"
UCLIENT=0
LEVELS="fixed peer lossless latency flood tcp tls alloc"
LATRATE=
while [ $# -gt 0 ]; do
    case "$1" in
    --quick) MODE=quick ;;
    --full) MODE=full ;;
    --reps) REPS=$2; shift ;;
    --build) BUILD=$2; shift ;;
    --out) OUT=$2; shift ;;
    --servers) SERVERS=$2; shift ;;
    --uclient) UCLIENT=1 ;;
    --levels) LEVELS=$2; shift ;;
    --latency-rate) LATRATE=$2; shift ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    *) echo "relay_vs_coturn: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
[ -n "$REPS" ] || { [ $MODE = quick ] && REPS=1 || REPS=3; }

for tool in turnserver taskset ss; do
    command -v $tool >/dev/null || { echo "relay_vs_coturn: $tool missing (apt-get install coturn util-linux iproute2)" >&2; exit 1; }
done
[ -x /usr/bin/python3 ] || { echo "relay_vs_coturn: /usr/bin/python3 missing (apt-get install python3)" >&2; exit 1; }
[ "$(nproc)" -ge 2 ] || echo "relay_vs_coturn: warning: fewer than 2 cores, server and load share one" >&2

# ---- build if needed ----
if [ ! -d "$BUILD" ]; then meson setup "$BUILD" "$ROOT" >/dev/null; fi
ninja -C "$BUILD" >/dev/null
TURNLOAD=$BUILD/bench/tsunagu-turnload
ECHO=$BUILD/bench/tsunagu-echo
RELAY=$BUILD/relay/tsunagu-relay
if [[ " $SERVERS " == *" relay "* ]] && [ ! -x "$RELAY" ]; then
    echo "relay_vs_coturn: $RELAY not built (relay not merged yet?): measuring coturn only" >&2
    SERVERS=${SERVERS//relay/}
fi
SERVERS=$(echo $SERVERS)

D=$(mktemp -d /tmp/relay_vs_coturn.XXXXXX)
[ -n "$OUT" ] || OUT=$D
mkdir -p "$OUT"
RES=$OUT/results.jsonl
: > "$RES"
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    [ "$OUT" = "$D" ] || rm -rf "$D"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A loopback port free for both UDP and TCP (the relay listens on both).
free_port() {
    /usr/bin/python3 -c "import socket
for _ in range(100):
    t = socket.socket(socket.AF_INET, socket.SOCK_STREAM); t.bind(('127.0.0.1', 0))
    p = t.getsockname()[1]
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        u.bind(('127.0.0.1', p)); print(p); break
    except OSError:
        pass
"
}
# A relayed-port range below Linux's ephemeral range (32768-60999), so other
# programs' outgoing sockets cannot take relay ports: of 13 candidate 10000-port
# ranges the one with the fewest UDP ports in use (other sessions' tests come
# and go; a server skips a busy port).
pick_range() {
    local used lo best= bestn=999999 n
    used=$(ss -Huan | awk '{n=split($4,a,":"); print a[n]}')
    for lo in $(seq 10000 1000 22000); do
        n=$(echo "$used" | awk -v lo=$lo -v hi=$((lo + 9999)) '$1>=lo && $1<=hi {c++} END {print c+0}')
        if [ "$n" -lt "$bestn" ]; then best=$lo; bestn=$n; fi
        [ "$n" -eq 0 ] && break
    done
    echo "$best-$((best + 9999))"
}

SPID=
SPORT=
# WITH_TLS=1: the servers also listen for TURN over TLS on TPORT (same ECDSA
# P-256 certificate for both), and SPORT becomes that port for the generator
WITH_TLS=0
TPORT=
# launch_server NAME: start it once on fresh ports; 0 when it listens
launch_server() {
    local name=$1 range lo hi mport i tlsr=() tlsc=(--no-tls)
    SPORT=$(free_port)
    if [ $WITH_TLS = 1 ]; then
        TPORT=$(free_port)
        tlsr=(--tls-listen 127.0.0.1:$TPORT --cert "$D/cert.pem" --key "$D/key.pem")
        tlsc=(--tls-listening-port=$TPORT --cert="$D/cert.pem" --pkey="$D/key.pem")
    fi
    range=$(pick_range); lo=${range%-*}; hi=${range#*-}
    : > "$D/server.log"
    case $name in
    relay)
        mport=$(free_port)
        taskset -c 0 "$RELAY" --listen 127.0.0.1:$SPORT --relay-ip 127.0.0.1 --relay-ports $range \
            --realm bench --user u:p --metrics-listen 127.0.0.1:$mport --threads 1 \
            --max-allocations 100000 --max-allocations-per-user 100000 --allow-peer 127.0.0.1/32 \
            --log-level warn --drain-seconds 0 "${tlsr[@]}" >"$D/server.log" 2>&1 &
        ;;
    coturn)
        rm -f "$D/turndb"
        taskset -c 0 turnserver -n --listening-ip=127.0.0.1 --listening-port=$SPORT \
            --relay-ip=127.0.0.1 --min-port=$lo --max-port=$hi --realm=bench --lt-cred-mech --user=u:p \
            --allow-loopback-peers "${tlsc[@]}" --no-dtls --no-cli --no-rfc5780 --no-software-attribute \
            --relay-threads 1 --pidfile="$D/turnserver.pid" --userdb="$D/turndb" \
            --log-file="$D/server.log" --simple-log >/dev/null 2>&1 &
        ;;
    echo1|echo64)
        taskset -c 0 "$ECHO" --batch ${name#echo} --max-seconds 600 >"$D/server.log" 2>&1 &
        ;;
    esac
    SPID=$!
    PIDS+=("$SPID")
    for i in $(seq 1 150); do # bounded: 15 s (the machine is shared and can be slow)
        if [[ $name == echo* ]]; then
            SPORT=$(awk '/^port/ {print $2}' "$D/server.log" 2>/dev/null || true)
            [ -n "$SPORT" ] && return 0
        elif ss -Huln "sport = :$SPORT" | grep -q . &&
             { [ $WITH_TLS = 0 ] || ss -Htln "sport = :$TPORT" | grep -q .; }; then
            [ $WITH_TLS = 0 ] || SPORT=$TPORT
            sleep 0.2; return 0
        fi
        kill -0 $SPID 2>/dev/null || break
        sleep 0.1
    done
    echo "relay_vs_coturn: $name did not start (port $SPORT, relay ports $range); its log:" >&2
    tail -5 "$D/server.log" >&2 || true
    stop_server
    return 1
}
# start_server NAME: up to 3 tries with new ports; sets SPID and SPORT, or fails
start_server() {
    local t
    for t in 1 2 3; do
        launch_server "$1" && return 0
    done
    return 1
}
stop_server() {
    kill "$SPID" 2>/dev/null || true
    wait "$SPID" 2>/dev/null || true
    local keep=() p
    for p in "${PIDS[@]}"; do [ "$p" = "$SPID" ] || keep+=("$p"); done
    PIDS=("${keep[@]}")
}

# run_level LEVEL SERVER TURNLOAD-ARGS...: one fresh server, one generator run
run_level() {
    local level=$1 srv=$2 out
    shift 2
    if ! start_server "$srv"; then
        echo "{\"label\":\"$srv|$level\",\"failed\":true}" >> "$RES"
        return 0
    fi
    if [[ $srv == echo* ]]; then
        out=$(taskset -c 1 timeout 300 "$TURNLOAD" --mode direct --peer 127.0.0.1:$SPORT \
              --server-pid $SPID --label "$srv|$level" "$@" 2>"$D/run.err" || true)
    else
        out=$(taskset -c 1 timeout 300 "$TURNLOAD" --server 127.0.0.1:$SPORT --user u:p \
              --server-pid $SPID --label "$srv|$level" "$@" 2>"$D/run.err" || true)
    fi
    stop_server
    { echo "== $srv $level"; cat "$D/run.err"; } >> "$OUT/turnload.err"
    if [ -z "$out" ]; then
        echo "relay_vs_coturn: $srv $level produced no result:" >&2
        sed 's/^/    /' "$D/run.err" >&2
        echo "{\"label\":\"$srv|$level\",\"failed\":true}" >> "$RES"
        return 0
    fi
    echo "$out" >> "$RES"
    echo "$out" | /usr/bin/python3 -c 'import json,sys
for l in sys.stdin:
    j=json.loads(l); k=j.get("server_us_per_pkt", j.get("server_us_per_cycle"))
    print("  %-34s loss %-8s rate %-7s us/unit %-7s p50 %-6s p99 %-6s other-cpu %sms" % (j["label"], j.get("loss","-"),
          j.get("relayed_pps", j.get("echoed_pps", j.get("cycles_per_s"))), k, j.get("lat_p50_us","-"), j.get("lat_p99_us","-"), j.get("other_cpu_ms")))' >&2
}

# each_rep LEVEL ARGS...: REPS repetitions, servers interleaved
each_rep() {
    local level=$1 r s
    shift
    for r in $(seq 1 "$REPS"); do
        for s in $SERVERS; do run_level "$level" "$s" "$@"; done
    done
}

want() { [[ " $LEVELS " == *" $1 "* ]]; }
T0=$(date +%s)
echo "relay_vs_coturn: mode $MODE, $REPS repetition(s), servers: $SERVERS; results in $RES" >&2

# Phases at fixed loads are 3 s in full mode (5 s before issue 16): CPU per packet is a
# ratio of two counters and stays within a few % between repetitions at 3 s, and the time
# saved pays for the peer, TCP/TLS 10 and floor levels within the 25-minute budget.
FDUR=$([ $MODE = quick ] && echo 2000 || echo 3000)

# The echo floor of a level (issue 16) runs right after each repetition of that level, so
# the floor and the servers it is compared with see the same noise: "floor|SIZE|PER|N" is
# the batched echo (tsunagu-echo --batch 64, core 0) with N sockets x PER messages/s, the
# datagram rate tsunagu receives and sends at N allocations x 50 messages/s: PER 50 in pair
# mode (the hand-over: one receive + one send per message), PER 100 in peer mode.
# report.py divides every figure by the server's kernel crossings (datagrams received +
# sent) per message, see docs/performance.md.
floor_run() { # SIZE PER N
    run_level "floor|$1|$2|$3" echo64 --allocations $3 --size $1 --rate $(($3 * $2)) \
        --duration-ms $FDUR
}

if want fixed; then
# ---- 1. server CPU per relayed packet at fixed offered loads (50 msgs/s per allocation) ----
if [ $MODE = quick ]; then
    FIXED="170:channel:10 170:channel:100 170:channel:1000 1200:channel:100 170:indication:100"
else
    FIXED=""
    for size in 170 1200; do for send in channel indication; do for n in 10 100 1000; do
        FIXED="$FIXED $size:$send:$n"; done; done; done
fi
# per size and allocation count: each repetition runs every send kind on every server
# (interleaved), then the floor
for sn in $(for lv in $FIXED; do echo "${lv%%:*}:${lv##*:}"; done | awk '!seen[$0]++'); do
    IFS=: read -r size n <<<"$sn"
    for r in $(seq 1 "$REPS"); do
        for lv in $FIXED; do
            IFS=: read -r lsize send ln <<<"$lv"
            [ "$lsize:$ln" = "$sn" ] || continue
            for s in $SERVERS; do
                run_level "fixed|$size|$send|$n" $s --mode pair --send $send --size $size \
                    --allocations $n --rate $((n * 50)) --duration-ms $FDUR
            done
        done
        floor_run $size 50 $n
    done
done
fi

if want peer; then
# ---- 1b. peer mode (issue 16): client -> relay -> a peer outside the relay -> relay -> client,
# the common call with one side relayed. The peer is tsunagu-echo (recvmmsg/sendmmsg of 64)
# on the generator's core 1, started once for the section; each message crosses the server
# twice, as in pair mode (relayed packets = 2 x messages received).
if [ $MODE = quick ]; then
    PEERLV="170:100 170:1000"
else
    PEERLV="170:100 170:1000 1200:100 1200:1000"
fi
taskset -c 1 "$ECHO" --batch 64 --max-seconds 3600 >"$D/peer.log" 2>&1 &
PEERPID=$!
PIDS+=("$PEERPID")
PEERPORT=
for i in $(seq 1 100); do # bounded: 10 s
    PEERPORT=$(awk '/^port/ {print $2}' "$D/peer.log" 2>/dev/null || true)
    [ -n "$PEERPORT" ] && break
    sleep 0.1
done
[ -n "$PEERPORT" ] || { echo "relay_vs_coturn: the peer echo did not start" >&2; exit 1; }
for lv in $PEERLV; do
    IFS=: read -r size n <<<"$lv"
    for r in $(seq 1 "$REPS"); do
        for s in $SERVERS; do
            run_level "peer|$size|channel|$n" $s --mode echo --peer 127.0.0.1:$PEERPORT \
                --send channel --size $size --allocations $n --rate $((n * 50)) --duration-ms $FDUR
        done
        floor_run $size 100 $n
    done
done
kill "$PEERPID" 2>/dev/null || true
wait "$PEERPID" 2>/dev/null || true
fi

if want fixed; then
# ---- the floor table as before issue 16: both echoes, N sockets x 100 messages/s = the
# packets/s a server relays at N allocations x 50 messages/s, 170 B ----
for n in $([ $MODE = quick ] && echo "100" || echo "10 100 1000"); do
    for r in $(seq 1 "$REPS"); do
        for e in echo1 echo64; do
            run_level "fixed|170|raw|$n" $e --allocations $n --size 170 --rate $((n * 100)) \
                --duration-ms $FDUR
        done
    done
done

fi

if want lossless; then
# ---- 2. lossless throughput: offered rate in steps, stop at the first with loss >= 0.1% ----
# rates are messages/s; each delivered message is 2 relayed packets
if [ $MODE = quick ]; then
    STEPS=20000,40000,60000,80000,100000,120000,140000,160000,200000,250000,300000
    STEPDUR=1000
else
    # issue 16: 20k steps and 2 s (10k steps of 2.5 s before) keep the full run under 25 min
    STEPS=20000,40000,60000,80000,100000,120000,140000,160000,180000,200000,250000,300000
    STEPDUR=2000
fi
# 1 ms ticks here: at 100k+ messages/s the generator needs its sendmmsg batches
each_rep "lossless|170|channel|10" --mode pair --size 170 --allocations 10 --steps $STEPS \
    --tick-us 1000 --duration-ms $STEPDUR --max-loss 0.001 --retries 2
# the echo reference on the same core: one packet per syscall and batches of 64
ESTEPS=20000,40000,80000,120000,160000,200000,250000,300000,350000,400000,500000,600000
[ $MODE = full ] || ESTEPS=40000,80000,120000,160000,200000,250000,300000,400000,500000,600000
for r in $(seq 1 "$REPS"); do
    for e in echo1 echo64; do
        run_level "lossless|170|raw|10" $e --allocations 10 --size 170 --steps $ESTEPS \
            --tick-us 1000 --duration-ms $STEPDUR --max-loss 0.001 --retries 2
    done
done

fi

if want latency; then
# ---- 3. latency at half of coturn's lossless rate ----
HALF=${LATRATE:-$(/usr/bin/python3 "$HERE/report.py" --half-lossless coturn "$RES")}
[ "$HALF" -gt 0 ] 2>/dev/null || HALF=20000
echo "relay_vs_coturn: latency level at $HALF msgs/s (half of coturn's lossless rate)" >&2
# 1 ms ticks, as in the lossless search, so "half the lossless rate" is half the capacity
# measured under the same arrival pattern
each_rep "latency|170|channel|10|$HALF" --mode pair --size 170 --allocations 10 --rate $HALF \
    --tick-us 1000 --duration-ms $FDUR

fi

if want flood; then
# ---- 4. flood (short: other helpers share this machine) ----
each_rep "flood|170|channel|10" --mode pair --size 170 --allocations 10 --rate 0 --duration-ms 2000
[ $MODE = quick ] || each_rep "flood|1200|channel|10" --mode pair --size 1200 --allocations 10 --rate 0 --duration-ms 2000

fi

# ---- 4b. clients over TCP, then TLS (RFC 8656 s.3.1 framing; relayed side UDP): what browsers
# fall back to behind firewalls that block UDP. Fixed loads and a short flood, channels, 170 B.
# The generator reads the receive time off the stream (no kernel timestamps over TCP), so only
# CPU, loss and rate are compared here, not latency. For TLS both servers get the same ECDSA
# P-256 certificate, which the generator does not verify (it measures servers): what differs
# from TCP is the servers' TLS work per frame.
for tr in tcp tls; do
    want $tr || continue
    if [ $tr = tls ]; then
        command -v openssl >/dev/null ||
            { echo "relay_vs_coturn: openssl missing (apt-get install openssl)" >&2; exit 1; }
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
            -subj /CN=127.0.0.1 -keyout "$D/key.pem" -out "$D/cert.pem" 2>/dev/null
        WITH_TLS=1
    fi
    for n in 10 100 1000; do
        each_rep "${tr}fixed|170|channel|$n" --transport $tr --mode pair --size 170 \
            --allocations $n --rate $((n * 50)) --duration-ms $FDUR
    done
    each_rep "${tr}flood|170|channel|10" --transport $tr --mode pair --size 170 --allocations 10 \
        --rate 0 --duration-ms 2000
    WITH_TLS=0
done

if want alloc; then
# ---- 5. allocation rate, and memory after many allocation cycles ----
each_rep "allocrate" --mode alloc --concurrency 32 --duration-ms 3000
CYC=$([ $MODE = quick ] && echo 10000 || echo 50000)
each_rep "cycles|$CYC" --mode alloc --concurrency 32 --max-cycles $CYC --duration-ms 60000

fi

# ---- 6. optional cross-check: turnutils_uclient on coturn for one level ----
if [ $UCLIENT = 1 ] && command -v turnutils_uclient >/dev/null; then
    for r in $(seq 1 "$REPS"); do
        start_server coturn || continue
        read -r c0 < <(awk '{s+=$1} END {print s}' /proc/$SPID/task/*/schedstat)
        uout=$(taskset -c 1 timeout 120 turnutils_uclient -u u -w p -e 127.0.0.1 -r 3480 -n 250 -m 10 \
               -l 170 -y -c -p $SPORT 127.0.0.1 2>&1 || true)
        read -r c1 < <(awk '{s+=$1} END {print s}' /proc/$SPID/task/*/schedstat)
        stop_server
        # final totals line: "start_mclient: tot_send_msgs=N, tot_recv_msgs=M"
        tot=$(echo "$uout" | sed -n 's/.*start_mclient: tot_send_msgs=\([0-9]*\), tot_recv_msgs=\([0-9]*\).*/\1 \2/p' | tail -1)
        read -r sentm recvm <<<"${tot:-0 0}"
        echo "{\"label\":\"uclient-coturn|fixed|170|channel|10\",\"tool\":\"turnutils_uclient\",\"server_cpu_ms\":$(( (c1 - c0) / 1000000 )),\"sent\":$sentm,\"received\":$recvm,\"server_us_per_pkt_incl_setup\":$(awk -v c=$((c1 - c0)) -v r="$recvm" 'BEGIN {if (r > 0) printf "%.2f", c / 1000 / (2 * r); else printf "null"}')}" >> "$RES"
    done
fi

echo "relay_vs_coturn: done in $(( $(date +%s) - T0 )) s" >&2
/usr/bin/python3 "$HERE/report.py" "$RES" | tee "$OUT/table.md"
