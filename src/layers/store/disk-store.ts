/**
 * Verified chunks on disk, content-addressed (DESIGN.md §2, source 3): `DIR/chunks/HEX[0:2]/HEX`.
 *
 * - A commit writes `DIR/chunks/.tmp/PID-SEQ-HEX`, then renames it into place: readers see a whole chunk or
 *   none. There is no fsync: after a power loss a renamed file may be short or zeroed, which the load-time
 *   check below catches, so durability is traded for write latency at no risk to correctness.
 * - Every load re-hashes the file; a file that does not hash to its name is deleted, reported on
 *   `tocfs:cache:corrupt`, and answered as a miss.
 * - At open, temp files of processes that no longer run (a crash) are removed and the quota is rebuilt
 *   from a scan. `close()` deletes nothing.
 * A cache directory belongs to one daemon at a time: two would keep separate quotas over the same files.
 */
import { mkdir, open, readdir, readFile, rename, rm, stat, utimes, type FileHandle } from 'node:fs/promises';
import { PRIVATE_DIR_MODE, PRIVATE_FILE_MODE } from '../../util/private-files.js';
import { join } from 'node:path';
import { InvalidOptionError } from '../../errors.js';
import {
  checkChunkSize,
  digestHex,
  sizeMismatch,
  type ChunkStore,
  type ChunkStoreStats,
  type ChunkWriter,
} from './chunk-store.js';
import { probeDirectWrites, writeDirect } from './direct-writes.js';
import { cacheCorruptChannel, cacheErrorChannel, publish } from '../events.js';
import { writeWhole } from './file-writes.js';
import { Quota, type ScannedChunk } from './quota.js';
import { sha256Hex } from '../../util/sha256.js';
import { isSha256Hex } from '../../util/sha256-digest.js';

export interface DiskStoreOptions {
  /** The cache directory; chunks live under `DIR/chunks`. Created when missing. */
  readonly dir: string;
  /** Budget in bytes of chunk files (> 0); least recently used chunks are evicted beyond it. */
  readonly maxBytes: number;
  /** Shortest interval between two mtime stamps of one chunk (see quota.ts). Default 60 s. */
  readonly touchIntervalMs?: number;
  /**
   * Writes chunk files with O_DIRECT (direct-writes.ts). Default: when the directory's file system takes it;
   * false writes through the page cache.
   */
  readonly directWrites?: boolean;
  /** Clock, for tests. */
  readonly now?: () => number;
}

const HEX2 = /^[0-9a-f]{2}$/;
const DEFAULT_TOUCH_INTERVAL_MS = 60_000;

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Removes temp files left by processes that are gone (or by an earlier process with our pid). */
export async function removeStaleTemps(tmpDir: string): Promise<number> {
  let removed = 0;
  for (const name of await readdir(tmpDir)) {
    const pid = Number(name.split('-', 1)[0]);
    if (Number.isSafeInteger(pid) && pid > 0 && pid !== process.pid && isAlive(pid)) continue;
    await rm(join(tmpDir, name), { force: true, recursive: true });
    removed++;
  }
  return removed;
}

async function scan(root: string): Promise<ScannedChunk[]> {
  const found: ScannedChunk[] = [];
  for (const sub of await readdir(root, { withFileTypes: true })) {
    if (!sub.isDirectory() || !HEX2.test(sub.name)) continue;
    const dir = join(root, sub.name);
    await Promise.all(
      (await readdir(dir)).map(async (name) => {
        const file = join(dir, name);
        if (!isSha256Hex(name) || !name.startsWith(sub.name)) {
          await rm(file, { force: true, recursive: true }); // not ours to keep: nothing can ever read it
          return;
        }
        const st = await stat(file);
        if (st.isFile()) found.push({ key: `sha256:${name}`, size: st.size, mtimeMs: st.mtimeMs });
      }),
    );
  }
  return found;
}

/** A file the cache keeps beside the chunk store (a whole layer's tar), counted against the same budget. */
export interface AccountedFile {
  /** The file whose mtime records its last access (as a chunk file's does). */
  readonly file: string;
  readonly size: number;
  readonly mtimeMs: number;
  /** Deletes it when evicted. */
  remove(): Promise<void>;
}

