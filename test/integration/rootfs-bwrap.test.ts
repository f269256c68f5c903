// A real Debian root filesystem over the mount (issue 4, "Done when"): debootstrap --variant=minbase bookworm
// (built once per machine, test/support/rootfs.ts) pushed as gzip, converted to eStargz by `tocfs convert`,
// mounted behind the fault proxy, then run with bwrap as root and as an unprivileged user. The proxy's
// counters give the fraction of the image's bytes that running a shell moved; a walk of the whole tree
// afterwards must equal `umoci unpack` of the same image.
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { runTocfs } from '../support/cli.js';
import { startFaultProxy } from '../support/fault-proxy.js';
import { mountDaemon } from '../support/mount-daemon.js';
import { umociUnpack } from '../support/oci-layout.js';
import { startRegistry } from '../support/registry.js';
import { BOOKWORM_MINBASE, cachedRootfsImage, pushLayout } from '../support/rootfs.js';
import { tempDir } from '../support/tmp.js';
import { diffSnapshots, snapshotTree } from '../support/tree-snapshot.js';

const run = promisify(execFile);
t.setTimeout(15 * 60_000);

interface Ran {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

async function sh(cmd: string, args: readonly string[]): Promise<Ran> {
  try {
    const { stdout, stderr } = await run(cmd, [...args], { maxBuffer: 64 << 20 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string; message?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? e.message ?? '' };
  }
}

/** bwrap over the image root, as root or (with setpriv) as nobody, who needs an unprivileged user namespace. */
function bwrap(root: string, script: string, asUser?: number): Promise<Ran> {
  const inner = ['bwrap', '--ro-bind', root, '/', '--proc', '/proc', '--dev', '/dev', '--tmpfs', '/tmp', '/bin/sh', '-c', script];
  return asUser === undefined ? sh(inner[0]!, inner.slice(1)) : sh('setpriv', [`--reuid=${asUser}`, `--regid=${asUser}`, '--clear-groups', ...inner]);
}

t.test('a debootstrap rootfs as eStargz runs under bwrap, as root and as a user, moving a small fraction', async (t) => {
  const layout = await cachedRootfsImage(BOOKWORM_MINBASE.name, [BOOKWORM_MINBASE]);
  const index = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
  const manifest = JSON.parse(await readFile(join(layout, 'blobs/sha256', index.manifests[0]!.digest.slice(7)), 'utf8')) as {
    layers: { size: number }[];
  };
  const gzipBytes = manifest.layers.reduce((sum, l) => sum + l.size, 0);

  const reg = await startRegistry(t);
  await pushLayout(layout, 'latest', reg.seedHost, 'debian/minbase:gzip');
  const converted = await runTocfs(['convert', `${reg.seedHost}/debian/minbase:gzip`, `${reg.seedHost}/debian/minbase:estargz`]);
  t.equal(converted.code, 0, `tocfs convert exits 0 ${converted.err}`);
  // `tocfs ls --layers`: a comment line, then DIGEST<TAB>MEDIA TYPE<TAB>SIZE per layer.
  const listing = (await runTocfs(['ls', `${reg.seedHost}/debian/minbase:estargz`, '--layers'])).text;
  const estargzBytes = listing
    .split('\n')
    .filter((line) => line.startsWith('sha256:'))
    .reduce((sum, line) => sum + Number(line.split('\t')[2]), 0);

  const proxy = await startFaultProxy(t, { target: reg.url });
  const { mnt, logs } = await mountDaemon(t, 'rootfs-bwrap');
  const root = join(mnt, 'images', proxy.host, 'debian/minbase:estargz');
  proxy.resetCounters();

  const script = 'cat /etc/debian_version; id -u; ls /usr/bin | grep -c .; test -r /etc/shadow && echo shadow-readable || echo shadow-private';
  const asRoot = await bwrap(root, script);
  t.equal(asRoot.code, 0, `bwrap as root exits 0 ${asRoot.stderr}`);
  const [version, uid, binaries, shadow] = asRoot.stdout.trim().split('\n');
  t.match(version, /^12\.\d+$/, `the image's /etc/debian_version (${version})`);
  t.equal(uid, '0');
  t.ok(Number(binaries) > 100, `${binaries} programs in /usr/bin`);
  t.equal(shadow, 'shadow-readable', 'root reads /etc/shadow');

  const asNobody = await bwrap(root, script, 65534);
  t.equal(asNobody.code, 0, `bwrap as nobody exits 0 ${asNobody.stderr}`);
  t.same(asNobody.stdout.trim().split('\n'), [version, '65534', binaries, 'shadow-private'], 'as nobody: same tree, /etc/shadow (0640 root:shadow) stays private');

  const dpkg = await bwrap(root, 'dpkg-query --show | wc -l', 65534);
  t.ok(Number(dpkg.stdout) > 50, `dpkg reads its database as a user (${dpkg.stdout.trim()} packages) ${dpkg.stderr}`);

  // Let a prefetch the open may have started finish before reading the counters.
  await new Promise((resolve) => setTimeout(resolve, 500));
  const moved = proxy.counters.byKind.blobs.bytes;
  const fraction = moved / estargzBytes;
  t.comment(
    `running sh, cat, id, ls, grep and dpkg-query moved ${moved} blob bytes of a ${estargzBytes}-byte eStargz image ` +
      `(${(100 * fraction).toFixed(2)} %; the gzip original is ${gzipBytes} bytes) in ${proxy.counters.byKind.blobs.requests} blob requests`,
  );
  t.ok(estargzBytes > 20e6, `the eStargz image is ${estargzBytes} bytes`);
  t.ok(fraction < 0.15, `moved ${(100 * fraction).toFixed(2)} % of the image`);

  await t.test('the whole mounted tree equals umoci unpack of the same image', async (t) => {
    const work = tempDir(t, 'rootfs-bwrap');
    const want = await snapshotTree(await umociUnpack(layout, 'latest', join(work, 'bundle')));
    // Reading every file cold one after another is a round trip each (thousands): fill the cache with 32
    // readers first, as a job's many processes would, so the walk below reads verified local chunks.
    const warm = await sh('sh', ['-c', 'find "$1" -type f -print0 | xargs -0 -P 32 -n 32 cat > /dev/null', 'warm', root]);
    t.equal(warm.code, 0, `every file reads ${warm.stderr}`);
    const got = await snapshotTree(root);
    const top = got[''];
    if (top) got[''] = { ...top, xattrs: Object.fromEntries(Object.entries(top.xattrs).filter(([k]) => !k.startsWith('user.tocfs.'))) };
    t.ok(Object.keys(want).length > 5000, `${Object.keys(want).length} paths`);
    t.same(diffSnapshots(got, want), [], 'same paths, types, modes, owners, sizes, contents, links, xattrs and mtimes');
  });

  t.notMatch(logs.join('\n'), /error/i, 'nothing logged as an error');
});
