#!/usr/bin/env bash
# rollout-canary.sh - a relay release by canary (docs/fleet.md "Canary rollout"),
# run as `rollout.sh relay NEW_TAG --canary PERCENT [OPTIONS]`:
#
#   1. start the new-generation relays beside the old ones (each announces itself
#      with --generation NEW_TAG into the registry the signaling nodes read);
#   2. wait until signaling sees them up, then set NEW_TAG's share of new rooms to
#      PERCENT (every node: the share goes through the registry);
#   3. watch for --watch seconds: if signaling rolls the canary back (its calls
#      sounded worse: tsunagu_signal_canary_rollbacks_total{generation=NEW_TAG}
#      grows, or the share falls to 0), drain the new relays and stop (exit 3);
#   4. else promote (share 100) and drain the old relays (SIGTERM: their calls run
#      to their end, no new room goes to them).
# A timeline is printed as it goes.
#
# Options:
#   --signal URL        a signaling node's HTTP port (default http://127.0.0.1:8080)
#   --token-file F      its admin token (mode 0600), else $TSUNAGU_ADMIN_TOKEN
#   --watch S           how long the canary runs before promotion (default 600)
#   --ready S           how long the new relays may take to show up (default 30)
#   --relay-args FILE   container mode (repeatable): one new relay container of
#                       $TSUNAGU_IMAGE:NEW_TAG with the flags in FILE (one a line:
#                       its own ports, --announce, --announce-url...); the old relays
#                       are this deployment's other relay containers
#   --exec CMD          process mode (repeatable): start CMD (a tsunagu-relay command
#                       line) with --generation NEW_TAG appended; the old relays are
#                       given by --old-pid PID (repeatable); their output goes to
#                       $TSUNAGU_CANARY_LOG (default /dev/null)
# Exit: 0 promoted, 3 rolled back, 1 failed (the new relays are stopped), 2 usage.
set -euo pipefail

die() { echo "rollout: $*" >&2; exit "${2:-1}"; }
usage() { sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }

if [ $# -lt 3 ] || [ "$2" != --canary ]; then usage; fi
tag=$1 pct=$3; shift 3
case $pct in ''|*[!0-9]*) usage ;; esac
[ "$pct" -le 100 ] || usage
signal=http://127.0.0.1:8080 watch=600 ready=30 token=${TSUNAGU_ADMIN_TOKEN:-}
argfiles=() execs=() oldpids=()
while [ $# -gt 0 ]; do
  [ $# -ge 2 ] || usage
  case $1 in
    --signal) signal=$2 ;;
    --token-file) token=$(head -n1 "$2") ;;
    --watch) watch=$2 ;;
    --ready) ready=$2 ;;
    --relay-args) argfiles+=("$2") ;;
    --exec) execs+=("$2") ;;
    --old-pid) oldpids+=("$2") ;;
    *) usage ;;
  esac
  shift 2
