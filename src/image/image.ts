/**
 * An image: a reference resolved to a pinned manifest, its config, its layers opened in parallel, and the
 * merged tree over them (DESIGN.md §1.3).
 */
import { FormatError, TocfsError, isTocfsError } from '../errors.js';
import { notALayerReason } from '../registry/manifest.js';
import type { RegistryClient } from '../registry/client.js';
import { formatReference } from '../registry/reference.js';
import type { TocEntry } from '../formats/toc.js';
import type { ImageConfig, ImageReference, Platform, RepositoryRef } from '../registry/types.js';
import type { CatalogResolved, CvmfsCatalog } from './cvmfs-catalog.js';
import type { ImageContext, Layer, LayerOpener } from '../layers/layer.js';
import { createInodeCounter, type InodeCounter } from './layer-tree.js';
import { LibraryPrefetch } from './library-prefetch.js';
import { PythonPrefetch } from './python-prefetch.js';
import { MergedTree } from './merged-tree.js';
import { singularityEntries } from './singularity-files.js';
import { SingularityOverlay, type ImageTree } from './singularity-overlay.js';

export interface ImageDeps {
  readonly client: Pick<RegistryClient, 'resolve' | 'getConfig'>;
  /** Opens each layer of `repo`, of whichever kind serves it. */
  readonly layers: LayerOpener;
  readonly platform?: Platform;
  /** Shared by every tree of a filesystem so inode numbers are unique across it. */
  readonly inodes?: InodeCounter;
  /**
   * One line per resolved image and per layer (format, TOC source, size), and per entry of the image left
   * out of its tree (a hardlink whose target is missing below it).
   */
  readonly log?: (line: string) => void;
  /** A CVMFS repository of unpacked images (src/image/cvmfs-catalog.ts): manifests, configs, flat trees. */
  readonly cvmfs?: CvmfsCatalog;
}

export interface Image {
  /** The reference pinned: `digest` is always set. */
  readonly ref: ImageReference;
  /** The digest the reference resolved to (the index's when it named one). */
  readonly manifestDigest: string;
  readonly config: ImageConfig;
  /** Bottom to top, as in the manifest. */
  readonly layers: readonly Layer[];
  /** The merged layers, with the Singularity entries the image lacks laid over them. */
  readonly tree: ImageTree;
}

/**
 * Resolves `ref` (a tag is pinned to the digest it names now), then fetches the config and opens every
 * layer in parallel. A failure is a TocfsError naming the image (and the layer), with the original cause
 * and, when it had one, its code.
 */
export async function openImage(deps: ImageDeps, ref: ImageReference, signal?: AbortSignal): Promise<Image> {
  const shown = formatReference(ref);
  const { cvmfs } = deps;
  const resolved: CatalogResolved = await (cvmfs
    ? cvmfs.resolve(deps.client, ref, deps.platform, signal)
    : deps.client.resolve(ref, deps.platform, { ...(signal && { signal }) }).then((r) => ({ ...r, fromCvmfs: false }))
  ).catch(
    (err: unknown) => {
      throw wrap(err, `image ${shown}: resolving`);
    },
  );
  const repo: RepositoryRef = { registry: ref.registry, repository: ref.repository };
  const manifest = resolved.manifest.document;
  // Checked before anything is opened: a non-layer blob (a Helm chart, a ZIP archive) read as a layer would
  // serve a tree the image never had, without a word.
  manifest.layers.forEach((descriptor, i) => {
    const reason = notALayerReason(descriptor.mediaType);
    if (reason !== undefined) throw new FormatError(`image ${shown}: layer ${i} ${descriptor.digest}: ${reason}`);
  });
  const flat = await cvmfs?.flat(manifest, shown);
  // What a layer's SOCI index (DESIGN.md §3.3) refers to: this manifest, or its entry in the image index.
  const indexDescriptor = resolved.index?.document.manifests.find((d) => d.digest === resolved.manifest.digest);
  const image: ImageContext = { manifestDigest: resolved.manifest.digest, layers: manifest.layers, ...(indexDescriptor && { indexDescriptor }) };
  const [config, layers] = await Promise.all([
    (cvmfs
      ? cvmfs.config(deps.client, repo, resolved, signal)
      : deps.client.getConfig(repo, resolved.manifest, { ...(signal && { signal }) }).then((c) => c.document)
    ).catch((err: unknown) => {
      throw wrap(err, `image ${shown}: config ${manifest.config.digest}`);
    }),
    flat
      ? [flat]
      : Promise.all(
          manifest.layers.map((descriptor, i) =>
            deps.layers.open(repo, descriptor, { ...(signal && { signal }), image }).catch((err: unknown) => {
              throw wrap(err, `image ${shown}: layer ${i} ${descriptor.digest}`);
            }),
          ),
        ),
  ]);
  const inodes = deps.inodes ?? createInodeCounter();
  const pinned: ImageReference = { ...resolved.ref, digest: resolved.digest };
  if (deps.log) {
    deps.log(`image ${shown}: resolved to ${resolved.digest}, ${layers.length} layers`);
    layers.forEach((layer, i) => {
      const from = layer.tocSource === undefined ? '' : `, TOC from ${layer.tocSource}`;
      const size = flat ? '' : `, ${manifest.layers[i]!.size} bytes`;
      deps.log!(`image ${shown}: layer ${i} ${layer.digest}: ${layer.index.format}${from}${size}`);
    });
  }
  return {
    ref: pinned,
    manifestDigest: resolved.digest,
    config,
    layers,
    tree: withSingularity(merged(layers, inodes, deps.log && ((line: string) => deps.log!(`image ${shown}: ${line}`))), config, inodes),
  };
}

/**
 * The layers merged, with the libraries of every program opened in it prefetched (library-prefetch.ts), and
 * the modules every compiled Python module imports (python-prefetch.ts).
 */
function merged(layers: readonly Layer[], inodes: InodeCounter, log: ((line: string) => void) | undefined): MergedTree {
  const onOpened = (path: string, head: Uint8Array): void => {
    libraries.opened(path, head);
    python.opened(path, head);
  };
  const tree = new MergedTree(layers, { inodes, ...(log && { log }), onOpened });
  const libraries = new LibraryPrefetch(tree);
  const python = new PythonPrefetch(tree, {
    onExtension: (path) => void libraries.prefetch(path),
    // An optimized layer's prioritised files come in the order a workload read them; what a module there
    // imports came with it. Guessing would only add requests beside the ones it waits for.
    follows: (path) => !prioritized(tree.owner(path)),
  });
  return tree;
}

/** A file among the prioritised files of an optimized layer (all its chunks before the landmark). */
function prioritized(owner: { layer: Layer; entry: TocEntry } | undefined): boolean {
  const region = owner?.layer.index.prefetch;
  const last = owner?.entry.chunks.at(-1);
  return region !== undefined && last !== undefined && last.compressedEnd <= region.end;
}

/** The image's own tree plus `/.singularity.d` and the runtime's mount points where it lacks them. */
function withSingularity(tree: MergedTree, config: ImageConfig, inodes: InodeCounter): ImageTree {
  const created = typeof config['created'] === 'string' ? Date.parse(config['created']) : NaN;
  return new SingularityOverlay(tree, singularityEntries(config), {
    inodes,
    mtimeMs: Number.isFinite(created) ? created : 0,
  });
}

function wrap(err: unknown, context: string): TocfsError {
  const message = err instanceof Error ? err.message : String(err);
  return new TocfsError(isTocfsError(err) ? err.code : 'SOURCE_UNAVAILABLE', `${context}: ${message}`, { cause: err });
}
