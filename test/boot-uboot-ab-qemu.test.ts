// The generated U-Boot A/B boot script under real U-Boot (Debian u-boot-qemu, qemu_arm64 build,
// which has no ENV_IS_IN_FAT and no BOOTCOUNT_LIMIT). Each boot is one bounded QEMU run; the env
// file is read back on the host after each boot with mtools + decodeUbootEnv and fw_printenv -c.
// Board steps are stubs that print a marker and power off, so no kernel is needed.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { decodeUbootEnv, encodeUbootEnv } from '../src/boot/uboot-env.js';
import { encodeScriptImage } from '../src/boot/uboot-image.js';
import { generateUbootAbScript, initialUbootAbEnv, type UbootAbOptions } from '../src/boot/uboot-ab.js';
import { buildUbootAbScript, parseAbMarkers } from './helpers/boot-ab.js';
import { SWUPDATE_BOOT_SCHEME } from '../src/clients/swupdate/scheme.js';
import { bootUboot, buildDisk, deleteFatFile, DISK_ID, GPT_PART_GUID, readFatFile, writeFatFile, UBOOT_BIN, type BootRun, type Disk } from './helpers/boot-disk.js';
import { makeTmp, saveArtifact, tool } from './helpers/boot-tools.js';
import { requires } from './helpers/require-tool.js';
import { FAKE_ARM64_KERNEL } from './helpers/boot-fake-kernel.js';
import { ARMBIAN_CMD, ARMBIAN_ENV_TXT } from './helpers/boot-fixtures.js';
import { patchBootScript, patchExtlinuxConf } from '../src/boot/board-script.js';

const haveQemu = requires({ what: 'U-Boot A/B under QEMU', files: [UBOOT_BIN], tools: ['qemu-system-aarch64'], install: 'apt-get install u-boot-qemu qemu-system-arm' });
const tmp = makeTmp('uboot-ab');
const time = 1700000000;
const timings: string[] = [];

afterAll(() => {
  if (timings.length) saveArtifact('boot-uboot-ab-qemu.timings.txt', timings.join('\n') + '\n');
  tmp.cleanup();
});

const scr = (text: string): Buffer => encodeScriptImage(text, 'stub', { time });
/** Board step stub: prints what it sees and powers off (or returns, to simulate a failed boot). */
const stub = (label: string, powerOff = true): Buffer =>
  scr(`echo STUB ${label} rootpart=\${rootpart} root=\${otapack_root} prefix=\${prefix}\n${powerOff ? 'poweroff\n' : ''}`);

function slotFiles(part: number, powerOff = true): Record<string, Buffer> {
  return { 'boot/boot.scr': stub(`slot-script-of-partition-${part}`, powerOff), 'etc/hostname': Buffer.from(`slot${part}\n`) };
}

const base = { scheme: SWUPDATE_BOOT_SCHEME, bootPart: 1, slotA: 2, slotB: 3 } as const; // env file: the default otapack.env

let seq = 0;
async function boot(disk: Disk, name: string, expectPowerOff = true): Promise<BootRun> {
  const run = await bootUboot(disk, 60);
  timings.push(`${name}: ${run.ms} ms${run.timedOut ? ' (timed out)' : ''}`);
  const ok = !run.timedOut && (!expectPowerOff || /poweroff \.\.\.|FAKE-KERNEL/.test(run.log));
  if (!ok) saveArtifact(`boot-uboot-ab-qemu.${++seq}.${name}.log`, run.log);
  expect(run.timedOut, `${name} timed out; log saved in test-artifacts/`).toBe(false);
  return run;
}

function envOf(disk: Disk): { vars: Record<string, string>; crcOk: boolean; fw: Record<string, string> } {
  const buf = readFatFile(disk, 1, 'otapack.env');
  expect(buf, 'otapack.env exists on the boot partition').not.toBeNull();
  const d = decodeUbootEnv(buf!, 0x4000);
  const f = join(tmp.dir, `readback-${++seq}.env`);
  writeFileSync(f, buf!);
  const cfg = `${f}.config`;
  writeFileSync(cfg, `${f} 0x0 0x4000\n`);
  const r = tool('fw_printenv', ['-c', cfg]);
  const fw: Record<string, string> = {};
  if (r.status === 0) for (const l of r.stdout.split('\n')) { const i = l.indexOf('='); if (i > 0) fw[l.slice(0, i)] = l.slice(i + 1); }
  return { vars: d.vars, crcOk: d.crcOk, fw };
}

