/**
 * Mounting a `Filesystem` with fuse-native (libfuse 2). DESIGN.md §5: fuse-native's per-op timeout is
 * disabled (fetches bound themselves), the kernel caches pages, entries and attributes for long since trees
 * are immutable, and reads are as large as libfuse 2 allows.
 *
 * fuse-native has no options for `ro`, `nodev`, `nosuid` or `use_ino` (without `use_ino` libfuse invents
 * inode numbers and hardlinks would not share one), so `TocfsFuse` appends them to the `-o` list it builds.
 * It also routes getxattr/listxattr to ops that see the kernel's buffer (fuse-native's own hide its size and
 * never answer ERANGE).
 */
import Fuse from 'fuse-native';
import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import { chmod, mkdir, readFile, stat, statfs } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { promisify } from 'node:util';
import { InvalidOptionError, TocfsError } from '../errors.js';
import type { Filesystem } from '../image/filesystem.js';
import { createFuseOps, type FuseOps } from './ops.js';

const run = promisify(execFile);

/** fuse-native's native binding (the same module instance its index.js loaded: require caches it). */
interface FuseBinding {
  readonly sizeof_fuse_thread_t: number;
  fuse_native_mount(mnt: string, opts: string, thread: Buffer, self: object, malloc: unknown, handlers: unknown[], implemented: Uint32Array): void;
}
const fuseNativeRequire = createRequire(createRequire(import.meta.url).resolve('fuse-native'));
const fuseBinding = (fuseNativeRequire('node-gyp-build') as (dir: string) => FuseBinding)(
  fuseNativeRequire.resolve('./package.json').replace(/\/package\.json$/, ''),
);

/** Seconds the kernel may cache entries and attributes: image trees never change once resolved. */
export const CACHE_TIMEOUT_S = 86400;
/** libfuse 2 caps a read at 128 KiB (no max_pages); ask for all of it. */
export const MAX_READ = 128 * 1024;

export interface MountOptions {
  /**
   * Let other users (and user-namespace runtimes) in, with default_permissions so the kernel enforces each
   * file's mode and a private file of the image stays private. Default true: worker nodes run jobs as users.
   */
  readonly allowOther?: boolean;
  /** Honour setuid/setgid bits (mounted nosuid otherwise). */
  readonly allowSuid?: boolean;
  /** Unmount on SIGINT/SIGTERM (the daemon); `closed` resolves once that unmount is done. */
  readonly handleSignals?: boolean;
  readonly debug?: boolean;
  readonly log?: (line: string) => void;
  /**
   * How often to check that the mount is still there (ms; 0: never). When someone else unmounted it
   * (`tocfs unmount`, `fusermount -u`), the FUSE thread is stopped and `closed` resolves. Default 1000.
   */
  readonly watchMs?: number;
  /** The longest one read waits, then EIO (--fetch-timeout; ops.ts). Default: none. */
  readonly readTimeoutMs?: number;
}

export interface Mount {
  readonly mountpoint: string;
  /** Unmounts (lazily, so a busy tree detaches now and goes away when released). Idempotent. */
  unmount(): Promise<void>;
  /** Resolves after the first unmount completes, whoever asked for it (a signal or `unmount()`). */
  readonly closed: Promise<void>;
}

type Signal = (result: number, ...values: unknown[]) => void;

// fuse-native's close runs `fusermount -uz` and, only if that succeeds, stops its FUSE thread. When the
// mount is already gone (`tocfs unmount`, `umount -l` by an admin) fusermount fails and the thread would
// keep the process alive forever: treat "not mounted any more" as success. Fuse.unmount is only used by
// fuse-native's own close, so this changes nothing else.
// And when no FUSE mount is left at MNT, fusermount is not run at all: as root it would detach whatever is
// mounted there, such as the bind mount a container's volume is.
const fusermountUnmount = Fuse.unmount;

/**
 * Makes the mountpoint and its missing parents 0755: the daemon's umask is 077 (its cache is private,
 * util/private-files.ts), which would leave a new `/srv` unreachable for the users the mount serves.
 */
