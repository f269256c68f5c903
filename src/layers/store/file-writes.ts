/**
 * Writes a buffer whole, in slices the kernel backs with small page-cache folios.
 *
 * One write of a 4 MiB chunk makes ext4 take large folios, and on a VM whose host reclaims the guest's free
 * memory (free page reporting) every large folio is fresh host memory: here 1 GiB written in 1 MiB writes cost
 * 2.3 CPU-s of kernel time, in 256 KiB writes 0.33 s (bench/RESULTS.md, the cold GiB). The extra system calls
 * (4 per MiB) cost nothing next to that.
 */
import type { FileHandle } from 'node:fs/promises';

export const WRITE_SLICE_BYTES = 256 << 10;

/** Writes all of `bytes` at the file's position (or at `position` onwards), retrying short writes. */
export async function writeWhole(file: Pick<FileHandle, 'write'>, bytes: Uint8Array, position?: number): Promise<void> {
  for (let off = 0; off < bytes.byteLength; ) {
    const length = Math.min(WRITE_SLICE_BYTES, bytes.byteLength - off);
    off += (await file.write(bytes, off, length, position === undefined ? null : position + off)).bytesWritten;
  }
}
