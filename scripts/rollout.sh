#!/usr/bin/env bash
# rollout.sh - run tsunagu containers and move them to another image tag without
# dropping calls (docs/containers.md "Rollout and rollback").
#
#   rollout.sh start relay TAG [RELAY_ARGS...]
#       first relay container (host network, control socket on the shared run dir)
#   rollout.sh start signal TAG --ports BLUE,GREEN [SIGNAL_ARGS...]
#       first signaling node, listening on 127.0.0.1:BLUE (GREEN: the other slot;
#       a load balancer in front sends new connections to the slot whose /healthz is 200)
#   rollout.sh relay NEW_TAG     container takeover: a NEW_TAG container started with
#       --takeover-from takes the running relay's listeners and UDP allocations over;
#       the old one drains its TCP/TLS connections and exits
#   rollout.sh signal NEW_TAG    blue-green: a NEW_TAG node on the other slot, in the same
#       Redis cluster; once its /healthz answers 200 the old node gets SIGTERM, tells its
#       members to resume elsewhere (they land on the new node) and exits
#   rollout.sh relay NEW_TAG --canary P [OPTIONS]   a relay fleet release by canary
#       (docs/fleet.md): NEW_TAG relays beside the old ones get P% of new rooms; after
#       --watch S without an automatic rollback they get 100% and the old ones drain
#       (scripts/rollout-canary.sh --help lists the options)
#   rollout.sh --rollback        the last rollout again, back to the tag it replaced
#   rollout.sh status | stop     what runs / remove every container of this deployment
# Each rollout prints how long it took from the command to the new version serving
# (its /metrics tsunagu_build_info shows the image's commit).
#
# Env: TSUNAGU_DEPLOY    deployment name: container name prefix and state (default tsunagu)
#      TSUNAGU_PODMAN_WORK  podman storage and state (default build-image/, as image.sh)
#      TSUNAGU_RUN_DIR   host directory mounted at /run/tsunagu (the control socket)
#      TSUNAGU_IMAGE     image name (default localhost/tsunagu)
#      TSUNAGU_DRAIN_WAIT  seconds to wait for an old container to exit (default 40)
set -euo pipefail
# a canary release runs beside the old relays, containers or processes: its own script
if [ "${1:-}" = relay ] && [ "${3:-}" = --canary ]; then
  shift
  exec "$(dirname "$0")/rollout-canary.sh" "$@"
fi
here=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=podman-env.sh
. "$here/scripts/podman-env.sh" "${TSUNAGU_PODMAN_WORK:-$here/build-image}"
deploy=${TSUNAGU_DEPLOY:-tsunagu}
image=${TSUNAGU_IMAGE:-localhost/tsunagu}
state=$TSUNAGU_PODMAN_WORK/deploy/$deploy
rundir=${TSUNAGU_RUN_DIR:-$state/run}
drain_wait=${TSUNAGU_DRAIN_WAIT:-40}
ctl=/run/tsunagu/relay.ctl
mkdir -p "$state" "$rundir"
# the daemons run as the image's user (10001): it makes the control socket here
chown 10001:10001 "$rundir"

die() { echo "rollout: $*" >&2; exit 1; }
now() { date +%s.%N; }
ms_since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%d", (b - a) * 1000 }'; }

# podman's health timers need systemd; without it the check stays defined (podman
# healthcheck run NAME, or the orchestrator) but nothing schedules it
health_opts=()
[ -S /run/systemd/private ] || health_opts=(--health-interval disable)

# the value following FLAG in the saved argument list ("" when absent)
arg_of() {
  local flag=$1 file=$2 prev=
  while IFS= read -r -d '' a; do
    [ "$prev" = "$flag" ] && { printf '%s' "$a"; return; }
    prev=$a
  done < "$file"
}

# the commit an image reports (its OCI revision label = its binaries' git describe)
image_commit() {
  podman image inspect --format '{{index .Labels "org.opencontainers.image.revision"}}' \
    "$image:$1" 2>/dev/null || die "no image $image:$1 (scripts/image.sh --tag $1)"
}

