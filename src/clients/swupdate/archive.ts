// The .swu archive: the one writer and the one reader of SWUpdate bundles. bundle, sign, verify
// (and the delta code to come) go through these; cpio.ts is the header codec beneath them.
//
// Writer. sw-description must be the first entry but holds every payload's sha256, known only
// once the payload has been streamed. Its length is known in advance (digests and ivts are
// fixed-width), and so is its signature's (RSA: exactly; ECDSA: a maximum). So the writer
// reserves that prefix, streams each payload straight into its place after it, writes each
// payload's header once its size and byte sum are known, and at the end writes sw-description
// and its signature into the reserved space. A prefix that comes out another length than
// reserved (ECDSA, an external signer) moves the payload region once.
//
// Reader. Every size in a header is checked against the bytes actually present before anything
// is read or allocated, so a header claiming 4 GiB in a 1 KiB file fails at once with a named
// reason instead of a hang or an allocation.
import { readFully, openInput } from '../../util/io.js';
import { createHash } from 'node:crypto';
import { type FileHandle } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { OtapackError } from '../../errors.js';
import { PositionalWriter, writeAll } from '../../util/positional-writer.js';
import { Meter, metered } from '../../util/profile.js';
import {
  HEADER_SIZE, MAGIC_CRC, MAX_ENTRY_SIZE, MAX_NAME_SIZE, TRAILER,
  byteSum, encodeHeader, encodeTrailer, headerSpan, pad4, parseHeader, type CpioFormat, type CpioHeader,
} from './cpio.js';

/** The client's fixed entry names: the manifest first, its CMS signature second. */
export const MANIFEST_NAME = 'sw-description';
export const SIGNATURE_NAME = 'sw-description.sig';
/** The most entries the reader walks; no bundle comes near it, a hostile archive could. */
const MAX_ENTRIES = 100_000;

// ------------------------------------------------------------------------------------ writer

export interface ArchiveWriterOptions {
  format: CpioFormat;
  /** cpio mtime of sw-description and its signature, and of payload entries unless given. */
  mtime: number;
  /** Whether sw-description.sig follows sw-description (payload inodes then start at 3, else 2). */
  signed: boolean;
  /** Bytes reserved at the start for sw-description and its signature: prefixSize(). */
  reserve: number;
}

/**
 * An entry's bytes: all of them at once, chunks to pull (a stream, a generator, an array), or a
 * push feed that calls `write` with each chunk and awaits it (the chunk may be reused once that
 * resolves).
 */
export type EntrySource =
  | Uint8Array
  | AsyncIterable<Uint8Array>
  | Iterable<Uint8Array>
  | ((write: (chunk: Uint8Array) => Promise<void>) => Promise<void>);

export interface EntryOptions {
  /** cpio mode; regular file 0644 by default. */
  mode?: number;
  /** cpio mtime; the archive's by default. */
  mtime?: number;
  /** Names the payload in the error when it passes the 4 GiB entry limit (default: the entry name). */
  label?: string;
  /** Called after each chunk with the bytes stored so far. */
  onData?: (storedBytes: number) => void;
}

export interface WrittenEntry {
  name: string;
  /** Offset of the entry's header. */
  offset: number;
  size: number;
  sha256: string;
  /** 32-bit byte sum of the data (the crc format's c_chksum). */
  check: number;
}

/** Bytes sw-description and (when signed) its signature take at the start of the archive. */
export function prefixSize(manifestLength: number, signatureLength?: number): number {
  return headerSpan(MANIFEST_NAME) + manifestLength + pad4(manifestLength) +
    (signatureLength === undefined ? 0 : headerSpan(SIGNATURE_NAME) + signatureLength + pad4(signatureLength));
}

/** sw-description and (optionally) sw-description.sig entries, padded, as they start the archive. */
function encodePrefix(manifest: Buffer, sig: Buffer | undefined, format: CpioFormat, mtime: number): Buffer {
  const parts = [
    encodeHeader(MANIFEST_NAME, { size: manifest.length, check: byteSum(manifest), ino: 1, mtime }, format),
    manifest,
    Buffer.alloc(pad4(manifest.length)),
  ];
  if (sig) parts.push(encodeHeader(SIGNATURE_NAME, { size: sig.length, check: byteSum(sig), ino: 2, mtime }, format), sig, Buffer.alloc(pad4(sig.length)));
  return Buffer.concat(parts);
}

