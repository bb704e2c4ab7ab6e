// Structure of the GRUB A/B configuration and the board grub.cfg patcher (the QEMU test proves
// the behaviour of the configfile step; the kernel step is checked here structurally only).
import { describe, expect, it } from 'vitest';
import { assertGrubConsoleSafe, generateGrubAbConfig, initialGrubAbEnv, patchGrubCfg, type GrubAbOptions } from '../src/boot/grub-ab.js';
import { encodeGrubenv } from '../src/boot/grubenv.js';
import { SWUPDATE_BOOT_SCHEME } from '../src/clients/swupdate/scheme.js';
import { OtapackError } from '../src/errors.js';

const base: GrubAbOptions = { scheme: SWUPDATE_BOOT_SCHEME, slotA: 2, slotB: 3, boardStep: { kind: 'configfile', location: 'slot', path: '/boot/grub/grub.cfg' } };

/** Buildroot pc_x86_64_efi style: kernel on the ESP, root by PARTUUID. */
const BUILDROOT_EFI_CFG = `set default="0"
set timeout="5"

menuentry "Buildroot" {
\tlinux /bzImage root=PARTUUID=55fa40ec-cf36-4d3e-a1b6-4b8a66b5e2b4 rootwait console=tty1
}
`;

/** Debian style: search by filesystem UUID, kernel and initrd in the rootfs /boot. */
const DEBIAN_CFG = `insmod part_gpt
insmod ext2
search --no-floppy --fs-uuid --set=root 0c7ef3a4-8a4e-4b57-9c3d-123456789abc
menuentry 'Debian GNU/Linux' --class debian {
\tsearch --no-floppy --fs-uuid --set=root 0c7ef3a4-8a4e-4b57-9c3d-123456789abc
\techo\t'Loading Linux ...'
\tlinux\t/boot/vmlinuz-6.1.0-18-amd64 root=UUID=0c7ef3a4-8a4e-4b57-9c3d-123456789abc ro quiet
\tinitrd\t/boot/initrd.img-6.1.0-18-amd64
}
`;

describe('generateGrubAbConfig', () => {
  it('loads and saves exactly the state variables on the ESP and counts with a lookup chain', () => {
    const t = generateGrubAbConfig(base);
    expect(t).not.toMatch(/@[A-Z_]+@/);
    expect(t).toContain('set otapack_env="(${root})/EFI/BOOT/grubenv"');
    expect(t).toContain('load_env --file "${otapack_env}" rootpart upgrade_available bootcount bootlimit ustate');
    expect(t).toContain('save_env --file "${otapack_env}" rootpart upgrade_available bootcount bootlimit ustate');
    expect(t).toContain('elif [ "${bootcount}" = "8" ]; then set bootcount=9');
    expect(t).toContain('set otapack_rootdev="${otapack_disk},gpt${rootpart}"');
    expect(t).toContain('probe --set=otapack_partuuid --part-uuid "(${otapack_rootdev})"');
    expect(t).toContain('export otapack_root');
    expect(t).toContain('configfile "(${otapack_rootdev})/boot/grub/grub.cfg"');
    // save_env only inside the "changed" branch
    const save = t.indexOf('save_env --file');
    expect(t.lastIndexOf('if [ "${otapack_dirty}" = "1" ]; then', save)).toBeGreaterThan(0);
  });

  it('supports known PARTUUIDs, msdos tables, an ESP board config and the kernel step', () => {
    const t = generateGrubAbConfig({
      ...base, partmap: 'msdos', partuuids: { a: '5EEDB007-02', b: '5eedb007-03' }, envFile: '/grub/grubenv',
      boardStep: { kind: 'configfile', location: 'esp', path: '/EFI/BOOT/grub-board.cfg' },
    });
    expect(t).toContain('set otapack_rootdev="${otapack_disk},msdos${rootpart}"');
    expect(t).toContain('then set otapack_partuuid=5eedb007-03; else set otapack_partuuid=5eedb007-02; fi');
    expect(t).not.toContain('probe --set');
    expect(t).toContain('configfile "(${root})/EFI/BOOT/grub-board.cfg"');
    const k = generateGrubAbConfig({ ...base, boardStep: { kind: 'kernel', kernel: '/boot/bzImage', initrd: '/boot/initrd.img', bootargs: 'console=ttyS0 rootwait' } });
    expect(k).toContain('set root="${otapack_rootdev}"');
    expect(k).toContain('  linux "/boot/bzImage" console=ttyS0 rootwait root=${otapack_root}');
    expect(k).toContain('  initrd "/boot/initrd.img"');
  });

  it('refuses bad options', () => {
    const bad = (o: Partial<GrubAbOptions>, re: RegExp): void => {
      expect(() => generateGrubAbConfig({ ...base, ...o } as GrubAbOptions)).toThrow(re);
    };
    bad({ slotB: 2 }, /different partitions/);
    bad({ bootlimit: 12 }, /bootlimit 12 must be 1..9/);
    bad({ envFile: 'grubenv' }, /envFile/);
    bad({ partuuids: { a: 'nope', b: 'x' } }, /partuuids/);
    bad({ boardStep: { kind: 'kernel', kernel: '/boot/bzImage', bootargs: 'root=/dev/sda2' } }, /must not contain root=/);
    bad({ boardStep: { kind: 'kernel', kernel: '/boot/bzImage', bootargs: 'quiet "x"' } }, /quotes/);
    bad({ boardStep: { kind: 'configfile', location: 'usb', path: '/x' } as never }, /esp or slot/);
    bad({ envFile: '/a/very/long/path/to/the/otapack/state/grubenv/file' }, /wraps on the EFI console/);
  });

  it('initial env encodes into a valid block', () => {
    expect(initialGrubAbEnv(base)).toEqual([['rootpart', '2'], ['upgrade_available', '0'], ['bootcount', '0'], ['bootlimit', '3']]);
    expect(encodeGrubenv(initialGrubAbEnv(base, 'B')).toString('latin1')).toContain('rootpart=3\n');
  });

  it('console lint: 79 columns pass, 80 fail', () => {
    expect(() => assertGrubConsoleSafe(`echo "${'x'.repeat(79)}"`)).not.toThrow();
    expect(() => assertGrubConsoleSafe(`echo "${'x'.repeat(80)}"`)).toThrow(OtapackError);
  });
});

