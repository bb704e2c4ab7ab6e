// otapack.yaml: everything `convert` can be told. Every key is optional: the defaults detect the
// layout and keep sizes sensible. Unknown keys and bad values are errors naming the key.
import { dirname, resolve, isAbsolute } from 'node:path';
import { stat } from 'node:fs/promises';
import { ConfigReader, type ConfigMap } from '../util/yaml-config.js';
import { readSize } from '../util/units.js';
import { COMPRESSIONS, type CompressionId } from '../compress/compressor.js';
import { OtapackError } from '../errors.js';
import { CLIENT_IDS, type ClientId } from '../clients/client.js';

export interface FileSpec { source: string; target: string; mode?: number; uid?: number; gid?: number }

export interface ConvertConfig {
  file?: string;
  /** The update client the device is wired for (client:, or convert --client). */
  client: ClientId;
  version: string;
  hardware: { board: string; revision: string; compatible: string[] };
  storage: {
    device: string;
    table: 'keep' | 'mbr' | 'gpt';
    slotSize?: number;
    dataSize?: number;
    totalSize?: number;
    bootSize: number;
  };
  bootloader: 'auto' | 'uboot' | 'grub';
  /**
   * The boot loader convert checks: loaderBinary is the U-Boot (or GRUB EFI image) the board runs
   * when it is not on the image; installGrub replaces an EFI image's GRUB with one built by
   * grub-mkimage from Debian's modules when it lacks modules the A/B logic needs.
   */
  boot: { loaderBinary?: string; installGrub: boolean };
  bootlimit: number;
  /** client: mender: the device type (default hardware.board) and the first artifact's name (default version). */
  mender: { deviceType: string; artifactName: string };
  update: { compress: CompressionId; level?: number; encrypt: boolean; installAesKey: boolean; collection: string; certPurpose: 'emailProtection' | 'codeSigning' };
  signing: { key?: string; cert?: string; chain?: string };
  /** readOnly: the root filesystem is never mounted read-write (fstab, kernel command line, inittab). */
  rootfs: { files: FileSpec[]; readOnly: boolean };
  data: { files: FileSpec[]; label: string };
  hawkbit?: { url: string; tenant: string; targetName?: string; gatewayToken?: string; targetToken?: string; pollingInterval: number; caFile?: string };
}

export const DEFAULT_CONFIG: ConvertConfig = {
  client: 'swupdate',
  version: '1.0.0',
  hardware: { board: 'otapack', revision: '1.0', compatible: ['1.0'] },
  storage: { device: '/dev/mmcblk0', table: 'keep', bootSize: 32 << 20 },
  bootloader: 'auto',
  boot: { installGrub: false },
  bootlimit: 3,
  mender: { deviceType: 'otapack', artifactName: '1.0.0' },
  update: { compress: 'zstd', encrypt: false, installAesKey: false, collection: 'stable', certPurpose: 'emailProtection' },
  signing: {},
  rootfs: { files: [], readOnly: false },
  data: { files: [], label: 'data' },
};

const TOP = ['client', 'version', 'hardware', 'mender', 'storage', 'bootloader', 'boot', 'bootlimit', 'update', 'signing', 'rootfs', 'data', 'hawkbit'] as const;
const DEVICE = /^\/dev\/[A-Za-z0-9._/-]+$/;

/** Partition device name: mmcblk0 → mmcblk0p2, nvme0n1 → nvme0n1p2, sda → sda2, vda → vda2. */
export function partitionDevice(device: string, n: number): string {
  return /\d$/.test(device) ? `${device}p${n}` : `${device}${n}`;
}

/** `client` overrides the config's (convert --client). */
export async function loadConvertConfig(file: string | undefined, o: { client?: ClientId } = {}): Promise<ConvertConfig> {
  if (!file) {
    const c = structuredClone(DEFAULT_CONFIG);
    c.client = o.client ?? c.client;
    if (c.client === 'mender') c.update.compress = 'zlib';
    c.mender = { deviceType: c.hardware.board, artifactName: c.version };
    return c;
  }
  const { reader, data } = await ConfigReader.load(file);
  return parseConvertConfig(reader, data, dirname(resolve(file)), o);
}

