#!/usr/bin/env bash
# Runs a command as an unprivileged user inside a cached root filesystem (scripts/rootfs.sh), with the
# host's FUSE mounts visible at the same paths: how the tests run Debian sid's Apptainer on bookworm.
#
#   scripts/in-rootfs.sh ROOT UID[:GID] [--bind DIR]... -- CMD [ARG...]
#
# Not a chroot: the kernel refuses user namespaces to chrooted processes, and Apptainer needs one. So, in
# a private mount namespace: ROOT bound onto itself, /proc, /dev, /sys and a fresh /tmp in it, each DIR
# bound at its own path, then pivot_root into it, the old root detached, and the uid/gid dropped with
# setpriv. Nothing is written to ROOT itself, and the mounts vanish with the namespace.
set -euo pipefail

usage() { echo "usage: $0 ROOT UID[:GID] [--bind DIR]... -- CMD [ARG...]" >&2; exit 2; }
[[ $# -ge 3 ]] || usage
root=$(realpath "$1") ids=$2
shift 2
binds=()
while [[ $# -gt 0 && $1 != -- ]]; do
  [[ $1 == --bind && $# -ge 2 ]] || usage
  binds+=("$(realpath "$2")")
  shift 2
done
[[ ${1:-} == -- ]] || usage
shift
[[ $# -ge 1 ]] || usage
uid=${ids%%:*} gid=${ids#*:}
[[ $ids == *:* ]] || gid=$uid

exec unshare --mount --propagation private bash --norc -c '
  set -euo pipefail
  root=$1 uid=$2 gid=$3 nbinds=$4
  shift 4
  mount --bind "$root" "$root"
  mount -t proc proc "$root/proc"
  mount --rbind /dev "$root/dev"
  mount --rbind /sys "$root/sys"
  mount -t tmpfs -o mode=1777 tmpfs "$root/tmp"
  for ((i = 0; i < nbinds; i++)); do
    dir=$1
    shift
    mkdir -p "$root$dir"
    mount --rbind "$dir" "$root$dir"
  done
  shift # --
  mkdir "$root/tmp/.old-root"
  cd "$root"
  pivot_root . tmp/.old-root
  umount -l /tmp/.old-root
  rmdir /tmp/.old-root
  cd /
  exec setpriv --reuid="$uid" --regid="$gid" --clear-groups --reset-env "$@"
' in-rootfs "$root" "$uid" "$gid" "${#binds[@]}" "${binds[@]}" -- "$@"
