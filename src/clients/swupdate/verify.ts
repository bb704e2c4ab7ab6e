// Verifies a .swu the way the device will judge it, and more: structure, cpio sums, entry order,
// references in both directions, sha256 of every stored payload, the CMS signature and its
// chain under the client's rules, ivt well-formedness, and (with the AES key) that every
// encrypted payload decrypts and decompresses. Headers are walked first (cheap); then each
// payload's data is read exactly once, feeding hash, byte sum, decryption and decompression.
import { createDecipheriv } from 'node:crypto';
import { OtapackError } from '../../errors.js';
import { silentReporter, type Reporter } from '../../util/reporter.js';
import { ArchiveReader, MANIFEST_NAME, SIGNATURE_NAME, nameProblems, orderProblems, safeName, type ArchiveEntry } from './archive.js';
import { MAGIC_CRC } from './cpio.js';
import { readManifest, ManifestError, type ParsedManifest, type ManifestRef } from './manifest-read.js';
import { verifyCms, type CertPurpose } from '../../crypto/cms-verify.js';
import { daysLeft } from '../../crypto/x509.js';
import { aesCipherName, type AesKey } from '../../crypto/keys.js';
import type { CertInfo } from '../../crypto/x509.js';
import { decompressSink } from '../../compress/decompress.js';
import type { CompressionId } from '../../compress/compressor.js';
import { RdiffParser, type RdiffSummary } from '../../delta/rdiff.js';

export type CheckStatus = 'pass' | 'fail' | 'warn' | 'skip';
export interface Check {
  id: string;
  status: CheckStatus;
  message: string;
}

export interface VerifyOptions {
  trust?: CertInfo[];
  trustOrigin?: string;
  aes?: AesKey;
  purpose?: CertPurpose;
  allowUnsigned?: boolean;
  now?: Date;
  expiryWarningDays?: number;
  reporter?: Reporter;
}

export interface VerifyReport {
  file: string;
  size: number;
  ok: boolean;
  format?: 'newc' | 'crc';
  entries: { name: string; offset: number; size: number; sha256?: string; checksum?: string }[];
  manifest?: { syntax: string; version?: string; description?: string; hardwareCompatibility?: string[]; sets: string[]; artifacts: { at: string; filename?: string; type?: string; device?: string; path?: string; compressed?: string | boolean; encrypted: boolean }[]; bootenv: Record<string, Record<string, string>> };
  signature?: { signers: { subject: string; issuer: string; algorithm: string; signingTime?: string; notBefore: string; notAfter: string; fingerprint: string; valid: boolean; trusted?: boolean; chain?: string[] }[] };
  /** Delta images (rdiff_image, delta): what each needs on the device. */
  delta?: DeltaImage[];
  checks: Check[];
}

export interface DeltaImage {
  at: string;
  method: 'rdiff' | 'zchunk';
  /** The slot it writes. */
  device?: string;
  /** The slot it reads: the release the device must be running there. */
  base: { device?: string; name?: string; dataSha256?: string; size?: number };
  /** A script in the same install set checks the base before anything is written (otapack's). */
  baseCheck: boolean;
  /** The written slot is read back and compared (readback handler, or otapack's script for 4 GiB and more). */
  readback?: { sha256: string; size: number };
  url?: string;
  /** The rdiff stream, when it could be read (plain, or with --aes-key). */
  rdiff?: RdiffSummary;
}

const MAX_MANIFEST = 4 << 20;
const MAX_SIG = 1 << 20;
const HEX64 = /^[0-9a-fA-F]{64}$/;
const HEX32 = /^[0-9a-fA-F]{32}$/;

