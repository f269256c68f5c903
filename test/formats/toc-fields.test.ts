// The per-entry field checks of a TOC decode (toc-fields.ts) have fast paths (a name that needs no
// splitting, a modtime seen before); these pin them to the plain definitions over many generated inputs:
// the same path or the same refusal, the same milliseconds or the same error, on first sight and after.
import t from 'tap';
import { FieldError, normalizePath, parseModtime, resolveTocLimits } from '../../src/formats/toc-fields.js';
import { prng } from '../support/prng.js';

/** The definition: split on `/`, drop empty and `.` components, refuse `..`, bound depth and UTF-8 bytes. */
function plainNormalize(name: string, maxPathLength: number, maxPathDepth: number): string | 'refused' {
  if (name.includes('\0')) return 'refused';
  const kept = name.split('/').filter((part) => part !== '' && part !== '.');
  if (kept.includes('..') || kept.length > maxPathDepth) return 'refused';
  const path = kept.join('/');
  return Buffer.byteLength(path, 'utf8') > maxPathLength ? 'refused' : path;
}

const outcome = (fn: () => string | number): string | number | 'refused' => {
  try {
    return fn();
  } catch (err) {
    if (err instanceof FieldError) return 'refused';
    throw err;
  }
};

t.test('normalizePath: the fast path agrees with split-and-filter on generated names', async (t) => {
  const rand = prng(0x70c);
  const parts = ['a', 'bc', 'usr', '.', '..', '', 'é', '日本', 'x.y', '..z', 'z..', '...', '.hidden', 'a b'];
  for (const [maxPathLength, maxPathDepth] of [[4096, 256], [12, 3]] as const) {
    const limits = resolveTocLimits({ maxPathLength, maxPathDepth });
    let mismatches = 0;
    for (let i = 0; i < 20_000; i++) {
      const n = 1 + Math.floor(rand() * 6);
      let name = Array.from({ length: n }, () => parts[Math.floor(rand() * parts.length)]!).join('/');
      if (rand() < 0.2) name = `/${name}`;
      if (rand() < 0.2) name = `./${name}`;
      if (rand() < 0.3) name = `${name}/`;
      const want = plainNormalize(name, maxPathLength, maxPathDepth);
      const got = outcome(() => normalizePath(name, limits));
      if (got !== want && mismatches++ < 5) t.fail(`${JSON.stringify(name)}: ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
    }
    t.equal(mismatches, 0, `no mismatch (maxPathLength ${maxPathLength}, maxPathDepth ${maxPathDepth})`);
  }
});

t.test('normalizePath: length and depth bounds hold on the fast path too', async (t) => {
  const limits = resolveTocLimits({ maxPathLength: 12, maxPathDepth: 3 });
  t.equal(normalizePath('abcd/efgh', limits), 'abcd/efgh');
  t.throws(() => normalizePath('a/b/c/d', limits), FieldError, 'four components, depth 3');
  t.throws(() => normalizePath('ééééééé', limits), FieldError, '14 UTF-8 bytes in 7 units');
  t.equal(normalizePath('usr/lib/', resolveTocLimits()), 'usr/lib', "a directory's trailing / is dropped");
  t.equal(normalizePath('usr/lib//', resolveTocLimits()), 'usr/lib');
});

t.test('parseModtime: the same milliseconds as Date.parse, on first sight and when seen again', async (t) => {
  const rand = prng(0x7173);
  const pad = (n: number, w: number): string => String(n).padStart(w, '0');
  let mismatches = 0;
  for (let i = 0; i < 5000; i++) {
    const year = 1000 + Math.floor(rand() * 9000);
    const month = 1 + Math.floor(rand() * 12);
    const day = 1 + Math.floor(rand() * 28);
    const zone = rand() < 0.5 ? 'Z' : `${rand() < 0.5 ? '+' : '-'}${pad(Math.floor(rand() * 14), 2)}:${pad(Math.floor(rand() * 60), 2)}`;
    const frac = rand() < 0.3 ? `.${pad(Math.floor(rand() * 1000), 3)}` : '';
    const text = `${pad(year, 4)}-${pad(month, 2)}-${pad(day, 2)}T${pad(Math.floor(rand() * 24), 2)}:${pad(Math.floor(rand() * 60), 2)}:${pad(Math.floor(rand() * 60), 2)}${frac}${zone}`;
    const want = Date.parse(text);
    for (const sight of ['first', 'again']) {
      const got = parseModtime(text);
      if (got !== want && mismatches++ < 5) t.fail(`${text} (${sight}): ${got}, want ${want}`);
    }
  }
  t.equal(mismatches, 0, 'no mismatch');
});

t.test('parseModtime: a refused time is refused every time (refusals are not remembered as times)', async (t) => {
  for (const text of ['2021-02-30T00:00:00Z', '2021-01-01', '2021-13-01T00:00:00Z', '2021-01-01T24:00:00Z']) {
    t.throws(() => parseModtime(text), FieldError, `${text} first`);
    t.throws(() => parseModtime(text), FieldError, `${text} again`);
  }
  t.equal(parseModtime(undefined), 0);
  t.equal(parseModtime(''), 0);
});
