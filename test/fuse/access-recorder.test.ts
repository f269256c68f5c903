// The access recorder in-process over a fake filesystem: which files an image's workload read, first read
// first, each once; paging under the kernel's xattr size limit; mount-wide FUSE call counts.
import t from 'tap';
import { ACCESSED_PAGE_BYTES, ACCESSED_XATTR, FUSE_OPS_XATTR, pageLines, recordAccesses, splitImagePath } from '../../src/fuse/access-recorder.js';
import type { Filesystem, FsNode } from '../../src/image/filesystem.js';
import { TocfsError } from '../../src/errors.js';

const ROOT = '/images/127.0.0.1:5000/app/py:v1';
const node: FsNode = { ino: 2, type: 'reg', mode: 0o644, uid: 0, gid: 0, mtimeMs: 0, size: 3, nlink: 1 };

function inner(): Filesystem {
  const read = async (path: string): Promise<Uint8Array> => {
    if (path.endsWith('/broken')) throw new TocfsError('BAD_DATA', 'digest mismatch');
    return new Uint8Array([1, 2, 3]);
  };
  return {
    lookup: async () => node,
    readdir: async () => [],
    open: async (path) => ({ node, read: () => read(path) }),
    read,
    xattrs: async () => new Map([['user.tocfs.requests', new TextEncoder().encode('7')]]),
    close: async () => {},
  };
}

const text = (v: Uint8Array | undefined): string => new TextDecoder().decode(v);

t.test('splitImagePath finds the image root after a host with a port, by tag or digest', async (t) => {
  t.same(splitImagePath(`${ROOT}/usr/bin/python3`), { root: ROOT, rest: 'usr/bin/python3' });
  t.same(splitImagePath(ROOT), { root: ROOT, rest: '' });
  t.same(splitImagePath(`/images/reg.example/a/b@sha256:${'a'.repeat(64)}/x`), { root: `/images/reg.example/a/b@sha256:${'a'.repeat(64)}`, rest: 'x' });
  t.equal(splitImagePath('/images/127.0.0.1:5000/app'), undefined, 'a prefix is no image');
  t.equal(splitImagePath('/layers/h/r@sha256:00/x'), undefined, '/layers is not recorded');
  t.equal(splitImagePath('/'), undefined);
});

t.test('records each file once, in the order of its first successful read, per image', async (t) => {
  const fs = recordAccesses(inner());
  const other = '/images/reg.example/other:1';
  await fs.read(`${ROOT}/usr/bin/python3`, 0, 3);
  await fs.read(`${other}/etc/hosts`, 0, 3);
  await fs.read(`${ROOT}/usr/lib/libc.so.6`, 0, 3);
  await fs.read(`${ROOT}/usr/bin/python3`, 4096, 3);
  await t.rejects(fs.read(`${ROOT}/broken`, 0, 3), /digest mismatch/);
  await fs.read('/layers/reg.example/x@sha256:00/etc/passwd', 0, 3);
  t.same(fs.accessed(ROOT), ['/usr/bin/python3', '/usr/lib/libc.so.6'], 'a failed read is not a file the workload got');
  t.same(fs.accessed(other), ['/etc/hosts']);

  const xattrs = await fs.xattrs(ROOT);
  t.equal(text(xattrs.get(ACCESSED_XATTR)), '2');
  t.equal(text(xattrs.get(`${ACCESSED_XATTR}.0`)), '/usr/bin/python3\n/usr/lib/libc.so.6\n');
  t.equal(text(xattrs.get('user.tocfs.requests')), '7', 'the inner figures stay');
  t.notOk((await fs.xattrs(`${ROOT}/usr/bin/python3`)).has(ACCESSED_XATTR), 'only on the image root');
  t.same(JSON.parse(text((await fs.xattrs('/')).get(FUSE_OPS_XATTR))), { lookup: 0, readdir: 0, read: 6, xattrs: 3 }, 'mount-wide counts on /');
});

t.test('reads through an open handle are recorded as path reads are: first successful read, once', async (t) => {
  const fs = recordAccesses(inner());
  const python = await fs.open(`${ROOT}/usr/bin/python3`);
  const broken = await fs.open(`${ROOT}/broken`);
  const libc = await fs.open(`${ROOT}/usr/lib/libc.so.6`);
  t.same(fs.accessed(ROOT), [], 'an open alone reads nothing');
  await t.rejects(broken.read(0, 3), /digest mismatch/);
  await libc.read(0, 3);
  await python.read(0, 3);
  await python.read(4096, 3);
  await fs.read(`${ROOT}/usr/lib/libc.so.6`, 8, 3);
  t.equal(python.node, node, 'the handle shows the inner node');
  t.same(fs.accessed(ROOT), ['/usr/lib/libc.so.6', '/usr/bin/python3'], 'in first-read order; a failed read is not recorded');
  t.same(fs.fuseOps(), { lookup: 3, readdir: 0, read: 5, xattrs: 0 }, 'an open counts as a lookup, each handle read as a read');
});

t.test('a long list is paged under the xattr size limit; the cap stops recording', async (t) => {
  const fs = recordAccesses(inner(), { maxFilesPerImage: 3000 });
  const files = Array.from({ length: 3500 }, (_, i) => `/usr/share/doc/package-${i}/${'x'.repeat(40)}`);
  for (const f of files) await fs.read(`${ROOT}${f}`, 0, 1);
  const xattrs = await fs.xattrs(ROOT);
  t.equal(text(xattrs.get(ACCESSED_XATTR)), '3000');
  const pages: string[] = [];
  for (let i = 0; xattrs.has(`${ACCESSED_XATTR}.${i}`); i++) pages.push(text(xattrs.get(`${ACCESSED_XATTR}.${i}`)));
  t.ok(pages.length > 1, `${pages.length} pages`);
  for (const p of pages) t.ok(Buffer.byteLength(p) <= ACCESSED_PAGE_BYTES, 'each page fits');
  t.same(pages.join('').split('\n').filter(Boolean), files.slice(0, 3000));
  t.same(pageLines(['a', 'b', 'c'], 4), ['a\nb\n', 'c\n']);
  t.same(pageLines([]), []);
});
