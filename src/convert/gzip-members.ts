/**
 * Writes a blob made of concatenated gzip members (RFC 1952 §2.2: a gzip file is a series of members),
 * the shape eStargz needs so that each member can be fetched and inflated on its own.
 *
 * Members are independent, so several compress at once on libuv's thread pool: a closed member keeps
 * compressing while the caller fills the next one, and a single drain loop writes finished output to
 * the sink in member order. A member's start offset is therefore known only once every member before
 * it is written: callers note `nextMemberIndex` and read `memberOffset(i)` after `settle()`.
 *
 * Memory stays bounded: at most MAX_OPEN members are in flight (each holds at most its own input, one
 * eStargz chunk plus the headers around it, and its compressed output), input beyond
 * MAX_MEMBER_BUFFER waits for zlib, and the drain loop waits for the sink's `drain`.
 */
import { createHash, type Hash } from 'node:crypto';
import type { Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { createGzip, type Gzip, type ZlibOptions } from 'node:zlib';

/** Small writes (tar headers) are gathered up to this size before zlib sees them. */
const COALESCE_BYTES = 256 * 1024;
/** Members compressing or waiting to be written, beyond which `closeMember` waits. */
const MAX_OPEN = 4;
/** Uncompressed bytes queued in one member's zlib stream beyond which `write` waits. */
const MAX_MEMBER_BUFFER = 8 << 20;

interface Member {
  readonly index: number;
  readonly gz: Gzip;
  /** Compressed output not yet written to the sink. */
  readonly out: Buffer[];
  ended: boolean;
  wake: (() => void) | undefined;
}

export class GzipMemberWriter {
  readonly #sink: Writable;
  readonly #level: number;
  readonly #hash: Hash = createHash('sha256');
  #bytes = 0;
  #current: Member | undefined;
  #pending: Uint8Array[] = [];
  #pendingBytes = 0;
  #count = 0;
  readonly #queue: Member[] = [];
  readonly #starts: number[] = [];
  #draining = false;
  #progress: (() => void)[] = [];
  #failure: Error | undefined;
  readonly #waiters = new Set<(err: Error) => void>();

  constructor(sink: Writable, level: number) {
    this.#sink = sink;
    this.#level = level;
    sink.on('error', (err: Error) => this.#fail(err));
  }

  /** The index the next member will have (the current one's, while one is open). */
  get nextMemberIndex(): number {
    return this.#current?.index ?? this.#count;
  }

  /** Start offset of member `index`; known once that member has reached the sink (always after settle()). */
  memberOffset(index: number): number {
    const start = this.#starts[index];
    if (start === undefined) throw new Error(`GzipMemberWriter: member ${index} has not been written yet`);
    return start;
  }

  /** Appends uncompressed bytes to the current member, opening one if none is open. */
  async write(bytes: Uint8Array): Promise<void> {
    this.#check();
    if (bytes.length === 0) return;
    this.#pending.push(bytes);
    this.#pendingBytes += bytes.length;
    if (this.#pendingBytes >= COALESCE_BYTES) await this.#flushPending();
  }

  /** Ends the current member; it finishes compressing in the background. No-op when none is open. */
  async closeMember(): Promise<void> {
    this.#check();
    if (this.#pendingBytes > 0) await this.#flushPending();
    const member = this.#current;
    if (!member) return;
    this.#current = undefined;
    member.gz.end();
    while (this.#queue.length >= MAX_OPEN) await this.#guard(new Promise<void>((resolve) => this.#progress.push(resolve)));
  }

  /** Closes the current member and waits until every member is in the sink; then `offset` is final. */
  async settle(): Promise<void> {
    await this.closeMember();
    while (this.#queue.length > 0) await this.#guard(new Promise<void>((resolve) => this.#progress.push(resolve)));
    this.#check();
  }

  /** Compressed bytes written to the sink so far (after settle(): the blob size so far). */
  get offset(): number {
    return this.#bytes;
  }

  /** Writes bytes outside any member (the footer, itself a complete gzip member). */
  async writeRaw(bytes: Uint8Array): Promise<void> {
    await this.settle();
    this.#emit(bytes);
    await this.#sinkDrained();
  }

  /** Settles, ends the sink and waits for it; returns the blob's size and sha256. */
  async finish(): Promise<{ size: number; digest: string }> {
    await this.settle();
    this.#sink.end();
    await this.#guard(finished(this.#sink));
    return { size: this.#bytes, digest: `sha256:${this.#hash.digest('hex')}` };
  }

  /** Stops everything: pending and later calls reject with `err`. */
  abort(err: Error): void {
    this.#fail(err);
  }

  async #flushPending(): Promise<void> {
    const parts = this.#pending;
    const data = parts.length === 1 ? parts[0]! : Buffer.concat(parts, this.#pendingBytes);
    this.#pending = [];
    this.#pendingBytes = 0;
    const member = (this.#current ??= this.#open());
    // No wait per write: zlib queues the input and works through it on the thread pool while we go on.
    if (!member.gz.write(data)) await this.#guard(new Promise<void>((resolve) => member.gz.once('drain', resolve)));
  }

  #open(): Member {
    // zlib streams pass stream options through to Transform; @types/node's ZlibOptions omits them.
    const gz = createGzip({ level: this.#level, writableHighWaterMark: MAX_MEMBER_BUFFER } as ZlibOptions);
    const member: Member = { index: this.#count++, gz, out: [], ended: false, wake: undefined };
    const wake = (): void => {
      const w = member.wake;
      member.wake = undefined;
      w?.();
    };
    gz.on('data', (out: Buffer) => {
      member.out.push(out);
      wake();
    });
    gz.on('end', () => {
      member.ended = true;
      wake();
    });
    gz.on('error', (err: Error) => this.#fail(err));
    this.#queue.push(member);
    if (!this.#draining) {
      this.#draining = true;
      this.#drain().catch((err: unknown) => this.#fail(err instanceof Error ? err : new Error(String(err))));
    }
    return member;
  }

  /** The one loop that writes members to the sink, in order; it stops when the queue is empty. */
  async #drain(): Promise<void> {
    while (this.#queue.length > 0) {
      const member = this.#queue[0]!;
      this.#starts[member.index] = this.#bytes;
      for (;;) {
        this.#check();
        while (member.out.length > 0) {
          this.#emit(member.out.shift()!);
          await this.#sinkDrained();
        }
        if (member.ended) break;
        await this.#guard(new Promise<void>((resolve) => (member.wake = resolve)));
      }
      this.#queue.shift();
      const waiting = this.#progress;
      this.#progress = [];
      for (const resolve of waiting) resolve();
    }
    this.#draining = false;
  }

  #emit(bytes: Uint8Array): void {
    this.#bytes += bytes.length;
    this.#hash.update(bytes);
    this.#sink.write(bytes);
  }

  async #sinkDrained(): Promise<void> {
    if (!this.#sink.writableNeedDrain) return;
    await this.#guard(new Promise<void>((resolve) => this.#sink.once('drain', resolve)));
  }

  /** Races `p` against a failure of the sink or zlib, so no await can hang on a dead stream. */
  #guard<T>(p: Promise<T>): Promise<T> {
    this.#check();
    let reject: ((err: Error) => void) | undefined;
    const failed = new Promise<never>((_, r) => {
      reject = r;
      this.#waiters.add(r);
    });
    return Promise.race([p, failed]).finally(() => this.#waiters.delete(reject!));
  }

  #fail(err: Error): void {
    if (this.#failure) return;
    this.#failure = err;
    for (const m of this.#queue) m.gz.destroy();
    this.#current?.gz.destroy();
    for (const reject of this.#waiters) reject(err);
    this.#waiters.clear();
  }

  #check(): void {
    if (this.#failure) throw this.#failure;
  }
}