export async function openDiskStore(opts: DiskStoreOptions): Promise<DiskChunkStore> {
  if (!Number.isSafeInteger(opts.maxBytes) || opts.maxBytes <= 0) {
    throw new InvalidOptionError('cacheSize', 'must be a positive integer');
  }
  const touchIntervalMs = opts.touchIntervalMs ?? DEFAULT_TOUCH_INTERVAL_MS;
  const root = join(opts.dir, 'chunks');
  const tmpDir = join(root, '.tmp');
  await mkdir(tmpDir, { recursive: true, mode: PRIVATE_DIR_MODE });
  await removeStaleTemps(tmpDir);
  const quota = Quota.fromScan(opts.maxBytes, touchIntervalMs, await scan(root));
  const direct = opts.directWrites !== false && (await probeDirectWrites(tmpDir, `${process.pid}-probe`));
  const store = new DiskChunkStore(root, tmpDir, quota, opts.now ?? Date.now, direct);
  await store.evict();
  return store;
}

let tmpSeq = 0;

export class DiskChunkStore implements ChunkStore {
  readonly #root: string;
  readonly #tmpDir: string;
  readonly #quota: Quota;
  readonly #now: () => number;
  readonly #direct: boolean;
  readonly #madeDirs = new Set<string>();
  readonly #open = new Set<{ abort(): Promise<void>; committing?: Promise<void> }>();
  readonly #accounted = new Map<string, AccountedFile>();
  #closed = false;
  #lastStamp = 0;
  #hits = 0;
  #misses = 0;
  #evictions = 0;
  #corrupt = 0;

  /** Use openDiskStore(). */
  constructor(root: string, tmpDir: string, quota: Quota, now: () => number, direct: boolean) {
    this.#root = root;
    this.#tmpDir = tmpDir;
    this.#quota = quota;
    this.#now = now;
    this.#direct = direct;
  }

  /** Whether chunk files go to disk with O_DIRECT (see DiskStoreOptions.directWrites). */
  get directWrites(): boolean {
    return this.#direct;
  }

