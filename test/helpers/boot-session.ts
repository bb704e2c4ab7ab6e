// What the convert boot tests (test/boot/convert-*.test.ts) share around their QEMU runs: a work
// folder (kept with OTAPACK_KEEP_BOOT_WORK), the serial logs of each test (copied to
// test-artifacts/boot/ when it fails) and a timing record, printed and saved as JSON at the end.
import { afterAll, onTestFailed } from 'vitest';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { ARTIFACTS, bootQemu, describeBoot, type BootResult } from './qemu.js';

export interface BootSession {
  work: string;
  /** Times `f` under `what` (with an optional note made from its result). */
  timed<T>(what: string, f: () => Promise<T>, detail?: (v: T) => string): Promise<T>;
  /** Adds a figure measured elsewhere (the guest's own timing of an install). */
  record(what: string, ms: number, detail?: string): void;
  /** Called at the start of a test: the serial logs it produces are kept if it fails. */
  keepLogsOnFailure(): void;
  /** One QEMU power-on, its serial log at <work>/<logPrefix><name>.log, timed and described. */
  boot(name: string, arch: 'arm64' | 'x86_64', disk: string, timeoutMs: number, expect: RegExp[]): Promise<BootResult>;
}

/** `id` names the timings file (<id>-timings.json), `title` the printed summary. */
export function bootSession(id: string, title: string, o: { tmpPrefix: string; logPrefix?: string }): BootSession {
  const work = mkdtempSync(join(process.env.OTAPACK_TEST_TMP ?? tmpdir(), o.tmpPrefix));
  const timings: { what: string; ms: number; detail?: string }[] = [];
  const logs: string[] = [];
  afterAll(() => {
    mkdirSync(ARTIFACTS, { recursive: true });
    writeFileSync(join(ARTIFACTS, `${id}-timings.json`), JSON.stringify(timings, null, 2) + '\n');
    console.log([`${title}:`, ...timings.map((t) => `  ${(t.ms / 1000).toFixed(1).padStart(6)} s  ${t.what}${t.detail ? `  (${t.detail})` : ''}`)].join('\n'));
    if (!process.env.OTAPACK_KEEP_BOOT_WORK) rmSync(work, { recursive: true, force: true });
  });
  return {
    work,
    async timed(what, f, detail) {
      const t0 = Date.now();
      const v = await f();
      timings.push({ what, ms: Date.now() - t0, detail: detail?.(v) });
      return v;
    },
    record(what, ms, detail) {
      timings.push({ what, ms, detail });
    },
    keepLogsOnFailure() {
      const mine = logs.length;
      onTestFailed(() => {
        mkdirSync(ARTIFACTS, { recursive: true });
        for (const l of logs.slice(mine)) {
          try { copyFileSync(l, join(ARTIFACTS, basename(l))); } catch { /* best effort */ }
        }
      });
    },
    async boot(name, arch, disk, timeoutMs, expect) {
      const logFile = join(work, `${o.logPrefix ?? ''}${name}.log`);
      logs.push(logFile);
      const r = await bootQemu({ arch, disk, timeoutMs, expect, logFile });
      timings.push({ what: `boot ${name}`, ms: r.durationMs, detail: `${r.firmwareBoots} firmware start(s)${r.kernelBoots > 1 ? `, ${r.kernelBoots} kernel boots` : ''}` });
      console.log(describeBoot(name, r));
      return r;
    },
  };
}
