// Every layer kind through the shared layer suite (test/support/layer-suite.ts): TOC layers (eStargz gzip,
// zstd:chunked), whole layers (gzip, zstd, plain tar), plain gzip read through a SOCI zTOC, and CVMFS layers (a DUCC `layerfs` in the tar's
// form and in overlayfs's, and an unconfirmed layerfs backing an eStargz TOC), each made from the same DSL
// entries and served by one layer service over an in-memory registry.
import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import t, { type Test } from 'tap';
import { compress } from 'zstd-napi';
import { CvmfsSource } from '../../src/layers/cvmfs/cvmfs-source.js';
import type { ImageContext, Layer } from '../../src/layers/layer.js';
import { ZtocBuilder } from '../../src/layers/zran/ztoc-builder.js';
import { writeSociIndex } from '../../src/formats/soci/index-manifest.js';
import { TocfsError } from '../../src/errors.js';
import { createLayerService, type LayerService } from '../../src/layers/layer-service.js';
import { TOC_DIGEST_ANNOTATION } from '../../src/layers/toc/open-layer.js';
import type { RegistryClient } from '../../src/registry/client.js';
import type { Descriptor, FetchedManifest, RepositoryRef } from '../../src/registry/types.js';
import { buildDuccRepo, type DuccLayerStyle } from '../support/ducc-layout.js';
import { buildEstargz } from '../support/estargz-build.js';
import { layerSuite, type LayerKind, type MakeOptions } from '../support/layer-suite.js';
import { tarBytes, type TarEntry } from '../support/tar-dsl.js';
import { tempDir } from '../support/tmp.js';
import { buildZstd } from '../support/zstd-build.js';

const REPO: RepositoryRef = { registry: 'registry.test', repository: 'suite/layers' };
const GZIP = 'application/vnd.oci.image.layer.v1.tar+gzip';
const ZSTD = 'application/vnd.oci.image.layer.v1.tar+zstd';
const TAR = 'application/vnd.oci.image.layer.v1.tar';
const sha256 = (b: Uint8Array): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** A registry in memory: blobs by digest, read by range or streamed whole. */
class MemoryRegistry {
  readonly blobs = new Map<string, Buffer>();
  /** SOCI indexes by the manifest they refer to, and manifests by digest. */
  readonly referrers = new Map<string, Descriptor[]>();
  readonly manifests = new Map<string, Buffer>();
  readonly client: Pick<RegistryClient, 'readRange' | 'streamBlob' | 'referrers' | 'getManifest'> = {
    referrers: async (_repo, subject) => this.referrers.get(subject) ?? [],
    getManifest: async (_repo, digest) => {
      const bytes = this.manifests.get(digest);
      if (bytes === undefined) throw new TocfsError('NOT_FOUND', `no manifest ${digest}`);
      return { document: JSON.parse(bytes.toString()), bytes, digest, mediaType: 'application/vnd.oci.image.manifest.v1+json' } as FetchedManifest;
    },
    readRange: async (_repo, blob, range) => this.#blob(blob).subarray(range.start, range.end),
    streamBlob: (_repo, blob) => {
      const bytes = this.#blob(blob);
      return (async function* () {
        for (let at = 0; at < bytes.length; at += 4096) yield bytes.subarray(at, at + 4096);
      })();
    },
  };

  add(blob: Buffer, mediaType: string, annotations?: Record<string, string>): Descriptor {
    const digest = sha256(blob);
    this.blobs.set(digest, blob);
    return { mediaType, digest, size: blob.length, ...(annotations ? { annotations } : {}) };
  }

  #blob(blob: Descriptor | string): Buffer {
    const digest = typeof blob === 'string' ? blob : blob.digest;
    const bytes = this.blobs.get(digest);
    if (bytes === undefined) throw new Error(`no blob ${digest}`);
    return bytes;
  }
}

interface Harness {
  readonly registry: MemoryRegistry;
  readonly service: LayerService;
  /** The CVMFS repository root, when the service has one. */
  readonly cvmfsRoot?: string;
}

/** One registry and layer service per kind, closed when its test ends. */
async function harness(t: Test, cvmfs: boolean): Promise<Harness> {
  const registry = new MemoryRegistry();
  const cvmfsRoot = cvmfs ? tempDir(t, 'layer-suite-cvmfs') : undefined;
  const service = await createLayerService({
    client: registry.client,
    cacheDir: tempDir(t, 'layer-suite-cache'),
    cacheSize: 1 << 30,
    memoryCacheBytes: 64 << 20,
    prefetch: false,
    ...(cvmfsRoot ? { cvmfs: new CvmfsSource(cvmfsRoot) } : {}),
  });
  t.teardown(() => service.close());
  return { registry, service, ...(cvmfsRoot ? { cvmfsRoot } : {}) };
}

