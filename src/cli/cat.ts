import { once } from 'node:events';
import { debuglog, parseArgs } from 'node:util';
import { TocfsError, isTocfsError } from '../errors.js';
import type { FsNode } from '../image/filesystem.js';
import { parseReference, formatReference } from '../registry/reference.js';
import { normaliseImagePath } from './layer-paths.js';
import { openReaderSession, readerOptionSpec } from './reader-session.js';
import { UsageError } from './usage.js';

// Reads are issued a few chunks at a time, so a large file streams with bounded memory.
const READ_PIECE_BYTES = 8 * 2 ** 20;

/**
 * `tocfs cat REF PATH [--layer DIGEST]`: the bytes of one file of the image, as the mount serves
 * `images/REF/PATH` (every layer kind, whiteouts, hardlinks, CVMFS), each byte verified. With --layer, the
 * file of that one layer, as the mount serves `layers/HOST/REPO@DIGEST/PATH`.
 */
export async function runCat(argv: string[], out: NodeJS.WritableStream): Promise<void> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, allowPositionals: true, options: { ...readerOptionSpec, layer: { type: 'string' } } });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const [refText, pathText, ...extra] = parsed.positionals;
  if (refText === undefined || pathText === undefined) throw new UsageError('usage: tocfs cat REF PATH [--layer DIGEST]');
  if (extra.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(extra[0])}`);
  const ref = parseReference(refText);
  const path = normaliseImagePath(pathText);
  if (path === '') throw new UsageError('PATH must name a file, not the image root');

  const reader = await openReaderSession(parsed.values, debuglog('tocfs'));
  try {
    const image = await reader.images.image(ref);
    const wanted = parsed.values.layer;
    let root = `/images/${formatReference(ref)}`;
    let where = formatReference(ref);
    if (wanted !== undefined) {
      if (!image.layers.some((l) => l.digest === wanted)) throw new TocfsError('NOT_FOUND', `${formatReference(ref)} has no layer ${wanted}`);
      root = `/layers/${ref.registry}/${ref.repository}@${wanted}`;
      where = `layer ${wanted}`;
    }
    const file = `${root}/${path}`;
    const node = await reader.images.lookup(file).catch((err: unknown) => {
      throw isTocfsError(err) && err.code === 'NOT_FOUND' ? new TocfsError('NOT_FOUND', `${where}: /${path}: no such file`, { cause: err }) : err;
    });
    if (node.type !== 'reg') throw new TocfsError('FORMAT', `/${path} in ${where} is ${describe(node)}, not a regular file`);
    const handle = await reader.images.open(file);
    for (let offset = 0; offset < node.size; offset += READ_PIECE_BYTES) {
      const bytes = await handle.read(offset, READ_PIECE_BYTES);
      if (!out.write(bytes)) await once(out, 'drain');
    }
  } finally {
    await reader.close();
  }
}

function describe(node: FsNode): string {
  if (node.type === 'symlink') return `a symlink to ${node.linkName}`;
  return `a ${node.type === 'dir' ? 'directory' : node.type}`;
}
