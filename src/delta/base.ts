// The base of a delta: the previous release's slot image, given as the image itself or as the
// .swu that shipped it (CI keeps the last release's bundle, not its disk images). From a bundle,
// the matching payload is taken out with the one archive reader (openPayload), its stored bytes
// checked against sw-description's sha256, then decrypted and decompressed into a sparse temp
// file. Then what a delta needs to know of it: its size and SHA-256, and, for ext4, the blocks in
// use (ext4 bitmaps): the bytes every device running it is guaranteed to hold, whether it was
// written whole by a bundle or flashed by bmaptool, which writes only those blocks.
import { createDecipheriv, createHash } from 'node:crypto';
import { open, rm, stat, type FileHandle } from 'node:fs/promises';
import { createGunzip } from 'node:zlib';
import { Readable } from 'node:stream';
import { basename } from 'node:path';
import { OtapackError, ioError } from '../errors.js';
import { readInto, openInput } from '../util/io.js';
import { stage } from '../util/profile.js';
import { run, spawnStream } from '../util/tools.js';
import { PositionalWriter } from '../util/positional-writer.js';
import { aesCipherName, type AesKey } from '../crypto/keys.js';
import { probeExt4, usedRanges, readFile as readExt4, resolvePath } from '../fs/ext4.js';
import { ArchiveReader, safeName } from '../clients/swupdate/archive.js';
import { readBundleManifest, type ManifestRef } from '../clients/swupdate/manifest-read.js';
import { MAGIC_CRC, MAGIC_NEWC } from '../clients/swupdate/cpio.js';

/** Matching granularity when the base is not ext4 (the common page and flash erase unit). */
const DEFAULT_BLOCK = 4096;
const HOLE = 64 << 10;

export interface DeltaBase {
  /** The raw image (a temp file when it came out of a bundle). */
  path: string;
  /** The file the user named. */
  origin: string;
  /** When the base came out of a .swu: which payload, and the release's version. */
  bundle?: { entry: string; version?: string; compressed?: string; encrypted: boolean };
  size: number;
  /** ext4 facts, when the base is ext4. */
  ext4?: { blockSize: number; uuid: string; rootOptions?: string[] };
  /** Matching granularity (the filesystem's block size). */
  blockSize: number;
  /**
   * Byte ranges devices hold exactly (ext4: blocks in use, but superblock and journal; otherwise
   * the whole image). The rdiff encoder hashes them, in order, for the device's base check.
   */
  ranges: [number, number][];
  rangesBytes: number;
  /** Removes the temp file, if one was made. */
  cleanup(): Promise<void>;
}

/** True when the file starts like a cpio archive (a .swu). */
async function isBundle(path: string): Promise<boolean> {
  const fh = await openInput(path);
  try {
    const b = Buffer.alloc(6);
    await readInto(fh, b, 0);
    const m = b.toString('latin1');
    return m === MAGIC_CRC || m === MAGIC_NEWC;
  } finally {
    await fh.close();
  }
}

const STORED_SUFFIX = /(\.(zst|zstd|gz|zlib))?(\.enc)?$/;

/**
 * The payload of a previous bundle a delta for `label` starts from: the raw image whose stored
 * name, without compression and encryption suffixes, is `label`; else the bundle's only raw
 * image. A delta bundle is refused: its payload is not an image.
 */
export function pickBasePayload(refs: ManifestRef[], label: string, origin: string): ManifestRef {
  const images = refs.filter((r) => r.kind === 'images' && r.filename);
  const deltas = images.filter((r) => r.type === 'rdiff_image' || r.type === 'delta');
  if (deltas.length && deltas.length === images.length) {
    throw new OtapackError('INPUT', 'is a delta bundle: a delta is made from a release\'s full bundle (or its slot image), not from another delta', { path: origin, reason: 'delta-of-delta' });
  }
  const raw = images.filter((r) => (r.type ?? 'raw') === 'raw');
  const names = [...new Set(raw.map((r) => r.filename!))];
  const byName = names.filter((n) => n.replace(STORED_SUFFIX, '') === label);
  const pick = byName.length === 1 ? byName[0] : names.length === 1 ? names[0] : undefined;
  if (!pick) {
    throw new OtapackError('INPUT', names.length
      ? `holds ${names.length} raw images (${names.map(safeName).join(', ')}) and none is stored as "${label}": give the previous slot image itself`
      : 'holds no raw image to make a delta from', { path: origin, reason: 'no-base-payload' });
  }
  return raw.find((r) => r.filename === pick)!;
}

