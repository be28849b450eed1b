#!/usr/bin/env bash
# podman-env.sh - source it: podman and buildah keep everything (storage, run
# state, temp files, settings) under one work dir, with the two settings this
# machine kind needs (docs/containers.md): runc instead of crun (crun refuses
# hybrid cgroups) and explicit ulimits (root lacks CAP_SYS_RESOURCE, podman's
# default nofile limit fails). image.sh, rollout.sh and the container tests
# share it so they see the same images and containers.
# Usage: . scripts/podman-env.sh [WORK_DIR]   (default $TSUNAGU_PODMAN_WORK,
#        else build-image/ in the checkout)
_tsu_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TSUNAGU_PODMAN_WORK=$(mkdir -p "${1:-${TSUNAGU_PODMAN_WORK:-$_tsu_root/build-image}}" &&
  cd "${1:-${TSUNAGU_PODMAN_WORK:-$_tsu_root/build-image}}" && pwd)
export TSUNAGU_PODMAN_WORK
_w=$TSUNAGU_PODMAN_WORK
# run state (conmon's sockets and exit files) under /run, named after the work dir: its
# paths must stay short (a unix socket path fits 108 bytes); with them under a deep work
# dir every container exit took podman 20 s to notice
_r=/run/tsunagu-podman-$(printf '%s' "$_w" | sha256sum | cut -c1-10)
mkdir -p "$_w/cfg" "$_w/storage" "$_w/tmp" "$_r/runroot" "$_r/libpod-tmp"
# nofile must stay within the hard limit root has here (20000 on the CI kind)
_nofile=$(ulimit -Hn)
case $_nofile in unlimited|'') _nofile=65536 ;; esac
[ "$_nofile" -gt 65536 ] && _nofile=65536
# a store remembers the settings it was created with: write them before the
# first podman command, and only when they change
_new_storage="[storage]
driver = \"overlay\"
graphroot = \"$_w/storage\"
runroot = \"$_r/runroot\""
_new_containers="[containers]
default_ulimits = [\"nofile=$_nofile:$_nofile\", \"nproc=32768:32768\"]
[engine]
runtime = \"runc\"
tmp_dir = \"$_r/libpod-tmp\""
if [ "$(cat "$_w/cfg/storage.conf" 2>/dev/null)" != "$_new_storage" ]; then
  # podman's database records the paths it was created with and refuses others
  [ -e "$_w/storage/libpod/bolt_state.db" ] &&
    echo "podman-env: $_w/storage was made with other settings; if podman refuses it:" \
      "podman system reset (with the old settings) or remove the work dir" >&2
  printf '%s\n' "$_new_storage" > "$_w/cfg/storage.conf"
fi
[ "$(cat "$_w/cfg/containers.conf" 2>/dev/null)" = "$_new_containers" ] ||
  printf '%s\n' "$_new_containers" > "$_w/cfg/containers.conf"
export CONTAINERS_STORAGE_CONF=$_w/cfg/storage.conf CONTAINERS_CONF=$_w/cfg/containers.conf
export TMPDIR=$_w/tmp
unset _w _r _nofile _new_storage _new_containers _tsu_root
