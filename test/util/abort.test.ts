// AbortScope: every operation under it aborts with it, each through a signal of its own, so a busy
// scope never gathers listeners on one signal (the fetcher's MaxListenersExceededWarning).
import t from 'tap';
import { EventEmitter } from 'node:events';
import { AbortScope } from '../../src/util/abort.js';

t.test('abort() reaches every operation under way, and later ones start aborted', async (t) => {
  const scope = new AbortScope();
  const signals: AbortSignal[] = [];
  const pending = Array.from({ length: 20 }, () =>
    scope.run(
      (signal) =>
        new Promise<never>((_, reject) => {
          signals.push(signal);
          signal.addEventListener('abort', () => reject(signal.reason as Error));
        }),
    ),
  );
  t.equal(new Set(signals).size, 20, 'a signal per operation');
  t.ok(signals.every((s) => EventEmitter.getEventListeners(s, 'abort').length === 1));
  scope.abort(new Error('closed'));
  for (const p of pending) await t.rejects(p, /closed/);
  t.ok(await scope.run(async (signal) => signal.aborted), 'an operation after abort() starts aborted');
});
