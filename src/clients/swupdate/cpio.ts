// CPIO "new ASCII" (070701) and "crc" (070702) headers, as SWUpdate reads them.
//
// Written here rather than taken from cpio-stream because otapack needs three things that library
// does not give: the 070702 byte-sum checksum, headers patched in place after a payload has been
// streamed (its size is known only at the end), and a reader that bounds every field against the
// file it reads so a hostile header cannot make it allocate or seek past the end.

export const MAGIC_NEWC = '070701';
export const MAGIC_CRC = '070702';
export const MAGIC_ODC = '070707';
export const TRAILER = 'TRAILER!!!';
export const HEADER_SIZE = 110;
/** c_filesize is 8 hex digits: every stored entry must be smaller than 4 GiB. */
export const MAX_ENTRY_SIZE = 0xffffffff;
export const MAX_NAME_SIZE = 4096;

export type CpioFormat = 'newc' | 'crc';

export interface CpioHeader {
  magic: string;
  ino: number;
  mode: number;
  uid: number;
  gid: number;
  nlink: number;
  mtime: number;
  size: number;
  devMajor: number;
  devMinor: number;
  rdevMajor: number;
  rdevMinor: number;
  nameSize: number;
  check: number;
}

export const pad4 = (n: number): number => (4 - (n % 4)) % 4;

/** Bytes from the start of a header to the start of its data. */
export const headerSpan = (name: string): number => {
  const nameSize = Buffer.byteLength(name) + 1;
  return HEADER_SIZE + nameSize + pad4(HEADER_SIZE + nameSize);
};

/** Encodes header + NUL-terminated name + padding, ready to be followed by the data. */
export function encodeHeader(
  name: string,
  fields: { size: number; check: number; ino: number; mode?: number; mtime?: number; nlink?: number },
  format: CpioFormat,
): Buffer {
  const nameBytes = Buffer.from(name + '\0', 'utf8');
  const hex = (n: number): string => {
    if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new RangeError(`cpio field out of range: ${n}`);
    return n.toString(16).toUpperCase().padStart(8, '0');
  };
  const header =
    (format === 'crc' ? MAGIC_CRC : MAGIC_NEWC) +
    hex(fields.ino) +
    hex(fields.mode ?? 0o100644) +
    hex(0) + // uid
    hex(0) + // gid
    hex(fields.nlink ?? 1) +
    hex(fields.mtime ?? 0) +
    hex(fields.size) +
    hex(0) + hex(0) + hex(0) + hex(0) + // dev, rdev
    hex(nameBytes.length) +
    hex(format === 'crc' ? fields.check : 0);
  const out = Buffer.alloc(headerSpan(name));
  out.write(header, 0, 'latin1');
  nameBytes.copy(out, HEADER_SIZE);
  return out;
}

/** Trailer entry plus the zero padding that brings the archive to a multiple of 512 bytes. */
export function encodeTrailer(offset: number, format: CpioFormat, ino = 0): Buffer {
  const t = encodeHeader(TRAILER, { size: 0, check: 0, ino, mode: 0, nlink: 1 }, format);
  const end = offset + t.length;
  const pad = (512 - (end % 512)) % 512;
  return Buffer.concat([t, Buffer.alloc(pad)]);
}

/**
 * Running 32-bit byte sum (the 070702 "crc"), fed chunk by chunk. The bulk is summed a 32-bit
 * word at a time, two bytes per 16-bit lane (SWAR), which is about twice as fast as a byte loop;
 * 128 words at most go into one lane sum so a lane (≤ 128 × 510) never carries into the next.
 */
export function byteSum(buf: Uint8Array, acc = 0): number {
  let s = 0;
  const n = buf.length;
  let i = 0;
  const head = Math.min(n, (4 - (buf.byteOffset & 3)) & 3);
  for (; i < head; i++) s += buf[i]!;
  const words = (n - i) >>> 2;
  if (words > 0) {
    const u32 = new Uint32Array(buf.buffer, buf.byteOffset + i, words);
    for (let w = 0; w < words; ) {
      const end = Math.min(words, w + 128);
      let lanes = 0;
      for (; w < end; w++) {
        const x = u32[w]!;
        lanes += (x & 0x00ff00ff) + ((x >>> 8) & 0x00ff00ff);
      }
      s += (lanes % 65536) + Math.floor(lanes / 65536);
    }
    i += words * 4;
  }
  for (; i < n; i++) s += buf[i]!;
  // s < 2^53 for any chunk below ~35 TB, so plain numbers are exact here
  return (acc + s) % 0x100000000;
}

export type HeaderParse =
  | { ok: true; header: CpioHeader; anomalies: string[] }
  | { ok: false; reason: string };

const FIELD_NAMES = ['ino', 'mode', 'uid', 'gid', 'nlink', 'mtime', 'filesize', 'devmajor', 'devminor', 'rdevmajor', 'rdevminor', 'namesize', 'check'] as const;
// The fields SWUpdate itself reads; a bad value in these is an error, elsewhere a warning.
const CLIENT_FIELDS = new Set(['filesize', 'namesize', 'check']);

/** Parses the fixed 110-byte header. Never throws. */
export function parseHeader(b: Uint8Array): HeaderParse {
  if (b.length < HEADER_SIZE) return { ok: false, reason: `header truncated (${b.length} of ${HEADER_SIZE} bytes)` };
  const magic = Buffer.from(b.subarray(0, 6)).toString('latin1');
  if (magic === MAGIC_ODC) return { ok: false, reason: 'odc (070707) cpio is not accepted by SWUpdate: use newc (070701) or crc (070702)' };
  if (magic !== MAGIC_NEWC && magic !== MAGIC_CRC) return { ok: false, reason: `bad cpio magic ${JSON.stringify(magic)} (expected 070701 or 070702)` };
  const values: number[] = [];
  const anomalies: string[] = [];
  for (let f = 0; f < 13; f++) {
    const start = 6 + f * 8;
    let v = 0;
    let bad = false;
    for (let i = start; i < start + 8; i++) {
      const c = b[i]!;
      const d = c >= 0x30 && c <= 0x39 ? c - 0x30 : c >= 0x41 && c <= 0x46 ? c - 55 : c >= 0x61 && c <= 0x66 ? c - 87 : -1;
      if (d < 0) { bad = true; break; }
      v = v * 16 + d;
    }
    const name = FIELD_NAMES[f]!;
    if (bad) {
      if (CLIENT_FIELDS.has(name)) return { ok: false, reason: `header field ${name} is not hexadecimal` };
      anomalies.push(`header field ${name} is not hexadecimal`);
      v = 0;
    }
    values.push(v);
  }
  const [ino, mode, uid, gid, nlink, mtime, size, devMajor, devMinor, rdevMajor, rdevMinor, nameSize, check] = values as [number, number, number, number, number, number, number, number, number, number, number, number, number];
  return { ok: true, anomalies, header: { magic, ino, mode, uid, gid, nlink, mtime, size, devMajor, devMinor, rdevMajor, rdevMinor, nameSize, check } };
}
