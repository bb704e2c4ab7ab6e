// The board boot-script patcher on realistic Buildroot, Armbian and extlinux inputs, plus refusals.
import { describe, expect, it } from 'vitest';
import { patchBootScript, patchBootScriptImage, patchExtlinuxConf } from '../src/boot/board-script.js';
import { decodeScriptImage, encodeScriptImage } from '../src/boot/uboot-image.js';
import { assertHushSafe } from '../src/boot/uboot-ab.js';
import { OtapackError } from '../src/errors.js';
import {
  ARMBIAN_CMD, BUILDROOT_ONELINE_CMD, BUILDROOT_ROOTFS_KERNEL_CMD, BUILDROOT_SUNXI_CMD, EXTLINUX_CONF,
} from './helpers/boot-fixtures.js';

describe('patchBootScript', () => {
  it('Buildroot sunxi: root= becomes ${otapack_root}; loads from the FAT boot partition stay', () => {
    const r = patchBootScript(BUILDROOT_SUNXI_CMD, { oldRootPart: 2, scriptPart: 1 });
    expect(r.text.split('\n')[0]).toBe('setenv bootargs console=ttyS0,115200 root=${otapack_root} rootwait panic=10');
    expect(r.text).toContain('fatload mmc 0 $kernel_addr_r zImage');
    expect(r.edits).toEqual([{ line: 1, kind: 'root-arg', before: 'setenv bootargs console=ttyS0,115200 root=/dev/mmcblk0p2 rootwait panic=10', after: 'setenv bootargs console=ttyS0,115200 root=${otapack_root} rootwait panic=10' }]);
    expect(r.text).not.toContain('mmcblk0p2');
  });

  it('one-line Buildroot script: root= and the load from old root partition 2 are rewritten, 0:1 stays', () => {
    const r = patchBootScript(BUILDROOT_ONELINE_CMD, { oldRootPart: 2, scriptPart: 1 });
    expect(r.text).toBe('setenv bootargs console=ttyS0 root=${otapack_root} rootwait; fatload mmc 0:1 ${kernel_addr_r} Image; ext4load ${devtype} ${devnum}:${rootpart} ${fdt_addr_r} /boot/board.dtb; booti ${kernel_addr_r} - ${fdt_addr_r}\n');
    expect(r.edits.map((e) => e.kind)).toEqual(['root-arg', 'root-partition']);
    // negative twin: with the rootfs on partition 1, 0:1 would be the one rewritten
    const r1 = patchBootScript(BUILDROOT_ONELINE_CMD, { oldRootPart: 1, scriptPart: 1 });
    expect(r1.text).toContain('fatload ${devtype} ${devnum}:${rootpart} ${kernel_addr_r} Image');
    expect(r1.text).toContain('ext4load mmc 0:2');
  });

  it('kernel in the rootfs via ${devtype} ${devnum}:2', () => {
    const r = patchBootScript(BUILDROOT_ROOTFS_KERNEL_CMD, { oldRootPart: 2, scriptPart: 1 });
    expect(r.text).toContain('setenv bootargs "console=ttymxc0,115200 root=${otapack_root} rootwait ro"');
    expect(r.text).toContain('load ${devtype} ${devnum}:${rootpart} ${kernel_addr_r} /boot/Image');
    expect(r.text).toContain('load ${devtype} ${devnum}:${rootpart} ${fdt_addr_r} /boot/imx8mm-evk.dtb');
    expect(r.edits.filter((e) => e.kind === 'root-partition')).toHaveLength(2);
  });

  it('Armbian: loads without a partition, part uuid :1, rootdev default and after env import -t', () => {
    const r = patchBootScript(ARMBIAN_CMD, { oldRootPart: 1 });
    const t = r.text;
    expect(t).toContain('if test -e ${devtype} ${devnum}:${rootpart} ${prefix}armbianEnv.txt; then');
    expect(t).toContain('\tload ${devtype} ${devnum}:${rootpart} ${load_addr} ${prefix}armbianEnv.txt\n\tenv import -t ${load_addr} ${filesize}\n\tsetenv rootdev ${otapack_root}\nfi');
    expect(t).toContain('setenv rootdev ${otapack_root}\nsetenv verbosity "1"');
    expect(t).toContain('part uuid ${devtype} ${devnum}:${rootpart} partuuid');
    expect(t).toContain('setenv bootargs "root=${otapack_root} rootwait rootfstype=${rootfstype}');
    expect(t).toContain('load ${devtype} ${devnum}:${rootpart} ${kernel_addr_r} ${prefix}Image');
    expect(t).toContain('load ${devtype} ${devnum}:${rootpart} ${fdt_addr_r} ${prefix}dtb/${fdtfile}');
    // comments and the echo line are untouched
    expect(t).toContain('# mkimage -C none -A arm -T script -d /boot/boot.cmd /boot/boot.scr');
    expect(t).toContain('echo "Boot script loaded from ${devtype} ${devnum}"');
    const kinds = r.edits.map((e) => e.kind);
    expect(kinds).toContain('rootdev');
    expect(kinds).toContain('rootdev-after-import');
    expect(kinds.filter((k) => k === 'root-partition')).toHaveLength(6);
    expect(t).not.toMatch(/\$\{devnum\} \$\{(load_addr|ramdisk_addr_r|kernel_addr_r|fdt_addr_r|prefix)\}/);
    // patching twice changes nothing more
    const again = patchBootScript(t, { oldRootPart: 1 });
    expect(again.edits).toEqual([]);
    expect(again.text).toBe(t);
  });

  it('rewrites ${distro_bootpart} only when the script lived on the old rootfs', () => {
    const s = 'setenv bootargs root=/dev/sda2\nload ${devtype} ${devnum}:${distro_bootpart} ${kernel_addr_r} /boot/Image\n';
    expect(patchBootScript(s, { oldRootPart: 2 }).text).toContain('load ${devtype} ${devnum}:${rootpart} ${kernel_addr_r}');
    expect(patchBootScript(s, { oldRootPart: 2, scriptPart: 1 }).text).toContain('load ${devtype} ${devnum}:${distro_bootpart} ${kernel_addr_r}');
  });

  it('moves boot-partition references when the boot partition number changed', () => {
    const s = 'setenv bootargs root=/dev/mmcblk0p2\nfatload mmc 0:1 ${kernel_addr_r} zImage\n';
    const r = patchBootScript(s, { oldRootPart: 2, scriptPart: 1, bootPartMove: { from: 1, to: 4 } });
    expect(r.text).toContain('fatload mmc 0:4 ${kernel_addr_r} zImage');
    expect(r.edits.map((e) => e.kind)).toEqual(['root-arg', 'boot-partition']);
  });

  it('keeps CRLF line endings', () => {
    const r = patchBootScript('setenv bootargs root=/dev/mmcblk0p2 rootwait\r\nbootz\r\n', { oldRootPart: 2, scriptPart: 1 });
    expect(r.text).toBe('setenv bootargs root=${otapack_root} rootwait\r\nbootz\r\n');
  });

  it('refuses a script with no root= and no rootdev, and one that sets rootpart itself', () => {
    expect(() => patchBootScript('fatload mmc 0 $kernel_addr_r zImage\nbootz $kernel_addr_r\n', { oldRootPart: 2, scriptPart: 1, name: 'boot.cmd' }))
      .toThrow(/boot.cmd: no root= on a setenv line and no rootdev variable found/);
    // root= only in a comment does not count
    expect(() => patchBootScript('# setenv bootargs root=/dev/mmcblk0p2\nbootz\n', { oldRootPart: 2 })).toThrow(OtapackError);
    expect(() => patchBootScript('setenv rootpart 2\nsetenv bootargs root=/dev/mmcblk0p${rootpart}\n', { oldRootPart: 2 }))
      .toThrow(/sets its own "rootpart"/);
    expect(() => patchBootScript('setenv bootargs root=/dev/x\n', { oldRootPart: 0 })).toThrow(/not a partition number/);
  });

  it('patched realistic scripts stay free of hush hazards', () => {
    for (const [src, o] of [[ARMBIAN_CMD, { oldRootPart: 1 }], [BUILDROOT_ROOTFS_KERNEL_CMD, { oldRootPart: 2, scriptPart: 1 }]] as const) {
      const t = patchBootScript(src, o).text;
      // the fixtures echo a double-quoted string; our lint is stricter than hush, so only check apostrophes and length
      expect(t.includes("'")).toBe(false);
      expect(() => assertHushSafe(t.replace(/^echo .*$/gm, ''), 'patched')).not.toThrow();
    }
  });
});