/**
 * Writes a .swu into an empty file: addEntry() for each payload in order, then finish() with
 * sw-description and its signature. Deterministic: inodes count up from 1 in entry order, every
 * mtime is the one given, the trailer has inode and mtime 0.
 */
export class ArchiveWriter {
  private pos: number;
  private ino: number;
  private finished = false;
  /** Set when an entry failed half-written: the file is then only fit to be discarded. */
  private failed = false;

  constructor(private readonly fh: FileHandle, private readonly o: ArchiveWriterOptions) {
    this.pos = o.reserve;
    this.ino = o.signed ? 3 : 2;
  }

  /** Offset where the next entry's header goes. */
  get position(): number {
    return this.pos;
  }

  /**
   * Streams one payload entry: each chunk is hashed, summed and written in place (double-buffered,
   * so the next chunk is prepared while the previous one is written); the header is written once
   * the size and sum are known. Stops with a LIMIT error past 4 GiB, the cpio limit per entry.
   */
  async addEntry(name: string, data: EntrySource, o: EntryOptions = {}): Promise<WrittenEntry> {
    if (this.finished || this.failed) throw new OtapackError('INTERNAL', `archive entry added after the archive ${this.failed ? 'failed' : 'was finished'}`);
    const offset = this.pos;
    const span = headerSpan(name);
    const hash = createHash('sha256');
    const out = new PositionalWriter(this.fh, offset + span);
    const m = { hash: new Meter('hash (SHA-256)'), sum: new Meter('cpio byte sum'), write: new Meter('write (buffer, backpressure)') };
    let size = 0;
    let check = 0;
    const take = async (b: Uint8Array): Promise<void> => {
      if (b.length === 0) return;
      size += b.length;
      if (size > MAX_ENTRY_SIZE) {
        throw new OtapackError('LIMIT', `${o.label ?? name}: the stored payload passed 4 GiB, the cpio format's limit per entry; use stronger compression or split the image`);
      }
      metered(m.hash, () => hash.update(b));
      check = metered(m.sum, () => byteSum(b, check));
      m.write.start();
      await out.write(b);
      m.write.stop();
      o.onData?.(size);
    };
    try {
      if (data instanceof Uint8Array) await take(data);
      else if (typeof data === 'function') await data(take);
      else for await (const b of data) await take(b);
      await out.finish();
    } catch (e) {
      this.failed = true;
      throw e;
    }
    const header = encodeHeader(name, { size, check, ino: this.ino++, mode: o.mode, mtime: o.mtime ?? this.o.mtime }, this.o.format);
    await writeAll(this.fh, header, span, offset);
    const padding = pad4(size);
    if (padding) await writeAll(this.fh, Buffer.alloc(padding), padding, offset + span + size);
    this.pos = offset + span + size + padding;
    return { name, offset, size, sha256: hash.digest('hex'), check };
  }

  /**
   * Writes the trailer, then sw-description and its signature into the reserved space (moving the
   * payloads once if they need another length). Returns the archive's size.
   */
  async finish(manifest: Buffer, signature?: Buffer): Promise<number> {
    if (this.finished || this.failed) throw new OtapackError('INTERNAL', `archive ${this.failed ? 'failed' : 'finished twice'}`);
    if (!!signature !== this.o.signed) throw new OtapackError('INTERNAL', `archive reserved for ${this.o.signed ? 'a' : 'no'} signature, finished with${signature ? '' : 'out'} one`);
    this.finished = true;
    const { fh, o } = this;
    const payloadEnd = this.pos;
    const trailer = encodeTrailer(payloadEnd, o.format);
    await writeAll(fh, trailer, trailer.length, payloadEnd);
    const prefix = encodePrefix(manifest, signature, o.format, o.mtime);
    if (prefix.length === o.reserve) {
      await writeAll(fh, prefix, prefix.length, 0);
      return payloadEnd + trailer.length;
    }
    await shiftRegion(fh, o.reserve, payloadEnd, prefix.length);
    await writeAll(fh, prefix, prefix.length, 0);
    const end = payloadEnd - o.reserve + prefix.length;
    const t = encodeTrailer(end, o.format);
    await writeAll(fh, t, t.length, end);
    await fh.truncate(end + t.length);
    return end + t.length;
  }
}

