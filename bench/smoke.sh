#!/bin/bash
# smoke.sh - the load generator against a real server, for `meson test --suite bench`.
#
#   bench/smoke.sh relay|coturn SERVER_BINARY TURNLOAD_BINARY
#   bench/smoke.sh relay|coturn SERVER_BINARY TURNLOAD_BINARY --peer ECHO_BINARY
#
# With --peer (issue 16's levels, test bench_peer_smoke): instead of the runs
# below, peer mode (client -> server -> tsunagu-echo outside -> back) over UDP,
# TCP and TLS with 100 allocations, pair mode at 100, the echo floor in direct
# mode, and bench/report.py over those lines: its per-crossing table and issue
# 16 targets block must show figures. Against tsunagu-relay it also asserts the
# relay's own packet counters saw every echoed message in both directions.
#
# Starts the server on free loopback ports (UDP, TCP and TLS with a throw-away
# certificate), runs tsunagu-turnload for a couple of seconds with 10
# allocations over each transport (channels, then Send indications) and a
# second of Allocate+Refresh(0) cycles, and asserts a well-formed JSON line,
# zero loss, nothing misrouted and no errors. No timing assertions: the
# machine is shared. Every process started is killed by PID on exit.
set -euo pipefail
KIND=$1 SERVER=$2 TURNLOAD=$3
PEER_ECHO=
[ "${4:-}" != --peer ] || PEER_ECHO=${5:?--peer needs the tsunagu-echo binary}
MULT=${TIMEOUT_MULT:-1}
PY=/usr/bin/python3
[ -x $PY ] || { echo "FAIL: /usr/bin/python3 missing (apt-get install python3)"; exit 1; }
command -v ss >/dev/null || { echo "FAIL: ss missing (apt-get install iproute2)"; exit 1; }
D=$(mktemp -d /tmp/bench_smoke.XXXXXX)
SPID= EPID=
cleanup() {
    [ -z "$SPID" ] || { kill "$SPID" 2>/dev/null || true; wait "$SPID" 2>/dev/null || true; }
    [ -z "$EPID" ] || { kill "$EPID" 2>/dev/null || true; wait "$EPID" 2>/dev/null || true; }
    rm -rf "$D"
}
trap cleanup EXIT

# a loopback port free for both UDP and TCP (the relay listens on both)
free_port() {
    $PY -c "import socket
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
PORT=$(free_port)
MPORT=$(free_port) # the relay's metrics
TPORT=$(free_port) # TURN over TLS, with a throw-away certificate
command -v openssl >/dev/null || { echo "FAIL: openssl missing (apt-get install openssl)"; exit 1; }
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=127.0.0.1 \
    -keyout "$D/key.pem" -out "$D/cert.pem" 2>/dev/null
# 1000 relay ports below the ephemeral range: the candidate with the fewest
# UDP ports in use (other sessions' tests come and go; servers skip busy ports)
USED=$(ss -Huan | awk '{n=split($4,a,":"); print a[n]}')
LO= BESTN=999999
for base in $(shuf -i 10-31 -n 22); do
    lo=$((base * 1000))
    n=$(echo "$USED" | awk -v lo=$lo -v hi=$((lo + 999)) '$1>=lo && $1<=hi {c++} END {print c+0}')
    if [ "$n" -lt "$BESTN" ]; then LO=$lo; BESTN=$n; fi
    [ "$n" -eq 0 ] && break
done
HI=$((LO + 999))

case $KIND in
relay)
    "$SERVER" --listen 127.0.0.1:$PORT --relay-ip 127.0.0.1 --relay-ports $LO-$HI --realm bench \
        --user u:p --metrics-listen 127.0.0.1:$MPORT --max-allocations-per-user 1000 --drain-seconds 0 --allow-peer 127.0.0.1/32 \
        --tls-listen 127.0.0.1:$TPORT --cert "$D/cert.pem" --key "$D/key.pem" >"$D/server.log" 2>&1 &
    ;;
coturn)
    "$SERVER" -n --listening-ip=127.0.0.1 --listening-port=$PORT --relay-ip=127.0.0.1 \
        --min-port=$LO --max-port=$HI --realm=bench --lt-cred-mech --user=u:p \
        --allow-loopback-peers --tls-listening-port=$TPORT --cert="$D/cert.pem" --pkey="$D/key.pem" \
        --no-dtls --no-cli --no-rfc5780 --no-software-attribute \
        --pidfile="$D/turnserver.pid" --userdb="$D/turndb" --log-file="$D/server.log" \
        --simple-log >/dev/null 2>&1 &
    ;;
