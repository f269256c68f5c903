// FrameSink honours backpressure without leaving listeners behind: each wait for 'drain' raced 'close'
// with events.once, and the losing 'close' (plus its 'error') listener stayed on the stream, so a
// `tocfs convert --format zstd-chunked` of a few MB printed a MaxListenersExceededWarning.
import t from 'tap';
import { Writable } from 'node:stream';
import { FrameSink } from '../../src/convert/zstd-frames.js';

t.test('waits for drain many times and leaves no listener behind', async (t) => {
  const warnings: Error[] = [];
  const onWarning = (w: Error): void => void warnings.push(w);
  process.on('warning', onWarning);
  t.teardown(() => void process.off('warning', onWarning));
  let written = 0;
  const out = new Writable({
    highWaterMark: 1, // every write asks the writer to wait for 'drain'
    write(chunk: Buffer, _enc, done) {
      written += chunk.length;
      setImmediate(done);
    },
  });
  const base = { close: out.listenerCount('close'), error: out.listenerCount('error'), drain: out.listenerCount('drain') };
  const sink = new FrameSink(out);
  for (let i = 0; i < 30; i++) await sink.write(new Uint8Array(100));
  t.same({ close: out.listenerCount('close'), error: out.listenerCount('error') - 1, drain: out.listenerCount('drain') }, base, 'only its own error listener added');
  const { size } = await sink.finish();
  t.equal(size, 3000);
  t.equal(written, 3000);
  await new Promise((r) => setImmediate(r));
  t.same(warnings.map((w) => w.name), []);
});
