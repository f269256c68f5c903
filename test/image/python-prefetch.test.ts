// The prefetch of what a Python import is about to load (src/image/python-prefetch.ts): opening a
// compiled module reads the modules its module-level code imports, found as CPython's path finder finds
// them (relative imports in the package, absolute ones in the standard library and site directories,
// each package along a dotted name, submodules named in a fromlist), transitively and once; extension
// modules go to the library prefetch; frozen modules, imports inside functions, other Python versions
// and other files cost nothing. The .pyc files are CPython 3.11's, 3.12's and 3.13's own (fixtures/python).
import { readFileSync } from 'node:fs';
import t from 'tap';
import { PythonPrefetch } from '../../src/image/python-prefetch.js';
import { isFollowedBytecode } from '../../src/layers/fetch/read-ahead.js';
import { PYC_CACHE_TAGS } from '../../src/formats/python/pyc-imports.js';
import { memoryTree } from '../support/memory-tree.js';

const fixture = (path: string): Buffer => readFileSync(new URL(`../fixtures/python/src/${path}`, import.meta.url));
const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 30));

/** The fixture sources and their compiled modules of `tag`, as Debian installs Python 3.x. */
function image(tag: string, version: string) {
  const files: Record<string, Buffer> = {};
  const sources: Record<string, string> = {
    'pkg/__init__': 'site', 'pkg/core': 'site', 'pkg/helper': 'site', 'pkg/extra': 'site', 'pkg/sub/__init__': 'site', 'pkg/sub/leaf': 'site',
    'json/__init__': 'stdlib', 'json/decoder': 'stdlib', 'collections/__init__': 'stdlib', 'collections/abc': 'stdlib',
    'email/__init__': 'stdlib', os: 'stdlib', keyword: 'stdlib', base64: 'stdlib',
  };
  const dirs = { site: 'usr/lib/python3/dist-packages', stdlib: `usr/lib/python${version}` };
  for (const [module, where] of Object.entries(sources)) {
    const slash = module.lastIndexOf('/');
    const [dir, name] = slash < 0 ? ['', module] : [`${module.slice(0, slash)}/`, module.slice(slash + 1)];
    files[`${dirs[where as keyof typeof dirs]}/${dir}${name}.py`] = fixture(`${where}/${dir}${name}.py`);
    files[`${dirs[where as keyof typeof dirs]}/${dir}__pycache__/${name}.${tag}.pyc`] = fixture(`${where}/${dir}__pycache__/${name}.${tag}.pyc`);
  }
  files[`usr/lib/python${version}/lib-dynload/_speedups.${tag}-x86_64-linux-gnu.so`] = Buffer.from('\x7fELF extension');
  files['usr/share/doc/readme'] = Buffer.from('not Python');
  return files;
}

