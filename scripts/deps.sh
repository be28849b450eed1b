#!/usr/bin/env bash
# deps.sh - install the Debian 12 packages tsunagu needs, if any is missing.
# Usage: bash scripts/deps.sh [build|test]   (test adds the test-only tools)
# Idempotent and quiet when everything is there, so run.sh/test.sh call it
# every time.
set -euo pipefail

build_pkgs=(meson ninja-build pkg-config gcc libssl-dev libwebsockets-dev
  libwebsockets-evlib-glib libjansson-dev libnice-dev libglib2.0-dev libsrtp2-dev
  libopus-dev libhiredis-dev)
# tsunagu-signal: libwebsockets on libev's epoll loop (issue 16 item 4)
build_pkgs+=(libwebsockets-evlib-ev libev-dev)
# tsunagu-ctl (tools/ctl/): the admin API client
build_pkgs+=(libcurl4-openssl-dev)
# tsunagu-phone (phone/): PulseAudio client API (with its GLib main loop) and
# libspeexdsp (echo cancellation, noise suppression, gain control);
# bench/aec_compare also measures webrtc-audio-processing against it
build_pkgs+=(libpulse-dev libspeexdsp-dev libwebrtc-audio-processing-dev g++)
test_pkgs=(clang libclang-rt-14-dev coturn chromium python3 python3-websockets openssl
  procps iproute2 nftables valgrind prometheus systemd redis-server)
# relay_selfcheck and deploy_nginx: namespaces with nftables NAT, nginx as in docs/deploy.md
test_pkgs+=(util-linux nginx-light libnginx-mod-stream)
# suite container (docs/containers.md; catatonit: kube play's pods)
test_pkgs+=(podman runc catatonit)
# phone tests: a private PulseAudio daemon with null sinks, paplay/pactl
test_pkgs+=(pulseaudio pulseaudio-utils)
# browser tests of tsunagu.js and the demo page (tests/e2e/browser): Firefox ESR besides
# Chromium, driven by puppeteer-core, which the tests npm-install into a temp dir
test_pkgs+=(firefox-esr)
# suite audio (docs/phone-tests.md): espeak-ng speech, the analyser's numpy, Opus controls
test_pkgs+=(espeak-ng sox opus-tools python3-numpy)

want=("${build_pkgs[@]}")
[ "${1:-build}" = test ] && want+=("${test_pkgs[@]}")
# node and npm for those tests: Debian's packages unless the machine has its own Node.js
# (a nodesource nodejs bundles npm and conflicts with Debian's npm package)
[ "${1:-build}" = test ] && ! command -v npm >/dev/null && want+=(nodejs npm)

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps: installing ${missing[*]}" >&2
SUDO=
[ "$(id -u)" -ne 0 ] && SUDO=sudo
$SUDO apt-get update -q >/dev/null
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
