// Builds (once, cached under /var/cache/tocfs-test) the benchmark's images as OCI layouts, pushes them and
// produces every variant in the bench registry: plain gzip (as built), eStargz (`tocfs convert`), eStargz
// optimized (`tocfs convert --prioritize-from` the files the recorded workloads read through a mount) and
// zstd:chunked (when `tocfs convert` supports it).
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cachedRootfs, pushLayout, type RootfsSpec } from '../../test/support/rootfs.js';
import { startDaemon } from './daemon.js';
import { run } from './proc.js';
import { RegistryClient } from '../../src/registry/client.js';
import { DEBOOTSTRAP, ENV, RECORDED_WORKLOADS, WORKLOADS, type AppRoot } from './workloads.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const BIN = join(ROOT, 'bin/tocfs.js');
const LONG = { maxBuffer: 64 << 20, timeout: 60 * 60_000 };

export interface Variant {
  readonly name: string;
  /** tocfs convert arguments; undefined: the image as pushed (plain gzip). */
  readonly convert?: readonly string[];
  /** Prioritised by the files the recorded workloads read (the optimise workflow). */
  readonly optimize?: boolean;
  /**
   * `tocfs index` arguments: the plain gzip image, unchanged but for an annotation that gives it a manifest
   * of its own (a SOCI index refers to a manifest digest), with a SOCI index beside it.
   */
  readonly index?: readonly string[];
  /** Measured as another variant's image (its tag), after a first mount on the same node pulled it. */
  readonly afterPullOf?: string;
}

export const VARIANTS: readonly Variant[] = [
  { name: 'gzip' },
  { name: 'estargz', convert: ['--format', 'estargz'] },
  { name: 'estargz-opt', convert: ['--format', 'estargz'], optimize: true },
  { name: 'zstd-chunked', convert: ['--format', 'zstd-chunked'] }, // skipped (and said so) when `tocfs convert` refuses the format
  { name: 'gzip-soci', index: ['--span-size', '4M'] },
  { name: 'gzip-soci-1m', index: ['--span-size', '1M'] },
  { name: 'gzip-after-pull', afterPullOf: 'gzip' },
];

const isAppRoot = (r: RootfsSpec | AppRoot): r is AppRoot => 'args' in r;

/** The cached layout of an image built from `roots`, each root built first when missing. */
export async function buildLayout(name: string, roots: readonly (RootfsSpec | AppRoot)[]): Promise<string> {
  if (roots.some((r) => isAppRoot(r) && r.base === DEBOOTSTRAP.name)) await cachedRootfs(DEBOOTSTRAP);
  for (const root of roots) {
    if (isAppRoot(root)) await run('bash', [join(ROOT, 'bench/app-root.sh'), root.name, root.base, ...root.args], LONG);
    else await cachedRootfs(root);
  }
  const { stdout } = await run('bash', [join(ROOT, 'scripts/rootfs-image.sh'), name, ...roots.map((r) => r.name)], LONG);
  return stdout.trim().split('\n').pop()!;
}

export function rootDir(name: string): string {
  return join(process.env['TOCFS_TEST_CACHE'] ?? '/var/cache/tocfs-test', 'rootfs', name);
}

/** Compressed bytes of the layers of an image in an OCI layout (tag latest). */
export function layoutLayerBytes(layout: string): number {
  const index = JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
  const blob = (d: string): string => join(layout, 'blobs', ...d.split(':'));
  const manifest = JSON.parse(readFileSync(blob(index.manifests[0]!.digest), 'utf8')) as { layers: { size: number }[] };
  return manifest.layers.reduce((s, l) => s + l.size, 0);
}

