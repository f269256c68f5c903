// The Singularity/Apptainer entries synthesised from an image config (DESIGN.md §1.3): the scripts run
// in a real /bin/sh, and the overlay shows only what the image lacks, with stable inodes and exact sizes.
import { execFile } from 'node:child_process';
import { chmod, mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { createInodeCounter } from '../../src/image/layer-tree.js';
import { MergedTree } from '../../src/image/merged-tree.js';
import { dockerEnvScript, runscript, singularityEntries } from '../../src/image/singularity-files.js';
import { SingularityOverlay } from '../../src/image/singularity-overlay.js';
import type { ImageConfig } from '../../src/registry/types.js';
import { tempDir } from '../support/tmp.js';
import { fakeLayer, type Spec } from './fake-layers.js';

const run = promisify(execFile);

const CONFIG: ImageConfig = {
  created: '2024-05-06T07:08:09Z',
  config: {
    Env: ['PATH=/opt/tool/bin:/usr/bin:/bin', 'PLAIN=value', 'TRICKY=a"b$c`d\\e \'f\'', 'EMPTY=', 'NOEQ', 'BAD-NAME=x'],
    Entrypoint: ['/bin/echo', 'entry point'],
    Cmd: ['default "cmd"', "it's"],
    Labels: { 'org.example.a': 'b' },
  },
};

const decode = (b: Uint8Array): string => Buffer.from(b).toString();

function overlay(config: ImageConfig, ...layers: Spec[][]): SingularityOverlay {
  const inodes = createInodeCounter();
  return new SingularityOverlay(new MergedTree(layers.map((l) => fakeLayer(l)), { inodes }), singularityEntries(config), { inodes, mtimeMs: 1234 });
}

t.test('10-docker2singularity.sh exports every Env entry literally; the image PATH is set outright', async (t) => {
  const script = dockerEnvScript(CONFIG.config!.Env!);
  t.match(script, /^export PATH="\/opt\/tool\/bin:\/usr\/bin:\/bin"$/m);
  t.match(script, /^export PLAIN="\$\{PLAIN:-value\}"$/m);
  t.match(script, /skipped "BAD-NAME"/);
  const dir = tempDir(t, 'singularity-env');
  await writeFile(join(dir, 'env.sh'), script);
  const show = '. ./env.sh; printf "%s|" "$PATH" "$PLAIN" "$TRICKY" "$EMPTY" "${NOEQ-unset}"';
  const fresh = await run('/bin/sh', ['-c', show], { cwd: dir, env: { PATH: '/usr/bin:/bin' } });
  t.equal(fresh.stdout, `/opt/tool/bin:/usr/bin:/bin|value|a"b$c\`d\\e 'f'|||`, 'values arrive verbatim, never expanded');
  const preset = await run('/bin/sh', ['-c', show], { cwd: dir, env: { PATH: '/usr/bin:/bin', PLAIN: 'from user' } });
  t.match(preset.stdout, /^\/opt\/tool\/bin:\/usr\/bin:\/bin\|from user\|/, "the user's own value wins, except PATH");
  const noPath = await run('/bin/sh', ['-c', '. ./env.sh; echo "$PATH"'], { cwd: dir, env: {} });
  t.ok(noPath.stdout.trim().length > 0, 'PATH is never left empty');
  await writeFile(join(dir, 'none.sh'), dockerEnvScript(['A=1']));
  const defaulted = await run('/bin/sh', ['-c', 'unset PATH; . ./none.sh; echo "$PATH"'], { cwd: dir });
  t.equal(defaulted.stdout, '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n', 'an image without PATH gets the Docker default');
});

t.test('runscript runs Entrypoint + Cmd; arguments replace Cmd; with neither, a shell', async (t) => {
  const dir = tempDir(t, 'singularity-run');
  const runIt = async (script: string, args: string[]): Promise<string> => {
    await writeFile(join(dir, 'runscript'), script);
    await chmod(join(dir, 'runscript'), 0o755);
    return (await run(join(dir, 'runscript'), args)).stdout;
  };
  const both = runscript(['/bin/echo', 'entry point'], ['default "cmd"', "it's"]);
  t.equal(await runIt(both, []), `entry point default "cmd" it's\n`);
  t.equal(await runIt(both, ['x y', '$HOME']), 'entry point x y $HOME\n', 'arguments replace Cmd, verbatim');
  const cmdOnly = runscript([], ['/bin/echo', 'from cmd']);
  t.equal(await runIt(cmdOnly, []), 'from cmd\n');
  t.equal(await runIt(cmdOnly, ['/bin/echo', 'args']), 'args\n', 'arguments are the command when there is no Entrypoint');
  const neither = runscript([], []);
  t.equal(await runIt(neither, ['/bin/echo', 'x']), 'x\n', 'no Entrypoint or Cmd: the arguments are the command');
  t.match(neither, /if \[ "\$#" -eq 0 \]; then\n  exec \/bin\/sh\n/, 'and no arguments start a shell');
});

t.test('action scripts source the env scripts in order, then run, exec and shell', async (t) => {
  // Lay the synthetic tree out on disk and run its actions with its own paths via bwrap.
  const dir = tempDir(t, 'singularity-actions');
  for (const e of singularityEntries(CONFIG)) {
    const p = join(dir, e.path);
    if (e.type === 'dir') await mkdir(p, { recursive: true });
    else if (e.type === 'symlink') await symlink(e.linkName!, p);
    else await writeFile(p, e.content!, { mode: e.mode });
  }
  const bwrap = (args: string[]) =>
    run('bwrap', ['--tmpfs', '/', '--ro-bind', '/usr', '/usr', '--symlink', 'usr/bin', '/bin', '--symlink', 'usr/lib', '/lib', '--symlink', 'usr/lib64', '/lib64',
      '--ro-bind', join(dir, '.singularity.d'), '/.singularity.d', '--proc', '/proc', '--dev', '/dev', ...args], {
      env: { PATH: '/usr/bin:/bin' },
    }).then((r) => r.stdout);
  t.equal(await bwrap(['/.singularity.d/actions/exec', '/bin/sh', '-c', 'echo "$PATH|$PLAIN"']), '/opt/tool/bin:/usr/bin:/bin|value\n');
  t.equal(await bwrap(['/.singularity.d/actions/run', 'a', 'b']), 'entry point a b\n');
  t.equal(await bwrap(['/.singularity.d/actions/shell', '-c', 'echo "$PLAIN"']), 'value\n');
  t.match(await bwrap(['/bin/sh', '-c', '. /.singularity.d/env/99-base.sh; echo "$LD_LIBRARY_PATH"']), '/.singularity.d/libs');
  t.equal(await bwrap(['env', 'SING_USER_DEFINED_PREPEND_PATH=/pre', '/.singularity.d/actions/exec', '/bin/sh', '-c', 'echo "$PATH"']), '/pre:/opt/tool/bin:/usr/bin:/bin\n', 'a user-defined PATH prefix wins over the image');
  t.equal(await bwrap(['/.singularity.d/actions/test']), '', 'no test: success');
});

t.test('an image without /.singularity.d gets it, the root symlinks and the missing mount points', async (t) => {
  const o = overlay(CONFIG, [
    { name: 'bin/sh', type: 'reg', content: 'sh', mode: 0o755 },
    { name: 'etc/', type: 'dir' },
    { name: 'etc/shadow', type: 'reg', content: 'secret', mode: 0o640, gid: 42 },
    { name: 'etc/hosts', type: 'reg', content: '127.0.0.1 image\n' },
    { name: 'var/', type: 'dir', mode: 0o755 },
    { name: 'var/lib/', type: 'dir' },
    { name: 'tmp', type: 'symlink', linkName: 'var/tmp-elsewhere' },
  ]);
  const root = [...(o.readdir('') ?? [])].sort();
  t.same(root, ['.exec', '.run', '.shell', '.singularity.d', '.test', 'bin', 'dev', 'environment', 'etc', 'home', 'proc', 'root', 'run', 'singularity', 'sys', 'tmp', 'var']);
  t.same([...(o.readdir('.singularity.d') ?? [])].sort(), ['actions', 'env', 'labels.json', 'libs', 'runscript']);
  t.same([...(o.readdir('.singularity.d/actions') ?? [])].sort(), ['exec', 'run', 'shell', 'start', 'test']);
  t.same([...(o.readdir('.singularity.d/env') ?? [])].sort(), ['01-base.sh', '10-docker2singularity.sh', '90-environment.sh', '99-base.sh', '99-runtimevars.sh']);
  t.same([...(o.readdir('etc') ?? [])].sort(), ['hostname', 'hosts', 'mtab', 'resolv.conf', 'shadow'], 'resolv.conf and podman\'s files added, the image\'s hosts kept');
  t.match(o.lookup('etc/mtab'), { type: 'symlink', linkName: '../proc/self/mounts' });
  t.match(o.lookup('run/.containerenv'), { type: 'reg', size: 0, mode: 0o644 });
  t.same([...(o.readdir('var') ?? [])].sort(), ['lib', 'tmp']);
  t.match(o.lookup('tmp'), { type: 'symlink', linkName: 'var/tmp-elsewhere' }, 'the image wins over a mount point');
  t.equal(decode(await o.read('etc/hosts', 0, 100)), '127.0.0.1 image\n');
  t.match(o.lookup('etc/shadow'), { mode: 0o640, gid: 42 }, 'private files keep their mode');
  t.match(o.lookup('singularity'), { type: 'symlink', linkName: '.singularity.d/runscript', size: 24, mode: 0o777 });
  t.match(o.lookup('environment'), { linkName: '.singularity.d/env/90-environment.sh' });
  t.match(o.lookup('.run'), { linkName: '.singularity.d/actions/run' });
  t.match(o.lookup('var/tmp'), { type: 'dir', mode: 0o1777, uid: 0, nlink: 2, mtimeMs: 1234 });
  t.match(o.lookup('proc'), { type: 'dir', mode: 0o755, nlink: 2 });
  t.match(o.lookup('.singularity.d'), { type: 'dir', nlink: 5 }, 'nlink counts actions, env, libs');

  const runStat = o.lookup('.singularity.d/runscript')!;
  const bytes = await o.read('.singularity.d/runscript', 0, 1 << 20);
  t.equal(runStat.size, bytes.length, 'size equals the bytes read');
  t.match(runStat, { type: 'reg', mode: 0o755, uid: 0, gid: 0, nlink: 1 });
  t.equal(decode(await o.read('.singularity.d/runscript', 3, 6)), decode(bytes.subarray(3, 9)), 'ranged reads');
  t.equal((await o.read('.singularity.d/runscript', bytes.length + 5, 10)).length, 0, 'past the end: nothing');
  t.equal(o.lookup('etc/resolv.conf')?.size, 0);
  t.same(o.xattrs('.singularity.d/runscript'), new Map());
  t.equal(o.lookup('.singularity.d/nothing'), undefined);
  t.equal(o.xattrs('nothing'), undefined);
  await t.rejects(o.read('.singularity.d', 0, 1), { code: 'IS_DIRECTORY' });
  await t.rejects(o.read('singularity', 0, 1), { code: 'FORMAT' }, 'a synthetic symlink');
  await t.rejects(o.read('nothing', 0, 1), { code: 'NOT_FOUND' });
  const runscript = o.open('.singularity.d/runscript')!;
  t.equal(runscript.node, runStat, 'a synthetic file opens with its lookup stat');
  t.equal(decode(await runscript.read(3, 6)), decode(bytes.subarray(3, 9)));
  t.equal(decode(await o.open('etc/hosts')!.read(0, 100)), '127.0.0.1 image\n', 'the image\'s own file');
  t.equal(o.open('var')!.node, o.lookup('var'), 'an image directory opens with the link count lookup shows');
  await t.rejects(o.open('var')!.read(0, 1), { code: 'IS_DIRECTORY' });
  t.equal(o.open('nothing'), undefined);

  // Link counts: the image's own directories count the synthetic subdirectories too.
  t.equal(o.lookup('var')!.nlink, 4, 'var: lib + synthetic tmp');
  t.equal(o.lookup('')!.nlink, 2 + ['bin', 'etc', 'var', '.singularity.d', 'dev', 'proc', 'sys', 'home', 'root', 'run'].length);

  // Stable: the same inode and object on every lookup; inodes distinct across the tree.
  const paths = ['', '.singularity.d', '.singularity.d/runscript', 'singularity', 'proc', 'var', 'var/tmp', 'etc/resolv.conf', 'bin/sh', 'etc/shadow'];
  const inos = paths.map((p) => o.lookup(p)!.ino);
  t.same(paths.map((p) => o.lookup(p)!.ino), inos, 'inodes are stable');
  t.equal(new Set(inos).size, inos.length, 'inodes are distinct');
});

t.test('an image that brings its own /.singularity.d keeps it and gets no synthetic metadata', async (t) => {
  const o = overlay(CONFIG, [
    { name: '.singularity.d/', type: 'dir' },
    { name: '.singularity.d/runscript', type: 'reg', content: '#!/bin/sh\necho mine\n', mode: 0o755 },
    { name: 'dev/', type: 'dir' },
    { name: 'proc/', type: 'dir' },
  ]);
  t.same([...(o.readdir('.singularity.d') ?? [])], ['runscript'], 'nothing added inside the image\'s own');
  t.equal(decode(await o.read('.singularity.d/runscript', 0, 100)), '#!/bin/sh\necho mine\n');
  t.same([...(o.readdir('') ?? [])].sort(), ['.singularity.d', 'dev', 'etc', 'home', 'proc', 'root', 'run', 'sys', 'tmp', 'var'], 'mount points still added');
  t.equal(o.lookup('singularity'), undefined, 'no root symlinks either');
});

t.test('no synthetic entries below a non-directory of the image', async (t) => {
  const o = overlay({}, [
    { name: 'etc', type: 'symlink', linkName: 'private/etc' },
    { name: 'var', type: 'reg', content: 'odd' },
  ]);
  t.equal(o.lookup('etc/hosts'), undefined);
  t.equal(o.readdir('etc'), undefined);
  t.equal(o.lookup('var/tmp'), undefined);
  t.match(o.lookup('etc'), { type: 'symlink' });
  const runBytes = decode(await o.read('.singularity.d/runscript', 0, 1 << 16));
  t.match(runBytes, /exec \/bin\/sh/, 'an empty config still makes a runscript');
  t.equal(decode(await o.read('.singularity.d/labels.json', 0, 100)), '{}\n');
});