export async function verifyBundle(path: string, o: VerifyOptions = {}): Promise<VerifyReport> {
  const reporter = o.reporter ?? silentReporter;
  const now = o.now ?? new Date();
  const reader = await ArchiveReader.open(path);
  const report: VerifyReport = { file: path, size: reader.fileSize, ok: false, entries: [], checks: [] };
  const add = (id: string, status: CheckStatus, message: string): void => void report.checks.push({ id, status, message });
  try {
    // ---- structure: walk every header
    const { entries, end, fault: structural } = await reader.scan();
    if (entries.length === 0 && structural) {
      add('format', 'fail', structural);
      return finish(report);
    }
    const magics = new Set(entries.map((e) => e.header.magic));
    report.format = magics.has(MAGIC_CRC) ? 'crc' : 'newc';
    if (structural) add('format', 'fail', structural);
    else {
      const endNotes = end?.anomalies ?? [];
      add('format', magics.size > 1 ? 'warn' : 'pass', `cpio ${[...magics].join('+')} (${report.format}), ${entries.length} entries${magics.size > 1 ? ', mixed header formats' : ''}`);
      for (const n of endNotes) add('trailer', 'warn', n);
    }
    for (const e of entries) for (const a of e.anomalies) add('padding', 'warn', `entry "${safeName(e.name)}": ${a} (changes nothing installed)`);

    // ---- names and order
    const names = entries.map((e) => e.name);
    const badNames = nameProblems(names).map((p) => p.problem === 'not-bare'
      ? `"${safeName(p.name)}" is not a bare file name (the client looks entries up by bare name; extractors could write outside their folder)`
      : `"${safeName(p.name)}" appears twice`);
    add('names', badNames.length ? 'fail' : 'pass', badNames.length ? badNames.join('; ') : 'bare, unique entry names');
    const hasSig = names.includes(SIGNATURE_NAME);
    const badOrder = orderProblems(names).map((p) => `${p.position === 0 ? 'first' : 'second'} entry is "${safeName(p.found)}", must be ${p.expected}`);
    add('order', badOrder.length ? 'fail' : 'pass', badOrder.length ? badOrder.join('; ') : hasSig ? 'sw-description, then sw-description.sig' : 'sw-description first');

    // ---- manifest
    const mEntry = entries.find((e) => e.name === MANIFEST_NAME);
    let manifestBytes: Buffer | undefined;
    let manifest: ParsedManifest | undefined;
    if (!mEntry) add('manifest', 'fail', 'no sw-description entry');
    else {
      try {
        manifestBytes = await reader.readEntry(mEntry, MAX_MANIFEST);
        manifest = readManifest(manifestBytes); // bytes as the client reads them (no UTF-8 decoding)
        const problems: string[] = [];
        if (!manifest.software) problems.push('no "software" group');
        if (!manifest.hardwareCompatibility?.length) problems.push('no hardware-compatibility (SWUpdate requires it)');
        if (!manifest.version) problems.push('no version');
        if (manifest.refs.length === 0) problems.push('nothing to install');
        const hw = manifest.hardwareCompatibility ?? [];
        for (const h of hw) if (h.startsWith('#RE:')) { try { new RegExp(h.slice(4)); } catch { problems.push(`hardware-compatibility "${h}" is not a valid regular expression`); } }
        report.manifest = {
          syntax: manifest.syntax, version: manifest.version, description: manifest.description, hardwareCompatibility: manifest.hardwareCompatibility,
          sets: manifest.sets.map((s) => s || '(top level)'), bootenv: manifest.bootenv,
          artifacts: manifest.refs.map((r) => ({ at: r.at, filename: r.filename, type: r.type, device: r.device, path: r.path, compressed: r.compressed, encrypted: r.encrypted })),
        };
        add('manifest', problems.length ? 'fail' : 'pass', problems.length ? problems.join('; ') : `${manifest.syntax}, version ${manifest.version}, hardware ${hw.join(' ')}, install sets: ${report.manifest.sets.join(', ')}`);
      } catch (e) {
        add('manifest', 'fail', `sw-description: ${e instanceof ManifestError || e instanceof OtapackError ? e.message : (e as Error).message}`);
      }
    }

    // ---- signature over the exact manifest bytes
    const sEntry = entries.find((e) => e.name === SIGNATURE_NAME);
    if (!sEntry) {
      add('signature', o.allowUnsigned ? 'warn' : 'fail', 'bundle is unsigned: devices with signature checking refuse it');
    } else if (manifestBytes) {
      await checkSignature(await reader.readEntry(sEntry, MAX_SIG), manifestBytes, report, add, o, now);
    }

    // ---- references both ways, ivt form
    const refs = manifest?.refs ?? [];
    const stored = new Map(entries.filter((e) => e.name !== MANIFEST_NAME && e.name !== SIGNATURE_NAME).map((e) => [e.name, e]));
    const refProblems: string[] = [];
    const ivtProblems: string[] = [];
    const ivtWarnings: string[] = [];
    const byFile = new Map<string, ManifestRef>();
    for (const r of refs) {
      if (!r.filename && r.type === 'readback') {
        // a check of the written slot, with no payload: its digest is a property
        const d = r.properties.sha256;
        if (typeof d !== 'string' || !HEX64.test(d) || /^0+$/.test(d)) refProblems.push(`${r.at} (readback) has no valid properties.sha256 (the client fails the install: "Invalid hash")`);
        if (!r.device) refProblems.push(`${r.at} (readback) has no device`);
        continue;
      }
      if (!r.filename) { refProblems.push(`${r.at} has no filename`); continue; }
      if (!stored.has(r.filename)) refProblems.push(`${r.at} references "${safeName(r.filename)}", which is not in the bundle`);
      if (typeof r.sha256 !== 'string' || !HEX64.test(r.sha256)) refProblems.push(`${r.at} ("${safeName(r.filename)}") has no valid sha256 (the client refuses it)`);
      if (r.compressed !== undefined && !['zlib', 'zstd', true, false].includes(r.compressed as string | boolean)) refProblems.push(`${r.at}: unknown compression ${JSON.stringify(r.compressed)}`);
      if (r.encrypted) {
        if (r.ivt === undefined) ivtWarnings.push(`${r.at}: no ivt, the key file IV is used`);
        else if (typeof r.ivt !== 'string' || !HEX32.test(r.ivt)) ivtProblems.push(`${r.at}: ivt ${JSON.stringify(r.ivt).slice(0, 40)} is not 32 hex digits (the client silently ignores it and garbles the first 16 bytes)`);
      }
      const prev = byFile.get(r.filename);
      if (prev && (prev.sha256 !== r.sha256 || prev.ivt !== r.ivt || prev.encrypted !== r.encrypted || prev.compressed !== r.compressed)) {
        refProblems.push(`"${safeName(r.filename)}" is described differently at ${prev.at} and ${r.at}`);
      }
      if (!prev) byFile.set(r.filename, r);
    }
    for (const name of stored.keys()) if (manifest && !byFile.has(name)) refProblems.push(`entry "${safeName(name)}" is stored but not referenced by sw-description`);
    if (manifest) add('references', refProblems.length ? 'fail' : 'pass', refProblems.length ? refProblems.join('; ') : `${byFile.size} stored payload(s), each referenced and present`);
    if (refs.some((r) => r.encrypted)) {
      add('ivt', ivtProblems.length ? 'fail' : ivtWarnings.length ? 'warn' : 'pass', [...ivtProblems, ...ivtWarnings].join('; ') || 'every encrypted payload has a well-formed ivt');
    }

    // ---- one pass over each entry's data
    const hashProblems: string[] = [];
    const sumProblems: string[] = [];
    const decrypt: string[] = [];
    const decryptFail: string[] = [];
    const notJudged: string[] = [];
    let hashed = 0;
    const rdiffs = new Map<string, { summary?: RdiffSummary; problem?: string }>();
    for (const e of entries) {
      const ref = byFile.get(e.name);
      const isRdiff = ref?.type === 'rdiff_image';
      const wantDecode = !!ref && (ref.encrypted ? !!o.aes : !!ref.compressed || isRdiff);
      const progress = reporter.step(`checking ${safeName(e.name)}`, e.size);
      const parser = isRdiff && wantDecode ? new RdiffParser() : undefined;
      let parseProblem: string | undefined;
      const onData = parser ? (b: Buffer): void => {
        if (parseProblem) return;
        try { parser.write(b); } catch (err) { parseProblem = (err as Error).message; }
      } : undefined;
      const r = await readEntryData(reader, e, ref, wantDecode ? o.aes : undefined, (n) => progress.update(n), onData);
      if (parser && r.decode && !r.decode.failed) {
        if (!parseProblem) { try { rdiffs.set(e.name, { summary: parser.end() }); } catch (err) { parseProblem = (err as Error).message; } }
        if (parseProblem) rdiffs.set(e.name, { problem: parseProblem });
      }
      progress.done();
      report.entries.push({ name: e.name, offset: e.headerOffset, size: e.size, sha256: r.sha256, checksum: e.header.magic === MAGIC_CRC ? `0x${e.header.check.toString(16)}` : undefined });
      if (e.header.magic === MAGIC_CRC && r.sum !== e.header.check) {
        sumProblems.push(`"${safeName(e.name)}": header checksum 0x${e.header.check.toString(16)} but the data sums to 0x${r.sum.toString(16)} (the client refuses: "Checksum WRONG")`);
      }
      // The hash is judged first: a payload whose bytes are not the ones sw-description names is
      // corrupt or tampered, and what its decryption or decompression did proves nothing about the key.
      let hash: 'match' | 'mismatch' | 'unknown' = 'unknown';
      if (ref && typeof ref.sha256 === 'string' && HEX64.test(ref.sha256)) {
        hashed++;
        hash = ref.sha256.toLowerCase() === r.sha256 ? 'match' : 'mismatch';
        if (hash === 'mismatch') hashProblems.push(`"${safeName(e.name)}": sha256 ${r.sha256} does not match sw-description's ${ref.sha256.toLowerCase()} (corrupt or tampered)`);
      }
      if (hash === 'mismatch' && r.decode) {
        notJudged.push(`"${safeName(e.name)}" not judged: its bytes are corrupt or tampered (sha256 mismatch), so ${ref!.encrypted ? 'decryption says nothing about the AES key' : 'decompressing them proves nothing'}`);
      } else if (r.decode?.failed) {
        decryptFail.push(`"${safeName(e.name)}": ${decodeFailure(ref!, r.decode.failed, hash === 'match')}`);
      } else if (r.decode) decrypt.push(`${safeName(e.name)} -> ${r.decode.size} bytes`);
    }
    if (report.format === 'crc') add('checksums', sumProblems.length ? 'fail' : 'pass', sumProblems.length ? sumProblems.join('; ') : `byte sums of ${entries.length} entries match their headers`);
    if (manifest) add('hashes', hashProblems.length ? 'fail' : hashed ? 'pass' : 'skip', hashProblems.length ? hashProblems.join('; ') : `sha256 of ${hashed} payload(s) match`);
    const anyEncrypted = refs.some((r) => r.encrypted);
    const anyCompressed = refs.some((r) => r.compressed);
    if (decryptFail.length) add('decode', 'fail', [...decryptFail, ...notJudged].join('; '));
    else if (notJudged.length) add('decode', 'skip', [...notJudged, ...(decrypt.length ? [`decoded: ${decrypt.join(', ')}`] : [])].join('; '));
    else if (decrypt.length) add('decode', 'pass', `${anyEncrypted && o.aes ? 'decrypted and ' : ''}decompressed: ${decrypt.join(', ')}`);
    if (anyEncrypted && !o.aes) add('decode', 'skip', 'encrypted payloads not test-decrypted: no --aes-key given');
    else if (!anyEncrypted && !anyCompressed && manifest && !decrypt.length) add('decode', 'skip', 'no compressed or encrypted payloads');

    // ---- delta images: what base each needs, and whether it is checked
    if (manifest) checkDeltas(refs, rdiffs, report, add);
  } finally {
    await reader.close();
  }
  return finish(report);
}

