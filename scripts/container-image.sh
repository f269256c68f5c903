#!/usr/bin/env bash
# Builds the tocfs container image from this checkout by the offline route of the README (a debootstrapped
# base image, deploy/base-image.sh, then `podman build -f deploy/Dockerfile`), tagged IMAGE (default
# localhost/tocfs:test), and prints the tag. podman's layer cache makes a rebuild with unchanged sources quick;
# a flock serialises parallel callers.
set -euo pipefail
cd "$(dirname "$0")/.."
image=${1:-localhost/tocfs:test}
cache=${TOCFS_TEST_CACHE:-/var/cache/tocfs-test}
mkdir -p "$cache"
exec 9>"$cache/container-image.lock"
flock 9
log=$cache/container-image.log
base=$(bash deploy/base-image.sh 2>>"$log") || { echo "container-image: base image failed, see $log" >&2; exit 1; }
podman build --network host -f deploy/Dockerfile --build-arg BASE="$base" -t "$image" . >>"$log" 2>&1 ||
  { echo "container-image: podman build failed, see $log" >&2; exit 1; }
echo "$image"
