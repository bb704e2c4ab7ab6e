// One block of parallel gzip (parallel-gzip.ts), deflated into a byte-aligned piece of the single
// deflate stream. Kept apart from the streaming code so the worker threads that run it load only
// this, native-deflate.ts and node:zlib (their start-up is part of every gzip bundle's time).
import { deflateRawSync, constants } from 'node:zlib';
import { nativeDeflate } from './native-deflate.js';

export const BLOCK = 1 << 20;

export interface DeflateRequest { id: number; data: Uint8Array; dict?: Uint8Array; level: number; last: boolean }
export interface DeflateReply { id: number; out: Uint8Array; data: Uint8Array }

/**
 * Deflates one block: a byte-aligned piece (sync flush), or the final one. Two kinds of block
 * skip zlib's search, which is where gzip's time goes on a disk image:
 * - all zeros (free space, holes) after a zero dictionary: the piece is the same every time, so
 *   it is deflated once per level and shape and then reused (the bytes do not change);
 * - incompressible data (compressed or encrypted files; order-0 entropy of a sample above
 *   STORE_ENTROPY bits/byte): zlib gains under 1 % on it at 35–40 MiB/s, so it goes out as
 *   stored deflate blocks at memory speed. The stream stays valid deflate; only the choice of
 *   block type differs, and it depends on the bytes alone (deterministic).
 */
export function deflateBlock(r: Omit<DeflateRequest, 'id'>): Buffer {
  if (r.level > 0 && r.data.length > 0) {
    if (isZero(r.data) && (!r.dict || isZero(r.dict))) {
      const key = `${r.level}:${r.data.length}:${r.dict ? r.dict.length : 0}:${r.last}`;
      let piece = zeroPieces.get(key);
      if (!piece) zeroPieces.set(key, (piece = zlibBlock(r)));
      // a copy in memory of its own: the worker hands its output's memory over to the main thread
      // (a small Buffer.from() would sit in Node's shared 8 KiB pool, which is cloned whole instead)
      const copy = Buffer.allocUnsafeSlow(piece.length);
      piece.copy(copy);
      return copy;
    }
    if (sampleEntropy(r.data) > STORE_ENTROPY) return storedBlocks(r.data, r.last);
  }
  return searchedBlock(r);
}

/** A piece from the native deflate when it is built (libdeflate: ~25 % less CPU for the same size), else zlib's. */
function searchedBlock(r: Omit<DeflateRequest, 'id'>): Buffer {
  const native = r.data.length > 0 ? nativeDeflate() : null;
  if (native) {
    try {
      return native.deflate(r.data, r.level, r.last);
    } catch {
      // its walk refused libdeflate's stream (never seen): zlib's piece is as valid, and as deterministic
    }
  }
  return zlibBlock(r);
}

function zlibBlock(r: Omit<DeflateRequest, 'id'>): Buffer {
  return deflateRawSync(r.data, {
    level: r.level,
    memLevel: 9, // zlib's largest hash table: ~10 % faster, the same ratio within 0.1 %
    chunkSize: 256 << 10,
    finishFlush: r.last ? constants.Z_FINISH : constants.Z_SYNC_FLUSH,
    ...(r.dict ? { dictionary: r.dict } : {}),
  });
}

export const STORE_ENTROPY = 7.95;
const zeroPieces = new Map<string, Buffer>();
let zeroRef = Buffer.alloc(BLOCK);

function isZero(b: Uint8Array): boolean {
  if (zeroRef.length < b.length) zeroRef = Buffer.alloc(b.length);
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).compare(zeroRef, 0, b.length) === 0;
}

/** Order-0 entropy (bits per byte) of every 16th byte: random or compressed data is near 8. */
export function sampleEntropy(b: Uint8Array): number {
  const counts = new Uint32Array(256);
  let n = 0;
  for (let i = 0; i < b.length; i += 16, n++) counts[b[i]!]!++;
  let h = 0;
  for (const c of counts) if (c) h -= (c / n) * Math.log2(c / n);
  return h;
}

/** The block as stored deflate blocks (RFC 1951 3.2.4), byte-aligned; BFINAL on the last one if `last`. */
function storedBlocks(data: Uint8Array, last: boolean): Buffer {
  const MAX = 65535;
  const count = Math.ceil(data.length / MAX);
  const out = Buffer.allocUnsafe(data.length + count * 5);
  let o = 0;
  for (let k = 0; k < count; k++) {
    const a = k * MAX;
    const len = Math.min(MAX, data.length - a);
    out[o] = last && k === count - 1 ? 1 : 0; // BFINAL, BTYPE=00, then padding to the byte
    out.writeUInt16LE(len, o + 1);
    out.writeUInt16LE(~len & 0xffff, o + 3);
    out.set(data.subarray(a, a + len), o + 5);
    o += 5 + len;
  }
  return out;
}

