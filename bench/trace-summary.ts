// Summarises a mount's op timeline (TOCFS_TRACE, src/fuse/op-trace.ts): where a workload's wall time went.
//
//   TOCFS_BENCH_TRACE=/tmp/trace npm run bench -- --variants estargz --workloads app-numpy --no-pull ...
//   npx tsx bench/trace-summary.ts /tmp/trace/*.jsonl [--ops]
//
// Per trace: span from first to last op; the time with at least one filesystem call waiting (and with a
// registry request open) versus nothing pending (the workload's own CPU, or the kernel); requests by
// kind with their bytes and summed durations; the slowest calls. --ops prints every line in time order.
import { readFileSync } from 'node:fs';

interface Line {
  t: number;
  ms: number;
  op: string;
  path: string;
  offset?: number;
  length?: number;
  bytes?: number;
  status?: number;
  method?: string;
  error?: string;
}

/** ms covered by the union of intervals. */
function covered(intervals: [number, number][]): number {
  const sorted = [...intervals].sort((a, b) => a[0] - b[0]);
  let total = 0;
  let end = -Infinity;
  for (const [a, b] of sorted) {
    if (b <= end) continue;
    total += b - Math.max(a, end);
    end = b;
  }
  return total;
}

const kind = (path: string): string => (path.includes('/manifests/') ? 'manifest' : path.includes('/blobs/') ? 'blob' : path.includes('token') ? 'token' : 'other');

const files = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const showOps = process.argv.includes('--ops');
for (const file of files) {
  const lines = readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Line);
  const fsOps = lines.filter((l) => l.op !== 'http');
  const http = lines.filter((l) => l.op === 'http');
  if (lines.length === 0) continue;
  const start = Math.min(...lines.map((l) => l.t));
  const end = Math.max(...lines.map((l) => l.t + l.ms));
  const busy = covered(fsOps.map((l) => [l.t, l.t + l.ms]));
  const net = covered(http.map((l) => [l.t, l.t + l.ms]));
  const readsWaiting = covered(fsOps.filter((l) => l.ms > 2).map((l) => [l.t, l.t + l.ms]));
  console.log(`== ${file}`);
  console.log(`span ${(end - start).toFixed(0)} ms: some call pending ${busy.toFixed(0)} ms (calls > 2 ms: ${readsWaiting.toFixed(0)} ms), a request open ${net.toFixed(0)} ms, nothing pending ${(end - start - busy).toFixed(0)} ms`);
  const byKind = new Map<string, { n: number; bytes: number; ms: number }>();
  for (const h of http) {
    const k = byKind.get(kind(h.path)) ?? { n: 0, bytes: 0, ms: 0 };
    k.n++;
    k.bytes += h.bytes ?? 0;
    k.ms += h.ms;
    byKind.set(kind(h.path), k);
  }
  for (const [k, v] of byKind) console.log(`  http ${k}: ${v.n} requests, ${(v.bytes / 1e6).toFixed(2)} MB, ${v.ms.toFixed(0)} ms summed`);
  const byOp = new Map<string, { n: number; ms: number }>();
  for (const l of fsOps) {
    const k = byOp.get(l.op) ?? { n: 0, ms: 0 };
    k.n++;
    k.ms += l.ms;
    byOp.set(l.op, k);
  }
  for (const [k, v] of byOp) console.log(`  ${k}: ${v.n} calls, ${v.ms.toFixed(0)} ms summed`);
  console.log('  slowest calls:');
  for (const l of [...fsOps].sort((a, b) => b.ms - a.ms).slice(0, 12)) console.log(`    ${l.ms.toFixed(0).padStart(6)} ms at ${l.t.toFixed(0).padStart(6)}  ${l.op} ${l.path}${l.offset !== undefined ? ` @${l.offset}+${l.length}` : ''}`);
  if (showOps) for (const l of [...lines].sort((a, b) => a.t - b.t)) console.log(`    ${l.t.toFixed(1).padStart(9)} ${l.ms.toFixed(1).padStart(8)} ${l.op} ${l.path}${l.offset !== undefined ? ` @${l.offset}+${l.length}` : ''}${l.bytes !== undefined ? ` ${l.bytes} B` : ''}`);
}
