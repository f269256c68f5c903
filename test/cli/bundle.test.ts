// bin/tocfs.js runs dist/tocfs.mjs, the CLI bundled into one module (scripts/bundle.mjs): the daemon's
// start skips Node's per-file module loading (issue 8). Pins what that relies on: the bin imports the
// bundle, the bundle is as new as the sources, it reaches outside itself only for Node's builtins and the
// native addons, and it runs.
import t from 'tap';
import { readdir, readFile, stat } from 'node:fs/promises';
import { builtinModules } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { compress } from 'zstd-napi';
import { runTocfsBin } from '../support/cli.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const bundle = join(root, 'dist', 'tocfs.mjs');
const zstdWorker = join(root, 'dist', 'zstd-worker.mjs');
const NATIVE_ADDONS = ['fuse-native', 'zstd-napi', '@napi-rs/xattr'];

async function newestSource(dir: string): Promise<{ file: string; mtimeMs: number }> {
  let newest = { file: '', mtimeMs: 0 };
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const full = join(dir, entry.name);
    const candidate = entry.isDirectory() ? await newestSource(full) : { file: full, mtimeMs: (await stat(full)).mtimeMs };
    if (candidate.mtimeMs > newest.mtimeMs) newest = candidate;
  }
  return newest;
}

/** Every module specifier the bundle names: static imports, import() and require(). */
function specifiersOf(text: string): Set<string> {
  const found = new Set<string>();
  const forms = [/^import\s[^;]*?from\s*"([^"]+)"/gm, /\bimport\(\s*"([^"]+)"\s*\)/g, /\brequire\(\s*"([^"]+)"\s*\)/g];
  for (const form of forms) for (const m of text.matchAll(form)) found.add(m[1]!);
  return found;
}

const isBuiltin = (spec: string): boolean => spec.startsWith('node:') || builtinModules.includes(spec);
const packageOf = (spec: string): string => spec.split('/').slice(0, spec.startsWith('@') ? 2 : 1).join('/');

t.test('bin/tocfs.js imports the bundle', async (t) => {
  const bin = await readFile(join(root, 'bin', 'tocfs.js'), 'utf8');
  t.match(bin, /^import \{ runProcess \} from '\.\.\/dist\/tocfs\.mjs';$/m);
});

t.test('the bundle is built from the current sources', async (t) => {
  const built = await stat(bundle).catch(() => undefined);
  if (!built) return t.fail(`${bundle} is missing: run npm run build`);
  const newest = await newestSource(join(root, 'src'));
  t.ok(built.mtimeMs >= newest.mtimeMs, `${newest.file} is newer than the bundle: run npm run build`);
});

t.test('the bundle loads nothing from outside but builtins and the native addons', async (t) => {
  const specs = specifiersOf(await readFile(bundle, 'utf8'));
  t.ok(specs.has('fuse-native'), 'fuse-native stays outside');
  const outside = [...specs].filter((s) => !isBuiltin(s) && !NATIVE_ADDONS.includes(packageOf(s)));
  t.same(outside, [], 'relative paths and bundled packages (undici, lru-cache, tar) are inside');
  t.notOk([...specs].some((s) => s.startsWith('undici')), 'undici is inside the bundle');
});

t.test('the bundled CLI runs: usage, and a usage error with its exit code', async (t) => {
  const help = await runTocfsBin(['--help'], process.env);
  t.equal(help.code, 0, help.err);
  t.match(help.text, /^usage: tocfs <command>/);
  const bad = await runTocfsBin(['mount'], process.env);
  t.equal(bad.code, 2, 'a usage error exits 2');
  t.match(bad.err, /mount/);
});

// The zstd worker thread is a second bundle the first starts by URL relative to itself: it must be there,
// self-contained like the CLI's, named so by the CLI's bundle, and decompress.
t.test('the zstd worker bundle sits next to the CLI bundle and decompresses', async (t) => {
  const cli = await readFile(bundle, 'utf8');
  // esbuild may rename the imports (fileURLToPath2) when another bundled module imports the same name.
  t.ok(/new URL\(`\.\/zstd-worker\$\{extname\d*\(fileURLToPath\d*\(import\.meta\.url\)\)\}`, import\.meta\.url\)/.test(cli), 'the CLI starts ./zstd-worker + its own extension');
  const specs = specifiersOf(await readFile(zstdWorker, 'utf8'));
  t.same([...specs].filter((s) => !isBuiltin(s) && !NATIVE_ADDONS.includes(packageOf(s))), [], 'nothing outside but builtins and addons');
  const worker = new Worker(zstdWorker);
  t.teardown(() => worker.terminate());
  const plain = Buffer.alloc(3 << 20, 'tocfs ');
  const span = new Uint8Array(compress(plain));
  const reply = await new Promise<{ id: number; bytes?: Uint8Array; error?: unknown }>((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
    worker.postMessage({ id: 7, span, max: 4 << 20 });
  });
  t.equal(reply.id, 7);
  t.ok(reply.bytes && Buffer.from(reply.bytes).equals(plain), 'the bytes come back whole');
});
