// Armbian-style images: U-Boot in raw sectors, one ext4 root with /boot (symlinks, boot.scr,
// armbianEnv.txt with rootdev=UUID=) inside it.
import { convertSuite } from './helpers/convert-suite.js';
import { VARIANTS } from './helpers/images.js';

const v = (name: string) => VARIANTS.find((x) => x.name === name)!.build;
convertSuite({ name: 'Armbian (Rockchip), root at 32768, idbloader at 64, u-boot.itb at 16384', build: v('armbian-rockchip-32768'), deep: true });
// a 2 GiB data partition makes the output image big enough that mkfs.vfat, seeing the whole file,
// would pick FAT32 for the small boot partition unless told otherwise
convertSuite({ name: 'Armbian (Allwinner), root at 8192, SPL at 8 KiB, 2 GiB data partition', build: v('armbian-sunxi-8192'), config: 'storage:\n  data-size: 2G\n' });
