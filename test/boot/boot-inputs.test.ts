// Boots the unconverted input images under QEMU (TCG) and proves the test guest works: the
// Buildroot-style and Armbian-style arm64 disks through Debian's qemu_arm64 U-Boot, the x86-64
// EFI disk through OVMF + GRUB. Each must reach the guest's marker line and power off by itself.
// Then the real arm64 SWUpdate client and fw_printenv/fw_setenv run inside the guest, and the
// harness's multi-boot path (reboot, simulated broken slot → kernel panic → panic=5 reboot) is
// exercised in one QEMU process, as the A/B rollback test will need it.
// Every positive check has a negative twin that must fail.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fetchGuestDebs, runtimeClosure, type GuestDebs } from '../helpers/debs.js';
import {
  buildArmbianDisk, buildBuildrootDisk, buildEfiGrubDisk, diskCacheKey, inspectDisk, readExt4File, readUbootEnv, writeTestInput, type GuestDisk,
} from '../helpers/guest.js';
import { makeTestBundle } from '../helpers/guest-bundle.js';
import { ARTIFACTS, bootQemu, describeBoot, type BootResult } from '../helpers/qemu.js';

const WORK = mkdtempSync(join(process.env.OTAPACK_TEST_TMP ?? tmpdir(), 'otapack-boot-'));
const timings: { what: string; ms: number; detail?: string }[] = [];

function timed<T>(what: string, p: Promise<T>, detail?: (v: T) => string): Promise<T> {
  const t0 = Date.now();
  return p.then((v) => {
    timings.push({ what, ms: Date.now() - t0, detail: detail?.(v) });
    return v;
  });
}

async function boot(name: string, disk: GuestDisk, timeoutMs: number, expectRe: RegExp[] = [/OTAPACK-MARKER /], extra: Partial<Parameters<typeof bootQemu>[0]> = {}): Promise<BootResult> {
  const r = await bootQemu({
    arch: disk.arch === 'arm64' ? 'arm64' : 'x86_64', disk: disk.path, timeoutMs, expect: expectRe,
    logFile: join(WORK, `${name}.log`), ...extra,
  });
  timings.push({ what: `boot ${name}`, ms: r.durationMs, detail: `${r.kernelBoots} kernel boot(s), markers: ${r.markers.join(' | ') || '-'}` });
  console.log(describeBoot(name, r));
  return r;
}

let arm64: GuestDebs;
let amd64: GuestDebs;

beforeAll(async () => {
  arm64 = await timed('fetch arm64 guest packages', fetchGuestDebs('arm64'), (d) => `${d.packages.length} packages, ${(d.downloadedBytes / 1e6).toFixed(1)} MB downloaded, script ${d.seconds}s`);
  amd64 = await timed('fetch amd64 guest packages', fetchGuestDebs('amd64'), (d) => `${d.packages.length} packages, ${(d.downloadedBytes / 1e6).toFixed(1)} MB downloaded, script ${d.seconds}s`);
}, 900_000);

afterAll(() => {
  mkdirSync(ARTIFACTS, { recursive: true });
  writeFileSync(join(ARTIFACTS, 'timings.json'), JSON.stringify(timings, null, 2) + '\n');
  console.log(['boot test timings:', ...timings.map((t) => `  ${(t.ms / 1000).toFixed(1).padStart(6)} s  ${t.what}${t.detail ? `  (${t.detail})` : ''}`)].join('\n'));
  if (!process.env.OTAPACK_KEEP_BOOT_WORK) rmSync(WORK, { recursive: true, force: true });
});

