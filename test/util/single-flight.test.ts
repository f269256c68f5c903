// The single-flight contract of STYLE.md item 10: one run per key while it flies, a settled flight
// forgotten (so a failure is never memoised), and a flight settled from outside forgotten first.
import t from 'tap';
import { EventEmitter } from 'node:events';
import { SingleFlight } from '../../src/util/single-flight.js';
import { abortable } from '../../src/util/abort.js';

t.test('concurrent callers share one run; the next caller after it settles starts afresh', async (t) => {
  const flights = new SingleFlight<number>();
  let runs = 0;
  const start = async (): Promise<number> => ++runs;
  const [a, b] = await Promise.all([flights.run('k', start), flights.run('k', start)]);
  t.same([a, b, runs], [1, 1, 1]);
  t.equal(flights.size, 0, 'settled flight forgotten');
  t.equal(await flights.run('k', start), 2);
});

t.test('a failure is never memoised, a synchronous throw included', async (t) => {
  const flights = new SingleFlight<string>();
  await t.rejects(flights.run('k', () => Promise.reject(new Error('flaky'))), /flaky/);
  t.notOk(flights.has('k'));
  await t.rejects(
    flights.run('k', () => {
      throw new Error('sync');
    }),
    /sync/,
  );
  t.equal(await flights.run('k', async () => 'ok'), 'ok');
});

t.test('begin(): the key is forgotten before waiters see the result; settling twice is a no-op', async (t) => {
  const flights = new SingleFlight<string>();
  const d = flights.begin('k');
  t.equal(flights.get('k'), d.promise);
  const seen = d.promise.then((v) => [v, flights.has('k')]);
  d.resolve('v');
  d.reject(new Error('late'));
  t.same(await seen, ['v', false]);
  const next = flights.begin('k');
  d.resolve('stale'); // must not forget the newer flight
  t.equal(flights.get('k'), next.promise);
  next.resolve('x');
});

t.test('abortable: rejects at abort, the work goes on, and no listener is left on the signal', async (t) => {
  const ac = new AbortController();
  const flights = new SingleFlight<string>();
  let finish!: (v: string) => void;
  const shared = flights.run('k', () => new Promise<string>((r) => (finish = r)));
  const mine = abortable(shared, ac.signal, 'lookup');
  const reasoned = abortable(shared, ac.signal);
  ac.abort(new Error('gave up'));
  await t.rejects(mine, { code: 'ABORTED', message: 'lookup aborted' });
  await t.rejects(reasoned, /gave up/);
  finish('done');
  t.equal(await shared, 'done');

  const long = new AbortController();
  for (let i = 0; i < 50; i++) await abortable(Promise.resolve(i), long.signal, 'read');
  t.equal(EventEmitter.getEventListeners(long.signal, 'abort').length, 0);
});
