/**
 * Finding an image's SOCI index and its zTOCs (DESIGN.md §2 TOC source 4, §3.3):
 *
 * - v2: the image index's descriptor of the platform manifest carries `com.amazon.soci.index-digest`
 *   (no request to discover; one to fetch the index manifest);
 * - v1: the referrers of the image manifest (the referrers API, else the OCI 1.1 tag schema; one request
 *   once the registry's way is known), each a candidate whose `subject` must be this manifest.
 *
 * Several v1 indexes: the one whose zTOCs cover the most of the image's layer bytes. One discovery per
 * image manifest, started by the first layer that needs it, in parallel with the image's other reads. A
 * broken answer (garbage, a subject of another image, a zTOC for a layer of another size) is logged and
 * ignored: the layers it would have served are pulled whole, never read wrongly.
 */
import { isTocfsError } from '../../errors.js';
import { parseSociIndex, sociIndexDigestOf, SOCI_INDEX_V1, type SociIndex, type SociZtocRef } from '../../formats/soci/index-manifest.js';
import type { RegistryClient } from '../../registry/client.js';
import type { RepositoryRef } from '../../registry/types.js';
import type { ImageContext } from '../layer.js';

export type SociClient = Pick<RegistryClient, 'referrers' | 'getManifest'>;

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

export class SociIndexes {
  readonly #client: SociClient;
  readonly #log: (line: string) => void;
  readonly #found = new Map<string, Promise<ReadonlyMap<string, SociZtocRef>>>();

  constructor(client: SociClient, log: (line: string) => void) {
    this.#client = client;
    this.#log = log;
  }

  /** The zTOC of each layer the image's SOCI index covers, by layer digest; empty when it has none. */
  forImage(repo: RepositoryRef, image: ImageContext): Promise<ReadonlyMap<string, SociZtocRef>> {
    const key = `${repo.registry}/${repo.repository}@${image.manifestDigest}`;
    let found = this.#found.get(key);
    if (found === undefined) {
      found = this.#discover(repo, image).catch((err: unknown) => {
        // Not remembered: the next layer of the image (or the next mount) asks again.
        this.#found.delete(key);
        this.#log(`image ${key}: SOCI index lookup failed (${(err as Error).message}); its plain gzip layers are pulled whole`);
        return new Map();
      });
      this.#found.set(key, found);
    }
    return found;
  }

  async #discover(repo: RepositoryRef, image: ImageContext): Promise<ReadonlyMap<string, SociZtocRef>> {
    const v2 = sociIndexDigestOf(image.indexDescriptor?.annotations);
    const chosen = v2 !== undefined ? await this.#v2(repo, image, v2) : await this.#v1(repo, image);
    return new Map((chosen?.ztocs ?? []).map((z) => [z.layerDigest, z]));
  }

  async #v2(repo: RepositoryRef, image: ImageContext, digest: string): Promise<SociIndex | undefined> {
    const index = await this.#fetchIndex(repo, digest, image);
    if (index !== undefined && index.version !== 'v2') {
      this.#log(`image ${image.manifestDigest}: SOCI index ${digest} named by the image index is ${index.version}, not v2: ignored`);
      return undefined;
    }
    return index;
  }

  async #v1(repo: RepositoryRef, image: ImageContext): Promise<SociIndex | undefined> {
    const candidates = (await this.#client.referrers(repo, image.manifestDigest)).filter(
      (d) => (d.artifactType === undefined || d.artifactType === SOCI_INDEX_V1) && d.mediaType === OCI_MANIFEST,
    );
    const indexes = (await Promise.all(candidates.map((d) => this.#fetchIndex(repo, d.digest, image)))).filter(
      (x): x is SociIndex => x !== undefined && x.version === 'v1' && x.subject?.digest === image.manifestDigest,
    );
    const sizes = new Map(image.layers.map((l) => [l.digest, l.size]));
    const covered = (x: SociIndex): number => x.ztocs.reduce((n, z) => n + (sizes.get(z.layerDigest) ?? 0), 0);
    return indexes.sort((a, b) => covered(b) - covered(a))[0];
  }

  /** One index manifest, verified by digest and parsed; undefined (logged) when it is not a SOCI index. */
  async #fetchIndex(repo: RepositoryRef, digest: string, image: ImageContext): Promise<SociIndex | undefined> {
    let fetched;
    try {
      fetched = await this.#client.getManifest(repo, digest);
      return parseSociIndex(fetched.bytes);
    } catch (err) {
      if (!isTocfsError(err) || (err.code !== 'FORMAT' && err.code !== 'BAD_DATA' && err.code !== 'NOT_FOUND')) throw err;
      // Referrers of other kinds (signatures, SBOMs, tocfs profiles) are not SOCI indexes: said only for
      // one that claims to be.
      const claims = fetched !== undefined && /amazon\.soci/.test(new TextDecoder().decode(fetched.bytes.subarray(0, 4096)));
      if (claims || fetched === undefined) this.#log(`image ${image.manifestDigest}: SOCI index ${digest} ignored: ${err.message}`);
      return undefined;
    }
  }
}
