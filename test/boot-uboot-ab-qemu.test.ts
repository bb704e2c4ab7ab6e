// The generated U-Boot A/B boot script under real U-Boot (Debian u-boot-qemu, qemu_arm64 build,
// which has no ENV_IS_IN_FAT and no BOOTCOUNT_LIMIT). Each boot is one bounded QEMU run; the env
// file is read back on the host after each boot with mtools + decodeUbootEnv and fw_printenv -c.
// Board steps are stubs that print a marker and power off, so no kernel is needed.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { decodeUbootEnv, encodeUbootEnv } from '../src/boot/uboot-env.js';
import { encodeScriptImage } from '../src/boot/uboot-image.js';
import { buildUbootAbScript, initialUbootAbEnv, parseAbMarkers, type UbootAbOptions } from '../src/boot/uboot-ab.js';
import { bootUboot, buildDisk, deleteFatFile, DISK_ID, GPT_PART_GUID, readFatFile, writeFatFile, UBOOT_BIN, type BootRun, type Disk } from './helpers/boot-disk.js';
import { makeTmp, saveArtifact, tool } from './helpers/boot-tools.js';

const haveQemu = existsSync(UBOOT_BIN) && tool('sh', ['-c', 'command -v qemu-system-aarch64']).status === 0;
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

const base = { bootPart: 1, slotA: 2, slotB: 3, envFile: 'uboot.env' } as const;

let seq = 0;
async function boot(disk: Disk, name: string, expectPowerOff = true): Promise<BootRun> {
  const run = await bootUboot(disk, 60);
  timings.push(`${name}: ${run.ms} ms${run.timedOut ? ' (timed out)' : ''}`);
  const ok = !run.timedOut && (!expectPowerOff || /poweroff \.\.\./.test(run.log));
  if (!ok) saveArtifact(`boot-uboot-ab-qemu.${++seq}.${name}.log`, run.log);
  expect(run.timedOut, `${name} timed out; log saved in test-artifacts/`).toBe(false);
  return run;
}

function envOf(disk: Disk): { vars: Record<string, string>; crcOk: boolean; fw: Record<string, string> } {
  const buf = readFatFile(disk, 1, 'uboot.env');
  expect(buf, 'uboot.env exists on the boot partition').not.toBeNull();
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
        'uboot.env': encodeUbootEnv(initialUbootAbEnv(optsA)),
      } },
      { fs: 'ext4', sizeMiB: 4, files: slotFiles(2) },
      { fs: 'ext4', sizeMiB: 4, files: slotFiles(3) },
    ]);
  });

  it('default env boots slot A, runs the board script with root=PARTUUID of partition 2, and does not rewrite the file', async () => {
    const before = readFatFile(disk, 1, 'uboot.env')!;
    const run = await boot(disk, 'default-env');
    expect(parseAbMarkers(run.log)).toEqual([{ slot: 'A', partition: 2, bootcount: '0', upgradeAvailable: '0' }]);
    const id = DISK_ID.slice(2);
    expect(run.log).toContain(`STUB boot-partition-board-script rootpart=2 root=PARTUUID=${id}-02`);
    expect(run.log).not.toContain('WARNING');
    expect(run.log).not.toMatch(/bytes written/);
    // negative twin: slot B was not chosen and the file is byte-for-byte unchanged
    expect(run.log).not.toContain('booting slot B');
    expect(readFatFile(disk, 1, 'uboot.env')!.equals(before)).toBe(true);
  });

  it('trial of slot B counts 1, 2, then falls back to slot A with upgrade_available=0 (bootlimit=2)', async () => {
    writeFatFile(disk, 1, 'uboot.env', encodeUbootEnv({ rootpart: '3', upgrade_available: '1', bootcount: '0', bootlimit: '2' }));
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
    expect(r3.log).toContain('otapack: partition 3 failed 2 trial boots - falling back to the other slot');
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
    writeFatFile(disk, 1, 'uboot.env', encodeUbootEnv({ rootpart: '3', upgrade_available: '0', bootcount: '2', bootlimit: '2', ustate: '1' }));
    const before = readFatFile(disk, 1, 'uboot.env')!;
    const r = await boot(disk, 'committed-b');
    expect(parseAbMarkers(r.log)).toEqual([{ slot: 'B', partition: 3, bootcount: '2', upgradeAvailable: '0' }]);
    expect(readFatFile(disk, 1, 'uboot.env')!.equals(before)).toBe(true);
  });

  it('a corrupt env file boots slot A with a warning and is rewritten with defaults', async () => {
    const good = encodeUbootEnv({ rootpart: '3', upgrade_available: '0', bootcount: '0', bootlimit: '3' });
    const corrupt = Buffer.from(good);
    corrupt[20] ^= 0x55;
    writeFatFile(disk, 1, 'uboot.env', corrupt);
    expect(decodeUbootEnv(corrupt).crcOk).toBe(false);
    const r = await boot(disk, 'corrupt-env');
    expect(r.log).toContain('otapack: WARNING uboot.env on partition 1 is missing or corrupt');
    expect(r.log).toContain('otapack: using the defaults (slot A) and rewriting the file');
    expect(parseAbMarkers(r.log)).toEqual([{ slot: 'A', partition: 2, bootcount: '0', upgradeAvailable: '0' }]);
    const env = envOf(disk);
    expect(env.crcOk).toBe(true);
    expect(env.vars).toEqual({ rootpart: '2', upgrade_available: '0', bootcount: '0', bootlimit: '3' });
    expect(env.fw.rootpart).toBe('2');
  });

  it('a missing env file boots slot A with a warning and is created', async () => {
    deleteFatFile(disk, 1, 'uboot.env');
    expect(readFatFile(disk, 1, 'uboot.env')).toBeNull();
    const r = await boot(disk, 'missing-env');
    expect(r.log).toContain('otapack: WARNING uboot.env on partition 1 is missing or corrupt');
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
        'uboot.env': encodeUbootEnv({ rootpart: '3', upgrade_available: '1', bootcount: '0', bootlimit: '2' }),
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
    const env = decodeUbootEnv(readFatFile(disk, 1, 'uboot.env')!);
    expect(env).toEqual({ vars: { rootpart: '2', upgrade_available: '0', bootcount: '0', bootlimit: '2', ustate: '3' }, crcOk: true });
  });
});
