/**
 * A layer without a TOC (DESIGN.md §2, TOC source 5): plain, gzip or zstd tar without the eStargz
 * annotation. The blob is streamed once (`client.streamBlob`, sha256-checked at its end), decompressed,
 * and written as an uncompressed tar to the disk cache while `TarReader` indexes its headers. Each
 * regular file becomes ONE chunk: its data span in the local tar (format `tar` in toc.ts).
 *
 * Trust: nothing is usable before the whole-blob digest has verified. The index (and so every lookup and
 * read) only exists once the stream ended without error; until then the tar is `HEX.tar.partial-…` and a
 * failure deletes it. Then it is renamed `HEX.tar`, and the raw entries are written to `HEX.index.json`
 * (the commit marker), so a restart reopens the layer without the network.
 *
 * A gzip layer inflates through the native zran indexer (src/layers/zran), which builds the layer's zTOC
 * on the way: handed to `onZtoc` once the blob verified, it keeps the layer seekable (span reads) after its
 * tar leaves the cache.
 *
 * Not done here: serving bytes below a high-water mark before the end (readers wait for the whole layer
 * to verify, since only the blob digest vouches for its bytes).
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, readdir, rename, rm, stat, writeFile, type FileHandle } from 'node:fs/promises';
import { PRIVATE_DIR_MODE, PRIVATE_FILE_MODE } from '../../util/private-files.js';
import { join } from 'node:path';
import { PassThrough, Readable, type Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { DecompressStream } from 'zstd-napi';
import { FormatError, TocfsError, isTocfsError } from '../../errors.js';
import { TarReader, type TarEvent } from '../../formats/tar/reader.js';
import { indexToc } from '../../formats/toc-index.js';
import { DEFAULT_TOC_LIMITS, type RawTocEntry, type TocEntry, type TocIndex, type TocLimits } from '../../formats/toc.js';
import type { RegistryClient } from '../../registry/client.js';
import { layerCompression, type LayerCompression } from '../../registry/manifest.js';
import type { Descriptor, RepositoryRef } from '../../registry/types.js';
import { writeWhole } from '../store/file-writes.js';
import { ZtocInflater } from '../zran/ztoc-stream.js';
import { decodeIndex, encodeIndex, lastCopies, rawEntryOf } from './full-layer-index.js';
import { clampedRange, ownRegularFile, ratio, type Layer, type LayerFigures, type LayerReadOptions } from '../layer.js';
import { sha256DigestHex } from '../../util/sha256-digest.js';

export interface OpenFullLayerOptions {
  readonly client: Pick<RegistryClient, 'streamBlob'>;
  readonly repo: RepositoryRef;
  readonly descriptor: Descriptor;
  /** The cache root; the layer goes to `layers/HEX[0:2]/HEX.tar` under it. */
  readonly cacheDir: string;
  readonly signal?: AbortSignal;
  readonly limits?: Partial<TocLimits>;
  /**
   * Largest uncompressed layer written to disk. A gzip or zstd bomb (a few MB inflating to terabytes)
   * would otherwise fill the cache disk before its digest could even be checked. Default 256 GiB.
   */
  readonly maxUncompressedBytes?: number;
  /**
   * A gzip layer's zTOC, built while it inflates, handed over once the whole blob verified: where it is
   * kept, the layer stays seekable after its tar leaves the cache (span reads, src/layers/soci).
   */
  readonly onZtoc?: (ztoc: Uint8Array) => Promise<void>;
}

export const DEFAULT_MAX_UNCOMPRESSED_LAYER_BYTES = 256 * 2 ** 30;
/** The zTOCs a whole-layer pull builds say who built them. */
const ZTOC_BUILD_TOOL = 'tocfs (first pull)';

export interface FullLayerStats {
  readonly digest: string;
  readonly format: 'tar';
  readonly tocSource: 'cache' | 'blob';
  /** Bytes of the uncompressed tar in the cache. */
  readonly tarBytes: number;
  readonly reads: number;
  readonly bytesRead: number;
}


function inflater(compression: LayerCompression): Transform {
  switch (compression) {
    case 'gzip':
      return new ZtocInflater({ buildToolIdentifier: ZTOC_BUILD_TOOL });
    case 'zstd':
      return new DecompressStream();
    case 'none':
      return new PassThrough();
  }
}

