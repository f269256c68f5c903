/**
 * The uncompressed eStargz TOC member is a tiny tar: one regular file `stargz.index.json`, then the
 * end-of-archive zero blocks. The tar framing (checksums, numbers, PAX records, GNU long names) is the
 * shared TarReader's; this file adds the TOC's own shape. The reader is fed header blocks only, up to
 * the first entry: the JSON is a view into `tar`, and what follows it is checked to be zeros here, never
 * parsed as tar, so a hostile TOC reaches no further into the reader than its first header.
 */
import { FormatError } from '../../errors.js';
import { BLOCK_SIZE, cString, parseHeaderBlock } from '../tar/header.js';
import { TarReader, type TarEvent, type TarHeader } from '../tar/reader.js';
import { TOC_TAR_NAME } from '../whiteouts.js';

/** PAX or GNU long-name records before the TOC header are small; anything bigger is not a TOC. */
const MAX_EXTENDED_HEADER = 64 << 10;

function fail(reason: string, options?: ErrorOptions): never {
  throw new FormatError(`TOC tar: ${reason}`, options);
}

function isZero(bytes: Uint8Array): boolean {
  for (const b of bytes) if (b !== 0) return false;
  return true;
}

/** The first entry's header, with its PAX and GNU long-name headers applied; its data is not fed. */
function firstHeader(tar: Uint8Array): TarHeader {
  // No entry-size limit in the reader: a size beyond the bytes present is reported as a truncated TOC below.
  const reader = new TarReader({ limits: { maxMetaBytes: MAX_EXTENDED_HEADER, maxEntryBytes: Number.MAX_SAFE_INTEGER } });
  for (let at = 0; ; at += BLOCK_SIZE) {
    let events: TarEvent[];
    try {
      events = at < tar.length ? reader.push(tar.subarray(at, at + BLOCK_SIZE)) : reader.end();
    } catch (err) {
      if (err instanceof FormatError) fail(err.message, { cause: err });
      throw err;
    }
    for (const ev of events) {
      if (ev.kind === 'entry') return ev.header;
      // A global header is an entry of its own to the reference reader (Go's archive/tar), so never the TOC.
      if (ev.kind === 'global') fail(`entry is named ${JSON.stringify(cString(ev.bytes.subarray(0, 100)))}, not ${TOC_TAR_NAME}`);
      if (ev.kind === 'end') fail(ev.marker ? `no ${TOC_TAR_NAME} entry before the end of the archive` : `truncated: no header at offset ${ev.offset}`);
    }
  }
}

/**
 * The reference writer (Go's archive/tar) puts at most one extended header, PAX 'x' or GNU 'L', before
 * the TOC entry, and so may a TOC here. With only one, TarReader's folding (PAX path over GNU long name,
 * later records over earlier ones) cannot accept a name or size that reading the headers in stream order
 * would refuse. A GNU long-link ('K') header is refused as the entry of its own this reader always took
 * it for. Returns the name as read in stream order: an empty PAX path names the entry "", not the
 * header's own name, as TarReader (POSIX) has it.
 */
function tocEntryName(header: TarHeader): string {
  const bytes = header.headerBytes;
  if (bytes.length > BLOCK_SIZE) {
    // TarReader has checked this block already: parsing it again cannot throw.
    const first = parseHeaderBlock(bytes.subarray(0, BLOCK_SIZE), header.headerOffset);
    if (first.typeflag !== 'x' && first.typeflag !== 'L') fail(`entry is named ${JSON.stringify(first.name.slice(0, 100))}, not ${TOC_TAR_NAME}`);
    const single = BLOCK_SIZE * (2 + Math.ceil(first.size / BLOCK_SIZE));
    if (bytes.length !== single) fail(`more than one extended header before ${TOC_TAR_NAME} at offset ${header.headerOffset}`);
    if (header.pax.get('size')?.length === 0) fail('PAX size ""');
    if (header.pax.get('path')?.length === 0) return '';
  }
  return header.path;
}

/** Returns the TOC JSON bytes (a view into `tar`). Throws FormatError for anything but one TOC entry. */
export function tocJsonFromTar(tar: Uint8Array): Uint8Array {
  const header = firstHeader(tar);
  const name = tocEntryName(header);
  // The reference reader compares the header name exactly, with no path cleaning.
  if (name !== TOC_TAR_NAME) fail(`entry is named ${JSON.stringify(name.slice(0, 100))}, not ${TOC_TAR_NAME}`);
  if (header.typeflag !== '0' && header.typeflag !== '\0') fail(`${TOC_TAR_NAME} has type ${JSON.stringify(header.typeflag)}, not a regular file`);
  const { dataOffset, size } = header;
  if (dataOffset + size > tar.length) fail(`${TOC_TAR_NAME} is truncated: ${size} bytes announced, ${tar.length - dataOffset} present`);
  const json = tar.subarray(dataOffset, dataOffset + size);
  const rest = tar.subarray(dataOffset + Math.ceil(size / BLOCK_SIZE) * BLOCK_SIZE);
  // Only padding and the end-of-archive blocks may follow: the TOC member holds exactly one entry.
  if (!isZero(rest)) fail(`another entry follows ${TOC_TAR_NAME}`);
  return json;
}
