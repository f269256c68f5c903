// write-behind.ts: when verified chunks go to the disk cache. A controlled clock decides "quiet"; the
// writes themselves are gated promises, so every assertion is about order, never about elapsed time.
import t from 'tap';
import { deferred, type Deferred } from '../../../src/util/abort.js';
import type { Unit } from '../../../src/layers/fetch/fetch-plan.js';
import { WriteBehind, type WriteBehindOptions } from '../../../src/layers/fetch/write-behind.js';

const unit = (n: number, size = 10): Unit => ({ key: `sha256:${String(n).padStart(64, '0')}`, size } as unknown as Unit);
const bytes = (size = 10): Uint8Array => new Uint8Array(size);
const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
const settle = async (): Promise<void> => {
  for (let i = 0; i < 5; i++) await tick();
};

/** A queue whose writes are recorded and held until released; `clock.ms` is its time. */
function rig(opts: WriteBehindOptions = {}, fail = new Set<string>()) {
  const clock = { ms: 1000 };
  const started: string[] = [];
  const gates = new Map<string, Deferred<void>>();
  const wb = new WriteBehind(
    async (u) => {
      started.push(u.key);
      const gate = deferred<void>();
      gates.set(u.key, gate);
      await gate.promise;
      if (fail.has(u.key)) throw new Error('disk full');
    },
    { quietMs: 50, now: () => clock.ms, ...opts },
  );
  const release = async (n: number): Promise<void> => {
    gates.get(unit(n).key)!.resolve();
    await settle();
  };
  return { wb, clock, started, release };
}

t.test('a chunk waits while fetches go on, and goes once they pause for quietMs', async (t) => {
  const { wb, clock, started, release } = rig();
  wb.busy();
  wb.add(unit(1), bytes());
  await settle();
  t.same(started, [], 'a fetch just started: no write');
  t.same(wb.pending(), { chunks: 1, bytes: 10 });
  clock.ms += 49;
  await new Promise((resolve) => setTimeout(resolve, 80));
  t.same(started, [], '49 ms of quiet are not enough');
  clock.ms += 1;
  await new Promise((resolve) => setTimeout(resolve, 80));
  t.same(started, [unit(1).key], 'written after 50 ms without a fetch');
  await release(1);
  t.same(wb.pending(), { chunks: 0, bytes: 0 });
});

t.test('a fetch that starts during the drain pauses it after the write under way', async (t) => {
  const { wb, clock, started, release } = rig();
  for (const n of [1, 2, 3]) wb.add(unit(n), bytes());
  await settle();
  t.same(started, [unit(1).key], 'no fetch yet: the drain starts, one write at a time');
  wb.busy();
  await release(1);
  t.same(started, [unit(1).key], 'paused: a fetch started');
  t.same(wb.pending().chunks, 2);
  clock.ms += 50;
  await new Promise((resolve) => setTimeout(resolve, 80));
  t.same(started, [unit(1).key, unit(2).key], 'resumed once quiet again');
  await release(2);
  await release(3);
  t.same(started, [1, 2, 3].map((n) => unit(n).key));
});

t.test('beyond maxBytes the oldest go out at once, busy or not', async (t) => {
  const { wb, started, release } = rig({ maxBytes: 25 });
  wb.busy();
  wb.add(unit(1), bytes());
  wb.add(unit(2), bytes());
  await settle();
  t.same(started, [], '20 bytes queued: within the bound');
  wb.add(unit(3), bytes());
  await settle();
  t.same(started, [unit(1).key], '30 bytes: the oldest is written');
  await release(1);
  t.same(started, [unit(1).key], '20 bytes again: the rest waits for quiet');
  t.same(wb.pending(), { chunks: 2, bytes: 20 });
});

t.test('get serves a chunk until it is on disk; a second add of it is ignored', async (t) => {
  const { wb, started, release } = rig();
  wb.busy();
  const b = bytes();
  wb.add(unit(1), b);
  wb.add(unit(1), bytes());
  t.equal(wb.get(unit(1).key), b);
  t.same(wb.pending(), { chunks: 1, bytes: 10 });
  const flushed = wb.flush();
  await settle();
  t.same(started, [unit(1).key]);
  t.equal(wb.get(unit(1).key), b, 'still served while its write is under way');
  await release(1);
  await flushed;
  t.equal(wb.get(unit(1).key), undefined, 'on disk: no longer held');
});

t.test('flush writes everything whatever the fetches do, chunks added meanwhile included', async (t) => {
  const { wb, started, release } = rig();
  wb.busy();
  wb.add(unit(1), bytes());
  let done = false;
  const flushed = wb.flush().then(() => (done = true));
  await settle();
  wb.busy();
  wb.add(unit(2), bytes());
  await release(1);
  t.notOk(done, 'unit 2 still waits');
  t.same(started, [unit(1).key, unit(2).key], 'written although a fetch just started');
  await release(2);
  await flushed;
  t.same(wb.pending(), { chunks: 0, bytes: 0 });
});

t.test('two flushes at once: both wait for every write, neither lets the other stop short', async (t) => {
  const { wb, started, release } = rig();
  wb.busy();
  wb.add(unit(1), bytes());
  wb.add(unit(2), bytes());
  const done: number[] = [];
  const one = wb.flush().then(() => done.push(1));
  const two = wb.flush().then(() => done.push(2));
  await settle();
  await release(1);
  wb.busy();
  await release(2);
  await Promise.all([one, two]);
  t.same(started, [unit(1).key, unit(2).key]);
  t.same(done.sort(), [1, 2]);
  t.same(wb.pending(), { chunks: 0, bytes: 0 });
});

t.test('a failed write drops the chunk and the queue goes on', async (t) => {
  const { wb, started, release } = rig({}, new Set([unit(1).key]));
  wb.add(unit(1), bytes());
  wb.add(unit(2), bytes());
  const flushed = wb.flush();
  await settle();
  await release(1);
  await release(2);
  await flushed;
  t.same(started, [unit(1).key, unit(2).key]);
  t.same(wb.pending(), { chunks: 0, bytes: 0 });
  t.equal(wb.get(unit(1).key), undefined);
});

t.test('quietMs 0 writes at once', async (t) => {
  const { wb, started } = rig({ quietMs: 0 });
  wb.busy();
  wb.add(unit(1), bytes());
  await settle();
  t.same(started, [unit(1).key]);
});