*) echo "FAIL: unknown server kind $KIND"; exit 1 ;;
esac
SPID=$!
for i in $(seq 1 $((50 * MULT))); do
    ss -Huln "sport = :$PORT" | grep -q . && break
    kill -0 $SPID 2>/dev/null || { echo "FAIL: server exited:"; cat "$D/server.log"; exit 1; }
    sleep 0.1
done
ss -Huln "sport = :$PORT" | grep -q . || { echo "FAIL: server not listening on $PORT"; exit 1; }

check() { # $1 = JSON line, $2 = expected mode, $3 = allocations (default 10)
    $PY - "$1" "$2" "${3:-10}" <<'EOF'
import json, sys
j = json.loads(sys.argv[1])
mode = sys.argv[2]
nalloc = int(sys.argv[3])
def need(cond, what):
    if not cond:
        print("FAIL: %s in %s" % (what, sys.argv[1])); sys.exit(1)
need(j.get("tool") == "tsunagu-turnload" and j.get("mode") == mode, "wrong tool/mode")
need(j.get("errors") == 0, "errors")
if mode == "alloc":
    need(j.get("cycles", 0) > 0, "no allocation cycles")
    need(j.get("server_us_per_cycle", 0) > 0, "no server CPU sampled")
else:
    need(j["allocations"] == nalloc and j["sent"] > 0, "nothing sent")
    need(j["received"] == j["sent"] and j["loss"] == 0, "loss")
    need(j["misrouted"] == 0 and j["foreign"] == 0, "misrouted or foreign packets")
    need(j.get("relayed_pps", j.get("echoed_pps", 0)) > 0 and j["lat_p50_us"] >= 0 and j["lat_p99_us"] >= j["lat_p50_us"],
         "bad rate/latency fields")
    need(j.get("server_cpu_ms", -1) >= 0 and j.get("server_hwm_kb", 0) > 0, "no server sample")
print("ok %s %s: sent %d received %d" % (mode, j.get("send", ""), j.get("sent", j.get("cycles", 0)),
      j.get("received", 0)))
EOF
}

TL=("$TURNLOAD" --server 127.0.0.1:$PORT --user u:p --server-pid $SPID --allocations 10
    --setup-timeout-ms $((10000 * MULT)))

# relayed datagrams as the relay counts them (tsunagu_relay_packets_total{direction})
relay_packets() { # $1 = client_to_peer | peer_to_client
    $PY - "$MPORT" "$1" <<'EOF'
import sys, urllib.request
body = urllib.request.urlopen("http://127.0.0.1:%s/metrics" % sys.argv[1], timeout=5).read().decode()
n = 0
for line in body.splitlines():
    if line.startswith("tsunagu_relay_packets_total{") and 'direction="%s"' % sys.argv[2] in line:
        n += int(float(line.split()[-1]))
print(n)
EOF
}

