// toc-json-stream.ts yields exactly what the whole-document parse (toc-json.ts) gives, for every document
// shape, and fails where it fails (issue 21: the 10^6-entry TOC is indexed as it is parsed).
import t from 'tap';
import { FormatError } from '../../src/errors.js';
import { parseTocJson } from '../../src/formats/toc-json.js';
import { tocJsonEntries } from '../../src/formats/toc-json-stream.js';

const enc = (s: string): Uint8Array => new Uint8Array(Buffer.from(s));
const both = (text: string, max = 100): { whole: unknown; streamed: unknown } => {
  const run = (f: () => unknown): unknown => {
    try {
      return f();
    } catch (err) {
      return { error: err instanceof FormatError ? 'FormatError' : String(err) };
    }
  };
  return { whole: run(() => parseTocJson(enc(text), max)), streamed: run(() => [...tocJsonEntries(enc(text), max)]) };
};

const entry = (i: number): string =>
  JSON.stringify({ name: `d/f${i} "q" {x} [y] \\ é`, type: 'reg', size: i, mode: 0o644, modtime: '2024-01-01T00:00:00Z', xattrs: { 'user.a}': 'AAEC' }, chunkType: i % 2 ? 'zeros' : 'data' });

const DOCS: [string, string][] = [
  ['compact, Go order', `{"version":1,"entries":[${[1, 2, 3].map(entry).join(',')}]}`],
  ['tab-indented (stargz writer)', JSON.stringify({ version: 1, entries: [1, 2].map((i) => JSON.parse(entry(i))) }, null, '\t')],
  ['whitespace everywhere', ` \n{ "version" : 1 ,\r\n "entries" : [ ${entry(1)} , ${entry(2)} ] } \n`],
  ['empty entries', '{"version":1,"entries":[]}'],
  ['null entries', '{"version":1,"entries":null}'],
  ['no entries', '{"version":1}'],
  ['entries before version (whole parse)', `{"entries":[${entry(1)}],"version":1}`],
  ['repeated entries key (last wins)', `{"version":1,"entries":[${entry(1)}],"entries":[${entry(2)},${entry(3)}]}`],
  ['other keys', `{"version":1,"x":{"a":[1,"]"]},"entries":[${entry(4)}],"y":"}"}`],
  ['escaped key', `{"version":1,"entr\\u0069es":[${entry(5)}]}`],
  ['version 2', `{"version":2,"entries":[${entry(1)}]}`],
  ['not JSON inside an entry', `{"version":1,"entries":[${entry(1)},{"name":"a",]}`],
  ['missing comma between entries', `{"version":1,"entries":[${entry(1)} ${entry(2)}]}`],
  ['trailing garbage', `{"version":1,"entries":[${entry(1)}]} x`],
  ['unterminated string', `{"version":1,"entries":[{"name":"a`],
  ['an entry that is no object', '{"version":1,"entries":[1]}'],
  ['a bad field type', '{"version":1,"entries":[{"name":"a","type":"reg","size":"1"}]}'],
  ['top level array', '[1,2]'],
  ['non-ASCII names', '{"version":1,"entries":[{"name":"a\xff","type":"dir"}]}'],
];

for (const [name, text] of DOCS) {
  t.test(name, async (t) => {
    const { whole, streamed } = both(text);
    t.same(streamed, whole, 'same entries, or the same kind of failure');
  });
}

t.test('maxEntries is checked before any entry is copied, with the count', async (t) => {
  const text = `{"version":1,"entries":[${[1, 2, 3].map(entry).join(',')}]}`;
  t.throws(() => [...tocJsonEntries(enc(text), 2)], /TOC has 3 entries, above maxEntries 2/);
});

t.test('many entries cross batch boundaries in order', async (t) => {
  const n = 30_000;
  const text = `{"version":1,"entries":[${Array.from({ length: n }, (_, i) => entry(i)).join(',')}]}`;
  const streamed = [...tocJsonEntries(enc(text), n)];
  t.equal(streamed.length, n);
  t.same(streamed, parseTocJson(enc(text), n));
});
