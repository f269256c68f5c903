// Pins DESIGN.md §4: dependencies point down (cli -> daemon -> fuse -> image -> layers -> formats/registry
// -> util), with no circles between modules, and src/formats does no I/O (STYLE.md item 1), so a parser can
// never reach the network or the disk.
import t from 'tap';
import { readdir, readFile } from 'node:fs/promises';
import { join, relative, dirname, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'src');

const layerOf = (file: string): string => relative(root, file).split(sep)[0] ?? '';

// Which top-level folders each folder may import from (besides itself and src/errors.ts).
// The daemon root builds the object graph; the CLI reaches layers only through it (and `ls --layers`'
// descriptor listing needs none), fuse only for `unmount`.
const allowed: Record<string, readonly string[]> = {
  cli: ['daemon', 'fuse', 'image', 'formats', 'registry', 'convert', 'util'],
  daemon: ['fuse', 'image', 'layers', 'formats', 'registry', 'util'],
  fuse: ['image', 'layers', 'formats', 'registry', 'util'],
  convert: ['image', 'layers', 'formats', 'registry', 'util'],
  image: ['layers', 'formats', 'registry', 'util'],
  layers: ['formats', 'registry', 'util'],
  registry: ['formats', 'util'],
  formats: ['util'],
  util: [],
};

const ioModules = /^(node:)?(fs|fs\/promises|net|http|https|http2|tls|dgram|child_process|worker_threads)$|^undici$/;

async function sourceFiles(dir: string): Promise<string[]> {
  const found: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const full = join(dir, entry.name);
    if (entry.isDirectory()) found.push(...(await sourceFiles(full)));
    else if (entry.name.endsWith('.ts')) found.push(full);
  }
  return found;
}

function importsOf(text: string): string[] {
  const specs: string[] = [];
  for (const m of text.matchAll(/(?:import|export)\s[^'"]*?from\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g)) {
    specs.push((m[1] ?? m[2])!);
  }
  return specs;
}

t.test('imports follow the layering of DESIGN.md §4', async (t) => {
  const files = await sourceFiles(root);
  t.ok(files.length > 0, 'found sources');
  for (const file of files) {
    const from = layerOf(file);
    const text = await readFile(file, 'utf8');
    for (const spec of importsOf(text)) {
      if (from === 'formats' && ioModules.test(spec)) {
        t.fail(`${relative(root, file)} imports ${spec}: src/formats must do no I/O`);
      }
      if (!spec.startsWith('.')) continue;
      const target = resolve(dirname(file), spec);
      const to = layerOf(target);
      if (to === from || to === 'errors.js' || !(from in allowed)) continue;
      if (!allowed[from]!.includes(to)) t.fail(`${relative(root, file)} imports ${spec}: ${from} may not depend on ${to}`);
    }
  }
  t.pass('checked every import');
});

t.test('no module imports itself through others (type imports included)', async (t) => {
  const files = await sourceFiles(root);
  const graph = new Map<string, string[]>();
  for (const file of files) {
    const specs = importsOf(await readFile(file, 'utf8')).filter((s) => s.startsWith('.'));
    graph.set(file, specs.map((s) => resolve(dirname(file), s).replace(/\.js$/, '.ts')).filter((f) => f.endsWith('.ts')));
  }
  const done = new Set<string>();
  const onPath: string[] = [];
  const cycles: string[] = [];
  const visit = (file: string): void => {
    const at = onPath.indexOf(file);
    if (at >= 0) {
      cycles.push([...onPath.slice(at), file].map((f) => relative(root, f)).join(' -> '));
      return;
    }
    if (done.has(file)) return;
    onPath.push(file);
    for (const next of graph.get(file) ?? []) visit(next);
    onPath.pop();
    done.add(file);
  };
  for (const file of files) visit(file);
  t.same(cycles, [], 'no import cycles');
});

t.test('no source file over 400 lines', async (t) => {
  for (const file of await sourceFiles(root)) {
    const lines = (await readFile(file, 'utf8')).split('\n').length;
    t.ok(lines <= 401, `${relative(root, file)}: ${lines} lines`);
  }
});
