// `otapack verify` reads sw-description exactly as the device does. Each text below becomes a
// signed bundle (openssl cms + GNU cpio) judged twice: by Debian's real `swupdate -c` (2022.12,
// libconfig first, then its json-c fallback) and by `otapack verify`. Every verdict must agree.
// Each case also names the client's verdict, so a change on either side shows; texts whose
// values the client uses (a concatenated sha256, an escaped filename, an int `encrypted`) prove
// that verify reads the same value, because the payload it names must then check the same.
import { describe, test, expect, beforeAll } from 'vitest';
import { execa } from 'execa';
import { requires } from './helpers/require-tool.js';
import { createCipheriv, createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { otapack, tmp } from './helpers/run.js';
import { swupdate, swupdateOk } from './helpers/swupdate.js';

type Verdict = 'accept' | 'refuse';
type Data = 'plain' | 'enc' | 'gz' | 'zst';
interface Case {
  name: string;
  /** What Debian's swupdate 2022.12 does with it (measured). */
  client: Verdict;
  text: string | (() => string | Buffer);
  /** cpio entries after sw-description(.sig): name -> content (default payload.bin: plain). */
  entries?: Record<string, Data>;
  /** Set only where verify knowingly differs; the reason is printed. */
  verify?: { verdict: Verdict; why: string };
}

const IMG = (o: { file?: string; sha?: string; extra?: string } = {}): string =>
  `{ filename = "${o.file ?? 'payload.bin'}"; type = "raw"; device = "/dev/null"; sha256 = "${o.sha ?? '@SHA@'}";${o.extra ? ' ' + o.extra : ''} }`;
/** A valid libconfig manifest; `top` goes before `software`, `inner` inside it, `after` at the end. */
const lc = (o: { inner?: string; image?: string; hw?: string; top?: string; after?: string; version?: string } = {}): string =>
  `${o.top ?? ''}software =
{
\tversion = ${o.version ?? '"1.0.0"'};
\thardware-compatibility = ${o.hw ?? '[ "1.0" ]'};
${o.inner ?? ''}
\timages: ( ${o.image ?? IMG()} );
}
${o.after ?? ''}`;
const JIMG = (o: { file?: string; sha?: string; extra?: string } = {}): string =>
  `{ "filename": "${o.file ?? 'payload.bin'}", "type": "raw", "device": "/dev/null", "sha256": "${o.sha ?? '@SHA@'}"${o.extra ? ', ' + o.extra : ''} }`;
const json = (o: { inner?: string; image?: string; before?: string; after?: string } = {}): string =>
  `${o.before ?? ''}{
  "software": {
    "version": "1.0.0",
    "hardware-compatibility": [ "1.0" ],${o.inner ? '\n    ' + o.inner + ',' : ''}
    "images": [ ${o.image ?? JIMG()} ]
  }
}
${o.after ?? ''}`;

const cases: Case[] = [
  // ---- comments
  { name: 'comments: #, // and /* */ (multi-line)', client: 'accept', text: lc({ top: '# a comment\n// another\n/* a block\n   over two lines */\n', inner: '\tdescription = "x"; # trailing\n\t/* inline */ board = "b"; // end' }) },
  { name: 'a # comment on the last line without a newline', client: 'refuse', text: () => lc() + '# no newline' },
  { name: 'a // comment on the last line without a newline', client: 'refuse', text: () => lc() + '// no newline' },
  { name: 'an unterminated /* comment at the end (input just ends)', client: 'accept', text: () => lc() + '/* never closed\n' },
  { name: 'an unterminated /* comment that swallows the closing brace', client: 'refuse', text: () => lc().replace(/}\n$/, '/* open\n}\n') },
  { name: 'nested /* /* */ */ comments', client: 'refuse', text: lc({ inner: '\t/* a /* b */ */' }) },
  // ---- separators
  { name: '":" instead of "=" everywhere', client: 'accept', text: () => lc().replace(/ = /g, ': ').replace('software =', 'software:') },
  { name: 'no semicolons at all', client: 'accept', text: () => lc().replace(/;/g, '') },
  { name: 'commas as setting terminators', client: 'accept', text: () => lc().replace(/;/g, ',') },
  { name: 'a double semicolon', client: 'refuse', text: lc({ version: '"1.0.0";' }) },
  // ---- strings
  { name: 'sha256 as two adjacent strings (the client concatenates)', client: 'accept', text: lc({ image: IMG({ sha: '@SHA1@" "@SHA2@' }) }) },
  { name: 'filename split in two strings with a comment between', client: 'accept', text: lc({ image: IMG({ file: 'pay" /* x */ "load.bin' }) }) },
  { name: 'sha256 split across a # comment line', client: 'accept', text: lc({ image: IMG({ sha: '@SHA1@" # half\n\t\t"@SHA2@' }) }) },
  { name: 'filename with \\x escapes (\\x6c and \\X6F)', client: 'accept', text: lc({ image: IMG({ file: 'pay\\x6c\\X6Fad.bin' }) }) },
  { name: 'escapes \\n \\t \\r \\f \\" \\\\ in a description', client: 'accept', text: lc({ inner: '\tdescription = "a\\nb\\tc\\rd\\fe\\"f\\\\g";' }) },
  { name: 'unknown escapes (\\q, \\u0041, \\x4) stay as written', client: 'accept', text: lc({ inner: '\tdescription = "\\q \\u0041 \\x4 \\\'";' }) },
  { name: 'filename with an unknown escape: the client looks for a backslash', client: 'accept', text: lc({ image: IMG({ file: 'pay\\load.bin', sha: '@SHA@' }) }), entries: { 'pay\\load.bin': 'plain' } },
  { name: 'the same filename, but the entry has no backslash', client: 'refuse', text: lc({ image: IMG({ file: 'pay\\load.bin' }) }) },
  { name: 'filename with \\x00 (adds nothing)', client: 'accept', text: lc({ image: IMG({ file: 'payload\\x00.bin' }) }) },
  { name: 'a string over several lines', client: 'accept', text: lc({ inner: '\tdescription = "line 1\nline 2";' }) },
  { name: 'an unterminated string as the last value', client: 'refuse', text: () => lc() + 'note = "open\n' },
  { name: 'an unterminated string after a complete one (input just ends)', client: 'accept', text: () => lc() + 'note = "x" "open\n' },
  { name: 'single-quoted string', client: 'refuse', text: lc({ inner: "\tdescription = 'x';" }) },
  // ---- numbers
  { name: 'hex, L and LL integers the client ignores', client: 'accept', text: lc({ image: IMG({ extra: 'pad = 0x1F; big = 5000000000L; bigger = 7LL; h64 = 0xFFFFFFFFFFL; wide = 0x100000000; neg = -3000000000;' }) }) },
  { name: 'octal-looking 010 and +7', client: 'accept', text: lc({ inner: '\ta = 010; b = +7;' }) },
  { name: 'a negative hex number', client: 'refuse', text: lc({ inner: '\ta = -0x10;' }) },
  { name: '0x without digits', client: 'refuse', text: lc({ inner: '\ta = 0x;' }) },
  { name: 'three L suffixes', client: 'refuse', text: lc({ inner: '\ta = 10LLL;' }) },
  { name: 'lower-case l suffix', client: 'refuse', text: lc({ inner: '\ta = 10l;' }) },
  { name: 'floats: 1.5 .5 5. 1e5 1E+5 -.e5 and a lone "."', client: 'accept', text: lc({ inner: '\tf = [ 1.5, .5, 5., 1e5, 1E+5, -.e5, . ];' }) },
  { name: 'a float with a dangling exponent', client: 'refuse', text: lc({ inner: '\tf = 1.5e;' }) },
  { name: 'a float with an f suffix', client: 'refuse', text: lc({ inner: '\tf = 1.5f;' }) },
  { name: 'encrypted = 1 (an int the client reads as true): plain payload', client: 'refuse', text: lc({ image: IMG({ extra: 'encrypted = 1;' }) }) },
  { name: 'encrypted = 0x101 (low byte 1: true): encrypted payload', client: 'accept', text: lc({ image: IMG({ sha: '@SHA_ENC@', extra: 'encrypted = 0x101; ivt = "@IVT@";' }) }), entries: { 'payload.bin': 'enc' } },
  { name: 'encrypted = 0x100 (low byte 0: false): plain payload', client: 'accept', text: lc({ image: IMG({ extra: 'encrypted = 0x100;' }) }) },
  { name: 'encrypted = 1L (int64, true): plain payload', client: 'refuse', text: lc({ image: IMG({ extra: 'encrypted = 1L;' }) }) },
  { name: 'encrypted = 0.1 (a float: 8 bytes written over the bool, low byte 0x9a: true)', client: 'refuse', text: lc({ image: IMG({ extra: 'encrypted = 0.1;' }) }) },
  { name: 'encrypted = "true" (a string: the client ignores it): plain payload', client: 'accept', text: lc({ image: IMG({ extra: 'encrypted = "true";' }) }) },
  { name: 'compressed = 2 (the client\'s zlib): plain payload', client: 'refuse', text: lc({ image: IMG({ extra: 'compressed = 2;' }) }) },
  { name: 'compressed = 0x2 (zlib): gzip payload', client: 'accept', text: lc({ image: IMG({ sha: '@SHA_GZ@', extra: 'compressed = 0x2;' }) }), entries: { 'payload.bin': 'gz' } },
  { name: 'compressed = 3 (zstd): zstd payload', client: 'accept', text: lc({ image: IMG({ sha: '@SHA_ZST@', extra: 'compressed = 3;' }) }), entries: { 'payload.bin': 'zst' } },
  { name: 'compressed = 7 (no such method)', client: 'refuse', text: lc({ image: IMG({ extra: 'compressed = 7;' }) }) },
  // ---- booleans
  { name: 'booleans in any case: true TRUE True tRuE fAlSe', client: 'accept', text: lc({ inner: '\ta = true; b = TRUE; c = True; d = tRuE; e = fAlSe;' }) },
  { name: 'encrypted = tRuE with an encrypted payload', client: 'accept', text: lc({ image: IMG({ sha: '@SHA_ENC@', extra: 'encrypted = tRuE; ivt = "@IVT@";' }) }), entries: { 'payload.bin': 'enc' } },
  { name: 'encrypted = TRUE with a plain payload', client: 'refuse', text: lc({ image: IMG({ extra: 'encrypted = TRUE;' }) }) },
  { name: 'compressed = True (deprecated form: zlib) with a gzip payload', client: 'accept', text: lc({ image: IMG({ sha: '@SHA_GZ@', extra: 'compressed = True;' }) }), entries: { 'payload.bin': 'gz' } },
  { name: '"truex" is a name, not a value', client: 'refuse', text: lc({ inner: '\ta = truex;' }) },
  // ---- duplicate names
  { name: 'a duplicate setting (version twice)', client: 'refuse', text: lc({ inner: '\tversion = "2.0";' }) },
  { name: 'a duplicate setting inside an image (sha256 twice)', client: 'refuse', text: lc({ image: IMG({ extra: 'sha256 = "@SHA@";' }) }) },
  { name: 'names differing only in case are distinct', client: 'accept', text: lc({ inner: '\tVersion = "2.0"; VERSION = "3.0";' }) },
  // ---- arrays and lists
  { name: 'a mixed array [ "1.0", 1 ]', client: 'refuse', text: lc({ hw: '[ "1.0", 1 ]' }) },
  { name: 'a mixed list ( "1.0", 1 ): the client skips the number', client: 'accept', text: lc({ hw: '( "1.0", 1 )' }) },
  { name: 'hardware-compatibility as a group (the client walks its settings)', client: 'accept', text: lc({ hw: '{ a = "2.0"; b = "1.0"; }' }) },
  { name: 'an array of int and hex (one type)', client: 'accept', text: lc({ inner: '\tx = [ 1, 0x2, 3000000000 ];' }) },
  { name: 'an array of int and int64', client: 'refuse', text: lc({ inner: '\tx = [ 1, 2L ];' }) },
  { name: 'a group inside an array', client: 'refuse', text: lc({ inner: '\tx = [ { a = 1; } ];' }) },
  { name: 'a trailing comma in an array', client: 'refuse', text: lc({ hw: '[ "1.0", ]' }) },
  { name: 'a trailing comma in a list', client: 'refuse', text: lc({ image: IMG() + ',' }) },
  { name: 'empty array, list and group', client: 'accept', text: lc({ inner: '\tx = [ ]; y = ( ); z = { };' }) },
  // ---- names
  { name: 'a name starting with a digit', client: 'refuse', text: lc({ inner: '\t1st = 1;' }) },
  { name: 'a name starting with "-"', client: 'refuse', text: lc({ inner: '\t-x = 1;' }) },
  { name: 'names with "*" (allowed anywhere)', client: 'accept', text: lc({ inner: '\t*x = 1; a*b = 2; c-d_e = 3;' }) },
  { name: 'a name with "."', client: 'refuse', text: lc({ inner: '\ta.b = 1;' }) },
  { name: 'a name starting with "_"', client: 'refuse', text: lc({ inner: '\t_x = 1;' }) },
  // ---- structure and bytes
  { name: '1000 nested groups (deeper than any fixed limit but the client\'s)', client: 'accept', text: () => lc({ inner: '\tdeep = ' + '{ a = '.repeat(1000) + '1' + '; }'.repeat(1000) + ';' }) },
  { name: '5000 nested lists (the client\'s parser stack is full)', client: 'refuse', text: () => lc({ inner: '\tdeep = ' + '('.repeat(5000) + ')'.repeat(5000) + ';' }) },
  { name: 'CRLF line endings', client: 'accept', text: () => lc({ top: '# crlf\n' }).replace(/\n/g, '\r\n') },
  { name: 'CR-only line endings', client: 'accept', text: () => lc().replace(/\n/g, '\r') },
  { name: 'CR-only line endings with a # comment (it runs to the end)', client: 'refuse', text: () => lc({ top: '# comment\n' }).replace(/\n/g, '\r') },
  { name: 'a UTF-8 byte order mark', client: 'refuse', text: () => '\ufeff' + lc() },
  { name: 'a vertical tab', client: 'refuse', text: lc({ inner: '\ta = 1;\v' }) },
  { name: 'a NUL byte inside a string ends its run', client: 'accept', text: () => Buffer.from(lc({ image: IMG({ file: 'payload.bin\0junk' }) }), 'latin1') },
  { name: '@include of a file the device does not have', client: 'refuse', text: () => '@include "/nonexistent/otapack.cfg"\n' + lc() },
  { name: '@include not at the start of a line', client: 'refuse', text: () => 'x = 1; @include "/dev/null"\n' + lc() },
  {
    name: '@include of a file the device has (/dev/null)', client: 'accept', text: () => '@include "/dev/null"\n' + lc(),
    verify: { verdict: 'refuse', why: 'the device reads the file from its own filesystem; verify cannot see it and refuses rather than guess' },
  },
  // ---- JSON, as the client's json-c fallback reads it
  { name: 'JSON', client: 'accept', text: json() },
  { name: 'JSON with trailing commas in objects and arrays', client: 'accept', text: () => json({ image: JIMG() + ',' }).replace('"1.0" ]', '"1.0", ]').replace(/]\n {2}}/, '],\n  }') },
  { name: 'JSON with /* */ and // comments (and one before the object)', client: 'accept', text: json({ before: '// leading\n/* block */\n', inner: '"description": /* c */ "x" // eol\n' }) },
  { name: 'JSON with a # comment', client: 'refuse', text: json({ inner: '# hash\n    "description": "x"' }) },
  { name: 'JSON with single-quoted strings', client: 'accept', text: () => json().replace(/"1.0.0"/, "'1.0.0'").replace('"type"', "'type'") },
  { name: 'JSON with True, NULL, NaN and -Infinity', client: 'accept', text: json({ inner: '"a": True, "b": NULL, "c": NaN, "d": -Infinity, "e": fAlSe' }) },
  { name: 'JSON with garbage after the top object', client: 'accept', text: json({ after: 'this is ignored {[' }) },
  { name: 'JSON with "/x" after the top object (a bad comment)', client: 'refuse', text: json({ after: '/x' }) },
  { name: 'JSON with an unterminated comment after the top object', client: 'accept', text: json({ after: '/* open' }) },
  { name: 'JSON without its final brace', client: 'refuse', text: () => json().trimEnd().slice(0, -1) },
  { name: 'JSON filename with \\u0000 (the client stops there)', client: 'accept', text: json({ image: JIMG({ file: 'payload.bin\\u0000junk' }) }) },
  { name: 'JSON filename with \\u escapes (and \\/ in a description)', client: 'accept', text: json({ inner: '"description": "a\\/b"', image: JIMG({ file: 'pay\\u006coad\\u002ebin' }) }) },
  { name: 'JSON with a raw tab inside a string', client: 'accept', text: json({ inner: '"description": "a\tb"' }) },
  { name: 'JSON duplicate key: the last sha256 wins (right one last)', client: 'accept', text: json({ image: JIMG({ extra: '"sha256": "@SHA@"' }).replace('"sha256": "@SHA@"', '"sha256": "@WRONG@"') }) },
  { name: 'JSON duplicate key: the last sha256 wins (wrong one last)', client: 'refuse', text: json({ image: JIMG({ extra: '"sha256": "@WRONG@"' }) }) },
  { name: 'JSON nested 40 deep', client: 'refuse', text: json({ inner: '"deep": ' + '['.repeat(40) + ']'.repeat(40) }) },
  { name: 'JSON "encrypted": "false" (strcpy into a bool: true): plain payload', client: 'refuse', text: json({ image: JIMG({ extra: '"encrypted": "false"' }) }) },
  { name: 'JSON "encrypted": "" (strcpy of an empty string: false): plain payload', client: 'accept', text: json({ image: JIMG({ extra: '"encrypted": ""' }) }) },
  { name: 'JSON "encrypted": 1: plain payload', client: 'refuse', text: json({ image: JIMG({ extra: '"encrypted": 1' }) }) },
  { name: 'JSON "compressed": 2 (zlib): gzip payload', client: 'accept', text: json({ image: JIMG({ sha: '@SHA_GZ@', extra: '"compressed": 2' }) }), entries: { 'payload.bin': 'gz' } },
  { name: 'JSON number forms 01, 1e5, 1E-, 0.5', client: 'accept', text: json({ inner: '"n": [ 01, 1e5, 1E-, 0.5 ]' }) },
  { name: 'JSON number 1.-5', client: 'refuse', text: json({ inner: '"n": 1.-5' }) },
  { name: 'JSON with a byte order mark', client: 'refuse', text: () => '\ufeff' + json() },
  { name: 'JSON with an unquoted key', client: 'refuse', text: json({ inner: 'description: "x"' }) },
];

