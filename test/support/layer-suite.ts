// The contract every layer kind must meet (STYLE.md "One suite, many variants", as format-suite.ts does for
// TOC formats): a kind only makes a `Layer` from DSL entries; the suite walks its tree through `walkLayer`
// (so lazily listed layers are listed directory by directory), reads every byte of every regular file at a
// grid of offsets, and checks that reads of what is not this layer's regular file fail cleanly and that
// the figures add up, all against an oracle computed here from the same entries, independently of src/.
import type { Test } from 'tap';
import { TocfsError } from '../../src/errors.js';
import type { TocEntry } from '../../src/formats/toc.js';
import { walkLayer } from '../../src/image/layer-tree.js';
import type { BytesSource, Layer, LayerFormat, TreeSource } from '../../src/layers/layer.js';
import { expectedTree, norm, offsetsFor, parentOf, type Expected } from './format-suite.js';
import { contentBytes, dir, file, fifo, type TarEntry } from './tar-dsl.js';
import { VECTORS, type Vector } from './vectors.js';

/**
 * What a layer tar holds that some kind cannot carry. A kind lists only what it really cannot, each with
 * the reason; everything else the suite compares as the tar has it.
 */
export type Uncarried =
  /** Sub-second mtimes: the tree keeps whole seconds (compared rounded, as the writer rounds). */
  | 'subsecond-mtime'
  /** Parents the tar only implies are real directories: `implicit` is false for them. */
  | 'implied-parents'
  /** Directory mtimes are not the tar's (not compared for directories). */
  | 'dir-mtime'
  /** xattrs of symlinks: the tree has none. */
  | 'symlink-xattrs'
  /** `trusted.overlay.*`: the tree's own whiteout encoding; `trusted.overlay.opaque=y` reads as `.wh..wh..opq`. */
  | 'overlay-xattrs'
  /** Whiteout markers (`.wh.*`) are stored as something else: their mtime is not the tar's. */
  | 'whiteout-mtime';

export interface MakeOptions {
  /** File bytes per chunk, for kinds that cut files into chunks. */
  readonly chunkSize: number;
  /** The vector's build options (prefetch landmarks), for kinds whose blobs have them. */
  readonly build?: Vector['build'];
}

export interface LayerKind {
  readonly name: string;
  /** The figures' `format`, `tocSource` and `source` of a layer of this kind after clean reads. */
  readonly figures: { readonly format: LayerFormat; readonly tocSource: TreeSource; readonly source: BytesSource };
  /** Fields of the tar this kind cannot carry, each with why. Keep it minimal and honest. */
  readonly cannotCarry?: Partial<Record<Uncarried, string>>;
  make(t: Test, entries: readonly TarEntry[], opts: MakeOptions): Promise<Layer>;
}

export interface LayerSuiteOptions {
  /** Chunk sizes the kind builds at; the read grid is cut at each. */
  readonly chunkSizes: readonly number[];
  readonly vectors?: readonly Vector[];
  /** Vectors whose files would need more chunks than this at a chunk size are skipped there. */
  readonly maxChunksPerFile?: number;
}

/** Another layer, holding a file at a path (and of a size) the first vector also has. */
const FOREIGN: readonly TarEntry[] = [dir('etc'), file('etc/hosts', `${'#'.repeat(19)}\n`), file('only-there', 'abc'), fifo('fifo-there')];
const OPAQUE = '.wh..wh..opq';
const OVERLAY = 'trusted.overlay.';
/** A read that neither answers nor fails within this long is taken for a hang. */
const HANG_MS = 5000;

type Compared = 'type' | 'mode' | 'uid' | 'gid' | 'mtimeMs' | 'size' | 'linkName' | 'devMajor' | 'devMinor' | 'nlink' | 'implicit';
/** The fields compared; a kind's `cannotCarry` deletes some from what it is asked for. */
type Projected = { -readonly [K in Compared]?: TocEntry[K] };

interface Want {
  readonly meta: Projected;
  readonly xattrs: Readonly<Record<string, Buffer>>;
  /** The one object every name of a hardlink group shares. */
  readonly group: Expected;
  readonly source?: TarEntry;
}

function project(e: Projected): Projected {
  const { type, mode, uid, gid, mtimeMs, size, linkName, devMajor, devMinor, nlink, implicit } = e;
  return { type, mode, uid, gid, mtimeMs, size, linkName, devMajor, devMinor, nlink, implicit };
}

