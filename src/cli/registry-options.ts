import { parsePlatform, hostPlatform } from '../registry/platform.js';
import { loadDockerConfig } from '../registry/credentials.js';
import { RegistryClient } from '../registry/client.js';
import type { Platform } from '../registry/types.js';

/** The `parseArgs` option table shared by every command that talks to a registry. */
export const registryOptionSpec = {
  platform: { type: 'string' },
  'insecure-registry': { type: 'string', multiple: true },
} as const;

export interface RegistryOptionValues {
  platform?: string | undefined;
  'insecure-registry'?: string[] | undefined;
}

export interface RegistrySession {
  readonly client: RegistryClient;
  readonly platform: Platform;
  close(): Promise<void>;
}

export async function openRegistrySession(values: RegistryOptionValues): Promise<RegistrySession> {
  const platform = values.platform ? parsePlatform(values.platform) : hostPlatform();
  const credentials = await loadDockerConfig();
  const client = new RegistryClient({
    credentials,
    insecureRegistries: values['insecure-registry'] ?? [],
    platform,
  });
  return { client, platform, close: () => client.close() };
}
