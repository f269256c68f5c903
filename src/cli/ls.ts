import { parseArgs } from 'node:util';
import { parseReference, formatReference } from '../registry/reference.js';
import { layerCompression } from '../registry/manifest.js';
import { listLayerEntries } from '../layers/full/tar-listing.js';
import { hasLazyToc } from '../layers/toc/open-layer.js';
import { FormatError, TocfsError } from '../errors.js';
import type { Descriptor, ImageReference } from '../registry/types.js';
import { formatTarEntry, formatTocEntry } from './listing.js';
import { isUnder, normaliseImagePath } from './layer-paths.js';
import { layerOptionSpec, openLayerSession, type LayerSession } from './layer-session.js';
import { UsageError } from './usage.js';

export async function runLs(argv: string[], out: NodeJS.WritableStream): Promise<void> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, allowPositionals: true, options: { ...layerOptionSpec, layers: { type: 'boolean' } } });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const [refText, pathText, ...extra] = parsed.positionals;
  if (refText === undefined) throw new UsageError('missing image reference (REF)');
  if (extra.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(extra[0])}`);
  const ref = parseReference(refText);
  const prefix = normaliseImagePath(pathText ?? '');

  const session = await openLayerSession(parsed.values);
  try {
    const resolved = await session.client.resolve(ref, session.platform);
    const layers = resolved.manifest.document.layers;
    out.write(`# ${formatReference(ref)} ${resolved.digest} (${layers.length} layers)\n`);
    if (parsed.values.layers) {
      for (const layer of layers) out.write(`${layer.digest}\t${layer.mediaType}\t${layer.size}\n`);
      return;
    }
    let matched = 0;
    for (const layer of layers) {
      const lines = hasLazyToc(layer)
        ? await tocListing(session, ref, layer, prefix)
        : await streamedListing(session, ref, layer, prefix);
      out.write(`## layer ${layer.digest} ${lines.how}\n`);
      for (const line of lines.lines) out.write(`${line}\n`);
      matched += lines.lines.length;
    }
    if (prefix !== '' && matched === 0) {
      throw new TocfsError('NOT_FOUND', `${formatReference(ref)}: no layer has /${prefix}`);
    }
  } finally {
    await session.close();
  }
}

interface LayerListing {
  readonly how: string;
  readonly lines: string[];
}

/** From the layer's TOC: a footer + TOC fetch (or the TOC cache), never the layer's file bytes. */
async function tocListing(session: LayerSession, ref: ImageReference, layer: Descriptor, prefix: string): Promise<LayerListing> {
  const opened = await (await session.layers()).open(ref, layer);
  const lines: string[] = [];
  for (const [path, entry] of opened.index.walk()) {
    if (isUnder(path, prefix)) lines.push(formatTocEntry(path, entry));
  }
  return { how: `(${opened.index.format}, TOC from ${opened.tocSource})`, lines };
}

/** A layer without a TOC is read whole, and listed only once its digest checked out. */
async function streamedListing(session: LayerSession, ref: ImageReference, layer: Descriptor, prefix: string): Promise<LayerListing> {
  const compression = layerCompression(layer.mediaType);
  if (!compression) {
    throw new FormatError(`layer ${layer.digest} has media type ${layer.mediaType}, which is not a layer tocfs can read`);
  }
  const entries = await listLayerEntries(session.client.streamBlob(ref, layer), compression);
  const lines = entries.filter((e) => isUnder(normaliseImagePath(e.path), prefix)).map(formatTarEntry);
  return { how: `(${compression}, no TOC: whole layer read)`, lines };
}
