import { execFile } from 'node:child_process';
import { X509Certificate, randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { makeTempDir, removeDir } from './tmp.js';

const run = promisify(execFile);

/** A throwaway CA and a server certificate it signed, valid for 127.0.0.1 and localhost. */
export interface TlsMaterial {
  readonly caPem: string;
  readonly certPem: string;
  readonly keyPem: string;
}

/** A self-signed RSA certificate for signing RS256 JWTs; `certDerBase64` is the `x5c` entry. */
export interface SigningMaterial {
  readonly certPem: string;
  readonly keyPem: string;
  readonly certDerBase64: string;
}

export interface TlsFiles {
  readonly caFile: string;
  readonly certFile: string;
  readonly keyFile: string;
}

/** The SANs every server certificate carries; clients connect to 127.0.0.1 only (TESTING.md). */
export const SERVER_SAN = 'IP:127.0.0.1,DNS:localhost';

// Key generation is the slow part of starting a TLS registry, and tests never compare CAs, so one set
// per test process is shared. Only PEM strings are cached: files live in each caller's own temp dir.
let sharedTls: Promise<TlsMaterial> | undefined;
let sharedSigning: Promise<SigningMaterial> | undefined;

/** The per-process shared CA and server certificate. */
export function tlsMaterial(): Promise<TlsMaterial> {
  sharedTls ??= generateTlsMaterial().catch((err: unknown) => {
    sharedTls = undefined;
    throw err;
  });
  return sharedTls;
}

/** The per-process shared token-signing certificate. */
export function signingMaterial(): Promise<SigningMaterial> {
  sharedSigning ??= generateSigningMaterial().catch((err: unknown) => {
    sharedSigning = undefined;
    throw err;
  });
  return sharedSigning;
}

/** A fresh CA and server certificate, for tests that need one nobody else trusts. */
export async function generateTlsMaterial(): Promise<TlsMaterial> {
  return withScratch('certs', async (dir) => {
    const f = (name: string) => join(dir, name);
    // EC keys: an order of magnitude faster to generate than RSA, and Go and Node both accept them.
    const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
    await openssl([
      'req', '-x509', ...ec, '-keyout', f('ca.key'), '-out', f('ca.crt'), '-days', '3',
      '-subj', '/CN=tocfs test CA',
      '-addext', 'basicConstraints=critical,CA:TRUE',
      '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
    ]);
    await openssl([
      'req', ...ec, '-keyout', f('server.key'), '-out', f('server.csr'), '-subj', '/CN=localhost',
    ]);
    await writeFile(
      f('server.ext'),
      [
        `subjectAltName=${SERVER_SAN}`,
        'basicConstraints=critical,CA:FALSE',
        'keyUsage=critical,digitalSignature',
        'extendedKeyUsage=serverAuth',
        '',
      ].join('\n'),
    );
    await openssl([
      'x509', '-req', '-in', f('server.csr'), '-CA', f('ca.crt'), '-CAkey', f('ca.key'),
      '-set_serial', `0x${randomSerial()}`, '-days', '2', '-extfile', f('server.ext'),
      '-out', f('server.crt'),
    ]);
    return {
      caPem: await readFile(f('ca.crt'), 'utf8'),
      certPem: await readFile(f('server.crt'), 'utf8'),
      keyPem: await readFile(f('server.key'), 'utf8'),
    };
  });
}

/** A fresh RSA signing certificate (RS256 needs RSA), self-signed so it is its own trust root. */
export async function generateSigningMaterial(): Promise<SigningMaterial> {
  return withScratch('signing', async (dir) => {
    const key = join(dir, 'sign.key');
    const crt = join(dir, 'sign.crt');
    await openssl([
      'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', crt, '-days', '3',
      '-subj', '/CN=tocfs test token issuer',
      '-addext', 'keyUsage=critical,digitalSignature',
    ]);
    const certPem = await readFile(crt, 'utf8');
    return {
      certPem,
      keyPem: await readFile(key, 'utf8'),
      certDerBase64: new X509Certificate(certPem).raw.toString('base64'),
    };
  });
}

/** Writes ca.crt, server.crt and server.key into `dir` (key mode 0600) and returns their paths. */
export async function writeTlsFiles(dir: string, m: TlsMaterial): Promise<TlsFiles> {
  const files = {
    caFile: join(dir, 'ca.crt'),
    certFile: join(dir, 'server.crt'),
    keyFile: join(dir, 'server.key'),
  };
  await writeFile(files.caFile, m.caPem);
  await writeFile(files.certFile, m.certPem);
  await writeFile(files.keyFile, m.keyPem, { mode: 0o600 });
  return files;
}

async function openssl(args: string[]): Promise<void> {
  try {
    await run('openssl', args, { timeout: 30_000 });
  } catch (err) {
    const stderr = (err as { stderr?: string }).stderr ?? '';
    throw new Error(`openssl ${args.slice(0, 2).join(' ')} failed: ${stderr.trim()}`, { cause: err });
  }
}

async function withScratch<T>(prefix: string, fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = makeTempDir(prefix);
  try {
    return await fn(dir);
  } finally {
    removeDir(dir);
  }
}

function randomSerial(): string {
  const b = randomBytes(8);
  // Serials must be positive: clear the sign bit, and keep it non-zero.
  b[0] = (b[0]! & 0x7f) | 0x01;
  return b.toString('hex');
}
