/**
 * sha256 of chunk bytes for verification. A large chunk hashes on the thread pool (WebCrypto's digest
 * runs there): hashing 4 MiB takes ~3 ms, which on the JS thread would stall every FUSE operation behind
 * it; the pool's round trip costs more than hashing a small chunk, so those hash inline.
 */
import { createHash, webcrypto } from 'node:crypto';

/** From this size on, hashing leaves the JS thread (bench: 1 MiB inline 0.68 ms, off-thread 0.11 ms of JS time). */
const OFF_THREAD_BYTES = 1 << 20;

export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  if (bytes.byteLength < OFF_THREAD_BYTES) return createHash('sha256').update(bytes).digest('hex');
  return Buffer.from(await webcrypto.subtle.digest('SHA-256', bytes)).toString('hex');
}
