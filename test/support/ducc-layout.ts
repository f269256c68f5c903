// A directory in the exact layout DUCC publishes on unpacked.cern.ch (DESIGN.md §3.5), built from a test
// image, and a read-only bind mount of it to behave like CVMFS:
//   .layers/HEX[0:2]/HEX/layerfs/            each layer unpacked by GNU tar's rules (as `cvmfs_server ingest`
//                                            of the layer tar does: whiteouts stay `.wh.*` files), or turned
//                                            into overlayfs's form (char 0/0 whiteouts, trusted.overlay.opaque)
//   .layers/HEX[0:2]/HEX/.metadata/origin.json   DUCC's backlink record, written once a layer is in
//   .metadata/HOST/REPO:TAG/manifest.json    the manifest, written once every layer is in
//   .flat/CFG[0:2]/CFG/  and  HOST/REPO:TAG -> .flat/...   a whole rootfs with .singularity.d
import { execFile } from 'node:child_process';
import { mkdir, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { promisify } from 'node:util';
import type { Test } from 'tap';
import type { BuiltImage } from './image-builder.js';
import { dir as dirEntry, type TarEntry } from './tar-dsl.js';
import { makeTempDir, removeDir } from './tmp.js';

const run = promisify(execFile);

/** How one layer appears on CVMFS: unpacked as tar writes it, in overlayfs's whiteout form, or not at all. */
export type DuccLayerStyle = 'tar' | 'overlay' | 'absent';

/** What DUCC needs of an image: its manifest bytes, config digest, and each layer's blob on disk. */
export interface DuccImage {
  readonly manifest: Pick<BuiltImage['manifest'], 'bytes'>;
  readonly config: Pick<BuiltImage['config'], 'digest'>;
  readonly layers: readonly Pick<BuiltImage['layers'][number], 'digest' | 'path'>[];
}

/** An OCI image layout's tag as a DuccImage (blobs under `blobs/sha256/`). */
export async function duccImageOfLayout(layout: string, tag: string): Promise<DuccImage> {
  const blob = (digest: string): string => join(layout, 'blobs', 'sha256', hexOf(digest));
  const index = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8')) as { manifests: { digest: string; annotations?: Record<string, string> }[] };
  const desc = index.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === tag);
  if (!desc) throw new Error(`${layout} has no tag ${tag}`);
  const bytes = await readFile(blob(desc.digest));
  const manifest = JSON.parse(bytes.toString()) as { config: { digest: string }; layers: { digest: string }[] };
  return { manifest: { bytes }, config: { digest: manifest.config.digest }, layers: manifest.layers.map((l) => ({ digest: l.digest, path: blob(l.digest) })) };
}

export interface DuccRepoSpec {
  readonly image: DuccImage;
  /** Registry host as DUCC writes it (e.g. `registry.hub.docker.com`, or `127.0.0.1:PORT`). */
  readonly host: string;
  readonly repository: string;
  readonly tag: string;
  /** One per layer of the image, bottom to top. */
  readonly layers: readonly DuccLayerStyle[];
  /** Write each present layer's `.metadata/origin.json` (DUCC's "ingested" record). Default true. */
  readonly origins?: boolean;
  /** Write `.metadata/HOST/REPO:TAG/manifest.json`. Default true. */
  readonly manifestRecord?: boolean;
  /** A rootfs to publish as `.flat/CFG[0:2]/CFG` (copied, plus a `.singularity.d`). */
  readonly flatFrom?: string;
}

const hexOf = (digest: string): string => digest.replace(/^sha256:/, '');

export function layerfsOf(root: string, digest: string): string {
  const hex = hexOf(digest);
  return join(root, '.layers', hex.slice(0, 2), hex, 'layerfs');
}

