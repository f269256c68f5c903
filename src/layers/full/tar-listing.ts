import { createGunzip } from 'node:zlib';
import { PassThrough, Readable, type Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Parser, type ReadEntry } from 'tar';
import { DecompressStream } from 'zstd-napi';
import { FormatError } from '../../errors.js';
import type { LayerCompression } from '../../registry/manifest.js';

/** One tar header as a listing shows it: whiteouts and format artefacts are kept, as in the tar. */
export interface TarListingEntry {
  readonly path: string;
  readonly type: string;
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly size: number;
  readonly mtime?: Date;
  readonly linkpath?: string;
  readonly devmajor?: number;
  readonly devminor?: number;
}

function decompressor(compression: LayerCompression): Transform {
  switch (compression) {
    case 'gzip':
      return createGunzip();
    case 'zstd':
      return new DecompressStream();
    case 'none':
      return new PassThrough();
  }
}

/**
 * Lists the tar headers of a whole layer stream. The caller must only trust the result once the source
 * stream has ended without error: a digest-verifying source throws at its end, and this rethrows that.
 */
export async function listLayerEntries(
  source: AsyncIterable<Uint8Array>,
  compression: LayerCompression,
): Promise<TarListingEntry[]> {
  const entries: TarListingEntry[] = [];
  let tarError: unknown;
  const parser = new Parser({
    strict: true,
    onReadEntry(entry: ReadEntry) {
      entries.push({
        path: entry.path,
        type: entry.type,
        mode: entry.mode ?? 0,
        uid: entry.uid ?? 0,
        gid: entry.gid ?? 0,
        size: entry.size ?? 0,
        ...(entry.mtime ? { mtime: entry.mtime } : {}),
        ...(entry.linkpath ? { linkpath: entry.linkpath } : {}),
        ...(entry.header.devmaj !== undefined ? { devmajor: entry.header.devmaj } : {}),
        ...(entry.header.devmin !== undefined ? { devminor: entry.header.devmin } : {}),
      });
      entry.resume();
    },
  });
  parser.on('error', (err: unknown) => {
    tarError ??= err;
  });
  parser.on('warn', (code: string, message: string | Error) => {
    tarError ??= new FormatError(`bad tar stream: ${code}: ${String(message)}`);
  });
  try {
    await pipeline(Readable.from(source), decompressor(compression), parser as unknown as NodeJS.WritableStream);
  } catch (err) {
    if (err instanceof Error && 'code' in err && typeof err.code === 'string' && err.code.startsWith('Z_')) {
      throw new FormatError(`layer is not valid ${compression}: ${err.message}`, { cause: err });
    }
    throw err;
  }
  if (tarError) {
    throw tarError instanceof FormatError
      ? tarError
      : new FormatError(`bad tar stream: ${String((tarError as Error).message ?? tarError)}`, { cause: tarError });
  }
  return entries;
}
