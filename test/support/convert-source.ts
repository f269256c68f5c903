// The source image the convert-and-read-back tests start from: a gzip layer of many small files, a large
// one, a sparse run of zeros, an empty file and a hardlink; a zstd layer with binary xattrs, unicode and
// long names, a symlink, a fifo and a whiteout; and a plain-tar layer whose files each test sizes around
// its writer's chunk size.
import { dir, fifo, file, hardlink, symlink, whiteout, type TarEntry } from './tar-dsl.js';

export interface SourceLayer {
  readonly compression: 'gzip' | 'zstd' | 'none';
  readonly entries: TarEntry[];
}

export function convertSourceLayers(smallFiles: number, plainTarFiles: readonly TarEntry[]): SourceLayer[] {
  return [
    {
      compression: 'gzip',
      entries: [
        dir('usr'),
        dir('usr/lib'),
        ...Array.from({ length: smallFiles }, (_, i) => file(`usr/lib/small-${i}.txt`, `file ${i}\n`.repeat(i % 50))),
        file('usr/lib/big.so', { size: 9 * 2 ** 20 + 123 }),
        file('usr/lib/zeros.img', { size: 3 * 2 ** 20, sparse: true }),
        file('usr/lib/empty', ''),
        hardlink('usr/lib/big-again.so', 'usr/lib/big.so'),
      ],
    },
    {
      compression: 'zstd',
      entries: [
        dir('etc'),
        file('etc/caps', 'binary xattr', { xattrs: { 'security.capability': Buffer.from([1, 0, 0, 2, 0x80, 0, 0, 0]) } }),
        file('etc/ünïcødé-名前', 'unicode name\n'),
        file(`etc/${'long-name-'.repeat(20)}`, 'long name\n'),
        symlink('etc/link', '../usr/lib/big.so'),
        fifo('etc/fifo'),
        whiteout('usr/lib/small-0.txt'),
      ],
    },
    { compression: 'none', entries: [dir('opt'), ...plainTarFiles] },
  ];
}
