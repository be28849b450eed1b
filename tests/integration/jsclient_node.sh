#!/usr/bin/env bash
# jsclient_node.sh CLIENTS_JS_DIR WWW_DIR TSUNAGU_SIGNAL - the node tests of the
# JS client library (issue 15 item 3) as a user of the package runs them:
# `npm ci` then `npm test` in a temporary copy of clients/js/ with the module
# and its types copied in from signaling/www/ (the one source), against the
# tsunagu-signal just built. node (20+) and npm come with the machine; a
# missing one FAILS the test. The copy is removed on any exit.
set -euo pipefail
src=$1 www=$2
bin=$(readlink -f "$3") # meson passes it relative to the build dir
for tool in node npm; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool is missing (Node.js 20+ with npm)"; exit 1; }
done
major=$(node -p 'process.versions.node.split(".")[0]')
[ "$major" -ge 20 ] || { echo "FAIL: node $(node --version): the tests need Node.js 20+"; exit 1; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/tsunagu-jsclient.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
cp -r "$src/package.json" "$src/package-lock.json" "$src/sync.mjs" "$src/test" "$src/testlib" "$tmp/"
cp "$www/tsunagu.js" "$www/tsunagu.d.ts" "$tmp/"
cd "$tmp"
npm ci --no-audit --no-fund --loglevel=error
TSUNAGU_SIGNAL_BIN=$bin npm test
