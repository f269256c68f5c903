/**
 * The files Singularity/Apptainer expects in a container root, made from an OCI image config the way
 * `apptainer build --sandbox docker://...` and CVMFS's DUCC (for unpacked.cern.ch) lay them out
 * (DESIGN.md §1.3): `/.singularity.d` with the environment scripts, the runscript and the action
 * scripts, the compatibility symlinks at the root, and the empty directories and files the runtime
 * mounts over. Pure: the synthetic overlay (singularity-overlay.ts) decides which of them an image lacks.
 */
import type { ImageConfig } from '../registry/types.js';

export type SyntheticType = 'dir' | 'reg' | 'symlink';

/** One synthetic entry; `path` is normalised ('.singularity.d/env/01-base.sh'). */
export interface SyntheticEntry {
  readonly path: string;
  readonly type: SyntheticType;
  /** Permission bits. */
  readonly mode: number;
  /** Regular files: their bytes. */
  readonly content?: Uint8Array;
  /** Symlinks: the target, verbatim. */
  readonly linkName?: string;
  /**
   * Part of the Singularity metadata: left out as a whole when the image brings its own `/.singularity.d`
   * (a sandbox converted to OCI already has it, and its scripts win). Mount points are added regardless,
   * each only where the image lacks it.
   */
  readonly metadata: boolean;
}

const encoder = new TextEncoder();
/** The PATH a runtime uses when the image sets none (the Docker default). */
export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
/** Docker Env names that a POSIX shell can export; anything else would break the sourced script. */
const SHELL_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** `s` inside double quotes, literally: Docker Env values are never expanded. */
function doubleQuoted(s: string): string {
  return `"${s.replace(/[\\"$`]/g, (c) => `\\${c}`)}"`;
}

