#!/usr/bin/env bash
# deps.sh - install the Debian 12 packages tsunagu needs, if any is missing.
# Usage: bash scripts/deps.sh [build|test]   (test adds the test-only tools)
# Idempotent and quiet when everything is there, so run.sh/test.sh call it
# every time.
set -euo pipefail

build_pkgs=(meson ninja-build pkg-config gcc libssl-dev libwebsockets-dev
  libwebsockets-evlib-glib libjansson-dev libnice-dev libglib2.0-dev libsrtp2-dev
  libopus-dev libhiredis-dev)
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
# suite audio (docs/phone-tests.md): espeak-ng speech, the analyser's numpy, Opus controls
test_pkgs+=(espeak-ng sox opus-tools python3-numpy)

want=("${build_pkgs[@]}")
[ "${1:-build}" = test ] && want+=("${test_pkgs[@]}")

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
