// The .mender archive (format "mender", version 3): the one writer and the one reader, used by
// bundle, convert and verify. Layout (next-formats §C, mender-artifact 3.9's reader enforces
// the order):
//
//   version            {"format":"mender","version":3}
//   manifest           "<sha256>  <path>\n" per file, sorted: data/0000/<payload>, header.tar[.gz], version
//   manifest.sig       base64 signature over the exact manifest bytes (only when signed)
//   header.tar[.gz]    header-info, scripts/*, headers/0000/type-info, headers/0000/meta-data
//   data/0000.tar[.gz] a tar with one member: the payload (the raw rootfs image)
//
// The manifest hashes the *uncompressed* payload, which is known only after it has been streamed,
// and it comes before the payload. So the writer reserves the first four members: their sizes are
// fixed in advance (the manifest's lines are fixed-width, the signature's length is the key's,
// and header.tar.gz is stored in deflate's stored blocks, whose size depends only on the length
// of header.tar), streams the payload member straight into its place after them in one pass, and
// writes the reserved members last. Nothing is moved or read back.
import { createHash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import { crc32 } from 'node:zlib';
import { OtapackError } from '../../errors.js';
import { PositionalWriter, writeAll } from '../../util/positional-writer.js';
import { readFully } from '../../util/io.js';
import { compressor, type CompressionId, type Feed } from '../../compress/index.js';
import { BLOCK, END_OF_ARCHIVE, encodeTarHeader, memberSpan, padTo512, parseTarHeader, TarFormatError, type TarEntry } from './tar.js';

export const VERSION_JSON = '{"format":"mender","version":3}';
/** The payload type otapack writes: a full root filesystem image for the inactive slot. */
export const ROOTFS_IMAGE = 'rootfs-image';

/** Compression of header.tar and data/0000.tar: what Debian's Mender 3.4 reads (it has no zstd). */
export type MenderCompression = 'zlib' | 'none';
export const MENDER_COMPRESSIONS: readonly MenderCompression[] = ['zlib', 'none'];
/**
 * gzip level of Mender artifacts unless one is given: 1. Level 6 makes them about 7 % smaller for
 * almost twice the deflate time (bench: 235 vs 219 MiB for the 1 GiB image; mender-artifact's
 * gzip gives 224 MiB); `compress-level` / update.compress-level chooses.
 */
export const MENDER_GZIP_LEVEL = 1;
export const compressionSuffix = (c: string): string => (c === 'zlib' ? '.gz' : c === 'none' ? '' : c === 'lzma' ? '.xz' : c === 'zstd' ? '.zst' : `.${c}`);

/** State scripts an artifact may carry (the client runs Idle/Sync/Download ones only from the rootfs). */
export const STATE_SCRIPT_RE = /^(ArtifactInstall|ArtifactReboot|ArtifactCommit|ArtifactRollback|ArtifactRollbackReboot|ArtifactFailure)_(Enter|Leave|Error)_[0-9]{2}(_[A-Za-z0-9_.-]+)?$/;
/** Payload file names the client accepts (mender-artifact's reader: letters, digits, . , _ -). */
export const PAYLOAD_NAME_RE = /^[A-Za-z0-9_.,-]{1,100}$/;
/** artifact_name, device types, provides: printable, no whitespace or quotes (they go into JSON and the client's shell env). */
export const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._:+~@/-]{0,127}$/;

/** What goes into header.tar: the artifact's identity, its dependencies and its state scripts. */
export interface MenderHeader {
  artifactName: string;
  deviceTypes: string[];
  /** More artifact_provides besides artifact_name (artifact_group …). */
  provides: Record<string, string>;
  /** More artifact_depends besides device_type (artifact_name: [...], artifact_group: [...]). */
  depends: Record<string, string[]>;
  /** type-info artifact_provides besides rootfs-image.checksum (which the writer adds): rootfs-image.version … */
  typeProvides: Record<string, string>;
  /** type-info artifact_depends (rootfs-image.checksum of a base …). */
  typeDepends: Record<string, string>;
  /** type-info clears_artifact_provides. */
  clearsProvides: string[];
  scripts: { name: string; data: Buffer }[];
}

