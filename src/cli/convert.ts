import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { convertImage, type ConvertedLayer } from '../convert/convert-image.js';
import { DEFAULT_TOC_LIMITS } from '../formats/toc.js';
import { formatReference, parseReference } from '../registry/reference.js';
import { openRegistrySession, registryOptionSpec } from './registry-options.js';
import { UsageError } from './usage.js';

const UNITS: Record<string, number> = { '': 1, k: 1024, kib: 1024, m: 1 << 20, mib: 1 << 20 };

/** `--chunk-size`: bytes, or with a K/KiB/M/MiB suffix (powers of 1024). */
function parseSize(text: string): number {
  const m = /^(\d+)\s*([a-z]*)$/i.exec(text.trim());
  const unit = m ? UNITS[m[2]!.toLowerCase()] : undefined;
  const value = m && unit !== undefined ? Number(m[1]) * unit : NaN;
  if (!Number.isSafeInteger(value) || value <= 0) throw new UsageError(`--chunk-size ${JSON.stringify(text)} is not a positive size (e.g. 4194304, 512K, 4M)`);
  // Readers refuse larger chunks (a decompression-bomb guard), so such a blob could never be mounted.
  if (value > DEFAULT_TOC_LIMITS.maxChunkBytes) throw new UsageError(`--chunk-size is at most ${DEFAULT_TOC_LIMITS.maxChunkBytes} bytes`);
  return value;
}

function layerLine(layer: ConvertedLayer, index: number, total: number, format: string): string {
  const { source, target } = layer;
  return (
    `layer ${index + 1}/${total} ${source.digest} (${layer.compression}, ${source.size} bytes) -> ` +
    `${target.digest} (${format}, ${target.size} bytes, ${layer.uncompressedSize} uncompressed)\n`
  );
}

/**
 * `--prioritize-from FILE`: one path per line (what `tocfs stats MNT --accessed IMAGE_DIR` prints), in the
 * order to write them; blank lines and `#` comments are skipped, duplicates keep their first place.
 */
export async function readPriorityList(file: string): Promise<string[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new UsageError(`--prioritize-from ${file}: ${(err as Error).message}`);
  }
  const seen = new Set<string>();
  for (const raw of text.split('\n')) {
    const line = raw.replace(/\r$/, '').trim();
    if (line === '' || line.startsWith('#')) continue;
    seen.add(line);
  }
  return [...seen];
}

export async function runConvert(argv: string[], out: NodeJS.WritableStream): Promise<void> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        ...registryOptionSpec,
        format: { type: 'string', default: 'estargz' },
        prioritize: { type: 'string', multiple: true },
        'prioritize-from': { type: 'string', multiple: true },
        'chunk-size': { type: 'string' },
      },
    });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const [srcText, dstText, ...extra] = parsed.positionals;
  if (srcText === undefined || dstText === undefined) throw new UsageError('needs a source and a destination image (SRC DST)');
  if (extra.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(extra[0])}`);
  const format = parsed.values.format;
  if (format !== 'estargz' && format !== 'zstd-chunked') throw new UsageError(`unknown --format ${JSON.stringify(format)} (estargz or zstd-chunked)`);
  const chunkText = parsed.values['chunk-size'];
  const chunkSize = chunkText === undefined ? undefined : parseSize(chunkText);
  const prioritize = [...(parsed.values.prioritize ?? [])];
  for (const file of parsed.values['prioritize-from'] ?? []) prioritize.push(...(await readPriorityList(file)));
  if (format === 'zstd-chunked' && prioritize.length > 0) throw new UsageError('--prioritize needs --format estargz (zstd:chunked has no prefetch landmark)');
  const src = parseReference(srcText);
  const dst = parseReference(dstText);

  const session = await openRegistrySession(parsed.values);
  try {
    out.write(`# converting ${formatReference(src)} to ${formatReference(dst)} (${format})\n`);
    const result = await convertImage(session.client, src, dst, {
      format,
      platform: session.platform,
      prioritize,
      ...(chunkSize !== undefined && { chunkSize }),
      onLayer: (layer, index, total) => out.write(layerLine(layer, index, total, format)),
    });
    for (const path of result.unmatchedPrioritized) out.write(`warning: --prioritize ${path}: no layer has it\n`);
    out.write(`config ${result.configDigest}\n`);
    out.write(`manifest ${result.manifestDigest} pushed to ${formatReference(dst)}\n`);
  } finally {
    await session.close();
  }
}