if [ -n "$PEER_ECHO" ]; then
    [ -x "$PEER_ECHO" ] || { echo "FAIL: $PEER_ECHO is not an executable"; exit 1; }
    "$PEER_ECHO" --batch 64 --max-seconds $((120 * MULT)) >"$D/echo.log" 2>&1 &
    EPID=$!
    EPORT=
    for i in $(seq 1 $((50 * MULT))); do
        EPORT=$(awk '/^port/ {print $2}' "$D/echo.log")
        [ -n "$EPORT" ] && break
        sleep 0.1
    done
    [ -n "$EPORT" ] || { echo "FAIL: tsunagu-echo did not start:"; cat "$D/echo.log"; exit 1; }
    : > "$D/results.jsonl"
    # peer mode over each transport; the relay's counters must see every message both ways
    for transport in udp tcp tls; do
        port=$PORT
        [ $transport = tls ] && port=$TPORT
        if [ "$KIND" = relay ]; then c0=$(relay_packets client_to_peer); p0=$(relay_packets peer_to_client); fi
        out=$(timeout $((30 * MULT)) "${TL[@]}" --server 127.0.0.1:$port --mode echo \
              --peer 127.0.0.1:$EPORT --transport $transport --allocations 100 --rate 5000 \
              --duration-ms 1500 --drain-ms $((1000 * MULT)) --label "$KIND|peer|170|channel|100") ||
            { echo "FAIL: turnload (peer, $transport) exited $?"; exit 1; }
        check "$out" echo 100
        echo "$out" | grep -q "\"transport\":\"$transport\"" || { echo "FAIL: not over $transport: $out"; exit 1; }
        [ $transport = udp ] && echo "$out" >> "$D/results.jsonl"
        if [ "$KIND" = relay ]; then
            c1=$(relay_packets client_to_peer); p1=$(relay_packets peer_to_client)
            got=$(echo "$out" | $PY -c 'import json,sys; print(json.load(sys.stdin)["received"])')
            [ "$got" -gt 0 ] && [ $((c1 - c0)) -ge "$got" ] && [ $((p1 - p0)) -ge "$got" ] ||
                { echo "FAIL: relay counted $((c1 - c0)) client_to_peer, $((p1 - p0)) peer_to_client for $got messages echoed"; exit 1; }
            echo "ok relay counters ($transport): client_to_peer +$((c1 - c0)), peer_to_client +$((p1 - p0)) for $got messages"
        fi
    done
    # pair mode at the same level, and the echo floor (direct mode, no TURN) at the datagram
    # rates report.py matches: 100 sockets x 50 (pair) and x 100 (peer) messages/s
    out=$(timeout $((30 * MULT)) "${TL[@]}" --mode pair --allocations 100 --rate 5000 --duration-ms 1500 \
          --drain-ms $((1000 * MULT)) --label "$KIND|fixed|170|channel|100") ||
        { echo "FAIL: turnload (pair 100) exited $?"; exit 1; }
    check "$out" pair 100
    echo "$out" >> "$D/results.jsonl"
    for per in 50 100; do
        label="echo64|floor|170|$per|100"
        [ $per = 100 ] && label="echo64|fixed|170|raw|100"
        out=$(timeout $((30 * MULT)) "$TURNLOAD" --mode direct --peer 127.0.0.1:$EPORT --server-pid $EPID \
              --allocations 100 --rate $((100 * per)) --duration-ms 1500 --drain-ms $((1000 * MULT)) \
              --label "$label") || { echo "FAIL: turnload (direct) exited $?"; exit 1; }
        check "$out" direct 100
        echo "$out" >> "$D/results.jsonl"
    done
    # the report: per-crossing rows and the targets block carry figures, not "-"
    $PY "$(dirname "$0")/report.py" "$D/results.jsonl" > "$D/table.md" ||
        { echo "FAIL: report.py failed"; exit 1; }
    cat "$D/table.md"
    for want in "UDP peer mode: µs server CPU / relayed pkt: 170 B, channel, 100 allocs" \
                "| pair, 170 B, channel, 100 allocs x 50 msg/s |" \
                "| peer, 170 B, channel, 100 allocs x 50 msg/s |"; do
        grep -qF "$want" "$D/table.md" || { echo "FAIL: report lacks '$want'"; exit 1; }
    done
    # (the targets are tsunagu's: against coturn alone the block has no figures to show)
    for kind in $([ "$KIND" = relay ] && echo pair peer); do
        grep -E "^\| UDP fixed \($kind\): .* \| [0-9.]+x \([0-9.]+ vs [0-9.]+ µs\) \| (met|NOT met) \|$" \
            "$D/table.md" >/dev/null || { echo "FAIL: no $kind figure in the issue 16 targets block"; exit 1; }
    done
    kill -0 $SPID || { echo "FAIL: server died during the run"; exit 1; }
    echo "PASS"
    exit 0
fi
for transport in udp tcp tls; do
    for send in channel indication; do
        port=$PORT
        [ $transport = tls ] && port=$TPORT
        out=$(timeout $((30 * MULT)) "${TL[@]}" --server 127.0.0.1:$port --mode pair --send $send --transport $transport \
              --rate 500 --duration-ms 1500 --drain-ms $((1000 * MULT))) ||
            { echo "FAIL: turnload ($transport $send) exited $?"; exit 1; }
        check "$out" pair
        echo "$out" | grep -q "\"transport\":\"$transport\"" || { echo "FAIL: not over $transport: $out"; exit 1; }
    done
done
out=$(timeout $((30 * MULT)) "${TL[@]}" --mode alloc --concurrency 4 --max-cycles 200 --duration-ms 1000) ||
    { echo "FAIL: turnload (alloc) exited $?"; exit 1; }
check "$out" alloc
kill -0 $SPID || { echo "FAIL: server died during the run"; exit 1; }
echo "PASS"