/** Writes the DUCC layout for one image under `root` (which may already hold other images). */
export async function buildDuccRepo(root: string, spec: DuccRepoSpec): Promise<void> {
  const { image } = spec;
  for (const [i, layer] of image.layers.entries()) {
    const style = spec.layers[i] ?? 'absent';
    if (style === 'absent') continue;
    const layerfs = layerfsOf(root, layer.digest);
    await mkdir(layerfs, { recursive: true });
    // As root: owners, modes incl. setuid, devices, hardlinks, xattrs (security.capability too), sparse files.
    await run('tar', ['--xattrs', "--xattrs-include=*", '--numeric-owner', '--same-owner', '-xpf', layer.path, '-C', layerfs]);
    if (style === 'overlay') await toOverlayWhiteouts(layerfs);
    if (spec.origins !== false) {
      const meta = join(dirname(layerfs), '.metadata');
      await mkdir(meta, { recursive: true });
      await writeFile(join(meta, 'origin.json'), JSON.stringify({ origin: [image.config.digest] }));
    }
  }
  if (spec.manifestRecord !== false) {
    const record = join(root, '.metadata', spec.host, `${spec.repository}:${spec.tag}`);
    await mkdir(record, { recursive: true });
    await writeFile(join(record, 'manifest.json'), image.manifest.bytes);
  }
  if (spec.flatFrom !== undefined) {
    const hex = hexOf(image.config.digest);
    const flat = join(root, '.flat', hex.slice(0, 2), hex);
    await mkdir(dirname(flat), { recursive: true });
    await run('cp', ['-a', spec.flatFrom, flat]);
    await mkdir(join(flat, '.singularity.d', 'env'), { recursive: true });
    await writeFile(join(flat, '.singularity.d', 'env', '10-docker2singularity.sh'), '#!/bin/sh\n');
    await writeFile(join(flat, '.singularity.d', 'runscript'), '#!/bin/sh\nexec "$@"\n');
    const link = join(root, spec.host, `${spec.repository}:${spec.tag}`);
    await mkdir(dirname(link), { recursive: true });
    await symlink(relative(dirname(link), flat), link);
  }
}

/**
 * overlayfs's form of a layer: `.wh.NAME` becomes a char device 0/0 named NAME (unless the layer also
 * holds NAME, which already replaces it), `.wh..wh..opq` becomes `trusted.overlay.opaque=y` on its dir.
 */
async function toOverlayWhiteouts(dir: string): Promise<void> {
  for (const ent of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, ent.name);
    if (ent.isDirectory() && !ent.name.startsWith('.wh.')) await toOverlayWhiteouts(path);
    if (!ent.isFile() || !ent.name.startsWith('.wh.')) continue;
    await rm(path);
    if (ent.name === '.wh..wh..opq') {
      await run('setfattr', ['-n', 'trusted.overlay.opaque', '-v', 'y', dir]);
      continue;
    }
    const name = ent.name.slice('.wh.'.length);
    const target = join(dir, name);
    const same = (await readdir(dir, { withFileTypes: true })).find((e) => e.name === name);
    // A directory deleted and made anew in one layer is, for overlayfs, an opaque directory.
    if (same?.isDirectory()) await run('setfattr', ['-n', 'trusted.overlay.opaque', '-v', 'y', target]);
    else if (same === undefined) await run('mknod', [target, 'c', '0', '0']);
  }
}

/** A read-only bind mount of `src`, unmounted (then removed) when `t` ends: CVMFS as a client sees it. */
export async function readOnlyBind(t: Test, src: string, name: string): Promise<string> {
  const mnt = makeTempDir(`${name}-ro`);
  let mounted = false;
  t.teardown(async () => {
    if (mounted) await run('umount', [mnt]).catch(() => run('umount', ['-l', mnt]));
    removeDir(mnt);
  });
  await run('mount', ['--bind', src, mnt]);
  mounted = true;
  await run('mount', ['-o', 'remount,bind,ro', mnt]);
  return mnt;
}

/**
 * The layers as a Docker build writes them: every parent directory of an entry is an entry of the same
 * layer (default metadata where the image does not say), instead of implied as umoci's layers leave them.
 * A layer unpacked into a directory cannot tell an implied parent from a real one, so DUCC's layerfs is
 * faithful to this form; tests compare CVMFS trees against `umoci unpack` of images built from it.
 * (Directories named `.wh.*` stay implied: umoci would read such a dir entry as a whiteout.)
 */
export function withExplicitParents(layers: readonly TarEntry[][]): TarEntry[][] {
  return layers.map((entries) => {
    const out: TarEntry[] = [];
    const dirs = new Set(entries.filter((e) => e.type === 'dir').map((e) => e.path.replace(/\/$/, '')));
    for (const e of entries) {
      const parts = e.path.replace(/\/$/, '').split('/');
      for (let i = 1; i < parts.length; i++) {
        const parent = parts.slice(0, i).join('/');
        if (dirs.has(parent) || parts[i - 1]!.startsWith('.wh.')) continue;
        dirs.add(parent);
        out.push(dirEntry(parent));
      }
      out.push(e);
    }
    return out;
  });
}
