// The head of a blob read before anyone asks (preread-source.ts): reads inside it wait for the pieces under
// way instead of sending requests and are told of their bytes as they arrive, a piece not started yet
// starts on demand (a patient read waits for its turn), `fresh` reads and reads past
// the head go to the blob, a failed piece is no one's error, and nothing is kept or fetched after dispose.
import t from 'tap';
import { deferred } from '../../../src/util/abort.js';
import { prereadSource } from '../../../src/layers/sources/preread-source.js';
import { recordingSource } from '../../support/recording-source.js';
import { noise } from '../fake-blob.js';

const blob = noise(10_000, 3);
const piece = 1000;
const slice = (start: number, end: number): Buffer => blob.subarray(start, end);

t.test('reads inside the head are served by the pieces, each requested once, a few at a time', async (t) => {
  const src = recordingSource(t, blob);
  const gate = deferred<void>();
  src.inject({ fault: { gate: gate.promise } });
  const p = prereadSource(src, 4000, { pieceBytes: piece, parallel: 2 });
  t.same(src.reads, [{ start: 0, end: 1000 }, { start: 1000, end: 2000 }], 'two pieces under way at once, in blob order');
  const inside = p.read({ start: 100, end: 900 });
  const across = p.read({ start: 900, end: 1100 });
  gate.resolve();
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
  const gate = deferred<void>();
  src.inject({ fault: { gate: gate.promise }, times: 1 });
  const p = prereadSource(src, 5000, { pieceBytes: piece, parallel: 1 });
  t.same(src.reads, [{ start: 0, end: 1000 }]);
  const late = p.read({ start: 4200, end: 4300 });
  t.same(src.reads.at(-1), { start: 4000, end: 5000 }, 'the last piece jumped the queue');
  t.same(Buffer.from(await late), slice(4200, 4300));
  gate.resolve();
  p.dispose();
});

t.test('a patient read (a prefetch\'s guess) waits for its piece\'s turn; one whose piece is let go unstarted reads the blob', async (t) => {
  const src = recordingSource(t, blob);
  const gate = deferred<void>();
  src.inject({ fault: { gate: gate.promise }, times: 1 });
  const p = prereadSource(src, 3000, { pieceBytes: piece, parallel: 1 });
  const late = p.read({ start: 2200, end: 2300 }, undefined, { patient: true });
  t.same(src.reads, [{ start: 0, end: 1000 }], 'no piece jumped the queue');
  gate.resolve();
  t.same(Buffer.from(await late), slice(2200, 2300), 'served by its piece in its turn');
  t.same(src.reads.map((r) => r.start), [0, 1000, 2000], 'each piece once, in blob order');
  p.dispose();

  const held = recordingSource(t, blob);
  const gate2 = deferred<void>();
  held.inject({ fault: { gate: gate2.promise }, times: 1 });
  const q = prereadSource(held, 3000, { pieceBytes: piece, parallel: 1 });
  const waiting = q.read({ start: 2200, end: 2300 }, undefined, { patient: true });
  q.finish();
  t.same(Buffer.from(await waiting), slice(2200, 2300), 'the prefetch finished first: the blob');
  t.same(held.reads.at(-1), { start: 2200, end: 2300 });
  gate2.resolve();
  q.dispose();
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
  const gate = deferred<void>();
  src.inject({ fault: { gate: gate.promise } });
  const p = prereadSource(src, 10_000, { pieceBytes: piece, parallel: 1, maxBytes: 3000 });
  p.dispose();
  gate.resolve();
  await new Promise((resolve) => setTimeout(resolve, 10));
  t.same(src.reads, [{ start: 0, end: 1000 }], 'only the piece under way at dispose was ever requested');
  const src2 = recordingSource(t, blob);
  const bounded = prereadSource(src2, 10_000, { pieceBytes: 2000, parallel: 8, maxBytes: 3000 });
  t.same(src2.reads, [{ start: 0, end: 2000 }, { start: 2000, end: 3000 }], 'no more than maxBytes, whatever the hint says');
  bounded.dispose();
});

