import { posix } from 'node:path';

/** A user's path inside an image (`/usr/bin`, `usr/bin/`, `./usr`) as TOC paths are written: `usr/bin`. */
export function normaliseImagePath(path: string): string {
  const normal = posix.normalize(`/${path}`);
  return normal === '/' ? '' : normal.replace(/^\/+/, '').replace(/\/+$/, '');
}

/** True when `path` is `prefix` or lies below it; the empty prefix holds everything. */
export function isUnder(path: string, prefix: string): boolean {
  return prefix === '' || path === prefix || path.startsWith(`${prefix}/`);
}
