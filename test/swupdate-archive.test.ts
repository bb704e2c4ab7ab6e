// The .swu archive module, table by table: the pure cpio codec, the writer against a layout
// built entry by entry from the codec (and against GNU cpio, which must list and crc-verify what
// it writes), the reader on what the writer wrote, and the reader on broken archives, each row
// with the outcome it must give.
import { describe, test, expect } from 'vitest';
import { createHash } from 'node:crypto';
import { open, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { tmp } from './helpers/run.js';
import {
  HEADER_SIZE, byteSum, encodeHeader, encodeTrailer, headerSpan, pad4, parseHeader, type CpioFormat,
} from '../src/clients/swupdate/cpio.js';
import {
  ArchiveReader, ArchiveWriter, nameProblems, orderProblems, prefixSize, type EntrySource, type NameProblem, type OrderProblem,
} from '../src/clients/swupdate/archive.js';

const dir = tmp('otapack-archive-');
let fileNo = 0;
const file = (): string => join(dir, `a${fileNo++}.swu`);
const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
/** Deterministic non-trivial bytes (every value, so byte sums are not multiples of anything). */
const bytes = (n: number, seed = 1): Buffer => {
  const b = Buffer.alloc(n);
  let x = seed * 2654435761;
  for (let i = 0; i < n; i++) { x = (x * 1103515245 + 12345) >>> 0; b[i] = x >>> 24; }
  return b;
};

/** The archive laid out entry by entry with the codec alone: what the writer must produce. */
function reference(entries: [string, Buffer][], format: CpioFormat, mtime = 0): Buffer {
  const parts: Buffer[] = [];
  let pos = 0;
  entries.forEach(([name, data], i) => {
    const h = encodeHeader(name, { size: data.length, check: byteSum(data), ino: i + 1, mtime }, format);
    parts.push(h, data, Buffer.alloc(pad4(data.length)));
    pos += h.length + data.length + pad4(data.length);
  });
  parts.push(encodeTrailer(pos, format));
  return Buffer.concat(parts);
}

/** Writes with ArchiveWriter; `reserve` defaults to the exact prefix size. */
async function write(
  path: string,
  o: { format: CpioFormat; manifest: Buffer; sig?: Buffer; payloads: [string, EntrySource][]; mtime?: number; reserve?: number },
): Promise<number> {
  const fh = await open(path, 'wx+');
  try {
    const w = new ArchiveWriter(fh, { format: o.format, mtime: o.mtime ?? 0, signed: !!o.sig, reserve: o.reserve ?? prefixSize(o.manifest.length, o.sig?.length) });
    for (const [name, data] of o.payloads) await w.addEntry(name, data);
    return await w.finish(o.manifest, o.sig);
  } finally {
    await fh.close();
  }
}

/** Splits a buffer into chunks of `n` bytes, so writes cross the writer's buffer edges unevenly. */
function* chunks(b: Buffer, n: number): Generator<Buffer> {
  for (let i = 0; i < b.length; i += n) yield b.subarray(i, i + n);
}

describe('cpio codec (pure)', () => {
  test.each([
    // name, bytes from header start to data start: 110 + name + NUL, padded to 4
    ['a', 112], ['ab', 116], ['abc', 116], ['abcd', 116], ['abcde', 116], ['abcdef', 120],
    ['sw-description', 128], ['sw-description.sig', 132], ['é', 116], ['TRAILER!!!', 124],
  ])('headerSpan(%j) = %i, and the encoded header has that length and parses back', (name, span) => {
    expect(headerSpan(name)).toBe(span);
    for (const format of ['crc', 'newc'] as const) {
      const h = encodeHeader(name, { size: 5, check: 0x1234, ino: 7, mtime: 1700000000, mode: 0o100600 }, format);
      expect(h.length).toBe(span);
      const p = parseHeader(h);
      expect(p.ok).toBe(true);
      if (!p.ok) return;
      expect(p.anomalies).toEqual([]);
      expect(p.header).toMatchObject({ magic: format === 'crc' ? '070702' : '070701', ino: 7, mode: 0o100600, size: 5, mtime: 1700000000, nlink: 1, nameSize: Buffer.byteLength(name) + 1, check: format === 'crc' ? 0x1234 : 0 });
      expect(h.subarray(HEADER_SIZE, HEADER_SIZE + Buffer.byteLength(name)).toString('utf8')).toBe(name);
      expect(h.subarray(HEADER_SIZE + Buffer.byteLength(name)).every((x) => x === 0)).toBe(true);
    }
  });

  test.each([[0, 0], [1, 3], [2, 2], [3, 1], [4, 0], [5, 3], [4097, 3]])('pad4(%i) = %i', (n, p) => expect(pad4(n)).toBe(p));

  test.each([
    ['nothing', [], 0],
    ['one byte', [255], 255],
    ['four bytes', [1, 2, 3, 4], 10],
    ['five bytes', [255, 255, 255, 255, 255], 1275],
  ])('byteSum of %s', (_n, b, sum) => expect(byteSum(Buffer.from(b))).toBe(sum));

  test('byteSum wraps at 2^32 and is the same over any split and alignment', () => {
    const b = bytes(70_001);
    let ref = 0;
    for (const x of b) ref = (ref + x) % 2 ** 32;
    for (const cut of [0, 1, 2, 3, 4, 5, 511, 4096, 70_000]) {
      expect(byteSum(b.subarray(cut), byteSum(b.subarray(0, cut)))).toBe(ref);
    }
    expect(byteSum(Buffer.from([1]), 0xffffffff)).toBe(0);
  });

  test.each([0, 1, 2, 3, 4, 123, 388, 511, 512, 1000])('a trailer written at offset %i ends the archive on a 512-byte boundary', (at) => {
    const t = encodeTrailer(at, 'crc');
    expect((at + t.length) % 512).toBe(0);
    expect(t.length).toBeGreaterThanOrEqual(headerSpan('TRAILER!!!'));
  });

  test.each([
    ['a short header', Buffer.from('070701'), /header truncated \(6 of 110 bytes\)/],
    ['wrong magic', Buffer.from('123456' + '0'.repeat(104)), /bad cpio magic "123456"/],
    ['odc', Buffer.from('070707' + '0'.repeat(104)), /odc \(070707\) cpio is not accepted by SWUpdate/],
    ['a non-hex file size', Buffer.from('070701' + '0'.repeat(48) + 'x'.repeat(8) + '0'.repeat(48)), /header field filesize is not hexadecimal/],
    ['a non-hex name size', Buffer.from('070701' + '0'.repeat(88) + 'g'.repeat(8) + '0'.repeat(8)), /header field namesize is not hexadecimal/],
    ['a non-hex check', Buffer.from('070702' + '0'.repeat(96) + 'zzzzzzzz'), /header field check is not hexadecimal/],
  ])('parseHeader refuses %s', (_n, b, re) => {
    const p = parseHeader(b);
    expect(p.ok).toBe(false);
    if (!p.ok) expect(p.reason).toMatch(re);
  });

  test.each([['ino', 0], ['mode', 1], ['uid', 2], ['mtime', 5], ['devmajor', 7], ['rdevminor', 10]])('a non-hex %s is an anomaly, not an error', (field, i) => {
    const h = encodeHeader('x', { size: 0, check: 0, ino: 1 }, 'newc');
    h[6 + i * 8] = 'q'.charCodeAt(0);
    const p = parseHeader(h);
    expect(p.ok && p.anomalies).toEqual([`header field ${field} is not hexadecimal`]);
  });
});

describe('entry names and order (pure)', () => {
  test.each<[string, string[], NameProblem[], OrderProblem[]]>([
    ['a signed bundle', ['sw-description', 'sw-description.sig', 'a', 'b'], [], []],
    ['an unsigned bundle', ['sw-description', 'a'], [], []],
    ['a name with /', ['sw-description', 'dir/a'], [{ name: 'dir/a', problem: 'not-bare' }], []],
    ['. and ..', ['sw-description', '.', '..'], [{ name: '.', problem: 'not-bare' }, { name: '..', problem: 'not-bare' }], []],
    ['a duplicate', ['sw-description', 'a', 'b', 'a'], [{ name: 'a', problem: 'duplicate' }], []],
    ['a duplicate that is not bare', ['sw-description', '/x', '/x'], [{ name: '/x', problem: 'not-bare' }, { name: '/x', problem: 'not-bare' }, { name: '/x', problem: 'duplicate' }], []],
    ['the manifest not first', ['a', 'sw-description'], [], [{ position: 0, found: 'a', expected: 'sw-description' }]],
    ['the signature not second', ['sw-description', 'a', 'sw-description.sig'], [], [{ position: 1, found: 'a', expected: 'sw-description.sig' }]],
    ['nothing', [], [], [{ position: 0, found: '', expected: 'sw-description' }]],
  ])('%s', (_n, names, np, op) => {
    expect(nameProblems(names)).toEqual(np);
    expect(orderProblems(names)).toEqual(op);
  });
});

describe('writer and reader round trip', () => {
  const manifest = Buffer.from('software = { version = "1.0"; };\n'); // 33 bytes: padded by 3
  const sig = bytes(301, 9);
  const rows: { what: string; payloads: [string, Buffer][]; chunk?: number }[] = [
    { what: 'an empty payload', payloads: [['empty', Buffer.alloc(0)]] },
    { what: 'payload sizes around 4-byte boundaries', payloads: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9].map((n) => [`p${n}`, bytes(n, n + 1)]) },
    { what: 'name lengths giving every name padding', payloads: ['a', 'ab', 'abc', 'abcd', 'abcde', 'abcdef', 'abcdefg', 'abcdefgh'].map((n, i) => [n, bytes(i + 3, i)]) },
    { what: 'a multi-byte UTF-8 name', payloads: [['rootfs-é.ext4', bytes(17)], ['ü', bytes(2)]] },
    { what: 'a payload across the reader\'s 1 MiB chunk, written in odd chunks', payloads: [['big', bytes((1 << 20) + 3)], ['after', bytes(1)]], chunk: 65_537 },
    { what: 'a payload across the writer\'s 4 MiB buffer', payloads: [['bigger', bytes((4 << 20) + 1, 3)]], chunk: 1_000_003 },
  ];

  describe.each([
    ['crc', true], ['crc', false], ['newc', true], ['newc', false],
  ] as const)('%s, signed: %s', (format, signed) => {
    test.each(rows)('$what: the same bytes as the codec layout; GNU cpio agrees; the reader gives every entry back', async ({ payloads, chunk }) => {
      const p = file();
      const s = signed ? sig : undefined;
      const size = await write(p, { format, manifest, sig: s, payloads: payloads.map(([n, d]) => [n, chunk ? chunks(d, chunk) : [d]]), mtime: 1700000000 });
      const got = await readFile(p);
      const all: [string, Buffer][] = [['sw-description', manifest], ...(s ? [['sw-description.sig', s] as [string, Buffer]] : []), ...payloads];
      expect(size).toBe(got.length);
      expect(got.equals(reference(all, format, 1700000000))).toBe(true);

      // GNU cpio lists the same names in order, and verifies every crc sum
      const listed = await execa('cpio', ['-t', '--quiet'], { input: got, encoding: 'buffer' });
      expect(Buffer.from(listed.stdout).toString('utf8').split('\n').filter(Boolean)).toEqual(all.map((e) => e[0]));
      if (format === 'crc') {
        const v = await execa('cpio', ['-i', '--only-verify-crc', '--quiet'], { input: got, reject: false, all: true, cwd: dir });
        expect(v.exitCode, String(v.all)).toBe(0);
      }

      const reader = await ArchiveReader.open(p);
      try {
        const scan = await reader.scan();
        expect(scan.fault).toBeUndefined();
        expect(scan.entries.map((e) => [e.name, e.size, e.header.ino, e.header.mtime])).toEqual(all.map(([n, d], i) => [n, d.length, i + 1, 1700000000]));
        expect(scan.end).toEqual({ trailerEnd: expect.any(Number), fileSize: got.length, anomalies: [] });
        expect(scan.entries.flatMap((e) => e.anomalies)).toEqual([]);
        const b = await reader.bundle();
        expect(b.format).toBe(format);
        expect(b.manifest.equals(manifest)).toBe(true);
        expect(b.signatureEntry?.size).toBe(s?.length);
        expect(b.payloads.map((e) => e.name)).toEqual(payloads.map((x) => x[0]));
        for (const [i, e] of b.payloads.entries()) {
          const data = payloads[i]![1];
          const d = await reader.digestEntry(e);
          expect(d).toEqual({ sha256: sha(data), check: byteSum(data) });
          expect(e.header.check).toBe(format === 'crc' ? byteSum(data) : 0);
          const streamed: Buffer[] = [];
          for await (const c of await reader.openPayload(e.name)) streamed.push(c as Buffer);
          expect(Buffer.concat(streamed).equals(data)).toBe(true);
        }
      } finally {
        await reader.close();
      }
    });
  });

  test('payloads streamed out of one archive into another (as a delta writer would) give the same bytes', async () => {
    const src = file();
    const payloads: [string, Buffer][] = [['a.zst', bytes(5)], ['b', bytes((1 << 20) + 7, 2)], ['c', Buffer.alloc(0)]];
    await write(src, { format: 'crc', manifest, sig, payloads });
    const reader = await ArchiveReader.open(src);
    const copy = file();
    try {
      const entries: [string, EntrySource][] = [];
      for (const [n] of payloads) entries.push([n, await reader.openPayload(n)]);
      await write(copy, { format: 'crc', manifest, sig, payloads: entries });
      // and through the push feed that copies without a buffer per chunk
      const fed = file();
      const layout = await reader.bundle();
      await write(fed, { format: 'crc', manifest, sig, payloads: layout.payloads.map((e) => [e.name, (w) => reader.streamEntry(e, w)]) });
      expect((await readFile(fed)).equals(await readFile(src))).toBe(true);
    } finally {
      await reader.close();
    }
    expect((await readFile(copy)).equals(await readFile(src))).toBe(true);
  });

  test.each([-13, -4, -1, 1, 4, 13, 600])('a prefix reserved %i bytes off its final size moves the payloads once: the same archive', async (off) => {
    const payloads: [string, Buffer][] = [['x', bytes(4099)], ['y', bytes(3)]];
    const exact = file();
    await write(exact, { format: 'crc', manifest, sig, payloads });
    const moved = file();
    const size = await write(moved, { format: 'crc', manifest, sig, payloads, reserve: prefixSize(manifest.length, sig.length) + off });
    const want = await readFile(exact);
    expect(size).toBe(want.length);
    expect((await readFile(moved)).equals(want)).toBe(true);
  });

  test('entry options: mode and mtime per entry, progress per chunk', async () => {
    const p = file();
    const fh = await open(p, 'wx+');
    const seen: number[] = [];
    const w = new ArchiveWriter(fh, { format: 'newc', mtime: 5, signed: false, reserve: prefixSize(manifest.length) });
    const r = await w.addEntry('s.sh', [Buffer.from('ab'), Buffer.alloc(0), Buffer.from('cde')], { mode: 0o100755, mtime: 1600000000, onData: (n) => seen.push(n) });
    expect(r).toEqual({ name: 's.sh', offset: prefixSize(manifest.length), size: 5, sha256: sha(Buffer.from('abcde')), check: byteSum(Buffer.from('abcde')) });
    expect(w.position).toBe(r.offset + headerSpan('s.sh') + 8);
    await w.finish(manifest);
    await expect(w.addEntry('late', [Buffer.from('x')])).rejects.toThrow(/added after the archive was finished/);
    await fh.close();
    expect(seen).toEqual([2, 5]);
    const reader = await ArchiveReader.open(p);
    const { entries } = await reader.scan();
    await reader.close();
    expect(entries.map((e) => [e.name, e.header.mode, e.header.mtime, e.header.ino])).toEqual([['sw-description', 0o100644, 5, 1], ['s.sh', 0o100755, 1600000000, 2]]);
  });

  test('finishing with a signature the archive was not reserved for (or without one it was) is an internal error', async () => {
    for (const [signed, s] of [[false, sig], [true, undefined]] as const) {
      const fh = await open(file(), 'wx+');
      const w = new ArchiveWriter(fh, { format: 'crc', mtime: 0, signed, reserve: 0 });
      await expect(w.finish(manifest, s)).rejects.toMatchObject({ code: 'INTERNAL' });
      await fh.close();
    }
  });

  test.each<[string, EntrySource, string]>([
    ['a generator', (async function* () { yield Buffer.from('a'); throw new Error('codec died'); })(), 'codec died'],
    ['a push feed', async (write) => { await write(Buffer.from('a')); throw new Error('read failed'); }, 'read failed'],
  ])('%s that fails stops the entry with its error, and the half-written archive takes nothing more', async (_n, source, message) => {
    const fh = await open(file(), 'wx+');
    const w = new ArchiveWriter(fh, { format: 'crc', mtime: 0, signed: false, reserve: prefixSize(manifest.length) });
    await expect(w.addEntry('x', source)).rejects.toThrow(message);
    await expect(w.addEntry('y', Buffer.from('b'))).rejects.toMatchObject({ code: 'INTERNAL', message: expect.stringMatching(/after the archive failed/) });
    await expect(w.finish(manifest)).rejects.toMatchObject({ code: 'INTERNAL' });
    await fh.close();
  });
});