const HW = 'otapack:1.0';
let dir: string;
let cert: string;
let key: string;
let aes: string;
let ivt: string;
const data: Record<Data, Buffer> = {} as Record<Data, Buffer>;
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const haveClient = requires({ what: 'the manifest differential test (the real client is the judge)', tools: ['swupdate', 'cpio', 'openssl', 'zstd'], install: 'apt-get install swupdate cpio openssl zstd' });

beforeAll(async () => {
  dir = tmp('otapack-manifest-diff-');
  key = join(dir, 'signer.key');
  cert = join(dir, 'signer.crt');
  await execa('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '3650', '-subj', '/CN=otapack manifest test',
    '-addext', 'basicConstraints=critical,CA:FALSE', '-addext', 'keyUsage=critical,digitalSignature', '-addext', 'extendedKeyUsage=emailProtection,codeSigning']);
  const k = Buffer.alloc(32, 7);
  const iv = Buffer.alloc(16, 9);
  ivt = '0123456789abcdef0123456789abcdef';
  aes = join(dir, 'aes.key');
  writeFileSync(aes, `${k.toString('hex')} ${iv.toString('hex')}\n`);
  data.plain = Buffer.alloc(4096);
  for (let i = 0, x = 1; i < data.plain.length; i++) { x = (x * 1103515245 + 12345) >>> 0; data.plain[i] = x >>> 24; }
  const c = createCipheriv('aes-256-cbc', k, Buffer.from(ivt, 'hex'));
  data.enc = Buffer.concat([c.update(data.plain), c.final()]);
  data.gz = gzipSync(data.plain);
  data.zst = (await execa('zstd', ['-q', '-c'], { input: data.plain, encoding: 'buffer' })).stdout as Buffer;
});

