#!/usr/bin/env bash
# image.sh - build the tsunagu OCI image with podman (docs/containers.md):
# localhost/tsunagu:<version>, :<git short commit>, :latest (and every --tag).
#
#  1. binaries: meson (release, stripped) builds tsunagu-relay, -signal, -bot and
#     -turncheck from SRC on this Debian 12 host, in the work dir;
#  2. base: the Debian packages that ship the shared libraries `ldd` of those binaries
#     names (`dpkg -S`, at the versions installed here, from the mirror apt uses), plus
#     busybox, unpacked into a root file system, cached as a tarball under the work dir
#     and imported as localhost/tsunagu-base:<hash of the package list>;
#     --base IMAGE skips this (e.g. docker.io/library/debian:bookworm-slim where a
#     registry is reachable: the Containerfile then installs the packages with apt);
#  3. podman build of Containerfile with BASE, RUNTIME_PKGS, VERSION, COMMIT.
# Prints the image size and the time of each step.
#
# Usage: scripts/image.sh [--work DIR] [--src DIR] [--base IMAGE] [--tag TAG]...
#                         [--redis]
#   --work DIR  podman storage, base cache, meson build dirs (default build-image/)
#   --src DIR   the source tree to build (default: this checkout); its `git describe`
#               is the commit the binaries report (--version, tsunagu_build_info)
#   --tag TAG   also tag localhost/tsunagu:TAG (repeatable)
#   --no-bot    leave tsunagu-bot (and the libraries only it needs) out: the daemon-only
#               image, tagged <version>-nobot, <short commit>-nobot (and every --tag)
#   --redis     also build localhost/tsunagu-redis:<version> the same way from Debian's
#               redis-server (the tests' and conf/kube's Redis when no registry is
#               reachable)
# Env: TSUNAGU_IMAGE_SOURCE (the OCI source label).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
work=${TSUNAGU_PODMAN_WORK:-$here/build-image}
src=$here
base_image=
redis=0
nobot=0
tags=()
while [ $# -gt 0 ]; do
  case $1 in
    --work) work=$2; shift 2 ;;
    --src) src=$(cd "$2" && pwd); shift 2 ;;
    --base) base_image=$2; shift 2 ;;
    --tag) tags+=("$2"); shift 2 ;;
    --redis) redis=1; shift ;;
    --no-bot) nobot=1; shift ;;
    -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "image.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
# shellcheck source=podman-env.sh
. "$here/scripts/podman-env.sh" "$work"
work=$TSUNAGU_PODMAN_WORK
for tool in podman runc meson ninja dpkg-deb apt-get strip; do
  command -v "$tool" >/dev/null || { echo "image.sh: $tool missing (bash scripts/deps.sh test)" >&2; exit 1; }
done

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
t_all=$(now)

# --- 1. binaries ---------------------------------------------------------------------
t=$(now)
version=$(sed -n "s/^ *version *: *'\([^']*\)'.*/\1/p" "$src/meson.build" | head -1)
commit=$(git -C "$src" describe --always --dirty --tags 2>/dev/null || echo unknown)
short=$(git -C "$src" rev-parse --short HEAD 2>/dev/null || echo unknown)
# one build dir per source tree (the tests build a second tree for v2)
bdir=$work/meson-$(printf '%s' "$src" | sha256sum | cut -c1-10)
if [ ! -f "$bdir/build.ninja" ]; then
  # release as the systemd way installs it; no -Dwerror here: gcc -O3 warns where
  # debugoptimized (CI's -Dwerror build) does not
  meson setup "$bdir" "$src" --buildtype=release -Dstrip=true >"$work/meson.log" 2>&1 ||
    { tail -30 "$work/meson.log" >&2; exit 1; }
fi
bins=(relay/tsunagu-relay signaling/tsunagu-signal bot/tsunagu-bot
      tools/turncheck/tsunagu-turncheck)
[ "$nobot" = 1 ] && bins=(relay/tsunagu-relay signaling/tsunagu-signal
                          tools/turncheck/tsunagu-turncheck)
ninja -C "$bdir" "${bins[@]}" >"$work/ninja.log" 2>&1 || { tail -30 "$work/ninja.log" >&2; exit 1; }
echo "image: binaries built ($version, $commit) in $(secs "$t") s"

