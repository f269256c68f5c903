import { homedir } from 'node:os';
import { join } from 'node:path';
import { InvalidOptionError } from '../errors.js';

/** The `parseArgs` option table of the chunk and TOC caches. */
export const cacheOptionSpec = {
  'cache-dir': { type: 'string' },
  'cache-size': { type: 'string' },
} as const;

export interface CacheOptionValues {
  'cache-dir'?: string | undefined;
  'cache-size'?: string | undefined;
}

export interface CacheSettings {
  readonly cacheDir: string;
  readonly cacheSize: number;
}

export const DEFAULT_CACHE_SIZE = 10 * 2 ** 30;

/** $TOCFS_CACHE_DIR, else $XDG_CACHE_HOME/tocfs, else ~/.cache/tocfs: shared by ls, cat and mount. */
export function defaultCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.TOCFS_CACHE_DIR) return env.TOCFS_CACHE_DIR;
  return join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'tocfs');
}

const UNITS: Record<string, number> = { '': 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40 };

/** Parses `1073741824`, `512M`, `10G`, `1.5GiB` (binary units; case-insensitive). */
export function parseByteSize(option: string, text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$/i.exec(text);
  if (!m) throw new InvalidOptionError(option, `${JSON.stringify(text)} is not a size (e.g. 512M, 10G)`);
  const bytes = Math.floor(Number(m[1]) * UNITS[m[2]!.toLowerCase()]!);
  if (!Number.isSafeInteger(bytes)) throw new InvalidOptionError(option, `${JSON.stringify(text)} is too large`);
  return bytes;
}

export function cacheSettings(values: CacheOptionValues): CacheSettings {
  return {
    cacheDir: values['cache-dir'] ?? defaultCacheDir(),
    cacheSize: values['cache-size'] === undefined ? DEFAULT_CACHE_SIZE : parseByteSize('--cache-size', values['cache-size']),
  };
}
