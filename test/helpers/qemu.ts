// Boots a disk image under QEMU (TCG) and reads its serial console, bounded in time.
//
// arm64: qemu-system-aarch64 -M virt with Debian's qemu_arm64 U-Boot as -bios; x86_64: q35 with
// OVMF (a fresh writable copy of the vars per run). Always -nic none (no network, and U-Boot does
// not wait for DHCP), -monitor none -serial stdio -nographic. No -no-reboot: a guest that panics
// with panic=N reboots inside the same process, so one run can cover a trial boot, its failures
// and the boot loader's fallback; every OTAPACK-MARKER line is collected in order.
//
// The run ends when the guest powers off (exitedCleanly), when `until` appears (success: the
// caller has seen what it wanted, untilMatched), when a stop pattern appears (failure; default:
// the U-Boot prompt or GRUB's, i.e. the boot configuration failed), or at timeoutMs (SIGTERM,
// then SIGKILL). The serial log is streamed to logFile; failed runs are also copied to
// test-artifacts/boot/.
import { spawn, type ChildProcess } from 'node:child_process';
import { StringDecoder } from 'node:string_decoder';
import { copyFileSync, createWriteStream, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export type QemuArch = 'arm64' | 'x86_64';

export const UBOOT_ARM64 = '/usr/lib/u-boot/qemu_arm64/u-boot.bin';
export const OVMF_CODE = '/usr/share/OVMF/OVMF_CODE_4M.fd';
export const OVMF_VARS = '/usr/share/OVMF/OVMF_VARS_4M.fd';
export const ARTIFACTS = fileURLToPath(new URL('../../test-artifacts/boot/', import.meta.url));

export interface BootOptions {
  arch: QemuArch;
  /** raw disk image (attached as the only virtio disk, writable) */
  disk: string;
  timeoutMs: number;
  /** patterns that must all appear, in this order; the result says which did not */
  expect?: RegExp[];
  /**
   * end the run successfully as soon as this matches the console so far (e.g. /OTAPACK-MARKER [^\n]*\n/;
   * it is tested against the whole log, so it can span reboots)
   */
  until?: RegExp;
  /** end the run as a failure as soon as one of these matches (default: a boot loader prompt) */
  stopOn?: RegExp[];
  /** the serial log is written here as it arrives */
  logFile: string;
  memoryMiB?: number;
  smp?: number;
  /** more QEMU arguments (e.g. a second drive) */
  extraArgs?: string[];
  /** keep a copy of the log under test-artifacts/boot/ even when the run passed */
  keepLog?: boolean;
}

export interface BootResult {
  /** the serial console, CR and terminal escapes removed */
  log: string;
  /** QEMU exited by itself with status 0 (the guest powered off) before the timeout */
  exitedCleanly: boolean;
  /** the `until` pattern appeared (the run was then ended by the harness) */
  untilMatched: boolean;
  timedOut: boolean;
  /** the stop pattern that ended the run, if any */
  stoppedBy?: string;
  exitCode: number | null;
  durationMs: number;
  /** every OTAPACK-MARKER line (the text after the tag), in console order */
  markers: string[];
  /** the same, parsed into key=value fields */
  markerFields: Record<string, string>[];
  /** how many times the firmware started (U-Boot banner or OVMF's boot manager): 1 + reboots */
  firmwareBoots: number;
  /** how many times a kernel was started (U-Boot "Starting kernel", "Linux version", or the initramfs line) */
  kernelBoots: number;
  /** expect patterns that did not appear (in order) */
  missing: RegExp[];
  /** ms from start until each expect pattern matched */
  matchedAtMs: number[];
  logFile: string;
  /** the command line used, for reports */
  argv: string[];
}

export const DEFAULT_STOP: RegExp[] = [
  /\n=> $/, // U-Boot prompt: no boot script worked
  /\ngrub> $/, // GRUB rescue/normal prompt
];

export function qemuArgv(o: BootOptions, varsFile?: string): string[] {
  const common = ['-nographic', '-monitor', 'none', '-serial', 'stdio', '-nic', 'none',
    '-m', String(o.memoryMiB ?? 1024), '-smp', String(o.smp ?? 2)];
  const drive = ['-drive', `if=virtio,format=raw,file=${o.disk}`];
  if (o.arch === 'arm64') {
    return ['qemu-system-aarch64', '-M', 'virt', '-cpu', 'cortex-a57', ...common, '-bios', UBOOT_ARM64, ...drive, ...(o.extraArgs ?? [])];
  }
  return ['qemu-system-x86_64', '-M', 'q35', ...common,
    '-drive', `if=pflash,format=raw,readonly=on,file=${OVMF_CODE}`, '-drive', `if=pflash,format=raw,file=${varsFile}`,
    ...drive, ...(o.extraArgs ?? [])];
}

export const plainConsole = (s: string): string =>
  s.replace(/\x1b\[[0-9;?=]*[A-Za-z]/g, '').replace(/\x1b[()][A-Z0-9]/g, '').replace(/\r/g, '');

export function parseMarker(text: string): Record<string, string> {
  const f: Record<string, string> = {};
  for (const w of text.trim().split(/\s+/)) {
    const i = w.indexOf('=');
    if (i > 0) f[w.slice(0, i)] = w.slice(i + 1);
  }
  return f;
}

// QEMU processes still running: killed when this process exits (a vitest worker that times out
// or crashes must not leave a guest spinning on the CPU)
const live = new Set<ChildProcess>();
let exitHook = false;
function track(child: ChildProcess): void {
  live.add(child);
  child.on('close', () => live.delete(child));
  if (!exitHook) {
    exitHook = true;
    process.on('exit', () => { for (const c of live) c.kill('SIGKILL'); });
  }
}

export function bootQemu(o: BootOptions): Promise<BootResult> {
  const firmware = o.arch === 'arm64' ? UBOOT_ARM64 : OVMF_CODE;
  if (!existsSync(firmware)) {
    return Promise.reject(new Error(`${firmware} missing (apt-get install ${o.arch === 'arm64' ? 'u-boot-qemu qemu-system-arm' : 'ovmf qemu-system-x86'})`));
  }
  mkdirSync(dirname(o.logFile), { recursive: true });
  let varsFile: string | undefined;
  if (o.arch === 'x86_64') {
    varsFile = `${o.logFile}.vars.fd`;
    writeFileSync(varsFile, readFileSync(OVMF_VARS));
  }
  const argv = qemuArgv(o, varsFile);
  const stops = o.stopOn ?? DEFAULT_STOP;
  const expect = o.expect ?? [];
  const t0 = Date.now();
  const out = createWriteStream(o.logFile);
  out.write(`# ${argv.join(' ')}\n`);

  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LC_ALL: 'C' } });
    track(child);
    const decoders = { out: new StringDecoder('utf8'), err: new StringDecoder('utf8') };
    let raw = '';
    let text = '';
    let timedOut = false;
    let stoppedBy: string | undefined;
    let untilMatched = false;
    let nextExpect = 0;
    let expectPos = 0;
    const matchedAtMs: number[] = [];
    let killTimer: NodeJS.Timeout | undefined;
    const kill = (): void => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      killTimer = setTimeout(() => child.kill('SIGKILL'), 3000);
    };
    const timer = setTimeout(() => { timedOut = true; kill(); }, o.timeoutMs);
    const onData = (c: Buffer, d: StringDecoder): void => {
      out.write(c);
      const s = d.write(c);
      raw += s;
      const plain = plainConsole(s);
      text += plain;
      // expect patterns in order, each searched after the previous one's match
      while (nextExpect < expect.length) {
        const re = expect[nextExpect]!;
        const g = new RegExp(re.source, re.flags.includes('g') ? re.flags : `${re.flags}g`);
        g.lastIndex = expectPos;
        const m = g.exec(text);
        if (!m) break;
        expectPos = m.index + m[0].length;
        matchedAtMs.push(Date.now() - t0);
        nextExpect++;
      }
      // `until` is matched against the whole console so far (it may span several boots)
      if (o.until && !untilMatched && !stoppedBy && plain && new RegExp(o.until.source, o.until.flags.replace('g', '')).test(text)) {
        untilMatched = true;
        kill();
      }
      if (!stoppedBy && !untilMatched) {
        const tail = text.slice(-400);
        const hit = stops.find((re) => re.test(tail));
        if (hit) { stoppedBy = String(hit); kill(); }
      }
    };
    child.stdout.on('data', (c: Buffer) => onData(c, decoders.out));
    child.stderr.on('data', (c: Buffer) => onData(c, decoders.err));
    child.on('error', (e) => { clearTimeout(timer); out.end(); reject(e); });
    child.on('close', (code) => {
      clearTimeout(timer);
      if (killTimer) clearTimeout(killTimer);
      const durationMs = Date.now() - t0;
      const log = plainConsole(raw);
      const markers = [...log.matchAll(/OTAPACK-MARKER ([^\n]*)/g)].map((m) => m[1]!.trim());
      const missing = inOrderMissing(log, expect);
      const exitedCleanly = !timedOut && !stoppedBy && !untilMatched && code === 0;
      const count = (re: RegExp): number => (log.match(re) ?? []).length;
      const kernelBoots = Math.max(count(/Starting kernel \.\.\./g), count(/Linux version \d/g), count(/otapack-initramfs: root=/g));
      const firmwareBoots = Math.max(count(/^U-Boot 20\d\d\.\d\d/gm), count(/BdsDxe: starting /g));
      out.end(`\n# qemu exit=${code} timedOut=${timedOut} untilMatched=${untilMatched} stoppedBy=${stoppedBy ?? '-'} ms=${durationMs}\n`, () => {
        if (varsFile) rmSync(varsFile, { force: true });
        const failed = !(exitedCleanly || (untilMatched && !timedOut)) || missing.length > 0;
        if (failed || o.keepLog) {
          mkdirSync(ARTIFACTS, { recursive: true });
          try { copyFileSync(o.logFile, join(ARTIFACTS, basename(o.logFile))); } catch { /* best effort */ }
        }
        resolve({
          log, exitedCleanly, untilMatched, timedOut, stoppedBy, exitCode: code, durationMs, markers, markerFields: markers.map(parseMarker),
          firmwareBoots, kernelBoots, missing, matchedAtMs, logFile: o.logFile, argv,
        });
      });
    });
  });
}

/** The expect patterns that do not match in order (each searched after the previous match). */
export function inOrderMissing(log: string, expect: RegExp[]): RegExp[] {
  let pos = 0;
  const missing: RegExp[] = [];
  for (const re of expect) {
    const g = new RegExp(re.source, re.flags.includes('g') ? re.flags : `${re.flags}g`);
    g.lastIndex = pos;
    const m = g.exec(log);
    if (!m) missing.push(re);
    else pos = m.index + m[0].length;
  }
  return missing;
}

/** A one-line summary for test output. */
export function describeBoot(name: string, r: BootResult): string {
  return `${name}: ${(r.durationMs / 1000).toFixed(1)} s, ${r.kernelBoots} kernel boot(s), exit=${r.exitCode}`
    + `${r.untilMatched ? ' (until matched)' : ''}${r.timedOut ? ' TIMEOUT' : ''}${r.stoppedBy ? ` stopped by ${r.stoppedBy}` : ''}, markers: ${r.markers.join(' | ') || '-'}`;
}
