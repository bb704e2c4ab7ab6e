// Structure of the generated U-Boot A/B script (the QEMU test proves its behaviour): options are
// validated, every board step renders, the hush lint catches what broke real boots.
import { describe, expect, it } from 'vitest';
import {
  assertHushSafe, fwEnvConfigLine, generateUbootAbScript, initialUbootAbEnv,
  ubootPartToken, UBOOT_AB_IMAGE_NAME, type UbootAbOptions, type UbootBoardStep,
} from '../src/boot/uboot-ab.js';
import { trialBootEnv } from '../src/boot/scheme.js';
import { SWUPDATE_BOOT_SCHEME } from '../src/clients/swupdate/scheme.js';
import { buildUbootAbScript, parseAbMarkers } from './helpers/boot-ab.js';
import { decodeScriptImage } from '../src/boot/uboot-image.js';
import { OtapackError } from '../src/errors.js';

const base: UbootAbOptions = { scheme: SWUPDATE_BOOT_SCHEME, bootPart: 1, slotA: 2, slotB: 3, boardStep: { kind: 'boot-script', file: 'board.scr' } };
const steps: UbootBoardStep[] = [
  { kind: 'boot-script', file: 'board.scr' },
  { kind: 'slot-script' },
  { kind: 'slot-script', path: '/boot/boot.scr', prefix: '/boot/' },
  { kind: 'extlinux', location: 'slot' },
  { kind: 'extlinux', location: 'boot' },
  { kind: 'kernel', kernel: '/boot/zImage', bootargs: 'console=ttyS0,115200 rootwait', bootCmd: 'bootz' },
  { kind: 'kernel', kernel: '/boot/Image', initrd: '/boot/uInitrd', initrdFormat: 'uimage', fdt: '/boot/dtb/${fdtfile}', bootargs: 'console=ttyAMA0' },
];

describe('generateUbootAbScript', () => {
  it('renders every board step with no placeholder left and passes the hush lint', () => {
    for (const boardStep of steps) {
      const t = generateUbootAbScript({ ...base, boardStep });
      expect(t).not.toMatch(/@[A-Z_]+@/);
      expect(() => assertHushSafe(t)).not.toThrow();
      expect(t).toContain('env import -c ${otapack_envaddr} 0x4000 rootpart upgrade_available bootcount bootlimit ustate');
      expect(t).toContain('fatwrite ${devtype} ${devnum}:${otapack_bootpart} ${otapack_envaddr} ${otapack_envfile} 0x4000');
      expect(t).toContain('setenv otapack_envaddr ${pxefile_addr_r}');
      expect(t).not.toMatch(/load [^\n]*\$\{loadaddr\}/);
    }
  });

  it('uses the step-specific commands', () => {
    const g = (s: UbootBoardStep): string => generateUbootAbScript({ ...base, boardStep: s });
    expect(g(steps[0]!)).toContain('if load ${devtype} ${devnum}:${otapack_bootpart} ${scriptaddr} board.scr; then');
    expect(g(steps[1]!)).toMatch(/setenv prefix \/boot\/\nsetenv distro_bootpart \$\{rootpart\}\nif load \$\{devtype\} \$\{devnum\}:\$\{rootpart\} \$\{scriptaddr\} \/boot\/boot.scr; then/);
    expect(g(steps[3]!)).toContain('sysboot ${devtype} ${devnum}:${rootpart} any ${scriptaddr} /boot/extlinux/extlinux.conf');
    expect(g(steps[4]!)).toContain('sysboot ${devtype} ${devnum}:${otapack_bootpart} any ${scriptaddr} /otapack/extlinux.conf');
    expect(g(steps[5]!)).toContain('setenv bootargs "console=ttyS0,115200 rootwait root=${otapack_root}"');
    expect(g(steps[5]!)).toContain('  bootz ${kernel_addr_r} ${otapack_initrd} ${otapack_fdt}');
    expect(g(steps[6]!)).toContain('setenv otapack_initrd ${ramdisk_addr_r}\n');
    expect(g({ kind: 'kernel', kernel: '/boot/Image', initrd: '/boot/i.gz', bootargs: '' })).toContain('setenv otapack_initrd ${ramdisk_addr_r}:${filesize}');
  });

  it('writes partition numbers in hexadecimal where U-Boot parses dev:part, decimal in the state', () => {
    const t = generateUbootAbScript({ ...base, bootPart: 12, slotA: 10, slotB: 11 });
    expect(t).toContain('setenv otapack_bootpart c');
    expect(t).toContain('if test "${rootpart}" = "11"; then\n  setenv otapack_slot B\n  setenv otapack_part b');
    expect(t).toContain('  setenv otapack_part a\n');
    expect(t).toContain('setenv rootpart 10\n');
    expect(ubootPartToken(16)).toBe('10');
  });

  it('can carry extra variables and a fallback root device', () => {
    const t = generateUbootAbScript({ ...base, extraVars: ['recovery_status', 'ota_note'], rootFallbackPrefix: '/dev/mmcblk0p' });
    expect(t).toContain('bootlimit ustate recovery_status ota_note');
    expect(t).toContain('setenv otapack_root /dev/mmcblk0p${rootpart}');
  });

  it('refuses bad options with one-line CONFIG errors', () => {
    const bad = (o: Partial<UbootAbOptions>, re: RegExp): void => {
      let err: unknown;
      try { generateUbootAbScript({ ...base, ...o } as UbootAbOptions); } catch (e) { err = e; }
      expect(err).toBeInstanceOf(OtapackError);
      expect((err as OtapackError).code).toBe('CONFIG');
      expect((err as Error).message).toMatch(re);
    };
    bad({ slotB: 2 }, /three different partitions/);
    bad({ slotA: 0 }, /partition number 1..128/);
    bad({ bootlimit: 10 }, /bootlimit 10 must be 1..9/);
    bad({ bootlimit: 0 }, /bootlimit 0 must be 1..9/);
    bad({ envFile: 'my env' }, /envFile/);
    bad({ envFile: '../x' }, /envFile/);
    bad({ extraVars: ['a', 'b', 'c', 'd', 'e', 'f'] }, /extra variables fit/);
    bad({ extraVars: ['bootcount'] }, /reserved/);
    bad({ extraVars: ['x y'] }, /letters, digits/);
    bad({ boardStep: { kind: 'kernel', kernel: '/boot/Image', bootargs: "console=tty0 it's" } }, /quotes/);
    bad({ boardStep: { kind: 'kernel', kernel: '/boot/Image', bootargs: 'root=/dev/sda2' } }, /must not contain root=/);
    bad({ boardStep: { kind: 'kernel', kernel: '/boot/Image', bootargs: 'a; reset' } }, /quotes, ;/);
    bad({ boardStep: { kind: 'extlinux', location: 'boot', path: '/extlinux/extlinux.conf' } }, /distro boot would start it before boot.scr/);
    bad({ boardStep: { kind: 'slot-script', prefix: 'boot' } }, /prefix/);
    bad({ boardStep: { kind: 'nope' } as unknown as UbootBoardStep }, /unknown board step/);
    bad({ rootFallbackPrefix: 'mmcblk0p' }, /rootFallbackPrefix/);
    bad({ envFile: 'uboot.env' }, /ENV_IS_IN_FAT loads as its own environment/);
    expect(generateUbootAbScript({ ...base, envFile: 'uboot.env', allowNativeEnvName: true })).toContain('setenv otapack_envfile uboot.env');
    expect(generateUbootAbScript(base)).toContain('setenv otapack_envfile otapack.env');
  });

  it('compiles to a legacy script image', () => {
    const img = buildUbootAbScript(base, { time: 1 });
    const d = decodeScriptImage(img);
    expect(d).toMatchObject({ name: UBOOT_AB_IMAGE_NAME, headerCrcOk: true, dataCrcOk: true, time: 1 });
    expect(d.text).toBe(generateUbootAbScript(base));
  });
});

