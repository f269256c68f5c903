// Issue 21 on a real mount, Debian's docker-registry and loopback only:
// - with --registry-allow naming the test registry, 127.0.0.1:1, another loopback port and
//   169.254.169.254 under images/ are ENOENT, each logged, and never dialled; 169.254.169.254 is refused
//   without the option too. Safety net: the proxy variables point at a loopback recorder, so even a
//   daemon that failed to refuse would send its requests there, never off the machine.
// - a registry that accepts and never answers: the read is EIO within --fetch-timeout plus a second,
//   while other operations go on; the same read works once the registry answers again.
// - a lookup succeeds within 2 s of the registry's recovery (was: failures remembered 10 s).
import { execFile } from 'node:child_process';
import net from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t, { type Test } from 'tap';
import { estargzLayerFile } from '../support/estargz-build.js';
import { startFaultProxy } from '../support/fault-proxy.js';
import { buildImage, sha256 } from '../support/image-builder.js';
import { mountDaemon } from '../support/mount-daemon.js';
import { prng } from '../support/prng.js';
import { pushImage } from '../support/push.js';
import { startRegistry, type TestRegistry } from '../support/registry.js';
import { dir, file } from '../support/tar-dsl.js';
import { tempDir } from '../support/tmp.js';
import { proxyEnv } from '../support/proxy-env.js';

const run = promisify(execFile);
const CHUNK = 1 << 20;
const random = prng(0x2121);
const BIG = Buffer.from(Array.from({ length: 3 * CHUNK }, () => Math.floor(random() * 256)));

