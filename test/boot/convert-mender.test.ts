// Proof on a real boot, for Mender: the output of `otapack convert --client mender`, run through
// the CLI as a user would, boots under QEMU with Debian's Mender client 3.4 (arm64 and amd64,
// unpacked into the guest like swupdate); the installed otapack-update runs `mender install`,
// which refuses an artifact signed by another key and writes release 2 into the other slot; the
// trial boot is committed by the installed otapack-commit (`mender commit` after the health
// checks); a broken release 3 falls back after bootlimit failed boots, and /data survives. On
// x86-64 EFI (GRUB) the same through A→B and the commit, Mender writing grubenv through
// otapack's environment tools.
//
// One QEMU process per power cycle. About 2.5 min on the 2-core TCG machine (measured 150 s):
// arm64 3 power-ons (the last with two panics, 100 s in all), x86-64 2 power-ons (50 s).
import { describe, expect, it } from 'vitest';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { execa } from 'execa';
import { patterned } from '../helpers/guest-bundle.js';
import {
  buildBuildrootDisk, buildEfiGrubDisk, inspectDisk, readExt4File, readFatFile, readUbootEnv, sh, writeExt4Files, writeTestInput,
  type GuestDisk, type InspectedDisk,
} from '../helpers/guest.js';
import { bootSession } from '../helpers/boot-session.js';
import { ARTIFACTS } from '../helpers/qemu.js';
import { otapack } from '../helpers/run.js';

const EPOCH = '1700000000';
const { work: WORK, timed, keepLogsOnFailure, boot } = bootSession('convert-mender', 'convert --client mender boot timings', { tmpPrefix: 'otapack-mender-boot-', logPrefix: 'mender-' });