/** Moves [from, end) to start at `to`, in chunks ordered so no byte is overwritten before it is read. */
async function shiftRegion(fh: FileHandle, from: number, end: number, to: number): Promise<void> {
  const buf = Buffer.allocUnsafe(4 << 20);
  const chunks: [number, number][] = [];
  for (let p = from; p < end; p += buf.length) chunks.push([p, Math.min(buf.length, end - p)]);
  if (to > from) chunks.reverse();
  for (const [p, n] of chunks) {
    const { bytesRead } = await fh.read(buf, 0, n, p);
    await writeAll(fh, buf, bytesRead, p - from + to);
  }
}

// ------------------------------------------------------------------------------------ reader

export interface ArchiveEntry {
  index: number;
  name: string;
  header: CpioHeader;
  headerOffset: number;
  dataOffset: number;
  size: number;
  /** Oddities that change nothing the client would install (non-hex unused fields, dirty padding). */
  anomalies: string[];
}

export interface ArchiveEnd {
  /** Offset just past the trailer entry. */
  trailerEnd: number;
  fileSize: number;
  anomalies: string[];
}

export interface ArchiveScan {
  /** The entries before the trailer, or before the structural fault. */
  entries: ArchiveEntry[];
  /** Set when the walk reached the trailer. */
  end?: ArchiveEnd;
  /** The structural fault that stopped the walk (without the file name). */
  fault?: string;
}

/** A bundle as sign, manifest and delta need it: sw-description first, names bare and unique. */
export interface BundleLayout {
  format: CpioFormat;
  /** The exact bytes of sw-description: what a signature covers. */
  manifest: Buffer;
  manifestEntry: ArchiveEntry;
  signatureEntry?: ArchiveEntry;
  /** Every other entry, in archive order. */
  payloads: ArchiveEntry[];
}

export type NameProblem = { name: string; problem: 'not-bare' | 'duplicate' };
export type OrderProblem = { position: 0 | 1; found: string; expected: typeof MANIFEST_NAME | typeof SIGNATURE_NAME };

/** Entry names the client cannot look up or an extractor could write outside its folder, and repeats. */
export function nameProblems(names: readonly string[]): NameProblem[] {
  const out: NameProblem[] = [];
  const seen = new Set<string>();
  for (const name of names) {
    if (name === '' || name.includes('/') || name === '.' || name === '..') out.push({ name, problem: 'not-bare' });
    if (seen.has(name)) out.push({ name, problem: 'duplicate' });
    seen.add(name);
  }
  return out;
}

/** sw-description must come first and, when present, sw-description.sig second. */
export function orderProblems(names: readonly string[]): OrderProblem[] {
  const out: OrderProblem[] = [];
  if (names[0] !== MANIFEST_NAME) out.push({ position: 0, found: names[0] ?? '', expected: MANIFEST_NAME });
  if (names.includes(SIGNATURE_NAME) && names[1] !== SIGNATURE_NAME) out.push({ position: 1, found: names[1] ?? '', expected: SIGNATURE_NAME });
  return out;
}

/** Names from hostile archives are printed escaped and shortened. */
export function safeName(name: string): string {
  const s = JSON.stringify(name).slice(1, -1);
  return s.length > 80 ? s.slice(0, 77) + '...' : s;
}

const formatOf = (h: CpioHeader): CpioFormat => (h.magic === MAGIC_CRC ? 'crc' : 'newc');

const CHUNK = 1 << 20;
const MAX_MANIFEST = 4 << 20;

export class ArchiveReader {
  private buf = Buffer.alloc(CHUNK);
  private walked: Promise<{ entries: ArchiveEntry[]; end?: ArchiveEnd; error?: OtapackError }> | undefined;
  /** Set once a walk reached the trailer. */
  end: ArchiveEnd | undefined;

  private constructor(
    readonly path: string,
    private readonly fh: FileHandle,
    readonly fileSize: number,
  ) {}

  static async open(path: string): Promise<ArchiveReader> {
    const fh = await openInput(path);
    const st = await fh.stat();
    if (!st.isFile()) {
      await fh.close();
      throw new OtapackError('INPUT', 'not a regular file', { path, reason: 'not-a-regular-file' });
    }
    return new ArchiveReader(path, fh, st.size);
  }

  async close(): Promise<void> {
    await this.fh.close().catch(() => {});
  }

  private readExact(offset: number, length: number): Promise<Buffer> {
    return readFully(this.fh, offset, length);
  }

  private bad(msg: string): OtapackError {
    return new OtapackError('INPUT', msg, { path: this.path, reason: 'corrupt-bundle' });
  }