async function sh(cmd: string, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(cmd, args, { maxBuffer: 64 << 20 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

/** A TCP server on loopback that counts connections and answers nothing useful. */
async function recorder(t: Test): Promise<{ port: number; connections: () => number }> {
  let n = 0;
  const server = net.createServer((s) => {
    n++;
    s.on('error', () => {});
    s.end('HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { port: (server.address() as net.AddressInfo).port, connections: () => n };
}

/** A TCP forwarder to `target` that, while `hang` is set, swallows everything: accepts, never answers. */
async function hangingForwarder(t: Test, targetPort: number): Promise<{ host: string; hang(on: boolean): void }> {
  let hang = false;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(targetPort, '127.0.0.1');
    sockets.add(client).add(upstream);
    client.on('data', (d) => void (hang || upstream.write(d)));
    upstream.on('data', (d) => void (hang || client.write(d)));
    for (const [a, b] of [[client, upstream], [upstream, client]] as const) {
      a.on('error', () => b.destroy());
      a.on('close', () => b.destroy());
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    for (const s of sockets) s.destroy();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return { host: `127.0.0.1:${(server.address() as net.AddressInfo).port}`, hang: (on) => void (hang = on) };
}

async function imageIn(t: Test, name: string): Promise<TestRegistry> {
  const work = tempDir(t, name);
  const layer = await estargzLayerFile(join(work, 'layer'), [dir('data'), file('data/hello.txt', 'hello\n'), file('data/big.bin', BIG)], { chunkSize: CHUNK });
  const image = await buildImage(join(work, 'image'), { layers: [layer] });
  const reg = await startRegistry(t);
  await pushImage(reg.seedUrl, 'issue21/app', 'v1', image);
  return reg;
}


t.test('--registry-allow: other hosts are ENOENT, logged, never dialled; link-local refused without it', async (t) => {
  const reg = await imageIn(t, 'trust-allow');
  const trap = await recorder(t); // the proxies, and "another loopback port" with a listener
  proxyEnv(t, { HTTP_PROXY: `http://127.0.0.1:${trap.port}`, HTTPS_PROXY: `http://127.0.0.1:${trap.port}`, NO_PROXY: reg.host });

  await t.test('with --registry-allow naming the test registry', async (t) => {
    const { mnt, logs } = await mountDaemon(t, 'trust-allow', { registryAllow: [reg.host] });
    for (const host of ['127.0.0.1:1', `127.0.0.1:${trap.port}`, '169.254.169.254']) {
      const r = await sh('stat', join(mnt, 'images', host, 'x/y:z'));
      t.match(r.stderr, /No such file or directory/, `${host}: ENOENT`);
      const lines = logs.filter((l) => l.includes(host) && /not contacted/.test(l));
      t.equal(lines.length, 1, `${host}: one log line: ${lines.join(' | ')}`);
    }
    t.match(logs.join('\n'), /127\.0\.0\.1:1: not contacted: not in --registry-allow/);
    t.equal(trap.connections(), 0, 'nothing dialled: neither the other loopback port nor any proxy');
    const hello = await sh('cat', join(mnt, 'images', reg.host, 'issue21/app:v1/data/hello.txt'));
    t.equal(hello.stdout, 'hello\n', 'the allowed registry serves');
  });

  await t.test('without it: 169.254.169.254 is still refused', async (t) => {
    const { mnt, logs } = await mountDaemon(t, 'trust-linklocal');
    const r = await sh('stat', join(mnt, 'images', '169.254.169.254', 'latest/meta-data:x'));
    t.match(r.stderr, /No such file or directory/, 'ENOENT');
    t.match(logs.join('\n'), /169\.254\.169\.254: not contacted: a link-local address/);
    t.equal(trap.connections(), 0, 'never dialled');
  });
});

t.test('a registry that accepts and never answers: EIO within --fetch-timeout + 1 s, others go on', async (t) => {
  const reg = await imageIn(t, 'trust-hang');
  const fwd = await hangingForwarder(t, reg.port);
  const { mnt, logs } = await mountDaemon(t, 'trust-hang', { fetchTimeoutMs: 3000 });
  const root = join(mnt, 'images', fwd.host, 'issue21/app:v1');
  t.equal((await sh('cat', join(root, 'data/hello.txt'))).stdout, 'hello\n', 'served while the registry answers');
  fwd.hang(true);
  const started = Date.now();
  const reading = sh('dd', `if=${join(root, 'data/big.bin')}`, 'bs=4096', `skip=${CHUNK / 4096}`, 'count=1', 'status=none');
  await new Promise((r) => setTimeout(r, 500));
  const listed = Date.now();
  const ls = await sh('ls', join(root, 'data'));
  t.equal(ls.stdout, 'big.bin\nhello.txt\n', 'other operations go on meanwhile');
  t.ok(Date.now() - listed < 1000, 'without waiting for the hung read');
  const r = await reading;
  const waited = Date.now() - started;
  t.match(r.stderr, /Input\/output error/, 'EIO');
  t.ok(waited < 4000, `EIO after ${waited} ms (--fetch-timeout 3 s)`);
  const why = logs.filter((l) => /TIMEOUT/.test(l));
  t.equal(why.length, 1, `the cause logged once: ${why.join(' | ')}`);
  t.match(why[0], /no answer within 3 s \(--fetch-timeout\)/);
  fwd.hang(false);
  // A registry that ran out a budget is not asked again for a second (registry/blobs.ts `stalled`).
  await new Promise((r) => setTimeout(r, 1100));
  const back = await sh('sh', '-c', `dd if="$1" bs=4096 skip=${CHUNK / 4096} count=${CHUNK / 4096} status=none | sha256sum`, 'dd', join(root, 'data/big.bin'));
  t.equal(back.stdout.slice(0, 64), sha256(BIG.subarray(CHUNK, 2 * CHUNK)).slice(7), 'the same read works once the registry answers');
});

t.test('a lookup succeeds within 2 s of the registry recovering', async (t) => {
  const reg = await imageIn(t, 'trust-recover');
  const proxy = await startFaultProxy(t, { target: reg.url });
  const { mnt } = await mountDaemon(t, 'trust-recover');
  const root = join(mnt, 'images', proxy.host, 'issue21/app:v1');
  proxy.addRule({ path: /\/manifests\//, action: { status: 503 } });
  const down = await sh('stat', root);
  t.match(down.stderr, /Input\/output error/, 'EIO while the registry fails');
  proxy.clearRules();
  const recovered = Date.now();
  let ok = false;
  while (!ok && Date.now() - recovered < 12_000) {
    ok = (await sh('stat', root)).code === 0;
    if (!ok) await new Promise((r) => setTimeout(r, 100));
  }
  const after = Date.now() - recovered;
  t.ok(ok && after < 2000, `the lookup succeeded ${after} ms after the recovery`);
});
