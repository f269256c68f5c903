// A reverse proxy on 127.0.0.1:0 in front of a plain-HTTP registry, which breaks chosen requests on
// purpose and counts everything. Bodies stream through (a multi-GiB blob is never buffered).
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Test } from 'tap';

/** Answers without asking the target; default status 500, empty body. */
export interface RespondAction {
  readonly status?: number;
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: string | Buffer;
}
/** TCP RST, either instead of any answer or after `afterBytes` of the target's body (default: half). */
export interface ResetAction {
  readonly reset: 'before-headers' | 'mid-body';
  readonly afterBytes?: number;
}
/** The target's status and headers (Content-Length intact), then a clean close after N body bytes. */
export interface TruncateAction {
  readonly truncateAfter: number;
}
export interface DelayAction {
  readonly delayMs: number;
}
/** XOR 0xff into the byte at body offset N of the target's answer (no flip if the body is shorter). */
export interface FlipByteAction {
  readonly flipByteAt: number;
}
/** Drops Range (and If-Range) before forwarding, so the target answers the whole blob with 200. */
export interface ReplaceStatusAction {
  readonly replaceStatus: 200;
}
export type FaultAction = RespondAction | ResetAction | TruncateAction | DelayAction | FlipByteAction | ReplaceStatusAction;

export interface FaultRule {
  /** Case-insensitive; any method when absent. */
  readonly method?: string;
  /** A string must equal the pathname; a RegExp is tested against it. */
  readonly path: string | RegExp;
  /** How many requests the rule applies to; unlimited when absent. */
  readonly times?: number;
  readonly action: FaultAction;
}

/** A rule as added: `hits` counts the requests it applied to. */
export interface ActiveRule extends FaultRule {
  hits: number;
}

export type RequestKind = 'blobs' | 'manifests' | 'token' | 'other';

export interface Tally {
  requests: number;
  /** Response body bytes sent to the client. */
  bytes: number;
}

export interface RecordedRequest {
  readonly method: string;
  readonly path: string;
  /** The client's Range header, as received. */
  readonly range?: string;
  /** Status sent to the client; 0 while none was sent (or never, after a reset before headers). */
  status: number;
  bytes: number;
  /** What the matched rule did, e.g. 'truncateAfter'; absent when forwarded untouched. */
  fault?: string;
  /** True once the client connection for this request is finished or closed. */
  done: boolean;
}

export interface ProxyCounters {
  total: number;
  byPath: Record<string, Tally>;
  /** Keyed `${METHOD} ${path}`. */
  byMethodPath: Record<string, Tally>;
  byKind: Record<RequestKind, Tally>;
  requests: RecordedRequest[];
}

export interface FaultProxy {
  /** `127.0.0.1:PORT`. */
  readonly host: string;
  /** `http://127.0.0.1:PORT`. */
  readonly url: string;
  addRule(rule: FaultRule): ActiveRule;
  clearRules(): void;
  readonly counters: ProxyCounters;
  resetCounters(): void;
  stop(): Promise<void>;
}

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

function faultName(action: FaultAction): string {
  for (const key of ['reset', 'truncateAfter', 'delayMs', 'flipByteAt', 'replaceStatus'] as const) {
    if (key in action) return key;
  }
  return 'respond';
}

