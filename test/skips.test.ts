// A test that cannot fail, or that skips without saying so, is a defect. The only sanctioned way
// to depend on something a machine may lack is test/helpers/require-tool.ts's requires(): it
// skips with a line saying what is missing, and fails under CI=true. This reads every test file
// and refuses every other way of skipping: .skip/.todo/.only, skipIf/runIf on anything but a
// requires() result, a test's own look at $CI, and early returns or guarded assertions keyed on
// a tool, a firmware file, root or a "have…"/"can…" flag.
import { test, expect } from 'vitest';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { ROOT } from './helpers/run.js';
import { requires } from './helpers/require-tool.js';

const HELPER = 'test/helpers/require-tool.ts';
const SELF = 'test/skips.test.ts';

const RULES: [RegExp, string][] = [
  [/\b(describe|test|it|suite)(\.\w+)*\.(skip|todo|only)\b(?!If)/, 'skip/todo/only: use requires() and skipIf, or delete the test'],
  [/\b(ctx|context|t)\.skip\(/, "a test skipping itself: use requires() and skipIf"],
  [/process\.env\.CI\b/, 'a test deciding on $CI itself: requires() owns that decision'],
  [
    /\bif\s*\((?=[^\n]*(\bwhich\(|command -v|existsSync\(\s*['"`]\/|existsSync\(\s*[A-Z][A-Z0-9_]+\s*\)|\bhave[A-Z]\w*|\bcan[A-Z]\w*|\bisRoot\b|getuid\(\)))[^\n]*\)\s*\{?\s*return\b/,
    'an early return when something is missing: use requires() (fails under CI)',
  ],
  [/\bif\s*\(\s*!?\s*(have|can)[A-Z]\w*\s*\)/, 'assertions run only when something is present: use requires() and skipIf'],
];

/** Every way `text` (a test file) skips without requires(), as "file:line: why: the line". */
export function skipViolations(file: string, text: string): string[] {
  if (file === HELPER) return [];
  const out: string[] = [];
  const fromRequires = new Set([...text.matchAll(/\b(?:const|let)\s+(\w+)\s*=\s*(?:await\s+)?requires\(/g)].map((m) => m[1]!));
  text.split('\n').forEach((line, i) => {
    const at = `${file}:${i + 1}`;
    if (/^\s*(\/\/|\*)/.test(line)) return; // comments may talk about skipping
    for (const [re, why] of RULES) if (re.test(line)) out.push(`${at}: ${why}: ${line.trim()}`);
    for (const m of line.matchAll(/\.(skipIf|runIf)\(([^)]*)\)/g)) {
      const arg = /^\s*!?\s*(\w+)\s*$/.exec(m[2]!)?.[1];
      if (!arg || !fromRequires.has(arg)) out.push(`${at}: ${m[1]} on something not from requires(): ${line.trim()}`);
    }
  });
  return out;
}

function testFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return e.name === 'fixtures' || e.name === 'node_modules' ? [] : testFiles(p);
    return /\.(ts|mjs|js)$/.test(e.name) ? [p] : [];
  });
}

test('no test skips except through requires() (which fails under CI)', () => {
  const files = testFiles(join(ROOT, 'test')).map((p) => relative(ROOT, p)).filter((f) => f !== SELF);
  expect(files.length).toBeGreaterThan(40);
  const found = files.flatMap((f) => skipViolations(f, readFileSync(join(ROOT, f), 'utf8')));
  expect(found).toEqual([]);
  // and requires() is in use where tests need QEMU, root, BusyBox or the native addon
  const users = files.filter((f) => /\brequires\(\{/.test(readFileSync(join(ROOT, f), 'utf8')));
  expect(users).toEqual(expect.arrayContaining([
    'test/boot-grub-ab-qemu.test.ts', 'test/boot-uboot-ab-qemu.test.ts', 'test/boot-swupdate-bootenv-qemu.test.ts',
    'test/device-env.test.ts', 'test/compress-parallel-gzip.test.ts',
  ]));
});

test('the check is not a rubber stamp: each way of skipping is caught, the sanctioned one passes', () => {
  const bad: [string, string][] = [
    ['test.skip', "test.skip('x', () => {});"],
    ['describe.only', "describe.only('x', () => {});"],
    ['it.todo', "it.todo('later');"],
    ['test.skip.each', "test.skip.each([1])('x', () => {});"],
    ['skipIf on an expression', "describe.skipIf(!existsSync('/usr/bin/qemu'))('x', () => {});"],
    ['skipIf on a hand-made flag', "const have = existsSync(OVMF_CODE);\ndescribe.skipIf(!have)('x', () => {});"],
    ['runIf', "test.runIf(process.platform === 'linux')('x', () => {});"],
    ['context skip', "test('x', (ctx) => { ctx.skip(); });"],
    ['$CI', 'if (process.env.CI) expect(a).toBe(b);'],
    ['return when a tool is missing', "  if (!which('grub-mkimage')) return;"],
    ['return when firmware is missing', '  if (!existsSync(UBOOT_BIN)) return;'],
    ['return on a flag', '  if (!haveQemu) { return; }'],
    ['return without root', '  if (process.getuid() !== 0) return;'],
    ['guarded assertions', '  if (haveNative) {'],
  ];
  for (const [what, code] of bad) expect(skipViolations('test/x.test.ts', code), what).not.toEqual([]);
  const good = [
    "const haveQemu = requires({ what: 'qemu', tools: ['qemu-system-aarch64'] });\ndescribe.skipIf(!haveQemu)('x', () => {});",
    "const ok = requires({ what: 'addon', files: ['/x'] });\ntest.skipIf(!ok)('x', () => {});",
    '  if (!existsSync(out)) return; // nothing was written',
    "  // describe.skip is forbidden, says this comment",
    "  add('decode', 'skip', 'no payload');",
  ];
  for (const code of good) expect(skipViolations('test/x.test.ts', code), code).toEqual([]);
});

test('requires() skips outside CI and fails under CI=true, naming what is missing', () => {
  const saved = process.env.CI;
  const r = { what: 'a test', tools: ['no-such-tool-otapack'], files: ['/no/such/firmware.fd'], install: 'apt-get install nothing' };
  try {
    process.env.CI = 'true';
    expect(() => requires(r)).toThrow(/CI=true and a test: missing no-such-tool-otapack, \/no\/such\/firmware\.fd \(apt-get install nothing\); in CI every requirement is installed, so this fails instead of skipping/);
    delete process.env.CI;
    expect(requires(r)).toBe(false);
    process.env.CI = 'false';
    expect(requires(r)).toBe(false);
    expect(requires({ what: 'present', tools: ['sh'], files: ['/'] })).toBe(true);
  } finally {
    if (saved === undefined) delete process.env.CI;
    else process.env.CI = saved;
  }
});
