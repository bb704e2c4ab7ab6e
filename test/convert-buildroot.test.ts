// Buildroot-style images (FAT boot + ext4 rootfs, MBR) in the variants real boards produce.
import { convertSuite } from './helpers/convert-suite.js';
import { buildBuildrootImage } from './helpers/images.js';

convertSuite({ name: 'Buildroot, p1 at 2048, boot.scr, 1 KiB blocks + metadata_csum', build: () => buildBuildrootImage(), deep: true });
convertSuite({ name: 'Buildroot (RPi-like), p1 at sector 1, image size not a multiple of 1 MiB', build: () => buildBuildrootImage({ p1StartSector: 1, unalignedSize: true }) });
convertSuite({ name: 'Buildroot sunxi, p1 at 2128, raw SPL at 8 KiB', build: () => buildBuildrootImage({ p1StartSector: 2128, spl: true }) });
convertSuite({ name: 'Buildroot, p1 at 64, extlinux.conf, root=PARTUUID', build: () => buildBuildrootImage({ p1StartSector: 64, bootKind: 'extlinux', rootSpec: 'partuuid' }), deep: true });
convertSuite({ name: 'Buildroot, p1 at 32768, 4 KiB blocks', build: () => buildBuildrootImage({ p1StartSector: 32768, blockSize: 4096 }) });
