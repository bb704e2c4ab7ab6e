// Block maps in bmaptool's format 2.0: which blocks of a sparse image matter, each range with its
// SHA-256, and the file's own checksum computed the way bmaptool checks it (over the file with
// the checksum field set to 64 ASCII zeros). bmaptool copy writes only these ranges.
import { createHash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';

export interface BmapRange { first: number; last: number; sha256: string }
export interface BmapCopy { from: number; to: number; length: number }

/** Merged, block-aligned [first, last] block ranges, split at the given byte boundaries. */
function blockRanges(mapped: [number, number][], bs: number, blocks: number, cuts: number[]): [number, number][] {
  const r = mapped
    .map(([a, b]): [number, number] => [Math.floor(a / bs), Math.min(blocks - 1, Math.ceil(b / bs) - 1)])
    .filter(([a, b]) => b >= a)
    .sort((x, y) => x[0] - y[0]);
  const merged: [number, number][] = [];
  for (const [a, b] of r) {
    const last = merged[merged.length - 1];
    if (last && a <= last[1] + 1) last[1] = Math.max(last[1], b);
    else merged.push([a, b]);
  }
  const cutBlocks = [...new Set(cuts.filter((c) => c % bs === 0).map((c) => c / bs))].sort((x, y) => x - y);
  const out: [number, number][] = [];
  for (const [a0, b] of merged) {
    let a = a0;
    for (const c of cutBlocks) {
      if (c > a && c <= b) {
        out.push([a, c - 1]);
        a = c;
      }
    }
    out.push([a, b]);
  }
  return out;
}

async function hashRange(fh: FileHandle, start: number, end: number, buf: Buffer): Promise<string> {
  const h = createHash('sha256');
  for (let pos = start; pos < end; ) {
    const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, end - pos), pos);
    if (bytesRead === 0) {
      h.update(Buffer.alloc(end - pos));
      break;
    }
    h.update(buf.subarray(0, bytesRead));
    pos += bytesRead;
  }
  return h.digest('hex');
}

/**
 * `copies` declares regions that are byte-identical ([to, to+length) equals [from, from+length),
 * both block-aligned): ranges inside `to` reuse the hashes computed for `from` instead of reading
 * the data again.
 */
export async function computeBmap(fh: FileHandle, imageSize: number, mapped: [number, number][], o: { blockSize?: number; copies?: BmapCopy[] } = {}): Promise<{ xml: string; mappedBytes: number; ranges: BmapRange[] }> {
  const bs = o.blockSize ?? 4096;
  const blocks = Math.ceil(imageSize / bs);
  const copies = (o.copies ?? []).filter((c) => c.from % bs === 0 && c.to % bs === 0 && c.length % bs === 0);
  const cuts = copies.flatMap((c) => [c.from, c.from + c.length, c.to, c.to + c.length]);
  const ranges = blockRanges(mapped, bs, blocks, cuts);
  const buf = Buffer.allocUnsafe(8 << 20);
  const known = new Map<string, string>();
  const out: BmapRange[] = [];
  let mappedBlocks = 0;
  for (const [first, last] of ranges) {
    const start = first * bs;
    const end = Math.min(imageSize, (last + 1) * bs);
    const copy = copies.find((c) => start >= c.to && end <= c.to + c.length);
    let sha = copy ? known.get(`${start - copy.to + copy.from}-${end - copy.to + copy.from}`) : undefined;
    if (!sha) sha = await hashRange(fh, start, end, buf);
    known.set(`${start}-${end}`, sha);
    out.push({ first, last, sha256: sha });
    mappedBlocks += last - first + 1;
  }
  const zeros = '0'.repeat(64);
  const lines = [
    '<?xml version="1.0" ?>',
    '<!-- Block map of a disk image made by otapack convert; write the image with bmaptool copy -->',
    '<bmap version="2.0">',
    `    <ImageSize> ${imageSize} </ImageSize>`,
    `    <BlockSize> ${bs} </BlockSize>`,
    `    <BlocksCount> ${blocks} </BlocksCount>`,
    `    <MappedBlocksCount> ${mappedBlocks} </MappedBlocksCount>`,
    '    <ChecksumType> sha256 </ChecksumType>',
    `    <BmapFileChecksum> ${zeros} </BmapFileChecksum>`,
    '    <BlockMap>',
    ...out.map((r) => `        <Range chksum="${r.sha256}"> ${r.first === r.last ? r.first : `${r.first}-${r.last}`} </Range>`),
    '    </BlockMap>',
    '</bmap>',
    '',
  ];
  const draft = lines.join('\n');
  const fileSum = createHash('sha256').update(draft).digest('hex');
  return { xml: draft.replace(zeros, fileSum), mappedBytes: Math.min(mappedBlocks * bs, imageSize), ranges: out };
}
