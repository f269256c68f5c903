/**
 * Opening a plain gzip layer through its zTOC: from the disk TOC cache (a restart, or a zTOC a first pull
 * built here), else the blob the SOCI index names, fetched whole and checked against that descriptor's
 * digest. The zTOC must describe this very blob (its compressed size) and pass every check of
 * src/formats/soci; anything it gets wrong is a FormatError naming the layer and the field, and the
 * caller pulls the layer whole instead.
 */
import { FormatError, isTocfsError } from '../../errors.js';
import type { SociZtocRef } from '../../formats/soci/index-manifest.js';
import { decodeZinfo } from '../../formats/soci/zinfo.js';
import { decodeZtoc } from '../../formats/soci/ztoc.js';
import { ztocToToc, type SociToc } from '../../formats/soci/ztoc-toc.js';
import { resolveTocLimits } from '../../formats/toc-fields.js';
import type { TocLimits, TocLocation } from '../../formats/toc.js';
import type { RegistryClient } from '../../registry/client.js';
import type { Descriptor, RepositoryRef } from '../../registry/types.js';
import { cacheErrorChannel, publish } from '../events.js';
import { openTocCache, type TocCache } from '../store/toc-cache.js';

/** A zTOC as it sits in the TOC cache: the whole blob, format `soci`. */
export function sociLocation(descriptor: Pick<Descriptor, 'size'>, ztocBytes: Uint8Array): TocLocation {
  return { format: 'soci', tocOffset: descriptor.size, tocLength: ztocBytes.length, footerLength: 0 };
}

/** The TOC model of a zTOC for `descriptor`'s blob; FormatError when it is not one. */
export function sociTocOf(descriptor: Descriptor, ztocBytes: Uint8Array, limits?: Partial<TocLimits>): SociToc {
  try {
    const ztoc = decodeZtoc(ztocBytes, limits);
    if (ztoc.compressedArchiveSize !== descriptor.size) {
      throw new FormatError(`compressed_archive_size ${ztoc.compressedArchiveSize} is not the layer's ${descriptor.size} bytes`);
    }
    return ztocToToc(ztoc, decodeZinfo(ztoc.compression.checkpoints), limits);
  } catch (err) {
    if (isTocfsError(err) && err.code === 'FORMAT') throw new FormatError(`layer ${descriptor.digest}: zTOC: ${err.message}`, { cause: err });
    throw err;
  }
}

/** The cached zTOC of the layer, or undefined (a miss, another format, or a cached zTOC that no longer decodes: dropped). */
export async function cachedSociToc(tocCache: TocCache, descriptor: Descriptor, limits?: Partial<TocLimits>): Promise<SociToc | undefined> {
  const cached = await tocCache.get(descriptor.digest).catch((error: unknown) => {
    publish(cacheErrorChannel, { store: 'tocs', op: 'read', digest: descriptor.digest, error });
    return undefined;
  });
  if (cached === undefined || cached.location.format !== 'soci') return undefined;
  try {
    return sociTocOf(descriptor, cached.tocBytes, limits);
  } catch (err) {
    await tocCache.reject(descriptor.digest, (err as Error).message);
    return undefined;
  }
}

/** The zTOC the SOCI index names for the layer, fetched (digest-checked), decoded and cached. */
export async function fetchSociToc(
  client: Pick<RegistryClient, 'streamBlob'>,
  tocCache: TocCache | undefined,
  repo: RepositoryRef,
  descriptor: Descriptor,
  ref: SociZtocRef,
  limits?: Partial<TocLimits>,
): Promise<SociToc> {
  const max = resolveTocLimits(limits).maxTocBytes;
  if (ref.ztoc.size > max) throw new FormatError(`layer ${descriptor.digest}: zTOC ${ref.ztoc.digest} is ${ref.ztoc.size} bytes, over maxTocBytes ${max}`);
  const parts: Uint8Array[] = [];
  for await (const part of client.streamBlob(repo, { mediaType: ref.ztoc.mediaType, digest: ref.ztoc.digest, size: ref.ztoc.size })) parts.push(part);
  const bytes = Buffer.concat(parts);
  const toc = sociTocOf(descriptor, bytes, limits);
  await tocCache?.put(descriptor.digest, sociLocation(descriptor, bytes), bytes).catch((error: unknown) =>
    publish(cacheErrorChannel, { store: 'tocs', op: 'write', digest: descriptor.digest, error }),
  );
  return toc;
}

/**
 * The zTOC a local pull built for the layer (`tocfs index` pushes it instead of streaming the layer
 * again), when its span size is `spanSize` and it describes this blob; else undefined.
 */
export async function localZtoc(cacheDir: string, descriptor: Descriptor, spanSize: number): Promise<Uint8Array | undefined> {
  const tocCache = await openTocCache(cacheDir);
  try {
    const cached = await tocCache.get(descriptor.digest).catch(() => undefined);
    if (cached === undefined || cached.location.format !== 'soci') return undefined;
    const toc = sociTocOf(descriptor, cached.tocBytes);
    return toc.zinfo.spanSize === spanSize ? cached.tocBytes : undefined;
  } catch {
    return undefined; // not usable: the layer is streamed as if there were none
  } finally {
    await tocCache.close();
  }
}
