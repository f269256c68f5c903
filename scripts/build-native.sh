#!/usr/bin/env bash
# Builds the N-API addon in native/ (zran: random access into plain gzip) with node-gyp, offline: against the
# headers of the Node that runs it (Debian's and NodeSource's nodejs ship them in <prefix>/include/node, the
# official images in /usr/local/include/node), never a download. Configures once, then rebuilds only what
# changed; `node-gyp rebuild --directory native --nodedir=/usr` is the same from scratch.
#
#   bash scripts/build-native.sh           (npm run build runs it after the bundle)
set -euo pipefail
cd "$(dirname "$0")/.."

prefix=$(dirname "$(dirname "$(readlink -f "$(command -v node)")")")
nodedir=${npm_config_nodedir:-$prefix}
[[ -f $nodedir/include/node/node_api.h ]] || nodedir=$prefix
if [[ ! -f $nodedir/include/node/node_api.h ]]; then
  echo "build-native: no Node headers in $nodedir/include/node (install Node with its headers, e.g. Debian's nodejs)" >&2
  exit 1
fi
gyp=(node node_modules/node-gyp/bin/node-gyp.js --directory native --nodedir="$nodedir" --loglevel=warn)
if [[ ! -f native/build/Makefile || native/binding.gyp -nt native/build/Makefile ]]; then
  "${gyp[@]}" configure
fi
"${gyp[@]}" build --jobs=2 >/dev/null  # make's progress lines; errors go to stderr