async function makeMountpoint(mnt: string): Promise<void> {
  const first = await mkdir(mnt, { recursive: true });
  if (first === undefined) return;
  const made = resolve(first);
  for (let dir = resolve(mnt); ; dir = dirname(dir)) {
    await chmod(dir, 0o755);
    if (dir === made || dir === dirname(dir)) break;
  }
}
Fuse.unmount = (mnt, cb) => {
  const viaFusermount = (): void =>
    fusermountUnmount(mnt, (err) => {
      if (!err) return cb(null);
      isMounted(mnt).then(
        (still) => cb(still ? err : null),
        () => cb(err),
      );
    });
  isMounted(mnt).then(
    (mounted) => (mounted ? viaFusermount() : cb(null)),
    viaFusermount,
  );
};

class TocfsFuse extends Fuse {
  constructor(
    mnt: string,
    ops: FuseOps,
    opts: Fuse.FuseOptions,
    private readonly extraOptions: readonly string[],
  ) {
    super(mnt, ops, opts);
  }

  /**
   * fuse-native's `_open` refuses a mountpoint on another device than its parent ("Mountpoint in use"): any
   * mountpoint that is itself a mount, as a container's volume always is (`-v /srv/tocfs:/srv/tocfs:rshared`).
   * cleanStaleMount has already refused a live FUSE mount and detached a dead one there, so this does the
   * same steps without that check: make the directory if missing, then the native mount.
   */
  override _open(cb: (err: Error | null) => void): void {
    makeMountpoint(this.mnt)
      .then(() => stat(this.mnt))
      .then((st) => {
        if (!st.isDirectory()) return cb(new Error('Mountpoint is not a directory'));
        this._thread = Buffer.alloc(fuseBinding.sizeof_fuse_thread_t);
        this._openCallback = cb;
        try {
          fuseBinding.fuse_native_mount(this.mnt, this._fuseOptions(), this._thread, this, this._malloc, this._handlers, this._getImplementedArray());
        } catch (err) {
          cb(err as Error);
        }
      }, cb);
  }

  override _fuseOptions(): string {
    const base = super._fuseOptions();
    const list = base.startsWith('-o') ? base.slice(2).split(',').filter(Boolean) : [];
    return `-o${[...list, ...this.extraOptions].join(',')}`;
  }

  _op_getxattr(signal: Signal, path: string, name: string, valueBuf: Buffer): void {
    (this.ops as FuseOps).getxattr(path, name, valueBuf, (result) => signal(result, valueBuf.buffer));
  }

  _op_listxattr(signal: Signal, path: string, listBuf: Buffer): void {
    (this.ops as FuseOps).listxattr(path, listBuf, (result) => signal(result, listBuf.buffer));
  }
}

/** The fuse-native options tocfs mounts with (exported so tests can pin them). */
export function fuseOptions(opts: MountOptions): { native: Fuse.FuseOptions; extra: string[] } {
  const native: Fuse.FuseOptions = {
    timeout: false,
    kernelCache: true,
    entryTimeout: CACHE_TIMEOUT_S,
    attrTimeout: CACHE_TIMEOUT_S,
    maxRead: MAX_READ,
    fsname: 'tocfs',
    subtype: 'tocfs',
    allowOther: opts.allowOther ?? true,
    defaultPermissions: opts.allowOther ?? true,
    debug: !!opts.debug,
    // A systemd unit or a fresh container mounts at a path nobody made yet.
    mkdir: true,
  };
  const extra = ['ro', 'nodev', 'use_ino'];
  if (!opts.allowSuid) extra.push('nosuid');
  return { native, extra };
}

