// What a program needs to run, read from its ELF bytes (src/image/elf-deps.ts), and the prefetch that reads
// those libraries whole when the program is opened (src/image/library-prefetch.ts): found as the loader
// finds them (interpreter, RUNPATH with $ORIGIN, multiarch directories, symlinks inside the image, also
// through /etc/alternatives), followed transitively, once; and never an error for anyone. Real ELF files
// of this machine (Debian bookworm, as every machine the tests run on) and synthetic ones.
import { readFileSync } from 'node:fs';
import t from 'tap';
import { elfNeeds, isElf64 } from '../../src/formats/elf/elf-deps.js';
import { LibraryPrefetch, type LibraryTree } from '../../src/image/library-prefetch.js';
import { memoryTree } from '../support/memory-tree.js';

const TRUE = readFileSync('/bin/true');
const LIBC = readFileSync('/lib/x86_64-linux-gnu/libc.so.6');

/** A minimal ELF64 with PT_INTERP, PT_LOAD, PT_DYNAMIC: DT_NEEDED names and a RUNPATH. */
function syntheticElf(opts: { interp?: string; needed: string[]; runpath?: string }): Buffer {
  const strings = ['', ...opts.needed, ...(opts.runpath ? [opts.runpath] : [])];
  const strtab = Buffer.from(`${strings.join('\0')}\0`, 'latin1');
  const offsetOf = (s: string): number => Buffer.from(strings.slice(0, strings.indexOf(s)).map((x) => `${x}\0`).join(''), 'latin1').length;
  const interp = opts.interp ? Buffer.from(`${opts.interp}\0`) : Buffer.alloc(0);
  const phnum = 3;
  const phoff = 64;
  const interpAt = phoff + phnum * 56;
  const strtabAt = interpAt + interp.length;
  const dynAt = Math.ceil((strtabAt + strtab.length) / 8) * 8;
  const dyn: [number, number][] = [
    ...opts.needed.map((n): [number, number] => [1, offsetOf(n)]),
    [5, 0x1000 + strtabAt], // DT_STRTAB as an address in the PT_LOAD below (vaddr 0x1000 <- file 0)
    ...(opts.runpath ? [[29, offsetOf(opts.runpath)] as [number, number]] : []),
    [0, 0],
  ];
  const size = dynAt + dyn.length * 16;
  const b = Buffer.alloc(size);
  b.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1], 0);
  b.writeBigUInt64LE(BigInt(phoff), 32);
  b.writeUInt16LE(56, 54);
  b.writeUInt16LE(phnum, 56);
  const ph = (i: number, type: number, offset: number, vaddr: number, filesz: number): void => {
    const at = phoff + i * 56;
    b.writeUInt32LE(type, at);
    b.writeBigUInt64LE(BigInt(offset), at + 8);
    b.writeBigUInt64LE(BigInt(vaddr), at + 16);
    b.writeBigUInt64LE(BigInt(filesz), at + 32);
  };
  ph(0, opts.interp ? 3 : 6, interpAt, 0x1000 + interpAt, interp.length);
  ph(1, 1, 0, 0x1000, size);
  ph(2, 2, dynAt, 0x1000 + dynAt, dyn.length * 16);
  interp.copy(b, interpAt);
  strtab.copy(b, strtabAt);
  dyn.forEach(([tag, val], i) => {
    b.writeBigInt64LE(BigInt(tag), dynAt + i * 16);
    b.writeBigUInt64LE(BigInt(val), dynAt + i * 16 + 8);
  });
  return b;
}

t.test('elfNeeds reads the interpreter, DT_NEEDED and RUNPATH', async (t) => {
  t.same(elfNeeds(TRUE), { needed: ['libc.so.6'], searchPath: [], interpreter: '/lib64/ld-linux-x86-64.so.2' }, '/bin/true of this machine');
  t.same(elfNeeds(LIBC)?.needed, ['ld-linux-x86-64.so.2'], 'libc needs the loader');
  t.same(elfNeeds(syntheticElf({ interp: '/lib/ld.so', needed: ['liba.so.1', 'libb.so.2'], runpath: '$ORIGIN/../lib:/opt/x' })), {
    needed: ['liba.so.1', 'libb.so.2'],
    searchPath: ['$ORIGIN/../lib', '/opt/x'],
    interpreter: '/lib/ld.so',
  });
});

t.test('bytes that are no ELF, or do not hold together, need nothing and never throw', async (t) => {
  t.equal(elfNeeds(Buffer.from('#!/bin/sh\necho hi\n')), undefined);
  t.notOk(isElf64(Buffer.alloc(10)));
  const elf = syntheticElf({ needed: ['liba.so'] });
  t.doesNotThrow(() => {
    for (let cut = 0; cut < elf.length; cut++) elfNeeds(elf.subarray(0, cut));
  }, 'every truncation');
  t.doesNotThrow(() => {
    for (let i = 0; i < 5000; i++) {
      const garbled = Buffer.from(elf);
      const at = (i * 7919) % garbled.length;
      garbled[at] = garbled[at]! ^ 0xff;
      garbled[(i * 104729) % garbled.length] = i & 0xff;
      elfNeeds(garbled);
    }
  }, '5000 garbled copies');
  const huge = Buffer.from(elf);
  huge.writeUInt16LE(65535, 56); // phnum
  t.equal(elfNeeds(huge), undefined);
});

const tree = memoryTree;

const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 30));

