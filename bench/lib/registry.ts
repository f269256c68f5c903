// The benchmark's registry: Debian's docker-registry on a storage root that outlives it (variants are pushed
// once, then served on every link profile), listening on loopback or inside the shaped link's network
// namespace. Its access log (one line per request with the body bytes written, Apache combined format) is
// the neutral meter of bytes and requests for every variant, full pull included.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export interface BenchRegistry {
  /** `ADDRESS:PORT`, as clients name it. */
  readonly host: string;
  /** Position in the access log: pass it to `traffic` to count what came after. */
  mark(): number;
  /** Requests and response body bytes since `mark` (waits briefly for the log to catch up). */
  traffic(mark: number): Promise<{ requests: number; bytes: number }>;
  stop(): Promise<void>;
}

const ACCESS_LINE = /^\S+ \S+ \S+ \[[^\]]+\] "[A-Z]+ [^"]*" (\d{3}) (\d+|-)/;

export async function startBenchRegistry(opts: { storageDir: string; workDir: string; address: string; port?: number; netns?: string }): Promise<BenchRegistry> {
  const config = {
    version: 0.1,
    log: { level: 'info', formatter: 'text' },
    storage: { filesystem: { rootdirectory: opts.storageDir }, delete: { enabled: true }, cache: { blobdescriptor: 'inmemory' } },
    http: { addr: `${opts.address}:${opts.port ?? 0}`, secret: 'tocfs-bench' },
  };
  const file = join(opts.workDir, `registry-${opts.netns ?? 'root'}.yml`);
  await writeFile(file, JSON.stringify(config));
  const argv = opts.netns ? ['ip', 'netns', 'exec', opts.netns, 'docker-registry', 'serve', file] : ['docker-registry', 'serve', file];
  const child: ChildProcess = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  let partial = '';
  let appLog = '';
  child.stdout!.on('data', (d: Buffer) => {
    const text = partial + d.toString();
    const parts = text.split('\n');
    partial = parts.pop()!;
    for (const l of parts) if (ACCESS_LINE.test(l)) lines.push(l);
  });
  child.stderr!.on('data', (d: Buffer) => {
    appLog += d.toString();
    if (appLog.length > 1 << 20) appLog = appLog.slice(-(1 << 19));
  });
  let exited = false;
  child.on('exit', () => (exited = true));
  let port = opts.port ?? 0;
  for (let i = 0; i < 300 && port === 0; i++) {
    const m = /listening on [^\s]*:(\d+)/.exec(appLog);
    if (m) port = Number(m[1]);
    else if (exited) break;
    else await sleep(50);
  }
  if (opts.port !== undefined) {
    for (let i = 0; i < 300 && !/listening on/.test(appLog) && !exited; i++) await sleep(50);
  }
  if (exited || port === 0 || !/listening on/.test(appLog)) {
    child.kill('SIGKILL');
    throw new Error(`docker-registry did not start: ${appLog.slice(-2000)}`);
  }
  return {
    host: `${opts.address}:${port}`,
    mark: () => lines.length,
    async traffic(mark: number) {
      // The access log line is written after the response: give the pipe a moment.
      await sleep(150);
      let requests = 0;
      let bytes = 0;
      for (const l of lines.slice(mark)) {
        const m = ACCESS_LINE.exec(l)!;
        requests++;
        bytes += m[2] === '-' ? 0 : Number(m[2]);
      }
      return { requests, bytes };
    },
    async stop() {
      if (exited) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
      await once(child, 'exit').catch(() => {});
      clearTimeout(timer);
    },
  };
}
