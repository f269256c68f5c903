#!/usr/bin/env bash
# Builds a Debian root filesystem once and caches it, for tests and benchmarks that need a real rootfs.
#
#   scripts/rootfs.sh NAME SUITE [--from BASE_NAME] [PACKAGE...]
#
# prints the directory ($TOCFS_TEST_CACHE, default /var/cache/tocfs-test, then rootfs/NAME). With --from, the
# tree starts as a copy of the cached root BASE_NAME (built first with the same script) and PACKAGEs are
# installed on top, so successive roots make successive image layers. A root is complete once the marker
# NAME.complete beside it exists (outside the tree, so it never ends up in an image); builds of one NAME are serialised with flock, so parallel test files and benches share one.
set -euo pipefail

usage() { echo "usage: $0 NAME SUITE [--from BASE_NAME] [PACKAGE...]" >&2; exit 2; }
[[ $# -ge 2 ]] || usage
name=$1 suite=$2
shift 2
base=
if [[ ${1:-} == --from ]]; then
  [[ $# -ge 2 ]] || usage
  base=$2
  shift 2
fi
packages=("$@")
[[ $name =~ ^[A-Za-z0-9._-]+$ ]] || { echo "rootfs: bad name $name" >&2; exit 2; }

cache=${TOCFS_TEST_CACHE:-/var/cache/tocfs-test}/rootfs
dir=$cache/$name
mkdir -p "$cache"
exec 9>"$cache/$name.lock"
flock 9

if [[ -e $dir.complete && -d $dir ]]; then
  echo "$dir"
  exit 0
fi

command -v debootstrap >/dev/null || {
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends debootstrap >/dev/null
}

work=$dir.tmp
rm -rf "$work"
if [[ -n $base ]]; then
  base_dir=$cache/$base
  [[ -e $base_dir.complete ]] || { echo "rootfs: base $base is not built" >&2; exit 1; }
  cp -a "$base_dir" "$work"
else
  echo "rootfs: debootstrap --variant=minbase $suite into $dir (about 30 s)" >&2
  debootstrap --variant=minbase "$suite" "$work" >"$cache/$name.log" 2>&1 ||
    { echo "rootfs: debootstrap failed, see $cache/$name.log" >&2; exit 1; }
fi

if ((${#packages[@]})); then
  echo "rootfs: installing ${packages[*]} into $name" >&2
  cp /etc/resolv.conf "$work/etc/resolv.conf" 2>/dev/null || true
  # debootstrap leaves no /etc/hosts; tools run from the root later (Apptainer's build) read it.
  [[ -e $work/etc/hosts ]] || cp /etc/hosts "$work/etc/hosts"
  # A private mount namespace: /proc and /dev for the package scripts vanish with it, whatever happens.
  unshare --mount --propagation private bash -c '
    set -e
    mount -t proc proc "$1/proc"
    mount --rbind /dev "$1/dev"
    shift
    root=$1; shift
    chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get -o Acquire::Check-Valid-Until=false update -qq
    chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
    chroot "$root" apt-get clean
  ' rootfs "$work" "$work" "${packages[@]}" >>"$cache/$name.log" 2>&1 ||
    { echo "rootfs: installing ${packages[*]} failed, see $cache/$name.log" >&2; exit 1; }
  rm -rf "$work/var/lib/apt/lists/"*
fi

rm -rf "$dir"
mv "$work" "$dir"
touch "$dir.complete"
echo "$dir"