/** mender-artifact's defaults for a rootfs-image: the provides a new rootfs replaces. */
export const DEFAULT_CLEARS_PROVIDES = ['artifact_group', 'rootfs_image_checksum', 'rootfs-image.*'];

const sortedObject = <T>(o: Record<string, T>): Record<string, T> => Object.fromEntries(Object.entries(o).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));

/** header-info and type-info as JSON (fields in mender-artifact's order, map keys sorted as Go marshals them). */
export function headerJson(h: MenderHeader, payloadSha256: string): { headerInfo: string; typeInfo: string } {
  const headerInfo = {
    payloads: [{ type: ROOTFS_IMAGE }],
    artifact_provides: sortedObject({ artifact_name: h.artifactName, ...h.provides }),
    artifact_depends: sortedObject({ device_type: h.deviceTypes, ...h.depends }),
  };
  const typeInfo: Record<string, unknown> = {
    type: ROOTFS_IMAGE,
    artifact_provides: sortedObject({ 'rootfs-image.checksum': payloadSha256, ...h.typeProvides }),
  };
  if (Object.keys(h.typeDepends).length) typeInfo.artifact_depends = sortedObject(h.typeDepends);
  typeInfo.clears_artifact_provides = h.clearsProvides;
  return { headerInfo: JSON.stringify(headerInfo), typeInfo: JSON.stringify(typeInfo) };
}

/** header.tar: header-info, the state scripts, headers/0000/type-info and meta-data (empty). */
export function headerTar(h: MenderHeader, payloadSha256: string): Buffer {
  const { headerInfo, typeInfo } = headerJson(h, payloadSha256);
  const parts: Buffer[] = [];
  const add = (name: string, data: Buffer, mode = 0o600): void => {
    parts.push(encodeTarHeader(name, data.length, { mode }), data, Buffer.alloc(padTo512(data.length)));
  };
  add('header-info', Buffer.from(headerInfo));
  for (const s of h.scripts) add(`scripts/${s.name}`, s.data, 0o755);
  add('headers/0000/type-info', Buffer.from(typeInfo));
  add('headers/0000/meta-data', Buffer.alloc(0));
  parts.push(END_OF_ARCHIVE);
  return Buffer.concat(parts);
}

/**
 * gzip of `data` in deflate stored blocks (RFC 1951 §3.2.4): valid gzip for every reader, and
 * its size depends only on data.length, so the header's place in the archive is fixed before
 * the checksum it holds is known. header.tar is a few KiB; the cost is those few KiB.
 */
export function gzipStored(data: Buffer): Buffer {
  const MAX = 0xffff;
  const parts: Buffer[] = [Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff])];
  for (let at = 0; at < data.length || at === 0; at += MAX) {
    const piece = data.subarray(at, at + MAX);
    const final = at + MAX >= data.length;
    const h = Buffer.alloc(5);
    h[0] = final ? 1 : 0;
    h.writeUInt16LE(piece.length, 1);
    h.writeUInt16LE(~piece.length & 0xffff, 3);
    parts.push(h, piece);
    if (data.length === 0) break;
  }
  const t = Buffer.alloc(8);
  t.writeUInt32LE(crc32(data) >>> 0, 0);
  t.writeUInt32LE(data.length >>> 0, 4);
  parts.push(t);
  return Buffer.concat(parts);
}

export const gzipStoredSize = (n: number): number => 10 + 5 * Math.max(1, Math.ceil(n / 0xffff)) + n + 8;

const headerName = (c: MenderCompression): string => `header.tar${compressionSuffix(c)}`;
const dataName = (c: MenderCompression): string => `data/0000.tar${compressionSuffix(c)}`;

