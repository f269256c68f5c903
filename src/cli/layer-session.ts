import { createLayerService, type LayerService } from '../layers/layer-service.js';
import { cacheSettings, cacheOptionSpec, type CacheOptionValues } from './cache-options.js';
import { openRegistrySession, registryOptionSpec, type RegistryOptionValues, type RegistrySession } from './registry-options.js';

/** Option table of commands that read layers lazily: registry options plus the caches. */
export const layerOptionSpec = { ...registryOptionSpec, ...cacheOptionSpec } as const;

// One CLI command reads little; a bounded memory cache keeps a `cat` of a large file from holding it all.
const CLI_MEMORY_CACHE_BYTES = 64 * 2 ** 20;

export interface LayerSession extends RegistrySession {
  /** The layer service, opened on first use: listing layers alone never scans the disk cache. */
  layers(): Promise<LayerService>;
}

export async function openLayerSession(values: RegistryOptionValues & CacheOptionValues): Promise<LayerSession> {
  const cache = cacheSettings(values);
  const registry = await openRegistrySession(values);
  let service: Promise<LayerService> | undefined;
  return {
    ...registry,
    layers: () =>
      // A CLI command exits as soon as it has printed: no background prefetch that would only be cancelled.
      (service ??= createLayerService({
        client: registry.client,
        cacheDir: cache.cacheDir,
        cacheSize: cache.cacheSize,
        memoryCacheBytes: CLI_MEMORY_CACHE_BYTES,
        prefetch: false,
      })),
    close: async () => {
      try {
        if (service) await (await service.catch(() => undefined))?.close();
      } finally {
        await registry.close();
      }
    },
  };
}
