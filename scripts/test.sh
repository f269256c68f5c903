#!/usr/bin/env bash
# The README's test command: set up, typecheck the tests, run every tap test, then print one plain
# closing line ("tests: N passed, N failed, N skipped") that CI and humans can read at a glance.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
npx tsc -p test/tsconfig.json --noEmit
# Real Debian roots the suite runs, built once per machine (cached) before tap's per-file timeouts start.
bash scripts/rootfs.sh bookworm-minbase bookworm >/dev/null
bash scripts/rootfs-image.sh bookworm-minbase bookworm-minbase >/dev/null

log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
npx tap --reporter=terse "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e

# tap ends with a line like "# { total: 1227, pass: 1226, skip: 1 }" (fail, todo only when non-zero).
summary=$(grep -E '^# \{ total: ' "$log" | tail -n 1 || true)
count() { sed -nE "s/.*[{ ,]$1: ([0-9]+).*/\1/p" <<<"$summary"; }
pass=$(count pass); fail=$(count fail); skip=$(count skip); todo=$(count todo)
if [[ -z "$summary" ]]; then
  echo "tests: tap printed no summary (exit $status)"
  exit $(( status == 0 ? 1 : status ))
fi
echo "tests: ${pass:-0} passed, ${fail:-0} failed, $(( ${skip:-0} + ${todo:-0} )) skipped"
exit "$status"
