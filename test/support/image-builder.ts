// Builds OCI / Docker schema2 images on disk from DSL entries: layer blobs, config and manifest.
// Blobs land in `DIR/blobs/sha256/HEX`, so DIR is an OCI layout minus `index.json` and `oci-layout`.
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { link, mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough, type Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { CompressStream } from 'zstd-napi';
import { tarOf, type TarEntry } from './tar-dsl.js';

export type Compression = 'gzip' | 'zstd' | 'none';
export type MediaTypeFamily = 'oci' | 'docker';

export interface ImagePlatform {
  readonly os: string;
  readonly architecture: string;
  readonly variant?: string;
}

export interface LayerSpec {
  readonly entries: Iterable<TarEntry>;
  readonly compression: Compression;
  /** zlib level, 0..9; default 6 as gzip(1). */
  readonly gzipLevel?: number;
  /** zstd level; default 3 as zstd(1). */
  readonly zstdLevel?: number;
  readonly annotations?: Readonly<Record<string, string>>;
}

/** A layer blob made elsewhere (e.g. by a format converter), taken as is. */
export interface PrebuiltLayerSpec {
  readonly blobPath: string;
  readonly mediaType: string;
  /** sha256 of the uncompressed tar. */
  readonly diffId: string;
  readonly annotations?: Readonly<Record<string, string>>;
}

export interface ImageConfigSpec {
  readonly Env?: readonly string[];
  readonly Entrypoint?: readonly string[];
  readonly Cmd?: readonly string[];
  readonly WorkingDir?: string;
  readonly User?: string;
  readonly Labels?: Readonly<Record<string, string>>;
}

export interface ImageSpec {
  readonly layers: readonly (LayerSpec | PrebuiltLayerSpec)[];
  readonly config?: ImageConfigSpec;
  /** Default: the host's platform (linux, amd64 or arm64). */
  readonly platform?: ImagePlatform;
  /** Default 'oci'. */
  readonly mediaTypes?: MediaTypeFamily;
  readonly annotations?: Readonly<Record<string, string>>;
}

export interface BuiltLayer {
  readonly digest: string;
  readonly size: number;
  readonly diffId: string;
  readonly mediaType: string;
  /** The blob file, under `DIR/blobs/sha256/`. */
  readonly path: string;
  /** Bytes of the uncompressed tar; unknown for prebuilt layers. */
  readonly tarSize?: number;
  readonly annotations?: Readonly<Record<string, string>>;
}

export interface BuiltDocument {
  readonly digest: string;
  readonly bytes: Buffer;
  readonly mediaType: string;
}

export interface BuiltImage {
  readonly manifest: BuiltDocument;
  readonly config: BuiltDocument;
  readonly layers: readonly BuiltLayer[];
  readonly platform: ImagePlatform;
  /** Where the blobs were written. */
  readonly dir: string;
}

export interface BuiltIndex extends BuiltDocument {
  readonly images: readonly BuiltImage[];
}

export const MEDIA_TYPES = {
  oci: {
    manifest: 'application/vnd.oci.image.manifest.v1+json',
    index: 'application/vnd.oci.image.index.v1+json',
    config: 'application/vnd.oci.image.config.v1+json',
    layer: {
      gzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
      zstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
      none: 'application/vnd.oci.image.layer.v1.tar',
    },
  },
  docker: {
    manifest: 'application/vnd.docker.distribution.manifest.v2+json',
    index: 'application/vnd.docker.distribution.manifest.list.v2+json',
    config: 'application/vnd.docker.container.image.v1+json',
    layer: {
      gzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
      // Not in the Docker spec; containerd defines it (images/mediatypes.go) and the registry stores it.
      zstd: 'application/vnd.docker.image.rootfs.diff.tar.zstd',
      none: 'application/vnd.docker.image.rootfs.diff.tar',
    },
  },
} as const;

/** Fixed so that the same spec always gives the same config digest. */
const CREATED = '2020-01-01T00:00:00Z';

export function sha256(bytes: Uint8Array | string): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

export function hostPlatform(): ImagePlatform {
  const architecture = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ppc64: 'ppc64le', s390x: 's390x' }[
    process.arch as string
  ];
  return { os: 'linux', architecture: architecture ?? process.arch };
}

function blobPath(dir: string, digest: string): string {
  return join(dir, 'blobs', 'sha256', digest.slice('sha256:'.length));
}

/** Passes bytes through while hashing and counting them. */
function measure(hash: ReturnType<typeof createHash>, counter: { bytes: number }) {
  return async function* (source: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
    for await (const chunk of source) {
      hash.update(chunk);
      counter.bytes += chunk.length;
      yield chunk;
    }
  };
}

function compressor(spec: LayerSpec): Transform {
  switch (spec.compression) {
    case 'gzip':
      return createGzip({ level: spec.gzipLevel ?? 6 });
    case 'zstd':
      return new CompressStream({ compressionLevel: spec.zstdLevel ?? 3 });
    case 'none':
      return new PassThrough();
  }
}

