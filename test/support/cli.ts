// Runs the tocfs CLI for tests: in-process through `main` with captured streams (fast, and the registry
// fakes of the test stay reachable), or in a child process, for what only a real process has: its
// environment (DOCKER_CONFIG, NODE_EXTRA_CA_CERTS), its exit code, or calls into a FUSE mount that this
// process may be serving (`tocfs stats`).
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { Writable, type Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { main } from '../../src/cli/main.js';

export interface CliResult {
  readonly code: number;
  /** Standard output, byte for byte (`cat` writes file contents). */
  readonly out: Buffer;
  /** Standard output decoded as UTF-8. */
  readonly text: string;
  readonly err: string;
}

class Capture extends Writable {
  readonly #chunks: Buffer[] = [];
  override _write(chunk: Buffer, _enc: BufferEncoding, done: () => void): void {
    this.#chunks.push(Buffer.from(chunk));
    done();
  }
  get bytes(): Buffer {
    return Buffer.concat(this.#chunks);
  }
}

/** `tocfs ARGS...` in this process. */
export async function runTocfs(args: string[]): Promise<CliResult> {
  const stdout = new Capture();
  const stderr = new Capture();
  const code = await main(args, { stdout, stderr });
  const out = stdout.bytes;
  return { code, out, text: out.toString(), err: stderr.bytes.toString() };
}

const BIN = fileURLToPath(new URL('../../bin/tocfs.js', import.meta.url));
const FROM_SOURCES = fileURLToPath(new URL('./tocfs-src.ts', import.meta.url));

/** `bin/tocfs.js ARGS...` in a child process with exactly `env`. */
export function runTocfsBin(args: string[], env: NodeJS.ProcessEnv): Promise<CliResult> {
  return collect(spawn(process.execPath, [BIN, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] }));
}

/** `tocfs ARGS...` from the sources (no build needed) in a child process, e.g. `stats` on a mount. */
export function runTocfsChild(args: string[]): Promise<CliResult> {
  return collect(spawn(process.execPath, ['--import', 'tsx', FROM_SOURCES, ...args], { stdio: ['ignore', 'pipe', 'pipe'] }));
}

function collect(child: ChildProcessByStdio<null, Readable, Readable>): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    child.on('error', reject);
    child.on('close', (code) => {
      const bytes = Buffer.concat(out);
      resolve({ code: code ?? -1, out: bytes, text: bytes.toString(), err: Buffer.concat(err).toString() });
    });
  });
}
