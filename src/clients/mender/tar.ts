// The POSIX ustar header (512 bytes) as a Mender artifact uses it: the outer archive, header.tar
// and the payload tar are all ustar. Written by hand because the writer streams a payload of
// GiBs into a member whose size is only known at the end (the header is written last, in place),
// and the reader has to check every field against the bytes present before trusting it. Pure.
//
// Writer: regular files only, mode/uid/gid/mtime as given, empty user and group names, numbers
// in octal; a size of 8 GiB or more (past 11 octal digits) in GNU base-256, which Go's
// archive/tar (mender-artifact, the Mender client) reads. Reader: ustar and the GNU and PAX
// extensions Go writes for long names and large sizes ('x', 'L'); global PAX headers are skipped.
import { OtapackError } from '../../errors.js';

export const BLOCK = 512;
/** Two zero blocks end an archive (Go's tar.Writer.Close writes exactly these, no record padding). */
export const END_OF_ARCHIVE = Buffer.alloc(2 * BLOCK);
const OCTAL_SIZE_MAX = 0o77777777777; // 11 octal digits: 8 GiB - 1

export const padTo512 = (n: number): number => (BLOCK - (n % BLOCK)) % BLOCK;
/** Bytes a member of `size` takes in the archive: its header, data and padding. */
export const memberSpan = (size: number): number => BLOCK + size + padTo512(size);

export interface TarEntry {
  name: string;
  size: number;
  mode: number;
  mtime: number;
  uid: number;
  gid: number;
  /** '0' regular file, '5' directory, … as stored ('\0' is read as '0'). */
  type: string;
  uname: string;
  gname: string;
}

function octal(buf: Buffer, off: number, width: number, value: number): void {
  // width-1 digits and a NUL, as Go and GNU tar write them
  const s = value.toString(8).padStart(width - 1, '0');
  if (s.length > width - 1) throw new OtapackError('INTERNAL', `tar: ${value} does not fit ${width - 1} octal digits`);
  buf.write(s, off, 'latin1');
  buf[off + width - 1] = 0;
}

function base256(buf: Buffer, off: number, width: number, value: number): void {
  let v = BigInt(value);
  for (let i = width - 1; i > 0; i--) {
    buf[off + i] = Number(v & 0xffn);
    v >>= 8n;
  }
  buf[off] = 0x80;
}

/** A ustar header for a regular file. Names must be ASCII and at most 100 bytes. */
export function encodeTarHeader(name: string, size: number, o: { mode?: number; mtime?: number } = {}): Buffer {
  if (!/^[\x21-\x7e]{1,100}$/.test(name)) throw new OtapackError('INTERNAL', `tar: member name ${JSON.stringify(name)} is not 1-100 printable ASCII characters`);
  if (!Number.isSafeInteger(size) || size < 0) throw new OtapackError('INTERNAL', `tar: bad size ${size}`);
  const h = Buffer.alloc(BLOCK);
  h.write(name, 0, 'latin1');
  octal(h, 100, 8, o.mode ?? 0o600);
  octal(h, 108, 8, 0);
  octal(h, 116, 8, 0);
  if (size > OCTAL_SIZE_MAX) base256(h, 124, 12, size);
  else octal(h, 124, 12, size);
  octal(h, 136, 12, Math.max(0, Math.floor(o.mtime ?? 0)));
  h.fill(0x20, 148, 156); // the checksum is computed with its own field as spaces
  h[156] = 0x30; // '0' regular file
  h.write('ustar\0', 257, 'latin1');
  h.write('00', 263, 'latin1');
  octal(h, 329, 8, 0);
  octal(h, 337, 8, 0);
  let sum = 0;
  for (const b of h) sum += b;
  // six digits, NUL, space (the historical layout Go and GNU tar write)
  h.write(sum.toString(8).padStart(6, '0'), 148, 'latin1');
  h[154] = 0;
  h[155] = 0x20;
  return h;
}

export class TarFormatError extends Error {}

const cstr = (b: Buffer, off: number, len: number): string => {
  const s = b.subarray(off, off + len);
  const z = s.indexOf(0);
  return s.subarray(0, z < 0 ? len : z).toString('utf8');
};

