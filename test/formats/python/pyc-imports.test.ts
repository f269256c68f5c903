// The imports of a compiled Python module (src/image/pyc-imports.ts), read from .pyc files written by
// CPython 3.11, 3.12 and 3.13 themselves (test/fixtures/python/make.sh): module-level imports in order, with
// their level and fromlist, none from inside functions; another version, or bytes that do not hold
// together, give undefined and never throw.
import { readFileSync } from 'node:fs';
import t from 'tap';
import { PYC_CACHE_TAGS, pycCacheTag, pycImports } from '../../../src/formats/python/pyc-imports.js';
import { prng } from '../../support/prng.js';

const fixture = (path: string): Buffer => readFileSync(new URL(`../../fixtures/python/src/${path}`, import.meta.url));

t.test('every form of module-level import, from the bytecode of each version read', async (t) => {
  t.same(PYC_CACHE_TAGS, ['cpython-311', 'cpython-312', 'cpython-313']);
  for (const tag of PYC_CACHE_TAGS) {
    const pyc = fixture(`site/pkg/__pycache__/__init__.${tag}.pyc`);
    t.equal(pycCacheTag(pyc), tag);
    t.same(pycImports(pyc), {
      cacheTag: tag,
      imports: [
        { name: 'os', level: 0, fromlist: [] },
        { name: 'json', level: 0, fromlist: [] },
        { name: '', level: 1, fromlist: ['core'] },
        { name: 'sub', level: 1, fromlist: ['leaf', 'not_a_module'] },
        { name: 'pkg', level: 0, fromlist: ['extra'] },
        { name: 'collections', level: 0, fromlist: ['*'] },
        { name: 'missing_module', level: 0, fromlist: [] },
      ],
    }, `${tag}: "import email" inside a function is not listed`);
    t.same(pycImports(fixture(`site/pkg/__pycache__/helper.${tag}.pyc`))?.imports, [], `${tag}: a module without imports`);
    t.same(pycImports(fixture(`site/pkg/sub/__pycache__/leaf.${tag}.pyc`))?.imports, [{ name: 'collections.abc', level: 0, fromlist: [] }]);
  }
});

t.test('another version, another file, or no header at all: undefined', async (t) => {
  const pyc = fixture('site/pkg/__pycache__/__init__.cpython-311.pyc');
  const other = Buffer.from(pyc);
  other.writeUInt16LE(3439, 0); // CPython 3.10
  t.equal(pycCacheTag(other), undefined);
  t.equal(pycImports(other), undefined);
  t.equal(pycImports(Buffer.from('\x7fELF\x02\x01\x01')), undefined);
  t.equal(pycImports(pyc.subarray(0, 3)), undefined);
  t.equal(pycImports(pyc.subarray(0, 16)), undefined, 'a header and no code');
});

t.test('truncated, corrupted or lying bytes never throw and never loop', async (t) => {
  const pyc = fixture('site/pkg/__pycache__/__init__.cpython-312.pyc');
  for (let n = 0; n < pyc.length; n++) {
    const got = pycImports(pyc.subarray(0, n));
    if (got !== undefined) t.fail(`a pyc truncated to ${n} bytes parsed`);
  }
  const random = prng(8);
  for (let i = 0; i < 2000; i++) {
    const bad = Buffer.from(pyc);
    for (let k = 0; k < 3; k++) bad[16 + Math.floor(random() * (bad.length - 16))] = Math.floor(random() * 256);
    const got = pycImports(bad); // anything but an exception
    if (got !== undefined && !Array.isArray(got.imports)) t.fail('not a list');
  }
  const huge = Buffer.concat([pyc.subarray(0, 16), Buffer.from([0x28, 0xff, 0xff, 0xff, 0x7f])]); // a tuple of 2^31-1 items
  t.equal(pycImports(huge), undefined);
  const nested = Buffer.alloc(10_000);
  for (let i = 0; i < nested.length; i += 2) nested.set([0x29, 1], i); // ")" 1: a tuple of one tuple of one tuple...
  const deep = Buffer.concat([pyc.subarray(0, 16), nested]);
  t.equal(pycImports(deep), undefined);
  const selfRef = Buffer.concat([pyc.subarray(0, 16), Buffer.from([0x72, 0, 0, 0, 0])]); // a reference to nothing yet
  t.equal(pycImports(selfRef), undefined);
  t.pass('no exception');
});