async function build(i: number, c: Case): Promise<string> {
  const d = join(dir, `case-${i}`);
  mkdirSync(d);
  const raw = typeof c.text === 'function' ? c.text() : c.text;
  const s = sha(data.plain);
  const sub = (t: string): string => t
    .replaceAll('@SHA1@', s.slice(0, 32)).replaceAll('@SHA2@', s.slice(32))
    .replaceAll('@SHA_ENC@', sha(data.enc)).replaceAll('@SHA_GZ@', sha(data.gz)).replaceAll('@SHA_ZST@', sha(data.zst))
    .replaceAll('@SHA@', s).replaceAll('@WRONG@', 'f'.repeat(64)).replaceAll('@IVT@', ivt);
  const manifest = Buffer.isBuffer(raw) ? Buffer.from(sub(raw.toString('latin1')), 'latin1') : Buffer.from(sub(raw), 'utf8');
  writeFileSync(join(d, 'sw-description'), manifest);
  await execa('openssl', ['cms', '-sign', '-in', 'sw-description', '-out', 'sw-description.sig', '-signer', cert, '-inkey', key, '-outform', 'DER', '-nosmimecap', '-binary'], { cwd: d });
  const entries = c.entries ?? { 'payload.bin': 'plain' };
  for (const [name, kind] of Object.entries(entries)) {
    mkdirSync(join(d, name, '..'), { recursive: true });
    writeFileSync(join(d, name), data[kind]);
  }
  const out = join(dir, `case-${i}.swu`);
  const names = ['sw-description', 'sw-description.sig', ...Object.keys(entries)];
  await execa('sh', ['-c', 'cpio -o -H newc --quiet > "$1"', 'sh', out], { cwd: d, input: names.join('\n') + '\n' });
  return out;
}

