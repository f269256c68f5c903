#!/usr/bin/env bash
# Brings a fresh Debian bookworm machine with Node.js 20 to a state where tocfs builds, runs and tests:
# Debian packages first (only the missing ones), then `npm ci` when the lockfile changed, then the build.
# Idempotent and quick when nothing is missing, so both README commands can start with it.
set -euo pipefail
cd "$(dirname "$0")/.."

# Runtime: libfuse2 (fuse-native links libfuse.so.2), fuse3 (fusermount3 for stale-mount cleanup).
# Tests: docker-registry (the real registry), umoci (the oracle), skopeo (full-pull baseline),
# apache2-utils (htpasswd for basic auth), openssl (test certificates), zstd, bubblewrap,
# attr (getfattr: `tocfs stats` reads the figures xattrs with it), debootstrap (real rootfs images,
# scripts/rootfs.sh), podman + runc + uidmap (runtimes over the mount, the container image; crun fails here),
# gcc + libc6-dev + iproute2 (the benchmark's packet delay line and network namespace).
# Build: g++, make, python3 (node-gyp) and zlib1g-dev (libz.so to link) for the zran addon in native/,
# compiled against the Node headers that Node's own package ships (scripts/build-native.sh); flatbuffers-compiler
# (flatc: the tests read tocfs's zTOCs with the reference schema).
packages=(libfuse2 fuse3 docker-registry umoci skopeo apache2-utils openssl zstd bubblewrap ca-certificates attr
  debootstrap podman runc uidmap gcc libc6-dev iproute2 g++ make python3 zlib1g-dev flatbuffers-compiler)

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}" >&2
  sudo=()
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || { echo "setup: need root (or sudo) to install ${missing[*]}" >&2; exit 1; }
    sudo=(sudo)
  fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get -o DPkg::Lock::Timeout=600 update -qq
  "${sudo[@]}" apt-get install -o DPkg::Lock::Timeout=600 -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# npm ci only when node_modules is missing or older than the lockfile (npm writes .package-lock.json).
if [[ ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
  echo "setup: npm ci" >&2
  npm ci --no-audit --no-fund --loglevel=error
fi

echo "setup: build" >&2
npm run --silent build