  /** Walks the entries in order. Throws an INPUT error naming the offset on a structural fault. */
  async *entries(): AsyncGenerator<ArchiveEntry> {
    if (this.fileSize === 0) throw this.bad('empty file, not a cpio archive');
    let offset = 0;
    for (let index = 0; ; index++) {
      if (index > MAX_ENTRIES) throw this.bad(`more than ${MAX_ENTRIES} entries`);
      if (offset + HEADER_SIZE > this.fileSize) {
        throw this.bad(offset === 0 ? 'too short to be a cpio archive' : `archive ends at offset ${offset} without a ${TRAILER} entry (truncated?)`);
      }
      const hb = await this.readExact(offset, HEADER_SIZE);
      const parsed = parseHeader(hb);
      if (!parsed.ok) throw this.bad(`${offset === 0 ? 'not a SWUpdate bundle: ' : ''}entry ${index} at offset ${offset}: ${parsed.reason}`);
      const h = parsed.header;
      const anomalies = [...parsed.anomalies];
      if (h.nameSize < 2 || h.nameSize > MAX_NAME_SIZE) throw this.bad(`entry ${index} at offset ${offset}: name size ${h.nameSize} out of range`);
      const nameStart = offset + HEADER_SIZE;
      const dataOffset = nameStart + h.nameSize + pad4(HEADER_SIZE + h.nameSize);
      if (dataOffset > this.fileSize) throw this.bad(`entry ${index} at offset ${offset}: name runs past the end of the file (truncated?)`);
      const nameBytes = await this.readExact(nameStart, h.nameSize + pad4(HEADER_SIZE + h.nameSize));
      if (nameBytes[h.nameSize - 1] !== 0) throw this.bad(`entry ${index} at offset ${offset}: name is not NUL-terminated`);
      const raw = nameBytes.subarray(0, h.nameSize - 1);
      if (raw.includes(0)) throw this.bad(`entry ${index} at offset ${offset}: name contains a NUL byte`);
      const name = raw.toString('utf8');
      if (nameBytes.subarray(h.nameSize).some((x) => x !== 0)) anomalies.push('non-zero padding after the name');
      if (name === TRAILER) {
        // SWUpdate stops at the trailer's name and never reads its data: a size there is odd, not fatal
        const endAnoms: string[] = [];
        if (h.size !== 0) endAnoms.push(`trailer entry claims ${h.size} bytes of data (ignored by the client)`);
        const trailerEnd = Math.min(this.fileSize, dataOffset + h.size + pad4(h.size));
        if (this.fileSize % 512 !== 0) endAnoms.push(`archive length ${this.fileSize} is not a multiple of 512`);
        const tail = this.fileSize - trailerEnd;
        if (tail > 0) {
          if (tail > 64 * 1024) endAnoms.push(`${tail} bytes after the trailer`);
          else if ((await this.readExact(trailerEnd, tail)).some((x) => x !== 0)) endAnoms.push('non-zero bytes after the trailer');
        }
        this.end = { trailerEnd, fileSize: this.fileSize, anomalies: endAnoms };
        return;
      }
      if (dataOffset + h.size > this.fileSize) {
        throw this.bad(`entry ${index} "${safeName(name)}" claims ${h.size} bytes at offset ${dataOffset} but the file has only ${this.fileSize - dataOffset} left (truncated or corrupt header)`);
      }
      const next = dataOffset + h.size + pad4(h.size);
      if (next > this.fileSize) throw this.bad(`entry ${index} "${safeName(name)}": data padding runs past the end of the file (truncated?)`);
      if (next > dataOffset + h.size) {
        const p = await this.readExact(dataOffset + h.size, next - dataOffset - h.size);
        if (p.some((x) => x !== 0)) anomalies.push('non-zero padding after the data');
      }
      yield { index, name, header: h, headerOffset: offset, dataOffset, size: h.size, anomalies };
      offset = next;
    }
  }

  /** One full walk, kept: the entries up to the trailer or the structural fault. */
  private walk(): Promise<{ entries: ArchiveEntry[]; end?: ArchiveEnd; error?: OtapackError }> {
    this.walked ??= (async () => {
      const entries: ArchiveEntry[] = [];
      try {
        for await (const e of this.entries()) entries.push(e);
        return { entries, end: this.end };
      } catch (e) {
        if (!(e instanceof OtapackError)) throw e;
        return { entries, error: e };
      }
    })();
    return this.walked;
  }

  /** Every entry, and the structural fault (if any) reported instead of thrown: what verify judges. */
  async scan(): Promise<ArchiveScan> {
    const w = await this.walk();
    return { entries: w.entries, end: w.end, fault: w.error?.detail };
  }

