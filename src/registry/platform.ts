/**
 * Platforms (`os/arch[/variant]`) and the choice of one manifest from an image index. Names follow the OCI
 * image spec (GOOS/GOARCH values); matching follows containerd's platforms package in spirit: a CPU runs
 * images built for older variants of its architecture, and the closest one is preferred.
 */
import { endianness } from 'node:os';
import { InvalidOptionError, TocfsError } from '../errors.js';
import type { Descriptor, ImageIndex, Platform } from './types.js';

/** Architecture spellings users and tools write, to the OCI (GOARCH) names. */
const ARCH_ALIASES: Readonly<Record<string, { architecture: string; variant?: string }>> = {
  x86_64: { architecture: 'amd64' },
  'x86-64': { architecture: 'amd64' },
  x64: { architecture: 'amd64' },
  aarch64: { architecture: 'arm64' },
  armhf: { architecture: 'arm', variant: 'v7' },
  armel: { architecture: 'arm', variant: 'v6' },
  i386: { architecture: '386' },
  i686: { architecture: '386' },
};

/** Node's `process.arch` to OCI architecture names; the arm variants are handled in hostPlatform. */
const NODE_ARCH: Readonly<Record<string, string>> = {
  x64: 'amd64',
  arm64: 'arm64',
  arm: 'arm',
  ia32: '386',
  ppc64: 'ppc64', // little-endian (Linux) becomes ppc64le in hostPlatform
  s390x: 's390x',
  riscv64: 'riscv64',
  loong64: 'loong64',
  mips: 'mips',
  mipsel: 'mipsle',
  mips64el: 'mips64le',
};

const ANNOTATION_REFERENCE_TYPE = 'vnd.docker.reference.type';

/** Parses `--platform OS/ARCH[/VARIANT]`, normalising aliases such as x86_64 and aarch64. */
export function parsePlatform(text: string): Platform {
  const parts = text.split('/');
  if (parts.length < 2 || parts.length > 3) {
    throw new InvalidOptionError('--platform', `${JSON.stringify(text)} is not OS/ARCH[/VARIANT]`);
  }
  for (const part of parts) {
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(part)) {
      throw new InvalidOptionError('--platform', `${JSON.stringify(text)} has an empty or invalid component`);
    }
  }
  const [os = '', arch = '', variant] = parts;
  return normalizePlatform({ os, architecture: arch, ...(variant !== undefined && { variant }) });
}

/** Lower-cases and folds aliases (`macos`, `x86_64`, `aarch64`, `armhf`, variant `8` → `v8`). */
export function normalizePlatform(p: Platform): Platform {
  let os = p.os.toLowerCase();
  if (os === 'macos') os = 'darwin';
  let architecture = p.architecture.toLowerCase();
  let variant = p.variant?.toLowerCase();
  const alias = ARCH_ALIASES[architecture];
  if (alias) {
    architecture = alias.architecture;
    if (alias.variant !== undefined) variant ??= alias.variant;
  }
  if (variant === '') variant = undefined;
  if (variant !== undefined && /^[0-9]/.test(variant)) variant = `v${variant}`;
  if (architecture === 'arm64' && variant === 'v8.0') variant = 'v8';
  return {
    os,
    architecture,
    ...(variant !== undefined && { variant }),
    ...(p['os.version'] !== undefined && { 'os.version': p['os.version'] }),
  };
}

/** What hostPlatform reads from the process; tests substitute other machines. */
export interface HostFacts {
  readonly arch?: string;
  readonly platform?: string;
  readonly armVersion?: unknown;
  readonly endianness?: 'LE' | 'BE';
}

/** The platform this process runs on, in OCI terms. */
export function hostPlatform(facts: HostFacts = {}): Platform {
  const nodeArch = facts.arch ?? process.arch;
  const nodePlatform = facts.platform ?? process.platform;
  let architecture = NODE_ARCH[nodeArch] ?? nodeArch;
  // Node reports 'ppc64' for both byte orders; Linux on POWER is little-endian, AIX big-endian.
  if (architecture === 'ppc64' && (facts.endianness ?? endianness()) === 'LE') architecture = 'ppc64le';
  const os = nodePlatform === 'win32' ? 'windows' : nodePlatform;
  if (architecture === 'arm64') return { os, architecture, variant: 'v8' };
  if (architecture === 'arm') {
    const variables = process.config.variables as unknown as Record<string, unknown>;
    const version = Number('armVersion' in facts ? facts.armVersion : variables['arm_version']);
    // Node is built for one arm level; without it, v7 is the level nearly every 32-bit arm image targets.
    return { os, architecture, variant: Number.isInteger(version) && version >= 5 ? `v${version}` : 'v7' };
  }
  return { os, architecture };
}