describe('patchBootScriptImage', () => {
  it('patches a compiled boot.scr and keeps its name; refuses a corrupt one', () => {
    const scr = encodeScriptImage(ARMBIAN_CMD, 'armbian boot', { time: 5 });
    const r = patchBootScriptImage(scr, { oldRootPart: 1 }, { time: 5 });
    expect(r.name).toBe('armbian boot');
    const d = decodeScriptImage(r.image);
    expect(d).toMatchObject({ name: 'armbian boot', headerCrcOk: true, dataCrcOk: true });
    expect(d.text).toBe(r.text);
    expect(d.text).toContain('setenv rootdev ${otapack_root}');
    const bad = Buffer.from(scr);
    bad[200] ^= 1;
    expect(() => patchBootScriptImage(bad, { oldRootPart: 1 })).toThrow(/boot.scr: data CRC mismatch/);
    expect(() => patchBootScriptImage(Buffer.from('d00dfeed'.padEnd(128, '0'), 'hex'), { oldRootPart: 1 })).toThrow(/FIT image/);
  });
});

describe('patchExtlinuxConf', () => {
  it('points every append line at ${otapack_root}', () => {
    const r = patchExtlinuxConf(EXTLINUX_CONF);
    expect(r.text).toContain('  append earlycon=uart8250,mmio32,0xff1a0000 root=${otapack_root} rootwait');
    expect(r.text).toContain('  kernel /boot/Image');
    expect(r.edits).toHaveLength(1);
    expect(r.text).not.toContain('b921b045');
  });

  it('refuses a file without append lines or with an append line lacking root=', () => {
    expect(() => patchExtlinuxConf('label x\n  kernel /Image\n')).toThrow(/no append line/);
    expect(() => patchExtlinuxConf(EXTLINUX_CONF + 'label rescue\n  kernel /boot/Image\n  APPEND console=ttyS2\n'))
      .toThrow(/1 of 2 append lines have no root=/);
  });
});