t.test('opening a program reads its loader and libraries whole, transitively, once', async (t) => {
  const fs = tree({
    'usr/bin/app': syntheticElf({ interp: '/lib64/ld.so', needed: ['libm.so.6', 'libblas.so.3', 'libapp.so'], runpath: '$ORIGIN/../lib/app' }),
    lib64: { link: 'usr/lib64' },
    'usr/lib64/ld.so': syntheticElf({ needed: [] }),
    lib: { link: 'usr/lib' },
    'usr/lib/x86_64-linux-gnu/libm.so.6': syntheticElf({ needed: ['libc.so.6'] }),
    'usr/lib/x86_64-linux-gnu/libc.so.6': syntheticElf({ needed: [] }),
    'usr/lib/x86_64-linux-gnu/libblas.so.3': { link: '/etc/alternatives/libblas.so.3' },
    'etc/alternatives/libblas.so.3': { link: '/usr/lib/x86_64-linux-gnu/blas/libblas.so.3' },
    'usr/lib/x86_64-linux-gnu/blas/libblas.so.3': syntheticElf({ needed: ['libm.so.6', 'libgfortran.so.5'] }),
    'usr/lib/x86_64-linux-gnu/libgfortran.so.5': { link: 'libgfortran.so.5.0.0' },
    'usr/lib/x86_64-linux-gnu/libgfortran.so.5.0.0': syntheticElf({ needed: [] }),
    'usr/lib/app/libapp.so': syntheticElf({ needed: ['libmissing.so'] }),
    'usr/share/doc/readme': Buffer.from('not a program'),
  });
  const libs = new LibraryPrefetch(fs);
  const app = await fs.read('usr/bin/app', 0, 64);
  libs.opened('usr/bin/app', app);
  await settle();
  t.same(new Set(fs.reads.slice(1)), new Set([
    'usr/bin/app',
    'usr/lib64/ld.so',
    'usr/lib/x86_64-linux-gnu/libm.so.6',
    'usr/lib/x86_64-linux-gnu/libc.so.6',
    'usr/lib/x86_64-linux-gnu/blas/libblas.so.3',
    'usr/lib/x86_64-linux-gnu/libgfortran.so.5.0.0',
    'usr/lib/app/libapp.so',
  ]), 'the loader, DT_NEEDED through symlinks and alternatives, RUNPATH with $ORIGIN, transitively');
  t.equal(fs.reads.length, 8, 'each once (libm is needed twice)');
  t.same(fs.foreground, ['usr/bin/app'], 'every prefetch read is a background read (no figures, no read-ahead)');
  libs.opened('usr/bin/app', app);
  libs.opened('usr/share/doc/readme', Buffer.from('not a program'));
  await settle();
  t.equal(fs.reads.length, 8, 'a program opened again, or a file that is no ELF: nothing more');
});

t.test('the head of a dynamically linked program brings the loader cache at once, before the program is read whole', async (t) => {
  let release: () => void = () => {};
  const held = new Promise<void>((r) => (release = r));
  const fs = tree({
    'usr/bin/app': syntheticElf({ interp: '/lib64/ld.so', needed: [] }),
    'usr/bin/static': syntheticElf({ needed: [] }),
    'lib64/ld.so': syntheticElf({ needed: [] }),
    etc: { link: 'private/etc' },
    'private/etc/ld.so.cache': Buffer.from('glibc-ld.so.cache1.1'),
  });
  const slowWhole: LibraryTree = {
    ...fs,
    read: async (path, o, l, signal, opts) => {
      if (path === 'usr/bin/app') await held; // the rest of the program is still on its way
      return fs.read(path, o, l, signal, opts);
    },
  };
  const libs = new LibraryPrefetch(slowWhole);
  libs.opened('usr/bin/static', syntheticElf({ needed: [] }));
  await settle();
  t.same(fs.reads, ['usr/bin/static'], 'a program without an interpreter: no loader cache');
  const head = syntheticElf({ interp: '/lib64/ld.so', needed: [] }).subarray(0, 4096);
  libs.opened('usr/bin/app', head);
  await settle();
  t.same(fs.reads.slice(1), ['private/etc/ld.so.cache'], 'the cache (its symlinks followed) while the program is still held');
  t.same(fs.foreground, [], 'in the background');
  release();
  await settle();
  libs.opened('usr/bin/other', head);
  await settle();
  t.equal(fs.reads.filter((r) => r === 'private/etc/ld.so.cache').length, 1, 'once per image');
});

t.test('a library that fails to read is nobody\'s error; the limits hold', async (t) => {
  const fs = tree({
    'bin/a': syntheticElf({ needed: ['liba.so', 'libb.so'] }),
    'lib/liba.so': { link: 'liba.so' }, // a symlink loop
    'lib/libb.so': syntheticElf({ needed: ['libc.so'] }),
    'lib/libc.so': syntheticElf({ needed: [] }),
  });
  const failing: LibraryTree = { ...fs, read: async (path, o, l) => (path === 'lib/libb.so' ? Promise.reject(new Error('EIO')) : fs.read(path, o, l)) };
  new LibraryPrefetch(failing).opened('bin/a', syntheticElf({ needed: [] }));
  await settle();
  t.same(fs.reads, ['bin/a'], 'the loop resolved to nothing, the failed read stopped there');

  const small = tree({ 'bin/a': syntheticElf({ needed: ['libb.so'] }), 'lib/libb.so': syntheticElf({ needed: [] }) });
  new LibraryPrefetch(small, { maxFileBytes: 10 }).opened('bin/a', syntheticElf({ needed: [] }));
  await settle();
  t.same(small.reads, [], 'a program over maxFileBytes is not read');
});
