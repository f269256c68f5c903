#!/usr/bin/env bash
# The offline route to the container's base image: no Docker Hub, only Debian's mirror (debootstrap) and
# this host's Node.js 20 (bookworm packages Node 18). Builds a cached bookworm minbase root with libfuse2,
# fuse3 and ca-certificates (scripts/rootfs.sh), adds /usr/bin/node and npm from the host, and imports it:
#
#   deploy/base-image.sh [IMAGE]            (default localhost/tocfs-base:bookworm)
#   podman build -f deploy/Dockerfile --build-arg BASE=localhost/tocfs-base:bookworm -t tocfs .
set -euo pipefail
cd "$(dirname "$0")/.."
image=${1:-localhost/tocfs-base:bookworm}

bash scripts/rootfs.sh bookworm-minbase bookworm >/dev/null
root=$(bash scripts/rootfs.sh bookworm-fuse bookworm --from bookworm-minbase libfuse2 fuse3 ca-certificates)

node=$(command -v node)
# Rebuild only when an input changed: the same base keeps podman's build cache of deploy/Dockerfile valid.
stamp=$( { cat "$root.complete" "$root/var/lib/dpkg/status"; "$node" --version; npm --version; cat /etc/ssl/certs/ca-certificates.crt; } | sha256sum | cut -c1-16)
if [[ $(podman image inspect --format '{{index .Labels "tocfs.base-stamp"}}' "$image" 2>/dev/null) == "$stamp" ]]; then
  echo "$image"
  exit 0
fi
npm_dir=$(dirname "$(readlink -f "$(command -v npm)")")/..
[[ -f $npm_dir/package.json ]] || { echo "base-image: npm's directory not found next to $(command -v npm)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/usr/bin" "$work/usr/lib/node_modules" "$work/usr/include"
cp "$node" "$work/usr/bin/node"
# Node's headers: native addons (zstd-napi) compile against them without downloading any.
node_prefix=$(dirname "$(dirname "$(readlink -f "$node")")")
[[ -d $node_prefix/include/node ]] || { echo "base-image: no Node headers in $node_prefix/include/node" >&2; exit 1; }
cp -a "$node_prefix/include/node" "$work/usr/include/node"
cp -a "$npm_dir" "$work/usr/lib/node_modules/npm"
ln -s ../lib/node_modules/npm/bin/npm-cli.js "$work/usr/bin/npm"
ln -s ../lib/node_modules/npm/bin/npx-cli.js "$work/usr/bin/npx"
# The host's CA bundle too: a site that reaches registries through a TLS-intercepting proxy trusts its CA
# there, and the image build (npm ci) and tocfs itself go through the same proxy.
mkdir -p "$work/etc/ssl/certs"
cp /etc/ssl/certs/ca-certificates.crt "$work/etc/ssl/certs/ca-certificates.crt"
# One tar: the cached root, then node, npm and the CA bundle appended (podman refuses duplicate paths).
tar -C "$root" -c -f "$work/root.tar" --exclude=./etc/ssl/certs/ca-certificates.crt .
tar -C "$work" -r -f "$work/root.tar" ./usr/bin/node ./usr/bin/npm ./usr/bin/npx ./usr/lib/node_modules/npm ./usr/include/node ./etc/ssl/certs/ca-certificates.crt
podman import --quiet --change "LABEL tocfs.base-stamp=$stamp" --change 'CMD ["/bin/bash"]' --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  "$work/root.tar" "$image" >/dev/null
echo "$image"
