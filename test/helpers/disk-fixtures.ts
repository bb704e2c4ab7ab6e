// Disk images for the disk-layer tests, built with the real tools (truncate, sfdisk) in a temp
// folder, and the real tools' view of them (sfdisk --json, partx) to judge our reader by.
import { execa } from 'execa';
import { execFileSync } from 'node:child_process';
import { openSync, writeSync, readSync, closeSync, ftruncateSync, readFileSync, statSync } from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';

export const SECTOR = 512;
export const MiB = 1024 * 1024;

export async function sh(cmd: string, args: string[], input?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const r = await execa(cmd, args, { reject: false, input, env: { LC_ALL: 'C' } });
  return { code: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
}

/** A sparse file of `size` bytes. */
export function sparseFile(path: string, size: number): string {
  const fd = openSync(path, 'w');
  ftruncateSync(fd, size);
  closeSync(fd);
  return path;
}

/** Writes `data` at `offset` into an existing file (no truncation). */
export function poke(path: string, offset: number, data: Buffer): void {
  const fd = openSync(path, 'r+');
  try {
    writeSync(fd, data, 0, data.length, offset);
  } finally {
    closeSync(fd);
  }
}

export function peek(path: string, offset: number, len: number): Buffer {
  const fd = openSync(path, 'r');
  try {
    const b = Buffer.alloc(len);
    const n = readSync(fd, b, 0, len, offset);
    return b.subarray(0, n);
  } finally {
    closeSync(fd);
  }
}

/** Flips every bit of one byte. */
export function flip(path: string, offset: number): void {
  poke(path, offset, Buffer.from([peek(path, offset, 1)[0]! ^ 0xff]));
}

/** A sparse image of `size` bytes partitioned by an sfdisk script; throws when sfdisk refuses. */
export async function sfdiskImage(path: string, size: number, script: string): Promise<string> {
  sparseFile(path, size);
  const r = await sh('sfdisk', ['--no-reread', '--no-tell-kernel', '-q', path], script);
  if (r.code !== 0) throw new Error(`sfdisk failed: ${r.stderr}`);
  return path;
}

export interface SfdiskPartition { node: string; start: number; size: number; type: string; uuid?: string; name?: string; attrs?: string; bootable?: boolean }
export interface SfdiskTable { label: 'dos' | 'gpt'; id: string; firstlba?: number; lastlba?: number; partitions: SfdiskPartition[] }

export async function sfdiskJson(path: string): Promise<SfdiskTable> {
  const r = await sh('sfdisk', ['--json', path]);
  if (r.code !== 0) throw new Error(`sfdisk --json failed: ${r.stderr}`);
  return (JSON.parse(r.stdout) as { partitiontable: SfdiskTable }).partitiontable;
}

export const partNumber = (node: string): number => Number(/(\d+)$/.exec(node)![1]);

/** PARTUUIDs as libblkid computes them (partx reads the table through libblkid). */
export async function partxUuids(path: string): Promise<Map<number, string>> {
  const r = await sh('partx', ['--raw', '--noheadings', '-o', 'NR,UUID', path]);
  if (r.code !== 0) throw new Error(`partx failed: ${r.stderr}`);
  return new Map(r.stdout.trim().split('\n').map((l) => {
    const [nr, uuid] = l.trim().split(/\s+/);
    return [Number(nr), uuid ?? ''] as [number, string];
  }));
}

export const sha256File = (path: string, offset = 0, len?: number): string => {
  const b = readFileSync(path);
  return createHash('sha256').update(b.subarray(offset, len === undefined ? undefined : offset + len)).digest('hex');
};

/** Bytes actually allocated on disk (st_blocks × 512). */
export const allocated = (path: string): number => statSync(path).blocks * 512;

export const random = (n: number): Buffer => randomBytes(n);

/** Copies a file keeping its holes (Node's copyFile fills them in). */
export function copySparse(src: string, dst: string): string {
  execFileSync('cp', ['--sparse=always', src, dst]);
  return dst;
}