function finish(r: VerifyReport): VerifyReport {
  r.ok = r.checks.every((c) => c.status !== 'fail');
  return r;
}

/** Why a payload did not decode. `stage` says which step refused: AES (padding) or the codec. */
interface DecodeFailure { stage: 'decrypt' | 'decompress'; codec: CompressionId; detail: string }

/**
 * One pass over an entry's data: hash and byte sum always; with `decode`, decryption and
 * decompression alongside (the data is read once). The caller judges the hash before it reads
 * anything into a decoding failure.
 */
async function readEntryData(
  reader: ArchiveReader, e: ArchiveEntry, ref: ManifestRef | undefined, aes: AesKey | undefined, onProgress: (n: number) => void, onData?: (b: Buffer) => void,
): Promise<{ sha256: string; sum: number; decode?: { size?: number; failed?: DecodeFailure } }> {
  let done = 0;
  const comp: CompressionId = ref?.compressed === 'zstd' ? 'zstd' : ref?.compressed === 'zlib' || ref?.compressed === true ? 'zlib' : 'none';
  const decode = ref && (ref.encrypted ? !!aes : comp !== 'none' || !!onData);
  let failed: DecodeFailure | undefined;
  let decipher: ReturnType<typeof createDecipheriv> | undefined;
  const sink = decode ? decompressSink(comp, onData) : undefined;
  if (decode && ref!.encrypted) {
    const iv = typeof ref!.ivt === 'string' && HEX32.test(ref!.ivt) ? Buffer.from(ref!.ivt, 'hex') : aes!.iv;
    decipher = createDecipheriv(aesCipherName(aes!), aes!.key, iv);
  }
  const codecFailure = (err: unknown): DecodeFailure =>
    ({ stage: 'decompress', codec: comp, detail: err instanceof OtapackError ? err.detail : String((err as Error)?.message ?? err).split('\n')[0]! });
  const feed = async (b: Buffer): Promise<void> => {
    if (!sink || failed) return;
    try {
      await sink.write(b);
    } catch (err) {
      failed = codecFailure(err);
    }
  };
  const { sha256, check } = await reader.digestEntry(e, async (chunk) => {
    done += chunk.length;
    onProgress(done);
    if (sink) await feed(decipher ? decipher.update(chunk) : Buffer.from(chunk));
  });
  let size: number | undefined;
  if (sink) {
    let badPadding = false;
    if (decipher && !failed) {
      try {
        await feed(decipher.final());
      } catch {
        badPadding = true; // PKCS#7 padding that does not check out: the client's "Decryption error … bad decrypt"
      }
    }
    try {
      size = await sink.end();
    } catch (err) {
      failed ??= codecFailure(err);
    }
    // the codec saw the start of the data, the padding is its end: the codec's verdict comes first
    if (badPadding) failed ??= { stage: 'decrypt', codec: comp, detail: 'AES-CBC padding does not check out' };
  }
  return { sha256, sum: check, decode: sink ? (failed ? { failed } : { size }) : undefined };
}

