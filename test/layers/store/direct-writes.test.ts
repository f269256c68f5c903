// The disk cache's O_DIRECT writes: exact bytes for every size around the block and bounce-buffer edges,
// concurrent writers sharing the buffers, nothing left in the page cache, and the buffered slices.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { open, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { probeDirectWrites, writeDirect } from '../../../src/layers/store/direct-writes.js';
import { WRITE_SLICE_BYTES, writeWhole } from '../../../src/layers/store/file-writes.js';
import { tempDir } from '../../support/tmp.js';
import { noise } from '../fake-blob.js';

const MIB = 1 << 20;

/** Pages of `file` in the page cache, by util-linux's fincore. */
const cachedPages = (file: string): number =>
  Number(execFileSync('fincore', ['--bytes', '--noheadings', '--output', 'PAGES', file], { encoding: 'utf8' }).trim());

t.test('the test directory takes O_DIRECT; a missing one answers false', async (t) => {
  const dir = tempDir(t, 'direct-probe');
  t.equal(await probeDirectWrites(dir, 'probe'), true);
  t.equal(await probeDirectWrites(join(dir, 'missing'), 'probe'), false);
  t.same(await import('node:fs/promises').then((fs) => fs.readdir(dir)), [], 'the scratch file is removed');
});

t.test('every size around the block and buffer edges reads back exactly', async (t) => {
  const dir = tempDir(t, 'direct-sizes');
  const sizes = [0, 1, 4095, 4096, 4097, MIB - 1, MIB, MIB + 1, 3 * MIB + 12345, 4 * MIB];
  for (const [i, size] of sizes.entries()) {
    const bytes = noise(size, i);
    const file = join(dir, `whole-${size}`);
    await writeDirect(file, [bytes]);
    t.same(await readFile(file), bytes, `${size} bytes in one piece`);
    // Pieces of odd sizes cross the buffers' and the blocks' edges at other places.
    const pieces: Buffer[] = [];
    for (let at = 0; at < size; at += 777_777) pieces.push(bytes.subarray(at, Math.min(size, at + 777_777)));
    const split = join(dir, `pieces-${size}`);
    await writeDirect(split, pieces);
    t.same(await readFile(split), bytes, `${size} bytes in ${pieces.length} pieces`);
  }
});

t.test('an existing file is not overwritten', async (t) => {
  const dir = tempDir(t, 'direct-exists');
  const file = join(dir, 'taken');
  await writeFile(file, 'mine');
  await t.rejects(writeDirect(file, [noise(10, 1)]), { code: 'EEXIST' });
  t.equal(await readFile(file, 'utf8'), 'mine');
});

t.test('more writers than bounce buffers all finish with their own bytes', async (t) => {
  const dir = tempDir(t, 'direct-many');
  const chunks = Array.from({ length: 12 }, (_, i) => noise(2 * MIB + i * 1000, 100 + i));
  await Promise.all(chunks.map((bytes, i) => writeDirect(join(dir, `c${i}`), [bytes])));
  for (const [i, bytes] of chunks.entries()) t.same(await readFile(join(dir, `c${i}`)), bytes, `chunk ${i}`);
});

t.test('the written bytes are not left in the page cache', async (t) => {
  const dir = tempDir(t, 'direct-cache');
  const file = join(dir, 'chunk');
  await writeDirect(file, [noise(4 * MIB + 100, 7)]);
  t.equal(cachedPages(file), 0, 'O_DIRECT');
  const buffered = join(dir, 'buffered');
  const handle = await open(buffered, 'wx');
  await writeWhole(handle, noise(4 * MIB + 100, 7));
  await handle.close();
  t.ok(cachedPages(buffered) > 1000, 'a buffered write of the same bytes is (fincore sees it)');
});

t.test('writeWhole writes in slices, at the file position or at an offset, retrying short writes', async (t) => {
  const bytes = noise(WRITE_SLICE_BYTES * 2 + 10, 3);
  const calls: Array<{ offset: number; length: number; position: number | null }> = [];
  const out = Buffer.alloc(bytes.length + 100);
  const file = {
    write: async (buffer: Uint8Array, offset: number, length: number, position: number | null) => {
      calls.push({ offset, length, position });
      const n = Math.min(length, 100_000); // short writes
      out.set(buffer.subarray(offset, offset + n), (position ?? offset) + 0);
      return { bytesWritten: n, buffer };
    },
  };
  await writeWhole(file as never, bytes);
  t.same(out.subarray(0, bytes.length), bytes);
  t.ok(calls.every((c) => c.length <= WRITE_SLICE_BYTES && c.position === null), 'no slice over the limit');
  calls.length = 0;
  await writeWhole(file as never, bytes.subarray(0, 50), 100);
  t.same(calls, [{ offset: 0, length: 50, position: 100 }]);
});
