// bench/RESULTS.md section and SVG chart from the samples of one run (bench/results-issue8.json).
import type { Sample } from './measure.js';
import type { ThroughputSample } from './throughput.js';
import { median } from './proc.js';
import type { LinkProfile } from './link.js';

export interface BenchData {
  readonly date: string;
  readonly machine: string;
  readonly load: string;
  readonly runs: number;
  readonly mode: string;
  readonly profiles: readonly LinkProfile[];
  readonly images: readonly { name: string; description: string; layerBytes: Record<string, number>; entries?: number }[];
  readonly skipped: Record<string, string>;
  readonly samples: readonly Sample[];
  readonly throughput: readonly ThroughputSample[];
  /** Files the recorded workloads read (optimized variant), per image. */
  readonly accessedFiles: Record<string, number>;
}

const VARIANT_ORDER = ['full-pull', 'gzip', 'gzip-soci', 'gzip-soci-1m', 'gzip-after-pull', 'estargz', 'estargz-opt', 'zstd-chunked'];
const WORKLOAD_ORDER = ['true', 'python-print', 'app-numpy', 'find-stat-walk', 'sha256-128MiB'];
const s = (ms: number): string => (ms / 1000).toFixed(2);
const mb = (b: number): string => (b / 1e6).toFixed(1);
const spread = (xs: number[], f: (x: number) => string): string => (xs.length > 1 ? ` (${f(Math.min(...xs))}–${f(Math.max(...xs))})` : '');

function groups(samples: readonly Sample[]): Map<string, Sample[]> {
  const m = new Map<string, Sample[]>();
  for (const x of samples) {
    const k = `${x.profile}|${x.image}|${x.workload}|${x.variant}`;
    (m.get(k) ?? m.set(k, []).get(k)!).push(x);
  }
  return m;
}

export function medianOf(samples: readonly Sample[], profile: string, image: string, workload: string, variant: string, f: (x: Sample) => number | undefined): number | undefined {
  const xs = samples.filter((x) => x.profile === profile && x.image === image && x.workload === workload && x.variant === variant).map(f);
  const ys = xs.filter((v): v is number => v !== undefined && Number.isFinite(v));
  return ys.length ? median(ys) : undefined;
}

/** Physical limit of a lazy start: bytes moved / bandwidth + round trips on the critical path. */
function limitMs(bytes: number, p: LinkProfile, roundTrips: number): number | undefined {
  if (p.rateBps === undefined) return undefined;
  return ((bytes * 8) / p.rateBps) * 1000 + roundTrips * (p.rttMs ?? 0);
}

