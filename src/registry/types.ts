/** Shared shapes of the registry layer. Wire formats: OCI image-spec v1.1 and Docker distribution schema2. */

/** A parsed, validated image reference. `registry` is the host as the user names it (`docker.io` for Docker Hub). */
export interface ImageReference {
  /** `host[:port]`, lower-case host; Docker Hub is always `docker.io`. */
  readonly registry: string;
  /** Repository path, e.g. `library/python`; Docker Hub single names gain `library/`. */
  readonly repository: string;
  /** Tag, when given; `latest` when neither tag nor digest is given. */
  readonly tag?: string;
  /** `sha256:<64 hex>` when pinned by digest. */
  readonly digest?: string;
}

export interface Platform {
  readonly os: string;
  readonly architecture: string;
  readonly variant?: string;
  readonly 'os.version'?: string;
}

/** An OCI content descriptor (also used for Docker schema2, whose fields are the same). */
export interface Descriptor {
  readonly mediaType: string;
  readonly digest: string;
  readonly size: number;
  readonly urls?: readonly string[];
  readonly annotations?: Readonly<Record<string, string>>;
  readonly platform?: Platform;
  readonly artifactType?: string;
}

export interface ImageManifest {
  readonly kind: 'manifest';
  readonly mediaType: string;
  readonly schemaVersion: 2;
  readonly config: Descriptor;
  readonly layers: readonly Descriptor[];
  readonly annotations?: Readonly<Record<string, string>>;
  readonly subject?: Descriptor;
  readonly artifactType?: string;
}

export interface ImageIndex {
  readonly kind: 'index';
  readonly mediaType: string;
  readonly schemaVersion: 2;
  readonly manifests: readonly Descriptor[];
  readonly annotations?: Readonly<Record<string, string>>;
}

/** A manifest document as fetched: the parsed form, its exact bytes, and the digest of those bytes. */
export interface FetchedManifest<T extends ImageManifest | ImageIndex = ImageManifest | ImageIndex> {
  readonly document: T;
  readonly bytes: Uint8Array;
  readonly digest: string;
  readonly mediaType: string;
}

/** Credentials for one registry, as found in a docker config or given by the user. Never logged. */
export type Credentials =
  | { readonly kind: 'basic'; readonly username: string; readonly password: string }
  | { readonly kind: 'identity-token'; readonly token: string };

/** An inclusive-exclusive byte range [start, end) of a blob. */
export interface ByteRange {
  readonly start: number;
  readonly end: number;
}

/** The repository part of a reference: what blob and upload requests need. An ImageReference is one. */
export type RepositoryRef = Pick<ImageReference, 'registry' | 'repository'>;

/**
 * The parts of an image config (OCI image-spec `config.md`, Docker's `container.image.v1`) tocfs reads;
 * other fields are kept as they are.
 */
export interface ImageConfig {
  readonly architecture?: string;
  readonly os?: string;
  readonly variant?: string;
  readonly config?: {
    readonly User?: string;
    readonly Env?: readonly string[];
    readonly Entrypoint?: readonly string[] | null;
    readonly Cmd?: readonly string[] | null;
    readonly WorkingDir?: string;
    readonly Labels?: Readonly<Record<string, string>> | null;
    readonly [key: string]: unknown;
  };
  readonly rootfs?: { readonly type: string; readonly diff_ids: readonly string[] };
  readonly [key: string]: unknown;
}

/** A config blob as fetched: the parsed document, its exact bytes, and its digest. */
export interface FetchedConfig {
  readonly document: ImageConfig;
  readonly bytes: Uint8Array;
  readonly digest: string;
}
