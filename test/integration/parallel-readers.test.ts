// A request storm on a real mount (issue 4, "Done when"): 64 readers of random ranges of random files, in
// an eStargz layer with small chunks (reads cross chunk boundaries, many readers share a chunk in flight)
// and in a plain gzip layer (read whole once, while readers wait for their bytes), all checked byte for byte
// against the same files on local disk.
import { execFile } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import t from 'tap';
import { estargzLayerFile } from '../support/estargz-build.js';
import { buildImage } from '../support/image-builder.js';
import { mountDaemon } from '../support/mount-daemon.js';
import { prng } from '../support/prng.js';
import { pushImage } from '../support/push.js';
import { startRegistry } from '../support/registry.js';
import { dir, file, type TarEntry } from '../support/tar-dsl.js';
import { tempDir } from '../support/tmp.js';

const run = promisify(execFile);
const READER = fileURLToPath(new URL('../support/random-reader.ts', import.meta.url));
const READERS = 64;
const READS_EACH = 40;

/** `count` files of sizes spread from 0 to ~3 MiB, random content, under `prefix/`. */
function randomFiles(prefix: string, count: number, seed: number): Map<string, Buffer> {
  const random = prng(seed);
  const files = new Map<string, Buffer>();
  for (let i = 0; i < count; i++) {
    const size = i === 0 ? 0 : Math.floor(2 ** (random() * 21.6));
    const bytes = Buffer.alloc(size);
    for (let j = 0; j < size; j++) bytes[j] = Math.floor(random() * 256);
    files.set(`${prefix}/f${String(i).padStart(3, '0')}.bin`, bytes);
  }
  return files;
}

function entriesOf(files: Map<string, Buffer>): TarEntry[] {
  const dirs = new Set([...files.keys()].map((p) => dirname(p)));
  return [...[...dirs].map((d) => dir(d)), ...[...files].map(([path, bytes]) => file(path, bytes))];
}

t.test('64 parallel readers of random ranges of random files get exactly the bytes on local disk', async (t) => {
  const work = tempDir(t, 'parallel-readers');
  const lazy = randomFiles('lazy', 60, 0x5eed1);
  const whole = randomFiles('whole', 30, 0x5eed2);
  const local = join(work, 'local');
  for (const [path, bytes] of [...lazy, ...whole]) {
    await mkdir(dirname(join(local, path)), { recursive: true });
    await writeFile(join(local, path), bytes);
  }

  const lazyLayer = await estargzLayerFile(join(work, 'lazy-layer'), entriesOf(lazy), { chunkSize: 256 * 1024 });
  const image = await buildImage(join(work, 'image'), {
    layers: [
      { entries: entriesOf(whole), compression: 'gzip' },
      lazyLayer,
    ],
  });
  const reg = await startRegistry(t);
  await pushImage(reg.seedUrl, 'storm/image', 'v1', image);

  const { mnt, logs } = await mountDaemon(t, 'parallel-readers');
  const root = join(mnt, 'images', reg.host, 'storm/image:v1');
  const names = [...lazy.keys(), ...whole.keys()];
  const { stdout } = await run(process.execPath, ['--import', 'tsx', READER, root, local, String(READERS), String(READS_EACH), '12345', ...names], {
    env: { ...process.env, UV_THREADPOOL_SIZE: String(READERS) },
    maxBuffer: 16 << 20,
  });
  const result = JSON.parse(stdout) as { reads: number; bytes: number; mismatches: string[]; errors: string[] };
  t.equal(result.reads, READERS * READS_EACH, `${result.reads} reads, ${result.bytes} bytes`);
  t.same(result.errors, [], 'no read failed');
  t.same(result.mismatches, [], 'every byte equals the local copy');
  t.notMatch(logs.join('\n'), /error/i, 'nothing logged as an error');
});
