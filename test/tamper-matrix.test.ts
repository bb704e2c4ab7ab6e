// Tamper matrix: for a signed and a signed+encrypted bundle, flip a byte at every header byte of
// every entry, every name byte, samples of every data region, every padding byte, and truncate
// at many offsets. Each position is classified from the archive layout:
//   - it changes what would be installed (manifest, signature, payload, name, size, sum, magic,
//     structure) → otapack verify must FAIL;
//   - it changes nothing the client reads (unused header fields, padding, the trailer's sum and
//     size, bytes after the trailer) → verify must not fail (a warning at most).
// A sample of each class goes to the real `swupdate -c`, which must agree.
import { describe, test, expect, beforeAll } from 'vitest';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { otapack, tmp } from './helpers/run.js';
import { swupdate, swupdateOk } from './helpers/swupdate.js';
import { keygen, makeExt4, writeSpec, abSpec, type KeyDir } from './helpers/bundle-fixtures.js';
import { ArchiveReader } from '../src/clients/swupdate/archive.js';
import { HEADER_SIZE, pad4 } from '../src/clients/swupdate/cpio.js';
import { verifyBundle } from '../src/clients/swupdate/verify.js';
import { parseCertificates } from '../src/crypto/x509.js';
import { parseAesKey } from '../src/crypto/keys.js';

type Expect = 'fail' | 'harmless';
interface Mutation { what: string; expect: Expect; apply: (b: Buffer) => Buffer }

const FIELDS = ['ino', 'mode', 'uid', 'gid', 'nlink', 'mtime', 'filesize', 'devmajor', 'devminor', 'rdevmajor', 'rdevminor', 'namesize', 'check'];
const CLIENT_READS = new Set(['filesize', 'namesize', 'check']);

async function mutations(path: string): Promise<Mutation[]> {
  const good = readFileSync(path);
  const reader = await ArchiveReader.open(path);
  const entries = [];
  for await (const e of reader.entries()) entries.push(e);
  const end = reader.end!;
  await reader.close();
  const out: Mutation[] = [];
  const flip = (what: string, off: number, expect: Expect): void => {
    out.push({ what: `${what} @${off}`, expect, apply: (b) => { const x = Buffer.from(b); x[off] ^= 0x01; return x; } });
  };
  const trailerHeader = end.trailerEnd - (HEADER_SIZE + 11 + pad4(HEADER_SIZE + 11)); // "TRAILER!!!\0", no data
  for (const e of entries) {
    const h = e.headerOffset;
    for (let i = 0; i < 6; i++) flip(`${e.name} magic[${i}]`, h + i, 'fail');
    FIELDS.forEach((f, fi) => {
      for (let i = 0; i < 8; i++) flip(`${e.name} ${f}[${i}]`, h + 6 + fi * 8 + i, CLIENT_READS.has(f) ? 'fail' : 'harmless');
    });
    const nameEnd = h + HEADER_SIZE + e.header.nameSize;
    for (let o = h + HEADER_SIZE; o < nameEnd; o++) flip(`${e.name} name`, o, 'fail');
    for (let o = nameEnd; o < e.dataOffset; o++) flip(`${e.name} name padding`, o, 'harmless');
    const samples = new Set([0, 1, e.size >> 1, e.size - 2, e.size - 1, ...Array.from({ length: 11 }, (_, i) => Math.floor((e.size * (i + 1)) / 13))]);
    for (const s of samples) if (s >= 0 && s < e.size) flip(`${e.name} data`, e.dataOffset + s, 'fail');
    for (let o = e.dataOffset + e.size; o < e.dataOffset + e.size + pad4(e.size); o++) flip(`${e.name} data padding`, o, 'harmless');
  }
  // the trailer: magic, name size and name define the end of the archive; its size and sum do not matter
  const t = trailerHeader;
  for (let i = 0; i < 6; i++) flip(`trailer magic[${i}]`, t + i, 'fail');
  FIELDS.forEach((f, fi) => {
    for (let i = 0; i < 8; i++) flip(`trailer ${f}[${i}]`, t + 6 + fi * 8 + i, f === 'namesize' ? 'fail' : 'harmless');
  });
  for (let o = t + HEADER_SIZE; o < t + HEADER_SIZE + 10; o++) flip('trailer name', o, 'fail');
  for (let o = end.trailerEnd; o < good.length; o += Math.max(1, Math.floor((good.length - end.trailerEnd) / 12))) flip('after the trailer', o, 'harmless');
  // truncations: anywhere before the end of the trailer breaks the archive; inside the final padding it does not
  for (let i = 1; i <= 40; i++) {
    const at = Math.floor((end.trailerEnd * i) / 41);
    out.push({ what: `truncated at ${at}`, expect: 'fail', apply: (b) => b.subarray(0, at) });
  }
  for (const at of [end.trailerEnd, good.length - 1]) if (at < good.length) out.push({ what: `truncated at ${at} (final padding)`, expect: 'harmless', apply: (b) => b.subarray(0, at) });
  return out;
}