  /**
   * The bundle as a whole, strictly: a structural fault, sw-description not first, a name that is
   * not bare or appears twice, or a manifest failing its cpio sum is an INPUT error.
   */
  async bundle(): Promise<BundleLayout> {
    const { entries, error } = await this.walk();
    if (error) throw error;
    const first = entries[0];
    if (!first || first.name !== MANIFEST_NAME) {
      throw new OtapackError('INPUT', `${this.path}: first entry is "${safeName(first?.name ?? '')}", not sw-description: not a SWUpdate bundle`);
    }
    const problem = nameProblems(entries.map((e) => e.name))[0];
    if (problem) {
      throw new OtapackError('INPUT', `${this.path}: entry "${safeName(problem.name)}" ${problem.problem === 'duplicate' ? 'appears twice' : 'is not a bare file name'}`);
    }
    const manifest = await this.readEntry(first, MAX_MANIFEST);
    if (first.header.magic === MAGIC_CRC && byteSum(manifest) !== first.header.check) {
      throw new OtapackError('INPUT', `${this.path}: sw-description fails its cpio checksum`);
    }
    const signatureEntry = entries.find((e) => e.name === SIGNATURE_NAME);
    return {
      format: formatOf(first.header),
      manifest,
      manifestEntry: first,
      signatureEntry,
      payloads: entries.filter((e) => e !== first && e !== signatureEntry),
    };
  }

  /** Reads a small entry whole; refuses entries larger than `max`. */
  async readEntry(e: ArchiveEntry, max: number): Promise<Buffer> {
    if (e.size > max) throw this.bad(`entry "${safeName(e.name)}" is ${e.size} bytes, more than the ${max} allowed for it`);
    return this.readExact(e.dataOffset, e.size);
  }

  /**
   * Streams an entry's stored bytes to `onChunk`; the chunk buffer is reused once the callback
   * resolves (so `(write) => reader.streamEntry(e, write)` is an EntrySource that copies an entry).
   */
  async streamEntry(e: ArchiveEntry, onChunk: (chunk: Buffer) => void | Promise<void>): Promise<void> {
    let pos = e.dataOffset;
    const end = e.dataOffset + e.size;
    while (pos < end) {
      const want = Math.min(CHUNK, end - pos);
      const { bytesRead } = await this.fh.read(this.buf, 0, want, pos);
      if (bytesRead === 0) throw this.bad(`unexpected end of file at offset ${pos}`);
      await onChunk(this.buf.subarray(0, bytesRead));
      pos += bytesRead;
    }
  }

  /** streamEntry() that also returns the bytes' SHA-256 and byte sum (for sw-description and the header). */
  async digestEntry(e: ArchiveEntry, onChunk?: (chunk: Buffer) => void | Promise<void>): Promise<{ sha256: string; check: number }> {
    const hash = createHash('sha256');
    let check = 0;
    await this.streamEntry(e, async (chunk) => {
      hash.update(chunk);
      check = byteSum(chunk, check);
      await onChunk?.(chunk);
    });
    return { sha256: hash.digest('hex'), check };
  }

  /**
   * A readable stream of an entry's stored bytes (compressed and encrypted as stored), e.g. to copy
   * it into another archive with ArchiveWriter.addEntry or to feed a decoder. Each chunk is its own
   * buffer. A name must be a single entry of a structurally sound archive.
   */
  async openPayload(entry: ArchiveEntry | string): Promise<Readable> {
    let e: ArchiveEntry;
    if (typeof entry === 'string') {
      const { entries, error } = await this.walk();
      if (error) throw error;
      const found = entries.filter((x) => x.name === entry);
      if (found.length !== 1) throw this.bad(found.length ? `entry "${safeName(entry)}" appears twice` : `no entry "${safeName(entry)}"`);
      e = found[0]!;
    } else e = entry;
    const { fh } = this;
    const bad = (m: string): OtapackError => this.bad(m);
    return Readable.from((async function* () {
      for (let pos = e.dataOffset, end = e.dataOffset + e.size; pos < end;) {
        const chunk = Buffer.allocUnsafe(Math.min(CHUNK, end - pos));
        const { bytesRead } = await fh.read(chunk, 0, chunk.length, pos);
        if (bytesRead === 0) throw bad(`unexpected end of file at offset ${pos}`);
        yield bytesRead === chunk.length ? chunk : chunk.subarray(0, bytesRead);
        pos += bytesRead;
      }
    })(), { objectMode: false });
  }
}
