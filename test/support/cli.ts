// Runs the tocfs CLI for tests: in-process through `main` with captured streams (fast, and the registry
// fakes of the test stay reachable), or as the installed bin in a child process, for what only a real
// process has: its environment (DOCKER_CONFIG, NODE_EXTRA_CA_CERTS) and its exit code.
import { spawn } from 'node:child_process';
import { Writable } from 'node:stream';
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

/** `bin/tocfs.js ARGS...` in a child process with exactly `env`. */
export function runTocfsBin(args: string[], env: NodeJS.ProcessEnv): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
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
