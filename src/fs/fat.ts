// FAT filesystems inside a disk image, through mtools (`-i image@@offset`) and mkfs.vfat
// (--offset): no mount, no loop device. File times are set from the source files (mcopy -m), so
// with SOURCE_DATE_EPOCH applied to staged files the result is reproducible.
import { open, rm, writeFile, utimes } from 'node:fs/promises';
import { makeTempDir, unregisterTempDir } from '../util/cleanup.js';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { OtapackError } from '../errors.js';
import { run, runBuffer } from '../util/tools.js';

const ENV = { MTOOLS_SKIP_CHECK: '1', MTOOLS_NO_VFAT: '0', MTOOLS_LOWER_CASE: '0' };
const img = (image: string, offset: number): string => `${image}@@${offset}`;

export interface FatInfo { bytesPerSector: number; sectors: number; label: string; volumeId: string; fatType: string }

/** Reads the FAT boot sector at `offset`; undefined when there is no FAT filesystem there. */
export async function probeFat(image: string, offset: number): Promise<FatInfo | undefined> {
  const fh = await open(image, 'r');
  try {
    const b = Buffer.alloc(512);
    const { bytesRead } = await fh.read(b, 0, 512, offset);
    if (bytesRead < 512 || b.readUInt16LE(510) !== 0xaa55) return undefined;
    const bps = b.readUInt16LE(11);
    if (![512, 1024, 2048, 4096].includes(bps) || b[13] === 0) return undefined;
    const fat32 = b.subarray(82, 87).toString('latin1') === 'FAT32';
    const fat1x = b.subarray(54, 57).toString('latin1') === 'FAT';
    if (!fat32 && !fat1x) return undefined;
    const sectors = b.readUInt16LE(19) || b.readUInt32LE(32);
    const lbl = fat32 ? b.subarray(71, 82) : b.subarray(43, 54);
    const vid = fat32 ? b.readUInt32LE(67) : b.readUInt32LE(39);
    return { bytesPerSector: bps, sectors, label: lbl.toString('latin1').trim(), volumeId: vid.toString(16).padStart(8, '0'), fatType: fat32 ? 'FAT32' : b.subarray(54, 62).toString('latin1').trim() };
  } finally {
    await fh.close();
  }
}

export async function mkfsFat(image: string, offset: number, bytes: number, o: { label: string; volumeId: string }): Promise<void> {
  if (offset % 512) throw new OtapackError('INTERNAL', 'FAT partition not sector aligned');
  // the FAT type must follow the partition, not the whole image file mkfs.vfat sees
  const fatType = bytes < 512 * 1024 * 1024 ? '16' : '32';
  await run('mkfs.vfat', ['--invariant', '-F', fatType, '--offset', String(offset / 512), '-n', o.label.toUpperCase().slice(0, 11), '-i', o.volumeId, image, String(Math.floor(bytes / 1024))], { what: 'mkfs.vfat' });
}

/** Bare paths of every file and directory (directories end with "/"). */
export async function listFat(image: string, offset: number): Promise<string[]> {
  const r = await run('mdir', ['-i', img(image, offset), '-/', '-b', '::/'], { env: ENV, okCodes: [0, 1], what: 'mdir' });
  return r.stdout.split('\n').map((l) => l.trim()).filter(Boolean).map((l) => l.replace(/^::/, ''));
}

export async function readFat(image: string, offset: number, path: string): Promise<Buffer | undefined> {
  const r = await runBuffer('mcopy', ['-n', '-i', img(image, offset), `::${path}`, '-'], { env: ENV });
  if (r.exitCode !== 0) return undefined;
  return r.stdout;
}

/** Writes files into the FAT filesystem, creating parent directories; replaces existing files. */
export async function writeFat(image: string, offset: number, files: { path: string; data: Buffer | string }[], mtime?: number): Promise<void> {
  const dir = makeTempDir(tmpdir(), 'otapack-fat-');
  try {
    const dirs = new Set<string>();
    for (const f of files) {
      const parts = f.path.split('/').filter(Boolean);
      for (let i = 1; i < parts.length; i++) dirs.add('/' + parts.slice(0, i).join('/'));
    }
    const existing = new Set((await listFat(image, offset)).map((p) => p.replace(/\/$/, '').toLowerCase()));
    // mtools stamps new directories with SOURCE_DATE_EPOCH when set, else with the clock
    const env = mtime !== undefined ? { ...ENV, SOURCE_DATE_EPOCH: String(mtime) } : ENV;
    for (const d of [...dirs].sort()) {
      if (!existing.has(d.toLowerCase())) await run('mmd', ['-i', img(image, offset), `::${d}`], { env, what: `mmd ${d}` });
    }
    let i = 0;
    for (const f of files) {
      const local = join(dir, `f${i++}`);
      await writeFile(local, f.data);
      if (mtime !== undefined) await utimes(local, mtime, mtime);
      await run('mcopy', ['-o', '-m', '-i', img(image, offset), local, `::${f.path}`], { env, what: `mcopy ${f.path}` });
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
    unregisterTempDir(dir);
  }
}

export async function deleteFat(image: string, offset: number, path: string): Promise<void> {
  await run('mdel', ['-i', img(image, offset), `::${path}`], { env: ENV, okCodes: [0, 1], what: `mdel ${path}` });
}
