// A fast sample of the seeded fuzz run (`npm run fuzz` does 10 000 inputs per target): the cpio
// reader with a full verify, a really signed and encrypted bundle (verify with trust and AES key,
// manifest, re-sign), the libconfig/JSON manifest reader and the MBR/GPT readers never throw
// anything but their own errors, never take long on one input, stay small in memory, and no
// input makes a command's call fail in a way the CLI would report as exit 70. A few of the
// mutated bundles also go through the built CLI itself.
import { test, expect } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
// @ts-expect-error plain JS module shared with the npm run fuzz script
import { fuzz, seedSigned, mutate, rng } from './fuzz/targets.mjs';
import { otapack, tmp } from './helpers/run.js';

test('300 mutated inputs per parser: no uncaught exception, no hang, bounded memory, never exit 70', async () => {
  const { findings, exit70, stats } = await fuzz({ n: 300, seed: Number(process.env.FUZZ_SEED ?? 20261122), slowMs: 5000 });
  console.log(Object.entries(stats).map(([k, s]: [string, any]) => `${k}: ${s.inputs} inputs, slowest ${s.slowestMs} ms, rss ${s.rssMiB} MiB`).join('\n'));
  expect(findings).toEqual([]);
  expect(exit70, 'inputs whose error the CLI would report as exit 70 (internal error)').toEqual([]);
  for (const s of Object.values(stats) as { rssMiB: number }[]) expect(s.rssMiB).toBeLessThan(512);
}, 300_000);

test('mutated signed bundles through the CLI: verify, manifest and sign never exit 70', async () => {
  const dir = tmp('otapack-fuzz-cli-');
  const seed = await seedSigned();
  const f = { key: join(dir, 'k.pem'), cert: join(dir, 'c.pem'), aes: join(dir, 'aes.key') };
  writeFileSync(f.key, seed.files.key, { mode: 0o600 });
  writeFileSync(f.cert, seed.files.cert);
  writeFileSync(f.aes, seed.files.aes, { mode: 0o600 });
  const r = rng(Number(process.env.FUZZ_SEED ?? 20261122));
  const seen70: string[] = [];
  const codes = new Map<string, number>();
  for (let i = 0; i < 8; i++) {
    const p = join(dir, `m${i}.swu`);
    writeFileSync(p, mutate(seed.bundle, r));
    for (const args of [
      ['verify', p, '--trust', f.cert, '--aes-key', f.aes, '--time', '2026-06-01'],
      ['manifest', p, '-o', join(dir, `m${i}.txt`)],
      ['sign', p, '-o', join(dir, `s${i}.swu`), '--key', f.key, '--cert', f.cert],
    ]) {
      const res = await otapack(args);
      const key = `${args[0]} exit ${res.code}`;
      codes.set(key, (codes.get(key) ?? 0) + 1);
      if (res.code === 70) seen70.push(`#${i} ${args[0]}: ${res.stderr.trim()}`);
    }
  }
  console.log([...codes].map(([k, n]) => `${k}: ${n}`).join(', '));
  expect(seen70, 'CLI runs that exited 70').toEqual([]);
}, 300_000);