describe.skipIf(!haveQemu)('U-Boot A/B boot script under QEMU (qemu_arm64 U-Boot 2023.01)', () => {
  let disk: Disk;
  const optsA: UbootAbOptions = { ...base, bootlimit: 3, boardStep: { kind: 'boot-script', file: 'board.scr' } };

  beforeAll(() => {
    disk = buildDisk(tmp.dir, [
      { fs: 'fat', sizeMiB: 8, files: {
        'boot.scr': buildUbootAbScript(optsA, { time }),
        'board.scr': stub('boot-partition-board-script'),
        'otapack.env': encodeUbootEnv(initialUbootAbEnv(optsA)),
      } },
      { fs: 'ext4', sizeMiB: 4, files: slotFiles(2) },
      { fs: 'ext4', sizeMiB: 4, files: slotFiles(3) },
    ]);
  });

  it('default env boots slot A, runs the board script with root=PARTUUID of partition 2, and does not rewrite the file', async () => {
    const before = readFatFile(disk, 1, 'otapack.env')!;
    const run = await boot(disk, 'default-env');
    expect(parseAbMarkers(run.log)).toEqual([{ slot: 'A', partition: 2, bootcount: '0', upgradeAvailable: '0' }]);
    const id = DISK_ID.slice(2);
    expect(run.log).toContain(`STUB boot-partition-board-script rootpart=2 root=PARTUUID=${id}-02`);
    expect(run.log).not.toContain('WARNING');
    expect(run.log).not.toMatch(/bytes written/);
    // negative twin: slot B was not chosen and the file is byte-for-byte unchanged
    expect(run.log).not.toContain('booting slot B');
    expect(readFatFile(disk, 1, 'otapack.env')!.equals(before)).toBe(true);
  });

  it('trial of slot B counts 1, 2, then falls back to slot A with upgrade_available=0 (bootlimit=2)', async () => {
    writeFatFile(disk, 1, 'otapack.env', encodeUbootEnv({ rootpart: '3', upgrade_available: '1', bootcount: '0', bootlimit: '2' }));
    const r1 = await boot(disk, 'trial-1');
    expect(parseAbMarkers(r1.log)).toEqual([{ slot: 'B', partition: 3, bootcount: '1', upgradeAvailable: '1' }]);
    expect(r1.log).toContain(`root=PARTUUID=${DISK_ID.slice(2)}-03`);
    let env = envOf(disk);
    expect(env.crcOk).toBe(true);
    expect(env.vars).toEqual({ rootpart: '3', upgrade_available: '1', bootcount: '1', bootlimit: '2' });
    expect(env.fw).toEqual(env.vars);

    const r2 = await boot(disk, 'trial-2');
    expect(parseAbMarkers(r2.log)).toEqual([{ slot: 'B', partition: 3, bootcount: '2', upgradeAvailable: '1' }]);
    env = envOf(disk);
    expect(env.vars).toEqual({ rootpart: '3', upgrade_available: '1', bootcount: '2', bootlimit: '2' });

    const r3 = await boot(disk, 'trial-3-fallback');
    expect(r3.log).toContain('otapack: partition 3 failed 2 trial boots - falling back');
    expect(parseAbMarkers(r3.log)).toEqual([{ slot: 'A', partition: 2, bootcount: '0', upgradeAvailable: '0' }]);
    expect(r3.log).toContain(`STUB boot-partition-board-script rootpart=2 root=PARTUUID=${DISK_ID.slice(2)}-02`);
    env = envOf(disk);
    expect(env.vars).toEqual({ rootpart: '2', upgrade_available: '0', bootcount: '0', bootlimit: '2', ustate: '3' });
    expect(env.fw).toEqual(env.vars);

    // negative twin: after the fallback, nothing changes any more
    const r4 = await boot(disk, 'after-fallback');
    expect(parseAbMarkers(r4.log)).toEqual([{ slot: 'A', partition: 2, bootcount: '0', upgradeAvailable: '0' }]);
    expect(r4.log).not.toMatch(/bytes written/);
  });

  it('a committed slot B (upgrade_available=0) keeps booting B without counting', async () => {
    writeFatFile(disk, 1, 'otapack.env', encodeUbootEnv({ rootpart: '3', upgrade_available: '0', bootcount: '2', bootlimit: '2', ustate: '1' }));
    const before = readFatFile(disk, 1, 'otapack.env')!;
    const r = await boot(disk, 'committed-b');
    expect(parseAbMarkers(r.log)).toEqual([{ slot: 'B', partition: 3, bootcount: '2', upgradeAvailable: '0' }]);
    expect(readFatFile(disk, 1, 'otapack.env')!.equals(before)).toBe(true);
  });

  it('a corrupt env file boots slot A with a warning and is rewritten with defaults', async () => {
    const good = encodeUbootEnv({ rootpart: '3', upgrade_available: '0', bootcount: '0', bootlimit: '3' });
    const corrupt = Buffer.from(good);
    corrupt[20] ^= 0x55;
    writeFatFile(disk, 1, 'otapack.env', corrupt);
    expect(decodeUbootEnv(corrupt).crcOk).toBe(false);
    const r = await boot(disk, 'corrupt-env');
    expect(r.log).toContain('otapack: WARNING otapack.env on partition 1 is missing or corrupt');
    expect(r.log).toContain('otapack: using the defaults (slot A) and rewriting the file');
    expect(parseAbMarkers(r.log)).toEqual([{ slot: 'A', partition: 2, bootcount: '0', upgradeAvailable: '0' }]);
    const env = envOf(disk);
    expect(env.crcOk).toBe(true);
    expect(env.vars).toEqual({ rootpart: '2', upgrade_available: '0', bootcount: '0', bootlimit: '3' });
    expect(env.fw.rootpart).toBe('2');
  });

  it('a missing env file boots slot A with a warning and is created', async () => {
    deleteFatFile(disk, 1, 'otapack.env');
    expect(readFatFile(disk, 1, 'otapack.env')).toBeNull();
    const r = await boot(disk, 'missing-env');
    expect(r.log).toContain('otapack: WARNING otapack.env on partition 1 is missing or corrupt');
    expect(parseAbMarkers(r.log)).toEqual([{ slot: 'A', partition: 2, bootcount: '0', upgradeAvailable: '0' }]);
    expect(envOf(disk).vars.rootpart).toBe('2');
  });
});