# --- 2. base -------------------------------------------------------------------------
# part of the cache key: bump it when base_tar below changes what goes in
base_recipe=3
# pkg=version of every package shipping a library ldd names for the given files
runtime_pkgs() {
  local f lib pkg
  for f in "$@"; do
    ldd "$f" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'
  done | sort -u | while read -r lib; do
    # Debian 12 is /usr-merged: dpkg knows a file by the path its package ships
    pkg=$(dpkg -S "$lib" 2>/dev/null || dpkg -S "$(realpath "$lib")" 2>/dev/null ||
          dpkg -S "${lib#/usr}" 2>/dev/null || dpkg -S "/usr$lib" 2>/dev/null) ||
      { echo "image.sh: no package ships $lib (needed by $f)" >&2; return 1; }
    echo "${pkg%%:*}"
  done | sed 's/:amd64$//; s/:[a-z0-9]*$//' | sort -u | while read -r pkg; do
    echo "$pkg=$(dpkg-query -W -f='${Version}' "$pkg")"
  done
}

# build (or reuse) the base tarball for a package list; prints the tarball's path
base_tar() {
  local name=$1 list=$2 key dir rootfs deb names
  key=$(printf '%s\n' "$base_recipe" "$list" | sha256sum | cut -c1-12)
  mkdir -p "$work/base"
  local tar=$work/base/$name-$key.tar
  if [ ! -f "$tar" ]; then
    dir=$(mktemp -d "$work/tmp/base.XXXXXX")
    rootfs=$dir/rootfs
    mkdir -p "$dir/debs" "$rootfs"
    # apt-get download: the exact packages from the mirror apt uses (sources.list*),
    # without their Depends closure (libnice's would add perl, systemd and dbus: the
    # binaries load only what ldd lists); the installed version first, the candidate if
    # the mirror dropped it
    names=$(printf '%s\n' $list | sed 's/=.*//' | tr '\n' ' ')
    # shellcheck disable=SC2086
    (cd "$dir/debs" && { apt-get download -q -o APT::Sandbox::User=root $list >/dev/null 2>&1 ||
      apt-get download -q -o APT::Sandbox::User=root $names >/dev/null 2>&1 ||
      { apt-get update -q >/dev/null && apt-get download -q -o APT::Sandbox::User=root $names; }; })
    for deb in "$dir"/debs/*.deb; do dpkg-deb -x "$deb" "$rootfs"; done
    # documentation only; no library or data file goes
    rm -rf "$rootfs/usr/share/doc" "$rootfs/usr/share/man" "$rootfs/usr/share/info" \
      "$rootfs/usr/share/lintian" "$rootfs/usr/share/locale"
    mkdir -p "$rootfs/etc" "$rootfs/tmp" "$rootfs/bin" "$rootfs/usr/sbin"
    if [ -e "$rootfs/bin/busybox" ]; then
      # the applets the Containerfile's RUN step and an operator's `podman exec` use
      for a in sh cat chmod chown grep ls mkdir rm wget; do ln -sf busybox "$rootfs/bin/$a"; done
    fi
    printf '%s\n' "$list" > "$rootfs/etc/tsunagu-base"
    tar -C "$rootfs" -cf "$tar.tmp" .
    mv "$tar.tmp" "$tar"
    rm -rf "$dir"
  fi
  echo "$tar"
}

# import a tarball as IMAGE unless that image exists
import_base() {
  local tar=$1 image=$2; shift 2
  podman image exists "$image" || podman import -q "$@" "$tar" "$image" >/dev/null
}

t=$(now)
binpaths=()
for b in "${bins[@]}"; do binpaths+=("$bdir/$b"); done
# what the binaries dlopen(), which ldd cannot see: the bot runs libwebsockets on the
# GLib loop (LWS_SERVER_OPTION_GLIB), whose event library is a plugin. The plugin file
# goes through runtime_pkgs like a binary: its package and its own libraries come in.
plugins=()
for f in $(dpkg -L libwebsockets-evlib-glib 2>/dev/null | grep '\.so$'); do plugins+=("$f"); done
[ ${#plugins[@]} -gt 0 ] || { echo "image.sh: libwebsockets-evlib-glib missing (deps.sh)" >&2; exit 1; }
# tsunagu-signal runs libwebsockets on libev (LWS_SERVER_OPTION_LIBEV): that plugin too
evplug=$(dpkg -L libwebsockets-evlib-ev 2>/dev/null | grep '\.so$' | head -1)
[ -n "$evplug" ] || { echo "image.sh: libwebsockets-evlib-ev missing (deps.sh)" >&2; exit 1; }
evpkg="libwebsockets-evlib-ev=$(dpkg-query -W -f='${Version}' libwebsockets-evlib-ev)"
if [ "$nobot" = 1 ]; then
  pkgs=$(runtime_pkgs "${binpaths[@]}" "$evplug"; echo "$evpkg")
else
  pkgs=$(runtime_pkgs "${binpaths[@]}" "${plugins[@]}" "$evplug"
        echo "libwebsockets-evlib-glib=$(dpkg-query -W -f='${Version}' libwebsockets-evlib-glib)"
        echo "$evpkg")
fi
pkgs=$(printf '%s\nbusybox=%s\n' "$pkgs" "$(dpkg-query -W -f='${Version}' busybox 2>/dev/null ||
       apt-cache policy busybox | awk '/Candidate:/ { print $2 }')" | sort -u)
pkg_names=$(printf '%s\n' "$pkgs" | sed 's/=.*//' | tr '\n' ' ')
if [ -z "$base_image" ]; then
  cached=yes
  key=$(printf '%s\n' "$base_recipe" "$(printf '%s\n' "$pkgs" | tr '\n' ' ')" | sha256sum | cut -c1-12)
  [ -f "$work/base/tsunagu-base-$key.tar" ] || cached=no
  tar=$(base_tar tsunagu-base "$(printf '%s\n' "$pkgs" | tr '\n' ' ')")
  base_image=localhost/tsunagu-base:$key
  import_base "$tar" "$base_image"
  echo "image: base $base_image ($(printf '%s\n' "$pkgs" | wc -l) packages, $(du -m "$tar" | cut -f1) MB," \
    "cached tarball: $cached) in $(secs "$t") s"
fi

# --- 3. image ------------------------------------------------------------------------
t=$(now)
ctx=$work/ctx
rm -rf "$ctx"
mkdir -p "$ctx/bin" "$ctx/etc"
for b in "${binpaths[@]}"; do cp "$b" "$ctx/bin/"; done
strip --strip-unneeded "$ctx"/bin/*
cp "$src/conf/relay.conf.sample" "$ctx/etc/relay.conf"
cp "$src/conf/signaling.conf.sample" "$ctx/etc/signaling.conf"
cp "$src/conf/container/healthcheck" "$ctx/healthcheck"
tagargs=()
sfx=
[ "$nobot" = 1 ] && sfx=-nobot
for tg in "$version$sfx" "$short$sfx" "${tags[@]}"; do tagargs+=(-t "localhost/tsunagu:$tg"); done
[ "$nobot" = 1 ] || tagargs+=(-t localhost/tsunagu:latest)
# docker format: OCI image configs have no HEALTHCHECK field
podman build -q --format docker --isolation chroot -f "$src/Containerfile" \
  --build-arg BASE="$base_image" --build-arg RUNTIME_PKGS="$pkg_names" \
  --build-arg VERSION="$version" --build-arg COMMIT="$commit" \
  --build-arg SOURCE="${TSUNAGU_IMAGE_SOURCE:-https://github.com/tsunagu/tsunagu}" \
  "${tagargs[@]}" "$ctx" >/dev/null
size=$(podman image inspect --format '{{.Size}}' "localhost/tsunagu:$short$sfx")
shown=$(printf '%s\n' "${tagargs[@]}" | sed -n 's/^localhost\/tsunagu://p' | paste -sd, -)
echo "image: built localhost/tsunagu:{$shown} in $(secs "$t") s"
echo "image: size $(awk -v s="$size" 'BEGIN { printf "%.1f", s / 1e6 }') MB ($size bytes), commit $commit"

# --- redis (optional) ----------------------------------------------------------------
if [ "$redis" = 1 ]; then
  t=$(now)
  rs=$(command -v redis-server) || { echo "image.sh: redis-server missing (deps.sh test)" >&2; exit 1; }
  rpkgs=$(printf '%s\n%s\n' "$(runtime_pkgs "$(realpath "$rs")")" \
    "$(for p in redis-server redis-tools; do echo "$p=$(dpkg-query -W -f='${Version}' $p)"; done)" | sort -u)
  rtar=$(base_tar tsunagu-redis "$(printf '%s\n' "$rpkgs" | tr '\n' ' ')")
  rver=$(dpkg-query -W -f='${Version}' redis-server | sed 's/^[0-9]*://; s/[-+].*//')
  podman image rm -f "localhost/tsunagu-redis:$rver" >/dev/null 2>&1 || true
  import_base "$rtar" "localhost/tsunagu-redis:$rver" \
    --change 'ENTRYPOINT ["/usr/bin/redis-server"]' --change 'USER 999:999' \
    --change 'CMD ["--save", "", "--appendonly", "no", "--bind", "127.0.0.1"]'
  echo "image: localhost/tsunagu-redis:$rver ($(du -m "$rtar" | cut -f1) MB) in $(secs "$t") s"
fi
echo "image: total $(secs "$t_all") s"