function parseNumber(b: Buffer, off: number, len: number, field: string): number {
  const f = b.subarray(off, off + len);
  if (f[0]! & 0x80) {
    // GNU base-256: a positive big-endian number after the marker bit
    if (f[0] === 0xff) throw new TarFormatError(`negative ${field}`);
    let v = BigInt(f[0]! & 0x7f);
    for (let i = 1; i < len; i++) v = (v << 8n) | BigInt(f[i]!);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new TarFormatError(`${field} too large`);
    return Number(v);
  }
  const s = f.toString('latin1').replace(/\0.*$/s, '').trim();
  if (s === '') return 0;
  if (!/^[0-7]+$/.test(s)) throw new TarFormatError(`${field} is not an octal number (${JSON.stringify(s)})`);
  return parseInt(s, 8);
}

export type ParsedBlock = { kind: 'zero' } | { kind: 'header'; entry: TarEntry };

/** One 512-byte block at a member boundary: a header (checksum checked) or a zero block. */
export function parseTarHeader(b: Buffer): ParsedBlock {
  if (b.length !== BLOCK) throw new TarFormatError('short header block');
  if (b.every((x) => x === 0)) return { kind: 'zero' };
  const stored = parseNumber(b, 148, 8, 'checksum');
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const x = i >= 148 && i < 156 ? 0x20 : b[i]!;
    unsigned += x;
    signed += x > 127 ? x - 256 : x;
  }
  if (stored !== unsigned && stored !== signed) throw new TarFormatError(`header checksum mismatch (stored ${stored.toString(8)}, computed ${unsigned.toString(8)})`);
  const magic = b.subarray(257, 263).toString('latin1');
  const name = cstr(b, 0, 100);
  const prefix = magic.startsWith('ustar') ? cstr(b, 345, 155) : '';
  const typeByte = b[156]!;
  return {
    kind: 'header',
    entry: {
      name: prefix ? `${prefix}/${name}` : name,
      mode: parseNumber(b, 100, 8, 'mode'),
      uid: parseNumber(b, 108, 8, 'uid'),
      gid: parseNumber(b, 116, 8, 'gid'),
      size: parseNumber(b, 124, 12, 'size'),
      mtime: parseNumber(b, 136, 12, 'mtime'),
      type: typeByte === 0 ? '0' : String.fromCharCode(typeByte),
      uname: cstr(b, 265, 32),
      gname: cstr(b, 297, 32),
    },
  };
}

/** PAX extended header records ("LEN key=value\n"...): the path and size overrides Go writes. */
export function parsePax(data: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  let at = 0;
  while (at < data.length) {
    const sp = data.indexOf(0x20, at);
    if (sp < 0) throw new TarFormatError('malformed PAX record');
    const len = Number(data.subarray(at, sp).toString('latin1'));
    if (!Number.isInteger(len) || len <= sp - at || at + len > data.length || data[at + len - 1] !== 0x0a) throw new TarFormatError('malformed PAX record');
    const rec = data.subarray(sp + 1, at + len - 1).toString('utf8');
    const eq = rec.indexOf('=');
    if (eq <= 0) throw new TarFormatError('malformed PAX record');
    out[rec.slice(0, eq)] = rec.slice(eq + 1);
    at += len;
  }
  return out;
}

/** Largest extended header (PAX record set, GNU long name) the readers accept. */
export const MAX_EXTENDED_HEADER = 64 << 10;

/** Applies the pending PAX/GNU overrides to the next real header. */
export function applyExtended(entry: TarEntry, pax: Record<string, string> | undefined, longName: string | undefined): TarEntry {
  const e = { ...entry };
  if (longName !== undefined) e.name = longName;
  if (pax?.path !== undefined) e.name = pax.path;
  if (pax?.size !== undefined) {
    if (!/^\d+$/.test(pax.size)) throw new TarFormatError(`PAX size ${JSON.stringify(pax.size)} is not a number`);
    e.size = Number(pax.size);
    if (!Number.isSafeInteger(e.size)) throw new TarFormatError('PAX size too large');
  }
  return e;
}

/**
 * A push parser for a tar stream (the payload tar inside data/0000.tar.gz, header.tar): feed it
 * the bytes in order; it calls onEntry at each member's header, onData with its bytes, onEnd at
 * its end. Constant memory: member data passes straight through.
 */
