/**
 * The one place that maps errors to errno values (STYLE.md item 8). FUSE callbacks answer negative errno
 * numbers (Linux values; fuse-native passes them through as the reply's error).
 */
import { isTocfsError, type TocfsErrorCode } from '../errors.js';

export const ENOENT = -2;
export const EIO = -5;
export const EBADF = -9;
export const EACCES = -13;
export const ENOTDIR = -20;
export const EISDIR = -21;
export const EINVAL = -22;
export const EROFS = -30;
export const ERANGE = -34;
export const ENOSYS = -38;
export const ENODATA = -61;
export const ETIMEDOUT = -110;
export const EINTR = -4;

/**
 * Lookups of images that do not exist, that the user may not pull, or that have no manifest for this
 * platform all answer ENOENT: to a program walking the tree they are simply absent, and the reason is
 * logged once. Everything that went wrong on the way to bytes that should exist is EIO.
 */
const byCode: Record<TocfsErrorCode, number> = {
  NOT_FOUND: ENOENT,
  INVALID_REFERENCE: ENOENT,
  NO_PLATFORM: ENOENT,
  UNAUTHORIZED: ENOENT,
  DENIED: ENOENT,
  INVALID_OPTION: EINVAL,
  FORMAT: EIO,
  BAD_DATA: EIO,
  PROTOCOL: EIO,
  IS_DIRECTORY: EISDIR,
  SOURCE_UNAVAILABLE: EIO,
  TIMEOUT: EIO,
  ABORTED: EINTR,
};

export interface ErrnoLog {
  (message: string): void;
}

/**
 * The errno for an error thrown by the Filesystem during `op` on `path`. NOT_FOUND is the everyday answer
 * to a lookup (shells probe many names) and IS_DIRECTORY a program's own mistake, neither a fault of the
 * mount, so neither is logged; every other error is logged in one line.
 */
export function toErrno(err: unknown, op: string, path: string, log: ErrnoLog): number {
  if (isTocfsError(err)) {
    const errno = byCode[err.code] ?? EIO;
    if (err.code !== 'NOT_FOUND' && err.code !== 'IS_DIRECTORY') log(`${op} ${path}: ${err.code}: ${err.message}${causeOf(err)}`);
    return errno;
  }
  // Not a TocfsError: a bug somewhere below. The caller still gets an answer; the stack goes to the log.
  log(`${op} ${path}: unexpected error: ${(err as Error)?.stack ?? String(err)}`);
  return EIO;
}

function causeOf(err: Error): string {
  const cause = err.cause;
  return cause instanceof Error && !err.message.includes(cause.message) ? ` (${cause.message})` : '';
}
