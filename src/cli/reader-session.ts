import { openReader, type Reader } from '../daemon/daemon.js';
import { hostPlatform, parsePlatform } from '../registry/platform.js';
import { cacheOptionSpec, cacheSettings, type CacheOptionValues } from './cache-options.js';
import { registryOptionSpec, registrySettings, type RegistryOptionValues } from './registry-options.js';

/** Option table of commands that read images without mounting: registry options plus the caches. */
export const readerOptionSpec = { ...registryOptionSpec, ...cacheOptionSpec } as const;

// One CLI command reads little; a bounded memory cache keeps a `cat` of a large file from holding it all.
const CLI_MEMORY_CACHE_BYTES = 64 * 2 ** 20;

/**
 * The daemon's graph without a mount (src/daemon/daemon.ts), so `ls` and `cat` read every layer kind as the
 * mount does. A command exits as soon as it has printed: no background prefetch that would only be cancelled.
 */
export async function openReaderSession(values: RegistryOptionValues & CacheOptionValues, log: (line: string) => void): Promise<Reader> {
  const cache = cacheSettings(values);
  return openReader({
    ...(await registrySettings(values)),
    cacheDir: cache.cacheDir,
    cacheSize: cache.cacheSize,
    memoryCacheBytes: CLI_MEMORY_CACHE_BYTES,
    platform: values.platform ? parsePlatform(values.platform) : hostPlatform(),
    prefetch: false,
    log,
  });
}
