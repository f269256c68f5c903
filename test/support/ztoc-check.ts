// Checks a zTOC built for a gzip blob against the blob itself, independently of the builder: the span
// digests are the sha256 of the blob's byte ranges, every regular file inflated through `extract` from the
// zinfo checkpoints equals its bytes in the tar (gunzip + tar headers), and the entries equal the tar's
// headers as soci records them (soci-build.ts's ztocEntryOf, written apart from the builder's).
import { gunzipSync } from 'node:zlib';
import type { Test } from 'tap';
import { decodeZinfo, sociSpans } from '../../src/formats/soci/zinfo.js';
import { decodeZtoc, type Ztoc } from '../../src/formats/soci/ztoc.js';
import { extract } from '../../src/layers/zran/zran.js';
import { sha256, tarHeaders, ztocEntryOf } from './soci-build.js';

export interface ZtocFigures {
  readonly spans: number;
  readonly files: number;
  readonly spansWithBits: number;
}

/** Asserts everything above; returns the decoded zTOC's figures. */
export async function checkZtoc(t: Test, ztocBytes: Uint8Array, blob: Buffer, what: string): Promise<ZtocFigures & { ztoc: Ztoc }> {
  const ztoc = decodeZtoc(ztocBytes);
  const zinfo = decodeZinfo(ztoc.compression.checkpoints);
  const { spans } = sociSpans(ztoc, zinfo);
  const tar = gunzipSync(blob);
  const { headers, end } = tarHeaders(tar);
  t.equal(ztoc.compressedArchiveSize, blob.length, `${what}: compressed size`);
  t.equal(ztoc.uncompressedArchiveSize, Math.min(end + 1024, tar.length), `${what}: uncompressed archive size (after the end blocks)`);
  let digestsOk = 0;
  for (const span of spans) if (sha256(blob.subarray(span.compressedStart, span.compressedEnd)) === span.digest) digestsOk++;
  t.equal(digestsOk, spans.length, `${what}: all ${spans.length} span digests are the sha256 of the blob's bytes`);
  t.same(ztoc.entries, headers.map(ztocEntryOf), `${what}: entries equal the tar's headers`);
  let files = 0;
  let wrong: string[] = [];
  for (const e of ztoc.entries) {
    if (e.type !== 'reg' || e.uncompressedSize === 0) continue;
    files++;
    const first = spans.find((s) => s.uncompressedStart <= e.uncompressedOffset && e.uncompressedOffset < s.uncompressedEnd)!;
    const lastByte = e.uncompressedOffset + e.uncompressedSize - 1;
    const last = spans.find((s) => s.uncompressedStart <= lastByte && lastByte < s.uncompressedEnd)!;
    const bytes = await extract(blob.subarray(first.compressedStart, last.compressedEnd), first.checkpoint, e.uncompressedOffset - first.uncompressedStart, e.uncompressedSize);
    if (!bytes.equals(tar.subarray(e.uncompressedOffset, e.uncompressedOffset + e.uncompressedSize))) wrong.push(e.name);
  }
  if (wrong.length > 10) wrong = [...wrong.slice(0, 10), '…'];
  t.same(wrong, [], `${what}: every one of ${files} files extracted from its checkpoint equals the tar's bytes`);
  return { ztoc, spans: spans.length, files, spansWithBits: zinfo.checkpoints.filter((c) => c.bits > 0).length };
}
