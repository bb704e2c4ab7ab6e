// A whole bmap from an open image in one call: plan the ranges, hash each distinct one, render.
// convert does the same in pieces (its hashes come from the digest pass over the image); this
// form is what the bmap tests compare with bmaptool.
import { createHash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import { OtapackError } from '../../src/errors.js';
import { planBmap, bmapHashRanges, renderBmap, type BmapOptions, type BmapRange } from '../../src/disk/bmap.js';

const READ_CHUNK = 4 * 1024 * 1024;

/** Computes a bmaptool 2.0 block map for `imageSize` bytes of `fh`, where `mapped` byte ranges hold data. */
export async function computeBmap(fh: FileHandle, imageSize: number, mapped: [start: number, end: number][], opts: BmapOptions = {}): Promise<{ xml: string; mappedBytes: number; ranges: BmapRange[] }> {
  const plan = planBmap(imageSize, mapped, opts);
  const buf = Buffer.allocUnsafe(READ_CHUNK);
  const sums = new Map<string, string>();
  for (const [start, end] of bmapHashRanges(plan)) {
    const h = createHash('sha256');
    for (let pos = start; pos < end;) {
      const { bytesRead } = await fh.read(buf, 0, Math.min(READ_CHUNK, end - pos), pos);
      if (bytesRead === 0) throw new OtapackError('INPUT', `bmap: image ends at byte ${pos}, before its size ${imageSize}`);
      h.update(buf.subarray(0, bytesRead));
      pos += bytesRead;
    }
    sums.set(`${start}-${end}`, h.digest('hex'));
  }
  return renderBmap(plan, (a, b) => sums.get(`${a}-${b}`)!);
}
