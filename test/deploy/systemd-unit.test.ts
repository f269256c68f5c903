// deploy/tocfs.service: systemd accepts it (`systemd-analyze verify`), and the commands it runs do what the
// unit promises, run here as systemd would run them (this VM has no systemd as PID 1): ExecStart mounts,
// SIGTERM (KillSignal) unmounts cleanly with exit 0, and after a crash (SIGKILL) ExecStopPost removes the
// dead mount so Restart=on-failure can mount again.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import t from 'tap';
import { isMounted } from '../../src/fuse/mount.js';
import { tempDir } from '../support/tmp.js';

const run = promisify(execFile);
const repo = fileURLToPath(new URL('../..', import.meta.url)).replace(/\/$/, '');
const unitPath = join(repo, 'deploy/tocfs.service');

/** `Key=value` lines of the unit (the last one wins, as in systemd for these keys). */
function directives(unit: string): Map<string, string> {
  const found = new Map<string, string>();
  for (const line of unit.split('\n')) {
    const m = /^([A-Za-z]+)=(.*)$/.exec(line.trim());
    if (m) found.set(m[1]!, m[2]!);
  }
  return found;
}

/** A command line of the unit with its install paths pointed at this checkout and temp dirs. */
function localCommand(line: string, mnt: string, cache: string): string[] {
  return line
    .replace(/^-/, '')
    .split(/\s+/)
    .map((word) => word.replace('/opt/tocfs', repo).replace('/srv/tocfs', mnt).replace('/var/cache/tocfs', cache));
}

async function waitMounted(mnt: string, child: ChildProcess): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (await isMounted(mnt)) return;
    if (child.exitCode !== null) throw new Error(`ExecStart exited with ${child.exitCode} before mounting`);
    await sleep(50);
  }
  throw new Error(`${mnt} was not mounted within 10 s`);
}

t.test('systemd-analyze verify accepts the unit', async (t) => {
  const tool = await run('sh', ['-c', 'command -v systemd-analyze']).catch(() => undefined);
  if (tool === undefined) {
    t.pass('systemd-analyze is not installed here', { skip: 'no systemd-analyze' });
    return;
  }
  const dir = tempDir(t, 'unit');
  // verify checks that ExecStart's program exists: point the install path at this checkout.
  await writeFile(join(dir, 'tocfs.service'), (await readFile(unitPath, 'utf8')).replaceAll('/opt/tocfs/', `${repo}/`));
  const { stdout, stderr } = await run('systemd-analyze', ['verify', join(dir, 'tocfs.service')]);
  t.equal(`${stdout}${stderr}`, '', 'no warnings');
});

t.test('the unit restarts on failure, stops with SIGTERM and unmounts after the process is gone', async (t) => {
  const d = directives(await readFile(unitPath, 'utf8'));
  t.equal(d.get('Restart'), 'on-failure');
  t.equal(d.get('KillSignal'), 'SIGTERM');
  t.match(d.get('ExecStart'), / mount \/srv\/tocfs /);
  t.notMatch(d.get('ExecStart'), /--no-allow-other/, 'every user can reach the mount');
  t.match(d.get('ExecStopPost'), /^-.* unmount \/srv\/tocfs$/, 'the unmount may fail (nothing mounted) without failing the stop');
});

t.test('the cache directory systemd makes is private to the daemon (issue 21)', async (t) => {
  const d = directives(await readFile(unitPath, 'utf8'));
  t.equal(d.get('CacheDirectory'), 'tocfs');
  t.equal(d.get('CacheDirectoryMode'), '0700', 'systemd would make it 0755: any user could read the cached bytes');
});

t.test("ExecStart mounts; SIGTERM unmounts and exits 0; after SIGKILL, ExecStopPost removes the dead mount", async (t) => {
  const d = directives(await readFile(unitPath, 'utf8'));
  const mnt = tempDir(t, 'unit-mnt');
  const cache = tempDir(t, 'unit-cache');
  const start = localCommand(d.get('ExecStart')!, mnt, cache);
  const stopPost = localCommand(d.get('ExecStopPost')!, mnt, cache);
  const children: ChildProcess[] = [];
  t.teardown(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    if (await isMounted(mnt)) await run('fusermount', ['-uz', mnt]).catch(() => {});
  });
  const startDaemon = (): ChildProcess => {
    const child = spawn(start[0]!, start.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
    children.push(child);
    return child;
  };

  const first = startDaemon();
  await waitMounted(mnt, first);
  t.match((await run('ls', [mnt])).stdout, /images/, 'the mount serves');
  // The unit runs bin/tocfs.js itself, so its shebang's heap settings (bench/gib-throughput.ts) apply.
  const argv = (await readFile(`/proc/${first.pid}/cmdline`, 'utf8')).split('\0');
  t.ok(argv.includes('--initial-heap-size=64') && argv.includes('--single-threaded-gc'), `the daemon runs with the shebang's V8 flags: ${argv.join(' ')}`);
  first.kill('SIGTERM');
  const [code] = (await once(first, 'exit')) as [number | null];
  t.equal(code, 0, 'SIGTERM: exit 0');
  t.notOk(await isMounted(mnt), 'and nothing is left mounted');
  // ExecStopPost also runs after a clean stop; the unit's '-' makes a failure there harmless.
  const idle = await run(stopPost[0]!, stopPost.slice(1)).then(
    () => 0,
    (err: { code?: number }) => err.code ?? -1,
  );
  t.comment(`ExecStopPost on an unmounted path exits ${idle}`);

  const second = startDaemon();
  await waitMounted(mnt, second);
  second.kill('SIGKILL');
  await once(second, 'exit');
  t.ok(await isMounted(mnt), 'a killed daemon leaves a dead mount behind');
  await run(stopPost[0]!, stopPost.slice(1));
  t.notOk(await isMounted(mnt), 'ExecStopPost removes it');

  const third = startDaemon();
  await waitMounted(mnt, third);
  t.pass('Restart=on-failure can mount again at once');
  third.kill('SIGTERM');
  t.equal(((await once(third, 'exit')) as [number | null])[0], 0);
});