  /**
   * Access stamps strictly increase within a process: the access order survives a restart only as file
   * mtimes, and two accesses in one millisecond must still sort in the order they happened.
   */
  #stamp(): number {
    this.#lastStamp = Math.max(this.#now(), this.#lastStamp + 1);
    return this.#lastStamp;
  }

  #path(hex: string): string {
    return join(this.#root, hex.slice(0, 2), hex);
  }

  async get(digest: string): Promise<Uint8Array | undefined> {
    const hex = digestHex(digest);
    // The quota is the index of what exists: a miss costs no system call.
    if (!this.#quota.has(digest)) {
      this.#misses++;
      return undefined;
    }
    const file = this.#path(hex);
    let bytes: Buffer;
    try {
      bytes = await readFile(file);
    } catch (err) {
      this.#quota.remove(digest);
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') publish(cacheErrorChannel, { store: 'chunks', op: 'read', digest, error: err });
      this.#misses++;
      return undefined;
    }
    const actual = await sha256Hex(bytes);
    if (actual !== hex) {
      this.#corrupt++;
      this.#misses++;
      this.#quota.remove(digest);
      await rm(file, { force: true }).catch(() => {});
      publish(cacheCorruptChannel, { store: 'chunks', digest, file, reason: `content hashes to sha256:${actual}` });
      return undefined;
    }
    this.#hits++;
    const now = this.#stamp();
    if (this.#quota.touch(digest, now)) {
      const when = new Date(now);
      await utimes(file, when, when).catch((error: unknown) => publish(cacheErrorChannel, { store: 'chunks', op: 'touch', digest, error }));
    }
    return bytes;
  }

  async has(digest: string): Promise<boolean> {
    digestHex(digest);
    return this.#quota.has(digest);
  }

  begin(digest: string, size: number): ChunkWriter {
    const hex = digestHex(digest);
    checkChunkSize(digest, size);
    if (this.#closed) throw new Error('disk store: closed');
    const tmp = join(this.#tmpDir, `${process.pid}-${tmpSeq++}-${hex}`);
    let handle: Promise<FileHandle> | undefined;
    let queue: Promise<void> = Promise.resolve();
    /** With O_DIRECT, what was written, kept until commit writes the file in one go. */
    let pieces: Uint8Array[] = [];
    let written = 0;
    let state: 'open' | 'committing' | 'done' = 'open';
    const txn: { abort(): Promise<void>; committing?: Promise<void> } = { abort: () => abort() };
    this.#open.add(txn);

    const fileHandle = (): Promise<FileHandle> => (handle ??= open(tmp, 'wx', PRIVATE_FILE_MODE));
    const closeAndRemove = async (): Promise<void> => {
      const h = handle;
      handle = undefined;
      if (h) await h.then((fh) => fh.close()).catch(() => {});
      await rm(tmp, { force: true });
    };
    const abort = async (): Promise<void> => {
      if (state !== 'open') return;
      state = 'done';
      this.#open.delete(txn);
      pieces = [];
      await queue.catch(() => {});
      await closeAndRemove();
    };

    return {
      write: (bytes, opts) => {
        if (state !== 'open') return Promise.reject(new Error(`disk store: ${digest}: write after commit or abort`));
        written += bytes.byteLength;
        // Unless the caller vouches for them, the caller may reuse its buffer while the write is queued.
        const copy = opts?.immutable ? bytes : Uint8Array.prototype.slice.call(bytes);
        if (this.#direct) {
          pieces.push(copy);
          return Promise.resolve();
        }
        queue = queue.then(async () => {
          await writeWhole(await fileHandle(), copy);
        });
        return queue;
      },
      commit: () => {
        if (state !== 'open') return Promise.reject(new Error(`disk store: ${digest}: commit after commit or abort`));
        state = 'committing';
        txn.committing = (async () => {
          try {
            await queue;
            if (written !== size) throw sizeMismatch(digest, size, written);
            if (this.#direct) {
              await writeDirect(tmp, pieces);
              pieces = [];
            } else {
              await (await fileHandle()).close();
              handle = undefined;
            }
            const dir = join(this.#root, hex.slice(0, 2));
            if (!this.#madeDirs.has(dir)) {
              await mkdir(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
              this.#madeDirs.add(dir);
            }
            // Stamped explicitly: the kernel's mtime clock is coarse, and ties would lose the LRU order.
            const stamp = this.#stamp();
            const when = new Date(stamp);
            await utimes(tmp, when, when);
            await rename(tmp, this.#path(hex));
            this.#quota.add(digest, size, stamp);
          } catch (err) {
            await closeAndRemove().catch(() => {});
            throw err;
          } finally {
            state = 'done';
            this.#open.delete(txn);
          }
          await this.evict();
        })();
        return txn.committing;
      },
      abort,
    };
  }

  /**
   * Counts a file kept beside the chunks against the one budget (`--cache-size` bounds everything on disk),
   * under `key`; it is evicted least recently used, like the chunks, by its `remove`.
   */
  async account(key: string, entry: AccountedFile): Promise<void> {
    this.#accounted.set(key, entry);
    this.#quota.add(key, entry.size, entry.mtimeMs);
    await this.evict();
  }

  /** An access to an accounted file: it becomes the most recently used. */
  touchAccounted(key: string): void {
    const entry = this.#accounted.get(key);
    if (entry === undefined) return;
    const now = this.#stamp();
    if (!this.#quota.touch(key, now)) return;
    const when = new Date(now);
    void utimes(entry.file, when, when).catch((error: unknown) => publish(cacheErrorChannel, { store: 'layers', op: 'touch', digest: key, error }));
  }

  /** Deletes least recently used chunks (and accounted files) until the budget holds. Failures are reported, not thrown. */
  async evict(): Promise<void> {
    for (const digest of this.#quota.evictOverflow()) {
      this.#evictions++;
      const accounted = this.#accounted.get(digest);
      if (accounted !== undefined) {
        this.#accounted.delete(digest);
        await accounted.remove().catch((error: unknown) => publish(cacheErrorChannel, { store: 'layers', op: 'evict', digest, error }));
        continue;
      }
      await rm(this.#path(digestHex(digest)), { force: true }).catch((error: unknown) =>
        publish(cacheErrorChannel, { store: 'chunks', op: 'evict', digest, error }),
      );
    }
  }

  async delete(digest: string): Promise<void> {
    const hex = digestHex(digest);
    this.#quota.remove(digest);
    await rm(this.#path(hex), { force: true });
  }

  stats(): ChunkStoreStats {
    return {
      entries: this.#quota.count,
      bytes: this.#quota.usedBytes,
      maxBytes: this.#quota.maxBytes,
      hits: this.#hits,
      misses: this.#misses,
      evictions: this.#evictions,
      corrupt: this.#corrupt,
    };
  }

  /** Aborts transactions not yet committing, waits for those that are. Committed chunks stay. */
  async close(): Promise<void> {
    this.#closed = true;
    await Promise.allSettled([...this.#open].map((txn) => txn.committing ?? txn.abort()));
  }
}
