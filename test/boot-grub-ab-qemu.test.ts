// The generated GRUB A/B configuration under real GRUB (Debian grub-efi 2.06 modules, grub-mkimage)
// on OVMF. Each boot is one bounded QEMU run; the grubenv block is read back on the host after
// each boot with mtools + decodeGrubenv and grub-editenv. The board step is a stub grub.cfg inside
// each slot that prints a marker and halts. The GRUB is built like Buildroot's (no regexp, no
// probe); a last case has the minimum only in a module folder on the ESP, insmod'ed. ~65 s.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { decodeGrubenv, encodeGrubenv } from '../src/boot/grubenv.js';
import { generateGrubAbConfig, initialGrubAbEnv, patchGrubCfg, type GrubAbOptions } from '../src/boot/grub-ab.js';
import { parseAbMarkers } from './helpers/boot-ab.js';
import { SWUPDATE_BOOT_SCHEME } from '../src/clients/swupdate/scheme.js';
import { bootOvmf, buildDisk, buildGrubEfi, GPT_PART_GUID, OVMF_CODE, readFatFile, troubleLines, writeFatFile, type BootRun, type Disk } from './helpers/boot-disk.js';
import { makeTmp, must, saveArtifact, tool } from './helpers/boot-tools.js';
import { requires } from './helpers/require-tool.js';
import { readGrubImage, BUILDROOT_GRUB_EFI_MODULES } from '../src/boot/grub-image.js';
import { checkGrub, GRUB_MINIMUM_MODULES } from '../src/boot/loader.js';

const have = requires({
  what: 'GRUB A/B under QEMU', files: [OVMF_CODE, '/usr/lib/grub/x86_64-efi/loadenv.mod'], tools: ['qemu-system-x86_64', 'grub-mkimage'],
  install: 'apt-get install ovmf grub-efi-amd64-bin grub-common qemu-system-x86',
});
const tmp = makeTmp('grub-ab');
const timings: string[] = [];
afterAll(() => {
  if (timings.length) saveArtifact('boot-grub-ab-qemu.timings.txt', timings.join('\n') + '\n');
  tmp.cleanup();
});

const ENV = 'EFI/BOOT/grubenv';
// what convert writes in: the slots' PARTUUIDs (this GRUB has no probe)
const PARTUUIDS = { a: GPT_PART_GUID(2), b: GPT_PART_GUID(3) };
let seq = 0;
async function boot(disk: Disk, name: string): Promise<BootRun> {
  const run = await bootOvmf(disk, 90);
  timings.push(`${name}: ${run.ms} ms${run.timedOut ? ' (timed out)' : ''}`);
  if (process.env.KEEP_BOOT_LOGS || run.timedOut || !/STUB grub/.test(run.log)) saveArtifact(`boot-grub-ab-qemu.${++seq}.${name}.log`, run.log);
  expect(run.timedOut, `${name} timed out; log saved in test-artifacts/`).toBe(false);
  return run;
}

function envOf(disk: Disk): { vars: Record<string, string>; valid: boolean; editenv: string } {
  const buf = readFatFile(disk, 1, ENV);
  expect(buf).not.toBeNull();
  const f = join(tmp.dir, `readback-${++seq}.grubenv`);
  writeFileSync(f, buf!);
  const d = decodeGrubenv(buf!);
  return { vars: d.vars, valid: d.valid, editenv: must('grub-editenv', [f, 'list']).stdout };
}

/** Stub board grub.cfg inside a slot: a patched "board" config whose linux line would get root=. */
function slotCfg(part: number, halt = true): string {
  const board = `set timeout=0\nmenuentry "board" {\n  linux /boot/bzImage root=/dev/sda${part} rootwait\n}\n`;
  const patched = patchGrubCfg(board, { kernelFrom: 'slot' }).text;
  // the stub prints what the patched board config would hand the kernel, then halts instead of booting
  return patched.replace(/menuentry[\s\S]*$/, `echo "STUB grub slot ${part} root=\${root} rootpart=\${rootpart}"\necho "STUB otapack_root=\${otapack_root}"\n${halt ? 'halt\n' : ''}`);
}