export function markdown(d: BenchData): string {
  const out: string[] = [];
  const g = groups(d.samples);
  out.push(`Date: ${d.date}. Machine: ${d.machine}. Load during the run: ${d.load}. Mode: ${d.mode}, ${d.runs} run(s) per cell, median (min–max).`);
  out.push('');
  out.push('Every cell starts from nothing: page cache dropped, TCP metrics flushed, a fresh `tocfs mount` process with an empty');
  out.push('cache dir (its start-up, the mount, resolution and TOC fetches are inside the time), then `chroot MNT/images/HOST/REPO:TAG CMD`.');
  out.push('Full pull = `skopeo copy` + `umoci unpack` of the plain gzip image, then the same `chroot ROOTFS CMD` (the pull is timed');
  out.push('once per run and each workload runs right after it). Bytes and requests are counted in the registry\'s access log.');
  out.push('"× faster" = full pull time / variant time.');
  for (const [k, why] of Object.entries(d.skipped)) out.push(`- variant ${k} not measured: ${why}.`);
  out.push('');
  for (const img of d.images) {
    const gz = img.layerBytes['gzip'] ?? 0;
    out.push(`Image **${img.name}**: ${img.description}; layers ${Object.entries(img.layerBytes).map(([v, b]) => `${v} ${mb(b)} MB`).join(', ')}${d.accessedFiles[img.name] !== undefined ? `; the recorded workloads read ${d.accessedFiles[img.name]} files` : ''}.`);
  }
  for (const p of d.profiles) {
    for (const img of d.images) {
      const rows = WORKLOAD_ORDER.flatMap((w) => VARIANT_ORDER.map((v) => [w, v, g.get(`${p.name}|${img.name}|${w}|${v}`)] as const)).filter((r) => r[2]);
      if (rows.length === 0) continue;
      out.push('', `### ${p.name}${p.rateBps ? ` (${p.rateBps / 1e6} Mbit/s, ${p.rttMs} ms RTT, MTU ${p.mtu})` : ''}, image ${img.name}`, '');
      out.push('| workload | variant | first output, s | × faster than full pull | MB at registry | % of image | requests | daemon CPU s | peak RSS MB | FUSE ops |');
      out.push('|---|---|---|---|---|---|---|---|---|---|');
      const gz = img.layerBytes['gzip'] ?? NaN;
      for (const [w, v, xs] of rows) {
        const first = xs!.map((x) => x.firstMs);
        const base = medianOf(d.samples, p.name, img.name, w, 'full-pull', (x) => x.firstMs);
        const speed = base !== undefined && v !== 'full-pull' ? `${(base / median(first)).toFixed(2)}×` : v === 'full-pull' ? '1' : '-';
        const bytes = median(xs!.map((x) => x.bytes));
        const opt = (f: (x: Sample) => number | undefined, fmt: (n: number) => string): string => {
          const ys = xs!.map(f).filter((n): n is number => n !== undefined);
          return ys.length ? fmt(median(ys)) : '-';
        };
        out.push(
          `| ${w} | ${v} | ${s(median(first))}${spread(first, s)} | ${speed} | ${mb(bytes)} | ${((bytes / gz) * 100).toFixed(1)} % | ${median(xs!.map((x) => x.requests))} | ${opt((x) => x.cpuS, (n) => n.toFixed(2))} | ${opt((x) => x.rssB, (n) => (n / 1e6).toFixed(0))} | ${opt((x) => x.fuseOps, (n) => n.toFixed(0))} |`,
        );
      }
      const pull = xsOf(d.samples, p.name, img.name, 'full-pull');
      if (pull.length) {
        out.push('', `Full pull split: skopeo copy ${s(median(pull.map((x) => x.pullMs!)))} s + umoci unpack ${s(median(pull.map((x) => x.unpackMs!)))} s.`);
      }
    }
  }
  out.push('', ...targets(d));
  if (d.throughput.length) out.push('', ...throughputTable(d));
  return out.join('\n');
}

function xsOf(samples: readonly Sample[], profile: string, image: string, variant: string): Sample[] {
  const seen = new Set<number>();
  return samples.filter((x) => x.profile === profile && x.image === image && x.variant === variant && !seen.has(x.run) && seen.add(x.run));
}

/** Issue 20's targets: gzip + SOCI index against the full pull and unoptimized eStargz, bytes by span size. */
function sociTargets(d: BenchData, shaped: BenchData['profiles'][number], base: number | undefined, gz: number): string[] {
  const out: string[] = [];
  const at = (v: string, f: (x: Sample) => number): number | undefined => medianOf(d.samples, shaped.name, 'small', 'app-numpy', v, f);
  const soci = at('gzip-soci', (x) => x.firstMs);
  const estargz = at('estargz', (x) => x.firstMs);
  if (base !== undefined && soci !== undefined) {
    out.push(`| 100 Mbit/s 20 ms, app, gzip-soci: ≥ 4× faster than full pull | ${(base / soci).toFixed(2)}× (${s(soci)} s vs ${s(base)} s) | ${base / soci >= 4 ? 'yes' : 'no'} |`);
  }
  if (soci !== undefined && estargz !== undefined) {
    out.push(`| 100 Mbit/s 20 ms, app, gzip-soci: within 10 % of unoptimized eStargz | ${(soci / estargz).toFixed(2)}× its time (${s(soci)} s vs ${s(estargz)} s) | ${soci <= estargz * 1.1 ? 'yes' : 'no'} |`);
  }
  for (const v of ['gzip-soci', 'gzip-soci-1m']) {
    const bytes = at(v, (x) => x.bytes);
    if (bytes !== undefined) out.push(`| 100 Mbit/s 20 ms, app, ${v}: bytes moved < 35 % of the image | ${((bytes / gz) * 100).toFixed(1)} % (${mb(bytes)} MB) | ${bytes / gz < 0.35 ? 'yes' : 'no'} |`);
  }
  return out;
}

