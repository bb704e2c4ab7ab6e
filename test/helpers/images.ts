// Realistic input images, built rootlessly with the real tools (mke2fs -d, mkfs.vfat, mtools,
// sfdisk, mkimage), deterministic (fixed UUIDs, hash seeds, volume ids and timestamps) and in
// the variants real images come in: p1 at sector 1, 64, 2128, 2048 or 32768; raw boot loader
// bytes before p1; 1 KiB-block ext4 with metadata_csum and no 64bit; Armbian's /boot full of
// symlinks and rootdev=UUID=; GPT/EFI with root=PARTUUID=; boot loaders as GPT partitions.
import { execa, execaSync } from 'execa';
import { mkdirSync, writeFileSync, symlinkSync, linkSync, existsSync, renameSync, rmSync, readFileSync, mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';

export const T = 1700000000;
const ENV = { E2FSPROGS_FAKE_TIME: String(T), SOURCE_DATE_EPOCH: String(T), MTOOLS_SKIP_CHECK: '1', LC_ALL: 'C' };
const sh = (cmd: string, args: string[], o: { input?: string | Buffer; cwd?: string } = {}) => execa(cmd, args, { env: ENV, ...o });

export interface FixtureImage {
  path: string;
  layout: 'buildroot' | 'armbian' | 'efi' | 'rockpro64-gpt';
  table: 'mbr' | 'gpt';
  partitions: { number: number; start: number; size: number; type: string }[];
  rootPartition: number;
  bootPartition?: number;
  rawRegions: { offset: number; length: number; sha256: string }[];
  rootfsTree: string;
  rootSpec: string;
  rootUuid: string;
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** Deterministic pseudo-random bytes (incompressible payload for realistic sizes). */
export function prng(n: number, seed = 1): Buffer {
  const b = Buffer.alloc(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    b[i] = x & 0xff;
  }
  return b;
}

/** A BusyBox-style root tree with the corner cases a converter must preserve. */
export function makeRootTree(dir: string, o: { mergedUsr?: boolean; fstab: string; extra?: Record<string, string>; blobBytes?: number } ): string {
  const p = (...s: string[]): string => join(dir, ...s);
  for (const d of ['etc/init.d', 'usr/bin', 'usr/sbin', 'usr/lib', 'boot', 'dev', 'proc', 'sys', 'tmp', 'var/log', 'root', 'home/user/deep/a/b/c', 'empty']) mkdirSync(p(d), { recursive: true });
  if (o.mergedUsr) {
    for (const d of ['bin', 'sbin', 'lib']) symlinkSync(`usr/${d}`, p(d));
    mkdirSync(p('usr/lib'), { recursive: true });
  } else {
    for (const d of ['bin', 'sbin', 'lib']) mkdirSync(p(d), { recursive: true });
  }
  writeFileSync(p('bin/busybox'), readFileSync('/bin/busybox'));
  for (const a of ['sh', 'ls', 'cat', 'mount', 'echo', 'sed']) symlinkSync('busybox', p('bin', a));
  symlinkSync('../bin/busybox', p('sbin/init'));
  writeFileSync(p('etc/fstab'), o.fstab);
  writeFileSync(p('etc/inittab'), '::sysinit:/etc/init.d/rcS\n::shutdown:/bin/umount -a -r\n');
  writeFileSync(p('etc/init.d/rcS'), '#!/bin/sh\nfor i in /etc/init.d/S??*; do [ -x "$i" ] && "$i" start; done\n', { mode: 0o755 });
  writeFileSync(p('etc/os-release'), 'NAME=Buildroot\nVERSION_ID=2024.02\nID=buildroot\n');
  writeFileSync(p('etc/hostname'), 'otapack-fixture\n');
  writeFileSync(p('etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n');
  writeFileSync(p('etc/group'), 'root:x:0:\nuser:x:1000:\n');
  writeFileSync(p('home/user/deep/a/b/c/file with spaces.txt'), 'spaces\n');
  writeFileSync(p('usr/lib/libdata.so'), prng(o.blobBytes ?? 2 << 20, 7));
  linkSync(p('usr/lib/libdata.so'), p('usr/lib/libdata-hardlink.so'));
  symlinkSync('/etc/os-release', p('usr/lib/os-release-abs'));
  symlinkSync('../../etc/hostname', p('usr/lib/hostname-rel'));
  writeFileSync(p('var/log/zeros.log'), Buffer.alloc(256 * 1024));
  execaSync('mkfifo', [p('tmp/fifo')]);
  for (const [k, v] of Object.entries(o.extra ?? {})) {
    mkdirSync(join(dir, k, '..'), { recursive: true });
    writeFileSync(join(dir, k), v);
  }
  return dir;
}

async function mkext4(image: string, tree: string, sizeMiB: number, o: { blockSize: 1024 | 4096; uuid: string; features?: string; label?: string }): Promise<void> {
  const args = ['-q', '-F', '-t', 'ext4', '-b', String(o.blockSize), '-U', o.uuid, '-E', 'root_owner=0:0,hash_seed=5b4e2c1a-1d6e-4f0e-9a3b-7c2d1e0f9a8b', '-d', tree];
  if (o.features) args.push('-O', o.features);
  if (o.label) args.push('-L', o.label);
  await sh('mke2fs', [...args, image, `${sizeMiB}M`]);
}

async function mkfat(image: string, files: Record<string, string | Buffer>, sizeMiB: number, label = 'BOOT'): Promise<void> {
  writeFileSync(image, '');
  await sh('truncate', ['-s', `${sizeMiB}M`, image]);
  await sh('mkfs.vfat', ['--invariant', '-i', '1234abcd', '-n', label, image]);
  const stage = mkdtempSync(join(tmpdir(), 'fat-'));
  try {
    for (const [name, data] of Object.entries(files)) {
      const parts = name.split('/').filter(Boolean);
      for (let i = 1; i < parts.length; i++) await sh('mmd', ['-D', 's', '-i', image, `::/${parts.slice(0, i).join('/')}`], {}).catch(() => {});
      const f = join(stage, 'f');
      writeFileSync(f, data);
      await execa('touch', ['-d', `@${T}`, f]);
      await sh('mcopy', ['-m', '-o', '-i', image, f, `::/${name}`]);
    }
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
}

async function mkscr(text: string): Promise<Buffer> {
  const d = mkdtempSync(join(tmpdir(), 'scr-'));
  try {
    writeFileSync(join(d, 'boot.cmd'), text);
    await sh('mkimage', ['-A', 'arm64', '-O', 'linux', '-T', 'script', '-C', 'none', '-n', 'boot script', '-d', join(d, 'boot.cmd'), join(d, 'boot.scr')]);
    return readFileSync(join(d, 'boot.scr'));
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
}

async function place(disk: string, part: string, startSector: number): Promise<void> {
  await sh('dd', [`if=${part}`, `of=${disk}`, 'bs=512', `seek=${startSector}`, 'conv=notrunc,sparse', 'status=none']);
}

async function sfdisk(disk: string, script: string): Promise<void> {
  await sh('sfdisk', ['-q', '--no-reread', '--no-tell-kernel', disk], { input: script });
}

function rawRegion(disk: string, offset: number, data: Buffer): { offset: number; length: number; sha256: string } {
  const fd = readFileSync(disk);
  data.copy(fd, offset);
  writeFileSync(disk, fd);
  return { offset, length: data.length, sha256: sha(data) };
}

/** Builds into a cache folder keyed by the options; concurrent builders race safely (rename). */
async function cached(key: string, build: (dir: string) => Promise<FixtureImage>): Promise<FixtureImage> {
  const root = join(process.env.OTAPACK_FIXTURES ?? join(tmpdir(), 'otapack-fixtures-v1'));
  const dir = join(root, createHash('sha256').update(key).digest('hex').slice(0, 16));
  const meta = join(dir, 'fixture.json');
  if (existsSync(meta)) return JSON.parse(readFileSync(meta, 'utf8')) as FixtureImage;
  mkdirSync(root, { recursive: true });
  const tmp = mkdtempSync(join(root, 'build-'));
  const f = await build(tmp);
  const final = { ...f, path: f.path.replace(tmp, dir), rootfsTree: f.rootfsTree.replace(tmp, dir) };
  writeFileSync(join(tmp, 'fixture.json'), JSON.stringify(final));
  try {
    renameSync(tmp, dir);
  } catch {
    rmSync(tmp, { recursive: true, force: true }); // another worker won
  }
  return JSON.parse(readFileSync(meta, 'utf8')) as FixtureImage;
}

export interface BuildrootOptions {
  p1StartSector?: number;
  blockSize?: 1024 | 4096;
  rootfsMiB?: number;
  bootKind?: 'boot.scr' | 'extlinux' | 'cmdline.txt';
  spl?: boolean;
  kernel?: string;
  initrd?: string;
  unalignedSize?: boolean;
  rootSpec?: 'device' | 'partuuid';
  extra?: Record<string, string>;
  blobBytes?: number;
}

export function buildBuildrootImage(o: BuildrootOptions = {}): Promise<FixtureImage> {
  return cached(`buildroot:${JSON.stringify(o)}`, async (dir) => {
    const p1 = o.p1StartSector ?? 2048;
    const bootMiB = 16;
    const rootMiB = o.rootfsMiB ?? 48;
    const rootUuid = '2f4a6b8c-1d3e-4f50-8a1b-2c3d4e5f6a7b';
    const tree = makeRootTree(join(dir, 'rootfs'), { fstab: '/dev/root\t/\text2\trw,noauto\t0\t1\nproc\t/proc\tproc\tdefaults\t0\t0\n', extra: o.extra, blobBytes: o.blobBytes });
    const rootfs = join(dir, 'rootfs.ext4');
    await mkext4(rootfs, tree, rootMiB, { blockSize: o.blockSize ?? 1024, uuid: rootUuid, features: '^64bit,metadata_csum' });
    const diskId = '0x5eed0001';
    const partuuid = `5eed0001-02`;
    const rootArg = o.rootSpec === 'partuuid' ? `PARTUUID=${partuuid}` : '/dev/mmcblk0p2';
    const kernel = o.kernel ? readFileSync(o.kernel) : prng(1 << 20, 3);
    const files: Record<string, string | Buffer> = { Image: kernel, 'qemu-virt.dtb': prng(4096, 4) };
    if (o.initrd) files['initrd'] = readFileSync(o.initrd);
    const kind = o.bootKind ?? 'boot.scr';
    const initrdLoad = o.initrd ? 'load ${devtype} ${devnum}:1 ${ramdisk_addr_r} initrd\nsetenv rd ${ramdisk_addr_r}:${filesize}\n' : 'setenv rd -\n';
    if (kind === 'boot.scr') {
      files['boot.cmd'] = `setenv bootargs console=ttyAMA0 root=${rootArg} rootwait panic=5\nload \${devtype} \${devnum}:1 \${kernel_addr_r} Image\n${initrdLoad}booti \${kernel_addr_r} \${rd} \${fdt_addr}\n`;
      files['boot.scr'] = await mkscr(files['boot.cmd'] as string);
    } else if (kind === 'extlinux') {
      files['extlinux/extlinux.conf'] = `default buildroot\nlabel buildroot\n  kernel /Image\n${o.initrd ? '  initrd /initrd\n' : ''}  fdtdir /\n  append console=ttyAMA0 root=${rootArg} rootwait\n`;
    } else {
      files['config.txt'] = 'kernel=Image\narm_64bit=1\n';
      files['cmdline.txt'] = `console=ttyAMA0 root=${rootArg} rootwait\n`;
    }
    const boot = join(dir, 'boot.vfat');
    await mkfat(boot, files, bootMiB);
    const img = join(dir, 'sdcard.img');
    const rootStart = p1 + bootMiB * 2048;
    let total = (rootStart + rootMiB * 2048) * 512;
    if (o.unalignedSize) total += 3 * 512 + 77 * 512;
    writeFileSync(img, '');
    await sh('truncate', ['-s', String(total), img]);
    await sfdisk(img, `label: dos\nlabel-id: ${diskId}\nstart=${p1}, size=${bootMiB * 2048}, type=c, bootable\nstart=${rootStart}, size=${rootMiB * 2048}, type=83\n`);
    await place(img, boot, p1);
    await place(img, rootfs, rootStart);
    const rawRegions = o.spl ? [rawRegion(img, 8192, Buffer.concat([Buffer.from('eGON.BT0'), prng(24 * 1024, 11)]))] : [];
    rmSync(boot);
    rmSync(rootfs);
    return {
      path: img, layout: 'buildroot', table: 'mbr', rootPartition: 2, bootPartition: 1, rawRegions, rootfsTree: tree, rootSpec: rootArg, rootUuid,
      partitions: [{ number: 1, start: p1 * 512, size: bootMiB << 20, type: '0x0c' }, { number: 2, start: rootStart * 512, size: rootMiB << 20, type: '0x83' }],
    };
  });
}

export function buildArmbianImage(o: { rootStartSector?: 8192 | 32768; rootfsMiB?: number; kernel?: string; initrd?: string; blobBytes?: number } = {}): Promise<FixtureImage> {
  return cached(`armbian:${JSON.stringify(o)}`, async (dir) => {
    const start = o.rootStartSector ?? 32768;
    const rootMiB = o.rootfsMiB ?? 64;
    const rootUuid = '8a7b6c5d-4e3f-4a1b-9c2d-3e4f5a6b7c8d';
    const tree = makeRootTree(join(dir, 'rootfs'), { mergedUsr: true, fstab: `UUID=${rootUuid} / ext4 defaults,noatime,commit=600,errors=remount-ro 0 1\ntmpfs /tmp tmpfs defaults,nosuid 0 0\n`, blobBytes: o.blobBytes });
    const b = (...s: string[]): string => join(tree, 'boot', ...s);
    const kernel = o.kernel ? readFileSync(o.kernel) : prng(1 << 20, 5);
    writeFileSync(b('vmlinuz-6.6.16-current-rockchip64'), kernel);
    writeFileSync(b('uInitrd-6.6.16-current-rockchip64'), o.initrd ? readFileSync(o.initrd) : prng(256 * 1024, 6));
    mkdirSync(b('dtb-6.6.16-current-rockchip64/rockchip'), { recursive: true });
    writeFileSync(b('dtb-6.6.16-current-rockchip64/rockchip/rk3399-rockpro64.dtb'), prng(8192, 9));
    symlinkSync('vmlinuz-6.6.16-current-rockchip64', b('Image'));
    symlinkSync('uInitrd-6.6.16-current-rockchip64', b('uInitrd'));
    symlinkSync('dtb-6.6.16-current-rockchip64', b('dtb'));
    writeFileSync(b('armbianEnv.txt'), `verbosity=1\nbootlogo=false\noverlay_prefix=rockchip\nfdtfile=rockchip/rk3399-rockpro64.dtb\nrootdev=UUID=${rootUuid}\nrootfstype=ext4\nusbstoragequirks=0x2537:0x1066:u\n`);
    const cmd = [
      '# DO NOT EDIT THIS FILE',
      'setenv load_addr "0x9000000"',
      'setenv overlay_error "false"',
      'setenv rootdev "/dev/mmcblk0p1"',
      'setenv verbosity "1"',
      'setenv console "both"',
      'setenv rootfstype "ext4"',
      'echo "Boot script loaded from ${devtype} ${devnum}"',
      'if test -e ${devtype} ${devnum} ${prefix}armbianEnv.txt; then',
      '\tload ${devtype} ${devnum} ${load_addr} ${prefix}armbianEnv.txt',
      '\tenv import -t ${load_addr} ${filesize}',
      'fi',
      'if test "${console}" = "serial" || test "${console}" = "both"; then setenv consoleargs "console=ttyS2,1500000 ${consoleargs}"; fi',
      'setenv bootargs "root=${rootdev} rootwait rootfstype=${rootfstype} ${consoleargs} consoleblank=0 loglevel=${verbosity} ${extraargs}"',
      'load ${devtype} ${devnum} ${ramdisk_addr_r} ${prefix}uInitrd',
      'load ${devtype} ${devnum} ${kernel_addr_r} ${prefix}Image',
      'load ${devtype} ${devnum} ${fdt_addr_r} ${prefix}dtb/${fdtfile}',
      'booti ${kernel_addr_r} ${ramdisk_addr_r} ${fdt_addr_r}',
      '',
    ].join('\n');
    writeFileSync(b('boot.cmd'), cmd);
    writeFileSync(b('boot.scr'), await mkscr(cmd));
    const rootfs = join(dir, 'rootfs.ext4');
    await mkext4(rootfs, tree, rootMiB, { blockSize: 4096, uuid: rootUuid, label: 'armbi_root' });
    const img = join(dir, 'Armbian_rockpro64.img');
    writeFileSync(img, '');
    await sh('truncate', ['-s', String((start + rootMiB * 2048) * 512), img]);
    await sfdisk(img, `label: dos\nlabel-id: 0x4a7f2b1c\nstart=${start}, size=${rootMiB * 2048}, type=83\n`);
    await place(img, rootfs, start);
    rmSync(rootfs);
    const rawRegions = [
      rawRegion(img, 64 * 512, Buffer.concat([Buffer.from('RK33'), prng(150 * 1024, 21)])),
      ...(start > 16384 ? [rawRegion(img, 16384 * 512, Buffer.concat([Buffer.from('\xd0\x0d\xfe\xed', 'latin1'), prng(900 * 1024, 22)]))] : []),
    ];
    return {
      path: img, layout: 'armbian', table: 'mbr', rootPartition: 1, rawRegions, rootfsTree: tree, rootSpec: `UUID=${rootUuid}`, rootUuid,
      partitions: [{ number: 1, start: start * 512, size: rootMiB << 20, type: '0x83' }],
    };
  });
}

const ESP_GUID = 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B';

export function buildEfiImage(o: { espStartSector?: 64 | 2048; rootType?: 'linux-generic' | 'linux-root-x86-64'; kernel?: string; initrd?: string; rootfsMiB?: number; blobBytes?: number } = {}): Promise<FixtureImage> {
  return cached(`efi:${JSON.stringify(o)}`, async (dir) => {
    const esp = o.espStartSector ?? 64;
    const espMiB = 32;
    const rootMiB = o.rootfsMiB ?? 64;
    const rootStart = Math.ceil((esp + espMiB * 2048) / 2048) * 2048;
    const rootPartuuid = '6c1e4b2a-9f3d-4e8a-b7c6-5d4e3f2a1b0c';
    const rootUuid = '1b2c3d4e-5f60-4718-8293-a4b5c6d7e8f9';
    const tree = makeRootTree(join(dir, 'rootfs'), { fstab: `PARTUUID=${rootPartuuid} / ext4 defaults 0 1\n`, blobBytes: o.blobBytes });
    writeFileSync(join(tree, 'boot/vmlinuz'), o.kernel ? readFileSync(o.kernel) : prng(1 << 20, 12));
    writeFileSync(join(tree, 'boot/initrd.img'), o.initrd ? readFileSync(o.initrd) : prng(128 * 1024, 13));
    const grubCfg = `set timeout=0\nset default=0\nmenuentry "Buildroot" {\n  search --no-floppy --fs-uuid --set=root ${rootUuid}\n  linux /boot/vmlinuz root=PARTUUID=${rootPartuuid} rootwait console=ttyS0 panic=5\n  initrd /boot/initrd.img\n}\n`;
    const efiBin = existsSync('/usr/lib/grub/x86_64-efi') ? await grubStandalone(dir) : prng(64 * 1024, 14);
    const espImg = join(dir, 'esp.vfat');
    await mkfat(espImg, { 'EFI/BOOT/BOOTX64.EFI': efiBin, 'EFI/BOOT/grub.cfg': grubCfg }, espMiB, 'ESP');
    const rootfs = join(dir, 'rootfs.ext4');
    await mkext4(rootfs, tree, rootMiB, { blockSize: 4096, uuid: rootUuid });
    const img = join(dir, 'pc-efi.img');
    writeFileSync(img, '');
    await sh('truncate', ['-s', String((rootStart + rootMiB * 2048 + 34) * 512), img]);
    const rootType = o.rootType === 'linux-generic' ? '0FC63DAF-8483-4772-8E79-3D69D8477DE4' : '4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709';
    await sfdisk(img, `label: gpt\nlabel-id: 3F1E2D3C-4B5A-4968-8776-655443322110\nfirst-lba: 34\nstart=${esp}, size=${espMiB * 2048}, type=${ESP_GUID}, uuid=0E1D2C3B-4A59-4687-9786-A5B4C3D2E1F0, name="esp"\nstart=${rootStart}, size=${rootMiB * 2048}, type=${rootType}, uuid=${rootPartuuid}, name="root"\n`);
    await place(img, espImg, esp);
    await place(img, rootfs, rootStart);
    rmSync(espImg);
    rmSync(rootfs);
    return {
      path: img, layout: 'efi', table: 'gpt', rootPartition: 2, bootPartition: 1, rawRegions: [], rootfsTree: tree, rootSpec: `PARTUUID=${rootPartuuid}`, rootUuid,
      partitions: [{ number: 1, start: esp * 512, size: espMiB << 20, type: ESP_GUID.toLowerCase() }, { number: 2, start: rootStart * 512, size: rootMiB << 20, type: rootType.toLowerCase() }],
    };
  });
}

async function grubStandalone(dir: string): Promise<Buffer> {
  const out = join(dir, 'BOOTX64.EFI');
  const cfg = join(dir, 'embed.cfg');
  // the embedded config reads grub.cfg next to the EFI binary, as distro images do
  writeFileSync(cfg, 'configfile $cmdpath/grub.cfg\n');
  await sh('grub-mkstandalone', ['-O', 'x86_64-efi', '--modules=part_gpt part_msdos fat ext2 search search_fs_uuid probe loadenv test echo configfile linux normal', '--locales=', '--themes=', '--fonts=', '-o', out, `boot/grub/grub.cfg=${cfg}`]);
  const b = readFileSync(out);
  rmSync(out);
  rmSync(cfg);
  return b;
}

export function buildRockpro64GptImage(o: { rootfsMiB?: number } = {}): Promise<FixtureImage> {
  return cached(`rockpro64:${JSON.stringify(o)}`, async (dir) => {
    const rootMiB = o.rootfsMiB ?? 48;
    const rootUuid = '3c4d5e6f-7081-4293-a4b5-c6d7e8f90a1b';
    const tree = makeRootTree(join(dir, 'rootfs'), { fstab: '/dev/root / ext4 rw 0 1\n' });
    const boot = join(dir, 'boot.vfat');
    const cmd = 'setenv bootargs console=ttyS2,1500000 root=/dev/mmcblk1p4 rootwait\nload ${devtype} ${devnum}:3 ${kernel_addr_r} Image\nbooti ${kernel_addr_r} - ${fdt_addr}\n';
    await mkfat(boot, { Image: prng(1 << 20, 31), 'boot.cmd': cmd, 'boot.scr': await mkscr(cmd) }, 32);
    const rootfs = join(dir, 'rootfs.ext4');
    await mkext4(rootfs, tree, rootMiB, { blockSize: 4096, uuid: rootUuid });
    const img = join(dir, 'rockpro64.img');
    const rootStart = 32768 + 65536;
    writeFileSync(img, '');
    await sh('truncate', ['-s', String((rootStart + rootMiB * 2048 + 34) * 512), img]);
    await sfdisk(img, `label: gpt\nlabel-id: 7A6B5C4D-3E2F-4A1B-8C9D-0E1F2A3B4C5D\nfirst-lba: 34\nstart=64, size=8000, type=8DA63339-0007-60C0-C436-083AC8230908, uuid=11111111-2222-4333-8444-555555555551, name="loader1"\nstart=16384, size=8192, type=8DA63339-0007-60C0-C436-083AC8230908, uuid=11111111-2222-4333-8444-555555555552, name="loader2"\nstart=32768, size=65536, type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7, uuid=11111111-2222-4333-8444-555555555553, name="boot"\nstart=${rootStart}, size=${rootMiB * 2048}, type=B921B045-1DF0-41C3-AF44-4C6F280D3FAE, uuid=11111111-2222-4333-8444-555555555554, name="rootfs"\n`);
    const loaders = [rawRegion(img, 64 * 512, Buffer.concat([Buffer.from('RK33'), prng(200 * 1024, 41)])), rawRegion(img, 16384 * 512, prng(1 << 20, 42))];
    await place(img, boot, 32768);
    await place(img, rootfs, rootStart);
    rmSync(boot);
    rmSync(rootfs);
    return {
      path: img, layout: 'rockpro64-gpt', table: 'gpt', rootPartition: 4, bootPartition: 3, rawRegions: loaders, rootfsTree: tree, rootSpec: '/dev/mmcblk1p4', rootUuid,
      partitions: [{ number: 1, start: 64 * 512, size: 8000 * 512, type: '8da63339-0007-60c0-c436-083ac8230908' }, { number: 2, start: 16384 * 512, size: 8192 * 512, type: '8da63339-0007-60c0-c436-083ac8230908' }, { number: 3, start: 32768 * 512, size: 32 << 20, type: 'ebd0a0a2-b9e5-4433-87c0-68b6b72699c7' }, { number: 4, start: rootStart * 512, size: rootMiB << 20, type: 'b921b045-1df0-41c3-af44-4c6f280d3fae' }],
    };
  });
}
