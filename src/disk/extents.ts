// Where a sparse file holds data. Reading a hole costs the kernel a zero-filled page-cache page
// and a copy, so the disk copies and digests read only the file's data extents and use zeros
// for the rest. The extents come from FIEMAP through e2fsprogs' filefrag (Node has neither
// lseek(SEEK_DATA) nor ioctl); every extent it reports counts as data (delayed-allocation and
// unwritten ones included), so at worst some zeros are read. When the map is unavailable (no
// filefrag, a filesystem without FIEMAP, a block device), everything is read.
import { open, type FileHandle } from 'node:fs/promises';
import { run, which } from '../util/tools.js';
import { readInto, type BlockReader } from '../util/io.js';
import { readAt, type DirectTarget } from './direct-io.js';

/** Sorted, merged [start, end) byte ranges holding data, 4 KiB aligned; undefined when unknown. */
export type DataMap = [number, number][] | undefined;

const ALIGN = 4096;

/** Parses `filefrag -v -b1` output: one line per extent, "N: first.. last: … flags". */
export function parseFilefrag(text: string): DataMap {
  const ranges: [number, number][] = [];
  let header = false;
  for (const line of text.split('\n')) {
    if (/^\s*ext:\s+logical_offset:/.test(line)) { header = true; continue; }
    const m = /^\s*\d+:\s*(\d+)\.\.\s*(\d+):/.exec(line);
    if (!m) continue;
    const first = Number(m[1]);
    const last = Number(m[2]);
    if (!Number.isSafeInteger(first) || !Number.isSafeInteger(last) || last < first) return undefined;
    ranges.push([Math.floor(first / ALIGN) * ALIGN, Math.ceil((last + 1) / ALIGN) * ALIGN]);
  }
  if (!header) return undefined;
  return mergeRanges(ranges);
}

export function mergeRanges(ranges: [number, number][]): [number, number][] {
  const sorted = [...ranges].sort((a, b) => a[0] - b[0]);
  const out: [number, number][] = [];
  for (const [a, b] of sorted) {
    const last = out[out.length - 1];
    if (last && a <= last[1]) last[1] = Math.max(last[1], b);
    else out.push([a, b]);
  }
  return out;
}

/** The data map of a regular file, or undefined when it cannot be known. */
export async function dataMap(path: string): Promise<DataMap> {
  if (!which('filefrag')) return undefined;
  try {
    const r = await run('filefrag', ['-v', '-b1', path]);
    return parseFilefrag(r.stdout);
  } catch {
    return undefined;
  }
}

/** The parts of [pos, pos + len) that hold data, as offsets relative to pos (all of it when unknown). */
export function dataIn(map: DataMap, pos: number, len: number): [number, number][] {
  if (!map) return [[0, len]];
  let lo = 0;
  let hi = map.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (map[mid]![1] <= pos) lo = mid + 1;
    else hi = mid;
  }
  const out: [number, number][] = [];
  for (let k = lo; k < map.length && map[k]![0] < pos + len; k++) {
    out.push([Math.max(0, map[k]![0] - pos), Math.min(len, map[k]![1] - pos)]);
  }
  return out;
}

/**
 * Fills buf[0, len) with the file's bytes at pos, reading only its data parts (holes and the
 * part past the end of the file are zeros). Returns false when the whole span is a hole and
 * nothing was written to buf.
 */
export async function readSparse(fh: FileHandle, buf: Buffer, pos: number, len: number, map: DataMap, direct?: DirectTarget): Promise<boolean> {
  const parts = dataIn(map, pos, len);
  if (parts.length === 0) return false;
  let at = 0;
  for (const [a, b] of parts) {
    if (a > at) buf.fill(0, at, a);
    let got = a;
    while (got < b) {
      const { bytesRead } = await readAt(fh, direct, buf, got, b - got, pos + got);
      if (bytesRead === 0) { buf.fill(0, got, b); break; }
      got += bytesRead;
    }
    at = b;
  }
  if (at < len) buf.fill(0, at, len);
  return true;
}

const SPARSE_MIN = 64 << 20; // below this, asking filefrag for the data map costs more than it saves

/**
 * Opens a file to be read front to back in blocks (a payload the gzip codec compresses): a large
 * file's holes (free space of a sparse rootfs image) are not read, they are zeros.
 */
export async function openSparse(path: string): Promise<BlockReader> {
  const fh = await open(path, 'r');
  try {
    const { size } = await fh.stat();
    const map = size >= SPARSE_MIN ? await dataMap(path) : undefined;
    return {
      async read(buf, pos) {
        // no map, or past the size seen at the start (the file grew): read to the end of the file
        if (!map || pos >= size) return readInto(fh, buf, pos);
        const n = Math.min(buf.length, size - pos);
        if (!(await readSparse(fh, buf, pos, n, map))) buf.fill(0, 0, n);
        return n;
      },
      close: () => fh.close(),
    };
  } catch (e) {
    await fh.close();
    throw e;
  }
}