function targets(d: BenchData): string[] {
  const out = ['### Targets (issue 8)', '', '| target | measured | met |', '|---|---|---|'];
  const shaped = d.profiles.find((p) => p.name === '100mbit-20ms');
  const img = d.images.find((i) => i.name === 'small');
  if (shaped && img) {
    const gz = img.layerBytes['gzip'] ?? NaN;
    const base = medianOf(d.samples, shaped.name, 'small', 'app-numpy', 'full-pull', (x) => x.firstMs);
    for (const [v, want] of [['estargz', 3], ['estargz-opt', 5.5]] as const) {
      const t = medianOf(d.samples, shaped.name, 'small', 'app-numpy', v, (x) => x.firstMs);
      const bytes = medianOf(d.samples, shaped.name, 'small', 'app-numpy', v, (x) => x.bytes);
      if (base === undefined || t === undefined || bytes === undefined) continue;
      const lim = limitMs(bytes, shaped, 4)!;
      out.push(`| 100 Mbit/s 20 ms, app, ${v}: ≥ ${want}× faster than full pull | ${(base / t).toFixed(2)}× (${s(t)} s vs ${s(base)} s); physical limit for its ${mb(bytes)} MB ≈ ${s(lim)} s (bytes / bandwidth + 4 RTT), measured = ${(t / lim).toFixed(1)}× the limit | ${base / t >= want ? 'yes' : 'no'} |`);
      out.push(`| 100 Mbit/s 20 ms, app, ${v}: bytes moved < 20 % of the image | ${((bytes / gz) * 100).toFixed(1)} % | ${bytes / gz < 0.2 ? 'yes' : 'no'} |`);
    }
    out.push(...sociTargets(d, shaped, base, gz));
  }
  for (const img2 of d.images) {
    const slower: string[] = [];
    let checked = 0;
    for (const w of WORKLOAD_ORDER.filter((w) => w !== 'find-stat-walk')) {
      const base = medianOf(d.samples, 'loopback', img2.name, w, 'full-pull', (x) => x.firstMs);
      if (base === undefined) continue;
      for (const v of VARIANT_ORDER.slice(1)) {
        const t = medianOf(d.samples, 'loopback', img2.name, w, v, (x) => x.firstMs);
        if (t === undefined) continue;
        checked++;
        if (t > base) slower.push(`${w}/${v} ${s(t)} s vs ${s(base)} s`);
      }
    }
    if (checked) out.push(`| loopback, image ${img2.name}: never slower than full pull (walk and 1 GiB read excepted) | ${slower.length ? `slower: ${slower.join('; ')}` : `${checked} cells, none slower`} | ${slower.length ? 'no' : 'yes'} |`);
  }
  const rate = (c: string): number | undefined => {
    const xs = d.throughput.filter((x) => x.case === c);
    return xs.length ? median(xs.map((x) => x.bytes / 1e6 / (x.ms / 1e3))) : undefined;
  };
  const cold = rate('1GiB cold (registry)');
  if (cold !== undefined) out.push(`| loopback: 1 GiB cold read ≥ 150 MB/s | ${cold.toFixed(0)} MB/s | ${cold >= 150 ? 'yes' : 'no'} |`);
  const sociCold = rate('1GiB cold, gzip + SOCI spans (registry)');
  if (sociCold !== undefined) out.push(`| loopback: 1 GiB cold read through SOCI spans ≥ 150 MB/s (issue 20) | ${sociCold.toFixed(0)} MB/s | ${sociCold >= 150 ? 'yes' : 'no'} |`);
  const warm = rate('1GiB warm (page cache)');
  const local = rate('1GiB local disk warm');
  const localCold = rate('1GiB local disk cold');
  const firstWarm = rate('1GiB warm (page cache), first pass');
  const firstLocal = rate('1GiB local disk warm, first pass');
  if (warm !== undefined && local !== undefined) {
    const first = firstWarm !== undefined && firstLocal !== undefined ? `; the first warm pass after the cold read ${firstWarm.toFixed(0)} vs ${firstLocal.toFixed(0)} MB/s (${((firstWarm / firstLocal) * 100).toFixed(0)} %)` : '';
    out.push(`| warm reads ≥ half the local-disk rate | ${warm.toFixed(0)} MB/s vs ${local.toFixed(0)} MB/s local warm (${((warm / local) * 100).toFixed(0)} %, median of 3 passes)${first}${localCold ? `, ${localCold.toFixed(0)} MB/s local cold` : ''} | ${warm >= local / 2 ? 'yes' : 'no'} |`);
  }
  return out;
}