describe.skipIf(!have)("GRUB A/B configuration under QEMU (OVMF + a GRUB 2.06 built like Buildroot's: its default modules + otapack's minimum)", () => {
  let efi: Buffer;
  let disk: Disk;
  const opts: GrubAbOptions = { scheme: SWUPDATE_BOOT_SCHEME, slotA: 2, slotB: 3, envFile: '/EFI/BOOT/grubenv', partuuids: PARTUUIDS, boardStep: { kind: 'configfile', location: 'slot', path: '/boot/grub/grub.cfg' } };

  beforeAll(() => {
    efi = buildGrubEfi(tmp.dir);
    disk = buildDisk(tmp.dir, [
      { fs: 'fat', sizeMiB: 8, files: { 'EFI/BOOT/BOOTX64.EFI': efi, 'EFI/BOOT/grub.cfg': generateGrubAbConfig(opts), [ENV]: encodeGrubenv(initialGrubAbEnv(opts)) } },
      { fs: 'ext4', sizeMiB: 4, files: { 'boot/grub/grub.cfg': slotCfg(2) } },
      { fs: 'ext4', sizeMiB: 4, files: { 'boot/grub/grub.cfg': slotCfg(3) } },
    ], 'gpt');
  });

  it('default grubenv boots slot A with root=PARTUUID of partition 2 and leaves the block untouched', async () => {
    const before = readFatFile(disk, 1, ENV)!;
    const r = await boot(disk, 'default-env');
    expect(parseAbMarkers(r.log)).toEqual([{ slot: 'A', partition: 2, bootcount: '0', upgradeAvailable: '0' }]);
    expect(r.log).toContain('STUB grub slot 2 root=hd0,gpt2 rootpart=2');
    expect(r.log).toContain(`STUB otapack_root=PARTUUID=${GPT_PART_GUID(2).toLowerCase()}`);
    expect(troubleLines(r.log)).toEqual([]);
    // negative twin: nothing was saved
    expect(readFatFile(disk, 1, ENV)!.equals(before)).toBe(true);
  });

  it('trial of slot B counts 1, 2, then falls back to slot A (bootlimit=2); grub-editenv agrees', async () => {
    writeFatFile(disk, 1, ENV, encodeGrubenv([['rootpart', '3'], ['upgrade_available', '1'], ['bootcount', '0'], ['bootlimit', '2']]));
    const r1 = await boot(disk, 'trial-1');
    expect(parseAbMarkers(r1.log)).toEqual([{ slot: 'B', partition: 3, bootcount: '1', upgradeAvailable: '1' }]);
    expect(r1.log).toContain('STUB grub slot 3 root=hd0,gpt3 rootpart=3');
    expect(r1.log).toContain(`STUB otapack_root=PARTUUID=${GPT_PART_GUID(3).toLowerCase()}`);
    expect(troubleLines(r1.log)).toEqual([]);
    let env = envOf(disk);
    expect(env.valid).toBe(true);
    expect(env.vars).toEqual({ rootpart: '3', upgrade_available: '1', bootcount: '1', bootlimit: '2' });
    expect(env.editenv).toBe('rootpart=3\nupgrade_available=1\nbootcount=1\nbootlimit=2\n');

    const r2 = await boot(disk, 'trial-2');
    expect(parseAbMarkers(r2.log)).toEqual([{ slot: 'B', partition: 3, bootcount: '2', upgradeAvailable: '1' }]);
    expect(envOf(disk).vars.bootcount).toBe('2');
    expect(troubleLines(r2.log)).toEqual([]);

    const r3 = await boot(disk, 'trial-3-fallback');
    expect(r3.log).toContain('otapack: partition 3 failed 2 trial boots - falling back');
    expect(parseAbMarkers(r3.log)).toEqual([{ slot: 'A', partition: 2, bootcount: '0', upgradeAvailable: '0' }]);
    expect(r3.log).toContain('STUB grub slot 2 root=hd0,gpt2');
    // the limit came from grubenv (2, not the config's default 3), and nothing complained
    expect(troubleLines(r3.log)).toEqual([]);
    env = envOf(disk);
    expect(env.vars).toEqual({ rootpart: '2', upgrade_available: '0', bootcount: '0', bootlimit: '2', ustate: '3' });
    expect(env.editenv).toContain('ustate=3\n');
  });

  it('a corrupt grubenv boots slot A with a warning', async () => {
    const bad = Buffer.from(encodeGrubenv([['rootpart', '3']]));
    bad.write('X', 2);
    writeFatFile(disk, 1, ENV, bad);
    const r = await boot(disk, 'corrupt-env');
    expect(r.log).toContain('otapack: WARNING missing or unreadable: (hd0,gpt1)/EFI/BOOT/grubenv');
    expect(r.log).toContain('otapack: using the defaults (slot A)');
    // the negative twin of the healthy boots' check: this boot's trouble is seen
    expect(troubleLines(r.log).length).toBeGreaterThan(0);
    expect(parseAbMarkers(r.log)).toEqual([{ slot: 'A', partition: 2, bootcount: '0', upgradeAvailable: '0' }]);
    // GRUB cannot repair the block (save_env rewrites a valid block only): it is left as it was
    expect(readFatFile(disk, 1, ENV)!.equals(bad)).toBe(true);
  });
});

