#!/usr/bin/env bash
# test.sh - install what is missing, build, and run every test (unit, fuzz
# corpus replay, integration against the real binaries, browser end to end).
# Usage: bash scripts/test.sh [BUILD_DIR] [extra meson setup args...]
# Env: TEST_SUITES (space-separated meson suites), TIMEOUT_MULT.
# Ends with a line "N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh test

dir=${1:-build-test}
shift || true
if [ ! -f "$dir/build.ninja" ]; then
  meson setup "$dir" "$@" >/dev/null
fi
ninja -C "$dir" >/dev/null

# Integration tests open many sockets (1000-connection signaling test).
ulimit -n 65536 2>/dev/null || ulimit -n 8192 2>/dev/null || true

set +e
# TEST_SUITES="unit integration" limits the run to those suites (CI's
# sanitizer pass); TIMEOUT_MULT stretches every test's time limit.
suites=()
for s in ${TEST_SUITES:-}; do suites+=(--suite "$s"); done
meson test -C "$dir" --print-errorlogs --num-processes 2 \
  --timeout-multiplier "${TIMEOUT_MULT:-1}" "${suites[@]}"
rc=$?
set -e
log="$dir/meson-logs/testlog.json"
if [ -f "$log" ]; then
  /usr/bin/python3 - "$log" <<'PY'
import json, sys
res = [json.loads(l)["result"] for l in open(sys.argv[1]) if l.strip()]
ok = sum(r in ("OK", "EXPECTEDFAIL") for r in res)
skip = sum(r == "SKIP" for r in res)
print(f"{ok} passed, {len(res) - ok - skip} failed" + (f", {skip} skipped" if skip else ""))
PY
fi
exit $rc