/** The tree `kind` must show for `entries`: the tar's, less only what the kind declares it cannot carry. */
function wantedTree(entries: readonly TarEntry[], kind: LayerKind): Map<string, Want> {
  const no = kind.cannotCarry ?? {};
  const tree = expectedTree(entries, { mtime: no['subsecond-mtime'] ? 'seconds' : 'exact' });
  const out = new Map<string, Want>();
  for (const [path, e] of tree) {
    const meta: Projected = project(e);
    let xattrs = e.xattrs;
    if (no['implied-parents']) delete meta.implicit;
    if (no['dir-mtime'] && e.type === 'dir') delete meta.mtimeMs;
    const name = path.slice(path.lastIndexOf('/') + 1);
    if (no['whiteout-mtime'] && name.startsWith('.wh.')) delete meta.mtimeMs;
    if (no['symlink-xattrs'] && e.type === 'symlink') xattrs = {};
    if (no['overlay-xattrs']) {
      xattrs = Object.fromEntries(Object.entries(xattrs).filter(([k]) => !k.startsWith(OVERLAY)));
      const marker = path === '' ? OPAQUE : `${path}/${OPAQUE}`;
      if (e.type === 'dir' && e.xattrs[`${OVERLAY}opaque`]?.toString() === 'y' && !tree.has(marker)) {
        const m: Expected = { type: 'reg', mode: 0o644, uid: 0, gid: 0, mtimeMs: 0, size: 0, xattrs: {}, nlink: 1, implicit: false };
        const { mtimeMs: _m, uid: _u, gid: _g, ...markerMeta } = project(m);
        out.set(marker, { meta: markerMeta, xattrs: {}, group: m });
      }
    }
    out.set(path, { meta, xattrs, group: e, ...(e.source ? { source: e.source } : {}) });
  }
  return out;
}

function compared(entry: TocEntry, want: Projected): Projected {
  const got = project(entry);
  for (const k of Object.keys(got) as (keyof Projected)[]) if (!(k in want)) delete got[k];
  return got;
}

async function checkTree(t: Test, layer: Layer, want: ReadonlyMap<string, Want>): Promise<Map<string, TocEntry>> {
  const seen = new Map<string, TocEntry>();
  for await (const [path, entry] of walkLayer(layer)) {
    if (path !== '' && !seen.has(parentOf(path))) t.fail(`${JSON.stringify(path)}: walked before its parent`);
    seen.set(path, entry);
  }
  t.same([...seen.keys()].sort(), [...want.keys()].sort(), 'walkLayer: every name of the tar, and nothing else');
  for (const [path, w] of want) {
    const entry = seen.get(path);
    if (entry === undefined) continue;
    t.same(compared(entry, w.meta), w.meta, `${JSON.stringify(path)}: metadata`);
    const xattrs = entry.xattrs ?? {};
    t.same(Object.keys(xattrs).sort(), Object.keys(w.xattrs).sort(), `${JSON.stringify(path)}: xattr names`);
    for (const [name, value] of Object.entries(w.xattrs)) t.same(Buffer.from(xattrs[name] ?? []), value, `${JSON.stringify(path)}: xattr ${name}`);
    t.equal(layer.index.lookup(path), entry, `${JSON.stringify(path)}: lookup finds the walked entry`);
    if (w.meta.type === 'dir') {
      const names = [...want.keys()].filter((p) => p !== '' && parentOf(p) === path).map((p) => p.slice(p.lastIndexOf('/') + 1));
      t.same([...(layer.index.children(path)?.keys() ?? [])].sort(), names.sort(), `children(${JSON.stringify(path)})`);
    }
  }
  // Hardlink groups: every name of one file is one entry, and different files are different entries.
  const groups = new Map<Expected, TocEntry>();
  for (const [path, w] of want) {
    const entry = seen.get(path);
    if (entry === undefined || w.meta.type === 'dir') continue;
    const first = groups.get(w.group);
    if (first === undefined) groups.set(w.group, entry);
    else t.equal(entry, first, `${JSON.stringify(path)}: one entry with the other names of its file`);
  }
  t.equal(new Set(groups.values()).size, groups.size, 'different files are different entries');
  return seen;
}

async function checkReads(t: Test, layer: Layer, want: ReadonlyMap<string, Want>, chunkSize: number): Promise<void> {
  let reads = 0;
  let bad = 0;
  for (const [path, w] of want) {
    if (w.meta.type !== 'reg') continue;
    const entry = layer.index.lookup(path)!;
    const content = w.source ? contentBytes(w.source) : Buffer.alloc(0);
    const whole = Buffer.from(await layer.read(entry, 0, content.length + 1));
    t.ok(whole.equals(content), `${JSON.stringify(path)}: whole file (${content.length} bytes)`);
    if (w.source === undefined || path !== norm(w.source.path)) continue;
    for (const offset of offsetsFor(content.length, chunkSize)) {
      for (const length of [0, 1, chunkSize - 1, chunkSize, chunkSize + 1, content.length - offset, content.length + 1]) {
        if (length < 0) continue;
        const got = Buffer.from(await layer.read(entry, offset, length));
        reads++;
        const expected = content.subarray(offset, offset + length);
        if (!got.equals(expected)) {
          bad++;
          t.fail(`${JSON.stringify(path)}: bytes [${offset}, +${length}): ${got.length} bytes, not the ${expected.length} of the tar`);
        }
      }
    }
  }
  t.equal(bad, 0, `${reads} reads at offsets 0, chunk±1, last byte, EOF and past it equal the tar's bytes`);
}

