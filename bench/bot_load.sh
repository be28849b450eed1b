#!/bin/sh
# bench/bot_load.sh - N bot-to-bot calls through the relay for a fixed time;
# prints calls held, loss, jitter, MOS, setup time, relay CPU and memory, and
# whether the bot itself was the bottleneck.
#
#   bench/bot_load.sh [-n CALLS] [-d SECONDS] [-b BUILD_DIR] [-p] [-o PREFIX] [-D N] [-P PROCS] [-T THREADS]
#     -n 50   concurrent calls (2 legs each, one bot process)
#     -d 20   seconds of calling after the last call started
#     -b build  meson build directory (tsunagu-bot, and tsunagu-relay /
#             tsunagu-signal when built there; else coturn + the stand-in)
#     -p      pin the relay to CPU 0 and the bot to CPU 1 (taskset)
#     -o P    keep P.json and P.html (the bot's reports)
#     -D N    the bot decodes every Nth received packet (default 1: all)
#     -P P    split the calls over P bot processes
#     -T T    worker threads per bot process (default 1: one loop)
set -eu
calls=50 dur=20 build=build pin= out= dec=1 procs=1 thr=1
while getopts n:d:b:po:D:P:T: o; do
  case $o in
    n) calls=$OPTARG ;; d) dur=$OPTARG ;; b) build=$OPTARG ;; p) pin=--pin ;; o) out=$OPTARG ;; D) dec=$OPTARG ;; P) procs=$OPTARG ;; T) thr=$OPTARG ;;
    *) sed -n '2,16p' "$0"; exit 2 ;;
  esac
done
here=$(cd "$(dirname "$0")/.." && pwd)
bot=$build/bot/tsunagu-bot
[ -x "$bot" ] || { echo "no $bot: build first (meson setup $build && ninja -C $build)" >&2; exit 1; }
set -- --bot "$bot" --calls "$calls" --duration "$dur" --decode-every "$dec" --procs "$procs" --threads "$thr"
[ -x "$build/relay/tsunagu-relay" ] && set -- "$@" --relay tsunagu --relay-exe "$build/relay/tsunagu-relay"
[ -x "$build/signaling/tsunagu-signal" ] && set -- "$@" --signal tsunagu --signal-exe "$build/signaling/tsunagu-signal"
[ -n "$pin" ] && set -- "$@" --pin
[ -n "$out" ] && set -- "$@" --out "$out"
exec /usr/bin/python3 "$here/tests/integration/bot_load.py" "$@"
