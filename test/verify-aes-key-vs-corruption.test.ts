// A wrong AES key and a payload corrupted in transit are different problems with different
// fixes; `otapack verify --aes-key` names each for what it is, for every codec. The hash is
// judged before any decoding failure is read: a payload whose sha256 does not match is corrupt or
// tampered (whatever its decryption did); one whose sha256 matches but does not decode was
// checked with the wrong key (or ivt). The real client (oracle §4) fails the same bundles with
// its own words: HASH mismatch for the corrupt payload; Decryption error / inflate failed /
// ZSTD_decompressStream failed for the wrong key. The payload is 4 MiB, enough that a decoder
// which gives up early leaves a broken pipe behind (once reported as "write EPIPE").
import { describe, test, expect, beforeAll } from 'vitest';
import { readFileSync, writeFileSync } from 'node:fs';
import { createCipheriv, createHash } from 'node:crypto';
import { join } from 'node:path';
import { otapack, tmp } from './helpers/run.js';
import { keygen, writeSpec, type KeyDir } from './helpers/bundle-fixtures.js';
import { swupdate, swupdateOk } from './helpers/swupdate.js';

let dir: string;
let keys: KeyDir;
let aesKey: string;
let wrongKey: string;
const seen: string[] = [];

// Everything that reaches the cipher is fixed (payload, both keys, ivts from --reproducible), so
// what the wrong key decrypts to is the same on every run: a random wrong key would, one run in
// about 256, happen to leave valid AES padding on the uncompressed payload.
const hex = (seed: string, bytes: number): string => createHash('sha256').update(seed).digest('hex').repeat(2).slice(0, bytes * 2);

beforeAll(async () => {
  dir = tmp('otapack-aes-');
  keys = await keygen(join(dir, 'k'), ['--type', 'rsa2048']);
  aesKey = join(dir, 'aes.key');
  writeFileSync(aesKey, `${hex('right key', 32)} ${hex('right iv', 16)}\n`, { mode: 0o600 });
  wrongKey = join(dir, 'wrong.key');
  writeFileSync(wrongKey, `${hex('wrong key', 32)} ${hex('wrong iv', 16)}\n`, { mode: 0o600 });
  // 4 MiB of incompressible, reproducible bytes
  writeFileSync(join(dir, 'payload.bin'), createCipheriv('aes-256-ctr', createHash('sha256').update('payload').digest(), Buffer.alloc(16)).update(Buffer.alloc(4 << 20)));
});

/** Flips one byte in the middle of the payload entry and fixes its cpio (crc) sum: only the sha256 can tell. */
function corruptPayload(swu: Buffer): Buffer {
  const b = Buffer.from(swu);
  for (let at = 0; ;) {
    const size = parseInt(b.toString('latin1', at + 54, at + 62), 16);
    const nameLen = parseInt(b.toString('latin1', at + 94, at + 102), 16);
    const name = b.toString('latin1', at + 110, at + 110 + nameLen - 1);
    const data = at + 110 + nameLen + ((4 - ((110 + nameLen) % 4)) % 4);
    if (name !== 'sw-description' && name !== 'sw-description.sig') {
      const i = data + (size >> 1);
      const before = b[i]!;
      b[i] = before ^ 0x01;
      const sum = (parseInt(b.toString('latin1', at + 102, at + 110), 16) - before + b[i]!) >>> 0;
      b.write(sum.toString(16).toUpperCase().padStart(8, '0'), at + 102, 'latin1');
      return b;
    }
    at = data + size + ((4 - (size % 4)) % 4);
  }
}

const errorLines = (out: string): string => out.split('\n').filter((l) => /ERROR/.test(l) && !/SWUpdate \*failed\*|Installation failed|Not installing/.test(l)).join(' | ');

