// Proof on a real boot: the output of `otapack convert`, run through the CLI exactly as a user
// would, boots under QEMU (TCG), updates itself A→B with the real SWUpdate client through the
// installed otapack-update, commits the new slot through the installed S99otapack-commit, and the
// boot loader rolls back when an update never reaches its health check. Every device-side file
// is the one convert installed; the test only adds its runner (/usr/sbin/otapack-test) to the
// input image, and hands it commands and bundles through /data.
//
// One QEMU process per power cycle (its own timeout and serial log), except the rollback run,
// where the broken slot panics and the machine reboots by itself (panic=5) until the boot loader
// falls back. Logs of a failed test are copied to test-artifacts/boot/.
import { describe, expect, it } from 'vitest';
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { keygen, type KeyDir } from '../helpers/bundle-fixtures.js';
import { patterned } from '../helpers/guest-bundle.js';
import {
  buildArmbianDisk, buildBuildrootDisk, buildEfiGrubDisk, inspectDisk, readExt4File, readFatFile, readUbootEnv, sh, writeExt4Files, writeTestInput,
  type GuestDisk, type InspectedDisk,
} from '../helpers/guest.js';
import { bootSession } from '../helpers/boot-session.js';
import { ARTIFACTS } from '../helpers/qemu.js';
import { otapack } from '../helpers/run.js';
import { BUILDROOT_GRUB_EFI_MODULES } from '../../src/boot/grub-image.js';
import { GRUB_MINIMUM_MODULES } from '../../src/boot/loader.js';

const EPOCH = '1700000000';
const { work: WORK, timed, record, keepLogsOnFailure, boot } = bootSession('convert-ab', 'convert A/B boot timings', { tmpPrefix: 'otapack-convert-boot-' });

interface Converted {
  img: string;
  swu: string;
  /** <name>.delta.swu, when converted with --delta-from */
  deltaSwu: string;
  report: {
    output: { partitions: { number: number; role: string; device: string; partuuid: string; start: number; size: number }[] };
    boot: { bootloader: string; envFile: string; loader: { source: string | null; builtIn: string[]; extra: string[] | null } };
  };
  view: InspectedDisk;
  part: (role: string) => { number: number; device: string; partuuid: string; start: number; size: number };
}

/** `otapack convert IMAGE -c otapack.yaml -o OUT --key --cert --aes-key --json`, as a user runs it. */
async function convert(disk: GuestDisk, name: string, keys: KeyDir, config: string, extra: string[] = []): Promise<Converted> {
  const dir = join(WORK, name);
  mkdirSync(dir, { recursive: true });
  const cfg = join(dir, 'otapack.yaml');
  writeFileSync(cfg, config);
  const out = join(dir, 'out');
  const r = await timed(`otapack convert (${name})`, () => otapack(
    ['convert', disk.path, '-c', cfg, '-o', out, '--key', keys.key, '--cert', keys.cert, '--aes-key', keys.aes, '--json', ...extra],
    { env: { SOURCE_DATE_EPOCH: EPOCH } },
  ));
  if (r.code !== 0) throw new Error(`otapack convert ${name} failed (${r.code}): ${r.stderr}`);
  const report = JSON.parse(r.stdout) as Converted['report'];
  const stem = basename(disk.path).replace(/\.img$/, '');
  const img = join(out, `${stem}.img`);
  const part = (role: string) => {
    const p = report.output.partitions.find((x) => x.role === role);
    if (!p) throw new Error(`${name}: no ${role} partition in the report`);
    return p;
  };
  return { img, swu: join(out, `${stem}.swu`), deltaSwu: join(out, `${stem}.delta.swu`), report, view: await inspectDisk(img), part };
}

const esc = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const fields = (line: string): Record<string, string> => Object.fromEntries(line.trim().split(/\s+/).filter((w) => w.includes('=')).map((w) => [w.slice(0, w.indexOf('=')), w.slice(w.indexOf('=') + 1)]));
/** The OTAPACK-EARLY lines (boot state before the init scripts), parsed. */
const earlies = (log: string): Record<string, string>[] => [...log.matchAll(/OTAPACK-EARLY ([^\n]*)/g)].map((m) => fields(m[1]!));
/** U-Boot script lines `otapack: booting slot X (partition N) bootcount=C upgrade_available=U`. */
const ubootChoices = (log: string): string[] => [...log.matchAll(/otapack: booting slot ([AB]) \(partition (\d+)\) bootcount=(\S+) upgrade_available=(\S+)/g)].map((m) => `${m[1]} p${m[2]} bootcount=${m[3]} upgrade_available=${m[4]}`);
/** Guest seconds between two runner lines (uptime stamps t=…). */
const guestSeconds = (log: string, from: RegExp, to: RegExp): number => Number(log.match(to)?.[1] ?? NaN) - Number(log.match(from)?.[1] ?? NaN);

