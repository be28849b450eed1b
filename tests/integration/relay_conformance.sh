#!/bin/bash
# Start tsunagu-relay with the DESIGN.md flags on free 127.0.0.1 ports, run the black-box
# TURN conformance suite against it (every check must pass), then check /metrics and
# /healthz on its metrics port. The relay is killed by PID at the end, also on failure.
#
# Usage: relay_conformance.sh [RELAY_BIN]   (or env RELAY_BIN); env TIMEOUT_MULT stretches waits.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
PY=/usr/bin/python3
RELAY=${1:-${RELAY_BIN:-}}
MULT=${TIMEOUT_MULT:-1}
# whole-number factor for shell arithmetic (TIMEOUT_MULT may be fractional)
IMULT=$(/usr/bin/python3 -c "import math,sys; print(max(1, math.ceil(float(sys.argv[1] or 1))))" "$MULT" 2>/dev/null || echo 1)

if [ -z "$RELAY" ] || [ ! -x "$RELAY" ]; then
  echo "FAIL: tsunagu-relay binary not given or not executable (arg 1 or RELAY_BIN): '$RELAY'" >&2
  exit 1
fi
[ -x "$PY" ] || { echo "FAIL: $PY missing: install Debian package 'python3'" >&2; exit 1; }

DIR=$(mktemp -d /tmp/relay-conform.XXXXXX)
PID=""
cleanup() {
  if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
    kill "$PID" 2>/dev/null
    for _ in $(seq 1 50); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$PID" 2>/dev/null
  fi
  rm -rf "$DIR"
}
trap cleanup EXIT INT TERM

# Listen port free for UDP and TCP, a metrics port, and a relay range outside the
# ephemeral range (32768-60999) so no other program's socket sits on a relay port.
read -r PORT MPORT RLO RHI < <($PY "$HERE/ports.py" 2)
REALM=conform.example
USER=alice
PASS=alicepw
SECRET=conformsecret
QUOTA=3

# 127.0.0.2 is the suite's peer; 127.0.0.1 (where the relay listens) must stay denied,
# while the relay's own relayed addresses on 127.0.0.1 and ::1 stay allowed.
"$RELAY" --listen "127.0.0.1:$PORT" --relay-ip 127.0.0.1 --relay-ip ::1 \
  --relay-ports "$RLO-$RHI" --realm "$REALM" --user "$USER:$PASS" --auth-secret "$SECRET" \
  --allow-peer 127.0.0.2/32 --max-allocations-per-user "$QUOTA" --max-lifetime 3600 \
  --nonce-ttl 3 --metrics-listen "127.0.0.1:$MPORT" >"$DIR/relay.log" 2>&1 &
PID=$!

ready=0
for _ in $(seq 1 $((50 * IMULT))); do
  if $PY -c "
import sys, urllib.request; sys.path.insert(0, '$HERE'); import turnclient as t
c = t.Client(('127.0.0.1', $PORT), timeout=0.2)
r = c.request(t.Message(t.BINDING), auth=False)
urllib.request.urlopen('http://127.0.0.1:$MPORT/healthz', timeout=0.5).read()
sys.exit(0 if r is not None and r.cls == t.SUCCESS else 1)" 2>/dev/null; then ready=1; break; fi
  kill -0 "$PID" 2>/dev/null || break
  sleep 0.1
done
if [ $ready -ne 1 ]; then
  echo "FAIL: tsunagu-relay did not answer Binding on 127.0.0.1:$PORT and /healthz on :$MPORT" >&2
  tail -30 "$DIR/relay.log" >&2
  exit 1
fi

echo "# tsunagu-relay on 127.0.0.1:$PORT, relay ports $RLO-$RHI, metrics :$MPORT"
$PY "$HERE/turn_conformance.py" --server "127.0.0.1:$PORT" --user "$USER:$PASS" --secret "$SECRET" \
  --realm "$REALM" --peer-ip 127.0.0.2 --v6-relay --quota "$QUOTA" --max-lifetime 3600 \
  --tcp-too --nonce-lifetime 3 --timeout "$((2 * IMULT))" --time-mult "$MULT" ${JSON_OUT:+--json "$JSON_OUT"} ${SUITE_VERBOSE:+-v}
rc=$?

# /metrics: the DESIGN.md names are there, the suite's refusals were counted, and every
# allocation the suite released is gone from the gauge.
$PY - "$MPORT" "$MULT" <<'EOF'
import sys, time, urllib.request
port, mult = int(sys.argv[1]), float(sys.argv[2])
def scrape():
    body = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=2 * mult).read().decode()
    vals = {}
    for line in body.splitlines():
        if not line or line.startswith("#"):
            continue
        name_labels, _, value = line.rpartition(" ")
        name = name_labels.split("{", 1)[0]
        vals[name] = vals.get(name, 0.0) + float(value)
    return vals
fails = []
h = urllib.request.urlopen("http://127.0.0.1:%d/healthz" % port, timeout=2 * mult)
if h.status != 200:
    fails.append("/healthz answered %d" % h.status)
v = scrape()
for name in ("tsunagu_relay_allocations", "tsunagu_relay_allocations_total",
             "tsunagu_relay_auth_failures_total", "tsunagu_relay_packets_total",
             "tsunagu_relay_bytes_total", "tsunagu_relay_permission_denied_total"):
    if name not in v:
        fails.append("%s missing from /metrics" % name)
for name in ("tsunagu_relay_allocations_total", "tsunagu_relay_auth_failures_total",
             "tsunagu_relay_permission_denied_total", "tsunagu_relay_packets_total"):
    if name in v and v[name] <= 0:
        fails.append("%s is %g after the suite" % (name, v[name]))
deadline = time.monotonic() + 3 * mult
while v.get("tsunagu_relay_allocations", 0) != 0 and time.monotonic() < deadline:
    time.sleep(0.2)
    v = scrape()
if v.get("tsunagu_relay_allocations", 0) != 0:
    fails.append("tsunagu_relay_allocations is %g after every allocation was released" % v["tsunagu_relay_allocations"])
for f in fails:
    print("FAIL metrics: %s" % f)
if not fails:
    print("PASS metrics (%d allocations, %d auth failures, %d permission denials counted)" % (
        v.get("tsunagu_relay_allocations_total", 0), v.get("tsunagu_relay_auth_failures_total", 0),
        v.get("tsunagu_relay_permission_denied_total", 0)))
sys.exit(1 if fails else 0)
EOF
mrc=$?

kill -0 "$PID" 2>/dev/null || { echo "FAIL: tsunagu-relay died during the run" >&2; tail -30 "$DIR/relay.log" >&2; exit 1; }
if [ $rc -ne 0 ] || [ $mrc -ne 0 ]; then
  echo "# last relay log lines:" >&2
  tail -15 "$DIR/relay.log" >&2
  exit 1
fi
exit 0