/**
 * Opens the base `from` (an image or a .swu). A payload taken out of a bundle goes to a temp file
 * in `workDir`; `label` names the image a bundle's payload is matched against (rootfs.ext4).
 */
export async function openDeltaBase(from: string, o: { workDir: string; label: string; aes?: AesKey }): Promise<DeltaBase> {
  if (!(await isBundle(from))) return describeBase(from, from, undefined, async () => {});
  const out = `${o.workDir}/base-${basename(from).replace(/[^A-Za-z0-9._-]/g, '_')}.img`;
  try {
    const { size, bundle } = await stage('delta: base (decrypt + decompress)', () => extractFromBundle(from, out, o.label, o.aes));
    return await describeBase(out, from, { size, bundle }, () => rm(out, { force: true }));
  } catch (e) {
    await rm(out, { force: true });
    throw e;
  }
}

async function extractFromBundle(swu: string, out: string, label: string, aes: AesKey | undefined): Promise<{ size: number; bundle: NonNullable<DeltaBase['bundle']> }> {
  const reader = await ArchiveReader.open(swu);
  try {
    const layout = await reader.bundle();
    const manifest = readBundleManifest(swu, layout);
    const ref = pickBasePayload(manifest.refs, label, swu);
    const entry = layout.payloads.find((e) => e.name === ref.filename);
    if (!entry) throw new OtapackError('INPUT', `sw-description names "${safeName(ref.filename!)}" but the bundle does not hold it`, { path: swu, reason: 'corrupt-bundle' });
    if (!ref.sha256) throw new OtapackError('INPUT', `payload "${safeName(entry.name)}" has no sha256 in sw-description`, { path: swu, reason: 'corrupt-bundle' });
    if (ref.encrypted && !aes) throw new OtapackError('KEY', `payload "${safeName(entry.name)}" is encrypted: give the AES key it was made with (--aes-key or $OTAPACK_AES_KEY)`, { path: swu });
    const codec = ref.compressed === 'zstd' ? 'zstd' : ref.compressed === 'zlib' || ref.compressed === true ? 'zlib' : 'none';
    const iv = ref.encrypted ? (typeof ref.ivt === 'string' && /^[0-9a-fA-F]{32}$/.test(ref.ivt) ? Buffer.from(ref.ivt, 'hex') : aes!.iv) : undefined;
    // one pass: the stored bytes are hashed while they are decoded. A payload that is not what
    // sw-description says is corrupt, whatever its decoding said (and then that proves nothing
    // about the key): when decoding fails before the end, the rest is hashed to tell which.
    const tampered = (): OtapackError => new OtapackError('INPUT', `payload "${safeName(entry.name)}" does not match sw-description's sha256 (corrupt or tampered)`, { path: swu, reason: 'hash-mismatch' });
    const hash = createHash('sha256');
    const raw = await reader.openPayload(entry);
    const stream = Readable.from((async function* () { for await (const c of raw) { hash.update(c as Buffer); yield c as Buffer; } })());
    let size: number;
    try {
      ({ size } = await decodeToFile(stream, { codec, aes: ref.encrypted ? aes : undefined, iv }, out, swu, entry.name));
    } catch (e) {
      if ((await reader.digestEntry(entry)).sha256 !== ref.sha256.toLowerCase()) throw tampered();
      throw e;
    }
    if (hash.digest('hex') !== ref.sha256.toLowerCase()) throw tampered();
    return { size, bundle: { entry: entry.name, version: manifest.version, compressed: typeof ref.compressed === 'string' ? ref.compressed : undefined, encrypted: ref.encrypted } };
  } finally {
    await reader.close();
  }
}

