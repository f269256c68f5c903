// Bundles the CLI (src/cli/main.ts and everything it imports, undici, lru-cache and tar included) into
// one ES module, dist/tocfs.mjs, which bin/tocfs.js runs, and the zstd worker thread into another,
// dist/zstd-worker.mjs. Node's module loader resolves, stats, reads and compiles each file of an import
// graph one by one: `tocfs mount`'s ~150 files took ~205 ms to load, the
// bundle ~75 ms, and that is inside every time to first command (issue 8, bench/RESULTS.md). The commands
// stay lazy: a dynamic import() becomes a function in the bundle that runs on first call.
//
// Native addons stay outside (they load a .node file found next to their package), as do Node's builtins.
//
//   node scripts/bundle.mjs        (npm run build runs it after tsc)
import { build } from 'esbuild';
import { fileURLToPath } from 'node:url';

/** Packages the bundle imports at run time from node_modules; every other import is inside it. */
const EXTERNAL_PACKAGES = ['fuse-native', 'zstd-napi', '@napi-rs/xattr'];

const root = fileURLToPath(new URL('..', import.meta.url));

await build({
  absWorkingDir: root,
  // The zstd worker thread (src/layers/fetch/zstd-worker.ts) is a module of its own that the bundle
  // starts by URL, relative to itself: dist/zstd-worker.mjs.
  entryPoints: [
    { in: 'src/cli/main.ts', out: 'tocfs' },
    { in: 'src/layers/fetch/zstd-worker.ts', out: 'zstd-worker' },
  ],
  outdir: 'dist',
  outExtension: { '.js': '.mjs' },
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  external: EXTERNAL_PACKAGES,
  sourcemap: true,
  // The CommonJS packages inside (undici, tar's dependencies) call require() for Node's builtins, which an
  // ES module does not have.
  banner: { js: "import { createRequire as __tocfsCreateRequire } from 'node:module';\nconst require = __tocfsCreateRequire(import.meta.url);" },
  logLevel: 'warning',
});
