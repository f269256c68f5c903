// The zstd chunk path vs the gzip chunk path on the same content, interleaved in one run (shared, noisy
// machines: only the ratios count), and the blob bytes each format moves for the same lazy workload.
//
//   npx tsx bench/zstd-throughput.ts            (prints markdown rows for bench/RESULTS.md)
//
// Content: bench/chunk-throughput.ts's image-shaped set (4,000 small text files, six 8 MiB binaries,
// four 2 MiB zero files), written as eStargz by the test builder (gzip -6, 4 MiB chunks) and as
// zstd:chunked by tocfs's converter (zstd -3, content-defined 64 KiB..4 MiB chunks).
// - chunk path: every chunk through `codec.decompressSpan` + slice + sha256 check, four at a time;
//   for zstd once on the calling thread and once as the daemon runs it (large spans in worker threads);
// - engine read: every file through VerifiedLayer.read (fetcher, memory LRU, disk store), the source an
//   in-memory blob: the whole lazy path minus the network;
// - bytes moved: a job's workload (40 small files + one 8 MiB library, read whole) through the engine,
//   counting the source's range reads (TOC included), against the whole blob a full pull moves.
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { writeZstdChunked } from '../src/convert/zstd-chunked-writer.js';
import { estargzCodec } from '../src/formats/estargz/codec.js';
import type { TocChunk, TocCodec, TocEntry } from '../src/formats/toc.js';
import { zstdChunkedCodec } from '../src/formats/zstd/codec.js';
import { createLayerService } from '../src/layers/layer-service.js';
import { offloadLargeSpans, ZstdWorkerPool } from '../src/layers/fetch/zstd-offload.js';
import { buildEstargz } from '../test/support/estargz-build.js';
import { dir, file, tarOf, type TarEntry } from '../test/support/tar-dsl.js';
import { inParallel, median, spread } from './lib/micro.js';

const RUNS = 5;

function contents(): TarEntry[] {
  const entries: TarEntry[] = [dir('usr'), dir('usr/lib'), dir('usr/share')];
  const text = Buffer.from('import numpy as np\nfor i in range(10):\n    print(i * np.pi)\n'.repeat(60));
  for (let i = 0; i < 4000; i++) entries.push(file(`usr/share/f${i}.py`, text.subarray(0, 2000 + (i % 7) * 300)));
  for (let i = 0; i < 6; i++) entries.push(file(`usr/lib/lib${i}.so`, { size: 8 * 2 ** 20 }));
  for (let i = 0; i < 4; i++) entries.push(file(`usr/lib/zeros${i}.dat`, { size: 2 * 2 ** 20, sparse: true }));
  return entries;
}

interface Variant {
  readonly name: string;
  readonly blob: Buffer;
  readonly codec: TocCodec;
  readonly files: TocEntry[];
  readonly chunks: TocChunk[];
  readonly annotations: Record<string, string>;
  readonly mediaType: string;
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const start = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - start) / 1e6;
}

async function variant(name: string, blob: Buffer, codec: TocCodec, annotations: Record<string, string>, mediaType: string): Promise<Variant> {
  const location = codec.parseFooter(blob.subarray(-codec.footerLength), blob.length);
  const end = location.tocLength === undefined ? blob.length - location.footerLength : location.tocOffset + location.tocLength;
  const { index } = await codec.decodeToc(blob.subarray(location.tocOffset, end), location);
  const files: TocEntry[] = [];
  const seen = new Set<TocEntry>();
  for (const [, entry] of index.walk()) {
    if (entry.type === 'reg' && !seen.has(entry)) {
      seen.add(entry);
      files.push(entry);
    }
  }
  return { name, blob, codec, files, chunks: files.flatMap((f) => [...f.chunks]), annotations, mediaType };
}

async function chunkPath(v: Variant, codec: TocCodec): Promise<void> {
  await inParallel(v.chunks, 4, async (c) => {
    if (c.zeros) return;
    const span = await codec.decompressSpan(v.blob.subarray(c.compressedOffset, c.compressedEnd), c.innerOffset + c.size);
    const bytes = span.subarray(c.innerOffset, c.innerOffset + c.size);
    if (c.digest && `sha256:${createHash('sha256').update(bytes).digest('hex')}` !== c.digest) throw new Error('digest mismatch');
  });
}

