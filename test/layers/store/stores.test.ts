// chunkStoreSuite on the memory LRU and the disk store, plus what only one of them does.
import t from 'tap';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { openDiskStore } from '../../../src/layers/store/disk-store.js';
import { MemoryChunkStore } from '../../../src/layers/store/memory-store.js';
import { chunkStoreSuite } from '../../support/store-suite.js';
import { tempDir } from '../../support/tmp.js';
import { noise, sha256 } from '../fake-blob.js';

t.test('memory store', async (t) => {
  chunkStoreSuite(t, async (t, { maxBytes }) => {
    const store = new MemoryChunkStore({ maxBytes });
    t.teardown(() => store.close());
    return { store };
  });
});

for (const directWrites of [true, false]) t.test(`disk store, ${directWrites ? 'O_DIRECT' : 'buffered'} writes`, async (t) => {
  chunkStoreSuite(t, async (t, { maxBytes }) => {
    const dir = tempDir(t, 'disk-store');
    // touchIntervalMs 0: every hit stamps the mtime, so the access order of a "crash" test is on disk.
    const open = (max = maxBytes) => openDiskStore({ dir, maxBytes: max, touchIntervalMs: 0, directWrites });
    const store = await open();
    t.equal(store.directWrites, directWrites, 'the test directory takes O_DIRECT');
    t.teardown(() => store.close());
    const file = (digest: string): string => join(dir, 'chunks', digest.slice(7, 9), digest.slice(7));
    const tmpDir = join(dir, 'chunks', '.tmp');
    return {
      store,
      persistent: {
        reopen: async (o = {}) => open(o.maxBytes),
        // pid 2^22 + 1 is above Linux's pid_max: no process has it.
        leaveTempFile: () => writeFile(join(tmpDir, `${2 ** 22 + 1}-0-${'0'.repeat(64)}`), 'partial'),
        tempFiles: () => readdir(tmpDir),
        corrupt: async (digest) => {
          const bytes = await readFile(file(digest));
          bytes[bytes.length >> 1]! ^= 0xff;
          await writeFile(file(digest), bytes);
        },
        exists: (digest) => stat(file(digest)).then(() => true, () => false),
      },
    };
  });
});

t.test('disk store: layout, strays and a smaller budget at open', async (t) => {
  const dir = tempDir(t, 'disk-layout');
  const store = await openDiskStore({ dir, maxBytes: 1000 });
  const chunks = [0, 1, 2, 3].map((i) => noise(200, i));
  for (const c of chunks) {
    const w = store.begin(sha256(c), c.length);
    await w.write(c);
    await w.commit();
  }
  const hex = sha256(chunks[0]!).slice(7);
  t.ok((await stat(join(dir, 'chunks', hex.slice(0, 2), hex))).isFile(), 'DIR/chunks/HEX[0:2]/HEX');
  await writeFile(join(dir, 'chunks', hex.slice(0, 2), 'stray.txt'), 'x');
  await store.close();

  const smaller = await openDiskStore({ dir, maxBytes: 500 });
  t.teardown(() => smaller.close());
  t.equal(smaller.stats().entries, 2, 'evicted down to the new budget at open');
  t.ok(smaller.stats().bytes <= 500);
  t.notOk((await readdir(join(dir, 'chunks', hex.slice(0, 2)))).includes('stray.txt'), 'stray file removed');
});

t.test('memory store: a chunk larger than the budget is not kept', async (t) => {
  const store = new MemoryChunkStore({ maxBytes: 100 });
  const big = noise(200, 9);
  const w = store.begin(sha256(big), big.length);
  await w.write(big);
  await w.commit();
  t.equal(await store.get(sha256(big)), undefined);
});

t.test('memory store: bytes the caller vouches for are kept as they are, anything else is copied', async (t) => {
  const store = new MemoryChunkStore({ maxBytes: 1 << 20 });
  const put = async (bytes: Uint8Array, immutable: boolean): Promise<Uint8Array | undefined> => {
    const w = store.begin(sha256(bytes), bytes.length);
    await w.write(bytes, { immutable });
    await w.commit();
    return store.get(sha256(bytes));
  };
  const own = noise(64 << 10, 1);
  t.equal(await put(own, true), own, 'immutable: no copy');
  const reused = noise(64 << 10, 2);
  const kept = await put(reused, false);
  t.not(kept, reused, 'without the promise: a copy');
  reused.fill(0);
  t.equal(sha256(kept!), sha256(noise(64 << 10, 2)), 'the copy does not change with the caller\'s buffer');
  // A small view of a large buffer would keep the whole buffer alive while the LRU counts the view.
  const big = noise(256 << 10, 3);
  const view = big.subarray(1000, 2000);
  const fromView = await put(view, true);
  t.not(fromView!.buffer, big.buffer, 'a small view of a large buffer is copied');
  t.equal(fromView!.byteLength, 1000);
});

t.test('disk store: files kept beside the chunks count against the one budget and are evicted LRU with them', async (t) => {
  const dir = tempDir(t, 'accounted');
  const store = await openDiskStore({ dir, maxBytes: 1000, touchIntervalMs: 0 });
  t.teardown(() => store.close());
  const removed: string[] = [];
  const file = join(dir, 'beside');
  await writeFile(file, 'x');
  const entry = (name: string, size: number) => ({ file, size, mtimeMs: Date.now(), remove: async () => void removed.push(name) });
  await store.account('a', entry('a', 400));
  await store.account('b', entry('b', 400));
  t.same(removed, [], 'within the budget');
  t.equal(store.stats().bytes, 800, 'counted');
  store.touchAccounted('a'); // now b is the least recently used
  const chunk = Buffer.alloc(300, 1);
  const w = store.begin(sha256(chunk), chunk.length);
  await w.write(chunk);
  await w.commit();
  t.same(removed, ['b'], 'the least recently used file went first, by its own remove');
  t.equal(store.stats().bytes, 700);
});
