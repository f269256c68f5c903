import { parseArgs } from 'node:util';
import { parseReference, formatReference } from '../registry/reference.js';
import { layerCompression } from '../registry/manifest.js';
import { listLayerEntries, type TarListingEntry } from '../layers/tar-listing.js';
import { FormatError } from '../errors.js';
import { openRegistrySession, registryOptionSpec } from './registry-options.js';
import { UsageError } from './usage.js';

export async function runLs(argv: string[], out: NodeJS.WritableStream): Promise<void> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: { ...registryOptionSpec, layers: { type: 'boolean' } },
    });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const [refText, ...extra] = parsed.positionals;
  if (refText === undefined) throw new UsageError('missing image reference (REF)');
  if (extra.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(extra[0])}`);
  const ref = parseReference(refText);

  const session = await openRegistrySession(parsed.values);
  try {
    const resolved = await session.client.resolve(ref, session.platform);
    const layers = resolved.manifest.document.layers;
    out.write(`# ${formatReference(ref)} ${resolved.digest} (${layers.length} layers)\n`);
    if (parsed.values.layers) {
      for (const layer of layers) out.write(`${layer.digest}\t${layer.mediaType}\t${layer.size}\n`);
      return;
    }
    for (const layer of layers) {
      const compression = layerCompression(layer.mediaType);
      if (!compression) throw new FormatError(`layer ${layer.digest} has media type ${layer.mediaType}, which is not a layer tocfs can read`);
      // The listing is built from the whole verified stream and printed only after the digest checked out.
      const entries = await listLayerEntries(session.client.streamBlob(ref, layer), compression);
      out.write(`## layer ${layer.digest}\n`);
      for (const entry of entries) out.write(`${formatEntry(entry)}\n`);
    }
  } finally {
    await session.close();
  }
}

const TYPE_CHARS: Record<string, string> = {
  File: '-', OldFile: '-', ContiguousFile: '-', Directory: 'd', SymbolicLink: 'l', Link: 'h',
  CharacterDevice: 'c', BlockDevice: 'b', FIFO: 'p',
};

function formatMode(entry: TarListingEntry): string {
  const m = entry.mode;
  const bit = (mask: number, ch: string) => (m & mask ? ch : '-');
  const exec = (x: number, special: number, on: string, off: string) =>
    m & special ? (m & x ? on : off) : bit(x, 'x');
  return (
    (TYPE_CHARS[entry.type] ?? '?') +
    bit(0o400, 'r') + bit(0o200, 'w') + exec(0o100, 0o4000, 's', 'S') +
    bit(0o040, 'r') + bit(0o020, 'w') + exec(0o010, 0o2000, 's', 'S') +
    bit(0o004, 'r') + bit(0o002, 'w') + exec(0o001, 0o1000, 't', 'T')
  );
}

export function formatEntry(entry: TarListingEntry): string {
  const size = entry.type === 'CharacterDevice' || entry.type === 'BlockDevice'
    ? `${entry.devmajor ?? 0},${entry.devminor ?? 0}`
    : String(entry.size);
  const when = entry.mtime ? entry.mtime.toISOString().replace(/\.\d{3}Z$/, 'Z') : '-';
  const link = entry.type === 'SymbolicLink' ? ` -> ${entry.linkpath}` : entry.type === 'Link' ? ` link to ${entry.linkpath}` : '';
  return `${formatMode(entry)} ${entry.uid}/${entry.gid} ${size.padStart(10)} ${when} ${entry.path}${link}`;
}
