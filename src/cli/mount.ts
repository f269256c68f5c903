import { parseArgs, type ParseArgsConfig } from 'node:util';

type ParseArgsOptionsConfig = NonNullable<ParseArgsConfig['options']>;
import { createDaemon } from '../daemon/daemon.js';
import { unmountPath } from '../fuse/mount.js';
import { parsePlatform } from '../registry/platform.js';
import { cacheOptionSpec, cacheSettings } from './cache-options.js';
import { registryOptionSpec, registrySettings, type RegistryOptionValues } from './registry-options.js';
import { UsageError } from './usage.js';

const mountOptionSpec = {
  ...registryOptionSpec,
  ...cacheOptionSpec,
  // allow_other is the default; the flag stays for DESIGN.md §1.1 and scripts that pass it.
  'allow-other': { type: 'boolean' },
  'no-allow-other': { type: 'boolean' },
  'allow-suid': { type: 'boolean' },
  cvmfs: { type: 'string' },
  'no-cvmfs': { type: 'boolean' },
  config: { type: 'string' },
  debug: { type: 'boolean' },
} as const;

function parse<T extends ParseArgsOptionsConfig>(argv: string[], options: T) {
  try {
    return parseArgs({ args: argv, allowPositionals: true, options });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

function onlyMountpoint(positionals: string[]): string {
  const [mnt, ...extra] = positionals;
  if (mnt === undefined) throw new UsageError('missing mount point (MNT)');
  if (extra.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(extra[0])}`);
  return mnt;
}

/** `tocfs mount MNT`: mounts, serves in the foreground until SIGINT/SIGTERM or an unmount, then exits 0. */
export async function runMount(argv: string[], _out: NodeJS.WritableStream): Promise<void> {
  const parsed = parse(argv, mountOptionSpec);
  const values = parsed.values as RegistryOptionValues & {
    'cache-dir'?: string;
    'cache-size'?: string;
    'allow-other'?: boolean;
    'no-allow-other'?: boolean;
    'allow-suid'?: boolean;
    cvmfs?: string;
    'no-cvmfs'?: boolean;
    config?: string;
    debug?: boolean;
  };
  const mountpoint = onlyMountpoint(parsed.positionals);
  if (values.cvmfs !== undefined && values['no-cvmfs']) throw new UsageError('--cvmfs and --no-cvmfs exclude each other');
  if (values.cvmfs === '') throw new UsageError('--cvmfs needs a directory');
  if (values.config !== undefined) throw new UsageError('--config is not supported yet');
  const cache = cacheSettings(values);
  const log = (line: string): void => {
    process.stderr.write(`tocfs: ${line}\n`);
  };
  const daemon = await createDaemon({
    mountpoint,
    cacheDir: cache.cacheDir,
    cacheSize: cache.cacheSize,
    ...(values.platform ? { platform: parsePlatform(values.platform) } : {}),
    ...(await registrySettings(values)),
    allowOther: !values['no-allow-other'],
    allowSuid: !!values['allow-suid'],
    debug: !!values.debug,
    ...(values['no-cvmfs'] ? { cvmfs: false as const } : values.cvmfs !== undefined ? { cvmfs: values.cvmfs } : {}),
    log,
  });
  log(`mounted at ${daemon.mount.mountpoint} (cache ${cache.cacheDir}); SIGINT or SIGTERM unmounts`);
  await daemon.closed;
  log(`unmounted ${daemon.mount.mountpoint}`);
}

/** `tocfs unmount MNT`: unmounts, lazily when the tree is busy. */
export async function runUnmount(argv: string[], _out: NodeJS.WritableStream): Promise<void> {
  const parsed = parse(argv, {});
  await unmountPath(onlyMountpoint(parsed.positionals));
}
