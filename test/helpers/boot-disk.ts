// Builds tiny A/B disks rootlessly (sfdisk on a regular file, mkfs.vfat -C, mke2fs -d, mtools)
// and boots them under QEMU with Debian's qemu_arm64 U-Boot.
import { closeSync, mkdirSync, openSync, readFileSync, writeFileSync, writeSync, statSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { spawn } from 'node:child_process';
import { must, tool } from './boot-tools.js';
import { BUILDROOT_GRUB_EFI_MODULES } from '../../src/boot/grub-image.js';
import { GRUB_MINIMUM_MODULES } from '../../src/boot/loader.js';

export const UBOOT_BIN = '/usr/lib/u-boot/qemu_arm64/u-boot.bin';
export const MIB = 1024 * 1024;
export const DISK_ID = '0x5eedb007';
export const GPT_DISK_GUID = '0B0A0000-0000-4000-8000-0000000000AB';
export const GPT_PART_GUID = (n: number): string => `0B0A0000-0000-4000-8000-00000000000${n}`;

export interface PartSpec {
  /** FAT (files at the root, or in subdirectories when the name has a /) or ext4 (files under a tree) */
  fs: 'fat' | 'ext4';
  sizeMiB: number;
  files: Record<string, Buffer | string>;
}

export interface Disk {
  img: string;
  /** byte offset of each partition (1-based index) */
  offsets: number[];
}

function copyInto(img: string, src: string, offset: number): void {
  const data = readFileSync(src);
  const fd = openSync(img, 'r+');
  try { writeSync(fd, data, 0, data.length, offset); } finally { closeSync(fd); }
}

/** p1, p2, … laid out back to back from 1 MiB; MBR (disk id DISK_ID) or GPT (fixed GUIDs). */
export function buildDisk(dir: string, parts: PartSpec[], label: 'dos' | 'gpt' = 'dos'): Disk {
  const img = join(dir, 'disk.img');
  let start = MIB;
  const offsets: number[] = [];
  const lines: string[] = [label === 'dos' ? `label: dos\nlabel-id: ${DISK_ID}` : `label: gpt\nlabel-id: ${GPT_DISK_GUID}`];
  parts.forEach((p, i) => {
    offsets.push(start);
    const type = label === 'dos' ? (p.fs === 'fat' ? 'c' : '83') : (p.fs === 'fat' ? 'uefi' : 'linux');
    const extra = label === 'gpt' ? `, uuid=${GPT_PART_GUID(i + 1)}` : i === 0 ? ', bootable' : '';
    lines.push(`start=${start / 512}, size=${(p.sizeMiB * MIB) / 512}, type=${type}${extra}`);
    start += p.sizeMiB * MIB;
  });
  const total = start + MIB;
  writeFileSync(img, '');
  must('truncate', ['-s', String(total), img]);
  must('sfdisk', ['-q', img], { input: lines.join('\n') + '\n' });
  parts.forEach((p, i) => {
    const fsImg = join(dir, `p${i + 1}.${p.fs}`);
    if (p.fs === 'fat') {
      must('mkfs.vfat', ['-C', '-n', 'BOOT', fsImg, String(p.sizeMiB * 1024)]);
      for (const [name, content] of Object.entries(p.files)) {
        const local = join(dir, `p${i + 1}-file`);
        writeFileSync(local, content);
        const parts2 = name.split('/').filter(Boolean);
        for (let d = 1; d < parts2.length; d++) tool('mmd', ['-D', 's', '-i', fsImg, '::' + parts2.slice(0, d).join('/')]);
        must('mcopy', ['-o', '-i', fsImg, local, '::' + parts2.join('/')]);
      }
    } else {
      const tree = join(dir, `p${i + 1}-tree`);
      mkdirSync(tree, { recursive: true });
      for (const [name, content] of Object.entries(p.files)) {
        const f = join(tree, name);
        mkdirSync(dirname(f), { recursive: true });
        writeFileSync(f, content);
      }
      must('mke2fs', ['-q', '-F', '-t', 'ext4', '-d', tree, fsImg, `${p.sizeMiB}M`]);
    }
    copyInto(img, fsImg, offsets[i]!);
  });
  return { img, offsets };
}

/** Reads a file from a FAT partition of the disk, or null when it does not exist. */
export function readFatFile(disk: Disk, part: number, name: string): Buffer | null {
  const out = `${disk.img}.${name.replace(/\W/g, '_')}.out`;
  const r = tool('mcopy', ['-o', '-n', '-i', `${disk.img}@@${disk.offsets[part - 1]}`, `::${name}`, out]);
  if (r.status !== 0) return null;
  return readFileSync(out);
}

export function writeFatFile(disk: Disk, part: number, name: string, content: Buffer | string): void {
  const local = `${disk.img}.in`;
  writeFileSync(local, content);
  must('mcopy', ['-o', '-i', `${disk.img}@@${disk.offsets[part - 1]}`, local, `::${name}`]);
}

export function deleteFatFile(disk: Disk, part: number, name: string): void {
  must('mdel', ['-i', `${disk.img}@@${disk.offsets[part - 1]}`, `::${name}`]);
}

export interface BootRun { log: string; ms: number; timedOut: boolean; status: number | null }

const LOG_CAP = 16 << 20;

/**
 * Runs `timeout ARGS…` (a QEMU under coreutils timeout) and collects its console. A guest stuck in
 * a loop can print without end: past LOG_CAP bytes only the last LOG_CAP/2 are kept after the
 * first LOG_CAP/2, so memory stays bounded and both the boot banner and the end survive.
 */
function runQemu(args: string[], clean: (text: string) => string): Promise<BootRun> {
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn('timeout', args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LC_ALL: 'C' } });
    const head: Buffer[] = [];
    let headBytes = 0;
    const tail: Buffer[] = [];
    let tailBytes = 0;
    let dropped = 0;
    const take = (c: Buffer): void => {
      if (headBytes < LOG_CAP / 2) { head.push(c); headBytes += c.length; return; }
      tail.push(c);
      tailBytes += c.length;
      while (tailBytes - tail[0]!.length > LOG_CAP / 2) { const old = tail.shift()!; tailBytes -= old.length; dropped += old.length; }
    };
    child.stdout.on('data', take);
    child.stderr.on('data', take);
    child.on('error', reject);
    child.on('close', (status) => {
      const gap = dropped ? [Buffer.from(`\n[… ${dropped} bytes of console output dropped …]\n`)] : [];
      const log = clean(Buffer.concat([...head, ...gap, ...tail]).toString('utf8'));
      resolve({ log, ms: Date.now() - t0, timedOut: status === 124 || status === 137, status });
    });
  });
}

