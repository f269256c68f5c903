import { readFile } from 'node:fs/promises';
import { InvalidOptionError } from '../errors.js';
import { parsePlatform, hostPlatform } from '../registry/platform.js';
import { loadDockerConfig } from '../registry/credentials.js';
import { RegistryClient } from '../registry/client.js';
import type { Platform } from '../registry/types.js';

/** The `parseArgs` option table shared by every command that talks to a registry. */
export const registryOptionSpec = {
  platform: { type: 'string' },
  'insecure-registry': { type: 'string', multiple: true },
  'registry-allow': { type: 'string', multiple: true },
  'ca-file': { type: 'string', multiple: true },
  'fetch-timeout': { type: 'string' },
} as const;

export interface RegistryOptionValues {
  platform?: string | undefined;
  'insecure-registry'?: string[] | undefined;
  'registry-allow'?: string[] | undefined;
  'ca-file'?: string[] | undefined;
  'fetch-timeout'?: string | undefined;
}

/** What the registry options set, as the daemon config and the registry client take it. */
export interface RegistrySettings {
  readonly insecureRegistries: readonly string[];
  readonly registryAllow: readonly string[];
  readonly ca?: readonly string[];
  readonly fetchTimeoutMs?: number;
}

/** Validates the registry options once (STYLE.md item 14) and reads the --ca-file bundles. */
export async function registrySettings(values: RegistryOptionValues): Promise<RegistrySettings> {
  const ca: string[] = [];
  for (const file of values['ca-file'] ?? []) {
    let pem: string;
    try {
      pem = await readFile(file, 'utf8');
    } catch (err) {
      throw new InvalidOptionError('--ca-file', `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    // A bundle may hold many certificates; the dispatcher takes one PEM block per entry.
    const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g);
    if (!blocks) throw new InvalidOptionError('--ca-file', `${file} holds no PEM certificate`);
    ca.push(...blocks);
  }
  const timeout = values['fetch-timeout'];
  let fetchTimeoutMs: number | undefined;
  if (timeout !== undefined) {
    const seconds = Number(timeout);
    if (!/^\s*\d+(\.\d+)?\s*$/.test(timeout) || !(seconds > 0) || seconds > 86400) {
      throw new InvalidOptionError('--fetch-timeout', `${JSON.stringify(timeout)} is not a number of seconds (e.g. 30)`);
    }
    fetchTimeoutMs = Math.round(seconds * 1000);
  }
  return {
    insecureRegistries: values['insecure-registry'] ?? [],
    registryAllow: values['registry-allow'] ?? [],
    ...(ca.length > 0 ? { ca } : {}),
    ...(fetchTimeoutMs !== undefined ? { fetchTimeoutMs } : {}),
  };
}

export interface RegistrySession {
  readonly client: RegistryClient;
  readonly platform: Platform;
  close(): Promise<void>;
}

export async function openRegistrySession(values: RegistryOptionValues): Promise<RegistrySession> {
  const platform = values.platform ? parsePlatform(values.platform) : hostPlatform();
  const settings = await registrySettings(values);
  const credentials = await loadDockerConfig();
  const client = new RegistryClient({
    credentials,
    insecureRegistries: settings.insecureRegistries,
    registryAllow: settings.registryAllow,
    ...(settings.ca ? { ca: settings.ca } : {}),
    ...(settings.fetchTimeoutMs !== undefined ? { retry: { budgetMs: settings.fetchTimeoutMs } } : {}),
    platform,
  });
  return { client, platform, close: () => client.close() };
}
