// Chunk verification hashes large chunks off the JS thread and small ones inline: both give the digest.
import { createHash, randomBytes } from 'node:crypto';
import t from 'tap';
import { sha256Hex } from '../../src/util/sha256.js';

t.test('sha256Hex equals node:crypto on both sides of the off-thread size', async (t) => {
  for (const size of [0, 1, 4096, (1 << 20) - 1, 1 << 20, (4 << 20) + 3]) {
    const bytes = randomBytes(size);
    // A view at an offset: the digest must cover the view, not its underlying buffer.
    const view = Buffer.concat([Buffer.from('xx'), bytes]).subarray(2);
    t.equal(await sha256Hex(view), createHash('sha256').update(bytes).digest('hex'), `${size} bytes`);
  }
});