describe.skipIf(!have)('GRUB trial whose board step fails: reboot, count and roll back in one QEMU run', () => {
  it('slot B without a board grub.cfg reboots until bootlimit, then slot A boots', async () => {
    const dir = join(tmp.dir, 'cycle');
    tool('mkdir', ['-p', dir]);
    const opts: GrubAbOptions = { scheme: SWUPDATE_BOOT_SCHEME, slotA: 2, slotB: 3, bootlimit: 1, partuuids: PARTUUIDS, boardStep: { kind: 'configfile', location: 'slot', path: '/boot/grub/grub.cfg' } };
    const disk = buildDisk(dir, [
      { fs: 'fat', sizeMiB: 8, files: {
        'EFI/BOOT/BOOTX64.EFI': buildGrubEfi(dir), 'EFI/BOOT/grub.cfg': generateGrubAbConfig(opts),
        [ENV]: encodeGrubenv([['rootpart', '3'], ['upgrade_available', '1'], ['bootcount', '0'], ['bootlimit', '1']]),
      } },
      { fs: 'ext4', sizeMiB: 4, files: { 'boot/grub/grub.cfg': slotCfg(2) } },
      { fs: 'ext4', sizeMiB: 4, files: { 'etc/hostname': 'broken\n' } },
    ], 'gpt');
    const r = await boot(disk, 'reboot-cycle');
    expect(parseAbMarkers(r.log)).toEqual([
      { slot: 'B', partition: 3, bootcount: '1', upgradeAvailable: '1' },
      { slot: 'A', partition: 2, bootcount: '0', upgradeAvailable: '0' },
    ]);
    expect(r.log).toContain('otapack: rebooting so the failed trial boot is counted');
    expect(r.log).toContain('STUB grub slot 2');
    expect(r.log).not.toContain('STUB grub slot 3');
    expect(decodeGrubenv(readFatFile(disk, 1, ENV)!).vars).toEqual({ rootpart: '2', upgrade_available: '0', bootcount: '0', bootlimit: '1', ustate: '3' });
  });
});

