// Buildroot-style images (FAT boot + ext4 rootfs, MBR) in the variants real boards produce.
import { convertSuite } from './helpers/convert-suite.js';
import { buildBuildrootImage, VARIANTS } from './helpers/images.js';

const v = (name: string) => VARIANTS.find((x) => x.name === name)!.build;
convertSuite({ name: 'Buildroot, p1 at 2048, boot.scr, 1 KiB blocks + metadata_csum', build: (d) => buildBuildrootImage(d), deep: true });
convertSuite({ name: 'Buildroot sunxi, p1 at 2128, raw SPL at 8 KiB', build: v('buildroot-sunxi-spl-2128') });
convertSuite({ name: 'Buildroot, extlinux.conf on the boot partition', build: v('buildroot-extlinux-2048'), deep: true });
convertSuite({ name: 'Buildroot, p1 at 32768, 4 KiB blocks', build: v('buildroot-bootscr-32768-4k') });
convertSuite({ name: 'Buildroot, p1 at 64, image size not a multiple of 1 MiB', build: v('buildroot-64-unaligned') });
convertSuite({ name: 'Buildroot with kernel, initrd and dtb from the caller', build: v('buildroot-inputs-initrd') });

// A well-filled rootfs far into the disk: resize2fs given image?offset=N truncates the whole file to
// the filesystem's new size, which once cut the output off inside slot A (found by the QEMU boot test).
const filler = (bytes: number): string => {
  let x = 0x9e3779b9;
  let s = '';
  while (s.length < bytes) { x = (x * 1103515245 + 12345) >>> 0; s += x.toString(36).padStart(7, '0'); }
  return s.slice(0, bytes);
};
convertSuite({
  name: 'Buildroot, p1 at 32768, rootfs three-quarters full (slot A grown without touching the rest of the disk)',
  build: (d) => buildBuildrootImage(d, { p1StartSector: 32768, rootfsExtra: { '/usr/share/filler.txt': filler(40 << 20) } }),
});