async function estargzLayer(h: Harness, entries: readonly TarEntry[], opts: MakeOptions): Promise<Descriptor> {
  const built = await buildEstargz(entries, { chunkSize: opts.chunkSize, gzipLevel: 1, ...opts.build });
  return h.registry.add(built.blob, GZIP, { [TOC_DIGEST_ANNOTATION]: built.tocDigest });
}

/** Puts the layer's `layerfs` on the CVMFS root, unpacked by GNU tar as DUCC does, in `style`. */
async function publish(h: Harness, descriptor: Descriptor, style: DuccLayerStyle, confirmed: boolean): Promise<void> {
  const path = join(h.cvmfsRoot!, `${descriptor.digest.slice(7)}.blob`);
  await writeFile(path, h.registry.blobs.get(descriptor.digest)!);
  await buildDuccRepo(h.cvmfsRoot!, {
    image: { manifest: { bytes: Buffer.from('{}') }, config: { digest: descriptor.digest }, layers: [{ digest: descriptor.digest, path }] },
    host: REPO.registry,
    repository: REPO.repository,
    tag: 'suite',
    layers: [style],
    origins: confirmed,
    manifestRecord: false,
  });
}

/** A kind: how the registry (and CVMFS root) get a layer of DSL entries; the service then opens it. */
interface KindSpec extends Omit<LayerKind, 'make'> {
  readonly cvmfs?: true;
  readonly chunkSizes: readonly number[];
  /** Infinity for kinds without chunks: the grid is cut at the chunk size, but nothing is built per chunk. */
  readonly maxChunksPerFile?: number;
  descriptor(h: Harness, entries: readonly TarEntry[], opts: MakeOptions): Promise<Descriptor>;
  /** The image the layer is opened for, when the kind needs one (a SOCI index refers to an image). */
  image?(h: Harness, descriptor: Descriptor): ImageContext;
}

/** A plain gzip layer with a zTOC made by `ZtocBuilder`, listed in a SOCI index that refers to a made-up image. */
async function sociLayer(h: Harness, entries: readonly TarEntry[], opts: MakeOptions): Promise<Descriptor> {
  const blob = gzipSync(tarBytes(entries), { level: 1 });
  const descriptor = h.registry.add(blob, GZIP);
  const builder = new ZtocBuilder({ spanSize: opts.chunkSize, buildToolIdentifier: 'layer-suite' });
  for (let at = 0; at < blob.length; at += 1000) await builder.push(blob.subarray(at, at + 1000));
  const ztoc = h.registry.add(Buffer.from(builder.end().bytes), 'application/octet-stream');
  const subject = { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: sociImage(descriptor), size: 2 };
  const index = writeSociIndex({ version: 'v1', subject, ztocs: [{ ztoc, layerDigest: descriptor.digest, layerMediaType: GZIP, disableXattrs: false }], buildToolIdentifier: 'layer-suite' });
  h.registry.manifests.set(index.digest, Buffer.from(index.bytes));
  h.registry.referrers.set(subject.digest, [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: index.digest, size: index.bytes.length }]);
  return descriptor;
}

/** The made-up image a SOCI layer of the suite belongs to. */
const sociImage = (layer: Descriptor): string => sha256(Buffer.from(`image of ${layer.digest}`));

const TOC_SECONDS = 'a TOC records modtime as RFC 3339 to the second (stargz formatModtime); writers round';

/** What a `layerfs` (a layer unpacked into a directory, DESIGN.md §3.5) cannot hold of its tar. */
const LAYERFS = {
  'implied-parents': 'unpacking makes every parent the tar implies a real directory, which a listing cannot tell from a directory entry',
  'dir-mtime':
    "a directory's mtime is whatever the unpack left: implied parents and the layerfs root get the time of the unpack, and GNU tar makes hardlinks after restoring their directory's time",
  'symlink-xattrs': 'Linux refuses user.* xattrs on symlinks (xattr(7)), so no unpack stores them; and CvmfsDirIndex reads xattrs of files and directories only',
  'overlay-xattrs':
    'trusted.overlay.* on a layerfs is overlayfs\'s whiteout encoding (DUCC\'s overlay form): CvmfsDirIndex hides it, and reads trusted.overlay.opaque=y as the directory\'s .wh..wh..opq',
} as const satisfies LayerKind['cannotCarry'];
/** overlayfs's form also turns each `.wh.NAME` into a char device 0/0 and `.wh..wh..opq` into an xattr. */
const OVERLAY_LAYERFS = {
  ...LAYERFS,
  'whiteout-mtime': "a whiteout is a device node made when the layer was converted, an opaque marker an xattr of its directory: the marker shows that node's (or directory's) mtime",
} as const satisfies LayerKind['cannotCarry'];

