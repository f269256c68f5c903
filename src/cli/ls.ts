import { debuglog, parseArgs } from 'node:util';
import { TocfsError } from '../errors.js';
import { walkLayer } from '../image/layer-tree.js';
import { formatReference, parseReference } from '../registry/reference.js';
import { formatTocEntry } from './listing.js';
import { isUnder, normaliseImagePath } from './layer-paths.js';
import { openRegistrySession } from './registry-options.js';
import { openReaderSession, readerOptionSpec } from './reader-session.js';
import { UsageError } from './usage.js';

/**
 * `tocfs ls REF [PATH]`: every layer's own entries (whiteouts as in the tar), read as the mount reads the
 * layer: from its TOC (footer and TOC only), its CVMFS copy, or, for a layer without a TOC, its verified
 * stream. `--layers` lists the manifest's layer descriptors alone.
 */
export async function runLs(argv: string[], out: NodeJS.WritableStream): Promise<void> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, allowPositionals: true, options: { ...readerOptionSpec, layers: { type: 'boolean' } } });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const [refText, pathText, ...extra] = parsed.positionals;
  if (refText === undefined) throw new UsageError('missing image reference (REF)');
  if (extra.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(extra[0])}`);
  const ref = parseReference(refText);
  const prefix = normaliseImagePath(pathText ?? '');

  if (parsed.values.layers) {
    // Descriptors only: no layer is opened, and the disk cache is not touched.
    const session = await openRegistrySession(parsed.values);
    try {
      const resolved = await session.client.resolve(ref, session.platform);
      const layers = resolved.manifest.document.layers;
      out.write(`# ${formatReference(ref)} ${resolved.digest} (${layers.length} layers)\n`);
      for (const layer of layers) out.write(`${layer.digest}\t${layer.mediaType}\t${layer.size}\n`);
    } finally {
      await session.close();
    }
    return;
  }

  const reader = await openReaderSession(parsed.values, debuglog('tocfs'));
  try {
    const image = await reader.images.image(ref);
    out.write(`# ${formatReference(ref)} ${image.manifestDigest} (${image.layers.length} layers)\n`);
    let matched = 0;
    for (const layer of image.layers) {
      out.write(`## layer ${layer.digest} (${layer.index.format}, TOC from ${layer.tocSource})\n`);
      for await (const [path, entry] of walkLayer(layer)) {
        if (!isUnder(path, prefix)) continue;
        out.write(`${formatTocEntry(path, entry)}\n`);
        matched++;
      }
    }
    if (prefix !== '' && matched === 0) {
      throw new TocfsError('NOT_FOUND', `${formatReference(ref)}: no layer has /${prefix}`);
    }
  } finally {
    await reader.close();
  }
}
