// `npm run bench`: issue 8's benchmark, side by side in one run. Time from nothing to the first output of
// a command in a real image, and bytes moved, for tocfs (plain gzip, eStargz, eStargz optimized by
// recorded reads, zstd:chunked when supported) against a full pull (skopeo copy + umoci unpack), on
// loopback and on shaped links (a packet delay line between TUN devices, the registry in a network
// namespace); then throughput and a metadata walk against local disk. Writes bench/RESULTS.md's issue-8
// section, bench/ttfo.svg and bench/results-issue8.json.
//
//   npm run bench                       5 runs, all profiles, both images, throughput
//   npm run bench -- --quick            1 run, loopback + 100mbit-20ms, small image, throughput once
//   npm run bench -- --runs 3 --profiles loopback,1gbit-2ms --images small --no-throughput
//   npm run bench -- --append --runs 1 --images large --throughput-runs 3
//                                       the large image once per profile, throughput three times
//   npm run bench -- --report-only      rewrite RESULTS.md and the chart from bench/results-issue8.json
//   npm run bench -- --append ...       merge into bench/results-issue8.json (cells measured now replace
//                                       the same profile and image; e.g. the large image with fewer runs)
//   npm run bench -- --variants estargz --workloads app-numpy --profiles 100mbit-20ms --images small --no-throughput
//                                       a probe while profiling: only these cells (--no-pull: no full pull),
//                                       printed, RESULTS.md left alone
//
// Root only (FUSE, chroot, network namespaces, drop_caches). Images are built once and cached under
// /var/cache/tocfs-test; registry storage, mounts, caches, namespaces and processes are all removed.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { buildLayout, layoutLayerBytes, pushVariants, rootDir, VARIANTS } from './lib/images.js';
import { openLink, PROFILES, removeStaleNamespaces, type Link } from './lib/link.js';
import { measureFullPull, measureTocfs, type Sample } from './lib/measure.js';
import { run } from './lib/proc.js';
import { startBenchRegistry, type BenchRegistry } from './lib/registry.js';
import { markdown, svgChart, type BenchData } from './lib/report.js';
import { measureThroughput, type ThroughputSample } from './lib/throughput.js';
import { GIB_ROOT, IMAGES, WORKLOADS } from './lib/workloads.js';

const HERE = fileURLToPath(new URL('.', import.meta.url));
const RESULTS = join(HERE, 'RESULTS.md');
const JSON_OUT = join(HERE, 'results-issue8.json');
const SVG_OUT = join(HERE, 'ttfo.svg');
const BEGIN = '<!-- bench issue 8: begin (written by npm run bench) -->';
const END = '<!-- bench issue 8: end -->';

const log = (l: string): void => void process.stderr.write(`bench: ${l}\n`);

function options() {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean' },
      runs: { type: 'string' },
      profiles: { type: 'string' },
      images: { type: 'string' },
      'no-throughput': { type: 'boolean' },
      'report-only': { type: 'boolean' },
      append: { type: 'boolean' },
      variants: { type: 'string' },
      workloads: { type: 'string' },
      'no-pull': { type: 'boolean' },
      'throughput-runs': { type: 'string' },
    },
  });
  const quick = !!values.quick;
  const runs = Number(values.runs ?? (quick ? 1 : 5));
  const profileNames = (values.profiles ?? (quick ? 'loopback,100mbit-20ms' : PROFILES.map((p) => p.name).join(','))).split(',');
  const profiles = profileNames.map((n) => PROFILES.find((p) => p.name === n) ?? fail(`unknown profile ${n} (${PROFILES.map((p) => p.name).join(', ')})`));
  const imageNames = (values.images ?? (quick ? 'small' : 'small,large')).split(',');
  const images = imageNames.map((n) => IMAGES.find((i) => i.name === n) ?? fail(`unknown image ${n}`));
  if (!Number.isInteger(runs) || runs < 1) fail('--runs needs a positive integer');
  const variants = values.variants?.split(',');
  const workloads = values.workloads?.split(',');
  for (const w of workloads ?? []) if (!WORKLOADS.some((x) => x.name === w)) fail(`unknown workload ${w}`);
  const probe = !!(variants || workloads || values['no-pull']);
  const throughputRuns = Number(values['throughput-runs'] ?? (quick ? 1 : Math.min(runs, 3)));
  if (!Number.isInteger(throughputRuns) || throughputRuns < 1) fail('--throughput-runs needs a positive integer');
  return { quick, runs, throughputRuns, profiles, images, throughput: !values['no-throughput'], reportOnly: !!values['report-only'], append: !!values.append, variants, workloads, pull: !values['no-pull'], probe };
}

function fail(message: string): never {
  process.stderr.write(`bench: ${message}\n`);
  process.exit(2);
}

