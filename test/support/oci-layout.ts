// OCI image layouts on disk, and `umoci unpack` over them: the oracle tree that mounted images are
// compared against (DESIGN.md §1.3).
import { execFile } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { copyOrLink, type BuiltImage } from './image-builder.js';

const run = promisify(execFile);

const REF_NAME = 'org.opencontainers.image.ref.name';

interface LayoutIndex {
  schemaVersion: 2;
  mediaType?: string;
  manifests: { mediaType: string; digest: string; size: number; annotations?: Record<string, string> }[];
}

async function readIndex(dir: string): Promise<LayoutIndex> {
  try {
    return JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as LayoutIndex;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    return { schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [] };
  }
}

/**
 * Adds `image` to the layout at `dir` (created if missing) under `tag`, replacing an earlier image of
 * that tag. Layer blobs are hardlinked from the build directory when on the same filesystem.
 */
export async function writeOciLayout(dir: string, tag: string, image: BuiltImage): Promise<string> {
  const blobs = join(dir, 'blobs', 'sha256');
  await mkdir(blobs, { recursive: true });
  await writeFile(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  for (const layer of image.layers) await copyOrLink(layer.path, join(blobs, layer.digest.slice(7)));
  for (const doc of [image.config, image.manifest]) await writeFile(join(blobs, doc.digest.slice(7)), doc.bytes);

  const index = await readIndex(dir);
  index.manifests = index.manifests.filter((m) => m.annotations?.[REF_NAME] !== tag);
  index.manifests.push({
    mediaType: image.manifest.mediaType,
    digest: image.manifest.digest,
    size: image.manifest.bytes.length,
    annotations: { [REF_NAME]: tag },
  });
  await writeFile(join(dir, 'index.json'), JSON.stringify(index));
  return dir;
}

/**
 * `umoci unpack --image LAYOUT:TAG BUNDLE` as root (so devices, ownership and `security.*` xattrs are
 * applied for real) and returns `BUNDLE/rootfs`. `bundleDir` must not exist yet or be empty. umoci 0.4.7
 * cannot unpack `tar+zstd` layers, and takes only OCI media types.
 */
export async function umociUnpack(layoutDir: string, tag: string, bundleDir: string): Promise<string> {
  try {
    // Under the usual umask: a daemon made in this process set its own (077, its cache is private), and
    // umoci makes the directories a layer only implies with the umask it inherits.
    await run('sh', ['-c', 'umask 022 && exec umoci unpack --image "$1" "$2"', 'umoci', `${layoutDir}:${tag}`, bundleDir], { maxBuffer: 16 << 20 });
  } catch (err) {
    const e = err as Error & { stderr?: string };
    throw new Error(`umoci unpack ${layoutDir}:${tag} failed: ${e.stderr ?? e.message}`, { cause: err });
  }
  return join(bundleDir, 'rootfs');
}