interface Keys { key: string; pub: string }
async function ecKey(name: string): Promise<Keys> {
  const key = join(WORK, `${name}.key`);
  await execa('openssl', ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', key]);
  await execa('openssl', ['pkey', '-in', key, '-pubout', '-out', `${key}.pub`]);
  return { key, pub: `${key}.pub` };
}

interface Converted {
  img: string;
  mender: string;
  report: { output: { partitions: { number: number; role: string; device: string; partuuid: string; start: number; size: number }[] }; boot: { bootloader: string; envFile: string } };
  view: InspectedDisk;
  part: (role: string) => { number: number; device: string; partuuid: string; start: number; size: number };
}

async function convert(disk: GuestDisk, name: string, keys: Keys, config: string): Promise<Converted> {
  const dir = join(WORK, name);
  mkdirSync(dir, { recursive: true });
  const cfg = join(dir, 'otapack.yaml');
  writeFileSync(cfg, config);
  const out = join(dir, 'out');
  const r = await timed(`otapack convert --client mender (${name})`, () => otapack(['convert', disk.path, '-c', cfg, '-o', out, '--client', 'mender', '--key', keys.key, '--json'], { env: { SOURCE_DATE_EPOCH: EPOCH } }));
  if (r.code !== 0) throw new Error(`otapack convert ${name} failed (${r.code}): ${r.stderr}`);
  const report = JSON.parse(r.stdout) as Converted['report'];
  const stem = basename(disk.path).replace(/\.img$/, '');
  const img = join(out, `${stem}.img`);
  const part = (role: string) => {
    const p = report.output.partitions.find((x) => x.role === role);
    if (!p) throw new Error(`${name}: no ${role} partition in the report`);
    return p;
  };
  return { img, mender: join(out, `${stem}.mender`), report, view: await inspectDisk(img), part };
}

const esc = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const ubootChoices = (log: string): string[] => [...log.matchAll(/otapack: booting slot ([AB]) \(partition (\d+)\) bootcount=(\S+) upgrade_available=(\S+)/g)].map((m) => `${m[1]} p${m[2]} bootcount=${m[3]} upgrade_available=${m[4]}`);

const CONFIG = (version: string): string => `# QEMU's virtio disk, two failed trial boots before the fallback
client: mender
version: ${version}
mender: { device-type: otapack-qemu }
storage:
  device: /dev/vda
bootlimit: 2
`;

const T = '/data/otapack-test';

describe('otapack convert --client mender boots, updates A→B with the real Mender client, commits, and rolls back (QEMU)', () => {
  it('Buildroot-style arm64 image: A boots, mender installs release 2 into B, B commits, a broken release 3 falls back after bootlimit; /data survives', async () => {
    keepLogsOnFailure();
    const keys = await ecKey('release');
    const other = await ecKey('other');
    const [v1, v2] = await timed('build two Buildroot-style inputs (arm64 kernel, BusyBox, Debian\'s mender-client)', () => Promise.all(
      ['1.0.0', '2.0.0'].map((v) => buildBuildrootDisk({ dir: join(WORK, `input-${v}`), name: 'sdcard', tree: { mender: true, files: { 'etc/otapack-test/version': `${v}\n` } } })),
    ));
    const c1 = await convert(v1!, 'release-1', keys, CONFIG('1.0.0'));
    const c2 = await convert(v2!, 'release-2', keys, CONFIG('2.0.0'));
    const A = c1.part('rootfs-a');
    const B = c1.part('rootfs-b');
    const data = c1.part('data');
    expect([A.device, B.device, data.device]).toEqual(['/dev/vda2', '/dev/vda3', '/dev/vda4']);
    expect(c2.report.output.partitions.map((p) => [p.role, p.start, p.size])).toEqual(c1.report.output.partitions.map((p) => [p.role, p.start, p.size]));
    const env = async (): Promise<Record<string, string>> => (await readUbootEnv(c1.view, c1.part('boot').number, 'otapack.env'))!;
    expect(await env()).toMatchObject({ mender_boot_part: '2', mender_boot_part_hex: '2', upgrade_available: '0', bootcount: '0', bootlimit: '2' });

    // a broken release 3 from release 2's slot image, as CI would make it: otapack bundle, format: mender
    const work = join(WORK, 'r3');
    mkdirSync(work, { recursive: true });
    const slotImg = join(work, 'rootfs.ext4');
    const src = c2.part('rootfs-a');
    await sh('dd', [`if=${c2.img}`, `of=${slotImg}`, 'bs=1M', `skip=${src.start}`, `count=${src.size}`, 'iflag=skip_bytes,count_bytes', 'conv=sparse', 'status=none']);
    await writeExt4Files({ path: slotImg, partitions: [{ index: 1, start: 0, size: src.size }] }, 1,
      { 'etc/otapack-test/commands': 'halt\n', 'etc/otapack-test/version': '3.0.0-broken\n' }, work);
    writeFileSync(join(work, 'broken.yaml'), 'format: mender\nartifact-name: 3.0.0-broken\ndevice-types: [otapack-qemu]\nimage: rootfs.ext4\n');
    const bb = await timed('otapack bundle (broken release 3, .mender)', () => otapack(['bundle', join(work, 'broken.yaml'), '-o', join(work, 'broken.mender'), '--key', keys.key], { env: { SOURCE_DATE_EPOCH: EPOCH } }));
    expect(bb.code, bb.stderr).toBe(0);
    // negative twin of the update: well formed, signed by a key the device does not have
    writeFileSync(join(work, 'payload.img'), patterned(4 << 20));
    writeFileSync(join(work, 'untrusted.yaml'), 'format: mender\nartifact-name: 9.9.9\ndevice-types: [otapack-qemu]\nimage: payload.img\n');
    expect((await otapack(['bundle', join(work, 'untrusted.yaml'), '-o', join(work, 'untrusted.mender'), '--key', other.key])).code).toBe(0);

    const disk = c1.img;
    // ---- power-on 1: slot A; a file goes to /data; an untrusted artifact is refused; release 2 goes into B
    await writeTestInput(c1.view, data.number, {
      files: { 'update.mender': readFileSync(c2.mender), 'untrusted.mender': readFileSync(join(work, 'untrusted.mender')) },
      commands: [
        'mkdir -p /data/keep && echo written-on-slot-$(/usr/sbin/otapack-slot)-at-boot-1 > /data/keep/proof.txt && sync',
        `update ${T}/untrusted.mender`,
        'echo OTAPACK-ENV-AFTER-REFUSED mender_boot_part=$(fw_printenv -n mender_boot_part) upgrade_available=$(fw_printenv -n upgrade_available)',
        `update ${T}/update.mender`,
        'poweroff',
      ],
    }, WORK);
    const r1 = await boot('1-slotA-update', 'arm64', disk, 420_000, [
      /otapack: booting slot A \(partition 2\) bootcount=0 upgrade_available=0/,
      new RegExp(`OTAPACK-MARKER root=PARTUUID=${esc(A.partuuid)} [^\\n]*ab=A upgrade_available=0 [^\\n]*mender_boot_part=2`),
      /otapack-update: running slot A, installing \S+untrusted\.mender into slot B \(\/dev\/vda3\)/, /invalid signature/, /OTAPACK-UPDATE result=failed/,
      /OTAPACK-ENV-AFTER-REFUSED mender_boot_part=2 upgrade_available=0/,
      /otapack-update: running slot A, installing \S+update\.mender into slot B \(\/dev\/vda3\)/,
      /Enabling partition with new image installed to be a boot candidate: 3/, /OTAPACK-UPDATE result=ok/,
      /OTAPACK-TEST poweroff/,
    ]);
    expect(r1.missing, r1.log.slice(-5000)).toEqual([]);
    expect(r1.exitedCleanly).toBe(true);
    expect(await env()).toMatchObject({ mender_boot_part: '3', mender_boot_part_hex: '3', upgrade_available: '1', bootcount: '0' });
    expect(String(await readExt4File(c1.view, B.number, '/etc/otapack-test/version')).trim()).toBe('2.0.0');
    expect(String(await readExt4File(c1.view, A.number, '/etc/otapack-test/version')).trim()).toBe('1.0.0');

    // ---- power-on 2: trial boot of B; otapack-commit runs `mender commit`; B then installs the broken release 3 into A
    await writeTestInput(c1.view, data.number, {
      files: { 'broken.mender': readFileSync(join(work, 'broken.mender')) },
      commands: ['echo OTAPACK-ARTIFACT $(mender show-artifact 2>/dev/null)', `update ${T}/broken.mender`, 'poweroff'], resetBootCount: false,
    }, WORK);
    const r2 = await boot('2-slotB-trial-commit-update', 'arm64', disk, 420_000, [
      /otapack: booting slot B \(partition 3\) bootcount=1 upgrade_available=1/,
      new RegExp(`OTAPACK-EARLY root=PARTUUID=${esc(B.partuuid)} [^\\n]*upgrade_available=1 bootcount=1 [^\\n]*version=2\\.0\\.0 mender_boot_part=3`),
      /otapack-commit: slot B committed/,
      new RegExp(`OTAPACK-MARKER root=PARTUUID=${esc(B.partuuid)} [^\\n]*ab=B upgrade_available=0 [^\\n]*mender_boot_part=3`),
      /OTAPACK-ARTIFACT 2\.0\.0/,
      /otapack-update: running slot B, installing \S+broken\.mender into slot A \(\/dev\/vda2\)/, /OTAPACK-UPDATE result=ok/,
      /OTAPACK-TEST poweroff/,
    ]);
    expect(r2.missing, r2.log.slice(-5000)).toEqual([]);
    expect(r2.exitedCleanly).toBe(true);
    expect(await env()).toMatchObject({ mender_boot_part: '2', upgrade_available: '1', bootcount: '0' });

    // ---- power-on 3: A fails bootlimit (2) trial boots, U-Boot falls back to B; Mender still runs release 2
    await writeTestInput(c1.view, data.number, { commands: ['cat /data/keep/proof.txt', 'echo OTAPACK-ARTIFACT $(mender show-artifact 2>/dev/null)', 'poweroff'], resetBootCount: false }, WORK);
    const r3 = await boot('3-slotA-broken-rollback', 'arm64', disk, 420_000, [
      /otapack: booting slot A \(partition 2\) bootcount=1 upgrade_available=1/,
      /halt: simulating a broken slot/, /Kernel panic - not syncing/,
      /otapack: booting slot A \(partition 2\) bootcount=2 upgrade_available=1/,
      /otapack: partition 2 failed 2 trial boots - falling back/,
      /otapack: booting slot B \(partition 3\) bootcount=0 upgrade_available=0/,
      /otapack-commit: slot B, nothing to commit/,
      new RegExp(`OTAPACK-MARKER root=PARTUUID=${esc(B.partuuid)} [^\\n]*ab=B upgrade_available=0 [^\\n]*version=2\\.0\\.0 mender_boot_part=3`),
      /written-on-slot-A-at-boot-1/,
      /OTAPACK-ARTIFACT 2\.0\.0/,
      /OTAPACK-TEST poweroff/,
    ]);
    expect(r3.missing, r3.log.slice(-6000)).toEqual([]);
    expect(r3.exitedCleanly).toBe(true);
    expect(r3.firmwareBoots).toBe(3);
    expect(ubootChoices(r3.log)).toEqual(['A p2 bootcount=1 upgrade_available=1', 'A p2 bootcount=2 upgrade_available=1', 'B p3 bootcount=0 upgrade_available=0']);
    expect(r3.log).not.toMatch(/otapack-commit: slot A/);
    expect(await env()).toMatchObject({ mender_boot_part: '3', mender_boot_part_hex: '3', upgrade_available: '0', bootcount: '0' });
    expect(String(await readExt4File(c1.view, data.number, '/keep/proof.txt')).trim()).toBe('written-on-slot-A-at-boot-1');
    const sequence = [r1, r2, r3].flatMap((r) => r.log.split('\n').filter((l) => /^otapack: (booting|partition)|^OTAPACK-(EARLY|MARKER|UPDATE|ARTIFACT)|^otapack-(commit|update):/.test(l)));
    console.log(['mender marker sequence:', ...sequence.map((l) => `  ${l}`)].join('\n'));
    mkdirSync(ARTIFACTS, { recursive: true });
    writeFileSync(join(ARTIFACTS, 'convert-mender-sequence.txt'), sequence.join('\n') + '\n');
  }, 1_800_000);

  it('x86-64 EFI image (GRUB): A boots, mender installs into B through otapack\'s grubenv tools, the trial boot of B commits', async () => {
    keepLogsOnFailure();
    const keys = await ecKey('efi');
    const input = await timed('build x86-64 EFI/GRUB input with mender-client', () => buildEfiGrubDisk({ dir: join(WORK, 'input-efi'), name: 'efi', tree: { mender: true } }));
    const c = await convert(input, 'efi', keys, 'client: mender\nmender: { device-type: otapack-qemu }\nstorage:\n  device: /dev/vda\n  data-size: 96M\nbootlimit: 2\n');
    const A = c.part('rootfs-a');
    const B = c.part('rootfs-b');
    expect(c.report.boot.bootloader).toBe('grub');
    const grubenv = async (): Promise<Record<string, string>> => {
      const f = join(WORK, 'efi-grubenv');
      writeFileSync(f, (await readFatFile(c.view, c.part('boot').number, c.report.boot.envFile))!);
      return Object.fromEntries((await sh('grub-editenv', [f, 'list'])).split('\n').filter((l) => l.includes('=')).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
    };
    expect(await grubenv()).toMatchObject({ mender_boot_part: '2', upgrade_available: '0' });
    // the artifact convert made with this disk (slot A's image), installed into B
    await writeTestInput(c.view, c.part('data').number, { files: { 'update.mender': readFileSync(c.mender) }, commands: [`update ${T}/update.mender`, 'poweroff'] }, WORK);
    const r = await boot('efi-slotA-update', 'x86_64', c.img, 420_000, [
      /otapack: booting slot A \(partition 2\) bootcount=0 upgrade_available=0/,
      new RegExp(`OTAPACK-MARKER root=PARTUUID=${esc(A.partuuid)} [^\\n]*ab=A upgrade_available=0 [^\\n]*mender_boot_part=2`),
      /otapack-update: running slot A, installing \S+update\.mender into slot B \(\/dev\/vda3\)/,
      /Enabling partition with new image installed to be a boot candidate: 3/, /OTAPACK-UPDATE result=ok/,
      /OTAPACK-TEST poweroff/,
    ]);
    expect(r.missing, r.log.slice(-5000)).toEqual([]);
    expect(r.exitedCleanly).toBe(true);
    expect(await grubenv()).toMatchObject({ mender_boot_part: '3', mender_boot_part_hex: '3', upgrade_available: '1', bootcount: '0' });

    await writeTestInput(c.view, c.part('data').number, { commands: ['echo OTAPACK-ARTIFACT $(mender show-artifact 2>/dev/null)', 'poweroff'], resetBootCount: false }, WORK);
    const r2 = await boot('efi-slotB-trial-commit', 'x86_64', c.img, 300_000, [
      /otapack: booting slot B \(partition 3\) bootcount=1 upgrade_available=1/,
      new RegExp(`OTAPACK-EARLY root=PARTUUID=${esc(B.partuuid)} [^\\n]*upgrade_available=1 bootcount=1 `),
      /otapack-commit: slot B committed/,
      new RegExp(`OTAPACK-MARKER root=PARTUUID=${esc(B.partuuid)} [^\\n]*ab=B upgrade_available=0 [^\\n]*mender_boot_part=3`),
      /OTAPACK-ARTIFACT 1\.0\.0/,
      /OTAPACK-TEST poweroff/,
    ]);
    expect(r2.missing, r2.log.slice(-5000)).toEqual([]);
    expect(r2.exitedCleanly).toBe(true);
    expect(await grubenv()).toMatchObject({ mender_boot_part: '3', upgrade_available: '0' });
  }, 1_200_000);
});
