// Regression: the daemon printed a MaxListenersExceededWarning on every unoptimized lazy image. Each range
// request undici sends adds an 'abort' listener to the signal it is given, and every request of the chunk
// fetcher was given one long-lived signal (the fetcher's own), so eleven requests in flight at once were
// eleven listeners on one AbortSignal. Each request now gets a signal of its own.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { join } from 'node:path';
import t from 'tap';
import { estargzLayerFile } from '../support/estargz-build.js';
import { buildImage } from '../support/image-builder.js';
import { mountDaemon } from '../support/mount-daemon.js';
import { prng } from '../support/prng.js';
import { pushImage } from '../support/push.js';
import { startRegistry } from '../support/registry.js';
import { dir, file } from '../support/tar-dsl.js';
import { tempDir } from '../support/tmp.js';

t.test('reading an unoptimized lazy image warns of no listener leak', async (t) => {
  const work = tempDir(t, 'abort-listeners');
  const random = prng(0xab0);
  const files = Array.from({ length: 48 }, (_, i) => {
    const bytes = Buffer.alloc(256 << 10);
    for (let j = 0; j < bytes.length; j++) bytes[j] = Math.floor(random() * 256); // incompressible: many requests
    return file(`data/f${i}.bin`, bytes);
  });
  const layer = await estargzLayerFile(join(work, 'layer'), [dir('data'), ...files], { chunkSize: 64 << 10 });
  const image = await buildImage(join(work, 'image'), { layers: [layer] });
  const reg = await startRegistry(t);
  await pushImage(reg.seedUrl, 'leak/image', 'v1', image);

  const warnings: Error[] = [];
  const onWarning = (w: Error): void => void warnings.push(w);
  process.on('warning', onWarning);
  t.teardown(() => void process.off('warning', onWarning));

  const { mnt } = await mountDaemon(t, 'abort-listeners');
  const root = join(mnt, 'images', reg.host, 'leak/image:v1');
  // Read by another process, all files at once: this process serves the mount, and its own blocking
  // reads of it would hold the thread pool the daemon needs.
  const script = 'for f in "$@"; do wc -c < "$f" & done; wait';
  const { stdout } = await promisify(execFile)('sh', ['-c', script, 'sh', ...files.map((_, i) => join(root, `data/f${i}.bin`))]);
  const sizes = stdout.trim().split('\n').map(Number);
  t.equal(sizes.reduce((n, b) => n + b, 0), 48 * (256 << 10), 'every byte read');
  await new Promise((r) => setImmediate(r)); // warnings are emitted on the next tick
  t.same(
    warnings.filter((w) => w.name === 'MaxListenersExceededWarning').map((w) => w.message),
    [],
    'no MaxListenersExceededWarning',
  );
});