let tmpSeq = 0;

/** Writes a blob to a temp name in `dir`, then renames it to its digest, so a crash leaves no bad blob. */
async function writeLayer(dir: string, spec: LayerSpec, family: MediaTypeFamily): Promise<BuiltLayer> {
  const tmp = join(dir, 'blobs', 'sha256', `.tmp-${process.pid}-${tmpSeq++}`);
  const tarHash = createHash('sha256');
  const blobHash = createHash('sha256');
  const tarCount = { bytes: 0 };
  const blobCount = { bytes: 0 };
  try {
    await pipeline(
      tarOf(spec.entries),
      measure(tarHash, tarCount),
      compressor(spec),
      measure(blobHash, blobCount),
      createWriteStream(tmp),
    );
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  const digest = `sha256:${blobHash.digest('hex')}`;
  const path = blobPath(dir, digest);
  await rename(tmp, path);
  return {
    digest,
    size: blobCount.bytes,
    diffId: `sha256:${tarHash.digest('hex')}`,
    mediaType: MEDIA_TYPES[family].layer[spec.compression],
    path,
    tarSize: tarCount.bytes,
    ...(spec.annotations ? { annotations: spec.annotations } : {}),
  };
}

async function adoptLayer(dir: string, spec: PrebuiltLayerSpec): Promise<BuiltLayer> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of createReadStream(spec.blobPath) as AsyncIterable<Buffer>) {
    hash.update(chunk);
    size += chunk.length;
  }
  const digest = `sha256:${hash.digest('hex')}`;
  const path = blobPath(dir, digest);
  await copyOrLink(spec.blobPath, path);
  return {
    digest,
    size,
    diffId: spec.diffId,
    mediaType: spec.mediaType,
    path,
    ...(spec.annotations ? { annotations: spec.annotations } : {}),
  };
}

/** Hardlinks when possible (same filesystem), so a multi-GiB blob is never copied. */
export async function copyOrLink(from: string, to: string): Promise<void> {
  if (from === to) return;
  await rm(to, { force: true });
  try {
    await link(from, to);
  } catch {
    await pipeline(createReadStream(from), createWriteStream(to));
  }
}

async function writeDocument(dir: string, mediaType: string, doc: unknown): Promise<BuiltDocument> {
  const bytes = Buffer.from(JSON.stringify(doc));
  const digest = sha256(bytes);
  await writeFile(blobPath(dir, digest), bytes);
  return { digest, bytes, mediaType };
}

function descriptor(d: { mediaType: string; digest: string; size: number; annotations?: object }) {
  return { mediaType: d.mediaType, digest: d.digest, size: d.size, ...(d.annotations ? { annotations: d.annotations } : {}) };
}

export async function buildImage(dir: string, spec: ImageSpec): Promise<BuiltImage> {
  const family = spec.mediaTypes ?? 'oci';
  const platform = spec.platform ?? hostPlatform();
  await mkdir(join(dir, 'blobs', 'sha256'), { recursive: true });
  const layers: BuiltLayer[] = [];
  for (const layer of spec.layers) {
    layers.push('blobPath' in layer ? await adoptLayer(dir, layer) : await writeLayer(dir, layer, family));
  }
  const config = await writeDocument(dir, MEDIA_TYPES[family].config, {
    created: CREATED,
    architecture: platform.architecture,
    os: platform.os,
    ...(platform.variant ? { variant: platform.variant } : {}),
    config: spec.config ?? {},
    rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
    history: layers.map((_, i) => ({ created: CREATED, created_by: `tocfs test layer ${i}` })),
  });
  const manifest = await writeDocument(dir, MEDIA_TYPES[family].manifest, {
    schemaVersion: 2,
    mediaType: MEDIA_TYPES[family].manifest,
    config: descriptor({ ...config, size: config.bytes.length }),
    layers: layers.map(descriptor),
    ...(spec.annotations ? { annotations: spec.annotations } : {}),
  });
  return { manifest, config, layers, platform, dir };
}

/**
 * An OCI index or Docker manifest list over already built images (push it with `pushIndex`). The
 * family follows the first image's manifest unless given.
 */
export function buildIndex(
  images: readonly { image: BuiltImage; platform?: ImagePlatform }[],
  opts: { mediaTypes?: MediaTypeFamily; annotations?: Readonly<Record<string, string>> } = {},
): BuiltIndex {
  const family =
    opts.mediaTypes ?? (images[0]?.image.manifest.mediaType === MEDIA_TYPES.docker.manifest ? 'docker' : 'oci');
  const mediaType = MEDIA_TYPES[family].index;
  const bytes = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType,
      manifests: images.map(({ image, platform }) => ({
        ...descriptor({ ...image.manifest, size: image.manifest.bytes.length }),
        platform: platform ?? image.platform,
      })),
      ...(opts.annotations ? { annotations: opts.annotations } : {}),
    }),
  );
  return { digest: sha256(bytes), bytes, mediaType, images: images.map((i) => i.image) };
}
