// Python import prefetch on a real mount (src/image/python-prefetch.ts): reading a compiled module of an
// eStargz image served by a real registry fetches, in the background, the modules its import executes
// (CPython 3.11's own .pyc files, test/fixtures/python), so that reading them afterwards sends no request;
// a module only imported inside a function is not fetched, and reading it is the control (it fetches).
// A module among an optimized layer's prioritised files is not followed (image.ts).
// Every module sits between 128 KiB of noise, so no read-ahead by neighbourhood can bring one along.
// Every command on the mount runs in a child process: FUSE ops are served on this process's JS thread.
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import t, { type Test } from 'tap';
import { noise } from '../layers/fake-blob.js';
import { estargzLayerFile } from '../support/estargz-build.js';
import { startFaultProxy } from '../support/fault-proxy.js';
import { buildImage } from '../support/image-builder.js';
import { mountDaemon } from '../support/mount-daemon.js';
import { pushImage } from '../support/push.js';
import { startRegistry } from '../support/registry.js';
import { dir, file, type TarEntry } from '../support/tar-dsl.js';
import { tempDir } from '../support/tmp.js';

const run = promisify(execFile);
const quiet = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const FIXTURES = fileURLToPath(new URL('../fixtures/python/src', import.meta.url));
const PLACES = { site: 'usr/lib/python3/dist-packages', stdlib: 'usr/lib/python3.11' };

/** The fixture sources and their 3.11 modules where Debian puts them, each after its own block of noise. */
function pythonEntries(): TarEntry[] {
  const entries: TarEntry[] = [];
  const dirs = new Set<string>();
  const walk = (at: string): string[] => readdirSync(at).flatMap((n) => (statSync(join(at, n)).isDirectory() ? walk(join(at, n)) : [join(at, n)]));
  let seed = 1;
  for (const path of walk(FIXTURES).sort()) {
    if (!path.endsWith('.py') && !path.endsWith('.cpython-311.pyc')) continue;
    const [where, ...rest] = relative(FIXTURES, path).split('/');
    const target = `${PLACES[where as keyof typeof PLACES]}/${rest.join('/')}`;
    const parts = target.split('/');
    for (let i = 1; i < parts.length; i++) {
      const d = parts.slice(0, i).join('/');
      if (!dirs.has(d)) entries.push(dir(d));
      dirs.add(d);
    }
    entries.push(file(`${target}.noise`, noise(128 << 10, seed++)));
    entries.push(file(target, readFileSync(path)));
  }
  return entries;
}

const PKG_INIT = `${PLACES.site}/pkg/__pycache__/__init__.cpython-311.pyc`;

/** A registry behind a counting proxy, the fixtures pushed as one eStargz layer, the mount; the image's root. */
async function mountedImage(t: Test, prioritized?: readonly string[]): Promise<{ root: string; requests: () => number }> {
  const work = tempDir(t, 'python-prefetch');
  const reg = await startRegistry(t);
  const proxy = await startFaultProxy(t, { target: reg.url });
  const layer = await estargzLayerFile(join(work, 'layer'), pythonEntries(), { chunkSize: 256 << 10, ...(prioritized && { prioritized }) });
  const image = await buildImage(join(work, 'image'), { layers: [layer] });
  await pushImage(reg.seedUrl, 'prefetch/python', 'v1', image);
  const { mnt } = await mountDaemon(t, 'python-prefetch');
  return { root: join(mnt, 'images', proxy.host, 'prefetch/python:v1'), requests: () => proxy.counters.byKind.blobs.requests };
}

t.test('reading a compiled module fetches the modules its import executes: reading them then sends no request', async (t) => {
  const { root, requests } = await mountedImage(t);
  const site = join(root, PLACES.site, 'pkg');
  const stdlib = join(root, PLACES.stdlib);

  // What the interpreter reads first when `import pkg` runs: the package's compiled __init__.
  await run('head', ['-c', '16', join(root, PKG_INIT)]);
  await quiet(1000);
  const before = requests();
  const imported = [
    join(stdlib, 'json/__pycache__/__init__.cpython-311.pyc'),
    join(stdlib, 'json/__pycache__/decoder.cpython-311.pyc'),
    join(site, '__pycache__/core.cpython-311.pyc'),
    join(site, '__pycache__/helper.cpython-311.pyc'),
    join(site, 'sub/__pycache__/__init__.cpython-311.pyc'),
    join(site, 'sub/__pycache__/leaf.cpython-311.pyc'),
    join(site, '__pycache__/extra.cpython-311.pyc'),
    join(stdlib, 'collections/__pycache__/__init__.cpython-311.pyc'),
    join(stdlib, '__pycache__/keyword.cpython-311.pyc'),
    join(stdlib, 'collections/__pycache__/abc.cpython-311.pyc'),
  ];
  const { stdout } = await run('cat', imported, { encoding: 'latin1' });
  t.equal(stdout.length, imported.reduce((n, p) => n + statSync(p).size, 0));
  t.equal(requests(), before, 'the modules `import pkg` executes were all here');

  await run('cat', [join(stdlib, 'email/__pycache__/__init__.cpython-311.pyc')]);
  t.ok(requests() > before, 'the control: a module imported inside a function is fetched when read');
});

t.test('a module among the prioritised files of an optimized layer is not followed: its recorded reads are on their way', async (t) => {
  const { root, requests } = await mountedImage(t, [PKG_INIT]);
  await run('head', ['-c', '16', join(root, PKG_INIT)]);
  await quiet(1000);
  const before = requests();
  await run('cat', [join(root, PLACES.stdlib, 'json/__pycache__/__init__.cpython-311.pyc')]);
  t.ok(requests() > before, 'what it imports was not fetched ahead');
});