export function kindOf(path: string): RequestKind {
  if (/^\/v2\/.+\/blobs\//.test(path)) return 'blobs';
  if (/^\/v2\/.+\/manifests\//.test(path)) return 'manifests';
  if (/(^|\/)token$/.test(path)) return 'token';
  return 'other';
}

function emptyCounters(): ProxyCounters {
  const zero = (): Tally => ({ requests: 0, bytes: 0 });
  return { total: 0, byPath: {}, byMethodPath: {}, byKind: { blobs: zero(), manifests: zero(), token: zero(), other: zero() }, requests: [] };
}

/** Flat `[name, value, ...]` as in `rawHeaders`, minus hop-by-hop headers. */
function endToEnd(raw: readonly string[], drop: ReadonlySet<string> = new Set()): string[] {
  const out: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    if (!HOP_BY_HOP.has(name) && !drop.has(name)) out.push(raw[i]!, raw[i + 1]!);
  }
  return out;
}

export async function startFaultProxy(t: Test, opts: { target: string }): Promise<FaultProxy> {
  const target = new URL(opts.target);
  if (target.protocol !== 'http:') throw new Error(`fault-proxy: target must be plain http, got ${opts.target}`);
  const agent = new http.Agent({ keepAlive: true });
  const rules: ActiveRule[] = [];
  let counters = emptyCounters();
  const delays = new Set<() => void>();
  let origin = '';

  function match(method: string, path: string): ActiveRule | undefined {
    for (const rule of rules) {
      if (rule.method !== undefined && rule.method.toUpperCase() !== method) continue;
      if (typeof rule.path === 'string' ? rule.path !== path : !rule.path.test(path)) continue;
      if (rule.times !== undefined && rule.hits >= rule.times) continue;
      rule.hits++;
      return rule;
    }
    return undefined;
  }

  function tallies(method: string, path: string): Tally[] {
    const get = (table: Record<string, Tally>, key: string): Tally => (table[key] ??= { requests: 0, bytes: 0 });
    return [get(counters.byPath, path), get(counters.byMethodPath, `${method} ${path}`), counters.byKind[kindOf(path)]];
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = (req.method ?? 'GET').toUpperCase();
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    const range = req.headers.range;
    const rec: RecordedRequest = { method, path, ...(range === undefined ? {} : { range }), status: 0, bytes: 0, done: false };
    counters.total++;
    counters.requests.push(rec);
    const tally = tallies(method, path);
    for (const x of tally) x.requests++;
    const sent = (n: number): void => {
      rec.bytes += n;
      for (const x of tally) x.bytes += n;
    };
    res.on('close', () => (rec.done = true));

    const action = match(method, path)?.action;
    const fault = action && faultName(action);
    if (fault) rec.fault = fault;

    if (fault === 'respond') {
      const { status = 500, headers = {}, body = '' } = action as RespondAction;
      const bytes = Buffer.from(body);
      rec.status = status;
      res.writeHead(status, { 'content-length': String(bytes.length), ...headers });
      res.end(bytes);
      if (method !== 'HEAD') sent(bytes.length);
      return;
    }
    if (action && 'reset' in action && action.reset === 'before-headers') {
      req.socket.resetAndDestroy();
      return;
    }
    if (action && 'delayMs' in action) {
      await new Promise<void>((resolve) => {
        const done = (): void => {
          clearTimeout(timer);
          delays.delete(done);
          resolve();
        };
        const timer = setTimeout(done, action.delayMs);
        delays.add(done);
      });
      if (req.socket.destroyed) return;
    }
    forward(req, res, action, rec, sent);
  }

  function forward(
    req: IncomingMessage,
    res: ServerResponse,
    action: FaultAction | undefined,
    rec: RecordedRequest,
    sent: (n: number) => void,
  ): void {
    const drop = new Set(['host']);
    if (action && 'replaceStatus' in action) drop.add('range').add('if-range');
    const headers = endToEnd(req.rawHeaders, drop);
    headers.push('Host', target.host);
    const upReq = http.request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers, agent });
    req.pipe(upReq);
    res.on('close', () => {
      if (!res.writableFinished) upReq.destroy();
    });
    upReq.on('error', (err) => {
      if (res.headersSent) res.destroy(err);
      else if (!res.destroyed) {
        rec.status = 502;
        res.writeHead(502, { 'content-type': 'text/plain' });
        res.end(`fault-proxy: upstream error: ${err.message}`);
      }
    });
    upReq.on('response', (upRes) => {
      void relay(upRes, upReq, res, action, rec, sent).catch((err: Error) => {
        upReq.destroy();
        res.destroy(err);
      });
    });
  }

  async function relay(
    upRes: IncomingMessage,
    upReq: http.ClientRequest,
    res: ServerResponse,
    action: FaultAction | undefined,
    rec: RecordedRequest,
    sent: (n: number) => void,
  ): Promise<void> {
    const headers = endToEnd(upRes.rawHeaders);
    for (let i = 0; i < headers.length; i += 2) {
      if (headers[i]!.toLowerCase() === 'location') headers[i + 1] = rewriteLocation(headers[i + 1]!);
    }
    rec.status = upRes.statusCode ?? 502;
    res.writeHead(rec.status, upRes.statusMessage, headers);

    const length = Number(upRes.headers['content-length']);
    let cutAt: number | undefined;
    let cut: ((socket: Socket) => void) | undefined;
    if (action && 'truncateAfter' in action) {
      cutAt = action.truncateAfter;
      cut = (socket) => socket.end(); // FIN after what was written: a clean but short body
    } else if (action && 'reset' in action) {
      cutAt = action.afterBytes ?? (Number.isFinite(length) ? Math.floor(length / 2) : 0);
      cut = (socket) => socket.resetAndDestroy();
    }
    const flipAt = action && 'flipByteAt' in action ? action.flipByteAt : undefined;

    // The last bytes go out with a write callback: only once they have left Node may the socket be cut,
    // else a reset could discard them and the client would see fewer than cutAt bytes.
    const cutAfter = (last: Buffer): Promise<void> =>
      new Promise<void>((resolve) => {
        const socket = res.socket;
        const finish = (): void => {
          if (socket && !socket.destroyed) cut!(socket);
          upReq.destroy(); // the rest of the upstream body is not wanted, nor its socket reused
          resolve();
        };
        if (last.length > 0) {
          res.write(last, finish);
          sent(last.length);
        } else {
          res.flushHeaders();
          if (socket) socket.write(Buffer.alloc(0), finish);
          else finish();
        }
      });
    if (cutAt === 0) return cutAfter(Buffer.alloc(0));

    let offset = 0;
    for await (const chunk of upRes as AsyncIterable<Buffer>) {
      let out = chunk;
      if (flipAt !== undefined && flipAt >= offset && flipAt < offset + chunk.length) {
        out = Buffer.from(chunk);
        out[flipAt - offset]! ^= 0xff;
      }
      if (cutAt !== undefined && offset + out.length >= cutAt) return cutAfter(out.subarray(0, cutAt - offset));
      offset += out.length;
      const flowing = res.write(out);
      sent(out.length);
      if (!flowing) {
        await new Promise<void>((resolve) => {
          const go = (): void => {
            res.off('drain', go).off('close', go);
            resolve();
          };
          res.on('drain', go).on('close', go);
        });
      }
      if (res.destroyed) {
        upReq.destroy();
        return;
      }
    }
    res.end();
  }

  function rewriteLocation(location: string): string {
    try {
      const url = new URL(location);
      if (url.origin !== target.origin) return location;
      return origin + url.pathname + url.search + url.hash;
    } catch {
      return location; // relative: already right for the proxy
    }
  }

  const server = http.createServer((req, res) => {
    handle(req, res).catch((err: Error) => res.destroy(err));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const host = `127.0.0.1:${port}`;
  origin = `http://${host}`;

  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopped ??= new Promise<void>((resolve) => {
      for (const done of delays) done();
      server.close(() => resolve());
      server.closeAllConnections();
      agent.destroy();
    }));
  t.teardown(stop);

  return {
    host,
    url: origin,
    addRule(rule) {
      const active: ActiveRule = { ...rule, hits: 0 };
      rules.push(active);
      return active;
    },
    clearRules() {
      rules.length = 0;
    },
    get counters() {
      return counters;
    },
    resetCounters() {
      counters = emptyCounters();
    },
    stop,
  };
}
