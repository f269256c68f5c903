import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import type { Test } from 'tap';
import { Agent, request } from 'undici';
import { tlsMaterial, writeTlsFiles, type TlsFiles } from './certs.js';
import { makeTempDir, removeDir } from './tmp.js';
import { startTokenIssuer, type RunningTokenIssuer } from './token-issuer.js';

export type { TokenIssuer } from './token-issuer.js';

export type RegistryAuth = 'none' | 'basic' | 'token';

export interface StartRegistryOptions {
  /** Default 'none'. */
  auth?: RegistryAuth;
  /** Default: true for 'basic' (which always uses TLS), false otherwise. Also puts the token realm on HTTPS. */
  tls?: boolean;
  /** For basic and token auth. Defaults 'tocfs' and a random password. */
  username?: string;
  password?: string;
  /** Token auth: lifetime of issued tokens. Default 300. */
  tokenTtlSeconds?: number;
  /** Token auth: anonymous token requests get `pull`. Default true. */
  anonymousPull?: boolean;
  /** Share storage with another registry. It is not deleted by stop(). Default: a fresh temp dir. */
  storageDir?: string;
  /** Listen on this port instead of a free one, e.g. to restart a stopped registry where clients expect it. */
  port?: number;
}

export interface TestRegistry {
  /** '127.0.0.1:PORT': the endpoint under test, with the auth and TLS asked for. */
  readonly host: string;
  readonly port: number;
  /** 'http://127.0.0.1:PORT' or 'https://…'. */
  readonly url: string;
  /** A plain-HTTP, no-auth registry on the same storage, for seeding. Equals `host` for auth 'none' without TLS. */
  readonly seedHost: string;
  readonly seedUrl: string;
  readonly storageDir: string;
  /** The harness's own temp dir (config, certs, htpasswd, and the storage unless `storageDir` was given). */
  readonly workDir: string;
  /** The CA that signed the TLS certificate, when tls. */
  readonly caPem?: string;
  readonly caFile?: string;
  readonly username?: string;
  readonly password?: string;
  readonly tokenIssuer?: RunningTokenIssuer;
  /** The registry process's stdout (access log) and stderr (app log) so far. */
  readonly logs: () => string;
  readonly seedLogs: () => string;
  /** Idempotent: kills the processes, closes the token issuer, removes the temp dirs. */
  stop(): Promise<void>;
}

/** Both processes sign upload state with this, so an upload session stays valid whichever one serves it. */
const HTTP_SECRET = 'tocfs-test-registry-secret';
const READY_TIMEOUT_MS = 15_000;
const STOP_GRACE_MS = 3_000;
const MAX_LOG_CHARS = 4 << 20;

/**
 * Starts Debian's docker-registry (distribution 2.8) on 127.0.0.1 with a temp storage root, plus a
 * plain seed registry on the same storage when the endpoint under test has auth or TLS. Stopped in
 * t.teardown, so a failing test cleans up too.
 */
