// Stage timings for performance work: with OTAPACK_PROFILE=1 the library records how long each
// stage of a bundle or conversion took (wall time, and the CPU time of the main thread and of
// the external tools it waited for), and the CLI prints the table to stderr when the command
// ends. Off by default; when off every call is a cheap no-op and nothing is printed.
import { readFileSync } from 'node:fs';

export const profiling = (): boolean => !!process.env.OTAPACK_PROFILE && process.env.OTAPACK_PROFILE !== '0';

interface Row { name: string; wall: number; cpu: number; child: number; count: number; overlapped: boolean }

const rows = new Map<string, Row>();
const CLK_TCK = 100;

/** CPU seconds of waited-for child processes (cutime + cstime of /proc/self/stat). */
function childCpu(): number {
  try {
    const s = readFileSync('/proc/self/stat', 'latin1');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return (Number(f[13]) + Number(f[14])) / CLK_TCK;
  } catch {
    return 0;
  }
}

const mainCpu = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

function add(name: string, wall: number, cpu: number, child: number, overlapped: boolean): void {
  const r = rows.get(name) ?? { name, wall: 0, cpu: 0, child: 0, count: 0, overlapped };
  r.wall += wall;
  r.cpu += cpu;
  r.child += child;
  r.count++;
  rows.set(name, r);
}

/** Times one sequential stage (wall, process CPU, CPU of tools that exited meanwhile). */
export async function stage<T>(name: string, fn: () => Promise<T>): Promise<T> {
  if (!profiling()) return fn();
  const w = performance.now();
  const c = mainCpu();
  const k = childCpu();
  try {
    return await fn();
  } finally {
    add(name, (performance.now() - w) / 1000, mainCpu() - c, childCpu() - k, false);
  }
}

/**
 * Accumulates time spent in one kind of operation inside a streaming loop (encrypt, hash, wait
 * for the codec...). These overlap with other stages, so they are listed apart.
 */
export class Meter {
  private t = 0;
  private readonly on = profiling();
  constructor(private readonly name: string) {}
  start(): void {
    if (this.on) this.t = performance.now();
  }
  stop(): void {
    if (this.on) add(this.name, (performance.now() - this.t) / 1000, 0, 0, true);
  }
}

/** Synchronous variant of a meter around `fn`. */
export function metered<T>(m: Meter, fn: () => T): T {
  m.start();
  try {
    return fn();
  } finally {
    m.stop();
  }
}

/** The recorded table as text lines (empty when profiling is off or nothing was recorded). */
export function profileLines(totalWall?: number): string[] {
  if (!profiling() || rows.size === 0) return [];
  const f = (s: number): string => s.toFixed(3).padStart(8);
  const out = ['otapack profile (seconds)        wall  main cpu  tool cpu  calls'];
  const seq = [...rows.values()].filter((r) => !r.overlapped);
  const ovl = [...rows.values()].filter((r) => r.overlapped);
  for (const r of seq) out.push(`  ${r.name.padEnd(28)}${f(r.wall)}  ${f(r.cpu)}  ${f(r.child)}  ${String(r.count).padStart(5)}`);
  if (ovl.length) {
    out.push('  inside the streaming stages (main thread, overlapping the tools):');
    for (const r of ovl) out.push(`    ${r.name.padEnd(26)}${f(r.wall)}                      ${String(r.count).padStart(5)}`);
  }
  if (totalWall !== undefined) {
    const u = process.cpuUsage();
    out.push(`  ${'total'.padEnd(28)}${f(totalWall)}  ${f((u.user + u.system) / 1e6)}  ${f(childCpu())}`);
  }
  return out;
}