/** The manifest: one "<sha256>  <path>" line per file, sorted by path. */
export function renderManifest(lines: Record<string, string>): Buffer {
  return Buffer.from(Object.keys(lines).sort().map((k) => `${lines[k]}  ${k}\n`).join(''));
}

/** A signer of the manifest: the raw signature (RSA PKCS#1 v1.5 or ECDSA P-256 r||s), not yet base64. */
export interface ManifestSigner {
  algorithm: 'rsa' | 'ecdsa';
  /** Length of the raw signature in bytes (RSA: the modulus; ECDSA P-256: 64). */
  rawLength: number;
  sign(manifest: Buffer): Promise<Buffer>;
  /** PEM SubjectPublicKeyInfo: what a device puts in ArtifactVerifyKey. */
  publicKeyPem: string;
  /** Where the key lives, for messages. */
  description: string;
  kind: 'key' | 'pkcs11' | 'command';
  /** Subject of the certificate, when the key came with one. */
  subject?: string;
}

export const base64Length = (raw: number): number => 4 * Math.ceil(raw / 3);

export interface PayloadSource {
  /** File name inside data/0000.tar (and data/0000/<name> in the manifest). */
  name: string;
  size: number;
  /** Pushes exactly `size` bytes, in order. */
  feed: Feed;
}

export interface WriteArtifactOptions {
  header: MenderHeader;
  payload: PayloadSource;
  compression: MenderCompression;
  level?: number;
  signer?: ManifestSigner;
  /** mtime of every member (SOURCE_DATE_EPOCH); 0 by default. */
  mtime: number;
  /** Input bytes consumed so far, polled for progress. */
  onProgress?: (consumed: number) => void;
}

export interface WrittenArtifact {
  size: number;
  manifest: string;
  /** base64 text of manifest.sig. */
  signature?: string;
  payloadSha256: string;
  /** Stored size of data/0000.tar[.gz]. */
  dataSize: number;
  members: { name: string; offset: number; size: number; sha256?: string }[];
  headerInfo: string;
  typeInfo: string;
}