export async function startRegistry(t: Test, opts: StartRegistryOptions = {}): Promise<TestRegistry> {
  const auth = opts.auth ?? 'none';
  if (auth === 'basic' && opts.tls === false) {
    throw new Error("startRegistry: auth 'basic' always uses TLS; drop tls: false");
  }
  const tls = auth === 'basic' || (opts.tls ?? false);
  const workDir = makeTempDir('registry');
  const storageDir = opts.storageDir ?? join(workDir, 'storage');
  const procs: RegistryProcess[] = [];
  let issuer: RunningTokenIssuer | undefined;
  let agent: Agent | undefined;
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopping ??= (async () => {
      await Promise.allSettled(procs.map((p) => p.stop()));
      await Promise.allSettled([issuer?.close(), agent?.close()]);
      removeDir(workDir);
    })());
  t.teardown(stop);

  try {
    const creds =
      auth === 'none'
        ? undefined
        : { username: opts.username ?? 'tocfs', password: opts.password ?? randomBytes(12).toString('hex') };
    const material = tls ? await tlsMaterial() : undefined;
    const tlsFiles = material ? await writeTlsFiles(workDir, material) : undefined;
    agent = new Agent(material ? { connect: { ca: material.caPem } } : {});

    let authConfig: object | undefined;
    if (auth === 'basic' && creds) {
      const htpasswd = join(workDir, 'htpasswd');
      await writeFile(htpasswd, await bcryptEntry(creds.username, creds.password));
      authConfig = { htpasswd: { realm: 'tocfs-test', path: htpasswd } };
    } else if (auth === 'token' && creds) {
      issuer = await startTokenIssuer({
        service: 'tocfs-test-registry',
        ...creds,
        ttlSeconds: opts.tokenTtlSeconds ?? 300,
        anonymousPull: opts.anonymousPull ?? true,
        ...(material ? { tls: material } : {}),
      });
      const bundle = join(workDir, 'token-signing.crt');
      await writeFile(bundle, issuer.signing.certPem);
      authConfig = {
        token: { realm: issuer.url, service: issuer.service, issuer: issuer.issuer, rootcertbundle: bundle },
      };
    }

    const main = new RegistryProcess(
      join(workDir, 'config.yml'),
      registryConfig({ storageDir, port: opts.port ?? 0, tls: tlsFiles, auth: authConfig }),
    );
    procs.push(main);
    const needSeed = auth !== 'none' || tls;
    const seed = needSeed
      ? new RegistryProcess(join(workDir, 'seed-config.yml'), registryConfig({ storageDir, port: 0 }))
      : main;
    if (needSeed) procs.push(seed);

    const scheme = tls ? 'https' : 'http';
    const [port, seedPort] = await Promise.all([
      main.start(scheme, agent),
      needSeed ? seed.start('http', agent) : undefined,
    ]);
    // Only readiness polling used it; idle keep-alive sockets would just sit on the registry.
    await agent.close();
    agent = undefined;
    const host = `127.0.0.1:${port}`;
    const seedHost = `127.0.0.1:${seedPort ?? port}`;
    return {
      host,
      port,
      url: `${scheme}://${host}`,
      seedHost,
      seedUrl: `http://${seedHost}`,
      storageDir,
      workDir,
      ...(material && tlsFiles ? { caPem: material.caPem, caFile: tlsFiles.caFile } : {}),
      ...creds,
      ...(issuer ? { tokenIssuer: issuer } : {}),
      logs: () => main.log(),
      seedLogs: () => seed.log(),
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

interface ConfigParams {
  storageDir: string;
  port: number;
  tls?: TlsFiles | undefined;
  auth?: object | undefined;
}

function registryConfig(p: ConfigParams): object {
  return {
    version: '0.1',
    // info is the least that still prints the `listening on` line the port is read from.
    log: { level: 'info', formatter: 'text' },
    storage: {
      filesystem: { rootdirectory: p.storageDir },
      delete: { enabled: true },
      redirect: { disable: true },
      // The purger would walk (and could delete from) a storage root another process is writing to.
      maintenance: { uploadpurging: { enabled: false } },
    },
    http: {
      addr: `127.0.0.1:${p.port}`,
      secret: HTTP_SECRET,
      ...(p.tls ? { tls: { certificate: p.tls.certFile, key: p.tls.keyFile } } : {}),
    },
    ...(p.auth ? { auth: p.auth } : {}),
  };
}

async function bcryptEntry(username: string, password: string): Promise<string> {
  const { stdout } = await promisify(execFile)('htpasswd', ['-Bbn', username, password]);
  return stdout.trim() + '\n';
}

/**
 * The registry runs under a shell that holds a dup of our stdin pipe. If this Node process dies in any
 * way, SIGKILL included, the pipe reaches EOF and the shell's watchdog kills the registry, so no orphan
 * keeps a port or a storage root busy. SIGKILL there, since nobody is left to wait for a graceful exit
 * (and a `sleep` before escalating would itself be orphaned). The shell reaps both of its children
 * itself, because PID 1 in a VM or container may not reap orphans.
 */
const WATCHDOG = `
exec 3<&0 </dev/null
"$@" 3<&- &
reg=$!
{ read -r _ <&3; kill -KILL "$reg" 2>/dev/null; } &
dog=$!
exec 3<&-
trap 'kill -TERM "$reg" 2>/dev/null' TERM
while :; do
  wait "$reg"; st=$?
  kill -0 "$reg" 2>/dev/null || break
done
kill "$dog" 2>/dev/null
wait "$dog" 2>/dev/null
exit "$st"
`;

/** Process groups still running; killed with SIGKILL if the test process exits without stop(). */
const liveGroups = new Set<number>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const pgid of liveGroups) signalGroup(pgid, 'SIGKILL');
  });
}

