/**
 * The disk cache's byte budget (cvmfs `quota.h`): which chunks exist, their sizes, and their order of
 * last access. Pure bookkeeping; the disk store does the file operations it asks for.
 *
 * Persistence of the access order: each chunk file's mtime is its last access. The order is rebuilt at
 * open by sorting a directory scan by mtime; afterwards it is kept exactly in memory (a Map in LRU
 * order), and a hit re-stamps the file's mtime only when the stamp on disk is older than
 * `touchIntervalMs`. So a hot chunk costs at most one `utimes` per interval, there is no journal to
 * replay or corrupt, and a crash loses at most one interval of ordering. atime is not used: most
 * filesystems are mounted relatime or noatime.
 */

interface QuotaEntry {
  size: number;
  /** When the last access was written to the file's mtime (ms since the epoch). */
  stampedMs: number;
}

export interface ScannedChunk {
  readonly key: string;
  readonly size: number;
  /** The file's mtime: its last recorded access. */
  readonly mtimeMs: number;
}

export class Quota {
  readonly maxBytes: number;
  readonly touchIntervalMs: number;
  /** Insertion order is access order: the first key is the least recently used. */
  #entries = new Map<string, QuotaEntry>();
  #used = 0;

  constructor(maxBytes: number, touchIntervalMs: number) {
    this.maxBytes = maxBytes;
    this.touchIntervalMs = touchIntervalMs;
  }

  /** Rebuilds the order from a scan: oldest mtime first. */
  static fromScan(maxBytes: number, touchIntervalMs: number, scanned: Iterable<ScannedChunk>): Quota {
    const quota = new Quota(maxBytes, touchIntervalMs);
    const sorted = [...scanned].sort((a, b) => a.mtimeMs - b.mtimeMs || (a.key < b.key ? -1 : 1));
    for (const s of sorted) quota.add(s.key, s.size, s.mtimeMs);
    return quota;
  }

  get usedBytes(): number {
    return this.#used;
  }

  get count(): number {
    return this.#entries.size;
  }

  has(key: string): boolean {
    return this.#entries.has(key);
  }

  /** Records a chunk as the most recently used; `stampedMs` is the mtime its file has now. */
  add(key: string, size: number, stampedMs: number): void {
    this.remove(key);
    this.#entries.set(key, { size, stampedMs });
    this.#used += size;
  }

  /**
   * Marks an access. Returns true when the caller should write `nowMs` to the file's mtime (the stamp
   * on disk is older than the interval); the stamp is then assumed written.
   */
  touch(key: string, nowMs: number): boolean {
    const entry = this.#entries.get(key);
    if (!entry) return false;
    this.#entries.delete(key);
    this.#entries.set(key, entry);
    if (nowMs - entry.stampedMs < this.touchIntervalMs) return false;
    entry.stampedMs = nowMs;
    return true;
  }

  remove(key: string): boolean {
    const entry = this.#entries.get(key);
    if (!entry) return false;
    this.#entries.delete(key);
    this.#used -= entry.size;
    return true;
  }

  /**
   * Takes the least recently used chunks out of the accounting until the total fits the budget, and
   * returns their keys (oldest first) for the caller to delete.
   */
  evictOverflow(): string[] {
    const victims: string[] = [];
    for (const [key, entry] of this.#entries) {
      if (this.#used <= this.maxBytes) break;
      this.#entries.delete(key);
      this.#used -= entry.size;
      victims.push(key);
    }
    return victims;
  }
}
