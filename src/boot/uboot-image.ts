// U-Boot legacy image ("uImage") codec, limited to what otapack needs: the `script` type that
// `mkimage -T script` produces and U-Boot's `source` command runs (`boot.scr`).
//
// 64-byte header, all fields big-endian:
//   0 magic 0x27051956 | 4 header CRC32 (computed with this field zeroed) | 8 time (seconds)
//   12 data size | 16 load address | 20 entry point | 24 data CRC32
//   28 os | 29 arch | 30 type | 31 compression | 32 name (32 bytes, NUL-padded, not always terminated)
// A script's data is a "multi-file" list: BE32 length of each part, a BE32 0 terminator, then the
// parts (each but the last padded to 4 bytes). mkimage writes one part: the script text.
//
// Written by hand (no maintained JS library) so the output is byte-identical to mkimage for a given
// SOURCE_DATE_EPOCH (determinism) and so both CRCs of a board's existing boot.scr can be checked.
import { crc32 } from 'node:zlib';
import { OtapackError } from '../errors.js';

export const UIMAGE_MAGIC = 0x27051956;
export const UIMAGE_HEADER_SIZE = 64;
export const UIMAGE_NAME_MAX = 32;

/** `ih_arch` codes (include/image.h) for the architectures otapack targets. */
export const UIMAGE_ARCH = { arm: 2, i386: 3, arm64: 22, x86_64: 24, riscv: 26 } as const;
export type UimageArch = keyof typeof UIMAGE_ARCH;
const OS_LINUX = 5;
const TYPE_SCRIPT = 6;
const COMP_NONE = 0;

export interface ScriptImageOptions {
  /**
   * Header timestamp in seconds. Defaults to $SOURCE_DATE_EPOCH (as mkimage does), else 0 so the
   * output never depends on the wall clock.
   */
  time?: number;
  /** Header architecture; U-Boot's `source` ignores it. Default arm64 (`mkimage -A arm64`). */
  arch?: UimageArch;
}

export interface DecodedScriptImage {
  name: string;
  text: string;
  headerCrcOk: boolean;
  dataCrcOk: boolean;
  time: number;
  /** `ih_type`; 6 for a script. */
  type: number;
  arch: number;
  os: number;
  compression: number;
}

function defaultTime(): number {
  const sde = process.env.SOURCE_DATE_EPOCH;
  if (sde !== undefined && /^\d+$/.test(sde.trim())) return Number(sde.trim());
  return 0;
}

/** Same bytes as `mkimage -A <arch> -O linux -T script -C none -n NAME -d script.txt`. */
export function encodeScriptImage(text: string, name: string, opts: ScriptImageOptions = {}): Buffer {
  const nameBytes = Buffer.from(name, 'utf8');
  if (nameBytes.length > UIMAGE_NAME_MAX) {
    throw new OtapackError('LIMIT', `boot script image name ${JSON.stringify(name)} is ${nameBytes.length} bytes, the limit is ${UIMAGE_NAME_MAX}`);
  }
  const time = opts.time ?? defaultTime();
  if (!Number.isInteger(time) || time < 0 || time > 0xffffffff) {
    throw new OtapackError('CONFIG', `boot script image time ${time} is not a 32-bit unsigned number of seconds`);
  }
  const arch = UIMAGE_ARCH[opts.arch ?? 'arm64'];
  if (arch === undefined) throw new OtapackError('CONFIG', `boot script image: unknown architecture ${String(opts.arch)}`);
  const script = Buffer.from(text, 'utf8');
  const data = Buffer.alloc(8 + script.length);
  data.writeUInt32BE(script.length, 0);
  data.writeUInt32BE(0, 4);
  script.copy(data, 8);

  const hdr = Buffer.alloc(UIMAGE_HEADER_SIZE, 0);
  hdr.writeUInt32BE(UIMAGE_MAGIC, 0);
  hdr.writeUInt32BE(time, 8);
  hdr.writeUInt32BE(data.length, 12);
  hdr.writeUInt32BE(0, 16); // load address
  hdr.writeUInt32BE(0, 20); // entry point
  hdr.writeUInt32BE(crc32(data), 24);
  hdr[28] = OS_LINUX;
  hdr[29] = arch;
  hdr[30] = TYPE_SCRIPT;
  hdr[31] = COMP_NONE;
  nameBytes.copy(hdr, 32);
  hdr.writeUInt32BE(crc32(hdr), 4); // header CRC with its own field still zero
  return Buffer.concat([hdr, data]);
}

/**
 * Reads a legacy script image (a board's `boot.scr`). Throws INPUT when it is not a legacy script
 * image at all (wrong magic, wrong type, compressed, truncated list); CRC mismatches are reported
 * in `headerCrcOk`/`dataCrcOk` so the caller can decide.
 */
export function decodeScriptImage(buf: Buffer): DecodedScriptImage {
  if (buf.length < UIMAGE_HEADER_SIZE) throw new OtapackError('INPUT', `not a U-Boot script image: ${buf.length} bytes, shorter than the 64-byte header`);
  const magic = buf.readUInt32BE(0);
  if (magic === 0xd00dfeed) throw new OtapackError('INPUT', 'U-Boot script is a FIT image (device-tree format); otapack reads legacy script images only');
  if (magic !== UIMAGE_MAGIC) throw new OtapackError('INPUT', `not a U-Boot legacy image: magic 0x${magic.toString(16).padStart(8, '0')}`);
  const hdr = Buffer.from(buf.subarray(0, UIMAGE_HEADER_SIZE));
  const storedHcrc = hdr.readUInt32BE(4);
  hdr.writeUInt32BE(0, 4);
  const headerCrcOk = crc32(hdr) === storedHcrc;
  const size = buf.readUInt32BE(12);
  const type = buf[30]!;
  const compression = buf[31]!;
  const nameRaw = buf.subarray(32, 64);
  const nul = nameRaw.indexOf(0);
  const name = nameRaw.subarray(0, nul < 0 ? 32 : nul).toString('utf8');
  if (type !== TYPE_SCRIPT) throw new OtapackError('INPUT', `U-Boot image "${name}" is of type ${type}, not a script (6)`);
  if (compression !== COMP_NONE) throw new OtapackError('INPUT', `U-Boot script image "${name}" is compressed (type ${compression}); otapack reads uncompressed scripts only`);
  const avail = buf.length - UIMAGE_HEADER_SIZE;
  const data = buf.subarray(UIMAGE_HEADER_SIZE, UIMAGE_HEADER_SIZE + Math.min(size, avail));
  const dataCrcOk = size <= avail && crc32(data) === buf.readUInt32BE(24);
  // multi-file list: lengths until a zero word, bounded by the data
  const lengths: number[] = [];
  let pos = 0;
  for (;;) {
    if (pos + 4 > data.length) throw new OtapackError('INPUT', `U-Boot script image "${name}": part list runs past the end of the data`);
    const len = data.readUInt32BE(pos);
    pos += 4;
    if (len === 0) break;
    lengths.push(len);
  }
  if (lengths.length === 0) throw new OtapackError('INPUT', `U-Boot script image "${name}" holds no script`);
  const first = lengths[0]!;
  if (pos + first > data.length) throw new OtapackError('INPUT', `U-Boot script image "${name}": script of ${first} bytes runs past the end of the data`);
  const text = data.subarray(pos, pos + first).toString('utf8');
  return { name, text, headerCrcOk, dataCrcOk, time: buf.readUInt32BE(8), type, arch: buf[29]!, os: buf[28]!, compression };
}