describe('guest packages from Debian', () => {
  it('resolves a kernel, busybox-static, swupdate and libubootenv-tool for arm64 and amd64', () => {
    for (const d of [arm64, amd64]) {
      const names = d.packages.map((p) => p.name);
      for (const n of ['busybox-static', 'swupdate', 'libubootenv-tool', 'libubootenv0.1', 'libc6']) expect(names).toContain(n);
      expect(names.some((n) => n.startsWith('linux-image-') && n.endsWith(`-cloud-${d.arch}`))).toBe(true);
      expect(existsSync(d.kernel)).toBe(true);
      expect(d.kver).toMatch(new RegExp(`-cloud-${d.arch}$`));
      // every library the client and the env tools load is in the unpacked set
      const files = runtimeClosure(d.root, ['usr/bin/swupdate', 'usr/bin/fw_printenv', 'usr/bin/fw_setenv'], d.arch);
      expect(files.some((f) => /libubootenv\.so/.test(f))).toBe(true);
      expect(files.some((f) => /ld-linux/.test(f))).toBe(true);
    }
  });

  it('refuses a package set that lacks a library (negative twin of the closure check)', () => {
    const fake = join(WORK, 'fake-root');
    mkdirSync(join(fake, 'usr/bin'), { recursive: true });
    writeFileSync(join(fake, 'usr/bin/swupdate'), readFileSync(join(arm64.root, 'usr/bin/swupdate')));
    expect(() => runtimeClosure(fake, ['usr/bin/swupdate'], 'arm64')).toThrow(/needs lib|not found/);
  });
});