export function fullLayerPaths(cacheDir: string, digest: string): { dir: string; tar: string; index: string; partial: string } {
  const hex = sha256DigestHex(digest);
  // The hex becomes a file name: anything but a sha256 digest could name a path outside the cache.
  if (hex === undefined) throw new FormatError(`layer digest ${JSON.stringify(digest.slice(0, 80))} is not a sha256 digest`);
  const dir = join(cacheDir, 'layers', hex.slice(0, 2));
  return {
    dir,
    tar: join(dir, `${hex}.tar`),
    index: join(dir, `${hex}.index.json`),
    // Unique per attempt: two processes sharing a cache dir never write one file.
    partial: join(dir, `${hex}.tar.partial-${process.pid}-${randomBytes(4).toString('hex')}`),
  };
}

export class FullLayer implements Layer {
  readonly digest: string;
  readonly index: TocIndex;
  readonly tocSource: 'cache' | 'blob';
  readonly tarBytes: number;
  /** The compressed blob's size (the descriptor's). */
  readonly blobBytes: number;
  readonly #file: FileHandle;
  #reads = 0;
  #bytesRead = 0;
  /** Called on every read (the cache budget's access order). */
  onRead: (() => void) | undefined;
  #closed = false;

  /** Only `openFullLayer` makes one, from a verified tar. */
  constructor(descriptor: Pick<Descriptor, 'digest' | 'size'>, index: TocIndex, file: FileHandle, tarBytes: number, tocSource: 'cache' | 'blob') {
    this.digest = descriptor.digest;
    this.blobBytes = descriptor.size;
    this.index = index;
    this.#file = file;
    this.tarBytes = tarBytes;
    this.tocSource = tocSource;
  }

