// Block maps in bmaptool's format 2.0 (bmap-tools 3.x, BmapCreate.py), so `bmaptool copy` can
// flash our images writing only the mapped blocks and verifying each range's SHA-256. Written
// here rather than by running `bmaptool create` because we already know which byte ranges
// matter (partition data, not filesystem extents of a temp file), and because two identical A/B
// slots can share their range checksums instead of being hashed twice.
//
// Format facts taken from bmaptool's source: ImageSize in bytes; BlocksCount = ceil(ImageSize /
// BlockSize); each <Range chksum="…"> covers whole blocks "first-last" (or "n"), but its checksum
// covers only bytes that exist, so a last partial block is hashed up to ImageSize;
// BmapFileChecksum is the SHA-256 of the whole file with that field's value replaced by 64 '0'.
import { createHash } from 'node:crypto';
import { OtapackError } from '../errors.js';

export interface BmapRange { first: number; last: number; sha256: string }

/**
 * Bytes [to, to+length) of the image are identical to bytes [from, from+length) (e.g. slot B
 * was cloned from slot A). All three numbers must be multiples of the block size. Ranges are
 * then never merged across either region's edges, and a range inside `to` whose counterpart
 * inside `from` was hashed reuses that checksum instead of reading the data again. The caller
 * vouches for the equality: a wrong claim yields a bmap that `bmaptool copy` rejects.
 */
export interface BmapCopy { from: number; to: number; length: number }

export interface BmapOptions {
  blockSize?: number;
  copies?: BmapCopy[];
}

const ZERO_SUM = '0'.repeat(64);

/** Python's "%.1f": correctly rounded like toFixed, but exact ties (x.25, x.75) go to even. */
function fixed1(x: number): string {
  if (Number.isInteger(x * 4) && !Number.isInteger(x * 2)) {
    const lo = Math.floor(x * 10);
    return ((lo % 2 === 0 ? lo : lo + 1) / 10).toFixed(1);
  }
  return x.toFixed(1);
}

/** bmaptool's human_size(): "1 byte", "N bytes" below 512, else one decimal and KiB/MiB/GiB/TiB/EiB. */
function humanSize(size: number): string {
  if (size === 1) return '1 byte';
  if (size < 512) return `${size} bytes`;
  let s = size;
  for (const unit of ['KiB', 'MiB', 'GiB', 'TiB']) {
    s /= 1024;
    if (s < 1024) return `${fixed1(s)} ${unit}`;
  }
  return `${fixed1(s)} EiB`;
}

/** Fills in BmapFileChecksum: SHA-256 over the text with the field set to zeros. */
export function sealBmap(xml: string): string {
  const re = /(<BmapFileChecksum> )[0-9a-f]{64}( <\/BmapFileChecksum>)/;
  if (!re.test(xml)) throw new OtapackError('INTERNAL', 'bmap text has no BmapFileChecksum field');
  const zeroed = xml.replace(re, `$1${ZERO_SUM}$2`);
  const sum = createHash('sha256').update(zeroed, 'utf8').digest('hex');
  return zeroed.replace(re, `$1${sum}$2`);
}

/** Block ranges covering `mapped`, merged where they touch, split at the `cuts` block numbers. */
function blockRanges(mapped: [number, number][], imageSize: number, bs: number, cuts: number[]): [number, number][] {
  const raw: [number, number][] = [];
  for (const [start, end] of mapped) {
    if (!(Number.isSafeInteger(start) && Number.isSafeInteger(end)) || start < 0 || end > imageSize) {
      throw new OtapackError('INTERNAL', `bmap: mapped range ${start}–${end} lies outside the ${imageSize}-byte image`);
    }
    if (end > start) raw.push([Math.floor(start / bs), Math.ceil(end / bs) - 1]);
  }
  raw.sort((a, b) => a[0] - b[0]);
  const merged: [number, number][] = [];
  for (const r of raw) {
    const prev = merged[merged.length - 1];
    if (prev && r[0] <= prev[1] + 1) prev[1] = Math.max(prev[1], r[1]);
    else merged.push([r[0], r[1]]);
  }
  const sortedCuts = [...new Set(cuts)].sort((a, b) => a - b);
  const out: [number, number][] = [];
  for (const [first, last] of merged) {
    let f = first;
    for (const c of sortedCuts) {
      if (c > f && c <= last) {
        out.push([f, c - 1]);
        f = c;
      }
    }
    out.push([f, last]);
  }
  return out;
}

/** Which blocks a bmap maps, before any hashing. */
export interface BmapPlan {
  imageSize: number;
  blockSize: number;
  /** [first, last] block ranges, in order, cut at every copy region's edges. */
  ranges: [number, number][];
  copies: BmapCopy[];
}

/** Checks the inputs and works out the block ranges; no data is read. */
export function planBmap(imageSize: number, mapped: [start: number, end: number][], opts: BmapOptions = {}): BmapPlan {
  const bs = opts.blockSize ?? 4096;
  if (!Number.isSafeInteger(bs) || bs < 512 || (bs & (bs - 1)) !== 0) throw new OtapackError('INTERNAL', `bmap: block size ${bs} is not a power of two ≥ 512`);
  if (!Number.isSafeInteger(imageSize) || imageSize <= 0) throw new OtapackError('INTERNAL', `bmap: image size ${imageSize} is invalid`);
  const copies = opts.copies ?? [];
  for (const c of copies) {
    if (c.from % bs || c.to % bs || c.length % bs || c.length <= 0) throw new OtapackError('INTERNAL', `bmap: copy ${c.from}→${c.to} (${c.length} bytes) is not aligned to ${bs}-byte blocks`);
    if (c.from + c.length > imageSize || c.to + c.length > imageSize || c.from < 0 || c.to < 0) throw new OtapackError('INTERNAL', `bmap: copy ${c.from}→${c.to} lies outside the image`);
    if (c.from < c.to + c.length && c.to < c.from + c.length) throw new OtapackError('INTERNAL', `bmap: copy ${c.from}→${c.to} overlaps itself`);
  }
  const cuts = copies.flatMap((c) => [c.from, c.from + c.length, c.to, c.to + c.length].map((b) => b / bs));
  return { imageSize, blockSize: bs, ranges: blockRanges(mapped, imageSize, bs, cuts), copies };
}

