// The ChunkStore contract (STYLE.md item 11; cvmfs cache_plugin, undici cacheStoreTests), run unchanged
// against every store. Persistence checks (crash leftovers, corruption, reuse after restart) run for the
// stores that say how to reach their files.
import type { Test } from 'tap';
import type { ChunkStore } from '../../src/layers/store/chunk-store.js';
import { noise, sha256 } from '../layers/fake-blob.js';
import { recordChannels } from './channels.js';

export interface PersistentStore {
  /** Opens the same directory again, as a restarted daemon would (the old store is NOT closed: a crash). */
  reopen(opts?: { maxBytes?: number }): Promise<ChunkStore>;
  /** Leaves a temp file as a writer killed mid-write would. */
  leaveTempFile(): Promise<void>;
  tempFiles(): Promise<string[]>;
  /** Flips one byte of a committed chunk's file. */
  corrupt(digest: string): Promise<void>;
  exists(digest: string): Promise<boolean>;
}

export interface StoreUnderTest {
  readonly store: ChunkStore;
  readonly persistent?: PersistentStore;
}

export type MakeStore = (t: Test, opts: { maxBytes: number }) => Promise<StoreUnderTest>;

function chunk(seed: number, size = 100): { digest: string; bytes: Buffer } {
  const bytes = noise(size, seed);
  return { digest: sha256(bytes), bytes };
}

async function put(store: ChunkStore, c: { digest: string; bytes: Uint8Array }): Promise<void> {
  const w = store.begin(c.digest, c.bytes.byteLength);
  await w.write(c.bytes);
  await w.commit();
}

