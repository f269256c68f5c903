// The op timeline of TOCFS_TRACE (src/fuse/op-trace.ts): every filesystem call and registry request, one
// JSON line each, errors included, and the calls still answered as the inner filesystem answers them.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { TocfsError } from '../../src/errors.js';
import type { Filesystem, FsNode } from '../../src/image/filesystem.js';
import { OpTrace } from '../../src/fuse/op-trace.js';
import { requestChannel } from '../../src/registry/figures.js';

const node: FsNode = { ino: 2, type: 'reg', mode: 0o644, uid: 0, gid: 0, mtimeMs: 0, size: 3, nlink: 1 };
const inner: Filesystem = {
  lookup: async (path) => {
    if (path === '/missing') throw new TocfsError('NOT_FOUND', 'no such file');
    return node;
  },
  readdir: async () => ['a'],
  open: async () => ({ node, read: async () => new Uint8Array([4, 5]) }),
  read: async () => new Uint8Array([1, 2, 3]),
  xattrs: async () => new Map(),
  space: () => ({ totalBytes: 10, usedBytes: 1, files: 2 }),
  close: async () => {},
};

t.test('every call and request becomes a line with its start and duration', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tocfs-trace-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'trace.jsonl');
  const fs = new OpTrace(inner, file);
  t.same(await fs.lookup('/a'), node);
  await t.rejects(fs.lookup('/missing'), { code: 'NOT_FOUND' });
  t.same([...(await fs.read('/a', 1, 2))], [1, 2, 3]);
  t.same(await fs.readdir('/'), ['a']);
  const opened = await fs.open('/a');
  t.same([...(await opened.read(8, 2))], [4, 5], 'a read through the handle answers as the inner handle');
  t.same(fs.space(), { totalBytes: 10, usedBytes: 1, files: 2 });
  requestChannel.publish({ method: 'GET', path: '/v2/r/blobs/sha256:x', statusCode: 206, bytes: 99, startedMs: performance.now(), durationMs: 5 });
  await fs.close();
  requestChannel.publish({ method: 'GET', path: '/after-close', statusCode: 200, bytes: 1, startedMs: performance.now(), durationMs: 1 });

  const lines = readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  t.same(lines.map((l) => l['op']), ['lookup', 'lookup', 'read', 'readdir', 'open', 'read', 'http'], 'in order; nothing after close');
  t.match(lines[1], { op: 'lookup', path: '/missing', error: 'no such file' });
  t.match(lines[2], { op: 'read', path: '/a', offset: 1, length: 2 });
  t.match(lines[4], { op: 'open', path: '/a' });
  t.match(lines[5], { op: 'read', path: '/a', offset: 8, length: 2 }, 'a handle read is traced with its path');
  t.match(lines[6], { op: 'http', method: 'GET', status: 206, bytes: 99, ms: 5 });
  for (const l of lines) t.ok(typeof l['t'] === 'number' && (l['t'] as number) >= 0 && typeof l['ms'] === 'number', 'times in ms since the trace began');
});
