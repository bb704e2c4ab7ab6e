// Outputs are all-or-nothing: interrupting bundle or convert (SIGINT/SIGTERM at spread-out
// moments), a full disk, a file-size limit and a read-only output folder all leave the previous
// outputs intact, nothing partial under a final name and no temp files; SIGINT says what was
// interrupted and exits 130. Full-disk and read-only conditions are made in a private mount
// namespace (tmpfs / read-only bind), which needs root for the test only.
import { describe, test, expect, beforeAll } from 'vitest';
import { execa } from 'execa';
import { readFileSync, writeFileSync, readdirSync, mkdirSync, statSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { BIN, tmp } from './helpers/run.js';
import { keygen, writeSpec, abSpec, type KeyDir } from './helpers/bundle-fixtures.js';
import { openSync, writeSync, closeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { buildBuildrootImage } from './helpers/images.js';

/**
 * Random bytes from a 64-symbol alphabet (6 bits/byte): no repeats for deflate's match search to
 * skip and not random enough to go out as stored blocks, so gzip has real work on every byte.
 */
function prngFile(path: string, bytes: number): string {
  const fd = openSync(path, 'w');
  for (let done = 0; done < bytes; done += 4 << 20) {
    const b = randomBytes(Math.min(4 << 20, bytes - done));
    for (let i = 0; i < b.length; i++) b[i] = 0x30 + (b[i]! & 0x3f);
    writeSync(fd, b);
  }
  closeSync(fd);
  return path;
}

let dir: string;
let keys: KeyDir;
let spec: string;
let image: string;
const sha = (p: string): string => createHash('sha256').update(readFileSync(p)).digest('hex');
const leftovers = (d: string): string[] => readdirSync(d).filter((n) => /\.tmp$|^\.otapack-/.test(n));

beforeAll(async () => {
  dir = tmp('otapack-atomic-');
  keys = await keygen(join(dir, 'k'), ['--type', 'rsa2048']);
  // a payload large enough that bundling takes a few seconds with gzip
  const payload = prngFile(join(dir, 'big.img'), 384 << 20);
  spec = writeSpec(dir, 'big.yaml', abSpec({ slotA: '/dev/a', slotB: '/dev/b', file: payload, compress: 'zlib', encrypt: true }));
  image = (await buildBuildrootImage(join(dir, 'input'), { rootfsSize: '160M' })).path;
}, 300_000);

/**
 * Runs a test body whose failures are rethrown as plain, bounded Errors: vitest's worker has
 * crashed serialising this file's AssertionErrors (V8 "invalid size" in RegExpExecMultiple when
 * an assertion held a whole bundle), which hid the failure itself.
 */
async function plainFailures(body: () => Promise<void>): Promise<void> {
  try {
    await body();
  } catch (e) {
    throw new Error(String((e as Error)?.message ?? e).slice(0, 4000));
  }
}

/** Starts otapack, sends `signal` after `ms`, returns how it ended. */
async function interrupt(args: string[], signal: 'SIGINT' | 'SIGTERM', ms: number): Promise<{ code: number | undefined; stderr: string; interrupted: boolean; beforeStart: boolean }> {
  const child = execa(process.execPath, [BIN, ...args], { reject: false, env: { CI: 'true', NO_COLOR: '1' } });
  const timer = setTimeout(() => child.kill(signal), ms);
  const r = await child;
  clearTimeout(timer);
  // a signal that lands before Node has run any JavaScript kills it by default: nothing was written yet
  const beforeStart = r.exitCode === undefined && r.signal === signal;
  return { code: r.exitCode, stderr: String(r.stderr), interrupted: r.exitCode !== 0 && !beforeStart, beforeStart };
}

describe('interrupted runs leave the previous outputs and nothing else', () => {
  test('bundle, SIGINT and SIGTERM at several moments', () => plainFailures(async () => {
    const out = join(dir, 'b', 'update.swu');
    mkdirSync(join(dir, 'b'), { recursive: true });
    writeFileSync(out, 'previous bundle');
    const args = ['bundle', spec, '-o', out, '--key', keys.key, '--cert', keys.cert, '--aes-key', keys.aes];
    // kill points spread over the length of a whole run on this machine (a fixed list of
    // milliseconds missed every run once the codec got faster)
    const t0 = Date.now();
    const full = await execa(process.execPath, [BIN, ...args], { reject: false });
    expect(full.exitCode, String(full.stderr).slice(-500)).toBe(0);
    const fullMs = Date.now() - t0;
    writeFileSync(out, 'previous bundle');
    let previous = sha(out); // compared by digest: a failure message never holds a whole bundle
    let interrupted = 0;
    const points = [0.04, 0.2, 0.4, 0.6, 0.8].map((f, i) => [i % 2 ? 'SIGTERM' : 'SIGINT', Math.max(150, Math.round(fullMs * f))] as const);
    for (const [sig, ms] of points) {
      const r = await interrupt(args, sig, ms);
      if (r.interrupted) {
        interrupted++;
        expect(r.code).toBe(sig === 'SIGINT' ? 130 : 143);
        expect(r.stderr).toMatch(new RegExp(`otapack: interrupted \\(${sig}\\) while \\S`));
        expect(r.stderr).not.toMatch(/\n\s+at .+:\d+:\d+/);
        // the previous bundle, unless the signal came once the new one was published
        if (/the new outputs were already complete/.test(r.stderr)) expect((await execa(process.execPath, [BIN, 'verify', out, '--trust', keys.cert, '--aes-key', keys.aes, '-q'], { reject: false })).exitCode).toBe(0);
        else expect(sha(out), `the previous bundle, after exit ${r.code}: "${r.stderr.trim().slice(-300)}" (${sig} at ${ms} ms)`).toBe(previous);
      }
      expect(leftovers(join(dir, 'b')), `left behind (${sig} at ${ms} ms)`).toEqual([]);
      // a run the signal missed (it finished first) published a new bundle: that is the next run's previous one
      previous = sha(out);
    }
    console.log(`bundle: ${interrupted} of 5 runs interrupted mid-way (a whole run: ${fullMs} ms)`);
    expect(interrupted).toBeGreaterThanOrEqual(3);
  }), 300_000);

  test('convert, SIGINT and SIGTERM at several moments', () => plainFailures(async () => {
    const out = join(dir, 'c');
    // a complete previous conversion
    const t0 = Date.now();
    const first = await execa(process.execPath, [BIN, 'convert', image, '-o', out, '--key', keys.key, '--cert', keys.cert, '--image-sha256'], { reject: false });
    expect(first.exitCode, String(first.stderr)).toBe(0);
    const full = Date.now() - t0;
    let before = Object.fromEntries(readdirSync(out).filter((n) => /\.(img|bmap|swu|json)$/.test(n)).map((n) => [n, sha(join(out, n))]));
    expect(Object.keys(before).length).toBe(4);
    const inputSha = sha(image);
    let interrupted = 0;
    let lateInterrupts = 0;
    const stages = new Set<string>();
    // kill points spread over the length of a whole conversion, so every stage gets hit
    const points = [0.1, 0.25, 0.4, 0.55, 0.7, 0.82, 0.92].map((f, i) => [i % 3 === 1 ? 'SIGTERM' : 'SIGINT', Math.round(full * f)] as const);
    for (const [sig, ms] of points) {
      const r = await interrupt(['convert', image, '-o', out, '--key', keys.key, '--cert', keys.cert, '--image-sha256'], sig, ms);
      if (r.interrupted) {
        interrupted++;
        expect(r.code).toBe(sig === 'SIGINT' ? 130 : 143);
        const m = /interrupted \(\w+\) while (.*?);/.exec(r.stderr);
        expect(m, r.stderr).toBeTruthy();
        stages.add(m![1]!);
      }
      // the four outputs are the previous ones, or - when the signal came once they were being
      // published - a complete new set, never a mix; the report's checksums tell which
      for (const n of Object.keys(before)) expect(statSync(join(out, n)).size, n).toBeGreaterThan(0);
      if (r.interrupted) {
        const now = Object.fromEntries(Object.keys(before).map((n) => [n, sha(join(out, n))]));
        if (/the new outputs were already complete/.test(r.stderr)) {
          lateInterrupts++;
          const report = JSON.parse(readFileSync(join(out, Object.keys(before).find((n) => n.endsWith('.json'))!), 'utf8')) as { outputs: Record<string, { path: string; sha256: string }> };
          for (const o of Object.values(report.outputs).filter((x) => typeof x === 'object' && x?.sha256)) expect(now[o.path.replace(/^.*\//, '')], o.path).toBe(o.sha256);
        } else {
          const changed = Object.keys(before).filter((n) => now[n] !== before[n]);
          expect(changed, `changed after "${r.stderr.trim()}" (${sig} at ${ms} ms)`).toEqual([]);
        }
      }
      expect(leftovers(out), `left behind after "${r.stderr.trim().slice(-300)}" (${sig} at ${ms} ms)`).toEqual([]);
      expect(sha(image)).toBe(inputSha);
      // a run the signal missed published a new set: that is the next run's previous one
      before = Object.fromEntries(Object.keys(before).map((n) => [n, sha(join(out, n))]));
    }
    console.log(`convert: ${interrupted} of 7 runs interrupted (${lateInterrupts} after the new outputs were complete), while: ${[...stages].join(' | ')}`);
    expect(interrupted).toBeGreaterThanOrEqual(4);
  }), 600_000);
});

/**
 * Runs otapack in a private mount namespace: `before` prepares it (shell), `after` runs once
 * otapack has exited (to look at what only the namespace can see).
 */
async function inNamespace(before: string, args: string[], opts: { ulimitBlocks?: number; after?: string } = {}): Promise<{ code: number; stderr: string }> {
  const lim = opts.ulimitBlocks ? `ulimit -f ${opts.ulimitBlocks}; ` : '';
  const script = `set -e; ${before}; set +e; (${lim}exec "$0" "$@"); rc=$?; ${opts.after ?? 'true'}; exit $rc`;
  const r = await execa('unshare', ['-m', '--propagation', 'private', 'sh', '-c', script, process.execPath, BIN, ...args], { reject: false, env: { CI: 'true', NO_COLOR: '1' } });
  return { code: r.exitCode ?? -1, stderr: String(r.stderr) };
}

describe('a full disk, a file-size limit and a read-only folder', () => {
  test('bundle into a nearly full filesystem (ENOSPC)', async () => {
    const d = join(dir, 'full');
    mkdirSync(d, { recursive: true });
    writeFileSync(join(d, 'update.swu'), 'previous');
    // a 64 MiB tmpfs over the folder, holding the previous output; the bundle needs far more
    const r = await inNamespace(`mount -t tmpfs -o size=64m tmpfs ${d}; echo -n previous > ${d}/update.swu`,
      ['bundle', spec, '-o', join(d, 'update.swu'), '--key', keys.key, '--cert', keys.cert, '--aes-key', keys.aes],
      { after: `ls -a ${d} > ${dir}/full.ls; cat ${d}/update.swu > ${dir}/full.prev` });
    expect(r.code, r.stderr).toBe(8);
    expect(r.stderr).toMatch(/no space left on device/);
    expect(r.stderr.trim().split('\n').filter((l) => /error/.test(l))).toHaveLength(1);
    expect(readFileSync(join(dir, 'full.prev'), 'utf8')).toBe('previous');
    expect(readFileSync(join(dir, 'full.ls'), 'utf8').split('\n').filter((n) => /\.tmp$/.test(n))).toEqual([]);
  }, 300_000);

  test('convert under a file-size limit (ulimit -f: EFBIG instead of a killed process)', async () => {
    const out = join(dir, 'ulimit');
    mkdirSync(out, { recursive: true });
    writeFileSync(join(out, 'keep.txt'), 'x');
    const r = await inNamespace('true', ['convert', image, '-o', out, '--key', keys.key, '--cert', keys.cert], { ulimitBlocks: 20000 });
    expect(r.code, r.stderr).toBe(8);
    expect(r.stderr).toMatch(/file too large|no space/);
    expect(readdirSync(out).filter((n) => n !== 'keep.txt' && n !== 'keys')).toEqual([]);
  }, 300_000);

  test('a read-only output folder', async () => {
    const out = join(dir, 'ro');
    mkdirSync(out, { recursive: true });
    writeFileSync(join(out, 'update.swu'), 'previous');
    const r = await inNamespace(`mount --bind ${out} ${out}; mount -o remount,bind,ro ${out}`, ['bundle', spec, '-o', join(out, 'update.swu'), '--key', keys.key, '--cert', keys.cert, '--aes-key', keys.aes]);
    expect(r.code, r.stderr).toBe(8);
    expect(r.stderr).toMatch(/cannot write .*update\.swu: read-only file system/);
    expect(readFileSync(join(out, 'update.swu'), 'utf8')).toBe('previous');
    const c = await inNamespace(`mount --bind ${out} ${out}; mount -o remount,bind,ro ${out}`, ['convert', image, '-o', out, '--key', keys.key, '--cert', keys.cert]);
    expect(c.code, c.stderr).toBe(8);
    expect(c.stderr).toMatch(/read-only file system/);
    expect(readdirSync(out)).toEqual(['update.swu']);
  }, 300_000);
});