export function chunkStoreSuite(t: Test, makeStore: MakeStore): void {
  t.test('a committed chunk reads back exactly; has() follows', async (t) => {
    const { store } = await makeStore(t, { maxBytes: 1 << 20 });
    const a = chunk(1, 5000);
    t.equal(await store.has(a.digest), false);
    t.equal(await store.get(a.digest), undefined);
    const w = store.begin(a.digest, a.bytes.length);
    await w.write(a.bytes.subarray(0, 1234));
    await w.write(a.bytes.subarray(1234));
    await w.commit();
    t.same(Buffer.from((await store.get(a.digest))!), a.bytes);
    t.equal(await store.has(a.digest), true);
    t.equal(store.stats().entries, 1);
    t.equal(store.stats().bytes, 5000);
  });

  t.test('reads during a transaction miss until commit, never see part of a chunk', async (t) => {
    const { store } = await makeStore(t, { maxBytes: 1 << 20 });
    const a = chunk(2, 64 << 10);
    const w = store.begin(a.digest, a.bytes.length);
    await w.write(a.bytes.subarray(0, 1000));
    t.equal(await store.get(a.digest), undefined, 'miss after a partial write');
    await w.write(a.bytes.subarray(1000));
    t.equal(await store.get(a.digest), undefined, 'miss before commit');
    const reads: Promise<Uint8Array | undefined>[] = [];
    const committing = w.commit();
    for (let i = 0; i < 20; i++) reads.push(store.get(a.digest));
    await committing;
    for (const r of await Promise.all(reads)) if (r !== undefined) t.same(Buffer.from(r), a.bytes, 'whole chunk or nothing');
    t.same(Buffer.from((await store.get(a.digest))!), a.bytes);
  });

  t.test('abort discards; a transaction is used once', async (t) => {
    const { store, persistent } = await makeStore(t, { maxBytes: 1 << 20 });
    const a = chunk(3);
    const w = store.begin(a.digest, a.bytes.length);
    await w.write(a.bytes);
    await w.abort();
    await w.abort();
    t.equal(await store.get(a.digest), undefined);
    await t.rejects(w.commit(), 'commit after abort');
    await t.rejects(w.write(a.bytes), 'write after abort');
    if (persistent) t.same(await persistent.tempFiles(), [], 'abort leaves no temp file');
  });

  t.test('commit with the wrong number of bytes is BAD_DATA and publishes nothing', async (t) => {
    const { store, persistent } = await makeStore(t, { maxBytes: 1 << 20 });
    const a = chunk(4);
    const w = store.begin(a.digest, a.bytes.length + 1);
    await w.write(a.bytes);
    await t.rejects(w.commit(), { code: 'BAD_DATA' });
    t.equal(await store.get(a.digest), undefined);
    if (persistent) t.same(await persistent.tempFiles(), [], 'no temp file left');
  });

  t.test('the writer copies: a caller reusing its buffer does not change the chunk', async (t) => {
    const { store } = await makeStore(t, { maxBytes: 1 << 20 });
    const a = chunk(5);
    const buf = Buffer.from(a.bytes);
    const w = store.begin(a.digest, buf.length);
    const writing = w.write(buf);
    buf.fill(0);
    await writing;
    await w.commit();
    t.same(Buffer.from((await store.get(a.digest))!), a.bytes);
  });

  t.test('keys must be sha256 digests (they become file names)', async (t) => {
    const { store } = await makeStore(t, { maxBytes: 1 << 20 });
    t.throws(() => store.begin('sha256:../../etc/passwd', 1), { code: 'FORMAT' });
    t.throws(() => store.begin('md5:abcd', 1));
  });

  t.test('two transactions for one digest both commit', async (t) => {
    const { store } = await makeStore(t, { maxBytes: 1 << 20 });
    const a = chunk(6, 10_000);
    await Promise.all([put(store, a), put(store, a)]);
    t.same(Buffer.from((await store.get(a.digest))!), a.bytes);
    t.equal(store.stats().entries, 1);
    t.equal(store.stats().bytes, 10_000);
  });

  t.test('delete', async (t) => {
    const { store } = await makeStore(t, { maxBytes: 1 << 20 });
    const a = chunk(7);
    await put(store, a);
    await store.delete(a.digest);
    t.equal(await store.get(a.digest), undefined);
    t.equal(await store.has(a.digest), false);
    await store.delete(a.digest);
  });

  t.test('evicts the least recently used chunks beyond the byte budget', async (t) => {
    const { store } = await makeStore(t, { maxBytes: 300 });
    const [a, b, c, d] = [chunk(10), chunk(11), chunk(12), chunk(13)];
    await put(store, a!);
    await put(store, b!);
    await put(store, c!);
    t.ok(await store.get(a!.digest), 'a read: now the most recently used');
    await put(store, d!);
    t.equal(await store.has(b!.digest), false, 'b, least recently used, evicted');
    for (const x of [a!, c!, d!]) t.equal(await store.has(x.digest), true);
    t.ok(store.stats().bytes <= 300);
    t.equal(store.stats().evictions, 1);
  });

  t.test('close keeps committed chunks', async (t) => {
    const { store, persistent } = await makeStore(t, { maxBytes: 1 << 20 });
    const a = chunk(20);
    await put(store, a);
    await store.close();
    if (!persistent) return;
    const again = await persistent.reopen();
    t.teardown(() => again.close());
    t.same(Buffer.from((await again.get(a.digest))!), a.bytes, 'served after a restart');
  });

  t.test('reopen after a crash: temp files removed, committed chunks reused, access order kept', async (t) => {
    const { store, persistent } = await makeStore(t, { maxBytes: 300 });
    if (!persistent) return void t.pass('not persistent: nothing to check');
    const [a, b, c, d] = [chunk(30), chunk(31), chunk(32), chunk(33)];
    await put(store, a!);
    await put(store, b!);
    await put(store, c!);
    t.ok(await store.get(a!.digest), 'a read last');
    const torn = store.begin(d!.digest, 100);
    await torn.write(d!.bytes.subarray(0, 50)); // killed here: never committed
    await persistent.leaveTempFile();
    // The torn write has a file of its own only in a store that writes before commit.
    t.ok((await persistent.tempFiles()).length >= 1, 'temp files on disk');

    const again = await persistent.reopen();
    t.teardown(() => again.close());
    t.same(await persistent.tempFiles(), [], 'temp files removed at open');
    t.equal(again.stats().entries, 3);
    t.equal(again.stats().bytes, 300);
    t.equal(await again.get(d!.digest), undefined, 'the torn chunk is not there');
    await put(again, d!);
    t.equal(again.stats().evictions, 1);
    t.equal(await again.has(a!.digest), true, 'a, read just before the crash, survives the eviction');
    t.same(Buffer.from((await again.get(a!.digest))!), a!.bytes);
  });

  t.test('a corrupt chunk file is a miss, deleted and reported', async (t) => {
    const { store, persistent } = await makeStore(t, { maxBytes: 1 << 20 });
    if (!persistent) return void t.pass('not persistent: nothing to check');
    const a = chunk(40, 4096);
    await put(store, a);
    await persistent.corrupt(a.digest);
    const events = recordChannels(t, 'tocfs:cache:corrupt');
    t.equal(await store.get(a.digest), undefined);
    t.equal(await persistent.exists(a.digest), false, 'file deleted');
    t.equal(events.length, 1);
    t.match(events[0], { store: 'chunks', digest: a.digest });
    t.equal(store.stats().corrupt, 1);
    await put(store, a);
    t.same(Buffer.from((await store.get(a.digest))!), a.bytes, 'stored again after');
  });
}
