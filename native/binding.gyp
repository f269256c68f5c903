# tocfs's zran addon: random access into plain gzip (DESIGN.md 3.4). Built offline against Node's own headers:
#   node-gyp rebuild --directory native --nodedir=/usr      (scripts/build-native.sh, run by `npm run build`)
# C++ exceptions stay off (node-addon-api's noexcept target): every failure is a JS error or a rejected promise.
{
  'targets': [
    {
      'target_name': 'tocfs_zran',
      'sources': ['src/addon.cc', 'src/indexer.cc', 'src/extract.cc'],
      'dependencies': ["<!(node -p \"require('node-addon-api').targets\"):node_addon_api"],
      'defines': ['NAPI_VERSION=8', 'NODE_ADDON_API_DISABLE_DEPRECATED'],
      'cflags_cc': ['-O2', '-fvisibility=hidden', '-Wall', '-Wextra'],
      # Node exports zlib's symbols too (its own zlib 1.3.1) and the loader binds to the first definition,
      # the executable's; -lz keeps the addon loadable by a Node that exports none. Both have inflatePrime.
      'libraries': ['-lz'],
      'ldflags': ['-Wl,-z,noexecstack', '-Wl,-z,relro', '-Wl,-z,now'],
    },
  ],
}
