#!/usr/bin/env bash
# relay_uclient.sh - coturn's own clients against tsunagu-relay: turnutils_peer
# as the UDP echo peer and turnutils_uclient relaying through the relay.
# Asserts zero loss from uclient's totals and that the relay's /metrics saw
# every packet.
# Usage: relay_uclient.sh PATH/TO/tsunagu-relay MODE
#   MODE: udp | udp-send | tcp | tcp-send | c2c   (-send: Send indications
#   instead of channels; c2c: uclient -y, clients relay to each other, which
#   relies on the relay's own relayed addresses being allowed peers)
# uclient picks channel numbers in RFC 5766's 0x4000-0x7FFF, so the relay runs
# with --legacy-channels (RFC 8656 ChannelBind accepts only 0x4000-0x4FFF).
# Env: CLIENTS (50), MESSAGES (500), TIMEOUT_MULT.
set -euo pipefail

relay=${1:?relay binary}
mode=${2:?mode}
clients=${CLIENTS:-50}
msgs=${MESSAGES:-250}
mult=${TIMEOUT_MULT:-1}
py=/usr/bin/python3

for tool in turnutils_uclient turnutils_peer; do
  if ! command -v "$tool" >/dev/null; then
    echo "FAIL: $tool not found: install Debian package 'coturn'" >&2
    exit 1
  fi
done
[ -x "$py" ] || { echo "FAIL: $py not found: install Debian package 'python3'" >&2; exit 1; }

# GET http://127.0.0.1:PORT/PATH with the standard library (no curl needed)
http_get() {
  "$py" -c 'import sys, urllib.request
try:
    sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=3).read().decode())
except Exception:
    sys.exit(1)' "http://127.0.0.1:$mport$1"
}

tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

# free ports (UDP+TCP) for the relay, the peer (port and port+1) and metrics
read -r tport pport mport lo <<<"$($py - <<'PY'
import random, socket
def free(n=1):
    for _ in range(200):
        base = random.randrange(20000, 30000)
        socks = []
        try:
            for p in range(base, base + n):
                for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                    s = socket.socket(socket.AF_INET, kind)
                    socks.append(s)
                    s.bind(("127.0.0.1", p))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise SystemExit("no free port")
# relay range below the listen ports and outside Linux's ephemeral range (32768-60999)
print(free(), free(2), free(), random.randrange(10000, 18000))
PY
)"
hi=$((lo + 1999))

"$relay" --listen "127.0.0.1:$tport" --relay-ip 127.0.0.1 --relay-ports "$lo-$hi" \
  --user u:p --allow-peer 127.0.0.1/32 --max-allocations-per-user 1000 --legacy-channels \
  --metrics-listen "127.0.0.1:$mport" --log-level warn 2>"$tmp/relay.log" &
pids+=($!)
turnutils_peer -L 127.0.0.1 -p "$pport" >"$tmp/peer.log" 2>&1 &
pids+=($!)

for _ in $(seq 100); do
  http_get /healthz >/dev/null && break
  sleep 0.05
done
http_get /healthz >/dev/null || { echo "FAIL: relay did not start"; cat "$tmp/relay.log"; exit 1; }

opts=(-u u -w p -n "$msgs" -m "$clients" -l 170 -p "$tport")
case "$mode" in
  udp) opts+=(-e 127.0.0.1 -r "$pport") ;;
  udp-send) opts+=(-e 127.0.0.1 -r "$pport" -s) ;;
  tcp) opts+=(-e 127.0.0.1 -r "$pport" -t) ;;
  tcp-send) opts+=(-e 127.0.0.1 -r "$pport" -t -s) ;;
  c2c) opts+=(-y -c) ;;
  *) echo "unknown mode $mode"; exit 2 ;;
esac

limit=$(awk "BEGIN{print int(55 * $mult)}")
start=$(date +%s.%N)
set +e
timeout "$limit" turnutils_uclient "${opts[@]}" 127.0.0.1 >"$tmp/uclient.log" 2>&1
rc=$?
set -e
end=$(date +%s.%N)

grep -E "Total (connect|transmit) time|Total lost packets|round trip|jitter" "$tmp/uclient.log" | tail -5 || true
fail=0
if [ $rc -ne 0 ]; then echo "FAIL: turnutils_uclient exit code $rc"; fail=1; fi
lost=$(grep -oE "Total lost packets [0-9]+" "$tmp/uclient.log" | awk "{print \$4}" | tail -1 || true)
if [ -z "$lost" ]; then
  echo "FAIL: no 'Total lost packets' line in uclient output"; fail=1
elif [ "$lost" != 0 ]; then
  echo "FAIL: uclient lost $lost packets"; fail=1
fi
# uclient re-sends an Allocate whose answer is slow under a new transaction
# id; the first one already made the allocation, so RFC 8656 s.7.2 requires
# 437 for the second and uclient carries on with the first. On a loaded
# machine that happens a few times; zero loss and the relay's full packet
# counts below still prove every client relayed. Any other error fails.
if grep -E "error [0-9]{3}" "$tmp/uclient.log" | grep -qv "error 437 (Allocation Mismatch)"; then
  echo "FAIL: uclient saw TURN errors:"; grep -E "error [0-9]{3}" "$tmp/uclient.log" | sort | uniq -c | head; fail=1
fi
n437=$(grep -c "error 437 (Allocation Mismatch)" "$tmp/uclient.log" || true)
if [ "${n437:-0}" -gt 0 ]; then
  echo "note: $n437 Allocate retransmission(s) with a new transaction id got 437"
  if [ "$n437" -gt 5 ]; then echo "FAIL: more 437s than retransmissions explain"; fail=1; fi
fi

# every message is one relayed packet each way through the relay
metrics=$(http_get /metrics || true)
c2p=$(echo "$metrics" | awk -F' ' '/^tsunagu_relay_packets_total\{direction="client_to_peer"\}/{print $2}')
p2c=$(echo "$metrics" | awk -F' ' '/^tsunagu_relay_packets_total\{direction="peer_to_client"\}/{print $2}')
want=$((clients * msgs))
echo "relay packets: client_to_peer=$c2p peer_to_client=$p2c (want >= $want each)"
if [ "${c2p:-0}" -lt "$want" ] || [ "${p2c:-0}" -lt "$want" ]; then
  echo "FAIL: the relay did not carry every packet"; fail=1
fi
kill -0 "${pids[0]}" 2>/dev/null || { echo "FAIL: relay died"; fail=1; }
# stop the relay cleanly (drain, then a second TERM) so sanitizer builds run
# their exit checks, and look for their reports
kill -TERM "${pids[0]}" 2>/dev/null; sleep 0.1; kill -TERM "${pids[0]}" 2>/dev/null || true
rrc=0; wait "${pids[0]}" || rrc=$?
[ "$rrc" = 0 ] || { echo "FAIL: relay exit status $rrc"; fail=1; }
if grep -qE "runtime error|Sanitizer" "$tmp/relay.log"; then
  echo "FAIL: sanitizer report in the relay log"; fail=1
fi
printf "mode=%s clients=%s messages=%s wall=%.1fs\n" "$mode" "$clients" "$msgs" \
  "$(awk "BEGIN{print $end - $start}")"
if [ $fail -ne 0 ]; then
  echo "--- relay log"; tail -20 "$tmp/relay.log"
  echo "--- uclient log"; tail -20 "$tmp/uclient.log"
  exit 1
fi
echo "PASS"
