// Decompression throughput of the lazy chunk path vs plain `zlib.gunzip` of the same eStargz blob,
// interleaved in one run (the machines are shared and noisy; only the ratio is meaningful).
//
//   npx tsx bench/chunk-throughput.ts            (prints markdown rows for bench/RESULTS.md)
//
// - gunzip:       `zlib.gunzip(blob)` of the whole blob (multi-member gzip), async, as a full pull would.
// - chunk path:   every chunk of every file through `codec.decompressSpan` + slice + sha256 check,
//                 four at a time (what a reader sees per fetched chunk, without the network).
// - engine read:  every file through VerifiedLayer.read (fetcher, memory LRU, disk store commit), the
//                 source an in-memory blob: the whole lazy path minus the network.
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gunzip } from 'node:zlib';
import { estargzCodec } from '../src/formats/estargz/codec.js';
import type { TocChunk, TocEntry } from '../src/formats/toc.js';
import { createLayerService } from '../src/layers/layer-service.js';
import { buildEstargz } from '../test/support/estargz-build.js';
import { dir, file, type TarEntry } from '../test/support/tar-dsl.js';
import { inParallel, median, spread } from './lib/micro.js';

const RUNS = 5;
const gunzipAsync = promisify(gunzip);

/** ~64 MiB of content shaped like an image: many small text-like files, some large binaries. */
function contents(): TarEntry[] {
  const entries: TarEntry[] = [dir('usr'), dir('usr/lib'), dir('usr/share')];
  const text = Buffer.from('import numpy as np\nfor i in range(10):\n    print(i * np.pi)\n'.repeat(60));
  for (let i = 0; i < 4000; i++) entries.push(file(`usr/share/f${i}.py`, text.subarray(0, 2000 + (i % 7) * 300)));
  for (let i = 0; i < 6; i++) entries.push(file(`usr/lib/lib${i}.so`, { size: 8 * 2 ** 20 })); // incompressible
  for (let i = 0; i < 4; i++) entries.push(file(`usr/lib/zeros${i}.dat`, { size: 2 * 2 ** 20, sparse: true }));
  return entries;
}

async function timed<T>(fn: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const start = process.hrtime.bigint();
  const value = await fn();
  return { ms: Number(process.hrtime.bigint() - start) / 1e6, value };
}

async function main(): Promise<void> {
  const built = await buildEstargz(contents(), { gzipLevel: 6 });
  const blob = built.blob;
  const location = estargzCodec.parseFooter(blob.subarray(-estargzCodec.footerLength), blob.length);
  const { index } = await estargzCodec.decodeToc(blob.subarray(location.tocOffset, blob.length - location.footerLength), location);
  const files: TocEntry[] = [];
  const chunks: TocChunk[] = [];
  for (const [, entry] of index.walk()) {
    if (entry.type === 'reg' && !files.includes(entry)) {
      files.push(entry);
      chunks.push(...entry.chunks);
    }
  }
  const payload = files.reduce((n, f) => n + f.size, 0);

  const gunzipWhole = async () => (await gunzipAsync(blob)).length;
  const chunkPath = async () => {
    await inParallel(chunks, 4, async (c) => {
      const span = await estargzCodec.decompressSpan(blob.subarray(c.compressedOffset, c.compressedEnd), c.innerOffset + c.size);
      const bytes = span.subarray(c.innerOffset, c.innerOffset + c.size);
      const actual = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
      if (c.digest && actual !== c.digest) throw new Error(`chunk digest mismatch at ${c.compressedOffset}`);
    });
    return payload;
  };
  const engineRead = async () => {
    const cacheDir = await mkdtemp(join(tmpdir(), 'tocfs-bench-'));
    const client = {
      readRange: async (_repo: unknown, _blob: unknown, r: { start: number; end: number }) => blob.subarray(r.start, r.end),
    };
    const service = await createLayerService({ client, cacheDir, cacheSize: 2 ** 30, memoryCacheBytes: 256 * 2 ** 20, prefetch: false });
    try {
      const descriptor = {
        mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
        digest: `sha256:${createHash('sha256').update(blob).digest('hex')}`,
        size: blob.length,
        annotations: { 'containerd.io/snapshot/stargz/toc.digest': built.tocDigest },
      };
      const layer = await service.openToc({ registry: 'bench.invalid', repository: 'bench' }, descriptor);
      await inParallel(files, 4, async (f) => void (await layer.read(f.path, 0, f.size)));
    } finally {
      await service.close();
      await rm(cacheDir, { recursive: true, force: true });
    }
    return payload;
  };

  const variants = { gunzip: gunzipWhole, 'chunk path': chunkPath, 'engine read': engineRead } as const;
  const times: Record<string, number[]> = { gunzip: [], 'chunk path': [], 'engine read': [] };
  for (let run = 0; run < RUNS; run++) {
    for (const [name, fn] of Object.entries(variants)) times[name]!.push((await timed(fn)).ms);
  }

  const mib = (payload / 2 ** 20).toFixed(1);
  process.stdout.write(`blob ${(blob.length / 2 ** 20).toFixed(1)} MiB, ${files.length} files, ${chunks.length} chunks, ${mib} MiB uncompressed; ${RUNS} runs interleaved\n\n`);
  process.stdout.write('| variant | median ms | spread ms | MiB/s | ratio to gunzip |\n|---|---|---|---|---|\n');
  const base = median(times.gunzip!);
  for (const name of Object.keys(variants)) {
    const m = median(times[name]!);
    process.stdout.write(`| ${name} | ${m.toFixed(0)} | ${spread(times[name]!)} | ${(payload / 2 ** 20 / (m / 1000)).toFixed(0)} | ${(base / m).toFixed(2)} |\n`);
  }
}

await main();