  /** Bytes [offset, offset + length) of a regular file, clamped at its end; [] past it. */
  async read(target: string | TocEntry, offset: number, length: number, signal?: AbortSignal, opts: LayerReadOptions = {}): Promise<Uint8Array> {
    const entry = ownRegularFile(this, target);
    const name = entry.path;
    const { end } = clampedRange(entry, offset, length);
    if (this.#closed) throw new TocfsError('ABORTED', `layer ${this.digest} is closed`);
    if (signal?.aborted) throw new TocfsError('ABORTED', `read of ${JSON.stringify(name)} aborted`, { cause: signal.reason });
    const n = end - offset;
    const out = new Uint8Array(n);
    if (n === 0) return out;
    const start = entry.chunks[0]!.compressedOffset + offset;
    let done = 0;
    while (done < n) {
      const { bytesRead } = await this.#file.read(out, done, n - done, start + done);
      if (bytesRead === 0) {
        throw new TocfsError('BAD_DATA', `layer ${this.digest}: cached tar ends before ${JSON.stringify(name)} [${offset}, ${offset + n})`);
      }
      done += bytesRead;
    }
    // A prefetch's read serves no reader: the figures count what readers took.
    this.onRead?.();
    if (!opts.background) {
      this.#reads++;
      this.#bytesRead += n;
    }
    return out;
  }

  /** The whole blob counts as fetched when this process pulled it, nothing when the disk cache had it. */
  figures(): LayerFigures {
    const bytesFetched = this.tocSource === 'blob' ? this.blobBytes : 0;
    return {
      format: 'tar',
      tocSource: this.tocSource,
      source: 'registry',
      blobBytes: this.blobBytes,
      bytesFetched,
      bytesCache: this.#bytesRead,
      fetchedRatio: ratio(bytesFetched, this.blobBytes),
    };
  }

  stats(): FullLayerStats {
    return { digest: this.digest, format: 'tar', tocSource: this.tocSource, tarBytes: this.tarBytes, reads: this.#reads, bytesRead: this.#bytesRead };
  }

  /** Closes the file handle; the cached files stay for the next start. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#file.close();
  }
}

/** The cached layer, or undefined when it is not (fully) there; a damaged entry is removed. */
async function reopen(paths: ReturnType<typeof fullLayerPaths>, descriptor: Descriptor, limits: Partial<TocLimits> | undefined): Promise<FullLayer | undefined> {
  const { digest } = descriptor;
  let text: string;
  try {
    text = await readFile(paths.index, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  try {
    const { tarSize, entries } = decodeIndex(text, digest);
    const st = await stat(paths.tar);
    if (st.size !== tarSize) throw new FormatError(`cached tar of ${digest} has ${st.size} bytes, its index says ${tarSize}`);
    const index = indexToc(entries, { format: 'tar', tocOffset: tarSize, ...(limits ? { limits } : {}) });
    const file = await open(paths.tar, 'r');
    return new FullLayer(descriptor, index, file, tarSize, 'cache');
  } catch (err) {
    if (!isTocfsError(err) && (err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    // Not trusted: fetch again. The index goes first, so a crash in between never leaves a marker.
    await rm(paths.index, { force: true });
    await rm(paths.tar, { force: true });
    return undefined;
  }
}

/** Drives the rest of a blob stream to its end, so that its digest check runs. */
async function drain(blob: AsyncIterator<Uint8Array>): Promise<void> {
  for (;;) if ((await blob.next()).done) return;
}

/**
 * Streams, verifies and indexes the blob into `paths.partial`; returns the raw entries and tar size.
 * When decompression or the tar fails, the blob is still read to its end: a corrupted transfer is then
 * reported as the DigestMismatchError (BAD_DATA, worth a retry) it is, and only a layer whose bytes
 * verified is a FormatError.
 */
async function fetchTar(
  opts: OpenFullLayerOptions,
  compression: LayerCompression,
  partial: string,
  maxEntries: number,
): Promise<{ entries: RawTocEntry[]; tarSize: number; ztoc?: Uint8Array }> {
  const { descriptor } = opts;
  const blob = opts.client.streamBlob(opts.repo, descriptor, opts.signal ? { signal: opts.signal } : {})[Symbol.asyncIterator]();
  async function* feed(): AsyncGenerator<Uint8Array> {
    for (;;) {
      const step = await blob.next();
      if (step.done) return;
      yield step.value;
    }
  }
  const maxUncompressed = opts.maxUncompressedBytes ?? DEFAULT_MAX_UNCOMPRESSED_LAYER_BYTES;
  const file = await open(partial, 'wx', PRIVATE_FILE_MODE);
  const inflating = inflater(compression);
  const entries: RawTocEntry[] = [];
  const reader = new TarReader();
  let tarSize = 0;
  let diskError: unknown;
  // pipeline() reports the abort of the other stages rather than the error that caused it.
  let tooLarge: FormatError | undefined;
  const onEvents = (events: TarEvent[]): void => {
    for (const ev of events) {
      if (ev.kind !== 'entry') continue;
      if (entries.length >= maxEntries) throw new FormatError(`layer ${descriptor.digest}: more than ${maxEntries} tar entries`);
      entries.push(rawEntryOf(ev.header));
    }
  };
  try {
    try {
      await pipeline(Readable.from(feed()), inflating, async (source: AsyncIterable<Buffer>) => {
        for await (const chunk of source) {
          if (tarSize + chunk.length > maxUncompressed) {
            tooLarge = new FormatError(`layer ${descriptor.digest} inflates to more than ${maxUncompressed} bytes (the uncompressed layer limit)`);
            throw tooLarge;
          }
          onEvents(reader.push(chunk));
          try {
            await writeWhole(file, chunk, tarSize);
          } catch (err) {
            diskError = err;
            throw err;
          }
          tarSize += chunk.length;
        }
        onEvents(reader.end());
      });
    } catch (err) {
      // A local write failure (ENOSPC, EIO) says nothing about the blob: stop the download, report it.
      if (diskError !== undefined) {
        await blob.return?.();
        throw diskError;
      }
      // The blob's own failure (digest, network, abort) wins; otherwise the bytes verified and are bad.
      await drain(blob);
      if (tooLarge) throw tooLarge;
      if (isTocfsError(err)) throw err;
      throw new FormatError(`layer ${descriptor.digest} is not a valid ${compression === 'none' ? 'tar' : `${compression} tar`}: ${(err as Error).message}`, {
        cause: err,
      });
    }
    await file.sync();
  } finally {
    await file.close();
  }
  const ztoc = inflating instanceof ZtocInflater ? inflating.built?.bytes : undefined;
  return { entries: lastCopies(entries), tarSize, ...(ztoc && { ztoc }) };
}

/**
 * Opens a TOC-less layer: from the cache when `HEX.index.json` is there, else by streaming the whole
 * blob. Resolves only once the blob's digest verified. Throws DigestMismatchError (BAD_DATA) on a
 * corrupted blob, FormatError on a bad layer; a failure leaves nothing in the cache.
 */
/** A whole layer in the cache: its files' bytes and last access (the tar's mtime), for the cache budget. */
export interface CachedFullLayer {
  readonly digest: string;
  readonly tar: string;
  readonly bytes: number;
  readonly mtimeMs: number;
}

/** Every committed whole layer in the cache (those with an index, the commit marker), or only `digest`'s. */
export async function listCachedFullLayers(cacheDir: string, digest?: string): Promise<CachedFullLayer[]> {
  const root = join(cacheDir, 'layers');
  const found: CachedFullLayer[] = [];
  const subs = digest === undefined ? await readdir(root).catch(() => [] as string[]) : [(sha256DigestHex(digest) ?? '').slice(0, 2)];
  for (const sub of subs) {
    for (const name of await readdir(join(root, sub)).catch(() => [] as string[])) {
      const m = /^([0-9a-f]{64})\.index\.json$/.exec(name);
      if (m === null || (digest !== undefined && `sha256:${m[1]}` !== digest)) continue;
      const paths = fullLayerPaths(cacheDir, `sha256:${m[1]}`);
      const [tar, index] = await Promise.all([stat(paths.tar).catch(() => undefined), stat(paths.index).catch(() => undefined)]);
      if (tar === undefined || index === undefined) continue;
      found.push({ digest: `sha256:${m[1]}`, tar: paths.tar, bytes: tar.size + index.size, mtimeMs: tar.mtimeMs });
    }
  }
  return found;
}

/** Deletes a whole layer from the cache: the index (the commit marker) first, so a crash leaves no half. */
export async function removeCachedFullLayer(cacheDir: string, digest: string): Promise<void> {
  const paths = fullLayerPaths(cacheDir, digest);
  await rm(paths.index, { force: true });
  await rm(paths.tar, { force: true });
}

/** The layer from the disk cache alone (no network), or undefined when it is not (fully) there. */
export function reopenFullLayer(opts: Pick<OpenFullLayerOptions, 'cacheDir' | 'descriptor' | 'limits'>): Promise<FullLayer | undefined> {
  return reopen(fullLayerPaths(opts.cacheDir, opts.descriptor.digest), opts.descriptor, opts.limits);
}

export async function openFullLayer(opts: OpenFullLayerOptions): Promise<FullLayer> {
  const { descriptor } = opts;
  const compression = layerCompression(descriptor.mediaType);
  if (compression === undefined) throw new FormatError(`layer ${descriptor.digest}: media type ${JSON.stringify(descriptor.mediaType)} is not a tar layer`);
  const cached = await reopenFullLayer(opts);
  if (cached) return cached;
  const paths = fullLayerPaths(opts.cacheDir, descriptor.digest);

  await mkdir(paths.dir, { recursive: true, mode: PRIVATE_DIR_MODE });
  const maxEntries = opts.limits?.maxEntries ?? DEFAULT_TOC_LIMITS.maxEntries;
  let committed = false;
  try {
    const { entries, tarSize, ztoc } = await fetchTar(opts, compression, paths.partial, maxEntries);
    const index = indexToc(entries, { format: 'tar', tocOffset: tarSize, ...(opts.limits ? { limits: opts.limits } : {}) });
    await rename(paths.partial, paths.tar);
    const indexTmp = `${paths.partial}.index`;
    await writeFile(indexTmp, encodeIndex(descriptor.digest, tarSize, entries), { mode: PRIVATE_FILE_MODE });
    await rename(indexTmp, paths.index);
    committed = true;
    // The blob verified (streamBlob checks its digest at its end), so its zTOC may be trusted too.
    if (ztoc !== undefined) await opts.onZtoc?.(ztoc);
    const file = await open(paths.tar, 'r');
    return new FullLayer(descriptor, index, file, tarSize, 'blob');
  } finally {
    if (!committed) {
      await rm(paths.partial, { force: true });
      await rm(`${paths.partial}.index`, { force: true });
    }
  }
}
