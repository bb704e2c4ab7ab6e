// A fast sample of the seeded fuzz run (`npm run fuzz` does 10 000 inputs per target): the cpio
// reader with a full verify, the libconfig/JSON manifest reader and the MBR/GPT readers never
// throw anything but their own errors, never take long on one input, and stay small in memory.
import { test, expect } from 'vitest';
// @ts-expect-error plain JS module shared with the npm run fuzz script
import { fuzz } from './fuzz/targets.mjs';

test('300 mutated inputs per parser: no uncaught exception, no hang, bounded memory', async () => {
  const { findings, stats } = await fuzz({ n: 300, seed: Number(process.env.FUZZ_SEED ?? 20261122), slowMs: 5000 });
  console.log(Object.entries(stats).map(([k, s]: [string, any]) => `${k}: ${s.inputs} inputs, slowest ${s.slowestMs} ms, rss ${s.rssMiB} MiB`).join('\n'));
  expect(findings).toEqual([]);
  for (const s of Object.values(stats) as { rssMiB: number }[]) expect(s.rssMiB).toBeLessThan(512);
}, 300_000);