export async function parseConvertConfig(reader: ConfigReader, data: unknown, base: string, o: { client?: ClientId } = {}): Promise<ConvertConfig> {
  const c = structuredClone(DEFAULT_CONFIG);
  c.file = reader.file;
  const top = reader.map(data, [], TOP);
  c.client = o.client ?? top.oneOf('client', CLIENT_IDS, 'swupdate');
  c.version = top.str('version', { pattern: /^[0-9A-Za-z][0-9A-Za-z.+~_-]{0,63}$/, hint: 'e.g. 1.0.0' }) ?? c.version;

  const hw = top.sub('hardware', ['board', 'revision', 'compatible']);
  c.hardware.board = hw.str('board', { pattern: /^[A-Za-z0-9._-]{1,64}$/, hint: 'letters, digits, . _ -' }) ?? c.hardware.board;
  c.hardware.revision = hw.str('revision', { pattern: /^[\x21-\x7e]{1,64}$/, hint: 'no spaces' }) ?? c.hardware.revision;
  c.hardware.compatible = hw.has('compatible') ? hw.strList('compatible') : [c.hardware.revision];
  if (c.hardware.compatible.length === 0) throw hw.err('compatible', 'must list at least one revision');

  const st = top.sub('storage', ['device', 'table', 'slot-size', 'data-size', 'total-size', 'boot-size']);
  c.storage.device = st.str('device', { pattern: DEVICE, hint: 'a device such as /dev/mmcblk0, /dev/sda or /dev/nvme0n1' }) ?? c.storage.device;
  if (/\d+p\d+$|[a-z]\d+$/.test(c.storage.device) && !/(mmcblk|nvme\d+n|loop)\d+$/.test(c.storage.device)) {
    throw st.err('device', `"${c.storage.device}" looks like a partition; give the whole device (e.g. /dev/mmcblk0)`);
  }
  c.storage.table = st.oneOf('table', ['keep', 'mbr', 'gpt'] as const, 'keep');
  const size = (k: string): number | undefined => {
    if (!st.has(k)) return undefined;
    const r = readSize(st.raw(k));
    if ('problem' in r) throw st.err(k, r.problem);
    return r.bytes;
  };
  c.storage.slotSize = size('slot-size');
  c.storage.dataSize = size('data-size');
  c.storage.totalSize = size('total-size');
  c.storage.bootSize = size('boot-size') ?? c.storage.bootSize;
  if (c.storage.dataSize !== undefined && c.storage.totalSize !== undefined) throw st.err('total-size', 'give data-size or total-size, not both');
  if (c.storage.slotSize !== undefined && c.storage.slotSize < (8 << 20)) throw st.err('slot-size', 'must be at least 8M');
  if (c.storage.dataSize !== undefined && c.storage.dataSize < (4 << 20)) throw st.err('data-size', 'must be at least 4M');
  if (c.storage.bootSize < (4 << 20)) throw st.err('boot-size', 'must be at least 4M');

  c.bootloader = top.oneOf('bootloader', ['auto', 'uboot', 'grub'] as const, 'auto');
  c.bootlimit = top.int('bootlimit', { min: 1, max: 9 }) ?? c.bootlimit;
  const bt = top.sub('boot', ['loader-binary', 'install-grub']);
  const lb = bt.str('loader-binary');
  if (lb !== undefined) {
    const p = isAbsolute(lb) ? lb : resolve(base, lb);
    const s = await stat(p).catch(() => undefined);
    if (!s?.isFile()) throw bt.err('loader-binary', `${lb}: no such file`);
    c.boot.loaderBinary = p;
  }
  c.boot.installGrub = bt.bool('install-grub', false);
  if (c.boot.installGrub && c.bootloader === 'uboot') throw bt.err('install-grub', 'applies to GRUB (EFI) images, and bootloader: uboot is set');

  const mn = top.sub('mender', ['device-type', 'artifact-name']);
  if (top.has('mender') && c.client !== 'mender') throw top.err('mender', 'applies with client: mender (or convert --client mender)');
  const menderName = /^[A-Za-z0-9][A-Za-z0-9._:+~@/-]{0,127}$/;
  c.mender = {
    deviceType: mn.str('device-type', { pattern: menderName, hint: 'letters, digits and . _ : + ~ @ / -, no spaces' }) ?? c.hardware.board,
    artifactName: mn.str('artifact-name', { pattern: menderName, hint: 'letters, digits and . _ : + ~ @ / -, no spaces' }) ?? c.version,
  };

  const up = top.sub('update', ['compress', 'compress-level', 'encrypt', 'install-aes-key', 'collection', 'cert-purpose']);
  // Mender 3.4 reads no zstd: its default is gzip
  c.update.compress = up.oneOf('compress', COMPRESSIONS, c.client === 'mender' ? 'zlib' : 'zstd');
  c.update.level = up.int('compress-level', { min: 1, max: 19 });
  c.update.encrypt = up.bool('encrypt', false);
  c.update.installAesKey = up.bool('install-aes-key', false);
  if (c.update.installAesKey && !c.update.encrypt) throw up.err('install-aes-key', 'only makes sense with encrypt: true');
  c.update.collection = up.str('collection', { pattern: /^[A-Za-z][-A-Za-z0-9_]*$/ }) ?? 'stable';
  c.update.certPurpose = up.oneOf('cert-purpose', ['emailProtection', 'codeSigning'] as const, 'emailProtection');

  const sg = top.sub('signing', ['key', 'cert', 'chain']);
  const path = (m: ConfigMap, k: string): string | undefined => {
    const v = m.str(k);
    return v === undefined ? undefined : isAbsolute(v) ? v : resolve(base, v);
  };
  const keyRef = sg.str('key');
  c.signing = { key: keyRef !== undefined && /^pkcs11:/i.test(keyRef) ? keyRef : path(sg, 'key'), cert: path(sg, 'cert'), chain: path(sg, 'chain') };

  const rf = top.sub('rootfs', ['files', 'read-only']);
  c.rootfs.files = await fileList(rf, 'files', base);
  c.rootfs.readOnly = rf.bool('read-only', false);
  const da = top.sub('data', ['files', 'label']);
  c.data.files = await fileList(da, 'files', base);
  c.data.label = da.str('label', { pattern: /^[A-Za-z0-9_-]{1,16}$/, hint: 'up to 16 letters, digits, _ -' }) ?? 'data';

  if (top.has('hawkbit')) {
    const hb = top.sub('hawkbit', ['url', 'tenant', 'target-name', 'gateway-token', 'target-token', 'polling-interval', 'ca-file']);
    const url = hb.str('url', { required: true, pattern: /^https?:\/\/[^\s"]+$/, hint: 'http(s)://host[:port]' });
    c.hawkbit = {
      url,
      tenant: hb.str('tenant', { pattern: /^[A-Za-z0-9_-]{1,64}$/ }) ?? 'DEFAULT',
      targetName: hb.str('target-name', { pattern: /^[A-Za-z0-9._:-]{1,128}$/ }),
      gatewayToken: hb.str('gateway-token', { pattern: /^[A-Za-z0-9._-]{1,256}$/ }),
      targetToken: hb.str('target-token', { pattern: /^[A-Za-z0-9._-]{1,256}$/ }),
      pollingInterval: hb.int('polling-interval', { min: 10, max: 86400 }) ?? 300,
      caFile: hb.str('ca-file', { pattern: /^\/[^\s"]+$/, hint: 'an absolute path on the device' }),
    };
    if (c.client !== 'swupdate') throw top.err('hawkbit', `hawkBit is served by SWUpdate's suricatta; client: ${c.client} has its own server`);
    if (c.hawkbit.gatewayToken && c.hawkbit.targetToken) throw hb.err('target-token', 'give gateway-token or target-token, not both');
  }
  return c;
}

async function fileList(m: ConfigMap, key: string, base: string): Promise<FileSpec[]> {
  const out: FileSpec[] = [];
  const list = m.list(key);
  for (let i = 0; i < list.length; i++) {
    const f = m.reader.map(list[i], [...m.path, key, i], ['source', 'target', 'mode', 'uid', 'gid']);
    const src = f.str('source', { required: true });
    const target = f.str('target', { required: true, pattern: /^\/[^\0]*$/, hint: 'an absolute path on the device' });
    if (target.split('/').includes('..')) throw f.err('target', 'must not contain ".."');
    const source = isAbsolute(src) ? src : resolve(base, src);
    try {
      const s = await stat(source);
      if (!s.isFile() && !s.isDirectory()) throw f.err('source', `${src}: not a file or directory`);
    } catch (e) {
      if (e instanceof OtapackError) throw e;
      throw f.err('source', `${src}: no such file or directory`);
    }
    const modeStr = f.str('mode', { pattern: /^0?[0-7]{3,4}$/, hint: 'octal, e.g. "0644"' });
    out.push({ source, target, mode: modeStr ? parseInt(modeStr, 8) : undefined, uid: f.int('uid', { min: 0 }), gid: f.int('gid', { min: 0 }) });
  }
  return out;
}