for (const [tag, version] of [['cpython-311', '3.11'], ['cpython-312', '3.12'], ['cpython-313', '3.13']] as const) {
  t.test(`${tag}: opening a module reads what its import executes, transitively, once`, async (t) => {
    const fs = memoryTree(image(tag, version));
    const extensions: string[] = [];
    const python = new PythonPrefetch(fs, { onExtension: (path) => extensions.push(path) });
    const top = `usr/lib/python3/dist-packages/pkg/__pycache__/__init__.${tag}.pyc`;
    python.opened(top, await fs.read(top, 0, 4096));
    await settle();
    const site = 'usr/lib/python3/dist-packages/pkg';
    const stdlib = `usr/lib/python${version}`;
    t.same(new Set(fs.reads.slice(1)), new Set([
      top,
      `${stdlib}/json/__pycache__/__init__.${tag}.pyc`, // import json
      `${stdlib}/json/__pycache__/decoder.${tag}.pyc`, // ... whose from .decoder import
      `${site}/__pycache__/core.${tag}.pyc`, // from . import core
      `${site}/__pycache__/helper.${tag}.pyc`, // ... whose from . import helper
      `${site}/sub/__pycache__/__init__.${tag}.pyc`, // from .sub import leaf: the package
      `${site}/sub/__pycache__/leaf.${tag}.pyc`, // ... and the submodule of the fromlist
      `${site}/__pycache__/extra.${tag}.pyc`, // from pkg import extra
      `${stdlib}/collections/__pycache__/__init__.${tag}.pyc`, // from collections import *
      `${stdlib}/__pycache__/keyword.${tag}.pyc`, // ... whose import keyword
      `${stdlib}/collections/__pycache__/abc.${tag}.pyc`, // import collections.abc (in leaf)
    ]), 'not os (frozen), not email (imported inside a function), not base64 (only email imports it)');
    t.equal(fs.reads.length, new Set(fs.reads).size + 1, 'each file once (the first read is the opener\'s own)');
    t.same(extensions, [`${stdlib}/lib-dynload/_speedups.${tag}-x86_64-linux-gnu.so`], 'import _speedups: the extension module goes to the library prefetch');
    t.same(fs.foreground, [top], 'every prefetch read is a background read');

    const before = fs.reads.length;
    python.opened(top, await fs.read(top, 0, 4096));
    python.opened(`${site}/__pycache__/core.${tag}.pyc`, await fs.read(`${site}/__pycache__/core.${tag}.pyc`, 0, 4096));
    await settle();
    t.equal(fs.reads.length, before + 2, 'opened again: nothing more');
  });
}

t.test('other files, other versions and failing reads cost nothing and throw nothing', async (t) => {
  const files = image('cpython-311', '3.11');
  const source = 'usr/lib/python3/dist-packages/pkg/__init__.py';
  const old = Buffer.from(files['usr/lib/python3/dist-packages/pkg/__pycache__/__init__.cpython-311.pyc']!);
  old.writeUInt16LE(3439, 0); // CPython 3.10
  files['usr/lib/python3/dist-packages/pkg/__pycache__/__init__.cpython-310.pyc'] = old;
  const fs = memoryTree(files);
  const python = new PythonPrefetch(fs);
  python.opened(source, files[source]!);
  python.opened('usr/share/doc/readme', files['usr/share/doc/readme']!);
  python.opened('usr/lib/python3/dist-packages/pkg/__pycache__/__init__.cpython-310.pyc', old);
  await settle();
  t.same(fs.reads, [], 'a source file, a text file, a 3.10 module: nothing read');

  const failing = { ...fs, read: () => Promise.reject(new Error('EIO')) };
  const top = 'usr/lib/python3/dist-packages/pkg/__pycache__/__init__.cpython-311.pyc';
  new PythonPrefetch(failing).opened(top, files[top]!);
  await settle();
  t.pass('a failing read is nobody\'s error');
});

t.test('a module limit bounds what one image follows', async (t) => {
  const fs = memoryTree(image('cpython-311', '3.11'));
  const python = new PythonPrefetch(fs, { maxModules: 3 });
  const top = 'usr/lib/python3/dist-packages/pkg/__pycache__/__init__.cpython-311.pyc';
  python.opened(top, await fs.read(top, 0, 4096));
  await settle();
  t.equal(python.followed, 3);
  t.ok(fs.reads.length <= 4, `${fs.reads.length} reads`);
});

t.test('the read-ahead leaves the neighbours of exactly these modules alone', async (t) => {
  for (const tag of PYC_CACHE_TAGS) t.ok(isFollowedBytecode(`usr/lib/python3/__pycache__/x.${tag}.pyc`), tag);
  t.notOk(isFollowedBytecode('usr/lib/python3.10/__pycache__/x.cpython-310.pyc'), 'a version not followed');
  t.notOk(isFollowedBytecode('usr/lib/python3.11/x.py'), 'a source');
  t.notOk(isFollowedBytecode('usr/lib/python3.11/x.cpython-311.pyc'), 'outside __pycache__');
});
