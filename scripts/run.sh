#!/usr/bin/env bash
# run.sh - install what is missing, build, and run tsunagu on this machine:
# tsunagu-relay (TURN, 127.0.0.1:3478 UDP+TCP) and tsunagu-signal (WebSocket
# signaling + demo page, 127.0.0.1:8080) wired together with a fresh shared
# TURN REST secret. Ctrl-C stops both.
# Environment: SIGNAL_PORT (8080), TURN_PORT (3478), METRICS_PORT (9641).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh build
[ -f build/build.ninja ] || meson setup build >/dev/null
ninja -C build >/dev/null

sport=${SIGNAL_PORT:-8080}
tport=${TURN_PORT:-3478}
mport=${METRICS_PORT:-9641}
secret=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')

# The relay leads a process group of its own (setsid): a live upgrade
# (SIGUSR2) replaces its process with a new one of the same group, so the
# group, not the first PID, is what this script watches and stops.
sig_pid=
relay_pgid=
cleanup() {
  [ -n "$relay_pgid" ] && kill -TERM -- "-$relay_pgid" 2>/dev/null || true
  [ -n "$sig_pid" ] && kill -TERM "$sig_pid" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

setsid build/relay/tsunagu-relay --listen "127.0.0.1:$tport" --relay-ip 127.0.0.1 \
  --auth-secret "$secret" --metrics-listen "127.0.0.1:$mport" &
relay_pgid=$!
# stun: on the relay's own listener (it answers Binding requests) next to the
# turn: URLs: clients learn their server-reflexive address and call directly
# when they can, so the relay carries only the calls that need it.
build/signaling/tsunagu-signal --listen "127.0.0.1:$sport" --turn-url "stun:127.0.0.1:$tport" \
  --turn-url "turn:127.0.0.1:$tport" --turn-url "turn:127.0.0.1:$tport?transport=tcp" \
  --turn-secret "$secret" &
sig_pid=$!

alive() { kill -0 -- "-$relay_pgid" 2>/dev/null && kill -0 "$sig_pid" 2>/dev/null; }
sleep 1
alive || { echo "run.sh: a server failed to start (see above)" >&2; exit 1; }
cat <<MSG

  tsunagu is running.
  Demo page:      http://127.0.0.1:$sport/   (open it in two tabs, same room)
  Relay metrics:  http://127.0.0.1:$mport/metrics
  Signal metrics: http://127.0.0.1:$sport/metrics
  Live relay upgrade (calls keep flowing): kill -USR2 \$(pgrep -g $relay_pgid -n tsunagu-relay)
  Ctrl-C stops both servers.

MSG
while alive; do sleep 1; done
