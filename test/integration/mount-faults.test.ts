// Bad input and faults never kill the daemon (issue 4, "Done when"), on a real mount behind the fault proxy:
// malformed references and missing images are ENOENT with one logged reason; a registry that goes down
// mid-read fails that read with EIO and the next read after it is back succeeds; a corrupt chunk is EIO,
// logged, never a wrong byte, and is fetched again correctly once the corruption stops.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { estargzLayerFile } from '../support/estargz-build.js';
import { startFaultProxy } from '../support/fault-proxy.js';
import { buildImage, sha256 } from '../support/image-builder.js';
import { mountDaemon } from '../support/mount-daemon.js';
import { prng } from '../support/prng.js';
import { pushImage } from '../support/push.js';
import { startRegistry } from '../support/registry.js';
import { dir, file } from '../support/tar-dsl.js';
import { tempDir } from '../support/tmp.js';

const run = promisify(execFile);
const CHUNK = 1 << 20;
const random = prng(0xfa17);
// Random bytes: chunks with equal content would share one content-addressed cache entry.
const BIG = Buffer.from(Array.from({ length: 6 * CHUNK + 123 }, () => Math.floor(random() * 256)));
const randomFile = (): Buffer => Buffer.from(Array.from({ length: 3 * CHUNK }, () => Math.floor(random() * 256)));
// One fresh file per fault, each first read in its middle chunk: nothing of it is cached before, neither by
// an earlier read nor by read-ahead (which fetches the chunks after a sequential read, and small neighbours).
const RESET = randomFile();
const UNAVAILABLE = randomFile();
const VICTIM = randomFile();

interface Ran {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** A command in a child process (the mount is served on this JS thread); never rejects. */
async function sh(cmd: string, ...args: string[]): Promise<Ran> {
  try {
    const { stdout, stderr } = await run(cmd, args, { maxBuffer: 64 << 20 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

/** sha256 of bytes [offset, offset + length) of a file on the mount, read with dd by a child. */
async function rangeHash(path: string, offset: number, length: number): Promise<Ran> {
  return sh('sh', '-c', `dd if="$1" bs=4096 skip=$(($2 / 4096)) count=$(($3 / 4096)) status=none | sha256sum`, 'dd', path, String(offset), String(length));
}

t.test('bad references, a registry going down, and corrupt chunks: errors for those reads only', async (t) => {
  const work = tempDir(t, 'mount-faults');
  const layer = await estargzLayerFile(join(work, 'layer'), [dir('data'), file('data/big.bin', BIG), file('data/hello.txt', 'hello\n'), file('data/reset.bin', RESET), file('data/unavailable.bin', UNAVAILABLE), file('data/victim.bin', VICTIM)], { chunkSize: CHUNK });
  const image = await buildImage(join(work, 'image'), { layers: [layer] });
  const reg = await startRegistry(t);
  await pushImage(reg.seedUrl, 'faults/image', 'v1', image);
  const proxy = await startFaultProxy(t, { target: reg.url });
  const { mnt, logs } = await mountDaemon(t, 'mount-faults');
  const images = join(mnt, 'images', proxy.host);
  const root = join(images, 'faults/image:v1');
  const big = join(root, 'data/big.bin');
  const victim = join(root, 'data/victim.bin');
  const chunkHash = (i: number, of: Buffer = BIG) => sha256(of.subarray(i * CHUNK, (i + 1) * CHUNK)).slice(7);

  await t.test('malformed references and missing images are ENOENT, each with a logged reason', async (t) => {
    const bad = [
      'Upper/Case:v1', // repository names are lowercase
      'faults/image:bad!tag',
      `faults/image@sha256:${'a'.repeat(10)}`, // a digest too short
      `faults/image@md5:${'a'.repeat(32)}`, // an unknown algorithm
      'faults/image:v1:v2',
      'faults/missing:v1', // well formed, not in the registry
      'faults/image:no-such-tag',
      `faults/image@sha256:${'0'.repeat(64)}`,
    ];
    for (const ref of bad) {
      const r = await sh('stat', join(images, ref));
      t.not(r.code, 0, `stat images/HOST/${ref} fails`);
      t.match(r.stderr, /No such file or directory/, `${ref}: ENOENT`);
    }
    // Not a bad reference but an outage (which may pass): EIO, so that it does not read as "no such image".
    const r = await sh('stat', join(mnt, 'images', 'no-such-registry.invalid:1', 'x/y:z'));
    t.match(r.stderr, /Input\/output error/, 'an unreachable registry: EIO');
    const reasons = logs.filter((l) => /faults\/missing|no-such-tag|Upper|bad!tag|md5|no-such-registry/.test(l));
    t.ok(reasons.length >= 3, `reasons logged:\n${reasons.join('\n')}`);
    t.equal((await sh('cat', join(root, 'data/hello.txt'))).stdout, 'hello\n', 'the daemon still serves the image');
  });

  await t.test('registry down mid-read: EIO for that read, the next read recovers when it is back', async (t) => {
    t.equal((await rangeHash(big, 0, CHUNK)).stdout.slice(0, 64), chunkHash(0), 'chunk 0 reads while the registry is up');
    for (const [name, bytes, action] of [
      ['reset.bin', RESET, { reset: 'before-headers' as const }],
      ['unavailable.bin', UNAVAILABLE, { status: 503 }],
    ] as const) {
      const path = join(root, 'data', name);
      proxy.addRule({ path: /\/blobs\//, action });
      const down = await rangeHash(path, CHUNK, CHUNK);
      t.match(down.stderr, /Input\/output error/, `${JSON.stringify(action)}: EIO`);
      proxy.clearRules();
      const back = await rangeHash(path, CHUNK, CHUNK);
      t.equal(back.stdout.slice(0, 64), chunkHash(1, bytes), `${JSON.stringify(action)}: the same read succeeds once the registry is back`);
    }
    t.equal((await sh('cat', join(root, 'data/hello.txt'))).stdout, 'hello\n', 'the daemon still serves');
  });

  await t.test('a corrupt chunk is EIO and logged; once the corruption stops the chunk reads right', async (t) => {
    const before = logs.length;
    // Every answer for the blob flips a byte: the fetcher's uncached retry sees it too.
    proxy.addRule({ path: /\/blobs\//, action: { flipByteAt: 1000 } });
    const corrupt = await rangeHash(victim, CHUNK, CHUNK);
    t.match(corrupt.stderr, /Input\/output error/, 'EIO, never the flipped bytes');
    t.not(corrupt.stdout.slice(0, 64), chunkHash(1, VICTIM));
    proxy.clearRules();
    t.match(logs.slice(before).join('\n'), /digest|BAD_DATA|sha256/i, `logged: ${logs.slice(before).join(' | ')}`);
    t.equal((await rangeHash(victim, CHUNK, CHUNK)).stdout.slice(0, 64), chunkHash(1, VICTIM), 'read again correctly');
    for (const [path, bytes] of [[victim, VICTIM], [big, BIG]] as const) {
      const whole = await sh('sha256sum', path);
      t.equal(whole.stdout.slice(0, 64), sha256(bytes).slice(7), `${path}: the whole file equals its source`);
    }
  });
});