describe.skipIf(!have)("GRUB with only Buildroot's default modules built in and a module folder on the ESP (grub-install style)", () => {
  const MODDIR = '/usr/lib/grub/x86_64-efi';
  /** The modules and every module they depend on (moddep.lst), as grub-install would have copied them. */
  function closure(names: readonly string[]): string[] {
    const deps = new Map(readFileSync(join(MODDIR, 'moddep.lst'), 'utf8').split('\n').filter(Boolean).map((l) => {
      const [m, rest] = l.split(':');
      return [m!, (rest ?? '').trim().split(/\s+/).filter(Boolean)] as const;
    }));
    const out = new Set<string>();
    const add = (m: string): void => { if (!out.has(m)) { out.add(m); for (const d of deps.get(m) ?? []) add(d); } };
    names.forEach(add);
    return [...out].sort();
  }

  it("convert's check insmods the minimum from the folder, and slot A boots without trouble; without the insmods the same GRUB fails (negative twin)", async () => {
    const dir = join(tmp.dir, 'module-folder');
    tool('mkdir', ['-p', dir]);
    const efi = buildGrubEfi(dir, [...BUILDROOT_GRUB_EFI_MODULES, 'halt']);
    const folder = closure(GRUB_MINIMUM_MODULES);
    const check = checkGrub(
      { kind: 'grub', source: 'ESP (partition 1) /EFI/BOOT/BOOTX64.EFI', path: '/EFI/BOOT/BOOTX64.EFI', image: readGrubImage(efi)!, folder: { where: 'esp', path: '/EFI/BOOT/x86_64-efi', modules: folder }, notes: [] },
      { partmap: 'gpt', readsSlot: true, step: 'configfile' },
    );
    expect(check.missing).toEqual([]);
    expect(check.insmod).toEqual(['loadenv', 'test', 'echo', 'configfile', 'reboot']);
    const opts: GrubAbOptions = { scheme: SWUPDATE_BOOT_SCHEME, slotA: 2, slotB: 3, envFile: '/EFI/BOOT/grubenv', partuuids: PARTUUIDS, boardStep: { kind: 'configfile', location: 'slot', path: '/boot/grub/grub.cfg' } };
    const mods = Object.fromEntries(folder.map((m) => [`EFI/BOOT/x86_64-efi/${m}.mod`, readFileSync(join(MODDIR, `${m}.mod`))]));
    const disk = (cfg: string, sub: string): Disk => {
      const d = join(dir, sub);
      tool('mkdir', ['-p', d]);
      return buildDisk(d, [
        { fs: 'fat', sizeMiB: 8, files: { 'EFI/BOOT/BOOTX64.EFI': efi, 'EFI/BOOT/grub.cfg': cfg, [ENV]: encodeGrubenv(initialGrubAbEnv(opts)), ...mods } },
        { fs: 'ext4', sizeMiB: 4, files: { 'boot/grub/grub.cfg': slotCfg(2) } },
        { fs: 'ext4', sizeMiB: 4, files: { 'boot/grub/grub.cfg': slotCfg(3) } },
      ], 'gpt');
    };
    const r = await boot(disk(generateGrubAbConfig({ ...opts, insmod: check.insmod, rebootOnFailedTrial: check.reboot }), 'with'), 'module-folder-insmod');
    expect(parseAbMarkers(r.log)).toEqual([{ slot: 'A', partition: 2, bootcount: '0', upgradeAvailable: '0' }]);
    expect(r.log).toContain('STUB grub slot 2 root=hd0,gpt2 rootpart=2');
    expect(troubleLines(r.log)).toEqual([]);
    // the same GRUB and folder, the config without the insmods: GRUB cannot run it and stops at its
    // prompt (bounded at 20 s; nothing else ends that run)
    const bare = await bootOvmf(disk(generateGrubAbConfig(opts), 'without'), 20);
    expect(troubleLines(bare.log).join('\n')).toMatch(/can't find command/);
    expect(bare.log).not.toContain('STUB grub slot');
  });
});