interface Outcome { c: Case; client: Verdict; verify: Verdict; clientWhy: string; verifyWhy: string }

async function judge(i: number, c: Case): Promise<Outcome> {
  const b = await build(i, c);
  const run = c.client === 'accept' ? swupdateOk : swupdate; // success is judged by output; retried
  const [r, v] = await Promise.all([run(b, { check: true, cert, aesKey: aes, hw: HW }), otapack(['verify', b, '--trust', cert, '--aes-key', aes])]);
  if (v.code !== 0 && v.code !== 1) throw new Error(`verify exited ${v.code} on "${c.name}":\n${v.stderr}`);
  return {
    c,
    client: r.ok ? 'accept' : 'refuse',
    verify: v.code === 0 ? 'accept' : 'refuse',
    clientWhy: r.output.split('\n').filter((l) => /ERROR|error/.test(l) && !/SWUpdate \*failed\*|Image invalid|Compatible SW not found|no parser available/.test(l)).join(' / ').slice(0, 300),
    verifyWhy: v.stderr.split('\n').filter((l) => /FAIL/.test(l)).join(' / ').slice(0, 300),
  };
}

describe.skipIf(!haveClient)('sw-description is parsed with the client\'s rules (libconfig, then its JSON fallback)', () => {
  test(`${cases.length} manifests: otapack verify and swupdate -c give the same verdict`, async () => {
    expect(cases.length).toBeGreaterThanOrEqual(40);
    const results: Outcome[] = new Array(cases.length);
    let next = 0;
    const worker = async (): Promise<void> => {
      for (let i = next++; i < cases.length; i = next++) results[i] = await judge(i, cases[i]!);
    };
    await Promise.all([worker(), worker()]); // two at a time: the machine is shared
    const clientChanged = results.filter((r) => r.client !== r.c.client);
    const disagree = results.filter((r) => r.verify !== (r.c.verify?.verdict ?? r.client));
    const declared = results.filter((r) => r.c.verify && r.verify === r.c.verify.verdict && r.client === r.c.client);
    const agree = results.filter((r) => r.verify === r.client).length;
    const lines = [`manifest parser: ${agree}/${results.length} cases agree with swupdate${declared.length ? `; ${declared.length} declared difference(s)` : ''}`];
    for (const r of declared) lines.push(`  declared: "${r.c.name}": client ${r.client}, verify ${r.verify} (${r.c.verify!.why})`);
    for (const r of disagree) lines.push(`  DISAGREE: "${r.c.name}": client ${r.client} [${r.clientWhy}], verify ${r.verify} [${r.verifyWhy}]`);
    for (const r of clientChanged) lines.push(`  CLIENT CHANGED: "${r.c.name}": expected ${r.c.client}, got ${r.client} [${r.clientWhy}]`);
    console.log(lines.join('\n'));
    expect(disagree.map((r) => r.c.name)).toEqual([]);
    expect(clientChanged.map((r) => r.c.name)).toEqual([]);
  }, 300_000);
});
