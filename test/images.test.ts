// Proves the input-image fixtures (test/helpers/images.ts) are what they claim, judged by the
// real tools: sfdisk/sgdisk for tables, e2fsck/dumpe2fs/debugfs for the rootfs, fsck.vfat/mtools
// for FAT, mkimage for boot.scr. Every check also runs against a damaged twin that must fail it.
import { execa } from 'execa';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  GUID, VARIANTS, badImages, buildArmbianImage, buildBuildrootImage, buildEfiImage, buildRockpro64GptImage,
  type BadImage, type FixtureImage,
} from './helpers/images.js';
import { tmp } from './helpers/run.js';

const ENV = { LC_ALL: 'C', MTOOLS_SKIP_CHECK: '1' };
async function sh(cmd: string, args: string[]): Promise<{ code: number; out: string; err: string }> {
  const r = await execa(cmd, args, { reject: false, env: ENV, encoding: 'utf8' });
  return { code: r.exitCode ?? -1, out: String(r.stdout), err: String(r.stderr) };
}

function readAt(path: string, offset: number, length: number): Buffer {
  const fd = fs.openSync(path, 'r');
  try { const b = Buffer.alloc(length); const n = fs.readSync(fd, b, 0, length, offset); return b.subarray(0, n); } finally { fs.closeSync(fd); }
}
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const rootOf = (img: FixtureImage) => img.partitions.find((p) => p.number === img.rootPartition)!;
const rootArg = (img: FixtureImage): string => `${img.path}?offset=${rootOf(img).start * 512}`;

interface SfdiskJson { partitiontable: { label: string; id: string; partitions: { start: number; size: number; type: string; uuid?: string; name?: string; attrs?: string; bootable?: boolean }[] } }
async function sfdiskJson(path: string): Promise<SfdiskJson> {
  const r = await sh('sfdisk', ['--json', path]);
  if (r.code !== 0) throw new Error(`sfdisk --json ${path}: ${r.err}`);
  return JSON.parse(r.out) as SfdiskJson;
}

/** The checks, as functions, so each can be run against a broken twin too. */
const check = {
  async table(img: FixtureImage): Promise<void> {
    const j = (await sfdiskJson(img.path)).partitiontable;
    expect(j.label).toBe(img.table === 'mbr' ? 'dos' : 'gpt');
    expect(j.id.toLowerCase()).toBe(img.table === 'mbr' ? `0x${img.diskId}` : img.diskId);
    expect(j.partitions.map((p) => ({ start: p.start, size: p.size, type: p.type, ...(p.uuid ? { uuid: p.uuid.toLowerCase(), name: p.name } : {}) })))
      .toEqual(img.partitions.map((p) => ({ start: p.start, size: p.size, type: p.type, ...(p.uuid ? { uuid: p.uuid, name: p.name } : {}) })));
  },
  async verify(img: { path: string; table: 'mbr' | 'gpt' }): Promise<void> {
    const v = await sh('sfdisk', ['--verify', img.path]);
    expect(v.code, v.out + v.err).toBe(0);
    expect(v.out).toContain('No errors detected');
    if (img.table === 'gpt') {
      const g = await sh('sgdisk', ['-v', img.path]);
      expect(g.code, g.out).toBe(0);
      expect(g.out).toContain('No problems found');
      expect(g.out).not.toMatch(/invalid|corrupt|damaged/i);
    }
  },
  async ext4(path: string): Promise<void> {
    const r = await sh('e2fsck', ['-fn', path]);
    expect(r.code, r.out + r.err).toBe(0);
  },
  async vfat(img: FixtureImage, dir: string): Promise<void> {
    for (const p of img.partitions.filter((x) => x.fs === 'vfat')) {
      const copy = join(dir, `p${p.number}.vfat`);
      await sh('dd', [`if=${img.path}`, `of=${copy}`, 'bs=512', `skip=${p.start}`, `count=${p.size}`, 'conv=sparse', 'status=none']);
      const r = await sh('fsck.vfat', ['-n', copy]);
      fs.rmSync(copy);
      expect(r.code, r.out + r.err).toBe(0);
      const m = await sh('mdir', ['-/', '-b', '-i', `${img.path}@@${p.start * 512}`, '::/']);
      expect(m.code, m.err).toBe(0);
      const listed = m.out.split('\n').filter(Boolean).map((l) => l.replace(/^::/, ''));
      expect(listed).toEqual(expect.arrayContaining(img.bootFiles));
    }
  },
  raw(img: { path: string; rawRegions: FixtureImage['rawRegions'] }): void {
    for (const r of img.rawRegions) expect(sha(readAt(img.path, r.offset, r.length)), r.name).toBe(r.sha256);
  },
};