/** Opens the layer through a fresh service over an in-memory source; returns what the source served. */
async function engine(v: Variant, paths: readonly string[] | undefined): Promise<{ bytes: number; requests: number }> {
  const cacheDir = await mkdtemp(join(tmpdir(), 'tocfs-bench-'));
  const moved = { bytes: 0, requests: 0 };
  const client = {
    readRange: async (_repo: unknown, _blob: unknown, r: { start: number; end: number }) => {
      moved.bytes += r.end - r.start;
      moved.requests++;
      return v.blob.subarray(r.start, r.end);
    },
  };
  const service = await createLayerService({ client, cacheDir, cacheSize: 2 ** 30, memoryCacheBytes: 256 * 2 ** 20, prefetch: false });
  try {
    const descriptor = { mediaType: v.mediaType, digest: `sha256:${createHash('sha256').update(v.blob).digest('hex')}`, size: v.blob.length, annotations: v.annotations };
    const layer = await service.openToc({ registry: 'bench.invalid', repository: 'bench' }, descriptor);
    const files = (paths ?? v.files.map((f) => f.path)).map((p) => layer.index.lookup(p)!);
    await inParallel(files, 4, async (f) => void (await layer.read(f, 0, f.size)));
  } finally {
    await service.close();
    await rm(cacheDir, { recursive: true, force: true });
  }
  return moved;
}

async function main(): Promise<void> {
  const entries = contents();
  const gz = await buildEstargz(entries, { gzipLevel: 6 });
  const sink = new PassThrough();
  const parts: Buffer[] = [];
  sink.on('data', (b: Buffer) => parts.push(b));
  const zc = await writeZstdChunked(tarOf(entries), sink);
  const zblob = Buffer.concat(parts);
  const gzip = await variant('eStargz (gzip -6)', gz.blob, estargzCodec, { 'containerd.io/snapshot/stargz/toc.digest': gz.tocDigest }, 'application/vnd.oci.image.layer.v1.tar+gzip');
  const zstd = await variant('zstd:chunked (zstd -3)', zblob, zstdChunkedCodec, { ...zc.annotations }, 'application/vnd.oci.image.layer.v1.tar+zstd');
  const pool = new ZstdWorkerPool();
  const offloaded = offloadLargeSpans(zstdChunkedCodec, pool);
  const payload = gzip.files.reduce((n, f) => n + f.size, 0);

  const runs: Record<string, () => Promise<unknown>> = {
    'gzip chunk path': () => chunkPath(gzip, estargzCodec),
    'zstd chunk path (inline)': () => chunkPath(zstd, zstdChunkedCodec),
    'zstd chunk path (daemon: large spans in workers)': () => chunkPath(zstd, offloaded),
    'gzip engine read': () => engine(gzip, undefined),
    'zstd engine read': () => engine(zstd, undefined),
  };
  const times: Record<string, number[]> = Object.fromEntries(Object.keys(runs).map((k) => [k, []]));
  for (let run = 0; run < RUNS; run++) for (const [name, fn] of Object.entries(runs)) times[name]!.push(await timed(fn));
  await pool.close();

  const mib = (n: number): string => (n / 2 ** 20).toFixed(1);
  process.stdout.write(`content: ${gzip.files.length} files, ${mib(payload)} MiB; eStargz blob ${mib(gzip.blob.length)} MiB (${gzip.chunks.length} chunks), zstd:chunked blob ${mib(zstd.blob.length)} MiB (${zstd.chunks.length} chunks); ${RUNS} runs interleaved\n\n`);
  process.stdout.write('| variant | median ms | spread ms | MiB/s | ratio to gzip |\n|---|---|---|---|---|\n');
  for (const name of Object.keys(runs)) {
    const base = median(times[name.startsWith('zstd engine') || name.startsWith('gzip engine') ? 'gzip engine read' : 'gzip chunk path']!);
    const m = median(times[name]!);
    process.stdout.write(`| ${name} | ${m.toFixed(0)} | ${spread(times[name]!)} | ${(payload / 2 ** 20 / (m / 1000)).toFixed(0)} | ${(base / m).toFixed(2)} |\n`);
  }

  const workload = [...Array.from({ length: 40 }, (_, i) => `usr/share/f${i * 97}.py`), 'usr/lib/lib3.so'];
  process.stdout.write('\n| format | blob bytes | workload bytes moved | requests | moved / blob |\n|---|---|---|---|---|\n');
  for (const v of [gzip, zstd]) {
    const moved = await engine(v, workload);
    process.stdout.write(`| ${v.name} | ${v.blob.length} | ${moved.bytes} | ${moved.requests} | ${((100 * moved.bytes) / v.blob.length).toFixed(2)} % |\n`);
  }
}

await main();