/**
 * Boots the disk under qemu-system-aarch64 + U-Boot, bounded by `timeoutS` (coreutils timeout).
 * The guest ends the run itself with `poweroff`.
 */
export function bootUboot(disk: Disk, timeoutS = 60): Promise<BootRun> {
  if (!existsSync(UBOOT_BIN)) throw new Error(`${UBOOT_BIN} missing (apt-get install u-boot-qemu)`);
  statSync(disk.img);
  const args = [
    '-k', '5', String(timeoutS), 'qemu-system-aarch64', '-M', 'virt', '-cpu', 'cortex-a57', '-m', '512',
    '-nographic', '-monitor', 'none', '-serial', 'stdio', '-nic', 'none',
    '-bios', UBOOT_BIN, '-drive', `if=virtio,format=raw,file=${disk.img}`,
  ];
  return runQemu(args, (t) => t.replace(/\r/g, ''));
}

export const OVMF_CODE = '/usr/share/OVMF/OVMF_CODE_4M.fd';
export const OVMF_VARS = '/usr/share/OVMF/OVMF_VARS_4M.fd';
export const GRUB_EFI_MODULES = '/usr/lib/grub/x86_64-efi';

/**
 * BOOTX64.EFI as Buildroot builds it: grub-mkimage with prefix /EFI/BOOT (grub.cfg next to the
 * binary, no module folder) and exactly Buildroot's default BR2_TARGET_GRUB2_BUILTIN_MODULES_EFI
 * plus the modules otapack documents as its minimum (GRUB_MINIMUM_MODULES), plus `halt` for the
 * tests' stub board configs, which halt instead of booting a kernel. No regexp, no probe.
 */
export function buildGrubEfi(dir: string, modules: readonly string[] = [...BUILDROOT_GRUB_EFI_MODULES, ...GRUB_MINIMUM_MODULES, 'halt'], name = 'BOOTX64.EFI'): Buffer {
  const out = join(dir, name);
  must('grub-mkimage', ['-O', 'x86_64-efi', '-d', GRUB_EFI_MODULES, '-p', '/EFI/BOOT', '-o', out, ...modules]);
  return readFileSync(out);
}

/** Lines a healthy boot must not print: GRUB's and U-Boot's errors, otapack's warnings and errors. */
export const TROUBLE = /^.*(error:|WARNING|ERROR|can't find command|Unknown command|syntax error|SCRIPT FAILED).*$/gim;

/** The console lines that report a problem (none on a healthy boot). */
export const troubleLines = (log: string): string[] => log.match(TROUBLE) ?? [];

/** Strips the EFI console's colour and cursor escape sequences. */
export const plainConsole = (s: string): string => s.replace(/\x1b\[[0-9;?=]*[A-Za-z]/g, '').replace(/\r/g, '');

/** Boots the disk under qemu-system-x86_64 + OVMF (fresh writable vars each run), bounded by timeoutS. */
export function bootOvmf(disk: Disk, timeoutS = 90): Promise<BootRun> {
  const vars = `${disk.img}.vars.fd`;
  writeFileSync(vars, readFileSync(OVMF_VARS));
  const args = [
    '-k', '5', String(timeoutS), 'qemu-system-x86_64', '-M', 'q35', '-m', '256', '-nographic', '-monitor', 'none', '-serial', 'stdio',
    '-drive', `if=pflash,format=raw,readonly=on,file=${OVMF_CODE}`, '-drive', `if=pflash,format=raw,file=${vars}`,
    '-nic', 'none', '-drive', `if=virtio,format=raw,file=${disk.img}`,
  ];
  return runQemu(args, plainConsole);
}
