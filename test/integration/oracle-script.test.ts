// scripts/oracle.ts, the oracle comparison anyone can run against any registry image (issue 4): run as a
// user would, against an image with whiteouts, an opaque dir, hardlinks, a setuid file and xattrs on a real
// registry, it reports the mounted tree equal to `umoci unpack` and exits 0.
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import t from 'tap';
import { buildImage } from '../support/image-builder.js';
import { CAP } from '../support/oracle-image.js';
import { pushImage } from '../support/push.js';
import { startRegistry } from '../support/registry.js';
import { dir, file, hardlink, opaque, symlink, whiteout } from '../support/tar-dsl.js';
import { tempDir } from '../support/tmp.js';

const run = promisify(execFile);
const SCRIPT = fileURLToPath(new URL('../../scripts/oracle.ts', import.meta.url));

t.test('scripts/oracle.ts finds a registry image equal to umoci unpack', async (t) => {
  const work = tempDir(t, 'oracle-script');
  const image = await buildImage(work, {
    layers: [
      {
        compression: 'gzip',
        entries: [
          dir('etc'),
          file('etc/motd', 'old'),
          file('bin/tool', 'tool', { mode: 0o4755, xattrs: { 'security.capability': CAP } }),
          hardlink('bin/tool-link', 'bin/tool'),
          dir('opq'),
          file('opq/lower', 'lower'),
        ],
      },
      { compression: 'gzip', entries: [whiteout('etc/motd'), opaque('opq'), file('opq/upper', 'upper'), symlink('etc/link', '/bin/tool')] },
    ],
  });
  const reg = await startRegistry(t);
  await pushImage(reg.seedUrl, 'oracle/script', 'v1', image);
  const { stdout, stderr } = await run(process.execPath, ['--import', 'tsx', SCRIPT, `${reg.host}/oracle/script:v1`], { maxBuffer: 16 << 20 });
  t.match(stdout, /equal to umoci unpack \(\d+ paths\)/, `reported equal ${stderr}`);
});

t.test('scripts/oracle.ts: a usage error exits 2', async (t) => {
  const r = await run(process.execPath, ['--import', 'tsx', SCRIPT]).catch((err: { code: number; stderr: string }) => err);
  t.match(r, { code: 2, stderr: /needs exactly one image reference/ });
});
