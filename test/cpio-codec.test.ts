// The cpio codec writes what GNU cpio reads (with crc verification) and reads what GNU cpio
// writes; hostile headers are refused with a named reason before any allocation.
import { describe, test, expect } from 'vitest';
import { writeFileSync, readFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { encodeHeader, encodeTrailer, byteSum, pad4, parseHeader } from '../src/clients/swupdate/cpio.js';
import { ArchiveReader } from '../src/clients/swupdate/archive.js';
import { tmp } from './helpers/run.js';

function archive(files: [string, Buffer][], format: 'crc' | 'newc'): Buffer {
  const parts: Buffer[] = [];
  let pos = 0;
  files.forEach(([name, data], i) => {
    const h = encodeHeader(name, { size: data.length, check: byteSum(data), ino: i + 1 }, format);
    parts.push(h, data, Buffer.alloc(pad4(data.length)));
    pos += h.length + data.length + pad4(data.length);
  });
  parts.push(encodeTrailer(pos, format));
  return Buffer.concat(parts);
}

describe('cpio codec', () => {
  const dir = tmp();
  const files: [string, Buffer][] = [['sw-description', Buffer.from('abc')], ['sig', Buffer.alloc(1001, 7)], ['x.bin', Buffer.from([255, 254, 1])]];

  test('GNU cpio lists and crc-verifies what otapack writes; length is a multiple of 512', async () => {
    const a = archive(files, 'crc');
    expect(a.length % 512).toBe(0);
    const r = await execa('cpio', ['-i', '--only-verify-crc', '--quiet'], { input: a, reject: false, all: true });
    expect(r.exitCode, String(r.all)).toBe(0);
    const bad = Buffer.from(a);
    bad[bad.indexOf('abc')] = 'x'.charCodeAt(0);
    const r2 = await execa('cpio', ['-i', '--only-verify-crc', '--quiet'], { input: bad, reject: false, all: true });
    expect(String(r2.all)).toMatch(/checksum error/);
  });

  test('reads what GNU cpio writes, in both formats', async () => {
    const src = join(dir, 'src');
    mkdirSync(src, { recursive: true });
    for (const [n, d] of files) writeFileSync(join(src, n), d);
    for (const fmt of ['crc', 'newc']) {
      const r = await execa('cpio', ['-o', '-H', fmt, '--quiet'], { cwd: src, input: files.map((f) => f[0]).join('\n') + '\n', encoding: 'buffer' });
      const p = join(dir, `gnu-${fmt}.cpio`);
      writeFileSync(p, r.stdout);
      const reader = await ArchiveReader.open(p);
      const got: [string, number, number][] = [];
      for await (const e of reader.entries()) got.push([e.name, e.size, e.header.check]);
      await reader.close();
      expect(got.map((g) => g[0])).toEqual(files.map((f) => f[0]));
      if (fmt === 'crc') expect(got.map((g) => g[2])).toEqual(files.map((f) => byteSum(f[1])));
    }
  });

  test.each([
    ['odc cpio', Buffer.from('070707' + '0'.repeat(200)), /odc \(070707\) cpio is not accepted/],
    ['a header claiming 4 GiB in a 1 KiB file', (() => { const h = encodeHeader('big', { size: 0xfffffff0, check: 0, ino: 1 }, 'crc'); return Buffer.concat([h, Buffer.alloc(1024)]); })(), /claims 4294967280 bytes .* but the file has only 1024 left/],
    ['a missing trailer', (() => { const a = archive(files, 'crc'); return a.subarray(0, a.indexOf('TRAILER!!!') - 110); })(), /without a TRAILER!!! entry/],
    ['a non-hex size', (() => { const a = archive(files, 'crc'); a[6 + 6 * 8] = 'G'.charCodeAt(0); return a; })(), /header field filesize is not hexadecimal/],
    ['a huge name size', (() => { const a = archive(files, 'crc'); a.write('0000FFFF', 6 + 11 * 8, 'latin1'); return a; })(), /name size 65535 out of range/],
  ])('refuses %s', async (_n, bytes, re) => {
    const p = join(dir, `bad-${Math.random()}.cpio`);
    writeFileSync(p, bytes);
    const reader = await ArchiveReader.open(p);
    await expect((async () => { for await (const _ of reader.entries()) { /* walk */ } })()).rejects.toThrow(re);
    await reader.close();
  });

  test('unused header fields with junk are anomalies, not errors', () => {
    const h = encodeHeader('a', { size: 1, check: 0, ino: 1 }, 'crc');
    h[6] = 'Z'.charCodeAt(0); // ino
    const r = parseHeader(h);
    expect(r.ok && r.anomalies).toEqual(['header field ino is not hexadecimal']);
  });

  test('byteSum is the 32-bit sum of bytes, chunk by chunk', () => {
    const b = readFileSync(process.execPath).subarray(0, 1_000_003);
    let ref = 0;
    for (const x of b) ref = (ref + x) % 2 ** 32;
    expect(byteSum(b.subarray(500_001), byteSum(b.subarray(0, 500_001)))).toBe(ref);
  });
});
