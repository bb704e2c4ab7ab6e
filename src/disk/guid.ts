// GUIDs as GPT stores them. On disk the first three fields are little-endian and the last two
// big-endian ("mixed-endian", UEFI spec appendix A); text is the usual lower-case 8-4-4-4-12.
import { createHash } from 'node:crypto';
import { OtapackError } from '../errors.js';

const GUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export const isGuid = (text: string): boolean => GUID_RE.test(text);

/** 16 on-disk bytes of a GUID given as text (any case). */
export function guidToBytes(text: string): Buffer {
  if (!GUID_RE.test(text)) throw new OtapackError('CONFIG', `"${text}" is not a GUID (expected xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)`);
  const hex = text.replace(/-/g, '');
  const b = Buffer.from(hex, 'hex');
  // Fields 1–3 are stored little-endian: reverse their bytes.
  return Buffer.concat([b.subarray(0, 4).reverse(), b.subarray(4, 6).reverse(), b.subarray(6, 8).reverse(), b.subarray(8)]);
}

/** Text (lower-case) of the GUID stored at `buf[offset..offset+16)`. */
export function guidFromBytes(buf: Buffer, offset = 0): string {
  const b = Buffer.from(buf.subarray(offset, offset + 16));
  const be = Buffer.concat([b.subarray(0, 4).reverse(), b.subarray(4, 6).reverse(), b.subarray(6, 8).reverse(), b.subarray(8)]);
  return formatRfc(be);
}

/** Formats 16 bytes in RFC 4122 (big-endian) order as text. */
function formatRfc(b: Buffer): string {
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

/**
 * A GUID derived from `seed` (SHA-256, first 16 bytes, with the RFC 4122 version-4 and variant
 * bits set): the same seed always yields the same GUID, so outputs stay reproducible.
 */
export function guidFromSeed(seed: string | Buffer): string {
  const b = createHash('sha256').update(seed).digest().subarray(0, 16);
  b[6] = (b[6]! & 0x0f) | 0x40;
  b[8] = (b[8]! & 0x3f) | 0x80;
  return formatRfc(b);
}

export const ZERO_GUID = '00000000-0000-0000-0000-000000000000';