function throughputTable(d: BenchData): string[] {
  const cases = [...new Set(d.throughput.map((x) => x.case))];
  const out = ['### Throughput on loopback (eStargz, 4 MiB chunks)', '', '| case | time, s | MB/s | MB at registry |', '|---|---|---|---|'];
  for (const c of cases) {
    const xs = d.throughput.filter((x) => x.case === c);
    const ms = xs.map((x) => x.ms);
    const rate = xs[0]!.bytes ? `${(xs[0]!.bytes / 1e6 / (median(ms) / 1e3)).toFixed(0)}` : '-';
    out.push(`| ${c} | ${s(median(ms))}${spread(ms, s)} | ${rate} | ${mb(median(xs.map((x) => x.registryBytes)))} |`);
  }
  const walk = (c: string): number | undefined => {
    const xs = d.throughput.filter((x) => x.case === c);
    return xs.length ? median(xs.map((x) => x.ms)) : undefined;
  };
  const wc = walk('walk cold');
  const wl = walk('walk local disk cold');
  const ww = walk('walk warm');
  const wlw = walk('walk local disk warm');
  if (wc && wl && ww && wlw) out.push('', `Metadata walk (find + stat of the whole tree; the large image when measured in the same run as the throughput, else the small one): mount / local disk = ${(wc / wl).toFixed(1)}× cold, ${(ww / wlw).toFixed(1)}× warm.`);
  return out;
}

/** Grouped horizontal bars: time to first output per workload and variant, one panel per profile and image. */
export function svgChart(d: BenchData): string {
  const colors: Record<string, string> = {
    'full-pull': '#888888',
    gzip: '#e6a23c',
    'gzip-soci': '#c0392b',
    'gzip-soci-1m': '#e74c3c',
    'gzip-after-pull': '#d4ac0d',
    estargz: '#409eff',
    'estargz-opt': '#2c7a2c',
    'zstd-chunked': '#9b59b6',
  };
  const panels: { title: string; rows: { label: string; variant: string; ms: number }[] }[] = [];
  for (const p of d.profiles) {
    for (const img of d.images) {
      const rows: { label: string; variant: string; ms: number }[] = [];
      for (const w of WORKLOAD_ORDER) {
        for (const v of VARIANT_ORDER) {
          const ms = medianOf(d.samples, p.name, img.name, w, v, (x) => x.firstMs);
          if (ms !== undefined) rows.push({ label: w, variant: v, ms });
        }
      }
      if (rows.length) panels.push({ title: `${p.name}, ${img.name} image`, rows });
    }
  }
  const W = 760;
  const barH = 11;
  const left = 130;
  let y = 40;
  const parts: string[] = [];
  for (const panel of panels) {
    const max = Math.max(...panel.rows.map((r) => r.ms));
    parts.push(`<text x="10" y="${y}" font-weight="bold">${esc(panel.title)} — time to first output, s (linear scale, max ${s(max)} s)</text>`);
    y += 10;
    let last = '';
    for (const r of panel.rows) {
      if (r.label !== last) {
        y += 6;
        parts.push(`<text x="10" y="${y + barH - 1}" font-size="11">${esc(r.label)}</text>`);
        last = r.label;
      }
      const w = Math.max(1, ((W - left - 70) * r.ms) / max);
      parts.push(`<rect x="${left}" y="${y}" width="${w.toFixed(1)}" height="${barH - 1}" fill="${colors[r.variant] ?? '#333'}"><title>${esc(`${r.label} ${r.variant}: ${s(r.ms)} s`)}</title></rect>`);
      parts.push(`<text x="${(left + w + 4).toFixed(1)}" y="${y + barH - 2}" font-size="10">${s(r.ms)}</text>`);
      y += barH;
    }
    y += 28;
  }
  const legend = VARIANT_ORDER.filter((v) => d.samples.some((x) => x.variant === v))
    .map((v, i) => `<rect x="${10 + i * 130}" y="12" width="12" height="12" fill="${colors[v]}"/><text x="${26 + i * 130}" y="22" font-size="12">${v}</text>`)
    .join('');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${y}" font-family="sans-serif" font-size="12"><rect width="100%" height="100%" fill="white"/>${legend}${parts.join('')}</svg>\n`;
}

function esc(t: string): string {
  return t.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}