describe('patchGrubCfg', () => {
  it('Buildroot EFI (kernel on the ESP): only root= changes', () => {
    const r = patchGrubCfg(BUILDROOT_EFI_CFG, { kernelFrom: 'esp' });
    expect(r.text).toContain('\tlinux /bzImage root=${otapack_root} rootwait console=tty1');
    expect(r.text).not.toContain('set root=');
    expect(r.edits).toHaveLength(1);
  });

  it('Debian style (kernel in the slot): search --set=root lines point at the slot, root=UUID is replaced', () => {
    const r = patchGrubCfg(DEBIAN_CFG, { kernelFrom: 'slot' });
    expect(r.text).not.toContain('search --no-floppy');
    expect(r.text.match(/set root="\$\{otapack_rootdev\}"/g)).toHaveLength(2);
    expect(r.text).toContain('\tlinux\t/boot/vmlinuz-6.1.0-18-amd64 root=${otapack_root} ro quiet');
    expect(r.text).toContain("\techo\t'Loading Linux ...'");
    expect(r.edits.map((e) => e.kind)).toEqual(['root-partition', 'root-partition', 'root-arg']);
    // negative twin: with kernelFrom esp the search lines stay
    expect(patchGrubCfg(DEBIAN_CFG, { kernelFrom: 'esp' }).text).toContain('search --no-floppy --fs-uuid --set=root');
  });

  it('kernelFrom slot adds a root line when the config has none', () => {
    const r = patchGrubCfg(BUILDROOT_EFI_CFG, { kernelFrom: 'slot' });
    expect(r.text.startsWith('set root="${otapack_rootdev}"\n')).toBe(true);
  });

  it('refuses configs without a linux line or without root=', () => {
    expect(() => patchGrubCfg('set timeout=0\n', { kernelFrom: 'esp', name: 'grub.cfg' })).toThrow(/grub.cfg: no linux line/);
    expect(() => patchGrubCfg('menuentry x {\n linux /bzImage quiet\n}\n', { kernelFrom: 'esp' })).toThrow(/no linux line has root=/);
  });
});
