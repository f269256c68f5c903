// The head of a blob read before anyone asks (preread-source.ts): reads inside it wait for the pieces under
// way instead of sending requests, a piece not started yet starts on demand, `fresh` reads and reads past
// the head go to the blob, a failed piece is no one's error, and nothing is kept or fetched after dispose.
import t from 'tap';
import { prereadSource } from '../../src/layers/preread-source.js';
import { recordingSource } from '../support/recording-source.js';
import { noise } from './fake-blob.js';

const blob = noise(10_000, 3);
const piece = 1000;
const slice = (start: number, end: number): Buffer => blob.subarray(start, end);

t.test('reads inside the head are served by the pieces, each requested once, a few at a time', async (t) => {
  const src = recordingSource(t, blob);
  let open!: () => void;
  const gate = new Promise<void>((resolve) => (open = resolve));
  src.inject({ fault: { gate } });
  const p = prereadSource(src, 4000, { pieceBytes: piece, parallel: 2 });
  t.same(src.reads, [{ start: 0, end: 1000 }, { start: 1000, end: 2000 }], 'two pieces under way at once, in blob order');
  const inside = p.read({ start: 100, end: 900 });
  const across = p.read({ start: 900, end: 1100 });
  open();
  t.same(Buffer.from(await inside), slice(100, 900));
  t.same(Buffer.from(await across), slice(900, 1100), 'a read across two pieces is assembled');
  t.same(Buffer.from(await p.read({ start: 2500, end: 3999 })), slice(2500, 3999));
  t.same(
    src.reads.map((r) => r.start),
    [0, 1000, 2000, 3000],
    'every piece requested once, the rest as slots freed',
  );
  p.dispose();
});

t.test('a read of a piece not started yet starts it at once', async (t) => {
  const src = recordingSource(t, blob);
  let open!: () => void;
  src.inject({ fault: { gate: new Promise<void>((resolve) => (open = resolve)) }, times: 1 });
  const p = prereadSource(src, 5000, { pieceBytes: piece, parallel: 1 });
  t.same(src.reads, [{ start: 0, end: 1000 }]);
  const late = p.read({ start: 4200, end: 4300 });
  t.same(src.reads.at(-1), { start: 4000, end: 5000 }, 'the last piece jumped the queue');
  t.same(Buffer.from(await late), slice(4200, 4300));
  open();
  p.dispose();
});

t.test('past the head, fresh reads, failed pieces and a disposed source: the blob itself', async (t) => {
  const src = recordingSource(t, blob, { allowRefetch: true });
  src.inject({ fault: { error: new Error('reset') }, match: (r) => r.start === 1000 && r.end === 2000, times: 1 });
  const p = prereadSource(src, 3000, { pieceBytes: piece, parallel: 3 });
  t.equal(src.requests, 3);
  t.same(Buffer.from(await p.read({ start: 2900, end: 3100 })), slice(2900, 3100), 'past the head');
  t.same(src.reads.at(-1), { start: 2900, end: 3100 });
  t.same(Buffer.from(await p.read({ start: 10, end: 20 }, undefined, { fresh: true })), slice(10, 20), 'fresh');
  t.same(src.reads.at(-1), { start: 10, end: 20 });
  t.same(Buffer.from(await p.read({ start: 1500, end: 1600 })), slice(1500, 1600), 'a failed piece: read from the blob');
  t.same(src.reads.at(-1), { start: 1500, end: 1600 });
  const before = src.requests;
  t.same(Buffer.from(await p.read({ start: 0, end: 1000 })), slice(0, 1000));
  t.equal(src.requests, before, 'a piece read ahead: no request');
  t.same(Buffer.from(await p.read({ start: 0, end: 10 })), slice(0, 10));
  t.equal(src.requests, before + 1, 'a piece handed out whole was let go: its bytes come from the blob again');
  p.dispose();
  t.same(Buffer.from(await p.read({ start: 2000, end: 2100 })), slice(2000, 2100));
  t.same(src.reads.at(-1), { start: 2000, end: 2100 }, 'after dispose: the blob');
});

t.test('dispose stops the pieces not started; the head is bounded', async (t) => {
  const src = recordingSource(t, blob);
  let open!: () => void;
  src.inject({ fault: { gate: new Promise<void>((resolve) => (open = resolve)) } });
  const p = prereadSource(src, 10_000, { pieceBytes: piece, parallel: 1, maxBytes: 3000 });
  p.dispose();
  open();
  await new Promise((resolve) => setTimeout(resolve, 10));
  t.same(src.reads, [{ start: 0, end: 1000 }], 'only the piece under way at dispose was ever requested');
  const src2 = recordingSource(t, blob);
  const bounded = prereadSource(src2, 10_000, { pieceBytes: 2000, parallel: 8, maxBytes: 3000 });
  t.same(src2.reads, [{ start: 0, end: 2000 }, { start: 2000, end: 3000 }], 'no more than maxBytes, whatever the hint says');
  bounded.dispose();
});