done
[ ${#argfiles[@]} -gt 0 ] || [ ${#execs[@]} -gt 0 ] || die "no new relay: --relay-args FILE or --exec CMD" 2
case $tag in *[!A-Za-z0-9._-]*|'') die "NEW_TAG: letters, digits, . _ - only" 2 ;; esac

t0=$(date +%s.%N)
mark() { printf 'rollout: %7.2f s  %s\n' "$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { print b - a }')" "$*"; }

# one HTTP/1.0 request to signaling with the admin token; prints the body
http() {
  local method=$1 path=$2 hp=${signal#http://} host port line body=
  host=${hp%:*}; port=${hp##*:}; port=${port%%/*}
  exec 3<>"/dev/tcp/$host/$port" || return 1
  printf '%s %s HTTP/1.0\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Length: 0\r\n\r\n' \
    "$method" "$path" "$host" "$token" >&3
  body=$(timeout 5 cat <&3 | tr -d '\r') || true
  exec 3<&-
  line=${body%%$'\n'*}
  case $line in "HTTP/1."?" 200"*) printf '%s\n' "$body" | sed '1,/^$/d' ;; *) echo "$line" >&2; return 1 ;; esac
}
share() {  # NEW_TAG's share in /admin/canary ("" when none)
  http GET /admin/canary | sed -n 's/.*"shares":{\([^}]*\)}.*/\1/p' | tr ',' '\n' |
    sed -n "s/^\"$tag\":\([0-9]*\)\$/\1/p"
}
rollbacks() {
  http GET /metrics | sed -n "s/^tsunagu_signal_canary_rollbacks_total{generation=\"$tag\"} \([0-9]*\).*/\1/p" |
    head -1 | grep . || echo 0
}
others_up() {  # relays of other generations still up (taking new rooms); 99 when unknown
  local b
  b=$(http GET /admin/canary 2>/dev/null) || { echo 99; return; }
  printf '%s' "$b" | { grep -o '"generation":"[^"]*","state":"up"' || true; } |
    { grep -v "\"generation\":\"$tag\"" || true; } | wc -l
}
up_count() {  # relays of generation G (arg) in state up (0 when signaling does not answer)
  local b
  b=$(http GET /admin/canary 2>/dev/null) || { echo 0; return; }
  printf '%s' "$b" | { grep -o "\"generation\":\"$1\",\"state\":\"up\"" || true; } | wc -l
}

new_pids=() new_names=()
image=${TSUNAGU_IMAGE:-localhost/tsunagu}
deploy=${TSUNAGU_DEPLOY:-tsunagu}
if [ ${#argfiles[@]} -gt 0 ]; then
  here=$(cd "$(dirname "$0")/.." && pwd)
  # shellcheck source=podman-env.sh
  . "$here/scripts/podman-env.sh" "${TSUNAGU_PODMAN_WORK:-$here/build-image}"
fi
stop_new() {  # SIGTERM: the new relays drain
  local p n
  for p in "${new_pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for n in "${new_names[@]}"; do podman kill --signal TERM "$n" >/dev/null 2>&1 || true; done
}

mark "canary rollout of relay generation $tag at $pct%"
for c in "${execs[@]}"; do
  # shellcheck disable=SC2086
  setsid $c --generation "$tag" </dev/null >>"${TSUNAGU_CANARY_LOG:-/dev/null}" 2>&1 &
  new_pids+=($!)
  mark "started relay process $! ($c)"
done
i=0
for f in "${argfiles[@]}"; do
  mapfile -t a < "$f"
  n=$deploy-relay-$tag-$((++i))
  podman run -d -q --name "$n" --network host --label "tsunagu.deploy=$deploy" \
    --label tsunagu.role=relay --label "tsunagu.generation=$tag" \
    "$image:$tag" tsunagu-relay "${a[@]}" --generation "$tag" >/dev/null || { stop_new; die "podman run $n failed"; }
  new_names+=("$n")
  mark "started relay container $n ($image:$tag)"
done
want=$(( ${#execs[@]} + ${#argfiles[@]} ))
end=$((SECONDS + ready))
while [ "$(up_count "$tag")" -lt "$want" ]; do
  [ $SECONDS -lt $end ] || { stop_new; die "the $tag relays did not show up in signaling within $ready s"; }
  sleep 0.2
done
mark "signaling sees $want $tag relay(s) up"
rb0=$(rollbacks)
http POST "/admin/canary/$tag/$pct" >/dev/null || { stop_new; die "could not set the share"; }
mark "share of new rooms for $tag set to $pct%; watching for $watch s"
end=$((SECONDS + watch))
while [ $SECONDS -lt $end ]; do
  s=$(share 2>/dev/null || echo "?")
  rb=$(rollbacks 2>/dev/null || echo "$rb0")
  if [ "$rb" -gt "$rb0" ] || { [ "$s" = 0 ] && [ "$pct" -gt 0 ]; }; then
    mark "ROLLED BACK by signaling (rollbacks $rb0 -> $rb, share now ${s:-?}%): draining the $tag relays"
    stop_new
    mark "stopped: $tag not promoted"
    exit 3
  fi
  sleep 0.5
done
http POST "/admin/canary/$tag/100" >/dev/null || { stop_new; die "could not promote"; }
mark "promoted: $tag gets 100% of new rooms"
for p in "${oldpids[@]}"; do
  kill -TERM "$p" 2>/dev/null && mark "old relay process $p draining (SIGTERM)"
done
if [ ${#argfiles[@]} -gt 0 ]; then
  for n in $(podman ps --filter "label=tsunagu.deploy=$deploy" --filter label=tsunagu.role=relay \
               --format '{{.Names}} {{index .Labels "tsunagu.generation"}}' | awk -v t="$tag" '$2 != t { print $1 }'); do
    podman kill --signal TERM "$n" >/dev/null && mark "old relay container $n draining (SIGTERM)"
  done
fi
# (with processes given by --old-pid only those drain; other relays stay up)
end=$((SECONDS + 15))
while [ ${#oldpids[@]} -gt 0 ] || [ ${#argfiles[@]} -gt 0 ]; do
  [ "$(others_up)" -eq 0 ] && { mark "signaling sees no other generation taking new rooms"; break; }
  [ $SECONDS -lt $end ] || { mark "warning: relays of other generations still take new rooms"; break; }
  sleep 0.2
done
mark "done: relay generation $tag serves every new room"