function writeReport(data: BenchData): void {
  const section = `${BEGIN}\n## Time to first command, bytes moved, throughput (issue 8: \`npm run bench\`)\n\n![time to first output](ttfo.svg)\n\n${markdown(data)}\n${END}`;
  let text = readFileSync(RESULTS, 'utf8');
  const a = text.indexOf(BEGIN);
  const b = text.indexOf(END);
  text = a >= 0 && b > a ? `${text.slice(0, a)}${section}${text.slice(b + END.length)}` : `${text.trimEnd()}\n\n${section}\n`;
  writeFileSync(RESULTS, text);
  writeFileSync(SVG_OUT, svgChart(data));
  log(`wrote ${RESULTS} and ${SVG_OUT}`);
}

/** `old` with every (profile, image) cell of `now` replaced, and what `now` adds. */
function mergeInto(old: BenchData, now: BenchData): BenchData {
  const cells = new Set(now.samples.map((x) => `${x.profile}|${x.image}`));
  // Each earlier merge left "A or B"; the distinct counts, not one per merge.
  const runs = [...new Set([...String(old.runs).split(' or '), String(now.runs)])].join(' or ');
  return {
    ...now,
    runs: runs as unknown as number,
    mode: old.mode === now.mode ? now.mode : `${old.mode} + ${now.mode}`,
    load: `${old.load}; then ${now.load}`,
    profiles: [...old.profiles, ...now.profiles.filter((p) => !old.profiles.some((o) => o.name === p.name))],
    images: [...old.images.filter((i) => !now.images.some((n) => n.name === i.name)), ...now.images],
    skipped: { ...old.skipped, ...now.skipped },
    samples: [...old.samples.filter((x) => !cells.has(`${x.profile}|${x.image}`)), ...now.samples],
    throughput: now.throughput.length ? now.throughput : old.throughput,
    accessedFiles: { ...old.accessedFiles, ...now.accessedFiles },
  };
}