async function dumpe2fs(arg: string): Promise<Record<string, string>> {
  const r = await sh('dumpe2fs', ['-h', arg]);
  expect(r.code, r.err).toBe(0);
  return Object.fromEntries(r.out.split('\n').map((l) => /^([^:]+):\s*(.*)$/.exec(l)).filter(Boolean).map((m) => [m![1]!.trim(), m![2]!.trim()]));
}

async function debugfs(arg: string, ...cmds: string[]): Promise<string> {
  const r = await execa('debugfs', ['-f', '-', arg], { input: cmds.join('\n') + '\n', reject: false, env: ENV, encoding: 'utf8' });
  return String(r.stdout);
}

/** Lists every directory of the image with `ls -p` in one debugfs run: path → name → [mode, size, uid]. */
async function imageTree(img: FixtureImage, dirs: string[]): Promise<Map<string, Map<string, [number, number, number]>>> {
  const out = await debugfs(rootArg(img), ...dirs.map((d) => `ls -p "${d}"`));
  const res = new Map<string, Map<string, [number, number, number]>>();
  let cur: Map<string, [number, number, number]> | undefined;
  for (const line of out.split('\n')) {
    const cmd = /^debugfs: ls -p "(.*)"$/.exec(line);
    if (cmd) { cur = new Map(); res.set(cmd[1]!, cur); continue; }
    const e = /^\/(\d+)\/(\d+)\/(\d+)\/(\d+)\/(.*)\/(\d*)\/$/.exec(line);
    if (e && cur && e[5] !== '.' && e[5] !== '..') cur.set(e[5]!, [parseInt(e[2]!, 8), Number(e[6] || 0), Number(e[3])]);
  }
  return res;
}

function hostDirs(root: string, rel = '/'): string[] {
  const out = [rel];
  for (const n of fs.readdirSync(join(root, rel)).sort()) {
    const r = rel === '/' ? `/${n}` : `${rel}/${n}`;
    if (fs.lstatSync(join(root, r)).isDirectory()) out.push(...hostDirs(root, r));
  }
  return out;
}

let work: string;
const built = new Map<string, FixtureImage>();
const timing: string[] = [];

beforeAll(async () => {
  work = tmp('otapack-images-');
  for (const v of VARIANTS) {
    const t0 = performance.now();
    const img = await v.build(join(work, v.name));
    built.set(v.name, img);
    timing.push(`${v.name.padEnd(30)} ${String(img.buildMs).padStart(6)} ms cold, ${String(Math.round(performance.now() - t0)).padStart(5)} ms this call${img.cached ? ' (cache hit)' : ''}, ${(img.size / 2 ** 20).toFixed(2)} MiB`);
  }
}, 600_000);

