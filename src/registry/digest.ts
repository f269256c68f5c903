/**
 * Content digests (`algorithm:hex`), as the OCI image spec defines them, limited to the algorithms tocfs can
 * verify. Everything tocfs serves is checked against a digest, so an algorithm we cannot compute is refused
 * rather than trusted.
 */
import { createHash, type Hash } from 'node:crypto';
import { DigestMismatchError, FormatError } from '../errors.js';

export type DigestAlgorithm = 'sha256' | 'sha512';

/** Hex length of each supported algorithm. */
const HEX_LENGTH: Readonly<Record<DigestAlgorithm, number>> = { sha256: 64, sha512: 128 };

// The spec requires lower-case hex for both registered algorithms; accepting upper case would give one
// blob two spellings, and the digest is used verbatim as a cache key and in URLs.
const LOWER_HEX = /^[0-9a-f]+$/;

export interface ParsedDigest {
  readonly algorithm: DigestAlgorithm;
  readonly hex: string;
}

function isAlgorithm(s: string): s is DigestAlgorithm {
  return s === 'sha256' || s === 'sha512';
}

/**
 * Why `s` is not a digest tocfs accepts, or undefined when it is. Shared by the reference parser, which
 * reports through its own error class. The reasons quote the digest: digests are public, never secrets.
 */
export function digestProblem(s: string): string | undefined {
  const colon = s.indexOf(':');
  if (colon < 0) return 'digest must be algorithm:hex';
  const algorithm = s.slice(0, colon);
  const hex = s.slice(colon + 1);
  if (algorithm === '') return 'digest has an empty algorithm';
  if (!isAlgorithm(algorithm)) return `unsupported digest algorithm ${JSON.stringify(algorithm)} (sha256 or sha512)`;
  if (hex === '') return 'digest has an empty hex part';
  if (!LOWER_HEX.test(hex)) return `${algorithm} digest must be lower-case hex`;
  const want = HEX_LENGTH[algorithm];
  if (hex.length !== want) return `${algorithm} digest must have ${want} hex digits, got ${hex.length}`;
  return undefined;
}

/** Splits and validates a digest; FormatError when malformed or of an unsupported algorithm. */
export function parseDigest(s: string): ParsedDigest {
  const problem = digestProblem(s);
  if (problem !== undefined) throw new FormatError(`invalid digest ${JSON.stringify(s)}: ${problem}`);
  const colon = s.indexOf(':');
  return { algorithm: s.slice(0, colon) as DigestAlgorithm, hex: s.slice(colon + 1) };
}

export function isDigest(s: unknown): s is string {
  return typeof s === 'string' && digestProblem(s) === undefined;
}

/** The digest of a whole buffer, e.g. a manifest's exact bytes. */
export function digestOf(bytes: Uint8Array, algorithm: DigestAlgorithm = 'sha256'): string {
  return `${algorithm}:${createHash(algorithm).update(bytes).digest('hex')}`;
}

/** A running check of streamed bytes against the digest they claim. */
export interface DigestVerifier {
  /** Feeds the next chunk; throws once `digest()` or `verify()` has finished the hash. */
  update(chunk: Uint8Array): void;
  /** Finishes the hash and throws DigestMismatchError naming `what` unless it equals the expected digest. */
  verify(what: string): void;
  /** The digest of the bytes fed so far, in the expected digest's algorithm; finishes the hash. */
  digest(): string;
  /** Bytes fed so far. */
  readonly bytes: number;
}

/** Starts a streaming check; FormatError at once if `expected` is malformed, not at the end of the stream. */
export function createDigestVerifier(expected: string): DigestVerifier {
  const { algorithm } = parseDigest(expected);
  const hash: Hash = createHash(algorithm);
  let bytes = 0;
  let actual: string | undefined;
  const finish = (): string => {
    actual ??= `${algorithm}:${hash.digest('hex')}`;
    return actual;
  };
  return {
    update(chunk: Uint8Array): void {
      if (actual !== undefined) throw new Error('digest verifier: update after the digest was taken');
      hash.update(chunk);
      bytes += chunk.length;
    },
    verify(what: string): void {
      const got = finish();
      if (got !== expected) throw new DigestMismatchError(what, expected, got);
    },
    digest: finish,
    get bytes(): number {
      return bytes;
    },
  };
}
