// Summarises V8 CPU profiles (node --cpu-prof) of the tocfs daemon: self time by function and by module,
// for the "where does the time go" step of issue 8.
//
//   TOCFS_BENCH_CPU_PROF=/tmp/prof npm run bench -- --quick --profiles loopback --no-throughput
//   npx tsx bench/cpu-profile.ts /tmp/prof/*.cpuprofile
import { readFileSync } from 'node:fs';

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}
interface Profile {
  nodes: Node[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

const byFn = new Map<string, number>();
const byModule = new Map<string, number>();
let total = 0;
for (const file of process.argv.slice(2)) {
  const p = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const nodes = new Map(p.nodes.map((n) => [n.id, n]));
  p.samples.forEach((id, i) => {
    const us = p.timeDeltas[i] ?? 0;
    const n = nodes.get(id)!;
    const url = n.callFrame.url.replace(/^.*\/(dist|node_modules)\//, '$1/').replace(/^node:/, 'node:');
    const name = n.callFrame.functionName || '(anonymous)';
    const fn = `${name} ${url || '(native)'}:${n.callFrame.lineNumber + 1}`;
    const mod = name.startsWith('(') && !url ? name : url.split('/').slice(0, 3).join('/') || '(native)';
    byFn.set(fn, (byFn.get(fn) ?? 0) + us);
    byModule.set(mod, (byModule.get(mod) ?? 0) + us);
    total += us;
  });
}
const top = (m: Map<string, number>, n: number): string[] =>
  [...m.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([k, us]) => `${(us / 1000).toFixed(0).padStart(7)} ms ${((us / total) * 100).toFixed(1).padStart(5)} %  ${k}`);
process.stdout.write(`${process.argv.length - 2} profiles, ${(total / 1000).toFixed(0)} ms sampled\n\nby module:\n${top(byModule, 15).join('\n')}\n\nby function (self):\n${top(byFn, 25).join('\n')}\n`);
