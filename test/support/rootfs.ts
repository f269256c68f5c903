// Real Debian root filesystems for tests and benchmarks, built once per machine and cached
// (scripts/rootfs.sh, scripts/rootfs-image.sh: flock-serialised, so parallel test files share one build).
// scripts/test.sh prebuilds the ones the suite uses, so tap's per-file timeout never counts a debootstrap.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const tocfsRoot = fileURLToPath(new URL('../..', import.meta.url));
const BUILD_TIMEOUT_MS = 20 * 60_000;

export interface RootfsSpec {
  /** Cache key, e.g. `bookworm-minbase`. */
  readonly name: string;
  /** Debian suite for debootstrap (ignored with `from`). */
  readonly suite: string;
  /** Start from this cached root instead of a fresh debootstrap. */
  readonly from?: string;
  /** Installed with apt-get inside the root. */
  readonly packages?: readonly string[];
}

/** The minbase bookworm root that the suite's rootfs tests run (debootstrap --variant=minbase). */
export const BOOKWORM_MINBASE: RootfsSpec = { name: 'bookworm-minbase', suite: 'bookworm' };
/** Debian sid minbase: the base of the Apptainer root (Apptainer is packaged for sid only, with sid's libc). */
export const SID_MINBASE: RootfsSpec = { name: 'sid-minbase', suite: 'sid' };
/** sid + apptainer, run with scripts/in-rootfs.sh (TESTING.md, "Runtimes over a FUSE tree"). */
export const SID_APPTAINER: RootfsSpec = { name: 'sid-apptainer', suite: 'sid', from: 'sid-minbase', packages: ['apptainer'] };

/** The directory of a cached root, building it (and nothing else) when missing. */
export async function cachedRootfs(spec: RootfsSpec): Promise<string> {
  const args = [join(tocfsRoot, 'scripts/rootfs.sh'), spec.name, spec.suite];
  if (spec.from) args.push('--from', spec.from);
  args.push(...(spec.packages ?? []));
  const { stdout } = await run('bash', args, { timeout: BUILD_TIMEOUT_MS, maxBuffer: 1 << 20 });
  return stdout.trim().split('\n').pop()!;
}

/**
 * A cached OCI image layout (tag `latest`) with one gzip layer per root, bottom first; each root is built
 * when missing. Layer i holds the difference between roots i-1 and i.
 */
export async function cachedRootfsImage(name: string, roots: readonly RootfsSpec[]): Promise<string> {
  for (const root of roots) await cachedRootfs(root);
  const args = [join(tocfsRoot, 'scripts/rootfs-image.sh'), name, ...roots.map((r) => r.name)];
  const { stdout } = await run('bash', args, { timeout: BUILD_TIMEOUT_MS, maxBuffer: 1 << 20 });
  return stdout.trim().split('\n').pop()!;
}

/** Pushes an OCI layout's tag to a plain-HTTP registry with skopeo (as a user would), as `REPO:TAG`. */
export async function pushLayout(layout: string, tag: string, registryHost: string, repoTag: string): Promise<void> {
  await run('skopeo', ['copy', '--quiet', '--dest-tls-verify=false', `oci:${layout}:${tag}`, `docker://${registryHost}/${repoTag}`], {
    timeout: BUILD_TIMEOUT_MS,
    maxBuffer: 16 << 20,
  });
}