/** Writes a .mender into an empty file in one pass over the payload; see the top of this file. */
export async function writeArtifact(fh: FileHandle, o: WriteArtifactOptions): Promise<WrittenArtifact> {
  const p = o.payload;
  if (!PAYLOAD_NAME_RE.test(p.name)) throw new OtapackError('CONFIG', `payload name ${JSON.stringify(p.name)}: the Mender client accepts only letters, digits and . , _ - (at most 100)`);
  const hName = headerName(o.compression);
  const dName = dataName(o.compression);
  const zero = '0'.repeat(64);
  const draftHeader = headerTar(o.header, zero);
  const headerStored = o.compression === 'zlib' ? gzipStoredSize(draftHeader.length) : draftHeader.length;
  const manifestDraft = renderManifest({ [`data/0000/${p.name}`]: zero, [hName]: zero, version: zero });
  const sigLen = o.signer ? base64Length(o.signer.rawLength) : undefined;
  const prefix = memberSpan(VERSION_JSON.length) + memberSpan(manifestDraft.length) + (sigLen === undefined ? 0 : memberSpan(sigLen)) + memberSpan(headerStored);

  // ---- data/0000.tar[.gz]: the payload tar, compressed, streamed into its place after the prefix
  const payloadHash = createHash('sha256');
  let fed = 0;
  const innerTar: Feed = async (write) => {
    await write(encodeTarHeader(p.name, p.size, { mode: 0o644, mtime: o.mtime }));
    await p.feed(async (chunk) => {
      fed += chunk.length;
      if (fed > p.size) throw new OtapackError('INPUT', `${p.name}: the payload grew past its size of ${p.size} bytes while it was read`);
      payloadHash.update(chunk);
      await write(chunk);
    });
    if (fed !== p.size) throw new OtapackError('INPUT', `${p.name}: the payload gave ${fed} bytes, ${p.size} were expected (did it change while it was read?)`);
    await write(Buffer.concat([Buffer.alloc(padTo512(p.size)), END_OF_ARCHIVE]));
  };
  const codec = compressor(o.compression as CompressionId);
  // Mender reads the payload with Go's gzip reader, which takes concatenated members as one
  // stream (mender-artifact validate and the 3.4 client, proven by the tests): one member per block
  const job = codec.start({ feed: innerTar }, o.level ?? codec.defaultLevel, { members: true });
  const out = new PositionalWriter(fh, prefix + BLOCK);
  let dataSize = 0;
  const timer = o.onProgress ? setInterval(() => o.onProgress!(fed), 200) : undefined;
  let complete = false;
  try {
    for await (const chunk of job.output) {
      dataSize += chunk.length;
      await out.write(chunk);
    }
    await job.done;
    complete = true;
  } finally {
    if (timer) clearInterval(timer);
    if (!complete) {
      job.abort();
      await job.done.catch(() => {});
    }
  }
  const dataEnd = await out.finish();
  const tail = Buffer.concat([Buffer.alloc(padTo512(dataSize)), END_OF_ARCHIVE]);
  await writeAll(fh, tail, tail.length, dataEnd);
  await writeAll(fh, encodeTarHeader(dName, dataSize, { mtime: o.mtime }), BLOCK, prefix);

  // ---- the reserved members, now that the payload's digest is known
  const payloadSha256 = payloadHash.digest('hex');
  const htar = headerTar(o.header, payloadSha256);
  const hdata = o.compression === 'zlib' ? gzipStored(htar) : htar;
  if (hdata.length !== headerStored) throw new OtapackError('INTERNAL', `${hName} came out ${hdata.length} bytes, ${headerStored} were reserved`);
  const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
  const version = Buffer.from(VERSION_JSON);
  const manifest = renderManifest({ [`data/0000/${p.name}`]: payloadSha256, [hName]: sha(hdata), version: sha(version) });
  if (manifest.length !== manifestDraft.length) throw new OtapackError('INTERNAL', 'the manifest length changed after hashing');
  let signature: Buffer | undefined;
  if (o.signer) {
    const raw = await o.signer.sign(manifest);
    if (raw.length !== o.signer.rawLength) throw new OtapackError('KEY', `${o.signer.description}: the signature is ${raw.length} bytes, ${o.signer.rawLength} were expected`);
    signature = Buffer.from(raw.toString('base64'));
  }
  const members: WrittenArtifact['members'] = [];
  const parts: Buffer[] = [];
  let at = 0;
  const member = (name: string, data: Buffer, hash: boolean): void => {
    members.push({ name, offset: at, size: data.length, ...(hash ? { sha256: sha(data) } : {}) });
    parts.push(encodeTarHeader(name, data.length, { mtime: o.mtime }), data, Buffer.alloc(padTo512(data.length)));
    at += memberSpan(data.length);
  };
  member('version', version, true);
  member('manifest', manifest, false);
  if (signature) member('manifest.sig', signature, false);
  member(hName, hdata, true);
  const head = Buffer.concat(parts);
  if (head.length !== prefix) throw new OtapackError('INTERNAL', `the artifact's first members came out ${head.length} bytes, ${prefix} were reserved`);
  await writeAll(fh, head, head.length, 0);
  members.push({ name: dName, offset: prefix, size: dataSize });
  const { headerInfo, typeInfo } = headerJson(o.header, payloadSha256);
  return { size: dataEnd + tail.length, manifest: manifest.toString('utf8'), signature: signature?.toString('latin1'), payloadSha256, dataSize, members, headerInfo, typeInfo };
}

// ------------------------------------------------------------------------------------ reader

export interface OuterMember {
  entry: TarEntry;
  /** Offset of its header block. */
  offset: number;
  /** Offset of its data. */
  dataOffset: number;
}

/** Most outer members the reader walks: a v3 artifact has five. */
const MAX_MEMBERS = 64;

