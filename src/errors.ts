/**
 * One error base for all of tocfs. The code classifies an error for the next decision a caller makes:
 * - FORMAT: the bytes or text are not what the spec says; never retried.
 * - BAD_DATA: a digest or length check failed; retry uncached once, then fail over.
 * - SOURCE_UNAVAILABLE: the source (registry, CVMFS) could not be reached or answered 5xx; try the next.
 * - NOT_FOUND / UNAUTHORIZED / DENIED: the registry's definite answers.
 * - INVALID_REFERENCE / INVALID_OPTION: the user's input is wrong.
 * - NO_PLATFORM: an index lists no manifest for the wanted platform.
 * - PROTOCOL: the peer broke the HTTP/registry protocol (wrong status, Content-Range that disagrees).
 * - IS_DIRECTORY: a file's bytes were asked of a directory (read(2) on one answers EISDIR).
 * - TIMEOUT, ABORTED: as named.
 * src/fuse/errno.ts is the only place that maps these to errno values.
 */
export type TocfsErrorCode =
  | 'FORMAT'
  | 'BAD_DATA'
  | 'SOURCE_UNAVAILABLE'
  | 'NOT_FOUND'
  | 'UNAUTHORIZED'
  | 'DENIED'
  | 'INVALID_REFERENCE'
  | 'INVALID_OPTION'
  | 'NO_PLATFORM'
  | 'PROTOCOL'
  | 'IS_DIRECTORY'
  | 'TIMEOUT'
  | 'ABORTED';

export class TocfsError extends Error {
  override name = 'TocfsError';
  constructor(
    readonly code: TocfsErrorCode,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** Malformed bytes or text (reference, manifest, TOC, tar header). Never worth a retry. */
export class FormatError extends TocfsError {
  override name = 'FormatError';
  constructor(message: string, options?: ErrorOptions) {
    super('FORMAT', message, options);
  }
}

/** Bytes asked of a directory: the caller's mistake, not the source's, so never retried or failed over. */
export class IsDirectoryError extends TocfsError {
  override name = 'IsDirectoryError';
  constructor(readonly path: string) {
    super('IS_DIRECTORY', `${path} is a directory`);
  }
}

export class InvalidReferenceError extends TocfsError {
  override name = 'InvalidReferenceError';
  constructor(
    readonly reference: string,
    reason: string,
  ) {
    super('INVALID_REFERENCE', `invalid image reference ${JSON.stringify(reference)}: ${reason}`);
  }
}

export class InvalidOptionError extends TocfsError {
  override name = 'InvalidOptionError';
  constructor(
    readonly option: string,
    reason: string,
  ) {
    super('INVALID_OPTION', `invalid option ${option}: ${reason}`);
  }
}

/** Bytes that do not hash to what they claim. `what` names the object (blob, manifest, chunk). */
export class DigestMismatchError extends TocfsError {
  override name = 'DigestMismatchError';
  constructor(
    readonly what: string,
    readonly expected: string,
    readonly actual: string,
  ) {
    super('BAD_DATA', `${what}: digest mismatch: expected ${expected}, got ${actual}`);
  }
}

export function isTocfsError(err: unknown): err is TocfsError {
  return err instanceof TocfsError;
}
