#!/usr/bin/env bash
# Turns cached roots (scripts/rootfs.sh) into a cached OCI image layout, one gzip layer per root:
#
#   scripts/rootfs-image.sh IMAGE_NAME ROOT_NAME [ROOT_NAME...]
#
# prints the layout directory ($TOCFS_TEST_CACHE/images/IMAGE_NAME), whose tag `latest` is the image. Layer i
# holds what changed from root i-1 to root i (umoci repack --refresh-bundle diffs the trees), so roots built
# with `rootfs.sh --from` give a realistic multi-layer image. Push it with
# `skopeo copy --dest-tls-verify=false oci:LAYOUT:latest docker://HOST:PORT/REPO:TAG`.
set -euo pipefail

[[ $# -ge 2 ]] || { echo "usage: $0 IMAGE_NAME ROOT_NAME [ROOT_NAME...]" >&2; exit 2; }
name=$1
shift
[[ $name =~ ^[A-Za-z0-9._-]+$ ]] || { echo "rootfs-image: bad name $name" >&2; exit 2; }

cache=${TOCFS_TEST_CACHE:-/var/cache/tocfs-test}
layout=$cache/images/$name
mkdir -p "$cache/images"
exec 9>"$layout.lock"
flock 9
if [[ -e $layout.complete && -d $layout ]]; then
  echo "$layout"
  exit 0
fi

work=$layout.tmp
bundle=$layout.bundle
rm -rf "$work" "$bundle"
umoci init --layout "$work"
umoci new --image "$work:latest"
umoci unpack --image "$work:latest" "$bundle" >/dev/null
for root_name in "$@"; do
  root=$cache/rootfs/$root_name
  [[ -e $root.complete ]] || { echo "rootfs-image: root $root_name is not built (scripts/rootfs.sh)" >&2; exit 1; }
  # Mirror the root into the bundle exactly (deletions become whiteouts in the next layer).
  find "$bundle/rootfs" -mindepth 1 -maxdepth 1 -exec rm -rf {} +
  cp -a "$root/." "$bundle/rootfs/"
  umoci repack --refresh-bundle --image "$work:latest" "$bundle"
done
umoci config --image "$work:latest" \
  --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --config.cmd /bin/sh --architecture "$(dpkg --print-architecture)" --os linux
umoci gc --layout "$work"
rm -rf "$bundle" "$layout"
mv "$work" "$layout"
touch "$layout.complete"
echo "$layout"