/** Decrypts and decompresses a stored payload into a sparse file; returns the decoded size. */
async function decodeToFile(stored: Readable, d: { codec: 'zstd' | 'zlib' | 'none'; aes?: AesKey; iv?: Buffer }, out: string, swu: string, entry: string): Promise<{ size: number }> {
  const what = `payload "${safeName(entry)}"`;
  let plain: AsyncIterable<Buffer> = stored;
  if (d.aes) {
    const decipher = createDecipheriv(aesCipherName(d.aes), d.aes.key, d.iv!);
    plain = (async function* () {
      for await (const c of stored) yield decipher.update(c as Buffer);
      try {
        yield decipher.final();
      } catch {
        throw new OtapackError('KEY', `${what} does not decrypt with the AES key given (its bytes match sw-description: wrong key)`, { path: swu, reason: 'wrong-aes-key' });
      }
    })();
  }
  if (d.codec === 'zstd') {
    // zstd writes the file itself (sparse: it seeks over zeros), so the GiB of the image never
    // pass through this process
    const { child, done } = spawnStream('zstd', ['-d', '-q', '-f', '-o', out], { stdin: 'pipe' });
    child.stdin!.on('error', () => {});
    const feeding = (async () => {
      for await (const c of plain) {
        if (!child.stdin!.write(c)) await drained(child.stdin!);
      }
      child.stdin!.end();
    })();
    feeding.catch(() => child.kill('SIGTERM'));
    const [f, z] = await Promise.allSettled([feeding, done]);
    if (f.status === 'rejected' && (f.reason as OtapackError)?.code === 'KEY') throw f.reason;
    const e = z.status === 'rejected' ? z.reason : f.status === 'rejected' ? f.reason : undefined;
    if (e) {
      const detail = e instanceof OtapackError ? (e.toolOutput ?? e.detail).split('\n').filter(Boolean).pop() : (e as Error).message;
      throw new OtapackError('INPUT', `${what} does not decode as zstd data (${detail})`, { path: swu, reason: 'corrupt-data' });
    }
    try {
      return { size: (await stat(out)).size };
    } catch (err) {
      throw ioError('IO', `cannot write ${out}`, err);
    }
  }
  let decoded: AsyncIterable<Buffer> = plain;
  const finished: Promise<void> = Promise.resolve();
  if (d.codec === 'zlib') {
    const gz = createGunzip();
    decoded = Readable.from(plain).pipe(gz);
  }
  let fh: FileHandle;
  try {
    fh = await open(out, 'w');
  } catch (e) {
    throw ioError('IO', `cannot write ${out}`, e);
  }
  let size = 0;
  try {
    const w = new PositionalWriter(fh, 0);
    const zero = Buffer.alloc(HOLE);
    try {
      for await (const c of decoded) {
        // whole 64 KiB stretches of zeros, aligned in the file, stay holes
        let i = 0;
        while (i < c.length) {
          const abs = size + i;
          const n = Math.min(c.length - i, HOLE - (abs % HOLE));
          const piece = c.subarray(i, i + n);
          if (n === HOLE && piece.equals(zero)) {
            await w.finish();
            w.position += n;
          } else await w.write(piece);
          i += n;
        }
        size += c.length;
      }
      await finished;
    } catch (e) {
      if (e instanceof OtapackError && e.code !== 'TOOL') throw e;
      const detail = e instanceof OtapackError ? (e.toolOutput ?? e.detail).split('\n').filter(Boolean).pop() : (e as Error).message;
      throw new OtapackError('INPUT', `${what} does not decode as ${d.codec} data (${detail})`, { path: swu, reason: 'corrupt-data' });
    }
    await w.finish();
    await fh.truncate(size);
  } finally {
    await fh.close();
  }
  return { size };
}

/** Resolves when a writable has room again (or is gone), leaving no listener behind. */
function drained(w: NodeJS.WritableStream): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => { w.off('drain', done); w.off('close', done); w.off('error', done); resolve(); };
    w.on('drain', done);
    w.on('close', done);
    w.on('error', done);
  });
}

