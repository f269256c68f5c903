/**
 * Chunk files written around the page cache (O_DIRECT), for the disk cache.
 *
 * A chunk the mount served is already in the kernel's page cache, in the FUSE file's own pages. A buffered
 * write of the same bytes into the cache directory holds them a second time, and fresh page-cache pages are
 * what a cold read pays most for on a VM whose host reclaims the guest's free memory: the cold GiB's disk
 * writes were 26 % of the daemon's CPU samples (bench/RESULTS.md). O_DIRECT hands the bytes to the disk
 * without pages; the chunk is read back through the page cache only if it is ever needed again.
 *
 * O_DIRECT wants block-aligned memory, offsets and lengths. The bytes go through a few reusable bounce
 * buffers in a WebAssembly memory, which V8 maps page-aligned (a Buffer's address is malloc's choice and
 * cannot be asked for). The last block is padded and the file then truncated to the chunk's size.
 * `probeDirectWrites` tells whether the directory's file system takes O_DIRECT at all (tmpfs before Linux 6.6
 * does not); when it does not, the store writes through the page cache (file-writes.ts).
 */
import { constants } from 'node:fs';
import { open, rm } from 'node:fs/promises';
import { PRIVATE_FILE_MODE } from '../../util/private-files.js';
import { join } from 'node:path';

// Node's own types leave WebAssembly to lib.dom; this is the one constructor used here.
declare const WebAssembly: { Memory: new (descriptor: { initial: number }) => { readonly buffer: ArrayBuffer } };

/** Offsets and lengths are multiples of this: the largest logical block size of Linux block devices. */
const BLOCK = 4096;
const BOUNCE_BYTES = 1 << 20;
const BOUNCE_COUNT = 4;
const WASM_PAGE = 64 << 10;
const CREATE_DIRECT = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_DIRECT;

/** Aligned buffers shared by every write of the process, handed out first come first served. */
class BouncePool {
  readonly #free: Uint8Array[] = [];
  readonly #waiting: Array<(buffer: Uint8Array) => void> = [];

  constructor() {
    const memory = new WebAssembly.Memory({ initial: (BOUNCE_BYTES * BOUNCE_COUNT) / WASM_PAGE });
    for (let i = 0; i < BOUNCE_COUNT; i++) this.#free.push(new Uint8Array(memory.buffer, i * BOUNCE_BYTES, BOUNCE_BYTES));
  }

  acquire(): Promise<Uint8Array> {
    const buffer = this.#free.pop();
    return buffer ? Promise.resolve(buffer) : new Promise((resolve) => this.#waiting.push(resolve));
  }

  release(buffer: Uint8Array): void {
    const next = this.#waiting.shift();
    if (next) next(buffer);
    else this.#free.push(buffer);
  }
}

let pool: BouncePool | undefined;

/**
 * Whether files in `dir` can be written with O_DIRECT from the bounce buffers: writes one block to a
 * scratch file named `scratchName` and removes it. Any refusal (EINVAL from the file system, no memory for
 * the buffers) answers false.
 */
export async function probeDirectWrites(dir: string, scratchName: string): Promise<boolean> {
  const file = join(dir, scratchName);
  try {
    pool ??= new BouncePool();
    await writeDirect(file, [new Uint8Array(BLOCK + 1)]);
    return true;
  } catch {
    return false;
  } finally {
    await rm(file, { force: true }).catch(() => {});
  }
}

/**
 * Creates `path` (it must not exist) holding `pieces` in order, through the bounce buffers. Call only after
 * `probeDirectWrites` answered true for the file's directory.
 */
export async function writeDirect(path: string, pieces: readonly Uint8Array[]): Promise<void> {
  const buffers = (pool ??= new BouncePool());
  const size = pieces.reduce((sum, piece) => sum + piece.byteLength, 0);
  const file = await open(path, CREATE_DIRECT, PRIVATE_FILE_MODE);
  try {
    let piece = 0;
    let inPiece = 0;
    for (let at = 0; at < size; ) {
      const bounce = await buffers.acquire();
      try {
        let filled = 0;
        while (filled < bounce.byteLength && piece < pieces.length) {
          const source = pieces[piece]!;
          const n = Math.min(bounce.byteLength - filled, source.byteLength - inPiece);
          bounce.set(source.subarray(inPiece, inPiece + n), filled);
          filled += n;
          inPiece += n;
          if (inPiece === source.byteLength) {
            piece++;
            inPiece = 0;
          }
        }
        const padded = Math.ceil(filled / BLOCK) * BLOCK;
        bounce.fill(0, filled, padded);
        for (let done = 0; done < padded; ) done += (await file.write(bounce, done, padded - done, at + done)).bytesWritten;
        at += filled;
      } finally {
        buffers.release(bounce);
      }
    }
    if (size % BLOCK !== 0) await file.truncate(size);
  } finally {
    await file.close();
  }
}