/** Comparable level of a variant on architectures whose variants are ordered (newer CPUs run older code). */
function level(architecture: string, variant: string | undefined): number | undefined {
  switch (architecture) {
    case 'arm64': {
      // No variant means the baseline v8 on arm64; v8.x and v9.x are ordered as major*100+minor.
      const m = /^v(\d+)(?:\.(\d+))?$/.exec(variant ?? 'v8');
      return m ? Number(m[1]) * 100 + Number(m[2] ?? 0) : undefined;
    }
    case 'arm': {
      // containerd reads a missing arm variant as v7.
      const m = /^v(\d+)$/.exec(variant ?? 'v7');
      return m ? Number(m[1]) : undefined;
    }
    case 'amd64': {
      // x86-64 microarchitecture levels; none is v1.
      const m = /^v(\d+)$/.exec(variant ?? 'v1');
      return m ? Number(m[1]) : undefined;
    }
    default:
      return undefined;
  }
}

/** Whether a CPU of arm64 level `wanted` runs code for level `candidate`. */
function arm64Runs(wanted: number, candidate: number): boolean {
  const [wMajor, wMinor] = [Math.floor(wanted / 100), wanted % 100];
  const [cMajor, cMinor] = [Math.floor(candidate / 100), candidate % 100];
  if (cMajor === wMajor) return cMinor <= wMinor;
  // Armv9.x includes the features of Armv8.(x+5) (containerd platforms/compare.go).
  return wMajor === 9 && cMajor === 8 && cMinor <= Math.min(wMinor + 5, 9);
}

/**
 * Rank of `candidate` for `wanted`: undefined when it does not run there, else lower is better
 * (0 = the wanted variant itself).
 */
function rank(wantedIn: Platform, candidateIn: Platform): number | undefined {
  const wanted = normalizePlatform(wantedIn);
  const candidate = normalizePlatform(candidateIn);
  if (wanted.os !== candidate.os || wanted.architecture !== candidate.architecture) return undefined;
  const arch = wanted.architecture;
  const w = level(arch, wanted.variant);
  const c = level(arch, candidate.variant);
  if (w === undefined || c === undefined) {
    // Unordered variants: equal is best; a candidate without one is the architecture's baseline.
    if (wanted.variant === candidate.variant) return 0;
    if (candidate.variant === undefined) return 1;
    return wanted.variant === undefined ? 2 : undefined;
  }
  if (c === w) return 0;
  const runs = arch === 'arm64' ? arm64Runs(w, c) : c < w;
  if (runs) return 1 + (w - c); // the newest variant the CPU runs
  // Only a wanted platform without a variant accepts these; the oldest is the likeliest to run.
  if (wanted.variant === undefined) return 10_000 + c;
  return undefined;
}

/**
 * Whether `candidate` serves `wanted`: same OS and architecture; a wanted variant accepts that variant and
 * older compatible ones (arm v7 runs v6; arm64 without a variant is v8; amd64 compares levels only when
 * both sides name one); a wanted platform without a variant accepts any.
 */
export function platformMatches(wanted: Platform, candidate: Platform): boolean {
  return rank(wanted, candidate) !== undefined;
}

export function formatPlatform(p: Platform): string {
  return p.variant === undefined ? `${p.os}/${p.architecture}` : `${p.os}/${p.architecture}/${p.variant}`;
}

/**
 * BuildKit stores provenance/SBOM attestations in the index as manifests for platform unknown/unknown,
 * marked with this annotation; they are not images and must never be chosen or listed.
 */
function isAttestation(d: Descriptor): boolean {
  if (d.annotations?.[ANNOTATION_REFERENCE_TYPE] === 'attestation-manifest') return true;
  return d.platform?.os === 'unknown' && d.platform.architecture === 'unknown';
}

/**
 * Picks the manifest for `wanted` from an index: the best-ranked match, the index's order breaking ties.
 * Attestations and artifacts (descriptors with an artifactType, e.g. SOCI v2 indexes listed beside the
 * images they index) are skipped. An entry without a platform is taken only when nothing else matches,
 * as containerd does for single-image indexes written without platforms.
 */
export function selectManifest(index: ImageIndex, wanted: Platform): Descriptor {
  let best: Descriptor | undefined;
  let bestRank = Infinity;
  let unlabelled: Descriptor | undefined;
  const available: string[] = [];
  for (const d of index.manifests) {
    if (isAttestation(d) || d.artifactType !== undefined) continue;
    if (d.platform === undefined) {
      unlabelled ??= d;
      available.push('(no platform)');
      continue;
    }
    available.push(formatPlatform(d.platform));
    const r = rank(wanted, d.platform);
    if (r !== undefined && r < bestRank) {
      best = d;
      bestRank = r;
    }
  }
  const chosen = best ?? unlabelled;
  if (chosen) return chosen;
  const list = available.length === 0 ? 'none' : [...new Set(available)].join(', ');
  throw new TocfsError('NO_PLATFORM', `no manifest for platform ${formatPlatform(wanted)}; available: ${list}`);
}