async function describeBase(path: string, origin: string, known: { size: number; bundle: DeltaBase['bundle'] } | undefined, cleanup: () => Promise<void>): Promise<DeltaBase> {
  const fh = await openInput(path, origin);
  try {
    const st = await fh.stat();
    if (!st.isFile() && !st.isBlockDevice()) throw new OtapackError('INPUT', 'not a regular file', { path: origin, reason: 'not-a-regular-file' });
    const size = known?.size ?? st.size;
    if (size === 0) throw new OtapackError('INPUT', 'the base image is empty', { path: origin });
    const fs = await probeExt4(path, 0).catch(() => undefined);
    let ranges: [number, number][] = [[0, size]];
    let ext4: DeltaBase['ext4'];
    if (fs && fs.size <= size) {
      ranges = await stage('delta: base (blocks in use)', async () => { const [u, v] = await Promise.all([usedRanges(path, 0, fs), volatileRanges(path, fs.blockSize)]); return subtract(u, v); });
      ext4 = { blockSize: fs.blockSize, uuid: fs.uuid, rootOptions: await rootOptions(path) };
    }
    return {
      path, origin, bundle: known?.bundle, size, ext4, blockSize: ext4?.blockSize ?? DEFAULT_BLOCK, ranges,
      rangesBytes: ranges.reduce((n, [a, b]) => n + b - a, 0), cleanup,
    };
  } catch (e) {
    await cleanup();
    throw e;
  } finally {
    await fh.close();
  }
}

/**
 * Blocks of an ext4 base that a device cannot be relied on to read as they are in the image,
 * even with the root mounted read-only: the kernel keeps the superblock and the journal in the
 * block device's cache and changes them there when it mounts (a metadata_csum filesystem's
 * journal superblock gains its checksum feature in memory), so a reader of /dev/mmcblk0p2 sees
 * those changes while the disk keeps the image's bytes. The delta never copies from them and
 * the base check does not hash them; what they hold is of no use to a delta anyway.
 */
async function volatileRanges(path: string, blockSize: number): Promise<[number, number][]> {
  const out: [number, number][] = [];
  const sb = Math.floor(1024 / blockSize) * blockSize;
  out.push([sb, sb + Math.max(blockSize, 1024)]);
  const r = await run('debugfs', ['-R', 'stat <8>', path], { what: 'debugfs (journal blocks)', okCodes: [0, 1] });
  const ext = /EXTENTS:\s*\n([\s\S]*?)(?:\n\S|$)/.exec(r.stdout)?.[1] ?? '';
  for (const m of ext.matchAll(/\(\d+(?:-\d+)?\):(\d+)(?:-(\d+))?/g)) {
    const a = Number(m[1]);
    const b = Number(m[2] ?? m[1]);
    out.push([a * blockSize, (b + 1) * blockSize]);
  }
  return out;
}

/** `ranges` without the bytes of `holes` (both sorted or not; the result is sorted). */
export function subtract(ranges: [number, number][], holes: [number, number][]): [number, number][] {
  let cur = [...ranges].sort((x, y) => x[0] - y[0]);
  for (const [h0, h1] of holes) {
    const next: [number, number][] = [];
    for (const [a, b] of cur) {
      if (h1 <= a || h0 >= b) next.push([a, b]);
      else {
        if (a < h0) next.push([a, h0]);
        if (h1 < b) next.push([h1, b]);
      }
    }
    cur = next;
  }
  return cur;
}


/** The mount options of / in the base's /etc/fstab (undefined when it has none). */
async function rootOptions(path: string): Promise<string[] | undefined> {
  try {
    const f = await resolvePath(path, 0, '/etc/fstab', 'the base');
    if (f?.stat.type !== 'file') return undefined;
    const text = (await readExt4(path, 0, f.path, 'the base')).toString('utf8');
    for (const line of text.split('\n')) {
      const w = line.trim().split(/\s+/);
      if (w.length >= 4 && !w[0]!.startsWith('#') && w[1] === '/') return w[3]!.split(',');
    }
  } catch {
    /* an unreadable fstab says nothing about the root */
  }
  return undefined;
}
