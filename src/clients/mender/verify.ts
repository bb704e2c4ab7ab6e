// Verifies a .mender the way the Mender client reads it (mender-artifact 3.9's reader, which
// Mender 3.4 embeds): the outer tar and its member order, version, the manifest, manifest.sig
// against a public key (--trust), the checksum of every file the manifest lists (header and
// version as stored, each payload file uncompressed), header-info and type-info, and the device
// type. Each member is read once, in order, in constant memory; a payload is decompressed and
// its inner tar walked as it streams.
import { createHash } from 'node:crypto';
import { createGunzip } from 'node:zlib';
import type { Readable, Writable } from 'node:stream';
import { open } from 'node:fs/promises';
import { OtapackError } from '../../errors.js';
import { silentReporter, type Reporter } from '../../util/reporter.js';
import { spawnStream } from '../../util/tools.js';
import { readFully, openInput } from '../../util/io.js';
import type { Check, CheckStatus } from '../swupdate/verify.js';
import { PAYLOAD_NAME_RE, STATE_SCRIPT_RE, VERSION_JSON, parseManifest, readMember, safe, scanOuter, type OuterMember } from './artifact.js';
import { TarFormatError, TarStreamParser } from './tar.js';
import { verifyManifestSignature, type TrustKey } from './keys.js';

export interface MenderVerifyOptions {
  trust?: TrustKey;
  /** The device's device_type: the artifact must list it. */
  deviceType?: string;
  reporter?: Reporter;
}

export interface MenderVerifyReport {
  file: string;
  size: number;
  ok: boolean;
  /** Artifact format version from the `version` member (3). */
  formatVersion?: number;
  members: { name: string; offset: number; size: number }[];
  manifest?: { path: string; sha256: string }[];
  artifact?: {
    name?: string;
    deviceTypes: string[];
    provides: Record<string, string>;
    depends: Record<string, unknown>;
    scripts: string[];
    payloads: { index: number; type: string; compression: string; storedSize: number; files: { name: string; size: number; sha256: string }[]; provides: Record<string, string>; depends: Record<string, unknown>; clearsProvides: string[] }[];
  };
  signature?: { present: boolean; verified?: boolean; algorithm?: string; trust?: string };
  checks: Check[];
}

const MAX_SMALL = 1 << 20; // version, manifest, manifest.sig, header-info, type-info
const GRAMMAR = [
  ['version', 'manifest', 'header'],
  ['version', 'manifest', 'manifest.sig', 'header'],
];
const HEADER_RE = /^header\.tar(\.gz|\.xz|\.zst)?$/;
const DATA_RE = /^data\/(\d{4})\.tar(\.gz|\.xz|\.zst)?$/;
const compressionOf = (suffix: string | undefined): string => (suffix === '.gz' ? 'gzip' : suffix === '.xz' ? 'lzma' : suffix === '.zst' ? 'zstd' : 'none');

interface Decoder { write(b: Buffer): Promise<void>; end(): Promise<void> }

/** Pushes decoded bytes of a gzip/xz/plain stream to `onData`, with backpressure. */
function decoder(compression: string, onData: (b: Buffer) => void): Decoder {
  if (compression === 'none') return { async write(b) { onData(b); }, async end() {} };
  let input: Writable;
  let output: Readable;
  let done: Promise<void>;
  if (compression === 'gzip') {
    const gz = createGunzip();
    input = gz;
    output = gz;
    done = new Promise((resolve, reject) => { gz.on('end', resolve); gz.on('error', reject); });
  } else if (compression === 'lzma') {
    const s = spawnStream('xz', ['-dc', '-q'], { stdin: 'pipe' });
    input = s.child.stdin!;
    output = s.child.stdout!;
    done = s.done;
  } else {
    throw new OtapackError('INPUT', `${compression} compression: the Mender client 3.4 cannot read it`, { reason: 'unsupported-compression' });
  }
  let failure: unknown;
  // a consumer that throws (a bad inner tar) stops the decoder, which then neither ends nor
  // fails by itself: `stopped` settles the wait instead
  let stop!: (e: unknown) => void;
  const stopped = new Promise<void>((_resolve, reject) => { stop = reject; });
  const decoded = done;
  decoded.catch(() => {});
  done = Promise.race([decoded, stopped]);
  done.catch((e) => { failure ??= e; });
  input.on('error', (e) => { failure ??= e; });
  output.on('data', (b: Buffer) => {
    try { onData(b); } catch (e) { failure ??= e; stop(e); output.destroy(); input.destroy(); }
  });
  return {
    async write(b) {
      if (failure) throw failure;
      if (!input.write(b)) {
        await new Promise<void>((resolve) => {
          const go = (): void => { input.off('drain', go); input.off('close', go); resolve(); };
          input.on('drain', go);
          input.on('close', go);
          void done.then(go, go);
        });
      }
      if (failure) throw failure;
    },
    async end() {
      if (failure) throw failure;
      input.end();
      await done.catch((e) => { failure ??= e; });
      if (failure) throw failure;
    },
  };
}

