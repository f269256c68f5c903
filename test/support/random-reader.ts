// A child process for test/integration/parallel-readers.test.ts: N concurrent readers, each doing random
// preads of random files under MOUNT and checking every byte against the same file under LOCAL. Prints one
// JSON line: { reads, bytes, mismatches: [...], errors: [...] }. A child, because FUSE ops are served on the
// test's own JS thread, and with a thread pool as large as the readers so that none waits for a slot.
//   UV_THREADPOOL_SIZE=64 node --import tsx random-reader.ts MOUNT LOCAL READERS READS_EACH SEED FILE...
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { prng } from './prng.js';

const [mount, local, readersText, readsText, seedText, ...files] = process.argv.slice(2);
if (mount === undefined || local === undefined || files.length === 0) {
  process.stdout.write('1..0 # SKIP helper for parallel-readers.test.ts, not a test\n');
} else {
  const readers = Number(readersText);
  const readsEach = Number(readsText);
  const seed = Number(seedText);
  let reads = 0;
  let bytes = 0;
  const mismatches: string[] = [];
  const errors: string[] = [];

  async function reader(id: number): Promise<void> {
    const random = prng(seed + id * 7919);
    for (let i = 0; i < readsEach; i++) {
      const name = files[Math.floor(random() * files.length)]!;
      const want = await open(join(local!, name));
      const got = await open(join(mount!, name));
      try {
        const size = (await want.stat()).size;
        // Offsets anywhere, past the end too; lengths from 1 byte to 1 MiB.
        const offset = Math.floor(random() * (size + 1024));
        const length = 1 + Math.floor(random() ** 3 * (1 << 20));
        const [a, b] = await Promise.all([
          want.read(Buffer.alloc(length), 0, length, offset),
          got.read(Buffer.alloc(length), 0, length, offset),
        ]);
        reads++;
        bytes += b.bytesRead;
        if (a.bytesRead !== b.bytesRead || !a.buffer.subarray(0, a.bytesRead).equals(b.buffer.subarray(0, b.bytesRead))) {
          mismatches.push(`${name} [${offset}, +${length}): ${b.bytesRead} bytes read, ${a.bytesRead} expected`);
        }
      } catch (err) {
        errors.push(`${name}: ${(err as Error).message}`);
      } finally {
        await want.close();
        await got.close();
      }
    }
  }

  await Promise.all(Array.from({ length: readers }, (_, id) => reader(id)));
  process.stdout.write(`${JSON.stringify({ reads, bytes, mismatches, errors })}\n`);
}