/** The true reason a payload whose hash matched (or could not be checked) did not decode. */
function decodeFailure(ref: ManifestRef, f: DecodeFailure, intact: boolean): string {
  const what = f.stage === 'decrypt' ? f.detail : `the ${ref.encrypted ? 'decrypted ' : ''}data is ${f.detail}`;
  if (!ref.encrypted) {
    return intact
      ? `${what}, although its bytes match sw-description's sha256: the bundle was built with broken ${f.codec} data`
      : `${what} (no sha256 to tell corruption from a broken build)`;
  }
  const iv = typeof ref.ivt === 'string' ? 'ivt' : 'IV in the key file';
  return intact
    ? `wrong AES key (or ${iv}): ${what}, while its bytes match sw-description's sha256 (the data is intact)`
    : `${what}: wrong AES key (or ${iv}), or corrupt data (no sha256 to tell them apart)`;
}

const setOf = (at: string): string => at.replace(/^software\.?/, '').replace(/\.?(images|files|scripts)\[\d+\]$/, '') || '(top level)';
const prop = (r: ManifestRef, k: string): string | undefined => {
  const v = r.properties[k];
  return Array.isArray(v) ? v[0] : v;
};
const short = (h: string | undefined): string => (h ? `${h.slice(0, 12)}…` : '?');