describe.each([
  ['zstd', /ZSTD_decompressStream failed: Unknown frame descriptor/, /the decrypted data is not valid zstd data \(/],
  ['zlib', /inflate failed \(returned -3\)/, /the decrypted data is not valid gzip data \(incorrect header check\)/],
  ['none', /Decryption error 0x[0-9a-f]+, reason: bad decrypt/, /AES-CBC padding does not check out/],
] as const)('compress: %s, encrypted', (codec, clientWrongKey, ourDetail) => {
  let good: string;
  beforeAll(async () => {
    const spec = writeSpec(dir, `${codec}.yaml`, `version: "1.0.0"\nhardware-compatibility: ["1.0"]\nimages:\n  - file: payload.bin\n    type: raw\n    device: /dev/null\n    compress: ${codec}\n    encrypt: true\n`);
    good = join(dir, `${codec}.swu`);
    const r = await otapack(['bundle', spec, '-o', good, '--key', keys.key, '--cert', keys.cert, '--aes-key', aesKey, '--reproducible'], { env: { SOURCE_DATE_EPOCH: String(Math.floor(Date.now() / 1000)) } });
    expect(r.code, r.stderr).toBe(0);
  });

  test('the right key on the intact bundle: verify passes and the client accepts (the control)', async () => {
    const v = await otapack(['verify', good, '--trust', keys.cert, '--aes-key', aesKey]);
    expect(v.code, v.stderr).toBe(0);
    expect(v.stderr).toMatch(/PASS\s+decode\s+decrypted and decompressed/);
    const c = await swupdateOk(good, { check: true, cert: keys.cert, aesKey });
    expect(c.ok, c.output).toBe(true);
  });

  test('a wrong AES key on the intact bundle: "wrong AES key (or ivt)", hashes pass, never a broken pipe', async () => {
    const v = await otapack(['verify', good, '--trust', keys.cert, '--aes-key', wrongKey]);
    expect(v.code, v.stderr).toBe(1);
    expect(v.stderr).toMatch(/PASS\s+hashes/);
    expect(v.stderr).toMatch(/FAIL\s+decode\s+"payload\.bin[.a-z]*": wrong AES key \(or ivt\): /);
    expect(v.stderr).toMatch(ourDetail);
    expect(v.stderr).toMatch(/while its bytes match sw-description's sha256 \(the data is intact\)/);
    expect(v.stderr).not.toMatch(/EPIPE|corrupt/);
    const c = await swupdate(good, { check: true, cert: keys.cert, aesKey: wrongKey });
    expect(c.ok).toBe(false);
    expect(c.output).toMatch(clientWrongKey);
    expect(c.output).not.toMatch(/HASH mismatch/);
    seen.push(`${codec}, wrong key:\n  otapack: ${/FAIL\s+decode\s+(.*)/.exec(v.stderr)![1]}\n  client:  ${errorLines(c.output)}`);
  });

  test('a payload corrupted in transit, checked with the right key: "corrupt or tampered", the key not blamed', async () => {
    const bad = join(dir, `${codec}-corrupt.swu`);
    writeFileSync(bad, corruptPayload(readFileSync(good)));
    const v = await otapack(['verify', bad, '--trust', keys.cert, '--aes-key', aesKey]);
    expect(v.code, v.stderr).toBe(1);
    expect(v.stderr).toMatch(/PASS\s+checksums/); // the cpio sum was fixed up: only the hash can tell
    expect(v.stderr).toMatch(/FAIL\s+hashes\s+"payload\.bin[.a-z]*": sha256 [0-9a-f]{64} does not match sw-description's [0-9a-f]{64} \(corrupt or tampered\)/);
    expect(v.stderr).toMatch(/SKIP\s+decode\s+"payload\.bin[.a-z]*" not judged: its bytes are corrupt or tampered \(sha256 mismatch\), so decryption says nothing about the AES key/);
    expect(v.stderr).not.toMatch(/wrong AES key|EPIPE/);
    const c = await swupdate(bad, { check: true, cert: keys.cert, aesKey });
    expect(c.ok).toBe(false);
    expect(c.output).toMatch(/HASH mismatch : [0-9a-f]{64} <--> [0-9a-f]{64}/);
    seen.push(`${codec}, corrupt payload, right key:\n  otapack: ${/FAIL\s+hashes\s+(.*)/.exec(v.stderr)![1]}; ${/SKIP\s+decode\s+(.*)/.exec(v.stderr)![1]}\n  client:  ${errorLines(c.output)}`);
  });
});

test('the messages side by side', () => {
  console.log(seen.join('\n'));
  expect(seen).toHaveLength(6);
});
