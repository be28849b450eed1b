#!/bin/sh
# bench/soak.sh - the chaos suite's cast (tests/chaos/chaos.py: tsunagu-relay, two
# tsunagu-signal nodes on a redis-server, bot-to-bot calls, one Chromium call, members
# exchanging numbered signals across the nodes) at a steady load for MINUTES, sampled every
# N seconds: RSS, descriptors and CPU of each daemon, the bots' loss/jitter/RTT/MOS, signal
# latency p50/p95. Writes OUT/soak.tsv, OUT/soak.md and OUT/soak.svg (docs/chaos.md).
# Not in CI (minutes long); run it by hand before a release.
#
#   bench/soak.sh [-d MINUTES] [-s SECONDS] [-n CALLS] [-b BUILD_DIR] [-o OUT] [-f] [-B]
#     -d 5      minutes of steady load
#     -s 10     seconds between samples
#     -n 20     bot-to-bot calls (2 bot processes)
#     -b build  meson build directory with tsunagu-relay, tsunagu-signal, tsunagu-bot
#     -o soak-out  output directory (created)
#     -f        also a random fault (not a relay crash) every 60 s, from 30 s on
#     -B        no browser call (machines without chromium)
set -eu
mins=5 every=10 calls=20 build=build out=soak-out faults= chrome=/usr/bin/chromium
while getopts d:s:n:b:o:fB o; do
  case $o in
    d) mins=$OPTARG ;; s) every=$OPTARG ;; n) calls=$OPTARG ;; b) build=$OPTARG ;;
    o) out=$OPTARG ;; f) faults=--soak-faults ;; B) chrome= ;;
    *) sed -n '2,17p' "$0"; exit 2 ;;
  esac
done
here=$(cd "$(dirname "$0")/.." && pwd)
for x in bot/tsunagu-bot relay/tsunagu-relay signaling/tsunagu-signal; do
  [ -x "$build/$x" ] || { echo "no $build/$x: build first (meson setup $build && ninja -C $build)" >&2; exit 1; }
done
ulimit -n 8192 2>/dev/null || true
set -- --bot "$build/bot/tsunagu-bot" --relay-exe "$build/relay/tsunagu-relay" \
  --signal-exe "$build/signaling/tsunagu-signal" --calls "$calls" --soak "$mins" \
  --sample "$every" --out "$out" --chromium "$chrome"
[ -n "$faults" ] && set -- "$@" "$faults"
exec /usr/bin/python3 "$here/tests/chaos/chaos.py" "$@"