export async function mountFilesystem(fs: Filesystem, mountpoint: string, opts: MountOptions = {}): Promise<Mount> {
  const mnt = resolve(mountpoint);
  const log = opts.log ?? ((line: string) => process.stderr.write(`tocfs: ${line}\n`));
  // Said plainly, before mkdir turns it into `EEXIST ... mkdir` (issue 21).
  const existing = await stat(mnt).catch(() => undefined);
  if (existing !== undefined && !existing.isDirectory()) {
    throw new InvalidOptionError('MNT', `mount point ${mnt} is a file, not a directory`);
  }
  await cleanStaleMount(mnt, log);

  const { native, extra } = fuseOptions(opts);
  const fuse = new TocfsFuse(mnt, createFuseOps(fs, { log, ...(opts.readTimeoutMs !== undefined ? { readTimeoutMs: opts.readTimeoutMs } : {}) }), native, extra);
  // The handlers go in before the mount: the kernel shows the mount before fuse-native reports it, and a
  // SIGTERM in between (a supervisor stopping tocfs as it starts) would end the process, mount left behind.
  // A signal that comes while mounting is answered once the mount is up.
  let mounted = false;
  let early: NodeJS.Signals | undefined;
  const onSignal = (sig: NodeJS.Signals): void => {
    if (!mounted) {
      early ??= sig;
      return;
    }
    log(`${sig}: unmounting ${mnt}`);
    unmount().catch((err: Error) => log(`unmount ${mnt}: ${err.message}`));
  };
  if (opts.handleSignals) {
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  }
  try {
    await new Promise<void>((ok, fail) =>
      fuse.mount((err) => (err ? fail(new TocfsError('SOURCE_UNAVAILABLE', `cannot mount at ${mnt}: ${err.message}`, { cause: err })) : ok())),
    );
  } catch (err) {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    throw err;
  }
  mounted = true;

  let unmounting: Promise<void> | undefined;
  let markClosed!: () => void;
  const closed = new Promise<void>((ok) => (markClosed = ok));
  const watchMs = opts.watchMs ?? 1000;
  const watch =
    watchMs > 0
      ? setInterval(() => {
          isMounted(mnt).then(
            (still) => {
              if (still || unmounting) return;
              log(`${mnt} was unmounted`);
              unmount().catch((err: Error) => log(`unmount ${mnt}: ${err.message}`));
            },
            () => {},
          );
        }, watchMs).unref()
      : undefined;
  function unmount(): Promise<void> {
    unmounting ??= (async () => {
      if (watch) clearInterval(watch);
      if (opts.handleSignals) {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
      }
      try {
        await new Promise<void>((ok, fail) => fuse.unmount((err) => (err ? fail(err) : ok())));
      } catch (err) {
        // fusermount failed (e.g. already gone): make sure nothing is left behind.
        log(`unmount ${mnt}: ${(err as Error).message}; detaching`);
        await detach(mnt);
      } finally {
        markClosed();
      }
    })();
    return unmounting;
  }
  if (early) onSignal(early);
  return { mountpoint: mnt, unmount, closed };
}

/** Whether `mnt` (absolute) is a mount point, per /proc/self/mounts (octal escapes decoded). */
/**
 * Whether a FUSE mount sits at `mnt`. Other mounts there do not count: in a container the mountpoint is
 * a bind mount (the volume shared with the host), and tocfs mounts on top of it.
 */
export async function isMounted(mnt: string): Promise<boolean> {
  const text = await readFile('/proc/self/mounts', 'utf8');
  return text.split('\n').some((line) => {
    const [, where, type] = line.split(' ');
    return decodeMountField(where ?? '') === mnt && type !== undefined && /^fuse(\.|$)/.test(type);
  });
}

function decodeMountField(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/**
 * A daemon that died leaves its mount behind ("Transport endpoint is not connected"): detach it. A live
 * mount is not ours to take over.
 */
export async function cleanStaleMount(mnt: string, log: (line: string) => void): Promise<void> {
  if (!(await isMounted(mnt))) return;
  if (await isDead(mnt)) {
    log(`${mnt}: cleaning a stale mount`);
    await detach(mnt);
    return;
  }
  throw new InvalidOptionError('MNT', `${mnt} is already mounted (tocfs unmount ${mnt} first)`);
}

/**
 * Whether the FUSE server behind `mnt` is gone. statfs always reaches the server; stat does not, since the
 * kernel answers it from attributes it may cache for a day (CACHE_TIMEOUT_S), long after the server died.
 */
async function isDead(mnt: string): Promise<boolean> {
  try {
    await statfs(mnt);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ENOTCONN';
  }
}

/** Lazy unmount: the mount disappears from the namespace now, and for good once nothing holds it. */
export async function detach(mnt: string): Promise<void> {
  // Only a FUSE mount: never what lies below it (a container's bind-mounted volume).
  if (!(await isMounted(mnt))) return;
  try {
    await run('fusermount', ['-uz', mnt]);
  } catch {
    await run('umount', ['-l', mnt]);
  }
}

/** `tocfs unmount MNT`: a plain unmount, or a lazy one when the tree is busy. */
export async function unmountPath(mountpoint: string): Promise<void> {
  const mnt = resolve(mountpoint);
  if (!(await isMounted(mnt))) throw new InvalidOptionError('MNT', `${mnt} is not mounted`);
  try {
    await run('fusermount', ['-u', mnt]);
    return;
  } catch {
    // Busy, or fusermount refused: detach lazily.
  }
  await detach(mnt);
}