# tsunagu_build_info's commit at URL (http://ADDR:PORT), "" if it does not answer
served_commit() {
  local body
  body=$(http_get "$1/metrics") || return 0
  printf '%s\n' "$body" | sed -n 's/^tsunagu_build_info{.*commit="\([^"]*\)".*/\1/p' | head -1
}
http_get() {
  # bash's /dev/tcp: no curl needed on the host either
  local hp=${1#http://} host port path
  path=/${hp#*/}; hp=${hp%%/*}; host=${hp%:*}; port=${hp##*:}
  exec 3<>"/dev/tcp/$host/$port" 2>/dev/null || return 1
  printf 'GET %s HTTP/1.0\r\nHost: %s\r\n\r\n' "$path" "$host" >&3
  timeout 3 cat <&3 | tr -d '\r' | sed '1,/^$/d'
  exec 3<&-
}
healthz() {  # exit status: /healthz at URL answers 200
  local hp=${1#http://} host port line
  host=${hp%:*}; port=${hp##*:}
  exec 3<>"/dev/tcp/$host/$port" 2>/dev/null || return 1
  printf 'GET /healthz HTTP/1.0\r\nHost: %s\r\n\r\n' "$host" >&3
  IFS= read -r -t 2 line <&3 || line=
  exec 3<&-
  case $line in "HTTP/1."?" 200"*) return 0 ;; *) return 1 ;; esac
}

# an ADDR:PORT from the daemon's flags as a URL on this host (0.0.0.0 -> 127.0.0.1)
as_url() {
  local a=$1
  case $a in 0.0.0.0:*) a=127.0.0.1:${a#*:} ;; "[::]:"*) a="[::1]:${a##*:}" ;; esac
  echo "http://$a"
}

running() { [ "$(podman inspect --format '{{.State.Running}}' "$1" 2>/dev/null)" = true ]; }

# wait (bounded) until container $1 has exited, keep its log, remove it
retire() {
  local name=$1 end=$((SECONDS + drain_wait))
  while running "$name"; do
    [ $SECONDS -lt $end ] || { echo "rollout: $name still running after ${drain_wait} s: stopping it" >&2
                               podman stop -t 5 "$name" >/dev/null || true; break; }
    sleep 0.2
  done
  podman logs "$name" > "$state/$name.log" 2>&1 || true
  echo "rollout: $name exited with status $(podman inspect --format '{{.State.ExitCode}}' "$name" 2>/dev/null)" \
    "(log: $state/$name.log)"
  podman rm -f -t 0 "$name" >/dev/null 2>&1 || true
}

next_name() {  # ROLE -> a container name not used before in this deployment
  local n
  n=$(( $(cat "$state/seq" 2>/dev/null || echo 0) + 1 ))
  echo "$n" > "$state/seq"
  echo "$deploy-$1-$n"
}

# podman run of the relay: ARGS file, TAG, NAME, extra daemon flags
run_relay() {
  local args=$1 tag=$2 name=$3; shift 3
  local -a a=()
  while IFS= read -r -d '' x; do a+=("$x"); done < "$args"
  local metrics
  metrics=$(arg_of --metrics-listen "$args"); metrics=${metrics:-127.0.0.1:9641}
  podman run -d -q --name "$name" --network host "${health_opts[@]}" \
    --label "tsunagu.deploy=$deploy" --label tsunagu.role=relay \
    -e "TSUNAGU_HEALTHZ=$(as_url "$metrics")/healthz" -v "$rundir:/run/tsunagu" \
    "$image:$tag" tsunagu-relay "${a[@]}" --control-socket "$ctl" "$@" >/dev/null
}

run_signal() {  # ARGS file, TAG, NAME, PORT
  local args=$1 tag=$2 name=$3 port=$4
  local -a a=()
  while IFS= read -r -d '' x; do a+=("$x"); done < "$args"
  podman run -d -q --name "$name" --network host "${health_opts[@]}" \
    --label "tsunagu.deploy=$deploy" --label tsunagu.role=signal \
    -e "TSUNAGU_HEALTHZ=http://127.0.0.1:$port/healthz" \
    "$image:$tag" tsunagu-signal "${a[@]}" --listen "127.0.0.1:$port" >/dev/null
}

# wait until URL serves COMMIT; fails early if container NAME stops
wait_serving() {
  local url=$1 commit=$2 name=$3 secs=$4 end
  end=$(awk -v s="$secs" -v t="$(now)" 'BEGIN { print t + s }')
  while :; do
    [ "$(served_commit "$url")" = "$commit" ] && healthz "$url" && return 0
    running "$name" || return 1
    awk -v e="$end" -v t="$(now)" 'BEGIN { exit !(t > e) }' && return 1
    sleep 0.05
  done
}

cmd_start() {
  local role=$1 tag=$2; shift 2
  local name t0
  image_commit "$tag" >/dev/null
  [ -f "$state/$role.container" ] && running "$(cat "$state/$role.container")" &&
    die "$role already runs ($(cat "$state/$role.container")): rollout.sh $role TAG"
  case $role in
    relay)
      printf '%s\0' "$@" > "$state/relay.args"
      name=$(next_name relay); t0=$(now)
      run_relay "$state/relay.args" "$tag" "$name"
      local m; m=$(arg_of --metrics-listen "$state/relay.args")
      wait_serving "$(as_url "${m:-127.0.0.1:9641}")" "$(image_commit "$tag")" "$name" 15 ||
        { podman logs "$name" >&2 || true; podman rm -f -t 0 "$name" >/dev/null; die "relay did not start"; } ;;
    signal)
      [ "${1:-}" = --ports ] || die "start signal TAG --ports BLUE,GREEN [ARGS...]"
      echo "$2" | tr ',' ' ' > "$state/signal.ports"; shift 2
      printf '%s\0' "$@" > "$state/signal.args"
      local port; port=$(cut -d' ' -f1 < "$state/signal.ports")
      echo "$port" > "$state/signal.port"
      name=$(next_name signal); t0=$(now)
      run_signal "$state/signal.args" "$tag" "$name" "$port"
      wait_serving "http://127.0.0.1:$port" "$(image_commit "$tag")" "$name" 15 ||
        { podman logs "$name" >&2 || true; podman rm -f -t 0 "$name" >/dev/null; die "signaling did not start"; } ;;
    *) die "start relay|signal" ;;
  esac
  echo "$name" > "$state/$role.container"
  echo "$tag" > "$state/$role.tag"
  echo "rollout: started $name ($image:$tag) in $(ms_since "$t0") ms"
}