/** A range's bytes, and where they can be read: inside a copy's `to` region, from its `from` twin. */
function span(p: BmapPlan, [first, last]: [number, number]): [number, number] {
  const start = first * p.blockSize;
  const end = Math.min(p.imageSize, (last + 1) * p.blockSize);
  const c = p.copies.find((x) => start >= x.to && start < x.to + x.length);
  return c ? [start - c.to + c.from, end - c.to + c.from] : [start, end];
}

/** The distinct byte ranges [start, end) whose SHA-256 the bmap needs, in file order. */
export function bmapHashRanges(p: BmapPlan): [number, number][] {
  const seen = new Map<string, [number, number]>();
  for (const r of p.ranges) {
    const s = span(p, r);
    seen.set(`${s[0]}-${s[1]}`, s);
  }
  return [...seen.values()].sort((x, y) => x[0] - y[0] || x[1] - y[1]);
}

/** The bmap text from a plan and the SHA-256 (hex) of each range bmapHashRanges listed. */
export function renderBmap(p: BmapPlan, sha: (start: number, end: number) => string): { xml: string; mappedBytes: number; ranges: BmapRange[] } {
  const ranges = p.ranges.map((r) => ({ first: r[0], last: r[1], sha256: sha(...span(p, r)) }));
  const blocksCount = Math.ceil(p.imageSize / p.blockSize);
  const mappedCount = ranges.reduce((n, r) => n + r.last - r.first + 1, 0);
  const xml = sealBmap(render(p.imageSize, p.blockSize, blocksCount, mappedCount, ranges));
  return { xml, mappedBytes: mappedCount * p.blockSize, ranges };
}

/**
 * The same text BmapCreate writes, byte for byte (so a bmap can be compared with bmaptool's own),
 * with the checksum field zeroed. BmapCreate writes blank placeholders for the mapped-count
 * comment and value and overwrites them at the end; the padding left over is reproduced here.
 */
function render(imageSize: number, bs: number, blocksCount: number, mappedCount: number, ranges: BmapRange[]): string {
  const imageHuman = humanSize(imageSize);
  const placeholder = `${' '.repeat(imageHuman.length)} or ${' '.repeat(6)}   -->`;
  const countText = `${humanSize(mappedCount * bs)} or ${fixed1((mappedCount * 100) / blocksCount)}%`;
  // When the text is longer than its placeholder bmaptool's own output is garbled; write it cleanly.
  const countLine = countText.length <= placeholder.length - 3 ? countText + placeholder.slice(countText.length) : `${countText} -->`;
  const lines = ranges.map((r) => `        <Range chksum="${r.sha256}"> ${r.first === r.last ? `${r.first}` : `${r.first}-${r.last}`} </Range>\n`);
  return `<?xml version="1.0" ?>
<!-- This file contains the block map for an image file, which is basically
     a list of useful (mapped) block numbers in the image file. In other words,
     it lists only those blocks which contain data (boot sector, partition
     table, file-system metadata, files, directories, extents, etc). These
     blocks have to be copied to the target device. The other blocks do not
     contain any useful data and do not have to be copied to the target
     device.

     The block map an optimization which allows to copy or flash the image to
     the image quicker than copying of flashing the entire image. This is
     because with bmap less data is copied: <MappedBlocksCount> blocks instead
     of <BlocksCount> blocks.

     Besides the machine-readable data, this file contains useful commentaries
     which contain human-readable information like image size, percentage of
     mapped data, etc.

     The 'version' attribute is the block map file format version in the
     'major.minor' format. The version major number is increased whenever an
     incompatible block map format change is made. The minor number changes
     in case of minor backward-compatible changes. -->

<bmap version="2.0">
    <!-- Image size in bytes: ${imageHuman} -->
    <ImageSize> ${imageSize} </ImageSize>

    <!-- Size of a block in bytes -->
    <BlockSize> ${bs} </BlockSize>

    <!-- Count of blocks in the image file -->
    <BlocksCount> ${blocksCount} </BlocksCount>

    <!-- Count of mapped blocks: ${countLine}
    <MappedBlocksCount> ${`${mappedCount}`.padEnd(`${blocksCount}`.length)} </MappedBlocksCount>

    <!-- Type of checksum used in this file -->
    <ChecksumType> sha256 </ChecksumType>

    <!-- The checksum of this bmap file. When it is calculated, the value of
         the checksum has be zero (all ASCII "0" symbols).  -->
    <BmapFileChecksum> ${ZERO_SUM} </BmapFileChecksum>

    <!-- The block map which consists of elements which may either be a
         range of blocks or a single block. The 'chksum' attribute
         (if present) is the checksum of this blocks range. -->
    <BlockMap>
${lines.join('')}    </BlockMap>
</bmap>
`;
}