export class TarStreamParser {
  private state: 'header' | 'data' | 'pad' | 'ext' | 'end' = 'header';
  private head = Buffer.alloc(BLOCK);
  private headFill = 0;
  private remaining = 0;
  private padLeft = 0;
  private ext: { kind: 'x' | 'L' | 'g'; chunks: Buffer[]; size: number } | undefined;
  private pax: Record<string, string> | undefined;
  private longName: string | undefined;
  private current: TarEntry | undefined;
  private zeroBlocks = 0;
  /** Bytes after the end-of-archive marker (zero blocks are harmless; anything else is not). */
  trailingNonZero = false;
  ended = false;

  constructor(private readonly cb: {
    onEntry(e: TarEntry): void;
    onData(e: TarEntry, chunk: Buffer): void;
    onEnd(e: TarEntry): void;
  }) {}

  push(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length) {
      if (this.state === 'end') {
        if (!this.trailingNonZero && chunk.subarray(at).some((x) => x !== 0)) this.trailingNonZero = true;
        return;
      }
      if (this.state === 'header') {
        const n = Math.min(BLOCK - this.headFill, chunk.length - at);
        chunk.copy(this.head, this.headFill, at, at + n);
        this.headFill += n;
        at += n;
        if (this.headFill < BLOCK) return;
        this.headFill = 0;
        this.onHeader();
        continue;
      }
      const n = Math.min(this.state === 'pad' ? this.padLeft : this.remaining, chunk.length - at);
      const piece = chunk.subarray(at, at + n);
      at += n;
      if (this.state === 'pad') {
        this.padLeft -= n;
        if (this.padLeft === 0) this.state = 'header';
        continue;
      }
      this.remaining -= n;
      if (this.state === 'ext') {
        this.ext!.chunks.push(Buffer.from(piece));
      } else {
        this.cb.onData(this.current!, piece);
      }
      if (this.remaining === 0) this.finishMember();
    }
  }

  private onHeader(): void {
    const p = parseTarHeader(this.head);
    if (p.kind === 'zero') {
      this.zeroBlocks++;
      if (this.zeroBlocks === 2) { this.state = 'end'; this.ended = true; }
      return;
    }
    if (this.zeroBlocks) throw new TarFormatError('a header after a zero block');
    const e = p.entry;
    if (e.type === 'x' || e.type === 'L' || e.type === 'g') {
      if (e.size > MAX_EXTENDED_HEADER) throw new TarFormatError(`extended header of ${e.size} bytes`);
      this.ext = { kind: e.type, chunks: [], size: e.size };
      this.remaining = e.size;
      this.padLeft = padTo512(e.size);
      this.state = 'ext';
      if (e.size === 0) this.finishMember();
      return;
    }
    this.current = applyExtended(e, this.pax, this.longName);
    this.pax = undefined;
    this.longName = undefined;
    this.remaining = this.current.size;
    this.padLeft = padTo512(this.current.size);
    this.state = 'data';
    this.cb.onEntry(this.current);
    if (this.remaining === 0) this.finishMember();
  }

  private finishMember(): void {
    if (this.state === 'ext') {
      const data = Buffer.concat(this.ext!.chunks);
      if (this.ext!.kind === 'x') this.pax = parsePax(data);
      else if (this.ext!.kind === 'L') this.longName = data.toString('utf8').replace(/\0.*$/s, '');
      this.ext = undefined;
    } else {
      this.cb.onEnd(this.current!);
    }
    this.state = this.padLeft ? 'pad' : 'header';
  }

  /** Throws unless the stream ended at a member boundary (with or without the zero blocks). */
  finish(): { endMarker: boolean } {
    if (this.state === 'data' || this.state === 'ext') throw new TarFormatError(`the tar stream ends inside member ${this.current ? JSON.stringify(this.current.name) : '(extended header)'}`);
    if (this.state === 'pad') throw new TarFormatError('the tar stream ends inside a member\'s padding');
    if (this.headFill) throw new TarFormatError('the tar stream ends inside a header');
    return { endMarker: this.ended };
  }
}