const CONFIG = (version: string, readOnly = false): string => `# the test's otapack.yaml: QEMU's virtio disk, two failed trial boots before the fallback,
# encrypted bundles the device can decrypt itself${readOnly ? ', a read-only root (rdiff deltas)' : ''}
version: ${version}
storage:
  device: /dev/vda
bootlimit: 2
update:
  encrypt: true
  install-aes-key: true
${readOnly ? 'rootfs:\n  read-only: true\n' : ''}`;

describe('otapack convert output boots, updates A→B with the real SWUpdate, commits, and rolls back (QEMU)', () => {
  it('Buildroot-style arm64 image, read-only root: A boots, installs release 2 into B from an rdiff delta bundle, B commits, a broken update of A (its delta refused, the full bundle installed instead) falls back to B; /data survives', async () => {
    keepLogsOnFailure();
    const keys = await keygen(join(WORK, 'keys'), ['--cn', 'otapack boot test release']);
    const other = await keygen(join(WORK, 'keys-other'), ['--cn', 'someone else']);
    // release 1 (flashed) and release 2 (shipped as an update): the same Buildroot-style build with
    // a different version stamp, each converted with its own version
    const [v1, v2] = await timed('build two Buildroot-style inputs (arm64 kernel, BusyBox, swupdate from Debian)', () => Promise.all(
      ['1.0.0', '2.0.0'].map((v) => buildBuildrootDisk({ dir: join(WORK, `input-${v}`), name: `sdcard`, tree: { files: { 'etc/otapack-test/version': `${v}\n` } } })),
    ));
    // release 2 ships as an rdiff delta from release 1's bundle (as CI keeps it): both read-only
    const c1 = await convert(v1!, 'release-1', keys, CONFIG('1.0.0', true));
    const c2 = await convert(v2!, 'release-2', keys, CONFIG('2.0.0', true), ['--delta-from', c1.swu]);
    const delta = c2.report as unknown as { delta: { method: string; base: { version: string } }; outputs: { bundle: { size: number }; deltaBundle: { size: number } } };
    expect(delta.delta).toMatchObject({ method: 'rdiff', base: { version: '1.0.0' } });
    record('bundles of release 2', 0, `full ${delta.outputs.bundle.size} B, rdiff delta ${delta.outputs.deltaBundle.size} B`);
    const A = c1.part('rootfs-a');
    const B = c1.part('rootfs-b');
    const data = c1.part('data');
    expect(c1.report.boot.bootloader).toBe('uboot');
    expect([A.device, B.device, data.device]).toEqual(['/dev/vda2', '/dev/vda3', '/dev/vda4']);
    // the update only fits the flashed disk if both conversions planned the same slots
    expect(c2.report.output.partitions.map((p) => [p.role, p.start, p.size])).toEqual(c1.report.output.partitions.map((p) => [p.role, p.start, p.size]));
    const env = async (): Promise<Record<string, string>> => (await readUbootEnv(c1.view, c1.part('boot').number, 'otapack.env'))!;
    expect(await env()).toMatchObject({ rootpart: String(A.number), upgrade_available: '0', bootcount: '0', bootlimit: '2' });

    // a broken release 3, made with `otapack bundle` from release 2's slot image: its init panics
    // right after mounting (before any init script, so before otapack-commit and its health checks)
    const broken = join(WORK, 'broken');
    mkdirSync(broken, { recursive: true });
    const slotImg = join(broken, 'rootfs-broken.ext4');
    const src = c2.part('rootfs-a');
    await sh('dd', [`if=${c2.img}`, `of=${slotImg}`, 'bs=1M', `skip=${src.start}`, `count=${src.size}`, 'iflag=skip_bytes,count_bytes', 'conv=sparse', 'status=none']);
    await writeExt4Files({ path: slotImg, partitions: [{ index: 1, start: 0, size: src.size }] }, 1,
      { 'etc/otapack-test/commands': 'halt\n', 'etc/otapack-test/version': '3.0.0-broken\n' }, broken);
    const spec = (file: string, version: string): string => `version: "${version}"
description: "release ${version}"
hardware-compatibility: ["1.0"]
slots:
  copy1: { device: ${A.device}, bootenv: { rootpart: "${A.number}", upgrade_available: "1", bootcount: "0" } }
  copy2: { device: ${B.device}, bootenv: { rootpart: "${B.number}", upgrade_available: "1", bootcount: "0" } }
images:
  - file: ${file}
    type: raw
    compress: zstd
    encrypt: true
`;
    writeFileSync(join(broken, 'broken.yaml'), spec('rootfs-broken.ext4', '3.0.0'));
    const bb = await timed('otapack bundle (broken release 3)', () => otapack(['bundle', join(broken, 'broken.yaml'), '-o', join(broken, 'broken.swu'),
      '--key', keys.key, '--cert', keys.cert, '--aes-key', keys.aes], { env: { SOURCE_DATE_EPOCH: EPOCH } }));
    expect(bb.code, bb.stderr).toBe(0);
    // negative twin of the update: a well-formed bundle signed by a key the device does not trust
    writeFileSync(join(broken, 'payload.img'), patterned(4 << 20));
    writeFileSync(join(broken, 'untrusted.yaml'), spec('payload.img', '9.9.9'));
    const ub = await otapack(['bundle', join(broken, 'untrusted.yaml'), '-o', join(broken, 'untrusted.swu'), '--key', other.key, '--cert', other.cert, '--aes-key', keys.aes]);
    expect(ub.code, ub.stderr).toBe(0);

    const disk = c1.img;
    const slotSha = async (img: string, p: { start: number; size: number }): Promise<string> => (await sh('sh', ['-c', `dd if="$0" bs=1M skip=${p.start} count=${p.size} iflag=skip_bytes,count_bytes status=none | sha256sum`, img])).split(' ')[0]!;
    const slotABefore = await slotSha(disk, A);
    const T = '/data/otapack-test';
    // ---- power-on 1: slot A; a file goes to /data; an untrusted bundle is refused; release 2 goes into B
    await writeTestInput(c1.view, data.number, {
      files: { 'update.swu': readFileSync(c2.deltaSwu), 'untrusted.swu': readFileSync(join(broken, 'untrusted.swu')) },
      commands: [
        'mkdir -p /data/keep && echo written-on-slot-$(/usr/sbin/otapack-slot)-at-boot-1 > /data/keep/proof.txt && sync',
        `update ${T}/untrusted.swu`,
        'echo OTAPACK-ENV-AFTER-REFUSED rootpart=$(/usr/sbin/otapack-env get rootpart) upgrade_available=$(/usr/sbin/otapack-env get upgrade_available)',
        `update ${T}/update.swu`,
        'poweroff',
      ],
    }, WORK);
    const r1 = await boot('1-slotA-update', 'arm64', disk, 300_000, [
      /otapack: booting slot A \(partition 2\) bootcount=0 upgrade_available=0/,
      new RegExp(`OTAPACK-MARKER root=PARTUUID=${esc(A.partuuid)} rootpart=2 ab=A upgrade_available=0 `),
      /otapack-update: running slot A, installing \S+untrusted\.swu into slot B \(\/dev\/vda3\)/, /OTAPACK-UPDATE result=failed/,
      /OTAPACK-ENV-AFTER-REFUSED rootpart=2 upgrade_available=0/,
      /otapack-update: running slot A, installing \S+update\.swu into slot B \(\/dev\/vda3\)/, /OTAPACK-UPDATE result=ok/,
      /OTAPACK-TEST poweroff/,
    ]);
    expect(r1.missing, r1.log.slice(-5000)).toEqual([]);
    expect(r1.exitedCleanly).toBe(true);
    expect(r1.log).toMatch(/ERROR : Authentication of all signatures failed/);
    const installS = guestSeconds(r1.log, /OTAPACK-TEST update: \S+ \S+update\.swu t=([\d.]+)/, /OTAPACK-UPDATE result=ok rc=\d+ t=([\d.]+)/);
    record('guest: otapack-update of release 2 (rdiff delta, zstd + AES, signed) into slot B', Math.round(installS * 1000), `delta bundle ${(statSync(c2.deltaSwu).size / 2 ** 20).toFixed(2)} MiB (full ${(statSync(c2.swu).size / 2 ** 20).toFixed(1)} MiB), slot ${(B.size / 2 ** 20).toFixed(0)} MiB`);
    // the delta was applied over the read-only slot A: the base check passed, slot A is unchanged
    // by its boot, and slot B is release 2's slot byte for byte
    expect(await slotSha(c1.img, A)).toBe(slotABefore);
    expect(await slotSha(c1.img, B)).toBe(await slotSha(c2.img, c2.part('rootfs-a')));
    expect(await env()).toMatchObject({ rootpart: String(B.number), upgrade_available: '1', bootcount: '0', ustate: '1' });
    expect(String(await readExt4File(c1.view, B.number, '/etc/otapack-test/version')).trim()).toBe('2.0.0');
    expect(String(await readExt4File(c1.view, A.number, '/etc/otapack-test/version')).trim()).toBe('1.0.0');

    // ---- power-on 2: trial boot of B; the installed init script commits it
    await writeTestInput(c1.view, data.number, { commands: ['poweroff'], resetBootCount: false }, WORK);
    const r2 = await boot('2-slotB-trial-commit', 'arm64', disk, 180_000, [
      /otapack: booting slot B \(partition 3\) bootcount=1 upgrade_available=1/,
      new RegExp(`OTAPACK-EARLY root=PARTUUID=${esc(B.partuuid)} rootpart=3 upgrade_available=1 bootcount=1 `),
      /otapack-commit: slot B committed/,
      new RegExp(`OTAPACK-MARKER root=PARTUUID=${esc(B.partuuid)} rootpart=3 ab=B upgrade_available=0 bootcount=0 `),
      /OTAPACK-TEST poweroff/,
    ]);
    expect(r2.missing, r2.log.slice(-5000)).toEqual([]);
    expect(r2.exitedCleanly).toBe(true);
    expect(r2.markerFields[0]).toMatchObject({ version: '2.0.0', ustate: '1' });
    expect(await env()).toMatchObject({ rootpart: String(B.number), upgrade_available: '0', bootcount: '0' });

    // ---- power-on 3: B again, now permanent (nothing counted); it is handed release 2's delta
    // (made from release 1, which B does not run) with the full broken release 3 as the fallback:
    // the base check refuses the delta before writing, and otapack-update installs release 3 into A
    await writeTestInput(c1.view, data.number, {
      files: { 'broken.swu': readFileSync(join(broken, 'broken.swu')), 'wrong-base.swu': readFileSync(c2.deltaSwu) },
      commands: [`update ${T}/wrong-base.swu ${T}/broken.swu`, 'poweroff'], resetBootCount: false,
    }, WORK);
    const r3 = await boot('3-slotB-committed-update', 'arm64', disk, 300_000, [
      /otapack: booting slot B \(partition 3\) bootcount=0 upgrade_available=0/,
      /otapack-commit: slot B, nothing to commit/,
      new RegExp(`OTAPACK-MARKER root=PARTUUID=${esc(B.partuuid)} rootpart=3 ab=B upgrade_available=0 bootcount=0 `),
      /otapack-update: running slot B, installing \S+wrong-base\.swu into slot A \(\/dev\/vda2\)/,
      /ERROR : otapack: delta refused: \/dev\/vda3 is not release 1\.0\.0 \(sdcard\.swu\), the release it was made from/,
      /otapack-update: the delta does not apply to the release running here; installing the full bundle \S+broken\.swu into slot A \(\/dev\/vda2\)/,
      /otapack-update: slot A \(\/dev\/vda2\) holds \S+broken\.swu; the next boot tries it/,
      /OTAPACK-UPDATE result=ok rc=0/,
      /OTAPACK-TEST poweroff/,
    ]);
    expect(r3.missing, r3.log.slice(-5000)).toEqual([]);
    expect(r3.exitedCleanly).toBe(true);
    expect(await env()).toMatchObject({ rootpart: String(A.number), upgrade_available: '1', bootcount: '0' });

    // ---- power-on 4: A fails bootlimit (2) trial boots (panic → panic=5 reboot), U-Boot falls back to B
    await writeTestInput(c1.view, data.number, { commands: ['cat /data/keep/proof.txt', 'poweroff'], resetBootCount: false }, WORK);
    const r4 = await boot('4-slotA-broken-rollback', 'arm64', disk, 360_000, [
      /otapack: booting slot A \(partition 2\) bootcount=1 upgrade_available=1/,
      new RegExp(`OTAPACK-EARLY root=PARTUUID=${esc(A.partuuid)} rootpart=2 upgrade_available=1 bootcount=1 [^\\n]*version=3\\.0\\.0-broken`),
      /halt: simulating a broken slot/, /Kernel panic - not syncing/, /Rebooting in 5 seconds/,
      /otapack: booting slot A \(partition 2\) bootcount=2 upgrade_available=1/,
      /halt: simulating a broken slot/, /Kernel panic - not syncing/,
      /otapack: partition 2 failed 2 trial boots - falling back/,
      /otapack: booting slot B \(partition 3\) bootcount=0 upgrade_available=0/,
      new RegExp(`OTAPACK-MARKER root=PARTUUID=${esc(B.partuuid)} rootpart=3 ab=B upgrade_available=0 bootcount=0 ustate=3 `),
      /written-on-slot-A-at-boot-1/,
      /OTAPACK-TEST poweroff/,
    ]);
    expect(r4.missing, r4.log.slice(-6000)).toEqual([]);
    expect(r4.exitedCleanly).toBe(true);
    expect(r4.firmwareBoots).toBe(3);
    expect(ubootChoices(r4.log)).toEqual(['A p2 bootcount=1 upgrade_available=1', 'A p2 bootcount=2 upgrade_available=1', 'B p3 bootcount=0 upgrade_available=0']);
    // the broken slot never got as far as the commit, and printed no marker
    expect(r4.log).not.toMatch(/otapack-commit: slot A/);
    expect(r4.markerFields).toHaveLength(1);
    expect(await env()).toMatchObject({ rootpart: String(B.number), upgrade_available: '0', bootcount: '0', ustate: '3' });
    expect(String(await readExt4File(c1.view, data.number, '/keep/proof.txt')).trim()).toBe('written-on-slot-A-at-boot-1');

    // the whole sequence, as the serial consoles showed it
    const sequence = [r1, r2, r3, r4].flatMap((r) => r.log.split('\n').filter((l) => /^otapack: (booting|partition)|^OTAPACK-(EARLY|MARKER|UPDATE)|^otapack-(commit|update):/.test(l)));
    console.log(['marker sequence:', ...sequence.map((l) => `  ${l}`)].join('\n'));
    mkdirSync(ARTIFACTS, { recursive: true });
    writeFileSync(join(ARTIFACTS, 'convert-ab-sequence.txt'), sequence.join('\n') + '\n');
    expect(earlies([r1, r2, r3, r4].map((r) => r.log).join('\n')).map((e) => e.version)).toEqual(['1.0.0', '2.0.0', '2.0.0', '3.0.0-broken', '3.0.0-broken', '2.0.0']);
  }, 1_500_000);
});

