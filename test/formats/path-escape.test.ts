// Path traversal out of the layer (the tar-slip class: node-tar GHSA-3jfq-g458-7qm9, CVE-2018-20482):
// a TOC name or hardlink target with a `..` component, however disguised, fails the whole layer with a
// FormatError naming the entry, while a symlink's target stays verbatim (the kernel resolves it inside
// the mount). DESIGN.md §1.3: "entries with `..` or that would escape the root are rejected".
import t from 'tap';
import { FormatError } from '../../src/errors.js';
import { indexToc } from '../../src/formats/toc-index.js';
import type { RawTocEntry } from '../../src/formats/toc.js';
import { buildEstargz } from '../support/estargz-build.js';
import { decodeBlob } from '../support/format-suite.js';
import { file, hardlink, symlink } from '../support/tar-dsl.js';

const index = (raw: RawTocEntry[]) => indexToc(raw, { format: 'estargz-gzip', tocOffset: 1 << 20 });

const ESCAPES = ['..', '../x', '../../etc/passwd', '/../etc/shadow', './../x', 'a/../../x', 'a/b/../../../x', 'a/..', 'a/../b', '..//x', 'a/./../x'];

t.test('a name with a .. component is rejected, naming the entry', async (t) => {
  for (const name of ESCAPES) {
    t.throws(() => index([{ name: 'ok', type: 'reg' }, { name, type: 'reg' }]), { name: 'FormatError', message: /TOC entry #1 .*path traversal/ }, JSON.stringify(name));
  }
  for (const type of ['dir', 'symlink', 'fifo', 'char'] as const) {
    t.throws(() => index([{ name: '../x', type, linkName: 't' }]), FormatError, type);
  }
});

t.test('a hardlink target with a .. component is rejected', async (t) => {
  for (const target of ESCAPES) {
    t.throws(() => index([{ name: 'f', type: 'reg' }, { name: 'l', type: 'hardlink', linkName: target }]), { message: /path traversal/ }, JSON.stringify(target));
  }
  t.throws(() => index([{ name: 'l', type: 'hardlink', linkName: '/../etc/passwd' }]), { message: /path traversal/ }, 'an absolute target with ..');
  // An absolute target names a path of the image root; absent from this layer, it is left for the merged
  // view to resolve against the lower layers, normalised like every name.
  t.same([...index([{ name: 'l', type: 'hardlink', linkName: '//etc/./passwd' }]).externalLinks()], [['l', 'etc/passwd']]);
});

t.test('names that only look odd stay inside the root', async (t) => {
  const idx = index([
    { name: '/etc/passwd', type: 'reg' },
    { name: '...', type: 'reg' },
    { name: '..hidden', type: 'reg' },
    { name: 'a..b/c', type: 'reg' },
    { name: '//x//y/', type: 'dir' },
  ]);
  t.same([...idx.walk()].map(([p]) => p), ['', 'etc', 'etc/passwd', '...', '..hidden', 'a..b', 'a..b/c', 'x', 'x/y']);
  t.equal(idx.lookup('..'), undefined);
});

t.test('symlink targets are kept verbatim, even absolute or with ..', async (t) => {
  const idx = index([
    { name: 'up', type: 'symlink', linkName: '../../../../etc/shadow' },
    { name: 'abs', type: 'symlink', linkName: '/etc/shadow' },
  ]);
  t.equal(idx.lookup('up')!.linkName, '../../../../etc/shadow');
  t.equal(idx.lookup('abs')!.linkName, '/etc/shadow');
});

t.test('a whole eStargz layer with an escaping entry fails to decode', async (t) => {
  for (const entries of [[file('ok', 'x'), file('../evil', 'y')], [file('ok', 'x'), hardlink('l', '../../ok')]]) {
    const built = await buildEstargz(entries, { chunkSize: 4 });
    await t.rejects(decodeBlob(built.blob), { code: 'FORMAT', message: /path traversal/ });
  }
  const fine = await buildEstargz([file('ok', 'x'), symlink('s', '../../ok')], { chunkSize: 4 });
  t.equal((await decodeBlob(fine.blob)).index.lookup('s')!.linkName, '../../ok');
});