/** Compressed bytes of the layers of a pushed image. */
export async function pushedLayerBytes(ref: string): Promise<number> {
  const { stdout } = await run('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${ref}`], LONG);
  return (JSON.parse(stdout) as { layers: { size: number }[] }).layers.reduce((s, l) => s + l.size, 0);
}

export function tocfs(args: readonly string[]): Promise<{ stdout: string; stderr: string }> {
  return run(process.execPath, [BIN, ...args], LONG);
}

export interface PushedVariant {
  readonly variant: string;
  readonly ref: string;
  readonly layerBytes: number;
}

/**
 * Pushes `layout` as REPO:gzip and produces the other variants in the registry at `host`. Returns those
 * produced, and the reasons for those skipped.
 */
export async function pushVariants(
  layout: string,
  host: string,
  repo: string,
  workDir: string,
  log: (l: string) => void,
  only?: readonly string[],
): Promise<{ pushed: PushedVariant[]; skipped: Record<string, string> }> {
  const pushed: PushedVariant[] = [];
  const skipped: Record<string, string> = {};
  const src = `${host}/${repo}:gzip`;
  await pushLayout(layout, 'latest', host, `${repo}:gzip`);
  for (const v of VARIANTS) {
    if (only && !only.includes(v.name)) continue;
    const ref = `${host}/${repo}:${v.name}`;
    if (v.convert) {
      const extra: string[] = [];
      if (v.optimize) {
        const list = join(workDir, `${repo.replace(/\W/g, '_')}-accessed.txt`);
        const files = await recordAccesses(host, `${repo}:estargz`, log);
        writeFileSync(list, files.map((f) => `${f}\n`).join(''));
        log(`${repo}: ${files.length} files read by ${RECORDED_WORKLOADS.join(', ')}`);
        extra.push('--prioritize-from', list);
      }
      try {
        log(`${repo}: tocfs convert ${v.convert.join(' ')} ${extra.join(' ')} -> ${v.name}`);
        await tocfs(['convert', src, ref, ...v.convert, ...extra]);
      } catch (err) {
        const text = `${(err as { stderr?: string }).stderr ?? ''} ${(err as Error).message}`;
        if (/not supported/.test(text)) {
          skipped[v.name] = 'tocfs convert does not support this format yet';
          log(`${repo}: ${v.name} skipped: ${skipped[v.name]}`);
          continue;
        }
        throw err;
      }
    }
    if (v.index) {
      await retag(host, repo, 'gzip', v.name);
      log(`${repo}: tocfs index ${v.index.join(' ')} -> ${v.name}`);
      await tocfs(['index', ref, ...v.index, '--insecure-registry', host]);
    }
    const image = v.afterPullOf ? `${host}/${repo}:${v.afterPullOf}` : ref;
    pushed.push({ variant: v.name, ref: image, layerBytes: await pushedLayerBytes(image) });
  }
  return { pushed, skipped };
}

/** Puts REPO:FROM's manifest again as REPO:TO with an annotation naming TO: the same image, its own digest. */
async function retag(host: string, repo: string, from: string, to: string): Promise<void> {
  const client = new RegistryClient({ insecureRegistries: [host] });
  try {
    const r = { registry: host, repository: repo };
    const fetched = await client.getManifest(r, from);
    const doc = JSON.parse(Buffer.from(fetched.bytes).toString()) as { annotations?: Record<string, string> };
    doc.annotations = { ...doc.annotations, 'io.tocfs.bench.variant': to };
    await client.putManifest(r, to, fetched.mediaType, Buffer.from(JSON.stringify(doc)));
  } finally {
    await client.close();
  }
}

/** The optimise workflow: run the recorded workloads on a mount of IMAGE, then `tocfs stats --accessed`. */
async function recordAccesses(host: string, image: string, log: (l: string) => void): Promise<string[]> {
  const daemon = await startDaemon({ registryHost: host });
  try {
    const root = join(daemon.mnt, 'images', host, image);
    for (const name of RECORDED_WORKLOADS) {
      const w = WORKLOADS.find((x) => x.name === name)!;
      const r = await run('chroot', [root, ...w.argv], { env: ENV, ...LONG });
      log(`recording ${name}: ${r.stdout.trim().slice(0, 80)}`);
    }
    const { stdout } = await tocfs(['stats', daemon.mnt, '--accessed', `images/${host}/${image}`]);
    return stdout.split('\n').filter(Boolean);
  } finally {
    await daemon.stop();
  }
}
