/**
 * Layer TOCs on disk by layer digest (DESIGN.md §2, TOC source 2): `DIR/tocs/HEX[0:2]/HEX`. A file holds
 * the TOC's compressed bytes exactly as read from the blob, plus where they were found, so a restart
 * rebuilds the index with the codec and no network. Its layout is one JSON header line, then the bytes:
 *
 *   {"v":1,"layer":"sha256:…","location":{…TocLocation},"length":N,"sha256":"HEX of the bytes"}\n<N bytes>
 *
 * The header's sha256 catches a torn or rotted file here; open-layer.ts then decodes the bytes and
 * checks the TOC digest against the manifest annotation again, as it does for bytes from the network.
 * Writes go to a temp file renamed into place; a file that fails its checks is deleted and reported on
 * `tocfs:cache:corrupt`. TOCs are small and not counted in the chunk budget.
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { PRIVATE_DIR_MODE, PRIVATE_FILE_MODE } from '../../util/private-files.js';
import { join } from 'node:path';
import { TOC_CODECS } from '../../formats/codecs.js';
import type { TocFormat, TocLocation } from '../../formats/toc.js';
import { digestHex } from './chunk-store.js';
import { removeStaleTemps } from './disk-store.js';
import { cacheCorruptChannel, cacheErrorChannel, publish } from '../events.js';

export interface CachedToc {
  readonly location: TocLocation;
  /** The TOC's compressed bytes [tocOffset, tocOffset + length) of the blob. */
  readonly tocBytes: Uint8Array;
}

export interface TocCacheStats {
  readonly hits: number;
  readonly misses: number;
  readonly writes: number;
  readonly corrupt: number;
}

/** Every TOC a codec decodes, and SOCI zTOCs (a separate blob: from an index, or built by a first pull). */
const FORMATS: ReadonlySet<TocFormat> = new Set([...TOC_CODECS.map((c) => c.format), 'soci']);
const MAX_HEADER_BYTES = 4096;

interface Header {
  v: 1;
  layer: string;
  location: TocLocation;
  length: number;
  sha256: string;
}

const isCount = (n: unknown): n is number => typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;

function parseLocation(v: unknown): TocLocation | undefined {
  if (typeof v !== 'object' || v === null) return undefined;
  const l = v as Record<string, unknown>;
  if (!FORMATS.has(l.format as TocFormat) || !isCount(l.tocOffset) || !isCount(l.footerLength)) return undefined;
  if (l.tocLength !== undefined && !isCount(l.tocLength)) return undefined;
  if (l.tocUncompressedLength !== undefined && !isCount(l.tocUncompressedLength)) return undefined;
  return {
    format: l.format as TocFormat,
    tocOffset: l.tocOffset,
    footerLength: l.footerLength,
    ...(l.tocLength !== undefined ? { tocLength: l.tocLength as number } : {}),
    ...(l.tocUncompressedLength !== undefined ? { tocUncompressedLength: l.tocUncompressedLength as number } : {}),
  };
}

/** The cached TOC, or a reason why the file is not one. */
function decodeFile(layer: string, file: Buffer): CachedToc | string {
  const nl = file.subarray(0, MAX_HEADER_BYTES).indexOf(0x0a);
  if (nl < 0) return 'no header line';
  let header: Partial<Header>;
  try {
    header = JSON.parse(file.subarray(0, nl).toString('utf8')) as Partial<Header>;
  } catch {
    return 'header is not JSON';
  }
  const location = parseLocation(header.location);
  if (header.v !== 1 || header.layer !== layer || !location || !isCount(header.length)) return 'bad header';
  const tocBytes = file.subarray(nl + 1);
  if (tocBytes.length !== header.length) return `${tocBytes.length} bytes, header says ${header.length}`;
  if (createHash('sha256').update(tocBytes).digest('hex') !== header.sha256) return 'bytes do not match the header sha256';
  return { location, tocBytes };
}

let tmpSeq = 0;

export async function openTocCache(dir: string): Promise<TocCache> {
  const root = join(dir, 'tocs');
  const tmpDir = join(root, '.tmp');
  await mkdir(tmpDir, { recursive: true, mode: PRIVATE_DIR_MODE });
  await removeStaleTemps(tmpDir);
  return new TocCache(root, tmpDir);
}

export class TocCache {
  readonly #root: string;
  readonly #tmpDir: string;
  #hits = 0;
  #misses = 0;
  #writes = 0;
  #corrupt = 0;

  /** Use openTocCache(). */
  constructor(root: string, tmpDir: string) {
    this.#root = root;
    this.#tmpDir = tmpDir;
  }

  #path(hex: string): string {
    return join(this.#root, hex.slice(0, 2), hex);
  }

  /** Whether a TOC is cached for the layer (unchecked, not counted): the layer was opened here before. */
  async has(layerDigest: string): Promise<boolean> {
    return stat(this.#path(digestHex(layerDigest))).then(
      () => true,
      () => false,
    );
  }

  async get(layerDigest: string): Promise<CachedToc | undefined> {
    const file = this.#path(digestHex(layerDigest));
    let bytes: Buffer;
    try {
      bytes = await readFile(file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') publish(cacheErrorChannel, { store: 'tocs', op: 'read', digest: layerDigest, error: err });
      this.#misses++;
      return undefined;
    }
    const decoded = decodeFile(layerDigest, bytes);
    if (typeof decoded === 'string') {
      await this.reject(layerDigest, decoded);
      return undefined;
    }
    this.#hits++;
    return decoded;
  }

  /** Deletes a cached TOC found wrong (by its own checks or its caller's) and reports it. */
  async reject(layerDigest: string, reason: string): Promise<void> {
    const file = this.#path(digestHex(layerDigest));
    this.#corrupt++;
    this.#misses++;
    await rm(file, { force: true }).catch(() => {});
    publish(cacheCorruptChannel, { store: 'tocs', digest: layerDigest, file, reason });
  }

  /** Stores a TOC that its caller verified. Atomic: a reader sees the old file, the new one, or none. */
  async put(layerDigest: string, location: TocLocation, tocBytes: Uint8Array): Promise<void> {
    const hex = digestHex(layerDigest);
    const header: Header = {
      v: 1,
      layer: layerDigest,
      location,
      length: tocBytes.byteLength,
      sha256: createHash('sha256').update(tocBytes).digest('hex'),
    };
    const tmp = join(this.#tmpDir, `${process.pid}-${tmpSeq++}-${hex}`);
    try {
      await writeFile(tmp, Buffer.concat([Buffer.from(`${JSON.stringify(header)}\n`), tocBytes]), { mode: PRIVATE_FILE_MODE, flag: 'wx' });
      await mkdir(join(this.#root, hex.slice(0, 2)), { recursive: true, mode: PRIVATE_DIR_MODE });
      await rename(tmp, this.#path(hex));
      this.#writes++;
    } catch (err) {
      await rm(tmp, { force: true }).catch(() => {});
      throw err;
    }
  }

  async delete(layerDigest: string): Promise<void> {
    await rm(this.#path(digestHex(layerDigest)), { force: true });
  }

  stats(): TocCacheStats {
    return { hits: this.#hits, misses: this.#misses, writes: this.#writes, corrupt: this.#corrupt };
  }

  async close(): Promise<void> {}
}
