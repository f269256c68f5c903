import { once } from 'node:events';
import { parseArgs } from 'node:util';
import { parseReference, formatReference } from '../registry/reference.js';
import { hasLazyToc } from '../layers/toc/open-layer.js';
import { TocfsError } from '../errors.js';
import type { VerifiedLayer } from '../layers/toc/toc-layer.js';
import type { TocEntry } from '../formats/toc.js';
import { normaliseImagePath } from './layer-paths.js';
import { layerOptionSpec, openLayerSession } from './layer-session.js';
import { UsageError } from './usage.js';

// Reads are issued a few chunks at a time, so a large file streams with bounded memory.
const READ_PIECE_BYTES = 8 * 2 ** 20;

/**
 * `tocfs cat REF PATH [--layer DIGEST]`: the bytes of one file of one layer, fetched chunk by chunk and
 * verified. Without --layer, the topmost layer holding PATH, honouring whiteouts and opaque directories of
 * the layers above it; the merged view of all layers is the mount's job.
 */
export async function runCat(argv: string[], out: NodeJS.WritableStream): Promise<void> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, allowPositionals: true, options: { ...layerOptionSpec, layer: { type: 'string' } } });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const [refText, pathText, ...extra] = parsed.positionals;
  if (refText === undefined || pathText === undefined) throw new UsageError('usage: tocfs cat REF PATH [--layer DIGEST]');
  if (extra.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(extra[0])}`);
  const ref = parseReference(refText);
  const path = normaliseImagePath(pathText);
  if (path === '') throw new UsageError('PATH must name a file, not the image root');

  const session = await openLayerSession(parsed.values);
  try {
    const { manifest } = await session.client.resolve(ref, session.platform);
    const wanted = parsed.values.layer;
    const layers = manifest.document.layers.filter((l) => wanted === undefined || l.digest === wanted);
    if (wanted !== undefined && layers.length === 0) {
      throw new TocfsError('NOT_FOUND', `${formatReference(ref)} has no layer ${wanted}`);
    }
    // Top-down: the first layer that has PATH wins, unless a layer above deleted it.
    for (const descriptor of [...layers].reverse()) {
      if (!hasLazyToc(descriptor)) {
        throw new TocfsError(
          'FORMAT',
          `layer ${descriptor.digest} of ${formatReference(ref)} has no TOC (not eStargz or zstd:chunked), so tocfs cat cannot search it lazily`,
        );
      }
      const layer = await (await session.layers()).open(ref, descriptor);
      const entry = layer.index.lookup(path);
      if (entry) return await writeFile(layer, path, entry, out);
      if (hidesLowerLayers(layer, path)) break;
    }
    throw new TocfsError('NOT_FOUND', `${formatReference(ref)}: /${path}: no such file`);
  } finally {
    await session.close();
  }
}

/** True when the layer removes `path` from the layers below: a `.wh.` of it or an ancestor, or an opaque ancestor. */
function hidesLowerLayers(layer: VerifiedLayer, path: string): boolean {
  const parts = path.split('/');
  for (let i = 0; i < parts.length; i++) {
    const dir = parts.slice(0, i).join('/');
    const prefix = dir === '' ? '' : `${dir}/`;
    if (layer.index.lookup(`${prefix}.wh.${parts[i]}`)) return true;
    if (i > 0 && layer.index.lookup(`${prefix}.wh..wh..opq`)) return true;
  }
  return false;
}

async function writeFile(layer: VerifiedLayer, path: string, entry: TocEntry, out: NodeJS.WritableStream): Promise<void> {
  if (entry.type !== 'reg') {
    const what = entry.type === 'symlink' ? `a symlink to ${entry.linkName}` : `a ${entry.type === 'dir' ? 'directory' : entry.type}`;
    throw new TocfsError('FORMAT', `/${path} in layer ${layer.digest} is ${what}, not a regular file`);
  }
  for (let offset = 0; offset < entry.size; offset += READ_PIECE_BYTES) {
    const bytes = await layer.read(entry, offset, READ_PIECE_BYTES);
    if (!out.write(bytes)) await once(out, 'drain');
  }
}
