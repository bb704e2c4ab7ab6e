// Seeded fuzzing of the parsers that read hostile input: the cpio reader (through a full
// verify), the libconfig/JSON manifest reader, the MBR/GPT readers, a signed .mender (through
// verify with its trust key), and a really signed,
// encrypted bundle (signature, certificate, manifest and payload mutated, then verified with
// the trust anchor and the AES key, its manifest extracted and the bundle re-signed: what
// `verify`, `manifest` and `sign` do). Shared by `npm run fuzz` (10 000+ inputs per target) and
// a fast sample in `npm test`.
// Only the parsers' own error types may escape; anything else, a slow input or memory growth
// is a finding. Separately, every error that escapes a command's library call is mapped to the
// exit status the CLI would give it (src/cli/exit-codes.ts): exit 70 (internal error) is never
// the answer to an input, so each such case is listed in `exit70`.
import { readFileSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { execFileSync } from 'node:child_process';
import { createHash, createCipheriv, randomBytes } from 'node:crypto';
import { OtapackError } from '../../dist/errors.js';
import { exitCodeOf } from '../../dist/cli/exit-codes.js';
import { extractManifest, resignBundle } from '../../dist/clients/swupdate/resign.js';
import { generateKeySet, privateKeyPem, certPem } from '../../dist/crypto/keygen.js';
import { KeyObjectSigner } from '../../dist/crypto/signer.js';
import { signCms } from '../../dist/crypto/cms.js';
import { encodeHeader, encodeTrailer, byteSum, pad4 } from '../../dist/clients/swupdate/cpio.js';
import { ArchiveReader } from '../../dist/clients/swupdate/archive.js';
import { verifyBundle } from '../../dist/clients/swupdate/verify.js';
import { readManifest, ManifestError } from '../../dist/clients/swupdate/manifest-read.js';
import { LibconfigError } from '../../dist/clients/swupdate/libconfig.js';
import { parseMbr, encodeMbr } from '../../dist/disk/mbr.js';
import { readGpt, encodeGpt } from '../../dist/disk/gpt.js';
import { CmsFormatError } from '../../dist/crypto/cms.js';
import { open as openFile } from 'node:fs/promises';
import { writeArtifact, DEFAULT_CLEARS_PROVIDES } from '../../dist/clients/mender/artifact.js';
import { manifestSignerFromKey, parseTrustKey } from '../../dist/clients/mender/keys.js';
import { verifyMenderArtifact } from '../../dist/clients/mender/verify.js';

export function rng(seed) {
  let x = seed >>> 0 || 0x9e3779b9;
  const next = () => { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; return x; };
  return { next, int: (n) => next() % n, pick: (a) => a[next() % a.length] };
}

const INTERESTING = [0x00, 0xff, 0x7f, 0x80, 0x30, 0x39, 0x41, 0x46, 0x22, 0x7b, 0x7d, 0x28, 0x29, 0x3b, 0x5b, 0x5d, 0x0a];

/** One to four random edits of `buf`. */
export function mutate(buf, r) {
  let b = Buffer.from(buf);
  const n = 1 + r.int(4);
  for (let k = 0; k < n; k++) {
    const at = b.length ? r.int(b.length) : 0;
    switch (r.int(9)) {
      case 0: if (b.length) b[at] ^= 1 << r.int(8); break;
      case 1: if (b.length) b[at] = r.pick(INTERESTING); break;
      case 2: if (b.length) b[at] = r.int(256); break;
      case 3: b = Buffer.concat([b.subarray(0, at), Buffer.from(Array.from({ length: 1 + r.int(16) }, () => r.int(256))), b.subarray(at)]); break;
      case 4: b = Buffer.concat([b.subarray(0, at), b.subarray(Math.min(b.length, at + 1 + r.int(64)))]); break;
      case 5: { const len = 1 + r.int(Math.min(256, Math.max(1, b.length - at))); b = Buffer.concat([b.subarray(0, at + len), b.subarray(at, at + len), b.subarray(at + len)]); break; }
      case 6: b = b.subarray(0, at); break;
      case 7: if (b.length >= at + 8) b.write(r.pick(['FFFFFFFF', '00000000', '7FFFFFFF', '80000000', 'ZZZZZZZZ', '0000006E']), at, 'latin1'); break;
      case 8: if (b.length >= at + 4) b.writeUInt32LE(r.pick([0, 0xffffffff, 0x7fffffff, 1, 34, 128, 0x1000]), at); break;
    }
  }
  return b;
}

// ---------------------------------------------------------------- seeds

const MANIFEST = `software =
{
    version = "1.0.0";
    hardware-compatibility = [ "1.0", "#RE:^1\\\\.[0-9]+$" ];
    stable = {
        copy1 = { images: ( { filename = "rootfs.ext4"; type = "raw"; device = "/dev/mmcblk0p2"; sha256 = "${'a'.repeat(64)}"; properties = { x = [ "1", "2" ]; }; } );
                  bootenv: ( { name = "rootpart"; value = "2"; } ); };
        copy2 = { images: ( { filename = "rootfs.ext4"; type = "raw"; device = "/dev/mmcblk0p3"; sha256 = "${'a'.repeat(64)}"; encrypted = true; ivt = "${'0'.repeat(32)}"; } ); };
    };
}
`;
const JSON_MANIFEST = JSON.stringify({ software: { version: '1.0', 'hardware-compatibility': ['1.0'], images: [{ filename: 'a', type: 'raw', device: '/dev/x', sha256: 'b'.repeat(64), compressed: 'zstd' }] } });

export function seedBundle() {
  const payload = Buffer.from('payload '.repeat(64));
  const manifest = Buffer.from(`software = { version = "1"; hardware-compatibility = [ "1" ]; images: ( { filename = "p"; type = "raw"; device = "/dev/x"; sha256 = "${'0'.repeat(64)}"; } ); };`);
  const sig = Buffer.from('3082000a06092a864886f70d010702a000', 'hex');
  const parts = [];
  let pos = 0;
  [['sw-description', manifest], ['sw-description.sig', sig], ['p', payload]].forEach(([n, d], i) => {
    const h = encodeHeader(n, { size: d.length, check: byteSum(d), ino: i + 1 }, 'crc');
    parts.push(h, d, Buffer.alloc(pad4(d.length)));
    pos += h.length + d.length + pad4(d.length);
  });
  parts.push(encodeTrailer(pos, 'crc'));
  return Buffer.concat(parts);
}

/** A cpio (crc) archive of the given entries, with correct sums. */
function cpio(entries) {
  const parts = [];
  let pos = 0;
  entries.forEach(([n, d], i) => {
    const h = encodeHeader(n, { size: d.length, check: byteSum(d), ino: i + 1 }, 'crc');
    parts.push(h, d, Buffer.alloc(pad4(d.length)));
    pos += h.length + d.length + pad4(d.length);
  });
  parts.push(encodeTrailer(pos, 'crc'));
  return Buffer.concat(parts);
}

/** A really signed bundle: EC P-256 signer, a zstd-compressed AES-256-CBC payload with its ivt. */
export async function seedSigned() {
  const keys = generateKeySet({ cn: 'fuzz signer', days: 3650, type: 'ec256', ca: false });
  const signer = new KeyObjectSigner(keys.signingKey, keys.signingCert, [], 'ecdsa', 'fuzz key');
  const aes = { key: randomBytes(32), iv: randomBytes(16), origin: 'fuzz' };
  const ivt = randomBytes(16);
  const plain = Buffer.from('fuzz payload '.repeat(4096));
  const compressed = execFileSync('zstd', ['-q', '-c', '-3'], { input: plain });
  const c = createCipheriv('aes-256-cbc', aes.key, ivt);
  const payload = Buffer.concat([c.update(compressed), c.final()]);
  const sha = createHash('sha256').update(payload).digest('hex');
  const manifest = Buffer.from(`software =\n{\n  version = "1.0.0";\n  hardware-compatibility = [ "1.0" ];\n  images: ( {\n    filename = "p.zst.enc"; type = "raw"; device = "/dev/x";\n    compressed = "zstd"; encrypted = true; ivt = "${ivt.toString('hex')}";\n    sha256 = "${sha}";\n  } );\n}\n`);
  const sig = await signCms(manifest, signer, new Date(Date.UTC(2026, 0, 1)));
  return {
    parts: { manifest, sig, payload }, bundle: cpio([['sw-description', manifest], ['sw-description.sig', sig], ['p.zst.enc', payload]]), trust: [keys.signingCert], aes, signer,
    files: { key: privateKeyPem(keys.signingKey), cert: certPem(keys.signingCert.der), aes: `${aes.key.toString('hex')} ${aes.iv.toString('hex')}\n` },
  };
}

function seedMbr() {
  const s0 = encodeMbr({ diskSignature: 0x1234abcd, partitions: [
    { bootable: true, type: 0x0c, startLba: 2048, sectors: 2048 },
    { bootable: false, type: 0x83, startLba: 4096, sectors: 4096 },
    { bootable: false, type: 0x05, startLba: 8192, sectors: 4096 },
  ] });
  // the head and the extended boot record at LBA 8192 (holding one logical partition)
  const ebr = encodeMbr({ diskSignature: 0, partitions: [{ bootable: false, type: 0x83, startLba: 63, sectors: 1000 }] });
  return { head: s0, ebrLba: 8192, ebr };
}

function seedGpt() {
  const size = 8 << 20;
  const g = encodeGpt({ diskGuid: '11111111-2222-4333-8444-555555555555', diskSizeBytes: size, partitions: [
    { typeGuid: 'c12a7328-f81f-11d2-ba4b-00a0c93ec93b', uniqueGuid: '0e1d2c3b-4a59-4687-9786-a5b4c3d2e1f0', firstLba: 64, lastLba: 2111, name: 'esp' },
    { typeGuid: '0fc63daf-8483-4772-8e79-3d69d8477de4', uniqueGuid: '6c1e4b2a-9f3d-4e8a-b7c6-5d4e3f2a1b0c', firstLba: 2112, lastLba: 12000, name: 'root' },
  ] });
  return { primary: g.primary, backup: g.backup, backupOffset: g.backupOffset, size };
}

/** A signed .mender (ECDSA P-256, gzip) with a small payload and a state script, and its trust key. */
async function seedMender(dir) {
  const keys = generateKeySet({ cn: 'fuzz mender', days: 3650, type: 'ec256', ca: false });
  const signer = manifestSignerFromKey(keys.signingKey, 'fuzz key');
  const payload = Buffer.from('mender fuzz payload '.repeat(3000));
  const file = join(dir, 'seed.mender');
  const fh = await openFile(file, 'w+');
  try {
    await writeArtifact(fh, {
      header: { artifactName: 'fuzz-1', deviceTypes: ['fuzz-dev'], provides: {}, depends: {}, typeProvides: { 'rootfs-image.version': 'fuzz-1' }, typeDepends: {}, clearsProvides: DEFAULT_CLEARS_PROVIDES, scripts: [{ name: 'ArtifactCommit_Enter_01', data: Buffer.from('#!/bin/sh\n') }] },
      payload: { name: 'rootfs.ext4', size: payload.length, feed: async (write) => { await write(payload); } },
      compression: 'zlib', signer, mtime: 0,
    });
  } finally {
    await fh.close();
  }
  return { bytes: readFileSync(file), trust: parseTrustKey(Buffer.from(signer.publicKeyPem), 'fuzz key') };
}

// ---------------------------------------------------------------- targets

const allowed = (e) => e instanceof OtapackError || e instanceof LibconfigError || e instanceof ManifestError || e instanceof CmsFormatError;

/** What a command's library call threw would exit with; exit 70 is recorded, whatever the type. */
function commandError(e, ctx, what) {
  if (exitCodeOf(e) === 70) ctx.exit70.push(`${what}: ${e?.constructor?.name}: ${String(e?.message).slice(0, 200)}`);
}

export const targets = {
  async manifest(r) {
    const text = r.int(4) === 0 ? JSON_MANIFEST : MANIFEST;
    const input = mutate(Buffer.from(text), r).toString('latin1');
    try { readManifest(input); } catch (e) { if (!allowed(e)) throw e; }
  },
  async cpio(r, ctx) {
    const bytes = mutate(ctx.bundle, r);
    writeFileSync(ctx.file, bytes);
    // the structural reader alone, then the whole verify (manifest, CMS, hashes)
    const reader = await ArchiveReader.open(ctx.file);
    try {
      for await (const e of reader.entries()) if (e.size < 4096) await reader.readEntry(e, 4096);
    } catch (e) { if (!allowed(e)) throw e; } finally { await reader.close(); }
    try { await verifyBundle(ctx.file, { allowUnsigned: true }); } catch (e) { commandError(e, ctx, 'verify'); if (!allowed(e)) throw e; }
  },
  async signed(r, ctx) {
    // mutate one part and re-archive it with correct sums (reaching the CMS, certificate and
    // manifest parsers and the decryption), or mutate the archive bytes as they are
    const s = ctx.signed;
    const which = r.int(5);
    let bytes;
    if (which === 4) bytes = mutate(s.bundle, r);
    else {
      const p = { ...s.parts };
      const key = ['sig', 'sig', 'manifest', 'payload'][which];
      p[key] = mutate(p[key], r);
      bytes = cpio([['sw-description', p.manifest], ['sw-description.sig', p.sig], ['p.zst.enc', p.payload]]);
    }
    writeFileSync(ctx.file, bytes);
    const now = new Date(Date.UTC(2026, 5, 1));
    try { await verifyBundle(ctx.file, { trust: s.trust, aes: s.aes, now }); } catch (e) { commandError(e, ctx, 'verify'); if (!allowed(e)) throw e; }
    try { await extractManifest(ctx.file); } catch (e) { commandError(e, ctx, 'manifest'); if (!allowed(e)) throw e; }
    if (r.int(4) === 0) {
      try { await resignBundle({ input: ctx.file, output: ctx.out, signer: s.signer, now }); } catch (e) { commandError(e, ctx, 'sign'); if (!allowed(e)) throw e; }
    }
  },
  async mender(r, ctx) {
    // the outer tar, version, manifest, signature, the stored-deflate header and the gzip payload
    writeFileSync(ctx.menderFile, mutate(ctx.mender.bytes, r));
    try { await verifyMenderArtifact(ctx.menderFile, { trust: ctx.mender.trust, deviceType: 'fuzz-dev' }); } catch (e) { commandError(e, ctx, 'verify .mender'); if (!allowed(e)) throw e; }
  },
  async mbr(r, ctx) {
    const which = r.int(3);
    const head = which !== 1 ? mutate(ctx.mbr.head, r) : ctx.mbr.head;
    const ebr = which !== 0 ? mutate(ctx.mbr.ebr, r) : ctx.mbr.ebr;
    // like a file read: whatever bytes exist at that offset, zeros elsewhere
    const readAt = async (off, len) => {
      const out = Buffer.alloc(len);
      if (off < head.length) head.copy(out, 0, off, Math.min(head.length, off + len));
      const e = ctx.mbr.ebrLba * 512;
      if (off + len > e && off < e + ebr.length) ebr.copy(out, Math.max(0, e - off), Math.max(0, off - e), Math.min(ebr.length, off + len - e));
      return out;
    };
    try { await parseMbr(await readAt(0, 512), readAt, 'fuzz'); } catch (e) { commandError(e, ctx, 'mbr'); if (!allowed(e)) throw e; }
  },
  async gpt(r, ctx) {
    const { primary, backup, backupOffset, size } = ctx.gpt;
    const which = r.int(3);
    const p = which !== 1 ? mutate(primary, r) : primary;
    const b = which !== 0 ? mutate(backup, r) : backup;
    const read = async (off, len) => {
      const out = Buffer.alloc(len);
      if (off < p.length) p.copy(out, 0, off, Math.min(off + len, p.length));
      const from = Math.max(0, off - backupOffset);
      if (off + len > backupOffset && from < b.length) b.copy(out, Math.max(0, backupOffset - off), from, Math.min(b.length, off + len - backupOffset));
      return out;
    };
    try { await readGpt(read, size, 'fuzz'); } catch (e) { commandError(e, ctx, 'gpt'); if (!allowed(e)) throw e; }
  },
};

/** Share of `n` a target runs: a signed bundle is verified with decryption and a zstd process (~80 ms each). */
const COST = { signed: 0.2, mender: 0.3 };

/**
 * Runs `n` inputs per target; returns findings (exceptions, slow inputs), the inputs whose error
 * would have exited 70 (`exit70`, each "target #input (seed …): what threw") and figures.
 */
export async function fuzz({ n = 10_000, seed = 1, only, slowMs = 2000, log = () => {} } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'otapack-fuzz-'));
  const ctx = { bundle: seedBundle(), file: join(dir, 'f.swu'), out: join(dir, 'o.swu'), mbr: seedMbr(), gpt: seedGpt(), signed: await seedSigned(), mender: await seedMender(dir), menderFile: join(dir, 'f.mender'), exit70: [] };
  const findings = [];
  const exit70 = [];
  const stats = {};
  try {
    for (const [name, fn] of Object.entries(targets)) {
      if (only && !only.includes(name)) continue;
      const r = rng(seed * 7919 + name.length);
      const t0 = Date.now();
      let slowest = 0;
      const count = Math.ceil(n * (COST[name] ?? 1));
      for (let i = 0; i < count; i++) {
        const s = r.next();
        const one = rng(s);
        const t = Date.now();
        try {
          await fn(one, ctx);
        } catch (e) {
          findings.push({ target: name, input: i, seed: s, error: `${e?.constructor?.name}: ${e?.message}`.slice(0, 300) });
        }
        for (const what of ctx.exit70.splice(0)) exit70.push(`${name} #${i} (seed ${s}): ${what}`);
        const dt = Date.now() - t;
        slowest = Math.max(slowest, dt);
        if (dt > slowMs) findings.push({ target: name, input: i, seed: s, error: `slow: ${dt} ms` });
      }
      const mem = process.memoryUsage();
      stats[name] = { inputs: count, ms: Date.now() - t0, slowestMs: slowest, heapMiB: Math.round(mem.heapUsed / 2 ** 20), rssMiB: Math.round(mem.rss / 2 ** 20) };
      log(`${name}: ${count} inputs in ${stats[name].ms} ms, slowest ${slowest} ms, heap ${stats[name].heapMiB} MiB, rss ${stats[name].rssMiB} MiB`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return { findings, exit70, stats };
}
