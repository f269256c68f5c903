#!/usr/bin/env bash
# Builds the benchmark's app roots once and caches them beside scripts/rootfs.sh's roots (same cache, same
# NAME.complete marker and flock), so scripts/rootfs-image.sh can turn them into image layers:
#
#   bench/app-root.sh NAME BASE_NAME|- [--clean-apt] [--app] [--data FILE MIB]...
#
# --clean-apt removes what debootstrap leaves behind and an image build would not ship (the downloaded
# .debs, apt's package lists and caches), as official Debian images do;
# The root starts as a copy of the cached root BASE_NAME (or empty with -); --app adds /app/app.py (imports
# numpy, computes, prints one line); --data adds FILE (a path in the root) of MIB MiB of random bytes, which
# gzip cannot shrink (a data set, a model, a compressed archive).
set -euo pipefail
usage() { echo "usage: $0 NAME BASE_NAME|- [--clean-apt] [--app] [--data FILE MIB]..." >&2; exit 2; }
[[ $# -ge 2 ]] || usage
name=$1 base=$2
shift 2
[[ $name =~ ^[A-Za-z0-9._-]+$ ]] || { echo "app-root: bad name $name" >&2; exit 2; }
cache=${TOCFS_TEST_CACHE:-/var/cache/tocfs-test}/rootfs
dir=$cache/$name
mkdir -p "$cache"
exec 9>"$cache/$name.lock"
flock 9
if [[ -e $dir.complete && -d $dir ]]; then
  echo "$dir"
  exit 0
fi
work=$dir.tmp
rm -rf "$work"
if [[ $base == - ]]; then
  mkdir -p "$work"
else
  [[ -e $cache/$base.complete ]] || { echo "app-root: base $base is not built" >&2; exit 1; }
  cp -a "$cache/$base" "$work"
fi
while [[ $# -gt 0 ]]; do
  case $1 in
    --clean-apt)
      rm -rf "$work"/var/cache/apt/archives/*.deb "$work"/var/cache/apt/*.bin "$work"/var/lib/apt/lists/*
      shift
      ;;
    --app)
      mkdir -p "$work/app"
      cat >"$work/app/app.py" <<'PY'
# The benchmark's app: what a physics job's first seconds look like (interpreter, numpy, a computation).
import numpy as np

x = np.linspace(0.0, 1.0, 1_000_000)
print("app: integral of x^2 on [0,1] =", round(float(np.trapz(x * x, x)), 6))
PY
      shift
      ;;
    --data)
      [[ $# -ge 3 ]] || usage
      mkdir -p "$(dirname "$work/$2")"
      head -c "$(($3 * 1024 * 1024))" /dev/urandom >"$work/$2"
      shift 3
      ;;
    *) usage ;;
  esac
done
rm -rf "$dir"
mv "$work" "$dir"
touch "$dir.complete"
echo "$dir"