/**
 * Walks the outer tar of a .mender, checking each header and that each member's data lies
 * inside the file before it is handed out. Stops at the end-of-archive blocks, at the end of
 * the file, or with a structural fault (a message, never a throw).
 */
export async function scanOuter(fh: FileHandle, fileSize: number): Promise<{ members: OuterMember[]; fault?: string; endMarker: boolean; trailing: number }> {
  const members: OuterMember[] = [];
  let at = 0;
  let zeros = 0;
  while (at < fileSize) {
    if (at + BLOCK > fileSize) return { members, fault: `the file ends inside a tar header at offset ${at}`, endMarker: false, trailing: 0 };
    const block = await readFully(fh, at, BLOCK);
    let p;
    try {
      p = parseTarHeader(block);
    } catch (e) {
      if (e instanceof TarFormatError) return { members, fault: `offset ${at}: not a tar header (${e.message})`, endMarker: false, trailing: 0 };
      throw e;
    }
    if (p.kind === 'zero') {
      zeros++;
      at += BLOCK;
      if (zeros === 2) return { members, endMarker: true, trailing: fileSize - at };
      continue;
    }
    if (zeros) return { members, fault: `offset ${at}: a tar header after a zero block`, endMarker: false, trailing: 0 };
    const e = p.entry;
    if (e.type !== '0') return { members, fault: `member "${safe(e.name)}" at offset ${at} is not a regular file (type ${JSON.stringify(e.type)})`, endMarker: false, trailing: 0 };
    const dataOffset = at + BLOCK;
    if (dataOffset + e.size > fileSize) {
      return { members, fault: `member "${safe(e.name)}" claims ${e.size} bytes but the file ends ${fileSize - dataOffset} bytes after its header (truncated?)`, endMarker: false, trailing: 0 };
    }
    members.push({ entry: e, offset: at, dataOffset });
    if (members.length > MAX_MEMBERS) return { members, fault: `more than ${MAX_MEMBERS} members: not a Mender artifact`, endMarker: false, trailing: 0 };
    at = dataOffset + e.size + padTo512(e.size);
  }
  return { members, endMarker: false, trailing: 0 };
}

/** A name as it may be printed: control characters escaped, long names cut. */
export const safe = (s: string): string => {
  const clean = s.replace(/[\x00-\x1f\x7f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
  return clean.length > 120 ? `${clean.slice(0, 117)}...` : clean;
};

/** Reads a member's data in chunks (constant memory), passing each to `onChunk`. */
export async function readMember(fh: FileHandle, m: OuterMember, onChunk: (b: Buffer) => void | Promise<void>, chunkSize = 4 << 20): Promise<void> {
  const bufs = [Buffer.allocUnsafe(chunkSize), Buffer.allocUnsafe(chunkSize)];
  let i = 0;
  for (let pos = 0; pos < m.entry.size; ) {
    const len = Math.min(chunkSize, m.entry.size - pos);
    const buf = bufs[i]!;
    const { bytesRead } = await fh.read(buf, 0, len, m.dataOffset + pos);
    if (bytesRead === 0) throw new OtapackError('INPUT', `member ${m.entry.name}: the file ended early`);
    await onChunk(buf.subarray(0, bytesRead));
    pos += bytesRead;
    i ^= 1;
  }
}

/** Parses the manifest text: "<64 hex>  <path>" lines. Returns the map or a problem. */
export function parseManifest(text: string): { sums: Map<string, string>; problems: string[] } {
  const sums = new Map<string, string>();
  const problems: string[] = [];
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const m = /^([0-9a-f]{64}) {2}(\S+)$/.exec(line);
    if (!m) { problems.push(`malformed line "${safe(line)}"`); continue; }
    if (sums.has(m[2]!)) problems.push(`${m[2]} listed twice`);
    sums.set(m[2]!, m[1]!);
  }
  if (!text.endsWith('\n') && text.length) problems.push('no newline after the last line');
  return { sums, problems };
}
