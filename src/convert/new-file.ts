import { createWriteStream, type WriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';

/**
 * Runs `write` into a new file at `path` (which must not exist); the file is removed if anything fails, so
 * a half-written layer never looks like a finished one.
 */
export async function writeNewFile<T>(path: string, write: (out: WriteStream) => Promise<T>): Promise<T> {
  const out = createWriteStream(path, { flags: 'wx' });
  try {
    return await write(out);
  } catch (err) {
    out.destroy();
    // The file may still be opening: remove it only once the stream has let go of it.
    if (!out.closed) await new Promise<void>((resolve) => out.once('close', () => resolve()));
    await rm(path, { force: true });
    throw err;
  }
}