describe.skipIf(!haveQemu)('U-Boot A/B with the board script inside the slot (Armbian style) on GPT', () => {
  it('boots the chosen slot script with prefix /boot/; a trial whose board step returns is reset, counted and rolled back in one QEMU run', async () => {
    const dir = join(tmp.dir, 'gpt');
    tool('mkdir', ['-p', dir]);
    const opts: UbootAbOptions = { ...base, bootlimit: 2, boardStep: { kind: 'slot-script' } };
    const disk = buildDisk(dir, [
      { fs: 'fat', sizeMiB: 8, files: {
        'boot.scr': buildUbootAbScript(opts, { time }),
        'otapack.env': encodeUbootEnv({ rootpart: '3', upgrade_available: '1', bootcount: '0', bootlimit: '2' }),
      } },
      { fs: 'ext4', sizeMiB: 4, files: slotFiles(2) },
      { fs: 'ext4', sizeMiB: 4, files: slotFiles(3, false) }, // slot B "fails": its script returns
    ], 'gpt');
    const r = await boot(disk, 'slot-script-reset-cycle');
    expect(parseAbMarkers(r.log)).toEqual([
      { slot: 'B', partition: 3, bootcount: '1', upgradeAvailable: '1' },
      { slot: 'B', partition: 3, bootcount: '2', upgradeAvailable: '1' },
      { slot: 'A', partition: 2, bootcount: '0', upgradeAvailable: '0' },
    ]);
    const guid3 = GPT_PART_GUID(3).toLowerCase();
    const guid2 = GPT_PART_GUID(2).toLowerCase();
    expect(r.log.toLowerCase()).toContain(`stub slot-script-of-partition-3 rootpart=3 root=partuuid=${guid3} prefix=/boot/`);
    expect(r.log).toContain('otapack: resetting so the failed trial boot is counted');
    expect(r.log.toLowerCase()).toContain(`stub slot-script-of-partition-2 rootpart=2 root=partuuid=${guid2} prefix=/boot/`);
    // negative twin: slot A's script never ran during the trial, slot B's never after the fallback
    const firstA = r.log.indexOf('slot-script-of-partition-2');
    expect(r.log.lastIndexOf('slot-script-of-partition-3')).toBeLessThan(firstA);
    const env = decodeUbootEnv(readFatFile(disk, 1, 'otapack.env')!);
    expect(env).toEqual({ vars: { rootpart: '2', upgrade_available: '0', bootcount: '0', bootlimit: '2', ustate: '3' }, crcOk: true });
  });
});

