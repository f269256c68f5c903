// Interop: Debian's `flatc` (package flatbuffers-compiler, installed by scripts/setup.sh) decodes zTOCs
// written by encodeZtoc, given the schema in test/fixtures/soci/ztoc.fbs, and its JSON must say exactly
// what the Ztoc said. This catches "we agree with ourselves but not with flatbuffers": wrong slots,
// wrong scalar widths, a vector or string laid out in a way only our own reader accepts.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import type { Ztoc } from '../../src/formats/soci/ztoc.js';
import { encodeZtoc } from '../../src/formats/soci/ztoc-encode.js';
import { buildSoci } from '../support/soci-build.js';
import { VECTORS } from '../support/vectors.js';

const schema = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'soci', 'ztoc.fbs');

/** What flatc --defaults-json prints for a Ztoc: every field, schema names, bytes as numbers. */
function expectedJson(z: Ztoc): unknown {
  return {
    version: z.version,
    build_tool_identifier: z.buildToolIdentifier,
    compressed_archive_size: z.compressedArchiveSize,
    uncompressed_archive_size: z.uncompressedArchiveSize,
    toc: {
      metadata: z.entries.map((e) => ({
        name: e.name,
        type: e.type,
        uncompressed_offset: e.uncompressedOffset,
        uncompressed_size: e.uncompressedSize,
        linkname: e.linkname,
        mode: e.mode,
        uid: e.uid,
        gid: e.gid,
        uname: e.uname,
        gname: e.gname,
        mod_time: e.modTime,
        devmajor: e.devmajor,
        devminor: e.devminor,
        xattrs: e.xattrs.map((x) => ({ key: x.key, value: Buffer.from(x.value).toString('utf8') })),
      })),
    },
    compression_info: {
      compression_algorithm: 'Gzip',
      max_span_id: z.compression.maxSpanId,
      span_digests: z.compression.spanDigests,
      checkpoints: 'sha256 of the bytes, compared separately',
    },
  };
}

const dir = mkdtempSync(join(tmpdir(), 'tocfs-ztoc-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

const which = spawnSync('flatc', ['--version'], { encoding: 'utf8' });
t.equal(which.status, 0, 'flatc is installed (Debian flatbuffers-compiler; scripts/setup.sh installs it)');

// Vectors whose xattr values are UTF-8: flatc's JSON printer refuses other bytes in a string.
const names = ['regfiles and directories', 'special files', 'hardlink to chunked file', 'xattrs', 'uid/gid names only on first use', 'mtimes', './ and / prefixes'];
for (const name of names) {
  t.test(`flatc reads encodeZtoc's ${name}`, { skip: which.status !== 0 ? 'no flatc' : false }, async (t) => {
    const built = buildSoci(VECTORS.find((v) => v.name === name)!.entries, { spanSize: 2048 });
    const file = join(dir, `${name.replace(/[^a-z]+/g, '-')}.ztoc`);
    writeFileSync(file, encodeZtoc(built.ztoc));
    const run = spawnSync('flatc', ['--json', '--strict-json', '--defaults-json', '--raw-binary', '-o', dir, schema, '--', file], { encoding: 'utf8' });
    t.equal(run.status, 0, `flatc exit status (stderr: ${run.stderr})`);
    const json = JSON.parse(readFileSync(file.replace(/\.ztoc$/, '.json'), 'utf8')) as { compression_info: { checkpoints: number[] } };
    const checkpoints = Uint8Array.from(json.compression_info.checkpoints);
    t.ok(Buffer.from(checkpoints).equals(built.ztoc.compression.checkpoints), 'checkpoint bytes');
    t.same({ ...json, compression_info: { ...json.compression_info, checkpoints: 'sha256 of the bytes, compared separately' } }, expectedJson(built.ztoc));
  });
}
