// One measured run of each kind, from nothing (cold page cache, fresh tocfs cache and mount, TCP metrics
// forgotten) to the workload's first output:
//   tocfs:      start `tocfs mount`, wait for the mount, chroot into MNT/images/HOST/REPO:TAG and run;
//   full pull:  `skopeo copy` to an OCI layout, `umoci unpack`, chroot into the rootfs and run (what a user
//               does today); the pull is timed once per run and every workload is run right after it.
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { BenchRegistry } from './registry.js';
import { startDaemon } from './daemon.js';
import { VARIANTS } from './images.js';
import { dropCaches, run, timed } from './proc.js';
import { ENV, type Workload } from './workloads.js';

export interface Sample {
  readonly profile: string;
  readonly image: string;
  /** A variant name, or 'full-pull'. */
  readonly variant: string;
  readonly workload: string;
  readonly run: number;
  /** ms from nothing to the first output (to exit for a silent command). */
  readonly firstMs: number;
  readonly exitMs: number;
  /** Response body bytes and requests at the registry (its access log). */
  readonly bytes: number;
  readonly requests: number;
  /** tocfs daemon only: ms from nothing to the mount showing in the mount table (node start, daemon set-up). */
  readonly mountMs?: number;
  /** tocfs daemon only: CPU seconds, peak RSS bytes, filesystem calls from FUSE ops. */
  readonly cpuS?: number;
  readonly rssB?: number;
  readonly fuseOps?: number;
  /** full pull only: ms of skopeo copy and of umoci unpack. */
  readonly pullMs?: number;
  readonly unpackMs?: number;
}

export interface RunContext {
  readonly profile: string;
  readonly image: string;
  readonly run: number;
  readonly registry: BenchRegistry;
  readonly resetTcp: () => Promise<void>;
}

export async function measureTocfs(ctx: RunContext, variant: string, repo: string, w: Workload): Promise<Sample> {
  const label = `${ctx.profile}-${ctx.image}-${variant}-${w.name}-${ctx.run}`;
  // A second mount on the node: a first one ran the workload (pulling the layers whole), its cache kept.
  const afterPullOf = VARIANTS.find((v) => v.name === variant)?.afterPullOf;
  const tag = afterPullOf ?? variant;
  let cacheDir: string | undefined;
  if (afterPullOf !== undefined) {
    const first = await startDaemon({ registryHost: ctx.registry.host, label: `${label}-first` });
    cacheDir = first.cacheDir;
    try {
      await timed(['chroot', join(first.mnt, 'images', ctx.registry.host, `${repo}:${tag}`), ...w.argv], performance.now(), ENV);
    } finally {
      await first.stop({ keepCache: true });
    }
  }
  await dropCaches();
  await ctx.resetTcp();
  const mark = ctx.registry.mark();
  const t0 = performance.now();
  const daemon = await startDaemon({ registryHost: ctx.registry.host, label, ...(cacheDir && { cacheDir }) });
  try {
    const root = join(daemon.mnt, 'images', ctx.registry.host, `${repo}:${tag}`);
    const r = await timed(['chroot', root, ...w.argv], t0, ENV);
    const figures = await daemon.figures();
    const cpuS = daemon.cpuSeconds();
    const rssB = daemon.peakRss();
    const traffic = await ctx.registry.traffic(mark);
    const fuseOps = Object.values(figures.fuse_ops ?? {}).reduce((s, n) => s + n, 0);
    return { profile: ctx.profile, image: ctx.image, variant, workload: w.name, run: ctx.run, firstMs: r.firstOutputMs, exitMs: r.exitMs, mountMs: daemon.mountedAt - t0, ...traffic, cpuS, rssB, fuseOps };
  } finally {
    await daemon.stop();
  }
}

/** One full pull and every workload after it: one sample per workload. */
export async function measureFullPull(ctx: RunContext, repo: string, workloads: readonly Workload[], workDir: string): Promise<Sample[]> {
  await dropCaches();
  await ctx.resetTcp();
  const dir = mkdtempSync(join(workDir, 'pull-'));
  try {
    const mark = ctx.registry.mark();
    const t0 = performance.now();
    await run('skopeo', ['copy', '--quiet', '--src-tls-verify=false', `docker://${ctx.registry.host}/${repo}:gzip`, `oci:${dir}/layout:img`], { maxBuffer: 16 << 20 });
    const pullMs = performance.now() - t0;
    await run('umoci', ['unpack', '--image', `${dir}/layout:img`, `${dir}/bundle`], { maxBuffer: 64 << 20 });
    const readyMs = performance.now() - t0;
    const traffic = await ctx.registry.traffic(mark);
    const samples: Sample[] = [];
    for (const w of workloads) {
      const t1 = performance.now();
      const r = await timed(['chroot', `${dir}/bundle/rootfs`, ...w.argv], t1, ENV);
      samples.push({
        profile: ctx.profile,
        image: ctx.image,
        variant: 'full-pull',
        workload: w.name,
        run: ctx.run,
        firstMs: readyMs + r.firstOutputMs,
        exitMs: readyMs + r.exitMs,
        ...traffic,
        pullMs,
        unpackMs: readyMs - pullMs,
      });
    }
    return samples;
  } finally {
    rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
  }
}