/**
 * Delta images: which slot each reads as its base (the release the device must be running
 * there), whether the base is checked before anything is written and the slot read back after,
 * and, for a readable rdiff stream, that it produces exactly the image the readback expects.
 * The client's check mode (-c) runs none of this: a delta is judged only at install.
 */
function checkDeltas(refs: ManifestRef[], rdiffs: Map<string, { summary?: RdiffSummary; problem?: string }>, report: VerifyReport, add: (id: string, s: CheckStatus, m: string) => void): void {
  const deltas = refs.filter((r) => r.kind === 'images' && (r.type === 'rdiff_image' || r.type === 'delta'));
  if (!deltas.length) return;
  const fails: string[] = [];
  const warns: string[] = [];
  const sets: string[] = [];
  report.delta = [];
  for (const r of deltas) {
    const set = setOf(r.at);
    const inSet = refs.filter((x) => setOf(x.at) === set);
    const method = r.type === 'rdiff_image' ? 'rdiff' : 'zchunk';
    const baseDevice = method === 'rdiff' ? prop(r, 'rdiffbase') : prop(r, 'source');
    const rb = inSet.find((x) => x.type === 'readback' && x.device === r.device);
    const script = inSet.find((x) => x.kind === 'scripts' && x.type === 'shellscript' && x.filename?.startsWith('otapack-delta-check'));
    const size = Number(prop(r, 'otapack-base-size'));
    const d: DeltaImage = {
      at: r.at, method, device: r.device,
      base: { device: baseDevice, name: prop(r, 'otapack-base'), dataSha256: prop(r, 'otapack-base-data-sha256'), size: Number.isSafeInteger(size) ? size : undefined },
      baseCheck: method === 'rdiff' && !!script,
      readback: rb && typeof rb.properties.sha256 === 'string' ? { sha256: rb.properties.sha256, size: Number(prop(rb, 'size') ?? 0) } : undefined,
      url: method === 'zchunk' ? prop(r, 'url') : undefined,
    };
    const parsed = r.filename ? rdiffs.get(r.filename) : undefined;
    if (parsed?.summary) d.rdiff = parsed.summary;
    report.delta.push(d);
    if (method === 'rdiff') {
      if (!baseDevice) fails.push(`${set}: no properties.rdiffbase: the client fails at install ("Property 'rdiffbase' is missing"; swupdate -c does not notice)`);
      if (!script) warns.push(`${set}: nothing checks the base before writing: the rdiff_image handler never does, and writes garbage over ${r.device ?? 'the slot'} when ${baseDevice ?? 'the base'} is not the release the delta was made from`);
      if (parsed?.problem) fails.push(`${set}: ${parsed.problem}`);
      if (parsed?.summary && d.readback && parsed.summary.outputSize !== d.readback.size) fails.push(`${set}: the rdiff delta produces ${parsed.summary.outputSize} bytes, the readback expects ${d.readback.size}`);
      if (parsed?.summary && d.base.size !== undefined && parsed.summary.baseExtent > d.base.size) fails.push(`${set}: the rdiff delta reads base bytes up to ${parsed.summary.baseExtent}, past the base's ${d.base.size}`);
    } else {
      const missing = ['url', 'source', 'chain'].filter((k) => !prop(r, k));
      if (missing.length) fails.push(`${set}: the delta handler needs properties ${missing.join(', ')} (the client fails at install: "Wrong Attributes in sw-description")`);
      if (r.encrypted) fails.push(`${set}: a zchunk delta cannot be encrypted (the handler reads its header raw and fetches plain chunks)`);
    }
    if (!rb && !script) warns.push(`${set}: the written slot is not read back before the boot environment changes`);
    sets.push(`${set} writes ${r.device ?? '?'} ${method === 'rdiff' ? 'from' : 'reusing'} ${baseDevice ?? '?'}${d.baseCheck ? ' (base checked first)' : ''}${d.readback ? ', read back after' : ''}${d.url ? `, fetching from ${d.url}` : ''}`);
  }
  const b = report.delta[0]!.base;
  const same = report.delta.every((d) => d.base.dataSha256 === b.dataSha256 && d.base.name === b.name);
  const made = `${b.name ?? 'the base release'}${b.size ? ` (${b.size} bytes` : ''}${b.dataSha256 ? `${b.size ? ', ' : ' ('}data sha256 ${short(b.dataSha256)}` : ''}${b.size || b.dataSha256 ? ')' : ''}`;
  const needs = report.delta[0]!.method === 'zchunk'
    ? `reuses the chunks of the running slot, made against ${made}; from another release the changed chunks are fetched`
    : same ? `the running slot must hold ${made}` : 'the running slot must hold the release each delta was made from';
  const summary = `${report.delta[0]!.method} delta: ${needs}; ${sets.join('; ')}`;
  if (fails.length) add('delta', 'fail', [...fails, ...warns].join('; '));
  else if (warns.length) add('delta', 'warn', `${summary}. ${warns.join('; ')}`);
  else add('delta', 'pass', summary);
}

async function checkSignature(
  sig: Buffer, manifest: Buffer, report: VerifyReport, add: (id: string, s: CheckStatus, m: string) => void, o: VerifyOptions, now: Date,
): Promise<void> {
  const store = o.trust ? { anchors: o.trust, purpose: o.purpose ?? 'emailProtection', at: o.now, origin: o.trustOrigin } : undefined;
  const v = await verifyCms(sig, manifest, store);
  const signers: NonNullable<VerifyReport['signature']>['signers'] = [];
  for (const s of v.signers) {
    if (!s.cert) continue;
    signers.push({
      subject: s.cert.subject, issuer: s.cert.issuer, algorithm: s.algorithm, signingTime: s.signingTime?.toISOString(),
      notBefore: s.cert.notBefore.toISOString(), notAfter: s.cert.notAfter.toISOString(), fingerprint: s.cert.fingerprint, valid: v.signatureOk,
      ...(s.chain ? { trusted: s.chain.ok && v.signatureOk, chain: s.chain.chain.map((c) => c.subject) } : {}),
    });
  }
  report.signature = { signers };
  if (!v.signatureOk) {
    add('signature', 'fail', `sw-description.sig: ${v.signatureProblem ?? 'invalid'}; the client refuses it ("Signature verification failed")`);
  } else {
    const desc = signers.map((s) => `${s.subject} (${s.algorithm}${s.signingTime ? `, signed ${s.signingTime.slice(0, 10)}` : ''})`).join(', ');
    add('signature', 'pass', `valid CMS signature by ${desc || 'an unnamed signer'}`);
  }
  if (!store) {
    add('trust', 'fail', `not checked: give --trust with the certificate(s) devices trust; the signer ${signers.map((s) => s.subject).join(', ') || '(unknown)'} is otherwise unproven`);
  } else if (!v.signatureOk) {
    add('trust', 'fail', 'not checked: the client checks the signer\'s chain only after the signature verifies');
  } else {
    const good = v.signers.find((s) => s.chain?.ok);
    add('trust', good ? 'pass' : 'fail', good
      ? `signer chains to ${o.trustOrigin ?? 'the trust file'} (purpose ${store.purpose}): ${good.chain!.chain.map((c) => c.subject).join(' <- ')}`
      : `the device refuses it ("Authentication of all signatures failed"): ${[...new Set(v.signers.map((s) => s.chain?.reason ?? 'signer certificate not found'))].join('; ')}`);
  }
  // dates: the chain the device builds when known, else every certificate the signature carries
  const dated = new Set<CertInfo>();
  for (const s of v.signers) {
    if (s.cert) dated.add(s.cert);
    for (const c of s.chain?.chain ?? []) dated.add(c);
  }
  if (!store) for (const c of v.cms?.certificates ?? []) dated.add(c);
  checkExpiry([...dated], now, o.expiryWarningDays ?? 90, add);
}

const ymd = (d: Date): string => d.toISOString().slice(0, 10);

/**
 * The client (OpenSSL X509_verify_cert at install time) refuses a signature when any
 * certificate of its chain is expired or not yet valid: that fails here. Within the warning
 * window it is a warning: the fleet needs a new trust anchor or signing certificate soon.
 */
function checkExpiry(certs: CertInfo[], now: Date, warnDays: number, add: (id: string, s: CheckStatus, m: string) => void): void {
  if (certs.length === 0) return;
  const bad: string[] = [];
  const soon: string[] = [];
  for (const c of certs) {
    const span = `valid ${ymd(c.notBefore)} to ${ymd(c.notAfter)}`;
    if (now < c.notBefore) bad.push(`certificate ${c.subject} is not valid before ${ymd(c.notBefore)} (${span}, today is ${ymd(now)})`);
    else if (now > c.notAfter) bad.push(`certificate ${c.subject} expired on ${ymd(c.notAfter)} (${span})`);
    else {
      const left = daysLeft(c, now);
      if (left < warnDays) soon.push(`certificate ${c.subject} expires in ${left} day${left === 1 ? '' : 's'} (${ymd(c.notAfter)})`);
    }
  }
  if (bad.length) add('expiry', 'fail', `${bad.join('; ')}: the client refuses the signature ("Authentication of all signatures failed")`);
  else if (soon.length) add('expiry', 'warn', `${soon.join('; ')}: devices refuse bundles once it expires; renew and ship the new trust anchor before then`);
  else {
    const first = certs.reduce((a, b) => (b.notAfter < a.notAfter ? b : a));
    add('expiry', 'pass', `${certs.length} certificate${certs.length > 1 ? 's' : ''} valid; the first to expire is ${first.subject} on ${ymd(first.notAfter)} (${daysLeft(first, now)} days, warning window ${warnDays} days)`);
  }
}
