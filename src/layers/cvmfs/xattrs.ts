/**
 * Extended attributes of a file on a local (or CVMFS) filesystem. Node has no xattr API; @napi-rs/xattr
 * is a small N-API binding with prebuilt binaries that calls listxattr/getxattr off the JS thread.
 * Used for regular files and directories only (it follows symlinks, and a symlink's own xattrs are not
 * something an image layer carries).
 */
import { getAttribute, listAttributes } from '@napi-rs/xattr';
import { TocfsError } from '../../errors.js';

/** Name -> raw value; {} when the filesystem keeps none (or does not support them). */
export async function readXattrs(path: string): Promise<Record<string, Uint8Array>> {
  let names: string[];
  try {
    names = await listAttributes(path);
  } catch (err) {
    const message = (err as Error).message;
    // ENOTSUP / EOPNOTSUPP: a filesystem without xattrs has none to show.
    if (/not supported/i.test(message)) return {};
    throw new TocfsError('SOURCE_UNAVAILABLE', `xattrs of ${path}: ${message}`, { cause: err });
  }
  const out: Record<string, Uint8Array> = {};
  for (const name of names) {
    const value = await getAttribute(path, name).catch((err: unknown) => {
      throw new TocfsError('SOURCE_UNAVAILABLE', `xattr ${name} of ${path}: ${(err as Error).message}`, { cause: err });
    });
    // Removed between list and get: not there.
    if (value !== null) out[name] = new Uint8Array(value);
  }
  return out;
}