describe('reader on broken archives', () => {
  const M = Buffer.from('software = {};\n'); // 15 bytes
  const S = Buffer.from('SIG');
  const A = Buffer.from('hello');
  const good = (format: CpioFormat = 'crc'): Buffer => reference([['sw-description', M], ['sw-description.sig', S], ['a.bin', A]], format);
  // offsets in good(): header, data
  const h0 = 0;
  const d0 = h0 + headerSpan('sw-description');
  const h1 = d0 + M.length + pad4(M.length);
  const d1 = h1 + headerSpan('sw-description.sig');
  const h2 = d1 + S.length + pad4(S.length);
  const d2 = h2 + headerSpan('a.bin');
  const ht = d2 + A.length + pad4(A.length);
  const field = (b: Buffer, headerAt: number, index: number, value: string): Buffer => { b.write(value, headerAt + 6 + index * 8, 'latin1'); return b; };
  const at = (b: Buffer, off: number, byte: number): Buffer => { b[off] = byte; return b; };

  interface Row {
    what: string;
    make: () => Buffer;
    /** The structural fault the walk stops at (entries() throws it, scan() reports it), or none. */
    fault?: RegExp;
    /** Names the walk gives (before the fault). */
    names: string[];
    /** bundle(): ok, or the error. */
    bundle: 'ok' | RegExp;
    anomalies?: string[];
    end?: (string | RegExp)[];
  }
  const all = ['sw-description', 'sw-description.sig', 'a.bin'];
  const rows: Row[] = [
    { what: 'a good crc archive', make: () => good(), names: all, bundle: 'ok' },
    { what: 'a good newc archive', make: () => good('newc'), names: all, bundle: 'ok' },
    { what: 'an empty file', make: () => Buffer.alloc(0), fault: /^empty file, not a cpio archive$/, names: [], bundle: /empty file/ },
    { what: 'a file shorter than a header', make: () => good().subarray(0, 100), fault: /^too short to be a cpio archive$/, names: [], bundle: /too short/ },
    { what: 'wrong magic', make: () => { const b = good(); b.write('123456', 0, 'latin1'); return b; }, fault: /^not a SWUpdate bundle: entry 0 at offset 0: bad cpio magic "123456"/, names: [], bundle: /not a SWUpdate bundle/ },
    { what: 'odc magic', make: () => { const b = good(); b.write('070707', 0, 'latin1'); return b; }, fault: /odc \(070707\) cpio is not accepted by SWUpdate/, names: [], bundle: /odc/ },
    { what: 'wrong magic in a later entry', make: () => { const b = good(); b.write('07070X', h2, 'latin1'); return b; }, fault: new RegExp(`^entry 2 at offset ${h2}: bad cpio magic`), names: all.slice(0, 2), bundle: /bad cpio magic/ },
    { what: 'a file truncated inside a header', make: () => good().subarray(0, h2 + 50), fault: new RegExp(`^archive ends at offset ${h2} without a TRAILER!!! entry \\(truncated\\?\\)$`), names: all.slice(0, 2), bundle: /without a TRAILER/ },
    { what: 'a file truncated inside a name', make: () => good().subarray(0, h2 + HEADER_SIZE + 2), fault: /^entry 2 at offset \d+: name runs past the end of the file/, names: all.slice(0, 2), bundle: /name runs past/ },
    { what: 'a file truncated inside the data', make: () => good().subarray(0, d2 + 2), fault: new RegExp(`^entry 2 "a.bin" claims 5 bytes at offset ${d2} but the file has only 2 left`), names: all.slice(0, 2), bundle: /claims 5 bytes/ },
    { what: 'a file truncated inside the data padding', make: () => good().subarray(0, d2 + 6), fault: /^entry 2 "a.bin": data padding runs past the end of the file/, names: all.slice(0, 2), bundle: /data padding runs past/ },
    { what: 'the trailer missing', make: () => good().subarray(0, ht), fault: new RegExp(`^archive ends at offset ${ht} without a TRAILER!!! entry`), names: all, bundle: /without a TRAILER!!! entry/ },
    { what: 'an entry size past the end of the file', make: () => field(good(), h2, 6, '00100000'), fault: /^entry 2 "a.bin" claims 1048576 bytes at offset \d+ but the file has only \d+ left/, names: all.slice(0, 2), bundle: /claims 1048576 bytes/ },
    { what: 'a size of 4 GiB in a small file', make: () => field(good(), h0, 6, 'FFFFFFF0'), fault: /^entry 0 "sw-description" claims 4294967280 bytes/, names: [], bundle: /claims 4294967280 bytes/ },
    { what: 'a name with /', make: () => reference([['sw-description', M], ['dir/a.bin', A]], 'crc'), names: ['sw-description', 'dir/a.bin'], bundle: /: entry "dir\/a\.bin" is not a bare file name$/ },
    { what: 'duplicate names', make: () => reference([['sw-description', M], ['a.bin', A], ['a.bin', A]], 'crc'), names: ['sw-description', 'a.bin', 'a.bin'], bundle: /: entry "a\.bin" appears twice$/ },
    { what: 'sw-description not first', make: () => reference([['a.bin', A], ['sw-description', M]], 'crc'), names: ['a.bin', 'sw-description'], bundle: /: first entry is "a\.bin", not sw-description: not a SWUpdate bundle$/ },
    { what: 'the signature not second (sign puts it back in place)', make: () => reference([['sw-description', M], ['a.bin', A], ['sw-description.sig', S]], 'crc'), names: ['sw-description', 'a.bin', 'sw-description.sig'], bundle: 'ok' },
    { what: 'only a trailer', make: () => encodeTrailer(0, 'crc'), names: [], bundle: /first entry is "", not sw-description/ },
    { what: 'sw-description failing its crc sum', make: () => field(good(), h0, 12, '00000001'), names: all, bundle: /: sw-description fails its cpio checksum$/ },
    { what: 'a wrong sum in newc (the client ignores it)', make: () => field(good('newc'), h0, 12, '00000001'), names: all, bundle: 'ok' },
    { what: 'a name not NUL-terminated', make: () => at(good(), h2 + HEADER_SIZE + 5, 0x41), fault: /^entry 2 at offset \d+: name is not NUL-terminated$/, names: all.slice(0, 2), bundle: /not NUL-terminated/ },
    { what: 'a name containing NUL', make: () => at(good(), h2 + HEADER_SIZE + 1, 0), fault: /^entry 2 at offset \d+: name contains a NUL byte$/, names: all.slice(0, 2), bundle: /contains a NUL/ },
    { what: 'a name size of 1', make: () => field(good(), h2, 11, '00000001'), fault: /^entry 2 at offset \d+: name size 1 out of range$/, names: all.slice(0, 2), bundle: /out of range/ },
    { what: 'a non-hex file size', make: () => field(good(), h1, 6, '0000000G'), fault: /^entry 1 at offset \d+: header field filesize is not hexadecimal$/, names: all.slice(0, 1), bundle: /not hexadecimal/ },
    { what: 'a non-hex inode', make: () => field(good(), h2, 0, 'xxxxxxxx'), names: all, bundle: 'ok', anomalies: ['header field ino is not hexadecimal'] },
    { what: 'dirty name padding', make: () => at(good(), d0 - 1, 1), names: all, bundle: 'ok', anomalies: ['non-zero padding after the name'] },
    { what: 'dirty data padding', make: () => at(good(), d2 + 5, 1), names: all, bundle: 'ok', anomalies: ['non-zero padding after the data'] },
    { what: 'bytes after the trailer', make: () => { const b = good(); b[b.length - 1] = 7; return b; }, names: all, bundle: 'ok', end: ['non-zero bytes after the trailer'] },
    { what: 'a length that is not a multiple of 512', make: () => good().subarray(0, 1000), names: all, bundle: 'ok', end: ['archive length 1000 is not a multiple of 512'] },
    { what: 'a trailer claiming data', make: () => field(good(), ht, 6, '00000004'), names: all, bundle: 'ok', end: ['trailer entry claims 4 bytes of data (ignored by the client)'] },
    { what: '100 KiB after the trailer', make: () => Buffer.concat([good(), Buffer.alloc(100 << 10)]), names: all, bundle: 'ok', end: ['102896 bytes after the trailer'] },
  ];

  test.each(rows)('$what', async (row) => {
    const p = file();
    await writeFile(p, row.make());
    // entries(): the raw walk, throwing on the fault
    const walker = await ArchiveReader.open(p);
    const walked: string[] = [];
    const walk = (async () => { for await (const e of walker.entries()) walked.push(e.name); })();
    if (row.fault) await expect(walk).rejects.toMatchObject({ code: 'INPUT', reason: 'corrupt-bundle', path: p, detail: expect.stringMatching(row.fault) });
    else await walk;
    expect(walked).toEqual(row.names);
    await walker.close();

    // scan(): the same walk, the fault reported; bundle(): the strict view sign and manifest use
    const reader = await ArchiveReader.open(p);
    try {
      const scan = await reader.scan();
      expect(scan.entries.map((e) => e.name)).toEqual(row.names);
      if (row.fault) expect(scan.fault).toMatch(row.fault);
      else expect(scan.fault).toBeUndefined();
      expect(scan.entries.flatMap((e) => e.anomalies)).toEqual(row.anomalies ?? []);
      if (!row.fault) expect(scan.end!.anomalies).toEqual(row.end ?? []);
      if (row.bundle === 'ok') {
        const b = await reader.bundle();
        expect(b.manifest.equals(M)).toBe(true);
        expect(b.payloads.map((e) => e.name)).toEqual(row.names.filter((n) => n !== 'sw-description' && n !== 'sw-description.sig'));
      } else {
        await expect(reader.bundle()).rejects.toMatchObject({ code: 'INPUT', message: expect.stringMatching(row.bundle) });
      }
    } finally {
      await reader.close();
    }
  });

  test.each([
    ['a name that is not there', () => good(), 'nope', /: no entry "nope"$/],
    ['a name that appears twice', () => reference([['sw-description', M], ['a.bin', A], ['a.bin', A]], 'crc'), 'a.bin', /: entry "a\.bin" appears twice$/],
    ['a truncated archive', () => good().subarray(0, ht), 'a.bin', /without a TRAILER!!! entry/],
  ])('openPayload refuses %s', async (_n, make, name, re) => {
    const p = file();
    await writeFile(p, make());
    const reader = await ArchiveReader.open(p);
    await expect(reader.openPayload(name)).rejects.toMatchObject({ code: 'INPUT', message: expect.stringMatching(re) });
    await reader.close();
  });

  test('a file that shrinks after the walk: reading an entry fails with the offset, not short data', async () => {
    const p = file();
    await writeFile(p, good());
    const reader = await ArchiveReader.open(p);
    const { payloads } = await reader.bundle();
    await writeFile(p, good().subarray(0, d2 + 2));
    await expect(reader.digestEntry(payloads[0]!)).rejects.toThrow(new RegExp(`unexpected end of file at offset ${d2 + 2}`));
    const s = await reader.openPayload('a.bin');
    await expect((async () => { for await (const _ of s) { /* drain */ } })()).rejects.toThrow(/unexpected end of file/);
    await reader.close();
  });

  test('not a regular file, and a missing file, are INPUT errors naming the path', async () => {
    await expect(ArchiveReader.open(dir)).rejects.toMatchObject({ code: 'INPUT', reason: 'not-a-regular-file', path: dir });
    await expect(ArchiveReader.open(join(dir, 'missing.swu'))).rejects.toMatchObject({ code: 'INPUT', path: join(dir, 'missing.swu') });
  });
});
