#!/bin/bash
# Run the black-box TURN conformance suite against Debian's coturn (turnserver 4.6.1),
# configured as close to tsunagu-relay's DESIGN.md defaults as coturn can express.
#
# Usage: coturn_conformance.sh [--expect-failures "name name ..."] [--mutants] [--json FILE]
# Without --expect-failures it prints the suite's output and exits with the suite's
# status (coturn fails some checks: see docs/conformance.md). With it, it exits 0
# only when exactly that set of checks failed: a test of the suite itself (each
# listed check is able to fail, and every other check passes against a real server).
# --mutants then also runs conformance_mutants.py through a fault-injecting proxy in
# front of the same coturn: every check must be able to fail.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
PY=/usr/bin/python3
EXPECT=""
JSON=""
MUTANTS=0
while [ $# -gt 0 ]; do
  case "$1" in
    --expect-failures) EXPECT="$2"; shift 2 ;;
    --json) JSON="$2"; shift 2 ;;
    --mutants) MUTANTS=1; shift ;;
    *) echo "usage: $0 [--expect-failures 'a b'] [--json FILE]" >&2; exit 2 ;;
  esac
done

TURNSERVER=${TURNSERVER:-$(command -v turnserver || true)}
if [ -z "$TURNSERVER" ]; then
  echo "FAIL: turnserver not found: install Debian package 'coturn'" >&2
  exit 1
fi
[ -x "$PY" ] || { echo "FAIL: $PY missing: install Debian package 'python3'" >&2; exit 1; }

DIR=$(mktemp -d /tmp/coturn-conform.XXXXXX)
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

# A port free for both UDP and TCP, and a relay range outside Linux's ephemeral range
# (32768-60999) so other programs' outgoing sockets cannot squat on relay ports.
read -r PORT RLO RHI < <($PY "$HERE/ports.py" 1)
REALM=conform.example
USER=alice
PASS=alicepw
SECRET=conformsecret
QUOTA=3

# DESIGN.md default deny list, in coturn's range syntax; 127.0.0.2 is the suite's peer.
# coturn's peer rules are per IP and it has no "own relayed addresses" exemption, so it
# relays from 127.0.0.3 and allows that IP (what an operator does for a public relay IP);
# 127.0.0.1, where it listens, stays denied. For ::1 no such trick exists (see the docs).
DENY=(0.0.0.0-0.255.255.255 127.0.0.0-127.255.255.255 10.0.0.0-10.255.255.255
      172.16.0.0-172.31.255.255 192.168.0.0-192.168.255.255 169.254.0.0-169.254.255.255
      100.64.0.0-100.127.255.255 224.0.0.0-239.255.255.255 255.255.255.255
      ::-::ffff:ffff ::ffff:0.0.0.0-::ffff:255.255.255.255
      fe80::-febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff fc00::-fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff
      ff00::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff)
DENYARGS=()
for d in "${DENY[@]}"; do DENYARGS+=("--denied-peer-ip=$d"); done

"$TURNSERVER" -n --listening-ip=127.0.0.1 --listening-port="$PORT" \
  --relay-ip=127.0.0.3 --relay-ip=::1 --min-port="$RLO" --max-port="$RHI" \
  --realm="$REALM" --lt-cred-mech --user="$USER:$PASS" \
  --use-auth-secret --static-auth-secret="$SECRET" \
  --user-quota="$QUOTA" --max-allocate-lifetime=3600 \
  --allow-loopback-peers --no-multicast-peers "${DENYARGS[@]}" --allowed-peer-ip=127.0.0.2 --allowed-peer-ip=127.0.0.3 \
  --no-tcp-relay --no-tls --no-dtls --no-cli --no-rfc5780 --no-software-attribute \
  --pidfile="$DIR/turnserver.pid" --userdb="$DIR/turndb" --log-file=stdout --simple-log \
  >"$DIR/turnserver.log" 2>&1 &
PID=$!

# Wait (bounded) until it answers a Binding request.
ready=0
for _ in $(seq 1 50); do
  if $PY -c "
import sys; sys.path.insert(0, '$HERE'); import turnclient as t
c = t.Client(('127.0.0.1', $PORT), timeout=0.2)
r = c.request(t.Message(t.BINDING), auth=False)
sys.exit(0 if r is not None and r.cls == t.SUCCESS else 1)" 2>/dev/null; then ready=1; break; fi
  kill -0 "$PID" 2>/dev/null || break
  sleep 0.1
done
if [ $ready -ne 1 ]; then
  echo "FAIL: turnserver did not answer on 127.0.0.1:$PORT" >&2
  tail -20 "$DIR/turnserver.log" >&2
  exit 1
fi

echo "# coturn $("$TURNSERVER" --version 2>/dev/null | head -1) on 127.0.0.1:$PORT, relay ports $RLO-$RHI"
# coturn 4.6.1 ignores static users once a REST secret is set, so the checks that are
# not about credentials use REST credentials here (--bulk-cred rest).
OUT="$DIR/results.json"
SUITE_FLAGS=(--user "$USER:$PASS" --secret "$SECRET" --realm "$REALM" --bulk-cred rest
             --peer-ip 127.0.0.2 --v6-relay --quota "$QUOTA" --max-lifetime 3600 --tcp-too)
$PY "$HERE/turn_conformance.py" --server "127.0.0.1:$PORT" "${SUITE_FLAGS[@]}" --json "$OUT"
rc=$?
[ -n "$JSON" ] && cp "$OUT" "$JSON"
mrc=0
if [ $MUTANTS -eq 1 ]; then
  echo "# mutants: a fault-injecting proxy in front of coturn; each must make its checks FAIL"
  FAILED=$($PY -c "import json,sys; print(' '.join(r['name'] for r in json.load(open(sys.argv[1]))['results'] if not r['ok']))" "$OUT")
  $PY "$HERE/conformance_mutants.py" --server "127.0.0.1:$PORT" --server-fails "$FAILED" -- "${SUITE_FLAGS[@]}"
  mrc=$?
fi

if [ -n "$EXPECT" ]; then
  $PY - "$OUT" "$EXPECT" <<'EOF'
import json, sys
res = json.load(open(sys.argv[1]))["results"]
failed = sorted(r["name"] for r in res if not r["ok"])
expected = sorted(sys.argv[2].split())
if failed != expected:
    print("FAIL: coturn failed %s, expected exactly %s" % (failed, expected))
    sys.exit(1)
print("OK: coturn fails exactly the expected checks: %s" % " ".join(expected))
EOF
  erc=$?
  [ $erc -eq 0 ] && [ $mrc -eq 0 ]
  exit $?
fi
[ $rc -eq 0 ] && [ $mrc -eq 0 ]
exit $?