describe.each([
  ['signed', false],
  ['signed + encrypted', true],
])('tamper matrix: %s bundle', (_label, encrypted) => {
  let dir: string;
  let keys: KeyDir;
  let bundle: string;
  let cases: Mutation[];
  const results = new Map<string, { verdict: 'fail' | 'warn' | 'pass'; detail: string }>();

  beforeAll(async () => {
    dir = tmp('otapack-tamper-');
    keys = await keygen(join(dir, 'k'), ['--type', 'rsa2048']);
    const payload = await makeExt4(join(dir, 'rootfs.ext4'), 4);
    const spec = writeSpec(dir, 's.yaml', abSpec({ slotA: '/dev/a', slotB: join(dir, 'slotB'), file: payload, encrypt: encrypted }));
    bundle = join(dir, 'b.swu');
    const r = await otapack(['bundle', spec, '-o', bundle, '--key', keys.key, '--cert', keys.cert, '--aes-key', keys.aes]);
    expect(r.code, r.stderr).toBe(0);
    cases = await mutations(bundle);
    const trust = parseCertificates(readFileSync(keys.cert), 'trust');
    const aes = parseAesKey({ data: readFileSync(keys.aes), origin: 'aes' });
    const good = readFileSync(bundle);
    const p = join(dir, 'm.swu');
    for (const m of cases) {
      writeFileSync(p, m.apply(good));
      let verdict: 'fail' | 'warn' | 'pass';
      let detail = '';
      try {
        const rep = await verifyBundle(p, { trust, aes });
        verdict = !rep.ok ? 'fail' : rep.checks.some((c) => c.status === 'warn') ? 'warn' : 'pass';
        detail = rep.checks.filter((c) => c.status === 'fail' || c.status === 'warn').map((c) => `${c.id}: ${c.message}`).join('; ');
      } catch (e) {
        verdict = 'fail';
        detail = `threw ${(e as Error).message}`;
      }
      results.set(m.what, { verdict, detail });
    }
  }, 600_000);

  test('every change that alters what would be installed is rejected by otapack verify', () => {
    const bad = cases.filter((m) => m.expect === 'fail');
    const missed = bad.filter((m) => results.get(m.what)!.verdict !== 'fail').map((m) => m.what);
    console.log(`${_label}: ${bad.length} harmful mutations (byte flips and truncations), ${bad.length - missed.length} rejected`);
    expect(bad.length).toBeGreaterThan(200);
    expect(missed).toEqual([]);
  });

  test('changes that alter nothing installable pass, with a warning where the bytes are visible', () => {
    const harmless = cases.filter((m) => m.expect === 'harmless');
    const wrong = harmless.filter((m) => results.get(m.what)!.verdict === 'fail').map((m) => `${m.what}: ${results.get(m.what)!.detail}`);
    const warned = harmless.filter((m) => results.get(m.what)!.verdict === 'warn').length;
    console.log(`${_label}: ${harmless.length} harmless mutations, ${warned} reported as warnings, ${harmless.length - warned - wrong.length} silent`);
    expect(wrong).toEqual([]);
    // dirty padding is always reported
    for (const m of harmless.filter((x) => /padding|after the trailer/.test(x.what) && !/truncated/.test(x.what))) {
      expect(results.get(m.what)!.verdict, m.what).toBe('warn');
    }
  });

  test("the real client agrees on a sample of each class", async () => {
    const good = readFileSync(bundle);
    const pick = (re: RegExp): Mutation => cases.find((m) => re.test(m.what))!;
    const sample = [
      pick(/^sw-description data/), pick(/^sw-description\.sig data/), pick(/^rootfs\.ext4\.zst(\.enc)? data @\d+$/),
      pick(/^rootfs\.ext4\.zst(\.enc)? check\[7\]/), pick(/^rootfs\.ext4\.zst(\.enc)? name/), pick(/^truncated at/),
      pick(/^sw-description ino\[7\]/), pick(/^sw-description\.sig mtime\[7\]/), pick(/name padding/), pick(/data padding/), pick(/^after the trailer/),
    ];
    let agreed = 0;
    for (const m of sample) {
      const p = join(dir, `client-${agreed}.swu`);
      writeFileSync(p, m.apply(good));
      const o = { check: true, cert: keys.cert, aesKey: keys.aes, select: 'stable,copy2' };
      const r = m.expect === 'fail' ? await swupdate(p, o) : await swupdateOk(p, o);
      expect(r.ok, `${m.what} (${m.expect}): ${r.output.split('\n').filter((l) => /ERROR/.test(l)).slice(0, 2).join(' | ')}`).toBe(m.expect !== 'fail');
      agreed++;
    }
    console.log(`${_label}: the real client agreed on ${agreed} of ${sample.length} sampled mutations`);
  });
});