/** Rejects with a TocfsError in good time: no bytes, no hang, no stray error type. */
async function rejectsCleanly(t: Test, what: string, read: () => Promise<Uint8Array>): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const hang = new Promise<'hang'>((resolve) => (timer = setTimeout(() => resolve('hang'), HANG_MS)));
  try {
    const got = await Promise.race([read(), hang]);
    t.fail(`${what}: ${got === 'hang' ? `no answer within ${HANG_MS} ms` : `read ${got.length} bytes`}`);
  } catch (err) {
    t.ok(err instanceof TocfsError, `${what}: rejected (${err instanceof TocfsError ? err.code : String(err)})`);
  } finally {
    clearTimeout(timer);
  }
}

async function checkForeign(t: Test, layer: Layer, seen: ReadonlyMap<string, TocEntry>, foreign: ReadonlyMap<string, TocEntry>): Promise<void> {
  for (const path of ['etc/hosts', 'only-there', 'fifo-there']) {
    const entry = foreign.get(path)!;
    await rejectsCleanly(t, `${path} of another layer`, () => layer.read(entry, 0, entry.size + 1));
  }
  const done = new Set<TocEntry>();
  for (const [path, entry] of seen) {
    if (entry.type === 'reg' || done.has(entry)) continue;
    done.add(entry);
    await rejectsCleanly(t, `${JSON.stringify(path)}, a ${entry.type}`, () => layer.read(entry, 0, 1));
  }
}

function checkFigures(t: Test, layer: Layer, kind: LayerKind, what: string): void {
  const f = layer.figures();
  t.equal(f.format, kind.figures.format, `${what}: format`);
  t.equal(f.tocSource, kind.figures.tocSource, `${what}: tocSource`);
  t.equal(f.tocSource, layer.tocSource, `${what}: tocSource is the layer's`);
  for (const key of ['blobBytes', 'bytesFetched', 'bytesCache', ...(['requests', 'bytesCvmfs', 'bytesRegistry', 'filesFromRegistry'] as const).filter((k) => f[k] !== undefined)] as const) {
    const n = f[key]!;
    t.ok(Number.isSafeInteger(n) && n >= 0, `${what}: ${key} ${n} is a count`);
  }
  t.ok(f.fetchedRatio >= 0 && f.fetchedRatio <= 1, `${what}: fetchedRatio ${f.fetchedRatio} in [0, 1]`);
  t.equal(f.fetchedRatio, f.blobBytes > 0 ? f.bytesFetched / f.blobBytes : 0, `${what}: fetchedRatio = bytesFetched / blobBytes`);
}

function chunksNeeded(v: Vector, chunkSize: number): number {
  return Math.max(0, ...v.entries.map((e) => Math.ceil(e.size / chunkSize)));
}

export async function layerSuite(t: Test, kind: LayerKind, opts: LayerSuiteOptions): Promise<void> {
  for (const [field, why] of Object.entries(kind.cannotCarry ?? {})) t.comment(`${kind.name} cannot carry ${field}: ${why}`);
  const foreignLayer = await kind.make(t, FOREIGN, { chunkSize: opts.chunkSizes[0]! });
  const foreign = new Map<string, TocEntry>();
  for await (const [path, entry] of walkLayer(foreignLayer)) foreign.set(path, entry);
  for (const v of opts.vectors ?? VECTORS) {
    for (const chunkSize of opts.chunkSizes) {
      if (chunksNeeded(v, chunkSize) > (opts.maxChunksPerFile ?? 5000)) continue;
      await t.test(`${kind.name}: ${v.name}, chunk ${chunkSize}`, async (t) => {
        const layer = await kind.make(t, v.entries, { chunkSize, ...(v.build ? { build: v.build } : {}) });
        const want = wantedTree(v.entries, kind);
        const seen = await checkTree(t, layer, want);
        await checkReads(t, layer, want, chunkSize);
        checkFigures(t, layer, kind, 'after the reads');
        t.equal(layer.figures().source, kind.figures.source, 'after the reads: source');
        await checkForeign(t, layer, seen, foreign);
        checkFigures(t, layer, kind, 'after the reads that failed');
      });
    }
  }
}