/** `s` as one single-quoted shell word. */
function singleQuoted(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * `env/10-docker2singularity.sh`: every Env entry of the config. A value the user's environment already
 * holds wins (`${K:-V}`, as DUCC and Apptainer write it), except PATH: the runtime always starts the
 * container with a default PATH, so the image's PATH is set outright, else the image's own tools would
 * not be found.
 */
export function dockerEnvScript(env: readonly string[]): string {
  const lines = ['#!/bin/sh', '# The Env of the image config (tocfs synthesised this file, as DUCC and apptainer build do).'];
  let sawPath = false;
  for (const item of env) {
    const eq = item.indexOf('=');
    const name = eq < 0 ? item : item.slice(0, eq);
    const value = eq < 0 ? '' : item.slice(eq + 1);
    if (!SHELL_NAME.test(name)) {
      lines.push(`# skipped ${JSON.stringify(name)}: not a shell variable name`);
      continue;
    }
    if (name === 'PATH') {
      sawPath = true;
      lines.push(`export PATH=${doubleQuoted(value)}`);
    } else {
      lines.push(`export ${name}="\${${name}:-${doubleQuoted(value).slice(1, -1)}}"`);
    }
  }
  if (!sawPath) lines.push(`export PATH="\${PATH:-${DEFAULT_PATH}}"`);
  return `${lines.join('\n')}\n`;
}

/**
 * `runscript`: what `docker run IMAGE [ARGS]` starts. Arguments replace Cmd; Entrypoint always comes
 * first. With neither, the arguments are the command, and no arguments start a shell. Each word is passed
 * verbatim (OCI semantics, Apptainer's SINGULARITY_NO_EVAL behaviour): nothing is re-evaluated by a shell.
 */
export function runscript(entrypoint: readonly string[], cmd: readonly string[]): string {
  const lines = ['#!/bin/sh', '# Entrypoint + Cmd of the image config (tocfs synthesised this file). Arguments replace Cmd.'];
  if (cmd.length > 0) lines.push('if [ "$#" -eq 0 ]; then', `  set -- ${cmd.map(singleQuoted).join(' ')}`, 'fi');
  if (entrypoint.length > 0) {
    lines.push(`exec ${entrypoint.map(singleQuoted).join(' ')} "$@"`);
  } else {
    lines.push('if [ "$#" -eq 0 ]; then', '  exec /bin/sh', 'fi', 'exec "$@"');
  }
  return `${lines.join('\n')}\n`;
}

/** The start of every action script: source the environment scripts in order, as the runtime does. */
const SOURCE_ENV = [
  '#!/bin/sh',
  'for script in /.singularity.d/env/*.sh; do',
  '  if [ -f "$script" ]; then',
  '    . "$script"',
  '  fi',
  'done',
];

function action(body: readonly string[]): string {
  return `${[...SOURCE_ENV, ...body].join('\n')}\n`;
}

const ACTIONS: Readonly<Record<string, readonly string[]>> = {
  exec: ['exec "$@"'],
  run: [
    'if [ -x /.singularity.d/runscript ]; then',
    '  exec /.singularity.d/runscript "$@"',
    'fi',
    'echo "No runscript in the container, running /bin/sh" >&2',
    'exec /bin/sh "$@"',
  ],
  shell: [
    'if [ -n "$SINGULARITY_SHELL" ] && [ -x "$SINGULARITY_SHELL" ]; then',
    '  exec "$SINGULARITY_SHELL" "$@"',
    'fi',
    'if [ -x /bin/bash ]; then',
    '  exec /bin/bash --norc "$@"',
    'fi',
    'exec /bin/sh "$@"',
  ],
  // An instance's PID 1 waits for SIGCONT before it runs the startscript (Apptainer's protocol).
  start: [
    'kill -CONT 1',
    'if [ -x /.singularity.d/startscript ]; then',
    '  exec /.singularity.d/startscript "$@"',
    'fi',
  ],
  test: [
    'if [ -x /.singularity.d/test ]; then',
    '  exec /.singularity.d/test "$@"',
    'fi',
    'echo "No test in the container" >&2',
    'exit 0',
  ],
};

const BASE_ENV = '#!/bin/sh\n# The base environment: nothing beyond what the runtime sets.\n';
/**
 * Last: the PATH the user asked for with `--env PATH=`, `APPTAINERENV_PREPEND_PATH` or `..._APPEND_PATH`
 * (the runtime passes them as SING_USER_DEFINED_*) beats the image's.
 */
const RUNTIME_VARS = [
  '#!/bin/sh',
  'if [ -n "${SING_USER_DEFINED_PREPEND_PATH:-}" ]; then',
  '  PATH="$SING_USER_DEFINED_PREPEND_PATH:$PATH"',
  'fi',
  'if [ -n "${SING_USER_DEFINED_APPEND_PATH:-}" ]; then',
  '  PATH="$PATH:$SING_USER_DEFINED_APPEND_PATH"',
  'fi',
  'if [ -n "${SING_USER_DEFINED_PATH:-}" ]; then',
  '  PATH="$SING_USER_DEFINED_PATH"',
  'fi',
  'unset SING_USER_DEFINED_PREPEND_PATH SING_USER_DEFINED_APPEND_PATH SING_USER_DEFINED_PATH',
  'export PATH',
  '',
].join('\n');
const CUSTOM_ENV = '#!/bin/sh\n# Custom environment shell code should follow\n';
/** Like Apptainer's 99-base.sh: a prompt and the bound host libraries (--nv and friends). */
const FINAL_ENV = [
  '#!/bin/sh',
  'if [ -z "${LD_LIBRARY_PATH:-}" ]; then',
  '  LD_LIBRARY_PATH="/.singularity.d/libs"',
  'else',
  '  LD_LIBRARY_PATH="$LD_LIBRARY_PATH:/.singularity.d/libs"',
  'fi',
  'if [ -z "${PS1:-}" ]; then',
  '  PS1="Apptainer> "',
  'fi',
  'export LD_LIBRARY_PATH PS1',
  '',
].join('\n');

/**
 * Every synthetic entry for an image config, parents before children. Directories are 0755 root, scripts
 * 0755, data files 0644, and the mount points are empty: the runtime binds /dev, /proc, /sys, $HOME,
 * /tmp, /etc/hosts and /etc/resolv.conf over them (podman also /etc/hostname and /run/.containerenv).
 */
export function singularityEntries(config: ImageConfig): SyntheticEntry[] {
  const c = config.config ?? {};
  const env = c.Env ?? [];
  const entries: SyntheticEntry[] = [];
  const dir = (path: string, metadata: boolean, mode = 0o755): void => void entries.push({ path, type: 'dir', mode, metadata });
  const file = (path: string, text: string, mode: number, metadata: boolean): void =>
    void entries.push({ path, type: 'reg', mode, content: encoder.encode(text), metadata });
  const link = (path: string, target: string): void => void entries.push({ path, type: 'symlink', mode: 0o777, linkName: target, metadata: true });

  dir('.singularity.d', true);
  dir('.singularity.d/actions', true);
  for (const [name, body] of Object.entries(ACTIONS)) file(`.singularity.d/actions/${name}`, action(body), 0o755, true);
  dir('.singularity.d/env', true);
  file('.singularity.d/env/01-base.sh', BASE_ENV, 0o755, true);
  file('.singularity.d/env/10-docker2singularity.sh', dockerEnvScript(env), 0o755, true);
  file('.singularity.d/env/90-environment.sh', CUSTOM_ENV, 0o755, true);
  file('.singularity.d/env/99-base.sh', FINAL_ENV, 0o755, true);
  file('.singularity.d/env/99-runtimevars.sh', RUNTIME_VARS, 0o755, true);
  dir('.singularity.d/libs', true);
  file('.singularity.d/labels.json', `${JSON.stringify(c.Labels ?? {}, null, 2)}\n`, 0o644, true);
  file('.singularity.d/runscript', runscript(c.Entrypoint ?? [], c.Cmd ?? []), 0o755, true);
  // The root symlinks of Singularity 2 that Apptainer's sandbox builds still make.
  link('singularity', '.singularity.d/runscript');
  link('environment', '.singularity.d/env/90-environment.sh');
  link('.run', '.singularity.d/actions/run');
  link('.exec', '.singularity.d/actions/exec');
  link('.shell', '.singularity.d/actions/shell');
  link('.test', '.singularity.d/actions/test');
  for (const mountPoint of ['dev', 'proc', 'sys', 'home', 'root', 'var', 'etc', 'run']) dir(mountPoint, false);
  dir('tmp', false, 0o1777);
  dir('var/tmp', false, 0o1777);
  file('etc/hosts', '', 0o644, false);
  file('etc/resolv.conf', '', 0o644, false);
  // What podman and runc bind or create in a root they cannot write to (`podman run --read-only --rootfs`):
  // without these, rootless podman fails on a read-only tree.
  file('etc/hostname', '', 0o644, false);
  file('run/.containerenv', '', 0o644, false);
  entries.push({ path: 'etc/mtab', type: 'symlink', mode: 0o777, linkName: '../proc/self/mounts', metadata: false });
  return entries;
}