describe.skipIf(!haveQemu)('U-Boot A/B for a U-Boot without setexpr, itest and part (as Debian\'s RK3399 builds): decimal counter, PARTUUIDs written in', () => {
  it('counts a failing trial 1, 2 with test alone, resets, falls back to A, and boots each slot with its written-in PARTUUID', async () => {
    const dir = join(tmp.dir, 'no-setexpr');
    tool('mkdir', ['-p', dir]);
    const partuuids = { a: GPT_PART_GUID(2), b: GPT_PART_GUID(3) };
    const opts: UbootAbOptions = { ...base, bootlimit: 2, counter: 'test', partuuids, boardStep: { kind: 'slot-script' } };
    // the script calls none of the commands this U-Boot would lack (comments aside)
    const code = generateUbootAbScript(opts).split('\n').filter((l) => !/^\s*#/.test(l)).join('\n');
    expect(code).not.toMatch(/\bsetexpr\b|\bitest\b|\bpart uuid\b/);
    // negative twin: the default form does call them
    expect(generateUbootAbScript({ ...opts, counter: undefined, partuuids: undefined })).toMatch(/setexpr [\s\S]*itest [\s\S]*part uuid/);
    const disk = buildDisk(dir, [
      { fs: 'fat', sizeMiB: 8, files: {
        'boot.scr': buildUbootAbScript(opts, { time }),
        'otapack.env': encodeUbootEnv({ rootpart: '3', upgrade_available: '1', bootcount: '0', bootlimit: '2' }),
      } },
      { fs: 'ext4', sizeMiB: 4, files: slotFiles(2) },
      { fs: 'ext4', sizeMiB: 4, files: slotFiles(3, false) }, // slot B "fails": its script returns
    ], 'gpt');
    const r = await boot(disk, 'no-setexpr-reset-cycle');
    expect(parseAbMarkers(r.log)).toEqual([
      { slot: 'B', partition: 3, bootcount: '1', upgradeAvailable: '1' },
      { slot: 'B', partition: 3, bootcount: '2', upgradeAvailable: '1' },
      { slot: 'A', partition: 2, bootcount: '0', upgradeAvailable: '0' },
    ]);
    expect(r.log).toContain('otapack: partition 3 failed 2 trial boots - falling back');
    expect(r.log.toLowerCase()).toContain(`stub slot-script-of-partition-3 rootpart=3 root=partuuid=${partuuids.b.toLowerCase()}`);
    expect(r.log.toLowerCase()).toContain(`stub slot-script-of-partition-2 rootpart=2 root=partuuid=${partuuids.a.toLowerCase()}`);
    expect(r.log).not.toMatch(/Unknown command|syntax error|WARNING/);
    const env = decodeUbootEnv(readFatFile(disk, 1, 'otapack.env')!);
    expect(env).toEqual({ vars: { rootpart: '2', upgrade_available: '0', bootcount: '0', bootlimit: '2', ustate: '3' }, crcOk: true });
  });
});

describe.skipIf(!haveQemu)('board steps reach the kernel (fake arm64 Image that prints its command line)', () => {
  const cmdline = (log: string): string => /FAKE-KERNEL: cmdline: (.*)/.exec(log)?.[1]?.trim() ?? '';
  let n = 0;
  function disk(opts: UbootAbOptions, env: Record<string, string>, slot2: Record<string, Buffer | string>, slot3: Record<string, Buffer | string>): Disk {
    const dir = join(tmp.dir, `kernel-${++n}`);
    tool('mkdir', ['-p', dir]);
    return buildDisk(dir, [
      { fs: 'fat', sizeMiB: 8, files: { 'boot.scr': buildUbootAbScript(opts, { time }), 'otapack.env': encodeUbootEnv(env) } },
      { fs: 'ext4', sizeMiB: 4, files: slot2 },
      { fs: 'ext4', sizeMiB: 4, files: slot3 },
    ]);
  }

  it('(b) patched Armbian boot.cmd inside slot B: armbianEnv.txt read from the slot, root= is the slot PARTUUID, not the shared UUID', async () => {
    // QEMU adaptations only: Armbian load_addr (0x9000000) is outside QEMU virt RAM, and qemu_arm64
    // defines no fdt_addr_r (its device tree sits at fdt_addr).
    const qemuArmbian = ARMBIAN_CMD.replace('setenv load_addr "0x9000000"', 'setenv load_addr ${pxefile_addr_r}\nsetenv fdt_addr_r ${fdt_addr}');
    const patched = patchBootScript(qemuArmbian, { oldRootPart: 1, name: 'boot.cmd' }).text;
    const cpio = join(tmp.dir, 'initrd.cpio');
    writeFileSync(cpio, Buffer.alloc(512, 0));
    tool('mkimage', ['-A', 'arm64', '-O', 'linux', '-T', 'ramdisk', '-C', 'none', '-d', cpio, `${cpio}.uimg`], { env: { SOURCE_DATE_EPOCH: String(time) } });
    const uInitrd = readFileSync(`${cpio}.uimg`);
    const slot = (p: number): Record<string, Buffer | string> => ({
      'boot/boot.scr': encodeScriptImage(patched, 'armbian', { time }),
      'boot/boot.cmd': patched,
      'boot/armbianEnv.txt': ARMBIAN_ENV_TXT,
      'boot/Image': FAKE_ARM64_KERNEL,
      'boot/uInitrd': uInitrd,
      'etc/hostname': `slot${p}\n`,
    });
    const d = disk({ ...base, boardStep: { kind: 'slot-script' } }, { rootpart: '3', upgrade_available: '1', bootcount: '0', bootlimit: '3' }, slot(2), slot(3));
    const r = await boot(d, 'armbian-slot-script');
    expect(parseAbMarkers(r.log)).toEqual([{ slot: 'B', partition: 3, bootcount: '1', upgradeAvailable: '1' }]);
    expect(r.log).toContain('FAKE-KERNEL: started by booti');
    const c = cmdline(r.log);
    expect(c.startsWith(`root=PARTUUID=${DISK_ID.slice(2)}-03 rootwait rootfstype=ext4 console=ttyS2,1500000`)).toBe(true);
    // (ubootpart stays empty: the Armbian script only runs part uuid when devtype is mmc)
    // negative twin: the rootdev from armbianEnv.txt (the same UUID in both slots) never reaches the kernel
    expect(c).not.toContain('UUID=3f2a1c55');
    expect(c).not.toContain('/dev/mmcblk0p1');
  });

  it('(c) extlinux.conf inside slot A: sysboot expands root=${otapack_root} in the append line', async () => {
    const conf = patchExtlinuxConf('default linux\nlabel linux\n  kernel /boot/Image\n  append console=ttyAMA0 root=/dev/vda2 rootwait\n').text;
    const slot = { 'boot/extlinux/extlinux.conf': conf, 'boot/Image': FAKE_ARM64_KERNEL };
    const d = disk({ ...base, boardStep: { kind: 'extlinux', location: 'slot' } }, initialUbootAbEnv(base), slot, slot);
    const r = await boot(d, 'extlinux-slot');
    expect(parseAbMarkers(r.log)).toEqual([{ slot: 'A', partition: 2, bootcount: '0', upgradeAvailable: '0' }]);
    expect(r.log).toContain('FAKE-KERNEL: started by booti');
    expect(cmdline(r.log)).toBe(`root=PARTUUID=${DISK_ID.slice(2)}-02 rootwait`);
  });

  it('(d) generic kernel + raw initrd from slot B; a missing kernel in a trial resets and rolls back to A', async () => {
    const step = { kind: 'kernel', kernel: '/boot/Image', initrd: '/boot/initrd.cpio.gz', bootargs: 'console=ttyAMA0 rootwait ro' } as const;
    const withKernel = { 'boot/Image': FAKE_ARM64_KERNEL, 'boot/initrd.cpio.gz': Buffer.alloc(1000, 7) };
    const d = disk({ ...base, bootlimit: 1, boardStep: step }, { rootpart: '3', upgrade_available: '1', bootcount: '0', bootlimit: '1' }, withKernel, withKernel);
    const r = await boot(d, 'kernel-step');
    expect(parseAbMarkers(r.log)).toEqual([{ slot: 'B', partition: 3, bootcount: '1', upgradeAvailable: '1' }]);
    expect(r.log).toContain('otapack: kernel /boot/Image loaded');
    expect(cmdline(r.log)).toBe(`root=PARTUUID=${DISK_ID.slice(2)}-03`);

    // negative twin: slot B without a kernel fails its trial and is rolled back within one run
    const d2 = disk({ ...base, bootlimit: 1, boardStep: step }, { rootpart: '3', upgrade_available: '1', bootcount: '0', bootlimit: '1' }, withKernel, { 'etc/hostname': 'empty\n' });
    const r2 = await boot(d2, 'kernel-step-missing');
    expect(parseAbMarkers(r2.log)).toEqual([
      { slot: 'B', partition: 3, bootcount: '1', upgradeAvailable: '1' },
      { slot: 'A', partition: 2, bootcount: '0', upgradeAvailable: '0' },
    ]);
    expect(r2.log).toContain('otapack: ERROR the board boot step for slot B returned without booting');
    expect(cmdline(r2.log)).toBe(`root=PARTUUID=${DISK_ID.slice(2)}-02`);
  });
});
