import { isTocfsError } from '../errors.js';
import { usePrivateUmask } from '../util/private-files.js';
import { UsageError } from './usage.js';

const USAGE = `usage: tocfs <command> [options]

commands:
  ls REF [PATH] [--layers]   list an image's files layer by layer, each layer read as the mount reads it
                             (its TOC, zTOC or CVMFS copy; else the layer whole), or (--layers) its
                             layers: digest, media type, size
  cat REF PATH [--layer D]   write one file to stdout as the mount serves it (D: that layer's own file),
                             fetching only the chunks it needs
  convert SRC DST [--format estargz] [--prioritize PATH]... [--prioritize-from FILE]... [--chunk-size N]
                             rewrite an image's layers as eStargz and push it as DST; prioritised files
                             (FILE: one path per line, e.g. from stats --accessed) come first
  index REF [--span-size N] [--min-layer-size N] [--v2 DST]
                             build SOCI zTOCs for an unmodified gzip image and push them as a SOCI
                             index referring to REF's manifest (REF's digest unchanged); --v2 DST also
                             writes the SOCI v2 form (a new image index tagged DST). index --help: more
  mount MNT [--no-allow-other] [--allow-suid] [--cvmfs DIR | --no-cvmfs] [--debug]
                             serve MNT/images/HOST/REPO:TAG/... in the foreground (logs to stderr);
                             SIGINT/SIGTERM unmount and exit 0; a stale mount at MNT is cleaned first.
                             Other users may read the tree (allow_other) as its file modes permit
                             (default_permissions); --no-allow-other keeps it to root. Layers and
                             images DUCC unpacked under DIR (default /cvmfs/unpacked.cern.ch when
                             present) are served from there, the registry only for the rest
  unmount MNT                unmount (lazily when busy)
  stats MNT [--json]         the mount's figures (bytes from the registry / caches, requests, per layer
                             format, TOC source and fetched %), read from its user.tocfs.* xattrs
                             with getfattr (package attr); MNT or an image root under it
  stats MNT --accessed IMAGE_DIR
                             the files read in that image (images/HOST/REPO:TAG), first read first

registry options (every command):
  --platform OS/ARCH[/VARIANT]    platform to pick from a multi-platform image (default: this host's)
  --insecure-registry HOST[:PORT] plain HTTP or unverified TLS for that registry (repeatable);
                                  loopback registries are plain HTTP by default
  --registry-allow PATTERN        contact only these hosts (host, host:port, glob like *.cern.ch;
                                  repeatable): registries, token services and blob redirects alike
  --ca-file FILE                  extra CA bundle for registries (repeatable; or NODE_EXTRA_CA_CERTS)
  --fetch-timeout SECONDS         the longest one read waits across its retries, then EIO (default 30)
cache options (ls, cat, mount):
  --cache-dir DIR     verified chunks and TOCs, reused across runs (default $XDG_CACHE_HOME/tocfs)
  --cache-size BYTES  disk cache bound, LRU eviction (default 10G)
Credentials come from $DOCKER_CONFIG/config.json or ~/.docker/config.json; HTTP(S)_PROXY and NO_PROXY
are honoured.`;

/** `err` is for progress and notes; what a script reads goes to `out`. */
type Command = (argv: string[], out: NodeJS.WritableStream, err: NodeJS.WritableStream) => Promise<void>;

export interface CliIo {
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream;
}

// Each command's modules load when it runs: a daemon's start (inside every time-to-first-command) does
// not pay for the converter's writers, nor `tocfs stats` for the FUSE stack.
const commands: Record<string, () => Promise<Command>> = {
  ls: async () => (await import('./ls.js')).runLs,
  cat: async () => (await import('./cat.js')).runCat,
  convert: async () => (await import('./convert.js')).runConvert,
  index: async () => (await import('./index.js')).runIndex,
  mount: async () => (await import('./mount.js')).runMount,
  unmount: async () => (await import('./mount.js')).runUnmount,
  stats: async () => (await import('./stats.js')).runStats,
};

/**
 * The process's entry (bin/tocfs.js, and the tests' child processes): a private umask first, so that nothing
 * this process writes (the cache holds bytes of files images keep private) is ever readable by another user,
 * even where a mode was forgotten; then `main`. Process-wide, so it is set here and not by the library code.
 */
export function runProcess(argv: string[]): Promise<number> {
  usePrivateUmask();
  return main(argv);
}

/** Runs one CLI invocation and returns the process exit code: 0 ok, 1 failure, 2 usage error. */
export async function main(argv: string[], io: CliIo = process): Promise<number> {
  const { stdout: out, stderr } = io;
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    out.write(`${USAGE}\n`);
    return name === undefined ? 2 : 0;
  }
  const load = Object.hasOwn(commands, name) ? commands[name] : undefined;
  if (!load) {
    stderr.write(`tocfs: unknown command ${JSON.stringify(name)}\n${USAGE}\n`);
    return 2;
  }
  try {
    const command = await load();
    await command(rest, out, stderr);
    return 0;
  } catch (err) {
    if (err instanceof UsageError) {
      stderr.write(`tocfs ${name}: ${err.message}\n`);
      return 2;
    }
    // TocfsErrors carry messages written for users; anything else is a bug, so show its stack.
    const text = isTocfsError(err) ? `${err.message}${causeSuffix(err)}` : (err as Error)?.stack ?? String(err);
    stderr.write(`tocfs ${name}: ${text}\n`);
    return 1;
  }
}

function causeSuffix(err: Error): string {
  const cause = err.cause;
  if (cause instanceof Error && !err.message.includes(cause.message)) return ` (${cause.message})`;
  return '';
}