async function main(): Promise<void> {
  const opts = options();
  if (opts.reportOnly) return writeReport(JSON.parse(readFileSync(JSON_OUT, 'utf8')) as BenchData);
  if (process.getuid?.() !== 0) fail('run as root (FUSE, chroot, network namespaces, drop_caches)');
  for (const tool of ['skopeo', 'umoci', 'cc', 'ip', 'docker-registry', 'getfattr', 'chroot', 'dd']) {
    await run('sh', ['-c', `command -v ${tool}`]).catch(() => fail(`${tool} is missing: run bash scripts/setup.sh`));
  }
  await removeStaleNamespaces(log);
  mkdirSync('/var/tmp', { recursive: true });
  const work = mkdtempSync('/var/tmp/tocfs-bench-');
  const cleanups: (() => Promise<void>)[] = [];
  const cleanup = async (): Promise<void> => {
    while (cleanups.length) await cleanups.pop()!().catch((err: Error) => log(`cleanup: ${err.message}`));
    rmSync(work, { recursive: true, force: true, maxRetries: 3 });
  };
  const onSignal = (sig: string): void => {
    log(`${sig}: cleaning up`);
    void cleanup().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const loads: number[] = [];
  const loadTimer = setInterval(() => loads.push(loadavg()[0]!), 5000).unref();
  try {
    // 1. Images (cached) and variants (in a registry whose storage every profile's registry shares).
    const storage = join(work, 'storage');
    mkdirSync(storage);
    const loop = await startBenchRegistry({ storageDir: storage, workDir: work, address: '127.0.0.1' });
    cleanups.push(() => loop.stop());
    const skipped: Record<string, string> = {};
    const imageInfo: BenchData['images'][number][] = [];
    const accessedFiles: Record<string, number> = {};
    const variantsOf = new Map<string, string[]>();
    for (const img of opts.images) {
      log(`image ${img.name}: building (cached after the first time)`);
      const layout = await buildLayout(img.cacheName ?? `bench-${img.name}`, img.roots);
      const repo = `bench/${img.name}`;
      const { pushed, skipped: s } = await pushVariants(layout, loop.host, repo, work, log);
      Object.assign(skipped, s);
      const list = readFileSync(join(work, `${repo.replace(/\W/g, '_')}-accessed.txt`), 'utf8');
      accessedFiles[img.name] = list.split('\n').filter(Boolean).length;
      variantsOf.set(img.name, pushed.map((p) => p.variant));
      imageInfo.push({ name: img.name, description: img.description, layerBytes: Object.fromEntries(pushed.map((p) => [p.variant, p.layerBytes])) });
      log(`image ${img.name}: ${JSON.stringify(imageInfo.at(-1)!.layerBytes)} (layout ${layoutLayerBytes(layout)} bytes)`);
    }

    // 2. Time to first output on each link profile, variants interleaved within each run.
    const samples: Sample[] = [];
    for (const profile of opts.profiles) {
      log(`profile ${profile.name}`);
      let link: Link | undefined;
      let registry: BenchRegistry = loop;
      try {
        link = await openLink(profile, work);
        if (link.netns) registry = await startBenchRegistry({ storageDir: storage, workDir: work, address: link.registryAddress, port: 5000, netns: link.netns });
        for (let runNo = 1; runNo <= opts.runs; runNo++) {
          for (const img of opts.images) {
            const ctx = { profile: profile.name, image: img.name, run: runNo, registry, resetTcp: link.resetTcp };
            const repo = `bench/${img.name}`;
            const workloads = WORKLOADS.filter((w) => (!w.images || w.images.includes(img.name)) && (!opts.workloads || opts.workloads.includes(w.name)));
            if (opts.pull) {
              const pull = await measureFullPull(ctx, repo, workloads, work);
              samples.push(...pull);
              log(`${profile.name} ${img.name} run ${runNo} full-pull: ${pull.map((x) => `${x.workload} ${(x.firstMs / 1000).toFixed(2)} s`).join(', ')}, ${(pull[0]!.bytes / 1e6).toFixed(1)} MB`);
            }
            const variants = variantsOf.get(img.name)!.filter((v) => !opts.variants || opts.variants.includes(v));
            for (const w of workloads) {
              // Rotate the order each run so no variant always goes first after the pull.
              const order = variants.map((_, i) => variants[(i + runNo) % variants.length]!);
              for (const v of order) {
                const x = await measureTocfs(ctx, v, repo, w);
                samples.push(x);
                log(`${profile.name} ${img.name} run ${runNo} ${v} ${w.name}: ${(x.firstMs / 1000).toFixed(2)} s, ${(x.bytes / 1e6).toFixed(1)} MB, ${x.requests} req, cpu ${x.cpuS?.toFixed(2)} s, rss ${((x.rssB ?? 0) / 1e6).toFixed(0)} MB, ${x.fuseOps} ops`);
              }
            }
          }
        }
      } finally {
        if (registry !== loop) await registry.stop();
        await link?.close();
      }
    }

    // 3. Throughput and metadata walk on loopback.
    const throughput: ThroughputSample[] = [];
    if (opts.throughput) {
      log('throughput: 1 GiB image');
      const gibLayout = await buildLayout('bench-gib', [GIB_ROOT]);
      await pushVariants(gibLayout, loop.host, 'bench/gib', work, log, ['gzip', 'estargz', 'gzip-soci']);
      const walkImage = opts.images.find((i) => i.name === 'large') ?? opts.images[0]!;
      const walkRoot = walkImage.roots.at(-1)!.name;
      for (let r = 1; r <= opts.throughputRuns; r++) {
        log(`throughput run ${r}`);
        throughput.push(
          ...(await measureThroughput({
            registry: loop,
            gibRef: `${loop.host}/bench/gib:estargz`,
            gibSociRef: `${loop.host}/bench/gib:gzip-soci`,
            gibLocal: join(rootDir(GIB_ROOT.name), 'data/gib.bin'),
            walkRef: `${loop.host}/bench/${walkImage.name}:estargz`,
            walkLocal: rootDir(walkRoot),
            run: r,
            log,
          })),
        );
      }
    }

    const avg = loads.length ? loads.reduce((a, b) => a + b, 0) / loads.length : loadavg()[0]!;
    const data: BenchData = {
      date: new Date().toISOString().slice(0, 16).replace('T', ' ') + ' UTC',
      machine: `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, kernel ${(await run('uname', ['-r'])).stdout.trim()}`,
      load: `load average ${avg.toFixed(1)} (max ${Math.max(...loads, avg).toFixed(1)}) on ${cpus().length} cores, shared with other jobs`,
      runs: opts.runs,
      mode: opts.quick ? 'quick' : 'full',
      profiles: opts.profiles,
      images: imageInfo,
      skipped: Object.fromEntries(Object.entries(skipped).filter(([k]) => VARIANTS.some((v) => v.name === k))),
      samples,
      throughput,
      accessedFiles,
    };
    if (opts.probe) {
      process.stdout.write(`${markdown(data)}\n`);
      return;
    }
    const merged = opts.append ? mergeInto(JSON.parse(readFileSync(JSON_OUT, 'utf8')) as BenchData, data) : data;
    writeFileSync(JSON_OUT, `${JSON.stringify(merged, null, 1)}\n`);
    writeReport(merged);
  } finally {
    clearInterval(loadTimer);
    await cleanup();
  }
}

await main();