describe('every converted input boots slot A with its own boot logic (QEMU)', () => {
  const config = 'storage:\n  device: /dev/vda\n  data-size: 32M\nbootlimit: 2\n';

  it('Armbian-style arm64 image (/boot inside the rootfs, its boot.scr and armbianEnv.txt, no boot partition)', async () => {
    keepLogsOnFailure();
    const keys = await keygen(join(WORK, 'keys-armbian'), ['--type', 'rsa2048']);
    const input = await timed('build Armbian-style input', () => buildArmbianDisk({ dir: join(WORK, 'input-armbian'), name: 'armbian', commands: ['echo OTAPACK-CMDLINE $(cat /proc/cmdline)'] }));
    const c = await convert(input, 'armbian', keys, config);
    const A = c.part('rootfs-a');
    expect(c.part('boot').number).toBe(1); // convert made a FAT boot partition for the A/B state
    expect((await readFatFile(c.view, 1, '/otapack.env'))?.length).toBe(0x4000);
    const r = await boot('armbian-slotA', 'arm64', c.img, 180_000, [
      /Found U-Boot script \/boot\.scr/, /otapack: booting slot A \(partition 2\) bootcount=0 upgrade_available=0/,
      /Boot script loaded from virtio 0/, // the board's own (patched) /boot/boot.scr, read from slot A
      /Image Name:\s+uInitrd/, // its uInitrd, through the Image/uInitrd symlinks in the slot
      new RegExp(`OTAPACK-MARKER root=PARTUUID=${esc(A.partuuid)} rootpart=2 ab=A upgrade_available=0 bootcount=0 `),
      // armbianEnv.txt's rootdev=UUID=… (shared by both slots) is overridden by the slot's PARTUUID
      new RegExp(`OTAPACK-CMDLINE root=PARTUUID=${esc(A.partuuid)} rootwait rootfstype=ext4 console=ttyAMA0 `),
    ]);
    expect(r.missing, r.log.slice(-4000)).toEqual([]);
    expect(r.exitedCleanly).toBe(true);
    // negative twin: the rootfs's own /boot/boot.scr must not be what distro boot started
    expect(r.log).not.toMatch(/Found U-Boot script \/boot\/boot\.scr/);
  }, 600_000);

  it("x86-64 EFI image whose GRUB is built like Buildroot's (its default modules + otapack's minimum, no regexp/probe): A→B update, commit, then a failing trial falls back; no error or warning line from GRUB", async () => {
    keepLogsOnFailure();
    const keys = await keygen(join(WORK, 'keys-efi'), ['--type', 'rsa2048']);
    // BR2_TARGET_GRUB2_BUILTIN_MODULES_EFI="boot linux ext2 fat squash4 part_msdos part_gpt normal efi_gop" + loadenv test echo configfile reboot
    const grubModules = [...BUILDROOT_GRUB_EFI_MODULES, ...GRUB_MINIMUM_MODULES];
    const input = await timed('build x86-64 EFI/GRUB input', () => buildEfiGrubDisk({ dir: join(WORK, 'input-efi'), name: 'efi', commands: ['echo OTAPACK-CMDLINE $(cat /proc/cmdline)'], grubModules }));
    // unencrypted this time: the device then has no AES key at all
    const c = await convert(input, 'efi', keys, 'storage:\n  device: /dev/vda\n  data-size: 64M\nbootlimit: 2\n');
    const A = c.part('rootfs-a');
    const B = c.part('rootfs-b');
    expect(c.report.boot.bootloader).toBe('grub');
    // what convert read of this GRUB: the Buildroot modules and the minimum, nothing missing, nothing more
    expect(c.report.boot.loader.source).toBe('ESP (partition 1) /EFI/BOOT/BOOTX64.EFI');
    expect(c.report.boot.loader.builtIn).toEqual(expect.arrayContaining(grubModules));
    expect(c.report.boot.loader.builtIn).not.toContain('regexp');
    expect(c.report.boot.loader.builtIn).not.toContain('probe');
    expect(c.report.boot.loader.extra).toBeNull();
    /** GRUB's part of each firmware start (up to the kernel), line by line. */
    const grubLines = (log: string): string[] => log.split(/BdsDxe: starting /).slice(1)
      .flatMap((chunk) => chunk.split(/EFI stub: |Linux version \d/)[0]!.split('\n'));
    /** Those that report trouble; the check looks at GRUB's real output (its slot line is among them). */
    const grubTrouble = (log: string): string[] => {
      expect(grubLines(log).filter((l) => /otapack: booting slot [AB] /.test(l)).length).toBeGreaterThan(0);
      return grubLines(log).filter((l) => /error:|WARNING|ERROR|can't find command|Unknown command|syntax error/i.test(l));
    };
    const grubenv = async (): Promise<Record<string, string>> => {
      const f = join(WORK, 'efi-grubenv');
      writeFileSync(f, (await readFatFile(c.view, c.part('boot').number, c.report.boot.envFile))!);
      return Object.fromEntries((await sh('grub-editenv', [f, 'list'])).split('\n').filter((l) => l.includes('=')).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
    };
    // the bundle convert made with this disk, delivered on /data; the device's otapack-update runs
    // swupdate -B grub, which replaces /boot/grub/grubenv (the ESP's /otapack, bind-mounted)
    await writeTestInput(c.view, c.part('data').number, { files: { 'update.swu': readFileSync(c.swu) }, commands: ['update /data/otapack-test/update.swu', 'poweroff'] }, WORK);
    const r = await boot('efi-slotA-update', 'x86_64', c.img, 300_000, [
      /otapack: booting slot A \(partition 2\) bootcount=0 upgrade_available=0/,
      new RegExp(`OTAPACK-MARKER root=PARTUUID=${esc(A.partuuid)} rootpart=2 ab=A upgrade_available=0 bootcount=0 `),
      new RegExp(`OTAPACK-CMDLINE [^\\n]*root=PARTUUID=${esc(A.partuuid)} rootwait ro console=ttyS0 panic=5`),
      /otapack-update: running slot A, installing \S+update\.swu into slot B \(\/dev\/vda3\)/, /OTAPACK-UPDATE result=ok/,
      /OTAPACK-TEST poweroff/,
    ]);
    expect(r.missing, r.log.slice(-4000)).toEqual([]);
    expect(r.exitedCleanly).toBe(true);
    expect(grubTrouble(r.log)).toEqual([]);
    // negative twin: the input's root (its original PARTUUID) is nowhere on the command line
    expect(r.log).not.toMatch(new RegExp(`root=PARTUUID=${esc(input.partitions[1]!.partuuid)}`));
    expect(await grubenv()).toMatchObject({ rootpart: String(B.number), upgrade_available: '1', bootcount: '0' });

    // B's trial boot commits; then (after the commit) the device marks A as the next trial, as an
    // install into A would: the fallback below is GRUB's to do
    await writeTestInput(c.view, c.part('data').number, { commands: ['otapack-env get upgrade_available', 'otapack-env set rootpart=2 upgrade_available=1 bootcount=0', 'poweroff'], resetBootCount: false }, WORK);
    const r2 = await boot('efi-slotB-trial-commit', 'x86_64', c.img, 240_000, [
      /otapack: booting slot B \(partition 3\) bootcount=1 upgrade_available=1/,
      new RegExp(`OTAPACK-EARLY root=PARTUUID=${esc(B.partuuid)} rootpart=3 upgrade_available=1 bootcount=1 `),
      /otapack-commit: slot B committed/,
      new RegExp(`OTAPACK-MARKER root=PARTUUID=${esc(B.partuuid)} rootpart=3 ab=B upgrade_available=0 bootcount=0 `),
      /OTAPACK-TEST poweroff/,
    ]);
    expect(r2.missing, r2.log.slice(-4000)).toEqual([]);
    expect(r2.exitedCleanly).toBe(true);
    expect(grubTrouble(r2.log)).toEqual([]);
    expect(await grubenv()).toMatchObject({ rootpart: String(A.number), upgrade_available: '1', bootcount: '0' });

    // A fails bootlimit (2) trial boots (panic before the commit, panic=5 reboots), GRUB falls back to B
    await writeTestInput(c.view, c.part('data').number, { boots: { 1: ['panic'], 2: ['panic'], 3: ['poweroff'] } }, WORK);
    const r3 = await boot('efi-slotA-broken-fallback', 'x86_64', c.img, 420_000, [
      /otapack: booting slot A \(partition 2\) bootcount=1 upgrade_available=1/, /Kernel panic - not syncing/,
      /otapack: booting slot A \(partition 2\) bootcount=2 upgrade_available=1/, /Kernel panic - not syncing/,
      /otapack: partition 2 failed 2 trial boots - falling back/,
      /otapack: booting slot B \(partition 3\) bootcount=0 upgrade_available=0/,
      new RegExp(`OTAPACK-MARKER root=PARTUUID=${esc(B.partuuid)} rootpart=3 ab=B upgrade_available=0 bootcount=0 `),
      /OTAPACK-TEST poweroff/,
    ]);
    expect(r3.missing, r3.log.slice(-6000)).toEqual([]);
    expect(r3.exitedCleanly).toBe(true);
    expect(r3.firmwareBoots).toBe(3);
    expect(ubootChoices(r3.log)).toEqual(['A p2 bootcount=1 upgrade_available=1', 'A p2 bootcount=2 upgrade_available=1', 'B p3 bootcount=0 upgrade_available=0']);
    expect(r3.log).not.toMatch(/otapack-commit: slot A/);
    // the fallback is not trouble: GRUB printed no error or warning on any of the three starts
    expect(grubTrouble(r3.log)).toEqual([]);
    expect(await grubenv()).toMatchObject({ rootpart: String(B.number), upgrade_available: '0', bootcount: '0', ustate: '3' });
  }, 1_200_000);
});
