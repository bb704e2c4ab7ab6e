// Sizes in configs and messages: "64M", "1.5GiB", "4096" (bytes).
import { OtapackError } from '../errors.js';

export const KiB = 1024;
export const MiB = 1024 * 1024;
export const GiB = 1024 * MiB;

const UNITS: Record<string, number> = {
  '': 1, b: 1,
  k: KiB, kb: 1000, kib: KiB,
  m: MiB, mb: 1000 ** 2, mib: MiB,
  g: GiB, gb: 1000 ** 3, gib: GiB,
  t: 1024 * GiB, tb: 1000 ** 4, tib: 1024 * GiB,
};

/** Parses "256M", "1GiB", "512k", 1048576 (plain numbers are bytes); else says what is wrong. */
export function readSize(value: unknown): { bytes: number } | { problem: string } {
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return { bytes: value };
  if (typeof value !== 'string') return { problem: `expected a size such as "256M" or "1G", got ${JSON.stringify(value)}` };
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(value);
  const mult = m ? UNITS[m[2]!.toLowerCase()] : undefined;
  if (!m || mult === undefined) return { problem: `"${value}" is not a size (use e.g. 512M, 2G, 1048576)` };
  const n = Math.round(Number(m[1]) * mult);
  if (!Number.isSafeInteger(n)) return { problem: `"${value}" is too large` };
  return { bytes: n };
}

/** readSize, refusing with a CONFIG error that starts with `what`. */
export function parseSize(value: unknown, what: string): number {
  const r = readSize(value);
  if ('problem' in r) throw new OtapackError('CONFIG', `${what}: ${r.problem}`, { reason: 'not-a-size' });
  return r.bytes;
}

/** Any byte count, for progress and file sizes: "512 B", "1.5 KiB", "64.0 MiB", "3.25 GiB". */
export function formatBytes(n: number): string {
  if (n < KiB) return `${n} B`;
  if (n < MiB) return `${(n / KiB).toFixed(1)} KiB`;
  if (n < GiB) return `${(n / MiB).toFixed(1)} MiB`;
  return `${(n / GiB).toFixed(2)} GiB`;
}

/**
 * Disk, partition and slot sizes (mostly whole MiB): "64 MiB", "1.5 MiB", "3.25 GiB"; with
 * unit 'MiB' never in GiB ("4096 MiB").
 */
export function formatSize(n: number, unit?: 'MiB'): string {
  if (n >= GiB && unit !== 'MiB') return `${(n / GiB).toFixed(2)} GiB`;
  return `${(n / MiB).toFixed(n % MiB ? 1 : 0)} MiB`;
}