const KINDS: readonly KindSpec[] = [
  {
    name: 'eStargz gzip',
    figures: { format: 'estargz-gzip', tocSource: 'blob', source: 'registry' },
    cannotCarry: { 'subsecond-mtime': TOC_SECONDS },
    chunkSizes: [5, 1 << 20],
    descriptor: estargzLayer,
  },
  {
    name: 'zstd:chunked',
    figures: { format: 'zstd-chunked', tocSource: 'blob', source: 'registry' },
    cannotCarry: { 'subsecond-mtime': TOC_SECONDS },
    chunkSizes: [7, 1 << 20],
    async descriptor(h, entries, opts) {
      const built = buildZstd(entries, { chunkSize: opts.chunkSize, level: 1, footer: 'current', zeros: true });
      return h.registry.add(built.blob, ZSTD, built.annotations);
    },
  },
  ...(
    [
      ['gzip', GZIP, (b: Buffer) => gzipSync(b, { level: 1 })],
      ['zstd', ZSTD, (b: Buffer) => compress(b, { compressionLevel: 1 })],
      ['plain tar', TAR, (b: Buffer) => b],
    ] as const
  ).map(
    ([name, mediaType, pack]): KindSpec => ({
      name: `whole layer, ${name}`,
      figures: { format: 'tar', tocSource: 'blob', source: 'registry' },
      chunkSizes: [64],
      maxChunksPerFile: Infinity,
      descriptor: async (h, entries) => h.registry.add(pack(tarBytes(entries)), mediaType),
    }),
  ),
  ...(['tar', 'overlay'] as const).map(
    (style): KindSpec => ({
      name: `CVMFS layerfs, ${style} form`,
      figures: { format: 'cvmfs', tocSource: 'cvmfs', source: 'cvmfs' },
      cannotCarry: style === 'tar' ? LAYERFS : OVERLAY_LAYERFS,
      maxChunksPerFile: Infinity,
      cvmfs: true,
      chunkSizes: [64],
      async descriptor(h, entries) {
        const descriptor = h.registry.add(gzipSync(tarBytes(entries), { level: 1 }), GZIP);
        await publish(h, descriptor, style, true);
        return descriptor;
      },
    }),
  ),
  {
    name: 'plain gzip through a SOCI zTOC',
    figures: { format: 'soci', tocSource: 'blob', source: 'registry' },
    // Spans start at deflate block boundaries: tiny spans give many checkpoints where blocks allow.
    chunkSizes: [1024, 1 << 20],
    maxChunksPerFile: Infinity,
    descriptor: sociLayer,
    image: (_h, descriptor) => ({ manifestDigest: sociImage(descriptor), layers: [descriptor] }),
  },
  {
    name: 'CVMFS layerfs backing an eStargz TOC',
    figures: { format: 'estargz-gzip', tocSource: 'blob', source: 'cvmfs' },
    cannotCarry: { 'subsecond-mtime': TOC_SECONDS },
    cvmfs: true,
    chunkSizes: [5, 1 << 20],
    async descriptor(h, entries, opts) {
      const descriptor = await estargzLayer(h, entries, opts);
      await publish(h, descriptor, 'tar', false);
      return descriptor;
    },
  },
];

for (const spec of KINDS) {
  await t.test(spec.name, async (t) => {
    const h = await harness(t, spec.cvmfs === true);
    const kind: LayerKind = {
      ...spec,
      make: async (_t, entries, opts) => {
        const descriptor = await spec.descriptor(h, entries, opts);
        return h.service.open(REPO, descriptor, spec.image ? { image: spec.image(h, descriptor) } : {});
      },
    };
    await layerSuite(t, kind, { chunkSizes: spec.chunkSizes, ...(spec.maxChunksPerFile ? { maxChunksPerFile: spec.maxChunksPerFile } : {}) });
  });
}