describe('unconverted inputs boot under QEMU', () => {
  it('Buildroot-style arm64 disk (MBR, FAT boot.scr + Image + initrd, ext4 root) boots through U-Boot to the marker', async () => {
    const disk = await timed('build Buildroot-style disk', buildBuildrootDisk({ dir: WORK, name: 'buildroot' }), (d) => `${(d.sizeBytes / 2 ** 20).toFixed(0)} MiB`);
    const r = await boot('buildroot', disk, 120_000);
    expect(r.missing, r.log.slice(-3000)).toEqual([]);
    expect(r.exitedCleanly).toBe(true);
    expect(r.markerFields).toHaveLength(1);
    expect(r.markerFields[0]!.root).toBe('/dev/vda2');
    expect(r.firmwareBoots).toBe(1);
    expect(r.log).toMatch(/Found U-Boot script \/boot\.scr/);
  }, 300_000);

  it('a disk whose root= names a missing partition never reaches the marker (negative twin)', async () => {
    const disk = await buildBuildrootDisk({ dir: WORK, name: 'buildroot-noroot', cmdlineExtra: 'root=/dev/vda9 rootdelay=2' });
    const r = await boot('buildroot-noroot', disk, 120_000, [/OTAPACK-MARKER /], { stopOn: [/OTAPACK-INITRAMFS-FAIL [^\n]*\n/, /\n=> $/] });
    expect(r.markers).toEqual([]);
    expect(r.exitedCleanly).toBe(false);
    expect(r.log).toMatch(/OTAPACK-INITRAMFS-FAIL root device \/dev\/vda9 not found/);
  }, 300_000);

  it('Armbian-style arm64 disk (blobs before p1, ext4 root with /boot/boot.scr, armbianEnv.txt, symlinks) boots to the marker', async () => {
    const disk = await timed('build Armbian-style disk', buildArmbianDisk({ dir: WORK, name: 'armbian', commands: ['grep -q " /sys " /proc/mounts && grep -q " /run tmpfs" /proc/mounts && echo OTAPACK-MOUNTS sys+run'] }), (d) => `${(d.sizeBytes / 2 ** 20).toFixed(0)} MiB`);
    expect(disk.partitions[0]!.start).toBe(32768 * 512);
    // its fstab lists neither /sys nor /run (systemd mounts them on Armbian): the guest's init must
    expect(readFileSync(join(disk.rootTree, 'etc/fstab'), 'utf8')).not.toMatch(/sysfs|\/run/);
    const r = await boot('armbian', disk, 120_000, [/OTAPACK-MARKER /, /OTAPACK-MOUNTS sys\+run/]);
    expect(r.missing, r.log.slice(-3000)).toEqual([]);
    expect(r.exitedCleanly).toBe(true);
    expect(r.markerFields[0]!.root).toBe(`UUID=${disk.partitions[0]!.fsUuid}`);
    expect(r.log).toMatch(/Found U-Boot script \/boot\/boot\.scr/);
    expect(r.log).toMatch(/Image Name:\s+uInitrd/);
  }, 300_000);

  it('x86-64 EFI disk (GPT, ESP with grub-mkstandalone BOOTX64.EFI + grub.cfg) boots through OVMF and GRUB to the marker', async () => {
    // the smoke command also proves the amd64 swupdate closure starts in this guest
    const disk = await timed('build x86-64 EFI/GRUB disk', buildEfiGrubDisk({ dir: WORK, name: 'efi-grub', commands: ['smoke'] }), (d) => `${(d.sizeBytes / 2 ** 20).toFixed(0)} MiB`);
    const r = await boot('efi-grub', disk, 180_000, [/OTAPACK-MARKER /, /OTAPACK-SMOKE swupdate-h=ok/]);
    expect(r.missing, r.log.slice(-3000)).toEqual([]);
    expect(r.exitedCleanly).toBe(true);
    expect(r.markerFields[0]!.root).toBe(`PARTUUID=${disk.partitions[1]!.partuuid}`);
    expect(r.log).toMatch(/Booting `Buildroot'/);
  }, 300_000);
});

describe('the real arm64 client inside the guest', () => {
  it('runs swupdate -h, fw_printenv/fw_setenv on a FAT-hosted env, and checks and installs a signed bundle with -B uboot -e stable,copy2', async () => {
    const b = await makeTestBundle(join(WORK, 'bundle'), {
      copy1: '/data/slotA.img', copy2: '/data/slotB.img',
      bootenv1: { rootpart: '2' }, bootenv2: { rootpart: '3', upgrade_available: '1', bootcount: '0' },
    });
    const disk = await timed('build smoke disk (Buildroot-style + /data)', buildBuildrootDisk({
      dir: WORK, name: 'smoke', ubootEnv: { rootpart: '2', bootlimit: '3' },
      data: { files: { 'slotA.img': Buffer.alloc(8 << 20), 'slotB.img': Buffer.alloc(8 << 20) } },
    }));
    // drive it the way the A/B test will drive a converted image: read the table back, then hand
    // the bundle and the commands over through /data
    const view = await inspectDisk(disk.path);
    expect(view.partitions.map((p) => [p.fs, p.partuuid, p.fsUuid])).toEqual(disk.partitions.map((p) => [p.fs, p.partuuid, p.fsUuid]));
    await writeTestInput(view, 3, {
      files: { 'update.swu': readFileSync(b.swu), 'tampered.swu': readFileSync(b.tampered), 'signer.crt': readFileSync(b.cert) },
      swupdateArgs: '-k /data/otapack-test/signer.crt -H otapack:1.0 -B uboot -e stable,copy2',
      commands: ['smoke', 'fw_setenv otapack_smoke guest-wrote-this', 'check /data/otapack-test/tampered.swu', 'check', 'update', 'env'],
    }, WORK);
    const r = await boot('smoke', disk, 240_000, [
      /OTAPACK-MARKER root=\/dev\/vda2 rootpart=2 /, /OTAPACK-SMOKE swupdate-h=ok/, /OTAPACK-SMOKE fw_printenv=ok/,
      /HASH mismatch/, /OTAPACK-CHECK result=failed/, /OTAPACK-CHECK result=ok/, /OTAPACK-UPDATE result=ok/,
    ]);
    expect(r.missing, r.log.slice(-4000)).toEqual([]);
    expect(r.exitedCleanly).toBe(true);
    // in-guest timings reported by the runner (uptime seconds)
    const t = (re: RegExp): number => Number(r.log.match(re)?.[1] ?? NaN);
    const checkStart = t(/OTAPACK-TEST check: swupdate -c -k [^\n]* -i \/data\/otapack-test\/update\.swu t=([\d.]+)/);
    const checkEnd = t(/OTAPACK-CHECK result=ok rc=\d+ t=([\d.]+)/);
    const updStart = t(/OTAPACK-TEST update: [^\n]* t=([\d.]+)/);
    const updEnd = t(/OTAPACK-UPDATE result=ok rc=\d+ t=([\d.]+)/);
    const smokeStart = t(/OTAPACK-TEST begin: smoke t=([\d.]+)/);
    const smokeEnd = t(/OTAPACK-TEST end rc=\d+: smoke t=([\d.]+)/);
    timings.push({ what: 'guest: swupdate -h + fw_printenv -c (TCG)', ms: Math.round((smokeEnd - smokeStart) * 1000) });
    timings.push({ what: 'guest: kernel start to the test runner (uptime)', ms: Math.round(t(/OTAPACK-TEST boot=1 [^\n]* t=([\d.]+)/) * 1000) });
    timings.push({ what: 'guest: swupdate -c of a 4 MiB signed bundle (TCG)', ms: Math.round((checkEnd - checkStart) * 1000) });
    timings.push({ what: 'guest: swupdate install of a 4 MiB signed bundle (TCG)', ms: Math.round((updEnd - updStart) * 1000) });
    // the host reads what the guest wrote: env on the FAT partition, payload in slotB only
    const env = await readUbootEnv(disk, 1);
    expect(env).toMatchObject({ otapack_smoke: 'guest-wrote-this', rootpart: '3', upgrade_available: '1', bootcount: '0', ustate: '1', bootlimit: '3' });
    const slotB = await readExt4File(disk, 3, '/slotB.img');
    const slotA = await readExt4File(disk, 3, '/slotA.img');
    expect(slotB!.subarray(0, b.payload.length).equals(b.payload)).toBe(true);
    expect(slotA!.every((x) => x === 0)).toBe(true);
  }, 400_000);
});

describe('multi-boot runs in one QEMU process', () => {
  it('collects markers across a reboot and a simulated broken boot that panics (panic=5), then runs a /data script', async () => {
    const action = '#!/bin/sh\necho "OTAPACK-ACTION ran with $* on $(cat /proc/cmdline | tr \' \' \'\\n\' | grep ^root=)"\necho done >/data/action.out\n';
    const disk = await buildBuildrootDisk({
      dir: WORK, name: 'multiboot', rootBy: 'partuuid',
      data: { files: { 'otapack-test/boot.1': 'reboot\n', 'otapack-test/boot.2': 'panic\n', 'otapack-test/boot.3': 'run:/data/action.sh one two\n', 'action.sh': action } },
    });
    const r = await boot('multiboot', disk, 240_000, [
      /OTAPACK-MARKER [^\n]*boot=1/, /OTAPACK-TEST reboot/, /halt: simulating a broken slot/, /Kernel panic - not syncing/,
      /Rebooting in 5 seconds/, /OTAPACK-MARKER [^\n]*boot=3/, /OTAPACK-ACTION ran with one two on root=PARTUUID=0ca7b007-02/,
      /OTAPACK-TEST end rc=0: run:\/data\/action\.sh/, /OTAPACK-TEST poweroff/,
    ]);
    expect(r.missing, r.log.slice(-4000)).toEqual([]);
    expect(r.exitedCleanly).toBe(true);
    expect(r.markerFields.map((m) => m.boot)).toEqual(['1', '3']);
    expect(r.markerFields.every((m) => m.root === 'PARTUUID=0ca7b007-02')).toBe(true);
    expect(r.firmwareBoots).toBe(3);
    // negative twin: the broken boot printed no marker, and the boot counter on /data says 3
    expect(r.log).not.toMatch(/OTAPACK-MARKER [^\n]*boot=2/);
    expect(String(await readExt4File(disk, 3, '/otapack-test/boots')).trim()).toBe('3');
    expect(String(await readExt4File(disk, 3, '/action.out'))).toBe('done\n');
  }, 400_000);

  it('otapack.test=panic on the kernel command line panics before the init scripts, and panic=5 reboots (stopped by until)', async () => {
    const disk = await buildBuildrootDisk({
      dir: WORK, name: 'cmdline-panic', cmdlineExtra: 'otapack.test=panic',
      tree: { files: { 'etc/init.d/S50health': { data: '#!/bin/sh\necho OTAPACK-HEALTH-CHECK ran\n', mode: 0o755 } } },
    });
    // the run ends as soon as the firmware starts a second time: the reboot after the panic
    const r = await boot('cmdline-panic', disk, 120_000, [/halt: simulating a broken slot/, /Kernel panic - not syncing/, /Rebooting in 5 seconds/],
      { until: /U-Boot 20\d\d\.\d\d[\s\S]*\nU-Boot 20\d\d\.\d\d/ });
    expect(r.missing, r.log.slice(-3000)).toEqual([]);
    expect(r.untilMatched).toBe(true);
    expect(r.timedOut).toBe(false);
    expect(r.exitedCleanly).toBe(false);
    expect(r.markers).toEqual([]);
    expect(r.log).not.toMatch(/OTAPACK-HEALTH-CHECK/);
    // negative twin: the same disk without the panic runs the init script and prints the marker
    const ok = await buildBuildrootDisk({
      dir: WORK, name: 'cmdline-ok', tree: { files: { 'etc/init.d/S50health': { data: '#!/bin/sh\necho OTAPACK-HEALTH-CHECK ran\n', mode: 0o755 } } },
    });
    const r2 = await boot('cmdline-ok', ok, 120_000, [/OTAPACK-HEALTH-CHECK ran/, /OTAPACK-MARKER root=\/dev\/vda2 /], { until: /OTAPACK-MARKER [^\n]*\n/ });
    expect(r2.missing, r2.log.slice(-3000)).toEqual([]);
    expect(r2.untilMatched).toBe(true);
    expect(r2.firmwareBoots).toBe(1);
  }, 400_000);
});

describe('disk builders are deterministic and cached by their inputs', () => {
  it('the same inputs give the same bytes (from the cache, and rebuilt without it); other inputs another disk', async () => {
    const sha = (p: string): string => createHash('sha256').update(readFileSync(p)).digest('hex');
    for (const [name, build] of [['buildroot', buildBuildrootDisk], ['efi-grub', buildEfiGrubDisk]] as const) {
      const a = await build({ dir: join(WORK, 'det-a'), name });
      const b = await build({ dir: join(WORK, 'det-b'), name });
      expect(b.cached).toBe(true);
      const t0 = Date.now();
      const c = await build({ dir: join(WORK, 'det-c'), name, cache: false });
      timings.push({ what: `rebuild ${name} disk without the cache`, ms: Date.now() - t0 });
      expect(c.cached).toBeFalsy();
      expect(sha(b.path)).toBe(sha(a.path));
      expect(sha(c.path)).toBe(sha(a.path));
      // negative twin: one more kernel argument is another key and other bytes
      const d = await build({ dir: join(WORK, 'det-d'), name, cmdlineExtra: 'quiet', cache: false });
      expect(sha(d.path)).not.toBe(sha(a.path));
      const debs = name === 'buildroot' ? arm64 : amd64;
      expect(await diskCacheKey(name, { dir: 'x', cmdlineExtra: 'quiet' }, debs)).not.toBe(await diskCacheKey(name, { dir: 'y' }, debs));
      expect(await diskCacheKey(name, { dir: 'x', name: 'p' }, debs)).toBe(await diskCacheKey(name, { dir: 'y', name: 'q' }, debs));
    }
  }, 300_000);
});