cmd_relay() {
  local tag=$1 old new t0 m url commit ms
  [ -f "$state/relay.container" ] || die "no relay started (rollout.sh start relay TAG ...)"
  old=$(cat "$state/relay.container")
  running "$old" || die "relay container $old is not running"
  commit=$(image_commit "$tag")
  m=$(arg_of --metrics-listen "$state/relay.args"); url=$(as_url "${m:-127.0.0.1:9641}")
  new=$(next_name relay)
  t0=$(now)
  run_relay "$state/relay.args" "$tag" "$new" --takeover-from "$ctl"
  if ! wait_serving "$url" "$commit" "$new" 15; then
    podman logs "$new" > "$state/$new.log" 2>&1 || true
    podman rm -f -t 0 "$new" >/dev/null 2>&1 || true
    tail -5 "$state/$new.log" >&2
    die "takeover by $image:$tag failed; $old keeps serving (log: $state/$new.log)"
  fi
  ms=$(ms_since "$t0")
  echo "$(cat "$state/relay.tag")" > "$state/relay.prev"
  echo "$new" > "$state/relay.container"
  echo "$tag" > "$state/relay.tag"
  echo relay > "$state/last"
  echo "rollout: relay now $image:$tag ($commit) in $new: serving ${ms} ms after the command"
  retire "$old"
}

cmd_signal() {
  local tag=$1 old new t0 commit ports cur next ms
  [ -f "$state/signal.container" ] || die "no signaling started (rollout.sh start signal TAG --ports A,B ...)"
  old=$(cat "$state/signal.container")
  running "$old" || die "signaling container $old is not running"
  commit=$(image_commit "$tag")
  read -r -a ports < "$state/signal.ports"
  cur=$(cat "$state/signal.port")
  next=${ports[0]}; [ "$cur" = "${ports[0]}" ] && next=${ports[1]}
  new=$(next_name signal)
  t0=$(now)
  run_signal "$state/signal.args" "$tag" "$new" "$next"
  if ! wait_serving "http://127.0.0.1:$next" "$commit" "$new" 15; then
    podman logs "$new" > "$state/$new.log" 2>&1 || true
    podman rm -f -t 0 "$new" >/dev/null 2>&1 || true
    die "$image:$tag did not become healthy on port $next; $old keeps serving (log: $state/$new.log)"
  fi
  local t_healthy; t_healthy=$(ms_since "$t0")
  # SIGTERM: the old node answers 503 on /healthz and tells its members to resume
  # elsewhere; it exits once they left (or after its --drain-seconds)
  podman kill --signal TERM "$old" >/dev/null
  local end=$((SECONDS + drain_wait))
  while running "$old" && [ $SECONDS -lt $end ]; do sleep 0.05; done
  ms=$(ms_since "$t0")
  echo "$(cat "$state/signal.tag")" > "$state/signal.prev"
  echo "$new" > "$state/signal.container"
  echo "$tag" > "$state/signal.tag"
  echo "$next" > "$state/signal.port"
  echo signal > "$state/last"
  echo "rollout: signaling now $image:$tag ($commit) in $new on port $next: healthy ${t_healthy} ms," \
    "old node drained and gone ${ms} ms after the command"
  retire "$old"
}

cmd_rollback() {
  local role
  role=$(cat "$state/last" 2>/dev/null) || die "nothing rolled out yet"
  [ -f "$state/$role.prev" ] || die "no previous $role tag"
  echo "rollout: rolling $role back to $(cat "$state/$role.prev")"
  "cmd_$role" "$(cat "$state/$role.prev")"
}

cmd_status() {
  podman ps -a --filter "label=tsunagu.deploy=$deploy" \
    --format '{{.Names}} {{.Image}} {{.Status}} {{.Labels}}'
}

cmd_stop() {
  local ids
  ids=$(podman ps -aq --filter "label=tsunagu.deploy=$deploy")
  # shellcheck disable=SC2086
  [ -z "$ids" ] || podman rm -f -t 5 $ids >/dev/null
  rm -f "$state"/*.container "$state/last" "$state"/*.prev
  echo "rollout: $deploy stopped"
}

case ${1:-} in
  start) shift; [ $# -ge 2 ] || die "start relay|signal TAG ..."; cmd_start "$@" ;;
  relay|signal) [ $# -eq 2 ] || die "usage: rollout.sh $1 NEW_TAG"; "cmd_$1" "$2" ;;
  --rollback) cmd_rollback ;;
  status) cmd_status ;;
  stop) cmd_stop ;;
  *) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
esac
