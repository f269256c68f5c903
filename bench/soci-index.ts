// `tocfs index` vs `skopeo copy` of the same image to an oci: layout, side by side in one run on loopback
// (Debian's docker-registry), runs interleaved, reported as a ratio of medians. The target: index
// no slower than skopeo copy + 50% (both read every layer byte once; index also inflates, hashes spans
// and parses tar headers, skopeo writes the blobs to disk and verifies their digests).
//
// The image is generated here (a few hundred MB of mixed compressible and incompressible files in three
// gzip layers) and cached under $TMPDIR/tocfs-bench-soci, so the figures do not depend on bench/lib/images.ts.
//
//   npm run build && npx tsx bench/soci-index.ts [--runs N] [--mb TOTAL_MB]
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { buildImage, type BuiltImage } from '../test/support/image-builder.js';
import { pushImage } from '../test/support/push.js';
import { dir, file, type TarEntry } from '../test/support/tar-dsl.js';
import { median, spread } from './lib/micro.js';
import { timed } from './lib/proc.js';
import { startBenchRegistry } from './lib/registry.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BIN = join(ROOT, 'bin/tocfs.js');
const MiB = 1 << 20;

const { values } = parseArgs({ options: { runs: { type: 'string', default: '3' }, mb: { type: 'string', default: '300' } } });
const RUNS = Number(values.runs);
const TOTAL = Number(values.mb) * MiB;

/** Text that deflate squeezes about 4:1, varied enough not to be one long match. */
function text(seed: number, size: number): Buffer {
  const words = ['layer', 'tocfs', 'span', 'gzip', 'checkpoint', 'registry', 'manifest', 'digest', 'inflate', 'window', 'tar', 'entry'];
  const parts: string[] = [];
  let n = 0;
  let x = seed * 2654435761;
  while (n < size) {
    x = (x * 1103515245 + 12345) >>> 0;
    const w = `${words[x % words.length]}${x % 97} `;
    parts.push(w);
    n += w.length;
  }
  return Buffer.from(parts.join('').slice(0, size));
}

// Four distinct 8 MiB texts, sliced per file: deflate's 32 KiB window never sees the repeats, and the
// image needs 32 MB of memory to build, not its size.
const TEXTS = [0, 1, 2, 3].map((seed) => text(seed, 8 * MiB));

/** One layer of `bytes`: a third incompressible files, two thirds text, in files of 1-8 MiB. */
function layerEntries(layer: number, bytes: number): TarEntry[] {
  const entries: TarEntry[] = [dir(`l${layer}`)];
  let done = 0;
  for (let i = 0; done < bytes; i++) {
    const size = Math.min(bytes - done, (1 + ((i * 7 + layer) % 8)) * MiB);
    entries.push(i % 3 === 0 ? file(`l${layer}/random-${i}.bin`, { size }) : file(`l${layer}/text-${i}.txt`, TEXTS[(i + layer) % TEXTS.length]!.subarray(0, size)));
    done += size;
  }
  return entries;
}

async function image(work: string): Promise<BuiltImage> {
  const shares = [0.5, 0.35, 0.15];
  return buildImage(join(work, 'image'), { layers: shares.map((s, i) => ({ entries: layerEntries(i, Math.round(TOTAL * s)), compression: 'gzip' as const, gzipLevel: 6 })) });
}

const work = join(tmpdir(), 'tocfs-bench-soci');
mkdirSync(work, { recursive: true });
const started = Date.now();
const built = await image(work);
const blobBytes = built.layers.reduce((n, l) => n + l.size, 0);
const tarBytes = built.layers.reduce((n, l) => n + (l.tarSize ?? 0), 0);
console.error(`# image: ${built.layers.length} gzip layers, ${(blobBytes / 1e6).toFixed(0)} MB compressed, ${(tarBytes / 1e6).toFixed(0)} MB of tar (built in ${((Date.now() - started) / 1000).toFixed(0)} s)`);

const storage = join(work, 'storage');
rmSync(storage, { recursive: true, force: true });
const registry = await startBenchRegistry({ storageDir: storage, workDir: work, address: '127.0.0.1' });
try {
  await pushImage(`http://${registry.host}`, 'bench/soci', 'v1', built);
  const ref = `${registry.host}/bench/soci:v1`;
  const index: number[] = [];
  const skopeo: number[] = [];
  for (let run = 0; run < RUNS; run++) {
    // Interleaved, skopeo first in even runs: drift on a shared machine hits both alike.
    const order = run % 2 === 0 ? ['skopeo', 'index'] : ['index', 'skopeo'];
    for (const which of order) {
      if (which === 'skopeo') {
        const layout = join(work, 'layout');
        rmSync(layout, { recursive: true, force: true });
        const t0 = performance.now();
        const r = await timed(['skopeo', 'copy', '-q', '--src-tls-verify=false', `docker://${ref}`, `oci:${layout}:v1`], t0);
        skopeo.push(r.exitMs);
      } else {
        const t0 = performance.now();
        const r = await timed([process.execPath, BIN, 'index', ref], t0);
        if (!/^sha256:[0-9a-f]{64}\n$/.test(r.stdout)) throw new Error(`tocfs index printed ${JSON.stringify(r.stdout)}`);
        index.push(r.exitMs);
      }
    }
  }
  const mbps = (ms: number): string => ((blobBytes / 1e6) / (ms / 1000)).toFixed(0);
  const ratio = median(index) / median(skopeo);
  console.log(`| workload | tocfs index (ms, median; range) | skopeo copy (ms, median; range) | ratio index/skopeo | target |`);
  console.log(`|---|---|---|---|---|`);
  console.log(
    `| ${(blobBytes / 1e6).toFixed(0)} MB gzip image, loopback, ${RUNS} runs | ${median(index).toFixed(0)} (${spread(index)}; ${mbps(median(index))} MB/s) | ` +
      `${median(skopeo).toFixed(0)} (${spread(skopeo)}; ${mbps(median(skopeo))} MB/s) | ${ratio.toFixed(2)} | <= 1.50 ${ratio <= 1.5 ? 'met' : 'NOT met'} |`,
  );
} finally {
  await registry.stop();
  if (existsSync(join(work, 'layout'))) rmSync(join(work, 'layout'), { recursive: true, force: true });
}
