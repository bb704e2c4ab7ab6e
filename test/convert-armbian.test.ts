// Armbian-style images: U-Boot in raw sectors, one ext4 root with /boot (symlinks, boot.scr,
// armbianEnv.txt with rootdev=UUID=) inside it.
import { convertSuite } from './helpers/convert-suite.js';
import { buildArmbianImage } from './helpers/images.js';

convertSuite({ name: 'Armbian (Rockchip), root at 32768, idbloader at 64, u-boot.itb at 16384', build: () => buildArmbianImage(), deep: true });
convertSuite({ name: 'Armbian, root at 8192', build: () => buildArmbianImage({ rootStartSector: 8192 }) });