const why = (e: unknown): string => (e instanceof TarFormatError ? `tar: ${e.message}` : e instanceof OtapackError ? e.detail : String((e as Error)?.message ?? e));

function parseJson(text: string): { value?: Record<string, unknown>; error?: string } {
  try {
    const v = JSON.parse(text) as unknown;
    if (!v || typeof v !== 'object' || Array.isArray(v)) return { error: 'not a JSON object' };
    return { value: v as Record<string, unknown> };
  } catch (e) {
    return { error: `not JSON (${(e as Error).message})` };
  }
}

const strMap = (v: unknown): Record<string, string> => (v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v as Record<string, unknown>).filter(([, x]) => typeof x === 'string')) as Record<string, string> : {});
const anyMap = (v: unknown): Record<string, unknown> => (v && typeof v === 'object' && !Array.isArray(v) ? { ...(v as Record<string, unknown>) } : {});

export async function verifyMenderArtifact(path: string, o: MenderVerifyOptions = {}): Promise<MenderVerifyReport> {
  const reporter = o.reporter ?? silentReporter;
  const fh = await openInput(path);
  try {
    const size = (await fh.stat()).size;
    const report: MenderVerifyReport = { file: path, size, ok: false, members: [], checks: [] };
    const add = (id: string, status: CheckStatus, message: string): void => void report.checks.push({ id, status, message });
    const finish = (): MenderVerifyReport => {
      report.ok = !report.checks.some((c) => c.status === 'fail');
      return report;
    };

    // ---- the outer tar
    const scan = await scanOuter(fh, size);
    report.members = scan.members.map((m) => ({ name: m.entry.name, offset: m.offset, size: m.entry.size }));
    if (scan.members.length === 0) {
      add('format', 'fail', scan.fault ?? 'an empty tar archive: not a Mender artifact');
      return finish();
    }
    const names = scan.members.map((m) => m.entry.name);
    const byName = new Map(scan.members.map((m) => [m.entry.name, m]));
    const headerM = scan.members.find((m) => HEADER_RE.test(m.entry.name));
    const dataMs = scan.members.filter((m) => DATA_RE.test(m.entry.name));
    const tokens = names.map((n) => (HEADER_RE.test(n) ? 'header' : DATA_RE.test(n) ? 'data' : n));
    const headTokens = tokens.slice(0, tokens.indexOf('data') < 0 ? tokens.length : tokens.indexOf('data'));
    const orderOk = GRAMMAR.some((g) => g.length === headTokens.length && g.every((t, i) => t === headTokens[i])) && tokens.slice(headTokens.length).every((t) => t === 'data');
    if (scan.fault) add('format', 'fail', scan.fault);
    else add('format', orderOk ? 'pass' : 'fail', orderOk
      ? `tar, ${scan.members.length} members: ${names.join(', ')}${scan.endMarker ? '' : ' (no end-of-archive blocks)'}`
      : `members ${names.map((n) => `"${safe(n)}"`).join(', ')}: the client reads version, manifest, [manifest.sig,] header.tar[.gz|.xz], then data/NNNN.tar[.gz|.xz], in that order`);
    if (scan.trailing && !scan.fault) add('trailer', 'warn', `${scan.trailing} bytes after the end-of-archive blocks (ignored by the client)`);
    if (!orderOk || !headerM) return finish();

    // ---- version
    const verM = byName.get('version')!;
    const version = verM.entry.size <= MAX_SMALL ? await readFully(fh, verM.dataOffset, verM.entry.size) : Buffer.alloc(0);
    const vj = parseJson(version.toString('utf8'));
    const fv = vj.value?.version;
    if (vj.value?.format === 'mender' && fv === 3) {
      report.formatVersion = 3;
      add('version', version.toString('utf8') === VERSION_JSON ? 'pass' : 'warn', `format mender, version 3${version.toString('utf8') === VERSION_JSON ? '' : ' (not byte-identical to what mender-artifact writes)'}`);
    } else {
      if (typeof fv === 'number') report.formatVersion = fv;
      add('version', 'fail', vj.error ? `version: ${vj.error}` : `version ${JSON.stringify(vj.value)}: otapack reads format "mender" version 3 (what Mender 3.x writes)`);
      return finish();
    }

    // ---- manifest
    const manM = byName.get('manifest')!;
    if (manM.entry.size > MAX_SMALL) { add('manifest', 'fail', `manifest of ${manM.entry.size} bytes`); return finish(); }
    const manifest = await readFully(fh, manM.dataOffset, manM.entry.size);
    const { sums, problems } = parseManifest(manifest.toString('latin1'));
    report.manifest = [...sums].map(([p, s]) => ({ path: p, sha256: s }));
    const expectedPaths = new Set(['version', headerM.entry.name]);
    const manifestData = [...sums.keys()].filter((p) => p.startsWith('data/'));
    const malformedData = manifestData.filter((p) => !/^data\/\d{4}\/[^/]+$/.test(p));
    const missing = [...expectedPaths].filter((p) => !sums.has(p));
    const extra = [...sums.keys()].filter((p) => !expectedPaths.has(p) && !p.startsWith('data/'));
    const mp = [...problems, ...missing.map((p) => `no checksum for ${p}`), ...extra.map((p) => `${safe(p)} is not a member of the artifact`), ...malformedData.map((p) => `malformed payload path ${safe(p)}`)];
    add('manifest', mp.length ? 'fail' : 'pass', mp.length ? mp.join('; ') : `${sums.size} checksums`);

    // ---- signature
    const sigM = byName.get('manifest.sig');
    report.signature = { present: !!sigM };
    if (sigM) {
      if (!o.trust) {
        add('signature', 'warn', 'signed; not checked (give --trust with the public key or certificate the devices verify with)');
      } else {
        const sig = sigM.entry.size <= MAX_SMALL ? await readFully(fh, sigM.dataOffset, sigM.entry.size) : Buffer.alloc(0);
        const v = verifyManifestSignature(manifest, sig, o.trust);
        report.signature = { present: true, verified: v.ok, algorithm: o.trust.algorithm === 'rsa' ? `RSA PKCS#1 v1.5 / SHA-256 (${o.trust.rawLength * 8} bit)` : 'ECDSA P-256 / SHA-256', trust: o.trust.origin };
        add('signature', v.ok ? 'pass' : 'fail', v.ok ? `manifest signed by the key in ${o.trust.origin} (${report.signature.algorithm})` : `manifest.sig does not verify with ${o.trust.origin}: ${v.reason}`);
      }
    } else if (o.trust) {
      add('signature', 'fail', `unsigned: a device with ArtifactVerifyKey (${o.trust.origin}) refuses it ("expecting signed artifact, but no signature file found")`);
    } else {
      add('signature', 'warn', 'unsigned: devices configured with ArtifactVerifyKey refuse it');
    }

    // ---- checksums of version and the header as stored; the header parsed on the way
    const checksumProblems: string[] = [];
    const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
    if (sums.has('version') && sums.get('version') !== sha(version)) checksumProblems.push(`version: expected ${sums.get('version')}, got ${sha(version)}`);
    const headerFiles = new Map<string, Buffer[]>();
    const headerNames: string[] = [];
    const hh = createHash('sha256');
    let headerError: string | undefined;
    try {
      const parser = new TarStreamParser({
        onEntry: (e) => {
          headerNames.push(e.name);
          if (e.size > MAX_SMALL) throw new TarFormatError(`header file ${e.name} of ${e.size} bytes`);
          headerFiles.set(e.name, []);
        },
        onData: (e, c) => void headerFiles.get(e.name)!.push(Buffer.from(c)),
        onEnd: () => {},
      });
      const dec = decoder(compressionOf(HEADER_RE.exec(headerM.entry.name)![1]), (b) => parser.push(b));
      await readMember(fh, headerM, async (c) => { hh.update(c); await dec.write(c); });
      await dec.end();
      parser.finish();
    } catch (e) {
      headerError = why(e);
    }
    const headerSum = hh.digest('hex');
    if (sums.has(headerM.entry.name) && sums.get(headerM.entry.name) !== headerSum) checksumProblems.push(`${headerM.entry.name}: expected ${sums.get(headerM.entry.name)}, got ${headerSum}`);

    // ---- header-info, type-info
    const text = (n: string): string | undefined => (headerFiles.has(n) ? Buffer.concat(headerFiles.get(n)!).toString('utf8') : undefined);
    const hp: string[] = [];
    if (headerError) hp.push(`${headerM.entry.name}: ${headerError}`);
    const hi = parseJson(text('header-info') ?? '');
    if (headerNames[0] !== 'header-info') hp.push('header-info is not the first file of the header');
    if (hi.error) hp.push(`header-info: ${hi.error}`);
    const payloadTypes = Array.isArray(hi.value?.payloads) ? (hi.value!.payloads as unknown[]).map((p) => String(anyMap(p).type ?? '')) : [];
    const provides = strMap(hi.value?.artifact_provides);
    const depends = anyMap(hi.value?.artifact_depends);
    const deviceTypes = Array.isArray(depends.device_type) ? (depends.device_type as unknown[]).map(String) : [];
    if (hi.value) {
      if (!provides.artifact_name) hp.push('header-info has no artifact_provides.artifact_name');
      if (deviceTypes.length === 0) hp.push('header-info has no artifact_depends.device_type');
      if (payloadTypes.length !== dataMs.length) hp.push(`header-info lists ${payloadTypes.length} payloads, the artifact has ${dataMs.length} data members`);
    }
    const scripts = headerNames.filter((n) => n.startsWith('scripts/')).map((n) => n.slice(8));
    for (const s of scripts) if (!STATE_SCRIPT_RE.test(s)) hp.push(`state script "${safe(s)}" has a name the client does not run from an artifact`);
    const payloads: NonNullable<MenderVerifyReport['artifact']>['payloads'] = [];
    payloadTypes.forEach((type, i) => {
      const idx = String(i).padStart(4, '0');
      const ti = parseJson(text(`headers/${idx}/type-info`) ?? '');
      if (ti.error) hp.push(`headers/${idx}/type-info: ${ti.error}`);
      if (ti.value && ti.value.type !== type && ti.value.type !== '') hp.push(`headers/${idx}/type-info: type ${JSON.stringify(ti.value.type)} but header-info says ${JSON.stringify(type)}`);
      const dm = dataMs[i];
      payloads.push({
        index: i, type, compression: dm ? compressionOf(DATA_RE.exec(dm.entry.name)![2]) : 'none', storedSize: dm?.entry.size ?? 0, files: [],
        provides: strMap(ti.value?.artifact_provides), depends: anyMap(ti.value?.artifact_depends),
        clearsProvides: Array.isArray(ti.value?.clears_artifact_provides) ? (ti.value!.clears_artifact_provides as unknown[]).map(String) : [],
      });
    });
    report.artifact = { name: provides.artifact_name, deviceTypes, provides, depends, scripts, payloads };
    const nonRootfs = payloadTypes.filter((t) => t !== 'rootfs-image');
    add('header', hp.length ? 'fail' : nonRootfs.length ? 'warn' : 'pass', hp.length ? hp.join('; ')
      : `artifact ${provides.artifact_name}, device types ${deviceTypes.join(', ')}, payloads ${payloadTypes.join(', ')}${scripts.length ? `, state scripts ${scripts.join(', ')}` : ''}${nonRootfs.length ? ' (otapack checks the files of update-module payloads, not what their module does)' : ''}`);

    // ---- device type
    if (o.deviceType !== undefined) {
      const okType = deviceTypes.includes(o.deviceType);
      add('device-type', okType ? 'pass' : 'fail', okType ? `installs on ${o.deviceType}` : `device type ${o.deviceType} is not one of ${deviceTypes.join(', ') || '(none)'}: the client refuses it ("not compatible with device")`);
    }

    // ---- payloads: decompressed, inner tar walked, each file hashed
    const seen = new Set<string>();
    for (const [i, dm] of dataMs.entries()) {
      const m = DATA_RE.exec(dm.entry.name)!;
      const idx = m[1]!;
      if (Number(idx) !== i) checksumProblems.push(`${dm.entry.name} is payload ${i} by position`);
      const pl = payloads[i];
      const comp = compressionOf(m[2]);
      const step = reporter.step(`checking ${dm.entry.name}`, dm.entry.size);
      let read = 0;
      let hash = createHash('sha256');
      const files: { name: string; size: number; sha256: string }[] = [];
      try {
        const parser = new TarStreamParser({
          onEntry: (e) => {
            if (e.type !== '0') throw new TarFormatError(`payload member ${safe(e.name)} is not a regular file`);
            if (!PAYLOAD_NAME_RE.test(e.name)) throw new TarFormatError(`payload file name "${safe(e.name)}" has characters the client refuses`);
            hash = createHash('sha256');
          },
          onData: (_e, c) => void hash.update(c),
          onEnd: (e) => {
            const digest = hash.digest('hex');
            files.push({ name: e.name, size: e.size, sha256: digest });
            const key = `data/${idx}/${e.name}`;
            seen.add(key);
            const want = sums.get(key);
            if (want === undefined) checksumProblems.push(`${key} is not in the manifest`);
            else if (want !== digest) checksumProblems.push(`${key}: expected ${want}, got ${digest}`);
          },
        });
        const dec = decoder(comp, (b) => parser.push(b));
        await readMember(fh, dm, async (c) => { read += c.length; step.update(read); await dec.write(c); });
        await dec.end();
        const end = parser.finish();
        if (parser.trailingNonZero) checksumProblems.push(`${dm.entry.name}: data after the end of its tar`);
        if (!end.endMarker) checksumProblems.push(`${dm.entry.name}: its tar has no end-of-archive blocks`);
      } catch (e) {
        checksumProblems.push(`${dm.entry.name}: ${why(e)}`);
      } finally {
        step.done();
      }
      if (pl) pl.files = files;
      if (pl?.type === 'rootfs-image') {
        const declared = pl.provides['rootfs-image.checksum'];
        if (files.length !== 1) checksumProblems.push(`payload ${idx} is a rootfs-image with ${files.length} files (the client writes exactly one)`);
        else if (declared !== undefined && declared !== files[0]!.sha256) add('provides', 'warn', `rootfs-image.checksum in type-info (${declared}) is not the image's SHA-256 (${files[0]!.sha256})`);
      }
    }
    for (const p of manifestData) if (!seen.has(p)) checksumProblems.push(`${p} is in the manifest but not in the artifact`);
    add('checksums', checksumProblems.length ? 'fail' : 'pass', checksumProblems.length ? checksumProblems.join('; ') : `${sums.size} files match the manifest (payloads uncompressed)`);
    return finish();
  } finally {
    await fh.close();
  }
}

/**
 * True when the file starts like a tar archive whose first member is `version` (a .mender).
 * Anything unreadable is not one: the caller's own reader then reports it.
 */
export async function looksLikeMender(path: string): Promise<boolean> {
  let fh;
  try {
    fh = await open(path, 'r');
    const b = await readFully(fh, 0, 512);
    return b.length === 512 && b.subarray(257, 262).toString('latin1') === 'ustar' && b.subarray(0, 8).toString('latin1') === 'version\0';
  } catch {
    return false;
  } finally {
    await fh?.close();
  }
}

export type { OuterMember };
