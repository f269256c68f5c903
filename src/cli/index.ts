import { parseArgs } from 'node:util';
import { indexImage, type IndexedLayer, type LayerProgress, type SkippedLayer } from '../convert/soci-index.js';
import { formatReference, parseReference } from '../registry/reference.js';
import { cacheOptionSpec, cacheSettings } from './cache-options.js';
import { openRegistrySession, registryOptionSpec } from './registry-options.js';
import { UsageError } from './usage.js';

export const INDEX_USAGE = `usage: tocfs index REF [--span-size N] [--min-layer-size N] [--v2 DST] [--platform OS/ARCH[/VARIANT]]
                   [--insecure-registry HOST[:PORT]]... [--cache-dir DIR]

Builds SOCI zTOCs for REF's gzip layers (each layer streamed once) and pushes them with a SOCI v1 index
whose subject is REF's manifest, findable as its referrer; REF itself (and its digest) is not changed.
Prints the SOCI index digest (then the v2 one) on stdout; progress goes to stderr.

  --span-size N        uncompressed bytes between zran checkpoints (default 4M; K and M suffixes)
  --min-layer-size N   layers smaller than this get no zTOC and are pulled whole (default 10M)
  --v2 DST             also write the SOCI v2 form: REF's manifest annotated with the v2 index, in a new
                       image index tagged DST (in REF's repository, or another for a single-platform REF)
  --platform P         the platform to index in a multi-platform REF (default: this host's)
  --insecure-registry H plain HTTP or unverified TLS for that registry (repeatable)
  --cache-dir DIR      tocfs's cache (default as for mount): a zTOC a local mount built when it pulled a
                       layer whole is pushed instead of streaming that layer again
Layers that are not plain gzip (eStargz, zstd, uncompressed) are skipped with a line saying why.`;

const UNITS: Record<string, number> = { '': 1, k: 1024, kib: 1024, m: 1 << 20, mib: 1 << 20, g: 1 << 30, gib: 1 << 30 };

/** A size in bytes, or with a K/KiB/M/MiB/G/GiB suffix (powers of 1024). */
function parseSize(option: string, text: string, min: number): number {
  const m = /^(\d+)\s*([a-z]*)$/i.exec(text.trim());
  const unit = m ? UNITS[m[2]!.toLowerCase()] : undefined;
  const value = m && unit !== undefined ? Number(m[1]) * unit : NaN;
  if (!Number.isSafeInteger(value) || value < min) throw new UsageError(`${option} ${JSON.stringify(text)} is not a size of at least ${min} (e.g. 4194304, 512K, 4M)`);
  return value;
}

const mib = (n: number): string => `${(n / 2 ** 20).toFixed(1)} MiB`;
const short = (digest: string): string => digest.slice(0, 19);
const where = (p: { index: number; total: number; layer: { digest: string } }): string => `layer ${p.index + 1}/${p.total} ${short(p.layer.digest)}`;

function progressLine(p: LayerProgress): string {
  const pct = p.layer.size > 0 ? Math.floor((100 * p.compressedDone) / p.layer.size) : 100;
  const rate = p.elapsedMs > 0 ? p.compressedDone / (p.elapsedMs / 1000) : 0;
  return `${where(p)}: ${mib(p.compressedDone)} of ${mib(p.layer.size)} (${pct}%), ${mib(rate)}/s\n`;
}

function layerLine(l: IndexedLayer): string {
  const how = l.fromCache ? ', built by a local pull' : '';
  return `${where(l)}: zTOC ${l.ztoc.digest}${how} (${l.layer.size} bytes compressed, ${l.spans} spans, ${l.entries} entries, ${(l.elapsedMs / 1000).toFixed(1)} s)\n`;
}

const skipLine = (s: SkippedLayer): string => `${where(s)}: skipped, ${s.reason}\n`;

export async function runIndex(argv: string[], out: NodeJS.WritableStream, err: NodeJS.WritableStream): Promise<void> {
  if (argv.includes('--help') || argv.includes('-h')) {
    out.write(`${INDEX_USAGE}\n`);
    return;
  }
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: { ...registryOptionSpec, ...cacheOptionSpec, 'span-size': { type: 'string' }, 'min-layer-size': { type: 'string' }, v2: { type: 'string' } },
    });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const [refText, ...extra] = parsed.positionals;
  if (refText === undefined) throw new UsageError('needs an image reference (REF); see tocfs index --help');
  if (extra.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(extra[0])}`);
  const spanText = parsed.values['span-size'];
  const minText = parsed.values['min-layer-size'];
  // One span must hold at least a deflate block's worth; below 64 KiB the windows (32 KiB each) outweigh it.
  const spanSize = spanText === undefined ? undefined : parseSize('--span-size', spanText, 64 << 10);
  const minLayerSize = minText === undefined ? undefined : parseSize('--min-layer-size', minText, 0);
  const ref = parseReference(refText);
  const v2 = parsed.values.v2 === undefined ? undefined : parseReference(parsed.values.v2);

  const session = await openRegistrySession(parsed.values);
  try {
    err.write(`# indexing ${formatReference(ref)}\n`);
    const result = await indexImage(session.client, ref, {
      platform: session.platform,
      ...(spanSize !== undefined && { spanSize }),
      ...(minLayerSize !== undefined && { minLayerSize }),
      ...(v2 !== undefined && { v2 }),
      cacheDir: cacheSettings(parsed.values).cacheDir,
      onSkip: (s) => err.write(skipLine(s)),
      onProgress: (p) => err.write(progressLine(p)),
      onLayer: (l) => err.write(layerLine(l)),
    });
    err.write(`SOCI index ${result.v1.digest} refers to ${result.image.manifest.digest}\n`);
    out.write(`${result.v1.digest}\n`);
    if (result.v2 && v2) {
      err.write(`SOCI v2 index ${result.v2.index.digest}; image index ${result.v2.imageIndex.digest} tagged ${formatReference(v2)}\n`);
      out.write(`${result.v2.index.digest}\n`);
    }
  } finally {
    await session.close();
  }
}
