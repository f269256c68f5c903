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
# Apptainer is packaged for sid only: a sid root with it (test/integration/runtimes.test.ts). If it cannot be
# built here, that test says so loudly and still runs bwrap and podman.
if ! { bash scripts/rootfs.sh sid-minbase sid >/dev/null &&
  bash scripts/rootfs.sh sid-apptainer sid --from sid-minbase apptainer >/dev/null; }; then
  export TOCFS_TEST_NO_APPTAINER="building the Debian sid root with apptainer failed (see /var/cache/tocfs-test/rootfs/sid-*.log)"
  echo "test: $TOCFS_TEST_NO_APPTAINER" >&2
fi
# The container image of deploy/Dockerfile by the README's offline route (test/integration/container.test.ts).
TOCFS_TEST_CONTAINER_IMAGE=$(bash scripts/container-image.sh) && export TOCFS_TEST_CONTAINER_IMAGE

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