class RegistryProcess {
  #configFile: string;
  #config: object;
  #child: ChildProcess | undefined;
  #exited: Promise<void> | undefined;
  #log = '';

  constructor(configFile: string, config: object) {
    this.#configFile = configFile;
    this.#config = config;
  }

  log(): string {
    return this.#log;
  }

  /** Spawns the registry and resolves with its port once GET /v2/ answers. */
  async start(scheme: 'http' | 'https', agent: Agent): Promise<number> {
    // JSON is YAML, and JSON.stringify quotes paths correctly.
    await writeFile(this.#configFile, JSON.stringify(this.#config, null, 2));
    installExitHook();
    const child = spawn('sh', ['-c', WATCHDOG, 'registry-watchdog', 'docker-registry', 'serve', this.#configFile], {
      detached: true,
      stdio: ['pipe', 'pipe', 'pipe'],
      env: registryEnv(),
    });
    this.#child = child;
    const pgid = child.pid;
    if (pgid !== undefined) liveGroups.add(pgid);
    this.#exited = new Promise((resolve) => {
      child.once('close', () => {
        if (pgid !== undefined) liveGroups.delete(pgid);
        resolve();
      });
      child.once('error', (err) => {
        this.#append(`\n[harness] spawn failed: ${err.message}\n`);
      });
    });
    child.stdout?.setEncoding('utf8').on('data', (s: string) => this.#append(s));
    child.stderr?.setEncoding('utf8').on('data', (s: string) => this.#append(s));

    const deadline = Date.now() + READY_TIMEOUT_MS;
    let port: number | undefined;
    for (;;) {
      port ??= listeningPort(this.#log);
      if (port !== undefined && (await answersV2(`${scheme}://127.0.0.1:${port}/v2/`, agent))) return port;
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(`docker-registry exited (${child.exitCode ?? child.signalCode}) before it was ready:\n${this.#log}`);
      }
      if (Date.now() > deadline) {
        throw new Error(`docker-registry not ready after ${READY_TIMEOUT_MS} ms (port ${port ?? 'unknown'}):\n${this.#log}`);
      }
      await sleep(port === undefined ? 5 : 20);
    }
  }

  async stop(): Promise<void> {
    const child = this.#child;
    if (!child?.pid || !this.#exited) return;
    const pgid = child.pid;
    // SIGTERM to the shell rather than EOF on stdin, so the registry gets a graceful stop.
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    // The grace timer is cancelled once the process exits, or it alone would keep the test file alive.
    const grace = new AbortController();
    const graceful = await Promise.race([
      this.#exited.then(() => true),
      sleep(STOP_GRACE_MS, undefined, { signal: grace.signal }).then(() => false, () => true),
    ]);
    grace.abort();
    if (!graceful) {
      signalGroup(pgid, 'SIGKILL');
      await this.#exited;
    }
    child.stdin?.destroy();
    liveGroups.delete(pgid);
  }

  #append(s: string): void {
    this.#log += s;
    if (this.#log.length > MAX_LOG_CHARS) this.#log = this.#log.slice(-MAX_LOG_CHARS);
  }
}

/** distribution 2.8 logs `msg="listening on 127.0.0.1:PORT"` (with `, tls` appended under TLS) on stderr. */
function listeningPort(log: string): number | undefined {
  const m = /listening on 127\.0\.0\.1:(\d+)/.exec(log);
  return m ? Number(m[1]) : undefined;
}

async function answersV2(url: string, agent: Agent): Promise<boolean> {
  try {
    const res = await request(url, { dispatcher: agent, signal: AbortSignal.timeout(2000) });
    await res.body.dump();
    return res.statusCode === 200 || res.statusCode === 401;
  } catch {
    return false;
  }
}

/** REGISTRY_* variables override config keys, so one left in the environment would change every test. */
function registryEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('REGISTRY_')) env[k] = v;
  return env;
}

function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // ESRCH: the group is already gone.
  }
}
