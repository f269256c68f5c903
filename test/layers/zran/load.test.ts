// The zran addon loads from the package root, so the same wrapper works under tsx (src/) and bundled into
// one module in dist/ (scripts/bundle.mjs), where import.meta.url points elsewhere.
import t from 'tap';
import { build } from 'esbuild';
import { rm } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { gzipSync } from 'node:zlib';
import { zranAddon } from '../../../src/layers/zran/zran.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

t.test('under tsx, from src/', async (t) => {
  t.equal(zranAddon().WINDOW_SIZE, 32768);
  t.match(zranAddon().zlibVersion, /^1\./);
});

t.test('bundled by esbuild into dist/', async (t) => {
  const outfile = join(root, 'dist', `zran-load-probe-${process.pid}.mjs`);
  t.teardown(() => rm(outfile, { force: true }));
  await build({
    stdin: { contents: "export * from './src/layers/zran/zran.ts';", resolveDir: root, loader: 'ts' },
    outfile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    logLevel: 'warning',
  });
  const bundled = (await import(pathToFileURL(outfile).href)) as typeof import('../../../src/layers/zran/zran.js');
  const indexer = new bundled.ZranIndexer(1024);
  const data = Buffer.from('hello zran '.repeat(1000));
  const r = await indexer.push(gzipSync(data));
  indexer.end();
  t.ok(Buffer.concat(r.out).equals(data));
  const cp = r.checkpoints[0]!;
  t.ok((await bundled.extract(gzipSync(data).subarray(cp.in), cp, 6, 5)).equals(Buffer.from('zran ')));
});
