import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Test } from 'tap';

/**
 * Makes a fresh directory under os.tmpdir() and removes it (recursively) when `t` ends, pass or fail.
 * Synchronous on purpose: `const dir = tempDir(t, 'cache')` and `await tempDir(...)` both work.
 */
export function tempDir(t: Test, prefix: string): string {
  const dir = makeTempDir(prefix);
  t.teardown(() => removeDir(dir));
  return dir;
}

/** A temp dir the caller removes itself with `removeDir` (for helpers whose `stop()` owns cleanup). */
export function makeTempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `tocfs-${prefix.replace(/[^\w.-]/g, '_')}-`));
}

export function removeDir(dir: string): void {
  // maxRetries: a child process we just killed may still be closing files in the tree.
  rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
}
