// What this installation of otapack runs on: the external programs it calls, grouped by the
// Debian package that provides them, each with the version it reports, and what needs it. For
// `otapack --version`: someone whose convert fails on another machine compares these lines.
// Only loaded by that option, so other commands never pay for the probes.
import { runBinary, which } from './tools.js';

export interface ToolPackage {
  /** Debian package providing the programs. */
  package: string;
  /** Programs otapack runs from it. */
  programs: string[];
  /** What needs them. */
  neededFor: string;
  /** false: only some features need it (the rest of otapack works without). */
  required: boolean;
  /** Version the first program reports, null when it does not say or is missing. */
  version: string | null;
  /** Programs not found on PATH (nor in /usr/sbin, /sbin). */
  missing: string[];
  /** Path of the first program found. */
  path: string | null;
}

/** A Debian package otapack runs programs from, and whether every run needs it (the Debian package's Depends) or some features (Recommends). */
export interface ToolSource { package: string; programs: string[]; neededFor: string; required: boolean }

interface Probe extends ToolSource {
  /** The program and arguments that print the version, and the pattern that finds it in the output. */
  version: [string, string[], RegExp];
}

const PROBES: Probe[] = [
  { package: 'e2fsprogs', programs: ['mke2fs', 'debugfs', 'resize2fs', 'e2fsck', 'dumpe2fs', 'filefrag'], neededFor: 'convert, inspect (ext4 slots and data)', required: true, version: ['mke2fs', ['-V'], /mke2fs (\S+)/] },
  { package: 'mtools', programs: ['mcopy', 'mdir', 'mmd', 'mdel'], neededFor: 'convert, inspect (FAT boot partitions)', required: true, version: ['mcopy', ['--version'], /mtools\)? (\S+)/] },
  { package: 'dosfstools', programs: ['mkfs.vfat'], neededFor: 'convert (new FAT boot partitions)', required: true, version: ['mkfs.vfat', ['--version'], /mkfs\.fat (\S+)/] },
  { package: 'zstd', programs: ['zstd'], neededFor: 'zstd payloads, .img.zst input', required: true, version: ['zstd', ['--version'], /v(\d[\w.]*)/] },
  { package: 'openssl', programs: ['openssl'], neededFor: 'signature and trust checks', required: true, version: ['openssl', ['version'], /OpenSSL (\S+)/] },
  { package: 'xz-utils', programs: ['xz'], neededFor: '.img.xz input', required: false, version: ['xz', ['--version'], /XZ Utils\) (\S+)/] },
  { package: 'zchunk', programs: ['zck', 'zck_read_header'], neededFor: 'zchunk delta bundles (--delta-method zchunk)', required: false, version: ['zck', ['--version'], /zchunk (\d\S*)/] },
  { package: 'opensc', programs: ['pkcs11-tool'], neededFor: 'signing with a pkcs11: key', required: false, version: ['opensc-tool', ['--info'], /OpenSC (\d\S*)/] },
  { package: 'grub-common', programs: ['grub-mkimage'], neededFor: 'convert with boot.install-grub (with grub-efi-amd64-bin)', required: false, version: ['grub-mkimage', ['--version'], /\(GRUB\) (\d[\d.]*)/] },
];

/** The packages, without probing anything (scripts/package.mjs writes the .deb's dependencies from it). */
export const TOOL_SOURCES: readonly ToolSource[] = PROBES.map(({ version: _, ...s }) => s);

async function probe(p: Probe): Promise<ToolPackage> {
  const found = p.programs.map((name) => ({ name, path: which(name) }));
  const missing = found.filter((f) => !f.path).map((f) => f.name);
  const path = found.find((f) => f.path)?.path ?? null;
  let version: string | null = null;
  const [prog, args, re] = p.version;
  const bin = which(prog);
  if (bin) {
    const r = await runBinary(bin, args);
    version = re.exec(`${r.stdout.toString('utf8')}\n${r.stderr}`)?.[1] ?? null;
  }
  return { package: p.package, programs: p.programs, neededFor: p.neededFor, required: p.required, version, missing, path };
}

/** Every package otapack calls programs from, probed in parallel. */
export function toolReport(): Promise<ToolPackage[]> {
  return Promise.all(PROBES.map(probe));
}