describe('assertHushSafe', () => {
  it('catches the hush hazards seen on real U-Boot', () => {
    expect(() => assertHushSafe('echo "it\'s"')).toThrow(/apostrophe/);
    expect(() => assertHushSafe('# the board\'s script')).toThrow(/apostrophe/);
    expect(() => assertHushSafe('echo "quoted"')).toThrow(/quote characters/);
    const long = 'echo ' + Array.from({ length: 16 }, (_, i) => `w${i}`).join(' ');
    expect(() => assertHushSafe(long)).toThrow(/17 words, more than/);
    // negative twins: 16 words, quoted long setenv and compound lines are fine
    expect(() => assertHushSafe('echo ' + Array.from({ length: 15 }, (_, i) => `w${i}`).join(' '))).not.toThrow();
    expect(() => assertHushSafe(`setenv bootargs "${Array.from({ length: 30 }, (_, i) => `a${i}`).join(' ')}"`)).not.toThrow();
    expect(() => assertHushSafe('if test -z "${x}"; then setenv x 1; else setenv x 2; fi')).not.toThrow();
  });
});

describe('state helpers', () => {
  it('initial env, trial bootenv, fw_env.config line and marker parsing', () => {
    expect(initialUbootAbEnv(base)).toEqual({ bootcount: '0', bootlimit: '3', rootpart: '2', upgrade_available: '0' });
    expect(initialUbootAbEnv({ ...base, bootlimit: 5 }, 'B').rootpart).toBe('3');
    expect(trialBootEnv(SWUPDATE_BOOT_SCHEME, 3)).toEqual([{ name: 'rootpart', value: '3' }, { name: 'upgrade_available', value: '1' }, { name: 'bootcount', value: '0' }]);
    expect(fwEnvConfigLine('/boot/uboot.env')).toBe('/boot/uboot.env 0x0 0x4000');
    expect(() => fwEnvConfigLine('uboot.env')).toThrow(OtapackError);
    expect(parseAbMarkers('x\notapack: booting slot B (partition 3) bootcount=1 upgrade_available=1\ny'))
      .toEqual([{ slot: 'B', partition: 3, bootcount: '1', upgradeAvailable: '1' }]);
    expect(parseAbMarkers('otapack: booting slot C (partition 3)')).toEqual([]);
  });
});