afterAll(() => {
  console.info(`fixture build times:\n${timing.join('\n')}`);
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

describe.each(VARIANTS.map((v) => v.name))('%s', (name) => {
  const img = (): FixtureImage => built.get(name)!;

  it('has the partition table it describes, and sfdisk/sgdisk find no error', async () => {
    await check.table(img());
    await check.verify(img());
    const j = (await sfdiskJson(img().path)).partitiontable;
    if (img().table === 'mbr') expect(j.partitions.filter((p) => p.bootable).length).toBe(img().layout === 'armbian' ? 0 : 1);
  });

  it('has a clean ext4 root with the intended block size and features', async () => {
    const i = img();
    await check.ext4(rootArg(i));
    const h = await dumpe2fs(rootArg(i));
    expect(h['Block size']).toBe(String(i.rootfs.blockSize));
    expect(h['Filesystem UUID']).toBe(i.rootfs.uuid);
    expect(h['Filesystem volume name']).toBe(i.rootfs.label);
    const f = h['Filesystem features']!.split(' ');
    expect(f).toContain('metadata_csum');
    expect(f).toContain('extent');
    if (i.layout === 'armbian') expect(f).toContain('64bit'); else expect(f).not.toContain('64bit');
    expect(h['Filesystem created']).toBe('Tue Nov 14 22:13:20 2023');
    expect(Number(h['Block count']) * i.rootfs.blockSize).toBe(i.rootfs.sizeBytes);
    // The ext4 fills its partition exactly, like genimage's images do.
    expect(rootOf(i).size * 512).toBe(i.rootfs.sizeBytes);
  });

  it('has clean FAT partitions holding the boot files', async () => {
    await check.vfat(img(), join(work, name));
  });

  it('holds the raw bootloader bytes at their offsets', () => {
    const i = img();
    check.raw(i);
    for (const r of i.rawRegions) {
      const b = readAt(i.path, r.offset, r.length);
      expect(b.subarray(0, 4096).some((x) => x !== 0)).toBe(true);
      // not inside any partition, except RockPro64's loader partitions which exist to hold them
      for (const p of i.partitions.filter((x) => x.role !== 'loader')) {
        expect(r.offset + r.length <= p.start * 512 || r.offset >= (p.start + p.size) * 512, `${r.name} vs p${p.number}`).toBe(true);
      }
    }
  });

  it('names its root the way the description says, in the boot config and fstab', async () => {
    const i = img();
    const { kind, text } = i.bootConfig;
    if (kind === 'armbianEnv.txt') {
      expect(text).toContain(`rootdev=UUID=${i.rootfs.uuid}`);
      expect(text).toMatch(/^fdtfile=\S+\.dtb$/m);
      expect(text).toMatch(/^overlays=$/m);
      expect(i.rootSpec).toBe(`UUID=${i.rootfs.uuid}`);
    } else {
      expect(text).toContain(`root=${i.rootSpec}`);
    }
    const fstab = fs.readFileSync(join(i.rootfsTree, 'etc/fstab'), 'utf8');
    if (i.layout === 'armbian') expect(fstab).toMatch(new RegExp(`^UUID=${i.rootfs.uuid}\\s+/\\s+ext4`, 'm'));
    else if (i.layout === 'efi') expect(fstab).toMatch(new RegExp(`^${i.rootSpec}\\s+/\\s+ext4`, 'm'));
    else expect(fstab).toMatch(/^\/dev\/root\s+\/\s+ext2\s+rw,noauto/m);
    // The fstab in the image is the one in the tree.
    expect(await debugfs(rootArg(i), 'cat /etc/fstab')).toContain(fstab.trim().split('\n').pop()!);
    if (i.layout === 'efi') {
      const p2 = (await sfdiskJson(i.path)).partitiontable.partitions[1]!;
      expect(i.rootSpec).toBe(`PARTUUID=${p2.uuid!.toLowerCase()}`);
    }
  });

  it('has a rootfs whose every directory matches rootfsTree (names, types, modes, sizes)', async () => {
    const i = img();
    const dirs = hostDirs(i.rootfsTree);
    const listing = await imageTree(i, dirs);
    let files = 0;
    for (const d of dirs) {
      const got = listing.get(d);
      expect(got, d).toBeDefined();
      const names = fs.readdirSync(join(i.rootfsTree, d)).sort();
      const extra = [...got!.keys()].filter((n) => !names.includes(n)).map((n) => (d === '/' ? `/${n}` : `${d}/${n}`));
      expect(extra.filter((p) => p !== '/lost+found' && !i.specials.devices.some((x) => x.path === p)), d).toEqual([]);
      for (const n of names) {
        const st = fs.lstatSync(join(i.rootfsTree, d, n));
        const [mode, size] = got!.get(n) ?? [-1, -1];
        expect(mode, `${d}/${n}`).toBe(st.mode & 0o177777);
        if (st.isFile() || st.isSymbolicLink()) expect(size, `${d}/${n}`).toBe(st.size);
        files++;
      }
    }
    expect(files).toBeGreaterThan(300);
  });

  it('carries the awkward entries: hard links, xattrs, FIFO, devices, sparse, setuid, owners, loops', async () => {
    const i = img();
    const e = i.edge;
    const out = await debugfs(rootArg(i),
      `stat ${e.hardlinks[0]![0]}`, `ea_list ${e.capability}`, `ea_list ${e.userXattr}`, `stat ${e.fifo}`, `stat ${e.sparse}`,
      `stat ${e.setuid}`, `stat ${e.owned}`, 'stat /dev/console', `stat "${e.spaces}"`, `stat ${e.loops[0]}`);
    const blocks = out.split(/^debugfs: /m);
    expect(blocks[1]).toMatch(/Links: 4/);
    expect(blocks[2]).toContain('security.capability (20) = 01 00 00 02 00 20 00 00');
    expect(blocks[3]).toContain('user.otapack.origin (15) = "fixture-builder"');
    expect(blocks[4]).toMatch(/Type: FIFO/);
    expect(blocks[5]).toMatch(/Size: 8388608/);
    expect(Number(/Blockcount: (\d+)/.exec(blocks[5]!)![1])).toBeLessThan(64); // 512-byte units: holes kept
    expect(blocks[6]).toMatch(/Mode:\s+04750/);
    expect(blocks[7]).toMatch(/User:\s+1000\s+Group:\s+1000/);
    expect(blocks[8]).toMatch(/Type: character special/);
    expect(blocks[8]).toMatch(/Device major\/minor number: 05:01/);
    expect(blocks[9]).toMatch(/Type: regular/);
    expect(blocks[10]).toMatch(/Type: symlink/);
    // Every timestamp is SOURCE_DATE_EPOCH, ctime too.
    for (const b of blocks.slice(1)) for (const t of b.matchAll(/^\s*(c|a|m|cr)time: (0x[0-9a-f]+)/gm)) expect(t[2], t[0]).toBe('0x6553f100');
  });
});

describe('layout specifics', () => {
  it('Buildroot sunxi: SPL with the eGON.BT0 header at 8 KiB, p1 at 2128', () => {
    const i = built.get('buildroot-sunxi-spl-2128')!;
    expect(i.partitions[0]!.start).toBe(2128);
    expect(i.rawRegions).toEqual([expect.objectContaining({ offset: 8192, name: 'u-boot-sunxi-with-spl.bin' })]);
    expect(readAt(i.path, 8192 + 4, 8).toString('latin1')).toBe('eGON.BT0');
    expect(readAt(i.path, 8192 - 512, 512).every((x) => x === 0)).toBe(true);
  });

  it('caller-supplied kernel/initrd/dtb land on the boot partition byte for byte, and boot.scr loads the initrd', async () => {
    const i = built.get('buildroot-inputs-initrd')!;
    const dir = join(work, 'buildroot-inputs-initrd');
    expect(i.bootFiles).toEqual(['/Image', '/boot.scr', '/custom-board.dtb', '/initrd.img']);
    for (const [inImg, src] of [['::/Image', 'Image.in'], ['::/initrd.img', 'initrd.in'], ['::/custom-board.dtb', 'custom-board.dtb']]) {
      const r = await execa('mtype', ['-i', `${i.path}@@${2048 * 512}`, inImg!], { encoding: 'buffer', env: ENV });
      expect(sha(Buffer.from(r.stdout as Uint8Array)), inImg).toBe(sha(fs.readFileSync(join(dir, src!))));
    }
    expect(i.bootConfig.text).toContain('load virtio 0:1 ${ramdisk_addr_r} initrd.img');
    expect(i.bootConfig.text).toContain('booti ${kernel_addr_r} ${ramdisk_addr_r}:${filesize} ${fdt_addr_r}');
    expect(i.rootSpec).toBe('/dev/vda2');
    // the stand-in initramfs is a real gzip'd newc cpio
    const list = await execa('sh', ['-c', `gzip -dc '${join(dir, 'initrd.in')}' | cpio -t --quiet`], { reject: false, encoding: 'utf8' });
    if (list.exitCode === 0) expect(String(list.stdout).split('\n')).toEqual(expect.arrayContaining(['init', 'bin/sh', 'lib/modules/virtio_blk.ko']));
  });

  it('RPi: p1 at sector 1, p2 right after it, file size not a whole MiB, config.txt + cmdline.txt', async () => {
    const i = built.get('rpi-sector1')!;
    expect(i.layout).toBe('rpi');
    expect(i.partitions.map((p) => p.start)).toEqual([1, 1 + i.partitions[0]!.size]);
    expect(i.size % (1 << 20)).not.toBe(0);
    expect(i.size).toBe((i.partitions[1]!.start + i.partitions[1]!.size) * 512);
    expect(i.bootConfig.text).toBe('root=/dev/mmcblk0p2 rootwait console=tty1 console=ttyAMA0,115200\n');
    expect(i.bootFiles).toEqual(expect.arrayContaining(['/config.txt', '/cmdline.txt', '/start4.elf', '/overlays/miniuart-bt.dtbo']));
  });

  it('Buildroot boot.scr is a real legacy script image that mkimage lists, naming mmc 0:1', async () => {
    const i = built.get('buildroot-bootscr-32768-4k')!;
    const scr = join(work, 'boot.scr');
    const m = await sh('mcopy', ['-n', '-i', `${i.path}@@${32768 * 512}`, '::/boot.scr', scr]);
    expect(m.code, m.err).toBe(0);
    const l = await sh('mkimage', ['-l', scr]);
    expect(l.out).toMatch(/Image Type:\s+AArch64 Linux Script/);
    expect(l.out).toMatch(/Created:\s+Tue Nov 14 22:13:20 2023/);
    const body = fs.readFileSync(scr, 'latin1');
    expect(body).toContain('fatload mmc 0:1 ${kernel_addr_r} Image');
    expect(body).toContain('root=/dev/mmcblk0p2 rootwait');
    expect(i.rootfs.blockSize).toBe(4096);
  });

  it('Armbian (Rockchip): idbloader at 64, u-boot.itb (FDT magic) at 16384, root at 32768, 4 KiB blocks', async () => {
    const i = built.get('armbian-rockchip-32768')!;
    expect(i.partitions).toEqual([expect.objectContaining({ number: 1, start: 32768, type: '83', fs: 'ext4' })]);
    expect(i.rawRegions.map((r) => [r.name, r.offset / 512])).toEqual([['idbloader.img', 64], ['u-boot.itb', 16384]]);
    expect(readAt(i.path, 16384 * 512, 4).readUInt32BE(0)).toBe(0xd00dfeed);
    expect(i.rootfs.blockSize).toBe(4096);
    expect(i.size % (1 << 20)).toBe(0);
  });

  it('Armbian (sunxi): SPL at 8 KiB, root at 8192', () => {
    const i = built.get('armbian-sunxi-8192')!;
    expect(i.partitions[0]!.start).toBe(8192);
    expect(i.rawRegions.map((r) => r.offset)).toEqual([8192]);
    expect(readAt(i.path, 8192 + 4, 8).toString('latin1')).toBe('eGON.BT0');
  });

  it.each(['armbian-rockchip-32768', 'armbian-sunxi-8192'])('%s: merged /usr, /boot symlinks, boot.scr from boot.cmd, UUIDs agree', async (name) => {
    const i = built.get(name)!;
    const out = await debugfs(rootArg(i), 'stat /bin', 'stat /sbin', 'stat /lib', 'stat /boot/Image', 'stat /boot/uInitrd', 'stat /boot/dtb',
      'cat /boot/armbianEnv.txt', 'cat /etc/fstab', 'stat /usr/bin/busybox');
    const blocks = out.split(/^debugfs: /m).slice(1);
    for (let k = 0; k < 6; k++) expect(blocks[k], blocks[k]!.split('\n')[0]).toMatch(/Type: symlink/);
    expect(blocks[0]).toMatch(/Fast link dest: "usr\/bin"/);
    expect(blocks[3]).toMatch(/Fast link dest: "vmlinuz-6\.6\.16-current-/);
    expect(blocks[5]).toMatch(/Fast link dest: "dtb-6\.6\.16-current-/);
    expect(blocks[6]).toContain(`rootdev=UUID=${i.rootfs.uuid}`);
    expect(blocks[7]).toContain(`UUID=${i.rootfs.uuid} / ext4`);
    expect(blocks[8]).toMatch(/Type: regular/);
    expect(Object.keys(i.bootSymlinks).sort()).toEqual(['/boot/Image', '/boot/dtb', '/boot/uInitrd']);
    const cmd = fs.readFileSync(join(i.rootfsTree, 'boot/boot.cmd'), 'utf8');
    expect(cmd).toContain('load ${devtype} ${devnum} ${load_addr} ${prefix}armbianEnv.txt');
    expect(cmd).toContain('env import -t ${load_addr} ${filesize}');
    expect(cmd).toContain('setenv bootargs "root=${rootdev} rootwait');
    expect(cmd).not.toContain("'"); // U-Boot hush and apostrophes do not mix
    const scr = fs.readFileSync(join(i.rootfsTree, 'boot/boot.scr'));
    expect(scr.readUInt32BE(0)).toBe(0x27051956); // legacy image magic
    expect(scr.subarray(64 + 8).toString('utf8')).toContain(cmd.trim().split('\n').pop()!);
    const ui = fs.readFileSync(join(i.rootfsTree, 'boot', i.bootSymlinks['/boot/uInitrd']!));
    expect(ui.readUInt32BE(0)).toBe(0x27051956);
  });

  it('EFI: ESP at 64 with GRUB and grub.cfg; root type GUID as asked; generic type and ESP at 2048 variant', async () => {
    const a = built.get('efi-x86_64-esp64')!;
    const b = built.get('efi-x86_64-esp2048-generic')!;
    expect(a.partitions.map((p) => [p.start, p.type])).toEqual([[64, GUID.esp], [64 + a.partitions[0]!.size, GUID.rootX86_64]]);
    expect(b.partitions.map((p) => [p.start, p.type])).toEqual([[2048, GUID.esp], [2048 + b.partitions[0]!.size, GUID.linux]]);
    const efi = join(work, 'BOOTX64.EFI');
    expect((await sh('mcopy', ['-n', '-i', `${a.path}@@${64 * 512}`, '::/EFI/BOOT/BOOTX64.EFI', efi])).code).toBe(0);
    const bin = fs.readFileSync(efi);
    expect(bin.toString('latin1', 0, 2)).toBe('MZ');
    if (a.grubReal) expect(bin.includes(Buffer.from('/EFI/BOOT'))).toBe(true);
    expect(a.bootConfig.text).toContain(`search --no-floppy --fs-uuid --set=root ${a.rootfs.uuid}`);
    expect(a.bootConfig.text).toMatch(/linux \/boot\/vmlinuz root=PARTUUID=[0-9a-f-]{36} /);
    const out = await debugfs(rootArg(a), 'stat /boot/vmlinuz', 'stat /boot/initrd.img', 'ls /boot/efi');
    expect(out.split(/^debugfs: /m).slice(1, 3).every((s) => /Type: regular/.test(s))).toBe(true);
    // backup GPT right after the last partition, as genimage does
    expect(a.size).toBe((a.partitions[1]!.start + a.partitions[1]!.size + 33) * 512);
  });

  it('EFI variants: kernel on the ESP (Buildroot bzImage), arm64 with BOOTAA64.EFI and the arm64 root type', () => {
    const esp = built.get('efi-x86_64-kernel-on-esp')!;
    expect(esp.bootFiles).toEqual(expect.arrayContaining(['/bzImage', '/initrd.img']));
    expect(esp.bootConfig.text).toMatch(/linux \/bzImage root=PARTUUID=/);
    expect(fs.existsSync(join(esp.rootfsTree, 'boot/vmlinuz'))).toBe(false);
    const arm = built.get('efi-arm64')!;
    expect(arm.bootFiles).toContain('/EFI/BOOT/BOOTAA64.EFI');
    expect(arm.partitions[1]!.type).toBe(GUID.rootArm64);
    expect(arm.bootConfig.text).toContain('console=ttyAMA0,115200');
  });

  it('RockPro64 GPT: loader1/loader2 are GPT partitions holding idbloader/u-boot.itb; boot is FAT; root is p4', async () => {
    const i = built.get('rockpro64-gpt')!;
    const j = (await sfdiskJson(i.path)).partitiontable;
    expect(j.partitions.map((p) => [p.name, p.start])).toEqual([['loader1', 64], ['loader2', 16384], ['boot', 32768], ['rootfs', 32768 + i.partitions[2]!.size]]);
    expect(j.partitions[2]!.attrs).toBe('LegacyBIOSBootable');
    expect(i.rawRegions.map((r) => r.offset / 512)).toEqual([64, 16384]);
    expect(i.rootPartition).toBe(4);
    expect(i.rootSpec).toBe('/dev/mmcblk1p4');
    // The loaders carry the Linux data GUID (genimage's default) but hold no filesystem.
    expect(i.partitions[0]!.type).toBe(GUID.linux);
    expect((await sh('dumpe2fs', ['-h', `${i.path}?offset=${64 * 512}`])).code).not.toBe(0);
  });
});

describe('damaged twins fail the same checks', () => {
  it('a flipped raw byte, a moved partition, a broken superblock, a broken GPT are all caught', async () => {
    const src = built.get('armbian-rockchip-32768')!;
    const copy = join(work, 'twin.img');
    await sh('cp', ['--sparse=always', src.path, copy]);
    const twin = { ...src, path: copy };
    // raw region: one byte
    const off = src.rawRegions[1]!.offset + 1000;
    const fd = fs.openSync(copy, 'r+');
    fs.writeSync(fd, Buffer.from([readAt(copy, off, 1)[0]! ^ 1]), 0, 1, off);
    fs.closeSync(fd);
    expect(() => check.raw(twin)).toThrow();
    // table: description says 32768, disk says 32769
    const moved = await execa('sfdisk', ['--no-reread', '--no-tell-kernel', '-q', copy], { input: 'label: dos\nlabel-id: 0x' + src.diskId + '\nstart=32769, type=83\n', reject: false });
    expect(moved.exitCode).toBe(0);
    await expect(check.table(twin)).rejects.toThrow();
  });

  it('bad inputs: each is what it says (real tools reject it), and they are listed with an expected reason', async () => {
    const dir = join(work, 'bad');
    const t0 = performance.now();
    const bad = await badImages(dir);
    timing.push(`${'badImages (all)'.padEnd(30)} ${String(Math.round(performance.now() - t0)).padStart(6)} ms`);
    const by = Object.fromEntries(bad.map((b) => [b.name, b])) as Record<string, BadImage>;
    expect(Object.keys(by).sort()).toEqual([
      'bare-ext4', 'corrupt-ext4-superblock', 'gpt-backup-only', 'gpt-bad-entries-crc', 'gpt-bad-header-crc', 'gpt-out-of-range',
      'gpt-over-table', 'gpt-overlap', 'gpt-smaller-than-table', 'mbr-extended', 'mbr-full', 'mbr-out-of-range', 'mbr-over-table',
      'mbr-overlap', 'no-linux-rootfs', 'protective-mbr-no-gpt', 'random-junk', 'tiny', 'truncated', 'truncated-xz', 'zero-length',
    ]);
    for (const b of bad) { expect(fs.existsSync(b.path), b.name).toBe(true); expect(b.expect.length).toBeGreaterThan(3); }
    const size = (n: string) => fs.statSync(by[n]!.path).size;
    expect(size('zero-length')).toBe(0);
    expect(size('tiny')).toBeLessThan(512);
    expect(size('truncated') % 512).not.toBe(0);
    expect(readAt(by['random-junk']!.path, 510, 2).readUInt16LE(0)).not.toBe(0xaa55);
    expect(readAt(by['bare-ext4']!.path, 510, 2).readUInt16LE(0)).not.toBe(0xaa55);
    expect((await sh('e2fsck', ['-fn', by['bare-ext4']!.path])).code).toBe(0); // a valid fs, just not a disk

    // sfdisk sees the MBR problems
    const ov = await sh('sfdisk', ['--verify', by['mbr-overlap']!.path]);
    expect(ov.out + ov.err).toMatch(/overlap/i);
    const tr = await sh('sfdisk', ['--verify', by['truncated']!.path]);
    expect(tr.out + tr.err).toMatch(/greater than the maximum/);
    // sfdisk --verify does not look past the device end; the table says so plainly though
    const oor = (await sfdiskJson(by['mbr-out-of-range']!.path)).partitiontable.partitions[1]!;
    expect(oor.start * 512).toBeGreaterThan(size('mbr-out-of-range'));
    // sgdisk names each GPT problem (its -v still ends "No problems found" after loading the backup)
    const gptSays: Record<string, RegExp[]> = {
      'gpt-bad-header-crc': [/Main header: ERROR/, /Main partition table: OK/, /Backup header: OK/],
      'gpt-bad-entries-crc': [/Main header: OK/, /Main partition table: ERROR/, /Backup partition table: OK/],
      'gpt-backup-only': [/Main header: ERROR/, /Main partition table: ERROR/, /Backup header: OK/],
      'gpt-overlap': [/partitions 2 and 1 overlap/],
      'gpt-out-of-range': [/partition 2 is too big for the disk/],
      'gpt-over-table': [/Main partition table overlaps the first partition/],
      'gpt-smaller-than-table': [/Disk size is smaller than the main header indicates/],
      'protective-mbr-no-gpt': [/Creating new GPT entries in memory/],
    };
    for (const [n, res] of Object.entries(gptSays)) {
      const v = await sh('sgdisk', ['-v', by[n]!.path]);
      for (const re of res) expect(v.out + v.err, n).toMatch(re);
    }
    const good = await sh('sgdisk', ['-v', built.get('efi-x86_64-esp64')!.path]);
    for (const re of Object.values(gptSays).flat().filter((r) => !/: OK/.test(r.source))) expect(good.out + good.err).not.toMatch(re);
    // e2fsck sees the superblock
    const sb = await sh('e2fsck', ['-fn', `${by['corrupt-ext4-superblock']!.path}?offset=${(await sfdiskJson(by['corrupt-ext4-superblock']!.path)).partitiontable.partitions[1]!.start * 512}`]);
    expect(sb.code).not.toBe(0);
    expect(sb.out + sb.err).toMatch(/superblock/i);
    // shapes
    const ext = (await sfdiskJson(by['mbr-extended']!.path)).partitiontable.partitions;
    expect(ext.map((p) => p.type)).toEqual(['c', '83', '83', '5', '83', '82']);
    const full = (await sfdiskJson(by['mbr-full']!.path)).partitiontable.partitions;
    expect(full.length).toBe(4);
    const fat = (await sfdiskJson(by['no-linux-rootfs']!.path)).partitiontable.partitions;
    expect(fat.map((p) => p.type)).toEqual(['c']);
    const xz = await sh('xz', ['-t', by['truncated-xz']!.path]);
    expect(xz.code).not.toBe(0);
    expect(xz.err.toLowerCase()).toContain(by['truncated-xz']!.expect);
  });
});

describe('determinism and cache', () => {
  it.each([
    ['buildroot', (d: string) => buildBuildrootImage(d, { spl: true })],
    ['armbian', (d: string) => buildArmbianImage(d)],
    ['efi', (d: string) => buildEfiImage(d)],
    ['rockpro64-gpt', (d: string) => buildRockpro64GptImage(d)],
  ] as const)('%s: two cold builds (cache off) give the same sha256 as the cached one', async (kind, build) => {
    const cachedImg = await build(join(work, `det-${kind}-c`));
    const prev = process.env.OTAPACK_FIXTURE_NOCACHE;
    process.env.OTAPACK_FIXTURE_NOCACHE = '1';
    try {
      const t0 = performance.now();
      const a = await build(join(work, `det-${kind}-a`));
      const ms = Math.round(performance.now() - t0);
      await new Promise((r) => setTimeout(r, 1100)); // a different second on the host clock
      const b = await build(join(work, `det-${kind}-b`));
      timing.push(`${`${kind} (cold, no cache)`.padEnd(30)} ${String(ms).padStart(6)} ms`);
      expect(a.cached).toBe(false);
      expect(a.sha256).toBe(b.sha256);
      expect(a.sha256).toBe(cachedImg.sha256);
      const onDisk = createHash('sha256').update(fs.readFileSync(b.path)).digest('hex');
      expect(onDisk).toBe(b.sha256);
    } finally {
      if (prev === undefined) delete process.env.OTAPACK_FIXTURE_NOCACHE; else process.env.OTAPACK_FIXTURE_NOCACHE = prev;
    }
  });

  it('a second call is a cache hit and a different option set is a different image', async () => {
    const a = await buildBuildrootImage(join(work, 'cache'), { bootKind: 'extlinux' });
    expect(a.cached).toBe(true);
    const b = await buildBuildrootImage(join(work, 'cache'), { bootKind: 'extlinux', rootfsExtra: { '/etc/motd': 'hi\n' } });
    expect(b.sha256).not.toBe(a.sha256);
    expect(b.key).not.toBe(a.key);
    expect(fs.readFileSync(join(b.rootfsTree, 'etc/motd'), 'utf8')).toBe('hi\n');
  });
});

describe('examples/build-sample-image.sh', () => {
  it('builds a valid, reproducible Buildroot-style sdcard.img in a few seconds', async () => {
    const script = fileURLToPath(new URL('../examples/build-sample-image.sh', import.meta.url));
    const run = async (d: string) => {
      const t0 = performance.now();
      const r = await execa('bash', [script, d], { reject: false, encoding: 'utf8' });
      return { ...r, ms: Math.round(performance.now() - t0) };
    };
    const [a, b] = [join(work, 'sample-a'), join(work, 'sample-b')];
    const ra = await run(a);
    expect(ra.exitCode, String(ra.stderr)).toBe(0);
    expect(String(ra.stdout)).toMatch(/^built .*sdcard\.img in \d+ ms/);
    timing.push(`${'examples/build-sample-image.sh'.padEnd(30)} ${String(ra.ms).padStart(6)} ms`);
    const rb = await run(b);
    expect(rb.exitCode).toBe(0);
    const img = join(a, 'sdcard.img');
    const s = (p: string) => createHash('sha256').update(fs.readFileSync(p)).digest('hex');
    expect(s(img)).toBe(s(join(b, 'sdcard.img')));
    const j = (await sfdiskJson(img)).partitiontable;
    expect(j.partitions.map((p) => [p.start, p.type])).toEqual([[2048, 'c'], [34816, '83']]);
    await check.verify({ path: img, table: 'mbr' });
    await check.ext4(`${img}?offset=${34816 * 512}`);
    const m = await sh('mdir', ['-b', '-i', `${img}@@${2048 * 512}`, '::/']);
    expect(m.out).toContain('boot.scr');
    expect(await debugfs(`${img}?offset=${34816 * 512}`, 'cat /etc/fstab')).toMatch(/^\/dev\/root\s+\/\s+ext2\s+rw,noauto/m);
  });
});