t.test('a read in pieces under way is told of their bytes as they arrive', async (t) => {
  const src = recordingSource(t, blob);
  const first = deferred<void>();
  const second = deferred<void>();
  src.inject({ fault: { headEnd: 600, gate: first.promise }, match: (r) => r.start === 0 });
  src.inject({ fault: { headEnd: 1300, gate: second.promise }, match: (r) => r.start === 1000 });
  const p = prereadSource(src, 2000, { pieceBytes: piece, parallel: 2 });
  const seen = (calls: [number, Buffer][]) => (received: number, bytes: Uint8Array) => void calls.push([received, Buffer.from(bytes.subarray(0, received))]);
  const insideCalls: [number, Buffer][] = [];
  const acrossCalls: [number, Buffer][] = [];
  const inside = p.read({ start: 100, end: 900 }, undefined, { onData: seen(insideCalls) });
  const across = p.read({ start: 900, end: 1400 }, undefined, { onData: seen(acrossCalls) });
  t.same(insideCalls, [[500, slice(100, 600)]], "the head of the first piece, before the piece's end");
  t.same(acrossCalls, [], 'nothing yet for a range whose first bytes have not come');
  first.resolve();
  t.same(Buffer.from(await inside), slice(100, 900));
  t.same(insideCalls.at(-1), [800, slice(100, 900)]);
  t.same(acrossCalls.at(-1), [400, slice(900, 1300)], 'the first piece whole and the head of the second, gathered in order');
  second.resolve();
  t.same(Buffer.from(await across), slice(900, 1400));
  t.same(acrossCalls.at(-1), [500, slice(900, 1400)]);
  const grew = (calls: [number, Buffer][]) => calls.every(([n], k) => k === 0 || n > calls[k - 1]![0]);
  t.ok(grew(insideCalls) && grew(acrossCalls), 'every report is longer than the last');
  t.equal(src.requests, 2, 'no request beyond the pieces');
  p.dispose();
});

t.test('finish: no piece starts any more, a piece under way still serves the reads waiting on it', async (t) => {
  const src = recordingSource(t, blob);
  const gate = deferred<void>();
  src.inject({ fault: { gate: gate.promise }, times: 1 });
  const p = prereadSource(src, 3000, { pieceBytes: piece, parallel: 1 });
  const waiting = p.read({ start: 200, end: 300 });
  p.finish();
  gate.resolve();
  t.same(Buffer.from(await waiting), slice(200, 300), 'served by the piece under way at finish');
  t.same(src.reads, [{ start: 0, end: 1000 }], 'and no piece started after it');
  t.same(Buffer.from(await p.read({ start: 1200, end: 1300 })), slice(1200, 1300));
  t.same(src.reads.at(-1), { start: 1200, end: 1300 }, 'after finish: the blob');
  p.dispose();
});

t.test('a piece that fails after handing a read all its bytes: the read keeps them, no request', async (t) => {
  const src = recordingSource(t, blob);
  const gate = deferred<void>();
  src.inject({ fault: { headEnd: 800, gate: gate.promise }, match: (r) => r.start === 0 });
  const p = prereadSource(src, 1000, { pieceBytes: piece, parallel: 1 });
  const reports: number[] = [];
  const read = p.read({ start: 100, end: 700 }, undefined, { onData: (received) => void reports.push(received) });
  gate.reject(new Error('connection reset after 800 bytes'));
  t.same(Buffer.from(await read), slice(100, 700));
  t.same(reports, [600]);
  t.equal(src.requests, 1, 'no request for bytes already in');
  p.dispose();
});

t.test('afterFirstOtherRead: no piece starts unasked until a read outside them has its first bytes', async (t) => {
  const src = recordingSource(t, blob);
  const answered = deferred<void>();
  const tocTail = deferred<void>();
  const isToc = (r: { start: number }): boolean => r.start === 9000;
  src.inject({ fault: { gate: answered.promise }, match: isToc, times: 1 });
  src.inject({ fault: { headEnd: 9100, gate: tocTail.promise }, match: isToc, times: 1 });
  const p = prereadSource(src, 3000, { pieceBytes: piece, parallel: 2, afterFirstOtherRead: true });
  t.same(src.reads, [], 'nothing sent before the TOC read');
  const toc = p.read({ start: 9000, end: 9500 });
  await new Promise((r) => setImmediate(r));
  t.same(src.reads, [{ start: 9000, end: 9500 }], 'the TOC read goes out alone');
  answered.resolve();
  await new Promise((r) => setImmediate(r));
  t.same(src.reads.map((r) => r.start).slice(0, 3), [9000, 0, 1000], 'its first bytes started the pieces');
  tocTail.resolve();
  t.same(Buffer.from(await toc), slice(9000, 9500));
  t.same(Buffer.from(await p.read({ start: 2100, end: 2200 })), slice(2100, 2200));
  t.same(src.reads.map((r) => r.start), [9000, 0, 1000, 2000], 'each piece requested once');
  p.dispose();
});

t.test('afterFirstOtherRead: a read inside the head still starts its own piece, and a failed other read releases the rest', async (t) => {
  const src = recordingSource(t, blob);
  src.inject({ fault: { error: new Error('reset') }, match: (r) => r.start === 9000, times: 1 });
  const p = prereadSource(src, 3000, { pieceBytes: piece, parallel: 2, afterFirstOtherRead: true });
  t.same(Buffer.from(await p.read({ start: 1200, end: 1300 })), slice(1200, 1300));
  t.same(src.reads, [{ start: 1000, end: 2000 }], 'only the piece read');
  await t.rejects(p.read({ start: 9000, end: 9500 }), /reset/);
  await new Promise((r) => setImmediate(r));
  t.same(src.reads.map((r) => r.start), [1000, 9000, 0, 2000], 'released by the failure: the others started');
  p.dispose();
});
