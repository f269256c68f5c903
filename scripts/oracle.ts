// Checks tocfs against the oracle for any registry image: `skopeo copy` + `umoci unpack` of REF on one side,
// REF mounted by tocfs on the other, then every path compared (type, mode incl. setuid/setgid/sticky,
// uid/gid, size, sha256 of contents, symlink target, device numbers, xattrs, mtime, hardlink groups).
//
//   npx tsx scripts/oracle.ts REF [--insecure-registry HOST[:PORT]]... [--platform OS/ARCH[/VARIANT]] [--keep]
//
// Exits 0 when the trees are equal, 1 with the differences listed when not, 2 on a usage or setup error.
// Needs root (FUSE), skopeo, umoci and python3; reads every file of the image, so it moves the whole image.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { createDaemon } from '../src/daemon/daemon.js';
import { parsePlatform } from '../src/registry/platform.js';
import { formatReference, isLoopbackRegistry, parseReference } from '../src/registry/reference.js';
import { makeTempDir, removeDir } from '../test/support/tmp.js';
import { withoutSingularityAdditions } from '../test/support/singularity-additions.js';
import { diffSnapshots, snapshotTree, type TreeSnapshot } from '../test/support/tree-snapshot.js';

const run = promisify(execFile);

function usage(message: string): never {
  process.stderr.write(`oracle: ${message}\nusage: npx tsx scripts/oracle.ts REF [--insecure-registry HOST[:PORT]]... [--platform OS/ARCH[/VARIANT]] [--keep]\n`);
  process.exit(2);
}

/** tocfs's own figures on an image root are not part of the image. */
function withoutFigures(snapshot: TreeSnapshot): TreeSnapshot {
  const root = snapshot[''];
  if (!root) return snapshot;
  const xattrs = Object.fromEntries(Object.entries(root.xattrs).filter(([name]) => !name.startsWith('user.tocfs.')));
  return { ...snapshot, '': { ...root, xattrs } };
}

async function main(): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      allowPositionals: true,
      options: { 'insecure-registry': { type: 'string', multiple: true }, platform: { type: 'string' }, keep: { type: 'boolean' } },
    });
  } catch (err) {
    usage((err as Error).message);
  }
  const [text, ...extra] = parsed.positionals;
  if (text === undefined || extra.length > 0) usage('needs exactly one image reference');
  const ref = parseReference(text);
  const insecure = parsed.values['insecure-registry'] ?? [];
  const platform = parsed.values.platform ? parsePlatform(parsed.values.platform) : undefined;
  const plainHttp = insecure.includes(ref.registry) || isLoopbackRegistry(ref.registry);
  const shown = formatReference(ref);

  const work = makeTempDir('oracle');
  const log: string[] = [];
  let daemon: Awaited<ReturnType<typeof createDaemon>> | undefined;
  try {
    process.stderr.write(`oracle: skopeo copy + umoci unpack of ${shown}\n`);
    const platformArgs = platform ? ['--override-os', platform.os, '--override-arch', platform.architecture, ...(platform.variant ? ['--override-variant', platform.variant] : [])] : [];
    await run('skopeo', ['copy', '--quiet', ...platformArgs, ...(plainHttp ? ['--src-tls-verify=false'] : []), `docker://${shown}`, `oci:${join(work, 'layout')}:image`], {
      maxBuffer: 16 << 20,
    });
    await run('umoci', ['unpack', '--image', `${join(work, 'layout')}:image`, join(work, 'bundle')], { maxBuffer: 16 << 20 });
    const want = await snapshotTree(join(work, 'bundle/rootfs'));

    process.stderr.write(`oracle: mounting ${shown} with tocfs\n`);
    daemon = await createDaemon({
      mountpoint: join(work, 'mnt'),
      cacheDir: join(work, 'cache'),
      cacheSize: 64 * 2 ** 30,
      insecureRegistries: insecure,
      ...(platform ? { platform } : {}),
      handleSignals: false,
      log: (line) => log.push(line),
    });
    const suffix = ref.digest !== undefined ? `@${ref.digest}` : `:${ref.tag ?? 'latest'}`;
    const mounted = withoutFigures(await snapshotTree(join(work, 'mnt', 'images', ref.registry, `${ref.repository}${suffix}`)));
    // What tocfs adds for Singularity/Apptainer where the image lacks it (README "Run a job") is no difference.
    const { tree: got, added } = withoutSingularityAdditions(mounted, want);

    const diff = diffSnapshots(got, want);
    if (diff.length === 0) {
      process.stdout.write(`oracle: ${shown}: equal to umoci unpack (${Object.keys(want).length} paths; plus ${added.length} synthesised for Apptainer)\n`);
      return 0;
    }
    process.stdout.write(`oracle: ${shown}: ${diff.length} difference(s) from umoci unpack:\n${diff.map((d) => `  ${d}`).join('\n')}\n`);
    if (log.length > 0) process.stdout.write(`tocfs log:\n${log.map((l) => `  ${l}`).join('\n')}\n`);
    return 1;
  } finally {
    await daemon?.close();
    if (parsed.values.keep) process.stderr.write(`oracle: kept ${work}\n`);
    else removeDir(work);
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`oracle: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(2);
  },
);
