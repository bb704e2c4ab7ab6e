// Reads a cpio archive from a file by position. Every size in a header is checked against the
// bytes actually present before anything is read or allocated, so a header claiming 4 GiB in a
// 1 KiB file fails at once with a named reason instead of a hang or an allocation.
import { open, type FileHandle } from 'node:fs/promises';
import { OtapackError, fileError } from '../../errors.js';
import { HEADER_SIZE, MAX_NAME_SIZE, TRAILER, pad4, parseHeader, type CpioHeader } from './cpio.js';

export interface CpioEntry {
  index: number;
  name: string;
  header: CpioHeader;
  headerOffset: number;
  dataOffset: number;
  size: number;
  /** Oddities that change nothing the client would install (non-hex unused fields, dirty padding). */
  anomalies: string[];
}

export interface CpioEnd {
  /** Offset just past the trailer entry. */
  trailerEnd: number;
  fileSize: number;
  anomalies: string[];
}

const CHUNK = 1 << 20;

export class CpioReader {
  private buf = Buffer.alloc(CHUNK);
  end: CpioEnd | undefined;

  private constructor(
    readonly path: string,
    readonly fh: FileHandle,
    readonly fileSize: number,
  ) {}

  static async open(path: string): Promise<CpioReader> {
    let fh: FileHandle;
    try {
      fh = await open(path, 'r');
    } catch (e) {
      throw fileError('INPUT', path, e);
    }
    const st = await fh.stat();
    if (!st.isFile()) {
      await fh.close();
      throw new OtapackError('INPUT', 'not a regular file', { path, reason: 'not-a-regular-file' });
    }
    return new CpioReader(path, fh, st.size);
  }

  async close(): Promise<void> {
    await this.fh.close().catch(() => {});
  }

  private async readExact(offset: number, length: number): Promise<Buffer> {
    const out = Buffer.alloc(length);
    let done = 0;
    while (done < length) {
      const { bytesRead } = await this.fh.read(out, done, length - done, offset + done);
      if (bytesRead === 0) break;
      done += bytesRead;
    }
    return done === length ? out : out.subarray(0, done);
  }

  private bad(msg: string): OtapackError {
    return new OtapackError('INPUT', msg, { path: this.path, reason: 'corrupt-bundle' });
  }

  /** Walks the entries in order. Throws an INPUT error naming the offset on a structural fault. */
  async *entries(): AsyncGenerator<CpioEntry> {
    if (this.fileSize === 0) throw this.bad('empty file, not a cpio archive');
    let offset = 0;
    for (let index = 0; ; index++) {
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

  /** Streams [offset, offset+length) to `onChunk`; the chunk buffer is reused after the callback resolves. */
  async readRange(offset: number, length: number, onChunk: (chunk: Buffer) => void | Promise<void>): Promise<void> {
    let pos = offset;
    const end = offset + length;
    while (pos < end) {
      const want = Math.min(CHUNK, end - pos);
      const { bytesRead } = await this.fh.read(this.buf, 0, want, pos);
      if (bytesRead === 0) throw this.bad(`unexpected end of file at offset ${pos}`);
      await onChunk(this.buf.subarray(0, bytesRead));
      pos += bytesRead;
    }
  }

  /** Reads a small entry whole; refuses entries larger than `max`. */
  async readEntry(e: CpioEntry, max: number): Promise<Buffer> {
    if (e.size > max) throw this.bad(`entry "${safeName(e.name)}" is ${e.size} bytes, more than the ${max} allowed for it`);
    return this.readExact(e.dataOffset, e.size);
  }
}

/** Names from hostile archives are printed escaped and shortened. */
export function safeName(name: string): string {
  const s = JSON.stringify(name).slice(1, -1);
  return s.length > 80 ? s.slice(0, 77) + '...' : s;
}
